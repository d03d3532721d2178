//! Scheduled reports end to end: a report scheduled over the API is mailed by the sender at its
//! (test-accelerated) time to a loopback SMTP server; each recipient's copy is computed under their own
//! permissions (a rep sees their own recommendations, a manager everyone's), the CSV and XLSX
//! attachments parse and match SQL over Postgres, the PDF (printed by headless Chromium) holds the
//! recipient's rows and no one else's, the HTML body shows its chart as an inline image, and every sent
//! copy is one delivery row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orbas_dashboards::engine::Engine;
use orbas_dashboards::render::Renderer;
use orbas_dashboards::report::Mailer;
use orbas_dashboards::scheduler::{Scheduler, SchedulerConfig};
use orbas_testkit::smtp::SmtpSink;
use serde_json::{Value, json};

use crate::helpers::{LakeApp, admin_token, flow, lake_app_rendering, landed, pdf_text, send};

/// `user_id → n` from CSV text with a header `user_id,n`.
fn counts_of_csv(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (u, n) = l.split_once(',').expect("two columns");
            (u.to_owned(), n.trim().parse().expect("a count"))
        })
        .collect()
}

/// `user_id → n` of the lines of `text` that start with one of `users`' ids followed by a count.
fn counts_in_text(text: &str, users: &BTreeMap<String, i64>) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let id = words.next()?;
            users.contains_key(id).then(|| (id.to_owned(), words.next().and_then(|n| n.parse().ok()).unwrap_or(-1)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_reach_each_recipient_as_they_may_see_the_data() {
    crate::helpers::trace();
    let renderer = Arc::new(Renderer::new(orbas_testkit::browser::chromium_path()));
    let LakeApp { app, tenant, root, db, dir: _dir } = lake_app_rendering(Some(renderer.clone())).await;
    // Recommendations for every rep and manager, so that who sees whose rows shows.
    sqlx::query(
        "INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, action, title, rationale, score)
         SELECT u.tenant_id, gen_random_uuid(), u.id, 'account', gen_random_uuid(), 'call', 'Follow up', 'test', 0.5
           FROM users u JOIN roles r ON r.id = u.role_id CROSS JOIN generate_series(1, 2)
          WHERE u.tenant_id = $1 AND r.key IN ('sales_rep', 'manager') AND u.status = 'active'",
    )
    .bind(tenant)
    .execute(&app.db.admin)
    .await
    .expect("recommendations");
    let f = flow(&app, &root).await;
    for t in ["recommendations", "opportunities"] {
        landed(&app, &f.lake, tenant, t).await;
    }
    let admin = admin_token(&app).await;

    // Who gets it: the rep with the most recommendations, and a manager.
    let (rep, rep_id): (String, String) = sqlx::query_as(
        "SELECT u.email, u.id::text FROM users u JOIN roles r ON r.id = u.role_id JOIN recommendations x ON x.user_id = u.id
          WHERE u.tenant_id = $1 AND r.key = 'sales_rep' AND u.status = 'active'
          GROUP BY u.email, u.id ORDER BY count(*) DESC, u.id LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&app.db.admin)
    .await
    .expect("a rep with recommendations");
    let manager: String = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id
          WHERE u.tenant_id = $1 AND r.key = 'manager' AND u.status = 'active' ORDER BY u.id LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&app.db.admin)
    .await
    .expect("a manager");
    let oracle: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT user_id::text, count(*) FROM recommendations WHERE tenant_id = $1 GROUP BY user_id",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("oracle")
    .into_iter()
    .collect();
    assert!(oracle.len() > 1, "recommendations of several users: {oracle:?}");

    let board = json!({"name": "Actions", "is_shared": true, "widgets": [
        {"kpi": "deals_won", "kind": "tile", "title": "Deals won", "w": 3},
        {"sql": "SELECT user_id, count(*) AS n FROM recommendations GROUP BY user_id ORDER BY user_id", "kind": "table",
         "title": "Recommendations by user", "x": 3, "w": 9},
        {"sql": "SELECT action, count(*) AS n FROM recommendations GROUP BY action ORDER BY action", "kind": "bar",
         "title": "Recommendations by action", "y": 1, "w": 12}]});
    let (code, board) = send(app.http.post(format!("{}/v1/dashboards", app.base)).json(&board), &admin).await;
    assert_eq!(code, 201, "{board}");
    let dashboard_id = board["id"].clone();

    // Bad schedules and strangers are field errors.
    let report = |cron: &str, tz: &str, to: Vec<&str>, format: &str| {
        json!({"name": "Daily actions", "dashboard_id": dashboard_id, "cron": cron, "timezone": tz,
               "recipients": to, "format": format})
    };
    let post = |body: Value| app.http.post(format!("{}/v1/reports", app.base)).json(&body);
    for (body, fields) in [
        (report("61 * * * *", "UTC", vec![&rep], "csv"), json!(["cron"])),
        (report("0 8 * * 1", "Mars/Olympus", vec![&rep], "csv"), json!(["timezone"])),
        (report("0 8 * * 1", "UTC", vec!["nobody@example.com"], "csv"), json!(["recipients[0]"])),
        (report("0 8 * * 1", "UTC", vec!["not an address"], "csv"), json!(["recipients[0]"])),
    ] {
        let (code, problem) = send(post(body), &admin).await;
        let got: Vec<Value> =
            problem["errors"].as_array().cloned().unwrap_or_default().iter().map(|e| e["field"].clone()).collect();
        assert_eq!((code, json!(got)), (422, fields), "{problem}");
    }

    // Every two seconds, in Berlin time: CSV to the rep and the manager, XLSX to the manager.
    let (code, csv_report) =
        send(post(report("*/2 * * * * *", "Europe/Berlin", vec![&rep, &manager], "csv")), &admin).await;
    assert_eq!(code, 201, "{csv_report}");
    assert!(csv_report["next_run_at"].is_string());
    let (code, xlsx_report) = send(post(report("*/2 * * * * *", "UTC", vec![&manager], "xlsx")), &admin).await;
    assert_eq!(code, 201, "{xlsx_report}");
    let (code, pdf_report) = send(post(report("*/2 * * * * *", "UTC", vec![&rep, &manager], "pdf")), &admin).await;
    assert_eq!(code, 201, "{pdf_report}");

    let sink = SmtpSink::start().await;
    let mailer = Mailer::new(&sink.url(), "Orbas reports <reports@orbas.test>").expect("mailer");
    let engine = Arc::new(Engine::new(Arc::new(orbas_warehouse::sql::Lake::new(root.clone()))));
    let scheduler = Scheduler::new(
        app.db.admin.clone(),
        db.clone(),
        engine,
        Arc::new(mailer),
        SchedulerConfig { tick: Duration::from_millis(200), ..SchedulerConfig::default() },
    )
    .with_renderer(Some(renderer.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn(scheduler.run(stopped));
    let rep_lower = rep.to_lowercase();
    let manager_lower = manager.to_lowercase();
    orbas_testkit::eventually("the three reports mailed to everyone", Duration::from_secs(90), || {
        let got = sink.messages();
        let (rep_lower, manager_lower) = (rep_lower.clone(), manager_lower.clone());
        async move {
            let to = |who: &str| got.iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(who))).count();
            let pdf = |who: &str| {
                got.iter().any(|m| {
                    m.to.iter().any(|t| t.eq_ignore_ascii_case(who))
                        && String::from_utf8_lossy(&m.data).contains(".pdf")
                })
            };
            to(&rep_lower) >= 2 && to(&manager_lower) >= 3 && pdf(&rep_lower) && pdf(&manager_lower)
        }
    })
    .await;
    stop.send(true).expect("stop the sender");
    sender.await.expect("the sender stops");
    renderer.close().await;

    use mail_parser::MimeHeaders as _;
    let parser = mail_parser::MessageParser::default();
    let mut rep_csv = None;
    let mut manager_csv = None;
    let mut manager_xlsx = None;
    let mut rep_pdf = None;
    let mut manager_pdf = None;
    let mut charts_inline = 0;
    for m in sink.messages() {
        let parsed = parser.parse(&m.data).expect("a MIME message");
        assert_eq!(m.from, "reports@orbas.test");
        assert!(parsed.subject().is_some_and(|s| s.contains("Daily actions") && s.contains("Actions")));
        let html = parsed.body_html(0).expect("an HTML body").into_owned();
        assert!(html.contains("Recommendations by user") && html.contains("Deals won"), "{html}");
        // The chart is in the body as an image the mail carries (multipart/related, cid:) — unless the
        // dashboard is attached as a PDF, which has it.
        let cids: Vec<String> = parsed
            .parts
            .iter()
            .filter(|p| p.content_type().is_some_and(|c| c.c_type == "image" && c.subtype() == Some("png")))
            .filter_map(|p| p.content_id().map(str::to_owned))
            .collect();
        let printed = parsed.attachments().any(|a| a.attachment_name().is_some_and(|n| n.ends_with(".pdf")));
        assert_eq!(cids.len(), usize::from(!printed), "one chart image unless printed: {cids:?}");
        if let Some(cid) = cids.first() {
            assert!(html.contains(&format!("src=\"cid:{cid}\"")), "{html}");
            let png = parsed.parts.iter().find(|p| p.content_id() == Some(cid.as_str())).expect("the image");
            assert!(png.contents().starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
            charts_inline += 1;
        }
        for a in parsed.attachments() {
            let name = a.attachment_name().unwrap_or_default().to_owned();
            let to = m.to.first().cloned().unwrap_or_default().to_lowercase();
            match (name.as_str(), to == rep_lower) {
                ("recommendations_by_user.csv", true) => rep_csv = Some(a.contents().to_vec()),
                ("recommendations_by_user.csv", false) => manager_csv = Some(a.contents().to_vec()),
                ("actions.xlsx", false) => manager_xlsx = Some(a.contents().to_vec()),
                ("actions.pdf", true) => rep_pdf = Some(a.contents().to_vec()),
                ("actions.pdf", false) => manager_pdf = Some(a.contents().to_vec()),
                _ => {}
            }
        }
    }
    // The rep's copy holds the rep's own row only; the manager's every user's — as SQL counts them.
    let rep_counts = counts_of_csv(&String::from_utf8(rep_csv.expect("the rep's CSV")).expect("utf8"));
    assert_eq!(rep_counts, BTreeMap::from([(rep_id.clone(), oracle[&rep_id])]));
    let manager_counts = counts_of_csv(&String::from_utf8(manager_csv.expect("the manager's CSV")).expect("utf8"));
    assert_eq!(manager_counts, oracle);
    // The workbook: a sheet per widget, numbers as numbers.
    use calamine::{DataType as _, Reader as _};
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(manager_xlsx.expect("the manager's XLSX"))).expect("xlsx");
    assert_eq!(book.sheet_names(), ["deals_won", "recommendations_by_user", "recommendations_by_action"]);
    let sheet = book.worksheet_range("recommendations_by_user").expect("sheet");
    let from_sheet: BTreeMap<String, i64> =
        sheet.rows().skip(1).map(|r| (r[0].to_string(), r[1].get_float().map(|f| f as i64).unwrap_or(-1))).collect();
    assert_eq!(from_sheet, oracle);
    assert!(charts_inline >= 3, "every copy shows its chart");
    // The PDFs: the whole dashboard, the recipient's rows as SQL counts them and no one else's.
    for (pdf, mine) in [
        (rep_pdf.expect("the rep's PDF"), BTreeMap::from([(rep_id.clone(), oracle[&rep_id])])),
        (manager_pdf.expect("the manager's PDF"), oracle.clone()),
    ] {
        assert!(pdf.starts_with(b"%PDF-"), "a PDF");
        let text = pdf_text(&pdf);
        for title in ["Actions", "Deals won", "Recommendations by user", "Recommendations by action"] {
            assert!(text.contains(title), "{title} in {text}");
        }
        let rows = counts_in_text(&text, &oracle);
        assert_eq!(rows, mine, "{text}");
    }

    // The same dashboard printed on demand, under the caller's filters.
    let pdf_url = format!("{}/v1/dashboards/{}/pdf", app.base, dashboard_id.as_str().expect("id"));
    let resp = app.http.get(&pdf_url).bearer_auth(&admin).send().await.expect("GET pdf");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    assert_eq!(resp.headers()["content-disposition"], "attachment; filename=\"Actions.pdf\"");
    let text = pdf_text(&resp.bytes().await.expect("body"));
    assert_eq!(counts_in_text(&text, &oracle), oracle, "{text}");
    let (code, problem) = send(app.http.get(format!("{pdf_url}?from=someday")), &admin).await;
    assert_eq!(code, 400, "{problem}");

    // Every copy mailed is one sent delivery; no run was sent twice.
    let id = csv_report["id"].as_str().expect("id");
    let (code, deliveries) = send(app.http.get(format!("{}/v1/reports/{id}/deliveries", app.base)), &admin).await;
    assert_eq!(code, 200, "{deliveries}");
    let sent: Vec<&Value> = deliveries.as_array().expect("a list").iter().filter(|d| d["status"] == "sent").collect();
    let mailed_csv = sink
        .messages()
        .iter()
        .filter(|m| String::from_utf8_lossy(&m.data).contains("recommendations_by_user.csv"))
        .count();
    assert_eq!(sent.len(), mailed_csv);
    let mut runs: Vec<(String, String)> =
        sent.iter().map(|d| (d["email"].to_string(), d["scheduled_for"].to_string())).collect();
    runs.sort();
    let before = runs.len();
    runs.dedup();
    assert_eq!(runs.len(), before, "one copy per recipient and run");
}
