-- The audit log. Each column is a record field; the columns are what the
-- MAC covers (verification rebuilds each record from them), so no copy of a
-- record can disagree with what is queried.
CREATE TABLE audit_records (
    seq           INTEGER PRIMARY KEY,   -- gap-free from 1
    ts            TEXT NOT NULL,
    kind          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    token_id      TEXT,
    token_owner   TEXT,
    connection    TEXT,
    project       TEXT,
    decision      TEXT,
    reasons       TEXT,                  -- JSON array
    policy_digest TEXT,
    details       TEXT NOT NULL,         -- JSON object
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

-- Append-only: the schema refuses to change or remove a record.
CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;

-- Signed tree heads the service has published.
CREATE TABLE audit_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    root      TEXT NOT NULL,
    ts        TEXT NOT NULL,
    key_id    TEXT NOT NULL,
    mac       TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
