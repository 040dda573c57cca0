//! Why a bundle could not be loaded: every located problem, not only the
//! first.

use crate::diagnostic::Diagnostic;

/// Why a bundle could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("`{0}` is not a directory")]
    NotADirectory(String),
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("invalid bundle: {}", summary(.0))]
    Invalid(Vec<Diagnostic>),
}

impl BundleError {
    /// The located problems, one per line when displayed.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Self::Invalid(d) => d.clone(),
            Self::NotADirectory(p) => vec![Diagnostic::file(p, "not a directory")],
            Self::Io { path, message } => vec![Diagnostic::file(path, message.clone())],
        }
    }
}

fn summary(diagnostics: &[Diagnostic]) -> String {
    match diagnostics {
        [] => "no diagnostics".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}
