//! Building the indexes of a `CompiledPolicy` from a loaded policy:
//! interned ids, group closures (user -> every group containing it), role
//! closures folded into per-ACL permission masks, ACLs by object, and the
//! token digest map.

use std::collections::{HashMap, VecDeque};

use super::{AclEntry, AclPrincipal, CompiledPolicy, Grant, Interner, Masks, ProjectInfo};
use loggate_model::Identity;
use loggate_model::ValidPolicy;
use loggate_model::doc::{AclGrant, AclPrincipal as DocPrincipal};
use loggate_model::identity;
use loggate_model::types::{ObjectType, Permission};

/// Builds every index. The policy kept every rule when it was loaded, so a
/// reference that does not resolve cannot occur; were one to, the entry
/// naming it is skipped (it grants nothing), never a panic.
pub(super) fn build(policy: ValidPolicy) -> CompiledPolicy {
    let doc = policy.into_doc();
    let orgs = intern(doc.organizations.iter().map(|o| o.id.as_str()));
    let projects = intern(doc.projects.iter().map(|p| p.id.as_str()));
    let experiments = intern(doc.experiments.iter().map(|e| e.id.as_str()));
    let datasets = intern(doc.datasets.iter().map(|d| d.id.as_str()));
    let users = intern(doc.users.iter().map(|u| u.id.as_str()));
    let groups = intern(doc.groups.iter().map(|g| g.id.as_str()));
    let roles = intern(doc.roles.iter().map(|r| r.id.as_str()));
    let live_group: Vec<bool> = doc.groups.iter().map(|g| g.deleted_at.is_none()).collect();
    let live_role: Vec<bool> = doc.roles.iter().map(|r| r.deleted_at.is_none()).collect();

    // Names: the first entry in document order wins a duplicate name.
    let mut org_names = HashMap::new();
    for (i, o) in doc.organizations.iter().enumerate() {
        org_names.entry(o.name.as_str().into()).or_insert(i as u32);
    }
    let mut project_names = vec![HashMap::new(); doc.organizations.len()];
    let project_info: Vec<Option<ProjectInfo>> = doc
        .projects
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let org = orgs.get(&p.org_id)?;
            let deleted = p.deleted_at.is_some();
            if !deleted {
                project_names[org as usize].entry(p.name.as_str().into()).or_insert(i as u32);
            }
            Some(ProjectInfo { org, deleted })
        })
        .collect();
    // A deleted experiment or dataset is unknown: it has no project.
    let mut experiment_names = vec![HashMap::new(); doc.projects.len()];
    let experiment_project: Vec<Option<u32>> = doc
        .experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p = projects.get(&e.project_id).filter(|_| e.deleted_at.is_none())?;
            experiment_names[p as usize].entry(e.name.as_str().into()).or_insert(i as u32);
            Some(p)
        })
        .collect();
    let mut dataset_names = vec![HashMap::new(); doc.projects.len()];
    let dataset_project: Vec<Option<u32>> = doc
        .datasets
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = projects.get(&d.project_id).filter(|_| d.deleted_at.is_none())?;
            dataset_names[p as usize].entry(d.name.as_str().into()).or_insert(i as u32);
            Some(p)
        })
        .collect();

    // Groups: direct membership, and the reverse of `member_groups`, among
    // live groups only (a deleted group contains nobody).
    let mut user_direct_groups = vec![Vec::new(); doc.users.len()];
    let mut group_parents = vec![Vec::new(); doc.groups.len()];
    for (g, group) in doc.groups.iter().enumerate().filter(|(g, _)| live_group[*g]) {
        for u in group.member_users.iter().filter_map(|u| users.get(u)) {
            push_unique(&mut user_direct_groups[u as usize], g as u32);
        }
        for h in group.member_groups.iter().filter_map(|h| groups.get(h)).filter(|&h| live_group[h as usize]) {
            push_unique(&mut group_parents[h as usize], g as u32);
        }
    }
    let user_groups = user_direct_groups
        .iter()
        .map(|direct| {
            let mut all = reachable(direct, &group_parents);
            all.sort_unstable();
            all.into_boxed_slice()
        })
        .collect();

    // Roles: own grants, member roles, and the closure as masks, among live
    // roles only (a deleted role grants nothing, also as a member).
    let role_own: Vec<Box<[Grant]>> = doc
        .roles
        .iter()
        .enumerate()
        .map(|(r, role)| {
            let own = role.member_permissions.iter().filter(|_| live_role[r]);
            own.map(|mp| Grant { permission: mp.permission, restrict: mp.restrict_object_type }).collect()
        })
        .collect();
    let role_members: Vec<Vec<u32>> = doc
        .roles
        .iter()
        .enumerate()
        .map(|(r, role)| {
            let mut m = Vec::new();
            if live_role[r] {
                for x in role.member_roles.iter().filter_map(|x| roles.get(x)).filter(|&x| live_role[x as usize]) {
                    push_unique(&mut m, x);
                }
            }
            m
        })
        .collect();
    let role_masks: Vec<Masks> = (0..doc.roles.len() as u32)
        .map(|r| {
            let mut masks = [0; ObjectType::ALL.len()];
            for reached in reachable(&[r], &role_members) {
                for grant in role_own[reached as usize].iter() {
                    add(&mut masks, grant.permission, grant.restrict);
                }
            }
            masks
        })
        .collect();

    // ACLs, by the object they sit on.
    let mut org_acls = vec![Vec::new(); doc.organizations.len()];
    let mut project_acls = vec![Vec::new(); doc.projects.len()];
    let mut project_log_acls = vec![Vec::new(); doc.projects.len()];
    let mut experiment_acls = vec![Vec::new(); doc.experiments.len()];
    let mut dataset_acls = vec![Vec::new(); doc.datasets.len()];
    for (i, acl) in doc.acls.iter().enumerate() {
        let principal = match acl.principal() {
            Some(DocPrincipal::User(u)) => users.get(u).map(AclPrincipal::User),
            Some(DocPrincipal::Group(g)) => groups.get(g).filter(|&g| live_group[g as usize]).map(AclPrincipal::Group),
            None => None,
        };
        let masks = match acl.grant() {
            Some(AclGrant::Permission { permission, restrict }) => {
                let mut m = [0; ObjectType::ALL.len()];
                add(&mut m, permission, restrict);
                Some(m)
            }
            Some(AclGrant::Role(r)) => roles.get(r).map(|r| role_masks[r as usize]),
            None => None,
        };
        let (Some(principal), Some(masks)) = (principal, masks) else {
            continue;
        };
        let entry = AclEntry { principal, masks, acl: i as u32 };
        let object = acl.object_id.as_str();
        let list = match acl.object_type {
            ObjectType::Organization => orgs.get(object).map(|o| &mut org_acls[o as usize]),
            ObjectType::Project => projects.get(object).map(|p| &mut project_acls[p as usize]),
            ObjectType::ProjectLog => projects.get(object).map(|p| &mut project_log_acls[p as usize]),
            ObjectType::Experiment => experiments.get(object).map(|e| &mut experiment_acls[e as usize]),
            ObjectType::Dataset => datasets.get(object).map(|d| &mut dataset_acls[d as usize]),
            // ACLs on objects the policy does not describe never apply to a
            // decision it can make.
            _ => None,
        };
        if let Some(list) = list {
            list.push(entry);
        }
    }

    // Service tokens.
    let mut token_buckets: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut token_digests = Vec::with_capacity(doc.service_tokens.len());
    let mut token_identities = Vec::with_capacity(doc.service_tokens.len());
    let token_index: HashMap<&str, usize> =
        doc.service_tokens.iter().enumerate().map(|(i, t)| (t.id.as_str(), i)).collect();
    for (i, t) in doc.service_tokens.iter().enumerate() {
        token_buckets.entry(t.token_sha256.bucket()).or_default().push(i as u32);
        token_digests.push(t.token_sha256);
        // Loading kept only tokens whose parents are loaded.
        let ancestors =
            identity::ancestors(t, |id| token_index.get(id).map(|&j| &doc.service_tokens[j])).unwrap_or_default();
        token_identities.push(Identity::of(t, &ancestors));
    }

    CompiledPolicy {
        orgs,
        org_names,
        projects,
        project_info,
        project_names,
        experiments,
        experiment_project,
        experiment_names,
        datasets,
        dataset_project,
        dataset_names,
        users,
        user_groups,
        user_direct_groups: boxed(user_direct_groups),
        group_parents: boxed(group_parents),
        roles,
        role_own,
        role_members: boxed(role_members),
        org_acls,
        project_acls,
        project_log_acls,
        experiment_acls,
        dataset_acls,
        token_buckets: token_buckets.into_iter().map(|(k, v)| (k, v.into_boxed_slice())).collect(),
        token_digests,
        token_identities,
        doc,
    }
}

fn intern<'a>(ids: impl Iterator<Item = &'a str>) -> Interner {
    Interner(ids.enumerate().map(|(i, s)| (s.into(), i as u32)).collect())
}

fn push_unique(v: &mut Vec<u32>, x: u32) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn boxed(v: Vec<Vec<u32>>) -> Vec<Box<[u32]>> {
    v.into_iter().map(Vec::into_boxed_slice).collect()
}

/// Sets `permission` in `masks` for `restrict`, or for every type.
fn add(masks: &mut Masks, permission: Permission, restrict: Option<ObjectType>) {
    match restrict {
        Some(t) => masks[t as usize] |= permission.bit(),
        None => masks.iter_mut().for_each(|m| *m |= permission.bit()),
    }
}

/// Every node reachable from `start` (inclusive) along `edges`: breadth
/// first, each node visited once, so cycles terminate.
pub(super) fn reachable<E: AsRef<[u32]>>(start: &[u32], edges: &[E]) -> Vec<u32> {
    let mut seen = vec![false; edges.len()];
    let mut out = Vec::new();
    let mut queue: VecDeque<u32> = VecDeque::new();
    for &s in start {
        if !std::mem::replace(&mut seen[s as usize], true) {
            queue.push_back(s);
        }
    }
    while let Some(n) = queue.pop_front() {
        out.push(n);
        for &next in edges[n as usize].as_ref() {
            if !std::mem::replace(&mut seen[next as usize], true) {
                queue.push_back(next);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_includes_the_start_and_terminates_on_cycles() {
        // 0 -> 1 -> 2 -> 0, 2 -> 2, 3 isolated
        let edges: Vec<Vec<u32>> = vec![vec![1], vec![2], vec![0, 2], vec![]];
        let mut r = reachable(&[1], &edges);
        r.sort_unstable();
        assert_eq!(r, vec![0, 1, 2]);
        assert_eq!(reachable(&[3, 3], &edges), vec![3]);
        assert_eq!(reachable(&[], &edges), Vec::<u32>::new());
    }

    #[test]
    fn add_sets_one_type_or_all() {
        let mut m: Masks = [0; ObjectType::ALL.len()];
        add(&mut m, Permission::Update, Some(ObjectType::ProjectLog));
        assert_eq!(m[ObjectType::ProjectLog as usize], Permission::Update.bit());
        assert_eq!(m.iter().filter(|&&b| b != 0).count(), 1);
        add(&mut m, Permission::Read, None);
        assert!(m.iter().all(|&b| b & Permission::Read.bit() != 0));
    }
}
