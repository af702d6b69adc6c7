-- Hardening (issue 8).
--
-- Refresh tokens: a replaced token is kept, marked retired, so that a replay of
-- it is recognised as theft; and a session may have an absolute end.
ALTER TABLE refresh_tokens ADD COLUMN retired_ms BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN session_ends_ms BIGINT;
-- Retired tokens are purged after a day.
CREATE INDEX refresh_tokens_retired ON refresh_tokens (retired_ms);

-- Interactive-auth sessions are now stored under the SHA-256 of their ID and bound
-- with a key derived from the ID itself, which the database never holds: a dump
-- of the database no longer allows guessing the passwords of pending requests.
-- Sessions bound the old way cannot be checked any more; they live minutes, so
-- they are dropped, with the database-held key they used.
DELETE FROM uia_sessions;
DELETE FROM server_secrets WHERE name = 'uia_binding_key';
-- A completed session remembers the account it acted for: a retried
-- registration gets its result, any other retry a 401 listing the completed
-- stages (the spec's rule for retries), and nothing runs twice.
ALTER TABLE uia_sessions ADD COLUMN result_user_id TEXT;
