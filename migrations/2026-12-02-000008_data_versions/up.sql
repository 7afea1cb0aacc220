-- Data versions for the response cache (docs/cache.md; src/db/reads.rs keeps
-- the same list of tables): every statement that
-- changes a table of the register appends one row here and notifies the
-- gateways, in the writer's transaction, whoever the writer is (the gateway,
-- a migration, psql). A table's version is the sum of its rows' weights: the
-- number of committed changing statements, the same for every reader of the
-- same committed state, and it moves at every commit whatever order commits
-- come in (a sequence's value would not: a transaction that took a lower
-- value may commit later). Appending takes no lock another writer waits on,
-- so the triggers add no lock order and no deadlock to the register's writes.
CREATE TABLE data_changes (
    id bigserial PRIMARY KEY,
    tbl text NOT NULL,
    weight bigint NOT NULL DEFAULT 1 CHECK (weight > 0)
);
CREATE INDEX data_changes_tbl_idx ON data_changes (tbl);

CREATE FUNCTION note_data_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO data_changes (tbl) VALUES (TG_TABLE_NAME);
    -- Delivered at commit, to every session that LISTENs, in commit order.
    PERFORM pg_notify('kasvu_data_changed', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'companies', 'company_confidential', 'contacts',
                             'services', 'change_log', 'data_subject_requests', 'idempotency_keys']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION note_data_change()',
                       t || '_data_change', t);
    END LOOP;
END
$$;

-- Every table's version, folding the log into one row per table when it has
-- grown (the sums stay the same: a fold deletes only rows its snapshot sees
-- and adds their sum, in one statement; rows appended meanwhile stay).
CREATE FUNCTION data_versions(fold_above integer DEFAULT 1000)
RETURNS TABLE (tbl text, version bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF (SELECT count(*) FROM (SELECT 1 FROM data_changes LIMIT fold_above + 1) n) > fold_above THEN
        WITH gone AS (DELETE FROM data_changes RETURNING data_changes.tbl, data_changes.weight)
        INSERT INTO data_changes (tbl, weight)
        SELECT gone.tbl, sum(gone.weight) FROM gone GROUP BY gone.tbl;
    END IF;
    RETURN QUERY SELECT c.tbl, sum(c.weight)::bigint FROM data_changes c GROUP BY c.tbl;
END
$$;

REVOKE ALL ON data_changes FROM kasvu_gateway;
GRANT EXECUTE ON FUNCTION data_versions(integer) TO kasvu_gateway;
