//! The invalidation message (docs/operations.md, caching and invalidation, contract):
//! `{"revision":N,"committed_at_ms":T,"changes":[{"kind":"…","id":"…"}]}`.
//! Extra fields are ignored; an unknown kind or anything that does not parse
//! is an error the applier answers with a flush.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What a change touched. The closed vocabulary of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Organization,
    Project,
    Experiment,
    Dataset,
    User,
    Group,
    Role,
    Acl,
    ServiceToken,
}

impl ChangeKind {
    pub const ALL: [ChangeKind; 9] = [
        ChangeKind::Organization,
        ChangeKind::Project,
        ChangeKind::Experiment,
        ChangeKind::Dataset,
        ChangeKind::User,
        ChangeKind::Group,
        ChangeKind::Role,
        ChangeKind::Acl,
        ChangeKind::ServiceToken,
    ];

    /// The wire name, also the `loggate_invalidations_total{kind}` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Organization => "organization",
            ChangeKind::Project => "project",
            ChangeKind::Experiment => "experiment",
            ChangeKind::Dataset => "dataset",
            ChangeKind::User => "user",
            ChangeKind::Group => "group",
            ChangeKind::Role => "role",
            ChangeKind::Acl => "acl",
            ChangeKind::ServiceToken => "service_token",
        }
    }

    /// Parses a wire name (e.g. a store's change-log `kind` column).
    pub fn parse(s: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One changed row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub kind: ChangeKind,
    pub id: String,
}

/// One committed transaction: one revision, all of its changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub revision: u64,
    pub committed_at_ms: i64,
    pub changes: Vec<Change>,
}

impl Announcement {
    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an announcement always serializes")
    }
}

/// A message that is not a valid announcement. Whatever could be salvaged
/// (the revision, the commit time) is kept so that the flush it causes
/// still advances the revision and records the lag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable invalidation message: {reason}")]
pub struct Garbage {
    pub reason: String,
    pub revision: Option<u64>,
    pub committed_at_ms: Option<i64>,
}

/// Just the envelope, read when the full message does not parse.
#[derive(Deserialize)]
struct Envelope {
    revision: Option<u64>,
    committed_at_ms: Option<i64>,
}

/// Parses one message off the feed.
pub fn parse(bytes: &[u8]) -> Result<Announcement, Garbage> {
    serde_json::from_slice::<Announcement>(bytes).map_err(|e| {
        let envelope = serde_json::from_slice::<Envelope>(bytes).ok();
        Garbage {
            reason: e.to_string(),
            revision: envelope.as_ref().and_then(|e| e.revision),
            committed_at_ms: envelope.and_then(|e| e.committed_at_ms),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_contract_shape_and_ignores_extra_fields() {
        let m = parse(
            br#"{"revision":7,"committed_at_ms":1700000000000,"publisher":"x",
                 "changes":[{"kind":"service_token","id":"t1","op":"delete"},{"kind":"acl","id":"a1"}]}"#,
        )
        .unwrap();
        assert_eq!(m.revision, 7);
        assert_eq!(m.committed_at_ms, 1_700_000_000_000);
        assert_eq!(
            m.changes,
            vec![
                Change { kind: ChangeKind::ServiceToken, id: "t1".into() },
                Change { kind: ChangeKind::Acl, id: "a1".into() }
            ]
        );
    }

    #[test]
    fn every_kind_round_trips() {
        for kind in ChangeKind::ALL {
            let a = Announcement { revision: 1, committed_at_ms: 2, changes: vec![Change { kind, id: "i".into() }] };
            assert_eq!(parse(&a.encode()).unwrap(), a);
            assert_eq!(ChangeKind::parse(kind.as_str()), Some(kind));
            assert!(String::from_utf8(a.encode()).unwrap().contains(&format!("\"kind\":\"{kind}\"")));
        }
    }

    #[test]
    fn unknown_kinds_and_garbage_are_errors_that_keep_the_envelope() {
        let e = parse(br#"{"revision":9,"committed_at_ms":5,"changes":[{"kind":"prompt","id":"p"}]}"#).unwrap_err();
        assert_eq!((e.revision, e.committed_at_ms), (Some(9), Some(5)));
        let e = parse(b"not json").unwrap_err();
        assert_eq!((e.revision, e.committed_at_ms), (None, None));
        assert!(parse(br#"{"revision":-1,"committed_at_ms":5,"changes":[]}"#).is_err());
        assert!(parse(br#"{"revision":1,"changes":[]}"#).is_err());
        assert!(parse(br#"{"revision":1,"committed_at_ms":1,"changes":[{"kind":"acl"}]}"#).is_err());
    }
}
