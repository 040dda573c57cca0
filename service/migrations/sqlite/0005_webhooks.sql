-- Webhooks. No secret is ever stored here: sources and subscriptions (with
-- their secrets) live in the webhooks configuration file.

-- Inbound deliveries already processed, per source, so a replayed
-- `webhook-id` is refused. `expires_at` is when the row may go: a Standard
-- Webhooks delivery older than the timestamp tolerance is refused anyway, so
-- its id need not be kept past that; NULL (the `sha256` scheme, whose id is
-- the body's digest and which carries no timestamp) keeps it for good.
CREATE TABLE webhook_deliveries_seen (
    source     TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    seen_at    TEXT NOT NULL,   -- RFC 3339 UTC
    expires_at TEXT,            -- RFC 3339 UTC
    PRIMARY KEY (source, webhook_id)
);
CREATE INDEX webhook_deliveries_seen_by_expiry ON webhook_deliveries_seen (expires_at);

-- Outbound delivery progress: the audit log is the outbox, and each
-- subscription's cursor is the last `seq` it acknowledged (or that did not
-- match its kinds). `attempts` and `next_attempt_at` keep the backoff across
-- restarts.
CREATE TABLE webhook_cursors (
    subscription    TEXT PRIMARY KEY,
    delivered_seq   INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT       -- RFC 3339 UTC; NULL when not backing off
);
