//! The files that make up a bundle, and the digest that names them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

use super::error::BundleError;
use crate::diagnostic::Diagnostic;
use crate::impact::Shared;

/// Largest bundle file we read; a policy file larger than this is a mistake.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What a file in a bundle is for, judged by its relative path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Schema,
    Policies,
    Entities,
    /// `links.json`: template-linked policies.
    Links,
    /// `rules/manifest.json`.
    RulesManifest,
    /// `rules/<name>.wasm`: a rule component (binary).
    Component,
}

impl FileKind {
    /// The kind of a bundle-relative path, or `None` for files the bundle ignores
    /// (policy tests, documentation, hidden files).
    pub fn of(path: &str) -> Option<Self> {
        if path.split('/').any(|part| part.starts_with('.')) || path.starts_with("tests/") {
            return None;
        }
        if let Some(name) = path.strip_prefix("rules/") {
            return match name {
                "manifest.json" => Some(Self::RulesManifest),
                _ if name.ends_with(".wasm") && !name.contains('/') => Some(Self::Component),
                _ => None,
            };
        }
        if path.ends_with(".cedarschema") && !path.contains('/') {
            Some(Self::Schema)
        } else if path.ends_with(".cedar") {
            Some(Self::Policies)
        } else if path == "entities.json" {
            Some(Self::Entities)
        } else if path == "links.json" {
            Some(Self::Links)
        } else {
            None
        }
    }
}

/// The bundle's files by relative path (`/`-separated), only those that
/// decide anything: the schema, policy files (templates among them),
/// `links.json` (template links), `entities.json`, and the rules
/// (`rules/manifest.json` and `rules/*.wasm` components).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    /// Text files.
    files: BTreeMap<String, String>,
    /// Binary files (rule components) by bundle-relative path.
    binaries: BTreeMap<String, Vec<u8>>,
}

impl BundleSource {
    /// Reads a bundle directory. Subdirectories are searched for `*.cedar`
    /// files, except `tests/` and hidden ones.
    pub fn read_dir(dir: &Path) -> Result<Self, BundleError> {
        if !dir.is_dir() {
            return Err(BundleError::NotADirectory(dir.display().to_string()));
        }
        let mut source = Self { files: BTreeMap::new(), binaries: BTreeMap::new() };
        read_into(dir, dir, &mut source)?;
        Ok(source)
    }

    /// A bundle from in-memory files, as uploaded over HTTP. Paths must be
    /// relative, `/`-separated and free of `..`; unknown files are refused so
    /// that an upload cannot carry something the digest silently ignores.
    /// Rule components (`rules/*.wasm`) are given base64-encoded.
    pub fn from_files(files: BTreeMap<String, String>) -> Result<Self, BundleError> {
        let mut kept = BTreeMap::new();
        let mut binaries = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for (path, text) in files {
            let bad_path = path.is_empty()
                || path.starts_with('/')
                || path.contains('\\')
                || path.split('/').any(|p| p.is_empty() || p == "." || p == "..");
            if bad_path {
                diagnostics.push(Diagnostic::file(&path, "file paths must be relative and `/`-separated"));
                continue;
            }
            match FileKind::of(&path) {
                Some(FileKind::Component) => match BASE64.decode(text.trim()) {
                    Ok(bytes) => {
                        binaries.insert(path, bytes);
                    }
                    Err(e) => diagnostics.push(Diagnostic::file(&path, format!("a component must be base64: {e}"))),
                },
                Some(_) => {
                    kept.insert(path, text);
                }
                None => {}
            }
        }
        if !diagnostics.is_empty() {
            return Err(BundleError::Invalid(diagnostics));
        }
        Ok(Self { files: kept, binaries })
    }

    /// What this bundle shares with `other` beyond its policies: the
    /// schema and `entities.json` (so both see the same entities), and
    /// the custom rules.
    pub(crate) fn shared_with(&self, other: &Self) -> Shared {
        let same = |kinds: &[FileKind]| {
            let of = |source: &Self| -> Vec<(String, String)> {
                source
                    .files()
                    .filter(|(p, _)| FileKind::of(p).is_some_and(|k| kinds.contains(&k)))
                    .map(|(p, t)| (p.to_owned(), t.to_owned()))
                    .collect()
            };
            of(self) == of(other)
        };
        Shared {
            facts: same(&[FileKind::Schema, FileKind::Entities]),
            rules: same(&[FileKind::RulesManifest]) && self.binaries.eq(&other.binaries),
        }
    }

    /// Text files: relative paths and contents, in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().map(|(p, t)| (p.as_str(), t.as_str()))
    }

    /// Whether the bundle has custom rules (a manifest or components).
    pub fn has_rules(&self) -> bool {
        !self.binaries.is_empty() || self.files.keys().any(|p| FileKind::of(p) == Some(FileKind::RulesManifest))
    }

    /// Binary files (rule components): relative paths and bytes, in path order.
    pub fn binaries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.binaries.iter().map(|(p, b)| (p.as_str(), b.as_slice()))
    }

    /// Every file as text, components base64-encoded: the form
    /// [`from_files`](Self::from_files) reads back.
    pub fn to_files(&self) -> BTreeMap<String, String> {
        let mut all = self.files.clone();
        all.extend(self.binaries.iter().map(|(p, b)| (p.clone(), BASE64.encode(b))));
        all
    }

    /// `sha256:<hex>` over the canonical listing: one line per file, in byte
    /// order of path, `<sha256 hex of content>  <path>\n` — exactly what
    /// `sha256sum` prints, so an auditor can recompute it with
    /// `find . -name '*.cedar*' -o -name entities.json | sort | xargs sha256sum | sha256sum`.
    pub fn digest(&self) -> String {
        let mut listing = Sha256::new();
        let mut all: Vec<(&str, &[u8])> = self.files().map(|(p, t)| (p, t.as_bytes())).chain(self.binaries()).collect();
        all.sort_unstable_by_key(|(p, _)| *p);
        for (path, bytes) in all {
            let file_hash = hex::encode(Sha256::digest(bytes));
            listing.update(file_hash.as_bytes());
            listing.update(b"  ");
            listing.update(path.as_bytes());
            listing.update(b"\n");
        }
        format!("sha256:{}", hex::encode(listing.finalize()))
    }
}

fn read_into(root: &Path, dir: &Path, source: &mut BundleSource) -> Result<(), BundleError> {
    let io =
        |path: &Path, e: std::io::Error| BundleError::Io { path: path.display().to_string(), message: e.to_string() };
    let entries = std::fs::read_dir(dir).map_err(|e| io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let relative = relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        let file_type = entry.file_type().map_err(|e| io(&path, e))?;
        if file_type.is_dir() {
            if relative == "tests" || relative.starts_with('.') {
                continue;
            }
            read_into(root, &path, source)?;
        } else if let Some(kind) = FileKind::of(&relative) {
            let len = entry.metadata().map_err(|e| io(&path, e))?.len();
            if len > MAX_FILE_BYTES {
                return Err(BundleError::Invalid(vec![Diagnostic::file(
                    &relative,
                    format!("file is {len} bytes, larger than the {MAX_FILE_BYTES}-byte limit"),
                )]));
            }
            if kind == FileKind::Component {
                let bytes = std::fs::read(&path).map_err(|e| io(&path, e))?;
                source.binaries.insert(relative, bytes);
            } else {
                let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
                source.files.insert(relative, text);
            }
        }
    }
    Ok(())
}
