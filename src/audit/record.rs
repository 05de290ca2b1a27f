//! The audit record: its fields and their JSON shape.

use std::net::IpAddr;
use std::time::SystemTime;

use loggate_model::types::{ObjectType, Permission};
use serde::Serialize;

/// One request's audit record. Owned, as it crosses to the writer thread;
/// formatted there, off the request path.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    #[serde(serialize_with = "rfc3339")]
    pub ts: SystemTime,
    pub request_id: String,
    pub route: &'static str,
    /// The client's address, without port.
    pub client_addr: IpAddr,
    /// The service token's id (never the token); null when unknown.
    pub token_id: Option<String>,
    pub org_id: Option<String>,
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

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    let t: chrono::DateTime<chrono::Utc> = (*t).into();
    s.serialize_str(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
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
            token_id: Some("t1".into()),
            org_id: None,
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
                "token_id": "t1", "org_id": null, "decision": "deny", "status": 403, "reason": "permission_denied",
                "targets": [{"object_type": "project_log", "object_id": "p1", "permission": "update", "decision": "deny"}],
                "rows": 2, "policy_revision": 7, "latency_us": 120
            })
        );
    }
}
