-- Accounts, devices and every kind of token. Portable SQL: the same schema runs on
-- SQLite and PostgreSQL. Flags are BIGINT 0/1 (SQLite has no boolean type);
-- times are milliseconds since the Unix epoch.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    password_hash TEXT,
    is_guest BIGINT NOT NULL DEFAULT 0,
    is_admin BIGINT NOT NULL DEFAULT 0,
    deactivated BIGINT NOT NULL DEFAULT 0,
    locked BIGINT NOT NULL DEFAULT 0,
    suspended BIGINT NOT NULL DEFAULT 0,
    displayname TEXT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE devices (
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    display_name TEXT,
    last_seen_ms BIGINT,
    last_seen_ip TEXT,
    user_agent TEXT,
    PRIMARY KEY (user_id, device_id)
);

-- Tokens are stored as SHA-256 hashes only.
CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    expires_ms BIGINT,
    -- The refresh token issued with this access token, if any.
    refresh_hash TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
CREATE INDEX access_tokens_refresh ON access_tokens (refresh_hash);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    -- The refresh token this one replaced; it stays valid until this one or its
    -- access token is first used.
    predecessor_hash TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_device ON refresh_tokens (user_id, device_id);
CREATE INDEX refresh_tokens_predecessor ON refresh_tokens (predecessor_hash);

-- User-interactive authentication sessions, in the database so any server process
-- can continue one.
CREATE TABLE uia_sessions (
    session_id TEXT PRIMARY KEY,
    -- "METHOD path" of the endpoint that created the session.
    endpoint TEXT NOT NULL,
    -- Keyed hash of the request fields the session is bound to.
    binding TEXT NOT NULL,
    user_id TEXT,
    -- JSON array of completed stage types.
    completed TEXT NOT NULL,
    registration_token TEXT,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE openid_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE login_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE registration_tokens (
    token TEXT PRIMARY KEY,
    uses_allowed BIGINT,
    completed BIGINT NOT NULL DEFAULT 0,
    expiry_ms BIGINT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE threepids (
    medium TEXT NOT NULL,
    address TEXT NOT NULL,
    user_id TEXT NOT NULL,
    validated_ms BIGINT NOT NULL,
    added_ms BIGINT NOT NULL,
    PRIMARY KEY (medium, address)
);
CREATE INDEX threepids_user ON threepids (user_id);

-- Server-wide secrets (e.g. the key binding UIA sessions to requests), shared by
-- every process using this database.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
