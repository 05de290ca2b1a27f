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
        let Some(org) = self.org_ix(org_id) else {
            return Decision::Deny(DenyReason::UnknownObject);
        };
        if self.org_ix(&principal.org_id) != Some(org) {
            return Decision::Deny(DenyReason::OtherOrganization);
        }
        let scope = Scope { org, project: None, chain: [&self.core.org_acls[org as usize], &[], &[]] };
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
        let Some(org) = self.org_ix(&principal.org_id) else {
            return out;
        };
        let mut push = |object: ObjectRef| {
            if out.len() < cap && types.contains(&object.object_type) && !out.contains(&object) {
                out.push(object);
            }
        };
        let names = |entries: &[AclEntry]| self.names_principal(principal, entries);
        if names(&self.core.org_acls[org as usize]) {
            self.first_of_org(org).into_iter().for_each(&mut push);
        }
        for p in 0..self.project_count() {
            if !self.live_in(p, org) {
                continue;
            }
            let id = self.project_id(p);
            if names(self.project_acls(p)) {
                push(ObjectRef::new(ObjectType::ProjectLog, id));
                self.first_in_project(p).into_iter().for_each(&mut push);
            } else if names(self.project_log_acls(p)) {
                push(ObjectRef::new(ObjectType::ProjectLog, id));
            }
        }
        for e in 0..self.experiment_count() {
            if self.experiment_project(e).is_some_and(|p| self.live_in(p, org)) && names(self.experiment_acls(e)) {
                push(ObjectRef::new(ObjectType::Experiment, self.experiment_id(e)));
            }
        }
        for d in 0..self.dataset_count() {
            if self.dataset_project(d).is_some_and(|p| self.live_in(p, org)) && names(self.dataset_acls(d)) {
                push(ObjectRef::new(ObjectType::Dataset, self.dataset_id(d)));
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
        let user = self.user_ix(&principal.user_id);
        let groups: &[u32] = user.map_or(&[], |u| self.user_groups(u));
        entries.iter().any(|e| match e.principal {
            AclPrincipal::User(u) => Some(u) == user,
            AclPrincipal::Group(g) => groups.binary_search(&g).is_ok(),
        })
    }

    fn live_in(&self, project: u32, org: u32) -> bool {
        self.project_info(project).is_some_and(|i| i.org == org && !i.deleted)
    }

    /// The first live project log, experiment and dataset of an organization.
    fn first_of_org(&self, org: u32) -> Vec<ObjectRef> {
        let mut out = Vec::with_capacity(3);
        if let Some(p) = (0..self.project_count()).find(|&p| self.live_in(p, org)) {
            out.push(ObjectRef::new(ObjectType::ProjectLog, self.project_id(p)));
        }
        if let Some(e) =
            (0..self.experiment_count()).find(|&e| self.experiment_project(e).is_some_and(|p| self.live_in(p, org)))
        {
            out.push(ObjectRef::new(ObjectType::Experiment, self.experiment_id(e)));
        }
        if let Some(d) =
            (0..self.dataset_count()).find(|&d| self.dataset_project(d).is_some_and(|p| self.live_in(p, org)))
        {
            out.push(ObjectRef::new(ObjectType::Dataset, self.dataset_id(d)));
        }
        out
    }

    /// The first live experiment and dataset of a project.
    fn first_in_project(&self, project: u32) -> Vec<ObjectRef> {
        let mut out = Vec::with_capacity(2);
        if let Some(e) = (0..self.experiment_count()).find(|&e| self.experiment_project(e) == Some(project)) {
            out.push(ObjectRef::new(ObjectType::Experiment, self.experiment_id(e)));
        }
        if let Some(d) = (0..self.dataset_count()).find(|&d| self.dataset_project(d) == Some(project)) {
            out.push(ObjectRef::new(ObjectType::Dataset, self.dataset_id(d)));
        }
        out
    }
}

#[cfg(test)]
mod tests;
