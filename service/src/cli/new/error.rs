//! Why `warrant new …` wrote nothing (or could not finish).

use std::path::PathBuf;

/// Why `warrant new rule|test` could not do its work. Each is checked before
/// the first file is written, except [`Io`](Self::Io), after which what was
/// written is removed again.
#[derive(Debug, thiserror::Error)]
pub enum NewCommandError {
    #[error("invalid name `{name}`: {why}")]
    InvalidName { name: String, why: String },
    #[error("`{}` already exists: choose another name, or remove it first", .0.display())]
    Exists(PathBuf),
    #[error("the name `{name}` is taken: {why}")]
    Taken { name: String, why: String },
    #[error("`{}` is not a guest workspace like `wasm-guests/`: {why}", path.display())]
    NotAGuestWorkspace { path: PathBuf, why: String },
    #[error("`{}`: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
    #[error("the bundle in `{}` does not load; fix it first (`warrant check`):\n{problems}", dir.display())]
    Bundle { dir: PathBuf, problems: String },
    #[error("the bundle's schema has no action `{0}`")]
    UnknownAction(String),
    #[error("the bundle's schema declares no action that applies to any entity type: nothing to test")]
    NothingToTest,
}

impl NewCommandError {
    pub(super) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |error| Self::Io { path, error }
    }
}
