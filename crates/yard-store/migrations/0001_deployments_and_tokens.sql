-- Portable SQL: this one file runs on SQLite and on PostgreSQL through sqlx's
-- Any driver, so it sticks to TEXT and BIGINT columns (the Any driver cannot
-- read SQLite BOOLEAN/DATETIME or PostgreSQL TIMESTAMPTZ/UUID columns).
-- Times are milliseconds since the Unix epoch, UTC.

CREATE TABLE deployments (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN (
                     'initializing', 'creating_project', 'creating_application', 'deploying',
                     'completed', 'failed', 'removing', 'removed')),
    progress     BIGINT NOT NULL CHECK (progress BETWEEN 0 AND 100),
    current_step TEXT NOT NULL,
    message      TEXT,
    url          TEXT NOT NULL,
    image        TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- At most one deployment holds a name: the database, not the daemon, decides
-- which of two concurrent requests for the same name wins.
CREATE UNIQUE INDEX deployments_live_name ON deployments (name)
    WHERE status NOT IN ('failed', 'removed');

CREATE INDEX deployments_created ON deployments (created_at);

-- Only SHA-256 hashes of tokens are kept; a token itself is shown once.
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
