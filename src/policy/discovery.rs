//! What a register route teaches the store: the project (and experiment or
//! dataset) the data plane created or returned, and, for what the caller
//! created through loggate, the creator's owner grant (Braintrust gives the
//! creator every permission on a new object).

use loggate_model::doc::{Acl, Dataset, Experiment, Project};
use loggate_model::types::{ObjectRef, ObjectType, Permission};

/// An experiment or dataset learned with its project.
#[derive(Debug, Clone, PartialEq)]
pub enum Child {
    Experiment(Experiment),
    Dataset(Dataset),
}

impl Child {
    pub fn object(&self) -> ObjectRef {
        match self {
            Child::Experiment(e) => ObjectRef::new(ObjectType::Experiment, e.id.clone()),
            Child::Dataset(d) => ObjectRef::new(ObjectType::Dataset, d.id.clone()),
        }
    }
}

/// One register answer's worth of objects.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    pub project: Project,
    pub child: Option<Child>,
    /// The caller's user id and the objects it created, when it created any.
    pub creator: Option<Creator>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Creator {
    pub user_id: String,
    pub created: Vec<ObjectRef>,
}

impl Creator {
    /// The owner grant as ACLs: every permission on each created object,
    /// ids from `new_id` (the admin API's ids are UUIDs).
    pub fn owner_acls(&self, mut new_id: impl FnMut() -> String) -> Vec<Acl> {
        let mut acls = Vec::with_capacity(self.created.len() * Permission::ALL.len());
        for object in &self.created {
            for permission in Permission::ALL {
                acls.push(Acl::user_permission(
                    new_id(),
                    object.object_type,
                    object.id.clone(),
                    self.user_id.clone(),
                    permission,
                ));
            }
        }
        acls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_grant_is_every_permission_on_every_created_object() {
        let creator = Creator {
            user_id: "u1".into(),
            created: vec![ObjectRef::new(ObjectType::Project, "p1"), ObjectRef::new(ObjectType::Experiment, "e1")],
        };
        let mut n = 0;
        let acls = creator.owner_acls(|| {
            n += 1;
            format!("a{n}")
        });
        assert_eq!(acls.len(), 16);
        assert!(acls.iter().all(|a| a.user_id.as_deref() == Some("u1") && a.role_id.is_none()));
        for p in Permission::ALL {
            assert!(acls.iter().any(|a| a.object_id == "e1" && a.permission == Some(p)));
        }
        assert_eq!(acls[15].id, "a16");
    }
}
