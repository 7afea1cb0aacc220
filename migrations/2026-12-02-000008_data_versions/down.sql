DROP FUNCTION data_versions(integer);
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['organizations', 'companies', 'company_confidential', 'contacts',
                             'services', 'change_log', 'data_subject_requests', 'idempotency_keys']
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %I', t || '_data_change', t);
    END LOOP;
END
$$;
DROP FUNCTION note_data_change();
DROP TABLE data_changes;
