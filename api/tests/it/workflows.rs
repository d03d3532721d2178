//! Lead conversion (all or nothing) and customer timelines through the API.

use serde_json::json;

use crate::helpers::{TestApp, admin_token, send, spawn_app};

async fn count(app: &TestApp, sql: &str, name: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).bind(name).fetch_one(&app.db.admin).await.expect("count")
}

#[tokio::test]
async fn converting_a_lead_is_all_or_nothing() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let new_lead = |company: &str| {
        json!({"first_name": "Grace", "last_name": "Hopper", "email": "grace@cobol.example", "company": company,
               "title": "Rear Admiral", "source": "event"})
    };
    let (_, lead) = send(app.http.post(format!("{}/v1/leads", app.base)).json(&new_lead("Broken Corp")), &t).await;
    let convert = format!("{}/v1/leads/{}/convert", app.base, lead["id"].as_str().unwrap_or_default());
    // The opportunity fails last (a currency the schema refuses): account and contact must vanish too.
    let (status, problem) = send(
        app.http
            .post(&convert)
            .json(&json!({"opportunity": {"amount": "5000", "currency": "usd", "close_date": "2027-01-31"}})),
        &t,
    )
    .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(count(&app, "SELECT count(*) FROM accounts WHERE name = $1", "Broken Corp").await, 0);
    assert_eq!(count(&app, "SELECT count(*) FROM contacts WHERE email = $1", "grace@cobol.example").await, 0);
    let (_, still) =
        send(app.http.get(format!("{}/v1/leads/{}", app.base, lead["id"].as_str().unwrap_or_default())), &t).await;
    assert_eq!(still["status"], lead["status"]);

    let (status, done) =
        send(app.http.post(&convert).json(&json!({"opportunity": {"amount": "5000", "close_date": "2027-01-31"}})), &t)
            .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["lead"]["status"], "converted");
    assert_eq!(done["account"]["name"], "Broken Corp");
    assert_eq!(done["account"]["domain"], "cobol.example");
    assert_eq!(done["contact"]["account_id"], done["account"]["id"]);
    assert_eq!(done["opportunity"]["primary_contact_id"], done["contact"]["id"]);
    assert_eq!(done["opportunity"]["amount"], "5000.00");
    assert_eq!(done["lead"]["converted_opportunity_id"], done["opportunity"]["id"]);
    let audited: Vec<String> = sqlx::query_scalar(
        "SELECT resource || ':' || action FROM audit_logs WHERE request_id IS NOT NULL AND resource_id = ANY($1::uuid[]) ORDER BY resource",
    )
    .bind(
        ["lead", "account", "contact", "opportunity"]
            .iter()
            .map(|k| done[k]["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&app.db.admin)
    .await
    .expect("audit");
    for expected in ["accounts:create", "contacts:create", "leads:convert", "opportunities:create"] {
        assert!(audited.iter().any(|a| a == expected), "{expected} in {audited:?}");
    }
    let (status, _) = send(app.http.post(&convert).json(&json!({})), &t).await;
    assert_eq!(status, 409, "a lead converts once");

    // Converting into an existing account reuses it.
    let (_, lead2) = send(app.http.post(format!("{}/v1/leads", app.base)).json(&new_lead("Whatever")), &t).await;
    let (status, done2) = send(
        app.http
            .post(format!("{}/v1/leads/{}/convert", app.base, lead2["id"].as_str().unwrap_or_default()))
            .json(&json!({"account_id": done["account"]["id"]})),
        &t,
    )
    .await;
    assert_eq!(status, 200, "{done2}");
    assert_eq!((done2["account_created"].as_bool(), &done2["account"]["id"]), (Some(false), &done["account"]["id"]));
    assert!(done2["opportunity"].is_null());
}

#[tokio::test]
async fn timelines_are_newest_first_and_page_without_gaps() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    // The account with the most history.
    let account: String = sqlx::query_scalar(
        "SELECT a.id::text FROM accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.slug = $1 \
         ORDER BY (SELECT count(*) FROM tasks k WHERE k.account_id = a.id) DESC LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("account");
    let url = format!("{}/v1/accounts/{account}/timeline", app.base);
    let (status, all) = send(app.http.get(format!("{url}?limit=500")), &t).await;
    assert_eq!(status, 200, "{all}");
    let all = all["items"].as_array().cloned().unwrap_or_default();
    assert!(all.len() > 5, "history: {}", all.len());
    let kinds: std::collections::BTreeSet<_> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains("activity") && kinds.contains("stage_change"), "{kinds:?}");
    let times: Vec<&str> = all.iter().filter_map(|e| e["at"].as_str()).collect();
    let parsed: Vec<chrono::DateTime<chrono::Utc>> = times.iter().filter_map(|s| s.parse().ok()).collect();
    assert!(parsed.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let (mut paged, mut after) = (Vec::new(), None::<String>);
    loop {
        let cursor = after.as_ref().map(|c| format!("&after={c}")).unwrap_or_default();
        let (_, page) = send(app.http.get(format!("{url}?limit=4{cursor}")), &t).await;
        paged.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => after = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let (status, _) = send(app.http.get(format!("{url}?after=garbage")), &t).await;
    assert_eq!(status, 400);
}
