-- The display name a registration page's form asked for (in front of
-- Synapse, which keeps profiles), kept while the registration waits for its
-- email address, then given to Synapse with the new user. NULL: none asked.
ALTER TABLE oauth_pending_registrations ADD COLUMN display_name TEXT;
