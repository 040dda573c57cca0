//! `token-max-age`: deny using a token issued more than `max_age_days` ago
//! (the 90-day rotation rule), forcing re-authentication.
//!
//! Context keys read (RFC 3339 strings, or Cedar `datetime` extension values):
//! - `token_issued_at`: when the token was issued;
//! - `now`: the decision time (the sandbox has no clock).
//!
//! A day is 24 hours of elapsed time; a token exactly `max_age_days` old is
//! still accepted. A missing or unreadable time, or an issue time in the
//! future (beyond a minute of clock skew), is a deny: the rule fails closed.
//!
//! Config: `{"max_age_days": 90}`; optional `actions` (default `["use_token"]`).

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use warrant_rule_sdk::{Request, Rule, Verdict, export_rule};

/// The deny reason when the token is too old.
pub const TOKEN_TOO_OLD: &str = "token_too_old";
/// Issue times up to this far after `now` are clock skew, not an error.
const CLOCK_SKEW: SignedDuration = SignedDuration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub max_age_days: u32,
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
}

fn default_actions() -> Vec<String> {
    vec!["use_token".to_owned()]
}

#[derive(Debug)]
pub struct TokenMaxAge;

impl Rule for TokenMaxAge {
    type Config = Config;

    fn evaluate(config: &Config, req: &Request) -> Verdict {
        if !req.action_in(&config.actions) {
            return Verdict::abstain();
        }
        let now = match instant(req, "now") {
            Ok(t) => t,
            Err(reason) => return Verdict::deny(reason),
        };
        let issued_at = match instant(req, "token_issued_at") {
            Ok(t) => t,
            Err(reason) => return Verdict::deny(reason),
        };
        let age = now.duration_since(issued_at);
        if age < -CLOCK_SKEW {
            return Verdict::deny("token_issued_in_future");
        }
        let max_age = SignedDuration::from_hours(24 * i64::from(config.max_age_days));
        if age > max_age { Verdict::deny(TOKEN_TOO_OLD) } else { Verdict::allow() }
    }
}

/// The instant at context `key`; the deny reason when it is missing
/// (`missing_context:<key>`) or not an RFC 3339 instant
/// (`invalid_context:<key>`).
fn instant(req: &Request, key: &str) -> Result<Timestamp, String> {
    let Some(value) = req.context_value(key) else {
        return Err(format!("missing_context:{key}"));
    };
    value.as_str().and_then(|text| text.parse::<Timestamp>().ok()).ok_or_else(|| format!("invalid_context:{key}"))
}

export_rule!(TokenMaxAge);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use warrant_rule_sdk::testing::request;
    use warrant_rule_sdk::{EntityRef, INVALID_CONFIG, evaluate_json};

    fn config() -> Config {
        serde_json::from_str(include_str!("../config.example.json")).unwrap()
    }

    fn decide(issued_at: Value, now: Value) -> Verdict {
        TokenMaxAge::evaluate(&config(), &request("use_token", json!({"token_issued_at": issued_at, "now": now})))
    }

    #[test]
    fn recent_token_is_allowed() {
        assert_eq!(decide(json!("2026-03-01T00:00:00Z"), json!("2026-04-01T12:00:00Z")), Verdict::allow());
    }

    #[test]
    fn token_older_than_max_age_is_denied() {
        assert_eq!(decide(json!("2025-12-01T00:00:00Z"), json!("2026-04-01T00:00:00Z")), Verdict::deny(TOKEN_TOO_OLD));
    }

    #[test]
    fn exactly_max_age_is_allowed_one_second_more_is_not() {
        // 90 days of 24 h from 2026-01-01T00:00Z is 2026-04-01T00:00Z.
        let issued = json!("2026-01-01T00:00:00Z");
        assert_eq!(decide(issued.clone(), json!("2026-04-01T00:00:00Z")), Verdict::allow());
        assert_eq!(decide(issued, json!("2026-04-01T00:00:01Z")), Verdict::deny(TOKEN_TOO_OLD));
    }

    #[test]
    fn offsets_are_honoured() {
        // 23:30 at -01:00 is 00:30Z the next day: 90 days + 30 min.
        assert_eq!(
            decide(json!("2025-12-31T23:30:00-01:00"), json!("2026-04-01T01:00:00+01:00")),
            Verdict::allow(),
            "issued 00:30Z, now 00:00Z: 89.98 days"
        );
        assert_eq!(
            decide(json!("2025-12-31T22:00:00-01:00"), json!("2026-04-01T02:00:00+01:00")),
            Verdict::deny(TOKEN_TOO_OLD)
        );
    }

    #[test]
    fn cedar_spellings_and_extension_values_are_read() {
        let extn = |s: &str| json!({"__extn": {"fn": "datetime", "arg": s}});
        assert_eq!(decide(extn("2026-03-01T00:00:00.000Z"), extn("2026-04-01T00:00:00.000Z")), Verdict::allow());
        assert_eq!(
            decide(json!("2025-01-01T00:00:00+0100"), json!("2026-04-01T00:00:00Z")),
            Verdict::deny(TOKEN_TOO_OLD)
        );
    }

    #[test]
    fn missing_or_bad_times_fail_closed() {
        let cfg = config();
        let deny = |ctx: Value| TokenMaxAge::evaluate(&cfg, &request("use_token", ctx));
        assert_eq!(deny(json!({"now": "2026-04-01T00:00:00Z"})), Verdict::deny("missing_context:token_issued_at"));
        assert_eq!(deny(json!({"token_issued_at": "2026-04-01T00:00:00Z"})), Verdict::deny("missing_context:now"));
        assert_eq!(
            deny(json!({"token_issued_at": null, "now": "2026-04-01T00:00:00Z"})),
            Verdict::deny("missing_context:token_issued_at")
        );
        assert_eq!(
            deny(json!({"token_issued_at": "last tuesday", "now": "2026-04-01T00:00:00Z"})),
            Verdict::deny("invalid_context:token_issued_at")
        );
        // A date without a time or offset is not an instant.
        assert_eq!(
            deny(json!({"token_issued_at": "2026-01-01", "now": "2026-04-01T00:00:00Z"})),
            Verdict::deny("invalid_context:token_issued_at")
        );
        assert_eq!(
            deny(json!({"token_issued_at": 1_767_225_600, "now": "2026-04-01T00:00:00Z"})),
            Verdict::deny("invalid_context:token_issued_at")
        );
    }

    #[test]
    fn issue_time_in_the_future_is_denied_beyond_skew() {
        let now = json!("2026-04-01T00:00:00Z");
        assert_eq!(decide(json!("2026-04-01T00:00:30Z"), now.clone()), Verdict::allow());
        assert_eq!(decide(json!("2026-04-01T00:05:00Z"), now), Verdict::deny("token_issued_in_future"));
    }

    #[test]
    fn other_actions_abstain() {
        let req = request("run_query", json!({}));
        assert_eq!(TokenMaxAge::evaluate(&config(), &req), Verdict::abstain());
    }

    #[test]
    fn configured_actions_replace_the_default() {
        let cfg: Config = serde_json::from_value(json!({"max_age_days": 1, "actions": ["refresh_token"]})).unwrap();
        let ctx = json!({"token_issued_at": "2026-01-01T00:00:00Z", "now": "2026-04-01T00:00:00Z"});
        assert_eq!(TokenMaxAge::evaluate(&cfg, &request("refresh_token", ctx.clone())), Verdict::deny(TOKEN_TOO_OLD));
        assert_eq!(TokenMaxAge::evaluate(&cfg, &request("use_token", ctx)), Verdict::abstain());
    }

    #[test]
    fn bad_config_fails_closed() {
        let run = |config: &str| {
            evaluate_json::<TokenMaxAge>(
                config,
                EntityRef::new("User", "u1"),
                EntityRef::new("Action", "use_token"),
                EntityRef::new("Token", "t1"),
                "{}",
            )
        };
        assert_eq!(run("{}"), Verdict::deny(INVALID_CONFIG));
        assert_eq!(run(r#"{"max_age_days": -1}"#), Verdict::deny(INVALID_CONFIG));
        assert_eq!(run(r#"{"max_age_days": 90, "max_age": 3}"#), Verdict::deny(INVALID_CONFIG));
    }
}
