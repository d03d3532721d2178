use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{Msg, broker, by_topic, config, consume, eventually, start};

const WAIT: Duration = Duration::from_secs(60);

async fn tenant(admin: &PgPool) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, name, slug) VALUES ($1, 'Tenant', $2)")
        .bind(id)
        .bind(format!("t-{}", &id.simple().to_string()[20..]))
        .execute(admin)
        .await
        .expect("tenant");
    id
}

/// Waits until the initial snapshot is recorded as finished (streaming starts right after).
async fn snapshot_done(admin: &PgPool, slot: &str) {
    eventually("the snapshot is recorded", WAIT, || async {
        sqlx::query_scalar::<_, bool>("SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots WHERE slot_name = $1")
            .bind(slot)
            .fetch_optional(admin)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    })
    .await;
}

/// A fresh database with one tenant and the service streaming (its empty snapshot done).
async fn streaming()
-> (orbas_testkit::TestDb, orbas_pipeline::broker::Broker, Uuid, orbas_pipeline::cdc::CdcConfig, crate::Running) {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let t = tenant(&db.admin).await;
    let cfg = config(&db, &kafka);
    let cdc = start(cfg.clone());
    snapshot_done(&db.admin, &cfg.slot).await;
    (db, kafka, t, cfg, cdc)
}

fn ops(msgs: &[Msg]) -> Vec<&str> {
    msgs.iter().map(|m| m.op().unwrap_or("tombstone")).collect()
}

#[tokio::test]
async fn snapshot_then_stream_of_one_table() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let t = tenant(&db.admin).await;
    let acme = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO accounts (tenant_id, id, name, annual_revenue, description) VALUES ($1, $2, 'Acme', 1234567890123456.78, repeat('x', 20000))",
    )
    .bind(t)
    .bind(acme)
    .execute(&db.admin)
    .await
    .expect("account");

    let cdc = start(config(&db, &kafka));
    let topic = vec!["orbas.cdc.public.accounts".to_owned()];
    let snap = consume(&kafka.bootstrap(), &topic, WAIT, |m| !m.is_empty()).await;
    assert_eq!(ops(&snap), ["r"], "the existing row arrives as a snapshot read");
    assert_eq!(snap[0].after("name"), Some(&json!("Acme")));
    assert_eq!(snap[0].after("annual_revenue"), Some(&json!("1234567890123456.78")), "numeric keeps every digit");
    assert_eq!(snap[0].source("snapshot"), Some(&json!("last_in_data_collection")));
    assert_eq!(snap[0].key, Some(json!({"id": acme.to_string()})));

    // Stream: insert, an update that leaves the TOASTed description alone, delete.
    let beta = Uuid::now_v7();
    sqlx::query("INSERT INTO accounts (tenant_id, id, name) VALUES ($1, $2, 'Beta')")
        .bind(t)
        .bind(beta)
        .execute(&db.admin)
        .await
        .expect("insert");
    sqlx::query("UPDATE accounts SET name = 'Acme Corp' WHERE id = $1")
        .bind(acme)
        .execute(&db.admin)
        .await
        .expect("update");
    sqlx::query("DELETE FROM accounts WHERE id = $1").bind(beta).execute(&db.admin).await.expect("delete");

    let all = consume(&kafka.bootstrap(), &topic, WAIT, |m| m.len() >= 5).await;
    assert_eq!(ops(&all), ["r", "c", "u", "d", "tombstone"]);
    let (c, u, d, tomb) = (&all[1], &all[2], &all[3], &all[4]);
    assert_eq!(c.after("name"), Some(&json!("Beta")));
    assert_eq!(c.value.as_ref().and_then(|v| v.get("before")), Some(&Value::Null));
    assert_eq!(u.before("name"), Some(&json!("Acme")));
    assert_eq!(u.after("name"), Some(&json!("Acme Corp")));
    let description = u.after("description").and_then(Value::as_str).map(str::len);
    assert_eq!(description, Some(20_000), "an unchanged TOAST value is published in full, never null");
    assert_eq!(d.before("id"), Some(&json!(beta.to_string())));
    assert_eq!(d.value.as_ref().and_then(|v| v.get("after")), Some(&Value::Null));
    assert_eq!(tomb.key, Some(json!({"id": beta.to_string()})));
    assert!(tomb.value.is_none());
    // Events carry their LSNs, increasing in commit order.
    let commit_lsns: Vec<i64> = all[1..4].iter().filter_map(|m| m.source("commit_lsn")?.as_i64()).collect();
    assert_eq!(commit_lsns.len(), 3);
    assert!(commit_lsns.windows(2).all(|w| w[0] < w[1]), "{commit_lsns:?}");
    assert!(c.source("lsn").and_then(Value::as_i64) > snap[0].source("lsn").and_then(Value::as_i64));

    // Graceful stop confirms the slot up to what Kafka holds.
    let slot = config(&db, &kafka).slot;
    cdc.stop().await.expect("clean stop");
    let confirmed: Option<String> =
        sqlx::query_scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1")
            .bind(&slot)
            .fetch_one(&db.admin)
            .await
            .expect("slot");
    let confirmed: orbas_pipeline::Lsn = confirmed.and_then(|s| s.parse().ok()).unwrap_or_default();
    let last = d.source("commit_lsn").and_then(Value::as_i64).unwrap_or(i64::MAX);
    assert!(confirmed.as_i64() >= last, "slot confirmed {confirmed} after the last delivered commit");
}

#[tokio::test]
async fn transactions_keep_their_boundaries_and_restarts_lose_nothing() {
    let (db, kafka, t, cfg, cdc) = streaming().await;

    // One transaction touching two tables; a domain event inside it.
    let acc = Uuid::now_v7();
    let mut tx = db.admin.begin().await.expect("begin");
    sqlx::query("INSERT INTO accounts (tenant_id, id, name) VALUES ($1, $2, 'Multi')")
        .bind(t)
        .bind(acc)
        .execute(&mut *tx)
        .await
        .expect("account");
    for i in 0..3 {
        sqlx::query(
            "INSERT INTO contacts (tenant_id, id, account_id, first_name, last_name) VALUES ($1, $2, $3, 'C', $4)",
        )
        .bind(t)
        .bind(Uuid::now_v7())
        .bind(acc)
        .bind(format!("N{i}"))
        .execute(&mut *tx)
        .await
        .expect("contact");
    }
    sqlx::query("SELECT pg_logical_emit_message(true, 'orbas', $1)")
        .bind(json!({"type": "account.created", "key": acc.to_string()}).to_string())
        .execute(&mut *tx)
        .await
        .expect("domain event");
    tx.commit().await.expect("commit");

    let topics: Vec<String> =
        ["orbas.cdc.transaction", "orbas.cdc.public.accounts", "orbas.cdc.public.contacts", "orbas.events"]
            .map(String::from)
            .to_vec();
    let msgs = consume(&kafka.bootstrap(), &topics, WAIT, |m| m.len() >= 7).await;
    let per = by_topic(&msgs);
    let txs = &per["orbas.cdc.transaction"];
    assert_eq!(txs.len(), 2, "{txs:?}");
    let (begin, end) = (txs[0].value.clone().unwrap_or_default(), txs[1].value.clone().unwrap_or_default());
    assert_eq!(begin["status"], "BEGIN");
    assert_eq!(end["status"], "END");
    assert_eq!(begin["id"], end["id"]);
    assert_eq!(end["event_count"], 5, "4 row events + 1 domain event: {end}");
    let counts: HashMap<String, i64> = end["data_collections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (c["data_collection"].as_str().unwrap_or("").to_owned(), c["event_count"].as_i64().unwrap_or(0))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(counts.get("public.accounts"), Some(&1));
    assert_eq!(counts.get("public.contacts"), Some(&3));
    let contacts = &per["orbas.cdc.public.contacts"];
    let orders: Vec<(i64, i64)> = contacts
        .iter()
        .filter_map(|m| {
            let t = m.value.as_ref()?.get("transaction")?;
            Some((t["total_order"].as_i64()?, t["data_collection_order"].as_i64()?))
        })
        .collect();
    assert_eq!(orders, [(2, 1), (3, 2), (4, 3)]);
    assert!(contacts.iter().all(|m| m.value.as_ref().map(|v| &v["transaction"]["id"]) == Some(&begin["id"])));
    let ev = &per["orbas.events"][0];
    assert_eq!(ev.value.as_ref().map(|v| &v["content"]["type"]), Some(&json!("account.created")));
    assert_eq!(ev.key, Some(json!(acc.to_string())));

    // Stop; write while nothing streams; start again: the writes arrive, once.
    cdc.stop().await.expect("stop");
    for i in 0..50 {
        sqlx::query("INSERT INTO accounts (tenant_id, id, name) VALUES ($1, $2, $3)")
            .bind(t)
            .bind(Uuid::now_v7())
            .bind(format!("Offline {i}"))
            .execute(&db.admin)
            .await
            .expect("offline insert");
    }
    let cdc = start(cfg.clone());
    let accounts = vec!["orbas.cdc.public.accounts".to_owned()];
    let msgs = consume(&kafka.bootstrap(), &accounts, WAIT, |m| m.len() >= 51).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<&str> = msgs.iter().filter_map(|m| m.after("name")?.as_str()).collect();
    assert_eq!(names.len(), 51, "no event lost and none repeated across the restart: {names:?}");
    assert_eq!(names[0], "Multi");
    assert_eq!(names[50], "Offline 49");
    cdc.stop().await.expect("stop again");
}

/// Every published CRM table: a snapshot of seeded rows, then update, delete (+ tombstone), insert
/// and truncate of each, with before/after images.
#[tokio::test]
async fn every_table_snapshots_and_streams() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let cfg = orbas_oltp::seed::SeedConfig::new(1, 0.002, 7).expect("seed config");
    orbas_oltp::seed::load(&db.admin, &cfg).await.expect("seed");
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'orbas_cdc' ORDER BY 1")
            .fetch_all(&db.admin)
            .await
            .expect("tables");
    assert!(tables.len() > 50, "{tables:?}");
    let mut counts = BTreeMap::new();
    for t in &tables {
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {t}")))
            .fetch_one(&db.admin)
            .await
            .expect("count");
        counts.insert(format!("orbas.cdc.public.{t}"), n);
    }
    let topics: Vec<String> = counts.keys().cloned().collect();
    let expected: i64 = counts.values().sum();

    let cdc = start(config(&db, &kafka));
    let snap = consume(&kafka.bootstrap(), &topics, WAIT, move |m| m.len() as i64 >= expected).await;
    let per = by_topic(&snap);
    for (topic, n) in &counts {
        let got = per.get(topic).map_or(0, Vec::len) as i64;
        assert_eq!(got, *n, "{topic}: snapshot rows");
    }
    assert!(snap.iter().all(|m| m.op() == Some("r")));

    // One row of every table that has rows: update it, delete it, put it back; then truncate all.
    let mut touched = Vec::new();
    for t in &tables {
        let Some(id): Option<Uuid> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM {t} ORDER BY id LIMIT 1")))
                .fetch_optional(&db.admin)
                .await
                .expect("pick")
        else {
            continue;
        };
        let mut tx = db.admin.begin().await.expect("begin");
        sqlx::raw_sql("SET LOCAL session_replication_role = replica").execute(&mut *tx).await.expect("role");
        for sql in [
            format!("UPDATE {t} SET updated_at = '2030-01-02 03:04:05.678901+00' WHERE id = '{id}'"),
            format!("CREATE TEMP TABLE keep ON COMMIT DROP AS SELECT * FROM {t} WHERE id = '{id}'"),
            format!("DELETE FROM {t} WHERE id = '{id}'"),
            format!("INSERT INTO {t} SELECT * FROM keep"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await.expect("change");
        }
        tx.commit().await.expect("commit");
        touched.push((format!("orbas.cdc.public.{t}"), id));
    }
    let list = tables.join(", ");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("TRUNCATE {list} CASCADE"))).execute(&db.admin).await.expect("truncate");

    let streamed_min = expected + touched.len() as i64 * 4 + tables.len() as i64;
    let all = consume(&kafka.bootstrap(), &topics, WAIT, move |m| m.len() as i64 >= streamed_min).await;
    let per = by_topic(&all);
    for (topic, id) in &touched {
        let msgs = &per[topic];
        let stream: Vec<&Msg> = msgs.iter().filter(|m| m.op() != Some("r")).collect();
        let got: Vec<&str> = stream.iter().map(|m| m.op().unwrap_or("tombstone")).collect();
        assert_eq!(got, ["u", "d", "tombstone", "c", "t"], "{topic}");
        let id = json!(id.to_string());
        assert_eq!(stream[0].before("id"), Some(&id), "{topic}");
        assert_eq!(stream[0].after("updated_at"), Some(&json!("2030-01-02T03:04:05.678901Z")), "{topic}");
        assert_eq!(stream[1].before("updated_at"), Some(&json!("2030-01-02T03:04:05.678901Z")), "{topic}");
        assert_eq!(stream[3].after("id"), Some(&id), "{topic}");
        assert_eq!(stream[3].after("updated_at"), stream[1].before("updated_at"), "{topic}: re-inserted as deleted");
    }
    for t in &tables {
        let topic = format!("orbas.cdc.public.{t}");
        assert_eq!(per[&topic].last().and_then(Msg::op), Some("t"), "{topic} ends with the truncate");
    }
    cdc.stop().await.expect("stop");
}

/// Every Postgres type the schema uses, as the live stream (pgoutput text) and the snapshot (COPY)
/// send it, mapped the same way.
#[tokio::test]
async fn types_map_faithfully_from_stream_and_snapshot() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    sqlx::raw_sql(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE TABLE typed (
             id uuid PRIMARY KEY, n numeric(20, 6), f double precision, i bigint, b boolean,
             ts timestamptz, d date, t timestamp, j jsonb, tags text[], nums integer[], m mood,
             moods mood[], bin bytea, addr inet, dur interval, note text);
         ALTER TABLE typed REPLICA IDENTITY FULL;
         ALTER PUBLICATION orbas_cdc ADD TABLE typed;",
    )
    .execute(&db.admin)
    .await
    .expect("typed table");
    let insert = "INSERT INTO typed VALUES ($1, 12345678901234.500000, 0.1, -9007199254740993, true,
        '2026-11-23 10:00:00.123456+01', '2026-02-28', '1999-12-31 23:59:59.999999', '{\"a\": [1, \"x\\\"y\"]}',
        ARRAY['a b', NULL, 'c,\"d'], '{{1,2},{3,4}}', 'sad', '{happy,sad}', '\\x00ff10', '10.0.0.1/8',
        '1 year 2 mons 3 days 04:05:06', E'tab\\there')";
    let (snap_id, live_id) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::query(insert).bind(snap_id).execute(&db.admin).await.expect("snapshot row");
    let cdc = start(config(&db, &kafka));
    let topic = vec!["orbas.cdc.public.typed".to_owned()];
    consume(&kafka.bootstrap(), &topic, WAIT, |m| !m.is_empty()).await;
    sqlx::query(insert).bind(live_id).execute(&db.admin).await.expect("live row");
    let msgs = consume(&kafka.bootstrap(), &topic, WAIT, |m| m.len() >= 2).await;
    assert_eq!(ops(&msgs), ["r", "c"]);
    let expect = json!({
        "n": "12345678901234.500000",
        "f": 0.1,
        "i": -9_007_199_254_740_993_i64,
        "b": true,
        "ts": "2026-11-23T09:00:00.123456Z",
        "d": 20_512,
        "t": 946_684_799_999_999_i64,
        "j": "{\"a\": [1, \"x\\\"y\"]}",
        "tags": ["a b", null, "c,\"d"],
        "nums": [[1, 2], [3, 4]],
        "m": "sad",
        "moods": ["happy", "sad"],
        "bin": "AP8Q",
        "addr": "10.0.0.1/8",
        "dur": "P1Y2M3DT4H5M6S",
        "note": "tab\there",
    });
    for m in &msgs {
        let after = m.value.as_ref().map(|v| v["after"].clone()).unwrap_or_default();
        for (col, want) in expect.as_object().into_iter().flatten() {
            assert_eq!(&after[col], want, "{}: column {col}", m.op().unwrap_or(""));
        }
    }
    cdc.stop().await.expect("stop");
}

/// ADD/DROP COLUMN mid-stream: the next events follow the new shape.
#[tokio::test]
async fn schema_changes_are_followed() {
    let (db, kafka, t, _, cdc) = streaming().await;
    let insert = |name: &'static str| {
        let admin = db.admin.clone();
        async move {
            sqlx::query("INSERT INTO accounts (tenant_id, id, name) VALUES ($1, $2, $3)")
                .bind(t)
                .bind(Uuid::now_v7())
                .bind(name)
                .execute(&admin)
                .await
                .expect("insert");
        }
    };
    insert("before").await;
    sqlx::raw_sql("ALTER TABLE accounts ADD COLUMN loyalty_tier text DEFAULT 'gold'")
        .execute(&db.admin)
        .await
        .expect("add");
    insert("added").await;
    sqlx::raw_sql("ALTER TABLE accounts DROP COLUMN loyalty_tier, DROP COLUMN website")
        .execute(&db.admin)
        .await
        .expect("drop");
    insert("dropped").await;
    let topic = vec!["orbas.cdc.public.accounts".to_owned()];
    let msgs = consume(&kafka.bootstrap(), &topic, WAIT, |m| m.len() >= 3).await;
    let after = |i: usize| msgs[i].value.as_ref().map(|v| v["after"].clone()).unwrap_or_default();
    assert!(after(0).get("loyalty_tier").is_none());
    assert!(after(0).get("website").is_some());
    assert_eq!(after(1)["loyalty_tier"], json!("gold"));
    assert!(after(2).get("loyalty_tier").is_none());
    assert!(after(2).get("website").is_none());
    assert_eq!(after(2)["name"], json!("dropped"));
    cdc.stop().await.expect("stop");
}

/// Heartbeats let the slot advance while the published tables are idle and other databases write.
#[tokio::test]
async fn heartbeats_advance_an_idle_slot() {
    let db = orbas_testkit::fresh_db().await;
    let other = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let mut cfg = config(&db, &kafka);
    cfg.heartbeat_interval = Duration::from_millis(200);
    let slot = cfg.slot.clone();
    let cdc = start(cfg);
    let confirmed = || async {
        let s: Option<String> =
            sqlx::query_scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1")
                .bind(&slot)
                .fetch_optional(&db.admin)
                .await
                .ok()
                .flatten();
        s.and_then(|s| s.parse::<orbas_pipeline::Lsn>().ok()).unwrap_or_default()
    };
    eventually("the slot exists", WAIT, || async { confirmed().await > orbas_pipeline::Lsn::ZERO }).await;
    let start_lsn = confirmed().await;
    // WAL written elsewhere: an unrelated database.
    sqlx::raw_sql("CREATE TABLE noise AS SELECT g FROM generate_series(1, 10000) g")
        .execute(&other.admin)
        .await
        .expect("noise");
    let wal: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text").fetch_one(&db.admin).await.expect("lsn");
    let wal: orbas_pipeline::Lsn = wal.parse().expect("lsn");
    eventually("the slot passes the other database's WAL", WAIT, || async { confirmed().await >= wal }).await;
    assert!(confirmed().await > start_lsn);
    let beats = consume(&kafka.bootstrap(), &["orbas.cdc.heartbeat".to_owned()], WAIT, |m| !m.is_empty()).await;
    assert_eq!(beats[0].value.as_ref().map(|v| v["prefix"].clone()), Some(json!("orbas.heartbeat")));
    cdc.stop().await.expect("stop");
}

/// A slot that disappears after its snapshot finished halts the service; it never re-snapshots.
#[tokio::test]
async fn a_lost_slot_halts_with_a_clear_error() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let cfg = config(&db, &kafka);
    let cdc = start(cfg.clone());
    snapshot_done(&db.admin, &cfg.slot).await;
    cdc.stop().await.expect("stop");
    sqlx::query("SELECT pg_drop_replication_slot($1)").bind(&cfg.slot).execute(&db.admin).await.expect("drop slot");
    let again = start(cfg.clone());
    eventually("the service stops", WAIT, || async { again.is_finished() }).await;
    let err = again.stop().await.expect_err("must not start");
    assert!(matches!(err, orbas_pipeline::Error::SlotLost { .. }), "{err}");
    assert!(err.to_string().contains("resnapshot"), "the error says what to do: {err}");
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1")
        .bind(&cfg.slot)
        .fetch_one(&db.admin)
        .await
        .expect("slots");
    assert_eq!(slots, 0, "no slot was silently re-created");
}

#[tokio::test]
async fn masking_exclusion_and_connect_schemas_apply_to_snapshot_and_stream() {
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let t = tenant(&db.admin).await;
    let insert_account = |name: &'static str| {
        let pool = db.admin.clone();
        async move {
            sqlx::query("INSERT INTO accounts (tenant_id, id, name, industry) VALUES ($1, $2, $3, 'software')")
                .bind(t)
                .bind(Uuid::now_v7())
                .bind(name)
                .execute(&pool)
                .await
                .expect("account");
        }
    };
    insert_account("Acme").await;
    let mut cfg = config(&db, &kafka);
    cfg.selection = orbas_pipeline::catalog::Selection {
        include: vec![],
        exclude: vec!["public.contacts".into()],
        masked: vec!["accounts.name".into()],
    };
    cfg.encoder.with_schemas = true;
    cfg.encoder.mask_key = Some(b"a-masking-key".to_vec());
    let cdc = start(cfg.clone());
    snapshot_done(&db.admin, &cfg.slot).await;
    insert_account("Acme").await;
    insert_account("Zenith").await;
    let account =
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM accounts LIMIT 1").fetch_one(&db.admin).await.expect("id");
    sqlx::query(
        "INSERT INTO contacts (tenant_id, id, account_id, first_name, last_name) VALUES ($1, $2, $3, 'A', 'B')",
    )
    .bind(t)
    .bind(Uuid::now_v7())
    .bind(account)
    .execute(&db.admin)
    .await
    .expect("contact");

    let topics = vec!["orbas.cdc.public.accounts".to_owned(), "orbas.cdc.public.contacts".to_owned()];
    // Three account events are expected; waiting for a fourth gives an excluded contact time to show up.
    let msgs = consume(&kafka.bootstrap(), &topics, Duration::from_secs(4), |m| m.len() >= 4).await;
    let by = by_topic(&msgs);
    assert!(!by.contains_key("orbas.cdc.public.contacts"), "an excluded table publishes nothing");
    let accounts = &by["orbas.cdc.public.accounts"];
    assert_eq!(accounts.len(), 3, "one snapshot read, two inserts");
    let names: Vec<&str> = accounts
        .iter()
        .map(|m| {
            let v = m.value.as_ref().expect("value");
            assert!(v["schema"]["name"].as_str().is_some_and(|n| n.ends_with(".Envelope")), "{v}");
            assert!(m.key.as_ref().is_some_and(|k| k["schema"].is_object() && k["payload"]["id"].is_string()));
            assert_eq!(v["payload"]["after"]["industry"], json!("software"), "unmasked columns stay");
            v["payload"]["after"]["name"].as_str().expect("masked name is a string")
        })
        .collect();
    assert_eq!(names[0], names[1], "the hash is deterministic: snapshot and stream agree");
    assert_ne!(names[1], names[2], "different values, different hashes");
    assert!(names.iter().all(|n| !n.contains("Acme") && !n.contains("Zenith") && n.len() >= 32), "{names:?}");
    cdc.stop().await.expect("graceful stop");
}
