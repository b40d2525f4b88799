-- Two steps of the money path as one server-side call each, instead of a database transaction of several round
-- trips. Both are VOLATILE plpgsql: in READ COMMITTED every statement inside takes a fresh snapshot, so what is
-- read after a lock is taken sees everything committed by whoever held it before. SECURITY INVOKER (the default):
-- the caller's own table privileges apply; EXECUTE is granted per role by hub-migrate (hub_common.db_access).

-- The operator budget's grant (hub_common.operator.budget, where the algorithm and its proof are): lock the
-- budget row (creating it when missing), read the clock holding the lock, drop grants that left the window, count
-- the rest, grant min(wanted, rate - used) unless paused or outranked, and record this process as a waiter,
-- or forget it when `p_last` (the batch covers every waiter it has) and all it wanted was granted.
CREATE FUNCTION operator_budget_grant(
    p_name text, p_waiter uuid, p_priority integer, p_window interval, p_rate bigint, p_stale interval,
    p_wanted bigint, p_caller text, p_last boolean,
    OUT clock timestamptz, OUT paused timestamptz, OUT used bigint, OUT oldest timestamptz,
    OUT outranked boolean, OUT granted integer)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT b.paused_until INTO paused FROM operator_budget b WHERE b.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO operator_budget (name) VALUES (p_name) ON CONFLICT DO NOTHING;
        SELECT b.paused_until INTO STRICT paused FROM operator_budget b WHERE b.name = p_name FOR UPDATE;
    END IF;
    clock := clock_timestamp();
    DELETE FROM operator_budget_grants g WHERE g.name = p_name AND g.granted_at <= clock - p_window;
    SELECT count(*), min(g.granted_at) INTO used, oldest
      FROM operator_budget_grants g WHERE g.name = p_name AND g.granted_at > clock - p_window;
    outranked := EXISTS (SELECT 1 FROM operator_budget_waiters w
                         WHERE w.name = p_name AND w.waiter_id <> p_waiter AND w.priority < p_priority
                           AND w.seen_at > clock - p_stale);
    granted := CASE WHEN outranked OR coalesce(paused > clock, false) THEN 0
                    ELSE greatest(0, least(p_wanted, p_rate - used)) END;
    INSERT INTO operator_budget_grants (name, priority, granted_at, caller)
    SELECT p_name, p_priority, clock, p_caller FROM generate_series(1, granted);
    IF p_last AND granted = p_wanted THEN
        DELETE FROM operator_budget_waiters w WHERE w.name = p_name AND w.waiter_id = p_waiter;
    ELSE
        INSERT INTO operator_budget_waiters AS w (name, waiter_id, priority, seen_at)
        VALUES (p_name, p_waiter, p_priority, clock)
        ON CONFLICT (name, waiter_id) DO UPDATE SET priority = excluded.priority, seen_at = excluded.seen_at;
    END IF;
END
$$;

-- The ledger's begin step (hub_ledger.store): its players' advisory locks, in one order (two batches never wait
-- for each other in a cycle), then its rows FOR UPDATE in id order with what the rules need of a BET (a refund
-- tombstone of its refId), read after the player locks were taken.
CREATE FUNCTION ledger_lock_for_begin(p_ids uuid[], p_players text[])
RETURNS TABLE (tx transactions, tombstoned boolean)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(s.h)
       FROM (SELECT DISTINCT hashtext(p) AS h FROM unnest(p_players) AS p ORDER BY 1 OFFSET 0) AS s;
    RETURN QUERY
        SELECT t, EXISTS (SELECT 1 FROM refund_tombstones r WHERE r.client_id = t.client_id AND r.ref_id = t.ref_id)
          FROM transactions t WHERE t.id = ANY(p_ids) ORDER BY t.id FOR UPDATE OF t;
END
$$;

REVOKE ALL ON FUNCTION operator_budget_grant(text, uuid, integer, interval, bigint, interval, bigint, text, boolean)
    FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_lock_for_begin(uuid[], text[]) FROM PUBLIC;
