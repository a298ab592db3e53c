-- The issues the forge's rule put agents on, and the guidance people gave
-- on them. Portable SQL, as in 0001.

-- One row per issue (key 'owner/repo#number', lower case). A row with no
-- finished_at is work in progress: a second assignment does not take the
-- issue again, and after a restart the instance that took it finishes it.
CREATE TABLE issue_work (
    issue       TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    number      BIGINT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    instance    TEXT NOT NULL,
    agent_id    TEXT,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT
);

CREATE INDEX issue_work_unfinished ON issue_work (instance, finished_at);

-- Comments addressed to the bot, once each (by the forge's comment id).
-- delivered_to is NULL until the guidance reached an agent: as the answer
-- to a question ('question:<id>') or in a new agent's task ('task:<id>').
CREATE TABLE issue_guidance (
    issue        TEXT NOT NULL,
    comment_id   BIGINT NOT NULL,
    author       TEXT NOT NULL,
    text         TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    delivered_to TEXT,
    PRIMARY KEY (issue, comment_id)
);
