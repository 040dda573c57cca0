//! Write a warrant custom rule in a few lines of Rust.
//!
//! A rule is a type implementing [`Rule`]: a configuration type parsed from the
//! manifest's JSON and one pure function from a [`Request`] to a [`Verdict`].
//! [`export_rule!`] turns it into a component exporting the `warrant:rule`
//! world (`../wit/rule.wit`).
//!
//! ```
//! use warrant_rule_sdk::{Request, Rule, Verdict, export_rule};
//!
//! struct NoFridayDeploys;
//! impl Rule for NoFridayDeploys {
//!     type Config = serde_json::Value;
//!     fn evaluate(_: &Self::Config, req: &Request) -> Verdict {
//!         if req.context_str("weekday") == Some("fri") { Verdict::deny("friday") } else { Verdict::abstain() }
//!     }
//! }
//! export_rule!(NoFridayDeploys);
//! ```
//!
//! The rule's logic is plain Rust: it builds and unit-tests on the host
//! target. The component glue (wit-bindgen) exists only on `wasm32`, so
//! `cargo test` needs no Wasm runtime.

// The exported macro names this crate by its absolute path, also from inside.
extern crate self as warrant_rule_sdk;

mod request;
mod verdict;

pub use request::{EntityRef, Request};
pub use verdict::{Effect, Verdict};

use serde::de::DeserializeOwned;

/// Reason of the deny returned when the rule's configuration does not parse.
/// The detail goes to [`log`], not into the decision.
pub const INVALID_CONFIG: &str = "invalid_config";
/// Reason of the deny returned when `context-json` is not a JSON object.
pub const INVALID_CONTEXT: &str = "invalid_context";

/// A custom rule.
///
/// `evaluate` should be a pure function of its arguments: the host may reuse
/// one instance for many requests or create a fresh one for each.
pub trait Rule {
    /// The rule's configuration, deserialized from its manifest entry's
    /// `config`. Use `#[serde(deny_unknown_fields)]` so a misspelt key fails
    /// closed instead of being ignored.
    type Config: DeserializeOwned + 'static;

    /// Decide one request. Return [`Verdict::abstain`] for actions the rule
    /// does not handle.
    fn evaluate(config: &Self::Config, req: &Request) -> Verdict;
}

/// Parse a rule's configuration JSON.
///
/// # Errors
/// The serde error, naming the offending field when it can.
pub fn parse_config<C: DeserializeOwned>(config_json: &str) -> Result<C, serde_json::Error> {
    serde_json::from_str(config_json)
}

/// The whole evaluation as the component runs it: parse the configuration and
/// the context, then call the rule. Any parse failure is a deny (fail closed),
/// with the detail logged.
///
/// Exposed so a rule's tests can drive exactly what the host drives.
pub fn evaluate_json<R: Rule>(
    config_json: &str,
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    context_json: &str,
) -> Verdict {
    let config = match parse_config::<R::Config>(config_json) {
        Ok(config) => config,
        Err(err) => {
            log(&format!("{INVALID_CONFIG}: {err}"));
            return Verdict::deny(INVALID_CONFIG);
        }
    };
    evaluate_parsed::<R>(&config, principal, action, resource, context_json)
}

/// [`evaluate_json`] with the configuration already parsed (the component
/// glue caches it between calls on a warm instance).
#[doc(hidden)]
pub fn evaluate_parsed<R: Rule>(
    config: &R::Config,
    principal: EntityRef,
    action: EntityRef,
    resource: EntityRef,
    context_json: &str,
) -> Verdict {
    match Request::new(principal, action, resource, context_json) {
        Ok(req) => R::evaluate(config, &req),
        Err(err) => {
            log(&format!("{INVALID_CONTEXT}: {err}"));
            Verdict::deny(INVALID_CONTEXT)
        }
    }
}

/// Write a line to the service's log, attributed to the rule.
///
/// In host-side tests the line is kept in a per-thread buffer instead; read it
/// with [`testing::take_logs`].
pub fn log(msg: &str) {
    #[cfg(target_arch = "wasm32")]
    guest::bindings::warrant::rule::host::log(msg);
    #[cfg(not(target_arch = "wasm32"))]
    testing::LOGS.with(|logs| logs.borrow_mut().push(msg.to_owned()));
}

/// Helpers for host-side unit tests of a rule.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;

    use crate::{EntityRef, Request};

    thread_local! {
        pub(crate) static LOGS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }

    /// The lines [`crate::log`] wrote on this thread since the last call.
    pub fn take_logs() -> Vec<String> {
        LOGS.with(|logs| std::mem::take(&mut *logs.borrow_mut()))
    }

    /// A request for `action` (an `Action` id such as `run_query`) by
    /// `User::"u1"` on `Resource::"r1"`, with `context` as its context.
    ///
    /// # Panics
    /// If `context` is not a JSON object.
    #[expect(clippy::expect_used, reason = "test helper: a bad fixture should fail the test loudly")]
    pub fn request(action: &str, context: serde_json::Value) -> Request {
        Request::new(
            EntityRef::new("User", "u1"),
            EntityRef::new("Action", action),
            EntityRef::new("Resource", "r1"),
            &context.to_string(),
        )
        .expect("test context must be a JSON object")
    }
}

/// Turn a [`Rule`] into the component's `evaluate` export.
///
/// Expands to nothing off `wasm32`, so the crate still builds and tests on the
/// host. On `wasm32` the configuration is parsed once and reused while the
/// host keeps calling with the same `config-json`.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code, reason = "wit-bindgen's canonical ABI glue")]
        const _: () = {
            struct WarrantRuleExport;

            impl $crate::__private::Guest for WarrantRuleExport {
                fn evaluate(
                    config_json: ::std::string::String,
                    req: $crate::__private::Request,
                ) -> $crate::__private::Verdict {
                    $crate::__private::evaluate::<$rule>(config_json, req)
        }
            }

            $crate::__private::export!(WarrantRuleExport with_types_in $crate::__private::bindings);
        };
    };
}

/// Not public API: what [`export_rule!`] expands to.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod __private {
    pub use crate::guest::bindings::{self, Guest, Request, Verdict, export};
    pub use crate::guest::evaluate;
    pub use wit_bindgen;
}

#[cfg(target_arch = "wasm32")]
mod guest;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        blocked: String,
    }

    struct Blocker;
    impl Rule for Blocker {
        type Config = Config;
        fn evaluate(config: &Config, req: &Request) -> Verdict {
            if req.principal().id() == config.blocked { Verdict::deny("blocked") } else { Verdict::allow() }
        }
    }

    fn run(config: &str, principal: &str, context: &str) -> Verdict {
        evaluate_json::<Blocker>(
            config,
            EntityRef::new("User", principal),
            EntityRef::new("Action", "a"),
            EntityRef::new("R", "r"),
            context,
        )
    }

    #[test]
    fn evaluate_json_parses_then_calls_the_rule() {
        assert_eq!(run(r#"{"blocked": "eve"}"#, "eve", "{}"), Verdict::deny("blocked"));
        assert_eq!(run(r#"{"blocked": "eve"}"#, "bob", "{}"), Verdict::allow());
    }

    #[test]
    fn bad_config_or_context_fails_closed_and_logs_why() {
        testing::take_logs();
        assert_eq!(run(r#"{"blocked": 1}"#, "bob", "{}"), Verdict::deny(INVALID_CONFIG));
        assert_eq!(run(r#"{"blocked": "eve", "typo": 1}"#, "bob", "{}"), Verdict::deny(INVALID_CONFIG));
        assert_eq!(run(r#"{"blocked": "eve"}"#, "bob", "[1]"), Verdict::deny(INVALID_CONTEXT));
        let logs = testing::take_logs();
        assert_eq!(logs.len(), 3);
        assert!(logs.iter().take(2).all(|l| l.starts_with("invalid_config: ")), "{logs:?}");
        assert!(logs.last().is_some_and(|l| l.starts_with("invalid_context: ")), "{logs:?}");
    }

    #[test]
    fn verdict_constructors() {
        assert_eq!(Verdict::allow().effect(), Effect::Allow);
        assert_eq!(Verdict::abstain().reason(), None);
        let deny = Verdict::deny("token_too_old");
        assert!(deny.is_deny());
        assert_eq!(deny.reason(), Some("token_too_old"));
        assert_eq!(Verdict::abstain().with_reason("x").into_parts(), (Effect::Abstain, Some("x".to_owned())));
    }
}
