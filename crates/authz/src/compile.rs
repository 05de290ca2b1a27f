//! Building the indexes of a `CompiledPolicy` from a validated document:
//! interned ids, group closures (user -> every group containing it), role
//! closures folded into per-ACL permission masks, ACLs by object, and the
//! token digest map.

use std::collections::{HashMap, VecDeque};

use super::{AclEntry, AclPrincipal, CompiledPolicy, Grant, Interner, Masks, ProjectInfo};
use loggate_model::{Identity, TokenDigest};
use loggate_model::doc::PolicyDoc;
use loggate_model::types::{ObjectType, Permission};

/// Builds every index. `doc` must have passed `validate`: references are
/// resolved with `expect`.
pub(super) fn build(doc: PolicyDoc) -> CompiledPolicy {
    let orgs = intern(doc.organizations.iter().map(|o| o.id.as_str()));
    let projects = intern(doc.projects.iter().map(|p| p.id.as_str()));
    let experiments = intern(doc.experiments.iter().map(|e| e.id.as_str()));
    let datasets = intern(doc.datasets.iter().map(|d| d.id.as_str()));
    let users = intern(doc.users.iter().map(|u| u.id.as_str()));
    let groups = intern(doc.groups.iter().map(|g| g.id.as_str()));
    let roles = intern(doc.roles.iter().map(|r| r.id.as_str()));
    let id = |i: &Interner, s: &str| i.get(s).expect("validated reference");

    // Names: the first entry in document order wins a duplicate name.
    let mut org_names = HashMap::new();
    for (i, o) in doc.organizations.iter().enumerate() {
        org_names.entry(o.name.as_str().into()).or_insert(i as u32);
    }
    let mut project_names = vec![HashMap::new(); doc.organizations.len()];
    let project_info: Vec<ProjectInfo> = doc
        .projects
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let org = id(&orgs, &p.org_id);
            let deleted = p.deleted_at.is_some();
            if !deleted {
                project_names[org as usize].entry(p.name.as_str().into()).or_insert(i as u32);
            }
            ProjectInfo { org, deleted }
        })
        .collect();
    let mut experiment_names = vec![HashMap::new(); doc.projects.len()];
    let experiment_project: Vec<u32> = doc
        .experiments
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p = id(&projects, &e.project_id);
            experiment_names[p as usize].entry(e.name.as_str().into()).or_insert(i as u32);
            p
        })
        .collect();
    let mut dataset_names = vec![HashMap::new(); doc.projects.len()];
    let dataset_project: Vec<u32> = doc
        .datasets
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = id(&projects, &d.project_id);
            dataset_names[p as usize].entry(d.name.as_str().into()).or_insert(i as u32);
            p
        })
        .collect();

    // Groups: direct membership, and the reverse of `member_groups`.
    let mut user_direct_groups = vec![Vec::new(); doc.users.len()];
    let mut group_parents = vec![Vec::new(); doc.groups.len()];
    for (g, group) in doc.groups.iter().enumerate() {
        for u in &group.member_users {
            push_unique(&mut user_direct_groups[id(&users, u) as usize], g as u32);
        }
        for h in &group.member_groups {
            push_unique(&mut group_parents[id(&groups, h) as usize], g as u32);
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

    // Roles: own grants, member roles, and the closure as masks.
    let role_own: Vec<Box<[Grant]>> = doc
        .roles
        .iter()
        .map(|r| {
            r.member_permissions
                .iter()
                .map(|mp| Grant {
                    permission: parse(&mp.permission),
                    restrict: mp.restrict_object_type.as_deref().map(parse),
                })
                .collect()
        })
        .collect();
    let role_members: Vec<Vec<u32>> = doc
        .roles
        .iter()
        .map(|r| {
            let mut m = Vec::new();
            for x in &r.member_roles {
                push_unique(&mut m, id(&roles, x));
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
        let principal = match (&acl.user_id, &acl.group_id) {
            (Some(u), None) => AclPrincipal::User(id(&users, u)),
            (None, Some(g)) => AclPrincipal::Group(id(&groups, g)),
            _ => unreachable!("validated: exactly one principal"),
        };
        let mut masks = match (&acl.permission, &acl.role_id) {
            (Some(p), None) => {
                let mut m = [0; ObjectType::ALL.len()];
                add(&mut m, parse(p), None);
                m
            }
            (None, Some(r)) => role_masks[id(&roles, r) as usize],
            _ => unreachable!("validated: exactly one grant"),
        };
        // An ACL-level restriction keeps only what applies to that type.
        if let Some(t) = acl.restrict_object_type.as_deref().map(parse::<ObjectType>) {
            for (j, m) in masks.iter_mut().enumerate() {
                if j != t as usize {
                    *m = 0;
                }
            }
        }
        let entry = AclEntry { principal, masks, acl: i as u32 };
        let object = acl.object_id.as_str();
        let list = match parse::<ObjectType>(&acl.object_type) {
            ObjectType::Organization => &mut org_acls[id(&orgs, object) as usize],
            ObjectType::Project => &mut project_acls[id(&projects, object) as usize],
            ObjectType::ProjectLog => &mut project_log_acls[id(&projects, object) as usize],
            ObjectType::Experiment => &mut experiment_acls[id(&experiments, object) as usize],
            ObjectType::Dataset => &mut dataset_acls[id(&datasets, object) as usize],
            // ACLs on objects the policy does not describe never apply to a
            // decision it can make.
            _ => continue,
        };
        list.push(entry);
    }

    // Service tokens.
    let mut token_buckets: HashMap<u64, Vec<u32>> = HashMap::new();
    let mut token_digests = Vec::with_capacity(doc.service_tokens.len());
    let mut token_identities = Vec::with_capacity(doc.service_tokens.len());
    for (i, t) in doc.service_tokens.iter().enumerate() {
        let digest = TokenDigest::from_hex(&t.token_sha256).expect("validated digest");
        token_buckets.entry(digest.bucket()).or_default().push(i as u32);
        token_digests.push(digest);
        token_identities.push(Identity {
            token_id: t.id.clone(),
            token_name: t.name.clone(),
            org_id: t.org_id.clone(),
            user_id: t.service_account_id.clone(),
            expires_at_ms: t
                .expires_at
                .as_deref()
                .map(|s| chrono::DateTime::parse_from_rfc3339(s).expect("validated timestamp").timestamp_millis()),
        });
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

fn parse<T: std::str::FromStr>(s: &str) -> T {
    match s.parse() {
        Ok(v) => v,
        Err(_) => panic!("validated vocabulary: '{s}'"),
    }
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
