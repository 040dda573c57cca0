-- The log's Merkle tree as C2SP tlog-tiles (height 8): one row per tile,
-- its hashes (32 bytes each, 1 to 256) concatenated. A partial tile's row
-- (levels 1 and up) is rewritten as it grows; a full one never changes.
-- Level 0's partial tile is not stored: it is the leaves of the last
-- records. Written in the same transaction as the records that complete or
-- grow them (store/tree.rs). Existing logs get their tiles from the stored
-- records when the service next starts.
CREATE TABLE audit_tiles (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hashes BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

-- Tiles only grow: a partial tile's row is replaced by a longer one that
-- starts with it, a full tile (256 hashes) never changes, none is deleted.
CREATE TRIGGER audit_tiles_only_grow BEFORE UPDATE ON audit_tiles
WHEN length(OLD.hashes) >= 8192 OR length(NEW.hashes) <= length(OLD.hashes)
    OR substr(NEW.hashes, 1, length(OLD.hashes)) <> OLD.hashes
    OR NEW.level <> OLD.level OR NEW.idx <> OLD.idx
BEGIN SELECT RAISE(ABORT, 'a tile only grows, and a full tile never changes'); END;
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
BEGIN SELECT RAISE(ABORT, 'audit tiles are append-only'); END;
