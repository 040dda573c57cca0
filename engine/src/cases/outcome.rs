//! What running a case gives, shared by both test-file formats.

use serde::Deserialize;

/// The decision a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Expect {
    Allow,
    Deny,
}

/// The outcome of one case (or of a file that could not be read).
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    pub name: String,
    /// `None` when the case passed; otherwise what went wrong.
    pub failure: Option<String>,
}

/// All outcomes of a run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub results: Vec<CaseResult>,
}

impl Report {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.failure.is_none()).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}
