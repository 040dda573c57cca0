-- The token vault's grants (docs/vault.md#storage): each user's OAuth grant
-- for a connection, its tokens sealed under a per-grant data key, that key
-- wrapped under the vault's key-encryption key `kek_id`. `id` is also the
-- grant's token id in `tokens`. A row changes only through the audit
-- writer, with the record of the change; `version` counts its changes, so
-- a write based on a stale read is refused.
CREATE TABLE grants (
    id TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    owner TEXT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'reauth_required', 'revoked')),
    reason TEXT,
    scopes TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    data_key BLOB NOT NULL,
    access_token BLOB NOT NULL,
    access_expires_at TEXT NOT NULL,
    refresh_token BLOB,
    refresh_started_at TEXT,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- A user's grants (disconnect, deprovision, resolution).
CREATE INDEX grants_by_owner ON grants (owner, connection);
-- The background refresher: active grants by expiry.
CREATE INDEX grants_by_expiry ON grants (status, access_expires_at);
