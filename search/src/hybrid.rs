//! Hybrid ranking: reciprocal rank fusion of the keyword and the vector result lists, and the query
//! modes. RRF needs no score calibration between BM25 and cosine similarity: each list contributes
//! `1 / (k + rank)` per document (rank from 1), with Cormack et al.'s `k = 60`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The RRF constant.
pub const RRF_K: f32 = 60.0;

/// How a query is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// BM25 with field boosts, typo tolerance and prefix matching.
    Keyword,
    /// Nearest neighbours of the query's sentence embedding.
    Semantic,
    /// Both, fused by reciprocal rank.
    #[default]
    Hybrid,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "keyword" => Some(Mode::Keyword),
            "semantic" => Some(Mode::Semantic),
            "hybrid" => Some(Mode::Hybrid),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Keyword => "keyword",
            Mode::Semantic => "semantic",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// Fuses ranked id lists (best first) into one, best first, with each id's fused score. Ties keep
/// the order of first appearance (the first list wins), so the result is deterministic.
pub fn rrf<S: AsRef<str>>(lists: &[&[S]]) -> Vec<(String, f32)> {
    let mut score: HashMap<&str, (f32, usize)> = HashMap::new();
    let mut seen = 0usize;
    for list in lists {
        for (rank, id) in list.iter().enumerate() {
            let e = score.entry(id.as_ref()).or_insert_with(|| {
                seen += 1;
                (0.0, seen)
            });
            e.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(&str, (f32, usize))> = score.into_iter().collect();
    out.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.1.1.cmp(&b.1.1)));
    out.into_iter().map(|(id, (s, _))| (id.to_owned(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_in_both_lists_rise() {
        let keyword = ["a", "b", "c"];
        let vector = ["c", "d", "a"];
        let fused = rrf(&[&keyword, &vector]);
        let ids: Vec<&str> = fused.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(ids, ["a", "c", "b", "d"]);
        let a = 1.0 / 61.0 + 1.0 / 63.0;
        assert!((fused[0].1 - a).abs() < 1e-6);
    }

    #[test]
    fn ties_keep_first_appearance_and_empty_lists_are_fine() {
        let fused = rrf(&[&["x"], &["y"]]);
        assert_eq!(fused.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(), ["x", "y"]);
        let empty: [&str; 0] = [];
        assert!(rrf(&[&empty, &empty]).is_empty());
        assert_eq!(rrf(&[&["x", "x"]]).len(), 1);
    }

    #[test]
    fn modes_parse() {
        for m in [Mode::Keyword, Mode::Semantic, Mode::Hybrid] {
            assert_eq!(Mode::parse(m.as_str()), Some(m));
        }
        assert_eq!(Mode::parse("fuzzy"), None);
    }
}
