//! Objects learned from the data plane after a policy was compiled: a
//! project, experiment or dataset created through the gateway, and its
//! creator's grants. They sit in a small overlay beside the compiled core
//! (which is shared, not copied), so learning one costs what it adds, not
//! a recompilation of the whole policy.
//!
//! The overlay takes the indexes after the document's (a learned project
//! is project `doc.projects.len() + k`), so a decision treats it as any
//! other object. Entries are judged as loading would: an entry whose id is
//! known already is not added (what the document has wins), and one naming
//! what does not exist, or a principal of another organization, grants
//! nothing.
//!
//! Learning makes a new overlay beside the old one (a policy in force is
//! never changed), so the overlay's parts are shared: a learn copies
//! pointers to what was learned before, not the objects, ACLs and ids
//! themselves, and allocates only for what it adds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use loggate_model::doc::{Acl, AclGrant, AclPrincipal as DocPrincipal, Dataset, Experiment, Project};
use loggate_model::types::ObjectType;

use crate::compile::{add, reachable};
use crate::{AclEntry, AclPrincipal, CompiledPolicy, Masks};

/// What the data plane made known, in the document's shapes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Learning {
    pub projects: Vec<Project>,
    pub experiments: Vec<Experiment>,
    pub datasets: Vec<Dataset>,
    pub acls: Vec<Acl>,
}

impl Learning {
    pub fn is_empty(&self) -> bool {
        self.projects.is_empty() && self.experiments.is_empty() && self.datasets.is_empty() && self.acls.is_empty()
    }

    pub fn extend(&mut self, other: Learning) {
        self.projects.extend(other.projects);
        self.experiments.extend(other.experiments);
        self.datasets.extend(other.datasets);
        self.acls.extend(other.acls);
    }
}

/// The overlay: learned objects, their ACLs, and the learned ACLs whole
/// (for explanations).
#[derive(Debug, Clone, Default)]
pub(crate) struct Learned {
    pub(crate) projects: Vec<Arc<LearnedObject>>,
    pub(crate) experiments: Vec<Arc<LearnedObject>>,
    pub(crate) datasets: Vec<Arc<LearnedObject>>,
    pub(crate) acls: Vec<Arc<Acl>>,
    project_ids: HashMap<Arc<str>, u32>,
    experiment_ids: HashMap<Arc<str>, u32>,
    dataset_ids: HashMap<Arc<str>, u32>,
    acl_ids: HashSet<Arc<str>>,
}

/// A learned project (its parent: the organization), experiment or dataset
/// (its parent: the project).
#[derive(Debug, Clone)]
pub(crate) struct LearnedObject {
    pub(crate) id: String,
    name: String,
    pub(crate) parent: u32,
    pub(crate) acls: Vec<AclEntry>,
    /// A project's log's own ACLs.
    pub(crate) log_acls: Vec<AclEntry>,
}

impl Learned {
    pub(crate) fn len(&self) -> usize {
        self.projects.len() + self.experiments.len() + self.datasets.len() + self.acls.len()
    }

    pub(crate) fn project(&self, base: usize, id: &str) -> Option<u32> {
        self.project_ids.get(id).map(|k| base as u32 + k)
    }

    pub(crate) fn experiment(&self, base: usize, id: &str) -> Option<u32> {
        self.experiment_ids.get(id).map(|k| base as u32 + k)
    }

    pub(crate) fn dataset(&self, base: usize, id: &str) -> Option<u32> {
        self.dataset_ids.get(id).map(|k| base as u32 + k)
    }

    pub(crate) fn project_by_name(&self, base: usize, org: u32, name: &str) -> Option<u32> {
        by_name(&self.projects, base, org, name)
    }

    pub(crate) fn experiment_by_name(&self, base: usize, project: u32, name: &str) -> Option<u32> {
        by_name(&self.experiments, base, project, name)
    }

    pub(crate) fn dataset_by_name(&self, base: usize, project: u32, name: &str) -> Option<u32> {
        by_name(&self.datasets, base, project, name)
    }
}

fn by_name(objects: &[Arc<LearnedObject>], base: usize, parent: u32, name: &str) -> Option<u32> {
    let k = objects.iter().position(|o| o.parent == parent && o.name == name)?;
    Some((base + k) as u32)
}

impl CompiledPolicy {
    /// Whether an object of this type and id is in the policy (deleted or
    /// not), learned objects included.
    pub fn knows(&self, object_type: ObjectType, id: &str) -> bool {
        match object_type {
            ObjectType::Organization => self.org_ix(id).is_some(),
            ObjectType::Project | ObjectType::ProjectLog => self.project_ix(id).is_some(),
            ObjectType::Experiment => self.experiment_ix(id).is_some(),
            ObjectType::Dataset => self.dataset_ix(id).is_some(),
            _ => false,
        }
    }

    /// This policy with `learning` added beside it: the compiled document is
    /// shared, so the cost is that of the overlay, not of the policy.
    pub fn learn(&self, learning: &Learning) -> CompiledPolicy {
        let core = &self.core;
        let doc = &core.doc;
        let mut overlay = (*self.learned).clone();
        let project_of = |overlay: &Learned, id: &str| {
            core.projects
                .get(id, |i| doc.str(doc.projects[i as usize].id))
                .or_else(|| overlay.project(doc.projects.len(), id))
        };
        let org_of_project = |overlay: &Learned, p: u32| match core.project_info.get(p as usize) {
            Some(info) => info.map(|i| i.org),
            None => Some(overlay.projects[p as usize - doc.projects.len()].parent),
        };
        for p in &learning.projects {
            if p.id.is_empty() || p.deleted_at.is_some() || project_of(&overlay, &p.id).is_some() {
                continue;
            }
            let Some(org) = self.org_ix(&p.org_id) else { continue };
            overlay.project_ids.insert(p.id.as_str().into(), overlay.projects.len() as u32);
            overlay.projects.push(Arc::new(LearnedObject::new(&p.id, &p.name, org)));
        }
        for e in &learning.experiments {
            let known = core.experiments.get(&e.id, |i| doc.str(doc.experiments[i as usize].id)).is_some()
                || overlay.experiment_ids.contains_key(e.id.as_str());
            if e.id.is_empty() || e.deleted_at.is_some() || known {
                continue;
            }
            let Some(project) = project_of(&overlay, &e.project_id) else { continue };
            overlay.experiment_ids.insert(e.id.as_str().into(), overlay.experiments.len() as u32);
            overlay.experiments.push(Arc::new(LearnedObject::new(&e.id, &e.name, project)));
        }
        for d in &learning.datasets {
            let known = core.datasets.get(&d.id, |i| doc.str(doc.datasets[i as usize].id)).is_some()
                || overlay.dataset_ids.contains_key(d.id.as_str());
            if d.id.is_empty() || d.deleted_at.is_some() || known {
                continue;
            }
            let Some(project) = project_of(&overlay, &d.project_id) else { continue };
            overlay.dataset_ids.insert(d.id.as_str().into(), overlay.datasets.len() as u32);
            overlay.datasets.push(Arc::new(LearnedObject::new(&d.id, &d.name, project)));
        }
        for acl in &learning.acls {
            if acl.id.is_empty() || overlay.acl_ids.contains(acl.id.as_str()) {
                continue;
            }
            // Only learned objects take learned ACLs: the compiled ones'
            // lists are shared and stay as the document has them.
            let id = acl.object_id.as_str();
            let (k, org) = match acl.object_type {
                ObjectType::Project | ObjectType::ProjectLog => {
                    let Some(&k) = overlay.project_ids.get(id) else { continue };
                    (k, Some(overlay.projects[k as usize].parent))
                }
                ObjectType::Experiment => {
                    let Some(&k) = overlay.experiment_ids.get(id) else { continue };
                    (k, org_of_project(&overlay, overlay.experiments[k as usize].parent))
                }
                ObjectType::Dataset => {
                    let Some(&k) = overlay.dataset_ids.get(id) else { continue };
                    (k, org_of_project(&overlay, overlay.datasets[k as usize].parent))
                }
                _ => continue,
            };
            let Some(org) = org else { continue };
            let org_id = self.org_id(org);
            let principal = match acl.principal() {
                Some(DocPrincipal::User(u)) => self.user_ix(u).map(AclPrincipal::User),
                Some(DocPrincipal::Group(g)) => self
                    .group_ix(g)
                    .filter(|&g| {
                        let group = &doc.groups[g as usize];
                        group.deleted_at.is_none() && doc.str(group.org_id) == org_id
                    })
                    .map(AclPrincipal::Group),
                None => None,
            };
            let masks = match acl.grant() {
                Some(AclGrant::Permission { permission, restrict }) => {
                    let mut m: Masks = [0; ObjectType::ALL.len()];
                    add(&mut m, permission, restrict);
                    Some(m)
                }
                Some(AclGrant::Role(r)) => self
                    .role_ix(r)
                    .filter(|&r| {
                        let role = &doc.roles[r as usize];
                        role.deleted_at.is_none() && role.org_id.is_none_or(|o| doc.str(o) == org_id)
                    })
                    .map(|r| {
                        let mut m: Masks = [0; ObjectType::ALL.len()];
                        for reached in reachable(&[r], &core.role_members) {
                            for grant in core.role_own[reached as usize].iter() {
                                add(&mut m, grant.permission, grant.restrict);
                            }
                        }
                        m
                    }),
                None => None,
            };
            let (Some(principal), Some(masks)) = (principal, masks) else { continue };
            let entry = AclEntry { principal, masks, acl: (doc.acls.len() + overlay.acls.len()) as u32 };
            // Copied on write: an object shared with the previous overlay
            // is copied once, the first time this learn adds to it.
            let list = match acl.object_type {
                ObjectType::Project => &mut Arc::make_mut(&mut overlay.projects[k as usize]).acls,
                ObjectType::ProjectLog => &mut Arc::make_mut(&mut overlay.projects[k as usize]).log_acls,
                ObjectType::Experiment => &mut Arc::make_mut(&mut overlay.experiments[k as usize]).acls,
                _ => &mut Arc::make_mut(&mut overlay.datasets[k as usize]).acls,
            };
            list.push(entry);
            overlay.acl_ids.insert(acl.id.as_str().into());
            overlay.acls.push(Arc::new(acl.clone()));
        }
        CompiledPolicy { core: self.core.clone(), learned: Arc::new(overlay) }
    }
}

impl LearnedObject {
    fn new(id: &str, name: &str, parent: u32) -> Self {
        LearnedObject { id: id.to_owned(), name: name.to_owned(), parent, acls: Vec::new(), log_acls: Vec::new() }
    }
}
