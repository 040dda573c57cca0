//! C2SP checkpoints (`c2sp.org/tlog-checkpoint@v1.0.0`): the log's tree head
//! as the text of a signed note (`note.rs`):
//!
//! ```text
//! <origin>
//! <tree size, decimal>
//! <base64 RFC 6962 root hash>
//! ```
//!
//! each line ending in a newline, optionally followed by non-empty extension
//! lines (warrant writes none). The origin names the log; the log's key name
//! matches it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::merkle::Hash;
use super::note::is_key_name;

/// A tree head as a checkpoint's text says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub origin: String,
    pub tree_size: u64,
    pub root: Hash,
}

/// Why a checkpoint's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogCheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
}

impl LogCheckpoint {
    /// The note text: origin, size and root, each on its own line.
    pub fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.tree_size, BASE64.encode(self.root))
    }

    /// Parses a checkpoint's note text (extension lines are allowed and
    /// dropped: warrant writes none and reads none).
    pub fn parse(text: &str) -> Result<Self, LogCheckpointError> {
        let malformed = LogCheckpointError::Malformed;
        let body = text.strip_suffix('\n').ok_or(malformed("the text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or(malformed("no origin line"))?;
        let size = lines.next().ok_or(malformed("no tree size line"))?;
        let root = lines.next().ok_or(malformed("no root hash line"))?;
        if lines.any(str::is_empty) {
            return Err(malformed("an empty extension line"));
        }
        let canonical = size == "0" || (!size.starts_with('0') && size.bytes().all(|b| b.is_ascii_digit()));
        let tree_size =
            size.parse::<u64>().ok().filter(|_| canonical).ok_or(malformed("the tree size is not decimal"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(malformed("the root is not a base64 SHA-256 hash"))?;
        Ok(Self { origin: origin.to_owned(), tree_size, root })
    }

    /// Whether `origin` can name a log here: it is also the log's key name.
    pub fn is_origin(origin: &str) -> bool {
        is_key_name(origin)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use crate::audit::merkle;

    #[test]
    fn round_trips_and_matches_the_spec_example() {
        // c2sp.org/tlog-checkpoint's example.
        let text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let c = LogCheckpoint::parse(text).unwrap();
        assert_eq!((c.origin.as_str(), c.tree_size), ("example.com/behind-the-sofa", 20_852_163));
        assert_eq!(c.text(), text);
        let empty = LogCheckpoint { origin: "o".into(), tree_size: 0, root: merkle::empty_root() };
        assert_eq!(empty.text(), "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
        assert!(LogCheckpoint::parse(&format!("{text}ext\n")).is_ok(), "extension lines are allowed");
    }

    #[test]
    fn malformed_texts_are_refused() {
        let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        for text in [
            format!("o\n1\n{root}"),
            format!("\n1\n{root}\n"),
            format!("o\n01\n{root}\n"),
            format!("o\n-1\n{root}\n"),
            format!("o\n+1\n{root}\n"),
            "o\n1\nAAAA\n".to_owned(),
            format!("o\n1\n{root}\n\n"),
            "o\n1\n".to_owned(),
        ] {
            assert!(LogCheckpoint::parse(&text).is_err(), "{text:?}");
        }
    }
}
