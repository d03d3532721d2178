//! The identity data layer: pre-authentication lookups, password logins against seeded users,
//! refresh-token rotation with reuse detection, and the management chain.

use chrono::{Duration, Utc};
use orbas_oltp::auth::password::verify_password;
use orbas_oltp::auth::tokens::RefreshToken;
use orbas_oltp::model::{RoleKey, TenantId, UserId};
use orbas_oltp::repo::identity::{self, LoginAttempt, LoginMethod, Lookup, RefreshRefusal};
use orbas_oltp::seed;

async fn setup() -> (orbas_testkit::TestDb, TenantId, String) {
    let t = orbas_testkit::fresh_db().await;
    let report = seed::load(&t.admin, &seed::SeedConfig::new(2, 0.01, 3).expect("cfg")).await.expect("seed");
    let (tenant, slug) = report.tenants[0].clone();
    (t, tenant, slug)
}

#[tokio::test]
async fn tenants_are_found_before_authentication_and_nothing_else_leaks() {
    let (t, tenant, slug) = setup().await;
    let pool = t.app.pool();
    assert_eq!(identity::tenant_of(pool, Lookup::Slug(&slug)).await.ok().flatten(), Some(tenant));
    assert_eq!(identity::tenant_of(pool, Lookup::Slug("no-such-tenant")).await.ok().flatten(), None);
    assert_eq!(identity::tenant_of(pool, Lookup::RefreshTokenHash(&"0".repeat(64))).await.ok().flatten(), None);
    // The lookup does not open the tables: without a tenant in scope, reading users still fails.
    let direct = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM users").fetch_one(pool).await;
    assert!(direct.is_err());
}

#[tokio::test]
async fn seeded_admin_logs_in_with_the_demo_password() {
    let (t, tenant, _) = setup().await;
    let admin_email: String = sqlx::query_scalar(
        "SELECT u.email FROM users u JOIN roles r ON r.id = u.role_id WHERE u.tenant_id = $1 AND r.key = 'admin' LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&t.admin)
    .await
    .expect("admin");
    let mut tx = t.app.begin(tenant).await.expect("begin");
    let user =
        identity::login_user_by_email(tx.conn(), &admin_email.to_uppercase()).await.expect("lookup").expect("found");
    assert_eq!(user.role, RoleKey::Admin);
    let hash = user.password_hash.clone().expect("has a password");
    assert!(verify_password(&hash, "orbas-demo-password"));
    assert!(!verify_password(&hash, "orbas-demo-password!"));
    let attempt = LoginAttempt {
        user: Some(user.id),
        method: LoginMethod::Password,
        failure: None,
        ip: None,
        user_agent: Some("test"),
    };
    identity::record_login(tx.conn(), tenant, &attempt).await.expect("history");
    identity::set_login_failures(tx.conn(), user.id, 3, None).await.expect("failures");
    let again = identity::login_user_by_email(tx.conn(), &admin_email).await.expect("lookup").expect("found");
    assert_eq!(again.failed_attempts, 3);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_replayed_token_revokes_the_family() {
    let (t, tenant, _) = setup().await;
    let user: UserId = sqlx::query_scalar("SELECT id FROM users WHERE tenant_id = $1 AND status = 'active' LIMIT 1")
        .bind(tenant)
        .fetch_one(&t.admin)
        .await
        .expect("user");
    let now = Utc::now();
    let (first, second, third) = (RefreshToken::generate(), RefreshToken::generate(), RefreshToken::generate());
    let mut tx = t.app.begin(tenant).await.expect("begin");
    identity::create_session(tx.conn(), tenant, user, &first.hash(), now + Duration::days(30)).await.expect("create");
    tx.commit().await.expect("commit");

    // The lookup finds the tenant from the token's hash alone.
    let found = identity::tenant_of(t.app.pool(), Lookup::RefreshTokenHash(&first.hash())).await.expect("lookup");
    assert_eq!(found, Some(tenant));

    let mut tx = t.app.begin(tenant).await.expect("begin");
    let rotated =
        identity::rotate_session(tx.conn(), tenant, &first.hash(), &second.hash(), now + Duration::days(30), now)
            .await
            .expect("rotate")
            .expect("accepted");
    assert!(identity::session_is_live(tx.conn(), rotated.id, now).await.expect("live"));
    // Presenting the first token again: refused as reuse, and the live session dies with it.
    let replay =
        identity::rotate_session(tx.conn(), tenant, &first.hash(), &third.hash(), now + Duration::days(30), now)
            .await
            .expect("rotate");
    assert_eq!(replay.err(), Some(RefreshRefusal::Reused));
    assert!(!identity::session_is_live(tx.conn(), rotated.id, now).await.expect("live"));
    let after =
        identity::rotate_session(tx.conn(), tenant, &second.hash(), &third.hash(), now + Duration::days(30), now)
            .await
            .expect("rotate");
    assert_eq!(after.err(), Some(RefreshRefusal::Revoked));
    let unknown =
        identity::rotate_session(tx.conn(), tenant, &third.hash(), &first.hash(), now, now).await.expect("rotate");
    assert_eq!(unknown.err(), Some(RefreshRefusal::Unknown));
}

#[tokio::test]
async fn a_manager_s_team_is_everyone_below_them() {
    let (t, tenant, _) = setup().await;
    let (manager, expected): (UserId, i64) = sqlx::query_as(
        "WITH RECURSIVE below(root, id) AS (SELECT manager_id, id FROM users WHERE tenant_id = $1 AND manager_id IS NOT NULL \
             UNION SELECT b.root, u.id FROM users u JOIN below b ON u.manager_id = b.id) \
         SELECT root, count(*) FROM below GROUP BY root ORDER BY count(*) DESC, root LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&t.admin)
    .await
    .expect("manager");
    let mut tx = t.app.begin(tenant).await.expect("begin");
    let team = identity::reports_of(tx.conn(), manager).await.expect("team");
    assert_eq!(team.len() as i64, expected);
    assert!(!team.contains(&manager));
}
