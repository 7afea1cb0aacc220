-- "A pending objection" (R5) is one fact: an OBJECTION request for the contact
-- that is RECEIVED or IN_PROGRESS. contacts.objection_pending is kept for the
-- visibility filter (an indexable column), but the database derives it: no
-- writer, the gateway's or anyone's with psql, can let it drift from the requests.

CREATE FUNCTION contact_objection_pending(contact uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM data_subject_requests r
        WHERE r.contact_id = contact
          AND r.kind = 'OBJECTION'
          AND r.status IN ('RECEIVED', 'IN_PROGRESS'))
$$;

-- Whatever a statement writes into the column, it holds the derived value.
CREATE FUNCTION contacts_derive_objection_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.objection_pending := contact_objection_pending(NEW.id);
    RETURN NEW;
END
$$;

CREATE TRIGGER contacts_objection_pending
    BEFORE INSERT OR UPDATE OF objection_pending ON contacts
    FOR EACH ROW EXECUTE FUNCTION contacts_derive_objection_pending();

-- A request filed, resolved, relinked or removed re-derives its contacts' flag.
CREATE FUNCTION requests_sync_objection_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.contact_id IS NOT NULL THEN
        UPDATE contacts SET objection_pending = true WHERE id = OLD.contact_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.contact_id IS NOT NULL THEN
        UPDATE contacts SET objection_pending = true WHERE id = NEW.contact_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER requests_objection_pending
    AFTER INSERT OR UPDATE OF kind, status, contact_id OR DELETE ON data_subject_requests
    FOR EACH ROW EXECUTE FUNCTION requests_sync_objection_pending();

-- The register as it stands: derived once.
UPDATE contacts SET objection_pending = objection_pending;
