-- The state of `warrant witness` (docs/witness.md), in a database of its
-- own: for each log it follows, the latest checkpoint it cosigned. The
-- protocol (c2sp.org/tlog-witness) needs only the latest, so a row is
-- replaced as the log grows; the check against it and its replacement are
-- one `BEGIN IMMEDIATE` transaction, committed before the witness answers.
CREATE TABLE witness_checkpoints (
    origin      TEXT PRIMARY KEY NOT NULL,
    tree_size   INTEGER NOT NULL CHECK (tree_size >= 0),
    root        BLOB NOT NULL CHECK (length(root) = 32),
    -- The log's checkpoint note: its text, the log's signatures that
    -- verified, and this witness's cosignature (what the monitoring
    -- endpoint serves).
    note        TEXT NOT NULL,
    -- When this witness cosigned it, POSIX seconds (the cosignature's time).
    cosigned_at INTEGER NOT NULL CHECK (cosigned_at > 0)
) WITHOUT ROWID;

-- Behind the check, the table itself refuses to roll a log back: a
-- witnessed size never shrinks, a size keeps the root it was cosigned
-- with, and a log is never forgotten (forgetting would let it start over).
CREATE TRIGGER witness_checkpoints_only_grow BEFORE UPDATE ON witness_checkpoints
WHEN NEW.origin <> OLD.origin
  OR NEW.tree_size < OLD.tree_size
  OR (NEW.tree_size = OLD.tree_size AND NEW.root <> OLD.root)
BEGIN SELECT RAISE(ABORT, 'a witnessed log only grows'); END;
CREATE TRIGGER witness_checkpoints_no_delete BEFORE DELETE ON witness_checkpoints
BEGIN SELECT RAISE(ABORT, 'a witnessed log is never forgotten'); END;
