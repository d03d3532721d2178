//! Gold KPI tables against an independent oracle: the same KPIs computed by Postgres itself (numeric
//! arithmetic, LATERAL rate look-ups, its own fiscal-period formula) over the CRM data the seed
//! generates — two tenants with their own currencies and fiscal calendars — while the data streams
//! through CDC, Kafka, bronze/silver and the incremental gold refresh.

use std::time::Duration;

use deltalake::datafusion::prelude::SessionContext;
use orbas_oltp::seed;
use orbas_warehouse::gold;

use super::*;

/// Postgres helpers the oracle queries use, in a schema of the test database.
const ORACLE_FUNCTIONS: &str = "
CREATE SCHEMA oracle;
-- 1 unit of `cur` in `corp` on day `d`: the latest rate of the pair on or before d, else its first;
-- a pair entered only the other way round inverted; NULL without any rate.
CREATE FUNCTION oracle.fx(t uuid, cur text, corp text, d date) RETURNS numeric LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN cur = corp THEN 1::numeric ELSE coalesce(
    (SELECT rate FROM currency_rates WHERE tenant_id = t AND from_currency = cur AND to_currency = corp
       AND valid_on <= d ORDER BY valid_on DESC LIMIT 1),
    (SELECT rate FROM currency_rates WHERE tenant_id = t AND from_currency = cur AND to_currency = corp
       ORDER BY valid_on LIMIT 1),
    (SELECT round(1 / rate, 10) FROM currency_rates WHERE tenant_id = t AND from_currency = corp
       AND to_currency = cur AND valid_on <= d ORDER BY valid_on DESC LIMIT 1),
    (SELECT round(1 / rate, 10) FROM currency_rates WHERE tenant_id = t AND from_currency = corp
       AND to_currency = cur ORDER BY valid_on LIMIT 1)) END
$$;
-- The fiscal year and quarter of `d`: the calendar year and quarter of d moved back to a January start.
CREATE FUNCTION oracle.fiscal(d date, start int, named text, OUT fy int, OUT fq int) LANGUAGE sql IMMUTABLE AS $$
  SELECT extract(year FROM s)::int + CASE WHEN named = 'end' AND start <> 1 THEN 1 ELSE 0 END,
         (extract(month FROM s)::int - 1) / 3 + 1
  FROM (SELECT d - make_interval(months => start - 1) AS s) x
$$;
CREATE FUNCTION oracle.micro(x numeric) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(round(x * 1000000)::bigint::text, '-')
$$;
";

/// Per KPI table: the oracle in Postgres and the same columns read from the gold table, as text.
fn checks() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        (
            "daily_bookings",
            "SELECT concat_ws('|', o.tenant_id, o.close_date, f.fy, f.fq, o.kind, t.corporate_currency, count(*),
                    round(coalesce(sum(o.amount * oracle.fx(o.tenant_id, o.currency, t.corporate_currency, o.close_date)), 0), 2),
                    count(*) - count(oracle.fx(o.tenant_id, o.currency, t.corporate_currency, o.close_date)))
               FROM opportunities o JOIN tenants t ON t.id = o.tenant_id
               CROSS JOIN LATERAL oracle.fiscal(o.close_date, t.fiscal_year_start_month, t.fiscal_year_named_by) f
              WHERE o.status = 'won'
              GROUP BY o.tenant_id, o.close_date, f.fy, f.fq, o.kind, t.corporate_currency",
            "SELECT concat_ws('|', tenant_id, CAST(day AS VARCHAR), fiscal_year, fiscal_quarter, kind, currency,
                    deals_won, CAST(bookings AS VARCHAR), unconverted_deals) FROM daily_bookings",
        ),
        (
            "pipeline_by_stage_owner",
            "SELECT concat_ws('|', o.tenant_id, s.pipeline, o.stage_id, s.name, s.position, coalesce(o.owner_id::text, '-'),
                    f.fy, f.fq, o.forecast_category, t.corporate_currency, count(*),
                    round(coalesce(sum(o.amount * x.rate), 0), 2),
                    round(coalesce(sum(o.amount * x.rate * o.probability / 100), 0), 2), count(*) - count(x.rate))
               FROM opportunities o JOIN tenants t ON t.id = o.tenant_id
               JOIN pipeline_stages s ON s.id = o.stage_id
               CROSS JOIN LATERAL oracle.fiscal(o.close_date, t.fiscal_year_start_month, t.fiscal_year_named_by) f
               CROSS JOIN LATERAL (SELECT oracle.fx(o.tenant_id, o.currency, t.corporate_currency,
                                               (now() AT TIME ZONE 'UTC')::date) AS rate) x
              WHERE o.status = 'open'
              GROUP BY o.tenant_id, s.pipeline, o.stage_id, s.name, s.position, o.owner_id, f.fy, f.fq,
                       o.forecast_category, t.corporate_currency",
            "SELECT concat_ws('|', tenant_id, pipeline, stage_id, stage_name, stage_position, coalesce(owner_id, '-'),
                    fiscal_year, fiscal_quarter, forecast_category, currency, open_deals, CAST(amount AS VARCHAR),
                    CAST(weighted_amount AS VARCHAR), unconverted_deals) FROM pipeline_by_stage_owner",
        ),
        (
            "win_rate",
            "SELECT concat_ws('|', o.tenant_id, f.fy, f.fq, coalesce(o.owner_id::text, '-'), t.corporate_currency,
                    count(*) FILTER (WHERE o.status = 'won'), count(*) FILTER (WHERE o.status = 'lost'),
                    oracle.micro(count(*) FILTER (WHERE o.status = 'won')::numeric / count(*)),
                    round(coalesce(sum(o.amount * x.rate) FILTER (WHERE o.status = 'won'), 0), 2),
                    round(coalesce(sum(o.amount * x.rate) FILTER (WHERE o.status = 'lost'), 0), 2),
                    count(*) - count(x.rate))
               FROM opportunities o JOIN tenants t ON t.id = o.tenant_id
               CROSS JOIN LATERAL oracle.fiscal(o.close_date, t.fiscal_year_start_month, t.fiscal_year_named_by) f
               CROSS JOIN LATERAL (SELECT oracle.fx(o.tenant_id, o.currency, t.corporate_currency, o.close_date) AS rate) x
              WHERE o.status IN ('won', 'lost')
              GROUP BY o.tenant_id, f.fy, f.fq, o.owner_id, t.corporate_currency",
            "SELECT concat_ws('|', tenant_id, fiscal_year, fiscal_quarter, coalesce(owner_id, '-'), currency, won_deals,
                    lost_deals, coalesce(CAST(CAST(round(win_rate * 1000000) AS BIGINT) AS VARCHAR), '-'),
                    CAST(won_amount AS VARCHAR), CAST(lost_amount AS VARCHAR), unconverted_deals) FROM win_rate",
        ),
        (
            "sales_cycle",
            "SELECT concat_ws('|', o.tenant_id, f.fy, f.fq, coalesce(o.owner_id::text, '-'), count(*),
                    round(avg(x.days) * 1000)::bigint,
                    round((percentile_cont(0.5) WITHIN GROUP (ORDER BY x.days))::numeric * 1000)::bigint,
                    round(min(x.days) * 1000)::bigint, round(max(x.days) * 1000)::bigint)
               FROM opportunities o JOIN tenants t ON t.id = o.tenant_id
               CROSS JOIN LATERAL oracle.fiscal(o.close_date, t.fiscal_year_start_month, t.fiscal_year_named_by) f
               CROSS JOIN LATERAL (SELECT greatest(extract(epoch FROM o.closed_at) - extract(epoch FROM o.created_at), 0)
                                          / 86400.0 AS days) x
              WHERE o.status = 'won' AND o.closed_at IS NOT NULL
              GROUP BY o.tenant_id, f.fy, f.fq, o.owner_id",
            "SELECT concat_ws('|', tenant_id, fiscal_year, fiscal_quarter, coalesce(owner_id, '-'), won_deals,
                    CAST(round(avg_days * 1000) AS BIGINT), CAST(round(median_days * 1000) AS BIGINT),
                    CAST(round(min_days * 1000) AS BIGINT), CAST(round(max_days * 1000) AS BIGINT)) FROM sales_cycle",
        ),
        (
            "mrr_monthly",
            "WITH subs AS (
                 SELECT tenant_id, mrr, currency, (started_at AT TIME ZONE 'UTC')::date AS started,
                        ((CASE status WHEN 'cancelled' THEN cancelled_at WHEN 'expired' THEN current_period_end END)
                          AT TIME ZONE 'UTC')::date AS ended
                   FROM subscriptions WHERE status <> 'trialing'),
             months AS (
                 SELECT s.tenant_id, m::date AS month, (m + interval '1 month')::date AS next
                   FROM (SELECT tenant_id, date_trunc('month', min(started)) AS first FROM subs GROUP BY 1) s,
                        generate_series(s.first, date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') m)
             SELECT concat_ws('|', m.tenant_id, m.month, f.fy, f.fq, t.corporate_currency,
                    round(coalesce(sum(x.v) FILTER (WHERE x.started < m.month AND (x.ended IS NULL OR x.ended >= m.month)), 0), 2),
                    round(coalesce(sum(x.v) FILTER (WHERE x.started >= m.month), 0), 2),
                    round(coalesce(sum(x.v) FILTER (WHERE x.ended < m.next), 0), 2),
                    round(coalesce(sum(x.v) FILTER (WHERE x.ended IS NULL OR x.ended >= m.next), 0), 2),
                    count(x.started) FILTER (WHERE x.started < m.month AND (x.ended IS NULL OR x.ended >= m.month)),
                    count(x.started) FILTER (WHERE x.started >= m.month),
                    count(x.started) FILTER (WHERE x.ended < m.next),
                    count(x.started) FILTER (WHERE x.ended IS NULL OR x.ended >= m.next),
                    oracle.micro(sum(x.v) FILTER (WHERE x.ended < m.next)
                       / nullif(sum(x.v) FILTER (WHERE x.started < m.month AND (x.ended IS NULL OR x.ended >= m.month)), 0)),
                    oracle.micro(count(x.started) FILTER (WHERE x.ended < m.next)::numeric
                       / nullif(count(x.started) FILTER (WHERE x.started < m.month AND (x.ended IS NULL OR x.ended >= m.month)), 0)),
                    count(x.started) - count(x.v))
               FROM months m JOIN tenants t ON t.id = m.tenant_id
               CROSS JOIN LATERAL oracle.fiscal(m.month, t.fiscal_year_start_month, t.fiscal_year_named_by) f
               LEFT JOIN LATERAL (
                   SELECT s.started, s.ended, s.mrr * oracle.fx(s.tenant_id, s.currency, t.corporate_currency, m.month) AS v
                     FROM subs s
                    WHERE s.tenant_id = m.tenant_id AND s.started < m.next AND (s.ended IS NULL OR s.ended >= m.month)) x ON true
              GROUP BY m.tenant_id, m.month, f.fy, f.fq, t.corporate_currency",
            "SELECT concat_ws('|', tenant_id, CAST(month AS VARCHAR), fiscal_year, fiscal_quarter, currency,
                    CAST(opening_mrr AS VARCHAR), CAST(new_mrr AS VARCHAR), CAST(churned_mrr AS VARCHAR),
                    CAST(closing_mrr AS VARCHAR), opening_subscriptions, new_subscriptions, churned_subscriptions,
                    closing_subscriptions, coalesce(CAST(CAST(round(revenue_churn_rate * 1000000) AS BIGINT) AS VARCHAR), '-'),
                    coalesce(CAST(CAST(round(logo_churn_rate * 1000000) AS BIGINT) AS VARCHAR), '-'),
                    unconverted_subscriptions) FROM mrr_monthly",
        ),
        (
            "ticket_sla",
            "SELECT concat_ws('|', k.tenant_id, k.day, f.fy, f.fq, k.priority, count(*),
                    count(*) FILTER (WHERE k.frm), count(*) FILTER (WHERE k.frm AND k.first_responded_at <= k.first_response_due_at),
                    count(*) FILTER (WHERE k.rm), count(*) FILTER (WHERE k.rm AND k.solved_at <= k.resolution_due_at),
                    oracle.micro((count(*) FILTER (WHERE k.frm AND k.first_responded_at <= k.first_response_due_at))::numeric
                                 / nullif(count(*) FILTER (WHERE k.frm), 0)),
                    oracle.micro((count(*) FILTER (WHERE k.rm AND k.solved_at <= k.resolution_due_at))::numeric
                                 / nullif(count(*) FILTER (WHERE k.rm), 0)),
                    oracle.micro(avg(k.csat)), count(k.csat))
               FROM (SELECT tk.*, (tk.created_at AT TIME ZONE 'UTC')::date AS day,
                            tk.first_response_due_at IS NOT NULL
                              AND (tk.first_responded_at IS NOT NULL OR tk.first_response_due_at < now()) AS frm,
                            tk.resolution_due_at IS NOT NULL AND (tk.solved_at IS NOT NULL OR tk.resolution_due_at < now()) AS rm
                       FROM tickets tk) k
               JOIN tenants t ON t.id = k.tenant_id
               CROSS JOIN LATERAL oracle.fiscal(k.day, t.fiscal_year_start_month, t.fiscal_year_named_by) f
              GROUP BY k.tenant_id, k.day, f.fy, f.fq, k.priority",
            "SELECT concat_ws('|', tenant_id, CAST(day AS VARCHAR), fiscal_year, fiscal_quarter, priority, tickets,
                    first_response_measured, first_response_met, resolution_measured, resolution_met,
                    coalesce(CAST(CAST(round(first_response_attainment * 1000000) AS BIGINT) AS VARCHAR), '-'),
                    coalesce(CAST(CAST(round(resolution_attainment * 1000000) AS BIGINT) AS VARCHAR), '-'),
                    coalesce(CAST(CAST(round(avg_csat * 1000000) AS BIGINT) AS VARCHAR), '-'), csat_responses)
               FROM ticket_sla",
        ),
        (
            "recommendation_acceptance",
            "SELECT concat_ws('|', f.tenant_id, (f.created_at AT TIME ZONE 'UTC')::date, p.fy, p.fq, coalesce(r.kind, '-'),
                    r.action, r.user_id, count(*) FILTER (WHERE f.verdict = 'accept'),
                    count(*) FILTER (WHERE f.verdict = 'dismiss'), count(*) FILTER (WHERE f.verdict = 'snooze'),
                    count(*) FILTER (WHERE f.reason_code = 'already_handled'),
                    count(*) FILTER (WHERE f.reason_code = 'not_mine'),
                    oracle.micro((count(*) FILTER (WHERE f.verdict = 'accept'))::numeric
                                 / nullif(count(*) FILTER (WHERE f.verdict = 'accept' OR (f.verdict = 'dismiss'
                                          AND f.reason_code IS DISTINCT FROM 'already_handled'
                                          AND f.reason_code IS DISTINCT FROM 'not_mine')), 0)))
               FROM recommendation_feedback f
               JOIN recommendations r ON r.tenant_id = f.tenant_id AND r.id = f.recommendation_id
               JOIN tenants t ON t.id = f.tenant_id
               CROSS JOIN LATERAL oracle.fiscal((f.created_at AT TIME ZONE 'UTC')::date, t.fiscal_year_start_month,
                                                t.fiscal_year_named_by) p
              GROUP BY f.tenant_id, (f.created_at AT TIME ZONE 'UTC')::date, p.fy, p.fq, r.kind, r.action, r.user_id",
            "SELECT concat_ws('|', tenant_id, CAST(day AS VARCHAR), fiscal_year, fiscal_quarter, coalesce(kind, '-'),
                    action, owner_id, accepted, dismissed, snoozed, already_handled, not_mine,
                    coalesce(CAST(CAST(round(acceptance_rate * 1000000) AS BIGINT) AS VARCHAR), '-'))
               FROM recommendation_acceptance",
        ),
    ]
}

/// Next-best actions for three reps of each tenant, and feedback on most of them over a few days
/// (accepted, dismissed, snoozed; some without a kind, as a rep's own actions are): the seed has none.
const FEEDBACK: &str = "
INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, action, title, rationale, score, kind)
SELECT u.tenant_id, gen_random_uuid(), u.id, 'lead', gen_random_uuid(), (ARRAY['call', 'meeting', 'escalate'])[1 + g % 3],
       'An action', 'A reason', 0.5, (ARRAY['hot_lead_untouched', 'stalled_deal', NULL])[1 + (g / 3) % 3]
  FROM (SELECT tenant_id, id, row_number() OVER (PARTITION BY tenant_id ORDER BY id) AS n FROM users) u
 CROSS JOIN generate_series(0, 11) g WHERE u.n <= 3;
INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, reason_code, snooze_until,
                                     created_at)
SELECT tenant_id, gen_random_uuid(), id, user_id, verdict,
       CASE WHEN verdict = 'dismiss' THEN (ARRAY['not_relevant', 'already_handled', 'not_mine', NULL])[1 + n % 4] END,
       CASE WHEN verdict = 'snooze' THEN timestamptz '2026-04-01' END,
       timestamptz '2026-01-30 23:00:00+00' + make_interval(hours => (12 * (n % 4))::int)
  FROM (SELECT r.*, row_number() OVER (ORDER BY r.id) AS n,
               (ARRAY['accept', 'dismiss', 'snooze', 'accept', 'dismiss'])[1 + (row_number() OVER (ORDER BY r.id)) % 5] AS verdict
          FROM recommendations r) x
 WHERE n % 7 <> 0;
";

async fn oracle_rows(db: &TestDb, sql: &'static str) -> Vec<String> {
    let mut rows: Vec<String> =
        sqlx::query_scalar(sql).fetch_all(&db.admin).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.sort();
    rows
}

/// Rows of `sql` over the gold table `table` (registered under its name), sorted; `None` while the
/// table is missing or unreadable.
async fn gold_rows(lake: &Url, table: &str, sql: &str) -> Option<Vec<String>> {
    let url = table_url(lake, "gold", gold::DIR, table).ok()?;
    let t = deltalake::open_table(url).await.ok()?;
    let ctx = SessionContext::new();
    ctx.register_table(table, t.table_provider().await.ok()?).ok()?;
    let batches = ctx.sql(sql).await.ok()?.collect().await.ok()?;
    let mut out = Vec::new();
    for b in &batches {
        out.extend(texts(b.column(0))?);
    }
    out.sort();
    Some(out)
}

/// A column's values as text.
fn texts(column: &deltalake::arrow::array::ArrayRef) -> Option<Vec<String>> {
    let column = deltalake::arrow::compute::cast(column, &deltalake::arrow::datatypes::DataType::Utf8).ok()?;
    let strings = deltalake::arrow::array::AsArray::as_string_opt::<i32>(&column)?;
    Some(strings.iter().map(|v| v.unwrap_or("NULL").to_owned()).collect())
}

async fn gold_equals_the_oracle(db: &TestDb, lake: &Url, when: &str) {
    for (table, oracle, read) in checks() {
        let want = oracle_rows(db, oracle).await;
        assert!(!want.is_empty(), "{table}: the seed leaves rows to compare");
        eventually_equal(&format!("gold.{table} equals Postgres ({when})"), Duration::from_secs(180), &want, || {
            let lake = lake.clone();
            async move { gold_rows(&lake, table, read).await }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpis_follow_the_crm_in_each_tenants_currency_and_calendar() {
    let db = orbas_testkit::fresh_db().await;
    sqlx::raw_sql(ORACLE_FUNCTIONS).execute(&db.admin).await.expect("oracle functions");
    let broker = broker();
    let cdc = start_cdc(&db, &broker).await;
    let (_dir, lake) = temp_lake();
    let sink = start_sink(sink_config(&db, &broker, &lake));

    let report = seed::load(&db.admin, &seed::SeedConfig::new(2, 0.01, 5).expect("seed config")).await.expect("seed");
    let (a, b) = (report.tenants[0].0, report.tenants[1].0);
    sqlx::raw_sql(FEEDBACK).execute(&db.admin).await.expect("next-best actions and feedback");
    // A calendar unlike the default and a currency with no rate, to be counted and never summed.
    sqlx::query("UPDATE tenants SET fiscal_year_start_month = 2, fiscal_year_named_by = 'end' WHERE id = $1")
        .bind(b)
        .execute(&db.admin)
        .await
        .expect("calendar");
    sqlx::query(
        "UPDATE opportunities SET currency = 'XTS'
          WHERE id IN (SELECT id FROM opportunities WHERE tenant_id = $1 AND status = 'won' ORDER BY id LIMIT 2)",
    )
    .bind(a)
    .execute(&db.admin)
    .await
    .expect("unconvertible deals");
    // A pair entered only the other way round is used inverted.
    sqlx::query(
        "INSERT INTO currency_rates (tenant_id, id, from_currency, to_currency, rate, valid_on)
         SELECT id, gen_random_uuid(), corporate_currency, 'XAG', 0.04, DATE '2020-01-01' FROM tenants WHERE id = $1",
    )
    .bind(a)
    .execute(&db.admin)
    .await
    .expect("one-way rate");
    sqlx::query(
        "UPDATE opportunities SET currency = 'XAG'
          WHERE id IN (SELECT id FROM opportunities WHERE tenant_id = $1 AND status = 'won' ORDER BY id DESC LIMIT 3)",
    )
    .bind(a)
    .execute(&db.admin)
    .await
    .expect("inverted-rate deals");
    gold_equals_the_oracle(&db, &lake, "after the seed").await;
    let unconverted =
        gold_rows(&lake, "daily_bookings", "SELECT CAST(sum(unconverted_deals) AS VARCHAR) FROM daily_bookings").await;
    assert_eq!(unconverted, Some(vec!["2".to_owned()]), "the two deals without a rate are counted, not summed");

    // Changes flow through: deals won and lost, a rate corrected, a ticket answered late.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE opportunities SET status = 'won', forecast_category = 'closed', closed_at = now(),
                close_date = DATE '2026-09-15', probability = 100,
                stage_id = (SELECT id FROM pipeline_stages s WHERE s.tenant_id = opportunities.tenant_id AND s.is_won LIMIT 1)
          WHERE id IN (SELECT id FROM opportunities WHERE tenant_id = '{b}' AND status = 'open' ORDER BY id LIMIT 5);
         UPDATE currency_rates SET rate = rate * 2 WHERE tenant_id = '{b}' AND valid_on = (SELECT max(valid_on) FROM currency_rates WHERE tenant_id = '{b}');
         UPDATE tickets SET first_responded_at = first_response_due_at + interval '1 hour'
          WHERE id IN (SELECT id FROM tickets WHERE tenant_id = '{a}' AND first_response_due_at IS NOT NULL ORDER BY id LIMIT 4);
         UPDATE subscriptions SET status = 'cancelled', cancelled_at = TIMESTAMPTZ '2026-09-20 12:00:00+00'
          WHERE id IN (SELECT id FROM subscriptions WHERE tenant_id = '{a}' AND status = 'active' ORDER BY id LIMIT 3);"
    )))
    .execute(&db.admin)
    .await
    .expect("changes");
    gold_equals_the_oracle(&db, &lake, "after changes").await;

    // A tenant's SQL session sees its own KPI rows only.
    let sql_lake = orbas_warehouse::sql::Lake::new(lake.clone());
    let ctx = sql_lake.session(&a.to_string(), orbas_warehouse::sql::Limits::default()).await.expect("session");
    let seen = ctx
        .sql("SELECT DISTINCT tenant_id FROM gold.daily_bookings UNION SELECT DISTINCT tenant_id FROM gold.mrr_monthly")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    let tenants: Vec<String> = seen.iter().flat_map(|b| texts(b.column(0)).unwrap_or_default()).collect();
    assert_eq!(tenants, vec![a.to_string()]);

    sink.stop().await;
    cdc.stop().await;
}
