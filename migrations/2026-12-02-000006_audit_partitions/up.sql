-- The audit trail at scale (docs/audit.md, "Partitions and archives").
--
-- 1. Partitioned by month of `recorded_at`: the time the writer placed the
--    event in the chain, under the chain's lock, never earlier than the event
--    before it. So `recorded_at` rises with `seq` and every month holds one
--    unbroken run of the chain: an old month can be archived and detached
--    as a whole, and `audit verify` continues from the archive's anchor
--    (`audit_archives`). `occurred_at` (the request's time) is not monotonic
--    in `seq` and so cannot be the key.
-- 2. Resource id lists, most of an event's bytes (a page of 50 contacts is
--    800 bytes of ids, its services several kilobytes), are stored once per
--    month in `audit_resource_sets` under their SHA-256; an event names its
--    list by that digest. A request's allowed and denied events over the same
--    rows share one list, and so do the same pages asked again.
-- The hash chain is unchanged: it covers the ids themselves (read through
-- the view `audit_trail`), so existing chains still verify and a changed
-- list breaks the chain like any other change.

DROP INDEX audit_events_resource_ids, audit_events_actor, audit_events_org,
    audit_events_time, audit_events_rules;
ALTER TABLE audit_events RENAME TO audit_events_v1;
ALTER TABLE audit_events_v1 RENAME CONSTRAINT audit_events_pkey TO audit_events_v1_pkey;
ALTER TABLE audit_events_v1 RENAME CONSTRAINT audit_events_id_key TO audit_events_v1_id_key;

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TABLE audit_events (
    seq            bigint NOT NULL CHECK (seq > 0),
    id             uuid NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL,
    request_id     text NOT NULL,
    trace_id       text,
    actor_sub      text NOT NULL,
    actor_org      text NOT NULL,
    actor_roles    text[] NOT NULL,
    actor_country  text,
    purpose        text NOT NULL,
    action         text NOT NULL,
    resource_type  text NOT NULL,
    -- SHA-256 of the ids' 16-byte forms in order; the list is in
    -- audit_resource_sets of the same month.
    resource_set   bytea NOT NULL CHECK (octet_length(resource_set) = 32),
    fields         text[] NOT NULL,
    field_classes  text[] NOT NULL,
    allowed        boolean NOT NULL,
    rules          text[] NOT NULL,
    policy_version text NOT NULL,
    prev_hash      bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea NOT NULL CHECK (octet_length(hash) = 32)
) PARTITION BY RANGE (recorded_at);

CREATE TABLE audit_resource_sets (
    month  date NOT NULL,
    digest bytea NOT NULL CHECK (octet_length(digest) = 32),
    ids    uuid[] NOT NULL,
    PRIMARY KEY (month, digest)
) PARTITION BY RANGE (month);

-- Indexes on the parents are created on every partition. A unique key on
-- `seq` alone cannot span partitions (Postgres requires the partition key in
-- it), so each partition gets its own (audit_ensure_partition); across
-- months the order is the chain lock's, and `audit verify` checks it.
CREATE INDEX audit_events_actor ON audit_events (actor_sub, seq);
CREATE INDEX audit_events_org ON audit_events (actor_org, seq);
-- Events are stored in about request order, so a block range index answers
-- time searches at a fraction of a b-tree's size.
CREATE INDEX audit_events_time ON audit_events USING brin (occurred_at);
CREATE INDEX audit_events_rules ON audit_events USING gin (rules);
CREATE INDEX audit_events_resource_set ON audit_events (resource_set);
-- "Every event that touched this resource": the sets that hold it, then
-- their events.
CREATE INDEX audit_resource_sets_ids ON audit_resource_sets USING gin (ids);

CREATE TRIGGER audit_events_no_change
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_resource_sets_no_change
    BEFORE UPDATE OR DELETE ON audit_resource_sets
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_resource_sets_no_truncate
    BEFORE TRUNCATE ON audit_resource_sets
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The ledger of archived months: where each left the chain, so that
-- `audit verify` starts after the newest one and can check the archive
-- files against it (`audit verify --archives DIR`).
CREATE TABLE audit_archives (
    month          date PRIMARY KEY,
    events         bigint NOT NULL CHECK (events >= 0),
    first_seq      bigint NOT NULL,
    last_seq       bigint NOT NULL,
    -- The hash the month's first event links to, and its last event's hash
    -- (the next month's first event links to it).
    prev_hash      bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    last_hash      bytea NOT NULL CHECK (octet_length(last_hash) = 32),
    file_name      text NOT NULL,
    file_sha256    bytea NOT NULL CHECK (octet_length(file_sha256) = 32),
    archived_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER audit_archives_no_change
    BEFORE UPDATE OR DELETE ON audit_archives
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_archives_no_truncate
    BEFORE TRUNCATE ON audit_archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Creates the month's partitions of both tables if they are missing. The
-- writer calls it in its transaction, so the first event of a month never
-- fails for want of a partition; it runs as the tables' owner because the
-- gateway's role may not create tables.
CREATE FUNCTION audit_ensure_partition(day date) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    first_day date := date_trunc('month', day)::date;
    after_last date := (date_trunc('month', day) + interval '1 month')::date;
    suffix text := to_char(date_trunc('month', day), '"y"YYYY"m"MM');
    events text := 'audit_events_' || suffix;
    sets text := 'audit_resource_sets_' || suffix;
BEGIN
    -- A month already archived stays gone (a replica whose clock is far
    -- behind asks for its own month; its events go after the tail anyway).
    IF EXISTS (SELECT FROM audit_archives WHERE month >= first_day) THEN
        RETURN;
    END IF;
    IF to_regclass(events) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
            events, first_day::timestamp AT TIME ZONE 'UTC', after_last::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (seq)', events || '_seq', events);
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I (id)', events || '_id', events);
        -- Statement triggers are not inherited: TRUNCATE of the partition
        -- itself must be refused too.
        EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()', events);
        -- Only through the parent, which grants insert and select.
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, kasvu_gateway', events);
    END IF;
    IF to_regclass(sets) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_resource_sets FOR VALUES FROM (%L) TO (%L)',
            sets, first_day, after_last);
        EXECUTE format('CREATE TRIGGER audit_resource_sets_no_truncate BEFORE TRUNCATE ON %I
            FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()', sets);
        EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, kasvu_gateway', sets);
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION audit_ensure_partition(date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_ensure_partition(date) TO kasvu_gateway;

-- The existing chain: each event's place in time is the latest request time
-- up to it, which rises with seq as the key must.
CREATE TEMPORARY TABLE audit_moved AS
SELECT v.*,
       max(v.occurred_at) OVER (ORDER BY v.seq ROWS UNBOUNDED PRECEDING) AS recorded_at,
       (SELECT sha256(coalesce(string_agg(uuid_send(u), ''::bytea ORDER BY o), ''::bytea))
          FROM unnest(v.resource_ids) WITH ORDINALITY AS t(u, o)) AS resource_set
FROM audit_events_v1 v;

SELECT audit_ensure_partition(d::date)
FROM (SELECT DISTINCT date_trunc('month', recorded_at AT TIME ZONE 'UTC') AS d FROM audit_moved
      UNION SELECT date_trunc('month', now() AT TIME ZONE 'UTC')
      UNION SELECT date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month') months;

INSERT INTO audit_resource_sets (month, digest, ids)
SELECT DISTINCT ON (month, resource_set)
       date_trunc('month', recorded_at AT TIME ZONE 'UTC')::date AS month, resource_set, resource_ids
FROM audit_moved;

INSERT INTO audit_events (seq, id, occurred_at, recorded_at, request_id, trace_id, actor_sub,
    actor_org, actor_roles, actor_country, purpose, action, resource_type, resource_set, fields,
    field_classes, allowed, rules, policy_version, prev_hash, hash)
SELECT seq, id, occurred_at, recorded_at, request_id, trace_id, actor_sub, actor_org, actor_roles,
       actor_country, purpose, action, resource_type, resource_set, fields, field_classes, allowed,
       rules, policy_version, prev_hash, hash
FROM audit_moved ORDER BY seq;

DROP TABLE audit_events_v1, audit_moved;

-- The events as the chain hashes them and auditors read them: with their ids.
CREATE VIEW audit_trail AS
SELECT e.seq, e.id, e.occurred_at, e.recorded_at, e.request_id, e.trace_id, e.actor_sub,
       e.actor_org, e.actor_roles, e.actor_country, e.purpose, e.action, e.resource_type,
       e.resource_set, s.ids AS resource_ids, e.fields, e.field_classes, e.allowed, e.rules,
       e.policy_version, e.prev_hash, e.hash
FROM audit_events e
JOIN audit_resource_sets s
  ON s.digest = e.resource_set
 AND s.month = date_trunc('month', e.recorded_at AT TIME ZONE 'UTC')::date;

REVOKE ALL ON audit_events, audit_resource_sets, audit_trail, audit_archives FROM kasvu_gateway;
GRANT SELECT, INSERT ON audit_events, audit_resource_sets TO kasvu_gateway;
GRANT SELECT ON audit_trail, audit_archives TO kasvu_gateway;
