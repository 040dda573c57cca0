-- The log's published C2SP checkpoints: signed notes over its tree head,
-- one per tree size, written by the writer on its own (never by a read).
CREATE TABLE audit_log_checkpoints (
    tree_size BIGINT PRIMARY KEY,
    note      TEXT NOT NULL
);
CREATE TRIGGER audit_log_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION warrant_append_only();
