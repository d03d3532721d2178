//! Expanding a word into terms of one tenant's dictionary: the completions of the word being typed and
//! the corrections of a typo. Both read the term dictionaries directly and return plain terms, so the
//! query stays a union of term scorers (ranked with block-max WAND, each expansion scored by BM25 like
//! any word) and never needs a tenant filter. A typo's Levenshtein automaton runs only below the
//! tenant's prefix: the edits can never reach into the prefix, so another tenant's words are out of
//! reach by construction, not by a filter applied afterwards.

use std::collections::HashMap;
use std::sync::LazyLock;

use levenshtein_automata::{DFA, Distance, LevenshteinAutomatonBuilder, SINK_STATE};
use tantivy::schema::Field;
use tantivy::{Searcher, Term};
use tantivy_fst::Automaton;

use crate::error::{Error, Result};
use crate::schema::unscoped;

/// Completions of the last word taken per field (the most frequent in the tenant).
const MAX_COMPLETIONS: usize = 24;
/// Corrections of a typo taken per field (the most frequent in the tenant).
const MAX_CORRECTIONS: usize = 16;

/// Levenshtein automaton builders for distances 1 and 2, transpositions costing one edit (building
/// one is costly; building a word's automaton from it is cheap).
static BUILDERS: LazyLock<[LevenshteinAutomatonBuilder; 2]> =
    LazyLock::new(|| [LevenshteinAutomatonBuilder::new(1, true), LevenshteinAutomatonBuilder::new(2, true)]);

/// The tenant's words that start with the scoped token `scoped_tok` and go on, the most frequent
/// first. The word itself is left out: the exact clause scores it already.
pub(crate) fn completions(searcher: &Searcher, field: Field, scoped_tok: &str) -> Result<Vec<Term>> {
    let anything_after = Scoped { prefix: scoped_tok.as_bytes(), dfa: None };
    most_frequent(searcher, field, anything_after, scoped_tok, MAX_COMPLETIONS)
}

/// The tenant's words within `distance` edits of the scoped token `scoped_tok` (not the word itself),
/// the most frequent first.
pub(crate) fn corrections(searcher: &Searcher, field: Field, scoped_tok: &str, distance: u8) -> Result<Vec<Term>> {
    let Some(builder) = BUILDERS.get(usize::from(distance).wrapping_sub(1)) else { return Ok(Vec::new()) };
    let token = unscoped(scoped_tok);
    let tenant_prefix = &scoped_tok[..scoped_tok.len() - token.len()];
    let dfa = builder.build_dfa(token);
    let near = Scoped { prefix: tenant_prefix.as_bytes(), dfa: Some(&dfa) };
    most_frequent(searcher, field, near, scoped_tok, MAX_CORRECTIONS)
}

/// The `n` terms of `field` that `automaton` accepts, other than `except`, by document frequency
/// summed over the segments.
fn most_frequent(
    searcher: &Searcher,
    field: Field,
    automaton: Scoped<'_>,
    except: &str,
    n: usize,
) -> Result<Vec<Term>> {
    let mut freq: HashMap<Vec<u8>, u64> = HashMap::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(field).map_err(err)?;
        let mut stream = inverted.terms().search(automaton).into_stream().map_err(io_err)?;
        while stream.advance() {
            if stream.key() != except.as_bytes() {
                *freq.entry(stream.key().to_vec()).or_default() += u64::from(stream.value().doc_freq);
            }
        }
    }
    let mut ranked: Vec<(Vec<u8>, u64)> = freq.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ranked
        .into_iter()
        .take(n)
        .filter_map(|(key, _)| String::from_utf8(key).ok())
        .map(|word| Term::from_field_text(field, &word))
        .collect())
}

fn err(source: tantivy::TantivyError) -> Error {
    Error::Index { dir: Default::default(), what: "expanding a word", source }
}

fn io_err(e: std::io::Error) -> Error {
    err(tantivy::TantivyError::from(e))
}

/// Matches `prefix` exactly, then the word automaton `dfa` on the rest (`None`: anything).
#[derive(Clone, Copy)]
struct Scoped<'a> {
    prefix: &'a [u8],
    dfa: Option<&'a DFA>,
}

/// Bytes of the prefix matched so far (`None`: the key left the prefix), then the DFA's state.
#[derive(Clone, Copy)]
struct State {
    matched: Option<usize>,
    dfa: u32,
}

impl Automaton for Scoped<'_> {
    type State = State;

    fn start(&self) -> State {
        State { matched: Some(0), dfa: self.dfa.map_or(SINK_STATE, DFA::initial_state) }
    }

    fn is_match(&self, s: &State) -> bool {
        s.matched == Some(self.prefix.len())
            && self.dfa.is_none_or(|dfa| matches!(dfa.distance(s.dfa), Distance::Exact(_)))
    }

    fn can_match(&self, s: &State) -> bool {
        match s.matched {
            None => false,
            Some(n) if n < self.prefix.len() => true,
            Some(_) => self.dfa.is_none() || s.dfa != SINK_STATE,
        }
    }

    fn accept(&self, s: &State, byte: u8) -> State {
        match (s.matched, self.dfa) {
            (Some(n), _) if n < self.prefix.len() => {
                State { matched: (self.prefix[n] == byte).then_some(n + 1), dfa: s.dfa }
            }
            (Some(_), Some(dfa)) => State { matched: s.matched, dfa: dfa.transition(s.dfa, byte) },
            _ => *s,
        }
    }
}

#[cfg(test)]
mod tests {
    use tantivy_fst::{IntoStreamer as _, Map, Streamer as _};

    use super::*;
    use crate::schema::scoped;

    /// The keys of `words` the automaton for `token` (≤ `distance` edits; `None`: its completions)
    /// accepts in `tenant`.
    fn matches(words: &[&str], tenant: &str, token: &str, distance: Option<u8>) -> Vec<String> {
        let mut keys: Vec<&str> = words.to_vec();
        keys.sort_unstable();
        keys.dedup();
        let map = Map::from_iter(keys.iter().map(|k| (k.as_bytes(), 0u64))).expect("sorted keys");
        let dfa = distance.map(|d| BUILDERS[usize::from(d) - 1].build_dfa(token));
        let prefix = match distance {
            Some(_) => scoped(tenant, ""),
            None => scoped(tenant, token),
        };
        let mut stream = map.search(Scoped { prefix: prefix.as_bytes(), dfa: dfa.as_ref() }).into_stream();
        let mut out = Vec::new();
        while let Some((k, _)) = stream.next() {
            out.push(String::from_utf8_lossy(k).into_owned());
        }
        out
    }

    #[test]
    fn typos_reach_only_the_tenants_own_words() {
        let (t1, t2, t3, t1x) = ("t1", "t2", "t3", "t1x");
        let w = |t: &str, word: &str| scoped(t, word);
        let words = [
            w(t1, "quantum"),
            w(t1, "quantom"),
            w(t1, "phantom"),
            w(t2, "quantum"),
            w(t3, "quantum"),
            w(t1x, "quantum"),
            w(t1, "qu"),
        ];
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(matches(&words, t1, "quantom", Some(1)), [w(t1, "quantom"), w(t1, "quantum")]);
        assert_eq!(matches(&words, t2, "quantom", Some(1)), [w(t2, "quantum")]);
        // An edit in the prefix is not an edit of the word: t1x's words stay out of t1's reach.
        assert_eq!(matches(&words, t1, "quantum", Some(2)), [w(t1, "quantom"), w(t1, "quantum")]);
        assert!(matches(&words, "t4", "quantum", Some(2)).is_empty());
        // Completions: the tenant's words with the prefix, the word itself included (callers drop it).
        assert_eq!(matches(&words, t1, "qu", None), [w(t1, "qu"), w(t1, "quantom"), w(t1, "quantum")]);
        assert_eq!(matches(&words, t1x, "qu", None), [w(t1x, "quantum")]);
    }
}
