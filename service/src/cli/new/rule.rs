//! `warrant new rule NAME`: a Rust rule crate in the guest workspace, wired
//! so that `build.sh` builds it, the example manifest runs it and the
//! example cases test it, with no edit anywhere else.
//!
//! What it writes (templates in `../templates/rule/`):
//! - `rules/NAME/`: `Cargo.toml`, `src/lib.rs` (a `Rule` whose `evaluate` is
//!   the one function to edit, a typed `Config`, unit tests) and
//!   `config.example.json`;
//! - an entry `NAME` at the end of `example-rules/manifest.json`, its
//!   `config` the example config;
//! - `example-rules/tests/NAME.json`: cases for the starter logic over the
//!   policy pack, which `build.sh` copies into `dist/bundle/tests/`;
//! - `Cargo.lock`, through `cargo update --workspace --offline`: the
//!   workspace takes its members from `rules/*`, but `build.sh` builds with
//!   `--locked`, which refuses a crate the lock file does not list.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use serde_json::Value;

use super::error::NewCommandError;
use super::name::Name;
use super::written::Written;

const CARGO_TOML: &str = include_str!("../templates/rule/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/rule/lib.rs.tmpl");
const CONFIG: &str = include_str!("../templates/rule/config.example.json.tmpl");
const MANIFEST_ENTRY: &str = include_str!("../templates/rule/manifest-entry.json.tmpl");
const CASES: &str = include_str!("../templates/rule/cases.json.tmpl");

/// Names Cargo or Rust refuse for a crate: keywords (strict and reserved)
/// and the crates of Rust's own distribution.
const RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// The guest workspace's files this command reads or extends.
#[derive(Debug)]
struct Workspace {
    root: PathBuf,
    /// `[workspace.dependencies]` keys: a rule crate named like one would
    /// shadow it.
    dependencies: Vec<String>,
    manifest_path: PathBuf,
    manifest_text: String,
}

impl Workspace {
    fn open(root: &Path) -> Result<Self, NewCommandError> {
        let refuse = |why: String| NewCommandError::NotAGuestWorkspace { path: root.to_owned(), why };
        let cargo_toml = std::fs::read_to_string(root.join("Cargo.toml"))
            .map_err(|e| refuse(format!("cannot read `Cargo.toml`: {e}")))?;
        // INVARIANT: the crate written under rules/ is a member without an
        // edit to Cargo.toml (and build.sh finds it the same way).
        if !cargo_toml.contains("\"rules/*\"") {
            return Err(refuse("its `Cargo.toml` does not take its members from `rules/*`".to_owned()));
        }
        if !root.join("rules").is_dir() {
            return Err(refuse("it has no `rules/` folder".to_owned()));
        }
        let manifest_path = root.join("example-rules/manifest.json");
        let manifest_text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| refuse(format!("cannot read `example-rules/manifest.json`: {e}")))?;
        Ok(Self {
            root: root.to_owned(),
            dependencies: workspace_dependencies(&cargo_toml),
            manifest_path,
            manifest_text,
        })
    }

    fn rule_dir(&self, name: &Name) -> PathBuf {
        self.root.join("rules").join(name.as_str())
    }

    fn cases_path(&self, name: &Name) -> PathBuf {
        self.root.join("example-rules/tests").join(format!("{name}.json"))
    }

    /// Refuses a name Rust, Cargo, the workspace or the manifest already uses.
    fn refuse_taken(&self, name: &Name) -> Result<(), NewCommandError> {
        let taken = |why: String| NewCommandError::Taken { name: name.to_string(), why };
        let snake = name.snake();
        if RESERVED.contains(&snake.as_str()) {
            return Err(taken("Rust or Cargo reserves it for itself".to_owned()));
        }
        if let Some(dependency) = self.dependencies.iter().find(|d| d.replace('-', "_") == snake) {
            return Err(taken(format!("the guest workspace depends on the crate `{dependency}`")));
        }
        let camel = name.camel();
        if identifiers(LIB_RS).any(|word| word == camel) {
            return Err(taken(format!("its type `{camel}` would clash with `{camel}` in the rule's code")));
        }
        for path in [self.rule_dir(name), self.cases_path(name)] {
            if path.exists() {
                return Err(NewCommandError::Exists(path));
            }
        }
        let rules = std::fs::read_dir(self.root.join("rules")).map_err(NewCommandError::io(self.root.join("rules")))?;
        for entry in rules.filter_map(Result::ok) {
            let other = entry.file_name().to_string_lossy().into_owned();
            if other.replace('-', "_") == snake {
                return Err(taken(format!("`rules/{other}` builds the same file, `{snake}.wasm`")));
            }
        }
        let manifest: Value =
            serde_json::from_str(&self.manifest_text).map_err(|e| NewCommandError::NotAGuestWorkspace {
                path: self.root.clone(),
                why: format!("`example-rules/manifest.json` is not JSON: {e}"),
            })?;
        let entries = manifest.get("rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let file = format!("{name}.wasm");
        if entries.iter().any(|e| e["name"] == name.as_str() || e["file"] == file.as_str()) {
            return Err(taken(format!("`example-rules/manifest.json` has a rule named `{name}` or a file `{file}`")));
        }
        Ok(())
    }
}

/// The keys of `[workspace.dependencies]` in a `Cargo.toml`, read line by
/// line (no TOML parser for one table of `name = …` lines).
fn workspace_dependencies(cargo_toml: &str) -> Vec<String> {
    cargo_toml
        .lines()
        .map(str::trim)
        .skip_while(|line| *line != "[workspace.dependencies]")
        .skip(1)
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.trim()))
        .filter(|key| !key.is_empty() && !key.starts_with('#'))
        .map(ToOwned::to_owned)
        .collect()
}

/// The words of Rust code that could name an item.
fn identifiers(code: &str) -> impl Iterator<Item = &str> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty())
}

/// A template with the name's forms filled in.
fn render(template: &str, name: &Name) -> String {
    template.replace("{{name}}", name.as_str()).replace("{{Type}}", &name.camel())
}

/// The manifest entry: the template, its `config` the example config.
fn manifest_entry(name: &Name) -> String {
    render(MANIFEST_ENTRY, name).replace("{{config}}", CONFIG.trim()).trim_end().to_owned()
}

/// `text` (a manifest) with `entry` appended to its `rules`. The entry is
/// spliced in before the last `]` so that the file keeps its own layout;
/// if that does not give exactly the intended document (the file is shaped
/// otherwise), the whole manifest is written out again instead.
fn with_entry(text: &str, entry: &str) -> Result<String, String> {
    let mut wanted: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let entry_value: Value = serde_json::from_str(entry).map_err(|e| format!("the entry template is not JSON: {e}"))?;
    let rules = wanted.get_mut("rules").and_then(Value::as_array_mut).ok_or("no `rules` list")?;
    let separator = if rules.is_empty() { "\n" } else { ",\n" };
    rules.push(entry_value);
    if let Some(close) = text.rfind(']') {
        let (head, tail) = text.split_at(close);
        let spliced = format!("{}{separator}{entry}\n  {tail}", head.trim_end());
        if serde_json::from_str::<Value>(&spliced).is_ok_and(|doc| doc == wanted) {
            return Ok(spliced);
        }
    }
    Ok(format!("{wanted:#}\n"))
}

/// What became of the lock file.
#[derive(Debug)]
enum Lock {
    Updated,
    NoCargo,
    Failed(String),
}

/// Adds the new crate to `Cargo.lock` without touching any other pin, and
/// without the network (the guest workspace's dependencies are all locked,
/// and cached wherever it was built before).
fn update_lock(root: &Path) -> Lock {
    match Command::new("cargo").args(["update", "--workspace", "--offline"]).current_dir(root).output() {
        Ok(out) if out.status.success() => Lock::Updated,
        Ok(out) => Lock::Failed(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Lock::NoCargo,
        Err(e) => Lock::Failed(e.to_string()),
    }
}

pub fn run(name: &str, guests: &Path) -> Result<ExitCode, NewCommandError> {
    let name = Name::parse(name)?;
    let workspace = Workspace::open(guests)?;
    workspace.refuse_taken(&name)?;
    let manifest = with_entry(&workspace.manifest_text, &manifest_entry(&name)).map_err(|why| {
        NewCommandError::NotAGuestWorkspace {
            path: guests.to_owned(),
            why: format!("`example-rules/manifest.json`: {why}"),
        }
    })?;

    let dir = workspace.rule_dir(&name);
    let cases = workspace.cases_path(&name);
    let mut written = Written::default();
    let outcome = (|| {
        written.create_dir(&dir)?;
        written.create_dir(&dir.join("src"))?;
        written.create(&dir.join("Cargo.toml"), &render(CARGO_TOML, &name))?;
        written.create(&dir.join("src/lib.rs"), &render(LIB_RS, &name))?;
        written.create(&dir.join("config.example.json"), CONFIG)?;
        written.create(&cases, &render(CASES, &name))?;
        written.replace(&workspace.manifest_path, &workspace.manifest_text, &manifest)
    })();
    if let Err(e) = outcome {
        written.undo();
        return Err(e);
    }

    println!("created rule `{name}`:");
    println!("  {}/Cargo.toml", dir.display());
    println!("  {}/src/lib.rs: the rule, edit `evaluate`", dir.display());
    println!("  {}/config.example.json: its config, copied into the manifest entry", dir.display());
    println!("  {}: cases for the starter logic", cases.display());
    println!("  {}: entry `{name}` (actions `run_query`, mode `enforce`)", workspace.manifest_path.display());
    let lock = guests.join("Cargo.lock");
    match update_lock(guests) {
        Lock::Updated => println!("  {}: lists `{name}` (cargo update --workspace --offline)", lock.display()),
        Lock::NoCargo => eprintln!(
            "warning: cargo not found: `{}` does not list `{name}` yet, and build.sh builds with --locked: \
             run `cargo update --workspace --offline` in `{}`",
            lock.display(),
            guests.display()
        ),
        Lock::Failed(why) => eprintln!(
            "warning: `cargo update --workspace --offline` failed, so `{}` does not list `{name}` yet:\n{why}\n\
             run `cargo update --workspace` in `{}` (online if the dependencies were never fetched)",
            lock.display(),
            guests.display()
        ),
    }
    println!("next:");
    println!("  (cd {} && cargo test -p {name})   # the rule's unit tests, on the host", guests.display());
    println!("  {}", guests.join("build.sh").display());
    println!("  warrant check {}", guests.join("dist/bundle").display());
    println!("  warrant test {}", guests.join("dist/bundle").display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text).unwrap()
    }

    #[test]
    fn templates_render_to_json_where_json_is_due() {
        let n = name("eu-only");
        let entry: Value = serde_json::from_str(&manifest_entry(&n)).unwrap();
        assert_eq!(entry["name"], "eu-only");
        assert_eq!(entry["file"], "eu-only.wasm");
        let config: Value = serde_json::from_str(CONFIG).unwrap();
        assert_eq!(entry["config"], config);
        let cases: Value = serde_json::from_str(&render(CASES, &n)).unwrap();
        assert!(cases["cases"].as_array().unwrap().iter().all(|c| c["rules"]["eu-only"].is_string()));
        let code = render(LIB_RS, &n);
        assert!(code.contains("pub struct EuOnly;") && code.contains("export_rule!(EuOnly);"), "{code}");
        assert!(!code.contains("{{") && !render(CARGO_TOML, &n).contains("{{"));
    }

    #[test]
    fn the_entry_is_spliced_in_keeping_the_layout() {
        let text = "{\n  \"version\": 1,\n  \"rules\": [\n    { \"name\": \"a\", \"file\": \"a.wasm\", \"actions\": [\"x\"], \"mode\": \"enforce\" }\n  ]\n}\n";
        let out = with_entry(text, &manifest_entry(&name("b"))).unwrap();
        assert!(out.starts_with(&text[..text.rfind("}\n  ]").unwrap() + 1]), "{out}");
        assert!(out.ends_with("\n    }\n  ]\n}\n"), "{out}");
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["rules"][1]["name"], "b");

        let empty = with_entry("{\"version\": 1, \"rules\": []}", &manifest_entry(&name("b"))).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&empty).unwrap()["rules"][0]["name"], "b");

        // `rules` first: the last `]` is not the end of `rules`, so the
        // manifest is written out whole instead.
        let odd =
            with_entry("{\"rules\": [], \"tags\": [\"x\"], \"version\": 1}", &manifest_entry(&name("b"))).unwrap();
        let doc: Value = serde_json::from_str(&odd).unwrap();
        assert_eq!((doc["rules"][0]["name"].as_str(), doc["tags"][0].as_str()), (Some("b"), Some("x")));

        assert!(with_entry("{\"version\": 1}", &manifest_entry(&name("b"))).is_err());
    }

    #[test]
    fn dependencies_are_read_from_their_table() {
        let toml = "[workspace]\nmembers = [\"sdk\"]\n\n[workspace.dependencies]\nwarrant-rule-sdk = { path = \"sdk\" }\n# a comment\nserde = \"1\"\n\n[workspace.lints.rust]\nunsafe_code = \"deny\"\n";
        assert_eq!(workspace_dependencies(toml), ["warrant-rule-sdk", "serde"]);
    }
}
