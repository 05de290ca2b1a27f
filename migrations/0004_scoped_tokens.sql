-- Scoped and derived tokens (docs/contract.md, "Scoped and derived tokens").
-- `scope` is the token's own narrowing (JSON: grants, client_cidrs); a
-- derived token names its parent, and goes with it.

ALTER TABLE service_tokens ADD COLUMN scope jsonb CHECK (scope IS NULL OR jsonb_typeof(scope) = 'object');
ALTER TABLE service_tokens ADD COLUMN parent_id text REFERENCES service_tokens (id) ON DELETE CASCADE;
CREATE INDEX service_tokens_parent ON service_tokens (parent_id) WHERE parent_id IS NOT NULL;
