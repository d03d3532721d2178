//! Deals over HTTP: create, the stage workflow with its policy, history, audit, isolation.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, spawn_app};

async fn scalar(app: &TestApp, sql: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect(sql)
}

#[tokio::test]
async fn the_stage_workflow_enforces_the_policy_and_records_history() {
    let app = spawn_app().await;
    let login: Value = app.login(&app.admin_email, DEMO_PASSWORD).await.json().await.expect("json");
    let t = login["access_token"].as_str().unwrap_or_default().to_owned();
    let in_tenant = "FROM tenants t WHERE t.slug = $1";
    let account = scalar(
        &app,
        &format!("SELECT a.id::text FROM accounts a WHERE a.tenant_id = (SELECT t.id {in_tenant}) LIMIT 1"),
    )
    .await;
    let contact = scalar(
        &app,
        &format!("SELECT c.id::text FROM contacts c WHERE c.tenant_id = (SELECT t.id {in_tenant}) LIMIT 1"),
    )
    .await;
    let won = scalar(
        &app,
        &format!("SELECT s.id::text FROM pipeline_stages s WHERE s.is_won AND s.tenant_id = (SELECT t.id {in_tenant})"),
    )
    .await;

    let created = app.http.post(format!("{}/v1/opportunities", app.base)).bearer_auth(&t)
        .json(&json!({"account_id": account, "name": "Expansion 2027", "kind": "expansion", "amount": "0", "currency": "USD", "close_date": "2027-03-31"}))
        .send().await.expect("post");
    assert_eq!(created.status(), 201);
    let opp: Value = created.json().await.expect("json");
    assert_eq!(opp["status"], "open");
    let item = format!("{}/v1/opportunities/{}", app.base, opp["id"].as_str().unwrap_or_default());

    // Straight to won without amount and contact: refused, with the missing fields named.
    let refused = app
        .http
        .post(format!("{item}/stage"))
        .bearer_auth(&t)
        .json(&json!({"stage_id": won}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), 422);
    let detail = refused.json::<Value>().await.expect("json")["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("amount") && detail.contains("primary_contact_id"), "{detail}");

    let patched = app
        .http
        .patch(&item)
        .bearer_auth(&t)
        .json(&json!({"amount": "125000.00", "primary_contact_id": contact}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    // The rep pushes the close date a quarter: recorded with who and when; the same date again is no change.
    for date in ["2027-06-30", "2027-06-30"] {
        let pushed = app.http.patch(&item).bearer_auth(&t).json(&json!({"close_date": date})).send().await;
        assert_eq!(pushed.expect("patch").status(), 200);
    }
    let moves: Vec<Value> = app
        .http
        .get(format!("{item}/close-date-history"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!(
        (moves[0]["from_date"].as_str(), moves[0]["to_date"].as_str()),
        (Some("2027-03-31"), Some("2027-06-30"))
    );
    let me: Value = app
        .http
        .get(format!("{}/v1/me", app.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("me")
        .json()
        .await
        .expect("json");
    assert_eq!(moves[0]["changed_by"], me["user_id"]);
    let closed = app
        .http
        .post(format!("{item}/stage"))
        .bearer_auth(&t)
        .json(&json!({"stage_id": won}))
        .send()
        .await
        .expect("post");
    assert_eq!(closed.status(), 200);
    let closed: Value = closed.json().await.expect("json");
    assert_eq!((closed["status"].as_str(), closed["forecast_category"].as_str()), (Some("won"), Some("closed")));

    let history: Vec<Value> = app
        .http
        .get(format!("{item}/stage-history"))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(history.len(), 2, "created + won");
    assert_eq!(history[1]["to_stage_id"], json!(won));
    assert_eq!(history[1]["amount"], "125000.00");

    let again = app
        .http
        .post(format!("{item}/stage"))
        .bearer_auth(&t)
        .json(&json!({"stage_id": won}))
        .send()
        .await
        .expect("post");
    assert_eq!(again.status(), 422, "a closed deal does not move");
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE resource = 'opportunities' AND action = 'stage_change' AND resource_id = $1::uuid")
        .bind(opp["id"].as_str().unwrap_or_default())
        .fetch_one(&app.db.admin)
        .await
        .expect("audit");
    assert_eq!(audit, 1);

    let foreign = scalar(
        &app,
        "SELECT o.id::text FROM opportunities o JOIN tenants t ON t.id = o.tenant_id WHERE t.slug <> $1 LIMIT 1",
    )
    .await;
    let cross = app
        .http
        .post(format!("{}/v1/opportunities/{foreign}/stage", app.base))
        .bearer_auth(&t)
        .json(&json!({"stage_id": won}))
        .send()
        .await
        .expect("post");
    assert_eq!(cross.status(), 404);
    let cross_history = app
        .http
        .get(format!("{}/v1/opportunities/{foreign}/stage-history", app.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get");
    assert_eq!(cross_history.status(), 404);
    let cross_moves = app
        .http
        .get(format!("{}/v1/opportunities/{foreign}/close-date-history", app.base))
        .bearer_auth(&t)
        .send()
        .await
        .expect("get");
    assert_eq!(cross_moves.status(), 404);
}
