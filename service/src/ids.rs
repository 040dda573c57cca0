//! What an id may contain, wherever one arrives (HTTP bodies, webhook
//! payloads): printable characters only.

/// Whether `c` may appear in an id: not a control character (NUL, escapes,
/// line breaks) and not a bidirectional control, which can make an id in a
/// log or the console read as another (`U+202E` reverses the text after it).
fn allowed(c: char) -> bool {
    !c.is_control()
        && !matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `Ok` for an id of printable characters; otherwise which character is not.
pub fn check(id: &str) -> Result<(), String> {
    match id.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("contains U+{:04X}: ids are printable characters only", u32::from(c))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_control_and_bidi_characters_only() {
        for ok in ["ann", "Анна", "snow_prod-1", "a b", "émile@example.com", "用户"] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in ["a\0b", "line\nbreak", "tab\t", "\u{1b}[31m", "admin\u{202E}nimda", "x\u{2066}y", "\u{200F}"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }
}
