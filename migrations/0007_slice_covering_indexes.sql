-- What the per-decision slice loader reads, answered from the indexes
-- alone (index-only scans, once VACUUM has set the visibility map; the
-- import runs it after a bulk load). At a million ACLs a principal's
-- groups hold thousands of ACLs on the organization; reading each one's
-- heap page to learn its grant cost more than the rest of the decision.
-- The keys are 0005's (principal, object); the grant columns ride along.

CREATE INDEX acls_user_slice ON acls (user_id, object_type, object_id)
    INCLUDE (id, permission, role_id, restrict_object_type) WHERE user_id IS NOT NULL;
CREATE INDEX acls_group_slice ON acls (group_id, object_type, object_id)
    INCLUDE (id, permission, role_id, restrict_object_type) WHERE group_id IS NOT NULL;
DROP INDEX IF EXISTS acls_user_object;
DROP INDEX IF EXISTS acls_group_object;
-- A scope with few ACLs (a project, its log) is read once by object, then
-- kept for the principal's groups: one probe instead of one per group.
CREATE INDEX acls_object_slice ON acls (object_type, object_id)
    INCLUDE (id, user_id, group_id, permission, role_id, restrict_object_type);
DROP INDEX IF EXISTS acls_object;

-- The walk up from a user through its groups.
CREATE INDEX group_member_users_user_group ON group_member_users (user_id, group_id);
DROP INDEX IF EXISTS group_member_users_user;
CREATE INDEX group_member_groups_member_group ON group_member_groups (member_group_id, group_id);
DROP INDEX IF EXISTS group_member_groups_member;

-- The roles that grant one permission (before their inheriting roles).
CREATE INDEX role_permissions_permission ON role_permissions (permission, restrict_object_type, role_id);
