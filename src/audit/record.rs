//! The audit record: its fields and their JSON shape.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use loggate_model::Identity;
use loggate_model::types::{ObjectType, Permission};
use serde::Serialize;
use serde::ser::SerializeStruct;

/// One request's audit record. Owned, as it crosses to the writer thread;
/// formatted there, off the request path (the caller's identity is shared,
/// not copied).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub ts: SystemTime,
    pub request_id: String,
    pub route: &'static str,
    /// The client's address, without port.
    pub client_addr: IpAddr,
    /// Who, when authentication succeeded: its token id (never the token)
    /// and organization are written; null otherwise.
    pub identity: Option<Arc<Identity>>,
    /// `allow`, `deny` or `shadow_allow`.
    pub decision: &'static str,
    pub status: u16,
    /// The error code of the answer, or, for `shadow_allow`, of the denial
    /// that was not enforced; null when allowed.
    pub reason: Option<&'static str>,
    pub targets: Vec<AuditTarget>,
    pub rows: usize,
    pub policy_revision: u64,
    pub latency_us: u64,
}

/// One object the request needed a permission on, and the decision.
#[derive(Debug, Clone, Serialize)]
pub struct AuditTarget {
    pub object_type: ObjectType,
    pub object_id: String,
    pub permission: Permission,
    /// `allow` or `deny`.
    pub decision: &'static str,
}

impl Serialize for AuditRecord {
    /// The documented field order: `ts`, `request_id`, `route`,
    /// `client_addr`, `token_id`, `org_id`, `decision`, `status`, `reason`,
    /// `targets`, `rows`, `policy_revision`, `latency_us`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ts: chrono::DateTime<chrono::Utc> = self.ts.into();
        let mut r = s.serialize_struct("AuditRecord", 13)?;
        r.serialize_field("ts", &ts.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))?;
        r.serialize_field("request_id", &self.request_id)?;
        r.serialize_field("route", self.route)?;
        r.serialize_field("client_addr", &self.client_addr)?;
        r.serialize_field("token_id", &self.identity.as_ref().map(|i| &i.token_id))?;
        r.serialize_field("org_id", &self.identity.as_ref().map(|i| &i.org_id))?;
        r.serialize_field("decision", self.decision)?;
        r.serialize_field("status", &self.status)?;
        r.serialize_field("reason", &self.reason)?;
        r.serialize_field("targets", &self.targets)?;
        r.serialize_field("rows", &self.rows)?;
        r.serialize_field("policy_revision", &self.policy_revision)?;
        r.serialize_field("latency_us", &self.latency_us)?;
        r.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_to_the_documented_fields() {
        let record = AuditRecord {
            ts: SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_798_675_200_000_001),
            request_id: "r1".into(),
            route: "logs3",
            client_addr: "10.0.0.7".parse().unwrap(),
            identity: Some(Arc::new(Identity {
                token_id: "t1".into(),
                token_name: "ci-writer".into(),
                org_id: "o1".into(),
                user_id: "u1".into(),
                ..Identity::default()
            })),
            decision: "deny",
            status: 403,
            reason: Some("permission_denied"),
            targets: vec![AuditTarget {
                object_type: ObjectType::ProjectLog,
                object_id: "p1".into(),
                permission: Permission::Update,
                decision: "deny",
            }],
            rows: 2,
            policy_revision: 7,
            latency_us: 120,
        };
        let v = serde_json::to_value(&record).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "ts": "2026-12-31T00:00:00.000001Z", "request_id": "r1", "route": "logs3", "client_addr": "10.0.0.7",
                "token_id": "t1", "org_id": "o1", "decision": "deny", "status": 403, "reason": "permission_denied",
                "targets": [{"object_type": "project_log", "object_id": "p1", "permission": "update", "decision": "deny"}],
                "rows": 2, "policy_revision": 7, "latency_us": 120
            })
        );
    }
}
