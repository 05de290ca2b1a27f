-- Deletion on every kind, organization scope, creator grants and token
-- validity windows (docs/contract.md, "Permission model" and "Policy file").

ALTER TABLE experiments ADD COLUMN deleted_at timestamptz;
ALTER TABLE datasets ADD COLUMN deleted_at timestamptz;
ALTER TABLE groups ADD COLUMN deleted_at timestamptz;
ALTER TABLE roles ADD COLUMN deleted_at timestamptz;
ALTER TABLE organizations ADD COLUMN creator_grants boolean NOT NULL DEFAULT true;
ALTER TABLE service_tokens ADD COLUMN not_before timestamptz;

-- A role grant carries no restriction (the Braintrust schema forbids it).
-- NOT VALID: enforced on every write from now on without refusing to
-- migrate a store that holds such a row; the loader leaves those out.
ALTER TABLE acls ADD CONSTRAINT acls_role_unrestricted
    CHECK (role_id IS NULL OR restrict_object_type IS NULL) NOT VALID;

-- What the per-decision slice loader asks, by index rather than by scan.
CREATE INDEX IF NOT EXISTS experiments_project ON experiments (project_id);
CREATE INDEX IF NOT EXISTS datasets_project ON datasets (project_id);
