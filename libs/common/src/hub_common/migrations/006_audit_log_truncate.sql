-- audit_log is append-only: the row trigger of 001 stops UPDATE and DELETE, this one stops TRUNCATE (which
-- fires no row trigger). Only the owner holds UPDATE/DELETE/TRUNCATE at all (hub_common.db_access), and only
-- the owner can disable these triggers: a deliberate, visible act.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
