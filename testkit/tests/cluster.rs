//! The launcher and the harness themselves: a cluster is configured for logical replication, stops
//! cleanly, and every test database is migrated and reachable as the unprivileged app role.

use orbas_oltp::cluster::{ClusterOptions, PgCluster};
use orbas_oltp::db;

#[tokio::test]
async fn cluster_is_ready_for_logical_replication_and_stops_cleanly() {
    let cluster =
        PgCluster::start(ClusterOptions { ephemeral_durability: true, ..Default::default() }).await.expect("start");
    let dir = cluster.data_dir();
    let pool = db::connect(&cluster.url("postgres"), 1).await.expect("connect");
    let settings: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, setting FROM pg_settings WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders') ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .expect("settings");
    assert_eq!(
        settings,
        vec![
            ("max_replication_slots".into(), "16".into()),
            ("max_wal_senders".into(), "16".into()),
            ("wal_level".into(), "logical".into())
        ]
    );
    pool.close().await;
    let port = cluster.port();
    cluster.stop().await.expect("stop");
    assert!(!dir.exists(), "temporary data directory removed");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "nothing listens after stop");
}

#[tokio::test]
async fn test_databases_are_migrated_and_isolated_from_each_other() {
    let (a, b) = (orbas_testkit::fresh_db().await, orbas_testkit::fresh_db().await);
    assert_ne!(a.name, b.name);
    assert_eq!(db::pending_migrations(&a.admin).await.ok(), Some(vec![]));
    let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(a.app.pool()).await.expect("whoami");
    assert_eq!(user, orbas_testkit::APP_ROLE);
    // Writing in one database is invisible in the other.
    sqlx::query("INSERT INTO tenants (id, name, slug) VALUES (gen_random_uuid(), 'Only A', 'only-a')")
        .execute(&a.admin)
        .await
        .expect("insert");
    let in_b: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants").fetch_one(&b.admin).await.expect("count");
    assert_eq!(in_b, 0);
}
