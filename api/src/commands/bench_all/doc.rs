//! The generated blocks of docs/BENCHMARKS.md: each bench's figures live between
//! `<!-- orbas bench NAME: begin -->` and `<!-- orbas bench NAME: end -->`, each on a line of its own;
//! everything outside the markers is hand-written and never touched. A generated block starts with a
//! metadata comment (`<!-- orbas bench all: {json} -->`) from which the summary block is rebuilt.

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// The block rebuilt from every other block's metadata after each bench.
pub(super) const SUMMARY: &str = "summary";
const META_PREFIX: &str = "<!-- orbas bench all: ";
const META_SUFFIX: &str = " -->";

pub(super) fn begin_marker(name: &str) -> String {
    format!("<!-- orbas bench {name}: begin -->")
}

pub(super) fn end_marker(name: &str) -> String {
    format!("<!-- orbas bench {name}: end -->")
}

/// A line of `doc`: its byte range, newline included.
struct Line<'a> {
    start: usize,
    end: usize,
    text: &'a str,
}

fn lines(doc: &str) -> impl Iterator<Item = Line<'_>> {
    let mut at = 0;
    doc.split_inclusive('\n').map(move |raw| {
        let line = Line { start: at, end: at + raw.len(), text: raw.trim_end() };
        at += raw.len();
        line
    })
}

fn is_marker(text: &str) -> bool {
    text.starts_with("<!-- orbas bench ") && (text.ends_with(": begin -->") || text.ends_with(": end -->"))
}

/// The byte range between the end of `name`'s begin line and the start of its end line.
fn block_range(doc: &str, name: &str) -> anyhow::Result<(usize, usize)> {
    let (begin, end) = (begin_marker(name), end_marker(name));
    let begins: Vec<Line<'_>> = lines(doc).filter(|l| l.text == begin).collect();
    let ends: Vec<Line<'_>> = lines(doc).filter(|l| l.text == end).collect();
    match (begins.len(), ends.len()) {
        (0, 0) => bail!(
            "no `{begin}` … `{end}` block: add the two markers, each on a line of its own, around the section's figures"
        ),
        (1, 1) => {}
        (b, e) if b > 1 || e > 1 => {
            bail!("`{begin}` appears {b} times and `{end}` {e} times: each must appear exactly once")
        }
        (0, _) => bail!("`{end}` without `{begin}`"),
        _ => bail!("`{begin}` without `{end}`"),
    }
    let (from, to) = (begins[0].end, ends[0].start);
    if to < from {
        bail!("`{end}` comes before `{begin}`");
    }
    if let Some(other) = lines(&doc[from..to]).find(|l| is_marker(l.text)) {
        bail!("`{}` inside the `{name}` block: blocks cannot nest or overlap", other.text);
    }
    Ok((from, to))
}

/// `doc` with `name`'s block replaced by `body`; every byte outside the block is kept.
pub(super) fn splice(doc: &str, name: &str, body: &str) -> anyhow::Result<String> {
    let (from, to) = block_range(doc, name)?;
    let mut out = String::with_capacity(doc.len() + body.len());
    out.push_str(&doc[..from]);
    if !doc[..from].ends_with('\n') {
        out.push('\n');
    }
    out.push_str(body.trim_end_matches('\n'));
    if !body.trim().is_empty() {
        out.push('\n');
    }
    out.push_str(&doc[to..]);
    Ok(out)
}

/// What a generated block records about its run, as the summary table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Meta {
    pub bench: String,
    pub command: String,
    /// UTC, `YYYY-MM-DD HH:MM`.
    pub when: String,
    pub took_secs: f64,
    /// The bench's own one-line verdict (a ratio, a target met or not), when it prints one.
    pub headline: Option<String>,
    pub quick: bool,
}

impl Meta {
    pub(super) fn line(&self) -> anyhow::Result<String> {
        Ok(format!("{META_PREFIX}{}{META_SUFFIX}", serde_json::to_string(self)?))
    }
}

/// The metadata of `name`'s block, if it was generated (hand-written blocks have none).
pub(super) fn meta(doc: &str, name: &str) -> Option<Meta> {
    let (from, to) = block_range(doc, name).ok()?;
    lines(&doc[from..to])
        .find_map(|l| l.text.strip_prefix(META_PREFIX)?.strip_suffix(META_SUFFIX).map(str::to_owned))
        .and_then(|json| serde_json::from_str(&json).ok())
}

/// The summary table: one row per bench, from its block's metadata.
pub(super) fn summary(doc: &str, benches: &[(&str, String)]) -> String {
    let mut out = String::from("| bench | command | last run (UTC) | took | headline |\n|---|---|---|---:|---|\n");
    for (name, command) in benches {
        let row = match meta(doc, name) {
            Some(m) => format!(
                "| {name} | `{}` | {}{} | {} | {} |",
                m.command,
                m.when,
                if m.quick { " (quick)" } else { "" },
                took(m.took_secs),
                m.headline.as_deref().map(cell).unwrap_or_default()
            ),
            None => format!("| {name} | `{command}` | — (hand-written figures) | | |"),
        };
        out.push_str(&row);
        out.push('\n');
    }
    out
}

pub(super) fn took(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{secs:.1} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.split('|').map(str::trim).filter(|c| !c.is_empty()).collect::<Vec<_>>().join("; ")
}

/// A bench's stdout made to sit inside a `##` section: its own headings demoted by two levels.
pub(super) fn demote_headings(output: &str) -> String {
    let mut out = String::with_capacity(output.len() + 16);
    for line in output.lines() {
        if line.starts_with('#') {
            out.push_str("##");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The first line of `output` starting with one of `prefixes` (table pipes and bold marks stripped).
pub(super) fn headline(output: &str, prefixes: &[&str]) -> Option<String> {
    output
        .lines()
        .map(|l| l.replace("**", ""))
        .find(|l| prefixes.iter().any(|p| l.trim().starts_with(p)))
        .map(|l| cell(&l))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Benchmarks\n\nintro\n\n## Seed\n\ncommentary before\n\n<!-- orbas bench seed: begin -->\nold figures\n| a | b |\n<!-- orbas bench seed: end -->\n\ncommentary after\n";

    #[test]
    fn the_block_is_replaced_and_everything_outside_it_kept() {
        let out = splice(DOC, "seed", "new figures\n").expect("spliced");
        assert!(out.contains("<!-- orbas bench seed: begin -->\nnew figures\n<!-- orbas bench seed: end -->\n"));
        assert!(!out.contains("old figures"));
        let (before, after) = DOC.split_once("old figures\n| a | b |\n").expect("the old block");
        assert!(out.starts_with(before) && out.ends_with(after), "{out}");
    }

    #[test]
    fn splicing_is_idempotent() {
        let once = splice(DOC, "seed", "new figures").expect("once");
        let twice = splice(&once, "seed", "new figures").expect("twice");
        assert_eq!(once, twice);
        assert_eq!(splice(&once, "seed", "old figures\n| a | b |\n").expect("back"), DOC);
    }

    #[test]
    fn a_missing_block_is_a_clear_error() {
        let err = splice(DOC, "cdc", "x").expect_err("no cdc block").to_string();
        assert!(err.contains("<!-- orbas bench cdc: begin -->") && err.contains("add the two markers"), "{err}");
        let no_end = DOC.replace("<!-- orbas bench seed: end -->\n", "");
        let err = splice(&no_end, "seed", "x").expect_err("no end").to_string();
        assert!(err.contains("without `<!-- orbas bench seed: end -->`"), "{err}");
    }

    #[test]
    fn duplicated_swapped_or_nested_markers_are_refused() {
        let dup = format!("{DOC}<!-- orbas bench seed: begin -->\n<!-- orbas bench seed: end -->\n");
        let err = splice(&dup, "seed", "x").expect_err("duplicated").to_string();
        assert!(err.contains("appears 2 times"), "{err}");
        let swapped = "<!-- orbas bench seed: end -->\nx\n<!-- orbas bench seed: begin -->\n";
        assert!(splice(swapped, "seed", "y").expect_err("swapped").to_string().contains("comes before"));
        let nested =
            "<!-- orbas bench seed: begin -->\n<!-- orbas bench cdc: begin -->\n<!-- orbas bench seed: end -->\n";
        assert!(splice(nested, "seed", "y").expect_err("nested").to_string().contains("cannot nest"));
    }

    #[test]
    fn markers_count_only_on_lines_of_their_own() {
        let inline = DOC.replace("commentary after", "see `<!-- orbas bench seed: begin -->` above");
        assert!(splice(&inline, "seed", "x").is_ok());
    }

    #[test]
    fn the_summary_reads_each_blocks_metadata() {
        let meta = Meta {
            bench: "seed".into(),
            command: "orbas bench seed --scale 1".into(),
            when: "2026-12-06 18:00".into(),
            took_secs: 75.0,
            headline: Some("ratio orbas/psql: 1.52".into()),
            quick: false,
        };
        let doc = splice(DOC, "seed", &format!("{}\nfigures", meta.line().expect("meta"))).expect("spliced");
        assert_eq!(super::meta(&doc, "seed"), Some(meta));
        let table = summary(&doc, &[("seed", "orbas bench seed".into()), ("cdc", "orbas bench cdc".into())]);
        assert!(table.contains(
            "| seed | `orbas bench seed --scale 1` | 2026-12-06 18:00 | 1 min 15 s | ratio orbas/psql: 1.52 |"
        ));
        assert!(table.contains("| cdc | `orbas bench cdc` | — (hand-written figures) | | |"), "{table}");
    }

    #[test]
    fn headings_are_demoted_and_headlines_found() {
        assert_eq!(demote_headings("## KPI suite\n\n| a |\n"), "#### KPI suite\n\n| a |\n");
        let out = "| x |\n\n**ratio** orbas/psql: 1.52\n";
        assert_eq!(headline(out, &["ratio"]), Some("ratio orbas/psql: 1.52".into()));
        assert_eq!(headline("| sink / writer | 1.0 % | |", &["| sink / writer"]), Some("sink / writer; 1.0 %".into()));
        assert_eq!(headline(out, &["target"]), None);
    }
}
