-- Webhook state (as SQLite migration 0005): inbound delivery ids already
-- seen, and each outbound subscription's progress through the audit log.
CREATE TABLE webhook_deliveries_seen (
    source     TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    seen_at    TEXT NOT NULL,
    expires_at TEXT,
    PRIMARY KEY (source, webhook_id)
);
CREATE INDEX webhook_deliveries_seen_by_expiry ON webhook_deliveries_seen (expires_at);

CREATE TABLE webhook_cursors (
    subscription    TEXT PRIMARY KEY,
    delivered_seq   BIGINT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TEXT
);
