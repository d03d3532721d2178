//! `GET /v1/search` over a real index filled from the seeded database's rows (written through the
//! index's own batch path; the CDC-fed path is covered in orbas-search's tests): tenant isolation,
//! problem+json for bad parameters (a semantic mode on a server without an embedding model among
//! them), 503 without an index.

use std::sync::Arc;

use orbas_search::document;
use orbas_search::index::{Batch, Change};
use orbas_search::{Access, SearchIndex};
use serde_json::{Map, Value};

use crate::helpers::{admin_token, send, spawn_app, spawn_app_with};

/// Every account and ticket of every tenant, as the index's documents.
pub(crate) async fn fill(ix: &SearchIndex, db: &orbas_testkit::TestDb) {
    let mut changes = Vec::new();
    for table in ["accounts", "tickets"] {
        let rows: Vec<Value> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT to_jsonb(t) FROM {table} t ORDER BY id")))
                .fetch_all(&db.admin)
                .await
                .expect("rows");
        for r in rows {
            let row: Map<String, Value> = serde_json::from_value(r).expect("a row object");
            changes.extend(document::from_row(table, &row).map(|d| Change::Upsert(Box::new(d))));
        }
    }
    ix.apply(Batch { changes, positions: Vec::new(), max_lsn: None }).expect("apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_is_tenant_scoped_and_validates_its_parameters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = Arc::new(SearchIndex::open(dir.path(), Access::Writer, None).expect("index"));
    let app = spawn_app_with(None, Some(ix.clone())).await;
    fill(&ix, &app.db).await;
    let token = admin_token(&app).await;
    let (tenant, name): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT a.tenant_id, a.name FROM accounts a JOIN tenants t ON t.id = a.tenant_id
          WHERE t.slug = $1 ORDER BY a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");
    let theirs: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM accounts WHERE tenant_id <> $1 UNION ALL SELECT id::text FROM tickets WHERE tenant_id <> $1",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("foreign ids");
    assert!(!theirs.is_empty(), "the seed has a second tenant");

    let url = |q: &str| format!("{}/v1/search?{q}", app.base);
    let q: String = name.split_whitespace().next().unwrap_or("a").to_owned();
    let search = || app.http.get(format!("{}/v1/search", app.base));
    let (status, body) = send(search().query(&[("q", q.as_str()), ("mode", "keyword"), ("limit", "50")]), &token).await;
    assert_eq!(status, 200, "{body}");
    let hits = body["hits"].as_array().cloned().unwrap_or_default();
    assert!(!hits.is_empty(), "{body}");
    assert!(hits.iter().all(|h| !theirs.contains(&h["id"].as_str().unwrap_or_default().to_owned())), "{body}");
    assert!(body["facets"]["type"].is_object(), "{body}");
    let (status, lean) =
        send(search().query(&[("q", q.as_str()), ("mode", "keyword"), ("limit", "50"), ("facets", "false")]), &token)
            .await;
    assert_eq!(status, 200, "{lean}");
    assert_eq!(lean["hits"], body["hits"], "facets=false changes only the facets");
    assert_eq!(lean["facets"], serde_json::json!({}), "{lean}");

    let (status, body) =
        send(search().query(&[("q", q.as_str()), ("type", "ticket"), ("mode", "keyword")]), &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["hits"].as_array().is_some_and(|h| h.iter().all(|h| h["type"] == "ticket")), "{body}");

    for (params, field) in [
        ("q=", "q"),
        ("q=x&type=planet", "type"),
        ("q=x&mode=fuzzy", "mode"),
        ("q=x&limit=0", "limit"),
        ("q=x&limit=101", "limit"),
        ("q=x&facets=maybe", "facets"),
    ] {
        let resp = app.http.get(url(params)).bearer_auth(&token).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), 422, "{params}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body: Value = resp.json().await.expect("json");
        assert_eq!(body["errors"][0]["field"], field, "{params}: {body}");
    }
    for mode in ["semantic", "hybrid"] {
        let (status, body) = send(app.http.get(url(&format!("q=x&mode={mode}"))), &token).await;
        assert_eq!((status, &body["errors"][0]["field"]), (422, &Value::from("mode")), "no embedding model: {body}");
    }
    let (status, _) = send(app.http.get(url("q=x&what=1")), &token).await;
    assert_eq!(status, 400);
    let status = app.http.get(url("q=x")).send().await.expect("get").status().as_u16();
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_without_an_index_is_503() {
    let app = spawn_app().await;
    let token = admin_token(&app).await;
    let (status, body) = send(app.http.get(format!("{}/v1/search?q=acme", app.base)), &token).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["detail"], "search index not configured");
}

/// `orbas search query` over an index directory another process (here: this test) writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbas_search_query_reads_an_index_directory() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = SearchIndex::open(dir.path(), Access::Writer, None).expect("index");
    fill(&ix, &app.db).await;
    let (tenant, id, name): (uuid::Uuid, String, String) = sqlx::query_as(
        "SELECT tenant_id, id::text, name FROM accounts WHERE tenant_id = (SELECT id FROM tenants WHERE slug = $1)
          ORDER BY id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");
    let orbas = |args: &[&str]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"));
        c.env_remove("DATABASE_URL").env("RUST_LOG", "warn").kill_on_drop(true);
        c.arg("search").arg("query").arg("--data-dir").arg(dir.path()).args(args);
        c
    };
    let tenant = tenant.to_string();
    let out = orbas(&["--tenant", &tenant, "--limit", "50", &name]).output().await.expect("run orbas");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results: Value = serde_json::from_slice(&out.stdout).expect("JSON results");
    let hits = results["hits"].as_array().cloned().unwrap_or_default();
    assert!(hits.iter().any(|h| h["id"] == id.as_str()), "{results}");

    let out = orbas(&["--tenant", &tenant, "--mode", "semantic", "--no-embeddings", "x"]).output().await.expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("semantic search is unavailable"), "{out:?}");
}

/// `orbas serve` with ORBAS_SEARCH_DIR follows the commits of the process that writes the index —
/// and starts even while the directory holds an index of an older layout: search answers 503 until
/// the writer has replaced it, then serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbas_serve_follows_the_index_writer() {
    use tokio::io::AsyncBufReadExt;

    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    {
        // An index another version wrote: a schema that is not ours.
        let mut b = tantivy::schema::Schema::builder();
        let title = b.add_text_field("title", tantivy::schema::TEXT | tantivy::schema::STORED);
        let index = tantivy::Index::create_in_dir(dir.path(), b.build()).expect("old index");
        let mut w: tantivy::IndexWriter = index.writer(15_000_000).expect("writer");
        w.add_document(tantivy::doc!(title => "quokka")).expect("add");
        w.commit().expect("commit");
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("ORBAS_LAKE")
        .env("RUST_LOG", "warn")
        .env("ORBAS_APP_DATABASE_URL", &app.db.app_url)
        .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
        .env("ORBAS_JWT_SECRET", "a-test-signing-key-of-at-least-32-bytes")
        .env("ORBAS_SEARCH_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn serve");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("listening on ") {
                return url.to_owned();
            }
        }
        String::new()
    })
    .await
    .expect("serve printed its address");
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"tenant": app.tenant_slug, "email": app.admin_email, "password": crate::helpers::DEMO_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = login["access_token"].as_str().unwrap_or_default().to_owned();
    let tenant: uuid::Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(&app.tenant_slug)
        .fetch_one(&app.db.admin)
        .await
        .expect("tenant");

    let (status, body) =
        send(http.get(format!("{base}/v1/search")).query(&[("q", "quokka"), ("mode", "keyword")]), &token).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("not open yet")), "{body}");

    // The writer replaces the old index; then a document committed after the server opened it.
    let ix = SearchIndex::open(dir.path(), Access::Writer, None).expect("index");
    fill(&ix, &app.db).await;
    let row = serde_json::json!({"id": uuid::Uuid::now_v7().to_string(), "tenant_id": tenant.to_string(),
                                 "name": "Zyxwv Quokka Holdings"});
    let row: Map<String, Value> = serde_json::from_value(row).expect("object");
    let doc = document::from_row("accounts", &row).expect("maps");
    let id = doc.id.clone();
    ix.apply(Batch { changes: vec![Change::Upsert(Box::new(doc))], positions: Vec::new(), max_lsn: Some(1) })
        .expect("apply");
    orbas_testkit::eventually("the server sees the new document", std::time::Duration::from_secs(60), || {
        let req = http.get(format!("{base}/v1/search")).query(&[("q", "quokka"), ("mode", "keyword")]);
        let (token, id) = (token.clone(), id.clone());
        async move {
            let (status, body) = send(req, &token).await;
            status == 200 && body["hits"].as_array().is_some_and(|h| h.iter().any(|h| h["id"] == id.as_str()))
        }
    })
    .await;
    child.kill().await.expect("kill");
}

/// `orbas search rebuild` over real CDC topics: every seeded row of the indexed tables becomes one
/// document, and the command exits once caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orbas_search_rebuild_indexes_the_cdc_topics() {
    use orbas_pipeline::broker::{Broker, BrokerOptions};

    let app = spawn_app().await;
    let broker = Broker::start(BrokerOptions::default()).expect("start tansu (./scripts/setup.sh installs it)");
    let mut cfg = orbas_pipeline::cdc::CdcConfig::new(&app.db.admin_url, &broker.bootstrap()).expect("cdc config");
    cfg.slot = format!("s_{}", &app.db.name[app.db.name.len() - 16..]);
    cfg.heartbeat_interval = std::time::Duration::ZERO;
    let slot = cfg.slot.clone();
    tokio::spawn(orbas_pipeline::cdc::run(cfg, std::future::pending::<()>()));
    orbas_testkit::cdc_snapshot_done(&app.db.admin, &slot).await;

    let dir = tempfile::tempdir().expect("temp dir");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args([
            "search",
            "rebuild",
            "--no-embeddings",
            "--batch-ms",
            "200",
            "--brokers",
            &broker.bootstrap(),
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run orbas search rebuild");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let want: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM accounts) + (SELECT count(*) FROM contacts) + (SELECT count(*) FROM leads)
              + (SELECT count(*) FROM opportunities) + (SELECT count(*) FROM tickets)
              + (SELECT count(*) FROM ticket_messages) + (SELECT count(*) FROM knowledge_articles)
              + (SELECT count(*) FROM documents) + (SELECT count(*) FROM document_versions)
              + (SELECT count(*) FROM employees)",
    )
    .fetch_one(&app.db.admin)
    .await
    .expect("count");
    assert!(want > 100, "the seed has rows ({want})");
    let ix = SearchIndex::open(dir.path(), Access::ReadOnly, None).expect("open");
    assert_eq!(ix.num_docs() as i64, want, "{stdout}");
    assert!(stdout.contains(&format!("{want} documents")), "{stdout}");
}

/// `POST /v1/assistant/query` without a language model (none configured in tests): an extractive,
/// cited answer from the caller's tenant only, as JSON and as server-sent events; 422 on bad input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_assistant_answers_extractively_from_the_callers_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ix = Arc::new(SearchIndex::open(dir.path(), Access::Writer, None).expect("index"));
    let app = spawn_app_with(None, Some(ix.clone())).await;
    fill(&ix, &app.db).await;
    let token = admin_token(&app).await;
    let (tenant, name): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT a.tenant_id, a.name FROM accounts a JOIN tenants t ON t.id = a.tenant_id
          WHERE t.slug = $1 ORDER BY a.id LIMIT 1",
    )
    .bind(&app.tenant_slug)
    .fetch_one(&app.db.admin)
    .await
    .expect("an account");
    let theirs: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM accounts WHERE tenant_id <> $1 UNION ALL SELECT id::text FROM tickets WHERE tenant_id <> $1",
    )
    .bind(tenant)
    .fetch_all(&app.db.admin)
    .await
    .expect("foreign ids");
    let url = format!("{}/v1/assistant/query", app.base);
    let question = format!("What do we know about {name}?");

    let (status, body) = send(app.http.post(&url).json(&serde_json::json!({ "question": question })), &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mode"], "extractive", "{body}");
    assert!(body["answer"].as_str().is_some_and(|a| a.starts_with("No language model is configured")), "{body}");
    let cited: Vec<String> = body["citations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert!(!cited.is_empty(), "{body}");
    assert!(cited.iter().all(|id| !theirs.contains(id)), "{body}");
    assert_eq!(body["citations"][0]["n"], 1, "{body}");

    let resp = app
        .http
        .post(&url)
        .header("accept", "text/event-stream")
        .bearer_auth(&token)
        .json(&serde_json::json!({ "question": question }))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/event-stream")));
    let text = resp.text().await.expect("events");
    assert!(text.contains("event: done"), "{text}");
    let data = text.lines().find_map(|l| l.strip_prefix("data: ")).expect("a data line");
    let done: Value = serde_json::from_str(data).expect("json");
    assert_eq!(done["citations"], body["citations"], "{text}");

    for bad in [serde_json::json!({ "question": "  " }), serde_json::json!({ "q": "x" }), serde_json::json!([1])] {
        let resp = app.http.post(&url).bearer_auth(&token).json(&bad).send().await.expect("post");
        assert_eq!(resp.status().as_u16(), 422, "{bad}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let status = app.http.post(&url).json(&serde_json::json!({ "question": "x" })).send().await.expect("post");
    assert_eq!(status.status().as_u16(), 401);
}

/// `orbas bench search` on a small corpus: both engines answer the same queries, and ours finds the
/// query's source document at least as often as Postgres does (typo queries are ours alone to fix).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_search_runs_both_engines_on_the_same_queries() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args(["bench", "search", "--docs", "3000", "--tenants", "3", "--queries", "300"])
        .args(["--clients", "1", "--seconds", "1"])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run orbas bench search");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let row = |engine: &str| -> Vec<f64> {
        let line = stdout.lines().find(|l| l.starts_with(&format!("| {engine} |"))).unwrap_or_default();
        line.split('|').skip(2).filter_map(|c| c.trim().trim_end_matches(" %").parse::<f64>().ok()).collect()
    };
    let (ours, faceted, peer) =
        (row("Orbas search"), row("Orbas search, with facet counts"), row("Postgres FTS (tsvector + GIN + ts_rank)"));
    for r in [&ours, &faceted, &peer] {
        // docs/s, MiB, QPS, p50, p99, found %
        assert_eq!(r.len(), 6, "{stdout}");
        assert!(r[0] > 0.0 && r[2] > 0.0, "{stdout}");
    }
    let (found_ours, found_peer) = (ours[5], peer[5]);
    assert!(found_ours >= 50.0, "ours found the source document in {found_ours} % of queries:\n{stdout}");
    assert!(found_ours >= found_peer, "{stdout}");
    assert_eq!(faceted[5], found_ours, "facets change no ranking");
}
