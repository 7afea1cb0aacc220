-- The recipients' sector (R7: agriculture, forestry and fishing, TOL 01-03;
-- food and beverages, 10-11) as a column of every row that belongs to a
-- company, kept by the database. The visibility filter reads the column
-- instead of looking the company up for every row (a correlated sub-query
-- per row made a visible-row count grow with the register).

-- The same divisions as src/db/visible.rs's SECTOR_DIVISIONS (a test checks).
CREATE FUNCTION industry_in_sector(code text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(code ~ '^(01|02|03|10|11)', false)
$$;

ALTER TABLE contacts ADD COLUMN in_sector boolean NOT NULL DEFAULT false;
ALTER TABLE services ADD COLUMN in_sector boolean NOT NULL DEFAULT false;
ALTER TABLE company_confidential ADD COLUMN in_sector boolean NOT NULL DEFAULT false;

-- Whatever a statement writes, a row's in_sector is its company's.
CREATE FUNCTION row_in_sector() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.in_sector := coalesce(
        (SELECT industry_in_sector(c.industry_code) FROM companies c WHERE c.id = NEW.company_id),
        false);
    RETURN NEW;
END
$$;

CREATE TRIGGER contacts_in_sector BEFORE INSERT OR UPDATE OF company_id, in_sector ON contacts
    FOR EACH ROW EXECUTE FUNCTION row_in_sector();
CREATE TRIGGER services_in_sector BEFORE INSERT OR UPDATE OF company_id, in_sector ON services
    FOR EACH ROW EXECUTE FUNCTION row_in_sector();
CREATE TRIGGER company_confidential_in_sector BEFORE INSERT OR UPDATE OF company_id, in_sector ON company_confidential
    FOR EACH ROW EXECUTE FUNCTION row_in_sector();

-- A company whose industry moves in or out of the sector moves its rows.
CREATE FUNCTION companies_sector_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF industry_in_sector(NEW.industry_code) IS DISTINCT FROM industry_in_sector(OLD.industry_code) THEN
        UPDATE contacts SET in_sector = true WHERE company_id = NEW.id;
        UPDATE services SET in_sector = true WHERE company_id = NEW.id;
        UPDATE company_confidential SET in_sector = true WHERE company_id = NEW.id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER companies_sector AFTER UPDATE OF industry_code ON companies
    FOR EACH ROW EXECUTE FUNCTION companies_sector_changed();

-- The register as it stands (the triggers derive the value).
UPDATE contacts SET in_sector = in_sector;
UPDATE services SET in_sector = in_sector;
UPDATE company_confidential SET in_sector = in_sector;

CREATE INDEX contacts_in_sector_idx ON contacts (in_sector) WHERE in_sector;
CREATE INDEX services_in_sector_idx ON services (in_sector) WHERE in_sector;
