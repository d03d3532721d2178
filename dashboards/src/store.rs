//! Dashboards as stored (through `orbas_oltp::repo::dashboards`): a [`DashboardSpec`] with KPI keys
//! becomes rows with KPI ids and back, checked against the tenant's KPI catalogue on the way in; and
//! the default dashboard of each role, installed for every tenant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use orbas_oltp::model::{DashboardId, KpiId, TenantId, UserId, WidgetId};
use orbas_oltp::repo::dashboards::{self as repo, DashboardRow, DashboardWrite, WidgetRow, WidgetWrite};
use orbas_oltp::repo::kpis;
use serde::Serialize;
use sqlx::PgConnection;

use crate::board::{DashboardFilters, DashboardSpec, WidgetConfig, WidgetKind, WidgetSpec};
use crate::catalog::{self, StoredKpi};
use crate::error::{Error, FieldError, Result};
use crate::kpi::Status;

/// A widget with its id.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredWidget {
    pub id: WidgetId,
    #[serde(flatten)]
    pub spec: WidgetSpec,
}

/// A dashboard with its widgets (KPIs by key).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredDashboard {
    pub id: DashboardId,
    pub key: Option<String>,
    pub name: String,
    pub description: String,
    pub is_shared: bool,
    pub default_for_role: Option<String>,
    pub filters: DashboardFilters,
    pub widgets: Vec<StoredWidget>,
    pub owner_id: Option<UserId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl StoredDashboard {
    /// The dashboard as a spec (its YAML / PUT form).
    pub fn spec(&self) -> DashboardSpec {
        DashboardSpec {
            key: self.key.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            is_shared: self.is_shared,
            default_for_role: self.default_for_role.clone(),
            filters: self.filters.clone(),
            widgets: self.widgets.iter().map(|w| w.spec.clone()).collect(),
        }
    }
}

fn widget_spec(w: &WidgetRow, keys: &BTreeMap<KpiId, String>) -> Result<WidgetSpec> {
    let corrupt = |what: &str| Error::Corrupt(format!("widget {}: {what}", w.id));
    Ok(WidgetSpec {
        kpi: w.kpi_id.map(|id| keys.get(&id).cloned().ok_or_else(|| corrupt("its KPI is gone"))).transpose()?,
        sql: w.sql.clone(),
        kind: WidgetKind::parse(&w.kind).ok_or_else(|| corrupt("unknown kind"))?,
        title: w.title.clone(),
        config: serde_json::from_value::<WidgetConfig>(w.config.clone()).map_err(|e| corrupt(&e.to_string()))?,
        x: w.x,
        y: w.y,
        w: w.w,
        h: w.h,
    })
}

fn assemble(row: DashboardRow, widgets: &[WidgetRow], keys: &BTreeMap<KpiId, String>) -> Result<StoredDashboard> {
    let filters = serde_json::from_value(row.filters)
        .map_err(|e| Error::Corrupt(format!("dashboard {}: filters: {e}", row.id)))?;
    let widgets = widgets
        .iter()
        .map(|w| Ok(StoredWidget { id: w.id, spec: widget_spec(w, keys)? }))
        .collect::<Result<Vec<_>>>()?;
    Ok(StoredDashboard {
        id: row.id,
        key: row.key,
        name: row.name,
        description: row.description.unwrap_or_default(),
        is_shared: row.is_shared,
        default_for_role: row.default_for_role,
        filters,
        widgets,
        owner_id: row.owner_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn kpi_keys(conn: &mut PgConnection, widgets: &[WidgetRow]) -> Result<BTreeMap<KpiId, String>> {
    let ids: Vec<KpiId> = widgets.iter().filter_map(|w| w.kpi_id).collect();
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    Ok(kpis::by_ids(conn, &ids).await?.into_iter().map(|k| (k.id, k.key)).collect())
}

/// One dashboard with its widgets.
pub async fn load(conn: &mut PgConnection, id: DashboardId) -> Result<StoredDashboard> {
    let row = repo::get(conn, id, false).await?;
    let widgets = repo::widgets(conn, id).await?;
    let keys = kpi_keys(conn, &widgets).await?;
    assemble(row, &widgets, &keys)
}

/// The KPIs a dashboard's widgets use, by key.
pub async fn kpis_of(conn: &mut PgConnection, d: &StoredDashboard) -> Result<BTreeMap<String, StoredKpi>> {
    let mut out = BTreeMap::new();
    for key in d.widgets.iter().filter_map(|w| w.spec.kpi.as_deref()) {
        if !out.contains_key(key) {
            out.insert(key.to_owned(), catalog::get(conn, key).await?);
        }
    }
    Ok(out)
}

/// Checks `spec` against the tenant's KPIs and turns it into rows.
async fn writes(conn: &mut PgConnection, spec: &DashboardSpec) -> Result<(DashboardWrite, Vec<WidgetWrite>)> {
    let all: BTreeMap<String, StoredKpi> =
        catalog::list(conn).await?.into_iter().map(|k| (k.definition.key.clone(), k)).collect();
    let mut problems = spec.problems(|key| all.get(key).map(|k| &k.definition));
    if spec.is_shared || spec.default_for_role.is_some() {
        for (i, w) in spec.widgets.iter().enumerate() {
            if let Some(k) = w.kpi.as_ref().and_then(|k| all.get(k))
                && k.definition.status != Status::Approved
            {
                problems.push(FieldError {
                    field: format!("widgets[{i}].kpi"),
                    message: format!("{} is a draft: a shared dashboard shows approved KPIs only", k.definition.key),
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    let dashboard = DashboardWrite {
        key: spec.key.clone(),
        name: spec.name.trim().to_owned(),
        description: Some(spec.description.trim().to_owned()).filter(|s| !s.is_empty()),
        is_shared: spec.is_shared,
        default_for_role: spec.default_for_role.clone(),
        filters: serde_json::to_value(&spec.filters).unwrap_or_default(),
    };
    let widgets = spec.widgets.iter().map(|w| widget_write(w, w.kpi.as_ref().and_then(|k| all.get(k)))).collect();
    Ok((dashboard, widgets))
}

/// The row of a checked widget.
pub fn widget_write(w: &WidgetSpec, kpi: Option<&StoredKpi>) -> WidgetWrite {
    WidgetWrite {
        kpi_id: kpi.map(|k| k.id),
        sql: w.sql.as_ref().map(|s| s.trim().to_owned()),
        kind: w.kind.as_str().to_owned(),
        title: w.title.trim().to_owned(),
        config: serde_json::to_value(&w.config).unwrap_or_default(),
        x: w.x,
        y: w.y,
        w: w.w,
        h: w.h,
    }
}

/// Checks one widget against the tenant's KPIs (fields as given, e.g. `kpi`).
pub async fn checked_widget(conn: &mut PgConnection, w: &WidgetSpec) -> Result<WidgetWrite> {
    let kpi = match &w.kpi {
        Some(key) => match catalog::get(conn, key).await {
            Ok(k) => Some(k),
            Err(Error::Db(e)) if e.kind() == orbas_oltp::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        },
        None => None,
    };
    let problems = w.problems("", kpi.as_ref().map(|k| &k.definition));
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    Ok(widget_write(w, kpi.as_ref()))
}

/// Creates a dashboard owned by `owner`.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    owner: Option<UserId>,
    spec: &DashboardSpec,
) -> Result<StoredDashboard> {
    let (d, w) = writes(conn, spec).await?;
    let (row, _) = repo::create(conn, tenant, owner, &d, &w).await?;
    load(conn, row.id).await
}

/// Replaces a dashboard and its widgets with `spec`.
pub async fn replace(conn: &mut PgConnection, id: DashboardId, spec: &DashboardSpec) -> Result<StoredDashboard> {
    let (d, w) = writes(conn, spec).await?;
    repo::replace(conn, id, &d, &w).await?;
    load(conn, id).await
}

/// The default dashboards: one per role, from the standard KPIs.
pub fn defaults() -> Vec<DashboardSpec> {
    let kpi =
        |key: &str, kind: WidgetKind, title: &str, (x, y, w, h): (i16, i16, i16, i16), group_by: &[&str]| WidgetSpec {
            kpi: Some(key.into()),
            sql: None,
            kind,
            title: title.into(),
            config: WidgetConfig {
                group_by: group_by.iter().map(|s| (*s).to_owned()).collect(),
                ..WidgetConfig::default()
            },
            x,
            y,
            w,
            h,
        };
    let board = |key: &str, name: &str, description: &str, role: &str, range, widgets| DashboardSpec {
        key: Some(key.into()),
        name: name.into(),
        description: description.into(),
        is_shared: true,
        default_for_role: Some(role.into()),
        filters: DashboardFilters { range: Some(range), ..DashboardFilters::default() },
        widgets,
    };
    use crate::board::RangePreset::*;
    use WidgetKind::*;
    vec![
        board(
            "sales_overview",
            "Sales overview",
            "Bookings, win rate, pipeline and quota for the sales team, and how reps take up next-best actions.",
            "manager",
            Last12Months,
            vec![
                kpi("bookings", Tile, "Bookings", (0, 0, 3, 2), &[]),
                kpi("win_rate", Tile, "Win rate", (3, 0, 3, 2), &[]),
                kpi("average_deal_size", Tile, "Average deal size", (6, 0, 3, 2), &[]),
                kpi("average_sales_cycle", Tile, "Sales cycle (days)", (9, 0, 3, 2), &[]),
                kpi("bookings", Line, "Bookings by month", (0, 2, 8, 4), &[]),
                kpi("open_pipeline", Funnel, "Open pipeline by stage", (8, 2, 4, 4), &["stage"]),
                kpi("win_rate", Heatmap, "Win rate by rep and month", (0, 6, 8, 4), &["owner"]),
                kpi("quota_attainment", Bar, "Quota attainment this quarter", (8, 6, 4, 4), &["owner"]),
                kpi("pipeline_coverage", Table, "Pipeline coverage by rep", (0, 10, 6, 4), &["owner"]),
                kpi("forecast_vs_quota", Bar, "Forecast vs quota", (6, 10, 6, 4), &["owner"]),
                kpi("nba_acceptance", Bar, "Next-best actions accepted, by action", (0, 14, 12, 4), &["action"]),
            ],
        ),
        board(
            "rep_overview",
            "My numbers",
            "A rep's bookings, pipeline and quota.",
            "sales_rep",
            ThisQuarter,
            vec![
                kpi("bookings", Tile, "Bookings", (0, 0, 4, 2), &[]),
                kpi("deals_won", Tile, "Deals won", (4, 0, 4, 2), &[]),
                kpi("win_rate", Tile, "Win rate", (8, 0, 4, 2), &[]),
                kpi("open_pipeline", Bar, "Open pipeline by stage", (0, 2, 6, 4), &["stage"]),
                kpi("quota_attainment", Bar, "Quota attainment", (6, 2, 6, 4), &["owner"]),
            ],
        ),
        board(
            "revenue_overview",
            "Revenue",
            "MRR, churn and retention.",
            "analyst",
            Last12Months,
            vec![
                kpi("mrr", Tile, "MRR", (0, 0, 4, 2), &[]),
                kpi("revenue_churn", Tile, "Revenue churn", (4, 0, 4, 2), &[]),
                kpi("net_revenue_retention", Tile, "Net revenue retention", (8, 0, 4, 2), &[]),
                kpi("mrr", Line, "MRR by month", (0, 2, 12, 4), &[]),
                kpi("bookings", StackedBar, "Bookings by kind", (0, 6, 12, 4), &["kind"]),
            ],
        ),
        board(
            "service_overview",
            "Service",
            "SLA attainment and satisfaction.",
            "support_agent",
            Last90Days,
            vec![
                kpi("first_response_sla", Tile, "First-response SLA", (0, 0, 4, 2), &[]),
                kpi("resolution_sla", Tile, "Resolution SLA", (4, 0, 4, 2), &[]),
                kpi("csat", Tile, "CSAT", (8, 0, 4, 2), &[]),
                kpi("first_response_sla", Line, "First-response SLA by month", (0, 2, 6, 4), &[]),
                kpi("csat", Bar, "CSAT by priority", (6, 2, 6, 4), &["priority"]),
            ],
        ),
    ]
}

/// What [`install_defaults`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Installed {
    pub kpis_added: u64,
    /// Standard KPIs nobody had changed, moved to this release's content.
    pub kpis_upgraded: u64,
    pub dashboards_added: u64,
    /// Default dashboards nobody had changed, moved to this release's layout.
    pub dashboards_upgraded: u64,
}

/// What migration 25 wrote to the default dashboards installed before digests were kept and never
/// changed since (their `updated_at` still equal to their `created_at`).
const UNCHANGED_SINCE_INSTALLED: &str = "unchanged since installed";

/// The digest of a dashboard's content as stored (its spec, KPIs by key).
fn digest(spec: &DashboardSpec) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(spec).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// Installs the standard KPIs and the default dashboards the tenant lacks (by key), and moves the
/// standard KPIs and default dashboards nobody changed to this release's content (each keeps the
/// digest of what the system last wrote to it; one changed since keeps its content). Dashboards are
/// owned by nobody (admins edit them).
pub async fn install_defaults(conn: &mut PgConnection, tenant: TenantId, at: DateTime<Utc>) -> Result<Installed> {
    let kpis = catalog::install_standard(conn, tenant, at).await?;
    let mut done = Installed { kpis_added: kpis.added, kpis_upgraded: kpis.upgraded, ..Installed::default() };
    for spec in defaults() {
        let key = spec.key.clone().unwrap_or_default();
        if let Some((id, stored_digest)) = repo::standard_digest(conn, &key).await? {
            done.dashboards_upgraded += u64::from(upgrade(conn, id, stored_digest, spec).await?);
            continue;
        }
        let role_taken = match &spec.default_for_role {
            Some(role) => repo::default_for_role(conn, role).await?.is_some(),
            None => false,
        };
        let spec = if role_taken { DashboardSpec { default_for_role: None, ..spec } } else { spec };
        match create(conn, tenant, None, &spec).await {
            Ok(board) => {
                repo::set_standard_digest(conn, board.id, &digest(&board.spec())).await?;
                done.dashboards_added += 1;
            }
            // A tenant that replaced a standard KPI with one of another shape keeps its KPI; the default
            // dashboard that no longer fits is left out rather than failing the installation.
            Err(Error::Invalid(problems)) => {
                tracing::warn!(dashboard = %key, ?problems, "a default dashboard does not fit this tenant's KPIs");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Moves default dashboard `id` to `spec` if nobody changed it since the system wrote it; whether it
/// did. The dashboard stays the default of the role it is the default of (or not).
async fn upgrade(
    conn: &mut PgConnection,
    id: DashboardId,
    stored: Option<String>,
    spec: DashboardSpec,
) -> Result<bool> {
    let Some(stored) = stored else { return Ok(false) };
    let now = load(conn, id).await?.spec();
    if stored != UNCHANGED_SINCE_INSTALLED && stored != digest(&now) {
        return Ok(false);
    }
    let spec = DashboardSpec { default_for_role: now.default_for_role.clone(), ..spec };
    if spec == now {
        if stored == UNCHANGED_SINCE_INSTALLED {
            repo::set_standard_digest(conn, id, &digest(&now)).await?;
        }
        return Ok(false);
    }
    match replace(conn, id, &spec).await {
        Ok(board) => {
            repo::set_standard_digest(conn, id, &digest(&board.spec())).await?;
            Ok(true)
        }
        Err(Error::Invalid(problems)) => {
            tracing::warn!(dashboard = ?spec.key, ?problems, "this release's default dashboard does not fit this tenant's KPIs");
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_dashboards_fit_the_standard_kpis() {
        let kpis = crate::standard::kpis();
        let mut roles = std::collections::BTreeSet::new();
        for d in defaults() {
            let problems = d.problems(|key| kpis.iter().find(|k| k.key == key));
            assert!(problems.is_empty(), "{:?}: {problems:?}", d.key);
            assert!(roles.insert(d.default_for_role.clone()), "one default per role");
        }
    }
}
