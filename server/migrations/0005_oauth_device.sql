-- The OAuth 2.0 device authorisation grant (RFC 8628).
--
-- A device authorisation, from the device authorisation endpoint through the
-- verification pages to the token exchange. The device code is a secret the
-- client polls with, stored as its SHA-256. The user code is eight letters a
-- person types, stored normalised (upper case, no dash: `WDJBMJHT`) so a code
-- typed in lower case, without the dash or with spaces is found; unique, so one
-- typed code names one authorisation (a new code that collides with a lingering
-- expired one is drawn again). Hashing it would protect nothing: 20^8 codes are
-- searched in seconds.
--
-- Entering the user code on the verification page gives the authorisation a
-- random ID the pages carry (session_hash, its SHA-256; a later entry of the
-- same code replaces it). The consent sets user_id (allowed) or denied = 1;
-- the token exchange sets exchanged = 1 (tokens are issued once). last_poll_ms
-- is when the client last polled while the authorisation was pending, for
-- `slow_down`.
CREATE TABLE oauth_device_grants (
    device_code_hash TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    device_id TEXT NOT NULL,
    session_hash TEXT UNIQUE,
    user_id TEXT,
    denied BIGINT NOT NULL DEFAULT 0,
    exchanged BIGINT NOT NULL DEFAULT 0,
    last_poll_ms BIGINT,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX oauth_device_grants_expiry ON oauth_device_grants (expires_ms);
