//! Datetimes in the spellings Cedar accepts.
//!
//! Cedar's `datetime` parses `2030-01-01`, `2030-01-01T00:00:00Z`, `.123Z` and
//! `+0100`, but not RFC 3339's `+01:00`, six-digit fractions or lowercase
//! `t`/`z` (field notes). Clients send RFC 3339, so we convert what we can.

use chrono::{DateTime, SecondsFormat, Utc};

/// Cedar's spelling of an instant: UTC, millisecond precision.
pub fn cedar_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `text` rewritten for Cedar if it is RFC 3339; otherwise unchanged, so
/// Cedar's own error names the bad value.
pub fn normalize(text: &str) -> Option<String> {
    let parsed = DateTime::parse_from_rfc3339(text).ok()?;
    Some(cedar_datetime(parsed.with_timezone(&Utc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_offsets_and_fractions_become_utc_millis() {
        assert_eq!(normalize("2030-01-01T01:00:00+01:00").unwrap(), "2030-01-01T00:00:00.000Z");
        assert_eq!(normalize("2030-01-01t00:00:00.123456z").unwrap(), "2030-01-01T00:00:00.123Z");
        assert_eq!(normalize("2030-01-01"), None);
        assert_eq!(normalize("yesterday"), None);
    }
}
