-- Bulk writes at the speed of the rows (docs/operations.md, caching and
-- invalidation): the change log of inserts and deletes is written by one
-- trigger call per statement, reading the statement's rows from its
-- transition table, instead of one call per row. What it records is the
-- same as 0002's row triggers: the transaction's revision (taken by the
-- first statement that changes a row, none for a statement that changes
-- none), one `policy_changes` row per changed (kind, id) with the time of
-- its last change, and `NOTIFY loggate_policy '<revision>'`.
--
-- Updates keep 0002's row trigger: its WHEN clause (OLD.* IS DISTINCT FROM
-- NEW.*) pairs each row with itself, which a statement's two transition
-- tables cannot do when the id itself changes. A re-import that changes
-- nothing still costs no trigger call.

-- TG_ARGV[0] = change kind, TG_ARGV[1] = column holding the id; the rows
-- are in the transition table `changed_rows`.
CREATE FUNCTION loggate_record_statement_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r bigint;
BEGIN
    -- A statement trigger fires also for a statement that changed no row:
    -- that is no change, and takes no revision.
    PERFORM 1 FROM changed_rows LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    r := loggate_transaction_revision();
    PERFORM 1 FROM policy_changes WHERE revision = r AND kind = TG_ARGV[0] LIMIT 1;
    IF FOUND THEN
        -- An earlier statement of the transaction changed rows of this
        -- kind: some ids may be listed already (their time moves on).
        EXECUTE format(
            'INSERT INTO policy_changes (revision, kind, id, committed_at)
             SELECT $1, $2, i, clock_timestamp()
               FROM (SELECT DISTINCT %I::text AS i FROM changed_rows) ids
              WHERE i IS NOT NULL
             ON CONFLICT ON CONSTRAINT policy_changes_pkey DO UPDATE SET committed_at = EXCLUDED.committed_at',
            TG_ARGV[1])
        USING r, TG_ARGV[0];
    ELSE
        -- The first of its kind (a bulk load's usual case): no id can be
        -- listed yet, and a plain insert skips the conflict checks.
        EXECUTE format(
            'INSERT INTO policy_changes (revision, kind, id, committed_at)
             SELECT $1, $2, i, clock_timestamp()
               FROM (SELECT DISTINCT %I::text AS i FROM changed_rows) ids
              WHERE i IS NOT NULL',
            TG_ARGV[1])
        USING r, TG_ARGV[0];
    END IF;
    PERFORM pg_notify('loggate_policy', r::text);
    RETURN NULL;
END
$$;

DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT * FROM (VALUES
        ('organizations', 'organization', 'id'),
        ('projects', 'project', 'id'),
        ('experiments', 'experiment', 'id'),
        ('datasets', 'dataset', 'id'),
        ('users', 'user', 'id'),
        ('groups', 'group', 'id'),
        ('group_member_users', 'group', 'group_id'),
        ('group_member_groups', 'group', 'group_id'),
        ('roles', 'role', 'id'),
        ('role_permissions', 'role', 'role_id'),
        ('role_member_roles', 'role', 'role_id'),
        ('acls', 'acl', 'id'),
        ('service_tokens', 'service_token', 'id')
    ) AS v (tbl, kind, idcol)
    LOOP
        EXECUTE format('DROP TRIGGER loggate_change_ins_del ON %I', t.tbl);
        -- A trigger with a transition table fires on one event only.
        EXECUTE format(
            'CREATE TRIGGER loggate_change_ins AFTER INSERT ON %I '
            'REFERENCING NEW TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION loggate_record_statement_change(%L, %L)', t.tbl, t.kind, t.idcol);
        EXECUTE format(
            'CREATE TRIGGER loggate_change_del AFTER DELETE ON %I '
            'REFERENCING OLD TABLE AS changed_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION loggate_record_statement_change(%L, %L)', t.tbl, t.kind, t.idcol);
    END LOOP;
END
$$;
