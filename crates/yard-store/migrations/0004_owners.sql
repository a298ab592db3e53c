-- Owners by identity, not by name. Portable SQL, as in 0001.
--
-- A token carries an owner id: its own id, or, when an admin reissues a
-- revoked token and says the new one takes over, the old one's. Stacks and
-- agents record the owner id, so a new token that merely reuses a revoked
-- token's name owns nothing of the old one's.

ALTER TABLE api_tokens ADD COLUMN owner_id TEXT;
UPDATE api_tokens SET owner_id = id;
CREATE INDEX api_tokens_owner ON api_tokens (owner_id);

-- Names are one person's whatever their case: of active tokens whose names
-- differ only in case, the oldest keeps its name and the others are revoked
-- (their sessions end with them).
UPDATE api_tokens SET revoked_at = created_at
    WHERE revoked_at IS NULL AND EXISTS (
        SELECT 1 FROM api_tokens older
        WHERE older.revoked_at IS NULL
          AND lower(older.name) = lower(api_tokens.name)
          AND (older.created_at < api_tokens.created_at
               OR (older.created_at = api_tokens.created_at AND older.id < api_tokens.id)));
DELETE FROM sessions WHERE token_id IN (SELECT id FROM api_tokens WHERE revoked_at IS NOT NULL);
DROP INDEX api_tokens_active_name;
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (lower(name))
    WHERE revoked_at IS NULL;

-- Stacks: the owner id of the token named in `owner`, preferring the one
-- still active, else the newest.
ALTER TABLE deployments ADD COLUMN owner_id TEXT;
UPDATE deployments SET owner_id = (
    SELECT t.owner_id FROM api_tokens t WHERE t.name = deployments.owner
    ORDER BY CASE WHEN t.revoked_at IS NULL THEN 0 ELSE 1 END, t.created_at DESC
    LIMIT 1)
    WHERE owner IS NOT NULL;

-- Agents: who spawned them (NULL for agents made before owners were
-- recorded: only admins see those), the agent that spawned them, and a
-- bounded prefix of each hook call's tool input in the audit.
ALTER TABLE agents ADD COLUMN owner_id TEXT;
ALTER TABLE agents ADD COLUMN owner_name TEXT;
ALTER TABLE agents ADD COLUMN parent_id TEXT;
CREATE INDEX agents_owner_status ON agents (owner_id, status);
CREATE INDEX agents_parent ON agents (parent_id);

ALTER TABLE hook_audit ADD COLUMN input TEXT;
