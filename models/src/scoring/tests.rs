use chrono::{DateTime, Duration as Days, Utc};

use super::*;
use crate::features::Row;
use crate::logistic::sigmoid;

/// How a sample's outcome depends on `touches_30d` (t) and `days_since_touch` (d).
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// Linear log-odds: up with t, down with d.
    Linear,
    /// An interaction: likely when exactly one of "t ≥ 5" and "d ≥ 30" holds — neither matters
    /// alone, so no linear model ranks it.
    Xor,
}

/// Opportunity-shaped rows over 12 monthly cut-offs; the first `labelled` carry labels.
fn sample(n: usize, labelled: usize, seed: u64, outcome: Outcome) -> FeatureSet {
    let names = Entity::Opportunity.feature_names().to_vec();
    let p = names.len();
    let (t30, since) = (
        names.iter().position(|n| *n == "touches_30d").unwrap_or(0),
        names.iter().position(|n| *n == "days_since_touch").unwrap_or(0),
    );
    let start: DateTime<Utc> = "2025-01-01T00:00:00Z".parse().expect("a timestamp");
    let mut set = FeatureSet { entity: Entity::Opportunity, names, rows: Vec::new(), values: Vec::new() };
    let mut s = seed;
    let mut u = move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    for i in 0..n {
        let mut v = vec![0.0; p];
        v.iter_mut().for_each(|x| *x = u());
        v[t30] = (u() * 10.0).floor();
        v[since] = u() * 60.0;
        let prob = match outcome {
            Outcome::Linear => sigmoid(-1.0 + 0.4 * v[t30] - 0.05 * v[since]),
            Outcome::Xor if (v[t30] >= 5.0) != (v[since] >= 30.0) => 0.85,
            Outcome::Xor => 0.15,
        };
        let label = (i < labelled).then(|| u() < prob);
        let cutoff = start + Days::days(30 * (i as i64 % 12));
        set.rows.push(Row { id: format!("o{i}"), cutoff, label });
        set.values.extend(v);
    }
    set
}

/// The linear sample the first tests were written against.
fn rows(n: usize, labelled: usize) -> FeatureSet {
    sample(n, labelled, 17, Outcome::Linear)
}

/// `scorer` with its model replaced by a ridge logistic regression on every labelled row of `set`
/// (uncalibrated): what the logistic family alone would serve.
fn logistic_only(scorer: &Scorer, set: &FeatureSet) -> Scorer {
    let (x, y) = labelled(set, None);
    let p = set.names.len();
    let model = Logistic::fit(&x, p, &y, &Prior::ridge(p, 1.0)).expect("fit");
    Scorer { model: Model::Logistic(model), platt: Platt::IDENTITY, ..scorer.clone() }
}

fn auc_of(scorer: &Scorer, set: &FeatureSet) -> f64 {
    evaluate(scorer, set).expect("evaluation").auc.unwrap_or(0.0)
}

#[test]
fn few_outcomes_give_the_prior_and_enough_give_a_trained_model() {
    let none = Scorer::train(&rows(100, 0)).expect("scorer");
    assert_eq!((none.kind, none.outcomes, none.family()), (Kind::Prior, 0, Family::Logistic));
    let few = Scorer::train(&rows(500, 60)).expect("scorer");
    assert_eq!((few.kind, few.outcomes, few.family()), (Kind::Prior, 60, Family::Logistic));
    assert!(none.selection.is_none() && few.selection.is_none());
    let many = Scorer::train(&rows(3000, 3000)).expect("scorer");
    assert_eq!(many.kind, Kind::Trained);
    // The trained model ranks a later sample well; the prior already ranks it above chance
    // because its expert signs agree with the data.
    let test = rows(2000, 2000);
    let trained = evaluate(&many, &test).expect("evaluation");
    let prior = evaluate(&none, &test).expect("evaluation");
    assert!(trained.auc.unwrap_or(0.0) > 0.8, "{trained:?}");
    assert!(prior.auc.unwrap_or(0.0) > 0.65, "{prior:?}");
    assert!(trained.log_loss < prior.log_loss, "{trained:?} vs {prior:?}");
    assert!(trained.calibration_error < 0.05, "{trained:?}");
}

#[test]
fn an_interaction_selects_boosting_which_ranks_far_better() {
    let train = sample(4000, 4000, 5, Outcome::Xor);
    let scorer = Scorer::train(&train).expect("scorer");
    assert_eq!((scorer.kind, scorer.family()), (Kind::Trained, Family::Boosted), "{:?}", scorer.selection);
    let s = scorer.selection.clone().expect("a selection");
    let boosted = s.boosted.expect("boosting was tried");
    assert!(boosted.log_loss < s.logistic.log_loss - 0.05, "{s:?}");
    assert!(boosted.auc.unwrap_or(0.0) > s.logistic.auc.unwrap_or(1.0) + 0.15, "{s:?}");
    assert!(s.rounds > 0 && s.rows > 0, "{s:?}");
    let Model::Boosted(m) = &scorer.model else { unreachable!("checked above") };
    assert_eq!(m.rounds(), s.rounds, "refitted with the rounds early stopping chose");
    // On later rows of the same process: far better ranked than logistic regression alone, with a
    // log-loss near the best possible (0.423 for outcomes at 15 % / 85 %) and roughly calibrated
    // (its predictions spread around the two true rates, which costs in equal-width bins).
    let test = sample(2000, 2000, 6, Outcome::Xor);
    let (ours, linear) = (auc_of(&scorer, &test), auc_of(&logistic_only(&scorer, &train), &test));
    assert!(ours > 0.8 && ours > linear + 0.2, "boosted {ours} vs logistic {linear}");
    let e = evaluate(&scorer, &test).expect("evaluation");
    // The Bayes rate of this process is a log-loss of 0.42.
    assert!(e.log_loss < 0.55 && e.calibration_error < 0.1, "{e:?}");
}

#[test]
fn a_linear_outcome_keeps_logistic() {
    let train = sample(3000, 3000, 21, Outcome::Linear);
    let scorer = Scorer::train(&train).expect("scorer");
    let s = scorer.selection.clone().expect("a selection");
    // Boosting was tried; whatever it gained on the slice is within noise of the logistic model.
    let gain = s.gain.expect("boosting was tried");
    assert!(gain.mean < 2.0 * gain.se, "{s:?}");
    assert_eq!(scorer.family(), Family::Logistic, "{s:?}");
    let test = sample(2000, 2000, 22, Outcome::Linear);
    let (ours, linear) = (auc_of(&scorer, &test), auc_of(&logistic_only(&scorer, &train), &test));
    assert!(ours >= linear - 0.01, "{:?}: {ours} vs logistic {linear}", scorer.family());
}

#[test]
fn the_bias_report_partitions_the_rows_by_segment() {
    let scorer = Scorer::train(&rows(3000, 3000)).expect("scorer");
    let mut test = rows(1200, 1200);
    let p = test.names.len();
    let (exp, ren) = (column(&test, "is_expansion"), column(&test, "is_renewal"));
    for i in 0..test.len() {
        test.values[i * p + exp] = f64::from(u8::from(i % 3 == 1));
        test.values[i * p + ren] = f64::from(u8::from(i % 3 == 2));
    }
    let report = evaluate_by_segment(&scorer, &test).expect("report");
    assert_eq!(report.keys().copied().collect::<Vec<_>>(), ["expansion", "new_business", "renewal"]);
    assert!(report.values().all(|e| e.rows == 400 && e.auc.is_some()));
    let positives: usize = report.values().map(|e| e.positives).sum();
    assert_eq!(positives, evaluate(&scorer, &test).expect("evaluation").positives);
}

fn column(set: &FeatureSet, name: &str) -> usize {
    set.names.iter().position(|n| *n == name).unwrap_or_default()
}

/// `params` written to text and read back, as the database stores them.
fn through_text(params: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(&params.to_string()).expect("JSON")
}

#[test]
fn stored_params_score_the_same() {
    let scorer = Scorer::train(&rows(2000, 2000)).expect("scorer");
    assert_eq!(scorer.family(), Family::Logistic);
    let back = Scorer::from_params(Entity::Opportunity, &through_text(&scorer.params())).expect("params round trip");
    let set = rows(20, 0);
    for i in 0..set.len() {
        assert_eq!(back.probability(set.row(i)), scorer.probability(set.row(i)));
    }
    assert!(Scorer::from_params(Entity::Lead, &scorer.params()).is_none(), "another entity's model");
    let mut changed = scorer.params();
    changed["features"][0] = serde_json::json!("renamed");
    assert!(Scorer::from_params(Entity::Opportunity, &changed).is_none(), "features changed since");
    // A corrupt model: a zero scale would divide by zero, a missing weight misread every row.
    for (path, value) in
        [("/model/standardizer/scale/0", serde_json::json!(0.0)), ("/model/weights", serde_json::json!([1.0]))]
    {
        let mut corrupt = scorer.params();
        if let Some(v) = corrupt.pointer_mut(path) {
            *v = value;
        }
        assert_ne!(corrupt, scorer.params(), "{path} is in the stored form");
        assert!(Scorer::from_params(Entity::Opportunity, &corrupt).is_none(), "{path}");
    }
    // Stored before there were two families: no family, no selection — logistic.
    let mut old = scorer.params();
    for key in ["family", "algorithm", "selection"] {
        old.as_object_mut().map(|o| o.remove(key));
    }
    let old = Scorer::from_params(Entity::Opportunity, &old).expect("old params");
    assert_eq!((old.family(), old.selection.is_none()), (Family::Logistic, true));
    assert_eq!(old.probability(set.row(0)), scorer.probability(set.row(0)));
}

#[test]
fn a_stored_boosted_scorer_scores_and_explains_the_same() {
    let scorer = Scorer::train(&sample(3000, 3000, 5, Outcome::Xor)).expect("scorer");
    assert_eq!(scorer.family(), Family::Boosted, "{:?}", scorer.selection);
    let params = through_text(&scorer.params());
    assert_eq!((params["family"].as_str(), params["kind"].as_str()), (Some("boosted"), Some("trained")));
    let back = Scorer::from_params(Entity::Opportunity, &params).expect("params round trip");
    assert!(back.model == scorer.model && back.platt == scorer.platt, "the model read back differs");
    assert_eq!(back.selection.as_ref().map(|s| s.rounds), scorer.selection.as_ref().map(|s| s.rounds));
    let set = sample(200, 0, 7, Outcome::Xor);
    for i in 0..set.len() {
        assert_eq!(back.probability(set.row(i)), scorer.probability(set.row(i)));
        assert_eq!(back.score(set.row(i), 3), scorer.score(set.row(i), 3));
    }
    let mut damaged = params.clone();
    damaged["model"]["trees"][0]["feature"][0] = serde_json::json!(999);
    assert!(Scorer::from_params(Entity::Opportunity, &damaged).is_none(), "a split on no feature");
    let mut unknown = params;
    unknown["family"] = serde_json::json!("forest");
    assert!(Scorer::from_params(Entity::Opportunity, &unknown).is_none(), "an unknown family");
}

/// Checks the factors of `scorer` on `set`: they add up to the log-odds and come strongest first.
fn assert_explanations_add_up(scorer: &Scorer, set: &FeatureSet) {
    for i in 0..set.len() {
        let row = set.row(i);
        let score = scorer.score(row, 3);
        let (base, all) = scorer.model.explain(row);
        // The log-odds is the base (the average record's) plus every contribution.
        let logit = scorer.model.logit(row);
        assert!((base + all.iter().sum::<f64>() - logit).abs() < 1e-9, "{:?}", scorer.family());
        assert_eq!(score.probability, scorer.platt.apply(logit));
        assert_eq!(scorer.score(row, 0).probability, score.probability);
        assert!(score.positive.len() <= 3 && score.negative.len() <= 3);
        assert!(score.positive.windows(2).all(|w| w[0].contribution >= w[1].contribution));
        assert!(score.negative.windows(2).all(|w| w[0].contribution <= w[1].contribution));
        assert!(score.positive.iter().all(|f| f.contribution > 0.0));
        assert!(score.negative.iter().all(|f| f.contribution < 0.0));
        // The strongest factor each way is the extreme contribution.
        let max = all.iter().copied().fold(f64::MIN, f64::max);
        if max > 0.0 {
            assert_eq!(score.positive[0].contribution, max);
        }
    }
}

#[test]
fn explanations_add_up_and_are_ordered() {
    let scorer = Scorer::train(&rows(3000, 3000)).expect("scorer");
    assert_explanations_add_up(&scorer, &rows(50, 0));
    let boosted = Scorer::train(&sample(3000, 3000, 5, Outcome::Xor)).expect("scorer");
    assert_eq!(boosted.family(), Family::Boosted);
    let set = sample(100, 0, 8, Outcome::Xor);
    assert_explanations_add_up(&boosted, &set);
    // The interaction's two features carry the explanation.
    let (t30, since) = (column(&set, "touches_30d"), column(&set, "days_since_touch"));
    let mut weight = vec![0.0; set.names.len()];
    for i in 0..set.len() {
        for (w, c) in weight.iter_mut().zip(boosted.model.explain(set.row(i)).1) {
            *w += c.abs();
        }
    }
    let other = (0..weight.len()).filter(|&j| j != t30 && j != since).map(|j| weight[j]).fold(0.0, f64::max);
    assert!(weight[t30].min(weight[since]) > 3.0 * other, "{weight:?}");
}

#[test]
fn a_blend_explains_exactly_and_reads_back_the_same() {
    let train = sample(3000, 3000, 5, Outcome::Xor);
    let boosted = Scorer::train(&train).expect("scorer");
    let Model::Boosted(trees) = &boosted.model else { panic!("{:?}", boosted.selection) };
    let Model::Logistic(linear) = logistic_only(&boosted, &train).model else { unreachable!("logistic_only") };
    let blend = Blend {
        logistic: linear,
        boosted: trees.clone(),
        logistic_platt: Platt { a: 0.8, b: -0.1 },
        boosted_platt: Platt { a: 1.1, b: 0.05 },
    };
    let scorer = Scorer { model: Model::Blend(blend.clone()), platt: Platt { a: 0.9, b: 0.02 }, ..boosted.clone() };
    let set = sample(100, 0, 8, Outcome::Xor);
    assert_explanations_add_up(&scorer, &set);
    // The mean of the two calibrated log-odds.
    let row = set.row(3);
    let by_hand = 0.5 * (0.8 * blend.logistic.logit(row) - 0.1) + 0.5 * (1.1 * blend.boosted.logit(row) + 0.05);
    assert!((scorer.model.logit(row) - by_hand).abs() < 1e-12);
    let params = through_text(&scorer.params());
    assert_eq!(params["family"].as_str(), Some("blend"));
    let back = Scorer::from_params(Entity::Opportunity, &params).expect("params round trip");
    assert!(back.model == scorer.model && back.platt == scorer.platt, "the model read back differs");
    for i in 0..set.len() {
        assert_eq!(back.score(set.row(i), 3), scorer.score(set.row(i), 3));
    }
    let mut damaged = params.clone();
    damaged["model"]["logistic"]["weights"] = serde_json::json!([1.0]);
    assert!(Scorer::from_params(Entity::Opportunity, &damaged).is_none(), "weights for another feature set");
    let mut damaged = params;
    damaged["model"]["boosted_platt"] = serde_json::json!({"a": "x", "b": 0.0});
    assert!(Scorer::from_params(Entity::Opportunity, &damaged).is_none(), "a calibration that is no number");
}

/// Training throughput of the whole recipe (three families, selection, refit) on 60k rows of 23
/// features. Run it optimised: `cargo test -p orbas-models --release --lib
/// scoring::tests::training_throughput -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run in release"]
fn training_throughput() {
    for outcome in [Outcome::Linear, Outcome::Xor] {
        let train = sample(60_000, 60_000, 31, outcome);
        let scorer = Scorer::train(&train).expect("scorer");
        let s = scorer.selection.as_ref().expect("a selection");
        eprintln!(
            "{outcome:?}: 60000 rows × {} features trained in {:.2} s ({:.0} rows/s): {} ({} rounds; calibrated \
             log-loss {:.4} logistic, {:.4} boosted, {:.4} blend)",
            train.names.len(),
            scorer.fit_time.as_secs_f64(),
            60_000.0 / scorer.fit_time.as_secs_f64(),
            scorer.family().as_str(),
            s.rounds,
            s.logistic.log_loss,
            s.boosted.map_or(f64::NAN, |b| b.log_loss),
            s.blend.map_or(f64::NAN, |b| b.log_loss),
        );
    }
}
