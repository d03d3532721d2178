//! The tenant's KPI catalogue as stored in `kpi_definitions` (through `orbas_oltp::repo::kpis`): the
//! mapping between a [`KpiDefinition`] and its row (semantics in the `definition` object, the rest in
//! columns), and the installation of the standard set.

use chrono::{DateTime, Utc};
use orbas_oltp::model::{KpiId, TenantId, UserId};
use orbas_oltp::repo::kpis::{self, KpiRow, KpiWrite};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::kpi::{Aggregation, Dimension, Direction, Grain, KpiDefinition, Status, Unit};

/// What `definition` holds: a KPI's semantics (and where its drill-down reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Semantics {
    source: String,
    measure: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time: Option<String>,
    #[serde(default)]
    aggregation: Aggregation,
    #[serde(default)]
    grain: Grain,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dimensions: Vec<Dimension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    drill: Option<String>,
}

/// A KPI of the tenant: its definition and review record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredKpi {
    pub id: KpiId,
    #[serde(flatten)]
    pub definition: KpiDefinition,
    /// Who wrote it; none for the standard set.
    pub owner_id: Option<UserId>,
    pub approved_by: Option<UserId>,
    pub approved_at: Option<DateTime<Utc>>,
    /// Part of the standard CRM set every tenant starts with.
    pub is_standard: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn enum_str<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn enum_from<T: for<'de> Deserialize<'de>>(what: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| Error::Corrupt(format!("stored {what} {s:?} is not one this version knows")))
}

impl StoredKpi {
    /// The stored row as a KPI; a row this version cannot read is [`Error::Corrupt`].
    pub fn from_row(row: KpiRow) -> Result<Self> {
        let s: Semantics = serde_json::from_value(row.definition)
            .map_err(|e| Error::Corrupt(format!("KPI {}: definition: {e}", row.key)))?;
        let definition = KpiDefinition {
            key: row.key,
            name: row.name,
            description: row.description.unwrap_or_default(),
            source: s.source,
            measure: s.measure,
            time: s.time,
            aggregation: s.aggregation,
            grain: s.grain,
            dimensions: s.dimensions,
            filter: s.filter,
            drill: s.drill,
            unit: enum_from::<Unit>("unit", &row.unit)?,
            good_direction: enum_from::<Direction>("direction", &row.good_direction)?,
            status: enum_from::<Status>("status", &row.status)?,
        };
        Ok(StoredKpi {
            id: row.id,
            definition,
            owner_id: row.owner_id,
            approved_by: row.approved_by,
            approved_at: row.approved_at,
            is_standard: row.is_standard,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// The row fields of a definition (its `status` is not written: the review workflow owns it).
pub fn to_write(d: &KpiDefinition) -> KpiWrite {
    let semantics = Semantics {
        source: d.source.trim().to_owned(),
        measure: d.measure.trim().to_owned(),
        time: d.time.clone(),
        aggregation: d.aggregation,
        grain: d.grain,
        dimensions: d.dimensions.clone(),
        filter: d.filter.clone(),
        drill: d.drill.clone(),
    };
    KpiWrite {
        key: d.key.clone(),
        name: d.name.trim().to_owned(),
        description: Some(d.description.trim().to_owned()).filter(|s| !s.is_empty()),
        definition: serde_json::to_value(semantics).unwrap_or_default(),
        unit: enum_str(&d.unit),
        good_direction: enum_str(&d.good_direction),
    }
}

/// Every KPI of the tenant, by key.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<StoredKpi>> {
    kpis::list(conn).await?.into_iter().map(StoredKpi::from_row).collect()
}

/// One KPI by key.
pub async fn get(conn: &mut PgConnection, key: &str) -> Result<StoredKpi> {
    StoredKpi::from_row(kpis::by_key(conn, key, false).await?)
}

/// Adds the standard set's KPIs the tenant lacks (approved, by the system) and moves the standard
/// KPIs nobody changed to this release's content.
pub async fn install_standard(conn: &mut PgConnection, tenant: TenantId, at: DateTime<Utc>) -> Result<kpis::Installed> {
    let writes: Vec<KpiWrite> = crate::standard::kpis().iter().map(to_write).collect();
    Ok(kpis::install_standard(conn, tenant, &writes, at).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_kpi_survives_its_row() {
        for d in crate::standard::kpis() {
            let w = to_write(&d);
            let row = KpiRow {
                id: KpiId::new(),
                tenant_id: TenantId::new(),
                key: w.key,
                name: w.name,
                description: w.description,
                definition: w.definition,
                unit: w.unit,
                good_direction: w.good_direction,
                status: "approved".into(),
                owner_id: None,
                approved_by: None,
                approved_at: Some(Utc::now()),
                is_standard: true,
                created_at: Utc::now(),
                updated_at: Utc::now(),
            };
            assert_eq!(StoredKpi::from_row(row).expect("reads back").definition, d);
        }
    }

    #[test]
    fn an_unknown_unit_is_corrupt_not_a_panic() {
        let d = &crate::standard::kpis()[0];
        let w = to_write(d);
        let row = KpiRow {
            id: KpiId::new(),
            tenant_id: TenantId::new(),
            key: w.key,
            name: w.name,
            description: None,
            definition: w.definition,
            unit: "furlongs".into(),
            good_direction: w.good_direction,
            status: "draft".into(),
            owner_id: None,
            approved_by: None,
            approved_at: None,
            is_standard: false,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        assert!(matches!(StoredKpi::from_row(row), Err(Error::Corrupt(m)) if m.contains("furlongs")));
    }
}
