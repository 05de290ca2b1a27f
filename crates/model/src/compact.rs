//! The loaded policy kept compact: every string of the document stored
//! once, in one arena (`Strings`), and each entry a record of symbols.
//!
//! A million service tokens as `doc` entries are a `String` (and its heap
//! block) per field: about 1 GiB. As records they keep the same fields in a
//! quarter of that, and an id that other entries name (an organization, a
//! user, a group) is stored once however often it is named. Loading builds
//! them entry by entry (`load`), so the document's shape is never held
//! whole; `to_doc` rebuilds it for whoever needs the shape (the CLI, the
//! Postgres import).
//!
//! Symbols are of one arena: two symbols of the same `Strings` are equal
//! exactly when their strings are.

use std::hash::BuildHasher;
use std::num::NonZeroU32;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::doc::{self, PolicyDoc, RolePermission};
use crate::identity::TokenFields;
use crate::scope::Scope;
use crate::timestamp::Timestamp;
use crate::token::TokenDigest;
use crate::types::{ObjectType, Permission};

/// A string of a `Strings` arena (`Option<Sym>` is as small as `Sym`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(NonZeroU32);

impl Sym {
    /// Dense: from 0 to the arena's `len()`.
    pub fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A set of symbols of one arena, as bits: a rule's membership test reads
/// one bit of a set that stays in cache, not a slot of a hash table.
pub struct SymSet(Vec<u64>);

impl SymSet {
    pub fn new(strings: &Strings, members: impl Iterator<Item = Sym>) -> Self {
        let mut bits = vec![0u64; strings.len().div_ceil(64)];
        for k in members {
            bits[k.index() / 64] |= 1 << (k.index() % 64);
        }
        SymSet(bits)
    }

    pub fn contains(&self, k: Sym) -> bool {
        self.0.get(k.index() / 64).is_some_and(|w| w & (1 << (k.index() % 64)) != 0)
    }
}

/// Interned strings: each distinct string once, in one buffer.
///
/// While a policy is loaded the arena also keeps a hash table of its
/// strings, to intern (`freeze` drops it once loading is done: nothing
/// looks a string up by its text afterwards). Each slot keeps its string's
/// hash beside the symbol, so that growing the table rehashes from the
/// slots instead of reading every string again (at a million tokens, most
/// of a load's cache misses).
#[derive(Default, Clone)]
pub struct Strings {
    text: String,
    /// `ends[k]`: where string `k` ends in `text` (it starts where `k - 1` ends).
    ends: Vec<usize>,
    table: HashTable<(Sym, u32)>,
    hasher: DefaultHashBuilder,
}

impl Strings {
    /// The table's hash of `s`: 32 bits, kept in the slot, spread over the
    /// 64 the table reads (its low bits pick the bucket, its high bits tag
    /// the slot).
    fn hash(&self, s: &str) -> u32 {
        (self.hasher.hash_one(s) >> 32) as u32
    }

    /// The symbol of `s`, added if new.
    pub fn intern(&mut self, s: &str) -> Sym {
        let h = self.hash(s);
        if let Some(&(k, _)) = self.table.find(spread(h), |&(k, kh)| kh == h && at(&self.text, &self.ends, k) == s) {
            return k;
        }
        let k =
            Sym(NonZeroU32::new(u32::try_from(self.ends.len() + 1).expect("fewer than 2^32 strings")).expect("> 0"));
        self.text.push_str(s);
        self.ends.push(self.text.len());
        self.table.insert_unique(spread(h), (k, h), |&(_, kh)| spread(kh));
        k
    }

    /// The string of `k`.
    pub fn get(&self, k: Sym) -> &str {
        at(&self.text, &self.ends, k)
    }

    /// How many strings there are (every symbol is below it).
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Done interning: drops the table and what growing left unused. (A
    /// string interned after this would be stored again: only loading
    /// interns, and loading freezes the arena last.)
    pub fn freeze(&mut self) {
        self.table = HashTable::new();
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

fn spread(h: u32) -> u64 {
    (u64::from(h) << 32) | u64::from(h)
}

/// String `k` of an arena's buffer.
fn at<'a>(text: &'a str, ends: &[usize], k: Sym) -> &'a str {
    let i = k.index();
    &text[if i == 0 { 0 } else { ends[i - 1] }..ends[i]]
}

#[derive(Debug, Clone)]
pub struct Organization {
    pub id: Sym,
    pub name: Sym,
    pub creator_grants: bool,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: Sym,
    pub org_id: Sym,
    pub name: Sym,
    pub description: Option<Sym>,
    pub deleted_at: Option<Timestamp>,
}

/// An experiment or a dataset: the same fields, in a project.
#[derive(Debug, Clone)]
pub struct InProject {
    pub id: Sym,
    pub project_id: Sym,
    pub name: Sym,
    pub deleted_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Sym,
    pub name: Sym,
    pub service_account: bool,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: Sym,
    pub org_id: Sym,
    pub name: Sym,
    pub description: Option<Sym>,
    pub member_users: Vec<Sym>,
    pub member_groups: Vec<Sym>,
    pub deleted_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Role {
    pub id: Sym,
    pub org_id: Option<Sym>,
    pub name: Sym,
    pub description: Option<Sym>,
    pub member_permissions: Vec<RolePermission>,
    pub member_roles: Vec<Sym>,
    pub deleted_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct Acl {
    pub id: Sym,
    pub object_type: ObjectType,
    pub object_id: Sym,
    pub user_id: Option<Sym>,
    pub group_id: Option<Sym>,
    pub permission: Option<Permission>,
    pub role_id: Option<Sym>,
    pub restrict_object_type: Option<ObjectType>,
}

/// Who an ACL names (as `doc::AclPrincipal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclPrincipal {
    User(Sym),
    Group(Sym),
}

/// What an ACL grants (as `doc::AclGrant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclGrant {
    Permission { permission: Permission, restrict: Option<ObjectType> },
    Role(Sym),
}

impl Acl {
    /// The principal, when the ACL names exactly one.
    pub fn principal(&self) -> Option<AclPrincipal> {
        match (self.user_id, self.group_id) {
            (Some(u), None) => Some(AclPrincipal::User(u)),
            (None, Some(g)) => Some(AclPrincipal::Group(g)),
            _ => None,
        }
    }

    /// The grant, when the ACL has exactly one and a role carries no
    /// restriction.
    pub fn grant(&self) -> Option<AclGrant> {
        match (self.permission, self.role_id, self.restrict_object_type) {
            (Some(permission), None, restrict) => Some(AclGrant::Permission { permission, restrict }),
            (None, Some(r), None) => Some(AclGrant::Role(r)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServiceToken {
    pub id: Sym,
    pub name: Sym,
    pub org_id: Sym,
    pub service_account_id: Sym,
    pub token_sha256: TokenDigest,
    pub expires_at: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    /// Boxed: most tokens have none.
    pub scope: Option<Box<Scope>>,
    pub parent_id: Option<Sym>,
}

/// A token record with the arena its strings are in.
#[derive(Clone, Copy)]
pub struct TokenView<'a> {
    pub token: &'a ServiceToken,
    pub strings: &'a Strings,
}

impl TokenFields for TokenView<'_> {
    fn id(&self) -> &str {
        self.strings.get(self.token.id)
    }
    fn name(&self) -> &str {
        self.strings.get(self.token.name)
    }
    fn org_id(&self) -> &str {
        self.strings.get(self.token.org_id)
    }
    fn service_account_id(&self) -> &str {
        self.strings.get(self.token.service_account_id)
    }
    fn expires_at(&self) -> Option<Timestamp> {
        self.token.expires_at
    }
    fn not_before(&self) -> Option<Timestamp> {
        self.token.not_before
    }
    fn scope(&self) -> Option<&Scope> {
        self.token.scope.as_deref()
    }
    fn parent_id(&self) -> Option<&str> {
        self.token.parent_id.map(|p| self.strings.get(p))
    }
}

/// The whole policy as records: `PolicyDoc`'s collections, in its order.
#[derive(Default, Clone)]
pub struct CompactDoc {
    pub(crate) strings: Strings,
    pub organizations: Vec<Organization>,
    pub projects: Vec<Project>,
    pub experiments: Vec<InProject>,
    pub datasets: Vec<InProject>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    pub roles: Vec<Role>,
    pub acls: Vec<Acl>,
    pub service_tokens: Vec<ServiceToken>,
}

impl CompactDoc {
    /// The string of `k`.
    pub fn str(&self, k: Sym) -> &str {
        self.strings.get(k)
    }

    /// Service token `i` with its strings.
    pub fn token(&self, i: usize) -> TokenView<'_> {
        TokenView { token: &self.service_tokens[i], strings: &self.strings }
    }

    /// The document these records stand for.
    pub fn to_doc(&self) -> PolicyDoc {
        PolicyDoc {
            organizations: self.organizations.iter().map(|o| self.organization(o)).collect(),
            projects: self.projects.iter().map(|p| self.project(p)).collect(),
            experiments: self.experiments.iter().map(|e| self.experiment(e)).collect(),
            datasets: self.datasets.iter().map(|d| self.dataset(d)).collect(),
            users: self.users.iter().map(|u| self.user(u)).collect(),
            groups: self.groups.iter().map(|g| self.group(g)).collect(),
            roles: self.roles.iter().map(|r| self.role(r)).collect(),
            acls: self.acls.iter().map(|a| self.acl(a)).collect(),
            service_tokens: self.service_tokens.iter().map(|t| self.service_token(t)).collect(),
        }
    }

    fn owned(&self, k: Sym) -> String {
        self.str(k).to_owned()
    }

    fn owned_opt(&self, k: Option<Sym>) -> Option<String> {
        k.map(|k| self.owned(k))
    }

    fn owned_all(&self, ks: &[Sym]) -> Vec<String> {
        ks.iter().map(|&k| self.owned(k)).collect()
    }

    pub fn organization(&self, o: &Organization) -> doc::Organization {
        doc::Organization { id: self.owned(o.id), name: self.owned(o.name), creator_grants: o.creator_grants }
    }

    pub fn project(&self, p: &Project) -> doc::Project {
        doc::Project {
            id: self.owned(p.id),
            org_id: self.owned(p.org_id),
            name: self.owned(p.name),
            description: self.owned_opt(p.description),
            deleted_at: p.deleted_at,
        }
    }

    pub fn experiment(&self, e: &InProject) -> doc::Experiment {
        doc::Experiment {
            id: self.owned(e.id),
            project_id: self.owned(e.project_id),
            name: self.owned(e.name),
            deleted_at: e.deleted_at,
        }
    }

    pub fn dataset(&self, d: &InProject) -> doc::Dataset {
        doc::Dataset {
            id: self.owned(d.id),
            project_id: self.owned(d.project_id),
            name: self.owned(d.name),
            deleted_at: d.deleted_at,
        }
    }

    pub fn user(&self, u: &User) -> doc::User {
        doc::User { id: self.owned(u.id), name: self.owned(u.name), service_account: u.service_account }
    }

    pub fn group(&self, g: &Group) -> doc::Group {
        doc::Group {
            id: self.owned(g.id),
            org_id: self.owned(g.org_id),
            name: self.owned(g.name),
            description: self.owned_opt(g.description),
            member_users: self.owned_all(&g.member_users),
            member_groups: self.owned_all(&g.member_groups),
            deleted_at: g.deleted_at,
        }
    }

    pub fn role(&self, r: &Role) -> doc::Role {
        doc::Role {
            id: self.owned(r.id),
            org_id: self.owned_opt(r.org_id),
            name: self.owned(r.name),
            description: self.owned_opt(r.description),
            member_permissions: r.member_permissions.clone(),
            member_roles: self.owned_all(&r.member_roles),
            deleted_at: r.deleted_at,
        }
    }

    pub fn acl(&self, a: &Acl) -> doc::Acl {
        doc::Acl {
            id: self.owned(a.id),
            object_type: a.object_type,
            object_id: self.owned(a.object_id),
            user_id: self.owned_opt(a.user_id),
            group_id: self.owned_opt(a.group_id),
            permission: a.permission,
            role_id: self.owned_opt(a.role_id),
            restrict_object_type: a.restrict_object_type,
        }
    }

    pub fn service_token(&self, t: &ServiceToken) -> doc::ServiceToken {
        doc::ServiceToken {
            id: self.owned(t.id),
            name: self.owned(t.name),
            org_id: self.owned(t.org_id),
            service_account_id: self.owned(t.service_account_id),
            token_sha256: t.token_sha256,
            expires_at: t.expires_at,
            not_before: t.not_before,
            scope: t.scope.as_deref().cloned(),
            parent_id: self.owned_opt(t.parent_id),
        }
    }
}

/// A document entry that has a record: what loading keeps of it.
pub trait Compact {
    type Record;
    fn compact(self, strings: &mut Strings) -> Self::Record;
}

fn opt(strings: &mut Strings, s: Option<String>) -> Option<Sym> {
    s.map(|s| strings.intern(&s))
}

fn all(strings: &mut Strings, v: Vec<String>) -> Vec<Sym> {
    v.iter().map(|s| strings.intern(s)).collect()
}

impl Compact for doc::Organization {
    type Record = Organization;
    fn compact(self, s: &mut Strings) -> Organization {
        Organization { id: s.intern(&self.id), name: s.intern(&self.name), creator_grants: self.creator_grants }
    }
}

impl Compact for doc::Project {
    type Record = Project;
    fn compact(self, s: &mut Strings) -> Project {
        Project {
            id: s.intern(&self.id),
            org_id: s.intern(&self.org_id),
            name: s.intern(&self.name),
            description: opt(s, self.description),
            deleted_at: self.deleted_at,
        }
    }
}

/// Experiments and datasets are the same record in a project: one body
/// serves both document types.
macro_rules! compact_in_project {
    ($($doc:ty),+) => {$(
        impl Compact for $doc {
            type Record = InProject;
            fn compact(self, s: &mut Strings) -> InProject {
                InProject {
                    id: s.intern(&self.id),
                    project_id: s.intern(&self.project_id),
                    name: s.intern(&self.name),
                    deleted_at: self.deleted_at,
                }
            }
        }
    )+};
}
compact_in_project!(doc::Experiment, doc::Dataset);

impl Compact for doc::User {
    type Record = User;
    fn compact(self, s: &mut Strings) -> User {
        User { id: s.intern(&self.id), name: s.intern(&self.name), service_account: self.service_account }
    }
}

impl Compact for doc::Group {
    type Record = Group;
    fn compact(self, s: &mut Strings) -> Group {
        Group {
            id: s.intern(&self.id),
            org_id: s.intern(&self.org_id),
            name: s.intern(&self.name),
            description: opt(s, self.description),
            member_users: all(s, self.member_users),
            member_groups: all(s, self.member_groups),
            deleted_at: self.deleted_at,
        }
    }
}

impl Compact for doc::Role {
    type Record = Role;
    fn compact(self, s: &mut Strings) -> Role {
        Role {
            id: s.intern(&self.id),
            org_id: opt(s, self.org_id),
            name: s.intern(&self.name),
            description: opt(s, self.description),
            member_permissions: self.member_permissions,
            member_roles: all(s, self.member_roles),
            deleted_at: self.deleted_at,
        }
    }
}

impl Compact for doc::Acl {
    type Record = Acl;
    fn compact(self, s: &mut Strings) -> Acl {
        Acl {
            id: s.intern(&self.id),
            object_type: self.object_type,
            object_id: s.intern(&self.object_id),
            user_id: opt(s, self.user_id),
            group_id: opt(s, self.group_id),
            permission: self.permission,
            role_id: opt(s, self.role_id),
            restrict_object_type: self.restrict_object_type,
        }
    }
}

impl Compact for doc::ServiceToken {
    type Record = ServiceToken;
    fn compact(self, s: &mut Strings) -> ServiceToken {
        ServiceToken {
            id: s.intern(&self.id),
            name: s.intern(&self.name),
            org_id: s.intern(&self.org_id),
            service_account_id: s.intern(&self.service_account_id),
            token_sha256: self.token_sha256,
            expires_at: self.expires_at,
            not_before: self.not_before,
            scope: self.scope.map(Box::new),
            parent_id: opt(s, self.parent_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_is_stored_once_and_read_back() {
        let mut s = Strings::default();
        let a = s.intern("alpha");
        let e = s.intern("");
        let b = s.intern("beta");
        assert_eq!(s.intern("alpha"), a);
        assert_ne!(a, b);
        assert_eq!((s.get(a), s.get(e), s.get(b)), ("alpha", "", "beta"));
        // Enough to make the table grow a few times.
        let many: Vec<Sym> = (0..1000).map(|i| s.intern(&format!("id-{i}"))).collect();
        assert_eq!(s.intern("id-999"), many[999]);
        assert_eq!(s.intern("beta"), b);
        s.freeze();
        assert_eq!((s.get(a), s.get(many[7])), ("alpha", "id-7"));
        assert_eq!(std::mem::size_of::<Option<Sym>>(), 4);
    }
}
