//! `orbas migrate`: apply pending migrations; provision the application login when a password is set.

use orbas_oltp::db;
use secrecy::ExposeSecret;

use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let admin = db::connect(settings.database.admin_url()?, 2).await?;
    let before = db::pending_migrations(&admin).await?;
    db::migrate(&admin).await?;
    println!("schema current at version {} ({} migration(s) applied now)", db::latest_version(), before.len());
    // Tenants created before the KPI layer existed get its standard set and the roles' dashboards.
    let tenants = orbas_oltp::repo::identity::active_tenants(&admin).await?;
    super::seed::install_dashboards(&admin, tenants).await?;
    if let Some(password) = &settings.database.app_password {
        db::provision_app_role(&admin, &settings.database.app_user, password.expose_secret()).await?;
        println!("application login {:?} provisioned (member of {})", settings.database.app_user, db::APP_GROUP_ROLE);
    }
    Ok(())
}
