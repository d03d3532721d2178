//! `orbas bench embed`: sentence embeddings/s of our encoder (candle, [`Embedder`]) vs
//! sentence-transformers (PyTorch) and onnxruntime running the same all-MiniLM-L6-v2 weights on the
//! same sentences, in one run, plus how close the vectors are (cosine to ours).
//!
//! The sentences are generated CRM-like texts (5 to 120 words: subjects, notes, ticket bodies).
//! Every engine gets the same thread count (the machine's cores), batches of 32 sentences sorted by
//! length, truncation at 256 tokens and mean pooling over each text's tokens with L2 normalisation
//! (the peers pad a batch and mask the padding; ours packs it without padding); each is warmed up, then the best of `--rounds` timed passes over all sentences (tokenisation included) is
//! reported. The peers run from `bench/search/embed_peer.py` in the virtualenv that
//! `scripts/setup.sh --bench-embed` makes (PyTorch from PyPI is gigabytes: never in the test command).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use orbas_models::embed::{self, Embedder};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::BenchEmbedArgs;

/// Sentences per forward pass on every side (sentence-transformers' default).
const BATCH: usize = 32;

const WORDS: [&str; 96] = [
    "customer",
    "invoice",
    "renewal",
    "contract",
    "meeting",
    "pricing",
    "discount",
    "seats",
    "license",
    "onboarding",
    "support",
    "ticket",
    "escalation",
    "outage",
    "billing",
    "payment",
    "overdue",
    "quote",
    "proposal",
    "demo",
    "trial",
    "integration",
    "API",
    "export",
    "dashboard",
    "report",
    "forecast",
    "pipeline",
    "quarter",
    "budget",
    "approval",
    "legal",
    "security",
    "review",
    "migration",
    "data",
    "warehouse",
    "login",
    "password",
    "error",
    "timeout",
    "slow",
    "broken",
    "fixed",
    "thanks",
    "happy",
    "frustrated",
    "urgent",
    "tomorrow",
    "Monday",
    "next",
    "week",
    "call",
    "email",
    "follow",
    "up",
    "with",
    "the",
    "a",
    "and",
    "to",
    "of",
    "for",
    "on",
    "is",
    "was",
    "we",
    "they",
    "their",
    "our",
    "team",
    "manager",
    "director",
    "procurement",
    "signed",
    "sent",
    "asked",
    "about",
    "new",
    "plan",
    "upgrade",
    "downgrade",
    "cancel",
    "churn",
    "risk",
    "expansion",
    "usage",
    "dropped",
    "grew",
    "users",
    "Acme",
    "Globex",
    "Initech",
    "Berlin",
    "Lisbon",
    "Q3",
];

pub async fn run(args: &BenchEmbedArgs) -> anyhow::Result<()> {
    let dir = args
        .model_dir
        .clone()
        .or_else(|| embed::model_dir(None))
        .context("no model directory: pass --model-dir or set ORBAS_MODELS")?;
    let sentences = sentences(args.seed, args.sentences);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let rounds = args.rounds.max(1);

    let (ours, vectors) = {
        let (dir, sentences) = (dir.clone(), sentences.clone());
        tokio::task::spawn_blocking(move || ours(&dir, &sentences, rounds)).await??
    };
    eprintln!("ours: {:.1} sentences/s", sentences.len() as f64 / ours.as_secs_f64());

    let work = tempfile::tempdir()?;
    let sentences_path = work.path().join("sentences.json");
    let ours_path = work.path().join("ours.f32");
    std::fs::write(&sentences_path, serde_json::to_vec(&sentences)?)?;
    std::fs::write(&ours_path, vectors.iter().flatten().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
    let peers = run_peer(
        args.python.as_deref(),
        "embed_peer.py",
        "the embedding peers",
        &[
            sentences_path.as_os_str(),
            ours_path.as_os_str(),
            rounds.to_string().as_ref(),
            threads.to_string().as_ref(),
            BATCH.to_string().as_ref(),
        ],
    )
    .await?;

    let n = sentences.len() as f64;
    let rate = |s: f64| n / s.max(1e-9);
    let ours_rate = rate(ours.as_secs_f64());
    let tokens: usize = sentences.iter().map(|s| s.split_whitespace().count()).sum();
    println!(
        "{} sentences ({} words), {threads} threads, batches of {BATCH}, best of {rounds}; {}\n",
        sentences.len(),
        tokens,
        peers["versions"]
    );
    println!("| engine | sentences/s | ours ÷ peer | cosine to ours (min / mean) |");
    println!("|---|---:|---:|---:|");
    println!("| Orbas (candle) | {ours_rate:.0} | – | – |");
    for (key, name) in
        [("sentence_transformers", "sentence-transformers (PyTorch)"), ("onnxruntime", "onnxruntime (exported ONNX)")]
    {
        let p = &peers[key];
        let seconds = p["seconds"].as_f64().context("peer report without seconds")?;
        println!(
            "| {name} | {:.0} | {:.2}× | {:.7} / {:.7} |",
            rate(seconds),
            ours_rate / rate(seconds),
            p["min_cosine"].as_f64().unwrap_or(f64::NAN),
            p["mean_cosine"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn ours(dir: &Path, sentences: &[String], rounds: u32) -> anyhow::Result<(Duration, Vec<Vec<f32>>)> {
    let embedder = Embedder::load(dir)?;
    embedder.embed(&sentences[..sentences.len().min(BATCH)])?; // warm-up
    let mut best = Duration::MAX;
    let mut vectors = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        vectors = embedder.embed(sentences)?;
        best = best.min(started.elapsed());
    }
    Ok((best, vectors))
}

/// Runs `bench/search/<script>` with the peers' Python (`python`, else the `--bench-embed` venv's) on
/// `args`, and returns the JSON object it prints.
pub(crate) async fn run_peer(
    python: Option<&Path>,
    script: &str,
    what: &str,
    args: &[&std::ffi::OsStr],
) -> anyhow::Result<serde_json::Value> {
    let python = python.map_or_else(default_python, Path::to_path_buf);
    let script = super::repo_file(&format!("bench/search/{script}"));
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running {} (scripts/setup.sh --bench-embed installs it)", python.display()))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn default_python() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv-embed/bin/python")
}

/// `n` sentences of 5 to 120 words (most short, like subjects and notes; some long, like ticket bodies).
fn sentences(seed: u64, n: usize) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let len = if rng.random_bool(0.7) { rng.random_range(5..=25) } else { rng.random_range(26..=120) };
            let s: Vec<&str> = (0..len).map(|_| WORDS[rng.random_range(0..WORDS.len())]).collect();
            let mut text = s.join(" ");
            text.push('.');
            text
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_deterministic_and_within_bounds() {
        let a = sentences(3, 200);
        assert_eq!(a, sentences(3, 200));
        assert!(a.iter().all(|s| (5..=120).contains(&s.split_whitespace().count())));
        assert!(a.iter().any(|s| s.split_whitespace().count() > 25));
    }
}
