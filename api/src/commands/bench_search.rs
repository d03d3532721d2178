//! `orbas bench search`: our search index vs Postgres full-text search on the same corpus, in one run.
//!
//! The corpus is generated (deterministic for a seed): `--docs` CRM-like documents over `--tenants`
//! tenants — titles, person and company names, bodies drawn from a Zipf-distributed vocabulary of
//! synthetic words, so term frequencies look like a real corpus (a few very common words, a long tail).
//! Queries are drawn from the documents themselves: one or two words of a document, a name, or a name
//! with a typo; each query runs as its document's tenant.
//!
//! - **Ours**: [`SearchIndex`] in a temporary directory; the corpus applied in batches (one commit
//!   each, as the CDC indexer does), then opened read-only like the API's follower. Queries are keyword
//!   searches (BM25 with field boosts, typo tolerance, prefix on the last word, snippets), top 10, with
//!   and without facet counts.
//! - **Peer**: Postgres (`DATABASE_URL` or a private cluster): the same documents COPYed into a table
//!   with a stored, weighted `tsvector` (title A, names B, body D; `simple` configuration, no stemming —
//!   like our analyser), a GIN index on `(tenant_id, tsv)` (btree_gin), and
//!   `WHERE tenant_id = $1 AND tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10` with the query's words
//!   OR-ed and the last one a prefix (`a | b:*`) — the same matching as ours minus typo tolerance.
//!
//! Both sides serve the same query sequence from `--clients` concurrent clients for `--seconds`
//! after a warm-up pass; QPS and latency percentiles are measured client-side. Reported beside them:
//! indexing docs/s, size on disk, how often each engine ranks the query's source document in its top
//! 10, and the overlap of the two top-10 lists.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_oltp::db;
use orbas_search::index::{Batch, Change};
use orbas_search::{Access, DocType, Mode, SearchDoc, SearchIndex, SearchRequest, Visibility};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::Connection as _;

use super::bench_seed::{bench_server, fresh_database};
use crate::cli::BenchSearchArgs;
use crate::settings::Settings;

const DATABASE: &str = "orbas_bench_search";
/// Documents per index commit (and per COPY chunk).
const BATCH: u64 = 50_000;
/// Queries whose top 10 both engines answer once, untimed, for the relevance columns.
const JUDGED: usize = 500;

pub async fn run(settings: &Settings, args: &BenchSearchArgs) -> anyhow::Result<()> {
    if args.docs == 0 || args.tenants == 0 || args.clients == 0 {
        bail!("--docs, --tenants and --clients must be positive");
    }
    let corpus = Arc::new(Corpus::new(args.seed, args.docs, args.tenants));
    let queries = Arc::new(corpus.queries(args.queries));
    eprintln!("corpus: {} documents, {} tenants, {} queries", args.docs, args.tenants, queries.len());

    // Ours: index, then serve from a read-only follower.
    let dir = tempfile::tempdir_in(args.work_dir.as_deref().unwrap_or(&std::env::temp_dir()))?;
    let ours_index = {
        let (corpus, path) = (corpus.clone(), dir.path().to_owned());
        tokio::task::spawn_blocking(move || index_ours(&corpus, &path)).await??
    };
    let ours_bytes = dir_size(dir.path())?;
    eprintln!("ours: indexed in {:.1} s, {} MiB", ours_index.as_secs_f64(), ours_bytes >> 20);
    let index = Arc::new(SearchIndex::open(dir.path(), Access::ReadOnly, None)?);
    if index.num_docs() != args.docs {
        bail!("our index holds {} documents, expected {}", index.num_docs(), args.docs);
    }

    // Peer: load and index Postgres.
    let (cluster, base_url) = bench_server(settings, false).await?;
    let url = fresh_database(&base_url, DATABASE).await?;
    let (peer_index, peer_bytes) = load_postgres(&url, &corpus).await?;
    eprintln!("postgres: loaded and indexed in {:.1} s, {} MiB", peer_index.as_secs_f64(), peer_bytes >> 20);

    // Relevance: the same queries once on each side.
    let judged: Vec<usize> = (0..queries.len().min(JUDGED)).collect();
    let ours_top = {
        let (index, queries, judged) = (index.clone(), queries.clone(), judged.clone());
        tokio::task::spawn_blocking(move || {
            judged.iter().map(|&i| ours_query(&index, &queries[i], false)).collect::<anyhow::Result<Vec<_>>>()
        })
        .await??
    };
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let mut peer_top = Vec::new();
    for &i in &judged {
        peer_top.push(peer_query(&mut conn, &queries[i]).await?);
    }
    drop(conn);
    let found = |tops: &[Vec<String>]| {
        let hits = judged.iter().zip(tops).filter(|(i, top)| top.contains(&queries[**i].source)).count();
        hits as f64 / judged.len().max(1) as f64
    };
    let (ours_found, peer_found) = (found(&ours_top), found(&peer_top));
    let overlap = ours_top
        .iter()
        .zip(&peer_top)
        .map(|(a, b)| {
            let b: HashSet<&String> = b.iter().collect();
            a.iter().filter(|id| b.contains(id)).count()
        })
        .sum::<usize>() as f64
        / judged.len().max(1) as f64;

    // Throughput and latency.
    let run_for = Duration::from_secs(args.seconds);
    let mut runs = Vec::new();
    for facets in [false, true] {
        let (index, queries, clients) = (index.clone(), queries.clone(), args.clients);
        let load = tokio::task::spawn_blocking(move || ours_load(&index, &queries, clients, facets, run_for)).await??;
        eprintln!("ours (facets {facets}): {:.0} QPS", load.qps());
        runs.push((if facets { "Orbas search, with facet counts" } else { "Orbas search" }, load));
    }
    let peer = peer_load(&url, &queries, args.clients, run_for).await?;
    eprintln!("postgres: {:.0} QPS", peer.qps());
    runs.push(("Postgres FTS (tsvector + GIN + ts_rank)", peer));
    if let Some(c) = cluster {
        c.stop().await?;
    }

    let rate = |d: Duration| args.docs as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "{} documents, {} tenants, {} distinct queries, {} clients × {} s, seed {}\n",
        args.docs,
        args.tenants,
        queries.len(),
        args.clients,
        args.seconds,
        args.seed
    );
    println!("| engine | indexing docs/s | size MiB | QPS | p50 ms | p99 ms | source doc in top 10 |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, load) in &runs {
        let (build, size, found) = if name.starts_with("Postgres") {
            (rate(peer_index), peer_bytes, peer_found)
        } else {
            (rate(ours_index), ours_bytes, ours_found)
        };
        println!(
            "| {name} | {build:.0} | {} | {:.0} | {:.2} | {:.2} | {:.1} % |",
            size >> 20,
            load.qps(),
            load.percentile(50.0),
            load.percentile(99.0),
            found * 100.0
        );
    }
    println!("\nBy kind of query (p50 / p99 ms):\n");
    println!("| query | {} |", runs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---:|".repeat(runs.len()));
    for kind in Kind::ALL {
        let cells: Vec<String> = runs
            .iter()
            .map(|(_, l)| {
                let k = l.of(kind);
                format!("{:.2} / {:.2}", k.percentile(50.0), k.percentile(99.0))
            })
            .collect();
        println!("| {} | {} |", kind.label(), cells.join(" | "));
    }
    let peer_qps = runs.last().map_or(1.0, |(_, l)| l.qps());
    println!(
        "\nQPS ratio ours/Postgres: {:.1}× (without facets), {:.1}× (with); mean top-10 overlap {overlap:.1} ids",
        runs[0].1.qps() / peer_qps.max(1e-9),
        runs[1].1.qps() / peer_qps.max(1e-9)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// The corpus

/// A deterministic corpus: document `i` is a function of the seed and `i` alone, so both engines get
/// the same documents without holding them all in memory.
struct Corpus {
    seed: u64,
    docs: u64,
    tenants: u32,
    words: Vec<String>,
    /// Cumulative Zipf weights of `words` (rank r has weight 1/(r+1)^1.07).
    cumulative: Vec<f64>,
    first_names: Vec<String>,
    last_names: Vec<String>,
    companies: Vec<String>,
}

const SYLLABLES: [&str; 48] = [
    "ka", "ren", "to", "mi", "sol", "ve", "dra", "lin", "po", "qua", "ber", "ni", "tes", "mo", "ra", "vik", "el", "an",
    "dor", "fi", "gra", "hul", "ja", "kel", "lum", "mar", "nor", "op", "pra", "ris", "sta", "tor", "ul", "vas", "wen",
    "xi", "yor", "zen", "bri", "cal", "dun", "fen", "gor", "hal", "ist", "jor", "kra", "lo",
];
const TYPES: [(DocType, u32); 8] = [
    (DocType::Account, 8),
    (DocType::Contact, 20),
    (DocType::Lead, 15),
    (DocType::Opportunity, 10),
    (DocType::Ticket, 12),
    (DocType::TicketMessage, 25),
    (DocType::KnowledgeArticle, 2),
    (DocType::Document, 8),
];
const COMPANY_SUFFIXES: [&str; 8] =
    ["Labs", "Systems", "Group", "Holdings", "Logistics", "Health", "Energy", "Partners"];

impl Corpus {
    fn new(seed: u64, docs: u64, tenants: u32) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = HashSet::new();
        let mut words = Vec::new();
        while words.len() < 60_000 {
            let n = rng.random_range(2..=3);
            let w: String = (0..n).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..words.len())
            .map(|r| {
                total += 1.0 / ((r + 1) as f64).powf(1.07);
                total
            })
            .collect();
        let name = |rng: &mut StdRng, syllables: usize| {
            let w: String = (0..syllables).map(|_| SYLLABLES[rng.random_range(0..SYLLABLES.len())]).collect();
            capitalize(&w)
        };
        let first_names = (0..400).map(|_| name(&mut rng, 2)).collect();
        let last_names = (0..4_000).map(|_| name(&mut rng, 3)).collect();
        let companies = (0..20_000)
            .map(|_| format!("{} {}", name(&mut rng, 3), COMPANY_SUFFIXES[rng.random_range(0..COMPANY_SUFFIXES.len())]))
            .collect();
        Corpus { seed, docs, tenants, words, cumulative, first_names, last_names, companies }
    }

    fn rng(&self, i: u64, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.rotate_left(32))
    }

    fn word(&self, rng: &mut StdRng) -> &str {
        let total = self.cumulative.last().copied().unwrap_or(1.0);
        let u = rng.random_range(0.0..total);
        let r = self.cumulative.partition_point(|&c| c < u).min(self.words.len() - 1);
        &self.words[r]
    }

    fn sentence(&self, rng: &mut StdRng, words: usize) -> String {
        let mut s = String::new();
        for k in 0..words {
            if k > 0 {
                s.push(' ');
            }
            s.push_str(self.word(rng));
        }
        s
    }

    fn doc(&self, i: u64) -> SearchDoc {
        let mut rng = self.rng(i, 1);
        let weight: u32 = TYPES.iter().map(|(_, w)| w).sum();
        let mut pick = rng.random_range(0..weight);
        let doc_type = TYPES
            .iter()
            .find(|(_, w)| {
                let hit = pick < *w;
                pick = pick.saturating_sub(*w);
                hit
            })
            .map_or(DocType::Contact, |(t, _)| *t);
        let tenant = i % u64::from(self.tenants);
        let person = format!(
            "{} {}",
            self.first_names[rng.random_range(0..self.first_names.len())],
            self.last_names[rng.random_range(0..self.last_names.len())]
        );
        let company = &self.companies[rng.random_range(0..self.companies.len())];
        let title_words = rng.random_range(2..=6);
        let title = match doc_type {
            DocType::Account => company.clone(),
            DocType::Contact | DocType::Lead => person.clone(),
            _ => capitalize(&self.sentence(&mut rng, title_words)),
        };
        let body_words = match doc_type {
            DocType::KnowledgeArticle | DocType::Document => rng.random_range(120..=400),
            DocType::Account | DocType::Contact => rng.random_range(0..=15),
            _ => rng.random_range(15..=80),
        };
        let email = format!("{}@{}.com", person.to_lowercase().replace(' ', "."), first_word(company).to_lowercase());
        SearchDoc {
            id: format!("{:08x}-0000-4000-8000-{:012x}", tenant, i),
            doc_type,
            tenant_id: tenant_id(tenant),
            title,
            names: format!("{person} {email} {company}"),
            body: self.sentence(&mut rng, body_words),
            owner_id: Some(format!("owner-{tenant}-{}", rng.random_range(0..50))),
            stage: (doc_type == DocType::Opportunity)
                .then(|| ["qualify", "propose", "negotiate"][(i % 3) as usize].into()),
            status: (doc_type == DocType::Ticket).then(|| ["open", "pending", "closed"][(i % 3) as usize].into()),
            parent_id: None,
            updated_at: Some("2026-12-01T00:00:00Z".into()),
        }
    }

    /// `n` queries, each from a random document: a title word, a title and a body word, a name, or a
    /// name with a one-letter typo.
    fn queries(&self, n: usize) -> Vec<BenchQuery> {
        (0..n as u64)
            .map(|k| {
                let mut rng = self.rng(k, 2);
                let i = rng.random_range(0..self.docs);
                let d = self.doc(i);
                let title: Vec<&str> = d.title.split_whitespace().collect();
                let body: Vec<&str> = d.body.split_whitespace().collect();
                let names: Vec<&str> = d.names.split_whitespace().filter(|w| !w.contains('@')).collect();
                let any = |rng: &mut StdRng, ws: &[&str]| {
                    ws.get(rng.random_range(0..ws.len().max(1))).map(|w| w.to_lowercase())
                };
                let (kind, text) = match rng.random_range(0..100) {
                    0..40 => (Kind::TitleWord, any(&mut rng, &title)),
                    40..70 => (
                        Kind::TwoWords,
                        match (any(&mut rng, &title), any(&mut rng, &body)) {
                            (Some(t), Some(b)) => Some(format!("{t} {b}")),
                            (t, b) => t.or(b),
                        },
                    ),
                    70..85 => (Kind::Name, any(&mut rng, &names)),
                    _ => (Kind::NameTypo, any(&mut rng, &names).map(|w| typo(&mut rng, &w))),
                };
                let text = text.unwrap_or_else(|| d.title.to_lowercase());
                BenchQuery { tenant: d.tenant_id, text, source: d.id, kind }
            })
            .collect()
    }
}

struct BenchQuery {
    tenant: String,
    text: String,
    /// The document the query was drawn from.
    source: String,
    kind: Kind,
}

/// What a query was drawn from (latency is reported per kind too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    TitleWord,
    TwoWords,
    Name,
    NameTypo,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::TitleWord, Kind::TwoWords, Kind::Name, Kind::NameTypo];

    fn label(self) -> &'static str {
        match self {
            Kind::TitleWord => "a title word (40 %)",
            Kind::TwoWords => "a title and a body word (30 %)",
            Kind::Name => "a name (15 %)",
            Kind::NameTypo => "a name with a typo (15 %)",
        }
    }
}

fn tenant_id(t: u64) -> String {
    format!("{t:08x}-1111-4000-8000-000000000000")
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn first_word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or(s)
}

/// One letter replaced (words of 5+ letters; shorter ones are left alone).
fn typo(rng: &mut StdRng, w: &str) -> String {
    let mut chars: Vec<char> = w.chars().collect();
    if chars.len() >= 5 {
        let at = rng.random_range(1..chars.len() - 1);
        let mut c = (b'a' + rng.random_range(0..26u8)) as char;
        if c == chars[at] {
            c = if c == 'z' { 'a' } else { (c as u8 + 1) as char };
        }
        chars[at] = c;
    }
    chars.into_iter().collect()
}

// ---------------------------------------------------------------------------------------------------
// Ours

fn index_ours(corpus: &Corpus, dir: &Path) -> anyhow::Result<Duration> {
    let index = SearchIndex::open(dir, Access::Writer, None)?;
    let started = Instant::now();
    let mut i = 0;
    while i < corpus.docs {
        let end = (i + BATCH).min(corpus.docs);
        let changes = (i..end).map(|k| Change::Upsert(Box::new(corpus.doc(k)))).collect();
        index.apply(Batch { changes, positions: Vec::new(), max_lsn: Some(end as i64) })?;
        i = end;
    }
    let took = started.elapsed();
    drop(index);
    Ok(took)
}

fn ours_query(index: &SearchIndex, q: &BenchQuery, facets: bool) -> anyhow::Result<Vec<String>> {
    let req = SearchRequest { text: q.text.clone(), mode: Mode::Keyword, limit: 10, types: Vec::new(), facets };
    Ok(index.search(&req, &Visibility::tenant(&q.tenant))?.hits.into_iter().map(|h| h.id).collect())
}

fn ours_load(
    index: &SearchIndex,
    queries: &[BenchQuery],
    clients: usize,
    facets: bool,
    run_for: Duration,
) -> anyhow::Result<Load> {
    for q in queries.iter().take(200) {
        ours_query(index, q, facets)?;
    }
    let started = Instant::now();
    let per_client = std::thread::scope(|s| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut k = c * queries.len() / clients;
                    while started.elapsed() < run_for {
                        let t = Instant::now();
                        let q = &queries[k % queries.len()];
                        ours_query(index, q, facets)?;
                        lat.push((q.kind, t.elapsed()));
                        k += 1;
                    }
                    Ok::<_, anyhow::Error>(lat)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().map_err(|_| anyhow::anyhow!("a client panicked"))?).collect::<Vec<_>>()
    });
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for l in per_client {
        latencies.extend(l?);
    }
    Ok(Load::new(latencies, elapsed))
}

fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

// ---------------------------------------------------------------------------------------------------
// Postgres

async fn load_postgres(url: &str, corpus: &Corpus) -> anyhow::Result<(Duration, u64)> {
    let pool = db::connect(url, 1).await?;
    sqlx::raw_sql(
        "CREATE EXTENSION IF NOT EXISTS btree_gin;
         CREATE TABLE bench_docs (
             id text PRIMARY KEY,
             tenant_id text NOT NULL,
             doc_type text NOT NULL,
             owner_id text,
             title text NOT NULL,
             names text NOT NULL,
             body text NOT NULL,
             tsv tsvector GENERATED ALWAYS AS (
                 setweight(to_tsvector('simple', title), 'A')
                 || setweight(to_tsvector('simple', names), 'B')
                 || setweight(to_tsvector('simple', body), 'D')) STORED
         );",
    )
    .execute(&pool)
    .await
    .context("creating the peer's table (btree_gin ships with Debian's postgresql package)")?;
    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let mut copy =
        conn.copy_in_raw("COPY bench_docs (id, tenant_id, doc_type, owner_id, title, names, body) FROM STDIN").await?;
    let mut i = 0;
    while i < corpus.docs {
        let end = (i + BATCH).min(corpus.docs);
        let mut chunk = String::new();
        for k in i..end {
            let d = corpus.doc(k);
            for (n, field) in [
                &d.id,
                &d.tenant_id,
                d.doc_type.as_str(),
                d.owner_id.as_deref().unwrap_or(""),
                &d.title,
                &d.names,
                &d.body,
            ]
            .into_iter()
            .enumerate()
            {
                if n > 0 {
                    chunk.push('\t');
                }
                // Text format: the generator emits no tabs, newlines or backslashes, so no escaping.
                chunk.push_str(field);
            }
            chunk.push('\n');
        }
        copy.send(chunk.as_bytes()).await?;
        i = end;
    }
    copy.finish().await?;
    sqlx::raw_sql("CREATE INDEX bench_docs_fts ON bench_docs USING gin (tenant_id, tsv); ANALYZE bench_docs;")
        .execute(&mut *conn)
        .await?;
    let took = started.elapsed();
    let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('bench_docs')").fetch_one(&mut *conn).await?;
    drop(conn);
    pool.close().await;
    Ok((took, u64::try_from(bytes).unwrap_or(0)))
}

/// The query's words OR-ed, the last one a prefix — our matching without typo tolerance.
fn tsquery(text: &str) -> String {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect();
    let n = words.len();
    words
        .into_iter()
        .enumerate()
        .map(|(k, w)| if k + 1 == n { format!("{w}:*") } else { w })
        .collect::<Vec<_>>()
        .join(" | ")
}

const PEER_SQL: &str = "SELECT id FROM bench_docs, to_tsquery('simple', $2) q \
                        WHERE tenant_id = $1 AND tsv @@ q ORDER BY ts_rank(tsv, q) DESC LIMIT 10";

async fn peer_query(conn: &mut sqlx::PgConnection, q: &BenchQuery) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(PEER_SQL).bind(&q.tenant).bind(tsquery(&q.text)).fetch_all(conn).await?)
}

async fn peer_load(
    url: &str,
    queries: &Arc<Vec<BenchQuery>>,
    clients: usize,
    run_for: Duration,
) -> anyhow::Result<Load> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    for q in queries.iter().take(200) {
        peer_query(&mut conn, q).await?;
    }
    drop(conn);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (url, queries) = (url.to_owned(), queries.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await?;
            let mut lat = Vec::new();
            let mut k = c * queries.len() / clients;
            while started.elapsed() < run_for {
                let t = Instant::now();
                let q = &queries[k % queries.len()];
                peer_query(&mut conn, q).await?;
                lat.push((q.kind, t.elapsed()));
                k += 1;
            }
            Ok::<_, anyhow::Error>(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Load::new(latencies, started.elapsed()))
}

// ---------------------------------------------------------------------------------------------------

/// Latencies of one load run.
struct Load {
    latencies: Vec<Duration>,
    by_kind: Vec<(Kind, Duration)>,
    elapsed: Duration,
}

impl Load {
    fn new(by_kind: Vec<(Kind, Duration)>, elapsed: Duration) -> Self {
        let mut latencies: Vec<Duration> = by_kind.iter().map(|(_, d)| *d).collect();
        latencies.sort();
        Load { latencies, by_kind, elapsed }
    }

    /// The latencies of one kind of query alone.
    fn of(&self, kind: Kind) -> Load {
        Load::new(self.by_kind.iter().filter(|(k, _)| *k == kind).copied().collect(), self.elapsed)
    }

    fn qps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `p`th percentile latency in milliseconds (nearest rank).
    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1].as_secs_f64() * 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_and_queries_come_from_their_documents() {
        let a = Corpus::new(7, 1_000, 4);
        let b = Corpus::new(7, 1_000, 4);
        assert_eq!(a.doc(17), b.doc(17));
        assert_ne!(a.doc(17), a.doc(18));
        let qs = a.queries(50);
        assert_eq!(qs.len(), 50);
        for q in &qs {
            assert!(!q.text.is_empty());
            assert!(q.tenant.starts_with("0000000"), "{}", q.tenant);
        }
    }

    #[test]
    fn tsquery_ors_the_words_and_prefixes_the_last() {
        assert_eq!(tsquery("Kamisol renvik"), "kamisol | renvik:*");
        assert_eq!(tsquery("o'neil"), "o | neil:*");
        assert_eq!(tsquery("acme"), "acme:*");
    }

    #[test]
    fn a_typo_changes_one_letter_of_long_words_only() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = typo(&mut rng, "kamisol");
        assert_eq!(t.len(), 7);
        assert_eq!(t.chars().zip("kamisol".chars()).filter(|(a, b)| a != b).count(), 1);
        assert_eq!(typo(&mut rng, "kami"), "kami");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let l =
            Load::new((1..=100).map(|ms| (Kind::Name, Duration::from_millis(ms))).collect(), Duration::from_secs(1));
        assert_eq!(l.percentile(50.0), 50.0);
        assert_eq!(l.percentile(99.0), 99.0);
        assert_eq!(l.qps(), 100.0);
    }
}
