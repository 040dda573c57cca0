-- Witnesses' cosignatures of the log's published checkpoints (C2SP
-- tlog-cosignature): one signature line per witness per checkpoint, as the
-- witness returned it and the log verified it. Appended to the checkpoint
-- when it is served, and to proof files.
CREATE TABLE audit_log_cosignatures (
    tree_size INTEGER NOT NULL,
    witness   TEXT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
CREATE TRIGGER audit_log_cosignatures_no_update BEFORE UPDATE ON audit_log_cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END;
CREATE TRIGGER audit_log_cosignatures_no_delete BEFORE DELETE ON audit_log_cosignatures
BEGIN SELECT RAISE(ABORT, 'cosignatures are append-only'); END;
