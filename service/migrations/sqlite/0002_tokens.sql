-- The token store: the state of each user's warehouse OAuth token, fed by
-- token events and webhooks. Only identifiers and lifecycle facts: the
-- tokens themselves never reach warrant.
CREATE TABLE tokens (
    token_id   TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    connection TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
    role       TEXT NOT NULL,
    expires_at TEXT NOT NULL,  -- RFC 3339 UTC
    updated_at TEXT NOT NULL
);
CREATE INDEX tokens_by_owner_connection ON tokens (owner, connection);
