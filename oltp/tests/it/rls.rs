//! Tenant isolation in the database. The tables are enumerated from the catalog, so a new table
//! without RLS, without a policy or without data from the generator fails these tests.

use orbas_oltp::model::TenantId;
use orbas_oltp::{Error, ErrorKind, seed};
use orbas_testkit::TestDb;
use sqlx::{AssertSqlSafe, PgPool};

async fn tables(admin: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(admin)
    .await
    .expect("list tables")
}

fn key(table: &str) -> &'static str {
    if table == "tenants" { "id" } else { "tenant_id" }
}

async fn seeded_two_tenants() -> (TestDb, TenantId, TenantId) {
    let t = orbas_testkit::fresh_db().await;
    let cfg = seed::SeedConfig::new(2, 0.01, 7).expect("config");
    let report = seed::load(&t.admin, &cfg).await.expect("seed");
    let (a, b) = (report.tenants[0].0, report.tenants[1].0);
    for tenant in [a, b] {
        configure(&t.admin, tenant).await;
    }
    (t, a, b)
}

/// A KPI, a dashboard with a widget, a report and a delivery, an alert and an event: the configuration
/// tables are installed (`orbas_dashboards::store::install_defaults`) or written by users, not generated
/// by the seed.
async fn configure(admin: &sqlx::PgPool, tenant: TenantId) {
    let one = |sql: &'static str| sqlx::query_scalar::<_, uuid::Uuid>(sql).bind(tenant);
    let kpi = one(
        "INSERT INTO kpi_definitions (tenant_id, id, key, name, definition, unit, good_direction) \
         VALUES ($1, gen_random_uuid(), 'deals', 'Deals', '{\"source\": \"opportunities\", \"measure\": \"COUNT(*)\"}', \
                 'count', 'up') RETURNING id",
    )
    .fetch_one(admin)
    .await
    .expect("a KPI");
    let board =
        one("INSERT INTO dashboards (tenant_id, id, name) VALUES ($1, gen_random_uuid(), 'Board') RETURNING id")
            .fetch_one(admin)
            .await
            .expect("a dashboard");
    sqlx::query(
        "INSERT INTO dashboard_widgets (tenant_id, id, dashboard_id, kpi_id, kind, title) \
         VALUES ($1, gen_random_uuid(), $2, $3, 'tile', 'Deals')",
    )
    .bind(tenant)
    .bind(board)
    .bind(kpi)
    .execute(admin)
    .await
    .expect("a widget");
    let report: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO scheduled_reports (tenant_id, id, dashboard_id, owner_id, name, cron, recipients) \
         SELECT $1, gen_random_uuid(), $2, u.id, 'Weekly', '0 8 * * 1', ARRAY[u.email] FROM users u \
         WHERE u.tenant_id = $1 ORDER BY u.id LIMIT 1 RETURNING id",
    )
    .bind(tenant)
    .bind(board)
    .fetch_one(admin)
    .await
    .expect("a report");
    sqlx::query(
        "INSERT INTO report_deliveries (tenant_id, id, report_id, email, scheduled_for) \
         VALUES ($1, gen_random_uuid(), $2, 'someone@example.com', now())",
    )
    .bind(tenant)
    .bind(report)
    .execute(admin)
    .await
    .expect("a delivery");
    let alert: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO kpi_alerts (tenant_id, id, owner_id, name, kpi_id, period, comparison, goal_value, recipients, cron) \
         SELECT $1, gen_random_uuid(), u.id, 'Low deals', $2, 'month', 'below', 10, ARRAY[u.email], '0 8 * * *' \
         FROM users u WHERE u.tenant_id = $1 ORDER BY u.id LIMIT 1 RETURNING id",
    )
    .bind(tenant)
    .bind(kpi)
    .fetch_one(admin)
    .await
    .expect("an alert");
    sqlx::query(
        "INSERT INTO alert_events (tenant_id, id, alert_id, email, group_key, period, value, goal) \
         VALUES ($1, gen_random_uuid(), $2, 'someone@example.com', '', '2026-12-01..2027-01-01', 3, 10)",
    )
    .bind(tenant)
    .bind(alert)
    .execute(admin)
    .await
    .expect("an event");
}

#[tokio::test]
async fn every_table_has_forced_rls_with_a_policy_and_the_app_role_cannot_bypass_it() {
    let t = orbas_testkit::fresh_db().await;
    let unprotected: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> '_sqlx_migrations' \
           AND (NOT c.relrowsecurity OR NOT c.relforcerowsecurity \
                OR NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)) ORDER BY 1",
    )
    .fetch_all(&t.admin)
    .await
    .expect("catalog");
    assert!(unprotected.is_empty(), "tables without forced RLS and a policy: {unprotected:?}");

    let without_tenant: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables t WHERE schemaname = 'public' AND tablename NOT IN ('_sqlx_migrations', 'tenants') \
         AND NOT EXISTS (SELECT 1 FROM information_schema.columns c WHERE c.table_schema = 'public' \
                         AND c.table_name = t.tablename AND c.column_name = 'tenant_id')",
    )
    .fetch_all(&t.admin)
    .await
    .expect("catalog");
    assert!(without_tenant.is_empty(), "tenant-owned tables without tenant_id: {without_tenant:?}");

    let (sup, bypass, owns): (bool, bool, i64) = sqlx::query_as(
        "SELECT rolsuper, rolbypassrls, (SELECT count(*) FROM pg_tables WHERE tableowner = current_user) \
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(t.app.pool())
    .await
    .expect("role attributes");
    assert!(
        !sup && !bypass && owns == 0,
        "app role must not be superuser ({sup}), bypass RLS ({bypass}) or own tables ({owns})"
    );
}

#[tokio::test]
async fn without_a_tenant_every_table_errors_instead_of_returning_rows() {
    let (t, _, _) = seeded_two_tenants().await;
    for table in tables(&t.admin).await {
        let r = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(t.app.pool())
            .await;
        match r.map_err(Error::from) {
            Err(Error::NoTenant) => {}
            other => panic!("{table}: expected a no-tenant error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn tenant_a_can_neither_see_nor_change_tenant_b_in_any_table() {
    let (t, a, b) = seeded_two_tenants().await;
    for table in tables(&t.admin).await {
        // Written only by models from the seeded text, so the seed leaves it empty (the policy is the
        // same `orbas.secure_table` one, checked by the two tests above).
        // Likewise the assistant's tables: written by an admin (settings) and by users' questions.
        if ["sentiment_scores", "ai_settings", "ai_queries"].contains(&table.as_str()) {
            continue;
        }
        let before = fingerprint(&t.admin, &table, b).await;
        let own_rows = count_as_admin(&t.admin, &table, a).await;
        assert!(own_rows > 0, "{table}: the generator left tenant A without rows; the test needs some");
        assert!(count_as_admin(&t.admin, &table, b).await > 0, "{table}: no rows for tenant B");

        let mut tx = t.app.begin(a).await.expect("begin");
        let k = key(&table);
        let seen_b: i64 = scalar(&mut tx, &format!("SELECT count(*) FROM {table} WHERE {k} = '{}'", b.0)).await;
        let seen_all: i64 = scalar(&mut tx, &format!("SELECT count(*) FROM {table}")).await;
        tx.rollback().await.expect("rollback");
        assert_eq!(seen_b, 0, "{table}: tenant A sees tenant B's rows");
        assert_eq!(seen_all, own_rows, "{table}: tenant A sees a different number of rows than it owns");

        for stmt in [
            format!("UPDATE {table} SET updated_at = updated_at WHERE {k} = '{}'", b.0),
            format!("DELETE FROM {table} WHERE {k} = '{}'", b.0),
        ] {
            let affected = execute(&t, a, &stmt).await;
            assert!(matches!(affected, Ok(0) | Err(ErrorKind::Forbidden)), "{table}: `{stmt}` gave {affected:?}");
        }

        let copy_of_b: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT (row_to_json(t_row)::jsonb || jsonb_build_object('id', gen_random_uuid()))::text FROM {table} t_row WHERE {k} = '{}' LIMIT 1",
            b.0
        )))
        .fetch_one(&t.admin)
        .await
        .expect("row of B");
        let insert = format!(
            "INSERT INTO {table} SELECT * FROM json_populate_record(NULL::{table}, '{}'::json)",
            copy_of_b.replace('\'', "''")
        );
        assert_eq!(execute(&t, a, &insert).await, Err(ErrorKind::Forbidden), "{table}: inserted a row for tenant B");

        if table != "tenants" {
            let steal = format!("UPDATE {table} SET tenant_id = '{}' WHERE id = (SELECT id FROM {table} LIMIT 1)", b.0);
            assert_eq!(execute(&t, a, &steal).await, Err(ErrorKind::Forbidden), "{table}: moved a row into tenant B");
        }
        assert_eq!(fingerprint(&t.admin, &table, b).await, before, "{table}: tenant B's rows changed");
    }
}

async fn scalar(tx: &mut orbas_oltp::db::TenantTx, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(tx.conn())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` as the app in tenant `tenant`'s transaction, rolled back; rows affected or the error kind.
async fn execute(t: &TestDb, tenant: TenantId, sql: &str) -> Result<u64, ErrorKind> {
    let mut tx = t.app.begin(tenant).await.expect("begin");
    let r = sqlx::query(AssertSqlSafe(sql.to_owned())).execute(tx.conn()).await;
    drop(tx.rollback().await);
    r.map(|done| done.rows_affected()).map_err(|e| Error::from(e).kind())
}

async fn count_as_admin(admin: &PgPool, table: &str, tenant: TenantId) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT count(*) FROM {table} WHERE {} = $1", key(table))))
        .bind(tenant.0)
        .fetch_one(admin)
        .await
        .expect("count")
}

async fn fingerprint(admin: &PgPool, table: &str, tenant: TenantId) -> Option<String> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT md5(string_agg(t_row::text, '' ORDER BY t_row.id)) FROM {table} t_row WHERE {} = $1",
        key(table)
    )))
    .bind(tenant.0)
    .fetch_one(admin)
    .await
    .expect("fingerprint")
}
