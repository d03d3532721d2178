//! `orbas search index|rebuild|query`: keep the search index current from the CDC topics, rebuild it
//! from the beginning of the topics, and query it as an operator (one tenant, no permission filter
//! beyond the tenant).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use orbas_models::embed::{self, Embedder};
use orbas_search::{Access, DocType, IndexerConfig, Mode, SearchIndex, SearchRequest, Visibility};

use crate::cli::{SearchCommand, SearchIndexArgs, SearchModelArgs, SearchQueryArgs};
use crate::settings::Settings;

pub async fn run(settings: &Settings, cmd: SearchCommand) -> anyhow::Result<()> {
    match cmd {
        SearchCommand::Index(args) => index(settings, &args, false).await,
        SearchCommand::Rebuild(args) => index(settings, &args, true).await,
        SearchCommand::Query(args) => query(&args).await,
    }
}

/// The sentence encoder if its files are there; without it semantic search is unavailable.
pub fn load_embedder(args: &SearchModelArgs) -> anyhow::Result<Option<Arc<Embedder>>> {
    if args.no_embeddings {
        return Ok(None);
    }
    let dir = args.model_dir.clone().or_else(|| embed::model_dir(args.models.as_deref()));
    match dir {
        Some(d) if d.join("model.safetensors").exists() => Ok(Some(Arc::new(Embedder::load(&d)?))),
        Some(d) => {
            tracing::warn!(dir = %d.display(), "no sentence-embedding model; semantic search is unavailable");
            Ok(None)
        }
        None => Ok(None),
    }
}

fn open(dir: &Path, access: Access, embedder: Option<Arc<Embedder>>) -> anyhow::Result<Arc<SearchIndex>> {
    let dir = dir.to_owned();
    Ok(Arc::new(SearchIndex::open(&dir, access, embedder).with_context(|| format!("search index {}", dir.display()))?))
}

/// The index at `dir`, read-only, with the default embedding model if installed (for `orbas serve`).
/// A missing or unreadable model fails at once (configuration); an index that cannot be opened yet —
/// absent, or of an older layout the indexer has not replaced — is retried in the background every
/// few seconds while the server answers 503 for search.
pub async fn follower_slot(dir: &Path) -> anyhow::Result<crate::state::SearchSlot> {
    let model = SearchModelArgs { model_dir: None, models: None, no_embeddings: false };
    let embedder = load_embedder(&model)?;
    let slot = crate::state::SearchSlot::pending();
    let dir = dir.to_owned();
    let attempt = move || {
        let (dir, embedder) = (dir.clone(), embedder.clone());
        tokio::task::spawn_blocking(move || open(&dir, Access::ReadOnly, embedder))
    };
    match attempt().await? {
        Ok(ix) => slot.fill(ix),
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "search index not open yet; retrying every 5 s");
            let filler = slot.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    match attempt().await {
                        Ok(Ok(ix)) => {
                            tracing::info!("search index open");
                            filler.fill(ix);
                            return;
                        }
                        Ok(Err(e)) => tracing::debug!(error = format!("{e:#}"), "search index still not open"),
                        Err(e) => tracing::warn!(error = %e, "opening the search index panicked; retrying"),
                    }
                }
            });
        }
    }
    Ok(slot)
}

async fn index(settings: &Settings, args: &SearchIndexArgs, rebuild: bool) -> anyhow::Result<()> {
    let embedder = load_embedder(&args.model)?;
    let (dir, access) = (args.data_dir.clone(), Access::Writer);
    let ix = tokio::task::spawn_blocking(move || open(&dir, access, embedder)).await??;
    let brokers =
        args.brokers.clone().or_else(|| settings.kafka_brokers.clone()).unwrap_or_else(|| "127.0.0.1:9092".into());
    let mut cfg = IndexerConfig::new(&brokers);
    cfg.group = args.group.clone();
    cfg.batch_interval = Duration::from_millis(args.batch_ms.max(10));
    cfg.batch_rows = args.batch_rows.max(1);
    cfg.kafka_extra = super::pipeline::kafka_properties(&args.kafka_property)?;
    if rebuild {
        let ix = ix.clone();
        tokio::task::spawn_blocking(move || ix.clear()).await??;
        cfg.until_caught_up = true;
        println!("search index cleared; re-reading the CDC topics from the beginning");
    }
    let _metrics = match args.metrics_addr {
        Some(addr) => Some(crate::observe::serve_metrics(addr, "search indexer").await?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stats = orbas_search::indexer::run(cfg, ix.clone(), stop_rx).await.context("search indexer stopped")?;
    println!(
        "{} documents; {} messages in {} batches ({} upserts, {} deletes, {} malformed); applied LSN {}",
        ix.num_docs(),
        stats.messages,
        stats.batches,
        stats.upserts,
        stats.deletes,
        stats.malformed,
        ix.applied_lsn()
    );
    Ok(())
}

async fn query(args: &SearchQueryArgs) -> anyhow::Result<()> {
    let mode = Mode::parse(&args.mode).with_context(|| format!("--mode {}: keyword, semantic or hybrid", args.mode))?;
    let types = args
        .types
        .iter()
        .map(|t| DocType::parse(t).with_context(|| format!("--type {t}: unknown type")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let embedder = if mode == Mode::Keyword { None } else { load_embedder(&args.model)? };
    let dir = args.data_dir.clone();
    let ix = tokio::task::spawn_blocking(move || open(&dir, Access::ReadOnly, embedder)).await??;
    let req = SearchRequest { text: args.text.clone(), mode, limit: usize::from(args.limit), types, facets: true };
    let vis = Visibility::tenant(&args.tenant);
    let results = tokio::task::spawn_blocking(move || ix.search(&req, &vis)).await??;
    println!("{}", serde_json::to_string_pretty(&results)?);
    Ok(())
}
