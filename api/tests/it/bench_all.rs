//! `orbas bench all` on a copy of docs/BENCHMARKS.md: the cheapest bench (`seed` at a tiny scale, its
//! peer `psql` is part of the default setup) is rerun and its block replaced with fresh figures, the
//! summary row follows, and every other byte of the document stays as it was.

use std::path::{Path, PathBuf};

use tokio::process::Command;

fn orbas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_orbas"));
    c.env_remove("DATABASE_URL").env("RUST_LOG", "warn").kill_on_drop(true);
    c
}

fn benchmarks_copy() -> (tempfile::TempDir, PathBuf, String) {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/BENCHMARKS.md");
    let text = std::fs::read_to_string(&doc).expect("docs/BENCHMARKS.md");
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join("BENCHMARKS.md");
    std::fs::write(&copy, &text).expect("copy");
    (dir, copy, text)
}

/// The lines between `name`'s markers, and the document with them taken out.
fn cut(doc: &str, name: &str) -> (String, String) {
    let (begin, end) = (format!("<!-- orbas bench {name}: begin -->\n"), format!("<!-- orbas bench {name}: end -->"));
    let from = doc.find(&begin).map(|i| i + begin.len()).expect("begin marker");
    let to = doc[from..].find(&end).map(|i| i + from).expect("end marker");
    (doc[from..to].to_owned(), format!("{}{}", &doc[..from], &doc[to..]))
}

#[tokio::test]
async fn bench_all_reruns_one_bench_and_rewrites_only_its_block() {
    let (_dir, copy, before) = benchmarks_copy();
    let out = orbas()
        .args(["bench", "all", "--only", "seed", "--quick", "--file"])
        .arg(&copy)
        .output()
        .await
        .expect("run orbas bench all");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("| seed | updated in"), "{stdout}");

    let after = std::fs::read_to_string(&copy).expect("the rewritten copy");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (block, rest_after) = cut(&after, "seed");
    let command = "orbas bench seed --scale 0.002 --tenants 1 --seed 42";
    assert!(block.contains(&format!("`{command}` — {today}")), "command and date: {block}");
    assert!(block.contains("| `orbas seed` (generate + COPY, streamed) |"), "the bench's own table: {block}");
    assert!(block.contains("ratio orbas/psql:") && block.contains(" CPUs, ") && block.contains("commit "), "{block}");
    assert!(!block.contains("1,005,868"), "the hand-written figures are gone: {block}");

    let (summary, rest_after) = cut(&rest_after, "summary");
    assert!(summary.contains(&format!("| seed | `{command}` | {today}")), "{summary}");
    assert!(summary.contains("| cdc | `orbas bench cdc` | — (hand-written figures) |"), "{summary}");
    let (_, rest_before) = cut(&before, "seed");
    let (_, rest_before) = cut(&rest_before, "summary");
    assert!(rest_after == rest_before, "everything outside the two blocks is byte-identical");

    // A second run replaces the block again rather than adding one.
    let again = orbas().args(["bench", "all", "--only", "seed", "--quick", "--file"]).arg(&copy).output().await;
    assert!(again.expect("second run").status.success());
    let twice = std::fs::read_to_string(&copy).expect("the copy");
    assert_eq!(twice.matches("<!-- orbas bench seed: begin -->").count(), 1);
    assert_eq!(cut(&cut(&twice, "seed").1, "summary").1, rest_before);
}

#[tokio::test]
async fn bench_all_plans_without_writing_and_refuses_unknown_benches() {
    let (_dir, copy, before) = benchmarks_copy();
    let out = orbas().args(["bench", "all", "--dry-run", "--file"]).arg(&copy).output().await.expect("dry run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("seed: orbas bench seed --scale 1 --tenants 3 --seed 42"), "{stdout}");
    assert!(stdout.contains("| models-eval | skipped: "), "{stdout}");
    assert_eq!(std::fs::read_to_string(&copy).expect("copy"), before, "a dry run writes nothing");

    let out = orbas().args(["bench", "all", "--only", "sede", "--file"]).arg(&copy).output().await.expect("typo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown bench `sede`") && stderr.contains("seed, api, cdc"), "{stderr}");
}
