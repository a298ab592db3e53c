-- Who deployed each stack, browser sessions, and unique names for the
-- tokens in use. Portable SQL, as in 0001.

-- The name of the token that asked for the deployment (a person's name, or
-- 'admin'); NULL for deployments made before owners were recorded.
ALTER TABLE deployments ADD COLUMN owner TEXT;

-- A name identifies one person's active token, so it can be revoked and
-- reissued under the same name.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name)
    WHERE revoked_at IS NULL;

-- Sessions made from a token: 'portal' for the web page, 'stack:NAME' for a
-- protected stack's address, 'ticket:NAME' for the one-time hand-over from
-- the portal to a stack. Only SHA-256 hashes of their secrets are kept; a
-- session dies with its token.
CREATE TABLE sessions (
    secret_hash TEXT PRIMARY KEY,
    token_id    TEXT NOT NULL REFERENCES api_tokens (id),
    scope       TEXT NOT NULL,
    -- The page sends this back on every state-changing request; a cross-site
    -- request cannot know it.
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);
