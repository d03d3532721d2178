//! `orbas erase` (the real binary) over the whole flow: a canary string planted in a person's records
//! through the API travels through CDC into Kafka, the lake and the search index; after the erasure
//! no table, lake file or index document holds it, and Kafka either lost its history or — on a
//! broker without DeleteRecords (tansu) — holds the tombstones compaction needs, and the command says
//! the erasure is incomplete instead of claiming it.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::helpers::{admin_token, send, spawn_app};
use orbas_oltp::model::TenantId;
use orbas_search::{Access, IndexerConfig, SearchIndex};
use orbas_warehouse::sql::Limits;

/// The files under `dir` that hold `needle`: in any string value of a Parquet file (data and
/// checkpoints, decoded) or anywhere in the bytes of any file.
fn files_holding(dir: &std::path::Path, needle: &str) -> Vec<String> {
    use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mut text = String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into_owned();
            if p.extension().is_some_and(|x| x == "parquet") {
                let file = std::fs::File::open(&p).expect("open");
                let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                    .and_then(|b| b.build())
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                for b in reader {
                    let b = b.expect("batch");
                    let t = deltalake::arrow::util::pretty::pretty_format_batches(&[b]).expect("format");
                    text.push_str(&t.to_string());
                }
            }
            if text.contains(needle) {
                out.push(p.strip_prefix(dir).unwrap_or(&p).display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every message of every CDC topic: (topic, key, value) — value `None` for a tombstone.
fn cdc_messages(brokers: &str) -> Vec<(String, String, Option<String>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "erasure-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let meta = consumer.fetch_metadata(None, Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for t in meta.topics().iter().filter(|t| t.name().starts_with("orbas.cdc.public.")) {
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(t.name(), p.id(), Duration::from_secs(10)).expect("watermarks");
            if high > 0 {
                tpl.add_partition_offset(t.name(), p.id(), Offset::Beginning).expect("add");
                ends.push((t.name().to_owned(), p.id(), high));
            }
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut done = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while done.len() < ends.len() && std::time::Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(500)) else { continue };
        let m = m.expect("message");
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        out.push((m.topic().to_owned(), text(m.key()).unwrap_or_default(), text(m.payload())));
        if ends.iter().any(|(t, p, end)| t == m.topic() && *p == m.partition() && m.offset() + 1 >= *end) {
            done.insert((m.topic().to_owned(), m.partition()));
        }
    }
    assert_eq!(done.len(), ends.len(), "read every CDC partition to its end");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erase_leaves_no_byte_of_a_canary_in_the_crm_lake_and_index() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("tenant");

    // The flow: CDC → tansu → the lake sink and the search indexer.
    let lake_dir = tempfile::tempdir().expect("lake dir");
    let root = url::Url::from_directory_path(lake_dir.path()).expect("lake url");
    let flow = crate::helpers::flow(&app, &root).await;
    let brokers = flow.brokers.clone();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let index_dir = tempfile::tempdir().expect("index dir");
    let index = Arc::new(SearchIndex::open(index_dir.path(), Access::Writer, None).expect("index"));
    let mut indexer = IndexerConfig::new(&brokers);
    indexer.batch_interval = Duration::from_millis(200);
    indexer.discovery_interval = Duration::from_millis(500);
    tokio::spawn(orbas_search::indexer::run(indexer, index.clone(), stop_rx));

    // The canary, in everything a person leaves behind.
    let canary = format!("canary{}", uuid::Uuid::now_v7().simple());
    let post = |path: &str, body: Value| app.http.post(format!("{}{path}", app.base)).json(&body);
    let (status, contact) = send(
        post(
            "/v1/contacts",
            json!({"first_name": "Ada", "last_name": canary, "email": format!("{canary}@example.com")}),
        )
        .header("idempotency-key", format!("erasure-{canary}")),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{contact}");
    let person = contact["id"].as_str().expect("contact id").to_owned();
    let patch = app
        .http
        .patch(format!("{}/v1/contacts/{person}", app.base))
        .json(&json!({"title": format!("Head of {canary}")}));
    let (status, body) = send(patch, &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(
        post(
            "/v1/interactions",
            json!({"kind": "meeting", "contact_id": person, "subject": "Intro",
                                        "body": format!("Met {canary} about pricing")}),
        ),
        &token,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, ticket) =
        send(post("/v1/tickets", json!({"contact_id": person, "subject": format!("{canary} cannot log in")})), &token)
            .await;
    assert_eq!(status, 201, "{ticket}");
    let ticket_id = ticket["id"].as_str().expect("ticket id").to_owned();
    let (status, body) =
        send(post(&format!("/v1/tickets/{ticket_id}/messages"), json!({"body": format!("Hello {canary}")})), &token)
            .await;
    assert_eq!(status, 201, "{body}");
    let bystanders: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("count");

    // It reached every store.
    let lake = &flow.lake;
    crate::helpers::landed(&app, lake, TenantId(tenant), "contacts").await;
    crate::helpers::landed(&app, lake, TenantId(tenant), "tickets").await;
    orbas_testkit::eventually("the index holds the person", Duration::from_secs(120), || {
        let (index, ids) = (index.clone(), vec![person.clone(), ticket_id.clone()]);
        async move { index.holds(&ids).is_ok_and(|n| n == 2) }
    })
    .await;
    assert!(!files_holding(lake_dir.path(), &canary).is_empty(), "the canary is in the lake before the erasure");
    assert!(cdc_messages(&brokers).iter().any(|(_, _, v)| v.as_deref().is_some_and(|v| v.contains(&canary))));

    // The erasure, by the real binary.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args(["erase", "--tenant", &app.tenant_slug, "--subject", &person, "--json", "--timeout-secs", "180"])
        .args(["--brokers", &brokers, "--lake"])
        .arg(lake_dir.path())
        .arg("--search-dir")
        .arg(index_dir.path())
        .env("DATABASE_URL", &app.db.admin_url)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run orbas erase");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    let step = |store: &str| {
        report["steps"].as_array().and_then(|s| s.iter().find(|s| s["store"] == store)).cloned().unwrap_or_default()
    };
    let rows = &report["crm"]["rows"];
    for (table, n) in
        [("contacts", 1), ("interaction_logs", 1), ("tickets", 1), ("ticket_messages", 1), ("idempotency_keys", 1)]
    {
        assert_eq!(rows[table].as_array().map(Vec::len), Some(n), "{table}: {report:#}");
    }
    assert!(rows["audit_logs"].as_array().is_some_and(|a| a.len() >= 2), "create and update audited: {report:#}");
    for store in ["crm", "change stream", "lake", "search"] {
        assert_eq!(step(store)["outcome"], "erased", "{store}: {report:#}");
    }

    // Postgres: no row of any table holds the canary; the other contacts are all there.
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT quote_ident(table_name::text) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.db.admin)
    .await
    .expect("tables");
    for t in &tables {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t} x WHERE x::text LIKE $1")))
                .bind(format!("%{canary}%"))
                .fetch_one(&app.db.admin)
                .await
                .expect("scan");
        assert_eq!(n, 0, "{t} holds the canary");
    }
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&app.db.admin)
        .await
        .expect("count");
    assert_eq!(left, bystanders - 1);
    let erased_audit: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'person.erased' AND resource_id = $1::uuid")
            .bind(&person)
            .fetch_one(&app.db.admin)
            .await
            .expect("audit");
    assert_eq!(erased_audit, 1);

    // The lake: no file, data or log, holds it; silver still has everyone else.
    assert_eq!(files_holding(lake_dir.path(), &canary), Vec::<String>::new(), "lake files still holding the canary");
    crate::helpers::landed(&app, lake, TenantId(tenant), "contacts").await;
    let ctx = lake.session(&tenant.to_string(), Limits::default()).await.expect("session");
    let n = ctx.sql("SELECT count(*) FROM contacts").await.expect("sql").collect().await.expect("collect");
    let n = n[0].column(0).as_any().downcast_ref::<deltalake::arrow::array::Int64Array>().map(|a| a.value(0));
    assert_eq!(n, Some(bystanders - 1));

    // The index: no document, and none left in the segment files.
    assert_eq!(index.holds(&[person.clone(), ticket_id.clone()]).expect("holds"), 0);
    assert_eq!(index.deleted_in_files(), 0);

    // Kafka: either the history is gone, or the broker kept it and the command said so — with the
    // tombstones compaction needs for every erased key.
    let messages = cdc_messages(&brokers);
    let kafka = step("kafka");
    if kafka["outcome"] == "erased" {
        assert!(out.status.success(), "{stderr}");
        assert!(!messages.iter().any(|(_, _, v)| v.as_deref().is_some_and(|v| v.contains(&canary))));
    } else {
        assert_eq!(kafka["outcome"], "incomplete", "{report:#}");
        assert!(kafka["detail"].as_str().is_some_and(|d| d.contains("DeleteRecords")), "{report:#}");
        assert!(!out.status.success(), "an incomplete erasure fails: {stdout}");
        assert_eq!(report["complete"], false);
        for (table, ids) in rows.as_object().expect("rows") {
            let topic = format!("orbas.cdc.public.{table}");
            if !messages.iter().any(|(t, _, _)| *t == topic) {
                continue; // not published (an outbox, the idempotency store)
            }
            for id in ids.as_array().expect("ids").iter().filter_map(Value::as_str) {
                assert!(
                    messages.iter().any(|(t, k, v)| *t == topic && k.contains(id) && v.is_none()),
                    "no tombstone for {table} {id}"
                );
            }
        }
    }
}
