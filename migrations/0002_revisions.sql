-- Revisions by triggers (docs/operations.md, caching and invalidation): every change, by any writer, counts.
-- One transaction = one revision; every changed row is listed in
-- policy_changes under that revision; NOTIFY loggate_policy '<revision>'.

CREATE TABLE policy_revision (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    revision   bigint NOT NULL,
    -- The transaction that took `revision` (txid_current()).
    txid       bigint,
    changed_at timestamptz
);
INSERT INTO policy_revision (singleton, revision) VALUES (true, 0);

CREATE TABLE policy_changes (
    revision     bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN
        ('organization', 'project', 'experiment', 'dataset', 'user', 'group', 'role', 'acl', 'service_token')),
    id           text NOT NULL,
    committed_at timestamptz NOT NULL,
    PRIMARY KEY (revision, kind, id)
);

-- The revision of the current transaction: the first call of a transaction
-- takes the next number (the row lock serializes writers, so revisions
-- commit in order); later calls of the same transaction reuse it.
CREATE FUNCTION loggate_transaction_revision() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    r bigint;
BEGIN
    UPDATE policy_revision
       SET revision = revision + 1, txid = txid_current(), changed_at = clock_timestamp()
     WHERE singleton AND txid IS DISTINCT FROM txid_current()
    RETURNING revision INTO r;
    IF r IS NULL THEN
        SELECT revision INTO r FROM policy_revision WHERE singleton;
    END IF;
    RETURN r;
END
$$;

-- Row trigger: TG_ARGV[0] = change kind, TG_ARGV[1] = column holding the id.
CREATE FUNCTION loggate_record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r       bigint := loggate_transaction_revision();
    change_kind text := TG_ARGV[0];
    new_id  text;
    old_id  text;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_id := to_jsonb(NEW) ->> TG_ARGV[1];
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        old_id := to_jsonb(OLD) ->> TG_ARGV[1];
    END IF;
    INSERT INTO policy_changes (revision, kind, id, committed_at)
    SELECT r, change_kind, i, clock_timestamp()
      FROM (SELECT DISTINCT unnest(ARRAY[new_id, old_id]) AS i) ids
     WHERE i IS NOT NULL
    ON CONFLICT ON CONSTRAINT policy_changes_pkey DO UPDATE SET committed_at = EXCLUDED.committed_at;
    PERFORM pg_notify('loggate_policy', r::text);
    RETURN NULL;
END
$$;

CREATE FUNCTION loggate_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'TRUNCATE of % bypasses policy revisions; use DELETE', TG_TABLE_NAME;
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
        EXECUTE format(
            'CREATE TRIGGER loggate_change_ins_del AFTER INSERT OR DELETE ON %I '
            'FOR EACH ROW EXECUTE FUNCTION loggate_record_change(%L, %L)', t.tbl, t.kind, t.idcol);
        -- Updates that change nothing (an idempotent re-import) are no change.
        EXECUTE format(
            'CREATE TRIGGER loggate_change_upd AFTER UPDATE ON %I '
            'FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) '
            'EXECUTE FUNCTION loggate_record_change(%L, %L)', t.tbl, t.kind, t.idcol);
        -- TRUNCATE bypasses row triggers: forbid it rather than miss changes.
        EXECUTE format(
            'CREATE TRIGGER loggate_no_truncate BEFORE TRUNCATE ON %I '
            'FOR EACH STATEMENT EXECUTE FUNCTION loggate_refuse_truncate()', t.tbl);
    END LOOP;
END
$$;
