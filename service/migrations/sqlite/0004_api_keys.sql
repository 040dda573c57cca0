-- API keys. Only a SHA-256 of each key's secret is kept; the key itself is
-- shown once, at creation.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,      -- public part of the key, for lookup
    secret_hash TEXT NOT NULL,         -- hex SHA-256 of the secret part
    scopes      TEXT NOT NULL,         -- JSON array
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
