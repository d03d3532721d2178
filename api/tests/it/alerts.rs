//! Threshold alerts end to end: an alert on an approved KPI grouped by owner, its goal read from the lake
//! (this fiscal quarter's quotas × 0.8), mailed by the scheduler to a rep and a manager — each gets one
//! digest listing exactly the breaching owners they answer for, values as SQL over Postgres computes
//! them; a second check sends nothing (de-duplication), a raised goal mails only the new breaches, and a
//! new period mails again. Bad specs are 422 with their fields.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use orbas_dashboards::Unit;
use orbas_dashboards::alerts::{Period, Window};
use orbas_dashboards::engine::Engine;
use orbas_dashboards::report::{Mailer, format_value};
use orbas_dashboards::scheduler::{Scheduler, SchedulerConfig, Tick};
use orbas_testkit::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::helpers::{LakeApp, admin_token, flow, lake_app_with_dashboards, landed, send};

/// Per quota holder of the window: (bookings in the window, quota × `factor`), by Postgres.
async fn oracle(
    app: &crate::helpers::TestApp,
    tenant: uuid::Uuid,
    w: Window,
    factor: f64,
) -> BTreeMap<String, (f64, f64)> {
    sqlx::query_as::<_, (String, f64, f64)>(
        "WITH q AS (SELECT user_id, amount FROM quotas WHERE tenant_id = $1 AND user_id IS NOT NULL \
                      AND period_start <= $2 AND $2 < period_end), \
              won AS (SELECT owner_id, SUM(amount)::float8 AS won FROM opportunities WHERE tenant_id = $1 \
                        AND status = 'won' AND close_date >= $2 AND close_date < $3 GROUP BY owner_id) \
         SELECT q.user_id::text, COALESCE(won.won, 0), q.amount::float8 * $4 FROM q LEFT JOIN won ON won.owner_id = q.user_id",
    )
    .bind(tenant)
    .bind(w.from)
    .bind(w.until)
    .bind(factor)
    .fetch_all(&app.db.admin)
    .await
    .expect("oracle")
    .into_iter()
    .map(|(u, won, goal)| (u, (won, goal)))
    .collect()
}

fn breaching(o: &BTreeMap<String, (f64, f64)>) -> BTreeSet<String> {
    o.iter().filter(|(_, (won, goal))| won < goal).map(|(u, _)| u.clone()).collect()
}

/// The UUIDs in `text` (the digest names each group by its owner's id).
fn uuids(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|w| w.len() == 36 && uuid::Uuid::parse_str(w).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Each new message's recipient and plain-text body, from `skip` on.
fn mails(sink: &SmtpSink, skip: usize) -> Vec<(String, String, String)> {
    let parser = mail_parser::MessageParser::default();
    sink.messages()
        .iter()
        .skip(skip)
        .map(|m| {
            let parsed = parser.parse(&m.data).expect("a MIME message");
            let to = m.to.first().cloned().unwrap_or_default().to_lowercase();
            let subject = parsed.subject().unwrap_or_default().to_owned();
            (to, subject, parsed.body_text(0).expect("a text part").into_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_mail_each_recipient_one_digest_of_the_breaches_they_answer_for() {
    let LakeApp { app, tenant, root, db, dir: _dir } = lake_app_with_dashboards().await;
    let f = flow(&app, &root).await;
    for t in ["opportunities", "quotas"] {
        landed(&app, &f.lake, tenant, t).await;
    }
    let admin = admin_token(&app).await;
    let url = |path: &str| format!("{}{path}", app.base);

    // An approved KPI of bookings by owner, and a draft one.
    let kpi = |key: &str, status: &str| {
        json!({"key": key, "name": "Won amount", "source": "opportunities", "measure": "SUM(CAST(amount AS DOUBLE))",
               "time": "close_date", "filter": "status = 'won'", "dimensions": [{"name": "owner", "column": "owner_id"}],
               "unit": "currency", "status": status})
    };
    for (k, status) in [("won_amount", "approved"), ("won_draft", "draft")] {
        let (code, body) = send(app.http.post(url("/v1/kpis")).json(&kpi(k, status)), &admin).await;
        assert_eq!(code, 201, "{body}");
    }

    // This fiscal quarter, and who breaches 80 % of their quota in it.
    let fiscal: i16 = sqlx::query_scalar("SELECT fiscal_year_start_month FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("fiscal calendar");
    let today = Utc::now().date_naive();
    let quarter = Window::of(Period::FiscalQuarter, None, today, fiscal as u32);
    let now_oracle = oracle(&app, tenant.0, quarter, 0.8).await;
    let breach = breaching(&now_oracle);
    assert!(!breach.is_empty(), "someone is under 80 % of quota: {now_oracle:?}");

    // A manager with breaching reports, and one of those reps.
    let teams: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "WITH RECURSIVE team AS (SELECT u.id AS boss, u.id AS member FROM users u JOIN roles r ON r.id = u.role_id \
                                  WHERE u.tenant_id = $1 AND r.key = 'manager' AND u.status = 'active' \
                                 UNION SELECT t.boss, u.id FROM users u JOIN team t ON u.manager_id = t.member) \
         SELECT b.id::text, b.email, array_agg(t.member::text) FROM team t JOIN users b ON b.id = t.boss \
         GROUP BY b.id, b.email ORDER BY b.id",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("teams");
    let (_, manager, team) = teams
        .into_iter()
        .max_by_key(|(_, _, team)| team.iter().filter(|m| breach.contains(*m)).count())
        .expect("a manager");
    let team: BTreeSet<String> = team.into_iter().collect();
    let (rep, rep_id): (String, String) = sqlx::query_as(
        "SELECT u.email, u.id::text FROM users u JOIN roles r ON r.id = u.role_id \
          WHERE u.tenant_id = $1 AND r.key = 'sales_rep' AND u.status = 'active' AND u.id::text = ANY($2) \
          ORDER BY u.id LIMIT 1",
    )
    .bind(tenant)
    .bind(breach.intersection(&team).cloned().collect::<Vec<_>>())
    .fetch_one(&app.db.admin)
    .await
    .expect("a breaching rep in the manager's team");
    let (rep, manager) = (rep.to_lowercase(), manager.to_lowercase());

    let goal_sql = "SELECT CAST(user_id AS VARCHAR) AS owner, CAST(amount AS DOUBLE) AS goal FROM quotas \
                    WHERE user_id IS NOT NULL AND period_start <= :from AND :from < period_end";
    let alert = |over: Value| {
        let mut a = json!({"name": "Under quota", "kpi": "won_amount", "group_by": "owner", "period": "fiscal_quarter",
            "comparison": "below", "goal": {"kind": "sql", "sql": goal_sql}, "factor": 0.8,
            "recipients": [rep, manager], "cron": "*/1 * * * * *"});
        for (k, v) in over.as_object().cloned().unwrap_or_default() {
            a[k] = v;
        }
        a
    };

    // Bad specs are field errors.
    for (over, fields) in [
        (json!({"group_by": "territory", "factor": 0}), json!(["factor", "group_by"])),
        (json!({"kpi": "won_draft", "recipients": ["nobody@example.com"]}), json!(["kpi", "recipients[0]"])),
        (json!({"cron": "61 * * * *", "timezone": "Mars/Olympus"}), json!(["cron", "timezone"])),
        (json!({"goal": {"kind": "sql", "sql": "SELECT 1 AS x"}}), json!(["goal.sql"])),
        (json!({"goal": {"kind": "sql", "sql": "DROP TABLE quotas"}}), json!(["goal.sql"])),
        (json!({"period": "trailing_days"}), json!(["trailing_days"])),
    ] {
        let (code, problem) = send(app.http.post(url("/v1/alerts")).json(&alert(over.clone())), &admin).await;
        let got: Vec<Value> =
            problem["errors"].as_array().cloned().unwrap_or_default().iter().map(|e| e["field"].clone()).collect();
        assert_eq!((code, json!(got)), (422, fields), "{over}: {problem}");
    }

    let (code, created) = send(app.http.post(url("/v1/alerts")).json(&alert(json!({}))), &admin).await;
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!((created["kpi"].as_str(), created["factor"].as_f64()), (Some("won_amount"), Some(0.8)));

    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&sink.url(), "Orbas alerts <alerts@orbas.test>").expect("mailer");
    let engine = Arc::new(Engine::new(Arc::new(orbas_warehouse::sql::Lake::new(root.clone()))));
    let scheduler =
        Scheduler::new(app.db.admin.clone(), db.clone(), engine, Arc::new(mailer), SchedulerConfig::default());
    let at = |secs: i64| Utc::now() + chrono::Duration::seconds(secs);

    // First check: one digest each, listing exactly the breaches they answer for.
    let want_rep = BTreeSet::from([rep_id.clone()]);
    let want_manager: BTreeSet<String> = breach.intersection(&team).cloned().collect();
    let tick = scheduler.tick(at(2)).await.expect("tick");
    assert_eq!(
        (tick.alerts, tick.digests, tick.failed),
        ((want_rep.len() + want_manager.len()) as u64, 2, 0),
        "{tick:?}"
    );
    let first = mails(&sink, 0);
    let to = |who: &str, ms: &[(String, String, String)]| -> Vec<(String, String)> {
        ms.iter().filter(|(t, _, _)| t == who).map(|(_, s, b)| (s.clone(), b.clone())).collect()
    };
    let rep_mail = to(&rep, &first);
    let manager_mail = to(&manager, &first);
    assert_eq!((rep_mail.len(), manager_mail.len(), first.len()), (1, 1, 2));
    assert_eq!(uuids(&rep_mail[0].1), want_rep, "{}", rep_mail[0].1);
    assert_eq!(uuids(&manager_mail[0].1), want_manager, "{}", manager_mail[0].1);
    assert!(rep_mail[0].0.starts_with("Alert: Under quota"), "{}", rep_mail[0].0);
    for (body, who) in [(&rep_mail[0].1, &want_rep), (&manager_mail[0].1, &want_manager)] {
        for u in who {
            let (won, goal) = now_oracle[u];
            let line = body.lines().find(|l| l.contains(u.as_str())).expect("a line per group");
            let cells: Vec<&str> = line.split('\t').collect();
            assert_eq!(cells[1..3], [format_value(won, Unit::Currency), format_value(goal, Unit::Currency)], "{line}");
        }
    }
    // The recorded breaches hold the values SQL computes.
    let (code, events) = send(app.http.get(url(&format!("/v1/alerts/{id}/events"))), &admin).await;
    assert_eq!(code, 200, "{events}");
    let events = events.as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), want_rep.len() + want_manager.len());
    for e in &events {
        let (won, goal) = now_oracle[e["group_key"].as_str().expect("group")];
        let close = |a: &Value, b: f64| (a.as_f64().expect("a number") - b).abs() < 0.01;
        assert!(close(&e["value"], won) && close(&e["goal"], goal), "{e} vs {won} / {goal}");
        assert_eq!((e["status"].as_str(), e["period"].as_str()), (Some("sent"), Some(quarter.key().as_str())));
    }

    // Checked again: nothing new, nothing mailed.
    let tick = scheduler.tick(at(4)).await.expect("tick");
    assert_eq!(tick, Tick::default(), "the same breaches are not mailed twice");
    assert_eq!(sink.messages().len(), 2);

    // A raised goal (ETag-guarded): only the newly breaching owners are new, and only they are mailed.
    let r = app.http.get(url(&format!("/v1/alerts/{id}"))).bearer_auth(&admin).send().await.expect("get");
    let etag = r.headers().get("etag").and_then(|v| v.to_str().ok()).expect("an ETag").to_owned();
    let patch = |tag: &str| {
        app.http.patch(url(&format!("/v1/alerts/{id}"))).header("if-match", tag).json(&json!({"factor": 1.0}))
    };
    assert_eq!(send(patch("\"stale\""), &admin).await.0, 412);
    let (code, patched) = send(patch(&etag), &admin).await;
    assert_eq!((code, patched["factor"].as_f64()), (200, Some(1.0)), "{patched}");
    let full = oracle(&app, tenant.0, quarter, 1.0).await;
    let newly: BTreeSet<String> = breaching(&full).difference(&breach).cloned().collect();
    let (code, report) = send(app.http.post(url(&format!("/v1/alerts/{id}/check"))), &admin).await;
    assert_eq!(code, 200, "{report}");
    for r in report["recipients"].as_array().expect("recipients") {
        let reach = if r["email"].as_str() == Some(rep.as_str()) { &want_rep } else { &team };
        let found: BTreeMap<String, bool> = r["breaches"]
            .as_array()
            .expect("breaches")
            .iter()
            .map(|b| (b["group"].as_str().expect("group").to_owned(), b["new"].as_bool().expect("new")))
            .collect();
        let want: BTreeMap<String, bool> = breaching(&full)
            .into_iter()
            .filter(|u| reach.contains(u))
            .map(|u| (u.clone(), newly.contains(&u)))
            .collect();
        assert_eq!(found, want, "{r}");
    }
    let tick = scheduler.tick(at(6)).await.expect("tick");
    let new_mails = mails(&sink, 2);
    let new_for_manager: BTreeSet<String> = newly.intersection(&team).cloned().collect();
    assert_eq!(tick.digests as usize, new_mails.len());
    assert_eq!(
        to(&manager, &new_mails).iter().map(|(_, b)| uuids(b)).collect::<Vec<_>>(),
        if new_for_manager.is_empty() { vec![] } else { vec![new_for_manager] }
    );
    assert!(to(&rep, &new_mails).is_empty(), "the rep's breach was already mailed");

    // The next fiscal quarter is a new period: the rep's quota for it (set now, streamed to the lake)
    // is not met yet, and that breach is mailed again.
    let next_day: NaiveDate = quarter.until + chrono::Duration::days(1);
    let next_quarter = Window::of(Period::FiscalQuarter, None, next_day, fiscal as u32);
    sqlx::query(
        "INSERT INTO quotas (tenant_id, id, user_id, territory_id, fiscal_year, fiscal_quarter, period_start, \
                             period_end, amount, currency) \
         SELECT tenant_id, gen_random_uuid(), user_id, territory_id, \
                CASE WHEN fiscal_quarter = 4 THEN fiscal_year + 1 ELSE fiscal_year END, fiscal_quarter % 4 + 1, \
                $3, $4, amount, currency \
           FROM quotas WHERE tenant_id = $1 AND user_id = $2::uuid AND period_start = $5 \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&rep_id)
    .bind(next_quarter.from)
    .bind(next_quarter.until)
    .bind(quarter.from)
    .execute(&app.db.admin)
    .await
    .expect("next quarter's quota");
    landed(&app, &f.lake, tenant, "quotas").await;
    let next_oracle = oracle(&app, tenant.0, next_quarter, 1.0).await;
    assert!(breaching(&next_oracle).contains(&rep_id), "{next_oracle:?}");
    let before = sink.messages().len();
    let later = next_day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let tick = scheduler.tick(later).await.expect("tick");
    let next_mails = mails(&sink, before);
    let rep_next: Vec<BTreeSet<String>> = to(&rep, &next_mails).iter().map(|(_, b)| uuids(b)).collect();
    assert_eq!(rep_next, vec![want_rep.clone()]);
    assert!(to(&rep, &next_mails)[0].1.contains(&next_quarter.from.to_string()), "the new period is named");
    assert_eq!(tick.digests as usize, next_mails.len());
}
