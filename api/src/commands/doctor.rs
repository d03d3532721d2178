//! `orbas doctor`: checks the environment and says what to fix — the database (reachable, logical
//! WAL, schema current, roles safe, publication), the change stream's replication slots, the Kafka
//! broker and the lake's tables. A failed check makes the command fail; a warning (e.g. a slot with
//! no consumer right now) is printed and does not.

use std::time::Duration;

use orbas_oltp::db;
use orbas_oltp::repo::status::{self as pg_status, SlotStatus};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use sqlx::PgPool;

use crate::cli::DoctorArgs;
use crate::routes::status::Health;
use crate::settings::Settings;

/// How long the broker gets to answer a metadata request.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);
/// A slot holding back more WAL than this gets a warning.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

struct Check {
    name: &'static str,
    verdict: Verdict,
    detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, verdict: Verdict::Ok, detail: detail.into() }
    }

    fn of(name: &'static str, ok: bool, detail: impl Into<String>) -> Self {
        Check { name, verdict: if ok { Verdict::Ok } else { Verdict::Fail }, detail: detail.into() }
    }
}

pub async fn run(settings: &Settings, args: &DoctorArgs) -> anyhow::Result<()> {
    let admin = match db::connect(settings.database.admin_url()?, 1).await {
        Ok(p) => p,
        Err(e) => anyhow::bail!("✗ postgres reachable: {e} — is DATABASE_URL right and the server up?"),
    };
    let mut checks = vec![
        Check::pass("postgres reachable", ""),
        wal_level(&admin).await?,
        replication_capacity(&admin).await?,
        schema_current(&admin).await?,
        app_role_safe(&admin, &settings.database.app_user).await?,
        publication(&admin).await?,
        lookup_owner(&admin).await?,
    ];
    checks.extend(slots(pg_status::replication_slots(&admin).await?));
    match args.brokers.clone().or_else(|| settings.kafka_brokers.clone()) {
        Some(brokers) => checks.push(broker(brokers).await),
        None => checks.push(Check::pass("kafka broker", "not configured (set KAFKA_BROKERS or --brokers); skipped")),
    }
    match args.lake.clone().or_else(|| settings.lake_url.clone()) {
        Some(lake) => checks.extend(lake_checks(&lake).await),
        None => checks.push(Check::pass("lake", "not configured (set ORBAS_LAKE or --lake); skipped")),
    }
    let mut failed = 0;
    for c in &checks {
        let mark = match c.verdict {
            Verdict::Ok => "✓",
            Verdict::Warn => "!",
            Verdict::Fail => "✗",
        };
        println!("{mark} {}{}", c.name, if c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) });
        failed += usize::from(c.verdict == Verdict::Fail);
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// Slots and senders for CDC: at least one of each must be free to configure.
async fn replication_capacity(admin: &PgPool) -> anyhow::Result<Check> {
    let (slots, senders): (String, String) =
        sqlx::query_as("SELECT current_setting('max_replication_slots'), current_setting('max_wal_senders')")
            .fetch_one(admin)
            .await?;
    let ok = slots.parse::<i64>().unwrap_or(0) > 0 && senders.parse::<i64>().unwrap_or(0) > 0;
    Ok(Check::of(
        "replication slots and WAL senders available",
        ok,
        if ok {
            format!("max_replication_slots = {slots}, max_wal_senders = {senders}")
        } else {
            format!(
                "max_replication_slots = {slots}, max_wal_senders = {senders}: both must be at least 1 (restart needed)"
            )
        },
    ))
}

/// The logical slots: lost WAL fails; no consumer, a large lag or WAL about to be lost warns.
fn slots(slots: Vec<SlotStatus>) -> Vec<Check> {
    if slots.is_empty() {
        return vec![Check {
            name: "replication slot",
            verdict: Verdict::Warn,
            detail: "none yet: `orbas pipeline cdc` creates one on its first start".into(),
        }];
    }
    slots
        .into_iter()
        .map(|s| {
            let lag = s.lag_bytes.map_or_else(|| "unknown".into(), crate::routes::status::bytes);
            let (health, notes) = crate::routes::status::judge_slot(&s);
            let verdict = match health {
                Health::Down => Verdict::Fail,
                Health::Degraded => Verdict::Warn,
                Health::Ok | Health::Off => Verdict::Ok,
            };
            let detail = if notes.is_empty() {
                format!("{}: consumer connected, behind by {lag}", s.name)
            } else {
                format!("{} (behind by {lag})", notes.join(" "))
            };
            Check { name: "replication slot", verdict, detail }
        })
        .collect()
}

/// The broker answers a metadata request and lists the CDC topics it holds.
async fn broker(brokers: String) -> Check {
    let probe = brokers.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", &probe).create()?;
        let metadata = consumer.fetch_metadata(None, BROKER_TIMEOUT)?;
        let cdc =
            metadata.topics().iter().filter(|t| t.name().starts_with(orbas_pipeline::event::TOPIC_PREFIX)).count();
        Ok::<_, rdkafka::error::KafkaError>((metadata.brokers().len(), cdc))
    })
    .await;
    match answer {
        Ok(Ok((nodes, cdc))) => {
            Check::pass("kafka broker reachable", format!("{brokers}: {nodes} broker(s), {cdc} CDC topic(s)"))
        }
        Ok(Err(e)) => Check::of(
            "kafka broker reachable",
            false,
            format!("{brokers}: {e} — is the broker up and KAFKA_BROKERS right?"),
        ),
        Err(e) => Check::of("kafka broker reachable", false, format!("{brokers}: {e}")),
    }
}

/// Every lake table's log reads and every data file it references exists.
async fn lake_checks(lake: &str) -> Vec<Check> {
    if !lake.contains("://") && !std::path::Path::new(lake).is_dir() {
        return vec![Check::of("lake", false, format!("{lake} is not a directory: is ORBAS_LAKE right?"))];
    }
    let url = match super::pipeline::lake_url(lake) {
        Ok(u) => u,
        Err(e) => return vec![Check::of("lake", false, format!("{lake}: {e}"))],
    };
    let tables = match orbas_warehouse::maintain::verify(&url).await {
        Ok(t) => t,
        Err(e) => return vec![Check::of("lake", false, format!("{lake}: {e}"))],
    };
    let files: usize = tables.iter().map(|t| t.files).sum();
    let mut out = vec![Check::of(
        "lake tables readable and whole",
        tables.iter().all(|t| t.ok()),
        format!("{} tables, {files} data files under {url}", tables.len()),
    )];
    for t in tables.iter().filter(|t| !t.ok()) {
        let detail = match &t.error {
            Some(e) => format!("{}.{}: the log cannot be read: {e}", t.layer, t.name),
            None => format!(
                "{}.{}: {} of {} data files missing (e.g. {}) — restore them from a backup, or drop the table and \
                 let the sink rebuild it from the topics",
                t.layer,
                t.name,
                t.missing_count,
                t.files,
                t.missing.first().map_or("", String::as_str)
            ),
        };
        out.push(Check::of("lake table", false, detail));
    }
    out
}

async fn wal_level(admin: &PgPool) -> anyhow::Result<Check> {
    let level: String = sqlx::query_scalar("SELECT current_setting('wal_level')").fetch_one(admin).await?;
    Ok(Check::of(
        "wal_level = logical (CDC)",
        level == "logical",
        if level == "logical" { String::new() } else { format!("is {level}; set wal_level=logical and restart") },
    ))
}

async fn schema_current(admin: &PgPool) -> anyhow::Result<Check> {
    let pending = db::pending_migrations(admin).await?;
    Ok(Check::of(
        "schema current",
        pending.is_empty(),
        if pending.is_empty() { String::new() } else { format!("{} pending; run `orbas migrate`", pending.len()) },
    ))
}

async fn app_role_safe(admin: &PgPool, user: &str) -> anyhow::Result<Check> {
    let row: Option<(bool, bool)> = sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
        .bind(user)
        .fetch_optional(admin)
        .await?;
    Ok(match row {
        None => Check::of(
            "application login",
            false,
            format!("{user:?} missing; run `orbas migrate` with ORBAS_APP_PASSWORD"),
        ),
        Some((sup, bypass)) => Check::of(
            "application login cannot bypass RLS",
            !sup && !bypass,
            if sup || bypass { format!("{user:?} is superuser or BYPASSRLS") } else { String::new() },
        ),
    })
}

async fn publication(admin: &PgPool) -> anyhow::Result<Check> {
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'orbas_cdc'")
        .fetch_one(admin)
        .await?;
    Ok(Check::of("publication orbas_cdc", tables > 0, format!("{tables} tables")))
}

/// The pre-authentication lookup functions run as their owner, who must see every tenant's rows.
async fn lookup_owner(admin: &PgPool) -> anyhow::Result<Check> {
    let ok: Option<bool> = sqlx::query_scalar(
        "SELECT r.rolsuper OR r.rolbypassrls FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
         WHERE p.proname = 'tenant_by_slug' AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'orbas')",
    )
    .fetch_optional(admin)
    .await?;
    Ok(Check::of(
        "login lookups can see every tenant",
        ok == Some(true),
        match ok {
            Some(true) => String::new(),
            Some(false) => "the schema owner needs BYPASSRLS (ALTER ROLE … BYPASSRLS)".into(),
            None => "functions missing; run `orbas migrate`".into(),
        },
    ))
}
