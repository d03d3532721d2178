//! `docs/TUTORIAL.md` is run: the real `orbas demo` with the arguments the tutorial gives it, then
//! every command of the tutorial's ```` ```console ```` blocks in one bash session (so variables and
//! functions carry from step to step), each one's output compared with the output the tutorial shows.
//!
//! The tutorial's conventions, which [`steps`] and [`matches`] implement:
//! - a ```` ```console ```` block holds commands (`$ ` lines; a command ending in ` \` goes on on the
//!   next line, one with a here-document until its end marker) each followed by its expected output;
//!   other blocks are shown, not run;
//! - the demo is started as the tutorial's `./scripts/demo.sh …` line says, on free ports; `API`
//!   is set to its address before the first command (the tutorial keeps it: `${API:-…}`);
//! - in expected output, `…` stands for any text within a line, a line of just `…` for any number
//!   of lines (none included), and `≈12.5` for any number (`≈12.5±0.5`: a number within 0.5 of 12.5);
//!   trailing blanks and trailing empty lines do not count;
//! - a command must exit with status 0 within [`STEP_TIMEOUT`] (the tutorial's waiting loops are
//!   `until …; do sleep 1; done`, so a loop that never moves fails the test here).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TUTORIAL: &str = include_str!("../../../docs/TUTORIAL.md");
/// The longest one command may take (the waits for the pipeline included).
const STEP_TIMEOUT: Duration = Duration::from_secs(240);
/// The longest the demo may take to print its URLs (a debug build seeding and snapshotting).
const DEMO_TIMEOUT: Duration = Duration::from_secs(600);

/// One command of the tutorial and the output it shows.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    /// The line of the tutorial the command starts on (1-based).
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// The commands of the ```` ```console ```` blocks of `markdown`, in order.
fn steps(markdown: &str) -> Result<Vec<Step>, String> {
    let mut out: Vec<Step> = Vec::new();
    let (mut fence, mut console) = (false, false);
    // What the command being read still needs: `None` when it is complete.
    let mut open: Option<Continue> = None;
    for (i, line) in markdown.lines().enumerate() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if open.is_some() {
                return Err(format!("line {}: a command runs into the end of its block", i + 1));
            }
            console = !fence && info.trim() == "console";
            fence = !fence;
            continue;
        }
        if !console {
            continue;
        }
        if let Some(need) = open.take() {
            let step = out.last_mut().ok_or("a continuation without a command")?;
            step.command.push('\n');
            step.command.push_str(line);
            open = match need {
                Continue::Heredoc(end) if line != end => Some(Continue::Heredoc(end)),
                _ => continues(line),
            };
        } else if let Some(command) = line.strip_prefix("$ ") {
            out.push(Step { line: i + 1, command: command.to_owned(), expected: Vec::new() });
            open = continues(command);
        } else {
            let step = out.last_mut().ok_or_else(|| format!("line {}: output before any `$ ` command", i + 1))?;
            step.expected.push(line.to_owned());
        }
    }
    if fence {
        return Err("a code block is not closed".into());
    }
    Ok(out)
}

/// Why a command goes on on the next line.
#[derive(Debug, Clone, PartialEq)]
enum Continue {
    /// The line ends in ` \\`.
    Backslash,
    /// A here-document (`<<EOF`, `<<'EOF'`) runs until a line `EOF`.
    Heredoc(String),
}

/// Whether the command line `line` goes on on the next line.
fn continues(line: &str) -> Option<Continue> {
    let heredoc = line.match_indices("<<").find_map(|(at, _)| {
        let rest = &line[at + 2..];
        if line[..at].ends_with('<') || rest.starts_with('<') {
            return None; // `<<<`: a here-string
        }
        let word: String = rest
            .trim_start_matches('-')
            .trim_start_matches(['\'', '"'])
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!word.is_empty()).then_some(word)
    });
    match heredoc {
        Some(end) => Some(Continue::Heredoc(end)),
        None => line.ends_with(" \\").then_some(Continue::Backslash),
    }
}

/// Whether `actual` (a command's whole output) is what `expected` shows; if not, why.
fn matches(expected: &[String], actual: &str) -> Result<(), String> {
    let trim = |lines: Vec<&str>| -> Vec<String> {
        let mut v: Vec<String> = lines.into_iter().map(|l| l.trim_end().to_owned()).collect();
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    };
    let want = trim(expected.iter().map(String::as_str).collect());
    let got = trim(actual.lines().collect());
    // ok[i][j]: want[i..] matches got[j..].
    let (n, m) = (want.len(), got.len());
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if want[i] == "…" {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && line_matches(&want[i], &got[j]) && ok[i + 1][j + 1]
            };
        }
    }
    if ok[0][0] {
        return Ok(());
    }
    let first_miss = want
        .iter()
        .zip(&got)
        .find(|(w, g)| w.as_str() != "…" && !line_matches(w, g))
        .map(|(w, g)| format!("\nfirst differing line:\n  expected: {w}\n  actual:   {g}"))
        .unwrap_or_default();
    Err(format!("expected:\n{}\nactual:\n{}{first_miss}", want.join("\n"), got.join("\n")))
}

/// A piece of an expected line.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// `…`
    Any,
    /// `≈value` or `≈value±tolerance` (no tolerance: any number).
    Number(f64, Option<f64>),
}

fn pieces(pattern: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let after = &rest[c.len_utf8()..];
        let placeholder = match c {
            '…' => Some((Piece::Any, after)),
            '≈' => number_at(after).map(|(value, len)| {
                let after = &after[len..];
                match after.strip_prefix('±').and_then(|t| number_at(t).map(|(tol, l)| (tol, &t[l..]))) {
                    Some((tol, after)) => (Piece::Number(value, Some(tol)), after),
                    None => (Piece::Number(value, None), after),
                }
            }),
            _ => None,
        };
        match placeholder {
            Some((piece, after)) => {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(piece);
                rest = after;
            }
            None => {
                text.push(c);
                rest = after;
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

/// The number at the start of `s` (`-12`, `0.25`, `1e-3`) and its length in bytes.
fn number_at(s: &str) -> Option<(f64, usize)> {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let start = usize::from(b.first() == Some(&b'-'));
    let mut end = digits(start);
    if end == start {
        return None;
    }
    if b.get(end) == Some(&b'.') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
        end = digits(end + 1);
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign);
        if exp > end + 1 + sign {
            end = exp;
        }
    }
    s[..end].parse().ok().map(|v| (v, end))
}

fn line_matches(pattern: &str, line: &str) -> bool {
    fn rest(pieces: &[Piece], line: &str) -> bool {
        let Some((first, more)) = pieces.split_first() else { return line.is_empty() };
        match first {
            Piece::Text(t) => line.strip_prefix(t.as_str()).is_some_and(|l| rest(more, l)),
            Piece::Any => line.char_indices().map(|(i, _)| i).chain([line.len()]).any(|i| rest(more, &line[i..])),
            Piece::Number(want, tolerance) => number_at(line).is_some_and(|(got, len)| {
                tolerance.is_none_or(|t| (got - want).abs() <= t) && rest(more, &line[len..])
            }),
        }
    }
    rest(&pieces(pattern), line)
}

/// The arguments the tutorial starts the demo with: its `./scripts/demo.sh …` line.
fn demo_args(markdown: &str) -> Result<Vec<String>, String> {
    let line = markdown
        .lines()
        .find_map(|l| l.trim().strip_prefix("./scripts/demo.sh"))
        .ok_or("the tutorial starts the demo with a `./scripts/demo.sh …` line")?;
    let args = line.split('#').next().unwrap_or_default();
    Ok(args.split_whitespace().map(str::to_owned).collect())
}

/// `orbas demo` as a child process, stopped as Ctrl-C would stop it (so its Postgres and broker stop
/// too) when dropped.
struct Demo {
    child: Child,
    api: String,
    /// What the demo printed on its stdout (its banner: tenants, admins, URLs; its progress).
    stdout: Arc<Mutex<String>>,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl Demo {
    fn start(args: &[String]) -> Demo {
        let data = tempfile::Builder::new().prefix("orbas-tutorial-").tempdir().expect("temp dir");
        let log = data.path().join("demo.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_orbas"))
            .arg("demo")
            .args(args)
            .env("ORBAS_HTTP_ADDR", "127.0.0.1:0")
            .env("ORBAS_SQL_ADDR", "127.0.0.1:0")
            .env_remove("ORBAS_DEMO_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("ORBAS_APP_DATABASE_URL")
            .env_remove("ORBAS_APP_PASSWORD")
            .env_remove("KAFKA_BROKERS")
            .env_remove("ORBAS_LAKE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("demo log"))
            .spawn()
            .expect("start orbas demo");
        let lines = lines_of(child.stdout.take().expect("the demo's stdout"));
        let deadline = Instant::now() + DEMO_TIMEOUT;
        let mut banner = String::new();
        let api = loop {
            let line = match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(e) => panic!("the demo printed no API address ({e:?}):\n{banner}\n{}", tail(&log)),
            };
            banner.push_str(&line);
            banner.push('\n');
            if let Some(api) = line.trim_start().strip_prefix("API").map(str::trim)
                && api.starts_with("http://")
            {
                break api.to_owned();
            }
        };
        // Keep draining its stdout, or a full pipe would stall the demo; kept for a failure's report.
        let stdout = Arc::new(Mutex::new(banner));
        let kept = Arc::clone(&stdout);
        std::thread::spawn(move || {
            while let Ok(line) = lines.recv() {
                if let Ok(mut out) = kept.lock() {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        });
        Demo { child, api, stdout, log, _data: data }
    }
}

impl Drop for Demo {
    /// Ctrl-C as a reader would press it: once (every service finishes its batch, Postgres shuts
    /// down), and again if that takes long (the demo exits at once; its watchdogs stop Postgres and
    /// the broker); killed only if even that hangs.
    fn drop(&mut self) {
        for wait in [30, 15] {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(wait);
            while Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of `out`, read on a thread.
fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The last lines of a log file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!("the demo's log ({}), last lines:\n{}", path.display(), lines[lines.len().saturating_sub(40)..].join("\n"))
}

/// One bash process the tutorial's commands run in, one after the other.
struct Shell {
    child: Child,
    stdin: ChildStdin,
    done: Receiver<String>,
    dir: tempfile::TempDir,
}

impl Shell {
    fn start(api: &str) -> Shell {
        let dir = tempfile::Builder::new().prefix("orbas-tutorial-shell-").tempdir().expect("temp dir");
        let mut child = Command::new("bash")
            .args(["--noprofile", "--norc"])
            .current_dir(dir.path())
            .env("API", api)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start bash");
        let stdin = child.stdin.take().expect("bash's stdin");
        let done = lines_of(child.stdout.take().expect("bash's stdout"));
        Shell { child, stdin, done, dir }
    }

    /// Runs `command` as the `n`th step: its exit status and its output (stdout and stderr).
    fn run(&mut self, n: usize, command: &str) -> Result<(i32, String), String> {
        let out = self.dir.path().join(format!("step-{n}.out"));
        let script = format!("{{\n{command}\n}} >{} 2>&1 </dev/null\necho \"step {n} exited $?\"\n", out.display());
        self.stdin.write_all(script.as_bytes()).and_then(|()| self.stdin.flush()).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            match self.done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let Some(status) = line.strip_prefix(&format!("step {n} exited ")) else { continue };
                    let output = std::fs::read_to_string(&out).unwrap_or_default();
                    return Ok((status.trim().parse().unwrap_or(-1), output));
                }
                Err(RecvTimeoutError::Timeout) => {
                    let output = std::fs::read_to_string(&out).unwrap_or_default();
                    return Err(format!("still running after {STEP_TIMEOUT:?}; its output so far:\n{output}"));
                }
                Err(RecvTimeoutError::Disconnected) => return Err("bash exited (a syntax error?)".into()),
            }
        }
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_tutorial_runs_as_written() {
    let steps = steps(TUTORIAL).expect("the tutorial's console blocks");
    assert!(steps.len() >= 10, "the tutorial has its steps: {steps:?}");
    let demo = Demo::start(&demo_args(TUTORIAL).expect("the demo's arguments"));
    let mut shell = Shell::start(&demo.api);
    let started = Instant::now();
    for (n, step) in steps.iter().enumerate() {
        let at = Instant::now();
        let outcome = shell.run(n, &step.command).and_then(|(status, output)| match status {
            0 => matches(&step.expected, &output),
            s => Err(format!("exited with status {s}; output:\n{output}")),
        });
        if let Err(why) = outcome {
            panic!(
                "docs/TUTORIAL.md line {}: `{}`\n{why}\n\nthe demo's stdout:\n{}\n{}",
                step.line,
                step.command,
                demo.stdout.lock().map(|s| s.clone()).unwrap_or_default(),
                tail(&demo.log)
            );
        }
        eprintln!("tutorial: line {} ok in {:.1} s", step.line, at.elapsed().as_secs_f64());
    }
    eprintln!("tutorial: {} commands in {:.0} s", steps.len(), started.elapsed().as_secs_f64());
}

#[test]
fn tutorial_steps_are_read_from_console_blocks_only() {
    let doc = "intro\n```sh\n./scripts/demo.sh --scale 0.02 # small\n```\n```console\n$ echo a \\\n  b\na b\n\n\
               $ true\n```\n```text\n$ not run\n```\n";
    let s = steps(doc).expect("steps");
    assert_eq!(s.len(), 2);
    assert_eq!((s[0].line, s[0].command.as_str()), (6, "echo a \\\n  b"));
    assert_eq!(s[0].expected, ["a b", ""]);
    assert_eq!((s[1].command.as_str(), s[1].expected.len()), ("true", 0));
    assert_eq!(demo_args(doc).expect("args"), ["--scale", "0.02"]);
    let heredoc =
        steps("```console\n$ cat <<'EOF' | wc -l\none\n$ two\nEOF\n2\n$ cat <<<x\nx\n```\n").expect("heredoc");
    assert_eq!(heredoc.len(), 2);
    assert_eq!(
        (heredoc[0].command.as_str(), heredoc[0].expected.as_slice()),
        ("cat <<'EOF' | wc -l\none\n$ two\nEOF", &["2".to_owned()][..])
    );
    assert!(steps("```console\nno command yet\n```\n").is_err());
    assert!(steps("```console\n$ echo open\n").is_err());
}

#[test]
fn tutorial_output_matches_with_placeholders() {
    let want = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();
    // Literal lines; trailing blanks and empty lines do not count.
    assert!(matches(&want("a\nb"), "a  \nb\n\n").is_ok());
    assert!(matches(&want("a\nb"), "a\nc").is_err());
    assert!(matches(&want("a"), "a\nb").is_err());
    // `…` within a line, and as whole lines (none, one, many).
    assert!(matches(&want("id: …, name: …"), "id: 7f3a, name: Acme").is_ok());
    assert!(matches(&want("id: …!"), "id: 7f3a").is_err());
    assert!(matches(&want("head\n…\ntail"), "head\ntail").is_ok());
    assert!(matches(&want("head\n…\ntail"), "head\n1\n2\ntail").is_ok());
    assert!(matches(&want("head\n…\ntail"), "head\n1\n2").is_err());
    // Numbers: any number, or within a tolerance; never text.
    assert!(matches(&want("\"score\": ≈0.23,"), "\"score\": 0.4117,").is_ok());
    assert!(matches(&want("\"score\": ≈0.23,"), "\"score\": null,").is_err());
    assert!(matches(&want("p = ≈0.23±0.05"), "p = 0.26").is_ok());
    assert!(matches(&want("p = ≈0.23±0.05"), "p = 0.31").is_err());
    assert!(matches(&want("≈3 meetings"), "-12 meetings").is_ok());
    assert!(matches(&want("≈3 meetings"), "1.5e3 meetings").is_ok());
    assert!(matches(&want("≈3"), "3x").is_err());
    // A changed response shape fails.
    assert!(matches(&want("{\n  \"score\": ≈0.2\n}"), "{\n  \"probability\": 0.2\n}").is_err());
}
