-- Validation of email addresses and phone numbers by this server (issue 10).
--
-- A session is what a requestToken call starts: keyed by the client's secret
-- (stored as its SHA-256), the medium and the normalised address, so a retry
-- with the same send_attempt finds it and sends nothing. The token sent to the
-- address is stored as its SHA-256 too. Wrong tokens are counted; a session
-- with too many, or past expires_ms, is dead.
CREATE TABLE threepid_sessions (
    sid TEXT PRIMARY KEY,
    client_secret_hash TEXT NOT NULL,
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    -- register, password_reset or add_threepid: what the message said it was for.
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    -- -1 after a failed delivery, so that any retry sends again.
    send_attempt BIGINT NOT NULL,
    next_link TEXT,
    failures BIGINT NOT NULL DEFAULT 0,
    validated_ms BIGINT,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX threepid_sessions_request ON threepid_sessions (client_secret_hash, medium, address);
CREATE INDEX threepid_sessions_expiry ON threepid_sessions (expires_ms);

-- An interactive-auth session that passed the email stage remembers which
-- validation session proved the address (registration binds it, a password
-- reset finds the account by it).
ALTER TABLE uia_sessions ADD COLUMN threepid_sid TEXT;
