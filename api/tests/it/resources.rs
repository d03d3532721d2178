//! Every CRUD resource, table-driven: round trip with ETag and audit, and another tenant's ids
//! answering 404 for read, update and delete. A resource added to the table gets all of it.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, spawn_app};

struct Case {
    table: &'static str,
    collection: &'static str,
    create: Value,
    patch: Value,
    /// Field the patch changes, and its new value.
    changed: (&'static str, Value),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            table: "accounts",
            collection: "/v1/accounts",
            create: json!({"name": "Stark Industries", "industry": "manufacturing"}),
            patch: json!({"segment": "enterprise"}),
            changed: ("segment", json!("enterprise")),
        },
        Case {
            table: "contacts",
            collection: "/v1/contacts",
            create: json!({"first_name": "Pepper", "last_name": "Potts", "email": "pepper@stark.example"}),
            patch: json!({"title": "CEO"}),
            changed: ("title", json!("CEO")),
        },
        Case {
            table: "leads",
            collection: "/v1/leads",
            create: json!({"first_name": "Happy", "last_name": "Hogan", "company": "Hogan Security", "source": "referral"}),
            patch: json!({"status": "working"}),
            changed: ("status", json!("working")),
        },
        Case {
            table: "tasks",
            collection: "/v1/tasks",
            create: json!({"kind": "call", "subject": "Discovery call", "priority": "high"}),
            patch: json!({"status": "completed"}),
            changed: ("status", json!("completed")),
        },
    ]
}

async fn admin_token(app: &TestApp) -> String {
    let body: Value = app.login(&app.admin_email, DEMO_PASSWORD).await.json().await.expect("json");
    body["access_token"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn every_resource_round_trips_with_etags_and_audit() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    for c in cases() {
        let created = app
            .http
            .post(format!("{}{}", app.base, c.collection))
            .bearer_auth(&t)
            .json(&c.create)
            .send()
            .await
            .expect("post");
        assert_eq!(created.status(), 201, "{}", c.collection);
        let etag = created.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let rec: Value = created.json().await.expect("json");
        let item = format!("{}{}/{}", app.base, c.collection, rec["id"].as_str().unwrap_or_default());
        for (k, v) in c.create.as_object().cloned().unwrap_or_default() {
            assert_eq!(rec[&k], v, "{} {k}", c.collection);
        }
        let patched =
            app.http.patch(&item).bearer_auth(&t).header("if-match", &etag).json(&c.patch).send().await.expect("patch");
        assert_eq!(patched.status(), 200, "{}", c.collection);
        let after: Value = patched.json().await.expect("json");
        assert_eq!(after[c.changed.0], c.changed.1);
        let stale =
            app.http.patch(&item).bearer_auth(&t).header("if-match", &etag).json(&c.patch).send().await.expect("patch");
        assert_eq!(stale.status(), 412, "{}", c.collection);
        let listed: Value = app
            .http
            .get(format!("{}{}?limit=500", app.base, c.collection))
            .bearer_auth(&t)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert!(listed["items"].is_array(), "{}", c.collection);
        assert_eq!(app.http.delete(&item).bearer_auth(&t).send().await.expect("delete").status(), 204);
        assert_eq!(app.http.get(&item).bearer_auth(&t).send().await.expect("get").status(), 404);
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM audit_logs WHERE resource = $1 AND resource_id = $2::uuid ORDER BY id",
        )
        .bind(c.table)
        .bind(rec["id"].as_str().unwrap_or_default())
        .fetch_all(&app.db.admin)
        .await
        .expect("audit");
        assert_eq!(actions, vec!["create", "update", "delete"], "{}", c.collection);
    }
}

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_resource() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    for c in cases() {
        let foreign: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT x.id::text FROM {} x JOIN tenants t ON t.id = x.tenant_id WHERE t.slug <> $1 LIMIT 1",
            c.table
        )))
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("foreign id");
        let item = format!("{}{}/{foreign}", app.base, c.collection);
        for req in [app.http.get(&item), app.http.patch(&item).json(&c.patch), app.http.delete(&item)] {
            assert_eq!(req.bearer_auth(&t).send().await.expect("send").status(), 404, "{}", c.collection);
        }
    }
}

#[tokio::test]
async fn resource_rules_hold_through_the_api() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let task: Value = app
        .http
        .post(format!("{}/v1/tasks", app.base))
        .bearer_auth(&t)
        .json(&json!({"kind": "email", "subject": "Send proposal"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert!(task["completed_at"].is_null());
    let url = format!("{}/v1/tasks/{}", app.base, task["id"].as_str().unwrap_or_default());
    let done: Value = app
        .http
        .patch(&url)
        .bearer_auth(&t)
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert!(done["completed_at"].is_string(), "completing sets completed_at");
    let reopened: Value = app
        .http
        .patch(&url)
        .bearer_auth(&t)
        .json(&json!({"status": "open"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert!(reopened["completed_at"].is_null(), "reopening clears it");

    let lead: Value = app
        .http
        .post(format!("{}/v1/leads", app.base))
        .bearer_auth(&t)
        .json(&json!({"first_name": "A", "last_name": "B", "source": "web"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let lead_url = format!("{}/v1/leads/{}", app.base, lead["id"].as_str().unwrap_or_default());
    let converted =
        app.http.patch(&lead_url).bearer_auth(&t).json(&json!({"status": "converted"})).send().await.expect("patch");
    assert_eq!(converted.status(), 422, "conversion only through its workflow");
    let bad_enum = app
        .http
        .post(format!("{}/v1/leads", app.base))
        .bearer_auth(&t)
        .json(&json!({"first_name": "A", "last_name": "B", "source": "carrier-pigeon"}))
        .send()
        .await
        .expect("post");
    assert_eq!(bad_enum.status(), 422);
}
