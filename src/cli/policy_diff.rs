//! `loggate policy diff`: every (token, object, permission) whose decision
//! differs between two policies, with both explanations (contract: Command
//! line).
//!
//! The questions are every token of either policy, every project log (one
//! per project), experiment and dataset of either policy, and `create`,
//! `read`, `update`, `delete`. A token is decided as `serve` decides it:
//! outside its validity window, or absent, it is denied everything.
//!
//! Built for 10k tokens × 1k objects: a token never reaches another
//! organization, so only the objects of its organization (in either
//! policy) are asked about; tokens whose service accounts a policy cannot
//! tell apart (no ACL names them and the same groups list them, see
//! `Likeness`) are decided once; decisions are made without explanations,
//! which are written only for the questions that differ; and the work is
//! shared out over the cores.

use super::authz::{Verdict, configured_policy, now_ms, outside_validity, recognised, token_label};
use super::load_config;
use loggate_authz::{CompiledPolicy, Principal};
use loggate_model::doc::{PolicyDoc, ServiceToken};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, PolicyError};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The permissions compared, in output order.
const PERMISSIONS: [Permission; 4] = [Permission::Create, Permission::Read, Permission::Update, Permission::Delete];

/// One question whose answer differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub(crate) token_id: String,
    pub(crate) token_name: String,
    pub(crate) object: ObjectRef,
    pub(crate) permission: Permission,
    pub(crate) old: Verdict,
    pub(crate) new: Verdict,
}

impl Difference {
    /// `token NAME (ID) PERM TYPE:ID: allow -> deny | old: … | new: …`
    pub fn line(&self) -> String {
        let word = |v: &Verdict| if v.allowed { "allow" } else { "deny" };
        format!(
            "token {} {} {}: {} -> {} | old: {} | new: {}",
            token_label(&self.token_name, &self.token_id),
            self.permission,
            self.object,
            word(&self.old),
            word(&self.new),
            self.old.because(),
            self.new.because()
        )
    }
}

/// `loggate policy diff [--config C] [OLD.json] NEW.json`.
pub(super) fn policy_diff(config: Option<&Path>, files: &[PathBuf]) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("loggate: policy diff: {msg}");
        ExitCode::from(2)
    };
    let loaded = match (config, files) {
        (Some(path), [new]) => {
            let config = match load_config(path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let name = format!("the configured store ({})", path.display());
            let store = || configured_policy(&config).map(|(policy, left_out)| Named { name, policy, left_out });
            both(store, || load_file(new))
        }
        (None, [old, new]) => both(|| load_file(old), || load_file(new)),
        (Some(_), _) => return fail("with --config, give one policy file (NEW.json)".into()),
        (None, _) => return fail("give two policy files (OLD.json NEW.json), or --config C NEW.json".into()),
    };
    let (old, new) = match loaded {
        (Ok(old), Ok(new)) => (old, new),
        (Err(e), _) | (_, Err(e)) => return fail(e),
    };
    for side in [&old, &new] {
        for e in &side.left_out {
            eprintln!("loggate: {}: policy entry left out: {e}", side.name);
        }
    }
    let differences = diff(&old.policy, &new.policy, now_ms());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = differences.iter().try_for_each(|d| writeln!(out, "{}", d.line())).and_then(|()| out.flush());
    if let Err(e) = written {
        return fail(format!("cannot write stdout: {e}"));
    }
    if differences.is_empty() {
        return ExitCode::SUCCESS;
    }
    let tokens = differences.iter().map(|d| &d.token_id).collect::<BTreeSet<_>>().len();
    let plural = |n: usize, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    eprintln!(
        "loggate: policy diff: {} {} differ{}, for {tokens} {}",
        differences.len(),
        plural(differences.len(), "decision", "decisions"),
        plural(differences.len(), "s", ""),
        plural(tokens, "token", "tokens")
    );
    ExitCode::from(1)
}

/// A policy loaded as `serve` loads it, and where from.
struct Named {
    name: String,
    policy: CompiledPolicy,
    left_out: Vec<PolicyError>,
}

fn load_file(path: &Path) -> Result<Named, String> {
    let loaded = crate::policy::file::load(path).map_err(|e| e.to_string())?;
    Ok(Named { name: path.display().to_string(), policy: loaded.policy, left_out: loaded.left_out })
}

/// Runs `a` and `b` at the same time.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|s| {
        let b = s.spawn(b);
        let a = a();
        (a, b.join().expect("loading thread panicked"))
    })
}

/// Two policy files, loaded as `serve` loads them (at the same time), then
/// diffed at the current time: what `policy diff OLD NEW` prints, one
/// `Difference::line` each.
pub fn diff_files(old: &Path, new: &Path) -> Result<Vec<Difference>, String> {
    let (old, new) = both(|| load_file(old), || load_file(new));
    Ok(diff(&old?.policy, &new?.policy, now_ms()))
}

/// How a token stands in one policy.
enum Standing {
    Absent,
    /// Outside its validity window: `(identity, window)`.
    Outside(Identity, String),
    Acting(Identity),
}

impl Standing {
    fn of(policy: &CompiledPolicy, token: Option<&ServiceToken>, now_ms: i64) -> Standing {
        let Some(identity) = token.and_then(|t| recognised(policy, t)) else {
            return Standing::Absent;
        };
        match outside_validity(&identity, now_ms) {
            Some(window) => Standing::Outside(identity, window),
            None => Standing::Acting(identity),
        }
    }

    /// The verdict on a question for token `token_id`, with its evidence.
    fn verdict(&self, token_id: &str, policy: &CompiledPolicy, object: &ObjectRef, permission: Permission) -> Verdict {
        match self {
            Standing::Absent => Verdict::no_token(token_id),
            Standing::Outside(identity, window) => Verdict::outside_validity(identity, window),
            Standing::Acting(identity) => policy.explain(&Principal::from(identity), object, permission).into(),
        }
    }
}

/// What a decision can tell of a user: the evaluator sees a user only
/// through the ACLs naming it and the groups listing it in `member_users`
/// (the rest of a principal is its organization). Users no ACL names and
/// the same groups list answer every question alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Likeness<'a> {
    Named(&'a str),
    Listed(Vec<u32>),
}

/// The principals of one policy's tokens, up to likeness: a class per
/// (organization, likeness), with a principal standing for it.
struct Classes<'a> {
    named: HashSet<&'a str>,
    listed_in: HashMap<&'a str, Vec<u32>>,
    index: HashMap<(&'a str, Likeness<'a>), u32>,
    representatives: Vec<Principal>,
}

impl<'a> Classes<'a> {
    fn new(doc: &'a PolicyDoc) -> Self {
        let named = doc.acls.iter().filter_map(|a| a.user_id.as_deref()).collect();
        let mut listed_in: HashMap<&str, Vec<u32>> = HashMap::new();
        for (g, group) in doc.groups.iter().enumerate() {
            for u in &group.member_users {
                listed_in.entry(u).or_default().push(g as u32);
            }
        }
        Classes { named, listed_in, index: HashMap::new(), representatives: Vec::new() }
    }

    /// The class of the principal `token` acts as.
    fn of(&mut self, token: &'a ServiceToken) -> u32 {
        let user = token.service_account_id.as_str();
        let likeness = if self.named.contains(user) {
            Likeness::Named(user)
        } else {
            let mut groups = self.listed_in.get(user).cloned().unwrap_or_default();
            groups.sort_unstable();
            groups.dedup();
            Likeness::Listed(groups)
        };
        let next = self.representatives.len() as u32;
        *self.index.entry((token.org_id.as_str(), likeness)).or_insert_with(|| {
            self.representatives.push(Principal::new(user.to_owned(), token.org_id.clone()));
            next
        })
    }

    fn org(&self, class: Option<u32>) -> Option<&str> {
        class.map(|c| self.representatives[c as usize].org_id.as_str())
    }
}

/// The classes a token acts as in the old and in the new policy (`None`:
/// denied everything there). Tokens of one pair answer every question alike.
type Pair = (Option<u32>, Option<u32>);

/// A question whose answer differs for a pair: object, permission, old, new.
type Hit = (u32, Permission, bool, bool);

/// Every question whose answer differs between `old` and `new` at `now_ms`,
/// ordered by token id, object, permission.
pub(crate) fn diff(old: &CompiledPolicy, new: &CompiledPolicy, now_ms: i64) -> Vec<Difference> {
    let (old_doc, new_doc) = (old.to_doc(), new.to_doc());
    let objects = objects(&old_doc, &new_doc);
    let by_org_old = by_org(old, &objects);
    let by_org_new = by_org(new, &objects);

    // Tokens by id, and the distinct pairs of classes they act as.
    let mut tokens: BTreeMap<&str, (Option<&ServiceToken>, Option<&ServiceToken>)> = BTreeMap::new();
    for t in &old_doc.service_tokens {
        tokens.entry(&t.id).or_default().0 = Some(t);
    }
    for t in &new_doc.service_tokens {
        tokens.entry(&t.id).or_default().1 = Some(t);
    }
    let (mut classes_old, mut classes_new) = (Classes::new(&old_doc), Classes::new(&new_doc));
    let mut pairs: Vec<Pair> = Vec::new();
    let mut pair_index: HashMap<Pair, usize> = HashMap::new();
    let mut standings = Vec::with_capacity(tokens.len());
    for (&id, &(o, n)) in &tokens {
        let (o_standing, n_standing) = (Standing::of(old, o, now_ms), Standing::of(new, n, now_ms));
        let acting = |standing: &Standing| matches!(standing, Standing::Acting(_));
        let pair = (
            o.filter(|_| acting(&o_standing)).map(|t| classes_old.of(t)),
            n.filter(|_| acting(&n_standing)).map(|t| classes_new.of(t)),
        );
        // Denied everything in both: nothing can differ.
        let p = (pair != (None, None)).then(|| {
            *pair_index.entry(pair).or_insert_with(|| {
                pairs.push(pair);
                pairs.len() - 1
            })
        });
        let name = n.or(o).map_or("", |t| t.name.as_str());
        standings.push((id, name, o_standing, n_standing, p));
    }

    // The objects a pair can be allowed on: those of its organization in
    // either policy (most pairs share one pair of organizations).
    let orgs = |(co, cn): &Pair| (classes_old.org(*co), classes_new.org(*cn));
    let mut candidates: HashMap<(Option<&str>, Option<&str>), Vec<u32>> = HashMap::new();
    for pair in &pairs {
        let key = orgs(pair);
        candidates.entry(key).or_insert_with(|| {
            let of = |by: &HashMap<&str, Vec<u32>>, org: Option<&str>| org.and_then(|o| by.get(o)).cloned();
            let mut all: Vec<u32> =
                [of(&by_org_old, key.0), of(&by_org_new, key.1)].into_iter().flatten().flatten().collect();
            all.sort_unstable();
            all.dedup();
            all
        });
    }

    // Decide every pair, without explanations, over the cores.
    let ask = |pair: &Pair| -> Vec<Hit> {
        let po = pair.0.map(|c| &classes_old.representatives[c as usize]);
        let pn = pair.1.map(|c| &classes_new.representatives[c as usize]);
        let mut hits = Vec::new();
        for &object in &candidates[&orgs(pair)] {
            let o = &objects[object as usize];
            for permission in PERMISSIONS {
                let was = po.is_some_and(|p| old.decide(p, o, permission).is_allow());
                let is = pn.is_some_and(|p| new.decide(p, o, permission).is_allow());
                if was != is {
                    hits.push((object, permission, was, is));
                }
            }
        }
        hits
    };
    let hits = over_cores(&pairs, ask);

    // Explain what differs, token by token, over the cores.
    let explain = |(id, name, o_standing, n_standing, p): &(&str, &str, Standing, Standing, Option<usize>)| {
        let Some(p) = p else { return Vec::new() };
        hits[*p]
            .iter()
            .map(|&(object, permission, was, is)| {
                let o = &objects[object as usize];
                let (old, new) =
                    (o_standing.verdict(id, old, o, permission), n_standing.verdict(id, new, o, permission));
                debug_assert_eq!((old.allowed, new.allowed), (was, is), "{id} {permission} {o}");
                Difference {
                    token_id: (*id).to_owned(),
                    token_name: (*name).to_owned(),
                    object: o.clone(),
                    permission,
                    old,
                    new,
                }
            })
            .collect::<Vec<_>>()
    };
    over_cores(&standings, explain).into_iter().flatten().collect()
}

/// Every project log, experiment and dataset of either policy, sorted.
fn objects(old: &PolicyDoc, new: &PolicyDoc) -> Vec<ObjectRef> {
    let mut all = BTreeSet::new();
    for doc in [old, new] {
        all.extend(doc.projects.iter().map(|p| ObjectRef::new(ObjectType::ProjectLog, p.id.as_str())));
        all.extend(doc.experiments.iter().map(|e| ObjectRef::new(ObjectType::Experiment, e.id.as_str())));
        all.extend(doc.datasets.iter().map(|d| ObjectRef::new(ObjectType::Dataset, d.id.as_str())));
    }
    all.into_iter().collect()
}

/// Organization id -> the (indexes of the) objects `policy` places in it,
/// ascending. An object it does not place (unknown, deleted) is in none.
fn by_org<'a>(policy: &'a CompiledPolicy, objects: &[ObjectRef]) -> HashMap<&'a str, Vec<u32>> {
    let mut by: HashMap<&str, Vec<u32>> = HashMap::new();
    for (i, o) in objects.iter().enumerate() {
        if let Some(org) = policy.object_org(o) {
            by.entry(org).or_default().push(i as u32);
        }
    }
    by
}

/// `f` over every item, in order, the items shared out in contiguous runs
/// over the available cores.
fn over_cores<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const MIN_RUN: usize = 16;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len().div_ceil(MIN_RUN)).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let run = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> =
            items.chunks(run).map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("diff thread panicked")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_model::doc::{Acl, Dataset, Experiment, Group, Organization, PolicyDoc, Project, User};
    use loggate_model::{Timestamp, TokenDigest};

    const NOW: i64 = 1_800_000_000_000;

    fn token(id: &str, name: &str, org: &str, user: &str) -> ServiceToken {
        ServiceToken::new(id, name, org, user, TokenDigest::of(&format!("bt-st-{id}-abcdefghijklmnopqrstuvwxyz012345")))
    }

    /// Org `o` (project `p` with experiment `e` and dataset `d`) and org `x`
    /// (project `q`); tokens `t1` (user `u1`, via ACL `a1` update and read on
    /// p's log) and `t2` (user `u2`, in group `g` holding read on project p);
    /// `t3` in org x, holding update on q's log.
    fn base() -> PolicyDoc {
        let mut writers = Group::new("g", "o", "readers");
        writers.member_users = vec!["u2".into()];
        PolicyDoc {
            organizations: vec![Organization::new("o", "acme"), Organization::new("x", "globex")],
            projects: vec![Project::new("p", "o", "checkout"), Project::new("q", "x", "other")],
            experiments: vec![Experiment::new("e", "p", "exp")],
            datasets: vec![Dataset::new("d", "p", "ds")],
            users: vec![User::new("u1", "ci", true), User::new("u2", "bot", true), User::new("u3", "gx", true)],
            groups: vec![writers],
            acls: vec![
                Acl::user_permission("a1", ObjectType::ProjectLog, "p", "u1", Permission::Update),
                Acl::user_permission("a2", ObjectType::ProjectLog, "p", "u1", Permission::Read),
                Acl {
                    group_id: Some("g".into()),
                    user_id: None,
                    ..Acl::user_permission("a3", ObjectType::Project, "p", "u2", Permission::Read)
                },
                Acl::user_permission("a4", ObjectType::ProjectLog, "q", "u3", Permission::Update),
            ],
            service_tokens: vec![
                token("t1", "ci-writer", "o", "u1"),
                token("t2", "bot", "o", "u2"),
                token("t3", "globex", "x", "u3"),
            ],
            ..PolicyDoc::default()
        }
    }

    fn compile(doc: PolicyDoc) -> CompiledPolicy {
        let (policy, left_out) = CompiledPolicy::from_doc(doc);
        assert!(left_out.is_empty(), "{left_out:?}");
        policy
    }

    fn lines(old: PolicyDoc, new: PolicyDoc) -> Vec<String> {
        diff(&compile(old), &compile(new), NOW).iter().map(Difference::line).collect()
    }

    fn heads(old: PolicyDoc, new: PolicyDoc) -> Vec<String> {
        lines(old, new).iter().map(|l| l.split(" | ").next().unwrap().to_owned()).collect()
    }

    #[test]
    fn identical_policies_differ_nowhere() {
        assert_eq!(lines(base(), base()), Vec::<String>::new());
    }

    #[test]
    fn a_removed_acl_loses_exactly_its_grants_with_both_explanations() {
        let mut new = base();
        new.acls.retain(|a| a.id != "a1");
        let l = lines(base(), new);
        assert_eq!(l.len(), 1, "{l:#?}");
        assert!(l[0].starts_with("token ci-writer (t1) update project_log:p: allow -> deny | old: allow: acl a1 on project_log:p grants update on project_log:p; "), "{}", l[0]);
        assert!(l[0].contains("| new: deny: user u1 does not hold update on project_log:p; holds on project_log:p: read; missing: update"), "{}", l[0]);
    }

    #[test]
    fn a_deleted_group_takes_every_grant_through_it() {
        let mut new = base();
        new.groups[0].deleted_at = Some(Timestamp::from_unix_ms(NOW - 1));
        assert_eq!(
            heads(base(), new),
            [
                "token bot (t2) read project_log:p: allow -> deny",
                "token bot (t2) read experiment:e: allow -> deny",
                "token bot (t2) read dataset:d: allow -> deny",
            ]
        );
    }

    #[test]
    fn an_expired_or_removed_token_differs_on_everything_it_could_do() {
        let mut new = base();
        new.service_tokens[0].expires_at = Some(Timestamp::from_unix_ms(NOW - 1));
        new.service_tokens.retain(|t| t.id != "t2");
        let l = lines(base(), new);
        let h: Vec<&str> = l.iter().map(|l| l.split(" | ").next().unwrap()).collect();
        assert_eq!(
            h,
            [
                "token ci-writer (t1) read project_log:p: allow -> deny",
                "token ci-writer (t1) update project_log:p: allow -> deny",
                "token bot (t2) read project_log:p: allow -> deny",
                "token bot (t2) read experiment:e: allow -> deny",
                "token bot (t2) read dataset:d: allow -> deny",
            ]
        );
        assert!(
            l[0].contains("new: deny: validity: token ci-writer (t1) is outside its validity window (expires "),
            "{}",
            l[0]
        );
        assert!(l[2].ends_with("new: deny: no service token t2 in the policy"), "{}", l[2]);
        // And back: a token that becomes valid gains it all.
        let mut old = base();
        old.service_tokens[0].not_before = Some(Timestamp::from_unix_ms(NOW + 60_000));
        assert_eq!(
            heads(old, base()),
            [
                "token ci-writer (t1) read project_log:p: deny -> allow",
                "token ci-writer (t1) update project_log:p: deny -> allow"
            ]
        );
    }

    #[test]
    fn objects_of_another_organization_are_compared_when_they_move() {
        // q moves from x to o: t3 loses it; nobody in o gains anything (no ACL).
        let mut new = base();
        new.projects[1].org_id = "o".into();
        assert_eq!(heads(base(), new), ["token globex (t3) update project_log:q: allow -> deny"]);
        // A new object only in the new policy: its own grant, and what the
        // project's grants reach, are gains.
        let mut new = base();
        new.experiments.push(Experiment::new("e2", "p", "exp2"));
        new.acls.push(Acl::user_permission("a5", ObjectType::Experiment, "e2", "u1", Permission::Delete));
        assert_eq!(
            heads(base(), new),
            [
                "token ci-writer (t1) delete experiment:e2: deny -> allow",
                "token bot (t2) read experiment:e2: deny -> allow"
            ]
        );
    }

    #[test]
    fn order_is_token_object_permission_and_stable_over_cores() {
        // Many tokens sharing principals and many with their own: more
        // pairs than one thread's run.
        let mut old = base();
        let mut new = base();
        for i in 0..200 {
            let (user, id) = (format!("v{i:03}"), format!("s{i:03}"));
            for doc in [&mut old, &mut new] {
                doc.users.push(User::new(user.as_str(), "", true));
                doc.service_tokens.push(token(&id, "", "o", &user));
                doc.service_tokens.push(token(&format!("{id}-twin"), "", "o", &user));
            }
            old.acls.push(Acl::user_permission(
                format!("b{i}"),
                ObjectType::Dataset,
                "d",
                user.as_str(),
                Permission::Create,
            ));
        }
        let differences = diff(&compile(old.clone()), &compile(new.clone()), NOW);
        assert_eq!(differences.len(), 400);
        let keys: Vec<(&str, &ObjectRef, Permission)> =
            differences.iter().map(|d| (d.token_id.as_str(), &d.object, d.permission)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(differences[0].line().split(" | ").next().unwrap(), "token s000 create dataset:d: allow -> deny");
        assert_eq!(diff(&compile(old), &compile(new), NOW), differences, "deterministic");
    }

    /// Every question asked the plain way: each token by itself, every
    /// object, every permission, with its own explanation.
    fn naive(old: &CompiledPolicy, new: &CompiledPolicy, now_ms: i64) -> Vec<Difference> {
        let (old_doc, new_doc) = (old.to_doc(), new.to_doc());
        let ids: BTreeSet<&str> =
            old_doc.service_tokens.iter().chain(&new_doc.service_tokens).map(|t| t.id.as_str()).collect();
        let find = |doc: &PolicyDoc, id: &str| doc.service_tokens.iter().find(|t| t.id == id).cloned();
        let mut out = Vec::new();
        for id in ids {
            let (o, n) = (find(&old_doc, id), find(&new_doc, id));
            let (so, sn) = (Standing::of(old, o.as_ref(), now_ms), Standing::of(new, n.as_ref(), now_ms));
            for object in objects(&old_doc, &new_doc) {
                for permission in PERMISSIONS {
                    let (a, b) = (so.verdict(id, old, &object, permission), sn.verdict(id, new, &object, permission));
                    if a.allowed != b.allowed {
                        let name = n.as_ref().or(o.as_ref()).map_or(String::new(), |t| t.name.clone());
                        out.push(Difference {
                            token_id: id.into(),
                            token_name: name,
                            object: object.clone(),
                            permission,
                            old: a,
                            new: b,
                        });
                    }
                }
            }
        }
        out
    }

    /// A random edit of a generated policy: ACLs, group members, groups,
    /// roles, tokens and objects removed, deleted, moved or changed.
    fn edit(doc: &mut serde_json::Value, tape: &mut loggate_policy_reference::generator::Tape) {
        use serde_json::json;
        for _ in 0..1 + tape.below(4) {
            let collection = *tape.pick(&["acls", "groups", "roles", "service_tokens", "projects", "experiments"]);
            let Some(list) = doc.get_mut(collection).and_then(|l| l.as_array_mut()).filter(|l| !l.is_empty()) else {
                continue;
            };
            let i = tape.below(list.len());
            match (collection, tape.below(3)) {
                (_, 0) => {
                    list.remove(i);
                }
                ("acls", _) => list[i]["permission"] = json!(*tape.pick(&["read", "update", "delete", "create"])),
                ("groups", 1) => list[i]["member_users"] = json!([]),
                ("groups" | "roles" | "projects" | "experiments", _) => {
                    list[i]["deleted_at"] = json!("2020-01-01T00:00:00Z")
                }
                ("service_tokens", _) => list[i]["expires_at"] = json!("2020-01-01T00:00:00Z"),
                _ => {}
            }
        }
    }

    #[test]
    fn diff_equals_asking_every_question_of_every_token() {
        use loggate_policy_reference::generator::{NOW_MS, Tape, policy};
        let opts = loggate_policy_reference::GenOptions { not_before: true, ..Default::default() };
        let load = |v: &serde_json::Value| {
            let loaded = loggate_model::load::from_json(&v.to_string()).expect("a policy");
            CompiledPolicy::compile(loaded.policy)
        };
        let mut compared = 0;
        for seed in 0..300 {
            let mut tape = Tape::from_seed(seed, 4096);
            let old = policy(&mut tape, &opts);
            let mut new = old.clone();
            edit(&mut new, &mut tape);
            let (old, new) = (load(&old), load(&new));
            let wanted = naive(&old, &new, NOW_MS);
            assert_eq!(diff(&old, &new, NOW_MS), wanted, "seed {seed}");
            assert_eq!(diff(&new, &old, NOW_MS).len(), wanted.len(), "seed {seed}, reversed");
            compared += wanted.len();
        }
        assert!(compared > 100, "the edits changed too little to test anything: {compared}");
    }

    #[test]
    fn over_cores_keeps_the_order() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(over_cores(&items, |x| x * 2), items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(over_cores(&[] as &[u32], |x| *x), Vec::<u32>::new());
    }
}
