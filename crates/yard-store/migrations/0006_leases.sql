-- Several yards on one database. A daemon works on a deployment only while
-- it holds the deployment's lease (its holder id and an expiry it renews);
-- a daemon that dies stops renewing, and another takes the work over once
-- the lease has expired. The yard's instance id lives here too, so every
-- daemon on one database names and labels stacks alike. Portable SQL, as
-- in 0001.

ALTER TABLE deployments ADD COLUMN lease_holder TEXT;
ALTER TABLE deployments ADD COLUMN lease_until BIGINT;

CREATE TABLE yard_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
