//! `orbas bench sink`: the lake sink's throughput, side by side with the arrow-rs Parquet writer alone
//! writing the same rows.
//!
//! One private cluster, one broker (tansu with its durable SQLite engine, as for the demo), the
//! CRM-shaped table of `orbas bench cdc`. `--rows` inserts go through the CDC service into the topic
//! first (not measured); then:
//!
//! - **Ours**: the sink (same code as `orbas pipeline sink`, default batching: 1 s or 50k messages)
//!   starts on an empty lake; the clock stops when silver holds every row, i.e. every change was
//!   consumed, decoded, appended to bronze and merged into silver, each commit with its Kafka
//!   positions. Start-up (connecting, discovering topics, creating the tables) is included.
//! - **Peer**: the same messages, decoded into the same bronze Arrow batches outside the clock, then
//!   written with the arrow-rs `ArrowWriter` alone (snappy, as delta-rs writes) to one local file —
//!   the floor cost of putting these rows into Parquet at all.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::Compression;
use deltalake::parquet::file::properties::WriterProperties;
use orbas_oltp::db;
use orbas_warehouse::convert;
use orbas_warehouse::sink::{Sink, SinkConfig, table_url};
use rdkafka::Offset;
use rdkafka::message::Message as _;

use super::bench_cdc::{
    Service, config, create_table, durable_broker, peak_rss_kib, reader, temp_lake, topic_high_watermark, wait_sql,
    write_burst,
};
use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchSinkArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_sink";
const TOPIC: &str = "orbas.cdc.public.bench_changes";

pub async fn run(settings: &Settings, args: &BenchSinkArgs) -> anyhow::Result<()> {
    if args.rows == 0 {
        bail!("--rows must be positive");
    }
    let (cluster, base_url) = bench_server(settings, false).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let pool = db::connect(&url, 4).await?;
    create_table(&pool).await?;
    let (_broker_dir, broker) = durable_broker()?;
    let brokers = broker.bootstrap();

    // Fill the topic through CDC.
    let cdc = Service::start(config(&url, &brokers)?);
    wait_sql(&pool, "SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots", Duration::from_secs(120)).await?;
    write_burst(&pool, 0, args.rows, 10_000).await?;
    let rows = i64::try_from(args.rows)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while topic_high_watermark(&brokers)? < rows {
        if Instant::now() > deadline {
            bail!("CDC did not bring {rows} changes into {TOPIC} in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cdc.stop().await?;
    eprintln!("{rows} changes are in {TOPIC}");

    let mut ours = Vec::new();
    for round in 0..args.rounds.max(1) {
        let (_lake, root) = temp_lake()?;
        let mut cfg = SinkConfig::new(&url, &brokers, root.clone());
        cfg.group = format!("orbas-bench-sink-{round}");
        let silver = table_url(&root, "silver", "public", "bench_changes")?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(async move { Sink::connect(cfg).await?.run(stopped).await });
        loop {
            if orbas_warehouse::lake::row_count(&silver).await.ok().flatten() == Some(rows) {
                break;
            }
            if task.is_finished() || started.elapsed() > Duration::from_secs(1800) {
                let _ = stop.send(true);
                bail!("the sink stopped or stalled before silver held {rows} rows: {:?}", task.await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        let _ = stop.send(true);
        let stats = task.await??;
        eprintln!("round {}: sink {:.2}s ({} batches)", round + 1, took.as_secs_f64(), stats.batches);
        ours.push(took);
    }

    // The peer: decode outside the clock, then time the Parquet writer alone.
    let layout = orbas_warehouse::schema::resolve(&pool, "public", "bench_changes")
        .await?
        .context("the bench table's layout")?;
    let read_started = Instant::now();
    let changes = read_topic(&brokers, rows)?;
    let read = read_started.elapsed();
    let refs: Vec<&convert::Change> = changes.iter().collect();
    let batches = refs
        .chunks(50_000)
        .map(|c| convert::bronze_batch(&layout, c).map_err(|e| anyhow::anyhow!(e)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut peer = Vec::new();
    let mut peer_bytes = 0;
    for _ in 0..args.rounds.max(1) {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("peer.parquet");
        let started = Instant::now();
        let file = std::fs::File::create(&path)?;
        let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
        let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props))?;
        for b in &batches {
            writer.write(b)?;
        }
        writer.close()?;
        peer.push(started.elapsed());
        peer_bytes = std::fs::metadata(&path)?.len();
    }
    let rss = peak_rss_kib();
    pool.close().await;
    drop(broker);
    if let Some(c) = cluster {
        c.stop().await?;
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (o, p) = (median(&mut ours), median(&mut peer));
    let rate = |d: Duration| args.rows as f64 / d.as_secs_f64();
    println!("| measure ({} rows, median of {}) | seconds | rows/s |", args.rows, args.rounds.max(1));
    println!("|---|---:|---:|");
    println!(
        "| orbas pipeline sink: Kafka → bronze append + silver MERGE, committed | {:.2} | {:.0} |",
        o.as_secs_f64(),
        rate(o)
    );
    println!(
        "| arrow-rs ArrowWriter alone, same bronze batches ({:.1} MiB Parquet) | {:.2} | {:.0} |",
        peer_bytes as f64 / 1_048_576.0,
        p.as_secs_f64(),
        rate(p)
    );
    println!(
        "| a bare librdkafka consumer reading + decoding the same topic (the broker's read ceiling) | {:.2} | {:.0} |",
        read.as_secs_f64(),
        rate(read)
    );
    println!("| sink / writer | {:.1} % | |", 100.0 * rate(o) / rate(p));
    println!("| sink / bare consumer | {:.0} % | |", 100.0 * rate(o) / rate(read));
    if let Some(kib) = rss {
        println!("| peak RSS of the process | {:.0} MiB | |", kib as f64 / 1024.0);
    }
    Ok(())
}

/// Every change of the topic, decoded.
fn read_topic(brokers: &str, rows: i64) -> anyhow::Result<Vec<convert::Change>> {
    let consumer = reader(brokers, "orbas-bench-peer", TOPIC, Offset::Beginning, false)?;
    let mut out = Vec::with_capacity(usize::try_from(rows)?);
    let deadline = Instant::now() + Duration::from_secs(600);
    while i64::try_from(out.len())? < rows && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m?;
            if let Some(change) =
                convert::parse(m.payload(), m.partition(), m.offset()).map_err(|e| anyhow::anyhow!(e))?
            {
                out.push(change);
            }
        }
    }
    if i64::try_from(out.len())? < rows {
        bail!("read {} of {rows} changes back from {TOPIC}", out.len());
    }
    Ok(out)
}
