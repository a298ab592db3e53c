-- Questions agents ask people. A question is pending until exactly one
-- outcome is written (answered, timed_out, cancelled): every write of an
-- outcome is conditional on it still being pending. Options are stored one
-- per line (an option never holds a line break). Portable SQL, as in 0001.

CREATE TABLE questions (
    id          TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    owner_id    TEXT,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL,
    options     TEXT NOT NULL DEFAULT '',
    context     TEXT,
    deadline    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    outcome     TEXT NOT NULL DEFAULT 'pending',
    answer      TEXT,
    answered_by TEXT,
    reason      TEXT,
    settled_at  BIGINT
);

CREATE INDEX questions_pending ON questions (outcome, created_at);
CREATE INDEX questions_agent ON questions (agent_id);
