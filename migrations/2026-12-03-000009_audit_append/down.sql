DROP FUNCTION audit_append_after(bigint, date, text, bigint, bytea, jsonb, jsonb);
