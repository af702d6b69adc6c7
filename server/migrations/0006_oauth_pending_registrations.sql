-- The OAuth 2.0 registration page's email stage.
--
-- A registration waiting for its email address to be confirmed: the form
-- passed its checks, the address was sent a link (threepid_sid, the
-- validation session), and the account is created once the address is
-- confirmed. The browser holds a random value in a cookie, stored as its
-- SHA-256 (id_hash); session_hash is the SHA-256 of the authorisation request
-- or device authorisation the registration belongs to. The password is kept
-- only as its argon2id hash, ready for the account. The username and the
-- registration token are checked again when the account is created.
CREATE TABLE oauth_pending_registrations (
    id_hash TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    user_id TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    registration_token TEXT,
    address TEXT NOT NULL,
    threepid_sid TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX oauth_pending_registrations_expiry ON oauth_pending_registrations (expires_ms);
