//! `/v1/reports`: scheduled reports — a dashboard mailed on a cron schedule to users of the tenant, each
//! copy computed under its recipient's permissions — their delivery history, and "send now".

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use orbas_dashboards::FieldError;
use orbas_dashboards::report::{ReportSpec, Schedule};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, RoleKey};
use orbas_oltp::repo::dashboards as dashboards_repo;
use orbas_oltp::repo::reports::{self, DeliveryRow, ReportRow, ReportWrite};
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes};
use crate::state::AppState;

const RESOURCE: &str = "scheduled_reports";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, remove))
        .routes(routes!(deliveries))
        .routes(routes!(run_now))
}

fn forbidden(what: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {what} reports"))
}

fn invalid(problems: Vec<FieldError>) -> Problem {
    orbas_dashboards::Error::Invalid(problems).into()
}

/// Checks `spec` and turns it into a row: the schedule, the dashboard (one the writer may open), the
/// recipients (active users of the tenant).
async fn checked(
    c: &mut PgConnection,
    p: &Principal,
    spec: &ReportSpec,
    can_print: bool,
) -> Result<ReportWrite, Problem> {
    let mut problems = spec.problems(can_print);
    match dashboards_repo::get(c, spec.dashboard_id, false).await {
        Ok(d) => {
            let visible = p.role == RoleKey::Admin
                || d.is_shared
                || d.owner_id == Some(p.user)
                || d.default_for_role.as_deref() == Some(p.role.as_str());
            if !visible {
                problems.push(FieldError { field: "dashboard_id".into(), message: "no such dashboard".into() });
            }
        }
        Err(e) if e.kind() == orbas_oltp::ErrorKind::NotFound => {
            problems.push(FieldError { field: "dashboard_id".into(), message: "no such dashboard".into() });
        }
        Err(e) => return Err(e.into()),
    }
    let users = reports::recipients(c, &spec.recipients).await?;
    for (i, email) in spec.recipients.iter().enumerate() {
        let field = format!("recipients[{i}]");
        if problems.iter().any(|p| p.field == field) {
            continue;
        }
        if !users.iter().any(|u| u.active && u.email.eq_ignore_ascii_case(email)) {
            problems.push(FieldError {
                field,
                message: format!("{email} is not an active user of this tenant (each copy is computed as its recipient sees the data)"),
            });
        }
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let schedule = Schedule::parse(&spec.cron, &spec.timezone).map_err(invalid)?;
    let mut recipients: Vec<String> = spec.recipients.iter().map(|e| e.trim().to_lowercase()).collect();
    recipients.sort();
    recipients.dedup();
    Ok(ReportWrite {
        dashboard_id: spec.dashboard_id,
        name: spec.name.trim().to_owned(),
        cron: spec.cron.trim().to_owned(),
        timezone: spec.timezone.trim().to_owned(),
        recipients,
        format: spec.format.as_str().to_owned(),
        filters: spec
            .filters
            .as_ref()
            .map_or_else(|| serde_json::json!({}), |f| serde_json::to_value(f).unwrap_or_default()),
        is_active: spec.is_active,
        next_run_at: if spec.is_active { schedule.next_after(Utc::now()) } else { None },
    })
}

/// The tenant's reports.
#[utoipa::path(get, path = "/v1/reports", tag = "reports", security(("bearer" = [])),
    responses((status = 200, body = Vec<ReportRow>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Vec<ReportRow>>, Problem> {
    let p = &auth.principal;
    let Some(scope) = p.scope_for(RESOURCE, Action::Read) else {
        return Err(forbidden("read"));
    };
    let mut tx = state.db.begin(p.tenant).await?;
    let all = reports::list(tx.conn()).await?;
    tx.commit().await?;
    let mine = |r: &ReportRow| scope == orbas_oltp::model::Scope::All || r.owner_id == p.user;
    Ok(Json(all.into_iter().filter(mine).collect()))
}

/// Schedule a report (owned by the caller).
#[utoipa::path(post, path = "/v1/reports", tag = "reports", request_body = ReportSpec, security(("bearer" = [])),
    responses((status = 201, body = ReportRow, headers(("Location" = String))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(spec): Body<ReportSpec>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Create, Some(p.user)) {
        return Err(forbidden("schedule"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let w = checked(tx.conn(), p, &spec, state.renderer.is_some()).await?;
    let row = reports::create(tx.conn(), p.tenant, p.user, &w).await?;
    audit_write(tx.conn(), &auth, &ctx, ("create", RESOURCE), row.id, &changes(None::<&()>, Some(&row))).await?;
    tx.commit().await?;
    let mut resp = (StatusCode::CREATED, Json(&row)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/reports/{}", row.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn load(c: &mut PgConnection, p: &Principal, id: Uuid, action: Action, lock: bool) -> Result<ReportRow, Problem> {
    if p.scope_for(RESOURCE, Action::Read).is_none() {
        return Err(forbidden("read"));
    }
    let row = reports::get(c, id, lock).await?;
    if !p.may(RESOURCE, Action::Read, Some(row.owner_id)) {
        return Err(orbas_oltp::Error::NotFound { entity: "report" }.into());
    }
    if !p.may(RESOURCE, action, Some(row.owner_id)) {
        return Err(forbidden(action.as_str()));
    }
    Ok(row)
}

/// One report.
#[utoipa::path(get, path = "/v1/reports/{id}", tag = "reports", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ReportRow), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn read(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<Uuid>,
) -> Result<Json<ReportRow>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let row = load(tx.conn(), &auth.principal, id, Action::Read, false).await?;
    tx.commit().await?;
    Ok(Json(row))
}

/// Replace a report (its owner, or an admin); the next run is computed anew.
#[utoipa::path(put, path = "/v1/reports/{id}", tag = "reports", request_body = ReportSpec,
    params(("id" = uuid::Uuid, Path)), security(("bearer" = [])),
    responses((status = 200, body = ReportRow), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 413, body = Problem),
              (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn replace(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<Uuid>,
    Body(spec): Body<ReportSpec>,
) -> Result<Json<ReportRow>, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = load(tx.conn(), p, id, Action::Update, true).await?;
    let w = checked(tx.conn(), p, &spec, state.renderer.is_some()).await?;
    let after = reports::update(tx.conn(), id, &w).await?;
    audit_write(tx.conn(), &auth, &ctx, ("update", RESOURCE), id, &changes(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(Json(after))
}

/// Delete a report and its delivery history.
#[utoipa::path(delete, path = "/v1/reports/{id}", tag = "reports", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<Uuid>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = load(tx.conn(), p, id, Action::Delete, true).await?;
    reports::delete(tx.conn(), id).await?;
    audit_write(tx.conn(), &auth, &ctx, ("delete", RESOURCE), id, &changes(Some(&before), None::<&()>)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who got which run of a report, newest first (the last 200 copies).
#[utoipa::path(get, path = "/v1/reports/{id}/deliveries", tag = "reports", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<DeliveryRow>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn deliveries(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<Uuid>,
) -> Result<Json<Vec<DeliveryRow>>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    load(tx.conn(), &auth.principal, id, Action::Read, false).await?;
    let rows = reports::deliveries(tx.conn(), id, 200).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Run a report now (its schedule continues as before): the sender mails it on its next pass.
#[utoipa::path(post, path = "/v1/reports/{id}/run", tag = "reports", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 202, body = ReportRow), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn run_now(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<Uuid>,
) -> Result<(StatusCode, Json<ReportRow>), Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = load(tx.conn(), p, id, Action::Update, true).await?;
    if !before.is_active {
        return Err(Problem::new(StatusCode::CONFLICT, "the report is paused; activate it first"));
    }
    reports::set_schedule(tx.conn(), id, None, Some(Utc::now())).await?;
    let after = reports::get(tx.conn(), id, false).await?;
    audit_write(tx.conn(), &auth, &ctx, ("run", RESOURCE), id, &changes(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(after)))
}
