-- As SQLite migration 0007: when the token was issued (`token.issued`).
ALTER TABLE tokens ADD COLUMN issued_at TEXT;
