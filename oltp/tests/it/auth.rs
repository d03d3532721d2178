//! Postgres and `orbas_oltp::auth::scram` agree on SCRAM-SHA-256: a role created with one of our
//! verifiers logs in over TCP (the test cluster uses `scram-sha-256` host authentication) with the
//! plaintext password and not with a wrong one; and our parser reads the verifiers Postgres makes.
//! Roles are cluster-wide, so every test uses its own role names and drops them afterwards.

use orbas_oltp::auth::scram::{ScramVerifier, scram_sha256_verifier};
use orbas_oltp::auth::tokens::ApiKey;
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool};
use uuid::Uuid;

fn role_name() -> String {
    format!("auth_{}", Uuid::now_v7().simple())
}

/// Runs `format(template, args…)` on the server and executes the result: identifiers and literals are
/// quoted by Postgres (`%I`, `%L`), not by string concatenation here.
async fn exec_formatted(admin: &PgPool, template: &str, args: &[&str]) {
    let params: String = (1..=args.len()).map(|i| format!(", ${i}::text")).collect();
    let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(format!("SELECT format('{template}'{params})")));
    for arg in args {
        query = query.bind(*arg);
    }
    let stmt = query.fetch_one(admin).await.expect("format statement");
    sqlx::raw_sql(AssertSqlSafe(stmt)).execute(admin).await.expect("execute formatted statement");
}

async fn create_role(admin: &PgPool, role: &str, password_or_verifier: &str) {
    exec_formatted(admin, "CREATE ROLE %I LOGIN PASSWORD %L", &[role, password_or_verifier]).await;
}

async fn drop_role(admin: &PgPool, role: &str) {
    exec_formatted(admin, "DROP ROLE IF EXISTS %I", &[role]).await;
}

async fn stored_secret(admin: &PgPool, role: &str) -> String {
    sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(role)
        .fetch_one(admin)
        .await
        .expect("read pg_authid")
}

/// Connects to `database` as `role` over TCP, with the password given separately from the URL (no
/// URL-encoding concerns for non-ASCII passwords).
async fn login(role: &str, password: &str, database: &str) -> Result<(), sqlx::Error> {
    let cluster = orbas_testkit::cluster().await;
    let url = cluster.url_as(role, "unused", database);
    let opts: PgConnectOptions = url.parse::<PgConnectOptions>()?.password(password);
    let mut conn = PgConnection::connect_with(&opts).await?;
    let who: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await?;
    assert_eq!(who, role);
    conn.close().await
}

fn assert_auth_failure(r: Result<(), sqlx::Error>) {
    let code = match &r {
        Err(e) => e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()),
        Ok(()) => panic!("login with a wrong password succeeded"),
    };
    // 28P01 invalid_password
    assert_eq!(code.as_deref(), Some("28P01"), "{r:?}");
}

#[tokio::test]
async fn postgres_accepts_our_verifier() {
    let t = orbas_testkit::fresh_db().await;
    let cases = [("ascii", "correct-horse-42"), ("saslprep", "pässwörd\u{a0}mit Ümlaut")];
    for (label, password) in cases {
        let role = role_name();
        let verifier = scram_sha256_verifier(password);
        create_role(&t.admin, &role, &verifier).await;
        assert_eq!(stored_secret(&t.admin, &role).await, verifier, "{label}: Postgres kept our verifier as is");

        let ok = login(&role, password, &t.name).await;
        let wrong = login(&role, &format!("{password}x"), &t.name).await;
        drop_role(&t.admin, &role).await;
        ok.unwrap_or_else(|e| panic!("{label}: login with the right password failed: {e}"));
        assert_auth_failure(wrong);
    }
}

#[tokio::test]
async fn an_api_key_works_as_a_postgres_password() {
    let t = orbas_testkit::fresh_db().await;
    let key = ApiKey::generate("orbas").expect("generate");
    let role = role_name();
    create_role(&t.admin, &role, &key.scram_verifier()).await;
    let ok = login(&role, key.secret().expose_secret(), &t.name).await;
    let other = ApiKey::generate("orbas").expect("generate");
    let wrong = login(&role, other.secret().expose_secret(), &t.name).await;
    drop_role(&t.admin, &role).await;
    ok.unwrap_or_else(|e| panic!("login with the API key failed: {e}"));
    assert_auth_failure(wrong);
}

#[tokio::test]
async fn we_parse_the_verifiers_postgres_makes() {
    let t = orbas_testkit::fresh_db().await;
    let role = role_name();
    let password = "made-by-postgres-7";
    // A plaintext password: Postgres derives the verifier itself (password_encryption = scram-sha-256).
    create_role(&t.admin, &role, password).await;
    let text = stored_secret(&t.admin, &role).await;
    drop_role(&t.admin, &role).await;
    let parsed = ScramVerifier::parse(&text).unwrap_or_else(|e| panic!("parse {text:?}: {e}"));
    assert_eq!(parsed.iterations(), 4096);
    assert_eq!(parsed.salt().len(), 16);
    assert!(parsed.matches(password));
    assert!(!parsed.matches("made-by-postgres-8"));
    assert_eq!(parsed.encode(), text, "round-trips byte for byte");
}
