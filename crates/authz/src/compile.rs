//! Building the indexes of a `CompiledPolicy` from a loaded policy:
//! interned ids, group closures (user -> every group containing it), role
//! closures folded into per-ACL permission masks, ACLs by object, and the
//! token digest map.

use std::collections::{HashMap, VecDeque};

use super::{AclEntry, AclPrincipal, Core, Grant, Interner, Masks, NameIndex, ProjectInfo};
use hashbrown::HashTable;
use loggate_model::ValidPolicy;
use loggate_model::compact::{AclGrant, AclPrincipal as DocPrincipal, Sym};
use loggate_model::types::{ObjectType, Permission};

/// Builds every index. The policy kept every rule when it was loaded, so a
/// reference that does not resolve cannot occur; were one to, the entry
/// naming it is skipped (it grants nothing), never a panic.
///
/// The indexes hold positions, never copies of ids or names: a lookup by id
/// hashes the id and compares it with the document's.
pub(super) fn build(policy: ValidPolicy) -> Core {
    let doc = policy.into_compact();
    let ids = |syms: &mut dyn Iterator<Item = Sym>| Interner::new(&syms.map(|k| doc.str(k)).collect::<Vec<_>>());
    let orgs = ids(&mut doc.organizations.iter().map(|o| o.id));
    let projects = ids(&mut doc.projects.iter().map(|p| p.id));
    let experiments = ids(&mut doc.experiments.iter().map(|e| e.id));
    let datasets = ids(&mut doc.datasets.iter().map(|d| d.id));
    let users = ids(&mut doc.users.iter().map(|u| u.id));
    let groups = ids(&mut doc.groups.iter().map(|g| g.id));
    let roles = ids(&mut doc.roles.iter().map(|r| r.id));
    let tokens = ids(&mut doc.service_tokens.iter().map(|t| t.id));
    let org_ix = |id: Sym| orgs.get(doc.str(id), |i| doc.str(doc.organizations[i as usize].id));
    let project_ix = |id: Sym| projects.get(doc.str(id), |i| doc.str(doc.projects[i as usize].id));
    let experiment_ix = |id: Sym| experiments.get(doc.str(id), |i| doc.str(doc.experiments[i as usize].id));
    let dataset_ix = |id: Sym| datasets.get(doc.str(id), |i| doc.str(doc.datasets[i as usize].id));
    let user_ix = |id: Sym| users.get(doc.str(id), |i| doc.str(doc.users[i as usize].id));
    let group_ix = |id: Sym| groups.get(doc.str(id), |i| doc.str(doc.groups[i as usize].id));
    let role_ix = |id: Sym| roles.get(doc.str(id), |i| doc.str(doc.roles[i as usize].id));
    let live_group: Vec<bool> = doc.groups.iter().map(|g| g.deleted_at.is_none()).collect();
    let live_role: Vec<bool> = doc.roles.iter().map(|r| r.deleted_at.is_none()).collect();

    // Names: the first entry in document order wins a duplicate name.
    let mut org_names = HashMap::new();
    for (i, o) in doc.organizations.iter().enumerate() {
        org_names.entry(doc.str(o.name).into()).or_insert(i as u32);
    }
    let project_info: Vec<Option<ProjectInfo>> = doc
        .projects
        .iter()
        .map(|p| Some(ProjectInfo { org: org_ix(p.org_id)?, deleted: p.deleted_at.is_some() }))
        .collect();
    let live_project_org: Vec<Option<u32>> =
        project_info.iter().map(|i| i.filter(|i| !i.deleted).map(|i| i.org)).collect();
    let project_names = NameIndex::new(&live_project_org, |p| doc.str(doc.projects[p as usize].name));
    drop(live_project_org);
    // A deleted experiment or dataset is unknown: it has no project.
    let experiment_project: Vec<Option<u32>> =
        doc.experiments.iter().map(|e| project_ix(e.project_id).filter(|_| e.deleted_at.is_none())).collect();
    let experiment_names = NameIndex::new(&experiment_project, |e| doc.str(doc.experiments[e as usize].name));
    let dataset_project: Vec<Option<u32>> =
        doc.datasets.iter().map(|d| project_ix(d.project_id).filter(|_| d.deleted_at.is_none())).collect();
    let dataset_names = NameIndex::new(&dataset_project, |d| doc.str(doc.datasets[d as usize].name));

    // Groups: direct membership, and the reverse of `member_groups`, among
    // live groups only (a deleted group contains nobody).
    let mut user_direct_groups = vec![Vec::new(); doc.users.len()];
    let mut group_parents = vec![Vec::new(); doc.groups.len()];
    for (g, group) in doc.groups.iter().enumerate().filter(|(g, _)| live_group[*g]) {
        for u in group.member_users.iter().filter_map(|&u| user_ix(u)) {
            push_unique(&mut user_direct_groups[u as usize], g as u32);
        }
        for h in group.member_groups.iter().filter_map(|&h| group_ix(h)).filter(|&h| live_group[h as usize]) {
            push_unique(&mut group_parents[h as usize], g as u32);
        }
    }
    // Users in the same groups share one set of direct groups and one of
    // every group containing them.
    let mut group_sets: Vec<Box<[u32]>> = Vec::new();
    let mut set_ix: HashMap<Box<[u32]>, u32> = HashMap::new();
    let mut closure_of: HashMap<u32, u32> = HashMap::new();
    let mut user_direct = Vec::with_capacity(doc.users.len());
    let mut user_closure = Vec::with_capacity(doc.users.len());
    let mut intern_set = |set: Box<[u32]>, sets: &mut Vec<Box<[u32]>>| -> u32 {
        *set_ix.entry(set).or_insert_with_key(|set| {
            sets.push(set.clone());
            (sets.len() - 1) as u32
        })
    };
    for direct in user_direct_groups {
        let d = intern_set(direct.into_boxed_slice(), &mut group_sets);
        let c = match closure_of.get(&d) {
            Some(&c) => c,
            None => {
                let mut all = reachable(&group_sets[d as usize], &group_parents);
                all.sort_unstable();
                let c = intern_set(all.into_boxed_slice(), &mut group_sets);
                closure_of.insert(d, c);
                c
            }
        };
        user_direct.push(d);
        user_closure.push(c);
    }
    drop(set_ix);

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
                for x in role.member_roles.iter().filter_map(|&x| role_ix(x)).filter(|&x| live_role[x as usize]) {
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
            Some(DocPrincipal::User(u)) => user_ix(u).map(AclPrincipal::User),
            Some(DocPrincipal::Group(g)) => group_ix(g).filter(|&g| live_group[g as usize]).map(AclPrincipal::Group),
            None => None,
        };
        let masks = match acl.grant() {
            Some(AclGrant::Permission { permission, restrict }) => {
                let mut m = [0; ObjectType::ALL.len()];
                add(&mut m, permission, restrict);
                Some(m)
            }
            Some(AclGrant::Role(r)) => role_ix(r).map(|r| role_masks[r as usize]),
            None => None,
        };
        let (Some(principal), Some(masks)) = (principal, masks) else {
            continue;
        };
        let entry = AclEntry { principal, masks, acl: i as u32 };
        let object = acl.object_id;
        let list = match acl.object_type {
            ObjectType::Organization => org_ix(object).map(|o| &mut org_acls[o as usize]),
            ObjectType::Project => project_ix(object).map(|p| &mut project_acls[p as usize]),
            ObjectType::ProjectLog => project_ix(object).map(|p| &mut project_log_acls[p as usize]),
            ObjectType::Experiment => experiment_ix(object).map(|e| &mut experiment_acls[e as usize]),
            ObjectType::Dataset => dataset_ix(object).map(|d| &mut dataset_acls[d as usize]),
            // ACLs on objects the policy does not describe never apply to a
            // decision it can make.
            _ => None,
        };
        if let Some(list) = list {
            list.push(entry);
        }
    }

    // Service tokens, hashed by their digest's (non-secret) bucket.
    let mut token_buckets = HashTable::with_capacity(doc.service_tokens.len());
    for (i, t) in doc.service_tokens.iter().enumerate() {
        token_buckets.insert_unique(t.token_sha256.bucket(), i as u32, |&j: &u32| {
            doc.service_tokens[j as usize].token_sha256.bucket()
        });
    }

    Core {
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
        user_direct,
        user_closure,
        group_sets,
        groups,
        group_parents: boxed(group_parents),
        roles,
        role_own,
        role_members: boxed(role_members),
        org_acls: boxed(org_acls),
        project_acls: boxed(project_acls),
        project_log_acls: boxed(project_log_acls),
        experiment_acls: boxed(experiment_acls),
        dataset_acls: boxed(dataset_acls),
        tokens,
        token_buckets,
        doc,
    }
}

fn push_unique(v: &mut Vec<u32>, x: u32) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn boxed<T>(v: Vec<Vec<T>>) -> Vec<Box<[T]>> {
    v.into_iter().map(Vec::into_boxed_slice).collect()
}

/// Sets `permission` in `masks` for `restrict`, or for every type.
pub(super) fn add(masks: &mut Masks, permission: Permission, restrict: Option<ObjectType>) {
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
