//! The auditor's overview of a time window: decisions over time (allow and
//! deny), the most frequent deny reasons, token events per connection, and
//! rule failures, folded from the counts a store groups.
//!
//! A store answers one grouped read over the window ([`Group`]: one row per
//! bucket, kind, decision, connection, deny reasons and whether a Wasm rule
//! failed), and, only when some decision carries a rule failure, the
//! `details` of those decisions ([`Overview::add_rule_failures`]). Everything
//! else is counting, here, where it is tested without a database.
//!
//! Buckets are prefixes of the stored timestamp (`Timestamp` writes one
//! width, `2026-12-07T13:05:09.123Z`), so grouping needs no date functions
//! and means the same on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Most deny reasons, connections and rule failures listed.
pub const TOP: usize = 10;

/// How long one bar of "decisions over time" is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    /// The bucket that draws a window of `seconds` in at most a few hundred
    /// bars: minutes up to 3 hours, hours up to 8 days, days beyond.
    pub fn for_window(seconds: i64) -> Self {
        match seconds {
            s if s <= 3 * 3600 => Self::Minute,
            s if s <= 8 * 86_400 => Self::Hour,
            _ => Self::Day,
        }
    }

    /// The length of the stored-timestamp prefix that names a bucket.
    pub fn prefix_len(self) -> usize {
        match self {
            Self::Minute => 16, // 2026-12-07T13:05
            Self::Hour => 13,   // 2026-12-07T13
            Self::Day => 10,    // 2026-12-07
        }
    }

    /// The RFC 3339 start of the bucket a prefix names.
    fn start(self, prefix: &str) -> String {
        match self {
            Self::Minute => format!("{prefix}:00Z"),
            Self::Hour => format!("{prefix}:00:00Z"),
            Self::Day => format!("{prefix}T00:00:00Z"),
        }
    }
}

/// One row of the grouped read: how many records share these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The timestamp prefix ([`Bucket::prefix_len`] characters).
    pub bucket: String,
    pub kind: String,
    /// `allow` or `deny` for decisions.
    pub decision: Option<String>,
    pub connection: Option<String>,
    /// The stored `reasons` (a JSON array) of deny decisions, else `None`.
    pub deny_reasons: Option<String>,
    /// Whether the decisions' details hold a rule verdict `error`.
    pub rule_error: bool,
    pub count: u64,
}

/// Allow and deny decisions in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionsAt {
    /// RFC 3339 UTC start of the bucket.
    pub start: String,
    pub allow: u64,
    pub deny: u64,
}

/// A value and how many records carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counted {
    pub name: String,
    pub count: u64,
}

/// The token events of one connection, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionEvents {
    /// `null` for events that name no connection.
    pub connection: Option<String>,
    /// Kind (`token.used`, …) to count.
    pub kinds: BTreeMap<String, u64>,
    pub total: u64,
}

/// One rule's failures: the rule and the failure code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleFailure {
    pub rule: String,
    /// `out_of_fuel`, `timeout`, `memory_limit`, `trap`, `instantiate`.
    pub reason: String,
    pub count: u64,
}

/// The overview of one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub bucket: Bucket,
    /// Records in the window, of every kind.
    pub records: u64,
    pub allowed: u64,
    pub denied: u64,
    /// Non-empty buckets, oldest first.
    pub decisions: Vec<DecisionsAt>,
    /// The [`TOP`] most frequent deny reasons, most frequent first (a
    /// decision denied for two reasons counts for each).
    pub deny_reasons: Vec<Counted>,
    /// Token events per connection, the [`TOP`] busiest first.
    pub token_events: Vec<ConnectionEvents>,
    /// Decisions in which at least one rule failed.
    pub decisions_with_rule_failures: u64,
    /// Failures per rule and code, most frequent first, counted over the
    /// decisions read for them (all of them unless `rule_failures_partial`).
    pub rule_failures: Vec<RuleFailure>,
    pub rule_failures_partial: bool,
}

impl Overview {
    /// Folds a store's grouped rows.
    pub fn fold(bucket: Bucket, groups: impl IntoIterator<Item = Group>) -> Self {
        let mut records = 0;
        let mut by_bucket: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
        let mut connections: BTreeMap<Option<String>, BTreeMap<String, u64>> = BTreeMap::new();
        let mut with_failures = 0;
        for g in groups {
            records += g.count;
            if g.kind == "decision" {
                let at = by_bucket.entry(g.bucket).or_default();
                match g.decision.as_deref() {
                    Some("allow") => at.0 += g.count,
                    Some("deny") => at.1 += g.count,
                    _ => {}
                }
                if g.rule_error {
                    with_failures += g.count;
                }
                // Stored reasons are a JSON array of strings; anything else
                // is not a reason to count.
                let listed: Vec<String> =
                    g.deny_reasons.as_deref().and_then(|r| serde_json::from_str(r).ok()).unwrap_or_default();
                for reason in listed {
                    *reasons.entry(reason).or_default() += g.count;
                }
            } else if g.kind.starts_with("token.") {
                *connections.entry(g.connection).or_default().entry(g.kind).or_default() += g.count;
            }
        }
        let decisions: Vec<DecisionsAt> = by_bucket
            .into_iter()
            .map(|(prefix, (allow, deny))| DecisionsAt { start: bucket.start(&prefix), allow, deny })
            .collect();
        let mut token_events: Vec<ConnectionEvents> = connections
            .into_iter()
            .map(|(connection, kinds)| {
                let total = kinds.values().sum();
                ConnectionEvents { connection, kinds, total }
            })
            .collect();
        token_events.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.connection.cmp(&b.connection)));
        token_events.truncate(TOP);
        Self {
            bucket,
            records,
            allowed: decisions.iter().map(|d| d.allow).sum(),
            denied: decisions.iter().map(|d| d.deny).sum(),
            decisions,
            deny_reasons: top(reasons),
            token_events,
            decisions_with_rule_failures: with_failures,
            rule_failures: Vec::new(),
            rule_failures_partial: false,
        }
    }

    /// Counts the failed rule verdicts in the `details` of decisions that
    /// have any (`details.rules[]` with `verdict: "error"`). `partial` says
    /// the store read fewer than all of them.
    pub fn add_rule_failures<'a>(&mut self, details: impl IntoIterator<Item = &'a str>, partial: bool) {
        let mut failures: BTreeMap<(String, String), u64> = BTreeMap::new();
        for text in details {
            let Ok(value) = serde_json::from_str::<Value>(text) else { continue };
            let Some(rules) = value.get("rules").and_then(Value::as_array) else { continue };
            for verdict in rules.iter().filter(|v| v.get("verdict").and_then(Value::as_str) == Some("error")) {
                let name = |field: &str| verdict.get(field).and_then(Value::as_str).unwrap_or("").to_owned();
                *failures.entry((name("rule"), name("reason"))).or_default() += 1;
            }
        }
        let mut listed: Vec<RuleFailure> =
            failures.into_iter().map(|((rule, reason), count)| RuleFailure { rule, reason, count }).collect();
        listed.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| (&a.rule, &a.reason).cmp(&(&b.rule, &b.reason))));
        listed.truncate(TOP);
        self.rule_failures = listed;
        self.rule_failures_partial = partial;
    }
}

/// The [`TOP`] most frequent, most frequent first, ties by name.
fn top(counts: BTreeMap<String, u64>) -> Vec<Counted> {
    let mut listed: Vec<Counted> = counts.into_iter().map(|(name, count)| Counted { name, count }).collect();
    listed.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    listed.truncate(TOP);
    listed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]

    use super::*;

    fn group(bucket: &str, kind: &str, decision: Option<&str>, connection: Option<&str>, count: u64) -> Group {
        Group {
            bucket: bucket.into(),
            kind: kind.into(),
            decision: decision.map(Into::into),
            connection: connection.map(Into::into),
            deny_reasons: None,
            rule_error: false,
            count,
        }
    }

    #[test]
    fn buckets_cover_a_window_in_a_few_hundred_bars() {
        assert_eq!(Bucket::for_window(3600), Bucket::Minute);
        assert_eq!(Bucket::for_window(86_400), Bucket::Hour);
        assert_eq!(Bucket::for_window(30 * 86_400), Bucket::Day);
        // The prefix of a stored stamp names its bucket's start.
        let ts = "2026-12-07T13:05:09.123Z";
        for (bucket, start) in [
            (Bucket::Minute, "2026-12-07T13:05:00Z"),
            (Bucket::Hour, "2026-12-07T13:00:00Z"),
            (Bucket::Day, "2026-12-07T00:00:00Z"),
        ] {
            assert_eq!(bucket.start(&ts[..bucket.prefix_len()]), start);
        }
    }

    #[test]
    fn decisions_are_counted_per_bucket_and_reasons_per_reason() {
        let mut deny_a = group("2026-12-07T13", "decision", Some("deny"), None, 3);
        deny_a.deny_reasons = Some(r#"["no_permit"]"#.into());
        let mut deny_b = group("2026-12-07T14", "decision", Some("deny"), None, 2);
        deny_b.deny_reasons = Some(r#"["not_member","no_permit"]"#.into());
        let mut failed = group("2026-12-07T14", "decision", Some("deny"), None, 1);
        failed.deny_reasons = Some(r#"["rule_error:quota"]"#.into());
        failed.rule_error = true;
        let groups = vec![
            group("2026-12-07T13", "decision", Some("allow"), None, 5),
            deny_a,
            deny_b,
            failed,
            group("2026-12-07T14", "token.used", None, Some("snow"), 7),
            group("2026-12-07T13", "token.used", None, Some("snow"), 1),
            group("2026-12-07T13", "token.issued", None, Some("snow"), 2),
            group("2026-12-07T13", "token.revoked", None, Some("bq"), 1),
            group("2026-12-07T13", "policy.updated", None, None, 1),
        ];
        let o = Overview::fold(Bucket::Hour, groups);
        assert_eq!(o.records, 23);
        assert_eq!((o.allowed, o.denied), (5, 6));
        assert_eq!(
            o.decisions,
            vec![
                DecisionsAt { start: "2026-12-07T13:00:00Z".into(), allow: 5, deny: 3 },
                DecisionsAt { start: "2026-12-07T14:00:00Z".into(), allow: 0, deny: 3 },
            ]
        );
        let reasons: Vec<(&str, u64)> = o.deny_reasons.iter().map(|c| (c.name.as_str(), c.count)).collect();
        assert_eq!(reasons, vec![("no_permit", 5), ("not_member", 2), ("rule_error:quota", 1)]);
        assert_eq!(o.token_events.len(), 2);
        assert_eq!(o.token_events[0].connection.as_deref(), Some("snow"));
        assert_eq!(o.token_events[0].total, 10);
        assert_eq!(o.token_events[0].kinds["token.used"], 8);
        assert_eq!(o.token_events[1].connection.as_deref(), Some("bq"));
        assert_eq!(o.decisions_with_rule_failures, 1);
    }

    #[test]
    fn rule_failures_are_counted_per_rule_and_code() {
        let mut o = Overview::fold(Bucket::Hour, Vec::new());
        let details = [
            r#"{"rules":[{"rule":"quota","mode":"enforce","verdict":"error","reason":"timeout"},{"rule":"geo","mode":"enforce","verdict":"allow"}]}"#,
            r#"{"rules":[{"rule":"quota","mode":"enforce","verdict":"error","reason":"timeout"}]}"#,
            r#"{"rules":[{"rule":"geo","mode":"monitor","verdict":"error","reason":"trap"}]}"#,
            "not json",
            r#"{"rules":"not a list"}"#,
        ];
        o.add_rule_failures(details, true);
        assert!(o.rule_failures_partial);
        assert_eq!(
            o.rule_failures,
            vec![
                RuleFailure { rule: "quota".into(), reason: "timeout".into(), count: 2 },
                RuleFailure { rule: "geo".into(), reason: "trap".into(), count: 1 },
            ]
        );
    }

    #[test]
    fn lists_keep_the_most_frequent() {
        let groups = (0..15u64).map(|i| {
            let mut g = group("2026-12-07", "decision", Some("deny"), None, i + 1);
            g.deny_reasons = Some(format!(r#"["r{i:02}"]"#));
            g
        });
        let o = Overview::fold(Bucket::Day, groups);
        assert_eq!(o.deny_reasons.len(), TOP);
        assert_eq!(o.deny_reasons[0], Counted { name: "r14".into(), count: 15 });
        assert_eq!(o.deny_reasons[TOP - 1].name, "r05");
    }
}
