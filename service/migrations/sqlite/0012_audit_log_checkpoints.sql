-- The log's published C2SP checkpoints: signed notes over its tree head,
-- one per tree size, written by the writer on its own (never by a read).
CREATE TABLE audit_log_checkpoints (
    tree_size INTEGER PRIMARY KEY,
    note      TEXT NOT NULL
);
CREATE TRIGGER audit_log_checkpoints_no_update BEFORE UPDATE ON audit_log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER audit_log_checkpoints_no_delete BEFORE DELETE ON audit_log_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
