-- The operating-system account behind a manual intervention, beside the actor name it gave (`HUBCTL_ACTOR`).
-- hubctl sets `hub.os_user` on its connections, so every audit row written on one carries it, whichever
-- module writes the row; services leave it NULL.
ALTER TABLE audit_log ADD COLUMN os_user text DEFAULT NULLIF(current_setting('hub.os_user', true), '');
