-- The audit writer's one-round-trip append (docs/audit.md, "The writer").
--
-- A request that comes alone waits for its events' commit, and that commit
-- was eight round trips (ping, BEGIN, timeouts, lock, tail, lists, events,
-- COMMIT). The writer knows the tail it wrote last; when nobody else has
-- appended since (another replica, a mutation's own transaction), it sends
-- its rows, already chained to that tail, in this one call, outside any
-- transaction block so the call commits on its own. Under the chain's lock
-- the function checks the tail is the one the rows link to; if it is not, it
-- inserts nothing and answers false, and the writer appends the usual way.
--
-- Invoker's rights: the gateway's role inserts here as it does directly.
CREATE FUNCTION audit_append_after(
    lock_key bigint,
    month date,
    lock_timeout text,
    tail_seq bigint,
    tail_hash bytea,
    sets jsonb,
    events jsonb
) RETURNS boolean
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    actual_seq bigint;
    actual_hash bytea;
BEGIN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    PERFORM pg_advisory_xact_lock(lock_key);
    PERFORM audit_ensure_partition(month);
    SELECT e.seq, e.hash INTO actual_seq, actual_hash
      FROM audit_events e ORDER BY e.seq DESC LIMIT 1;
    IF actual_seq IS DISTINCT FROM tail_seq OR actual_hash IS DISTINCT FROM tail_hash THEN
        RETURN false;
    END IF;
    INSERT INTO audit_resource_sets
        SELECT * FROM jsonb_populate_recordset(NULL::audit_resource_sets, sets)
        ON CONFLICT DO NOTHING;
    INSERT INTO audit_events
        SELECT * FROM jsonb_populate_recordset(NULL::audit_events, events);
    RETURN true;
END;
$$;
REVOKE ALL ON FUNCTION audit_append_after(bigint, date, text, bigint, bytea, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_append_after(bigint, date, text, bigint, bytea, jsonb, jsonb) TO kasvu_gateway;
