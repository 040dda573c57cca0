//! Instants: the one timestamp type, with one precision and one spelling.
//!
//! Everything warrant writes down as a time (audit records, token and key
//! rows, webhook stamps, checkpoints, Cedar's `now`) is a [`Timestamp`]:
//! UTC, millisecond precision, spelled `2026-12-06T21:52:45.123Z`.
//! Milliseconds because that is what Cedar's `datetime` compares at, so the
//! same text goes into policies, the store, the wire and the log; and
//! because one fixed width makes text order time order, which the store's
//! range filters rely on (`docs/domain.md`, "Time").
//!
//! Cedar's `datetime` parses `2030-01-01`, `2030-01-01T00:00:00Z`, `.123Z` and
//! `+0100`, but not RFC 3339's `+01:00`, six-digit fractions or lowercase
//! `t`/`z` (field notes). Clients send RFC 3339, so [`normalize`] converts
//! what it can.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, DurationRound, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, in UTC, to the millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// Text that is not an RFC 3339 date-time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an RFC 3339 date-time (e.g. 2030-01-01T00:00:00Z)")]
pub struct TimestampError(pub String);

impl Timestamp {
    /// The current instant, truncated to the millisecond.
    pub fn now() -> Self {
        Self::from(Utc::now())
    }

    /// Any RFC 3339 date-time (any offset, any fraction), as UTC
    /// truncated to the millisecond.
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self::from(t.with_timezone(&Utc)))
            .map_err(|_| TimestampError(text.to_owned()))
    }

    /// Whole seconds since the Unix epoch at `secs`; `None` outside chrono's range.
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        DateTime::from_timestamp(secs, 0).map(Self)
    }

    pub fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }

    /// `self + delta`; `None` past the representable range.
    pub fn checked_add(self, delta: TimeDelta) -> Option<Self> {
        self.0.checked_add_signed(delta).map(Self::from)
    }

    /// The instant as chrono sees it, for arithmetic.
    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        // Truncation only fails outside ±262,000 years; keep the instant then.
        Self(at.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(at))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `text` rewritten for Cedar if it is RFC 3339; otherwise `None`, so the
/// value goes to Cedar unchanged and Cedar's own error names it.
pub fn normalize(text: &str) -> Option<String> {
    Timestamp::parse(text).ok().map(|t| t.to_string())
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

    #[test]
    fn one_width_so_text_order_is_time_order() {
        let times =
            ["2030-01-01T00:00:00Z", "2030-01-01T00:00:00.5Z", "2030-01-01T00:00:00.999999Z", "2030-01-01T00:00:01Z"];
        let stamps: Vec<Timestamp> = times.iter().map(|t| t.parse().unwrap()).collect();
        let texts: Vec<String> = stamps.iter().map(Timestamp::to_string).collect();
        assert!(texts.iter().all(|t| t.len() == "2030-01-01T00:00:00.000Z".len()), "{texts:?}");
        assert!(stamps.windows(2).all(|w| w[0] < w[1]));
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "{texts:?}");
        // The raw inputs do not sort: '.' < 'Z' puts 00.5Z before 00Z.
        assert!(times[1] < times[0]);
    }

    #[test]
    fn truncates_to_the_millisecond_and_round_trips() {
        let t = Timestamp::parse("2026-12-06T21:52:45.123999Z").unwrap();
        assert_eq!(t.to_string(), "2026-12-06T21:52:45.123Z");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        assert_eq!(serde_json::to_value(t).unwrap(), "2026-12-06T21:52:45.123Z");
        assert_eq!(serde_json::from_value::<Timestamp>("2026-12-06T21:52:45.123Z".into()).unwrap(), t);
        assert!(serde_json::from_value::<Timestamp>("tomorrow".into()).unwrap_err().to_string().contains("tomorrow"));
        assert_eq!(Timestamp::now().datetime().timestamp_subsec_nanos() % 1_000_000, 0);
    }
}
