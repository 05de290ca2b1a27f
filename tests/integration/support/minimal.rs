//! The smallest useful world for the production-readiness tests: org
//! "acme" with project "checkout", a writer (`update` on its project log), a
//! reader (`read` only) and a token the policy does not know.

use super::policy::{PolicyBuilder, Token, new_token};
use serde_json::json;

pub struct World {
    pub policy: PolicyBuilder,
    pub org_id: String,
    pub project_id: String,
    pub writer: Token,
    pub reader: Token,
    pub unknown: String,
}

pub fn world() -> World {
    let mut policy = PolicyBuilder::new();
    let org_id = policy.org("acme");
    let project_id = policy.project(&org_id, "checkout");
    let writer = policy.service_token(&org_id, "ci-writer");
    policy.grant_user(&writer.user_id, "update", "project_log", &project_id);
    let reader = policy.service_token(&org_id, "ci-reader");
    policy.grant_user(&reader.user_id, "read", "project_log", &project_id);
    World { policy, org_id, project_id, writer, reader, unknown: new_token() }
}

impl World {
    /// A one-row `/logs3` body writing to the project log.
    pub fn logs3_body(&self) -> String {
        json!({"rows": [{"id": "r1", "project_id": self.project_id, "log_id": "g", "input": "hi"}], "api_version": 2})
            .to_string()
    }
}
