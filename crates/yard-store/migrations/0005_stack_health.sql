-- How each deployed stack has been doing since, as the yard's watcher last
-- saw it. Written apart from the deployment's steps (which never touch
-- these columns), so the two never overwrite each other. Portable SQL, as
-- in 0001.

ALTER TABLE deployments ADD COLUMN health TEXT NOT NULL DEFAULT 'starting';
ALTER TABLE deployments ADD COLUMN health_reason TEXT;
ALTER TABLE deployments ADD COLUMN restarts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN last_failure TEXT;
