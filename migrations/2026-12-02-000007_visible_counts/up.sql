-- Visible-row counts (`totalCount` of an unfiltered listing) in constant time,
-- whatever the register's size (docs/performance.md). For each listed table,
-- a table of deltas keyed by the facts a visibility condition reads
-- (src/db/visible.rs) and the owner: the rows an actor may see number the sum
-- of `n` over the keys the actor's condition accepts, the same condition the
-- listing itself applies, read from a few hundred rows instead of every row.
--
-- Statement-level triggers with transition tables append one row per changed
-- key and statement (net of what the statement removed), so writers take no
-- lock another writer waits on. `fold_visible_counts()` folds the deltas into
-- one row per key (the gateway calls it every few seconds); a fold keeps
-- every sum, also while writers append.

CREATE TABLE contact_counts (
    id                  bigserial PRIMARY KEY,
    restricted          boolean NOT NULL,
    objection_pending   boolean NOT NULL,
    marketing_objection boolean NOT NULL,
    in_sector           boolean NOT NULL,
    erased              boolean NOT NULL,
    registered_by       text NOT NULL,
    n                   integer NOT NULL
);

CREATE TABLE company_counts (
    id            bigserial PRIMARY KEY,
    in_sector     boolean NOT NULL,
    erased        boolean NOT NULL,
    sole_trader   boolean NOT NULL,
    registered_by text NOT NULL,
    n             integer NOT NULL
);

CREATE TABLE service_counts (
    id        bigserial PRIMARY KEY,
    in_sector boolean NOT NULL,
    provider  text NOT NULL,
    n         integer NOT NULL
);

-- One function per table; TG_OP says which transition tables exist (a trigger
-- with transition tables has one event, so each table has three triggers).
CREATE FUNCTION count_contacts() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO contact_counts (restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, n)
        SELECT restricted, objection_pending, marketing_objection, in_sector, erased_at IS NOT NULL, registered_by, count(*)
        FROM new_rows GROUP BY 1, 2, 3, 4, 5, 6;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO contact_counts (restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, n)
        SELECT restricted, objection_pending, marketing_objection, in_sector, erased_at IS NOT NULL, registered_by, -count(*)
        FROM old_rows GROUP BY 1, 2, 3, 4, 5, 6;
    ELSE
        INSERT INTO contact_counts (restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, n)
        SELECT r, o, m, s, e, b, sum(d) FROM (
            SELECT restricted r, objection_pending o, marketing_objection m, in_sector s, erased_at IS NOT NULL e, registered_by b, 1 d FROM new_rows
            UNION ALL
            SELECT restricted, objection_pending, marketing_objection, in_sector, erased_at IS NOT NULL, registered_by, -1 FROM old_rows
        ) changed GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION count_companies() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO company_counts (in_sector, erased, sole_trader, registered_by, n)
        SELECT industry_in_sector(industry_code), erased_at IS NOT NULL, company_form = 'SOLE_TRADER', registered_by, count(*)
        FROM new_rows GROUP BY 1, 2, 3, 4;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO company_counts (in_sector, erased, sole_trader, registered_by, n)
        SELECT industry_in_sector(industry_code), erased_at IS NOT NULL, company_form = 'SOLE_TRADER', registered_by, -count(*)
        FROM old_rows GROUP BY 1, 2, 3, 4;
    ELSE
        INSERT INTO company_counts (in_sector, erased, sole_trader, registered_by, n)
        SELECT s, e, t, b, sum(d) FROM (
            SELECT industry_in_sector(industry_code) s, erased_at IS NOT NULL e, company_form = 'SOLE_TRADER' t, registered_by b, 1 d FROM new_rows
            UNION ALL
            SELECT industry_in_sector(industry_code), erased_at IS NOT NULL, company_form = 'SOLE_TRADER', registered_by, -1 FROM old_rows
        ) changed GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION count_services() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO service_counts (in_sector, provider, n)
        SELECT in_sector, provider, count(*) FROM new_rows GROUP BY 1, 2;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO service_counts (in_sector, provider, n)
        SELECT in_sector, provider, -count(*) FROM old_rows GROUP BY 1, 2;
    ELSE
        INSERT INTO service_counts (in_sector, provider, n)
        SELECT s, p, sum(d) FROM (
            SELECT in_sector s, provider p, 1 d FROM new_rows
            UNION ALL
            SELECT in_sector, provider, -1 FROM old_rows
        ) changed GROUP BY 1, 2 HAVING sum(d) <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER contacts_count_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_contacts();
CREATE TRIGGER contacts_count_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_contacts();
CREATE TRIGGER contacts_count_delete AFTER DELETE ON contacts
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_contacts();
CREATE TRIGGER companies_count_insert AFTER INSERT ON companies
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_companies();
CREATE TRIGGER companies_count_update AFTER UPDATE ON companies
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_companies();
CREATE TRIGGER companies_count_delete AFTER DELETE ON companies
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_companies();
CREATE TRIGGER services_count_insert AFTER INSERT ON services
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_services();
CREATE TRIGGER services_count_update AFTER UPDATE ON services
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_services();
CREATE TRIGGER services_count_delete AFTER DELETE ON services
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_services();

-- TRUNCATE has no transition table: the counts are emptied with the table.
CREATE FUNCTION count_truncated() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format('DELETE FROM %I', TG_ARGV[0]);
    RETURN NULL;
END
$$;
CREATE TRIGGER contacts_count_truncate AFTER TRUNCATE ON contacts
    FOR EACH STATEMENT EXECUTE FUNCTION count_truncated('contact_counts');
CREATE TRIGGER companies_count_truncate AFTER TRUNCATE ON companies
    FOR EACH STATEMENT EXECUTE FUNCTION count_truncated('company_counts');
CREATE TRIGGER services_count_truncate AFTER TRUNCATE ON services
    FOR EACH STATEMENT EXECUTE FUNCTION count_truncated('service_counts');

-- The rows already there.
INSERT INTO contact_counts (restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, n)
SELECT restricted, objection_pending, marketing_objection, in_sector, erased_at IS NOT NULL, registered_by, count(*)
FROM contacts GROUP BY 1, 2, 3, 4, 5, 6;
INSERT INTO company_counts (in_sector, erased, sole_trader, registered_by, n)
SELECT industry_in_sector(industry_code), erased_at IS NOT NULL, company_form = 'SOLE_TRADER', registered_by, count(*)
FROM companies GROUP BY 1, 2, 3, 4;
INSERT INTO service_counts (in_sector, provider, n)
SELECT in_sector, provider, count(*) FROM services GROUP BY 1, 2;

-- Folds each table's deltas into one row per key. The DELETE sees only rows
-- committed before it (and waits for a concurrent fold's), the INSERT adds
-- exactly their sums: rows appended meanwhile stay as they are.
CREATE FUNCTION fold_visible_counts() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    WITH gone AS (DELETE FROM contact_counts RETURNING *)
    INSERT INTO contact_counts (restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, n)
    SELECT restricted, objection_pending, marketing_objection, in_sector, erased, registered_by, sum(n)
    FROM gone GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(n) <> 0;
    WITH gone AS (DELETE FROM company_counts RETURNING *)
    INSERT INTO company_counts (in_sector, erased, sole_trader, registered_by, n)
    SELECT in_sector, erased, sole_trader, registered_by, sum(n) FROM gone GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0;
    WITH gone AS (DELETE FROM service_counts RETURNING *)
    INSERT INTO service_counts (in_sector, provider, n)
    SELECT in_sector, provider, sum(n) FROM gone GROUP BY 1, 2 HAVING sum(n) <> 0;
$$;

-- The gateway reads the counts; only the triggers and the fold write them.
REVOKE ALL ON contact_counts, company_counts, service_counts FROM kasvu_gateway;
GRANT SELECT ON contact_counts, company_counts, service_counts TO kasvu_gateway;
GRANT EXECUTE ON FUNCTION fold_visible_counts() TO kasvu_gateway;
