//! Next-best actions end to end: seeded CRM → real CDC → broker → sink → Delta lake → the refresher
//! (features, the serving scorers, the rules, ranking) → `recommendations` → `GET /v1/me/recommendations`.
//! Checks that what a rep sees round-trips with its reasons, that feedback given over the API (read
//! back from the lake) changes the next ranking — a dismissal as not the rep's record only keeps that
//! record off their list — and that logging a call over the API resolves the
//! "call this lead" action it answers.

use std::collections::HashMap;

use orbas_models::nba::{self, HOT_LEAD, Settings};
use orbas_oltp::db::Db;
use orbas_oltp::model::TenantId;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEMO_PASSWORD, TestApp, flow, landed, send, spawn_app_with_lake};

const TABLES: [&str; 13] = [
    "leads",
    "opportunities",
    "stage_histories",
    "pipeline_stages",
    "interaction_logs",
    "accounts",
    "tickets",
    "subscriptions",
    "analytics_events",
    "invoices",
    "payments",
    "recommendations",
    "recommendation_feedback",
];

async fn token(app: &TestApp, email: &str) -> String {
    let body: Value = app.login(email, DEMO_PASSWORD).await.json().await.expect("login json");
    body["access_token"].as_str().expect("access token").to_owned()
}

async fn mine(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = send(app.http.get(format!("{}/v1/me/recommendations?limit=200", app.base)), token).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().expect("a list").iter().filter(|r| r["kind"].is_string()).cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_round_trip_with_reasons_and_learn_from_feedback_and_calls() {
    let dir = tempfile::tempdir().expect("lake dir");
    let root = url::Url::from_directory_path(dir.path()).expect("lake url");
    let app = spawn_app_with_lake(Some(root.clone())).await;
    let tenant: TenantId = TenantId(
        sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
            .bind(&app.tenant_slug)
            .fetch_one(&app.db.admin)
            .await
            .expect("tenant"),
    );
    let f = flow(&app, &root).await;
    for t in TABLES {
        landed(&app, &f.lake, tenant, t).await;
    }
    let db = Db::new(app.db.app.pool().clone());
    // Generous rules so that a small tenant gets actions of several kinds.
    let settings = Settings { hot_quantile: 0.5, hot_min_probability: 0.0, churn_risk: 0.05, ..Settings::default() };
    let first = nba::refresh(&db, &f.lake, tenant, &settings).await.expect("refresh");
    assert!(first.synced.inserted > 0, "{first:?}");

    // Round trip: what each rep gets over HTTP is their rule-made rows in Postgres, best first, with reasons.
    let rows: Vec<(Uuid, String, String, f64)> = sqlx::query_as(
        "SELECT r.user_id, u.email, r.kind, r.score FROM recommendations r JOIN users u ON u.id = r.user_id
          WHERE r.tenant_id = $1 AND r.kind IS NOT NULL AND r.status = 'open'",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("rows");
    let mut per_rep: HashMap<(Uuid, String), usize> = HashMap::new();
    for (user, email, _, _) in &rows {
        *per_rep.entry((*user, email.clone())).or_default() += 1;
    }
    assert!(per_rep.values().all(|n| *n <= settings.per_rep), "at most {} per rep", settings.per_rep);
    // The rep with the most actions: the feedback and call checks are about them.
    let ((rep, email), count) =
        per_rep.iter().max_by_key(|(k, n)| (**n, k.0)).map(|(k, n)| (k.clone(), *n)).expect("a rep");
    let tok = token(&app, &email).await;
    let before = mine(&app, &tok).await;
    assert_eq!(before.len(), count, "the API shows the rep's open actions: {before:#?}");
    for r in &before {
        assert_eq!(r["user_id"], json!(rep));
        assert!(r["rationale"].as_str().is_some_and(|s| s.len() > 20 && s.chars().any(|c| c.is_ascii_digit())), "{r}");
        assert!(r["title"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(r["expected_value"].as_str().and_then(|v| v.parse::<f64>().ok()).is_some_and(|v| v >= 0.0), "{r}");
        assert!(r["currency"].as_str().is_some_and(|c| c.len() == 3));
        assert!(r["factors"].as_array().is_some_and(|f| !f.is_empty()), "{r}");
        assert!(r["expires_at"].is_string());
    }
    let scores: Vec<f64> = before.iter().map(|r| r["score"].as_f64().expect("score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    // A second refresh over the same lake changes nothing.
    let again = nba::refresh(&db, &f.lake, tenant, &settings).await.expect("refresh");
    assert_eq!((again.synced.inserted, again.synced.updated, again.synced.resolved), (0, 0, 0), "{again:?}");

    // Feedback: the rep dismisses one action of their most frequent type over the API.
    let mut by_action: HashMap<String, Vec<&Value>> = HashMap::new();
    for r in &before {
        by_action.entry(r["action"].as_str().expect("action").to_owned()).or_default().push(r);
    }
    let (action, of_type) = by_action.iter().max_by_key(|(a, v)| (v.len(), a.to_string())).expect("an action type");
    let dismissed = of_type[0]["id"].as_str().expect("id").to_owned();
    let (status, body) = send(
        app.http
            .post(format!("{}/v1/recommendations/{dismissed}/feedback", app.base))
            .json(&json!({"verdict": "dismiss", "reason": "Already in touch"})),
        &tok,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "dismissed");
    landed(&app, &f.lake, tenant, "recommendation_feedback").await;
    landed(&app, &f.lake, tenant, "recommendations").await;
    let after_feedback = nba::refresh(&db, &f.lake, tenant, &settings).await.expect("refresh");
    assert!(after_feedback.synced.suppressed >= 1, "the dismissed action is not proposed again: {after_feedback:?}");
    let after = mine(&app, &tok).await;
    assert!(after.iter().all(|r| r["id"] != json!(dismissed)), "the dismissed action is gone");
    let old: HashMap<&str, f64> =
        before.iter().map(|r| (r["id"].as_str().expect("id"), r["score"].as_f64().expect("score"))).collect();
    let mut compared = 0;
    for r in &after {
        let Some(was) = old.get(r["id"].as_str().expect("id")) else { continue };
        let now = r["score"].as_f64().expect("score");
        if r["action"] == json!(action) {
            assert!(now < *was - 1e-4, "a dismissal lowers the rest of its type: {was} → {now} ({r})");
        } else {
            assert!((now - was).abs() < 1e-3, "other types keep their score: {was} → {now} ({r})");
        }
        compared += 1;
    }
    assert!(compared + 1 >= before.len().min(settings.per_rep), "the rest stayed: {compared} of {}", before.len());

    // "Not my record": no verdict on the advice (the rest keep their scores), and nothing on that
    // record is proposed to the rep again. A code with another verdict, or an unknown one, is refused.
    let target = after.iter().find(|r| r["kind"] != json!(HOT_LEAD)).or(after.first()).expect("an action left");
    let (target, record) = (target["id"].as_str().expect("id").to_owned(), target["entity_id"].clone());
    for (bad, why) in [
        (json!({"verdict": "accept", "reason_code": "not_mine"}), "reason_code is only valid with verdict dismiss"),
        (json!({"verdict": "dismiss", "reason_code": "bored"}), "reason_code"),
    ] {
        let (status, body) =
            send(app.http.post(format!("{}/v1/recommendations/{target}/feedback", app.base)).json(&bad), &tok).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body.to_string().contains(why), "{bad}: {body}");
    }
    let (status, body) = send(
        app.http
            .post(format!("{}/v1/recommendations/{target}/feedback", app.base))
            .json(&json!({"verdict": "dismiss", "reason_code": "not_mine", "reason": "Belongs to the partner team"})),
        &tok,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let code: Option<String> =
        sqlx::query_scalar("SELECT reason_code FROM recommendation_feedback WHERE recommendation_id = $1::uuid")
            .bind(&target)
            .fetch_one(&app.db.admin)
            .await
            .expect("reason code");
    assert_eq!(code.as_deref(), Some("not_mine"), "the bad answers wrote nothing");
    landed(&app, &f.lake, tenant, "recommendation_feedback").await;
    landed(&app, &f.lake, tenant, "recommendations").await;
    let after_not_mine = nba::refresh(&db, &f.lake, tenant, &settings).await.expect("refresh");
    assert!(after_not_mine.synced.suppressed >= 2, "{after_not_mine:?}");
    let left = mine(&app, &tok).await;
    assert!(left.iter().all(|r| r["entity_id"] != record), "nothing on a record that is not the rep's: {left:#?}");
    let was: HashMap<&str, f64> =
        after.iter().map(|r| (r["id"].as_str().expect("id"), r["score"].as_f64().expect("score"))).collect();
    let mut kept = 0;
    for r in &left {
        if let Some(was) = was.get(r["id"].as_str().expect("id")) {
            let now = r["score"].as_f64().expect("score");
            assert!((now - was).abs() < 1e-3, "a dismissal as not mine judges no action type: {was} → {now} ({r})");
            kept += 1;
        }
    }
    assert!(kept + 1 >= after.len(), "the rest stayed: {kept} of {}", after.len());

    // A call logged over the API resolves the "call this hot lead" action it answers.
    let hot: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT r.id, r.entity_id, u.email FROM recommendations r JOIN users u ON u.id = r.user_id
          WHERE r.tenant_id = $1 AND r.kind = $2 AND r.status = 'open' ORDER BY r.score DESC LIMIT 1",
    )
    .bind(tenant)
    .bind(HOT_LEAD)
    .fetch_optional(&app.db.admin)
    .await
    .expect("hot lead");
    let (rec, lead, owner) = hot.expect("the generous rules propose at least one hot lead");
    let owner_token = token(&app, &owner).await;
    let (status, body) = send(
        app.http.post(format!("{}/v1/interactions", app.base)).json(&json!({
            "kind": "call", "direction": "outbound", "lead_id": lead, "subject": "Intro call", "duration_seconds": 900
        })),
        &owner_token,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["lead_id"], json!(lead));
    landed(&app, &f.lake, tenant, "interaction_logs").await;
    let after_call = nba::refresh(&db, &f.lake, tenant, &settings).await.expect("refresh");
    assert!(after_call.synced.resolved >= 1, "{after_call:?}");
    let status: String = sqlx::query_scalar("SELECT status FROM recommendations WHERE id = $1")
        .bind(rec)
        .fetch_one(&app.db.admin)
        .await
        .expect("status");
    assert_eq!(status, "done", "the call answered the action");
    assert!(mine(&app, &owner_token).await.iter().all(|r| r["id"] != json!(rec)));

    // Bad input to the new write is a problem+json with field details, and writes nothing.
    let (status, body) = send(
        app.http.post(format!("{}/v1/interactions", app.base)).json(&json!({"kind": "call", "duration_seconds": -5})),
        &owner_token,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> =
        body["errors"].as_array().map(|e| e.iter().filter_map(|x| x["field"].as_str()).collect()).unwrap_or_default();
    assert!(fields.contains(&"lead_id") && fields.contains(&"duration_seconds"), "{body}");

    // Scores with their explanations, for whoever may read the record.
    orbas_models::ops::retrain(&db, &f.lake, tenant, orbas_models::features::Entity::Lead).await.expect("retrain");
    let (status, body) = send(app.http.get(format!("{}/v1/leads/{lead}/scores", app.base)), &owner_token).await;
    assert_eq!(status, 200, "{body}");
    let score = body
        .as_array()
        .and_then(|s| s.iter().find(|s| s["model"] == "lead_conversion"))
        .unwrap_or_else(|| panic!("a lead conversion score: {body}"));
    assert!(score["score"].as_f64().is_some_and(|p| p > 0.0 && p < 1.0), "{score}");
    assert_eq!(score["version_status"], "active");
    let factors = score["explanation"].as_array().expect("explanation");
    assert!(!factors.is_empty() && factors.iter().all(|f| f["feature"].is_string() && f["contribution"].is_f64()));
    let (status, _) =
        send(app.http.get(format!("{}/v1/leads/{}/scores", app.base, Uuid::now_v7())), &owner_token).await;
    assert_eq!(status, 404);
}
