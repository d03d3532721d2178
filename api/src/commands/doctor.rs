//! `orbas doctor`: checks the environment and says what to fix.

use orbas_oltp::db;
use sqlx::PgPool;

use crate::settings::Settings;

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let admin = match db::connect(settings.database.admin_url()?, 1).await {
        Ok(p) => p,
        Err(e) => anyhow::bail!("✗ postgres reachable: {e} — is DATABASE_URL right and the server up?"),
    };
    let checks = vec![
        Check { name: "postgres reachable", ok: true, detail: String::new() },
        wal_level(&admin).await?,
        schema_current(&admin).await?,
        app_role_safe(&admin, &settings.database.app_user).await?,
        publication(&admin).await?,
        lookup_owner(&admin).await?,
    ];
    let mut failed = 0;
    for c in &checks {
        println!(
            "{} {}{}",
            if c.ok { "✓" } else { "✗" },
            c.name,
            if c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) }
        );
        failed += usize::from(!c.ok);
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

async fn wal_level(admin: &PgPool) -> anyhow::Result<Check> {
    let level: String = sqlx::query_scalar("SELECT current_setting('wal_level')").fetch_one(admin).await?;
    Ok(Check {
        name: "wal_level = logical (CDC)",
        ok: level == "logical",
        detail: if level == "logical" {
            String::new()
        } else {
            format!("is {level}; set wal_level=logical and restart")
        },
    })
}

async fn schema_current(admin: &PgPool) -> anyhow::Result<Check> {
    let pending = db::pending_migrations(admin).await?;
    Ok(Check {
        name: "schema current",
        ok: pending.is_empty(),
        detail: if pending.is_empty() {
            String::new()
        } else {
            format!("{} pending; run `orbas migrate`", pending.len())
        },
    })
}

async fn app_role_safe(admin: &PgPool, user: &str) -> anyhow::Result<Check> {
    let row: Option<(bool, bool)> = sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
        .bind(user)
        .fetch_optional(admin)
        .await?;
    Ok(match row {
        None => Check {
            name: "application login",
            ok: false,
            detail: format!("{user:?} missing; run `orbas migrate` with ORBAS_APP_PASSWORD"),
        },
        Some((sup, bypass)) => Check {
            name: "application login cannot bypass RLS",
            ok: !sup && !bypass,
            detail: if sup || bypass { format!("{user:?} is superuser or BYPASSRLS") } else { String::new() },
        },
    })
}

async fn publication(admin: &PgPool) -> anyhow::Result<Check> {
    let tables: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'orbas_cdc'")
        .fetch_one(admin)
        .await?;
    Ok(Check { name: "publication orbas_cdc", ok: tables > 0, detail: format!("{tables} tables") })
}

/// The pre-authentication lookup functions run as their owner, who must see every tenant's rows.
async fn lookup_owner(admin: &PgPool) -> anyhow::Result<Check> {
    let ok: Option<bool> = sqlx::query_scalar(
        "SELECT r.rolsuper OR r.rolbypassrls FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner \
         WHERE p.proname = 'tenant_by_slug' AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = 'orbas')",
    )
    .fetch_optional(admin)
    .await?;
    Ok(Check {
        name: "login lookups can see every tenant",
        ok: ok == Some(true),
        detail: match ok {
            Some(true) => String::new(),
            Some(false) => "the schema owner needs BYPASSRLS (ALTER ROLE … BYPASSRLS)".into(),
            None => "functions missing; run `orbas migrate`".into(),
        },
    })
}
