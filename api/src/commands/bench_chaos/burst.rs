//! The write burst: accounts created through the HTTP API by concurrent clients that survive a
//! Postgres restart the way a careful client does — every create carries an `Idempotency-Key` and is
//! retried with the same key on a connection error, 429 or 5xx; a key whose first attempt died
//! between claiming it and recording the response (the API answers 409 "in progress" until the claim
//! is presumed abandoned) is settled by looking the account up by its natural key (its domain) and
//! only then, if it does not exist, re-sent under a new key.
//!
//! A key whose recorded response is a 401 (the access token expired between the middleware's check and
//! the handler's, so the request was refused and the refusal stored) is spent: the create never ran, and
//! it is re-sent under a new key with a fresh token.
//!
//! Every tenth account is also renamed (`PATCH`), so the stream carries updates as well as inserts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use uuid::Uuid;

/// How long a key may answer 409 before the client looks the account up.
const IN_PROGRESS_PATIENCE: Duration = Duration::from_secs(10);
/// How long one row may take, retries included, before the run gives up.
const ROW_DEADLINE: Duration = Duration::from_secs(600);
const INDUSTRIES: [&str; 4] = ["software", "retail", "healthcare", "logistics"];

/// A tenant's admin: who logs in.
#[derive(Debug, Clone)]
pub(super) struct Login {
    pub(super) tenant: Uuid,
    pub(super) slug: String,
    pub(super) email: String,
}

/// The API as a client sees it.
#[derive(Clone)]
pub(super) struct Api {
    pub(super) base: String,
    pub(super) http: reqwest::Client,
}

impl Api {
    pub(super) fn new(base: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Api { base, http })
    }

    /// An access token for `login`, retrying while the server or its database is away.
    pub(super) async fn login(&self, login: &Login) -> anyhow::Result<String> {
        let deadline = Instant::now() + ROW_DEADLINE;
        loop {
            let body =
                json!({ "tenant": login.slug, "email": login.email, "password": orbas_oltp::seed::DEMO_PASSWORD });
            match self.http.post(format!("{}/v1/auth/login", self.base)).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    let v: Value = r.json().await?;
                    return v["access_token"].as_str().map(str::to_owned).context("login answered no access_token");
                }
                Ok(r) if !retryable(r.status()) => bail!("login of {} answered {}", login.email, r.status()),
                _ if Instant::now() > deadline => bail!("could not log in {} for 10 minutes", login.email),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// Statuses a client retries with the same key.
fn retryable(s: StatusCode) -> bool {
    s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS
}

/// A login with its current token, renewed on 401.
struct Session {
    login: Login,
    token: RwLock<String>,
}

impl Session {
    async fn renew(&self, api: &Api, stale: &str) -> anyhow::Result<()> {
        let mut t = self.token.write().await;
        if *t == stale {
            *t = api.login(&self.login).await?;
        }
        Ok(())
    }
}

/// What the burst did, from the clients' side.
#[derive(Debug, Default)]
pub(super) struct BurstReport {
    /// (row number, account id) of every create the API acknowledged.
    pub(super) created: Vec<(u64, Uuid)>,
    pub(super) updated: u64,
    /// Attempts sent again (connection error, 429, 5xx, 409 in progress).
    pub(super) retries: u64,
    /// Rows whose abandoned key was replaced after the lookup found no account.
    pub(super) new_keys: u64,
    /// Rows whose abandoned key was settled by finding the account.
    pub(super) found_by_lookup: u64,
    /// Keys whose stored response was a 401 (refused, never run), replaced by a new key.
    pub(super) refused_keys: u64,
    pub(super) elapsed: Duration,
}

#[derive(Default)]
struct Counters {
    updated: AtomicU64,
    retries: AtomicU64,
    new_keys: AtomicU64,
    found: AtomicU64,
    refused: AtomicU64,
}

/// The natural key of row `i` of run `seed`: unique, so Postgres shows any duplicate create.
pub(super) fn domain(seed: u64, i: u64) -> String {
    format!("r{i}.s{seed}.chaos.example")
}

/// The domain suffix every row of run `seed` shares.
pub(super) fn domain_suffix(seed: u64) -> String {
    format!(".s{seed}.chaos.example")
}

/// Creates `rows` accounts spread over `logins`' tenants with `clients` concurrent clients; bumps
/// `progress` per row done.
pub(super) async fn run(
    api: &Api,
    logins: &[Login],
    rows: u64,
    clients: usize,
    seed: u64,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<BurstReport> {
    let mut sessions = Vec::new();
    for l in logins {
        let token = api.login(l).await?;
        sessions.push(Arc::new(Session { login: l.clone(), token: RwLock::new(token) }));
    }
    let counters = Arc::new(Counters::default());
    let began = Instant::now();
    let clients = u64::try_from(clients.max(1))?;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..clients {
        let (api, sessions, counters, progress) = (api.clone(), sessions.clone(), counters.clone(), progress.clone());
        workers.spawn(async move {
            let mut created = Vec::new();
            for i in (w..rows).step_by(usize::try_from(clients)?) {
                let session = &sessions[usize::try_from(i)? % sessions.len()];
                let id = create(&api, session, seed, i, &counters).await?;
                if i % 10 == 0 {
                    rename(&api, session, id, seed, i, &counters).await?;
                }
                created.push((i, id));
                progress.fetch_add(1, Ordering::AcqRel);
            }
            anyhow::Ok(created)
        });
    }
    let mut created = Vec::new();
    while let Some(r) = workers.join_next().await {
        created.extend(r??);
    }
    Ok(BurstReport {
        created,
        updated: counters.updated.load(Ordering::Acquire),
        retries: counters.retries.load(Ordering::Acquire),
        new_keys: counters.new_keys.load(Ordering::Acquire),
        found_by_lookup: counters.found.load(Ordering::Acquire),
        refused_keys: counters.refused.load(Ordering::Acquire),
        elapsed: began.elapsed(),
    })
}

/// One attempt's outcome.
enum Attempt {
    Done(Uuid),
    Retry,
    InProgress,
    /// The key's stored response is a refusal (401): nothing ran under it.
    Refused,
}

async fn create(api: &Api, s: &Session, seed: u64, i: u64, counters: &Counters) -> anyhow::Result<Uuid> {
    let body = json!({
        "name": format!("Chaos {seed} #{i}"),
        "domain": domain(seed, i),
        "industry": INDUSTRIES[usize::try_from(i % 4)?],
        "annual_revenue": format!("{}.{:02}", 1000 + i * 7 % 100_000, i % 100),
        "billing_country": "DE",
    });
    let deadline = Instant::now() + ROW_DEADLINE;
    let (mut generation, mut in_progress_since) = (0u32, None::<Instant>);
    loop {
        if Instant::now() > deadline {
            bail!("row {i} was not created in 10 minutes");
        }
        let key = format!("chaos-{seed}-{i}-{generation}");
        match attempt(api, s, &key, &body).await? {
            Attempt::Done(id) => return Ok(id),
            Attempt::Retry => in_progress_since = None,
            Attempt::Refused => {
                counters.refused.fetch_add(1, Ordering::AcqRel);
                generation += 1;
                in_progress_since = None;
            }
            Attempt::InProgress => {
                let since = *in_progress_since.get_or_insert_with(Instant::now);
                if since.elapsed() > IN_PROGRESS_PATIENCE {
                    if let Some(id) = lookup(api, s, &domain(seed, i)).await? {
                        counters.found.fetch_add(1, Ordering::AcqRel);
                        return Ok(id);
                    }
                    counters.new_keys.fetch_add(1, Ordering::AcqRel);
                    generation += 1;
                    in_progress_since = None;
                }
            }
        }
        counters.retries.fetch_add(1, Ordering::AcqRel);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn attempt(api: &Api, s: &Session, key: &str, body: &Value) -> anyhow::Result<Attempt> {
    let token = s.token.read().await.clone();
    let sent = api
        .http
        .post(format!("{}/v1/accounts", api.base))
        .bearer_auth(&token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await;
    let Ok(resp) = sent else { return Ok(Attempt::Retry) };
    let status = resp.status();
    match status {
        StatusCode::CREATED | StatusCode::OK => {
            let Ok(v) = resp.json::<Value>().await else { return Ok(Attempt::Retry) };
            let id = v["id"].as_str().and_then(|s| s.parse().ok()).context("a created account without an id")?;
            Ok(Attempt::Done(id))
        }
        StatusCode::CONFLICT => Ok(Attempt::InProgress),
        StatusCode::UNAUTHORIZED => {
            let replayed = resp.headers().contains_key("idempotent-replayed");
            s.renew(api, &token).await?;
            Ok(if replayed { Attempt::Refused } else { Attempt::Retry })
        }
        other if retryable(other) => Ok(Attempt::Retry),
        other => bail!("POST /v1/accounts answered {other}: {}", resp.text().await.unwrap_or_default()),
    }
}

/// The account with `domain`, if the tenant has one (the first of several).
async fn lookup(api: &Api, s: &Session, domain: &str) -> anyhow::Result<Option<Uuid>> {
    let deadline = Instant::now() + ROW_DEADLINE;
    while Instant::now() < deadline {
        let token = s.token.read().await.clone();
        let sent = api
            .http
            .get(format!("{}/v1/accounts", api.base))
            .query(&[("domain", domain)])
            .bearer_auth(&token)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await?;
                return Ok(v["items"].get(0).and_then(|a| a["id"].as_str()).and_then(|s| s.parse().ok()));
            }
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => s.renew(api, &token).await?,
            Ok(r) if !retryable(r.status()) => bail!("GET /v1/accounts?domain= answered {}", r.status()),
            _ => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    bail!("could not look up {domain} in 10 minutes")
}

/// Renames account `id`; a rename is idempotent, so it is simply retried.
async fn rename(api: &Api, s: &Session, id: Uuid, seed: u64, i: u64, counters: &Counters) -> anyhow::Result<()> {
    let body = json!({ "name": format!("Chaos {seed} #{i} (renamed)") });
    let deadline = Instant::now() + ROW_DEADLINE;
    while Instant::now() < deadline {
        let token = s.token.read().await.clone();
        let sent =
            api.http.patch(format!("{}/v1/accounts/{id}", api.base)).bearer_auth(&token).json(&body).send().await;
        match sent {
            Ok(r) if r.status().is_success() => {
                counters.updated.fetch_add(1, Ordering::AcqRel);
                return Ok(());
            }
            Ok(r) if r.status() == StatusCode::UNAUTHORIZED => s.renew(api, &token).await?,
            Ok(r) if !retryable(r.status()) => bail!("PATCH /v1/accounts/{id} answered {}", r.status()),
            _ => {}
        }
        counters.retries.fetch_add(1, Ordering::AcqRel);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("account {id} was not renamed in 10 minutes")
}
