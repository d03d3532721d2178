//! `orbas models forecast` and `orbas models forecast-eval` (see `orbas_models::forecast`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, bail};
use orbas_models::forecast::accuracy::{self, Summary};
use orbas_models::forecast::backtest::{self, Holdout};
use orbas_models::forecast::series::Monthly;
use orbas_models::forecast::{self, Level, Report, SeriesKey};
use orbas_oltp::db::{self, Db};
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::{forecasts, identity};
use orbas_warehouse::sql::{Lake, Limits};
use serde_json::{Value, json};

use crate::cli::{ModelsForecastArgs, ModelsForecastEvalArgs};
use crate::commands::{lake::tenant_id, pipeline::lake_url};
use crate::settings::Settings;

/// The tenant given, or every active tenant.
async fn tenants(settings: &Settings, tenant: Option<&str>) -> anyhow::Result<Vec<TenantId>> {
    Ok(match tenant {
        Some(t) => vec![tenant_id(settings, t).await?.parse::<TenantId>()?],
        None => {
            let admin = db::connect(settings.database.admin_url().context("set DATABASE_URL")?, 1).await?;
            identity::active_tenants(&admin).await?
        }
    })
}

async fn app_db(settings: &Settings) -> anyhow::Result<Db> {
    Ok(Db::new(db::connect(&settings.database.app_url()?, 2).await?))
}

pub(super) async fn run(settings: &Settings, args: &ModelsForecastArgs) -> anyhow::Result<()> {
    let tenants = tenants(settings, args.tenant.as_deref()).await?;
    let app = app_db(settings).await?;
    let lake = Lake::new(lake_url(&settings.lake(args.lake.as_deref()))?);
    let fs = forecast::Settings { horizon: args.horizon.max(1), ..forecast::Settings::default() };
    for tenant in tenants {
        let started = Instant::now();
        let report =
            forecast::run(&app, &lake, tenant, &fs).await.with_context(|| format!("forecasting tenant {tenant}"))?;
        print_report(&report, started.elapsed().as_secs_f64());
        let acc =
            forecast::accuracy(&app, &lake, tenant).await.with_context(|| format!("accuracy of tenant {tenant}"))?;
        print_accuracy(&acc);
    }
    Ok(())
}

fn money(v: f64) -> String {
    let s = format!("{:.0}", v.round());
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// The last 8 characters of an id (UUIDv7s of one tenant share their leading, time-ordered part).
fn tail(id: &str) -> String {
    id.chars().skip(id.chars().count().saturating_sub(8)).collect()
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.1}"))
}

fn print_report(r: &Report, seconds: f64) {
    println!(
        "\ntenant {} — data until {}, amounts in {}; {} snapshot rows written ({} replaced) in {seconds:.1} s",
        r.tenant, r.day, r.currency, r.written.inserted, r.written.deleted
    );
    for (q, rollup) in &r.rollups {
        println!("\nFY{} Q{} ({} – {}):\n", q.fiscal_year, q.fiscal_quarter, q.start, q.last_day());
        println!("| level | id | commit | best case | pipeline | weighted | closed | quota | attainment |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
        for (level, t) in rollup {
            let id = match level {
                Level::Tenant => "–".to_owned(),
                Level::Territory(x) | Level::Owner(x) => tail(x),
            };
            println!(
                "| {} | {id} | {} | {} | {} | {} | {} | {} | {} |",
                level.kind(),
                money(t.commit),
                money(t.best_case),
                money(t.pipeline),
                money(t.weighted),
                money(t.closed),
                t.quota.map_or("–".to_owned(), money),
                t.attainment().map_or("–".to_owned(), |a| format!("{:.0} %", 100.0 * a))
            );
        }
    }
    println!("\n| series | months | method | next months: forecast [80 % interval] |");
    println!("|---|---:|---|---|");
    for f in &r.forecasts {
        let p = &f.prediction;
        let ahead: Vec<String> = (0..p.point.len().min(3))
            .map(|i| {
                format!(
                    "{} {} [{} – {}]",
                    f.series.month(f.series.len() + i).format("%Y-%m"),
                    money(p.point[i]),
                    money(p.low[i]),
                    money(p.high[i])
                )
            })
            .collect();
        println!("| {} | {} | {} | {} |", short_id(&f.key), f.series.len(), p.method.name(), ahead.join("; "));
    }
}

fn short_id(key: &SeriesKey) -> String {
    match &key.owner {
        None => key.metric.as_str().to_owned(),
        Some(o) => format!("{}/{}", key.metric.as_str(), tail(o)),
    }
}

fn print_accuracy(a: &forecast::Accuracy) {
    println!(
        "\naccuracy of past snapshots (periods over before {}; {} tracked, {} not tracked) — sMAPE, MAPE, bias in %:\n",
        a.until,
        a.pairs.len(),
        a.skipped
    );
    println!("| source | snapshots | sMAPE | MAPE | bias |");
    println!("|---|---:|---:|---:|---:|");
    for (source, s) in &a.by_source {
        println!("| {source} | {} | {} | {} | {} |", s.pairs, pct(s.smape), pct(s.mape), pct(s.bias));
    }
    let mut reps: BTreeMap<&str, Vec<(&str, &Summary)>> = BTreeMap::new();
    for ((source, rep), s) in &a.by_rep {
        reps.entry(source).or_default().push((rep, s));
    }
    for (source, mut list) in reps {
        list.sort_by(|x, y| x.1.smape.unwrap_or(f64::MAX).total_cmp(&y.1.smape.unwrap_or(f64::MAX)));
        let shown: Vec<String> = list
            .iter()
            .take(5)
            .map(|(rep, s)| {
                format!("{} {} ({} snapshots)", rep.chars().take(8).collect::<String>(), pct(s.smape), s.pairs)
            })
            .collect();
        println!("{source}: {} reps; most accurate (sMAPE): {}", list.len(), shown.join(", "));
    }
}

/// One series of the benchmark.
struct Bench {
    id: String,
    key: SeriesKey,
    series: Monthly,
}

pub(super) async fn eval(settings: &Settings, args: &ModelsForecastEvalArgs) -> anyhow::Result<()> {
    let tenants = tenants(settings, args.tenant.as_deref()).await?;
    let app = app_db(settings).await?;
    let lake = Lake::new(lake_url(&settings.lake(args.lake.as_deref()))?);
    let fs = forecast::Settings::default();
    let mut all = Vec::new();
    for tenant in &tenants {
        let ctx = lake.session(&tenant.to_string(), Limits::BATCH).await?;
        let day = forecast::data_day(&ctx).await?;
        let mut tx = app.begin(*tenant).await?;
        let cal = forecasts::calendar(tx.conn(), *tenant).await?;
        tx.commit().await?;
        for (key, series) in forecast::series(&ctx, &cal.currency, forecast::origin_of(day), &fs).await? {
            all.push(Bench { id: format!("{tenant}/{}", key.id()), key, series });
        }
    }
    let temp = tempfile::tempdir()?;
    let dir: PathBuf = args.out.clone().unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut results = Vec::new();
    for &h in &args.horizons {
        results.push(eval_horizon(&all, h, &dir, &fs.backtest).await?);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_eval(&results);
    }
    Ok(())
}

/// Series long enough for a holdout of `h` months: a year of training history at least.
fn eligible(all: &[Bench], h: usize) -> Vec<&Bench> {
    all.iter().filter(|b| b.series.len() >= h + 12).collect()
}

async fn eval_horizon(all: &[Bench], h: usize, dir: &Path, bt: &backtest::Settings) -> anyhow::Result<Value> {
    let series = eligible(all, h);
    if series.is_empty() {
        bail!("no series has the {} months a holdout of {h} needs", h + 12);
    }
    let csv = dir.join(format!("series_h{h}.csv"));
    write_series(&csv, &series)?;
    let started = Instant::now();
    let inputs: Vec<(String, Monthly)> = series.iter().map(|b| (b.id.clone(), b.series.clone())).collect();
    let bt = *bt;
    let ours: Vec<(String, Holdout)> = tokio::task::spawn_blocking(move || {
        inputs.into_iter().map(|(id, s)| backtest::holdout(&s, h, &bt).map(|o| (id, o))).collect::<Result<Vec<_>, _>>()
    })
    .await??;
    let ours_s = started.elapsed().as_secs_f64();
    let peers = statsforecast(&csv, h).await?;
    let mut models: BTreeMap<(&str, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut methods: BTreeMap<String, usize> = BTreeMap::new();
    for ((id, o), b) in ours.iter().zip(&series) {
        let group = if b.key.owner.is_some() { "owner" } else { "tenant" };
        *methods.entry(o.prediction.method.name()).or_default() += 1;
        let m = accuracy::mase_period(o.train.len());
        let mut score = |name: &str, f: &[f64]| {
            let smape = accuracy::smape(&o.actual, f).unwrap_or(0.0);
            let mase = accuracy::mase(&o.train, &o.actual, f, m).unwrap_or(f64::NAN);
            for g in ["all", group] {
                models.entry((g, name.to_owned())).or_default().push((smape, mase));
            }
        };
        score("orbas", &o.prediction.point);
        for peer in ["AutoETS", "AutoETS_m3", "SeasonalNaive"] {
            let f: Vec<f64> = peers["forecasts"][peer][id]
                .as_array()
                .with_context(|| format!("statsforecast {peer} gave no forecast of {id}"))?
                .iter()
                .map(|v| v.as_f64().unwrap_or(f64::NAN))
                .collect();
            score(peer, &f);
        }
    }
    let mut summary: BTreeMap<&str, BTreeMap<&String, Value>> = BTreeMap::new();
    for ((group, name), v) in &models {
        let smape = v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
        let finite: Vec<f64> = v.iter().map(|x| x.1).filter(|x| x.is_finite()).collect();
        let mase = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
        let m = json!({"smape": smape, "mase": mase, "series": v.len(), "mase_series": finite.len()});
        summary.entry(group).or_default().insert(name, m);
    }
    let kinds = series.iter().fold(BTreeMap::new(), |mut m: BTreeMap<String, usize>, b| {
        *m.entry(match (&b.key.owner, b.key.metric) {
            (None, k) => format!("tenant {}", k.as_str()),
            (Some(_), k) => format!("owner {}", k.as_str()),
        })
        .or_default() += 1;
        m
    });
    Ok(json!({
        "horizon": h,
        "series": series.len(),
        "kinds": kinds,
        "train_months": {
            "min": series.iter().map(|b| b.series.len() - h).min(),
            "max": series.iter().map(|b| b.series.len() - h).max(),
        },
        "methods": methods,
        "seconds": {"orbas": ours_s, "statsforecast": peers["seconds"]},
        "models": summary.get("all"),
        "groups": summary,
    }))
}

/// `unique_id,ds,y` — the whole series; the peer holds out the last `h` months itself.
fn write_series(path: &Path, series: &[&Bench]) -> anyhow::Result<()> {
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    writeln!(out, "unique_id,ds,y")?;
    for b in series {
        for (i, v) in b.series.values.iter().enumerate() {
            writeln!(out, "{},{},{v}", b.id, b.series.month(i))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Runs `bench/models/forecast_eval.py` with the benchmark virtualenv's Python.
async fn statsforecast(csv: &Path, h: usize) -> anyhow::Result<Value> {
    let script = super::super::repo_file("bench/models/forecast_eval.py");
    let out = tokio::process::Command::new(super::super::venv().join("bin/python"))
        .arg(&script)
        .arg(csv)
        .arg(h.to_string())
        .output()
        .await
        .context("running statsforecast from the venv (./scripts/setup.sh --bench installs it)")?;
    if !out.status.success() {
        bail!("statsforecast runner failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn print_eval(results: &[Value]) {
    let f = |v: &Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.3}"));
    for r in results {
        println!(
            "\nH = {} months held out: {} series ({}), {}–{} training months; our methods: {}; {:.1} s ours (selection + fit), {:.1} s statsforecast\n",
            r["horizon"],
            r["series"],
            r["kinds"]
                .as_object()
                .map(|k| k.iter().map(|(n, c)| format!("{c} {n}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            r["train_months"]["min"],
            r["train_months"]["max"],
            r["methods"]
                .as_object()
                .map(|k| k.iter().map(|(n, c)| format!("{n} ×{c}")).collect::<Vec<_>>().join(", "))
                .unwrap_or_default(),
            r["seconds"]["orbas"].as_f64().unwrap_or_default(),
            r["seconds"]["statsforecast"].as_f64().unwrap_or_default(),
        );
        println!(
            "| model | sMAPE all | MASE all | sMAPE tenant series | MASE tenant series | sMAPE owner series | MASE owner series |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        for (name, label) in [
            ("orbas", "Orbas (AutoETS; MSTL-ETS or combination by backtest where a cycle is found)"),
            ("AutoETS", "statsforecast AutoETS (season length 12)"),
            ("AutoETS_m3", "statsforecast AutoETS (season length 3)"),
            ("SeasonalNaive", "statsforecast SeasonalNaive (12)"),
        ] {
            let g = |group: &str, what: &str| f(&r["groups"][group][name][what]);
            println!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                g("all", "smape"),
                g("all", "mase"),
                g("tenant", "smape"),
                g("tenant", "mase"),
                g("owner", "smape"),
                g("owner", "mase")
            );
        }
        let ours = r["models"]["orbas"]["smape"].as_f64();
        let best_ets =
            ["AutoETS", "AutoETS_m3"].iter().filter_map(|p| r["models"][p]["smape"].as_f64()).fold(f64::NAN, f64::min);
        let met = ours.is_some_and(|o| best_ets.is_nan() || o <= best_ets);
        println!("\ntarget (Orbas sMAPE ≤ the better AutoETS): {}", if met { "met" } else { "not met" });
    }
}
