//! Forecasting over a real lake: the roll-up computed from the lake equals the same roll-up computed
//! by Postgres on the source rows (categories, stage-weighted pipeline, closed-won, quotas, exchange
//! rates), `run` writes it with the model forecasts as `forecast_snapshots` (recomputing replaces
//! them), and the seeded history of snapshots is tracked against what happened.

use std::collections::BTreeMap;

use orbas_models::forecast::{self, Level, Quarter, Totals};
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::forecasts;
use orbas_oltp::seed;
use orbas_warehouse::sql::Limits;

use super::{caught_up, landed, pipeline};

/// Commit, best case, pipeline, closed, weighted per level, and quotas — by Postgres, exact numerics.
const ORACLE_DEALS: &str = "
WITH inverse AS (
    SELECT r.tenant_id, r.to_currency AS from_currency, r.from_currency AS to_currency,
           (1.0 / r.rate::float8)::numeric(20, 10) AS rate, r.valid_on
      FROM currency_rates r
     WHERE NOT EXISTS (SELECT 1 FROM currency_rates d WHERE d.tenant_id = r.tenant_id
                          AND d.from_currency = r.to_currency AND d.to_currency = r.from_currency)),
rates AS (SELECT tenant_id, from_currency, to_currency, rate::numeric(20, 10) AS rate, valid_on FROM currency_rates
          UNION ALL SELECT * FROM inverse),
fx AS (SELECT tenant_id, from_currency, to_currency, rate,
              CASE WHEN row_number() OVER w = 1 THEN DATE '0001-01-01' ELSE valid_on END AS valid_from,
              lead(valid_on) OVER w AS valid_until
         FROM rates WINDOW w AS (PARTITION BY tenant_id, from_currency, to_currency ORDER BY valid_on)),
d AS (
    SELECT o.owner_id, o.territory_id, o.status, o.forecast_category AS cat, s.probability / 100 AS p,
           CASE WHEN o.currency = t.corporate_currency THEN o.amount ELSE o.amount * fx.rate END AS amount
      FROM opportunities o
      JOIN pipeline_stages s ON s.tenant_id = o.tenant_id AND s.id = o.stage_id
      JOIN tenants t ON t.id = o.tenant_id
      LEFT JOIN fx ON fx.tenant_id = o.tenant_id AND fx.from_currency = o.currency
           AND fx.to_currency = t.corporate_currency
           AND fx.valid_from <= (CASE WHEN o.status = 'won' THEN o.close_date ELSE $4::date END)
           AND (fx.valid_until IS NULL OR fx.valid_until > (CASE WHEN o.status = 'won' THEN o.close_date ELSE $4::date END))
     WHERE o.tenant_id = $1::uuid AND o.close_date >= $2 AND o.close_date < $3 AND o.status IN ('open', 'won'))
SELECT GROUPING(owner_id)::int4, GROUPING(territory_id)::int4, owner_id::text, territory_id::text,
       coalesce(sum(amount) FILTER (WHERE status = 'open' AND cat = 'commit'), 0)::float8,
       coalesce(sum(amount) FILTER (WHERE status = 'open' AND cat = 'best_case'), 0)::float8,
       coalesce(sum(amount) FILTER (WHERE status = 'open' AND cat = 'pipeline'), 0)::float8,
       coalesce(sum(amount) FILTER (WHERE status = 'won'), 0)::float8,
       coalesce(sum(amount * p) FILTER (WHERE status = 'open' AND cat <> 'omitted'), 0)::float8
  FROM d GROUP BY GROUPING SETS ((), (owner_id), (territory_id))";

/// Source, method, low, point, high, weighted of a stored snapshot.
type StoredRow = (String, String, Option<f64>, Option<f64>, Option<f64>, Option<f64>);

type OracleRow = (i32, i32, Option<String>, Option<String>, f64, f64, f64, f64, f64);

async fn oracle(
    db: &orbas_testkit::TestDb,
    tenant: &str,
    q: &Quarter,
    day: chrono::NaiveDate,
) -> BTreeMap<Level, Totals> {
    let rows: Vec<OracleRow> = sqlx::query_as(ORACLE_DEALS)
        .bind(tenant)
        .bind(q.start)
        .bind(q.end)
        .bind(day)
        .fetch_all(&db.admin)
        .await
        .expect("oracle");
    let mut out = BTreeMap::new();
    out.insert(Level::Tenant, Totals::default());
    for (g_owner, g_territory, owner, territory, commit, best_case, pipeline, closed, weighted) in rows {
        let level = match (g_owner, g_territory, owner, territory) {
            (1, 1, _, _) => Level::Tenant,
            (0, 1, Some(o), _) => Level::Owner(o),
            (1, 0, _, Some(t)) => Level::Territory(t),
            _ => continue, // deals without an owner or territory count for the tenant only
        };
        let t = Totals { commit, best_case, pipeline, closed, weighted, ..Totals::default() };
        out.insert(level, t);
    }
    let quotas: Vec<(Option<String>, Option<String>, f64)> = sqlx::query_as(
        "SELECT user_id::text, territory_id::text, amount::float8 FROM quotas
          WHERE tenant_id = $1::uuid AND fiscal_year = $2 AND fiscal_quarter = $3",
    )
    .bind(tenant)
    .bind(q.fiscal_year as i16)
    .bind(q.fiscal_quarter as i16)
    .fetch_all(&db.admin)
    .await
    .expect("quotas");
    for (user, territory, amount) in quotas {
        let level = match (user, territory) {
            (Some(u), _) => {
                let t = out.entry(Level::Tenant).or_default();
                t.quota = Some(t.quota.unwrap_or(0.0) + amount);
                Level::Owner(u)
            }
            (None, Some(t)) => Level::Territory(t),
            (None, None) => continue,
        };
        let t = out.entry(level).or_default();
        t.quota = Some(t.quota.unwrap_or(0.0) + amount);
    }
    out
}

fn near(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.02 + 1e-9 * a.abs().max(b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_from_the_lake_equals_postgres_and_snapshots_are_written() {
    let db = orbas_testkit::fresh_db().await;
    let p = pipeline(&db).await;
    let cfg = seed::SeedConfig::new(2, 0.05, 7).expect("seed config");
    let report = seed::load(&db.admin, &cfg).await.expect("seed");
    let a = report.tenants[0].0.to_string();
    caught_up(&db, &p.lake, &a).await;
    for table in ["quotas", "currency_rates", "users"] {
        landed(&db, &p.lake, &a, table).await;
    }
    let tenant = TenantId(a.parse().expect("tenant id"));
    let ctx = p.lake.session(&a, Limits::default()).await.expect("session");
    let day = forecast::data_day(&ctx).await.expect("the data's day");
    let cal = {
        let mut tx = db.app.begin(tenant).await.expect("tx");
        let cal = forecasts::calendar(tx.conn(), tenant).await.expect("calendar");
        tx.commit().await.expect("commit");
        cal
    };

    // The current and the next fiscal quarter, level by level.
    let current = Quarter::of(day, &cal);
    let next = Quarter::of(current.end, &cal);
    for q in [current, next] {
        let ours = forecast::quarter_rollup(&ctx, &cal.currency, day, &q).await.expect("roll-up");
        let want = oracle(&db, &a, &q, day).await;
        assert_eq!(ours.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "levels of {q:?}");
        for (level, w) in &want {
            let o = &ours[level];
            for (name, x, y) in [
                ("commit", o.commit, w.commit),
                ("best case", o.best_case, w.best_case),
                ("pipeline", o.pipeline, w.pipeline),
                ("closed", o.closed, w.closed),
                ("weighted", o.weighted, w.weighted),
                ("quota", o.quota.unwrap_or(-1.0), w.quota.unwrap_or(-1.0)),
            ] {
                assert!(near(x, y), "{level:?} {name} in {q:?}: lake {x} vs Postgres {y}");
            }
            assert_eq!(o.unconverted, 0, "{level:?}: every amount converted");
        }
        assert!(ours.len() > 3, "owners and territories: {}", ours.len());
    }
    let next_rollup = forecast::quarter_rollup(&ctx, &cal.currency, day, &next).await.expect("roll-up");
    let t = &next_rollup[&Level::Tenant];
    assert!(t.weighted > 0.0 && t.weighted < t.commit + t.best_case + t.pipeline, "{t:?}");

    // Snapshots: one roll-up row per quarter and level, one model row per series and month ahead.
    let settings = forecast::Settings::default();
    let run = forecast::run(&db.app, &p.lake, tenant, &settings).await.expect("forecast");
    let levels: usize = run.rollups.iter().map(|r| r.1.len()).sum();
    assert!(run.forecasts.iter().any(|f| f.key.owner.is_none() && f.key.metric == forecast::Metric::Bookings));
    assert!(run.forecasts.iter().any(|f| f.key.metric == forecast::Metric::Mrr));
    let expected = levels + run.forecasts.len() * settings.horizon;
    assert_eq!(run.written.inserted as usize, expected);
    let stored: Vec<StoredRow> = sqlx::query_as(
        "SELECT source, method, predicted_low::float8, predicted_amount::float8, predicted_high::float8,
                weighted_amount::float8
           FROM forecast_snapshots WHERE tenant_id = $1::uuid AND snapshot_date = $2 AND method IS NOT NULL",
    )
    .bind(&a)
    .bind(day)
    .fetch_all(&db.admin)
    .await
    .expect("snapshots");
    assert_eq!(stored.len(), expected);
    assert_eq!(stored.iter().filter(|s| s.0 == "rollup").count(), levels);
    for (source, method, low, point, high, weighted) in &stored {
        if source == "model" {
            let (l, p, h) = (low.expect("low"), point.expect("point"), high.expect("high"));
            assert!(0.0 <= l && l <= p && p <= h, "{method}: {l} ≤ {p} ≤ {h}");
        } else {
            assert!(method == "stage_weighted" && weighted.is_some());
        }
    }
    // Recomputing the same day replaces those rows and nothing else.
    let seeded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM forecast_snapshots WHERE tenant_id = $1::uuid AND method IS NULL")
            .bind(&a)
            .fetch_one(&db.admin)
            .await
            .expect("seeded");
    let again = forecast::run(&db.app, &p.lake, tenant, &settings).await.expect("forecast again");
    assert_eq!((again.written.deleted as usize, again.written.inserted as usize), (expected, expected));
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM forecast_snapshots WHERE tenant_id = $1::uuid")
        .bind(&a)
        .fetch_one(&db.admin)
        .await
        .expect("total");
    assert_eq!(total as usize, seeded as usize + expected);

    // Accuracy of the seeded history: roll-ups and model predictions of quarters that are over.
    let acc = forecast::accuracy(&db.app, &p.lake, tenant).await.expect("accuracy");
    for source in ["rollup", "model"] {
        let s = acc.by_source.get(source).unwrap_or_else(|| panic!("{source} tracked: {:?}", acc.by_source.keys()));
        assert!(s.pairs > 0 && s.smape.is_some_and(|v| (0.0..=200.0).contains(&v)), "{source}: {s:?}");
    }
    assert!(acc.by_rep.keys().any(|(source, _)| source == "rollup"));
    assert!(acc.pairs.iter().all(|p| p.period_start < acc.until));

    p.stop().await;
}
