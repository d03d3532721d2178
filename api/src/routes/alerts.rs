//! `/v1/alerts`: threshold alerts on approved KPIs — goals constant, from another KPI or from a query
//! over the lake (quotas), checked on a cron schedule for each recipient under their own permissions —
//! their recorded breaches, and "check now". Authorised as scheduled reports are (`kpi_alerts` in the
//! permission matrix: analytics roles write their own, admins every one).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use orbas_dashboards::FieldError;
use orbas_dashboards::alerts::{self, AlertPatch, AlertSpec, CheckReport, Goal, Period, StoredAlert};
use orbas_dashboards::catalog::StoredKpi;
use orbas_dashboards::report::Schedule;
use orbas_dashboards::viewer::Viewer;
use orbas_oltp::auth::Principal;
use orbas_oltp::model::{Action, AlertId, KpiId, Scope};
use orbas_oltp::repo::alerts::{self as repo, AlertRow, AlertWrite, EventRow};
use orbas_oltp::repo::{kpis, reports};
use sqlx::PgConnection;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Authenticated, Body, Id};
use crate::problem::Problem;
use crate::resource::{WriteContext, audit_write, changes, check_if_match, with_etag};
use crate::routes::dashboards::may_query_lake;
use crate::state::AppState;

const RESOURCE: &str = "kpi_alerts";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, patch, remove))
        .routes(routes!(events))
        .routes(routes!(check_now))
}

fn forbidden(what: &str) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, format!("your role may not {what}"))
}

fn invalid(problems: Vec<FieldError>) -> Problem {
    orbas_dashboards::Error::Invalid(problems).into()
}

fn field(problems: &mut Vec<FieldError>, field: &str, message: String) {
    problems.push(FieldError { field: field.into(), message });
}

/// The approved KPI `key` with the dimension `group` (problems recorded under `name`).
async fn kpi_of(
    c: &mut PgConnection,
    key: &str,
    group: Option<&str>,
    name: &str,
    problems: &mut Vec<FieldError>,
) -> Result<Option<StoredKpi>, Problem> {
    let row = match kpis::by_key(c, key, false).await {
        Ok(row) => row,
        Err(e) if e.kind() == orbas_oltp::ErrorKind::NotFound => {
            field(problems, name, format!("no KPI {key:?}"));
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    let k = StoredKpi::from_row(row)?;
    if k.definition.status != orbas_dashboards::Status::Approved {
        field(problems, name, format!("the KPI {key} awaits an admin's approval (only approved KPIs raise alerts)"));
    }
    if let Some(g) = group
        && !k.definition.dimensions.iter().any(|d| d.name == g)
    {
        let has: Vec<&str> = k.definition.dimensions.iter().map(|d| d.name.as_str()).collect();
        let at = if name == "kpi" { "group_by" } else { name };
        field(problems, at, format!("the KPI {key} has no dimension {g:?} (it has: {})", has.join(", ")));
    }
    Ok(Some(k))
}

/// Plans the goal query as the writer sees the lake: it must return `goal` and the group's column.
async fn check_goal_sql(state: &AppState, p: &Principal, spec: &AlertSpec, sql: &str) -> Option<FieldError> {
    let engine = state.dashboards.as_ref()?;
    let today = Utc::now().date_naive();
    let planned = engine.plan_columns(&Viewer::new(p.clone()), &alerts::bind_window(sql, today, today)).await;
    let message = match planned {
        Ok(Ok(columns)) => {
            let wanted: Vec<&str> = std::iter::once("goal").chain(spec.group_by.as_deref()).collect();
            let missing: Vec<&&str> = wanted.iter().filter(|w| !columns.iter().any(|c| c == **w)).collect();
            if missing.is_empty() {
                return None;
            }
            format!("the query must return the column(s) {missing:?} (it returns {columns:?})")
        }
        Ok(Err(why)) => why,
        Err(e) => e.to_string(),
    };
    Some(FieldError { field: "goal.sql".into(), message })
}

/// Checks `spec` and turns it into a row: the KPIs (approved, with the group's dimension), the goal,
/// the recipients (active users of the tenant) and the schedule.
async fn checked(
    state: &AppState,
    c: &mut PgConnection,
    p: &Principal,
    spec: &AlertSpec,
) -> Result<AlertWrite, Problem> {
    if matches!(spec.goal, Goal::Sql { .. }) && !may_query_lake(p) {
        return Err(forbidden("write goal queries (they query the lake)"));
    }
    let mut problems = spec.problems();
    let group = spec.group_by.as_deref();
    let kpi = if problems.iter().any(|f| f.field == "kpi") {
        None
    } else {
        kpi_of(c, &spec.kpi, group, "kpi", &mut problems).await?
    };
    let goal_kpi_id: Option<KpiId> = match &spec.goal {
        Goal::Kpi { kpi } if !problems.iter().any(|f| f.field == "goal.kpi") => {
            kpi_of(c, kpi, group, "goal.kpi", &mut problems).await?.map(|k| k.id)
        }
        Goal::Sql { sql } if problems.is_empty() => {
            problems.extend(check_goal_sql(state, p, spec, sql).await);
            None
        }
        _ => None,
    };
    let users = reports::recipients(c, &spec.recipients).await?;
    for (i, email) in spec.recipients.iter().enumerate() {
        let at = format!("recipients[{i}]");
        if !problems.iter().any(|f| f.field == at)
            && !users.iter().any(|u| u.active && u.email.eq_ignore_ascii_case(email))
        {
            let why = format!("{email} is not an active user of this tenant (each is alerted as they see the data)");
            field(&mut problems, &at, why);
        }
    }
    let (Some(kpi), true) = (kpi, problems.is_empty()) else {
        return Err(invalid(problems));
    };
    let schedule = Schedule::parse(&spec.cron, &spec.timezone).map_err(invalid)?;
    let mut recipients: Vec<String> = spec.recipients.iter().map(|e| e.trim().to_lowercase()).collect();
    recipients.sort();
    recipients.dedup();
    let (goal_value, goal_sql) = match &spec.goal {
        Goal::Constant { value } => (Some(*value), None),
        Goal::Kpi { .. } => (None, None),
        Goal::Sql { sql } => (None, Some(sql.trim().to_owned())),
    };
    Ok(AlertWrite {
        name: spec.name.trim().to_owned(),
        kpi_id: kpi.id,
        group_by: spec.group_by.clone(),
        period: spec.period.as_str().to_owned(),
        trailing_days: spec.trailing_days.filter(|_| spec.period == Period::TrailingDays).map(|d| d as i32),
        comparison: spec.comparison.as_str().to_owned(),
        goal_value,
        goal_kpi_id,
        goal_sql,
        goal_factor: spec.factor,
        missing_as_zero: spec.missing_as_zero,
        recipients,
        cron: spec.cron.trim().to_owned(),
        timezone: spec.timezone.trim().to_owned(),
        is_active: spec.is_active,
        next_check_at: if spec.is_active { schedule.next_after(Utc::now()) } else { None },
    })
}

fn stored(row: &AlertRow) -> Result<StoredAlert, Problem> {
    Ok(StoredAlert::from_row(row)?)
}

/// The tenant's alerts the caller may read.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts", security(("bearer" = [])),
    responses((status = 200, body = Vec<StoredAlert>), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Json<Vec<StoredAlert>>, Problem> {
    let p = &auth.principal;
    let Some(scope) = p.scope_for(RESOURCE, Action::Read) else {
        return Err(forbidden("read alerts"));
    };
    let mut tx = state.db.begin(p.tenant).await?;
    let all = repo::list(tx.conn()).await?;
    tx.commit().await?;
    let readable = |r: &&AlertRow| scope == Scope::All || p.may(RESOURCE, Action::Read, Some(r.owner_id));
    Ok(Json(all.iter().filter(readable).map(stored).collect::<Result<Vec<_>, _>>()?))
}

/// Create an alert (owned by the caller).
#[utoipa::path(post, path = "/v1/alerts", tag = "alerts", request_body = AlertSpec, security(("bearer" = [])),
    responses((status = 201, body = StoredAlert, headers(("ETag" = String), ("Location" = String))),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Body(spec): Body<AlertSpec>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    if !p.may(RESOURCE, Action::Create, Some(p.user)) {
        return Err(forbidden("create alerts"));
    }
    let mut tx = state.db.begin(p.tenant).await?;
    let w = checked(&state, tx.conn(), p, &spec).await?;
    let alert = stored(&repo::create(tx.conn(), p.tenant, p.user, &w).await?)?;
    audit_write(tx.conn(), &auth, &ctx, ("create", RESOURCE), alert.id.0, &changes(None::<&()>, Some(&alert))).await?;
    tx.commit().await?;
    let mut resp = with_etag(StatusCode::CREATED, &alert);
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/alerts/{}", alert.id)) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// The alert `id` if the caller may `action` it: outside their read scope 404, readable only 403.
async fn load(
    c: &mut PgConnection,
    p: &Principal,
    id: AlertId,
    action: Action,
    lock: bool,
) -> Result<AlertRow, Problem> {
    if p.scope_for(RESOURCE, Action::Read).is_none() {
        return Err(forbidden("read alerts"));
    }
    let row = repo::get(c, id, lock).await?;
    if !p.may(RESOURCE, Action::Read, Some(row.owner_id)) {
        return Err(orbas_oltp::Error::NotFound { entity: "alert" }.into());
    }
    if !p.may(RESOURCE, action, Some(row.owner_id)) {
        return Err(forbidden(&format!("{} this alert", action.as_str())));
    }
    Ok(row)
}

/// One alert, with its `ETag`.
#[utoipa::path(get, path = "/v1/alerts/{id}", tag = "alerts", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = StoredAlert, headers(("ETag" = String))), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn read(State(state): State<AppState>, auth: Authenticated, Id(id): Id<AlertId>) -> Result<Response, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    let row = load(tx.conn(), &auth.principal, id, Action::Read, false).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, stored(&row)?))
}

/// Change an alert (its owner, or an admin): the fields sent replace the alert's, the result is checked
/// as a whole and the next check computed anew. Send `If-Match` with the `ETag` you read.
#[utoipa::path(patch, path = "/v1/alerts/{id}", tag = "alerts", request_body = AlertPatch,
    params(("id" = uuid::Uuid, Path), ("If-Match" = Option<String>, Header)), security(("bearer" = [])),
    responses((status = 200, body = StoredAlert, headers(("ETag" = String))), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 412, body = Problem), (status = 413, body = Problem), (status = 415, body = Problem),
              (status = 422, body = Problem)))]
async fn patch(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<AlertId>,
    Body(change): Body<AlertPatch>,
) -> Result<Response, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = stored(&load(tx.conn(), p, id, Action::Update, true).await?)?;
    check_if_match(&ctx, &before, "alert")?;
    let spec = change.apply(before.spec.clone());
    let w = checked(&state, tx.conn(), p, &spec).await?;
    let after = stored(&repo::update(tx.conn(), id, &w).await?)?;
    audit_write(tx.conn(), &auth, &ctx, ("update", RESOURCE), id.0, &changes(Some(&before), Some(&after))).await?;
    tx.commit().await?;
    Ok(with_etag(StatusCode::OK, after))
}

/// Delete an alert and its recorded breaches.
#[utoipa::path(delete, path = "/v1/alerts/{id}", tag = "alerts", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<AlertId>,
) -> Result<StatusCode, Problem> {
    let p = &auth.principal;
    let mut tx = state.db.begin(p.tenant).await?;
    let before = stored(&load(tx.conn(), p, id, Action::Delete, true).await?)?;
    repo::delete(tx.conn(), id).await?;
    audit_write(tx.conn(), &auth, &ctx, ("delete", RESOURCE), id.0, &changes(Some(&before), None::<&()>)).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The breaches an alert recorded — one per recipient, group and period — newest first (the last 500),
/// with their mailing state.
#[utoipa::path(get, path = "/v1/alerts/{id}/events", tag = "alerts", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = Vec<EventRow>), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
async fn events(
    State(state): State<AppState>,
    auth: Authenticated,
    Id(id): Id<AlertId>,
) -> Result<Json<Vec<EventRow>>, Problem> {
    let mut tx = state.db.begin(auth.principal.tenant).await?;
    load(tx.conn(), &auth.principal, id, Action::Read, false).await?;
    let rows = repo::events(tx.conn(), id, 500).await?;
    tx.commit().await?;
    Ok(Json(rows))
}

/// Check an alert now (its schedule continues as before): what each recipient would be told, as they
/// may see the data. New breaches are recorded and mailed by the sender's next pass; known ones are
/// marked `new: false` and not mailed again.
#[utoipa::path(post, path = "/v1/alerts/{id}/check", tag = "alerts", params(("id" = uuid::Uuid, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = CheckReport), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
async fn check_now(
    State(state): State<AppState>,
    auth: Authenticated,
    ctx: WriteContext,
    Id(id): Id<AlertId>,
) -> Result<Json<CheckReport>, Problem> {
    let p = &auth.principal;
    let Some(engine) = &state.dashboards else {
        return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "this server has no lake configured (ORBAS_LAKE)"));
    };
    let mut tx = state.db.begin(p.tenant).await?;
    let row = load(tx.conn(), p, id, Action::Update, true).await?;
    let report = alerts::check(engine, tx.conn(), p.tenant, &row, Utc::now()).await?;
    audit_write(tx.conn(), &auth, &ctx, ("check", RESOURCE), id.0, &changes(None::<&()>, Some(&report))).await?;
    tx.commit().await?;
    Ok(Json(report))
}
