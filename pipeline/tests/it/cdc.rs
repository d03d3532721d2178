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
    let db = orbas_testkit::fresh_db().await;
    let kafka = broker();
    let t = tenant(&db.admin).await;
    let cfg = config(&db, &kafka);
    let cdc = start(cfg.clone());
    // Wait for the (empty) snapshot to finish: the bookkeeping row says so.
    eventually("the snapshot is recorded", WAIT, || async {
        sqlx::query_scalar::<_, bool>("SELECT completed_at IS NOT NULL FROM orbas.cdc_snapshots WHERE slot_name = $1")
            .bind(&cfg.slot)
            .fetch_optional(&db.admin)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    })
    .await;

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
