//! Sentiment of customer text — tickets, customers' ticket messages, logged interactions — as
//! negative / neutral / positive, for features (ticket tone per account), next-best-actions (a
//! churn-risk account with a negative open ticket) and dashboards.
//!
//! The method: each text is embedded by the local sentence encoder ([`crate::embed`]) and classified
//! by an L2-regularised softmax regression ([`Softmax`]) on the embedding plus the [`lexicon`]
//! baseline's cue counts. It is trained on the hand-labelled set committed under
//! `models/data/sentiment/` (`train.tsv`); the penalty and whether the lexicon cues help are chosen by
//! 5-fold cross-validation on that set alone. It is evaluated on the separate hand-labelled
//! `holdout.tsv` and on the seed generator's planted labels (texts written by the generator's own
//! templates, [`orbas_oltp::seed::labelled_ticket_texts`]), which it never trains on — side by side
//! with the lexicon baseline. Labelling convention (`data/sentiment/README.md`): the label is the
//! writer's tone, not whether the text reports a problem — a friendly report of a bug is positive,
//! a factual one neutral, a frustrated one negative.
//!
//! Training is deterministic (fixed folds, zero-initialised full-batch optimisation), so the same
//! training file gives the same model; its fingerprint decides whether a tenant's registered version
//! ([`score`]) is still current.

pub mod eval;
pub mod lexicon;
mod score;
pub mod softmax;

use orbas_oltp::model::SentimentLabel;
use serde_json::json;
use sha2::{Digest, Sha256};
use tracing::info;

pub use eval::{Evaluation, evaluate};
pub use score::{MODEL_KEY, ScoreReport, SentimentModel, label_counts, score_subjects, score_tickets};
pub use softmax::Softmax;

use crate::embed::Embedder;
use crate::error::{Error, Result};

/// The committed hand-labelled training set (`label<TAB>text`).
pub const TRAIN_TSV: &str = include_str!("../data/sentiment/train.tsv");
/// The committed hand-labelled holdout set, never used for training or model selection.
pub const HOLDOUT_TSV: &str = include_str!("../data/sentiment/holdout.tsv");
/// Bump when the recipe (features, grid, optimiser) changes: part of the model's fingerprint.
const RECIPE: &str = "minilm-mean-l2+lexicon/softmax-l2-cv5/v1";
/// Penalties tried by cross-validation.
const L2_GRID: [f64; 4] = [0.003, 0.01, 0.03, 0.1];
const FOLDS: usize = 5;

/// A labelled example.
pub type Example = (SentimentLabel, String);

/// Parses a `label<TAB>text` file; blank lines and lines starting with `#` are skipped.
pub fn parse_tsv(name: &str, text: &str) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, body)) = line.split_once('\t') else {
            return Err(Error::Invalid(format!("{name}:{}: expected label<TAB>text", n + 1)));
        };
        let label =
            label.trim().parse::<SentimentLabel>().map_err(|e| Error::Invalid(format!("{name}:{}: {e}", n + 1)))?;
        out.push((label, body.trim().to_owned()));
    }
    Ok(out)
}

/// The lexicon cues a text adds to its embedding: the baseline's signed total (squashed) and
/// whether it leans either way.
fn lexicon_features(text: &str) -> [f64; 3] {
    let s = lexicon::score(text);
    [(s / 3.0).tanh(), f64::from(u8::from(s >= 1.0)), f64::from(u8::from(s <= -1.0))]
}

/// The classifier's input for one text.
fn features(embedding: &[f32], text: &str, with_lexicon: bool) -> Vec<f64> {
    let mut x: Vec<f64> = embedding.iter().map(|v| f64::from(*v)).collect();
    if with_lexicon {
        x.extend(lexicon_features(text));
    }
    x
}

fn matrix(embeddings: &[Vec<f32>], texts: &[&str], with_lexicon: bool) -> (Vec<f64>, usize) {
    let rows: Vec<Vec<f64>> = embeddings.iter().zip(texts).map(|(e, t)| features(e, t, with_lexicon)).collect();
    let p = rows.first().map_or(0, Vec::len);
    (rows.concat(), p)
}

/// A prediction: the label, its class probabilities and the signed tone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    pub label: SentimentLabel,
    /// P(negative), P(neutral), P(positive).
    pub probabilities: [f64; 3],
    /// P(positive) − P(negative), in [-1, 1].
    pub score: f64,
}

/// The trained classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct Classifier {
    pub softmax: Softmax,
    pub with_lexicon: bool,
    /// Mean macro-F1 of the chosen settings over the cross-validation folds of the training set.
    pub cv_macro_f1: f64,
    pub training_rows: usize,
    /// SHA-256 of the training file and the recipe: equal fingerprints, equal models.
    pub fingerprint: String,
}

/// Mean macro-F1 over `FOLDS` folds (example `i` is in fold `i % FOLDS`).
fn cross_validate(embeddings: &[Vec<f32>], texts: &[&str], y: &[usize], with_lexicon: bool, l2: f64) -> Result<f64> {
    let mut total = 0.0;
    for fold in 0..FOLDS {
        let (mut train, mut test) = (Vec::new(), Vec::new());
        (0..y.len()).for_each(|i| if i % FOLDS == fold { test.push(i) } else { train.push(i) });
        let pick = |ix: &[usize]| -> (Vec<Vec<f32>>, Vec<&str>) {
            (ix.iter().map(|&i| embeddings[i].clone()).collect(), ix.iter().map(|&i| texts[i]).collect())
        };
        let (e, t) = pick(&train);
        let (x, p) = matrix(&e, &t, with_lexicon);
        let labels: Vec<usize> = train.iter().map(|&i| y[i]).collect();
        let model = Softmax::fit(&x, p, &labels, 3, l2)?;
        let (e, t) = pick(&test);
        let truth: Vec<SentimentLabel> = test.iter().map(|&i| eval::label_at(y[i])).collect();
        let predicted: Vec<SentimentLabel> =
            e.iter().zip(&t).map(|(e, t)| eval::label_at(model.predict(&features(e, t, with_lexicon)))).collect();
        total += evaluate(&truth, &predicted).macro_f1;
    }
    Ok(total / FOLDS as f64)
}

impl Classifier {
    /// Trains on `examples` given their embeddings (same order): cross-validation picks the penalty
    /// and whether to add the lexicon cues, then the chosen settings are fitted on every example.
    pub fn train(embeddings: &[Vec<f32>], examples: &[Example], training_file: &str) -> Result<Classifier> {
        if examples.len() < 3 * FOLDS || embeddings.len() != examples.len() {
            return Err(Error::Invalid(format!(
                "sentiment training needs at least {} examples with one embedding each",
                3 * FOLDS
            )));
        }
        let texts: Vec<&str> = examples.iter().map(|(_, t)| t.as_str()).collect();
        let y: Vec<usize> = examples.iter().map(|(l, _)| eval::index(*l)).collect();
        let mut best = (f64::NEG_INFINITY, false, L2_GRID[0]);
        for with_lexicon in [false, true] {
            for l2 in L2_GRID {
                let f1 = cross_validate(embeddings, &texts, &y, with_lexicon, l2)?;
                info!(with_lexicon, l2, cv_macro_f1 = f1, "sentiment cross-validation");
                if f1 > best.0 + 1e-9 {
                    best = (f1, with_lexicon, l2);
                }
            }
        }
        let (cv_macro_f1, with_lexicon, l2) = best;
        let (x, p) = matrix(embeddings, &texts, with_lexicon);
        let softmax = Softmax::fit(&x, p, &y, 3, l2)?;
        let fingerprint = hex::encode(Sha256::new().chain_update(RECIPE).chain_update(training_file).finalize());
        Ok(Classifier { softmax, with_lexicon, cv_macro_f1, training_rows: examples.len(), fingerprint })
    }

    /// Embeds the committed training set with `embedder` and trains on it.
    pub fn train_committed(embedder: &Embedder) -> Result<Classifier> {
        let examples = parse_tsv("train.tsv", TRAIN_TSV)?;
        let texts: Vec<&str> = examples.iter().map(|(_, t)| t.as_str()).collect();
        let embeddings = embedder.embed(&texts)?;
        Classifier::train(&embeddings, &examples, TRAIN_TSV)
    }

    /// Classifies one text from its embedding.
    pub fn classify(&self, embedding: &[f32], text: &str) -> Prediction {
        let probs = self.softmax.probabilities(&features(embedding, text, self.with_lexicon));
        let probabilities = [probs[0], probs[1], probs[2]];
        let label = eval::label_at(softmax::argmax(&probs));
        let score = (probabilities[2] - probabilities[0]).clamp(-1.0, 1.0);
        Prediction { label, probabilities, score }
    }

    /// What the model registry stores: the recipe, the settings chosen, the fitted weights.
    pub fn params(&self) -> serde_json::Value {
        json!({
            "recipe": RECIPE,
            "embedder": crate::embed::MODEL_NAME,
            "fingerprint": self.fingerprint,
            "with_lexicon": self.with_lexicon,
            "l2": self.softmax.l2,
            "softmax": self.softmax,
            "training_set": {"file": "models/data/sentiment/train.tsv", "rows": self.training_rows},
        })
    }
}

/// Our classifier and the lexicon on one labelled set.
#[derive(Debug, Clone)]
pub struct SideBySide {
    pub name: &'static str,
    pub ours: Evaluation,
    pub lexicon: Evaluation,
}

/// Evaluates `classifier` and the lexicon on `examples` (embedded here).
pub fn compare(
    name: &'static str,
    embedder: &Embedder,
    classifier: &Classifier,
    examples: &[Example],
) -> Result<SideBySide> {
    let texts: Vec<&str> = examples.iter().map(|(_, t)| t.as_str()).collect();
    let embeddings = embedder.embed(&texts)?;
    let truth: Vec<SentimentLabel> = examples.iter().map(|(l, _)| *l).collect();
    let ours: Vec<SentimentLabel> =
        embeddings.iter().zip(&texts).map(|(e, t)| classifier.classify(e, t).label).collect();
    let baseline: Vec<SentimentLabel> = texts.iter().map(|t| lexicon::classify(t)).collect();
    Ok(SideBySide { name, ours: evaluate(&truth, &ours), lexicon: evaluate(&truth, &baseline) })
}

/// The standard evaluation: the hand-labelled holdout, generator ticket texts and generator
/// interaction notes (`generator_rows` of each, seed 7).
pub fn evaluate_standard(
    embedder: &Embedder,
    classifier: &Classifier,
    generator_rows: usize,
) -> Result<Vec<SideBySide>> {
    let holdout = parse_tsv("holdout.tsv", HOLDOUT_TSV)?;
    Ok(vec![
        compare("hand-labelled holdout", embedder, classifier, &holdout)?,
        compare(
            "generator tickets",
            embedder,
            classifier,
            &orbas_oltp::seed::labelled_ticket_texts(7, generator_rows),
        )?,
        compare(
            "generator interactions",
            embedder,
            classifier,
            &orbas_oltp::seed::labelled_interaction_texts(7, generator_rows),
        )?,
    ])
}

impl SentimentModel {
    /// Trains the classifier on the committed set and evaluates it ([`evaluate_standard`] with
    /// `generator_rows` generator texts of each kind); the evaluation is stored with the version a
    /// tenant registers. CPU-bound: call it off the async executor.
    pub fn train(
        embedder: std::sync::Arc<Embedder>,
        generator_rows: usize,
    ) -> Result<(SentimentModel, Vec<SideBySide>)> {
        let classifier = Classifier::train_committed(&embedder)?;
        let results = evaluate_standard(&embedder, &classifier, generator_rows)?;
        let metrics = metrics_json(&classifier, &results);
        Ok((SentimentModel { embedder, classifier, metrics }, results))
    }
}

/// Metrics stored with a registered version.
pub fn metrics_json(classifier: &Classifier, results: &[SideBySide]) -> serde_json::Value {
    let sets: serde_json::Map<String, serde_json::Value> =
        results.iter().map(|r| (r.name.replace(' ', "_"), json!({"ours": r.ours, "lexicon": r.lexicon}))).collect();
    json!({"cv_macro_f1": classifier.cv_macro_f1, "evaluations": sets})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_sets_parse_and_are_balanced() {
        for (name, text, min) in [("train.tsv", TRAIN_TSV, 240), ("holdout.tsv", HOLDOUT_TSV, 120)] {
            let set = parse_tsv(name, text).expect("parses");
            assert!(set.len() >= min, "{name}: {} examples", set.len());
            for label in SentimentLabel::ALL {
                let share = set.iter().filter(|(l, _)| l == label).count() as f64 / set.len() as f64;
                assert!((0.25..=0.42).contains(&share), "{name}: {label} is {share:.2} of the rows");
            }
            assert!(set.iter().all(|(_, t)| !t.is_empty()));
        }
        let train: std::collections::HashSet<String> =
            parse_tsv("train.tsv", TRAIN_TSV).expect("parses").into_iter().map(|(_, t)| t.to_lowercase()).collect();
        let holdout = parse_tsv("holdout.tsv", HOLDOUT_TSV).expect("parses");
        let overlap = holdout.iter().filter(|(_, t)| train.contains(&t.to_lowercase())).count();
        assert_eq!(overlap, 0, "no holdout text is in the training set");
    }

    fn five_grams(text: &str) -> std::collections::HashSet<Vec<String>> {
        let words: Vec<String> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        words.windows(5).map(<[String]>::to_vec).collect()
    }

    /// The hand-labelled sets were written independently of the generator's templates, so the
    /// evaluation on generator labels is out of sample.
    #[test]
    fn the_hand_labelled_sets_share_no_phrase_with_the_generator() {
        let generated: std::collections::HashSet<Vec<String>> = orbas_oltp::seed::labelled_ticket_texts(1, 600)
            .into_iter()
            .chain(orbas_oltp::seed::labelled_interaction_texts(1, 200))
            .flat_map(|(_, t)| five_grams(&t))
            .collect();
        for (name, text) in [("train.tsv", TRAIN_TSV), ("holdout.tsv", HOLDOUT_TSV)] {
            for (_, t) in parse_tsv(name, text).expect("parses") {
                let shared: Vec<_> = five_grams(&t).intersection(&generated).cloned().collect();
                assert!(shared.is_empty(), "{name}: {t:?} shares {shared:?} with the generator");
            }
        }
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let err = parse_tsv("x.tsv", "positive\tfine\n\nangry\tno").expect_err("bad label");
        assert!(err.to_string().starts_with("x.tsv:3:"), "{err}");
        assert!(parse_tsv("x.tsv", "# comment\nno tab here").is_err());
    }
}
