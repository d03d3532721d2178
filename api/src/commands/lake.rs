//! `orbas lake …`: maintenance of the lake's Delta tables (see `orbas_warehouse::maintain`).

use std::num::NonZeroU64;
use std::time::Duration;

use anyhow::Context as _;
use orbas_oltp::db;
use orbas_oltp::repo::identity::{self, Lookup};
use orbas_warehouse::maintain;

use crate::cli::LakeCommand;
use crate::settings::Settings;

pub async fn run(settings: &Settings, cmd: LakeCommand) -> anyhow::Result<()> {
    match cmd {
        LakeCommand::Optimize { lake, target_mb } => {
            let root = super::pipeline::lake_url(&settings.lake(lake.as_deref()))?;
            let target =
                NonZeroU64::new(target_mb.saturating_mul(1024 * 1024)).context("--target-mb must be positive")?;
            for t in maintain::tables(&root).await? {
                let done = maintain::optimize(&t.url, target)
                    .await
                    .with_context(|| format!("optimizing {}/{}", t.layer, t.name))?;
                if done.files_removed > 0 {
                    println!(
                        "{}/{}: {} files → {}{}",
                        t.layer,
                        t.name,
                        done.files_removed,
                        done.files_added,
                        if done.sorted_by_tenant { " (sorted by tenant)" } else { "" }
                    );
                }
            }
            Ok(())
        }
        LakeCommand::Vacuum { lake, retention_hours } => {
            let root = super::pipeline::lake_url(&settings.lake(lake.as_deref()))?;
            let retention = Duration::from_secs(retention_hours.saturating_mul(3600));
            let mut total = 0;
            for t in maintain::tables(&root).await? {
                total += maintain::vacuum(&t.url, retention)
                    .await
                    .with_context(|| format!("vacuuming {}/{}", t.layer, t.name))?;
            }
            println!("vacuum: {total} files older than {retention_hours} h and no longer referenced were deleted");
            Ok(())
        }
        LakeCommand::Erase { lake, tenant, subject, json } => {
            let root = super::pipeline::lake_url(&settings.lake(lake.as_deref()))?;
            let tenant = tenant_id(settings, &tenant).await?;
            let report = maintain::erase(&root, &tenant, subject.trim()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "erasure of {} in tenant {}: {} rows deleted",
                    report.subject, report.tenant, report.rows_deleted
                );
                for t in &report.tables {
                    println!(
                        "  {}/{}: {} rows; {} files rewritten, {} files vacuumed, {} log versions expired",
                        t.layer, t.table, t.rows_deleted, t.files_rewritten, t.files_vacuumed, t.log_versions_expired
                    );
                }
                if report.tables.is_empty() {
                    println!("  no table held this person");
                }
            }
            Ok(())
        }
    }
}

/// A tenant id as given, or the id of a tenant slug (looked up in the database).
pub(super) async fn tenant_id(settings: &Settings, tenant: &str) -> anyhow::Result<String> {
    if let Ok(id) = uuid::Uuid::parse_str(tenant.trim()) {
        return Ok(id.to_string());
    }
    let url =
        settings.database.admin_url().context("--tenant is not a tenant id; to look up a slug set DATABASE_URL")?;
    let pool = db::connect(url, 1).await?;
    let id = identity::tenant_of(&pool, Lookup::Slug(tenant.trim())).await?;
    id.map(|t| t.to_string()).with_context(|| format!("no active tenant with slug {tenant:?}"))
}
