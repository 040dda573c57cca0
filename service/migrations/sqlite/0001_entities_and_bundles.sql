-- The entity store: Cedar entities JSON documents, replaced as a set.
CREATE TABLE entities (
    entity_type TEXT NOT NULL,
    entity_id   TEXT NOT NULL,
    doc         TEXT NOT NULL,
    PRIMARY KEY (entity_type, entity_id)
) WITHOUT ROWID;

-- Every policy bundle that became active, newest last. The newest row is the
-- bundle in force; a restart resumes it.
CREATE TABLE policy_bundles (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    digest       TEXT NOT NULL,
    files        TEXT NOT NULL,   -- JSON object: relative path -> content
    origin       TEXT NOT NULL CHECK (origin IN ('disk', 'api')),
    activated_at TEXT NOT NULL
);
