//! Questions about an organization as a whole rather than one object
//! (contract: OpenTelemetry traces and attachments):
//!
//! - would the principal hold a permission on an object the data plane is
//!   about to create (the log of a project an OTel export names by a name no
//!   one registered yet)? Only grants on the organization itself can say
//!   yes: nothing else of the new project exists to carry an ACL.
//! - which objects of the organization could the principal hold something
//!   on (attachments need `update` on at least one writable object)? The
//!   caller decides each candidate the ordinary way; this only lists where
//!   a grant can be, so that a large organization is not walked object by
//!   object.

use crate::{AclEntry, AclPrincipal, CompiledPolicy, Decision, DenyReason, Principal, Scope};
use loggate_model::types::{ObjectRef, ObjectType, Permission};

impl CompiledPolicy {
    /// Does `principal` hold `permission` on a new object of `object_type`
    /// (a project or project log) created directly in organization `org_id`?
    /// Org-level ACLs alone decide, restrictions to the type included; a
    /// scope must let it through on the organization (a scope naming
    /// particular projects cannot name one that does not exist yet).
    pub fn decide_new(
        &self,
        principal: &Principal,
        org_id: &str,
        object_type: ObjectType,
        permission: Permission,
    ) -> Decision {
        let Some(org) = self.orgs.get(org_id) else {
            return Decision::Deny(DenyReason::UnknownObject);
        };
        if self.orgs.get(&principal.org_id) != Some(org) {
            return Decision::Deny(DenyReason::OtherOrganization);
        }
        let scope = Scope { org, project: None, chain: [&self.org_acls[org as usize], &[], &[]] };
        if self.granting(principal, object_type, permission, &scope).next().is_none() {
            Decision::Deny(DenyReason::MissingPermission)
        } else if !principal.scopes.allow(permission, &[(ObjectType::Organization, org_id)]) {
            Decision::Deny(DenyReason::ScopeDenied)
        } else {
            Decision::Allow
        }
    }

    /// Objects of `types` in the principal's organization on which an ACL
    /// naming the principal (or one of its groups) could grant something,
    /// plus the objects its scopes name; at most `cap`, in a stable order.
    ///
    /// An ACL on an object names that object; on a project, the project's
    /// log and its first live experiment and dataset; on the organization,
    /// the first live project log, experiment and dataset of the
    /// organization. One object per kind is enough there: such a grant
    /// reaches every object of its kind alike, and a scope that would tell
    /// them apart names its objects, which are candidates of their own.
    pub fn candidates(&self, principal: &Principal, types: &[ObjectType], cap: usize) -> Vec<ObjectRef> {
        let mut out: Vec<ObjectRef> = Vec::new();
        let Some(org) = self.orgs.get(&principal.org_id) else {
            return out;
        };
        let mut push = |object: ObjectRef| {
            if out.len() < cap && types.contains(&object.object_type) && !out.contains(&object) {
                out.push(object);
            }
        };
        let names = |entries: &[AclEntry]| self.names_principal(principal, entries);
        if names(&self.org_acls[org as usize]) {
            self.first_of_org(org).into_iter().for_each(&mut push);
        }
        for p in 0..self.project_info.len() {
            if !self.live_in(p as u32, org) {
                continue;
            }
            let id = &self.doc.projects[p].id;
            if names(&self.project_acls[p]) {
                push(ObjectRef::new(ObjectType::ProjectLog, id.clone()));
                self.first_in_project(p as u32).into_iter().for_each(&mut push);
            } else if names(&self.project_log_acls[p]) {
                push(ObjectRef::new(ObjectType::ProjectLog, id.clone()));
            }
        }
        for (e, project) in self.experiment_project.iter().enumerate() {
            if project.is_some_and(|p| self.live_in(p, org)) && names(&self.experiment_acls[e]) {
                push(ObjectRef::new(ObjectType::Experiment, self.doc.experiments[e].id.clone()));
            }
        }
        for (d, project) in self.dataset_project.iter().enumerate() {
            if project.is_some_and(|p| self.live_in(p, org)) && names(&self.dataset_acls[d]) {
                push(ObjectRef::new(ObjectType::Dataset, self.doc.datasets[d].id.clone()));
            }
        }
        for scope in principal.scopes.iter() {
            for grant in scope.grants.iter().flatten() {
                push(ObjectRef::new(grant.object_type, grant.object_id.clone()));
            }
        }
        out
    }

    /// Whether one of `entries` names the principal or one of its groups.
    fn names_principal(&self, principal: &Principal, entries: &[AclEntry]) -> bool {
        let user = self.users.get(&principal.user_id);
        let groups: &[u32] = user.map_or(&[], |u| &self.user_groups[u as usize]);
        entries.iter().any(|e| match e.principal {
            AclPrincipal::User(u) => Some(u) == user,
            AclPrincipal::Group(g) => groups.binary_search(&g).is_ok(),
        })
    }

    fn live_in(&self, project: u32, org: u32) -> bool {
        self.project_info[project as usize].is_some_and(|i| i.org == org && !i.deleted)
    }

    /// The first live project log, experiment and dataset of an organization.
    fn first_of_org(&self, org: u32) -> Vec<ObjectRef> {
        let mut out = Vec::with_capacity(3);
        if let Some(p) = (0..self.project_info.len() as u32).find(|&p| self.live_in(p, org)) {
            out.push(ObjectRef::new(ObjectType::ProjectLog, self.doc.projects[p as usize].id.clone()));
        }
        if let Some(e) = self.experiment_project.iter().position(|p| p.is_some_and(|p| self.live_in(p, org))) {
            out.push(ObjectRef::new(ObjectType::Experiment, self.doc.experiments[e].id.clone()));
        }
        if let Some(d) = self.dataset_project.iter().position(|p| p.is_some_and(|p| self.live_in(p, org))) {
            out.push(ObjectRef::new(ObjectType::Dataset, self.doc.datasets[d].id.clone()));
        }
        out
    }

    /// The first live experiment and dataset of a project.
    fn first_in_project(&self, project: u32) -> Vec<ObjectRef> {
        let mut out = Vec::with_capacity(2);
        if let Some(e) = self.experiment_project.iter().position(|&p| p == Some(project)) {
            out.push(ObjectRef::new(ObjectType::Experiment, self.doc.experiments[e].id.clone()));
        }
        if let Some(d) = self.dataset_project.iter().position(|&p| p == Some(project)) {
            out.push(ObjectRef::new(ObjectType::Dataset, self.doc.datasets[d].id.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests;
