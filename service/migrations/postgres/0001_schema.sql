-- PostgreSQL schema: the same tables and guarantees as the SQLite
-- migrations 0001-0004, for several warrant instances sharing one database.

CREATE TABLE entities (
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
);

-- Bumped with every entity replace, so other instances notice and reload.
CREATE TABLE store_versions (
    name    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
INSERT INTO store_versions (name, version) VALUES ('entities', 0);

CREATE TABLE policy_bundles (
    id           BIGSERIAL PRIMARY KEY,
    digest       TEXT NOT NULL,
    files        TEXT NOT NULL,
    origin       TEXT NOT NULL CHECK (origin IN ('disk', 'api')),
    activated_at TEXT NOT NULL
);

CREATE TABLE tokens (
    token_id   TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    connection TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'expired', 'revoked')),
    role       TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX tokens_by_owner_connection ON tokens (owner, connection);

CREATE TABLE audit_records (
    seq           BIGINT PRIMARY KEY,
    ts            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    token_id      TEXT,
    token_owner   TEXT,
    connection    TEXT,
    project       TEXT,
    decision      TEXT,
    reasons       TEXT,
    policy_digest TEXT,
    details       TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    prev_mac      TEXT NOT NULL,
    mac           TEXT NOT NULL
);
CREATE INDEX audit_by_ts ON audit_records (ts);
CREATE INDEX audit_by_kind ON audit_records (kind, seq);
CREATE INDEX audit_by_actor ON audit_records (actor, seq);
CREATE INDEX audit_by_token ON audit_records (token_id, seq);
CREATE INDEX audit_by_connection ON audit_records (connection, seq);
CREATE INDEX audit_by_project ON audit_records (project, seq);

CREATE TABLE audit_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    root      TEXT NOT NULL,
    ts        TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    mac       TEXT NOT NULL
);

-- Append-only: the schema refuses to change or remove a record.
CREATE FUNCTION warrant_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION warrant_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION warrant_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION warrant_append_only();

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);
