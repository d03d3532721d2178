//! `orbas erase --tenant T --subject ID`: a person removed from every store, in data-flow order.
//!
//! 1. **CRM** (`orbas_oltp::repo::erasure`): the person's contact/lead and every row that is theirs
//!    are deleted in one transaction; the report names each deleted row.
//! 2. **Change stream**: waits until every logical slot has confirmed the erasure's WAL position —
//!    CDC confirms only what Kafka acknowledged, so the deletes and their tombstones are in Kafka.
//! 3. **Kafka**: waits until every consumer group reading the topics that held the person (the lake
//!    sink, the search indexer, anyone else's) has committed past the deletes, then deletes every
//!    record before that point (DeleteRecords): the person's old values go, and nothing any consumer
//!    still needs. A broker without DeleteRecords keeps them until retention or compaction (the
//!    tombstones are there for compaction); the report says so and the command fails.
//! 4. **Lake**: bronze keeps every change, so the rows are deleted from bronze and silver by id
//!    (`orbas_warehouse::maintain::erase_rows`), their files vacuumed and the log expired.
//! 5. **Search**: the indexer deleted the documents when the deletes arrived; waits until the index
//!    holds none of them and has merged them out of its segment files.
//!
//! Model features are computed from the lake and the CRM at each run, so they hold nothing after
//! steps 1 and 4; predictions and recommendations about the person are rows of step 1.
//!
//! Every step is idempotent: rerunning after a timeout finishes the job (step 1 then finds nothing).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_oltp::db::{self, Db};
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::audit::Actor;
use orbas_oltp::repo::erasure::{self, PersonErasure};
use orbas_pipeline::event::topic_for;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use sqlx::PgPool;

use crate::cli::EraseArgs;
use crate::settings::Settings;

const POLL: Duration = Duration::from_millis(500);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// (topic, partition, offset).
type At = (String, i32, i64);

/// One store's outcome.
#[derive(Debug, Clone, Serialize)]
struct Step {
    store: &'static str,
    /// `erased`, `absent` (not configured / nothing there), or `incomplete`.
    outcome: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
struct Report {
    tenant: String,
    subject: String,
    crm: PersonErasure,
    steps: Vec<Step>,
    complete: bool,
}

pub async fn run(settings: &Settings, args: &EraseArgs) -> anyhow::Result<()> {
    let subject = uuid::Uuid::parse_str(args.subject.trim()).context("--subject must be a contact or lead id")?;
    let tenant: uuid::Uuid = super::lake::tenant_id(settings, &args.tenant).await?.parse()?;
    let admin = db::connect(settings.database.admin_url()?, 2).await?;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let mut steps = Vec::new();

    // 1. The CRM.
    let mut tx = Db::new(admin.clone()).begin(TenantId(tenant)).await?;
    let actor = Actor { request_id: Some("orbas erase".to_owned()), ..Actor::default() };
    let mut crm = erasure::erase_person(tx.conn(), TenantId(tenant), subject, &actor).await?;
    tx.commit().await?;
    let mut conn = admin.acquire().await?;
    crm.lsn = erasure::wal_position(&mut conn).await?;
    drop(conn);
    steps.push(Step {
        store: "crm",
        outcome: if crm.people.is_empty() { "absent" } else { "erased" },
        detail: if crm.people.is_empty() {
            "no contact or lead with this id (erased before?)".to_owned()
        } else {
            format!("{} rows in {} tables", crm.total(), crm.rows.len())
        },
    });

    // 2. The change stream.
    steps.push(change_stream(&admin, &crm.lsn, deadline).await?);

    // 3. Kafka.
    let mut tables: Vec<String> = crm.rows.keys().cloned().collect();
    for t in ["contacts", "leads"] {
        if !tables.iter().any(|x| x == t) {
            tables.push(t.to_owned());
        }
    }
    match args.brokers.clone().or_else(|| settings.kafka_brokers.clone()) {
        Some(brokers) => steps.push(kafka(&brokers, &tables, deadline).await),
        None => steps.push(Step { store: "kafka", outcome: "absent", detail: "no brokers configured".to_owned() }),
    }

    // 4. The lake.
    let root = super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?;
    let lake_dir = root.to_file_path().ok();
    if lake_dir.as_deref().is_some_and(std::path::Path::is_dir) {
        let rows: BTreeMap<String, Vec<String>> =
            crm.rows.iter().map(|(t, ids)| (t.clone(), ids.iter().map(ToString::to_string).collect())).collect();
        let lake =
            orbas_warehouse::maintain::erase_rows(&root, &tenant.to_string(), &subject.to_string(), &rows).await?;
        steps.push(Step {
            store: "lake",
            outcome: "erased",
            detail: format!(
                "{} rows from {} tables ({} files rewritten and vacuumed, {} log versions expired)",
                lake.rows_deleted,
                lake.tables.len(),
                lake.tables.iter().map(|t| t.files_rewritten).sum::<usize>(),
                lake.tables.iter().map(|t| t.log_versions_expired).sum::<usize>()
            ),
        });
    } else {
        steps.push(Step { store: "lake", outcome: "absent", detail: format!("no lake at {root}") });
    }

    // 5. Search.
    match &args.search_dir {
        Some(dir) if dir.join("meta.json").exists() => steps.push(search(dir, &crm, deadline).await?),
        Some(dir) => {
            steps.push(Step { store: "search", outcome: "absent", detail: format!("no index at {}", dir.display()) })
        }
        None => steps.push(Step { store: "search", outcome: "absent", detail: "no index given".to_owned() }),
    }

    let complete = steps.iter().all(|s| s.outcome != "incomplete");
    let report = Report { tenant: tenant.to_string(), subject: subject.to_string(), crm, steps, complete };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("erasure of {} in tenant {}", report.subject, report.tenant);
        for s in &report.steps {
            println!("  {:<14} {:<10} {}", s.store, s.outcome, s.detail);
        }
        for (table, ids) in &report.crm.rows {
            println!("    crm {table}: {}", ids.len());
        }
        for (reference, n) in &report.crm.cleared {
            println!("    cleared {reference}: {n}");
        }
    }
    if !complete {
        bail!("the erasure is incomplete: rerun `orbas erase` once the stores marked incomplete have caught up");
    }
    Ok(())
}

/// Waits until every logical slot of the database has confirmed `lsn`.
async fn change_stream(admin: &PgPool, lsn: &str, deadline: Instant) -> anyhow::Result<Step> {
    loop {
        // Every logical slot of the database: (name, consumer connected, confirmed the erasure).
        let slots: Vec<(String, bool, bool)> = sqlx::query_as(
            "SELECT slot_name::text, active, coalesce(confirmed_flush_lsn >= $1::pg_lsn, false) \
             FROM pg_replication_slots WHERE slot_type = 'logical' AND database = current_database()",
        )
        .bind(lsn)
        .fetch_all(admin)
        .await?;
        let behind: Vec<&(String, bool, bool)> = slots.iter().filter(|(_, _, passed)| !passed).collect();
        let slots = slots.len();
        if slots == 0 {
            return Ok(Step { store: "change stream", outcome: "absent", detail: "no logical slot".to_owned() });
        }
        if behind.is_empty() {
            return Ok(Step {
                store: "change stream",
                outcome: "erased",
                detail: format!("{slots} slot(s) confirmed the deletes (WAL {lsn})"),
            });
        }
        if Instant::now() >= deadline {
            let names: Vec<String> =
                behind.iter().map(|(n, a, _)| format!("{n}{}", if *a { "" } else { " (no consumer)" })).collect();
            return Ok(Step {
                store: "change stream",
                outcome: "incomplete",
                detail: format!("not yet published past {lsn}: {}", names.join(", ")),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The partitions of the topics that held the person, with their end offsets once the deletes are in.
fn end_offsets(consumer: &BaseConsumer, tables: &[String]) -> anyhow::Result<Vec<At>> {
    let meta = consumer.fetch_metadata(None, KAFKA_TIMEOUT).context("Kafka metadata")?;
    let mut out = Vec::new();
    for table in tables {
        let topic = topic_for("public", table);
        let Some(t) = meta.topics().iter().find(|t| t.name() == topic) else { continue };
        for p in t.partitions() {
            let (_, high) = consumer.fetch_watermarks(&topic, p.id(), KAFKA_TIMEOUT)?;
            if high > 0 {
                out.push((topic.clone(), p.id(), high));
            }
        }
    }
    Ok(out)
}

/// The committed offset of every consumer group on each partition (groups that never read it are left
/// out).
fn group_positions(brokers: &str, consumer: &BaseConsumer, parts: &[At]) -> anyhow::Result<BTreeMap<String, Vec<At>>> {
    let groups = consumer.fetch_group_list(None, KAFKA_TIMEOUT).context("listing consumer groups")?;
    let mut out = BTreeMap::new();
    for g in groups.groups() {
        let reader: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", g.name())
            .set("enable.auto.commit", "false")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for (topic, p, _) in parts {
            tpl.add_partition(topic, *p);
        }
        let committed = reader.committed_offsets(tpl, KAFKA_TIMEOUT)?;
        let at: Vec<At> = committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.topic().to_owned(), e.partition(), o)),
                _ => None,
            })
            .collect();
        if !at.is_empty() {
            out.insert(g.name().to_owned(), at);
        }
    }
    Ok(out)
}

async fn kafka(brokers: &str, tables: &[String], deadline: Instant) -> Step {
    match kafka_inner(brokers, tables, deadline).await {
        Ok(step) => step,
        Err(e) => Step { store: "kafka", outcome: "incomplete", detail: format!("{e:#}") },
    }
}

async fn kafka_inner(brokers: &str, tables: &[String], deadline: Instant) -> anyhow::Result<Step> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let parts = end_offsets(&consumer, tables)?;
    if parts.is_empty() {
        return Ok(Step { store: "kafka", outcome: "absent", detail: "no topic held the person".to_owned() });
    }
    // Every group reading these partitions must be past the deletes before history goes.
    loop {
        let positions = group_positions(brokers, &consumer, &parts)?;
        let lagging: Vec<String> = positions
            .iter()
            .filter(|(_, at)| {
                at.iter().any(|(t, p, o)| parts.iter().any(|(pt, pp, end)| pt == t && pp == p && o < end))
            })
            .map(|(g, _)| g.clone())
            .collect();
        if lagging.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Ok(Step {
                store: "kafka",
                outcome: "incomplete",
                detail: format!("consumer groups not yet past the deletes: {}", lagging.join(", ")),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    let mut tpl = TopicPartitionList::new();
    for (topic, p, end) in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*end))?;
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", brokers).create()?;
    let opts = AdminOptions::new().operation_timeout(Some(KAFKA_TIMEOUT)).request_timeout(Some(KAFKA_TIMEOUT));
    let topics = parts.iter().map(|(t, _, _)| t.as_str()).collect::<std::collections::BTreeSet<_>>();
    match admin.delete_records(&tpl, &opts).await {
        Ok(result) => {
            let failed: Vec<String> = result
                .elements()
                .iter()
                .filter_map(|e| e.error().err().map(|err| format!("{}/{}: {err}", e.topic(), e.partition())))
                .collect();
            if failed.is_empty() {
                Ok(Step {
                    store: "kafka",
                    outcome: "erased",
                    detail: format!("records before the deletes removed from {} topic(s)", topics.len()),
                })
            } else {
                Ok(Step { store: "kafka", outcome: "incomplete", detail: unsupported(&failed.join("; ")) })
            }
        }
        Err(e) => Ok(Step { store: "kafka", outcome: "incomplete", detail: unsupported(&e.to_string()) }),
    }
}

fn unsupported(why: &str) -> String {
    format!(
        "the broker did not delete the records before the deletes ({why}); the tombstones are written, so \
         compaction (cleanup.policy=compact) or retention removes the history — tansu supports neither \
         DeleteRecords nor compaction"
    )
}

async fn search(dir: &std::path::Path, crm: &PersonErasure, deadline: Instant) -> anyhow::Result<Step> {
    let index = orbas_search::SearchIndex::open(dir, orbas_search::Access::ReadOnly, None)?;
    let ids: Vec<String> = crm.ids().iter().map(ToString::to_string).collect();
    loop {
        let held = index.holds(&ids)?;
        let in_files = index.deleted_in_files();
        if held == 0 && in_files == 0 {
            return Ok(Step {
                store: "search",
                outcome: "erased",
                detail: "no document of the person, none left in the segment files".to_owned(),
            });
        }
        if Instant::now() >= deadline {
            return Ok(Step {
                store: "search",
                outcome: "incomplete",
                detail: format!("{held} documents still indexed, {in_files} deleted documents not yet merged out"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
