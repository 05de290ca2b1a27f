-- loggate policy schema (contract: Policy file). Ids are text: policy files may use any
-- non-empty string; the admin API generates UUIDs.

CREATE TABLE organizations (
    id   text PRIMARY KEY CHECK (id <> ''),
    name text NOT NULL
);
CREATE INDEX organizations_name ON organizations (name);

CREATE TABLE projects (
    id          text PRIMARY KEY CHECK (id <> ''),
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text,
    created     timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);
CREATE INDEX projects_org_name ON projects (org_id, name);

CREATE TABLE experiments (
    id         text PRIMARY KEY CHECK (id <> ''),
    project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL
);
CREATE INDEX experiments_project_name ON experiments (project_id, name);

CREATE TABLE datasets (
    id         text PRIMARY KEY CHECK (id <> ''),
    project_id text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name       text NOT NULL
);
CREATE INDEX datasets_project_name ON datasets (project_id, name);

CREATE TABLE users (
    id              text PRIMARY KEY CHECK (id <> ''),
    name            text NOT NULL DEFAULT '',
    service_account boolean NOT NULL DEFAULT false
);

CREATE TABLE groups (
    id          text PRIMARY KEY CHECK (id <> ''),
    org_id      text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name        text NOT NULL,
    description text,
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_org_name ON groups (org_id, name);

CREATE TABLE group_member_users (
    group_id text NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_member_users_user ON group_member_users (user_id);

-- `group_id` contains every member of `member_group_id` (transitively).
CREATE TABLE group_member_groups (
    group_id        text NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_group_id text NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, member_group_id)
);
CREATE INDEX group_member_groups_member ON group_member_groups (member_group_id);

CREATE TABLE roles (
    id          text PRIMARY KEY CHECK (id <> ''),
    org_id      text REFERENCES organizations (id) ON DELETE CASCADE, -- NULL: system role
    name        text NOT NULL,
    description text,
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX roles_org_name ON roles (org_id, name);

CREATE TABLE role_permissions (
    role_id              text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission           text NOT NULL CHECK (permission IN
        ('create', 'read', 'update', 'delete', 'create_acls', 'read_acls', 'update_acls', 'delete_acls')),
    restrict_object_type text CHECK (restrict_object_type IN
        ('organization', 'project', 'experiment', 'dataset', 'prompt', 'prompt_session', 'group', 'role',
         'org_member', 'project_log', 'org_project', 'org_audit_logs'))
);
CREATE UNIQUE INDEX role_permissions_unique ON role_permissions (role_id, permission, coalesce(restrict_object_type, ''));

-- `role_id` inherits every permission of `member_role_id` (transitively).
CREATE TABLE role_member_roles (
    role_id        text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    member_role_id text NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (role_id, member_role_id)
);
CREATE INDEX role_member_roles_member ON role_member_roles (member_role_id);

CREATE TABLE acls (
    id                   text PRIMARY KEY CHECK (id <> ''),
    object_type          text NOT NULL CHECK (object_type IN
        ('organization', 'project', 'experiment', 'dataset', 'prompt', 'prompt_session', 'group', 'role',
         'org_member', 'project_log', 'org_project', 'org_audit_logs')),
    object_id            text NOT NULL CHECK (object_id <> ''),
    user_id              text REFERENCES users (id) ON DELETE CASCADE,
    group_id             text REFERENCES groups (id) ON DELETE CASCADE,
    permission           text CHECK (permission IN
        ('create', 'read', 'update', 'delete', 'create_acls', 'read_acls', 'update_acls', 'delete_acls')),
    role_id              text REFERENCES roles (id) ON DELETE CASCADE,
    restrict_object_type text CHECK (restrict_object_type IN
        ('organization', 'project', 'experiment', 'dataset', 'prompt', 'prompt_session', 'group', 'role',
         'org_member', 'project_log', 'org_project', 'org_audit_logs')),
    -- The organization of the object (derived when written; NULL if unknown).
    object_org_id        text,
    created              timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT acls_one_principal CHECK ((user_id IS NULL) <> (group_id IS NULL)),
    CONSTRAINT acls_one_grant CHECK ((permission IS NULL) <> (role_id IS NULL))
);
CREATE INDEX acls_object ON acls (object_type, object_id);
CREATE INDEX acls_user ON acls (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX acls_group ON acls (group_id) WHERE group_id IS NOT NULL;
CREATE INDEX acls_role ON acls (role_id) WHERE role_id IS NOT NULL;
CREATE INDEX acls_object_org ON acls (object_org_id);

CREATE TABLE service_tokens (
    id                 text PRIMARY KEY CHECK (id <> ''),
    name               text NOT NULL,
    org_id             text NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    service_account_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_sha256       text NOT NULL UNIQUE CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    preview_name       text,
    expires_at         timestamptz,
    created            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX service_tokens_org ON service_tokens (org_id);
