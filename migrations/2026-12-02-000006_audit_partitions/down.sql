-- Back to one table: the live events with their ids inline. Months already
-- archived stay in their archive files (their ledger goes with this table).
CREATE TABLE audit_events_v1 (
    seq            bigint PRIMARY KEY CHECK (seq > 0),
    id             uuid NOT NULL UNIQUE,
    occurred_at    timestamptz NOT NULL,
    request_id     text NOT NULL,
    trace_id       text,
    actor_sub      text NOT NULL,
    actor_org      text NOT NULL,
    actor_roles    text[] NOT NULL,
    actor_country  text,
    purpose        text NOT NULL,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_ids   uuid[] NOT NULL,
    fields         text[] NOT NULL,
    field_classes  text[] NOT NULL,
    allowed        boolean NOT NULL,
    rules          text[] NOT NULL,
    policy_version text NOT NULL,
    prev_hash      bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea NOT NULL CHECK (octet_length(hash) = 32)
);
INSERT INTO audit_events_v1
SELECT seq, id, occurred_at, request_id, trace_id, actor_sub, actor_org, actor_roles,
       actor_country, purpose, action, resource_type, resource_ids, fields, field_classes,
       allowed, rules, policy_version, prev_hash, hash
FROM audit_trail ORDER BY seq;

DROP VIEW audit_trail;
DROP TABLE audit_events, audit_resource_sets, audit_archives;
DROP FUNCTION audit_ensure_partition(date);

ALTER TABLE audit_events_v1 RENAME TO audit_events;
ALTER TABLE audit_events RENAME CONSTRAINT audit_events_v1_pkey TO audit_events_pkey;
ALTER TABLE audit_events RENAME CONSTRAINT audit_events_v1_id_key TO audit_events_id_key;
CREATE INDEX audit_events_resource_ids ON audit_events USING gin (resource_ids);
CREATE INDEX audit_events_actor ON audit_events (actor_sub, seq);
CREATE INDEX audit_events_org ON audit_events (actor_org, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_rules ON audit_events USING gin (rules);

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_no_change
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
REVOKE ALL ON audit_events FROM kasvu_gateway;
GRANT SELECT, INSERT ON audit_events TO kasvu_gateway;
