//! Relevance, isolation and permissions over one pipeline: tenant A's corpus, the same texts in
//! tenant B, indexed through CDC with embeddings.

use orbas_oltp::auth::Principal;
use orbas_oltp::model::{RoleKey, TenantId, UserId};
use orbas_search::{DocType, Mode, Reach, SearchIndex, SearchRequest, SearchResults, Visibility};

use crate::corpus::{self, Tenant};

/// (query, label of the record that must be in the top 3)
const EXPECTED: &[(&str, &str)] = &[
    // companies: names, domains, descriptions
    ("acme", "acme"),
    ("acme robotics", "acme"),
    ("globex", "globex"),
    ("initech", "initech"),
    ("umbrella pharmaceuticals", "umbrella"),
    ("stark industries", "stark"),
    ("wayne", "wayne"),
    ("hooli", "hooli"),
    ("pied piper", "pied"),
    ("middle-out compression", "pied"),
    ("vaccine research", "umbrella"),
    // people: contacts, leads, employees, by name, e-mail and company
    ("margaret hamilton", "hamilton"),
    ("grace hopper", "hopper"),
    ("grace@initech.io", "hopper"),
    ("turing", "turing"),
    ("lovelace", "lovelace"),
    ("katherine johnson", "johnson"),
    ("perlman", "perlman"),
    ("spanning networks", "perlman"),
    ("dijkstra", "dijkstra"),
    ("hedy lamarr", "lamarr"),
    ("information theory", "shannon"),
    // deals, tickets, articles, documents, a ticket message
    ("welding cell", "welding"),
    ("reactor maintenance", "reactor"),
    ("printer jams", "printer"),
    ("refund duplicate charge", "refund"),
    ("mobile app crash login", "crash"),
    ("single sign-on okta", "sso"),
    ("two-factor authentication", "twofa"),
    ("invoice pdf", "invoice_pdf"),
    ("master services agreement", "msa"),
    ("quarterly business review", "qbr"),
    ("certificate expired", "sso_message"),
    // typos (edit distance 1 from 4 characters, 2 from 8)
    ("glbex", "globex"),
    ("umbrela", "umbrella"),
    ("cyberdine", "cyberdyne"),
    ("margret hamilton", "hamilton"),
    ("pasword reset", "password"),
    ("dashbord export", "dashboard"),
    ("lovelase", "lovelace"),
    ("torvals", "torvalds"),
    ("inittech", "initech"),
    // prefixes (search as you type)
    ("acm", "acme"),
    ("hamil", "hamilton"),
    ("dijks", "dijkstra"),
    ("two-factor authent", "twofa"),
    ("quarterly busin", "qbr"),
];

fn request(text: &str, mode: Mode) -> SearchRequest {
    SearchRequest { text: text.to_owned(), mode, limit: 10, types: Vec::new(), facets: true }
}

fn search(ix: &SearchIndex, text: &str, mode: Mode, vis: &Visibility) -> SearchResults {
    ix.search(&request(text, mode), vis).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn ids(r: &SearchResults) -> Vec<String> {
    r.hits.iter().map(|h| h.id.clone()).collect()
}

/// Whether any hit is one of tenant `b`'s records.
fn foreign(r: &SearchResults, b: &Tenant) -> Vec<String> {
    let theirs: Vec<String> = b.ids.values().map(|u| u.to_string()).collect();
    ids(r).into_iter().filter(|i| theirs.contains(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevance_isolation_and_permissions() {
    let db = orbas_testkit::fresh_db().await;
    let stream = crate::stream(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let indexing = crate::Indexing::start(&stream, dir.path(), true).await;
    let a = corpus::load(&db.admin, "tenant-a").await;
    let b = corpus::load(&db.admin, "tenant-b").await;
    indexing.reach(crate::mark(&db, &b).await).await;
    indexing.hold(2 * corpus::size() as u64).await;
    let (ix, stats) = indexing.stop().await;
    assert_eq!(ix.num_docs() as usize, 2 * corpus::size(), "{stats:?}");
    let vis_a = Visibility::tenant(&a.id.to_string());

    // Relevance: every expected record in the top 3, and no record of tenant B anywhere.
    let mut misses = Vec::new();
    for (q, label) in EXPECTED {
        let r = search(&ix, q, Mode::Keyword, &vis_a);
        let top: Vec<String> = ids(&r).into_iter().take(3).collect();
        if !top.contains(&a.id_of(label)) {
            misses.push(format!(
                "{q:?} → want {label}, top 3: {:?}",
                r.hits.iter().take(3).map(|h| &h.title).collect::<Vec<_>>()
            ));
        }
        assert!(foreign(&r, &b).is_empty(), "{q:?} returned tenant B's records");
    }
    assert!(EXPECTED.len() >= 30);
    assert!(misses.is_empty(), "{} of {} queries missed:\n{}", misses.len(), EXPECTED.len(), misses.join("\n"));

    // Snippets highlight; facets count only what is visible.
    let r = search(&ix, "invoice", Mode::Keyword, &vis_a);
    assert!(r.hits.iter().any(|h| h.snippet.contains("<b>invoice")), "{:?}", r.hits);
    let types = &r.facets["type"];
    assert_eq!(types.get("ticket"), Some(&1), "{:?}", r.facets);
    assert_eq!(types.get("knowledge_article"), Some(&1), "{:?}", r.facets);

    // Semantic and hybrid: meaning without shared words, and still only tenant A.
    for mode in [Mode::Semantic, Mode::Hybrid] {
        for (q, label) in [("customer charged two times", "refund"), ("mobile application keeps crashing", "crash")] {
            let r = search(&ix, q, mode, &vis_a);
            let top: Vec<String> = ids(&r).into_iter().take(3).collect();
            assert!(
                top.contains(&a.id_of(label)),
                "{mode:?} {q:?}: {:?}",
                r.hits.iter().map(|h| &h.title).collect::<Vec<_>>()
            );
            assert!(foreign(&r, &b).is_empty(), "{mode:?} {q:?} returned tenant B's records");
            assert_eq!(r.hits.len(), 10, "foreign documents must not take result slots");
        }
    }

    // Tenant B sees its own copies and nothing of A.
    let r = search(&ix, "acme robotics", Mode::Hybrid, &Visibility::tenant(&b.id.to_string()));
    assert_eq!(r.hits.first().map(|h| h.id.clone()), Some(b.id_of("acme")));
    assert!(foreign(&r, &a).is_empty());

    permissions(&ix, &a, &b);
}

/// Own scope reaches only the rep's records; a role without a resource sees none of it.
fn permissions(ix: &SearchIndex, a: &Tenant, b: &Tenant) {
    let own = Visibility {
        tenant_id: a.id.to_string(),
        rules: vec![(DocType::Lead, Reach::Owners(vec![a.rep.to_string()]))],
    };
    for mode in [Mode::Keyword, Mode::Semantic, Mode::Hybrid] {
        // Allen and Berners belong to the other rep.
        for q in ["frances allen compiler labs", "webfoundry", "berners"] {
            let r = search(ix, q, mode, &own);
            assert!(
                r.hits.iter().all(|h| h.id == a.id_of("perlman") || h.id == a.id_of("dijkstra")),
                "{mode:?} {q:?}: {:?}",
                r.hits
            );
        }
        let r = search(ix, "perlman", mode, &own);
        assert!(ids(&r).contains(&a.id_of("perlman")), "{mode:?}");
        assert!(foreign(&r, b).is_empty());
    }
    let r = search(ix, "perlman dijkstra allen berners", Mode::Keyword, &own);
    let owners = &r.facets["owner"];
    assert_eq!(owners.get(&a.rep.to_string()), Some(&2), "{:?}", r.facets);
    assert_eq!(owners.len(), 1, "facets count only visible documents: {:?}", r.facets);

    // A support agent reads tickets and articles but no leads or deals.
    let agent = Principal::interactive(TenantId(a.id), UserId(a.rep), RoleKey::SupportAgent);
    let vis = Visibility::for_principal(&agent);
    for q in ["dijkstra", "welding cell", "perlman"] {
        let r = search(ix, q, Mode::Hybrid, &vis);
        assert!(
            r.hits.iter().all(|h| !matches!(h.doc_type, DocType::Lead | DocType::Opportunity)),
            "{q:?}: {:?}",
            r.hits
        );
    }
    assert!(ids(&search(ix, "printer jams", Mode::Keyword, &vis)).contains(&a.id_of("printer")));
}
