-- Witnesses' cosignatures of the log's published checkpoints (C2SP
-- tlog-cosignature): one signature line per witness per checkpoint, as the
-- witness returned it and the log verified it. Appended to the checkpoint
-- when it is served, and to proof files.
CREATE TABLE audit_log_cosignatures (
    tree_size BIGINT NOT NULL,
    witness   TEXT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
CREATE TRIGGER audit_log_cosignatures_append_only BEFORE UPDATE OR DELETE ON audit_log_cosignatures
    FOR EACH ROW EXECUTE FUNCTION warrant_append_only();
