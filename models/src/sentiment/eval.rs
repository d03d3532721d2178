//! How well a three-way sentiment classifier did: accuracy, per-class precision / recall / F1, macro
//! F1 (the unweighted mean over classes, so a rare class counts as much as a common one) and the
//! confusion matrix.

use std::fmt;

use orbas_oltp::model::SentimentLabel;
use serde::Serialize;

/// Position of a label in the classifier's outputs and in the matrix (negative, neutral, positive).
pub fn index(label: SentimentLabel) -> usize {
    match label {
        SentimentLabel::Negative => 0,
        SentimentLabel::Neutral => 1,
        SentimentLabel::Positive => 2,
    }
}

/// The label at an output position.
pub fn label_at(i: usize) -> SentimentLabel {
    SentimentLabel::ALL[i.min(2)]
}

/// One class's scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

/// The evaluation of predictions against true labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub rows: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Negative, neutral, positive.
    pub per_class: [ClassScores; 3],
    /// `confusion[truth][predicted]`, in label order.
    pub confusion: [[usize; 3]; 3],
}

/// Scores `predicted` against `truth` (same length; extra items of the longer one are ignored).
pub fn evaluate(truth: &[SentimentLabel], predicted: &[SentimentLabel]) -> Evaluation {
    let mut confusion = [[0usize; 3]; 3];
    for (t, p) in truth.iter().zip(predicted) {
        confusion[index(*t)][index(*p)] += 1;
    }
    let rows: usize = confusion.iter().flatten().sum();
    let correct: usize = (0..3).map(|i| confusion[i][i]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class = std::array::from_fn(|c| {
        let tp = confusion[c][c];
        let predicted_c: usize = (0..3).map(|t| confusion[t][c]).sum();
        let support: usize = confusion[c].iter().sum();
        let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, support));
        let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
        ClassScores { precision, recall, f1, support }
    });
    let macro_f1 = per_class.iter().map(|c: &ClassScores| c.f1).sum::<f64>() / 3.0;
    Evaluation { rows, accuracy: ratio(correct, rows), macro_f1, per_class, confusion }
}

impl fmt::Display for Evaluation {
    /// A compact report: accuracy, macro-F1, per-class F1 and the confusion matrix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} rows: accuracy {:.3}, macro-F1 {:.3}", self.rows, self.accuracy, self.macro_f1)?;
        writeln!(
            f,
            "  {:<9} {:>9} {:>7} {:>6} {:>7}   confusion (→ neg neu pos)",
            "class", "precision", "recall", "F1", "n"
        )?;
        for (i, c) in self.per_class.iter().enumerate() {
            let row = self.confusion[i];
            writeln!(
                f,
                "  {:<9} {:>9.3} {:>7.3} {:>6.3} {:>7}   {:>5} {:>3} {:>3}",
                label_at(i).as_str(),
                c.precision,
                c.recall,
                c.f1,
                c.support,
                row[0],
                row[1],
                row[2]
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SentimentLabel::*;

    #[test]
    fn metrics_of_a_known_confusion() {
        let truth = [Negative, Negative, Negative, Neutral, Neutral, Positive, Positive, Positive];
        let pred = [Negative, Negative, Neutral, Neutral, Positive, Positive, Positive, Negative];
        let e = evaluate(&truth, &pred);
        assert_eq!(e.rows, 8);
        assert_eq!(e.confusion, [[2, 1, 0], [0, 1, 1], [1, 0, 2]]);
        assert!((e.accuracy - 5.0 / 8.0).abs() < 1e-12);
        // negative: P 2/3, R 2/3; neutral: P 1/2, R 1/2; positive: P 2/3, R 2/3.
        let want = [2.0 / 3.0, 0.5, 2.0 / 3.0];
        for (c, w) in e.per_class.iter().zip(want) {
            assert!((c.f1 - w).abs() < 1e-12, "{c:?}");
        }
        assert!((e.macro_f1 - (2.0 / 3.0 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert_eq!(e.per_class[0].support, 3);
        assert!(e.to_string().contains("macro-F1 0.611"), "{e}");
    }

    #[test]
    fn perfect_and_empty() {
        let e = evaluate(&[Positive, Neutral], &[Positive, Neutral]);
        assert_eq!((e.accuracy, e.per_class[0].f1), (1.0, 0.0), "a class without rows scores 0");
        assert_eq!(evaluate(&[], &[]).accuracy, 0.0);
        for l in SentimentLabel::ALL {
            assert_eq!(label_at(index(*l)), *l);
        }
    }
}
