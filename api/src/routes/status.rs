//! `GET /v1/status`: how the whole loop is doing, as an operator or a data team needs to know it —
//! the database, the change stream's replication slots, the lake, the search index, the tenant's
//! models and its report and alert deliveries — each part with a health and, when it is not fine,
//! what to look at. The status page (`/ui/status`) shows the same [`SystemStatus`].
//!
//! The answer is always 200 when the caller may see it: the health is in the body (readiness for a
//! load balancer is `/readyz`). Readable by the roles that may query the lake (the data teams and
//! managers; admins), never by reps.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use orbas_oltp::auth::Principal;
use orbas_oltp::model::Action;
use orbas_oltp::repo::status::{self, ActiveModel, DatabaseStatus, DeliveryBacklog, SlotStatus};
use orbas_warehouse::sql::TableCommit;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::Authenticated;
use crate::problem::Problem;
use crate::state::AppState;

/// A slot holding back more WAL than this is reported as degraded.
const SLOT_LAG_WARN_BYTES: i64 = 1 << 30;
/// Models trained longer ago than this are reported as stale (retraining runs every 6 hours by default).
const MODEL_STALE: chrono::TimeDelta = chrono::TimeDelta::days(2);
/// Deliveries due longer ago than this are reported as overdue (the sender retries within minutes).
const DELIVERY_OVERDUE: chrono::TimeDelta = chrono::TimeDelta::minutes(30);
/// Each part's figures are read with this budget, so one slow part cannot hold up the page.
const PART_BUDGET: Duration = Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_status))
}

/// A part's health; the whole system's is its worst part's (parts that are not configured aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Ok,
    /// Not configured on this server (e.g. no lake, no search index).
    Off,
    /// Working, but something needs attention (the notes say what).
    Degraded,
    /// Not working.
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Off => "off",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// The system's state as the caller's tenant sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SystemStatus {
    pub checked_at: DateTime<Utc>,
    pub health: Health,
    pub database: DatabasePart,
    pub change_capture: ChangeCapturePart,
    pub lake: LakePart,
    pub search: SearchPart,
    pub models: ModelsPart,
    pub deliveries: DeliveriesPart,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DatabasePart {
    pub health: Health,
    /// What needs attention, and what to do about it.
    pub notes: Vec<String>,
    pub server: Option<DatabaseStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChangeCapturePart {
    pub health: Health,
    pub notes: Vec<String>,
    /// The logical replication slots of the CRM's database.
    pub slots: Vec<SlotStatus>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LakePart {
    pub health: Health,
    pub notes: Vec<String>,
    /// Silver (CRM) tables.
    pub silver_tables: usize,
    /// Gold (KPI) tables.
    pub gold_tables: usize,
    /// When the sink last committed to a silver table.
    pub silver_newest_commit: Option<DateTime<Utc>>,
    /// When the gold refresh last committed.
    pub gold_newest_commit: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchPart {
    pub health: Health,
    pub notes: Vec<String>,
    /// Documents in the index (every tenant's).
    pub documents: Option<u64>,
    /// Semantic (embedding) search is available.
    pub semantic: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelsPart {
    pub health: Health,
    pub notes: Vec<String>,
    /// The tenant's model versions in service.
    pub active: Vec<ActiveModel>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeliveriesPart {
    pub health: Health,
    pub notes: Vec<String>,
    pub backlog: Option<DeliveryBacklog>,
}

/// The system's health: database, change stream, lake, search, models, deliveries.
#[utoipa::path(get, path = "/v1/status", tag = "operations", security(("bearer" = [])),
    responses((status = 200, body = SystemStatus), (status = 401, body = Problem), (status = 403, body = Problem)))]
async fn get_status(State(state): State<AppState>, auth: Authenticated) -> Result<Json<SystemStatus>, Problem> {
    may_see(&auth.principal)?;
    Ok(Json(gather(&state, &auth.principal).await))
}

/// Whether `p` may see the status (403 when not): the roles that may query the lake.
pub(crate) fn may_see(p: &Principal) -> Result<(), Problem> {
    match p.scope_for("lake_sql", Action::Read) {
        Some(_) => Ok(()),
        None => Err(Problem::new(StatusCode::FORBIDDEN, "your role may not see the system status")),
    }
}

/// Reads every part (concurrently, each within [`PART_BUDGET`]).
pub(crate) async fn gather(state: &AppState, p: &Principal) -> SystemStatus {
    let now = Utc::now();
    let ((database, change_capture), lake, (models, deliveries)) =
        tokio::join!(postgres(state), lake(state), tenant_parts(state, p, now));
    let search = search(state);
    let health = [database.health, change_capture.health, lake.health, search.health, models.health, deliveries.health]
        .into_iter()
        .filter(|h| *h != Health::Off)
        .max()
        .unwrap_or(Health::Ok);
    SystemStatus { checked_at: now, health, database, change_capture, lake, search, models, deliveries }
}

async fn within<T, E: std::fmt::Display>(fut: impl Future<Output = Result<T, E>>) -> Result<T, String> {
    match tokio::time::timeout(PART_BUDGET, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PART_BUDGET.as_secs())),
    }
}

async fn postgres(state: &AppState) -> (DatabasePart, ChangeCapturePart) {
    let pool = state.db.pool();
    let server = match within(status::database(pool)).await {
        Ok(s) => s,
        Err(e) => {
            let note = format!("Postgres does not answer: {e}. Check that the server is up and DATABASE_URL is right.");
            let database = DatabasePart { health: Health::Down, notes: vec![note], server: None };
            let cdc = ChangeCapturePart {
                health: Health::Down,
                notes: vec!["The replication slots cannot be read while Postgres does not answer.".into()],
                slots: Vec::new(),
            };
            return (database, cdc);
        }
    };
    let database = DatabasePart { health: Health::Ok, notes: Vec::new(), server: Some(server) };
    let cdc = match within(status::replication_slots(pool)).await {
        Ok(slots) => slot_health(slots),
        Err(e) => ChangeCapturePart {
            health: Health::Down,
            notes: vec![format!("The replication slots cannot be read: {e}")],
            slots: Vec::new(),
        },
    };
    (database, cdc)
}

/// One logical slot's health, with what to do about it: lost WAL is down; WAL about to be lost, no
/// consumer, or a consumer more than 1 GiB behind is degraded. `orbas doctor` judges slots by the same
/// rules.
pub(crate) fn judge_slot(s: &SlotStatus) -> (Health, Vec<String>) {
    let mut health = Health::Ok;
    let mut notes = Vec::new();
    match s.wal_status.as_deref() {
        Some("lost") => {
            health = Health::Down;
            notes.push(format!(
                "Slot {} lost WAL it still needed: the change stream has a gap. Re-snapshot the tables \
                 (`orbas pipeline resnapshot`) after restarting CDC.",
                s.name
            ));
        }
        Some("unreserved") => {
            health = Health::Degraded;
            notes.push(format!(
                "Slot {} is past max_wal_size and about to lose WAL: the CDC service must catch up now.",
                s.name
            ));
        }
        _ => {}
    }
    if !s.active {
        health = health.max(Health::Degraded);
        notes.push(format!(
            "Slot {} has no consumer: is `orbas pipeline cdc` running? The slot keeps WAL until it returns.",
            s.name
        ));
    }
    if let Some(lag) = s.lag_bytes.filter(|l| *l > SLOT_LAG_WARN_BYTES) {
        health = health.max(Health::Degraded);
        notes.push(format!("Slot {} trails the database by {}.", s.name, bytes(lag)));
    }
    (health, notes)
}

/// The change stream's health from its slots.
fn slot_health(slots: Vec<SlotStatus>) -> ChangeCapturePart {
    let mut notes = Vec::new();
    let mut health = Health::Ok;
    if slots.is_empty() {
        health = Health::Degraded;
        notes.push(
            "There is no logical replication slot: change data capture has never run against this database \
             (start `orbas pipeline cdc`)."
                .into(),
        );
    }
    for s in &slots {
        let (h, mut why) = judge_slot(s);
        health = health.max(h);
        notes.append(&mut why);
    }
    ChangeCapturePart { health, notes, slots }
}

async fn lake(state: &AppState) -> LakePart {
    let part = |health, notes| LakePart {
        health,
        notes,
        silver_tables: 0,
        gold_tables: 0,
        silver_newest_commit: None,
        gold_newest_commit: None,
    };
    let Some(lake) = &state.lake else {
        return part(Health::Off, vec!["This server has no lake configured (ORBAS_LAKE).".into()]);
    };
    let commits = match within(crate::observe::lake_commits(lake)).await {
        Ok(c) => c,
        Err(e) => return part(Health::Down, vec![format!("The lake cannot be read: {e}")]),
    };
    let newest = |gold: bool| TableCommit::newest(&commits, gold);
    let silver_tables = commits.iter().filter(|c| !c.is_gold()).count();
    let mut out = part(Health::Ok, Vec::new());
    out.silver_tables = silver_tables;
    out.gold_tables = commits.len() - silver_tables;
    out.silver_newest_commit = newest(false);
    out.gold_newest_commit = newest(true);
    if silver_tables == 0 {
        out.health = Health::Degraded;
        out.notes.push("The lake has no tables yet: is `orbas pipeline sink` running?".into());
    }
    out
}

fn search(state: &AppState) -> SearchPart {
    match state.search.get() {
        Ok(ix) => SearchPart {
            health: Health::Ok,
            notes: Vec::new(),
            documents: Some(ix.num_docs()),
            semantic: ix.semantic_available(),
        },
        Err(why) if state.search.is_configured() => SearchPart {
            health: Health::Degraded,
            notes: vec![format!("Search answers 503: {why}. Is `orbas search index` running?")],
            documents: None,
            semantic: false,
        },
        Err(_) => SearchPart {
            health: Health::Off,
            notes: vec!["This server has no search index configured.".into()],
            documents: None,
            semantic: false,
        },
    }
}

async fn tenant_parts(state: &AppState, p: &Principal, now: DateTime<Utc>) -> (ModelsPart, DeliveriesPart) {
    let read = async {
        let mut tx = state.db.begin(p.tenant).await?;
        let models = status::active_models(tx.conn()).await?;
        let backlog = status::deliveries(tx.conn()).await?;
        tx.commit().await?;
        Ok::<_, orbas_oltp::Error>((models, backlog))
    };
    match within(read).await {
        Ok((models, backlog)) => (model_health(models, now), delivery_health(backlog, now)),
        Err(e) => {
            let note = format!("The tenant's figures cannot be read: {e}");
            (
                ModelsPart { health: Health::Down, notes: vec![note.clone()], active: Vec::new() },
                DeliveriesPart { health: Health::Down, notes: vec![note], backlog: None },
            )
        }
    }
}

fn model_health(active: Vec<ActiveModel>, now: DateTime<Utc>) -> ModelsPart {
    let mut notes = Vec::new();
    let mut health = Health::Ok;
    if active.is_empty() {
        health = Health::Degraded;
        notes.push(
            "No model is in service yet: scoring models train when the lake has data (at start, then every \
             6 hours). Is `orbas models run` (or `orbas serve` with a lake) running?"
                .into(),
        );
    }
    for m in &active {
        if let Some(at) = m.trained_at.filter(|t| now - *t > MODEL_STALE) {
            health = Health::Degraded;
            notes.push(format!(
                "{} (version {}) was trained {} days ago: retraining has not succeeded since. Check the models \
                 service's log.",
                m.key,
                m.version,
                (now - at).num_days()
            ));
        }
    }
    ModelsPart { health, notes, active }
}

fn delivery_health(backlog: DeliveryBacklog, now: DateTime<Utc>) -> DeliveriesPart {
    let mut notes = Vec::new();
    let mut health = Health::Ok;
    let failed = backlog.reports_failed_24h + backlog.alerts_failed_24h;
    if failed > 0 {
        health = Health::Degraded;
        notes.push(format!(
            "{failed} deliveries were given up in the last 24 hours ({} report copies, {} alert digests): \
             their last error is on each report's and alert's deliveries.",
            backlog.reports_failed_24h, backlog.alerts_failed_24h
        ));
    }
    if let Some(due) = backlog.oldest_pending_due.filter(|d| now - *d > DELIVERY_OVERDUE) {
        health = Health::Degraded;
        notes.push(format!(
            "A delivery has been due since {} (UTC): is the SMTP server (ORBAS_SMTP_URL) reachable, and a \
             server running the scheduler?",
            due.format("%Y-%m-%d %H:%M")
        ));
    }
    DeliveriesPart { health, notes, backlog: Some(backlog) }
}

/// `1.5 GiB`, `320 MiB`, `12 KiB`, `512 B`.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(name: &str, active: bool, lag: i64, wal: &str) -> SlotStatus {
        SlotStatus { name: name.into(), active, lag_bytes: Some(lag), wal_status: Some(wal.into()) }
    }

    #[test]
    fn slots_are_judged_by_consumer_lag_and_wal() {
        assert_eq!(slot_health(vec![slot("a", true, 10, "reserved")]).health, Health::Ok);
        let idle = slot_health(vec![slot("a", false, 10, "reserved")]);
        assert_eq!(idle.health, Health::Degraded);
        assert!(idle.notes[0].contains("orbas pipeline cdc"), "{:?}", idle.notes);
        assert_eq!(slot_health(vec![slot("a", true, 2 << 30, "extended")]).health, Health::Degraded);
        assert_eq!(slot_health(vec![slot("a", true, 10, "lost")]).health, Health::Down);
        assert_eq!(slot_health(Vec::new()).health, Health::Degraded);
    }

    #[test]
    fn stale_models_and_overdue_deliveries_degrade() {
        let now = Utc::now();
        let model = |days| ActiveModel {
            task: "deal_score".into(),
            key: "deal_win".into(),
            version: 3,
            trained_at: Some(now - chrono::TimeDelta::days(days)),
            training_rows: Some(10),
        };
        assert_eq!(model_health(vec![model(1)], now).health, Health::Ok);
        let stale = model_health(vec![model(5)], now);
        assert_eq!(stale.health, Health::Degraded);
        assert!(stale.notes[0].contains("5 days ago"), "{:?}", stale.notes);
        assert_eq!(model_health(Vec::new(), now).health, Health::Degraded);

        assert_eq!(delivery_health(DeliveryBacklog::default(), now).health, Health::Ok);
        let failed = DeliveryBacklog { reports_failed_24h: 2, ..DeliveryBacklog::default() };
        assert!(delivery_health(failed, now).notes[0].starts_with("2 deliveries"));
        let late = DeliveryBacklog {
            alerts_pending: 1,
            oldest_pending_due: Some(now - chrono::TimeDelta::hours(2)),
            ..DeliveryBacklog::default()
        };
        assert_eq!(delivery_health(late, now).health, Health::Degraded);
        let fresh = DeliveryBacklog {
            alerts_pending: 1,
            oldest_pending_due: Some(now - chrono::TimeDelta::minutes(1)),
            ..DeliveryBacklog::default()
        };
        assert_eq!(delivery_health(fresh, now).health, Health::Ok);
    }

    #[test]
    fn byte_counts_read_as_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(bytes(1536 << 20), "1.5 GiB");
    }
}
