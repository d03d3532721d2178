//! Updates and deletes written to Postgres reach the index (checked by LSN, never by time), and a
//! restarted indexer continues from the positions in the index's last commit.

use orbas_search::{Access, Mode, SearchIndex, SearchRequest, Visibility};

use crate::corpus;

fn hits(ix: &SearchIndex, text: &str, vis: &Visibility) -> Vec<String> {
    hits_in(ix, text, Mode::Keyword, vis)
}

fn hits_in(ix: &SearchIndex, text: &str, mode: Mode, vis: &Visibility) -> Vec<String> {
    let req = SearchRequest { text: text.to_owned(), mode, limit: 10, types: Vec::new(), facets: false };
    ix.search(&req, vis).unwrap_or_else(|e| panic!("{text:?}: {e}")).hits.into_iter().map(|h| h.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_and_deletes_are_visible_once_applied_and_restarts_resume() {
    let db = orbas_testkit::fresh_db().await;
    let stream = crate::stream(&db).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let indexing = crate::Indexing::start(&stream, dir.path(), true).await;
    let a = corpus::load(&db.admin, "fresh-a").await;
    let vis = Visibility::tenant(&a.id.to_string());
    indexing.reach(crate::mark(&db, &a).await).await;
    indexing.hold(corpus::size() as u64).await;
    assert_eq!(hits(&indexing.index, "soylent", &vis), [a.id_of("soylent")]);

    // An update: the new name is found, the old one no longer.
    let lsn = crate::write(
        &db,
        "UPDATE accounts SET name = 'Soylent Green Beverages' WHERE id = $1::uuid",
        &a.id_of("soylent"),
    )
    .await;
    indexing.reach(lsn).await;
    assert_eq!(hits(&indexing.index, "beverages", &vis), [a.id_of("soylent")]);
    assert!(hits(&indexing.index, "foods", &vis).is_empty());

    // A delete removes the document.
    let lsn = crate::write(&db, "DELETE FROM contacts WHERE id = $1::uuid", &a.id_of("torvalds")).await;
    indexing.reach(lsn).await;
    assert!(!hits(&indexing.index, "torvalds", &vis).contains(&a.id_of("torvalds")));
    // …from the vector graph too (a tombstone until the graph is rebuilt).
    let near = "Linus Torvalds, kernel maintainer at Hooli";
    assert!(!hits_in(&indexing.index, near, Mode::Semantic, &vis).contains(&a.id_of("torvalds")));
    let (ix, first) = indexing.stop().await;
    let docs = ix.num_docs();
    assert_eq!(docs as usize, corpus::size() - 1);
    let before = ix.checkpoint();
    let saved = ix.vector_stats().saved.expect("the stopping indexer saved the vector graph");
    drop(ix);

    // Written while no indexer runs; a restarted one reads only what is new.
    let lsn =
        crate::write(&db, "UPDATE tickets SET subject = 'Printer on fire' WHERE id = $1::uuid", &a.id_of("printer"))
            .await;
    let indexing = crate::Indexing::start(&stream, dir.path(), true).await;
    assert_eq!(indexing.index.checkpoint(), before, "the positions survive a restart");
    // The vector graph is the saved one: nothing had to be read back from the index.
    let stats = indexing.index.vector_stats();
    assert_eq!(stats.loaded_from.as_ref(), Some(&saved), "{stats:?}");
    assert_eq!((stats.read_from_index, stats.live), (0, docs as usize), "{stats:?}");
    indexing.reach(lsn).await;
    assert_eq!(hits(&indexing.index, "fire", &vis).first(), Some(&a.id_of("printer")));
    // The vector graph, loaded from the save, has the update and not the delete.
    let semantic = hits_in(&indexing.index, "the printer is burning", Mode::Semantic, &vis);
    assert_eq!(semantic.first(), Some(&a.id_of("printer")), "{semantic:?}");
    assert!(!hits_in(&indexing.index, near, Mode::Semantic, &vis).contains(&a.id_of("torvalds")));
    // So has a read-only follower (`orbas serve`): the save, plus the one vector committed after it.
    let follower = {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            SearchIndex::open(&dir, Access::ReadOnly, Some(crate::embedder_or_panic())).expect("open a follower")
        })
        .await
        .expect("open task")
    };
    let semantic = hits_in(&follower, "the printer is burning", Mode::Semantic, &vis);
    assert_eq!(semantic.first(), Some(&a.id_of("printer")), "{semantic:?}");
    let stats = follower.vector_stats();
    assert_eq!((stats.loaded_from.as_ref(), stats.read_from_index), (Some(&saved), 1), "{stats:?}");
    drop(follower);
    assert!(hits_in(&indexing.index, "Katherine Johnson", Mode::Hybrid, &vis).contains(&a.id_of("johnson")));
    let (ix, second) = indexing.abandon().await;
    assert_eq!(ix.num_docs(), docs, "no document twice after the restart");
    assert!(
        second.messages < 5 && second.messages >= 1,
        "the restarted indexer re-read {} messages (first run: {})",
        second.messages,
        first.messages
    );

    // A rebuild clears the index and re-reads every topic from the start: the same documents.
    let stats = crate::Indexing::rebuild(&stream, ix.clone()).await;
    assert_eq!(ix.num_docs(), docs, "{stats:?}");
    assert!(stats.messages >= first.messages + second.messages, "{stats:?}");
    assert_eq!(hits(&ix, "fire", &vis).first(), Some(&a.id_of("printer")));
    assert!(hits(&ix, "torvalds", &vis).is_empty(), "a deleted record stays deleted after a rebuild");
}
