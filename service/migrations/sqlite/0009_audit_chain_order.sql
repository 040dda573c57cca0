-- The schema refuses a record that does not follow the stored head: its
-- `seq` must come right after the last one and its `prev_mac` must be that
-- record's `mac`. With `seq` the primary key, a gap, a fork or a stale
-- writer's append fails as a whole statement, so the service can append a
-- group commit as one INSERT after the head it remembers instead of reading
-- the head in a transaction first.
CREATE TRIGGER audit_records_follow_head BEFORE INSERT ON audit_records
WHEN NEW.seq <> 1 AND (SELECT mac FROM audit_records WHERE seq = NEW.seq - 1) IS NOT NEW.prev_mac
BEGIN SELECT RAISE(ABORT, 'an audit record must follow the stored head'); END;
