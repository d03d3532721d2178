//! `/v1/kpis`: the tenant's KPI catalogue — list, read, write (drafts; a semantic change to an approved
//! KPI sends it back to draft), approve (admins), delete, run over the lake, and YAML export/import
//! (dashboards-as-code). Definitions are checked against the lake (unknown tables or columns are field
//! errors) when the server has one.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use orbas_dashboards::catalog::{self, StoredKpi};
use orbas_dashboards::engine::Table;
use orbas_dashboards::viewer::Viewer;
use orbas_dashboards::{Grain, KpiDefinition, KpiQuery, Status, kpi};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, RoleKey};
use orbas_oltp::repo::kpis;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes, check_if_match, with_etag};
use crate::state::AppState;

const RESOURCE: &str = "kpi_definitions";
const YAML: &str = "application/yaml";
/// The largest YAML document accepted by an import.
const MAX_YAML: usize = 1024 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, remove))
        .routes(routes!(approve))
        .routes(routes!(query))
        .routes(routes!(drill))
        .routes(routes!(export, import))
}

fn forbidden(action: Action) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {} KPIs", action.as_str()))
}

fn readable(p: &Principal) -> Result<(), Problem> {
    p.scope_for(RESOURCE, Action::Read).map(|_| ()).ok_or_else(|| forbidden(Action::Read))
}

/// An approved definition may only come from an admin.
fn check_status(p: &Principal, d: &KpiDefinition) -> Result<(), Problem> {
    if d.status == Status::Approved && p.role != RoleKey::Admin {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "only an admin approves a KPI")
            .with_field("status", "send draft (or leave it out); an admin approves with POST /v1/kpis/{key}/approve"));
    }
    Ok(())
}

/// Checks `d` (shape, then against the tenant's lake when there is one).
async fn checked(state: &AppState, p: &Principal, d: KpiDefinition) -> Result<KpiDefinition, Problem> {
    let d = d.validated()?;
    if let Some(engine) = &state.dashboards {
        let problems = engine.check(&Viewer::new(p.clone()), &d).await?;
        if !problems.is_empty() {
            return Err(orbas_dashboards::Error::Invalid(problems).into());
        }
    }
    Ok(d)
}

/// Writes `d` as a new draft (approved at once when an admin sends `approved`).
async fn insert(c: &mut PgConnection, p: &Principal, d: &KpiDefinition) -> Result<StoredKpi, Problem> {
    let row = kpis::create(c, p.tenant, Some(p.user), &catalog::to_write(d)).await?;
    let row =
        if d.status == Status::Approved { kpis::approve(c, &row.key, Some(p.user), Utc::now()).await? } else { row };
    Ok(StoredKpi::from_row(row)?)
}

/// Replaces the KPI `key` with `d` (the caller's right to was checked).
async fn overwrite(c: &mut PgConnection, p: &Principal, key: &str, d: &KpiDefinition) -> Result<StoredKpi, Problem> {
    let row = kpis::update(c, key, &catalog::to_write(d)).await?;
    let row = if d.status == Status::Approved && row.status != "approved" {
        kpis::approve(c, &row.key, Some(p.user), Utc::now()).await?
    } else {
        row
    };
    Ok(StoredKpi::from_row(row)?)
}

/// The tenant's KPIs, by key.
#[utoipa::path(get, path = "/v1/kpis", tag = "kpis", security(("bearer" = [])),
    responses((status = 200, body = Vec<StoredKpi>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Vec<StoredKpi>>, Problem> {
    readable(&auth.principal)?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let all = catalog::list(tx.conn()).await?;
    tx.commit().await?;
    Ok(Json(all))
}

/// Define a KPI (a draft until an admin approves it). Checked against the lake when the server has one.
#[utoipa::path(post, path = "/v1/kpis", tag = "kpis", request_body = KpiDefinition, security(("bearer" = [])),
    responses((status = 201, body = StoredKpi, headers(("ETag" = String), ("Location" = String))),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(d): Body<KpiDefinition>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Create, Some(p.user)) {
        return Err(forbidden(Action::Create));
    }
    check_status(p, &d)?;
    let d = checked(&state, p, d).await?;
    let mut tx = state.db.begin(p.tenant).await?;
    let stored = insert(tx.conn(), p, &d).await?;
    audit_write(tx.conn(), &auth, &ctx, ("create", RESOURCE), stored.id.0, &changes(None::<&()>, Some(&stored)))
        .await?;
    tx.commit().await?;
    let mut resp = with_etag(StatusCode::CREATED, &stored);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/kpis/{}", stored.definition.key)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// One KPI, with its `ETag`.
#[utoipa::path(get, path = "/v1/kpis/{key}", tag = "kpis", params(("key" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = StoredKpi, headers(("ETag" = String))), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn read(State(state): State<AppState>, auth: Authenticated, Id(key): Id<String>) -> Result<Response, Problem> {
    readable(&auth.principal)?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let k = catalog::get(tx.conn(), &key).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, &k))
}

/// Replace a KPI (its owner or an admin; the standard set: admins). A change of its semantics (source,
/// measure, time, grain, dimensions, filter, unit, direction) returns an approved KPI to draft. Send
/// `If-Match` with the `ETag` you read to avoid lost updates.
#[utoipa::path(put, path = "/v1/kpis/{key}", tag = "kpis", request_body = KpiDefinition,
    params(("key" = String, Path), ("If-Match" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 200, body = StoredKpi, headers(("ETag" = String))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 412, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn replace(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(key): Id<String>,
    Body(d): Body<KpiDefinition>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    readable(p)?;
    check_status(p, &d)?;
    let d = checked(&state, p, d).await?;
    let mut tx = state.db.begin(p.tenant).await?;
    let current = StoredKpi::from_row(kpis::by_key(tx.conn(), &key, true).await?)?;
    if !p.may(RESOURCE, Action::Update, current.owner_id) {
        return Err(forbidden(Action::Update));
    }
    check_if_match(&ctx, &current, "KPI")?;
    let updated = overwrite(tx.conn(), p, &key, &d).await?;
    audit_write(tx.conn(), &auth, &ctx, ("update", RESOURCE), updated.id.0, &changes(Some(&current), Some(&updated)))
        .await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, &updated))
}

/// Delete a KPI (409 while a dashboard widget or an alert uses it).
#[utoipa::path(delete, path = "/v1/kpis/{key}", tag = "kpis", params(("key" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(key): Id<String>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    readable(p)?;
    let mut tx = state.db.begin(p.tenant).await?;
    let current = StoredKpi::from_row(kpis::by_key(tx.conn(), &key, true).await?)?;
    if !p.may(RESOURCE, Action::Delete, current.owner_id) {
        return Err(forbidden(Action::Delete));
    }
    kpis::delete(tx.conn(), &key).await.map_err(|e| match e.kind() {
        orbas_oltp::ErrorKind::Conflict => {
            Problem::new(StatusCode::CONFLICT, "a dashboard widget or an alert uses this KPI; remove them first")
        }
        _ => e.into(),
    })?;
    audit_write(tx.conn(), &auth, &ctx, ("delete", RESOURCE), current.id.0, &changes(Some(&current), None::<&()>))
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Approve a draft KPI (admins): it may then appear in shared dashboards, reports and alerts.
#[utoipa::path(post, path = "/v1/kpis/{key}/approve", tag = "kpis", params(("key" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = StoredKpi, headers(("ETag" = String))), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(key): Id<String>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    readable(p)?;
    if p.role != RoleKey::Admin {
        return Err(Problem::new(StatusCode::FORBIDDEN, "only an admin approves a KPI"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let before = StoredKpi::from_row(kpis::by_key(tx.conn(), &key, true).await?)?;
    let after = StoredKpi::from_row(kpis::approve(tx.conn(), &key, Some(p.user), Utc::now()).await?)?;
    if after != before {
        audit_write(tx.conn(), &auth, &ctx, ("approve", RESOURCE), after.id.0, &changes(Some(&before), Some(&after)))
            .await?;
    }
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, &after))
}

/// What to compute of a KPI.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KpiQueryRequest {
    /// First day (inclusive).
    pub from: Option<NaiveDate>,
    /// Day after the last (exclusive).
    pub until: Option<NaiveDate>,
    /// Overrides the KPI's grain.
    pub grain: Option<Grain>,
    /// Dimensions to break down by.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Allowed values per dimension (a dimension the KPI lacks is ignored and reported).
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
}

/// A KPI's values.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KpiResult {
    pub key: String,
    #[serde(flatten)]
    pub table: Table,
    /// Query parts this KPI has no use for.
    pub ignored: Vec<String>,
    /// Served from the cache (the lake has not committed since).
    pub cached: bool,
}

/// Compute a KPI over the lake for the caller's tenant: a series by the grain, broken down and filtered
/// by dimensions. Drafts run too (to preview them).
#[utoipa::path(post, path = "/v1/kpis/{key}/query", tag = "kpis", request_body = KpiQueryRequest,
    params(("key" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = KpiResult), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn query(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(key): Id<String>,
    Body(req): Body<KpiQueryRequest>,
) -> Result<Json<KpiResult>, Problem> {
    let p = &auth.principal;
    readable(p)?;
    let mut tx = state.db.begin(p.tenant).await?;
    let k = catalog::get(tx.conn(), &key).await?;
    tx.commit().await?;
    let Some(engine) = &state.dashboards else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    let q =
        KpiQuery { from: req.from, until: req.until, grain: req.grain, group_by: req.group_by, filters: req.filters };
    let (compiled, answer) = engine.run_kpi(&Viewer::new(p.clone()), &k.definition, &q).await?;
    Ok(Json(KpiResult { key, table: (*answer.table).clone(), ignored: compiled.ignored, cached: answer.cached }))
}

/// The YAML document of KPI definitions (its schema, for the docs).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KpiFile {
    pub kpis: Vec<KpiDefinition>,
}

/// Every KPI of the tenant as YAML (`kpis:` then a list), for dashboards-as-code.
#[utoipa::path(get, path = "/v1/kpis.yaml", tag = "kpis", security(("bearer" = [])),
    responses((status = 200, description = "the definitions", content_type = "application/yaml", body = KpiFile),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn export(State(state): State<AppState>, auth: Authenticated) -> Result<Response, Problem> {
    readable(&auth.principal)?;
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let all = catalog::list(tx.conn()).await?;
    tx.commit().await?;
    let defs: Vec<KpiDefinition> = all.into_iter().map(|k| k.definition).collect();
    let text = kpi::to_yaml(&defs)?;
    Ok(([(header::CONTENT_TYPE, "application/yaml; charset=utf-8")], text).into_response())
}

/// What an import did, by key.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Import KPI definitions from YAML (the export's form): new keys are created, existing ones replaced
/// (each as `PUT` would: the caller's rights, drafts, the lake check). All or nothing: one bad
/// definition fails the import with every problem named (`kpis[2].measure`).
#[utoipa::path(post, path = "/v1/kpis.yaml", tag = "kpis", security(("bearer" = [])),
    request_body(content = String, content_type = "application/yaml", description = "`kpis:` then a list of definitions"),
    responses((status = 200, body = ImportReport), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn import(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportReport>, Problem> {
    let p = &auth.principal;
    readable(p)?;
    let media = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let media = media.split(';').next().unwrap_or_default().trim();
    if !matches!(media, YAML | "application/x-yaml" | "text/yaml") {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the definitions as application/yaml"));
    }
    if body.len() > MAX_YAML {
        return Err(Problem::new(StatusCode::PAYLOAD_TOO_LARGE, format!("at most {MAX_YAML} bytes of YAML")));
    }
    let text = std::str::from_utf8(&body).map_err(|_| {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the YAML is not UTF-8").with_field("yaml", "not UTF-8")
    })?;
    let defs = kpi::from_yaml(text)?;
    let mut checked_defs = Vec::with_capacity(defs.len());
    let mut problems = Vec::new();
    for (i, d) in defs.into_iter().enumerate() {
        if let Err(mut e) = check_status(p, &d) {
            problems.extend(e.errors.drain(..).map(|f| (format!("kpis[{i}].{}", f.field), f.message)));
            continue;
        }
        match checked(&state, p, d).await {
            Ok(d) => checked_defs.push(d),
            Err(e) => problems.extend(e.errors.into_iter().map(|f| (format!("kpis[{i}].{}", f.field), f.message))),
        }
    }
    if !problems.is_empty() {
        let mut pr = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "the YAML does not hold valid definitions");
        for (field, message) in problems {
            pr = pr.with_field(field, message);
        }
        return Err(pr);
    }
    let mut report = ImportReport::default();
    let mut tx = state.db.begin(p.tenant).await?;
    for d in &checked_defs {
        let key = d.key.clone();
        match kpis::by_key(tx.conn(), &key, true).await {
            Ok(row) => {
                let current = StoredKpi::from_row(row)?;
                if !p.may(RESOURCE, Action::Update, current.owner_id) {
                    return Err(forbidden(Action::Update).with_field(format!("kpis.{key}"), "not yours to change"));
                }
                let same = KpiDefinition { status: current.definition.status, ..d.clone() } == current.definition;
                if same && (d.status == Status::Draft || current.definition.status == Status::Approved) {
                    report.unchanged.push(key);
                    continue;
                }
                let updated = overwrite(tx.conn(), p, &key, d).await?;
                audit_write(
                    tx.conn(),
                    &auth,
                    &ctx,
                    ("update", RESOURCE),
                    updated.id.0,
                    &changes(Some(&current), Some(&updated)),
                )
                .await?;
                report.updated.push(key);
            }
            Err(e) if e.kind() == orbas_oltp::ErrorKind::NotFound => {
                if !p.may(RESOURCE, Action::Create, Some(p.user)) {
                    return Err(forbidden(Action::Create));
                }
                let stored = insert(tx.conn(), p, d).await?;
                audit_write(
                    tx.conn(),
                    &auth,
                    &ctx,
                    ("create", RESOURCE),
                    stored.id.0,
                    &changes(None::<&()>, Some(&stored)),
                )
                .await?;
                report.created.push(key);
            }
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(Json(report))
}

/// Which value to drill into.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    /// The range the value came from: first day (inclusive).
    pub from: Option<NaiveDate>,
    /// Day after the last (exclusive).
    pub until: Option<NaiveDate>,
    /// The grain the value came from (its bucket is `period`).
    pub grain: Option<Grain>,
    /// The filters the value came from.
    #[serde(default)]
    pub filters: BTreeMap<String, Vec<String>>,
    /// The value's `period` as the result showed it (absent for a total).
    pub period: Option<String>,
    /// The value's breakdown, by dimension (`null`: the rows without one).
    #[serde(default)]
    pub values: BTreeMap<String, Option<String>>,
    /// At most this many rows, newest first (1..=1000, default 200).
    pub limit: Option<usize>,
}

/// The records behind one value of a KPI (a chart's bar or point): the rows of its bucket and breakdown,
/// newest first. Columns named `<record>_id` (`opportunity_id`, `account_id`, `ticket_id`) identify CRM records.
#[utoipa::path(post, path = "/v1/kpis/{key}/drill", tag = "kpis", request_body = DrillRequest,
    params(("key" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = Table), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn drill(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(key): Id<String>,
    Body(req): Body<DrillRequest>,
) -> Result<Json<Table>, Problem> {
    let q = KpiQuery { from: req.from, until: req.until, grain: req.grain, group_by: Vec::new(), filters: req.filters };
    let limit = req.limit.unwrap_or(200);
    let table = drill_records(&state, &auth.principal, &key, &q, req.period.as_deref(), &req.values, limit).await?;
    Ok(Json(table))
}

/// The records behind one value of KPI `key` for `p` — its bucket `period` and breakdown `values` under
/// the query `q` — at most `limit` (1..=1000) rows, newest first (shared by the JSON route and the web UI).
pub(crate) async fn drill_records(
    state: &AppState,
    p: &Principal,
    key: &str,
    q: &KpiQuery,
    period: Option<&str>,
    values: &BTreeMap<String, Option<String>>,
    limit: usize,
) -> Result<Table, Problem> {
    readable(p)?;
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "limit is out of range")
            .with_field("limit", "must be between 1 and 1000"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let k = catalog::get(tx.conn(), key).await?;
    tx.commit().await?;
    let Some(engine) = &state.dashboards else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    let compiled = k.definition.drill_down(q, period, values, limit)?;
    let answer = engine.run_sql(&Viewer::new(p.clone()), &compiled.sql).await?;
    Ok((*answer.table).clone())
}
