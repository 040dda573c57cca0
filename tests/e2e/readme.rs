//! The README's examples, run as printed against the README's own demo
//! server, and their output compared with what the README says they print.
//!
//! The extractor reads every fenced block whose language is `sh`, in order:
//! - the block holding `serve --demo` is the server: started in the
//!   background (in a scratch directory where `policies/`, `service/`
//!   and `wasm-guests/` are the repository's) on a free port;
//! - a block tagged `sh not-tested` is skipped (building and testing warrant
//!   itself, a second foreground server); every other block runs;
//! - in a block, the lines up to a run of `# ` lines are one step (a
//!   command may span lines), and those `# ` lines are what the step must
//!   print on stdout, line for line, where `…` stands for any text (ids,
//!   MACs and times differ between runs). A step with no `# ` lines must
//!   only succeed.
//!
//! All steps run in one `bash`, so a variable one sets (`KEY=…`) is there for
//! the next. `cargo run --release -p warrant-service --` becomes the binary
//! under test and `localhost:8180` the demo server's address; nothing else
//! is rewritten.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::server::{follow_log, warrant_bin};

const CARGO_RUN: &str = "cargo run --release -p warrant-service --";
const ADDRESS: &str = "localhost:8180";

/// A fenced `sh` block: its info string after `sh`, first line number, lines.
#[derive(Debug)]
struct Block {
    tags: String,
    line: usize,
    lines: Vec<String>,
}

/// Commands and the output the README shows for them.
#[derive(Debug, PartialEq)]
struct Step {
    line: usize,
    commands: String,
    expected: Vec<String>,
}

fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (n, line) in markdown.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                let mut words = info.split_whitespace();
                if words.next() == Some("sh") {
                    open = Some(Block { tags: words.collect::<Vec<_>>().join(" "), line: n + 2, lines: Vec::new() });
                } else {
                    // Another language: skip to its closing fence.
                    open = Some(Block { tags: "\u{0}other".into(), line: n + 2, lines: Vec::new() });
                }
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                if let Some(block) = open.take().filter(|b| b.tags != "\u{0}other") {
                    blocks.push(block);
                }
            }
            (Some(block), _) => block.lines.push(line.to_owned()),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md ends inside a fenced block");
    blocks
}

fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut commands = String::new();
    let mut start = block.line;
    for (i, line) in block.lines.iter().enumerate() {
        if let Some(output) = line.strip_prefix("# ").or_else(|| (line == "#").then_some("")) {
            match steps.last_mut() {
                Some(last) if commands.is_empty() => last.expected.push(output.to_owned()),
                _ => {
                    assert!(!commands.is_empty(), "README.md:{}: output with no command before it", block.line + i);
                    steps.push(Step {
                        line: start,
                        commands: std::mem::take(&mut commands),
                        expected: vec![output.to_owned()],
                    });
                }
            }
        } else {
            if commands.is_empty() {
                start = block.line + i;
            }
            commands.push_str(line);
            commands.push('\n');
        }
    }
    if !commands.trim().is_empty() {
        steps.push(Step { line: start, commands, expected: Vec::new() });
    }
    steps
}

/// Whether `actual` is `expected`, where `…` in `expected` matches any text.
fn matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = actual.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn output_matches(expected: &[String], actual: &str) -> bool {
    let actual: Vec<&str> = actual.lines().map(str::trim_end).collect();
    actual.len() == expected.len() && expected.iter().zip(&actual).all(|(e, a)| matches(e, a))
}

/// The demo server started from the README's command, and where it listens.
struct Demo {
    child: Child,
    address: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn isolated(command: &mut Command, dir: &Path) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WARRANT_") {
            command.env_remove(name);
        }
    }
    command.current_dir(dir).env("XDG_CONFIG_HOME", dir.join("config"));
}

fn rewrite(commands: &str, bin: &Path, address: &str) -> String {
    commands.replace(CARGO_RUN, &format!("'{}'", bin.display())).replace(ADDRESS, address)
}

fn start_demo(command: &str, dir: &Path, bin: &Path) -> Demo {
    let mut bash = Command::new("bash");
    bash.args(["-c", &format!("exec {}", rewrite(command.trim(), bin, ADDRESS))]);
    isolated(&mut bash, dir);
    let mut child = bash
        .env("WARRANT_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the README's serve command");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let rx = follow_log(child.stderr.take().expect("piped stderr"), std::sync::Arc::clone(&log));
    let mut demo = Demo { child, address: String::new(), log };
    match rx.recv_timeout(Duration::from_secs(60)) {
        // `http://127.0.0.1:PORT` → what stands for `localhost:8180`.
        Ok(base) => demo.address = base.trim_start_matches("http://").to_owned(),
        Err(_) => panic!("the README's `{command}` did not listen; log:\n{}", demo.log.lock().expect("log buffer")),
    }
    demo
}

#[test]
fn every_readme_example_prints_what_the_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let bundle = root.join("wasm-guests/dist/bundle");
    assert!(bundle.is_dir(), "{} is missing: run wasm-guests/build.sh (tests/run does)", bundle.display());
    let blocks = sh_blocks(&readme);
    let serve: Vec<&Block> = blocks.iter().filter(|b| b.lines.iter().any(|l| l.contains(" serve --demo"))).collect();
    let [serve] = serve.as_slice() else { panic!("README.md must have one block with `serve --demo`: {serve:?}") };
    assert_eq!(serve.lines.len(), 1, "README.md:{}: the serve block holds the serve command alone", serve.line);

    let dir = tempfile::tempdir().expect("scratch directory");
    for linked in ["policies", "wasm-guests", "service"] {
        std::os::unix::fs::symlink(root.join(linked), dir.path().join(linked)).expect("link into the scratch dir");
    }
    let bin = warrant_bin();
    let demo = start_demo(&serve.lines[0], dir.path(), &bin);

    let steps: Vec<Step> = blocks
        .iter()
        .filter(|b| b.line != serve.line && !b.tags.split_whitespace().any(|t| t == "not-tested"))
        .flat_map(steps)
        .collect();
    assert!(
        steps.iter().filter(|s| !s.expected.is_empty()).count() >= 8,
        "the extractor found too few examples with output: {steps:#?}"
    );
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("output directory");
    let mut script = String::from("set -u\n");
    for (i, step) in steps.iter().enumerate() {
        let commands = rewrite(&step.commands, &bin, &demo.address);
        let o = out.join(i.to_string());
        script.push_str(&format!(
            "{{\n{commands}}} > '{o}.stdout' 2> '{o}.stderr' < /dev/null\necho $? > '{o}.status'\n",
            o = o.display()
        ));
    }
    let mut bash = Command::new("bash");
    bash.args(["-c", &script]);
    isolated(&mut bash, dir.path());
    let status = bash.status().expect("run the README's examples");
    assert!(status.success(), "the examples' script itself failed: {status}");

    let mut failures = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let read = |ext: &str| std::fs::read_to_string(out.join(format!("{i}.{ext}"))).unwrap_or_default();
        let (stdout, stderr, status) = (read("stdout"), read("stderr"), read("status"));
        let passed = status.trim() == "0" && (step.expected.is_empty() || output_matches(&step.expected, &stdout));
        if !passed {
            failures.push(format!(
                "README.md:{}:\n{}  exit {}\n  expected:\n    {}\n  stdout:\n    {}\n  stderr:\n    {}",
                step.line,
                step.commands,
                status.trim(),
                step.expected.join("\n    "),
                stdout.trim_end().replace('\n', "\n    "),
                stderr.trim_end().replace('\n', "\n    "),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} README example(s) print something else:\n\n{}\n\nserver log:\n{}",
        failures.len(),
        failures.join("\n\n"),
        demo.log.lock().expect("log buffer")
    );
}

#[test]
fn the_extractor_splits_steps_and_compares_with_wildcards() {
    let markdown = "text\n```sh\nA=1 \\\n  B=2\necho $A\n# 1\nfalse\n```\n```json\n{}\n```\n```sh not-tested\nx\n```\n";
    let blocks = sh_blocks(markdown);
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[1].tags, "not-tested");
    assert_eq!(
        steps(&blocks[0]),
        vec![
            Step { line: 3, commands: "A=1 \\\n  B=2\necho $A\n".into(), expected: vec!["1".into()] },
            Step { line: 7, commands: "false\n".into(), expected: vec![] },
        ]
    );
    assert!(matches(r#"{"seq":…,"mac":"…"}"#, r#"{"seq":10,"mac":"ab12"}"#));
    assert!(!matches(r#"{"seq":…,"mac":"…"}"#, r#"{"seq":10,"kind":"x"}"#));
    assert!(!matches("ok", "ok, and more"));
    assert!(matches("…", "anything"));
    assert!(!output_matches(&["a".into()], "a\nb\n"), "an extra line fails");
}
