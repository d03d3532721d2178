//! Migrations apply from empty, are idempotent, and leave the CDC prerequisites in place.

use orbas_oltp::db;

#[tokio::test]
async fn migrations_apply_from_empty_and_are_idempotent() {
    let t = orbas_testkit::empty_db().await;
    assert_eq!(db::pending_migrations(&t.admin).await.ok().map(|p| p.len()), Some(db::MIGRATOR.iter().count()));
    db::migrate(&t.admin).await.expect("first migrate");
    let schema_after_first = schema_fingerprint(&t.admin).await;
    db::migrate(&t.admin).await.expect("second migrate is a no-op");
    assert_eq!(schema_fingerprint(&t.admin).await, schema_after_first);
    assert_eq!(db::pending_migrations(&t.admin).await.ok(), Some(vec![]));
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations'",
    )
    .fetch_one(&t.admin)
    .await
    .expect("count tables");
    assert!(tables >= 58, "expected the full CRM schema, found {tables} tables");
}

#[tokio::test]
async fn every_table_is_cdc_ready() {
    let t = orbas_testkit::fresh_db().await;
    // Every table has a primary key and REPLICA IDENTITY FULL.
    let bad: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
           AND (c.relreplident <> 'f' OR NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)) \
         ORDER BY 1",
    )
    .fetch_all(&t.admin)
    .await
    .expect("catalog query");
    assert!(bad.is_empty(), "tables without PK or REPLICA IDENTITY FULL: {bad:?}");
    // The publication holds every table except the ones that hold secrets and the delivery outboxes.
    let unpublished: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_sqlx_migrations' \
         EXCEPT SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'orbas_cdc' ORDER BY 1",
    )
    .fetch_all(&t.admin)
    .await
    .expect("publication query");
    assert_eq!(
        unpublished,
        vec![
            "ai_settings",
            "alert_events",
            "api_keys",
            "auth_tokens",
            "email_outbox",
            "idempotency_keys",
            "report_deliveries",
            "sessions",
            "user_credentials"
        ]
    );
}

/// Tables, columns and types, indexes and constraints, as one string.
async fn schema_fingerprint(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar(
        "SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ( \
           SELECT table_name || '.' || column_name || ':' || data_type AS x FROM information_schema.columns WHERE table_schema = 'public' \
           UNION ALL SELECT indexname || indexdef FROM pg_indexes WHERE schemaname = 'public' \
           UNION ALL SELECT conname || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace) s",
    )
    .fetch_one(pool)
    .await
    .expect("fingerprint")
}
