//! Refusals of unauthenticated traffic, tallied and recorded as summaries.
//!
//! Anyone can send a request with a made-up API key or an unsigned webhook
//! delivery. Recording each of those would let an outsider grow the log
//! (and the disk) at line rate, so they are counted here instead, by kind,
//! actor bucket and reason, and one summary record is written per bucket
//! that saw any (`count`, `first_at`, `last_at`) once per
//! interval (`--rejection-summary-interval-ms`, default a minute;
//! `AuditLog::flush_rejections` writes them).
//!
//! Buckets are bounded by construction: reasons are the fixed refusal
//! codes, and every name an outsider makes up (an unknown webhook source, a
//! key id) falls into one shared bucket (`webhook:*`, `api_key:*`), so
//! varying them buys nothing. Refusals from callers who proved a secret (a
//! revoked key, a wrong scope, a signed delivery with a bad payload) are
//! still recorded one by one by their callers: they are accountable.
//!
//! Every refusal counted here is also counted in `/metrics`
//! (`warrant_refusals_total`), which keeps the running totals.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;
use warrant_engine::Timestamp;

use super::event::Event;
use warrant_engine::audit::Kind;

/// One bucket of refusals. Every field comes from a bounded set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    pub kind: Kind,
    /// `webhook:<configured source>`, `webhook:*`, or `api_key:*`.
    pub actor: String,
    /// The refusal's code (`invalid_signature`, `unknown_key`, …).
    pub reason: &'static str,
    /// Where it was refused: the API scope asked for, or the webhook source
    /// as configured (`*` for unknown ones).
    pub place: String,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    first_at: Timestamp,
    last_at: Timestamp,
}

/// One bucket's refusals since the last flush, to be recorded.
#[derive(Debug, Clone)]
pub struct Summary {
    bucket: Bucket,
    tally: Tally,
}

impl Summary {
    /// The summary record: `details.summary` is true, `count` says how many.
    pub fn event(&self) -> Event {
        let (bucket, tally) = (&self.bucket, self.tally);
        let mut event = Event::new(bucket.kind, bucket.actor.clone());
        let place = if bucket.kind == Kind::WebhookRejected { "source" } else { "scope" };
        event.details.insert("summary".into(), json!(true));
        event.details.insert("reason".into(), json!(bucket.reason));
        event.details.insert(place.into(), json!(bucket.place));
        event.details.insert("count".into(), json!(tally.count));
        event.details.insert("first_at".into(), json!(tally.first_at));
        event.details.insert("last_at".into(), json!(tally.last_at));
        event
    }
}

/// The refusals counted since the last flush.
#[derive(Debug, Default)]
pub struct Rejections {
    pending: Mutex<BTreeMap<Bucket, Tally>>,
}

impl Rejections {
    /// Counts one refusal.
    pub fn note(&self, bucket: Bucket) {
        crate::metrics::refused(bucket.kind.as_str(), bucket.reason);
        let now = Timestamp::now();
        if let Ok(mut pending) = self.pending.lock() {
            pending
                .entry(bucket)
                .and_modify(|t| {
                    t.count += 1;
                    t.last_at = now;
                })
                .or_insert(Tally { count: 1, first_at: now, last_at: now });
        }
    }

    /// Everything counted since the last call, one summary per bucket.
    pub fn take(&self) -> Vec<Summary> {
        let taken = self.pending.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        taken.into_iter().map(|(bucket, tally)| Summary { bucket, tally }).collect()
    }

    /// Counts a summary that could not be recorded again, for the next
    /// flush: a failing store loses no count.
    pub fn restore(&self, summary: Summary) {
        let Summary { bucket, tally } = summary;
        if let Ok(mut pending) = self.pending.lock() {
            pending
                .entry(bucket)
                .and_modify(|t| {
                    t.count += tally.count;
                    t.first_at = tally.first_at;
                })
                .or_insert(tally);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(reason: &'static str) -> Bucket {
        Bucket { kind: Kind::ApiKeyRejected, actor: "api_key:*".into(), reason, place: "decide".into() }
    }

    #[test]
    fn counts_per_bucket_and_in_metrics_across_flushes() {
        let r = Rejections::default();
        for _ in 0..3 {
            r.note(bucket("unknown_key"));
        }
        r.note(bucket("malformed_key"));
        let taken = r.take();
        assert_eq!(taken.len(), 2);
        let unknown = taken.iter().find(|s| s.bucket == bucket("unknown_key")).unwrap().clone();
        let event = unknown.event();
        assert_eq!(event.details["count"], 3);
        assert_eq!(event.details["scope"], "decide");
        assert_eq!(event.actor, "api_key:*");
        assert!(r.take().is_empty(), "taken once");
        r.restore(unknown);
        r.note(bucket("unknown_key"));
        assert_eq!(r.take()[0].event().details["count"], 4, "a failed summary is counted again");
        let counted = crate::metrics::METRICS
            .refusals
            .get_or_create(&crate::metrics::RefusalLabels { kind: "api_key.rejected", reason: "unknown_key".into() })
            .get();
        assert!(counted >= 4, "each refusal reaches /metrics too: {counted}");
    }
}
