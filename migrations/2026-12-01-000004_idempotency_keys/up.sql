-- Idempotency keys for the create mutations. A client that lost the answer to
-- a create (a timeout, a cut connection) repeats it with the same key and gets
-- the record the first request made instead of a second one. A key is its
-- actor's own (organisation and subject) and lasts a day: the retention run
-- removes older keys.
CREATE TABLE idempotency_keys (
    org           text NOT NULL REFERENCES organizations (code),
    sub           text NOT NULL,
    key           text NOT NULL,
    -- The mutation and a hash of its arguments: the same key with another
    -- request is refused rather than answered with the wrong record.
    operation     text NOT NULL,
    request_hash  bytea NOT NULL,
    resource_id   uuid NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org, sub, key)
);
COMMENT ON TABLE idempotency_keys IS 'Create mutations already made, by the key their client gave; kept one day.';
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
GRANT SELECT, INSERT, DELETE ON idempotency_keys TO kasvu_gateway;
