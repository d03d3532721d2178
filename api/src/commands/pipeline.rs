//! `orbas pipeline …`: the pipeline's long-running services.

use std::time::Duration;

use anyhow::{Context as _, bail};
use orbas_pipeline::catalog::Selection;
use orbas_pipeline::cdc::{self, CdcConfig};
use orbas_pipeline::encode::EncoderSettings;
use orbas_pipeline::kafka::KafkaSettings;
use orbas_pipeline::replication::ConnectParams;
use orbas_pipeline::resnapshot;
use orbas_warehouse::sink::{Sink, SinkConfig};

use crate::cli::{CdcArgs, ResnapshotArgs, SinkArgs};
use crate::settings::Settings;

/// `--kafka-property key=value` arguments as pairs.
pub(super) fn kafka_properties(props: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    key_values("--kafka-property", props)
}

fn key_values(flag: &str, props: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    props
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .with_context(|| format!("{flag} {p:?}: expected key=value"))
        })
        .collect()
}

/// `--brokers`, else `kafka.brokers` from the settings, else a local broker.
fn brokers(settings: &Settings, flag: Option<&String>) -> String {
    flag.cloned().or_else(|| settings.kafka_brokers.clone()).unwrap_or_else(|| "127.0.0.1:9092".into())
}

/// `orbas pipeline cdc`.
pub async fn cdc(settings: &Settings, args: CdcArgs) -> anyhow::Result<()> {
    let url = settings.database.admin_url()?.to_owned();
    let database = ConnectParams::from_url(&url)?.database;
    if !args.mask.is_empty() && args.mask_key.as_deref().is_none_or(str::is_empty) {
        bail!("--mask needs a key: set ORBAS_CDC_MASK_KEY (or --mask-key)");
    }
    let extra = kafka_properties(&args.kafka_property)?;
    let brokers = brokers(settings, args.brokers.as_ref());
    let cfg = CdcConfig {
        database_url: url,
        publication: args.publication,
        slot: args.slot,
        kafka: KafkaSettings {
            brokers,
            partitions: args.partitions,
            replication_factor: args.replication_factor,
            extra,
            topic_config: key_values("--topic-config", &args.topic_config)?,
        },
        encoder: EncoderSettings {
            server_name: args.server_name,
            database,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            with_schemas: args.schemas,
            mask_key: args.mask_key.map(String::into_bytes),
        },
        selection: Selection { include: args.include, exclude: args.exclude, masked: args.mask },
        tombstones: !args.no_tombstones,
        snapshot_parallelism: args.snapshot_parallelism,
        status_interval: Duration::from_millis(args.status_interval_ms.max(10)),
        heartbeat_interval: Duration::from_millis(args.heartbeat_interval_ms),
    };
    let metrics = crate::observe::serve_metrics(args.metrics_addr, "CDC").await?;
    let result = cdc::run(cfg, super::shutdown_signal()).await;
    drop(metrics);
    result.context("change data capture stopped")
}

/// `orbas pipeline resnapshot`.
pub async fn resnapshot(settings: &Settings, args: &ResnapshotArgs) -> anyhow::Result<()> {
    let pool = orbas_oltp::db::connect(settings.database.admin_url()?, 2).await?;
    if args.all {
        resnapshot::reset_all(&pool, &args.slot).await?;
        println!(
            "slot {:?} and its snapshot record removed: the next `orbas pipeline cdc` copies every table again",
            args.slot
        );
        return Ok(());
    }
    let mut ids = Vec::new();
    for t in &args.tables {
        let (schema, table) = t.split_once('.').unwrap_or(("public", t.as_str()));
        let id = resnapshot::request(&pool, &args.publication, &args.slot, schema, table, args.chunk_size)
            .await
            .with_context(|| format!("cannot re-snapshot {t}"))?;
        println!("re-snapshot of {schema}.{table} requested (request {id}, slot {:?})", args.slot);
        ids.push(id);
    }
    if !args.wait {
        return Ok(());
    }
    let mut shown = std::collections::HashMap::new();
    loop {
        let mut open = 0;
        for &id in &ids {
            let s = resnapshot::status(&pool, id).await?.with_context(|| format!("request {id} vanished"))?;
            if let Some(e) = &s.error {
                bail!("re-snapshot of {}.{} failed: {e}", s.schema, s.table);
            }
            if shown.insert(id, (s.chunks, s.completed)) != Some((s.chunks, s.completed)) {
                let state = if s.completed { "done" } else { "running" };
                println!("{}.{}: {state}, {} chunk(s), {} row(s)", s.schema, s.table, s.chunks, s.rows);
            }
            open += usize::from(!s.completed);
        }
        if open == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A lake root given as a path or a URL.
pub(super) fn lake_url(lake: &str) -> anyhow::Result<url::Url> {
    if lake.contains("://") {
        return url::Url::parse(lake).with_context(|| format!("lake URL {lake:?}"));
    }
    let path = std::path::Path::new(lake);
    std::fs::create_dir_all(path).with_context(|| format!("creating the lake directory {lake}"))?;
    let abs = path.canonicalize().with_context(|| format!("lake directory {lake}"))?;
    url::Url::from_directory_path(&abs)
        .map_err(|()| anyhow::anyhow!("lake directory {} is not absolute", abs.display()))
}

/// `orbas pipeline sink`.
pub async fn sink(settings: &Settings, args: &SinkArgs) -> anyhow::Result<()> {
    let brokers = brokers(settings, args.brokers.as_ref());
    let mut cfg =
        SinkConfig::new(settings.database.admin_url()?, &brokers, lake_url(&settings.lake(args.lake.as_deref()))?);
    cfg.group = args.group.clone();
    cfg.batch_interval = Duration::from_millis(args.batch_ms.max(10));
    cfg.batch_rows = args.batch_rows.max(1);
    cfg.kafka_extra = kafka_properties(&args.kafka_property)?;
    let metrics = crate::observe::serve_metrics(args.metrics_addr, "lake sink").await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        super::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let result = Sink::connect(cfg).await?.run(stop_rx).await;
    drop(metrics);
    result.map(|_| ()).context("lake sink stopped")
}
