//! Outbound delivery: each subscription has a worker that walks the audit
//! log (the outbox: already durable, ordered and redacted) from its cursor
//! and POSTs every matching record, one at a time, in `seq` order.
//!
//! - Headers: `webhook-id: <subscription>_<seq>` (stable across retries and
//!   restarts, so the subscriber dedupes), `webhook-timestamp` (the attempt's
//!   time, so a long outage does not age deliveries out of the subscriber's
//!   tolerance), `webhook-signature: v1,<base64>` (Standard Webhooks).
//! - Body: `{"type": <kind>, "timestamp": <record ts>, "data": <record>}`,
//!   the Standard Webhooks payload shape around the stored record, whose
//!   sensitive values were redacted before it was stored.
//! - A 2xx moves the cursor past the record, persisted before the next one
//!   is sent. Anything else is retried after a backoff that doubles from
//!   `retry_initial_ms` to `retry_max_ms`; attempts and the next attempt's
//!   time are persisted too, so a restart neither forgets the backoff nor
//!   loses a record. Records that do not match the subscription's kinds
//!   move the cursor without a request.
//! - A subscriber that is down (no connection, a timeout, 408, 429, 502,
//!   503, 504) is waited for, however long. One that answers with any other
//!   status refuses *this record* (a size cap, a parser it breaks): after
//!   `max_refusals` such answers (10) the record is given up on, recorded
//!   as `webhook.undelivered` (subscription, `seq`, kind, refusals, last
//!   answer), and the stream goes on, so one record never holds back the
//!   ones after it (a revocation among them). The refusal count lives in
//!   memory: a restart starts it again. A `webhook.undelivered` record is
//!   never itself given up on with another one (no chain of them); it is
//!   skipped with an error in the log.
//! - Delivery is at least once: a crash between the subscriber's 2xx and
//!   the cursor write resends that one record with the same `webhook-id`.
//!
//! Workers never block shutdown: every request has a timeout, and the
//! tasks are dropped with the runtime.

use crate::error_chain::error_chain;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinHandle;
use warrant_engine::Timestamp;
use warrant_engine::audit::Record;

use super::config::Subscription;
use super::verify;
use crate::audit::{AuditLog, Event, Kind};
use crate::store::webhooks::Cursor;
use crate::store::{Store, StoreError};

/// How often an idle worker looks for new records.
const POLL: Duration = Duration::from_millis(200);
/// Records read per query.
const BATCH: u32 = 256;
/// The largest `seq` asked for (the records' own bound).
const MAX_SEQ: u64 = warrant_engine::audit::MAX_SEQ;

/// Starts one worker per subscription.
pub fn spawn(store: &Store, audit: &AuditLog, subscriptions: &[Subscription]) -> Vec<JoinHandle<()>> {
    subscriptions
        .iter()
        .map(|s| {
            let worker =
                Worker { store: store.clone(), audit: audit.clone(), sub: Arc::new(s.clone()), client: client(s) };
            tracing::info!(subscription = %s.name, host = s.url.host_str().unwrap_or(""), "webhook delivery started");
            tokio::spawn(worker.run())
        })
        .collect()
}

fn client(sub: &Subscription) -> Option<reqwest::Client> {
    // reqwest's rustls takes the process's default provider.
    crate::tls::provider();
    let mut roots = Vec::with_capacity(sub.extra_roots.len());
    for der in &sub.extra_roots {
        match reqwest::Certificate::from_der(der) {
            Ok(c) => roots.push(c),
            Err(e) => {
                tracing::error!(subscription = %sub.name, error = %e, "cannot use a certificate of `ca_file`");
                return None;
            }
        }
    }
    let built = reqwest::Client::builder()
        .tls_certs_merge(roots)
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .timeout(sub.timeout)
        .connect_timeout(sub.timeout.min(Duration::from_secs(5)))
        // A signed delivery goes where it was configured to, nowhere else.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build();
    match built {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(subscription = %sub.name, error = %e, "cannot build the webhook HTTP client");
            None
        }
    }
}

struct Worker {
    store: Store,
    audit: AuditLog,
    sub: Arc<Subscription>,
    client: Option<reqwest::Client>,
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// The subscriber answered, refusing this record.
    Refused(String),
    /// The subscriber is down or busy: no answer, or one that says so.
    Unreachable(String),
}

/// Statuses that say the subscriber is unavailable, not that it refuses
/// the record: waited for without limit.
fn is_unavailable(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 502 | 503 | 504)
}

impl Worker {
    async fn run(self) {
        let Some(client) = self.client.clone() else { return };
        let mut cursor = loop {
            match self.store.webhook_cursor(&self.sub.name).await {
                Ok(c) => break c.unwrap_or_default(),
                Err(e) => self.store_failed(&e).await,
            }
        };
        // A backoff in progress before a restart still holds.
        if let Some(due) = cursor.next_attempt_at {
            let wait =
                (due.datetime() - Timestamp::now().datetime()).to_std().unwrap_or_default().min(self.sub.retry_max);
            tokio::time::sleep(wait).await;
        }
        loop {
            let records = match self.store.audit_range(cursor.delivered_seq + 1, MAX_SEQ, BATCH).await {
                Ok(r) => r,
                Err(e) => {
                    self.store_failed(&e).await;
                    continue;
                }
            };
            if records.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let mut skipped = false;
            for record in &records {
                if !self.sub.wants(&record.kind) {
                    cursor.delivered_seq = record.seq;
                    skipped = true;
                    continue;
                }
                if skipped {
                    self.save(&cursor).await;
                    skipped = false;
                }
                self.deliver(&client, record, &mut cursor).await;
            }
            if skipped {
                self.save(&cursor).await;
            }
        }
    }

    /// Sends `record` until it is acknowledged, then moves the cursor past it.
    async fn deliver(&self, client: &reqwest::Client, record: &Record, cursor: &mut Cursor) {
        let id = format!("{}_{}", self.sub.name, record.seq);
        let body = match serde_json::to_vec(&json!({"type": record.kind, "timestamp": record.ts, "data": record})) {
            Ok(b) => b,
            Err(e) => {
                // Cannot happen for a record read back from the store; never
                // let one record stop the stream.
                tracing::error!(subscription = %self.sub.name, seq = record.seq, error = %e, "record not serialisable; skipped");
                cursor.delivered_seq = record.seq;
                self.save(cursor).await;
                return;
            }
        };
        let mut refusals = 0u32;
        loop {
            let why = match self.attempt(client, &id, &body).await {
                Attempt::Delivered => {
                    *cursor = Cursor { delivered_seq: record.seq, attempts: 0, next_attempt_at: None };
                    self.save(cursor).await;
                    return;
                }
                Attempt::Refused(why) => {
                    refusals = refusals.saturating_add(1);
                    if refusals >= self.sub.max_refusals && self.give_up(record, &id, refusals, &why).await {
                        *cursor = Cursor { delivered_seq: record.seq, attempts: 0, next_attempt_at: None };
                        self.save(cursor).await;
                        return;
                    }
                    why
                }
                Attempt::Unreachable(why) => why,
            };
            cursor.attempts = cursor.attempts.saturating_add(1);
            let delay = self.sub.backoff(cursor.attempts);
            let delay_delta = chrono::TimeDelta::from_std(delay).unwrap_or_default();
            cursor.next_attempt_at = Timestamp::now().checked_add(delay_delta);
            tracing::warn!(
                subscription = %self.sub.name,
                webhook_id = %id,
                attempts = cursor.attempts,
                refusals,
                retry_in_ms = delay.as_millis() as u64,
                error = %why,
                "webhook delivery failed; will retry"
            );
            self.save(cursor).await;
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, client: &reqwest::Client, id: &str, body: &[u8]) -> Attempt {
        let timestamp = Timestamp::now().unix_seconds();
        let request = client
            .post(self.sub.url.clone())
            .header(verify::ID, id)
            .header(verify::TIMESTAMP, timestamp.to_string())
            .header(verify::SIGNATURE, verify::sign(&self.sub.secret, id, timestamp, body))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        match request.send().await {
            Ok(response) if response.status().is_success() => Attempt::Delivered,
            Ok(response) if is_unavailable(response.status()) => {
                Attempt::Unreachable(format!("status {}", response.status().as_u16()))
            }
            Ok(response) => Attempt::Refused(format!("status {}", response.status().as_u16())),
            // Without the URL: the configuration is where it is looked up.
            Err(e) => Attempt::Unreachable(error_chain(&e.without_url())),
        }
    }

    /// Records that `record` was given up on after `refusals` refusals;
    /// false if that record could not be written (the delivery is retried).
    async fn give_up(&self, record: &Record, id: &str, refusals: u32, last: &str) -> bool {
        if record.kind == Kind::WebhookUndelivered {
            tracing::error!(subscription = %self.sub.name, seq = record.seq, "the subscriber refuses a webhook.undelivered record; skipped");
            return true;
        }
        let mut event = Event::new(Kind::WebhookUndelivered, format!("subscriber:{}", self.sub.name));
        event.details.insert("subscription".into(), json!(self.sub.name));
        event.details.insert("seq".into(), json!(record.seq));
        event.details.insert("kind".into(), json!(record.kind));
        event.details.insert("webhook_id".into(), json!(id));
        event.details.insert("refusals".into(), json!(refusals));
        event.details.insert("last_answer".into(), json!(last));
        match self.audit.append(event).await {
            Ok(_) => {
                tracing::error!(subscription = %self.sub.name, seq = record.seq, refusals, last_answer = last, "webhook record given up on; recorded as webhook.undelivered");
                true
            }
            Err(e) => {
                tracing::error!(subscription = %self.sub.name, seq = record.seq, error = %e, "cannot record an undelivered webhook; retrying the delivery");
                false
            }
        }
    }

    /// Persists the cursor; a failure is logged and the worker goes on (the
    /// worst outcome is a resent record, which the subscriber dedupes).
    async fn save(&self, cursor: &Cursor) {
        if let Err(e) = self.store.save_webhook_cursor(&self.sub.name, cursor).await {
            tracing::error!(subscription = %self.sub.name, error = %e, "cannot save the webhook cursor");
        }
    }

    async fn store_failed(&self, e: &StoreError) {
        tracing::error!(subscription = %self.sub.name, error = %e, "webhook delivery cannot read the store");
        tokio::time::sleep(self.sub.retry_initial.max(POLL)).await;
    }
}
