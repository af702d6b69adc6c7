-- The OAuth 2.0 API (issue 12).
--
-- A registered client: its metadata as validated (JSON), kept while it has
-- sessions (the spec forbids deleting those).
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- An authorisation request of the code grant, from the authorisation
-- endpoint through the pages to the code's exchange. The pages know it by a
-- random ID, stored as its SHA-256; the code likewise. A consent sets user_id
-- and the code; the code's exchange sets exchanged_ms (a code is used once).
CREATE TABLE oauth_authorizations (
    id_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT,
    response_mode TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    prompt TEXT,
    user_id TEXT,
    code_hash TEXT UNIQUE,
    exchanged_ms BIGINT,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX oauth_authorizations_expiry ON oauth_authorizations (expires_ms);

-- A person logged in to this server's pages (the cookie's SHA-256).
CREATE TABLE browser_sessions (
    session_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX browser_sessions_user ON browser_sessions (user_id);
CREATE INDEX browser_sessions_expiry ON browser_sessions (expires_ms);

-- A device logged in through the OAuth 2.0 API belongs to the client that was
-- authorised and has the scope it was granted: refreshing and revoking its
-- tokens is that client's alone. NULL for legacy logins.
ALTER TABLE devices ADD COLUMN oauth_client_id TEXT;
ALTER TABLE devices ADD COLUMN oauth_scope TEXT;
