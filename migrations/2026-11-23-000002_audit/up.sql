-- The audit trail of authorization decisions (access.md, "Auditing decisions").
--
-- One row per request, resource type, decision and field set. Rows are
-- hash-chained in `seq` order: `hash` = SHA-256 over the previous row's hash
-- and a canonical encoding of this row (src/audit/chain.rs). The gateway
-- assigns `seq` under an advisory lock, so the chain has one order even with
-- several replicas; the unique key on `seq` refuses a fork outright.
CREATE TABLE audit_events (
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

-- "Every event that touched this resource" is an indexed lookup.
CREATE INDEX audit_events_resource_ids ON audit_events USING gin (resource_ids);
CREATE INDEX audit_events_actor ON audit_events (actor_sub, seq);
CREATE INDEX audit_events_org ON audit_events (actor_org, seq);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_rules ON audit_events USING gin (rules);

-- Append-only for everyone, the table's owner included: a change has to
-- disable this trigger first, which needs the owner or a superuser and is
-- itself visible in the server log; `audit verify` finds what it changed.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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

-- The role the gateway's connections act as (SET ROLE, see DB_ROLE): the
-- register's tables in full, the audit trail insert and select only.
-- Roles are cluster-wide, so it is created only if missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kasvu_gateway') THEN
        CREATE ROLE kasvu_gateway NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO kasvu_gateway;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO kasvu_gateway;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO kasvu_gateway;
REVOKE ALL ON audit_events FROM kasvu_gateway;
GRANT SELECT, INSERT ON audit_events TO kasvu_gateway;
-- Tables of later migrations get the register's grants unless they say otherwise.
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO kasvu_gateway;
