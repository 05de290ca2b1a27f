-- What the per-decision slice loader asks, by index (docs/operations.md,
-- caching and invalidation). The loader looks for the ACLs of one
-- principal (a user, or one of its groups) on at most three objects (the
-- object, its project, its organization). `acls_object` alone reads every
-- ACL of those objects and filters them by principal: on a project with
-- a hundred writers, a hundred rows for the one it wants. Keyed by
-- principal first, these answer exactly, with or without statistics.
--
-- Already indexed, checked with EXPLAIN: tokens by digest and by id (the
-- identity chain), group membership by user and by member group, role
-- member roles by role, projects by id and by (org_id, name),
-- experiments/datasets by project, the change log by revision (its
-- primary key).

CREATE INDEX acls_user_object ON acls (user_id, object_type, object_id) WHERE user_id IS NOT NULL;
CREATE INDEX acls_group_object ON acls (group_id, object_type, object_id) WHERE group_id IS NOT NULL;
-- The single-column principal indexes are prefixes of these.
DROP INDEX IF EXISTS acls_user;
DROP INDEX IF EXISTS acls_group;
