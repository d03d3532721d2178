//! `orbas models …`: the intelligence stage's offline commands (see `orbas_models`).

use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Duration, Utc};
use deltalake::datafusion::prelude::SessionContext;
use orbas_models::dataset::{self, Split};
use orbas_models::features::{Entity, FeatureSet};
use orbas_models::scoring::{self, Scorer};
use orbas_models::{acceptance, nba, ops};
use orbas_oltp::db::{self, Db};
use orbas_oltp::model::TenantId;
use orbas_oltp::repo::identity;
use orbas_warehouse::sql::{Lake, Limits};
use serde_json::json;

use crate::cli::{ModelsCommand, ModelsEvalArgs, ModelsFeaturesArgs, ModelsRunArgs, ModelsTrainArgs};
use crate::settings::Settings;

mod forecast;

pub async fn run(settings: &Settings, cmd: ModelsCommand) -> anyhow::Result<()> {
    match cmd {
        ModelsCommand::Run(args) => run_service(settings, &args).await,
        ModelsCommand::Features(args) => features(settings, &args).await,
        ModelsCommand::Eval(args) => eval(settings, &args).await,
        ModelsCommand::Train(args) => train(settings, &args).await,
        ModelsCommand::Forecast(args) => forecast::run(settings, &args).await,
        ModelsCommand::ForecastEval(args) => forecast::eval(settings, &args).await,
        ModelsCommand::Sentiment(args) => super::sentiment::run(settings, &args).await,
    }
}

/// `orbas models run`: the intelligence jobs until Ctrl-C.
async fn run_service(settings: &Settings, args: &ModelsRunArgs) -> anyhow::Result<()> {
    let admin = db::connect(settings.database.admin_url().context("set DATABASE_URL")?, 2).await?;
    let app = Db::new(db::connect(&settings.database.app_url()?, 4).await?);
    let lake = std::sync::Arc::new(Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?));
    let metrics = match args.metrics_addr {
        Some(addr) => Some(crate::observe::serve_metrics(addr, "models").await?),
        None => None,
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let jobs = orbas_models::service::Service { admin, db: app, lake }.spawn(args.schedule.schedule(), stop_rx);
    println!("models: running over {} until Ctrl-C", settings.lake(args.lake.as_deref()));
    super::shutdown_signal().await;
    let _ = stop_tx.send(true);
    drop(jobs);
    drop(metrics);
    Ok(())
}

async fn train(settings: &Settings, args: &ModelsTrainArgs) -> anyhow::Result<()> {
    let entities = entities(args.entity.as_deref())?;
    let admin = db::connect(settings.database.admin_url().context("set DATABASE_URL")?, 2).await?;
    let tenants = match &args.tenant {
        Some(t) => vec![super::lake::tenant_id(settings, t).await?.parse::<TenantId>()?],
        None => identity::active_tenants(&admin).await?,
    };
    let app = Db::new(db::connect(&settings.database.app_url()?, 2).await?);
    let lake = Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?);
    for tenant in tenants {
        for &entity in &entities {
            let r = ops::retrain(&app, &lake, tenant, entity)
                .await
                .with_context(|| format!("retraining the {} model of tenant {tenant}", entity.as_str()))?;
            let auc = |e: Option<&orbas_models::scoring::Evaluation>| {
                e.and_then(|e| e.auc).map_or("–".to_owned(), |a| format!("{a:.3}"))
            };
            println!(
                "tenant {tenant} {}: version {} ({}, {}) {} — held-out AUC {} vs in service {}; {} predictions (data until {})",
                entity.as_str(),
                r.version,
                r.kind.as_str(),
                r.family.as_str(),
                if r.promoted { "promoted" } else { "not better, kept the version in service" },
                auc(Some(&r.candidate)),
                auc(r.incumbent.as_ref()),
                r.predictions,
                r.data_until.format("%Y-%m-%d")
            );
        }
        if with_acceptance(args.entity.as_deref()) {
            let r = acceptance::retrain(&app, &lake, tenant)
                .await
                .with_context(|| format!("retraining the acceptance model of tenant {tenant}"))?;
            let t = &r.trial;
            let ll = |s: Option<&acceptance::Scored>| s.map_or("–".to_owned(), |s| format!("{:.4}", s.log_loss));
            println!(
                "tenant {tenant} next-best-action acceptance: {} verdicts; {}; held-out log-loss {} vs the rate {}{}; serving: {}",
                t.verdicts,
                match (r.version, r.promoted) {
                    (None, _) => format!(
                        "too little feedback to learn from (needs {} + {})",
                        acceptance::MIN_TRAIN,
                        acceptance::MIN_TEST
                    ),
                    (Some(v), true) => format!("version {v} promoted"),
                    (Some(v), false) => format!("version {v} not better, not served"),
                },
                ll(t.candidate.as_ref().map(|c| &c.1)),
                ll(t.rate.as_ref()),
                t.incumbent.as_ref().map_or(String::new(), |i| format!(" and in service {:.4}", i.log_loss)),
                r.serving
            );
        }
    }
    Ok(())
}

/// `--entity acceptance`: the next-best-action acceptance model alone.
const ACCEPTANCE: &str = "acceptance";

/// The scorers named by `--entity` (none for `acceptance`), or all of them.
fn entities(arg: Option<&str>) -> anyhow::Result<Vec<Entity>> {
    Ok(match arg {
        Some(ACCEPTANCE) => Vec::new(),
        Some(e) => vec![e.parse::<Entity>()?],
        None => Entity::ALL.to_vec(),
    })
}

/// Whether `--entity` includes the acceptance model (given as `acceptance`, or all models).
fn with_acceptance(arg: Option<&str>) -> bool {
    arg.is_none_or(|e| e == ACCEPTANCE)
}

/// Actions per cut-off in the offline replay of a next-best-action rule (a tenant's short list).
const TARGETING_K: usize = 10;

/// The window: the data's present (its latest activity, else the wall clock), cut-offs from two
/// years before it, split 180 days before it, unless given.
async fn window(
    ctx: &SessionContext,
    from: Option<DateTime<Utc>>,
    split: Option<DateTime<Utc>>,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>, DateTime<Utc>)> {
    let now = dataset::data_horizon(ctx).await?.unwrap_or_else(Utc::now);
    Ok((from.unwrap_or(now - Duration::days(730)), split.unwrap_or(now - Duration::days(180)), now))
}

async fn features(settings: &Settings, args: &ModelsFeaturesArgs) -> anyhow::Result<()> {
    let entity: Entity = args.entity.parse()?;
    let tenant = super::lake::tenant_id(settings, &args.tenant).await?;
    let lake = Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?);
    let ctx = lake.session(&tenant, Limits::BATCH).await?;
    let (from, split_at, now) = window(&ctx, args.from, args.split).await?;
    let split = Split::monthly(&ctx, entity, from, split_at, now).await?;
    export(&split, &args.out)?;
    for (name, set) in [("train.csv", &split.train), ("test.csv", &split.test)] {
        let (labelled, positives) = positives(set);
        println!(
            "{}: {} rows ({} labelled, {:.1} % positive), {} features",
            args.out.join(name).display(),
            set.len(),
            labelled,
            100.0 * positives as f64 / labelled.max(1) as f64,
            set.names.len()
        );
    }
    Ok(())
}

/// Writes `train.csv` and `test.csv` (labelled rows) into `dir`.
fn export(split: &Split, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, set) in [("train.csv", &split.train), ("test.csv", &split.test)] {
        let path = dir.join(name);
        let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        dataset::write_csv(set, &mut out).with_context(|| format!("writing {}", path.display()))?;
        std::io::Write::flush(&mut out)?;
    }
    Ok(())
}

/// Labelled rows and how many of them are positive.
fn positives(set: &FeatureSet) -> (usize, usize) {
    let labels: Vec<bool> = set.labelled().map(|(_, _, l)| l).collect();
    (labels.len(), labels.iter().filter(|l| **l).count())
}

async fn eval(settings: &Settings, args: &ModelsEvalArgs) -> anyhow::Result<()> {
    let entities = entities(args.entity.as_deref())?;
    let tenant = super::lake::tenant_id(settings, &args.tenant).await?;
    let lake = Lake::new(super::pipeline::lake_url(&settings.lake(args.lake.as_deref()))?);
    let ctx = lake.session(&tenant, Limits::BATCH).await?;
    let (from, split_at, now) = window(&ctx, args.from, args.split).await?;
    let mut results = Vec::new();
    for entity in entities {
        let started = std::time::Instant::now();
        let split = Split::monthly(&ctx, entity, from, split_at, now).await?;
        let feature_time = started.elapsed();
        let (train_rows, train_pos) = positives(&split.train);
        let (test_rows, test_pos) = positives(&split.test);
        let scorer = Scorer::train(&split.train)?;
        let ours = scoring::evaluate(&scorer, &split.test)?;
        let aim = nba::targeting(&scorer, &split.test, TARGETING_K)?;
        let dir = tempfile::tempdir()?;
        export(&split, dir.path())?;
        let peers = sklearn(dir.path()).await?;
        let best_peer = ["LogisticRegression", "HistGradientBoosting"]
            .iter()
            .filter_map(|m| peers[m]["auc"].as_f64())
            .fold(f64::NAN, f64::max);
        results.push(json!({
            "entity": entity.as_str(),
            "features": split.train.names.len(),
            "feature_rows": split.train.len() + split.test.len(),
            "feature_seconds": feature_time.as_secs_f64(),
            "train": {"rows": train_rows, "positives": train_pos},
            "test": {"rows": test_rows, "positives": test_pos},
            "orbas": {
                "kind": scorer.kind.as_str(),
                "family": scorer.family().as_str(),
                "selection": scorer.selection,
                "auc": ours.auc,
                "log_loss": ours.log_loss,
                "brier": ours.brier,
                "calibration_error": ours.calibration_error,
                "fit_s": scorer.fit_time.as_secs_f64(),
                "score_s": ours.score_time.as_secs_f64(),
            },
            "peers": peers,
            "next_best_action": aim,
            "target_met": ours.auc.is_some_and(|a| best_peer.is_nan() || a >= best_peer - 0.01),
        }));
    }
    // The acceptance model of next-best actions on the tenant's feedback, against the rate.
    let accept = if with_acceptance(args.entity.as_deref()) {
        let trial = acceptance::trial(&acceptance::verdicts(&ctx).await?, None)?;
        Some(json!({
            "verdicts": trial.verdicts,
            "split_at": trial.split_at,
            "train": trial.train,
            "test": trial.test,
            "test_accepted": trial.test_accepted,
            "rate": trial.rate,
            "learned": trial.candidate.as_ref().map(|c| &c.1),
            "gain": trial.gain,
            "weights": trial.candidate.as_ref().map(|c| &c.0.logistic.weights),
            "promoted": trial.promote(),
        }))
    } else {
        None
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({"scorers": results, "acceptance": accept}))?);
        return Ok(());
    }
    let f = |v: &serde_json::Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.4}"));
    let rate = |rows: &serde_json::Value, secs: &serde_json::Value| match (rows.as_f64(), secs.as_f64()) {
        (Some(r), Some(s)) if s > 0.0 => format!("{:.0}", r / s),
        _ => "–".to_owned(),
    };
    for r in &results {
        println!(
            "\n{}: {} features; {} feature rows in {:.1} s; train {} labelled ({} positive), test {} ({} positive)\n",
            r["entity"].as_str().unwrap_or_default(),
            r["features"],
            r["feature_rows"],
            r["feature_seconds"].as_f64().unwrap_or_default(),
            r["train"]["rows"],
            r["train"]["positives"],
            r["test"]["rows"],
            r["test"]["positives"]
        );
        println!("| model | AUC | log-loss | Brier | calibration error | train rows/s | score rows/s |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let line = |name: String, m: &serde_json::Value| {
            println!(
                "| {name} | {} | {} | {} | {} | {} | {} |",
                f(&m["auc"]),
                f(&m["log_loss"]),
                f(&m["brier"]),
                f(&m["calibration_error"]),
                rate(&r["train"]["rows"], &m["fit_s"]),
                rate(&r["test"]["rows"], &m["score_s"])
            );
        };
        let o = &r["orbas"];
        line(
            format!("Orbas ({}, {})", o["kind"].as_str().unwrap_or_default(), o["family"].as_str().unwrap_or_default()),
            o,
        );
        for peer in ["LogisticRegression", "HistGradientBoosting"] {
            line(format!("scikit-learn {peer}"), &r["peers"][peer]);
        }
        let s = &o["selection"];
        if !s.is_null() {
            println!(
                "\nfamily chosen on the latest 20 % of training cut-offs ({} rows): {} — calibrated log-loss {} \
                 logistic, {} boosted ({} rounds), {} blend; AUC {} / {} / {}; paired gain over logistic \
                 {} ± {} boosted, {} ± {} blend (a challenger wins above 2.28 standard errors)",
                s["rows"],
                o["family"].as_str().unwrap_or_default(),
                f(&s["logistic"]["log_loss"]),
                f(&s["boosted"]["log_loss"]),
                s["rounds"],
                f(&s["blend"]["log_loss"]),
                f(&s["logistic"]["auc"]),
                f(&s["boosted"]["auc"]),
                f(&s["blend"]["auc"]),
                f(&s["gain"]["mean"]),
                f(&s["gain"]["se"]),
                f(&s["blend_gain"]["mean"]),
                f(&s["blend_gain"]["se"])
            );
        }
        println!(
            "\ntarget (Orbas AUC ≥ best scikit-learn AUC − 0.01): {}",
            if r["target_met"].as_bool() == Some(true) { "met" } else { "not met" }
        );
        let a = &r["next_best_action"];
        let share = |hits: &serde_json::Value| match (hits.as_f64(), a["picked"].as_f64()) {
            (Some(h), Some(p)) if p > 0.0 => format!("{:.1} %", 100.0 * h / p),
            _ => "–".to_owned(),
        };
        println!(
            "\nnext-best action `{}` replayed on the test months (top {TARGETING_K} per cut-off of {} triggered rows \
             over {} cut-offs; a hit: {})\n",
            a["kind"].as_str().unwrap_or_default(),
            a["triggered"],
            a["cutoffs"],
            a["hit"].as_str().unwrap_or_default()
        );
        println!("| ranking | picked | hits | hit rate | value |");
        println!("|---|---:|---:|---:|---:|");
        for (name, hits, value) in [
            (
                format!("rule only ({})", a["baseline"].as_str().unwrap_or_default()),
                &a["baseline_hits"],
                &a["baseline_value"],
            ),
            ("ours (expected value)".to_owned(), &a["ours_hits"], &a["ours_value"]),
        ] {
            println!("| {name} | {} | {hits} | {} | {} |", a["picked"], share(hits), f(value));
        }
        let uplift = match (a["ours_value"].as_f64(), a["baseline_value"].as_f64()) {
            (Some(o), Some(b)) if b > 0.0 => format!("{:+.1} %", 100.0 * (o / b - 1.0)),
            _ => "–".to_owned(),
        };
        println!("\nuplift of ours over the rule-only baseline (value): {uplift}");
    }
    match accept {
        Some(a) if a["learned"].is_null() => println!(
            "\nnext-best-action acceptance: {} verdicts, too few to learn from (needs {} + {}); the rate serves",
            a["verdicts"],
            acceptance::MIN_TRAIN,
            acceptance::MIN_TEST
        ),
        Some(a) => print_acceptance(&a),
        None => {}
    }
    Ok(())
}

/// The acceptance part of `orbas models eval`.
fn print_acceptance(a: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().map_or("–".to_owned(), |x| format!("{x:.4}"));
    println!(
        "\nnext-best-action acceptance: {} verdicts, the latest {} held out (from {}; {} accepted)\n",
        a["verdicts"],
        a["test"],
        a["split_at"].as_str().unwrap_or("–"),
        a["test_accepted"]
    );
    println!("| acceptance | log-loss | AUC | Brier | calibration error |");
    println!("|---|---:|---:|---:|---:|");
    for (name, m) in
        [("the rate (rep's, shrunk to the tenant's)", &a["rate"]), ("learned (logistic on three rates)", &a["learned"])]
    {
        println!(
            "| {name} | {} | {} | {} | {} |",
            f(&m["log_loss"]),
            f(&m["auc"]),
            f(&m["brier"]),
            f(&m["calibration_error"])
        );
    }
    println!(
        "\nthe learned model's log-loss gain over the rate: {} ± {} (it serves above one standard error): {}",
        f(&a["gain"]["mean"]),
        f(&a["gain"]["se"]),
        if a["promoted"].as_bool() == Some(true) { "served" } else { "not served, the rate serves" }
    );
}

/// Runs `bench/models/sklearn_eval.py` on the exported rows with the benchmark virtualenv's Python.
async fn sklearn(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let venv = super::venv();
    let script = super::repo_file("bench/models/sklearn_eval.py");
    let out = tokio::process::Command::new(venv.join("bin/python"))
        .arg(&script)
        .arg(dir)
        .output()
        .await
        .context("running scikit-learn from the venv (./scripts/setup.sh --bench installs it)")?;
    if !out.status.success() {
        bail!("scikit-learn runner failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
