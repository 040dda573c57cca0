-- Pending authorizations of the token vault (docs/vault.md#storage): a row
-- from `POST /v1/grants/{connection}/start` until the provider's callback
-- consumes it or it expires. `state` is kept only as its SHA-256; the PKCE
-- verifier sealed under the vault's key-encryption key `kek_id`.
CREATE TABLE grant_flows (
    state_hash TEXT PRIMARY KEY,
    connection TEXT NOT NULL,
    owner TEXT NOT NULL,
    kek_id TEXT NOT NULL,
    verifier BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

-- Counting an owner's pending flows, and dropping expired ones.
CREATE INDEX grant_flows_owner ON grant_flows (owner, expires_at);
CREATE INDEX grant_flows_expiry ON grant_flows (expires_at);
