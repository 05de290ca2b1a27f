//! Loading a policy: entry by entry, failing closed one entry at a time.
//!
//! An entry that breaks a rule is left out and named (`acls[3]: …`); what
//! needs it goes too (an ACL whose group was left out, an experiment whose
//! project is missing), while a list that mentions it just loses the
//! mention (a group keeps its other members). Permissions are additive, so
//! leaving entries out can only take grants away: an edit that removes a
//! user but forgets its token still revokes the token. Only a text that is
//! not a policy at all (not JSON, not the document's shape at the top
//! level) fails as a whole.
//!
//! The result, `ValidPolicy`, can only be made here: the evaluator takes
//! nothing else, so it never meets an entry that breaks a rule.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::doc::{AclGrant, AclPrincipal, Entry, PolicyDoc};
use crate::token::TokenDigest;
use crate::types::ObjectType;

/// One left-out entry (or removed reference): where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Path of the entry or field, e.g. `acls[3]` or `groups[0].member_users[1]`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every violation found in a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A text that is not a policy at all: nothing of it can be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a policy document: {0}")]
pub struct NotAPolicy(pub String);

/// A policy document in which every entry keeps every rule. Only `load`
/// makes one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValidPolicy(PolicyDoc);

impl ValidPolicy {
    pub fn doc(&self) -> &PolicyDoc {
        &self.0
    }

    pub fn into_doc(self) -> PolicyDoc {
        self.0
    }
}

/// What loading kept, and what it left out.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    pub policy: ValidPolicy,
    pub left_out: Vec<PolicyError>,
}

impl Loaded {
    /// The policy, or every violation when there is any: for an operator's
    /// explicit act (`policy import`, the admin API), which is refused whole.
    pub fn strict(self) -> Result<ValidPolicy, PolicyErrors> {
        if self.left_out.is_empty() { Ok(self.policy) } else { Err(PolicyErrors(self.left_out)) }
    }
}

/// The top level of the policy file. Each collection is read entry by
/// entry as the parser meets it (see `Collected`), so neither the file's
/// text nor a tree of the whole document is ever held.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct RawDoc {
    organizations: Collected<crate::doc::Organization>,
    projects: Collected<crate::doc::Project>,
    experiments: Collected<crate::doc::Experiment>,
    datasets: Collected<crate::doc::Dataset>,
    users: Collected<crate::doc::User>,
    groups: Collected<crate::doc::Group>,
    roles: Collected<crate::doc::Role>,
    acls: Collected<crate::doc::Acl>,
    service_tokens: Collected<crate::doc::ServiceToken>,
}

impl RawDoc {
    fn into_loaded(self) -> Loaded {
        let mut errors = Vec::new();
        let mut take = |c: &mut Vec<PolicyError>| errors.append(c);
        let RawDoc {
            mut organizations,
            mut projects,
            mut experiments,
            mut datasets,
            mut users,
            mut groups,
            mut roles,
            mut acls,
            mut service_tokens,
        } = self;
        take(&mut organizations.errors);
        take(&mut projects.errors);
        take(&mut experiments.errors);
        take(&mut datasets.errors);
        take(&mut users.errors);
        take(&mut groups.errors);
        take(&mut roles.errors);
        take(&mut acls.errors);
        take(&mut service_tokens.errors);
        let indexed = Indexed {
            organizations: organizations.entries,
            projects: projects.entries,
            experiments: experiments.entries,
            datasets: datasets.entries,
            users: users.entries,
            groups: groups.entries,
            roles: roles.entries,
            acls: acls.entries,
            service_tokens: service_tokens.entries,
        };
        prune(indexed, errors)
    }
}

/// The entries of one collection that parse, each with its position in the
/// file, and a report for each that does not. Deserialized as a sequence
/// whose elements are read one at a time: an element's text is held only
/// while it is parsed.
struct Collected<T> {
    entries: Vec<(usize, T)>,
    errors: Vec<PolicyError>,
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected { entries: Vec::new(), errors: Vec::new() }
    }
}

/// The name of the collection an entry type is read from.
trait Collection: Entry {
    const NAME: &'static str;
}

macro_rules! collection {
    ($($ty:ident => $name:literal),* $(,)?) => {
        $(impl Collection for crate::doc::$ty {
            const NAME: &'static str = $name;
        })*
    };
}

collection! {
    Organization => "organizations",
    Project => "projects",
    Experiment => "experiments",
    Dataset => "datasets",
    User => "users",
    Group => "groups",
    Role => "roles",
    Acl => "acls",
    ServiceToken => "service_tokens",
}

impl<'de, T: Collection> Deserialize<'de> for Collected<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Collection> serde::de::Visitor<'de> for Visit<T> {
            type Value = Collected<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Collected::default();
                let mut i = 0;
                while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
                    match entry::<T>(raw.get()) {
                        Ok(v) => out.entries.push((i, v)),
                        Err(e) => out
                            .errors
                            .push(PolicyError { field: format!("{}[{i}]", T::NAME), message: without_position(&e) }),
                    }
                    i += 1;
                }
                out.entries.shrink_to_fit();
                Ok(out)
            }
        }
        d.deserialize_seq(Visit(std::marker::PhantomData))
    }
}

/// Reads a policy file's text: each entry on its own, then the rules.
pub fn from_json(text: &str) -> Result<Loaded, NotAPolicy> {
    // serde would also take a struct from an array; the file is an object.
    if !text.trim_start().starts_with('{') {
        return Err(NotAPolicy("the top level must be a JSON object".into()));
    }
    let raw: RawDoc = serde_json::from_str(text).map_err(|e| NotAPolicy(e.to_string()))?;
    Ok(raw.into_loaded())
}

/// Reads a policy file from a reader (a `BufReader<File>`), entry by entry,
/// as `from_json` does its text: the file is never held whole, and each
/// entry's text only while it is read.
///
/// The top level (the object, its keys, the arrays and the commas between
/// entries) is read here, byte by byte; each entry's bytes are cut out by
/// bracket depth and parsed by serde_json on their own, so that the text
/// of most of the file is scanned as a slice, not through serde_json's
/// byte-at-a-time reader (three times slower at a million entries). A text
/// is refused whole when serde_json would refuse it, with its own messages
/// for an entry's syntax and these for the top level's.
pub fn from_reader<R: std::io::BufRead>(reader: R) -> Result<Loaded, NotAPolicy> {
    let mut top = TopLevel { r: reader, entry: Vec::new() };
    let mut raw = RawDoc::default();
    let mut seen = [false; ORDER.len()];
    top.skip_ws()?;
    if top.next()? != Some(b'{') {
        return Err(NotAPolicy("the top level must be a JSON object".into()));
    }
    top.skip_ws()?;
    if top.peek()? == Some(b'}') {
        top.next()?;
    } else {
        loop {
            let key = top.key()?;
            let Some(c) = ORDER.iter().position(|o| *o == key) else {
                return Err(NotAPolicy(format!("unknown field `{key}`, expected one of `{}`", ORDER.join("`, `"))));
            };
            if std::mem::replace(&mut seen[c], true) {
                return Err(NotAPolicy(format!("duplicate field `{key}`")));
            }
            top.skip_ws()?;
            if top.next()? != Some(b':') {
                return Err(top.syntax("expected `:`"));
            }
            top.skip_ws()?;
            if top.next()? != Some(b'[') {
                return Err(NotAPolicy(format!("{key}: invalid type, expected a sequence")));
            }
            let mut i = 0;
            top.skip_ws()?;
            if top.peek()? == Some(b']') {
                top.next()?;
            } else {
                loop {
                    match key.as_str() {
                        "organizations" => raw.organizations.push(i, top.entry()?),
                        "projects" => raw.projects.push(i, top.entry()?),
                        "experiments" => raw.experiments.push(i, top.entry()?),
                        "datasets" => raw.datasets.push(i, top.entry()?),
                        "users" => raw.users.push(i, top.entry()?),
                        "groups" => raw.groups.push(i, top.entry()?),
                        "roles" => raw.roles.push(i, top.entry()?),
                        "acls" => raw.acls.push(i, top.entry()?),
                        _ => raw.service_tokens.push(i, top.entry()?),
                    }
                    i += 1;
                    top.skip_ws()?;
                    match top.next()? {
                        Some(b',') => top.skip_ws()?,
                        Some(b']') => break,
                        _ => return Err(top.syntax("expected `,` or `]`")),
                    }
                }
            }
            top.skip_ws()?;
            match top.next()? {
                Some(b',') => top.skip_ws()?,
                Some(b'}') => break,
                _ => return Err(top.syntax("expected `,` or `}`")),
            }
        }
    }
    top.skip_ws()?;
    if top.peek()?.is_some() {
        return Err(top.syntax("trailing characters"));
    }
    Ok(raw.into_loaded())
}

impl<T: Collection> Collected<T> {
    /// Entry `i`, read.
    fn push(&mut self, i: usize, read: Result<T, serde_json::Error>) {
        match read {
            Ok(v) => self.entries.push((i, v)),
            Err(e) => {
                self.errors.push(PolicyError { field: format!("{}[{i}]", T::NAME), message: without_position(&e) })
            }
        }
    }
}

/// The top level of a policy file, read from a buffered reader.
struct TopLevel<R> {
    r: R,
    /// The bytes of the entry being read (reused).
    entry: Vec<u8>,
}

fn io_error(e: std::io::Error) -> NotAPolicy {
    NotAPolicy(format!("cannot read: {e}"))
}

/// JSON's whitespace (not `is_ascii_whitespace`, which has form feed).
fn json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: std::io::BufRead> TopLevel<R> {
    fn peek(&mut self) -> Result<Option<u8>, NotAPolicy> {
        Ok(self.r.fill_buf().map_err(io_error)?.first().copied())
    }

    fn next(&mut self) -> Result<Option<u8>, NotAPolicy> {
        let b = self.peek()?;
        if b.is_some() {
            self.r.consume(1);
        }
        Ok(b)
    }

    fn skip_ws(&mut self) -> Result<(), NotAPolicy> {
        loop {
            let buf = self.r.fill_buf().map_err(io_error)?;
            let n = buf.iter().take_while(|&&b| json_ws(b)).count();
            let more = n == buf.len() && n > 0;
            self.r.consume(n);
            if !more {
                return Ok(());
            }
        }
    }

    fn syntax(&self, what: &str) -> NotAPolicy {
        NotAPolicy(format!("{what} at the top level"))
    }

    /// A key: a JSON string, decoded by serde_json.
    fn key(&mut self) -> Result<String, NotAPolicy> {
        if self.peek()? != Some(b'"') {
            return Err(self.syntax("expected a key"));
        }
        self.cut()?;
        serde_json::from_slice(&self.entry).map_err(|e| NotAPolicy(e.to_string()))
    }

    /// One entry, cut out of the text and read on its own: straight into
    /// its type when it is a plain, valid entry; else as `entry` reads one
    /// (the schema's fields dropped, the messages of its errors).
    fn entry<T: Entry>(&mut self) -> Result<Result<T, serde_json::Error>, NotAPolicy> {
        self.cut()?;
        // A type with fields that must be written is read the long way: a
        // straight read would take a left-out field as null.
        if T::PRESENT.is_empty()
            && let Ok(v) = serde_json::from_slice::<T>(&self.entry)
        {
            // Read straight, an entry has no field of the schema (its
            // fields are refused) and no repeated field (refused too): the
            // long way reads the same entry.
            return Ok(Ok(v));
        }
        let v: serde_json::Value = serde_json::from_slice(&self.entry).map_err(|e| NotAPolicy(e.to_string()))?;
        Ok(entry_from_value(v))
    }

    /// Copies one value's bytes into `entry`: a string to its closing
    /// quote, an object or array to its closing bracket (brackets in
    /// strings not counted), anything else to the next delimiter. Whether
    /// the bytes are JSON is serde_json's to say.
    fn cut(&mut self) -> Result<(), NotAPolicy> {
        self.entry.clear();
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        let first = self.peek()?.ok_or_else(|| self.syntax("unexpected end"))?;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        loop {
            let buf = self.r.fill_buf().map_err(io_error)?;
            if buf.is_empty() {
                // The end of the text inside a value: serde_json says what.
                return Ok(());
            }
            let mut end = None;
            for (i, &b) in buf.iter().enumerate() {
                if scalar {
                    if json_ws(b) || matches!(b, b',' | b']' | b'}') {
                        end = Some(i);
                        break;
                    }
                    continue;
                }
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if b == b'\\' {
                        escaped = true;
                    } else if b == b'"' {
                        in_string = false;
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let n = end.unwrap_or(buf.len());
            self.entry.extend_from_slice(&buf[..n]);
            self.r.consume(n);
            if end.is_some() {
                return Ok(());
            }
        }
    }
}

/// Applies the rules to a document built in memory (a store's rows, a
/// test's fixture).
pub fn from_doc(doc: PolicyDoc) -> Loaded {
    fn numbered<T>(v: Vec<T>) -> Vec<(usize, T)> {
        v.into_iter().enumerate().collect()
    }
    let indexed = Indexed {
        organizations: numbered(doc.organizations),
        projects: numbered(doc.projects),
        experiments: numbered(doc.experiments),
        datasets: numbered(doc.datasets),
        users: numbered(doc.users),
        groups: numbered(doc.groups),
        roles: numbered(doc.roles),
        acls: numbered(doc.acls),
        service_tokens: numbered(doc.service_tokens),
    };
    prune(indexed, Vec::new())
}

/// One entry, from its text: the schema's extra fields dropped, the fields
/// that must be written checked, then read strictly.
fn entry<T: Entry>(text: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(text).and_then(entry_from_value)
}

/// One entry, parsed: as `entry`.
fn entry_from_value<T: Entry>(mut v: serde_json::Value) -> Result<T, serde_json::Error> {
    if let Some(fields) = v.as_object_mut() {
        fields.retain(|k, _| !T::SCHEMA_ONLY.contains(&k.as_str()));
        if let Some(missing) = T::PRESENT.iter().find(|k| !fields.contains_key(**k)) {
            return Err(serde::de::Error::custom(format_args!("missing field `{missing}` (write null for none)")));
        }
    }
    serde_json::from_value(v)
}

/// serde_json's message without its "at line 1 column 40" (the position is
/// within the entry, which the field path already names).
fn without_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

/// A document whose entries remember their position in the input, so
/// that what is left out is named where the operator wrote it.
struct Indexed {
    organizations: Vec<(usize, crate::doc::Organization)>,
    projects: Vec<(usize, crate::doc::Project)>,
    experiments: Vec<(usize, crate::doc::Experiment)>,
    datasets: Vec<(usize, crate::doc::Dataset)>,
    users: Vec<(usize, crate::doc::User)>,
    groups: Vec<(usize, crate::doc::Group)>,
    roles: Vec<(usize, crate::doc::Role)>,
    acls: Vec<(usize, crate::doc::Acl)>,
    service_tokens: Vec<(usize, crate::doc::ServiceToken)>,
}

struct Report(Vec<PolicyError>);

impl Report {
    fn out(&mut self, collection: &str, i: usize, message: impl Into<String>) {
        self.0.push(PolicyError { field: format!("{collection}[{i}]"), message: message.into() });
    }
}

/// Keeps the entries for which `keep` returns true, reporting the others.
fn retain<T>(
    report: &mut Report,
    collection: &str,
    v: &mut Vec<(usize, T)>,
    mut keep: impl FnMut(&T) -> Result<(), String>,
) -> bool {
    let before = v.len();
    v.retain(|(i, e)| match keep(e) {
        Ok(()) => true,
        Err(why) => {
            report.out(collection, *i, why);
            false
        }
    });
    v.len() != before
}

/// Leaves out every entry whose id is empty or repeats an earlier one.
fn unique_ids<T>(report: &mut Report, collection: &str, v: &mut Vec<(usize, T)>, id: impl Fn(&T) -> &str) {
    // The ids are borrowed while the verdicts are made, then the entries go.
    let mut first: HashMap<&str, usize> = HashMap::with_capacity(v.len());
    let keep: Vec<bool> = v
        .iter()
        .map(|(i, e)| {
            let id = id(e);
            if id.is_empty() {
                report.out(collection, *i, "id must not be empty");
                return false;
            }
            if let Some(j) = first.get(id) {
                report.out(collection, *i, format!("duplicate id '{id}' (also {collection}[{j}])"));
                return false;
            }
            first.insert(id, *i);
            true
        })
        .collect();
    drop(first);
    let mut keep = keep.into_iter();
    v.retain(|_| keep.next().unwrap_or(true));
}

fn prune(mut d: Indexed, parse_errors: Vec<PolicyError>) -> Loaded {
    let mut report = Report(parse_errors);

    // 1. Rules an entry keeps on its own; 2. ids, among the entries that
    // keep them (a malformed entry does not shadow a later good one).
    retain(&mut report, "acls", &mut d.acls, |a| {
        match (&a.user_id, &a.group_id) {
            (Some(_), Some(_)) => {
                return Err("has both user_id and group_id; exactly one is allowed".into());
            }
            (None, None) => {
                return Err("has neither user_id nor group_id; exactly one is required".into());
            }
            _ => {}
        }
        match (&a.permission, &a.role_id) {
            (Some(_), Some(_)) => {
                return Err("has both permission and role_id; exactly one is allowed".into());
            }
            (None, None) => {
                return Err("has neither permission nor role_id; exactly one is required".into());
            }
            _ => {}
        }
        if a.role_id.is_some() && a.restrict_object_type.is_some() {
            return Err("has role_id and restrict_object_type; a role grant carries no restriction".into());
        }
        if a.object_id.is_empty() {
            return Err("object_id must not be empty".into());
        }
        Ok(())
    });
    unique_ids(&mut report, "organizations", &mut d.organizations, |o| &o.id);
    unique_ids(&mut report, "projects", &mut d.projects, |p| &p.id);
    unique_ids(&mut report, "experiments", &mut d.experiments, |e| &e.id);
    unique_ids(&mut report, "datasets", &mut d.datasets, |x| &x.id);
    unique_ids(&mut report, "users", &mut d.users, |u| &u.id);
    unique_ids(&mut report, "groups", &mut d.groups, |g| &g.id);
    unique_ids(&mut report, "roles", &mut d.roles, |r| &r.id);
    unique_ids(&mut report, "acls", &mut d.acls, |a| &a.id);
    unique_ids(&mut report, "service_tokens", &mut d.service_tokens, |t| &t.id);
    // Two tokens with one digest: the first is the one a request meets.
    let mut digests: HashMap<TokenDigest, &str> = HashMap::with_capacity(d.service_tokens.len());
    let verdicts: Vec<Result<(), String>> = d
        .service_tokens
        .iter()
        .map(|(_, t)| match digests.get(&t.token_sha256) {
            Some(j) => Err(format!("token_sha256 is the same as service token '{j}''s; digests must be unique")),
            None => {
                digests.insert(t.token_sha256, &t.id);
                Ok(())
            }
        })
        .collect();
    drop(digests);
    let mut verdicts = verdicts.into_iter();
    retain(&mut report, "service_tokens", &mut d.service_tokens, |_| verdicts.next().unwrap_or(Ok(())));

    // 3. Principals crossing organizations, judged on the organizations the
    // entries name, before any reference is resolved: whether a crossing
    // entry goes must not depend on what else is left out.
    cross_organization(&mut report, &mut d);

    // 4. References, until nothing more goes: leaving one entry out can
    // leave out what needs it.
    loop {
        let mut changed = false;
        let orgs: HashSet<String> = d.organizations.iter().map(|(_, o)| o.id.clone()).collect();
        changed |=
            retain(&mut report, "projects", &mut d.projects, |p| known(&orgs, &p.org_id, "org_id", "organization"));
        let project_org: HashMap<&str, &str> =
            d.projects.iter().map(|(_, p)| (p.id.as_str(), p.org_id.as_str())).collect();
        changed |= retain(&mut report, "experiments", &mut d.experiments, |e| {
            known_key(&project_org, &e.project_id, "project_id", "project")
        });
        changed |= retain(&mut report, "datasets", &mut d.datasets, |x| {
            known_key(&project_org, &x.project_id, "project_id", "project")
        });
        changed |= retain(&mut report, "groups", &mut d.groups, |g| known(&orgs, &g.org_id, "org_id", "organization"));
        changed |= retain(&mut report, "roles", &mut d.roles, |r| match &r.org_id {
            Some(org) => known(&orgs, org, "org_id", "organization"),
            None => Ok(()),
        });

        let users: HashSet<&str> = d.users.iter().map(|(_, u)| u.id.as_str()).collect();
        let groups: HashSet<String> = d.groups.iter().map(|(_, g)| g.id.clone()).collect();
        let roles: HashSet<String> = d.roles.iter().map(|(_, r)| r.id.clone()).collect();
        // Mentions of what is missing are dropped; the list's holder stays.
        for (i, g) in &mut d.groups {
            changed |=
                drop_missing(&mut report, &format!("groups[{i}].member_users"), &mut g.member_users, &users, "user");
            changed |= drop_missing(
                &mut report,
                &format!("groups[{i}].member_groups"),
                &mut g.member_groups,
                &groups,
                "group",
            );
        }
        for (i, r) in &mut d.roles {
            changed |=
                drop_missing(&mut report, &format!("roles[{i}].member_roles"), &mut r.member_roles, &roles, "role");
        }

        let experiments: HashSet<&str> = d.experiments.iter().map(|(_, e)| e.id.as_str()).collect();
        let datasets: HashSet<&str> = d.datasets.iter().map(|(_, x)| x.id.as_str()).collect();
        changed |= retain(&mut report, "acls", &mut d.acls, |a| {
            let id = a.object_id.as_str();
            let object_known = match a.object_type {
                ObjectType::Organization => orgs.contains(id),
                ObjectType::Project | ObjectType::ProjectLog => project_org.contains_key(id),
                ObjectType::Experiment => experiments.contains(id),
                ObjectType::Dataset => datasets.contains(id),
                // Objects the policy does not track (prompts, functions…):
                // any id; no decision the gateway makes reaches them.
                _ => true,
            };
            if !object_known {
                return Err(format!("object_id: unknown {} '{id}'", a.object_type));
            }
            match a.principal() {
                Some(AclPrincipal::User(u)) => known(&users, u, "user_id", "user")?,
                Some(AclPrincipal::Group(g)) => known(&groups, g, "group_id", "group")?,
                None => return Err("has no single principal".into()),
            }
            match a.grant() {
                Some(AclGrant::Role(r)) => known(&roles, r, "role_id", "role"),
                Some(AclGrant::Permission { .. }) => Ok(()),
                None => Err("has no single grant".into()),
            }
        });
        // Verdicts first, with the token ids borrowed; then the entries go.
        let tokens: HashSet<&str> = d.service_tokens.iter().map(|(_, t)| t.id.as_str()).collect();
        let verdicts: Vec<Result<(), String>> = d
            .service_tokens
            .iter()
            .map(|(_, t)| {
                known(&orgs, &t.org_id, "org_id", "organization")?;
                known(&users, &t.service_account_id, "service_account_id", "user")?;
                t.parent_id.as_deref().map_or(Ok(()), |p| known(&tokens, p, "parent_id", "service token"))
            })
            .collect();
        drop(tokens);
        let mut verdicts = verdicts.into_iter();
        changed |= retain(&mut report, "service_tokens", &mut d.service_tokens, |_| verdicts.next().unwrap_or(Ok(())));
        if !changed {
            break;
        }
    }

    report.0.sort_by_key(|a| natural(&a.field));
    let doc = PolicyDoc {
        organizations: strip(d.organizations),
        projects: strip(d.projects),
        experiments: strip(d.experiments),
        datasets: strip(d.datasets),
        users: strip(d.users),
        groups: strip(d.groups),
        roles: strip(d.roles),
        acls: strip(d.acls),
        service_tokens: strip(d.service_tokens),
    };
    Loaded { policy: ValidPolicy(doc), left_out: report.0 }
}

/// The entries without their positions.
fn strip<T>(v: Vec<(usize, T)>) -> Vec<T> {
    v.into_iter().map(|(_, e)| e).collect()
}

const ORDER: [&str; 9] =
    ["organizations", "projects", "experiments", "datasets", "users", "groups", "roles", "acls", "service_tokens"];

/// Sort key of a field path: collection in document order, then position.
fn natural(field: &str) -> (usize, usize, String) {
    let (collection, rest) = field.split_once('[').unwrap_or((field, ""));
    let (index, tail) = rest.split_once(']').unwrap_or(("", rest));
    let c = ORDER.iter().position(|o| *o == collection).unwrap_or(ORDER.len());
    (c, index.parse().unwrap_or(usize::MAX), tail.to_owned())
}

fn known<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    set: &HashSet<K>,
    id: &str,
    field: &str,
    what: &str,
) -> Result<(), String> {
    if set.contains(id) { Ok(()) } else { Err(format!("{field}: unknown {what} '{id}'")) }
}

fn known_key<K: std::borrow::Borrow<str> + std::hash::Hash + Eq, V>(
    map: &HashMap<K, V>,
    id: &str,
    field: &str,
    what: &str,
) -> Result<(), String> {
    if map.contains_key(id) { Ok(()) } else { Err(format!("{field}: unknown {what} '{id}'")) }
}

/// Removes the ids of `list` that `known` lacks, reporting each.
fn drop_missing<K: std::borrow::Borrow<str> + std::hash::Hash + Eq>(
    report: &mut Report,
    at: &str,
    list: &mut Vec<String>,
    known: &HashSet<K>,
    what: &str,
) -> bool {
    let before = list.len();
    let mut j = 0;
    list.retain(|id| {
        let keep = known.contains(id.as_str());
        if !keep {
            report
                .0
                .push(PolicyError { field: format!("{at}[{j}]"), message: format!("unknown {what} '{id}' (removed)") });
        }
        j += 1;
        keep
    });
    list.len() != before
}

/// Leaves out each group, role or ACL whose principal or member belongs to
/// another organization than the entry itself (a system role, with no
/// organization, may be named anywhere).
fn cross_organization(report: &mut Report, d: &mut Indexed) {
    let group_org: HashMap<String, String> = d.groups.iter().map(|(_, g)| (g.id.clone(), g.org_id.clone())).collect();
    let role_org: HashMap<String, Option<String>> =
        d.roles.iter().map(|(_, r)| (r.id.clone(), r.org_id.clone())).collect();
    let project_org: HashMap<&str, &str> = d.projects.iter().map(|(_, p)| (p.id.as_str(), p.org_id.as_str())).collect();
    let experiment_org: HashMap<&str, &str> = d
        .experiments
        .iter()
        .filter_map(|(_, e)| Some((e.id.as_str(), *project_org.get(e.project_id.as_str())?)))
        .collect();
    let dataset_org: HashMap<&str, &str> = d
        .datasets
        .iter()
        .filter_map(|(_, x)| Some((x.id.as_str(), *project_org.get(x.project_id.as_str())?)))
        .collect();
    let acl_verdicts: Vec<Result<(), String>> = d
        .acls
        .iter()
        .map(|(_, a)| {
            let id = a.object_id.as_str();
            let org = match a.object_type {
                ObjectType::Organization => Some(id),
                ObjectType::Project | ObjectType::ProjectLog => project_org.get(id).copied(),
                ObjectType::Experiment => experiment_org.get(id).copied(),
                ObjectType::Dataset => dataset_org.get(id).copied(),
                _ => None,
            };
            let Some(org) = org else {
                return Ok(());
            };
            if let Some(AclPrincipal::Group(g)) = a.principal()
                && group_org.get(g).is_some_and(|o| *o != org)
            {
                return Err(format!("group_id: group '{g}' belongs to another organization than the object"));
            }
            if let Some(AclGrant::Role(r)) = a.grant()
                && role_org.get(r).is_some_and(|o| o.as_ref().is_some_and(|o| *o != org))
            {
                return Err(format!("role_id: role '{r}' belongs to another organization than the object"));
            }
            Ok(())
        })
        .collect();
    let mut verdicts = acl_verdicts.into_iter();
    retain(report, "acls", &mut d.acls, |_| verdicts.next().unwrap_or(Ok(())));
    retain(report, "groups", &mut d.groups, |g| {
        match g.member_groups.iter().find(|h| group_org.get(h.as_str()).is_some_and(|o| *o != g.org_id)) {
            Some(h) => Err(format!("member group '{h}' belongs to another organization")),
            None => Ok(()),
        }
    });
    retain(report, "roles", &mut d.roles, |r| {
        match r.member_roles.iter().find(|m| role_org.get(m.as_str()).is_some_and(|o| o.is_some() && *o != r.org_id)) {
            Some(m) => Err(format!("member role '{m}' belongs to another organization")),
            None => Ok(()),
        }
    });
}

#[cfg(test)]
mod tests;
