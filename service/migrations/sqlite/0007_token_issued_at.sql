-- When the user last authenticated for the token (`token.issued`): what the
-- `token-max-age` rule compares with its maximum age. NULL for tokens
-- recorded before this column existed.
ALTER TABLE tokens ADD COLUMN issued_at TEXT;
