-- What a delegating homeserver (Synapse) has yet to be told.
--
-- A change here that Synapse must hear of but may miss without harm to the
-- answer (devices logged out: their tokens are already dead here; email
-- addresses; a lock) is sent at once; when that fails, a row notes which part
-- of which user is behind, and a background task sends that part's current
-- state again until Synapse takes it (homeserver.rs). The state itself is
-- never copied here: a retry sends what is true then, so rows never go stale.
-- `what` is 'devices', 'emails' or 'lock'; `version` grows with every new
-- failure, so a retry that read an older version does not remove a newer
-- note; `next_ms` is when to try next, `attempts` how often it failed.
CREATE TABLE homeserver_outbox (
    user_id TEXT NOT NULL,
    what TEXT NOT NULL,
    version BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, what)
);
CREATE INDEX homeserver_outbox_due ON homeserver_outbox (next_ms);
