-- Bumped with every entity replace, so other processes sharing this file
-- notice and reload (the same table as on PostgreSQL).
CREATE TABLE store_versions (
    name    TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
INSERT INTO store_versions (name, version) VALUES ('entities', 0);
