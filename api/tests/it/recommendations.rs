//! A rep's next-best actions and the feedback loop, over HTTP.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{DEMO_PASSWORD, spawn_app};

async fn insert_rec(db: &sqlx::PgPool, user: Uuid, score: f64, title: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, action, title, rationale, score) \
         SELECT tenant_id, gen_random_uuid(), id, 'account', gen_random_uuid(), 'call', $2, 'test', $3 FROM users WHERE id = $1 \
         RETURNING id",
    )
    .bind(user)
    .bind(title)
    .bind(score)
    .fetch_one(db)
    .await
    .expect("insert recommendation")
}

#[tokio::test]
async fn reps_see_their_best_actions_and_feedback_moves_them() {
    let app = spawn_app().await;
    let reps: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT u.id, u.email FROM users u JOIN roles r ON r.id = u.role_id JOIN tenants t ON t.id = u.tenant_id \
         WHERE t.slug = $1 AND r.key = 'sales_rep' AND u.status = 'active' ORDER BY u.id LIMIT 2",
    )
    .bind(&app.tenant_slug)
    .fetch_all(&app.db.admin)
    .await
    .expect("reps");
    let (me, other) = (&reps[0], &reps[1]);
    sqlx::query("UPDATE recommendations SET status = 'expired' WHERE user_id = $1")
        .bind(me.0)
        .execute(&app.db.admin)
        .await
        .expect("clear");
    let best = insert_rec(&app.db.admin, me.0, 0.9, "Call the champion").await;
    let second = insert_rec(&app.db.admin, me.0, 0.5, "Send the case study").await;
    let theirs = insert_rec(&app.db.admin, other.0, 0.99, "Not yours").await;

    let login: Value = app.login(&me.1, DEMO_PASSWORD).await.json().await.expect("json");
    let t = login["access_token"].as_str().unwrap_or_default().to_owned();
    let list: Vec<Value> = app.get("/v1/me/recommendations", &t).await.json().await.expect("json");
    let ids: Vec<&str> = list.iter().map(|r| r["id"].as_str().unwrap_or_default()).collect();
    assert_eq!(ids, vec![best.to_string().as_str(), second.to_string().as_str()]);

    let fb_url = |id: Uuid| format!("{}/v1/recommendations/{id}/feedback", app.base);
    let until = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let snoozed = app
        .http
        .post(fb_url(best))
        .bearer_auth(&t)
        .json(&json!({"verdict": "snooze", "reason": "on holiday", "snooze_until": until}))
        .send()
        .await
        .expect("post");
    assert_eq!(snoozed.status(), 200);
    assert_eq!(snoozed.json::<Value>().await.expect("json")["status"], "snoozed");
    let list: Vec<Value> = app.get("/v1/me/recommendations", &t).await.json().await.expect("json");
    assert_eq!(list.len(), 1, "the snoozed one is hidden");

    let not_mine =
        app.http.post(fb_url(theirs)).bearer_auth(&t).json(&json!({"verdict": "accept"})).send().await.expect("post");
    assert_eq!(not_mine.status(), 404);
    let past = app
        .http
        .post(fb_url(second))
        .bearer_auth(&t)
        .json(&json!({"verdict": "snooze", "snooze_until": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .expect("post");
    assert_eq!(past.status(), 422);
    let missing =
        app.http.post(fb_url(second)).bearer_auth(&t).json(&json!({"verdict": "snooze"})).send().await.expect("post");
    assert_eq!(missing.status(), 422);
    let accepted = app
        .http
        .post(fb_url(second))
        .bearer_auth(&t)
        .json(&json!({"verdict": "accept", "reason": "booked a call"}))
        .send()
        .await
        .expect("post");
    assert_eq!(accepted.status(), 200);

    let feedback: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT verdict, reason FROM recommendation_feedback WHERE user_id = $1 ORDER BY id")
            .bind(me.0)
            .fetch_all(&app.db.admin)
            .await
            .expect("feedback rows");
    assert!(
        feedback.ends_with(&[
            ("snooze".into(), Some("on holiday".into())),
            ("accept".into(), Some("booked a call".into()))
        ]),
        "{feedback:?}"
    );
    let audits: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE resource = 'recommendations' AND action = 'feedback' AND actor_user_id = $1")
        .bind(me.0)
        .fetch_one(&app.db.admin)
        .await
        .expect("audit");
    assert_eq!(audits, 2);
}
