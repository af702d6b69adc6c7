-- The account page's "add an email address".
--
-- An address the signed-in person entered on the account page, waiting for
-- its validation link to be followed: threepid_sid is the validation session
-- that proves it once confirmed. The row belongs to one browser session
-- (session_hash, the SHA-256 of its cookie, as browser_sessions holds it) and
-- its user, so only the browser and the user that started it can bind the
-- address; one per browser session, a new address replacing the last.
CREATE TABLE account_pending_threepids (
    session_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    address TEXT NOT NULL,
    threepid_sid TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX account_pending_threepids_expiry ON account_pending_threepids (expires_ms);
