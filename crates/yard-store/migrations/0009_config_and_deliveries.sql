-- The yard's settings and the forge's webhook deliveries. Portable SQL, as
-- in 0001.

-- One row per setting that is set (the keys are yard-core's ConfigKey). A
-- secret's value is sealed by the services before it gets here
-- ('v1:<nonce hex>:<ciphertext hex>', with the key's name bound in), so
-- the store never holds a secret in the clear.
CREATE TABLE config (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    -- 1 when value is sealed.
    secret     BIGINT NOT NULL CHECK (secret IN (0, 1)),
    updated_at BIGINT NOT NULL
);

-- Every signed delivery of the forge's webhook, by the forge's delivery
-- id: a redelivery finds its row already there and is not acted on again.
CREATE TABLE webhook_deliveries (
    id          TEXT PRIMARY KEY,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('accepted', 'ignored'))
);
