//! `warrant fmt [--check] DIR`: format a bundle's policies with Cedar's own
//! formatter (`cedar-policy-formatter`, the code behind the Cedar CLI's
//! `format`), so every bundle reads one way and a review shows meaning, not
//! spacing.
//!
//! Every `*.cedar` file directly in `DIR` (the files a bundle loads) is
//! formatted at Cedar's defaults (80 columns, indent 2); comments stay.
//! Without `--check` the files that change are rewritten in place (through
//! a temporary file and a rename, so an interrupted run leaves each file
//! whole) and listed. With `--check` nothing is written: the files that
//! would change are listed and the exit code is 1, for CI. A file Cedar
//! cannot parse is an error naming it (exit 2); `warrant check` locates
//! the problem.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cedar_policy_formatter::{Config, policies_str_to_pretty};

/// Why a bundle could not be formatted.
#[derive(Debug, thiserror::Error)]
pub enum FmtError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("`{path}` does not parse as Cedar policies (`warrant check` locates the problem): {message}")]
    Parse { path: PathBuf, message: String },
    #[error("`{0}` has no `*.cedar` file")]
    Empty(PathBuf),
}

/// The `*.cedar` files of bundle `dir`, sorted.
fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, FmtError> {
    let read = |source| FmtError::Read { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "cedar") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(FmtError::Empty(dir.to_path_buf()));
    }
    Ok(files)
}

/// `text` as Cedar's formatter writes it.
pub fn format(path: &Path, text: &str) -> Result<String, FmtError> {
    policies_str_to_pretty(text, &Config::default())
        .map_err(|e| FmtError::Parse { path: path.to_path_buf(), message: format!("{e:#}").replace('\n', " ") })
}

/// The files of `dir` whose formatting differs, rewritten unless `check`.
pub fn format_dir(dir: &Path, check: bool) -> Result<Vec<PathBuf>, FmtError> {
    let mut changed = Vec::new();
    for path in policy_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|source| FmtError::Read { path: path.clone(), source })?;
        let pretty = format(&path, &text)?;
        if pretty == text {
            continue;
        }
        if !check {
            let write = |source| FmtError::Write { path: path.clone(), source };
            let temp = path.with_extension("cedar.fmt-tmp");
            std::fs::write(&temp, &pretty).map_err(write)?;
            std::fs::rename(&temp, &path).map_err(write)?;
        }
        changed.push(path);
    }
    Ok(changed)
}

pub fn run(dir: &Path, check: bool) -> ExitCode {
    match format_dir(dir, check) {
        Ok(changed) if changed.is_empty() => {
            println!("ok: `{}` is formatted", dir.display());
            ExitCode::SUCCESS
        }
        Ok(changed) => {
            for path in &changed {
                println!("{}{}", if check { "would format " } else { "formatted " }, path.display());
            }
            if check {
                eprintln!("error: {} file(s) not formatted; run `warrant fmt {}`", changed.len(), dir.display());
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    const MESSY: &str =
        "// who may read\npermit(principal==User::\"ann\",action==Action::\"read\",resource)when{resource.public};\n";

    #[test]
    fn check_lists_without_writing_and_fmt_rewrites_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.cedar");
        std::fs::write(&file, MESSY).unwrap();
        assert_eq!(format_dir(dir.path(), true).unwrap(), vec![file.clone()]);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), MESSY, "--check writes nothing");
        assert_eq!(format_dir(dir.path(), false).unwrap(), vec![file.clone()]);
        let formatted = std::fs::read_to_string(&file).unwrap();
        assert!(formatted.contains("// who may read"), "comments stay: {formatted}");
        assert!(formatted.contains("principal == User::\"ann\""), "{formatted}");
        assert!(format_dir(dir.path(), true).unwrap().is_empty(), "formatted is a fixed point");
        assert!(!dir.path().join("p.cedar.fmt-tmp").exists());
    }

    #[test]
    fn a_file_that_does_not_parse_is_named_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.cedar");
        std::fs::write(&file, "permit(principal,").unwrap();
        let e = format_dir(dir.path(), false).unwrap_err();
        assert!(matches!(&e, FmtError::Parse { path, .. } if path == &file), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "permit(principal,");
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(format_dir(empty.path(), true), Err(FmtError::Empty(_))));
    }
}
