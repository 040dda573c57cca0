-- The schema refuses a record that does not follow the stored head, as on
-- SQLite (migration 0009 there): its `seq` must come right after the last
-- one and its `prev_mac` must be that record's `mac`. Appends already read
-- the head under the chain's advisory lock; this guards against any writer
-- that does not (or reads a head it misparsed) forking or gapping the chain.
CREATE FUNCTION warrant_audit_follows_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq <> 1 AND (SELECT mac FROM audit_records WHERE seq = NEW.seq - 1) IS DISTINCT FROM NEW.prev_mac THEN
        RAISE EXCEPTION 'an audit record must follow the stored head';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_records_follow_head BEFORE INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION warrant_audit_follows_head();
