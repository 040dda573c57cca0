-- The log's Merkle tree as C2SP tlog-tiles (height 8): one row per tile,
-- its hashes (32 bytes each, 1 to 256) concatenated. A partial tile's row
-- (levels 1 and up) is rewritten as it grows; a full one never changes.
-- Level 0's partial tile is not stored: it is the leaves of the last
-- records. Written in the same transaction as the records that complete or
-- grow them (store/tree.rs). Existing logs get their tiles from the stored
-- records when the service next starts.
CREATE TABLE audit_tiles (
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hashes BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

-- Tiles only grow: a partial tile's row is replaced by a longer one that
-- starts with it, a full tile (256 hashes) never changes, none is deleted.
CREATE FUNCTION warrant_tile_only_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF length(OLD.hashes) >= 8192 OR length(NEW.hashes) <= length(OLD.hashes)
        OR substring(NEW.hashes FROM 1 FOR length(OLD.hashes)) <> OLD.hashes
        OR NEW.level <> OLD.level OR NEW.idx <> OLD.idx THEN
        RAISE EXCEPTION 'a tile only grows, and a full tile never changes';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_tiles_only_grow BEFORE UPDATE ON audit_tiles
    FOR EACH ROW EXECUTE FUNCTION warrant_tile_only_grows();
CREATE TRIGGER audit_tiles_no_delete BEFORE DELETE ON audit_tiles
    FOR EACH ROW EXECUTE FUNCTION warrant_append_only();
CREATE TRIGGER audit_tiles_no_truncate BEFORE TRUNCATE ON audit_tiles
    FOR EACH STATEMENT EXECUTE FUNCTION warrant_append_only();
