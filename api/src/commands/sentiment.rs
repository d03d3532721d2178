//! `orbas models sentiment`: train the sentiment classifier on the committed hand-labelled set, then
//! either print its evaluation and the encoder's throughput (`--eval`) or register it and score the
//! tenants' records (see `orbas_models::sentiment`).

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use orbas_models::embed::{self, Embedder};
use orbas_models::sentiment::{self, SentimentModel, SideBySide};
use orbas_oltp::db::{self, Db};
use orbas_oltp::model::{SentimentSubject, TenantId};
use orbas_oltp::repo::identity;
use orbas_warehouse::sql::Lake;

use crate::cli::ModelsSentimentArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: &ModelsSentimentArgs) -> anyhow::Result<()> {
    let subjects = args
        .subjects
        .iter()
        .map(|s| s.parse::<SentimentSubject>())
        .collect::<Result<Vec<_>, _>>()
        .context("--subjects")?;
    let dir = match &args.model_dir {
        Some(d) => d.clone(),
        None => embed::model_dir(args.models.as_deref()).context("set ORBAS_MODELS or --model-dir")?,
    };
    let rows = args.generator_rows;
    let (model, results, throughput) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let embedder = Arc::new(Embedder::load(&dir)?);
        let (model, results) = SentimentModel::train(Arc::clone(&embedder), rows)?;
        Ok((model, results, throughput(&embedder)?))
    })
    .await??;
    print_evaluation(&model, &results, throughput);
    if args.eval {
        return Ok(());
    }
    let admin = db::connect(settings.database.admin_url().context("set DATABASE_URL")?, 2).await?;
    let tenants = match &args.tenant {
        Some(t) => vec![super::lake::tenant_id(settings, t).await?.parse::<TenantId>()?],
        None => identity::active_tenants(&admin).await?,
    };
    let app = Db::new(db::connect(&settings.database.app_url()?, 2).await?);
    let lake = Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?);
    for tenant in tenants {
        for &subject in &subjects {
            let r = sentiment::score_subjects(&app, &lake, tenant, &model, subject)
                .await
                .with_context(|| format!("scoring the {subject}s of tenant {tenant}"))?;
            println!(
                "tenant {tenant} {subject}: version {}{}; {} records, {} unchanged, {} scored ({} distinct texts): \
                 {} negative, {} neutral, {} positive",
                r.version,
                if r.registered { " (registered)" } else { "" },
                r.records,
                r.unchanged,
                r.scored,
                r.distinct_texts,
                r.labels[0],
                r.labels[1],
                r.labels[2],
            );
        }
    }
    Ok(())
}

/// Sentences per second of the encoder on the holdout set (distinct texts, batched as in scoring).
fn throughput(embedder: &Embedder) -> anyhow::Result<f64> {
    let texts: Vec<String> = sentiment::parse_tsv("holdout.tsv", sentiment::HOLDOUT_TSV)?
        .into_iter()
        .chain(orbas_oltp::seed::labelled_ticket_texts(99, 362))
        .map(|(_, t)| t)
        .collect();
    let started = Instant::now();
    embedder.embed(&texts)?;
    Ok(texts.len() as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

fn print_evaluation(model: &SentimentModel, results: &[SideBySide], throughput: f64) {
    let c = &model.classifier;
    println!(
        "sentiment classifier: softmax on {} embeddings{}, L2 {}, trained on {} hand-labelled rows (5-fold CV macro-F1 {:.3})",
        embed::MODEL_NAME,
        if c.with_lexicon { " + lexicon cues" } else { "" },
        c.softmax.l2,
        c.training_rows,
        c.cv_macro_f1
    );
    println!("{:<24} {:>6} {:>9} {:>9} {:>9} {:>9}", "set", "rows", "ours acc", "ours F1", "lex acc", "lex F1");
    for r in results {
        println!(
            "{:<24} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            r.name, r.ours.rows, r.ours.accuracy, r.ours.macro_f1, r.lexicon.accuracy, r.lexicon.macro_f1
        );
    }
    for r in results {
        println!("\n{} — ours:\n{}{} — lexicon:\n{}", r.name, r.ours, r.name, r.lexicon);
    }
    println!(
        "embedding throughput: {throughput:.0} sentences/s ({} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
}
