//! Answering a query: the keyword path (BM25 over title/names/body with field boosts, fuzzy terms for
//! typos, prefix matching of the last term), the semantic path (the HNSW graph) and their fusion.
//! Tenant and visibility are applied before ranking, never after: the keyword path reads only the
//! tenant's own terms (see [`crate::schema::scoped`]) and adds the visibility as a Must clause when the
//! caller sees less than the whole tenant; the ANN search takes the same predicate as its filter. Facet counts cover every visible match; snippets highlight the query's terms.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tantivy::collector::{FacetCollector, TopDocs};
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, DocSet as _, Searcher, TERMINATED, TantivyDocument, Term};
use tracing::instrument;

use crate::document::{DocType, SearchDoc};
use crate::error::{Error, Result};
use crate::hybrid::{Mode, rrf};
use crate::index::SearchIndex;
use crate::schema::{BODY_BOOST, FACETS, Fields, NAMES_BOOST, TITLE_BOOST, analyzer, scoped, tokens, unscoped};
use crate::visibility::{Reach, Visibility};

/// The most results one query returns.
pub const MAX_LIMIT: usize = 100;
/// Candidates each path contributes to a hybrid fusion.
const FUSION_DEPTH: usize = 50;
/// Length of a snippet, in characters.
const SNIPPET_CHARS: usize = 180;
/// Fuzzy and prefix matches score below an exact hit in the same field.
const FUZZY_WEIGHT: f32 = 0.4;
const PREFIX_WEIGHT: f32 = 0.6;

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub text: String,
    pub mode: Mode,
    pub limit: usize,
    /// Only these types (empty: all the caller may see).
    pub types: Vec<DocType>,
    /// Count facets over every visible match. That visits every match instead of the best few, so
    /// callers that show no facets (the assistant, search-as-you-type) leave it off.
    pub facets: bool,
}

/// One result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hit {
    pub id: String,
    #[serde(rename = "type")]
    pub doc_type: DocType,
    pub title: String,
    /// An excerpt with the query's terms in `<b>…</b>` (HTML-escaped otherwise).
    pub snippet: String,
    /// BM25 (keyword), cosine similarity (semantic) or the fused RRF score (hybrid).
    pub score: f32,
    pub owner_id: Option<String>,
    pub stage: Option<String>,
    pub status: Option<String>,
    /// The record this one belongs to (a ticket message's ticket).
    pub parent_id: Option<String>,
    pub updated_at: Option<String>,
    /// The record's text (title, names, body; at most [`PASSAGE_CHARS`]) for the assistant's prompt;
    /// not part of the API's JSON.
    #[serde(skip)]
    pub(crate) passage: String,
}

/// Longest passage the assistant gets per hit, in characters.
pub(crate) const PASSAGE_CHARS: usize = 1_500;

/// Results with facet counts (`facet → value → count`, over every visible keyword match; empty when
/// the request asked for none).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    pub mode: Mode,
    pub hits: Vec<Hit>,
    pub facets: BTreeMap<String, BTreeMap<String, u64>>,
}

impl SearchIndex {
    /// Answers `req` for `vis` (blocking: the query embedding is model inference).
    #[instrument(skip_all, fields(tenant_id = %vis.tenant_id, mode = req.mode.as_str(), limit = req.limit))]
    pub fn search(&self, req: &SearchRequest, vis: &Visibility) -> Result<SearchResults> {
        if req.text.trim().is_empty() {
            return Err(Error::Invalid("q: the query is empty".into()));
        }
        if req.limit == 0 || req.limit > MAX_LIMIT {
            return Err(Error::Invalid(format!("limit: must be between 1 and {MAX_LIMIT}")));
        }
        if req.mode != Mode::Keyword && self.embedder.is_none() {
            return Err(Error::SemanticUnavailable);
        }
        self.refresh()?;
        let vis = vis.clone().restrict_to(&req.types);
        let searcher = self.reader.searcher();
        let mut results = SearchResults { mode: req.mode, hits: Vec::new(), facets: BTreeMap::new() };
        if vis.rules.is_empty() {
            return Ok(results);
        }
        let filter = visibility_query(&self.fields, &vis);
        let whole_tenant = vis.whole_tenant();
        let text = keyword_query(
            &self.fields,
            &searcher,
            &vis.tenant_id,
            (!whole_tenant).then_some(filter.as_ref()),
            &req.text,
        )?;
        let depth = if req.mode == Mode::Keyword { req.limit } else { FUSION_DEPTH.max(req.limit) };
        let keyword = match &text {
            Some(t) => {
                // The tenant's own terms need no tenant filter: without one the query stays a union of
                // term scorers, which tantivy prunes with block-max WAND.
                let q: Box<dyn Query> = if whole_tenant {
                    t.box_clone()
                } else {
                    Box::new(BooleanQuery::new(vec![(Occur::Must, t.box_clone()), (Occur::Must, filter.box_clone())]))
                };
                let top_docs = TopDocs::with_limit(depth).order_by_score();
                if !req.facets {
                    searcher.search(q.as_ref(), &top_docs).map_err(self.err("searching"))?
                } else {
                    let mut facets = FacetCollector::for_field("facets");
                    for f in FACETS {
                        facets.add_facet(&format!("/{f}"));
                    }
                    let (top, counts) =
                        searcher.search(q.as_ref(), &(top_docs, facets)).map_err(self.err("searching"))?;
                    for f in FACETS {
                        let values = counts
                            .get(&format!("/{f}"))
                            .filter_map(|(facet, n)| facet.to_path().last().map(|v| ((*v).to_owned(), n)))
                            .collect();
                        results.facets.insert(f.to_owned(), values);
                    }
                    top
                }
            }
            None => Vec::new(),
        };
        let keyword_hits = self.load(&searcher, &keyword)?;
        let ranked: Vec<(SearchDoc, f32)> = match req.mode {
            Mode::Keyword => keyword_hits,
            Mode::Semantic => self.semantic(&searcher, &req.text, depth, &vis, &filter)?,
            Mode::Hybrid => {
                let semantic = self.semantic(&searcher, &req.text, depth, &vis, &filter)?;
                fuse(keyword_hits, semantic)
            }
        };
        let snippets = text.as_deref().map(|q| Snippets::new(&searcher, q, &self.fields)).transpose()?;
        results.hits = ranked
            .into_iter()
            .take(req.limit)
            .map(|(d, score)| {
                let snippet = snippets.as_ref().map(|s| s.of(&d)).unwrap_or_else(|| plain_snippet(&d));
                let passage = d.embedding_text().chars().take(PASSAGE_CHARS).collect();
                Hit {
                    passage,
                    id: d.id,
                    doc_type: d.doc_type,
                    title: d.title,
                    snippet,
                    score,
                    owner_id: d.owner_id,
                    stage: d.stage,
                    status: d.status,
                    parent_id: d.parent_id,
                    updated_at: d.updated_at,
                }
            })
            .collect();
        Ok(results)
    }

    fn load(&self, searcher: &Searcher, top: &[(f32, DocAddress)]) -> Result<Vec<(SearchDoc, f32)>> {
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let t: TantivyDocument = searcher.doc(*addr).map_err(self.err("reading a document"))?;
            if let Some(d) = self.fields.doc_of(&t) {
                out.push((d, *score));
            }
        }
        Ok(out)
    }

    /// The nearest visible documents to the query's embedding, read back through the index (with the
    /// visibility filter again, so the graph can never surface a document the index would not).
    fn semantic(
        &self,
        searcher: &Searcher,
        text: &str,
        k: usize,
        vis: &Visibility,
        filter: &dyn Query,
    ) -> Result<Vec<(SearchDoc, f32)>> {
        let Some(embedder) = &self.embedder else { return Err(Error::SemanticUnavailable) };
        let query = embedder.embed(&[text]).map_err(Error::Embed)?.into_iter().next().unwrap_or_default();
        let hits = match self.vectors.read() {
            Ok(v) => v.0.search(&query, k, vis),
            Err(_) => return Err(Error::Poisoned("vector index")),
        };
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            let q = BooleanQuery::new(vec![
                (Occur::Must, Box::new(TermQuery::new(self.fields.id_term(&h.id), IndexRecordOption::Basic))),
                (Occur::Must, filter.box_clone()),
            ]);
            let top = searcher.search(&q, &TopDocs::with_limit(1).order_by_score()).map_err(self.err("searching"))?;
            if let Some((d, _)) = self.load(searcher, &top)?.into_iter().next() {
                out.push((d, h.similarity));
            }
        }
        Ok(out)
    }
}

/// Reciprocal-rank fusion of the two ranked lists.
fn fuse(keyword: Vec<(SearchDoc, f32)>, semantic: Vec<(SearchDoc, f32)>) -> Vec<(SearchDoc, f32)> {
    let k_ids: Vec<&str> = keyword.iter().map(|(d, _)| d.id.as_str()).collect();
    let s_ids: Vec<&str> = semantic.iter().map(|(d, _)| d.id.as_str()).collect();
    let order = rrf(&[&k_ids, &s_ids]);
    let mut docs: HashMap<String, SearchDoc> = HashMap::new();
    for (d, _) in keyword.into_iter().chain(semantic) {
        docs.entry(d.id.clone()).or_insert(d);
    }
    order.into_iter().filter_map(|(id, score)| docs.remove(&id).map(|d| (d, score))).collect()
}

/// The text part of a query, a union of the tenant's terms: per token, an exact hit in any field
/// (boosted by field) and, for the last token, its most frequent completions in the tenant
/// (search-as-you-type). A token that no document the caller may see holds is taken for a typo and
/// replaced by the tenant's words within edit distance 1 (from 4 characters) or 2 (from 8): expanding
/// a known word too would cost a dictionary walk and a wider union in every query while rarely
/// helping. "Known" is judged among the tenant's terms within `filter` (the caller's visibility,
/// `None` for the whole tenant), never by the index-wide dictionary, so whether a query is corrected
/// reveals nothing of other tenants' words. Tokens are alternatives (BM25 ranks documents matching
/// more of them higher). `None` if the text has no token.
pub(crate) fn keyword_query(
    f: &Fields,
    searcher: &Searcher,
    tenant: &str,
    filter: Option<&dyn Query>,
    text: &str,
) -> Result<Option<Box<dyn Query>>> {
    let toks = tokens(text);
    let Some(last) = toks.len().checked_sub(1) else { return Ok(None) };
    let fields = [(f.title_terms, TITLE_BOOST), (f.names_terms, NAMES_BOOST), (f.body_terms, BODY_BOOST)];
    let tenant_prefix = scoped(tenant, "");
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        let chars = tok.chars().count();
        let distance = match chars {
            0..4 => 0,
            4..8 => 1,
            _ => 2,
        };
        let scoped_tok = format!("{tenant_prefix}{tok}");
        let any_field: Vec<(Occur, Box<dyn Query>)> =
            fields.iter().map(|&(field, _)| (Occur::Should, raw(field, &scoped_tok))).collect();
        let any_field = Box::new(BooleanQuery::new(any_field));
        let known = match filter {
            Some(filter) => visible_match(
                searcher,
                &BooleanQuery::new(vec![(Occur::Must, filter.box_clone()), (Occur::Must, any_field)]),
            )?,
            None => visible_match(searcher, any_field.as_ref())?,
        };
        for (field, boost) in fields {
            let term = Term::from_field_text(field, &scoped_tok);
            if known {
                clauses.push((Occur::Should, boosted(TermQuery::new(term, IndexRecordOption::WithFreqs), boost)));
            } else if distance > 0 {
                for correction in crate::terms::corrections(searcher, field, &scoped_tok, distance)? {
                    let q = TermQuery::new(correction, IndexRecordOption::WithFreqs);
                    clauses.push((Occur::Should, boosted(q, boost * FUZZY_WEIGHT)));
                }
            }
            if i == last && chars >= 2 {
                for completion in crate::terms::completions(searcher, field, &scoped_tok)? {
                    let q = TermQuery::new(completion, IndexRecordOption::WithFreqs);
                    clauses.push((Occur::Should, boosted(q, boost * PREFIX_WEIGHT)));
                }
            }
        }
    }
    if clauses.is_empty() {
        // Every token unknown and too short to correct: nothing can match.
        return Ok(Some(Box::new(tantivy::query::EmptyQuery)));
    }
    Ok(Some(Box::new(BooleanQuery::new(clauses))))
}

fn boosted(q: impl Query, boost: f32) -> Box<dyn Query> {
    Box::new(BoostQuery::new(Box::new(q), boost))
}

/// Whether any live document matches `q` (stops at the first).
fn visible_match(searcher: &Searcher, q: &dyn Query) -> Result<bool> {
    let err = |source| Error::Index { dir: Default::default(), what: "looking a word up", source };
    let weight = q.weight(EnableScoring::disabled_from_searcher(searcher)).map_err(err)?;
    for segment in searcher.segment_readers() {
        let mut scorer = weight.scorer(segment, 1.0).map_err(err)?;
        let alive = segment.alive_bitset();
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if alive.is_none_or(|a| a.is_alive(doc)) {
                return Ok(true);
            }
            doc = scorer.advance();
        }
    }
    Ok(false)
}

fn raw(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

/// The visibility as a non-scoring query: the tenant, and one of the rules (a type, and for owner
/// rules one of the owners).
pub(crate) fn visibility_query(f: &Fields, vis: &Visibility) -> Box<dyn Query> {
    if vis.whole_tenant() {
        // The whole tenant: one term instead of a union over every type's postings.
        return Box::new(ConstScoreQuery::new(raw(f.tenant, &vis.tenant_id), 0.0));
    }
    let rules: Vec<(Occur, Box<dyn Query>)> = vis
        .rules
        .iter()
        .map(|(t, reach)| {
            let q: Box<dyn Query> = match reach {
                Reach::All => raw(f.doc_type, t.as_str()),
                Reach::Owners(owners) => Box::new(BooleanQuery::new(vec![
                    (Occur::Must, raw(f.doc_type, t.as_str())),
                    (
                        Occur::Must,
                        Box::new(BooleanQuery::new(owners.iter().map(|o| (Occur::Should, raw(f.owner, o))).collect())),
                    ),
                ])),
            };
            (Occur::Should, q)
        })
        .collect();
    let q = BooleanQuery::new(vec![
        (Occur::Must, raw(f.tenant, &vis.tenant_id)),
        (Occur::Must, Box::new(BooleanQuery::new(rules))),
    ]);
    Box::new(ConstScoreQuery::new(Box::new(q), 0.0))
}

/// Highlighted excerpts: from the body, else the names, else the title.
struct Snippets {
    body: SnippetGenerator,
    names: SnippetGenerator,
    title: SnippetGenerator,
}

impl Snippets {
    /// Highlights the words of `q`'s terms (the tenant's scoped terms, rarer words weighing more) in
    /// the stored texts.
    fn new(searcher: &Searcher, q: &dyn Query, f: &Fields) -> Result<Self> {
        let mut terms: Vec<Term> = Vec::new();
        q.query_terms(&mut |term, _| terms.push(term.clone()));
        let make = |indexed: Field, stored: Field| {
            let mut words = BTreeMap::new();
            for term in terms.iter().filter(|t| t.field() == indexed) {
                let value = term.value();
                let Some(text) = value.as_str() else { continue };
                let doc_freq = searcher.doc_freq(term).map_err(|source| Error::Index {
                    dir: Default::default(),
                    what: "creating a snippet generator",
                    source,
                })?;
                if doc_freq > 0 {
                    words.insert(unscoped(text).to_owned(), 1.0 / (1.0 + doc_freq as f32));
                }
            }
            Ok::<_, Error>(SnippetGenerator::new(words, analyzer(), stored, SNIPPET_CHARS))
        };
        Ok(Snippets {
            body: make(f.body_terms, f.body)?,
            names: make(f.names_terms, f.names)?,
            title: make(f.title_terms, f.title)?,
        })
    }

    fn of(&self, d: &SearchDoc) -> String {
        for (g, text) in [(&self.body, &d.body), (&self.names, &d.names), (&self.title, &d.title)] {
            let s = g.snippet(text);
            if !s.highlighted().is_empty() {
                return s.to_html();
            }
        }
        plain_snippet(d)
    }
}

/// The start of the body (or names, or title), HTML-escaped, for hits without a highlighted term.
fn plain_snippet(d: &SearchDoc) -> String {
    let text = [&d.body, &d.names, &d.title].into_iter().find(|t| !t.is_empty()).map_or("", |t| t.as_str());
    let cut: String = text.chars().take(SNIPPET_CHARS).collect();
    cut.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
