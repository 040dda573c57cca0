-- From this seq on, `details` and `reasons` are stored as their canonical
-- (RFC 8785) text, the exact bytes the record's MAC covers, so verification
-- splices them instead of re-canonicalizing. Rows before it were stored as
-- ordinary JSON text: for those, verification accepts text that parses to the
-- content the MAC covers. (Moving this mark only loosens or tightens that
-- check for rewritten-but-equal JSON; any change of content still fails.)
CREATE TABLE audit_canonical_since (seq BIGINT NOT NULL);
INSERT INTO audit_canonical_since (seq) SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_records;
