//! Sentiment over a real lake: a seeded tenant's tickets go through CDC, the broker and the sink into
//! silver; `score_tickets` reads them there, writes `sentiment_scores` through the app role, and the
//! labels agree with the mood the generator planted in each ticket for a clear majority; a second run
//! scores nothing again, and the scores stream back into the lake.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;
use orbas_models::embed::{self, Embedder};
use orbas_models::sentiment::{self, SentimentModel};
use orbas_oltp::model::SentimentLabel;
use orbas_oltp::seed;
use orbas_warehouse::sql::{Lake, Limits};

async fn silver_count(lake: &Lake, tenant: &str, table: &str) -> Option<i64> {
    let ctx = lake.session(tenant, Limits::default()).await.ok()?;
    let batches = ctx.sql(&format!("SELECT count(*) FROM {table}")).await.ok()?.collect().await.ok()?;
    batches.first().map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scores_a_seeded_tenants_tickets_as_the_generator_planted_them() {
    let Some(dir) = embed::model_dir(None).filter(|d| d.join("model.safetensors").is_file()) else {
        eprintln!("SKIPPED: no all-MiniLM-L6-v2 under $ORBAS_MODELS — run scripts/setup.sh");
        return;
    };
    let db = orbas_testkit::fresh_db().await;
    let p = super::pipeline(&db).await;
    let cfg = seed::SeedConfig::new(1, 0.02, 23).expect("seed config");
    let report = seed::load(&db.admin, &cfg).await.expect("seed");
    let tenant = report.tenants[0].0;
    let t = tenant.to_string();
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&db.admin)
        .await
        .expect("tickets");
    assert!(tickets > 30, "{tickets} tickets");
    orbas_testkit::eventually("silver tickets caught up", Duration::from_secs(240), || async {
        silver_count(&p.lake, &t, "tickets").await == Some(tickets)
    })
    .await;

    let (model, _) = tokio::task::spawn_blocking(move || {
        let embedder = Arc::new(Embedder::load(&dir).expect("load the encoder"));
        SentimentModel::train(embedder, 30).expect("train")
    })
    .await
    .expect("training task");
    let first = sentiment::score_tickets(&db.app, &p.lake, tenant, &model).await.expect("score");
    assert!(first.registered && first.version == 1, "{first:?}");
    assert_eq!((first.records as i64, first.scored as i64, first.unchanged), (tickets, tickets, 0));

    let rows: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT s.label, t.subject, s.score FROM sentiment_scores s
           JOIN tickets t ON t.tenant_id = s.tenant_id AND t.id = s.ticket_id
          WHERE s.tenant_id = $1 AND s.subject_type = 'ticket' AND s.model_version_id IS NOT NULL",
    )
    .bind(tenant)
    .fetch_all(&db.admin)
    .await
    .expect("scores");
    assert_eq!(rows.len() as i64, tickets, "one score per ticket");
    let mut agree = 0;
    for (label, subject, score) in &rows {
        let planted = seed::planted_ticket_label(subject).expect("a generated subject");
        agree += usize::from(label.parse::<SentimentLabel>().expect("label") == planted);
        assert!((-1.0..=1.0).contains(score));
    }
    let share = agree as f64 / rows.len() as f64;
    eprintln!("{agree} of {} ticket labels agree with the planted mood ({share:.3})", rows.len());
    assert!(share > 0.5, "only {share:.3} agree with the planted mood");

    // Nothing changed: nothing is embedded again, and the version in service is reused.
    let again = sentiment::score_tickets(&db.app, &p.lake, tenant, &model).await.expect("score again");
    assert_eq!((again.registered, again.version, again.scored, again.unchanged), (false, 1, 0, first.records));
    // The scores flow through CDC into the lake like any CRM write.
    orbas_testkit::eventually("silver sentiment_scores", Duration::from_secs(240), || async {
        silver_count(&p.lake, &t, "sentiment_scores").await == Some(tickets)
    })
    .await;

    p.stop().await;
}
