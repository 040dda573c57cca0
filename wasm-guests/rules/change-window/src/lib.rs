//! `change-window`: deny sensitive actions (`revoke_token`,
//! `transfer_ownership`) outside a weekly change window in a configured time
//! zone, except for admins.
//!
//! Context keys read:
//! - `now` (RFC 3339 string or Cedar `datetime`): the decision time, required
//!   unless the principal is an admin (the sandbox has no clock);
//! - `principal_role` (string, or list of strings): the principal's role(s).
//!
//! Windows are wall-clock times in `time_zone`, DST included (IANA data
//! bundled in the component, not read from the OS). A window covers
//! `start <= t < end`; an `end` at or before `start` runs past midnight into
//! the next day; `end` may be `24:00`.
//!
//! Verdicts: admin → allow (reason `admin_exempt`); inside a window → allow;
//! outside → deny `outside_change_window`; `now` missing or unreadable → deny
//! `missing_context:now` / `invalid_context:now`.

pub mod config;

use jiff::Timestamp;
use serde_json::Value;
use warrant_rule_sdk::{Request, Rule, Verdict, export_rule};

pub use config::Config;

/// The deny reason outside every window.
pub const OUTSIDE_CHANGE_WINDOW: &str = "outside_change_window";

#[derive(Debug)]
pub struct ChangeWindow;

impl Rule for ChangeWindow {
    type Config = Config;

    fn evaluate(config: &Config, req: &Request) -> Verdict {
        if !req.action_in(&config.actions) {
            return Verdict::abstain();
        }
        if is_admin(config, req) {
            return Verdict::allow().with_reason("admin_exempt");
        }
        let Some(now) = req.context_value("now") else {
            return Verdict::deny("missing_context:now");
        };
        let Some(now) = now.as_str().and_then(|s| s.parse::<Timestamp>().ok()) else {
            return Verdict::deny("invalid_context:now");
        };
        let local = now.to_zoned(config.time_zone.time_zone().clone());
        let time = local.time();
        let second_of_day = u32::from(time.hour().unsigned_abs()) * 3600
            + u32::from(time.minute().unsigned_abs()) * 60
            + u32::from(time.second().unsigned_abs());
        if config.windows.iter().any(|w| w.contains(local.weekday(), second_of_day)) {
            Verdict::allow()
        } else {
            Verdict::deny(OUTSIDE_CHANGE_WINDOW)
        }
    }
}

fn is_admin(config: &Config, req: &Request) -> bool {
    let is_admin_role = |role: &str| config.admin_roles.iter().any(|r| r == role);
    match req.context_value("principal_role") {
        Some(Value::String(role)) => is_admin_role(role),
        Some(Value::Array(roles)) => roles.iter().filter_map(Value::as_str).any(is_admin_role),
        _ => false,
    }
}

export_rule!(ChangeWindow);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use warrant_rule_sdk::testing::request;
    use warrant_rule_sdk::{EntityRef, INVALID_CONFIG, evaluate_json};

    fn config() -> Config {
        serde_json::from_str(include_str!("../config.example.json")).unwrap()
    }

    fn at(now: &str) -> Verdict {
        ChangeWindow::evaluate(&config(), &request("revoke_token", json!({"now": now, "principal_role": "editor"})))
    }

    fn outside() -> Verdict {
        Verdict::deny(OUTSIDE_CHANGE_WINDOW)
    }

    #[test]
    fn inside_the_window_is_allowed() {
        // Tuesday 2026-03-03, 10:00 in Berlin (CET, UTC+1) is 09:00Z.
        assert_eq!(at("2026-03-03T09:00:00Z"), Verdict::allow());
        // Thursday 16:59:59 local.
        assert_eq!(at("2026-03-05T15:59:59Z"), Verdict::allow());
    }

    #[test]
    fn outside_the_window_is_denied() {
        assert_eq!(at("2026-03-04T10:00:00Z"), outside(), "a Wednesday");
        assert_eq!(at("2026-03-03T07:59:59Z"), outside(), "Tuesday 08:59:59 local");
        assert_eq!(at("2026-03-03T16:00:00Z"), outside(), "Tuesday 17:00 local: end is exclusive");
        assert_eq!(at("2026-03-07T12:00:00Z"), outside(), "a Saturday");
    }

    #[test]
    fn window_start_is_inclusive() {
        assert_eq!(at("2026-03-03T08:00:00Z"), Verdict::allow(), "Tuesday 09:00 local");
    }

    #[test]
    fn offsets_follow_daylight_saving_time() {
        // Berlin is UTC+1 in winter, UTC+2 from 2026-03-29. 07:30Z is 08:30 in
        // winter (outside) and 09:30 in summer (inside).
        assert_eq!(at("2026-03-24T07:30:00Z"), outside(), "Tuesday before the switch");
        assert_eq!(at("2026-03-31T07:30:00Z"), Verdict::allow(), "Tuesday after the switch");
        // And back on 2026-10-25: 15:30Z is 17:30 CEST (outside), 16:30 CET (inside).
        assert_eq!(at("2026-10-22T15:30:00Z"), outside());
        assert_eq!(at("2026-10-29T15:30:00Z"), Verdict::allow());
    }

    #[test]
    fn local_weekday_not_utc_weekday_counts() {
        // Tokyo is UTC+9: Tuesday 15:30Z is Wednesday 00:30 there (inside),
        // Tuesday 23:30Z is Wednesday 08:30 (outside).
        let cfg: Config = serde_json::from_value(json!({
            "time_zone": "Asia/Tokyo",
            "windows": [{"days": ["wed"], "start": "00:00", "end": "01:00"}],
        }))
        .unwrap();
        let decide = |now: &str| ChangeWindow::evaluate(&cfg, &request("transfer_ownership", json!({"now": now})));
        assert_eq!(decide("2026-03-03T15:30:00Z"), Verdict::allow());
        assert_eq!(decide("2026-03-03T23:30:00Z"), outside());
    }

    #[test]
    fn overnight_windows_run_into_the_next_day() {
        let cfg: Config = serde_json::from_value(json!({
            "time_zone": "UTC",
            "windows": [{"days": ["fri"], "start": "22:00", "end": "02:00"}],
        }))
        .unwrap();
        let decide = |now: &str| ChangeWindow::evaluate(&cfg, &request("revoke_token", json!({"now": now})));
        assert_eq!(decide("2026-03-06T21:59:59Z"), outside(), "Friday before start");
        assert_eq!(decide("2026-03-06T23:00:00Z"), Verdict::allow(), "Friday night");
        assert_eq!(decide("2026-03-07T01:59:59Z"), Verdict::allow(), "Saturday early");
        assert_eq!(decide("2026-03-07T02:00:00Z"), outside(), "Saturday at end");
        assert_eq!(decide("2026-03-07T23:00:00Z"), outside(), "Saturday night is not a window");
    }

    #[test]
    fn end_of_day_window() {
        let cfg: Config = serde_json::from_value(json!({
            "time_zone": "UTC",
            "windows": [{"days": ["sunday"], "start": "00:00", "end": "24:00"}],
        }))
        .unwrap();
        let decide = |now: &str| ChangeWindow::evaluate(&cfg, &request("revoke_token", json!({"now": now})));
        assert_eq!(decide("2026-03-08T23:59:59Z"), Verdict::allow());
        assert_eq!(decide("2026-03-09T00:00:00Z"), outside());
    }

    #[test]
    fn admins_are_exempt() {
        let cfg = config();
        let wednesday = "2026-03-04T10:00:00Z";
        let decide = |ctx| ChangeWindow::evaluate(&cfg, &request("revoke_token", ctx));
        let exempt = Verdict::allow().with_reason("admin_exempt");
        assert_eq!(decide(json!({"now": wednesday, "principal_role": "admin"})), exempt);
        assert_eq!(decide(json!({"now": wednesday, "principal_role": ["viewer", "admin"]})), exempt);
        assert_eq!(decide(json!({"principal_role": "admin"})), exempt, "no clock needed");
        assert_eq!(decide(json!({"now": wednesday, "principal_role": "Admin"})), outside(), "roles match exactly");
        assert_eq!(decide(json!({"now": wednesday})), outside());
    }

    #[test]
    fn missing_or_bad_now_fails_closed() {
        let cfg = config();
        let decide = |ctx| ChangeWindow::evaluate(&cfg, &request("revoke_token", ctx));
        assert_eq!(decide(json!({})), Verdict::deny("missing_context:now"));
        assert_eq!(decide(json!({"now": "tuesday"})), Verdict::deny("invalid_context:now"));
        assert_eq!(decide(json!({"now": "2026-03-03T10:00:00"})), Verdict::deny("invalid_context:now"), "no offset");
        let extn = json!({"now": {"__extn": {"fn": "datetime", "arg": "2026-03-03T09:00:00.000Z"}}});
        assert_eq!(decide(extn), Verdict::allow());
    }

    #[test]
    fn other_actions_abstain() {
        assert_eq!(ChangeWindow::evaluate(&config(), &request("use_token", json!({}))), Verdict::abstain());
    }

    #[test]
    fn bad_config_fails_closed() {
        let run = |config: &str| {
            evaluate_json::<ChangeWindow>(
                config,
                EntityRef::new("User", "u1"),
                EntityRef::new("Action", "revoke_token"),
                EntityRef::new("Token", "t1"),
                r#"{"now": "2026-03-03T09:00:00Z"}"#,
            )
        };
        assert_eq!(run(include_str!("../config.example.json")), Verdict::allow());
        assert_eq!(run(r#"{"time_zone": "Mars/Olympus", "windows": []}"#), Verdict::deny(INVALID_CONFIG));
        assert_eq!(
            run(r#"{"time_zone": "UTC", "windows": [{"days": ["tue"], "start": "9", "end": "17:00"}]}"#),
            Verdict::deny(INVALID_CONFIG)
        );
    }
}
