-- Agents and the audit trail of their hook calls. Portable SQL, as in 0001.

CREATE TABLE agents (
    id          TEXT PRIMARY KEY,
    instance    TEXT NOT NULL,
    repo        TEXT NOT NULL,
    base_ref    TEXT NOT NULL,
    base_commit TEXT NOT NULL,
    task        TEXT NOT NULL,
    image       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN (
                    'starting', 'running', 'exited', 'failed', 'stopped', 'pruned')),
    exit_code   BIGINT,
    message     TEXT,
    checkout    TEXT NOT NULL,
    head_commit TEXT,
    -- SHA-256 of the agent's credential; the credential itself is only in
    -- the agent's environment.
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE INDEX agents_instance_status ON agents (instance, status);

CREATE TABLE hook_audit (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (id),
    event      TEXT NOT NULL,
    tool       TEXT,
    -- The command or path the decision was about, shortened.
    subject    TEXT,
    decision   TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'ask')),
    -- 1 when the rule said ask and the fallback decided.
    asked      BIGINT NOT NULL,
    rule       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX hook_audit_agent ON hook_audit (agent_id, created_at);
