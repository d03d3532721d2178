//! Tenant isolation under a pooled load: every tenant's admin reads lists and records concurrently
//! over the shared connection pool while about one request in ten is cancelled mid-flight (the client
//! drops the request — and its connection — after a random few milliseconds). Every row of every
//! completed response is looked up in a map of row id → tenant built from Postgres: a row of another
//! tenant (or one carrying another tenant's `tenant_id`) is a foreign row. Requests for another
//! tenant's record by id must be refused (404).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use super::burst::{Api, Login};

/// Share of requests cancelled mid-flight.
const CANCELLED: f64 = 0.10;
const CONCURRENCY: usize = 32;
const LISTS: [&str; 3] = ["accounts", "contacts", "opportunities"];

#[derive(Debug, Default, Clone)]
pub(super) struct IsolationReport {
    pub(super) tenants: usize,
    pub(super) requests: u64,
    pub(super) completed: u64,
    pub(super) cancelled: u64,
    /// Completed with a status other than the expected one (transport errors included).
    pub(super) unexpected: u64,
    pub(super) server_errors: u64,
    pub(super) rows_checked: u64,
    pub(super) foreign_rows: u64,
    /// Rows whose id is in no table the map was built from.
    pub(super) unknown_rows: u64,
    /// Another tenant's record requested by id: refused / answered.
    pub(super) probes_refused: u64,
    pub(super) probes_answered: u64,
}

/// Row id → (tenant, collection), for the tables the load reads.
type Owners = HashMap<Uuid, (Uuid, &'static str)>;

async fn owners(admin: &PgPool) -> anyhow::Result<Owners> {
    let mut out = Owners::new();
    for table in LISTS {
        // Table names are this module's constants.
        let rows: Vec<(Uuid, Uuid)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT id, tenant_id FROM {table}"))).fetch_all(admin).await?;
        out.extend(rows.into_iter().map(|(id, t)| (id, (t, table))));
    }
    Ok(out)
}

/// What one request is.
enum Request {
    /// A collection, with a sort (accounts only).
    List(&'static str, Option<&'static str>),
    Own(Uuid),
    Foreign(Uuid),
}

/// Outcome of one request.
#[derive(Default)]
struct Outcome {
    cancelled: bool,
    unexpected: bool,
    server_error: bool,
    rows: u64,
    foreign: u64,
    unknown: u64,
    probe: Option<bool>,
}

pub(super) async fn run(
    api: &Api,
    admin: &PgPool,
    logins: &[Login],
    requests: u64,
    seed: u64,
) -> anyhow::Result<IsolationReport> {
    let owners = Arc::new(owners(admin).await?);
    let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for (id, (t, _)) in owners.iter() {
        by_tenant.entry(*t).or_default().push(*id);
    }
    for ids in by_tenant.values_mut() {
        ids.sort();
    }
    let tokens: Vec<anyhow::Result<String>> =
        futures::stream::iter(logins.iter().map(|l| api.login(l))).buffered(8).collect().await;
    let tokens: Vec<String> = tokens.into_iter().collect::<anyhow::Result<_>>()?;
    let (by_tenant, tokens, all): (_, _, Arc<[Login]>) = (Arc::new(by_tenant), Arc::new(tokens), logins.into());
    let outcomes: Vec<Outcome> = futures::stream::iter(0..requests)
        .map(|j| {
            let (api, owners, by_tenant, tokens) = (api.clone(), owners.clone(), by_tenant.clone(), tokens.clone());
            let logins = all.clone();
            async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ j.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let t = rng.random_range(0..logins.len());
                let tenant = logins[t].tenant;
                let req = pick(&mut rng, tenant, &logins, &by_tenant);
                let cancel = rng.random_bool(CANCELLED).then(|| Duration::from_millis(rng.random_range(0..25)));
                one(&api, &tokens[t], tenant, req, cancel, &owners).await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut r = IsolationReport { tenants: logins.len(), requests, ..Default::default() };
    for o in outcomes {
        r.cancelled += u64::from(o.cancelled);
        r.completed += u64::from(!o.cancelled);
        r.unexpected += u64::from(o.unexpected);
        r.server_errors += u64::from(o.server_error);
        r.rows_checked += o.rows;
        r.foreign_rows += o.foreign;
        r.unknown_rows += o.unknown;
        match o.probe {
            Some(true) => r.probes_answered += 1,
            Some(false) => r.probes_refused += 1,
            None => {}
        }
    }
    Ok(r)
}

fn pick(rng: &mut impl Rng, tenant: Uuid, logins: &[Login], by_tenant: &HashMap<Uuid, Vec<Uuid>>) -> Request {
    let any_of = |rng: &mut dyn rand::RngCore, t: &Uuid| {
        by_tenant.get(t).filter(|v| !v.is_empty()).map(|v| v[rng.random_range(0..v.len())])
    };
    match rng.random_range(0..10) {
        0..7 => {
            let sort = [None, Some("-created_at"), Some("name")][rng.random_range(0..3)];
            let table = LISTS[rng.random_range(0..LISTS.len())];
            Request::List(table, sort.filter(|_| table == "accounts"))
        }
        7..9 => any_of(rng, &tenant).map_or(Request::List("accounts", None), Request::Own),
        _ => {
            let other = logins[rng.random_range(0..logins.len())].tenant;
            match any_of(rng, &other).filter(|_| other != tenant) {
                Some(id) => Request::Foreign(id),
                None => Request::List("contacts", None),
            }
        }
    }
}

async fn one(api: &Api, token: &str, tenant: Uuid, req: Request, cancel: Option<Duration>, owners: &Owners) -> Outcome {
    let path = match &req {
        Request::List(table, None) => format!("/v1/{table}?limit=100"),
        Request::List(table, Some(sort)) => format!("/v1/{table}?limit=100&sort={sort}"),
        Request::Own(id) | Request::Foreign(id) => {
            format!("/v1/{}/{id}", owners.get(id).map_or("accounts", |(_, table)| *table))
        }
    };
    let send = async {
        let r = api.http.get(format!("{}{path}", api.base)).bearer_auth(token).send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        anyhow::Ok((status, body))
    };
    let answered = match cancel {
        Some(after) => match tokio::time::timeout(after, send).await {
            Ok(r) => r,
            Err(_) => return Outcome { cancelled: true, ..Default::default() },
        },
        None => send.await,
    };
    let mut o = Outcome::default();
    let Ok((status, body)) = answered else {
        o.unexpected = true;
        return o;
    };
    o.server_error = status >= 500;
    match req {
        Request::Foreign(_) => {
            o.probe = Some(status == 200);
            o.unexpected = status != 404;
            if status == 200 {
                check(&body, tenant, owners, &mut o);
            }
        }
        _ if status != 200 => o.unexpected = true,
        Request::List(..) => {
            body["items"].as_array().into_iter().flatten().for_each(|r| check(r, tenant, owners, &mut o))
        }
        Request::Own(_) => check(&body, tenant, owners, &mut o),
    }
    o
}

/// Counts `row` and whether it belongs to another tenant.
fn check(row: &Value, tenant: Uuid, owners: &Owners, o: &mut Outcome) {
    o.rows += 1;
    let id: Option<Uuid> = row["id"].as_str().and_then(|s| s.parse().ok());
    let field: Option<Uuid> = row["tenant_id"].as_str().and_then(|s| s.parse().ok());
    let owner = id.and_then(|i| owners.get(&i)).map(|(t, _)| t);
    if owner.is_some_and(|t| *t != tenant) || field.is_some_and(|t| t != tenant) {
        o.foreign += 1;
    } else if owner.is_none() {
        o.unknown += 1;
    }
}
