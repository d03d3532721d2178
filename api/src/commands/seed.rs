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
    let (mut kpis, mut upgraded, mut boards) = (0, 0, 0);
    for tenant in tenants {
        let mut tx = db.begin(tenant).await?;
        let done = orbas_dashboards::store::install_defaults(tx.conn(), tenant, chrono::Utc::now()).await?;
        tx.commit().await?;
        if done.kpis_upgraded > 0 {
            tracing::info!(%tenant, kpis = done.kpis_upgraded, "standard KPIs moved to this release's content");
        }
        (kpis, upgraded, boards) =
            (kpis + done.kpis_added, upgraded + done.kpis_upgraded, boards + done.dashboards_added);
    }
    if kpis + boards > 0 {
        println!("installed {kpis} standard KPI(s) and {boards} default dashboard(s)");
    }
    if upgraded > 0 {
        println!("updated {upgraded} unchanged standard KPI(s) to this release's definitions");
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
