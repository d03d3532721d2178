//! `orbas bench vectors`: our vector graph ([`VectorIndex`], hnsw_rs) vs faiss's HNSW
//! (IndexHNSWFlat) on the same vectors and queries, in one run: build time, single-thread query rate
//! and recall@10 against the exact neighbours, save and load time and size. The load is what a
//! restart of `orbas search index` or `orbas serve` pays instead of the build.
//!
//! The vectors are synthetic, shaped like sentence embeddings: unit vectors in clusters (a topic each,
//! ~50 documents per topic, cosine ≈ 0.7 to the topic's centre); the queries are drawn the same way
//! and are not in the set. Both graphs use the same parameters (16 links per node, 32 on the base
//! layer, efConstruction 200, ef 64 at query time) and build on every core; queries run one at a
//! time on one thread. The peer runs from `bench/search/vectors_peer.py` in the virtualenv of
//! `scripts/setup.sh --bench-embed`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_search::vector::VectorIndex;
use orbas_search::{DocType, SearchDoc, Visibility};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::BenchVectorsArgs;

/// Neighbours asked per query (and the recall depth).
const K: usize = 10;
const TENANT: &str = "bench";

pub async fn run(args: &BenchVectorsArgs) -> anyhow::Result<()> {
    let (n, nq, dim) = (args.points, args.queries, args.dim);
    if n < 2 * K || nq == 0 || dim < 2 {
        bail!("--points must be at least {}, --queries at least 1 and --dim at least 2", 2 * K);
    }
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    eprintln!("generating {n} vectors and {nq} queries of {dim} dimensions, and their exact neighbours");
    let (vectors, queries) = clustered(args.seed, n, nq, dim);
    let truth = {
        let (v, q) = (vectors.clone(), queries.clone());
        tokio::task::spawn_blocking(move || exact(&v, &q, threads)).await?
    };
    if truth.len() != nq {
        bail!("exact neighbours of {} of {nq} queries", truth.len());
    }

    let work = tempfile::tempdir()?;
    eprintln!("ours: building, querying, saving and loading");
    let ours = {
        let (v, q, t, dir) = (vectors.clone(), queries.clone(), truth.clone(), work.path().join("ours"));
        tokio::task::spawn_blocking(move || ours(v, &q, &t, &dir, dim)).await??
    };

    let write = |name: &str, values: &mut dyn Iterator<Item = [u8; 4]>| -> anyhow::Result<PathBuf> {
        let path = work.path().join(name);
        std::fs::write(&path, values.flatten().collect::<Vec<u8>>())?;
        Ok(path)
    };
    let vectors_path = write("vectors.f32", &mut vectors.iter().flatten().map(|x| x.to_le_bytes()))?;
    let queries_path = write("queries.f32", &mut queries.iter().flatten().map(|x| x.to_le_bytes()))?;
    let truth_path = write("truth.u32", &mut truth.iter().flatten().map(|i| (*i as u32).to_le_bytes()))?;
    drop(vectors);
    eprintln!("faiss: building, querying, saving and loading");
    // The script's arguments: vectors, n, queries, nq, truth, k, dim, threads, work dir.
    let (n_s, nq_s, k_s, dim_s, threads_s) =
        (n.to_string(), nq.to_string(), K.to_string(), dim.to_string(), threads.to_string());
    let peer = super::bench_embed::run_peer(
        args.python.as_deref(),
        "vectors_peer.py",
        "the faiss peer",
        &[
            vectors_path.as_os_str(),
            n_s.as_ref(),
            queries_path.as_os_str(),
            nq_s.as_ref(),
            truth_path.as_os_str(),
            k_s.as_ref(),
            dim_s.as_ref(),
            threads_s.as_ref(),
            work.path().as_os_str(),
        ],
    )
    .await?;
    let num = |key: &str| peer[key].as_f64().with_context(|| format!("the peer's report has no {key}"));
    let faiss = Report {
        build: Duration::from_secs_f64(num("build_s")?),
        query: Duration::from_secs_f64(num("query_s")?),
        recall: num("recall")?,
        save: Duration::from_secs_f64(num("save_s")?),
        bytes: num("bytes")? as u64,
        load: Duration::from_secs_f64(num("load_s")?),
        recall_loaded: num("recall_loaded")?,
    };

    println!(
        "{n} vectors of {dim} dimensions in {} clusters, {nq} queries, k = {K}, {threads} threads to build, 1 to \
         query; faiss {}\n",
        clusters(n),
        peer["version"].as_str().unwrap_or("?")
    );
    println!(
        "| engine | build s | points/s | queries/s | recall@{K} | save s | size MiB | load s | recall@{K} after load |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [("Orbas (hnsw_rs)", &ours), ("faiss IndexHNSWFlat", &faiss)] {
        println!(
            "| {name} | {:.1} | {:.0} | {:.0} | {:.3} | {:.2} | {:.0} | {:.2} | {:.3} |",
            r.build.as_secs_f64(),
            n as f64 / r.build.as_secs_f64(),
            nq as f64 / r.query.as_secs_f64(),
            r.recall,
            r.save.as_secs_f64(),
            r.bytes as f64 / (1024.0 * 1024.0),
            r.load.as_secs_f64(),
            r.recall_loaded
        );
    }
    println!(
        "\nours: a restart loads the saved graph in {:.2} s instead of building it in {:.1} s ({:.0}× faster); \
         ours ÷ faiss: build {:.2}×, queries/s {:.2}×, load {:.2}×",
        ours.load.as_secs_f64(),
        ours.build.as_secs_f64(),
        ours.build.as_secs_f64() / ours.load.as_secs_f64().max(1e-9),
        faiss.build.as_secs_f64() / ours.build.as_secs_f64().max(1e-9),
        faiss.query.as_secs_f64() / ours.query.as_secs_f64().max(1e-9),
        faiss.load.as_secs_f64() / ours.load.as_secs_f64().max(1e-9),
    );
    Ok(())
}

/// One engine's figures.
#[derive(Debug)]
struct Report {
    build: Duration,
    query: Duration,
    recall: f64,
    save: Duration,
    bytes: u64,
    load: Duration,
    recall_loaded: f64,
}

fn ours(
    vectors: Vec<Vec<f32>>,
    queries: &[Vec<f32>],
    truth: &[Vec<usize>],
    dir: &Path,
    dim: usize,
) -> anyhow::Result<Report> {
    let n = vectors.len();
    let docs: Vec<_> = vectors.into_iter().enumerate().map(|(i, v)| (doc(i), 1, v)).collect();
    let started = Instant::now();
    let mut graph = VectorIndex::build(docs);
    let build = started.elapsed();
    graph.advance_to(1);
    let (query, recall) = answer(&graph, queries, truth)?;
    let started = Instant::now();
    let saved = graph.save(dir, dim)?.context("a save of a non-empty graph")?;
    let save = started.elapsed();
    let bytes = std::fs::read_dir(&saved)?.map(|e| Ok(e?.metadata()?.len())).sum::<std::io::Result<u64>>()?;
    drop(graph);
    let started = Instant::now();
    let (loaded, _) = VectorIndex::load(dir, dim).context("the save loads back")?;
    let load = started.elapsed();
    if loaded.len() != n {
        bail!("the loaded graph holds {} of {n} points", loaded.len());
    }
    let (_, recall_loaded) = answer(&loaded, queries, truth)?;
    Ok(Report { build, query, recall, save, bytes, load, recall_loaded })
}

/// Time to answer every query one at a time, and the mean recall@K against `truth`.
fn answer(graph: &VectorIndex, queries: &[Vec<f32>], truth: &[Vec<usize>]) -> anyhow::Result<(Duration, f64)> {
    let visible = Visibility::tenant(TENANT);
    let started = Instant::now();
    let found: Vec<Vec<String>> =
        queries.iter().map(|q| graph.search(q, K, &visible).into_iter().map(|h| h.id).collect()).collect();
    let elapsed = started.elapsed();
    let mut recall = 0.0;
    for (found, exact) in found.iter().zip(truth) {
        let hits = exact.iter().filter(|i| found.contains(&i.to_string())).count();
        recall += hits as f64 / K as f64;
    }
    Ok((elapsed, recall / queries.len() as f64))
}

fn doc(i: usize) -> SearchDoc {
    SearchDoc::new(i.to_string(), DocType::KnowledgeArticle, TENANT)
}

fn clusters(n: usize) -> usize {
    (n / 50).max(1)
}

/// `n` vectors and `nq` queries: unit vectors around `n / 50` random topic centres.
fn clustered(seed: u64, n: usize, nq: usize, dim: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let gaussian = |rng: &mut StdRng| {
        // Box–Muller.
        let (u, v): (f64, f64) = (rng.random_range(f64::EPSILON..1.0), rng.random());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    };
    let unit = |mut v: Vec<f32>| {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    };
    let centres: Vec<Vec<f32>> =
        (0..clusters(n)).map(|_| unit((0..dim).map(|_| gaussian(&mut rng)).collect())).collect();
    // Noise of length ≈ 1 beside a unit centre: cosine ≈ 0.7 to it.
    let spread = 1.0 / (dim as f32).sqrt();
    let draw = |rng: &mut StdRng| {
        let c = &centres[rng.random_range(0..centres.len())];
        unit(c.iter().map(|x| x + spread * gaussian(rng)).collect())
    };
    let vectors = (0..n).map(|_| draw(&mut rng)).collect();
    let queries = (0..nq).map(|_| draw(&mut rng)).collect();
    (vectors, queries)
}

/// The exact `K` nearest (by cosine: dot product of unit vectors) of every query, on `threads` threads.
fn exact(vectors: &[Vec<f32>], queries: &[Vec<f32>], threads: usize) -> Vec<Vec<usize>> {
    let per = queries.len().div_ceil(threads.max(1));
    std::thread::scope(|s| {
        let parts: Vec<_> = queries
            .chunks(per.max(1))
            .map(|qs| {
                s.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut scored: Vec<(f32, usize)> = vectors
                                .iter()
                                .enumerate()
                                .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
                                .collect();
                            scored.select_nth_unstable_by(K, |a, b| b.0.total_cmp(&a.0));
                            scored.truncate(K);
                            scored.into_iter().map(|(_, i)| i).collect()
                        })
                        .collect::<Vec<Vec<usize>>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|p| p.join().unwrap_or_default()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_neighbours_are_the_nearest_by_cosine() {
        let (vectors, queries) = clustered(7, 200, 5, 16);
        assert!(vectors.iter().chain(&queries).all(|v| (v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4));
        let truth = exact(&vectors, &queries, 2);
        assert_eq!(truth.len(), 5);
        for (q, ids) in queries.iter().zip(&truth) {
            let dot = |i: usize| vectors[i].iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
            let worst_kept = ids.iter().map(|i| dot(*i)).fold(f32::INFINITY, f32::min);
            let best_left = (0..vectors.len()).filter(|i| !ids.contains(i)).map(dot).fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(ids.len(), K);
            assert!(worst_kept >= best_left, "{worst_kept} < {best_left}");
        }
    }
}
