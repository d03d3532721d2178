//! One typed settings tree, layered: defaults → TOML file (`--config` / `ORBAS_CONFIG`) → environment
//! → command-line flags. Unknown keys in the file are rejected. Secrets are `SecretString`s and never
//! printed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Settings as they may appear in the file; every field optional so layers can be merged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    #[serde(default)]
    pub database: DatabaseFile,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub sql: SqlFile,
    #[serde(default)]
    pub kafka: KafkaFile,
    #[serde(default)]
    pub lake: LakeFile,
    #[serde(default)]
    pub auth: AuthFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub jwt_secret: Option<SecretString>,
    pub secrets_key: Option<SecretString>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseFile {
    pub url: Option<SecretString>,
    pub app_url: Option<SecretString>,
    pub app_user: Option<String>,
    pub app_password: Option<SecretString>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub addr: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlFile {
    pub addr: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaFile {
    pub brokers: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeFile {
    pub url: Option<String>,
}

/// Values from the environment and flags (clap fills both; a flag wins over its variable).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Overrides {
    /// TOML settings file.
    #[arg(long, env = "ORBAS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Admin/owner connection (migrations, seeding). Omit with `demo` to run an embedded Postgres.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<SecretString>,
    /// Connection the server uses (an unprivileged member of `orbas_app`). Default: DATABASE_URL with
    /// the app user and password.
    #[arg(long, env = "ORBAS_APP_DATABASE_URL", global = true, hide_env_values = true)]
    pub app_database_url: Option<SecretString>,
    /// Password of the application login; `migrate` creates or updates the login when it is set.
    #[arg(long, env = "ORBAS_APP_PASSWORD", global = true, hide_env_values = true)]
    pub app_password: Option<SecretString>,
    /// Key that signs access tokens (at least 32 bytes). `demo` makes a random one when unset.
    #[arg(long, env = "ORBAS_JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// Key that seals secrets stored in the database, such as tenants' language-model API keys
    /// (AES-256-GCM): 64 hex digits or 32 bytes in base64. Without it admins cannot store such keys.
    /// `demo` keeps one in its data directory (or makes a random one).
    #[arg(long, env = "ORBAS_SECRETS_KEY", global = true, hide_env_values = true)]
    pub secrets_key: Option<SecretString>,
    #[arg(long, env = "ORBAS_HTTP_ADDR", global = true)]
    pub http_addr: Option<SocketAddr>,
    #[arg(long, env = "ORBAS_SQL_ADDR", global = true)]
    pub sql_addr: Option<SocketAddr>,
    #[arg(long, env = "KAFKA_BROKERS", global = true)]
    pub kafka_brokers: Option<String>,
    #[arg(long, env = "ORBAS_LAKE", global = true)]
    pub lake_url: Option<String>,
}

/// The resolved settings.
#[derive(Debug)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub http_addr: SocketAddr,
    pub sql_addr: SocketAddr,
    pub kafka_brokers: Option<String>,
    pub lake_url: Option<String>,
    pub jwt_secret: Option<SecretString>,
    pub secrets_key: Option<SecretString>,
}

#[derive(Debug)]
pub struct DatabaseSettings {
    pub url: Option<SecretString>,
    pub app_url: Option<SecretString>,
    pub app_user: String,
    pub app_password: Option<SecretString>,
    pub max_connections: u32,
}

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_SQL_ADDR: &str = "127.0.0.1:5433";
pub const DEFAULT_APP_USER: &str = "orbas_api";

impl Settings {
    /// The lake a command works on: its `--lake` flag (or `ORBAS_LAKE`), else `lake.url` from the
    /// settings file, else `./lake`.
    pub fn lake(&self, flag: Option<&str>) -> String {
        flag.map(str::to_owned).or_else(|| self.lake_url.clone()).unwrap_or_else(|| "./lake".to_owned())
    }

    pub fn load(o: &Overrides) -> anyhow::Result<Self> {
        let file = match &o.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let db = file.database;
        Ok(Settings {
            database: DatabaseSettings {
                url: o.database_url.clone().or(db.url),
                app_url: o.app_database_url.clone().or(db.app_url),
                app_user: db.app_user.unwrap_or_else(|| DEFAULT_APP_USER.into()),
                app_password: o.app_password.clone().or(db.app_password),
                max_connections: db.max_connections.unwrap_or(16),
            },
            http_addr: o.http_addr.or(file.http.addr).unwrap_or_else(|| parse_default(DEFAULT_HTTP_ADDR)),
            sql_addr: o.sql_addr.or(file.sql.addr).unwrap_or_else(|| parse_default(DEFAULT_SQL_ADDR)),
            kafka_brokers: o.kafka_brokers.clone().or(file.kafka.brokers),
            lake_url: o.lake_url.clone().or(file.lake.url),
            jwt_secret: o.jwt_secret.clone().or(file.auth.jwt_secret),
            secrets_key: o.secrets_key.clone().or(file.auth.secrets_key),
        })
    }
}

impl Settings {
    pub fn jwt_secret(&self) -> anyhow::Result<&SecretString> {
        self.jwt_secret.as_ref().context("no access-token key: set ORBAS_JWT_SECRET (32+ random bytes)")
    }
}

impl Settings {
    /// The secrets key, parsed; `None` when unset.
    pub fn secrets_key(&self) -> anyhow::Result<Option<orbas_oltp::secrets::SecretsKey>> {
        self.secrets_key
            .as_ref()
            .map(|k| orbas_oltp::secrets::SecretsKey::parse(k.expose_secret()))
            .transpose()
            .context("invalid ORBAS_SECRETS_KEY (auth.secrets_key)")
    }
}

impl DatabaseSettings {
    pub fn admin_url(&self) -> anyhow::Result<&str> {
        match &self.url {
            Some(u) => Ok(u.expose_secret()),
            None => bail!("no database: set DATABASE_URL (or database.url in the config file)"),
        }
    }

    /// The application's URL: explicit, or the admin URL with the app login swapped in.
    pub fn app_url(&self) -> anyhow::Result<String> {
        if let Some(u) = &self.app_url {
            return Ok(u.expose_secret().to_owned());
        }
        let Some(password) = &self.app_password else {
            bail!(
                "no application login: set ORBAS_APP_DATABASE_URL, or ORBAS_APP_PASSWORD (and run `orbas migrate` once with it)"
            );
        };
        with_credentials(self.admin_url()?, &self.app_user, password.expose_secret())
    }
}

/// `url` with its user and password replaced.
pub fn with_credentials(url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("database URL must look like postgres://host/db")?;
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    Ok(format!("{scheme}://{}:{}@{host_part}", encode(user), encode(password)))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading settings file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid settings file {}", path.display()))
}

fn parse_default(s: &str) -> SocketAddr {
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_credentials_and_percent_encodes() {
        let u = with_credentials("postgres://admin:pw@db:5432/crm?sslmode=disable", "orbas_api", "p@ss word");
        assert_eq!(u.ok().as_deref(), Some("postgres://orbas_api:p%40ss%20word@db:5432/crm?sslmode=disable"));
    }

    #[test]
    fn file_rejects_unknown_keys_and_flags_win() {
        let bad: Result<FileSettings, _> = toml::from_str("[http]\nadress = \"127.0.0.1:1\"\n");
        assert!(bad.is_err());
        let dir = tempfile::tempdir().ok();
        let path = dir.as_ref().map(|d| d.path().join("o.toml")).unwrap_or_default();
        std::fs::write(&path, "[http]\naddr = \"127.0.0.1:9000\"\n[sql]\naddr = \"127.0.0.1:9001\"\n").ok();
        let o = Overrides { config: Some(path), http_addr: "127.0.0.1:9100".parse().ok(), ..Default::default() };
        let s = Settings::load(&o).ok();
        assert_eq!(s.as_ref().map(|s| s.http_addr.port()), Some(9100));
        assert_eq!(s.as_ref().map(|s| s.sql_addr.port()), Some(9001));
    }
}
