//! The name given to `warrant new`: it becomes a folder, a file, a Cargo
//! package, a Rust crate and a type, so it is held to what all of them take.

use std::fmt;

use super::error::NewCommandError;

/// The longest name: the manifest's limit for a rule name.
const MAX_LEN: usize = 64;

/// Lowercase words of `a-z` and `0-9` joined by single `-` or `_`, starting
/// with a letter, at most 64 characters (`token-max-age`, `eu_only`). Every
/// such name is a valid manifest rule name, Cargo package name and file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(text: &str) -> Result<Self, NewCommandError> {
        let why = if text.is_empty() || text.len() > MAX_LEN {
            Some(format!("must be 1 to {MAX_LEN} characters"))
        } else if !text.starts_with(|c: char| c.is_ascii_lowercase()) {
            Some("must start with a lowercase letter `a`-`z`".to_owned())
        } else if !text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            Some("may contain only `a`-`z`, `0`-`9`, `-` and `_`".to_owned())
        } else if text.split(['-', '_']).any(str::is_empty) {
            Some("each `-` or `_` must stand between letters or digits".to_owned())
        } else {
            None
        };
        match why {
            Some(why) => Err(NewCommandError::InvalidName { name: text.to_owned(), why }),
            None => Ok(Self(text.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `token_max_age`: the Rust crate name, and the stem of the file Cargo
    /// builds (`token_max_age.wasm`).
    pub fn snake(&self) -> String {
        self.0.replace('-', "_")
    }

    /// `TokenMaxAge`: the rule's type.
    pub fn camel(&self) -> String {
        self.0
            .split(['-', '_'])
            .map(|word| {
                let mut chars = word.chars();
                chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
            })
            .collect()
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_and_their_forms() {
        let name = Name::parse("token-max-age").unwrap();
        assert_eq!((name.snake().as_str(), name.camel().as_str()), ("token_max_age", "TokenMaxAge"));
        let name = Name::parse("eu_only2").unwrap();
        assert_eq!((name.snake().as_str(), name.camel().as_str()), ("eu_only2", "EuOnly2"));
        assert!(Name::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn bad_names_say_why() {
        for (bad, why) in [
            ("", "1 to 64"),
            (&"a".repeat(65), "1 to 64"),
            ("9lives", "start with a lowercase letter"),
            ("-x", "start with a lowercase letter"),
            ("Token", "start with a lowercase letter"),
            ("tok en", "only"),
            ("a/../x", "only"),
            ("tök", "only"),
            ("a--b", "between"),
            ("a-", "between"),
            ("a_-b", "between"),
        ] {
            let message = Name::parse(bad).unwrap_err().to_string();
            assert!(message.contains(why) && message.contains(&format!("`{bad}`")), "{bad}: {message}");
        }
    }
}
