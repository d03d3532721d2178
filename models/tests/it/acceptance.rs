//! The acceptance model of next-best actions over a real lake: the verdicts read from the lake are
//! exactly Postgres's latest accept or dismiss per recommendation, less the dismissals that say the data
//! was stale or wrong (already handled, not the rep's record); the seed's reps answer with habits
//! (some accept most of what they are shown), which the learned model picks up and the rate cannot, so
//! retraining stores a version with its held-out metrics and puts it in service; a version of another
//! recipe in service is retired rather than served.

use std::collections::BTreeMap;

use orbas_models::acceptance;
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::intelligence;
use orbas_oltp::seed;
use orbas_warehouse::sql::Limits;

use super::{landed, pipeline};

/// Per (rep, action type): accepted and answered, by Postgres.
const ORACLE: &str = "
WITH v AS (SELECT DISTINCT ON (recommendation_id) recommendation_id, verdict, reason_code
             FROM recommendation_feedback
            WHERE tenant_id = $1::uuid AND verdict IN ('accept', 'dismiss')
            ORDER BY recommendation_id, created_at DESC, id DESC)
SELECT r.user_id::text, r.action, count(*) FILTER (WHERE v.verdict = 'accept'), count(*)
  FROM v JOIN recommendations r ON r.id = v.recommendation_id
 WHERE v.reason_code IS NULL OR v.reason_code = 'not_relevant'
 GROUP BY 1, 2 ORDER BY 1, 2";

/// Plants recommendations and verdicts for every rep of tenant `$1`; returns how many.
const PLANT: &str = "
WITH reps AS (SELECT id, row_number() OVER (ORDER BY email) - 1 AS k, count(*) OVER () AS n
                FROM users WHERE tenant_id = $1::uuid),
acts(i, action, appeal) AS (VALUES (0, 'call', 0.7), (1, 'meeting', 0.5), (2, 'renewal_outreach', 0.3),
                                   (3, 'follow_up', 0.1), (4, 'send_quote', -0.1), (5, 'nurture', -0.3),
                                   (6, 'email', -0.5), (7, 'upsell', -0.7)),
draws AS (SELECT g, abs(hashtext(g || ':rep')) AS r, abs(hashtext(g || ':action')) % 8 AS a,
                 (abs(hashtext(g || ':answer')) % 1000000) / 1e6 AS u
            FROM generate_series(1, 48 * (SELECT count(*) FROM users WHERE tenant_id = $1::uuid)) g),
planted AS (SELECT d.g, rp.id AS user_id, ac.action,
                   d.u < 1 / (1 + exp(-(4 * (rp.k::float8 / greatest(rp.n - 1, 1) - 0.5) + ac.appeal))) AS accepted,
                   now() - interval '60 days' + d.g * interval '40 minutes' AS at
              FROM draws d JOIN reps rp ON rp.k = d.r % rp.n JOIN acts ac ON ac.i = d.a),
recs AS (INSERT INTO recommendations (tenant_id, id, user_id, entity_type, entity_id, action, title, rationale,
                                      score, status, kind, created_at, updated_at)
         SELECT $1::uuid, gen_random_uuid(), user_id, 'lead', gen_random_uuid(), action, 'Planted', 'Planted', 0.5,
                CASE WHEN accepted THEN 'accepted' ELSE 'dismissed' END, 'planted', at, at
           FROM planted
         RETURNING id, user_id, status, created_at),
fb AS (INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, created_at, updated_at)
       SELECT $1::uuid, gen_random_uuid(), id, user_id, CASE status WHEN 'accepted' THEN 'accept' ELSE 'dismiss' END,
              created_at + interval '5 minutes', created_at + interval '5 minutes'
         FROM recs
       RETURNING 1)
SELECT count(*) FROM fb";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_from_the_lake_train_an_acceptance_model_that_serves() {
    let db = orbas_testkit::fresh_db().await;
    let p = pipeline(&db).await;
    let cfg = seed::SeedConfig::new(1, 0.05, 29).expect("seed config");
    let report = seed::load(&db.admin, &cfg).await.expect("seed");
    let a = report.tenants[0].0.to_string();
    let tenant = TenantId(a.parse().expect("tenant id"));
    // A rep changes their mind: a later dismissal overrides an accept (only the latest verdict counts).
    let changed: Option<String> = sqlx::query_scalar(
        "INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, reason, created_at)
         SELECT tenant_id, gen_random_uuid(), recommendation_id, user_id, 'dismiss', 'Changed my mind',
                created_at + interval '1 minute'
           FROM recommendation_feedback WHERE tenant_id = $1::uuid AND verdict = 'accept'
          ORDER BY id LIMIT 1
         RETURNING recommendation_id::text",
    )
    .bind(&a)
    .fetch_optional(&db.admin)
    .await
    .expect("a changed verdict");
    assert!(changed.is_some(), "the seed has accepted actions");
    // Another learns the lead was already being worked: that dismissal replaces the accept, and the
    // action is no verdict at all any more.
    let handled: Option<String> = sqlx::query_scalar(
        "INSERT INTO recommendation_feedback (tenant_id, id, recommendation_id, user_id, verdict, reason_code,
                                              created_at)
         SELECT tenant_id, gen_random_uuid(), recommendation_id, user_id, 'dismiss', 'already_handled',
                created_at + interval '1 minute'
           FROM recommendation_feedback WHERE tenant_id = $1::uuid AND verdict = 'accept'
          ORDER BY id DESC LIMIT 1
         RETURNING recommendation_id::text",
    )
    .bind(&a)
    .fetch_optional(&db.admin)
    .await
    .expect("a dismissal as already handled");
    assert!(handled.is_some() && handled != changed);
    let stale: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recommendation_feedback
          WHERE tenant_id = $1::uuid AND reason_code IN ('already_handled', 'not_mine')",
    )
    .bind(&a)
    .fetch_one(&db.admin)
    .await
    .expect("stale dismissals");
    assert!(stale >= 10, "the seed dismisses some actions as stale data: {stale}");
    // Feedback with habits: each rep accepts with log-odds `habit + appeal`, habits spread over ±2 by
    // the rep's place in the alphabet, appeals of the eight action types over ±0.7; six answers a rep
    // and action type on average, one every 40 minutes — too few per rep and type for the rate alone.
    let planted: i64 = sqlx::query_scalar(PLANT).bind(&a).fetch_one(&db.admin).await.expect("planted feedback");
    assert!(planted >= 300, "{planted} planted verdicts");
    for table in ["recommendations", "recommendation_feedback"] {
        landed(&db, &p.lake, &a, table).await;
    }

    let want: Vec<(String, String, i64, i64)> =
        sqlx::query_as(ORACLE).bind(&a).fetch_all(&db.admin).await.expect("oracle");
    let ctx = p.lake.session(&a, Limits::default()).await.expect("session");
    let verdicts = acceptance::verdicts(&ctx).await.expect("verdicts");
    let mut ours: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for v in &verdicts {
        let t = ours.entry((v.user.to_string(), v.action.as_str().to_owned())).or_default();
        t.0 += i64::from(v.accepted);
        t.1 += 1;
    }
    let want: BTreeMap<(String, String), (i64, i64)> =
        want.into_iter().map(|(u, action, acc, n)| ((u, action), (acc, n))).collect();
    assert_eq!(ours, want, "verdicts per rep and action type: lake vs Postgres");
    let n = verdicts.len();
    assert!(n >= acceptance::MIN_TRAIN + acceptance::MIN_TEST + 40, "{n} verdicts: enough to learn from");

    // Retraining: a version with held-out metrics, better than the rate on the latest quarter, served.
    let r = acceptance::retrain(&db.app, &p.lake, tenant).await.expect("retrain");
    let (_, learned) = r.trial.candidate.clone().expect("a candidate");
    let rate = r.trial.rate.clone().expect("the rate");
    assert_eq!((r.trial.verdicts, r.trial.test), (n, n.div_ceil(4)));
    eprintln!(
        "acceptance on {n} verdicts, {} held out ({} accepted): learned log-loss {:.4} AUC {:?}; rate log-loss {:.4} AUC {:?}; gain {:?}",
        r.trial.test, r.trial.test_accepted, learned.log_loss, learned.auc, rate.log_loss, rate.auc, r.trial.gain
    );
    assert!(learned.log_loss < rate.log_loss, "learned {} vs the rate {}", learned.log_loss, rate.log_loss);
    assert!(r.trial.gain.is_some_and(|g| g.mean > 0.0 && g.mean > g.se), "more than one error: {:?}", r.trial.gain);
    assert_eq!((r.version, r.promoted, r.serving), (Some(1), true, "learned"));
    let stored: (String, f64, f64, i64) = sqlx::query_as(
        "SELECT v.status, (v.metrics->'held_out'->>'log_loss')::float8, (v.metrics->'rate_held_out'->>'log_loss')::float8,
                v.training_rows
           FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.tenant_id = $1::uuid AND m.key = 'nba_acceptance' AND v.version = 1",
    )
    .bind(&a)
    .fetch_one(&db.admin)
    .await
    .expect("the stored version");
    assert_eq!(stored, ("active".to_owned(), learned.log_loss, rate.log_loss, n as i64));
    let serving = {
        let mut tx = db.app.begin(tenant).await.expect("tx");
        let s = acceptance::serving(tx.conn(), tenant).await.expect("serving");
        tx.commit().await.expect("commit");
        s
    };
    let serving = serving.expect("the learned model serves");
    let f = acceptance::Feedback::from_verdicts(&verdicts).serving(Some(serving));
    let v = verdicts[0];
    assert!(f.learned() && (f.acceptance(v.user, v.action) - f.rate(v.user, v.action)).abs() > 1e-9);

    // Retrained on the same verdicts: the candidate is no better than the version in service.
    let again = acceptance::retrain(&db.app, &p.lake, tenant).await.expect("retrain again");
    assert_eq!((again.version, again.promoted, again.serving), (Some(2), false, "learned"));

    // A version of another recipe in service is retired, not served: the better of the rate and a new
    // candidate takes over.
    {
        let mut tx = db.app.begin(tenant).await.expect("tx");
        let model = intelligence::ensure_model(tx.conn(), tenant, acceptance::MODEL_KEY, "x", "next_best_action", "x")
            .await
            .expect("model");
        let odd = serde_json::json!({"kind": "logistic", "features": ["something_else"]});
        let v =
            intelligence::add_version(tx.conn(), tenant, model.id, &odd, &serde_json::json!({}), 0, chrono::Utc::now())
                .await
                .expect("version");
        intelligence::promote(tx.conn(), model.id, v.id).await.expect("promote");
        tx.commit().await.expect("commit");
    }
    let third = acceptance::retrain(&db.app, &p.lake, tenant).await.expect("retrain a third time");
    assert!(third.trial.incumbent.is_none(), "another recipe is not judged");
    assert_eq!((third.version, third.promoted, third.serving), (Some(4), true, "learned"));
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM model_versions v JOIN ai_models m ON m.id = v.model_id
          WHERE m.tenant_id = $1::uuid AND m.key = 'nba_acceptance' AND v.status = 'active' AND v.version = 4",
    )
    .bind(&a)
    .fetch_one(&db.admin)
    .await
    .expect("active");
    assert_eq!(active, 1);
    p.stop().await;
}
