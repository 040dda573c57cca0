//! The configuration probe: each rule is called once when its bundle loads,
//! so that a configuration it rejects refuses the bundle instead of
//! denying every request it is asked about with `invalid_config`.
//!
//! The host cannot read a rule's configuration schema (the WIT contract has
//! none), but the guest SDK's convention is observable: a configuration that
//! does not parse is a `deny` with reason `invalid_config`, the detail
//! logged. So the rule is asked about one of its actions, with an empty
//! context, a principal and a resource of types the action applies to, and
//! its real configuration, on an instance of its own under its own limits.
//! Only that `invalid_config` deny refuses the bundle: any other verdict,
//! and any failure (an empty context may well make a rule trap or deny),
//! is the request's business, not the configuration's.

use super::manifest::MANIFEST_PATH;
use super::sandbox::{self, Prepared};
use super::verdict::RuleOutcome;
use crate::diagnostic::{Diagnostic, line_column};

/// The reason the guest SDK denies with when a configuration does not parse
/// (`warrant_rule_sdk::INVALID_CONFIG`).
pub const INVALID_CONFIG: &str = "invalid_config";

/// The id of the principal and the resource of a probe request.
pub const PROBE_ENTITY_ID: &str = "warrant-config-probe";

/// Longest detail from the rule's log kept in the diagnostic.
const DETAIL_BYTES: usize = 1_024;

/// The request a rule is probed with: one of its actions and types that
/// action applies to, fully qualified as rules see them (`Analytics::User`).
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub principal_type: String,
    pub action_type: String,
    pub action_id: String,
    pub resource_type: String,
}

/// Probes rule `name` (compiled as `prepared`, configured with
/// `config_json`); a diagnostic naming the rule when it rejects its
/// configuration, located at the rule's entry of `manifest` (its text).
pub(crate) fn check(
    prepared: &Prepared,
    name: &str,
    config_json: &str,
    probe: &Probe,
    manifest: &str,
) -> Option<Diagnostic> {
    let request = sandbox::Request {
        principal: sandbox::entity(&probe.principal_type, PROBE_ENTITY_ID),
        action: sandbox::entity(&probe.action_type, &probe.action_id),
        resource: sandbox::entity(&probe.resource_type, PROBE_ENTITY_ID),
        context_json: "{}".to_owned(),
    };
    let heard = prepared.probe(config_json, &request);
    let rejected = matches!(&heard.answer, Ok((RuleOutcome::Deny, Some(reason))) if reason == INVALID_CONFIG);
    if !rejected {
        return None;
    }
    let detail: Vec<&str> = heard
        .logged
        .iter()
        .map(|line| line.strip_prefix(INVALID_CONFIG).map_or(line.as_str(), |rest| rest.trim_start_matches([':', ' '])))
        .filter(|line| !line.is_empty())
        .collect();
    let detail = match detail.as_slice() {
        [] => "it logged no detail".to_owned(),
        lines => cut(&lines.join("; ")),
    };
    let mut d = Diagnostic::file(
        MANIFEST_PATH,
        format!(
            "rule `{name}` rejects its `config` (asked about `{}` at load, it denied with `{INVALID_CONFIG}`): {detail}",
            probe.action_id
        ),
    );
    if let Some(offset) = manifest.find(&format!("\"{name}\"")) {
        let (line, column) = line_column(manifest, offset);
        d.line = Some(line);
        d.column = Some(column);
    }
    Some(d)
}

/// `text`, cut at a character boundary to [`DETAIL_BYTES`].
fn cut(text: &str) -> String {
    let mut end = text.len().min(DETAIL_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let head = text.get(..end).unwrap_or_default();
    if head.len() < text.len() { format!("{head}…") } else { head.to_owned() }
}
