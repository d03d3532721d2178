//! Training and evaluation sets: the cut-offs feature rows are taken at, the time split between
//! training and test, and the CSV export other tools (scikit-learn in `orbas models eval`) train on.
//!
//! A time split is honest only if the training side could have been built on the split day: its
//! rows are cut off before the split *and* their labels were observable by then (the split is the
//! training side's horizon), while the test side is cut off at or after the split and labelled with
//! everything known now.

use std::io::Write;

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::features::{self, Entity, FeatureSet};

/// The first instant of every month from `from`'s month up to `to` (exclusive), in UTC.
pub fn month_starts(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let Some(mut at) = Utc.with_ymd_and_hms(from.year(), from.month(), 1, 0, 0, 0).single() else {
        return Vec::new();
    };
    if at < from {
        at = at + Months::new(1);
    }
    let mut out = Vec::new();
    while at < to {
        out.push(at);
        at = at + Months::new(1);
    }
    out
}

/// Training rows before the split (labels as known at the split), test rows from it on.
#[derive(Debug, Clone)]
pub struct Split {
    pub split_at: DateTime<Utc>,
    pub train: FeatureSet,
    pub test: FeatureSet,
}

impl Split {
    /// Builds both sides from monthly cut-offs between `from` and `now`; `now` labels the test side.
    pub async fn monthly(
        ctx: &SessionContext,
        entity: Entity,
        from: DateTime<Utc>,
        split_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Split> {
        if !(from < split_at && split_at < now) {
            return Err(Error::Invalid(format!(
                "a time split needs from < split < now (got {from}, {split_at}, {now})"
            )));
        }
        let train = features::compute(ctx, entity, &month_starts(from, split_at), split_at).await?;
        let test = features::compute(ctx, entity, &month_starts(split_at, now), now).await?;
        Ok(Split { split_at, train, test })
    }
}

/// The present of a tenant's data: its latest activity (`interaction_logs.occurred_at`, else the latest
/// stage change), or `None` for a tenant without either. Labels are judged against this rather than
/// the wall clock, so data imported or generated up to some past day is not read as "nothing
/// happened since".
pub async fn data_horizon(ctx: &SessionContext) -> Result<Option<DateTime<Utc>>> {
    let sql = "SELECT CAST(date_part('epoch', GREATEST(
                 (SELECT MAX(occurred_at) FROM interaction_logs),
                 (SELECT MAX(changed_at) FROM stage_histories))) * 1000000 AS BIGINT)";
    let batches = ctx.sql(sql).await?.collect().await?;
    let micros = batches.first().filter(|b| b.num_rows() > 0).and_then(|b| {
        let c = datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Int64).ok()?;
        let c = datafusion::arrow::array::AsArray::as_primitive::<datafusion::arrow::datatypes::Int64Type>(&c).clone();
        datafusion::arrow::array::Array::is_valid(&c, 0).then(|| c.value(0))
    });
    Ok(micros.and_then(DateTime::from_timestamp_micros))
}

/// Writes the labelled rows of `set` as CSV: `id,cutoff,label,<feature>…` (label 1/0).
pub fn write_csv(set: &FeatureSet, out: &mut impl Write) -> std::io::Result<()> {
    write!(out, "id,cutoff,label")?;
    for name in &set.names {
        write!(out, ",{name}")?;
    }
    writeln!(out)?;
    for (row, values, label) in set.labelled() {
        write!(out, "{},{},{}", row.id, row.cutoff.format("%Y-%m-%dT%H:%M:%SZ"), u8::from(label))?;
        for v in values {
            // Shortest round-trip form: the reader gets the exact f64.
            write!(out, ",{v}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Column `c` of a query answer `b` as text (NULL → None).
pub(crate) fn texts(b: &RecordBatch, c: usize) -> Result<Vec<Option<String>>> {
    let a = datafusion::arrow::compute::cast(b.column(c), &DataType::Utf8)?;
    let a = a.as_string::<i32>();
    Ok((0..a.len()).map(|i| a.is_valid(i).then(|| a.value(i).to_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Row;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("a timestamp")
    }

    #[test]
    fn month_starts_are_inside_the_range() {
        let got = month_starts(at("2025-11-15T10:00:00Z"), at("2026-03-01T00:00:00Z"));
        let want: Vec<_> =
            ["2025-12-01", "2026-01-01", "2026-02-01"].iter().map(|d| at(&format!("{d}T00:00:00Z"))).collect();
        assert_eq!(got, want);
        assert_eq!(month_starts(at("2026-01-01T00:00:00Z"), at("2026-02-01T00:00:01Z")).len(), 2);
        assert!(month_starts(at("2026-03-01T00:00:00Z"), at("2026-01-01T00:00:00Z")).is_empty());
    }

    #[tokio::test]
    async fn the_data_horizon_is_the_latest_activity() {
        let ctx = SessionContext::new();
        for sql in [
            "CREATE TABLE interaction_logs (occurred_at TIMESTAMP WITH TIME ZONE)",
            "CREATE TABLE stage_histories (changed_at TIMESTAMP WITH TIME ZONE)",
        ] {
            ctx.sql(sql).await.expect("DDL").collect().await.expect("DDL");
        }
        assert_eq!(data_horizon(&ctx).await.expect("horizon"), None);
        for sql in [
            "INSERT INTO interaction_logs VALUES ('2026-09-30T12:00:00Z'), ('2026-01-01T00:00:00Z')",
            "INSERT INTO stage_histories VALUES ('2026-09-29T00:00:00Z')",
        ] {
            ctx.sql(sql).await.expect("insert").collect().await.expect("insert");
        }
        assert_eq!(data_horizon(&ctx).await.expect("horizon"), Some(at("2026-09-30T12:00:00Z")));
    }

    #[test]
    fn csv_holds_the_labelled_rows_exactly() {
        let row = |id: &str, label| Row { id: id.into(), cutoff: at("2026-01-01T00:00:00Z"), label };
        let set = FeatureSet {
            entity: Entity::Lead,
            names: vec!["a", "b"],
            rows: vec![row("x", Some(true)), row("y", None), row("z", Some(false))],
            values: vec![0.1, 2.0, 9.0, 9.0, 1.0 / 3.0, -5.5],
        };
        let mut out = Vec::new();
        write_csv(&set, &mut out).expect("writing to memory");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            "id,cutoff,label,a,b\nx,2026-01-01T00:00:00Z,1,0.1,2\nz,2026-01-01T00:00:00Z,0,0.3333333333333333,-5.5\n"
        );
    }
}
