DROP TRIGGER requests_objection_pending ON data_subject_requests;
DROP FUNCTION requests_sync_objection_pending();
DROP TRIGGER contacts_objection_pending ON contacts;
DROP FUNCTION contacts_derive_objection_pending();
DROP FUNCTION contact_objection_pending(uuid);
