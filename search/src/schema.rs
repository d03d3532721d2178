//! The tantivy schema: which fields a [`SearchDoc`] becomes, how each is analysed and weighted, and the
//! conversion both ways. Text fields share one analyser (split on non-alphanumerics, lower-case,
//! ASCII-folded) so a query is tokenised like the documents. Tenant, type and owner are raw (untokenised)
//! terms, the filters of every query; `id` is the key updates and deletes address.
//!
//! The words of a document are indexed *scoped to its tenant*: the term of `word` in tenant `t` is
//! `k:word`, `k` a compact injective key of `t` (see [`scoped`]), in the `*_terms` fields, whose
//! analyser reads the key in front of the text and writes it in front of every token (no allocation
//! per token); the original text is stored beside them for display and snippets. A tenant's query is then a plain union of its own terms, which tantivy ranks
//! with block-max WAND (skipping blocks of postings that cannot reach the top k) — a tenant filter as a
//! Must clause would instead make it score every matching document. Document frequencies, and so BM25's
//! IDF, are per tenant as a side effect: one tenant's vocabulary never shapes another's ranking.

use base64::Engine as _;
use tantivy::schema::{
    FAST, FacetOptions, Field, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, BoxTokenStream, LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token,
    TokenStream, Tokenizer,
};
use tantivy::{Index, TantivyDocument, Term};

use crate::document::{DocType, SearchDoc};

/// The analyser of every text field.
pub(crate) const TOKENIZER: &str = "orbas";
/// The analyser of the indexed `*_terms` fields: [`TOKENIZER`]'s tokens, each behind the tenant key the
/// value starts with.
const SCOPED_TOKENIZER: &str = "orbas_scoped";

/// Field weights: a hit in the title counts most, then names and e-mail addresses, then the body.
pub(crate) const TITLE_BOOST: f32 = 3.0;
pub(crate) const NAMES_BOOST: f32 = 2.0;
pub(crate) const BODY_BOOST: f32 = 1.0;

/// The facet dimensions counted for every query.
pub const FACETS: [&str; 4] = ["type", "owner", "stage", "status"];

/// Handles of the schema's fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub doc_type: Field,
    pub tenant: Field,
    pub owner: Field,
    /// The stored text (not indexed).
    pub title: Field,
    pub names: Field,
    pub body: Field,
    /// The indexed words of each text, scoped to the tenant (not stored).
    pub title_terms: Field,
    pub names_terms: Field,
    pub body_terms: Field,
    pub facets: Field,
    pub stage: Field,
    pub status: Field,
    pub parent: Field,
    pub updated_at: Field,
    /// The document's sentence embedding (little-endian f32s), empty without an embedder: the vector
    /// index is rebuilt from these, so it can never disagree with the committed documents.
    pub embedding: Field,
    /// The batch that wrote the embedding (a fast field, only on documents with one): the vector graph
    /// catches up on what was committed after the batch it holds by scanning this column.
    pub vector_seq: Field,
}

impl Fields {
    pub fn schema() -> (Schema, Fields) {
        let mut b = Schema::builder();
        // Term frequencies and field norms for BM25; no positions (no phrase queries).
        let terms = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer(SCOPED_TOKENIZER).set_index_option(IndexRecordOption::WithFreqs),
        );
        let fields = Fields {
            // Fast: the vector graph reconciles its documents with the index's from this column.
            id: b.add_text_field("id", STRING | STORED | FAST),
            doc_type: b.add_text_field("type", STRING | STORED),
            tenant: b.add_text_field("tenant_id", STRING | STORED),
            owner: b.add_text_field("owner_id", STRING | STORED),
            title: b.add_text_field("title", STORED),
            names: b.add_text_field("names", STORED),
            body: b.add_text_field("body", STORED),
            title_terms: b.add_text_field("title_terms", terms.clone()),
            names_terms: b.add_text_field("names_terms", terms.clone()),
            body_terms: b.add_text_field("body_terms", terms),
            facets: b.add_facet_field("facets", FacetOptions::default()),
            stage: b.add_text_field("stage", STRING | STORED),
            status: b.add_text_field("status", STRING | STORED),
            parent: b.add_text_field("parent_id", STRING | STORED),
            updated_at: b.add_text_field("updated_at", STORED),
            embedding: b.add_bytes_field("embedding", STORED),
            vector_seq: b.add_u64_field("vector_seq", FAST),
        };
        (b.build(), fields)
    }

    /// Registers the analyser the text fields name.
    pub fn register_tokenizer(index: &Index) {
        index.tokenizers().register(TOKENIZER, analyzer());
        index.tokenizers().register(SCOPED_TOKENIZER, TextAnalyzer::from(ScopedTokenizer { inner: analyzer() }));
    }

    pub fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.id, id)
    }

    /// The stored form of a document (with its embedding and the batch writing it, if any).
    pub fn stored(&self, d: &SearchDoc, embedding: Option<(&[f32], u64)>) -> TantivyDocument {
        let mut t = TantivyDocument::default();
        t.add_text(self.id, &d.id);
        t.add_text(self.doc_type, d.doc_type.as_str());
        t.add_text(self.tenant, &d.tenant_id);
        let key = tenant_key(&d.tenant_id);
        let mut scoped_text = String::new();
        for (stored, indexed, text) in [
            (self.title, self.title_terms, &d.title),
            (self.names, self.names_terms, &d.names),
            (self.body, self.body_terms, &d.body),
        ] {
            t.add_text(stored, text);
            scoped_text.clear();
            scoped_text.reserve(key.len() + 1 + text.len());
            scoped_text.push_str(&key);
            scoped_text.push(':');
            scoped_text.push_str(text);
            t.add_text(indexed, &scoped_text);
        }
        t.add_facet(self.facets, tantivy::schema::Facet::from_path(["type", d.doc_type.as_str()]));
        let optional =
            [(self.owner, "owner", &d.owner_id), (self.stage, "stage", &d.stage), (self.status, "status", &d.status)];
        for (field, facet, value) in optional {
            if let Some(v) = value {
                t.add_text(field, v);
                t.add_facet(self.facets, tantivy::schema::Facet::from_path([facet, v.as_str()]));
            }
        }
        if let Some(p) = &d.parent_id {
            t.add_text(self.parent, p);
        }
        if let Some(u) = &d.updated_at {
            t.add_text(self.updated_at, u);
        }
        if let Some((e, seq)) = embedding {
            t.add_bytes(self.embedding, &encode_vector(e));
            t.add_u64(self.vector_seq, seq);
        }
        t
    }

    /// A stored document back as a [`SearchDoc`] (`None` if it lacks the key fields).
    pub fn doc_of(&self, t: &TantivyDocument) -> Option<SearchDoc> {
        let get = |f: Field| t.get_first(f).and_then(|v| v.as_str()).map(str::to_owned);
        Some(SearchDoc {
            id: get(self.id)?,
            doc_type: DocType::parse(&get(self.doc_type)?)?,
            tenant_id: get(self.tenant)?,
            title: get(self.title).unwrap_or_default(),
            names: get(self.names).unwrap_or_default(),
            body: get(self.body).unwrap_or_default(),
            owner_id: get(self.owner),
            stage: get(self.stage),
            status: get(self.status),
            parent_id: get(self.parent),
            updated_at: get(self.updated_at),
        })
    }

    /// The stored embedding of a document, if it has one.
    pub fn embedding_of(&self, t: &TantivyDocument) -> Option<Vec<f32>> {
        t.get_first(self.embedding).and_then(|v| v.as_bytes()).and_then(decode_vector)
    }
}

pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .build()
}

/// The tokens of `text` as the index's analyser produces them.
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let mut a = analyzer();
    let mut stream = a.token_stream(text);
    let mut out = Vec::new();
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// The compact key of a tenant in its terms: a UUID as its 16 bytes in unpadded base64url (22
/// characters), anything else as `~` and its bytes in hex. Injective, and never holds a `:`.
pub(crate) fn tenant_key(tenant: &str) -> String {
    match uuid::Uuid::parse_str(tenant) {
        Ok(u) => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(u.as_bytes()),
        Err(_) => std::iter::once("~".to_owned()).chain(tenant.bytes().map(|b| format!("{b:02x}"))).collect(),
    }
}

/// The term of `token` in `tenant`'s documents: `key:token`. Neither the key nor the (alphanumeric)
/// token holds another `:`.
pub(crate) fn scoped(tenant: &str, token: &str) -> String {
    format!("{}:{token}", tenant_key(tenant))
}

/// The token of a [`scoped`] term.
pub(crate) fn unscoped(term: &str) -> &str {
    term.split_once(':').map_or(term, |(_, t)| t)
}

/// The analyser of the `*_terms` fields: their value is `key:text`; each token of `text` (as
/// [`analyzer`] makes them) comes out as `key:token`, written into one reused buffer.
#[derive(Clone)]
struct ScopedTokenizer {
    inner: TextAnalyzer,
}

struct ScopedStream<'a> {
    prefix: &'a str,
    inner: BoxTokenStream<'a>,
    token: Token,
}

impl Tokenizer for ScopedTokenizer {
    type TokenStream<'a> = ScopedStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ScopedStream<'a> {
        // A value without a key (never written by `stored`) is indexed under no tenant: unreachable.
        let cut = text.find(':').map_or(0, |i| i + 1);
        let (prefix, rest) = text.split_at(cut);
        ScopedStream { prefix, inner: self.inner.token_stream(rest), token: Token::default() }
    }
}

impl TokenStream for ScopedStream<'_> {
    fn advance(&mut self) -> bool {
        if !self.inner.advance() {
            return false;
        }
        let t = self.inner.token();
        self.token.text.clear();
        self.token.text.push_str(self.prefix);
        self.token.text.push_str(&t.text);
        self.token.offset_from = t.offset_from + self.prefix.len();
        self.token.offset_to = t.offset_to + self.prefix.len();
        self.token.position = t.position;
        self.token.position_length = t.position_length;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// A vector as little-endian f32s.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`encode_vector`]; `None` for an empty or misaligned buffer.
pub fn decode_vector(b: &[u8]) -> Option<Vec<f32>> {
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return None;
    }
    Some(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn vectors_round_trip(v in proptest::collection::vec(any::<f32>().prop_filter("not NaN", |x| !x.is_nan()), 1..512)) {
            prop_assert_eq!(decode_vector(&encode_vector(&v)), Some(v));
        }

        #[test]
        fn decoding_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = decode_vector(&b);
            prop_assert_eq!(d.is_some(), !b.is_empty() && b.len().is_multiple_of(4));
        }
    }

    #[test]
    fn the_analyser_splits_lowercases_and_folds() {
        assert_eq!(tokens("José O'Neil <jose.oneil@Acme.io>"), ["jose", "o", "neil", "jose", "oneil", "acme", "io"]);
    }

    proptest! {
        #[test]
        fn scoped_terms_give_back_their_token(tenant in "\\PC{0,40}", text in "\\PC{0,60}") {
            for tok in tokens(&text) {
                let term = scoped(&tenant, &tok);
                prop_assert_eq!(unscoped(&term), tok.as_str());
            }
        }

        #[test]
        fn tenant_keys_are_injective(a in "\\PC{0,40}", b in "\\PC{0,40}", ua: u128, ub: u128) {
            prop_assert_eq!(tenant_key(&a) == tenant_key(&b), a == b);
            let (ua, ub) = (uuid::Uuid::from_u128(ua).to_string(), uuid::Uuid::from_u128(ub).to_string());
            prop_assert_eq!(tenant_key(&ua) == tenant_key(&ub), ua == ub);
            prop_assert!(!tenant_key(&a).contains(':') && !tenant_key(&ua).contains(':'));
        }
    }

    #[test]
    fn words_are_indexed_under_their_tenant() {
        let tenant = "0190f5b2-7c1e-7000-8000-000000000001";
        let key = tenant_key(tenant);
        assert_eq!(key.len(), 22);
        assert_eq!(tenant_key("t1"), "~7431");
        let mut a = TextAnalyzer::from(ScopedTokenizer { inner: analyzer() });
        let value = format!("{key}:Quantum Billing");
        let mut stream = a.token_stream(&value);
        let mut texts = Vec::new();
        while stream.advance() {
            texts.push(stream.token().text.clone());
        }
        assert_eq!(texts, [scoped(tenant, "quantum"), scoped(tenant, "billing")]);
        assert_eq!(texts[1], format!("{key}:billing"));
    }

    #[test]
    fn documents_round_trip_through_the_stored_form() {
        let (_, f) = Fields::schema();
        let d = SearchDoc {
            id: "i".into(),
            doc_type: DocType::Ticket,
            tenant_id: "t".into(),
            title: "Printer on fire".into(),
            names: "T-1".into(),
            body: "smoke".into(),
            owner_id: Some("u".into()),
            stage: None,
            status: Some("open".into()),
            parent_id: None,
            updated_at: Some("2026-12-04T00:00:00Z".into()),
        };
        let t = f.stored(&d, Some((&[0.5, -1.0], 3)));
        assert_eq!(f.doc_of(&t), Some(d));
        assert_eq!(f.embedding_of(&t), Some(vec![0.5, -1.0]));
    }
}
