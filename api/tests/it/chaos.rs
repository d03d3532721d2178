//! The reliability run, short: the real `orbas bench chaos` — its own Postgres, broker, API server and
//! SIGKILLed `orbas pipeline cdc` / `orbas pipeline sink` children — with 2,000 accounts, 4 kills, one
//! Postgres restart and 20 tenants (schemathesis has a test of its own). The run must exit 0 and its
//! verdict must read 0 lost, 0 duplicated, equal checksums and 0 foreign rows, with the chaos done.

use std::time::Duration;

fn figure<'a>(stdout: &'a str, name: &str) -> &'a str {
    let prefix = format!("- {name}: ");
    stdout.lines().find_map(|l| l.strip_prefix(prefix.as_str())).unwrap_or_else(|| panic!("no `{name}` in:\n{stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_chaos_run_loses_nothing_duplicates_nothing_and_leaks_no_rows() {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_orbas"))
        .args(["bench", "chaos", "--rows", "2000", "--kills", "4", "--pg-restarts", "1", "--tenants", "20"])
        .args(["--requests", "600", "--clients", "8", "--seed", "7", "--no-schemathesis"])
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(280), run).await.expect("the run ends in time").expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String =
        stderr.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "orbas bench chaos failed:\n{stdout}\n{tail}");

    assert_eq!(figure(&stdout, "lost"), "0", "{stdout}");
    assert_eq!(figure(&stdout, "duplicated"), "0", "{stdout}");
    assert!(figure(&stdout, "checksums").starts_with("equal ("), "{stdout}");
    assert_eq!(figure(&stdout, "foreign rows"), "0", "{stdout}");
    assert_eq!(figure(&stdout, "result"), "all invariants hold", "{stdout}");
    // The chaos happened, and the figures cover what the run claims.
    assert!(stdout.contains("| SIGKILL of `orbas pipeline cdc` / `orbas pipeline sink` | 2 / 2 |"), "{stdout}");
    assert!(stdout.contains("| Postgres restarts (longest away) | 1 ("), "{stdout}");
    assert!(stdout.contains("API ledger: 2000 creates acknowledged, 2000 such accounts in Postgres"), "{stdout}");
    let checked: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("| rows checked | ")?.trim_end_matches(" |").parse().ok())
        .unwrap_or(0);
    assert!(checked > 1000, "the pooled load checked {checked} rows:\n{stdout}");
}
