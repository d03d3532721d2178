//! Every CRUD resource, table-driven: round trip with ETag and audit, and another tenant's ids
//! answering 404 for read, update and delete. A resource added to the table gets all of it.

use serde_json::{Value, json};

use crate::helpers::{DEMO_PASSWORD, TestApp, admin_token, spawn_app};

struct Case {
    table: &'static str,
    collection: &'static str,
    create: Value,
    patch: Value,
    /// Field the patch changes, and its new value.
    changed: (&'static str, Value),
}

fn cases() -> Vec<Case> {
    let case = |table, collection, create, patch, changed: (&'static str, Value)| Case {
        table,
        collection,
        create,
        patch,
        changed,
    };
    vec![
        case(
            "accounts",
            "/v1/accounts",
            json!({"name": "Stark Industries", "industry": "manufacturing"}),
            json!({"segment": "enterprise"}),
            ("segment", json!("enterprise")),
        ),
        case(
            "contacts",
            "/v1/contacts",
            json!({"first_name": "Pepper", "last_name": "Potts", "email": "pepper@stark.example"}),
            json!({"title": "CEO"}),
            ("title", json!("CEO")),
        ),
        case(
            "leads",
            "/v1/leads",
            json!({"first_name": "Happy", "last_name": "Hogan", "company": "Hogan Security", "source": "referral"}),
            json!({"status": "working"}),
            ("status", json!("working")),
        ),
        case(
            "tasks",
            "/v1/tasks",
            json!({"kind": "call", "subject": "Discovery call", "priority": "high"}),
            json!({"status": "completed"}),
            ("status", json!("completed")),
        ),
        case(
            "tickets",
            "/v1/tickets",
            json!({"subject": "Cannot log in", "priority": "high", "account_id": "$account"}),
            json!({"status": "solved"}),
            ("status", json!("solved")),
        ),
        case(
            "pipeline_stages",
            "/v1/pipeline-stages",
            json!({"pipeline": "partner", "name": "Sourced", "position": 0, "probability": "10.00"}),
            json!({"probability": "20.00"}),
            ("probability", json!("20.00")),
        ),
        case(
            "products",
            "/v1/products",
            json!({"sku": "TEST-SKU-1", "name": "Widget", "family": "add_on"}),
            json!({"is_active": false}),
            ("is_active", json!(false)),
        ),
        case(
            "quotes",
            "/v1/quotes",
            json!({"opportunity_id": "$opportunity", "tax_pct": "10.00", "items": [
                {"product_id": "$product", "quantity": "2.00", "unit_price": "50.00", "discount_pct": "10.00"}]}),
            json!({"status": "in_review"}),
            ("status", json!("in_review")),
        ),
        case(
            "subscriptions",
            "/v1/subscriptions",
            json!({"account_id": "$account", "plan_name": "Pro", "mrr": "99.00", "currency": "USD",
                   "started_at": "2026-01-01T00:00:00Z", "current_period_end": "2026-02-01T00:00:00Z"}),
            json!({"seats": 5}),
            ("seats", json!(5)),
        ),
        case(
            "invoices",
            "/v1/invoices",
            json!({"account_id": "$account", "currency": "USD", "tax_pct": "20.00",
                   "items": [{"description": "Setup", "quantity": "1.00", "unit_price": "500.00"}]}),
            json!({"status": "void"}),
            ("status", json!("void")),
        ),
        case(
            "campaigns",
            "/v1/campaigns",
            json!({"name": "Spring webinar", "kind": "webinar"}),
            json!({"status": "active"}),
            ("status", json!("active")),
        ),
        case(
            "knowledge_articles",
            "/v1/knowledge-articles",
            json!({"title": "Resetting passwords", "slug": "resetting-passwords", "body": "Open settings, then…"}),
            json!({"status": "published"}),
            ("status", json!("published")),
        ),
        case(
            "employees",
            "/v1/employees",
            json!({"full_name": "Ada Lovelace", "email": "ada@example.com", "hire_date": "2026-01-05"}),
            json!({"title": "Engineer"}),
            ("title", json!("Engineer")),
        ),
    ]
}

/// Replaces `"$account"`, `"$opportunity"` and `"$product"` with ids of the test tenant's records.
async fn resolve(app: &TestApp, v: &Value) -> Value {
    let mut text = v.to_string();
    for (placeholder, table) in [("$account", "accounts"), ("$opportunity", "opportunities"), ("$product", "products")]
    {
        if !text.contains(placeholder) {
            continue;
        }
        let id: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT x.id::text FROM {table} x JOIN tenants t ON t.id = x.tenant_id WHERE t.slug = $1 ORDER BY x.id LIMIT 1"
        )))
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("reference id");
        text = text.replace(placeholder, &id);
    }
    serde_json::from_str(&text).expect("json")
}

#[tokio::test]
async fn every_resource_round_trips_with_etags_and_audit() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    for c in cases() {
        let body = resolve(&app, &c.create).await;
        let created = app
            .http
            .post(format!("{}{}", app.base, c.collection))
            .bearer_auth(&t)
            .json(&body)
            .send()
            .await
            .expect("post");
        let status = created.status();
        let etag = created.headers().get("etag").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let text = created.text().await.expect("body");
        assert_eq!(status, 201, "{}: {text}", c.collection);
        let rec: Value = serde_json::from_str(&text).expect("json");
        let item = format!("{}{}/{}", app.base, c.collection, rec["id"].as_str().unwrap_or_default());
        // Every field sent comes back as sent (nested lines are checked by the resources' own tests).
        for (k, v) in body.as_object().cloned().unwrap_or_default().into_iter().filter(|(_, v)| !v.is_array()) {
            assert_eq!(rec[&k], v, "{} {k}", c.collection);
        }
        let patched =
            app.http.patch(&item).bearer_auth(&t).header("if-match", &etag).json(&c.patch).send().await.expect("patch");
        let status = patched.status();
        let after: Value = patched.json().await.expect("json");
        assert_eq!(status, 200, "{}: {after}", c.collection);
        assert_eq!(after[c.changed.0], c.changed.1, "{}", c.collection);
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

/// Makes unique fields of a create body unique per caller (`n`), so every role can create its own.
fn unique_per(body: &Value, n: usize) -> Value {
    let mut b = body.clone();
    if let Some(o) = b.as_object_mut() {
        for (k, v) in o.iter_mut() {
            let Some(s) = v.as_str() else { continue };
            *v = match k.as_str() {
                "sku" => json!(format!("{s}-R{n}")),
                "slug" => json!(format!("{s}-r{n}")),
                "email" => json!(format!("r{n}.{s}")),
                "name" if o_is_stage(s) => json!(format!("{s} {n}")),
                _ => continue,
            };
        }
        if let Some(p) = o.get_mut("position") {
            *p = json!(n);
        }
    }
    b
}

fn o_is_stage(name: &str) -> bool {
    name == "Sourced"
}

/// Every role against every resource's list, create, read, update and delete, compared with the
/// permission matrix in `orbas_oltp` (the one place decisions live): allowed → 2xx; not allowed →
/// 403 for lists and writes, 404 for reading what the role may not see.
#[tokio::test]
async fn role_by_endpoint_matrix() {
    use orbas_oltp::auth::Principal;
    use orbas_oltp::model::{Action, RoleKey, TenantId, UserId};

    let app = spawn_app().await;
    let admin = admin_token(&app).await;
    let (tenant, admin_id): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT t.id, u.id FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE lower(u.email) = lower($1) AND t.slug = $2",
    )
    .bind(&app.admin_email)
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("admin");
    let mut checked = 0;
    for (n, role) in RoleKey::ALL.iter().enumerate() {
        let (user, email): (uuid::Uuid, String) = sqlx::query_as(
            "SELECT u.id, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
             WHERE t.slug = $1 AND r.key = $2 AND u.status = 'active' ORDER BY u.id LIMIT 1",
        )
        .bind(&app.tenant_slug)
        .bind(role.as_str())
        .fetch_one(&app.db.admin)
        .await
        .expect("a user of every role");
        let reports: Vec<uuid::Uuid> = sqlx::query_scalar(
            "WITH RECURSIVE team AS (SELECT id FROM users WHERE manager_id = $1 \
             UNION SELECT u.id FROM users u JOIN team t ON u.manager_id = t.id) SELECT id FROM team",
        )
        .bind(user)
        .fetch_all(&app.db.admin)
        .await
        .expect("team");
        let mut p = Principal::interactive(TenantId(tenant), UserId(user), *role);
        p.reports = reports.into_iter().map(UserId).collect();
        let t = {
            let body: Value = app.login(&email, DEMO_PASSWORD).await.json().await.expect("json");
            body["access_token"].as_str().unwrap_or_default().to_owned()
        };
        // The bearer check computes the same team (it drives `team` scopes).
        let me: Value = app.get("/v1/me", &t).await.json().await.expect("me");
        assert_eq!(me["team_size"].as_u64(), Some(p.reports.len() as u64), "{role}");
        for c in cases() {
            let owned = !matches!(c.table, "pipeline_stages" | "products" | "subscriptions" | "invoices" | "employees");
            let ctx = format!("{role} {}", c.collection);
            // list
            let list = app.get(&format!("{}?limit=1", c.collection), &t).await.status().as_u16();
            let may_list = p.scope_for(c.table, Action::Read).is_some();
            assert_eq!(list, if may_list { 200 } else { 403 }, "list: {ctx}");
            // create (owner defaults to the caller)
            let body = unique_per(&resolve(&app, &c.create).await, n);
            let created = app
                .http
                .post(format!("{}{}", app.base, c.collection))
                .bearer_auth(&t)
                .json(&body)
                .send()
                .await
                .expect("post");
            let may_create = p.may(c.table, Action::Create, owned.then_some(p.user));
            let status = created.status().as_u16();
            let text = created.text().await.unwrap_or_default();
            assert_eq!(status, if may_create { 201 } else { 403 }, "create: {ctx}: {text}");
            // read, update, delete a record the admin owns
            let (_, theirs) = {
                let r = app
                    .http
                    .post(format!("{}{}", app.base, c.collection))
                    .bearer_auth(&admin)
                    .json(&unique_per(&resolve(&app, &c.create).await, 100 + n))
                    .send()
                    .await
                    .expect("post");
                (r.status(), r.json::<Value>().await.expect("json"))
            };
            let item = format!("{}/{}", c.collection, theirs["id"].as_str().unwrap_or_default());
            let owner = owned.then_some(UserId(admin_id));
            let read = app.get(&item, &t).await.status().as_u16();
            assert_eq!(read, if p.may(c.table, Action::Read, owner) { 200 } else { 404 }, "read: {ctx}");
            let patch = app
                .http
                .patch(format!("{}{item}", app.base))
                .bearer_auth(&t)
                .json(&c.patch)
                .send()
                .await
                .expect("patch");
            let expected = match (p.may(c.table, Action::Read, owner), p.may(c.table, Action::Update, owner)) {
                (_, true) => 200,
                (true, false) => 403,
                (false, false) => 404,
            };
            assert_eq!(patch.status().as_u16(), expected, "update: {ctx}");
            let del = app.http.delete(format!("{}{item}", app.base)).bearer_auth(&t).send().await.expect("delete");
            let expected = match (p.may(c.table, Action::Read, owner), p.may(c.table, Action::Delete, owner)) {
                (_, true) => 204,
                (true, false) => 403,
                (false, false) => 404,
            };
            assert_eq!(del.status().as_u16(), expected, "delete: {ctx}");
            checked += 5;
        }
    }
    assert_eq!(checked, RoleKey::ALL.len() * cases().len() * 5);
}

/// Every sub-resource and workflow endpoint with another tenant's ids: 404, never the data.
#[tokio::test]
async fn another_tenants_ids_are_404_on_every_sub_resource_and_workflow() {
    let app = spawn_app().await;
    let t = admin_token(&app).await;
    let foreign = |table: &'static str| {
        let app = &app;
        async move {
            let id: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT x.id::text FROM {table} x JOIN tenants t ON t.id = x.tenant_id WHERE t.slug <> $1 ORDER BY x.id LIMIT 1"
            )))
            .bind(&app.tenant_slug)
            .fetch_one(&app.db.admin)
            .await
            .expect("foreign id");
            id
        }
    };
    let own_contact: String = sqlx::query_scalar(
        "SELECT c.id::text FROM contacts c JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("own contact");
    let (quote, invoice, ticket) = (foreign("quotes").await, foreign("invoices").await, foreign("tickets").await);
    let (account, contact, lead) = (foreign("accounts").await, foreign("contacts").await, foreign("leads").await);
    let (opp, stage, rec) =
        (foreign("opportunities").await, foreign("pipeline_stages").await, foreign("recommendations").await);
    let product = foreign("products").await;
    let base = &app.base;
    let requests = vec![
        app.http.get(format!("{base}/v1/quotes/{quote}/items")),
        app.http
            .post(format!("{base}/v1/quotes/{quote}/items"))
            .json(&json!({"product_id": product, "quantity": "1", "unit_price": "1"})),
        app.http.delete(format!("{base}/v1/quotes/{quote}/items/{quote}")),
        app.http.get(format!("{base}/v1/invoices/{invoice}/items")),
        app.http.get(format!("{base}/v1/tickets/{ticket}/messages")),
        app.http.post(format!("{base}/v1/tickets/{ticket}/messages")).json(&json!({"body": "hello"})),
        app.http.get(format!("{base}/v1/accounts/{account}/timeline")),
        app.http.get(format!("{base}/v1/contacts/{contact}/timeline")),
        app.http.get(format!("{base}/v1/accounts/{account}/duplicates")),
        app.http.get(format!("{base}/v1/contacts/{contact}/duplicates")),
        app.http.get(format!("{base}/v1/leads/{lead}/duplicates")),
        app.http.post(format!("{base}/v1/contacts/{contact}/merge")).json(&json!({"duplicate_id": own_contact})),
        app.http.post(format!("{base}/v1/contacts/{own_contact}/merge")).json(&json!({"duplicate_id": contact})),
        app.http.post(format!("{base}/v1/leads/{lead}/convert")).json(&json!({})),
        app.http.post(format!("{base}/v1/opportunities/{opp}/stage")).json(&json!({"stage_id": stage})),
        app.http.get(format!("{base}/v1/opportunities/{opp}/stage-history")),
        app.http.post(format!("{base}/v1/recommendations/{rec}/feedback")).json(&json!({"verdict": "accept"})),
    ];
    for req in requests {
        let r = req.bearer_auth(&t).send().await.expect("send");
        let (url, status) = (r.url().to_string(), r.status().as_u16());
        let body = r.text().await.unwrap_or_default();
        assert_eq!(status, 404, "{url}: {body}");
        assert!(!body.contains(&contact) || url.contains(&contact), "{url} leaks: {body}");
    }
    // A foreign record named in a body is as absent as one in a path.
    let (own_lead,): (String,) = sqlx::query_as(
        "SELECT l.id::text FROM leads l JOIN tenants t ON t.id = l.tenant_id WHERE t.slug = $1 AND l.status <> 'converted' LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("own lead");
    let r = app
        .http
        .post(format!("{base}/v1/leads/{own_lead}/convert"))
        .bearer_auth(&t)
        .json(&json!({"account_id": account}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
}
