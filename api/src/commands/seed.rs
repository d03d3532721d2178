//! `orbas seed`: deterministic synthetic data, loaded with COPY (or written as CSV files).

use orbas_oltp::model::TenantId;
use orbas_oltp::{db, seed};
use sqlx::PgPool;

use crate::cli::SeedArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: &SeedArgs) -> anyhow::Result<()> {
    let mut cfg = seed::SeedConfig::new(args.tenants, args.scale, args.seed)?;
    if let Some(d) = args.as_of {
        cfg.as_of = d;
    }
    if let Some(dir) = &args.csv_dir {
        std::fs::create_dir_all(dir)?;
        let tables = seed::write_csv(&cfg, dir)?;
        let rows: u64 = tables.iter().map(|t| t.rows).sum();
        println!("wrote {rows} rows in {} CSV files to {}", tables.len(), dir.display());
        return Ok(());
    }
    let admin = db::connect(settings.database.admin_url()?, 4).await?;
    let report = seed::load(&admin, &cfg).await?;
    print_report(&report);
    install_dashboards(&admin, report.tenants.iter().map(|(t, _)| *t)).await?;
    Ok(())
}

/// Gives each tenant the standard KPIs and the default dashboards of the roles it lacks (by key),
/// and this release's content for the standard KPIs nobody changed.
pub async fn install_dashboards(pool: &PgPool, tenants: impl IntoIterator<Item = TenantId>) -> anyhow::Result<()> {
    let db = db::Db::new(pool.clone());
    let mut all = orbas_dashboards::store::Installed::default();
    for tenant in tenants {
        let mut tx = db.begin(tenant).await?;
        let done = orbas_dashboards::store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await?;
        tx.commit().await?;
        if done.kpis_upgraded + done.dashboards_upgraded > 0 {
            tracing::info!(
                %tenant, kpis = done.kpis_upgraded, dashboards = done.dashboards_upgraded,
                "unchanged standard content moved to this release's"
            );
        }
        all.kpis_added += done.kpis_added;
        all.kpis_upgraded += done.kpis_upgraded;
        all.dashboards_added += done.dashboards_added;
        all.dashboards_upgraded += done.dashboards_upgraded;
    }
    if all.kpis_added + all.dashboards_added > 0 {
        println!("installed {} standard KPI(s) and {} default dashboard(s)", all.kpis_added, all.dashboards_added);
    }
    if all.kpis_upgraded + all.dashboards_upgraded > 0 {
        println!(
            "updated {} standard KPI(s) and {} default dashboard(s) nobody had changed to this release's",
            all.kpis_upgraded, all.dashboards_upgraded
        );
    }
    Ok(())
}

pub fn print_report(report: &seed::SeedReport) {
    for t in &report.tables {
        println!("  {:<26} {:>10} rows", t.table, t.rows);
    }
    println!(
        "seeded {} tenants, {} rows in {:.2?} ({:.0} rows/s)",
        report.tenants.len(),
        report.total_rows,
        report.elapsed,
        report.rows_per_sec()
    );
}
