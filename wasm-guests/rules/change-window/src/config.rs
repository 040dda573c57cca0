//! The rule's configuration (the manifest entry's `config`).

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use serde::Deserialize;

/// ```json
/// {"time_zone": "Europe/Berlin",
///  "windows": [{"days": ["tue", "thu"], "start": "09:00", "end": "17:00"}],
///  "admin_roles": ["admin"]}
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// An IANA zone name (`Europe/Berlin`, `UTC`).
    pub time_zone: Zone,
    /// When the actions are allowed. Empty: never (a change freeze).
    pub windows: Vec<Window>,
    /// `context.principal_role` values exempt from the windows.
    #[serde(default)]
    pub admin_roles: Vec<String>,
    /// Actions the windows apply to; others abstain.
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
}

fn default_actions() -> Vec<String> {
    vec!["revoke_token".to_owned(), "transfer_ownership".to_owned()]
}

/// A time zone from the bundled IANA database.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Zone(TimeZone);

impl TryFrom<String> for Zone {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        TimeZone::get(&name).map(Zone).map_err(|err| format!("unknown time zone `{name}`: {err}"))
    }
}

impl Zone {
    pub fn time_zone(&self) -> &TimeZone {
        &self.0
    }
}

/// Days of the week and a wall-clock span.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub days: Vec<Day>,
    pub start: ClockTime,
    pub end: ClockTime,
}

/// `mon` … `sun` or `monday` … `sunday`, any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Day(pub Weekday);

impl TryFrom<String> for Day {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        let day = match name.to_ascii_lowercase().as_str() {
            "mon" | "monday" => Weekday::Monday,
            "tue" | "tuesday" => Weekday::Tuesday,
            "wed" | "wednesday" => Weekday::Wednesday,
            "thu" | "thursday" => Weekday::Thursday,
            "fri" | "friday" => Weekday::Friday,
            "sat" | "saturday" => Weekday::Saturday,
            "sun" | "sunday" => Weekday::Sunday,
            _ => return Err(format!("`{name}` is not a day of the week")),
        };
        Ok(Self(day))
    }
}

/// `HH:MM` from `00:00` to `24:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClockTime(u32);

impl ClockTime {
    /// Seconds since local midnight.
    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl TryFrom<String> for ClockTime {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a time `HH:MM`");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(Self(h * 3600 + m * 60))
    }
}

impl Window {
    /// Whether local `weekday` at `second_of_day` falls inside.
    pub fn contains(&self, weekday: Weekday, second_of_day: u32) -> bool {
        let listed = |day: Weekday| self.days.contains(&Day(day));
        let (start, end) = (self.start.seconds(), self.end.seconds());
        if start < end {
            listed(weekday) && (start..end).contains(&second_of_day)
        } else {
            // Overnight: from `start` on a listed day to `end` the next day.
            (listed(weekday) && second_of_day >= start) || (listed(weekday.previous()) && second_of_day < end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn example_config_parses() {
        let config: Config = serde_json::from_str(include_str!("../config.example.json")).unwrap();
        assert_eq!(config.actions, ["revoke_token", "transfer_ownership"]);
        assert_eq!(config.windows[0].days, [Day(Weekday::Tuesday), Day(Weekday::Thursday)]);
    }

    #[test]
    fn clock_times() {
        let t = |s: &str| ClockTime::try_from(s.to_owned()).map(ClockTime::seconds);
        assert_eq!(t("00:00"), Ok(0));
        assert_eq!(t("09:30"), Ok(34_200));
        assert_eq!(t("24:00"), Ok(86_400));
        for bad in ["9:00", "24:01", "12:60", "12", "ab:cd", "-1:00", "12:00:00", ""] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_configs_are_rejected() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v);
        let window = json!({"days": ["mon"], "start": "09:00", "end": "17:00"});
        assert!(parse(json!({"time_zone": "Europe/Berlin", "windows": [window]})).is_ok());
        assert!(parse(json!({"time_zone": "Europe/Berlin", "windows": []})).is_ok(), "a freeze");
        assert!(parse(json!({"time_zone": "Mars/Olympus", "windows": []})).is_err());
        assert!(parse(json!({"time_zone": "UTC"})).is_err(), "windows required");
        assert!(
            parse(json!({"time_zone": "UTC", "windows": [{"days": ["funday"], "start": "09:00", "end": "17:00"}]}))
                .is_err()
        );
        assert!(parse(json!({"time_zone": "UTC", "windows": [], "admin_role": ["admin"]})).is_err(), "misspelt key");
    }
}
