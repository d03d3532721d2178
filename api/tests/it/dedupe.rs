//! Duplicate detection and merging through the API: a re-entered contact is found by its email, and
//! merging moves every row that referenced the duplicate (checked against the catalog, table by table).

use serde_json::json;

use crate::helpers::{TestApp, admin_token, send, spawn_app};

/// Rows referencing `id` through a foreign key into `table`, per `child.column`.
async fn references(app: &TestApp, table: &str, id: &str) -> Vec<(String, i64)> {
    let fks: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, a.attname::text FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
         WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND a.attname <> 'tenant_id' ORDER BY 1, 2",
    )
    .bind(table)
    .fetch_all(&app.db.admin)
    .await
    .expect("fks");
    let mut out = Vec::new();
    for (child, col) in fks {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {child} WHERE {col} = $1::uuid")))
                .bind(id)
                .fetch_one(&app.db.admin)
                .await
                .expect("count");
        out.push((format!("{child}.{col}"), n));
    }
    out
}

#[tokio::test]
async fn a_reentered_contact_is_found_and_merged_with_all_its_history() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    // The seeded contact with the most history is the duplicate someone re-entered by hand.
    let (dup, first, last, email): (String, String, String, String) = sqlx::query_as(
        "SELECT c.id::text, c.first_name, c.last_name, c.email FROM contacts c JOIN tenants t ON t.id = c.tenant_id \
         WHERE t.slug = $1 AND c.email IS NOT NULL \
         ORDER BY (SELECT count(*) FROM tasks k WHERE k.contact_id = c.id) \
                + (SELECT count(*) FROM interaction_logs i WHERE i.contact_id = c.id) DESC, c.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("contact");
    let before: Vec<(String, i64)> = references(&app, "contacts", &dup).await;
    let total: i64 = before.iter().map(|(_, n)| n).sum();
    assert!(total > 3, "history to move: {before:?}");

    let (status, survivor) = send(
        app.http.post(format!("{}/v1/contacts", app.base)).json(&json!({
            "first_name": first, "last_name": last, "email": email.to_uppercase(), "phone": "+1 202 555 0100"})),
        &t,
    )
    .await;
    assert_eq!(status, 201, "{survivor}");
    let sid = survivor["id"].as_str().unwrap_or_default().to_owned();
    let (status, found) = send(app.http.get(format!("{}/v1/contacts/{sid}/duplicates", app.base)), &t).await;
    assert_eq!(status, 200, "{found}");
    let top = &found[0];
    assert_eq!(top["id"], dup.as_str(), "{found}");
    assert!(top["score"].as_f64().unwrap_or_default() >= 0.9);
    assert!(top["reasons"].as_array().into_iter().flatten().any(|r| r == "same_email"));

    let (status, merged) =
        send(app.http.post(format!("{}/v1/contacts/{sid}/merge", app.base)).json(&json!({"duplicate_id": dup})), &t)
            .await;
    assert_eq!(status, 200, "{merged}");
    // Gaps filled from the duplicate; nothing references it any more; the survivor has it all.
    let after_dup = references(&app, "contacts", &dup).await;
    assert!(after_dup.iter().all(|(_, n)| *n == 0), "{after_dup:?}");
    let after_survivor: i64 = references(&app, "contacts", &sid).await.iter().map(|(_, n)| n).sum();
    assert!(after_survivor >= total - before.iter().filter(|(k, _)| k.contains("tags")).map(|(_, n)| n).sum::<i64>());
    let moved: i64 =
        merged["merge"]["repointed"].as_object().into_iter().flatten().filter_map(|(_, v)| v.as_i64()).sum();
    assert!(moved > 0, "{merged}");
    assert_eq!(merged["merge"]["merged_snapshot"]["email"], email.as_str());
    let (status, _) = send(app.http.get(format!("{}/v1/contacts/{dup}", app.base)), &t).await;
    assert_eq!(status, 404);
    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM merge_records WHERE merged_id = $1::uuid AND survivor_id = $2::uuid")
            .bind(&dup)
            .bind(&sid)
            .fetch_one(&app.db.admin)
            .await
            .expect("merge record");
    assert_eq!(records, 1);
    // Merging a record into itself, or one that is gone, is refused.
    let (status, _) =
        send(app.http.post(format!("{}/v1/contacts/{sid}/merge", app.base)).json(&json!({"duplicate_id": sid})), &t)
            .await;
    assert_eq!(status, 422);
    let (status, _) =
        send(app.http.post(format!("{}/v1/contacts/{sid}/merge", app.base)).json(&json!({"duplicate_id": dup})), &t)
            .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn accounts_merge_with_their_hierarchy_and_deals() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let (dup, name, domain): (String, String, String) = sqlx::query_as(
        "SELECT a.id::text, a.name, a.domain FROM accounts a JOIN tenants t ON t.id = a.tenant_id \
         WHERE t.slug = $1 AND a.domain IS NOT NULL \
         ORDER BY (SELECT count(*) FROM opportunities o WHERE o.account_id = a.id) DESC, a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("account");
    let (_, survivor) = send(
        app.http
            .post(format!("{}/v1/accounts", app.base))
            .json(&json!({"name": format!("{name}, Inc."), "domain": domain})),
        &t,
    )
    .await;
    let sid = survivor["id"].as_str().unwrap_or_default().to_owned();
    let (_, found) = send(app.http.get(format!("{}/v1/accounts/{sid}/duplicates", app.base)), &t).await;
    assert_eq!(found[0]["id"], dup.as_str(), "{found}");
    let (status, merged) =
        send(app.http.post(format!("{}/v1/accounts/{sid}/merge", app.base)).json(&json!({"duplicate_id": dup})), &t)
            .await;
    assert_eq!(status, 200, "{merged}");
    assert!(references(&app, "accounts", &dup).await.iter().all(|(_, n)| *n == 0));
    assert!(merged["merge"]["repointed"]["opportunities.account_id"].as_i64().unwrap_or_default() > 0, "{merged}");
}
