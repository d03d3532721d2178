//! `orbas bench all`: reruns every side-by-side benchmark of docs/BENCHMARKS.md, one after the other,
//! each as a child process of this very binary (or the repository's script) with the arguments the
//! document names, and splices each one's stdout into its generated block as soon as it finishes
//! (temporary file + rename), together with the command, the date, the machine and the commit. A bench
//! that fails keeps its previous figures; one whose peers are not installed is skipped with the setup
//! command that installs them. Owns the table of benches ([`BENCHES`]); the block format is in [`doc`].

mod doc;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::BenchAllArgs;

/// How a bench is started.
#[derive(Debug, Clone, Copy)]
enum Program {
    /// This binary with the arguments.
    Orbas,
    /// A script of the repository (relative to its root), `ORBAS_BIN` set to this binary.
    Script(&'static str),
}

/// Something a bench's peer needs that the default `scripts/setup.sh` does not install.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// A Python module in the benchmark virtualenv (`scripts/setup.sh --bench` for the models' and the
    /// API's peers; DuckDB and tpchgen are in the default one).
    Venv(&'static str, &'static str),
    /// A file in the benchmark virtualenv (a console script such as `bin/tpchgen-cli`).
    VenvFile(&'static str, &'static str),
    /// A Python module in the embedding peers' virtualenv (`scripts/setup.sh --bench-embed`).
    EmbedVenv(&'static str),
    /// A program on PATH.
    Tool(&'static str, &'static str),
    /// A lake built by `orbas demo --scale 1 --tenants 3` (`ORBAS_BENCH_LAKE`, tenants in
    /// `ORBAS_BENCH_TENANTS`, the demo's database in `DATABASE_URL`).
    DemoLake,
}

/// One benchmark: its block's name in the document and how to rerun it.
#[derive(Debug, Clone, Copy)]
struct Bench {
    name: &'static str,
    program: Program,
    /// The documented run. `{lake}` and `{tenant}` are filled from [`Need::DemoLake`]; with `{tenant}`
    /// the bench runs once per tenant.
    args: &'static [&'static str],
    /// A smoke run (`--quick`): small sizes, same code paths.
    quick: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    quick_env: &'static [(&'static str, &'static str)],
    needs: &'static [Need],
    /// Prefixes of the output line that sums the run up, for the summary table.
    headline: &'static [&'static str],
    /// Plain-text output, kept in a code fence.
    fenced: bool,
}

const fn bench(name: &'static str, args: &'static [&'static str], quick: &'static [&'static str]) -> Bench {
    Bench {
        name,
        program: Program::Orbas,
        args,
        quick,
        env: &[],
        quick_env: &[],
        needs: &[],
        headline: &[],
        fenced: false,
    }
}

const SETUP_BENCH: &str = "scripts/setup.sh --bench";
const SETUP_EMBED: &str = "scripts/setup.sh --bench-embed";

/// Every side-by-side benchmark, in the document's order, with the arguments its section names.
const BENCHES: &[Bench] = &[
    Bench {
        headline: &["ratio orbas/psql"],
        ..bench(
            "seed",
            &["bench", "seed", "--scale", "1", "--tenants", "3", "--seed", "42"],
            &["bench", "seed", "--scale", "0.002", "--tenants", "1", "--seed", "42"],
        )
    },
    Bench {
        program: Program::Script("scripts/bench-api.sh"),
        env: &[("BENCH_DURATION", "20")],
        quick_env: &[("BENCH_DURATION", "3"), ("BENCH_WARMUP", "1"), ("BENCH_SCALE", "0.01")],
        needs: &[Need::Tool("wrk", SETUP_BENCH), Need::Venv("uvicorn", SETUP_BENCH)],
        ..bench("api", &[], &[])
    },
    Bench {
        headline: &["ratio orbas / Postgres"],
        ..bench(
            "cdc",
            &["bench", "cdc"],
            &[
                "bench",
                "cdc",
                "--rows",
                "20000",
                "--tx-rows",
                "1000",
                "--rounds",
                "1",
                "--rate",
                "1000",
                "--seconds",
                "3",
            ],
        )
    },
    Bench {
        headline: &["ratio orbas / Postgres"],
        ..bench(
            "cdc-socket",
            &["bench", "cdc", "--socket"],
            &["bench", "cdc", "--socket", "--rows", "20000", "--tx-rows", "1000", "--rounds", "1", "--rate", "1000"],
        )
    },
    Bench {
        headline: &["| sink / bare consumer"],
        ..bench(
            "sink",
            &["bench", "sink", "--rows", "300000", "--rounds", "3"],
            &["bench", "sink", "--rows", "5000", "--rounds", "1"],
        )
    },
    Bench {
        headline: &["target p95"],
        ..bench("freshness", &["bench", "freshness"], &["bench", "freshness", "--rate", "500", "--seconds", "5"])
    },
    Bench {
        needs: &[Need::Venv("duckdb", "scripts/setup.sh")],
        headline: &["geometric mean"],
        ..bench(
            "kpi",
            &["bench", "kpi", "--tenants", "3", "--scale", "1", "--runs", "5"],
            &["bench", "kpi", "--tenants", "1", "--scale", "0.01", "--runs", "1"],
        )
    },
    Bench {
        needs: &[Need::Venv("duckdb", "scripts/setup.sh"), Need::VenvFile("bin/tpchgen-cli", "scripts/setup.sh")],
        headline: &["geometric mean"],
        ..bench(
            "tpch",
            &["bench", "tpch", "--scale", "1", "--runs", "3"],
            &["bench", "tpch", "--scale", "0.01", "--runs", "1", "--queries", "1,6"],
        )
    },
    Bench {
        needs: &[Need::Venv("sklearn", SETUP_BENCH), Need::DemoLake],
        ..bench(
            "models-eval",
            &["models", "eval", "--lake", "{lake}", "--tenant", "{tenant}"],
            &["models", "eval", "--lake", "{lake}", "--tenant", "{tenant}"],
        )
    },
    Bench {
        needs: &[Need::Venv("statsforecast", SETUP_BENCH), Need::DemoLake],
        ..bench(
            "forecast-eval",
            &["models", "forecast-eval", "--lake", "{lake}"],
            &["models", "forecast-eval", "--lake", "{lake}", "--horizons", "3"],
        )
    },
    Bench {
        fenced: true,
        ..bench(
            "sentiment",
            &["models", "sentiment", "--eval"],
            &["models", "sentiment", "--eval", "--generator-rows", "50"],
        )
    },
    Bench {
        headline: &["target p95"],
        ..bench(
            "decisions",
            &["bench", "decisions", "--tenants", "2", "--scale", "0.03", "--trials", "9"],
            &["bench", "decisions", "--tenants", "1", "--scale", "0.01", "--trials", "2", "--timeout-secs", "120"],
        )
    },
    Bench {
        headline: &["QPS ratio"],
        ..bench(
            "search",
            &["bench", "search", "--seconds", "20"],
            &["bench", "search", "--docs", "5000", "--tenants", "2", "--queries", "200", "--seconds", "2"],
        )
    },
    Bench {
        needs: &[Need::EmbedVenv("sentence_transformers"), Need::EmbedVenv("onnxruntime")],
        headline: &["| sentence-transformers"],
        ..bench("embed", &["bench", "embed"], &["bench", "embed", "--sentences", "64", "--rounds", "1"])
    },
    Bench {
        needs: &[Need::EmbedVenv("faiss")],
        headline: &["ours: a restart"],
        ..bench("vectors", &["bench", "vectors"], &["bench", "vectors", "--points", "2000", "--queries", "100"])
    },
    Bench {
        headline: &["All dashboard pages", "All dashboards"],
        ..bench(
            "dashboards",
            &["bench", "dashboards", "--tenants", "1", "--scale", "10", "--browser-runs", "5"],
            &["bench", "dashboards", "--tenants", "1", "--scale", "0.01", "--runs", "2", "--browser-runs", "1"],
        )
    },
];

/// How one bench of this run ended.
enum Outcome {
    Updated { took: f64 },
    Skipped { why: String, setup: String },
    Failed { why: String },
}

pub async fn run(args: &BenchAllArgs) -> anyhow::Result<()> {
    let selected = select(&args.only, &args.skip)?;
    let file = &args.file;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // Every selected block and the summary must exist before hours are spent measuring.
    for name in selected.iter().map(|b| b.name).chain([doc::SUMMARY]) {
        doc::splice(&text, name, "").with_context(|| format!("{}", file.display()))?;
    }
    let root = repo_root(file);
    let mut outcomes = Vec::new();
    for b in &selected {
        let invocations = match plan(b, args.quick, &root).await {
            Ok(p) => p,
            Err(skip) => {
                eprintln!("bench all: {} skipped: {} (run `{}`)", b.name, skip.0, skip.1);
                outcomes.push((b.name, Outcome::Skipped { why: skip.0, setup: skip.1 }));
                continue;
            }
        };
        if args.dry_run {
            println!("{}: {}", b.name, invocations.iter().map(|i| i.shown.as_str()).collect::<Vec<_>>().join(" ; "));
            continue;
        }
        let outcome = match measure(b, &invocations, args.quick, file).await {
            Ok(took) => Outcome::Updated { took },
            Err(e) => {
                eprintln!("bench all: {} failed: {e:#}", b.name);
                Outcome::Failed { why: format!("{e:#}") }
            }
        };
        outcomes.push((b.name, outcome));
    }
    report(&outcomes, file)
}

/// The benches `--only` and `--skip` leave, in table order; unknown names are an error.
fn select(only: &[String], skip: &[String]) -> anyhow::Result<Vec<Bench>> {
    let known: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
    if let Some(bad) = only.iter().chain(skip).find(|n| !known.contains(&n.as_str())) {
        bail!("unknown bench `{bad}`; the benches are: {}", known.join(", "));
    }
    Ok(BENCHES
        .iter()
        .filter(|b| only.is_empty() || only.iter().any(|n| n == b.name))
        .filter(|b| !skip.iter().any(|n| n == b.name))
        .copied()
        .collect())
}

/// One child process of a bench: what it runs and how the document shows it.
struct Invocation {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    shown: String,
    /// The tenant it measures, when the bench runs once per tenant.
    tenant: Option<String>,
}

/// The child processes of `b`, or why it cannot run here and what to run to fix that.
async fn plan(b: &Bench, quick: bool, root: &Path) -> Result<Vec<Invocation>, (String, String)> {
    for need in b.needs {
        check(*need).await?;
    }
    let exe = std::env::current_exe().map_err(|e| (format!("this binary's path: {e}"), "—".to_owned()))?;
    let raw = if quick { b.quick } else { b.args };
    let mut env: Vec<(String, String)> =
        (if quick { b.quick_env } else { b.env }).iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let (program, shown_program) = match b.program {
        Program::Orbas => (exe, "orbas".to_owned()),
        Program::Script(path) => {
            env.push(("ORBAS_BIN".into(), exe.display().to_string()));
            let script = root.join(path);
            if !script.exists() {
                return Err((format!("{} not found", script.display()), "run from the repository".into()));
            }
            (script, format!("./{path}"))
        }
    };
    let lake = std::env::var("ORBAS_BENCH_LAKE").unwrap_or_default();
    let tenants: Vec<Option<String>> = if raw.contains(&"{tenant}") {
        std::env::var("ORBAS_BENCH_TENANTS").unwrap_or_default().split(',').map(|t| Some(t.trim().to_owned())).collect()
    } else {
        vec![None]
    };
    Ok(tenants
        .into_iter()
        .map(|tenant| {
            let args: Vec<String> = raw
                .iter()
                .map(|a| a.replace("{lake}", &lake).replace("{tenant}", tenant.as_deref().unwrap_or_default()))
                .collect();
            let shown_env: String =
                env.iter().filter(|(k, _)| k != "ORBAS_BIN").map(|(k, v)| format!("{k}={v} ")).collect();
            let shown = format!("{shown_env}{shown_program} {}", args.join(" ")).trim().to_owned();
            Invocation { program: program.clone(), args, env: env.clone(), shown, tenant }
        })
        .collect())
}

/// Whether `need` is met; if not, why and the setup command that meets it.
async fn check(need: Need) -> Result<(), (String, String)> {
    let missing = |what: String, setup: &str| Err((what, setup.to_owned()));
    match need {
        Need::Venv(module, setup) => {
            let python = super::venv().join("bin/python");
            if !imports(&python, module).await {
                return missing(format!("no Python module `{module}` in {}", python.display()), setup);
            }
        }
        Need::VenvFile(file, setup) => {
            let path = super::venv().join(file);
            if !path.exists() {
                return missing(format!("no {}", path.display()), setup);
            }
        }
        Need::EmbedVenv(module) => {
            let python = std::env::var_os("ORBAS_EMBED_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/orbas/venv-embed/bin/python")
            });
            if !imports(&python, module).await {
                return missing(format!("no Python module `{module}` in {}", python.display()), SETUP_EMBED);
            }
        }
        Need::Tool(tool, setup) => {
            let on_path =
                std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|dir| dir.join(tool).is_file()));
            if !on_path {
                return missing(format!("`{tool}` is not on PATH"), setup);
            }
        }
        Need::DemoLake => {
            let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
            if !(set("ORBAS_BENCH_LAKE") && set("ORBAS_BENCH_TENANTS") && set("DATABASE_URL")) {
                return missing(
                    "needs the lake of a scale-1 demo".into(),
                    "orbas demo --scale 1 --tenants 3 --data-dir D (until the lake has caught up), then \
                     ORBAS_BENCH_LAKE=D/lake ORBAS_BENCH_TENANTS=<slugs> DATABASE_URL=<the demo's database> orbas bench all",
                );
            }
        }
    }
    Ok(())
}

async fn imports(python: &Path, module: &str) -> bool {
    let status = tokio::process::Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    status.is_ok_and(|s| s.success())
}

/// Runs `plan`, then writes its output into `b`'s block of `file`; returns the seconds it took.
async fn measure(b: &Bench, plan: &[Invocation], quick: bool, file: &Path) -> anyhow::Result<f64> {
    let started = Instant::now();
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M").to_string();
    let mut output = String::new();
    for inv in plan {
        eprintln!("bench all: {}: {}", b.name, inv.shown);
        let out = run_child(inv).await?;
        if let Some(t) = &inv.tenant {
            output.push_str(&format!("#### tenant {t}\n\n"));
        }
        output.push_str(&out);
        output.push('\n');
    }
    let took = started.elapsed().as_secs_f64();
    let meta = doc::Meta {
        bench: b.name.to_owned(),
        command: plan.iter().map(|i| i.shown.as_str()).collect::<Vec<_>>().join(" ; "),
        when: when.clone(),
        took_secs: took,
        headline: doc::headline(&output, b.headline),
        quick,
    };
    let body = block(b, &meta, &output, file)?;
    update(file, b.name, &body)?;
    Ok(took)
}

/// Runs one child process, its stdout captured (and echoed to stderr as it comes), stderr passed on.
async fn run_child(inv: &Invocation) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new(&inv.program);
    cmd.args(&inv.args).envs(inv.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).stdout(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd.kill_on_drop(true).spawn().with_context(|| format!("starting {}", inv.program.display()))?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    while let Some(line) = lines.next_line().await? {
        eprintln!("{line}");
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().await?;
    if !status.success() {
        bail!("`{}` exited with {status}", inv.shown);
    }
    Ok(out)
}

/// The generated block: metadata, the run's provenance line, the bench's own output.
fn block(b: &Bench, meta: &doc::Meta, output: &str, file: &Path) -> anyhow::Result<String> {
    let build = if cfg!(debug_assertions) { "debug build" } else { "release build" };
    let mut body = format!("{}\n", meta.line()?);
    body.push_str(&format!(
        "Generated by `orbas bench all`{}: `{}` — {} UTC, took {}; {}; commit {}; {}.\n\n",
        if meta.quick {
            " --quick (a smoke run at small sizes: not comparable with the figures discussed here)"
        } else {
            ""
        },
        meta.command,
        meta.when,
        doc::took(meta.took_secs),
        machine(),
        commit(file),
        build
    ));
    let output = output.trim_end();
    if b.fenced {
        body.push_str(&format!("```text\n{output}\n```\n"));
    } else {
        body.push_str(&doc::demote_headings(output));
    }
    Ok(body)
}

/// Splices `body` into `name`'s block and the summary, written atomically (temporary file + rename).
fn update(file: &Path, name: &str, body: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let text = doc::splice(&text, name, body)?;
    let rows: Vec<(&str, String)> = BENCHES.iter().map(|b| (b.name, documented_command(b))).collect();
    let text = doc::splice(&text, doc::SUMMARY, &doc::summary(&text, &rows))?;
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("a temporary file in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    tmp.persist(file).with_context(|| format!("replacing {}", file.display()))?;
    Ok(())
}

fn documented_command(b: &Bench) -> String {
    match b.program {
        Program::Orbas => format!("orbas {}", b.args.join(" ")),
        Program::Script(path) => {
            let env: String = b.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
            format!("{env}./{path}")
        }
    }
}

/// CPU model and count, memory and OS, from /proc and /etc/os-release.
fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_owned()))
        .unwrap_or_else(|| "unknown OS".into());
    let kernel = read("/proc/sys/kernel/osrelease");
    format!("{cpu}, {cores} CPUs, {:.0} GiB RAM, {os}, Linux {}", mem_kib as f64 / 1_048_576.0, kernel.trim())
}

/// The commit of the repository holding `file`, else of the working directory's (`-dirty` with
/// uncommitted changes).
fn commit(file: &Path) -> String {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let describe = |dir: &Path| {
        std::process::Command::new("git")
            .args(["describe", "--always", "--dirty", "--abbrev=10"])
            .current_dir(dir)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    describe(dir).or_else(|| describe(Path::new("."))).unwrap_or_else(|| "unknown".into())
}

/// The repository root: the `git` top level of the document, else the working directory.
fn repo_root(file: &Path) -> PathBuf {
    let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::process::Command::new("git")
        .args(["rev-parse", "--show-toplevel"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Prints what happened to every bench; fails when one failed (skipped ones do not fail the run).
fn report(outcomes: &[(&str, Outcome)], file: &Path) -> anyhow::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    println!("\n| bench | outcome |\n|---|---|");
    let mut failed = Vec::new();
    for (name, outcome) in outcomes {
        let text = match outcome {
            Outcome::Updated { took } => format!("updated in {} ({})", file.display(), doc::took(*took)),
            Outcome::Skipped { why, setup } => format!("skipped: {why}; run `{setup}`"),
            Outcome::Failed { why } => {
                failed.push(*name);
                format!("FAILED (previous figures kept): {why}")
            }
        };
        println!("| {name} | {} |", text.replace('\n', " "));
    }
    if !failed.is_empty() {
        bail!("{} of {} benches failed: {}", failed.len(), outcomes.len(), failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_selection_checks_them() {
        let mut names: Vec<&str> = BENCHES.iter().map(|b| b.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), BENCHES.len());
        let only = select(&["tpch".into(), "seed".into()], &[]).expect("known");
        assert_eq!(only.iter().map(|b| b.name).collect::<Vec<_>>(), ["seed", "tpch"]);
        let skipped = select(&[], &["seed".into()]).expect("known");
        assert_eq!(skipped.len(), BENCHES.len() - 1);
        let err = select(&["nope".into()], &[]).expect_err("unknown").to_string();
        assert!(err.contains("unknown bench `nope`") && err.contains("seed, api, cdc"), "{err}");
    }

    #[test]
    fn every_bench_has_its_block_in_the_benchmarks_document() {
        let text = include_str!("../../../docs/BENCHMARKS.md");
        for name in BENCHES.iter().map(|b| b.name).chain([doc::SUMMARY]) {
            doc::splice(text, name, "").unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn the_documented_commands_parse() {
        use clap::Parser as _;
        for b in BENCHES.iter().filter(|b| matches!(b.program, Program::Orbas)) {
            for args in [b.args, b.quick] {
                let args = args.iter().map(|a| a.replace("{lake}", "/tmp/lake").replace("{tenant}", "t"));
                let parsed = crate::cli::Cli::try_parse_from(std::iter::once("orbas".to_owned()).chain(args));
                assert!(parsed.is_ok(), "{}: {:?}", b.name, parsed.err());
            }
        }
    }
}
