//! Problems in a bundle, each pointing at a file and, where known, a line and column.

use std::fmt;

use serde::Serialize;

/// One problem found in a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Bundle-relative path of the file at fault.
    pub file: String,
    /// 1-based line, when the problem has a location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// 1-based column (in characters), when the problem has a location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// What is wrong, lowercase, user input in backticks.
    pub message: String,
}

impl Diagnostic {
    /// A problem with a whole file. `message` is anything displayable, so
    /// a typed error can be reported as it is.
    pub fn file(file: &str, message: impl fmt::Display) -> Self {
        Self { file: file.to_owned(), line: None, column: None, message: message.to_string() }
    }

    /// A problem reported by Cedar (`miette` diagnostic) in `file`, whose text
    /// is `text`: the first labelled span gives the location.
    pub fn from_cedar(file: &str, text: &str, error: &dyn miette::Diagnostic) -> Self {
        let offset = error.labels().and_then(|mut labels| labels.next()).map(|l| l.offset());
        let (line, column) = match offset {
            Some(offset) => {
                let (line, column) = line_column(text, offset);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        let mut message = error.to_string();
        if let Some(help) = error.help() {
            message.push_str(&format!(" (help: {help})"));
        }
        Self { file: file.to_owned(), line, column, message }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => {
                write!(f, "{}:{line}:{column}: {}", self.file, self.message)
            }
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// 1-based line and character column of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncdé\nf";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        assert_eq!(line_column(text, 7), (2, 4));
        assert_eq!(line_column(text, 8), (3, 1));
        assert_eq!(line_column(text, 999), (3, 2));
    }
}
