//! The closed vocabularies of the permission model: permissions and object
//! types, parsed once from the strings of the policy document.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// A permission of the Braintrust `Permission` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    Create,
    Read,
    Update,
    Delete,
    CreateAcls,
    ReadAcls,
    UpdateAcls,
    DeleteAcls,
}

impl Permission {
    pub const ALL: [Permission; 8] = [
        Permission::Create,
        Permission::Read,
        Permission::Update,
        Permission::Delete,
        Permission::CreateAcls,
        Permission::ReadAcls,
        Permission::UpdateAcls,
        Permission::DeleteAcls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Create => "create",
            Permission::Read => "read",
            Permission::Update => "update",
            Permission::Delete => "delete",
            Permission::CreateAcls => "create_acls",
            Permission::ReadAcls => "read_acls",
            Permission::UpdateAcls => "update_acls",
            Permission::DeleteAcls => "delete_acls",
        }
    }

    /// A bit for compact permission sets.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| UnknownName(s.to_owned()))
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value of the Braintrust `AclObjectType` enum. Every value is accepted
/// and stored; ingestion decisions only ever ask about the first seven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectType {
    Organization,
    Project,
    ProjectLog,
    Experiment,
    Dataset,
    Prompt,
    PromptSession,
    Group,
    Role,
    OrgMember,
    OrgProject,
    OrgAuditLogs,
}

impl ObjectType {
    pub const ALL: [ObjectType; 12] = [
        ObjectType::Organization,
        ObjectType::Project,
        ObjectType::ProjectLog,
        ObjectType::Experiment,
        ObjectType::Dataset,
        ObjectType::Prompt,
        ObjectType::PromptSession,
        ObjectType::Group,
        ObjectType::Role,
        ObjectType::OrgMember,
        ObjectType::OrgProject,
        ObjectType::OrgAuditLogs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Organization => "organization",
            ObjectType::Project => "project",
            ObjectType::ProjectLog => "project_log",
            ObjectType::Experiment => "experiment",
            ObjectType::Dataset => "dataset",
            ObjectType::Prompt => "prompt",
            ObjectType::PromptSession => "prompt_session",
            ObjectType::Group => "group",
            ObjectType::Role => "role",
            ObjectType::OrgMember => "org_member",
            ObjectType::OrgProject => "org_project",
            ObjectType::OrgAuditLogs => "org_audit_logs",
        }
    }
}

impl FromStr for ObjectType {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectType::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownName(s.to_owned()))
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serde as the vocabulary's strings; an unknown string is an error that
/// lists the known ones.
macro_rules! serde_as_str {
    ($ty:ident, $what:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = std::borrow::Cow::<str>::deserialize(d)?;
                s.parse().map_err(|_| {
                    let known: Vec<&str> = $ty::ALL.iter().map(|v| v.as_str()).collect();
                    de::Error::custom(format_args!(
                        concat!("unknown ", $what, " '{}' (expected one of {})"),
                        s,
                        known.join(", ")
                    ))
                })
            }
        }
    };
}

serde_as_str!(Permission, "permission");
serde_as_str!(ObjectType, "object type");

/// A string that is not a member of the vocabulary it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value '{0}'")]
pub struct UnknownName(pub String);

/// An object a request touches: the unit of an authorization decision.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub object_type: ObjectType,
    pub id: String,
}

impl ObjectRef {
    pub fn new(object_type: ObjectType, id: impl Into<String>) -> Self {
        ObjectRef { object_type, id: id.into() }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.object_type, self.id)
    }
}

impl FromStr for ObjectRef {
    type Err = UnknownName;
    /// `project_log:ID`, as the CLI takes it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (t, id) = s.split_once(':').ok_or_else(|| UnknownName(s.to_owned()))?;
        if id.is_empty() {
            return Err(UnknownName(s.to_owned()));
        }
        Ok(ObjectRef::new(t.parse()?, id))
    }
}
