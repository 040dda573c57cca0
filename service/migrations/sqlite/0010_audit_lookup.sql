-- Lookups by kind, actor, token, connection and project move off the
-- acknowledgement path (see `src/store/lookup.rs`): indexes on values that
-- arrive in random order cost a page write per record at every group
-- commit. Postings are built behind the log, one closed partition of 4,096
-- records at a time, and queries scan only what is not indexed yet.
DROP INDEX audit_by_kind;
DROP INDEX audit_by_actor;
DROP INDEX audit_by_token;
DROP INDEX audit_by_connection;
DROP INDEX audit_by_project;

-- One row per (key bucket, partition): the sorted (key, seq) pairs, 16
-- bytes each, big-endian. Derived data: rebuilt from the records.
CREATE TABLE audit_postings (
    bucket   INTEGER NOT NULL,
    part     INTEGER NOT NULL,   -- records part*4096+1 ..= (part+1)*4096
    postings BLOB NOT NULL,
    PRIMARY KEY (bucket, part)
);

-- Records with seq <= indexed_upto are covered by postings.
CREATE TABLE audit_lookup_state (indexed_upto INTEGER NOT NULL);
INSERT INTO audit_lookup_state (indexed_upto) VALUES (0);
