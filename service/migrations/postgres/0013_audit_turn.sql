-- What an append reads under the chain's lock, in one round trip
-- (store/postgres/append.rs): takes the lock, then reads the head and the
-- stored tree's right edge. Instances sharing the database take turns on
-- the lock, and each round trip made while holding it is time the other
-- instance waits.
--
-- VOLATILE, so each query below takes a new snapshot: they see what the
-- lock's previous holder committed (a single statement taking the lock
-- and reading would read from a snapshot older than the lock).
--
-- Returns the head (NULL for an empty log), how many leaves level 0's
-- stored tiles cover, and the partial tile of each level at that size,
-- the ones TileEdge::tiles_at names.
CREATE FUNCTION warrant_audit_turn(
    lock_key BIGINT,
    OUT head_seq BIGINT,
    OUT head_mac TEXT,
    OUT tree_size BIGINT,
    OUT tile_levels BIGINT[],
    OUT tile_indexes BIGINT[],
    OUT tile_hashes BYTEA[]
) LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    width BIGINT;
    lvl BIGINT := 0;
    tile RECORD;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    SELECT seq, mac INTO head_seq, head_mac FROM audit_records ORDER BY seq DESC LIMIT 1;
    SELECT idx * 256 + length(hashes) / 32 INTO tree_size
        FROM audit_tiles WHERE level = 0 ORDER BY idx DESC LIMIT 1;
    tree_size := coalesce(tree_size, 0);
    tile_levels := '{}';
    tile_indexes := '{}';
    tile_hashes := '{}';
    width := tree_size;
    WHILE width > 0 LOOP
        IF width % 256 > 0 THEN
            SELECT level, idx, hashes INTO tile FROM audit_tiles WHERE level = lvl AND idx = width / 256;
            IF FOUND THEN
                tile_levels := tile_levels || tile.level;
                tile_indexes := tile_indexes || tile.idx;
                tile_hashes := tile_hashes || tile.hashes;
            END IF;
        END IF;
        width := width / 256;
        lvl := lvl + 1;
    END LOOP;
END;
$$;
