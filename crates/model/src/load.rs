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

use std::fmt;

use hashbrown::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::compact::{self as c, Compact, CompactDoc, Strings, Sym, SymSet};
use crate::doc::{self, Entry, PolicyDoc};
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

/// A policy document in which every entry keeps every rule, kept as
/// compact records (see `compact`). Only `load` makes one.
#[derive(Clone, Default)]
pub struct ValidPolicy(CompactDoc);

impl ValidPolicy {
    /// The records, for the evaluator.
    pub fn compact(&self) -> &CompactDoc {
        &self.0
    }

    pub fn into_compact(self) -> CompactDoc {
        self.0
    }

    /// The document in its own shape (rebuilt: a copy of every string).
    pub fn to_doc(&self) -> PolicyDoc {
        self.0.to_doc()
    }
}

impl fmt::Debug for ValidPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValidPolicy").field(&self.to_doc()).finish()
    }
}

/// Two policies are equal when their documents are: symbols are of one
/// arena each.
impl PartialEq for ValidPolicy {
    fn eq(&self, other: &Self) -> bool {
        self.to_doc() == other.to_doc()
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
        let mut d = Indexed::default();
        let mut errors = Vec::new();
        let s = &mut d.strings;
        d.organizations = self.organizations.compact(s, &mut errors);
        d.projects = self.projects.compact(s, &mut errors);
        d.experiments = self.experiments.compact(s, &mut errors);
        d.datasets = self.datasets.compact(s, &mut errors);
        d.users = self.users.compact(s, &mut errors);
        d.groups = self.groups.compact(s, &mut errors);
        d.roles = self.roles.compact(s, &mut errors);
        d.acls = self.acls.compact(s, &mut errors);
        d.service_tokens = self.service_tokens.compact(s, &mut errors);
        prune(d, errors)
    }
}

impl<T: Compact> Collected<T> {
    /// The entries as records (interned in `s`), the errors added to `errors`.
    fn compact(mut self, s: &mut Strings, errors: &mut Vec<PolicyError>) -> Vec<(u32, T::Record)> {
        errors.append(&mut self.errors);
        self.entries.into_iter().map(|(i, e)| (i as u32, e.compact(s))).collect()
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
    let mut d = Indexed::default();
    let mut errors = Vec::new();
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
                    let (s, e) = (&mut d.strings, &mut errors);
                    match key.as_str() {
                        "organizations" => add::<doc::Organization>(&mut d.organizations, s, e, i, top.entry()?),
                        "projects" => add::<doc::Project>(&mut d.projects, s, e, i, top.entry()?),
                        "experiments" => add::<doc::Experiment>(&mut d.experiments, s, e, i, top.entry()?),
                        "datasets" => add::<doc::Dataset>(&mut d.datasets, s, e, i, top.entry()?),
                        "users" => add::<doc::User>(&mut d.users, s, e, i, top.entry()?),
                        "groups" => add::<doc::Group>(&mut d.groups, s, e, i, top.entry()?),
                        "roles" => add::<doc::Role>(&mut d.roles, s, e, i, top.entry()?),
                        "acls" => add::<doc::Acl>(&mut d.acls, s, e, i, top.entry()?),
                        _ => add::<doc::ServiceToken>(&mut d.service_tokens, s, e, i, top.entry()?),
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
    Ok(prune(d, errors))
}

/// Entry `i` of `T`'s collection, read: its record added to `list`, its
/// strings to `s`; or its error to `errors`.
fn add<T: Collection + Compact>(
    list: &mut Vec<(u32, T::Record)>,
    s: &mut Strings,
    errors: &mut Vec<PolicyError>,
    i: usize,
    read: Result<T, serde_json::Error>,
) {
    match read {
        Ok(v) => list.push((i as u32, v.compact(s))),
        Err(e) => errors.push(PolicyError { field: format!("{}[{i}]", T::NAME), message: without_position(&e) }),
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
    fn numbered<T: Compact>(v: Vec<T>, s: &mut Strings) -> Vec<(u32, T::Record)> {
        v.into_iter().enumerate().map(|(i, e)| (i as u32, e.compact(s))).collect()
    }
    let mut d = Indexed::default();
    let s = &mut d.strings;
    d.organizations = numbered(doc.organizations, s);
    d.projects = numbered(doc.projects, s);
    d.experiments = numbered(doc.experiments, s);
    d.datasets = numbered(doc.datasets, s);
    d.users = numbered(doc.users, s);
    d.groups = numbered(doc.groups, s);
    d.roles = numbered(doc.roles, s);
    d.acls = numbered(doc.acls, s);
    d.service_tokens = numbered(doc.service_tokens, s);
    prune(d, Vec::new())
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
/// that what is left out is named where the operator wrote it. Records, so
/// that a rule compares symbols, not strings (see `compact`).
#[derive(Default)]
struct Indexed {
    strings: Strings,
    organizations: Vec<(u32, c::Organization)>,
    projects: Vec<(u32, c::Project)>,
    experiments: Vec<(u32, c::InProject)>,
    datasets: Vec<(u32, c::InProject)>,
    users: Vec<(u32, c::User)>,
    groups: Vec<(u32, c::Group)>,
    roles: Vec<(u32, c::Role)>,
    acls: Vec<(u32, c::Acl)>,
    service_tokens: Vec<(u32, c::ServiceToken)>,
}

struct Report(Vec<PolicyError>);

impl Report {
    fn out(&mut self, collection: &str, i: u32, message: impl Into<String>) {
        self.0.push(PolicyError { field: format!("{collection}[{i}]"), message: message.into() });
    }
}

/// Keeps the entries for which `keep` returns true, reporting the others.
fn retain<T>(
    report: &mut Report,
    collection: &str,
    v: &mut Vec<(u32, T)>,
    mut keep: impl FnMut(&T) -> Result<(), String>,
) -> bool {
    retain_numbered(report, collection, v, |_, e| keep(e))
}

/// Leaves out every entry whose id is empty or repeats an earlier one.
fn unique_ids<T>(report: &mut Report, s: &Strings, collection: &str, v: &mut Vec<(u32, T)>, id: impl Fn(&T) -> Sym) {
    let mut first: HashMap<Sym, u32> = HashMap::with_capacity(v.len());
    retain_numbered(report, collection, v, |i, e| {
        let k = id(e);
        let id = s.get(k);
        if id.is_empty() {
            return Err("id must not be empty".into());
        }
        if let Some(j) = first.get(&k) {
            return Err(format!("duplicate id '{id}' (also {collection}[{j}])"));
        }
        first.insert(k, i);
        Ok(())
    });
}

/// `retain`, with each entry's position.
fn retain_numbered<T>(
    report: &mut Report,
    collection: &str,
    v: &mut Vec<(u32, T)>,
    mut keep: impl FnMut(u32, &T) -> Result<(), String>,
) -> bool {
    let before = v.len();
    v.retain(|(i, e)| match keep(*i, e) {
        Ok(()) => true,
        Err(why) => {
            report.out(collection, *i, why);
            false
        }
    });
    v.len() != before
}

/// The symbols of a collection's ids.
fn ids<T>(s: &Strings, v: &[(u32, T)], id: impl Fn(&T) -> Sym) -> SymSet {
    SymSet::new(s, v.iter().map(|(_, e)| id(e)))
}

fn prune(mut d: Indexed, parse_errors: Vec<PolicyError>) -> Loaded {
    let mut report = Report(parse_errors);
    // Everything is interned once the entries are read: the table goes
    // before the rules' sets are built.
    d.strings.freeze();
    let s = &d.strings;

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
        if s.get(a.object_id).is_empty() {
            return Err("object_id must not be empty".into());
        }
        Ok(())
    });
    unique_ids(&mut report, s, "organizations", &mut d.organizations, |o| o.id);
    unique_ids(&mut report, s, "projects", &mut d.projects, |p| p.id);
    unique_ids(&mut report, s, "experiments", &mut d.experiments, |e| e.id);
    unique_ids(&mut report, s, "datasets", &mut d.datasets, |x| x.id);
    unique_ids(&mut report, s, "users", &mut d.users, |u| u.id);
    unique_ids(&mut report, s, "groups", &mut d.groups, |g| g.id);
    unique_ids(&mut report, s, "roles", &mut d.roles, |r| r.id);
    unique_ids(&mut report, s, "acls", &mut d.acls, |a| a.id);
    unique_ids(&mut report, s, "service_tokens", &mut d.service_tokens, |t| t.id);
    // Two tokens with one digest: the first is the one a request meets.
    let mut digests: HashMap<TokenDigest, Sym> = HashMap::with_capacity(d.service_tokens.len());
    retain(&mut report, "service_tokens", &mut d.service_tokens, |t| match digests.get(&t.token_sha256) {
        Some(&j) => Err(format!("token_sha256 is the same as service token '{}''s; digests must be unique", s.get(j))),
        None => {
            digests.insert(t.token_sha256, t.id);
            Ok(())
        }
    });
    drop(digests);

    // 3. Principals crossing organizations, judged on the organizations the
    // entries name, before any reference is resolved: whether a crossing
    // entry goes must not depend on what else is left out.
    cross_organization(&mut report, &mut d);
    let s = &d.strings;

    // 4. References, until nothing more goes: leaving one entry out can
    // leave out what needs it.
    loop {
        let mut changed = false;
        let orgs = ids(s, &d.organizations, |o| o.id);
        changed |=
            retain(&mut report, "projects", &mut d.projects, |p| known(s, &orgs, p.org_id, "org_id", "organization"));
        let projects = ids(s, &d.projects, |p| p.id);
        changed |= retain(&mut report, "experiments", &mut d.experiments, |e| {
            known(s, &projects, e.project_id, "project_id", "project")
        });
        changed |= retain(&mut report, "datasets", &mut d.datasets, |x| {
            known(s, &projects, x.project_id, "project_id", "project")
        });
        changed |=
            retain(&mut report, "groups", &mut d.groups, |g| known(s, &orgs, g.org_id, "org_id", "organization"));
        changed |= retain(&mut report, "roles", &mut d.roles, |r| match r.org_id {
            Some(org) => known(s, &orgs, org, "org_id", "organization"),
            None => Ok(()),
        });

        let users = ids(s, &d.users, |u| u.id);
        let groups = ids(s, &d.groups, |g| g.id);
        let roles = ids(s, &d.roles, |r| r.id);
        // Mentions of what is missing are dropped; the list's holder stays.
        for (i, g) in &mut d.groups {
            changed |= drop_missing(&mut report, s, "groups", *i, "member_users", &mut g.member_users, &users, "user");
            changed |=
                drop_missing(&mut report, s, "groups", *i, "member_groups", &mut g.member_groups, &groups, "group");
        }
        for (i, r) in &mut d.roles {
            changed |= drop_missing(&mut report, s, "roles", *i, "member_roles", &mut r.member_roles, &roles, "role");
        }

        let experiments = ids(s, &d.experiments, |e| e.id);
        let datasets = ids(s, &d.datasets, |x| x.id);
        changed |= retain(&mut report, "acls", &mut d.acls, |a| {
            let id = a.object_id;
            let object_known = match a.object_type {
                ObjectType::Organization => orgs.contains(id),
                ObjectType::Project | ObjectType::ProjectLog => projects.contains(id),
                ObjectType::Experiment => experiments.contains(id),
                ObjectType::Dataset => datasets.contains(id),
                // Objects the policy does not track (prompts, functions…):
                // any id; no decision the gateway makes reaches them.
                _ => true,
            };
            if !object_known {
                return Err(format!("object_id: unknown {} '{}'", a.object_type, s.get(id)));
            }
            match a.principal() {
                Some(c::AclPrincipal::User(u)) => known(s, &users, u, "user_id", "user")?,
                Some(c::AclPrincipal::Group(g)) => known(s, &groups, g, "group_id", "group")?,
                None => return Err("has no single principal".into()),
            }
            match a.grant() {
                Some(c::AclGrant::Role(r)) => known(s, &roles, r, "role_id", "role"),
                Some(c::AclGrant::Permission { .. }) => Ok(()),
                None => Err("has no single grant".into()),
            }
        });
        let tokens = ids(s, &d.service_tokens, |t| t.id);
        changed |= retain(&mut report, "service_tokens", &mut d.service_tokens, |t| {
            known(s, &orgs, t.org_id, "org_id", "organization")?;
            known(s, &users, t.service_account_id, "service_account_id", "user")?;
            t.parent_id.map_or(Ok(()), |p| known(s, &tokens, p, "parent_id", "service token"))
        });
        if !changed {
            break;
        }
    }

    report.0.sort_by_key(|a| natural(&a.field));
    let doc = CompactDoc {
        strings: d.strings,
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
fn strip<T>(v: Vec<(u32, T)>) -> Vec<T> {
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

fn known(s: &Strings, set: &SymSet, id: Sym, field: &str, what: &str) -> Result<(), String> {
    if set.contains(id) { Ok(()) } else { Err(format!("{field}: unknown {what} '{}'", s.get(id))) }
}

/// Removes the ids of `list` that `known` lacks, reporting each (as
/// `{collection}[{i}].{field}[{j}]`).
#[allow(clippy::too_many_arguments)]
fn drop_missing(
    report: &mut Report,
    s: &Strings,
    collection: &str,
    i: u32,
    field: &str,
    list: &mut Vec<Sym>,
    known: &SymSet,
    what: &str,
) -> bool {
    let before = list.len();
    let mut j = 0;
    list.retain(|id| {
        let keep = known.contains(*id);
        if !keep {
            report.0.push(PolicyError {
                field: format!("{collection}[{i}].{field}[{j}]"),
                message: format!("unknown {what} '{}' (removed)", s.get(*id)),
            });
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
    let s = &d.strings;
    let group_org: HashMap<Sym, Sym> = d.groups.iter().map(|(_, g)| (g.id, g.org_id)).collect();
    let role_org: HashMap<Sym, Option<Sym>> = d.roles.iter().map(|(_, r)| (r.id, r.org_id)).collect();
    let project_org: HashMap<Sym, Sym> = d.projects.iter().map(|(_, p)| (p.id, p.org_id)).collect();
    let in_project = |v: &[(u32, c::InProject)]| -> HashMap<Sym, Sym> {
        v.iter().filter_map(|(_, e)| Some((e.id, *project_org.get(&e.project_id)?))).collect()
    };
    let experiment_org = in_project(&d.experiments);
    let dataset_org = in_project(&d.datasets);
    retain(report, "acls", &mut d.acls, |a| {
        let id = a.object_id;
        let org = match a.object_type {
            ObjectType::Organization => Some(id),
            ObjectType::Project | ObjectType::ProjectLog => project_org.get(&id).copied(),
            ObjectType::Experiment => experiment_org.get(&id).copied(),
            ObjectType::Dataset => dataset_org.get(&id).copied(),
            _ => None,
        };
        let Some(org) = org else {
            return Ok(());
        };
        if let Some(c::AclPrincipal::Group(g)) = a.principal()
            && group_org.get(&g).is_some_and(|o| *o != org)
        {
            return Err(format!("group_id: group '{}' belongs to another organization than the object", s.get(g)));
        }
        if let Some(c::AclGrant::Role(r)) = a.grant()
            && role_org.get(&r).is_some_and(|o| o.is_some_and(|o| o != org))
        {
            return Err(format!("role_id: role '{}' belongs to another organization than the object", s.get(r)));
        }
        Ok(())
    });
    retain(report, "groups", &mut d.groups, |g| {
        match g.member_groups.iter().find(|h| group_org.get(*h).is_some_and(|o| *o != g.org_id)) {
            Some(&h) => Err(format!("member group '{}' belongs to another organization", s.get(h))),
            None => Ok(()),
        }
    });
    retain(report, "roles", &mut d.roles, |r| {
        match r.member_roles.iter().find(|m| role_org.get(*m).is_some_and(|o| o.is_some() && *o != r.org_id)) {
            Some(&m) => Err(format!("member role '{}' belongs to another organization", s.get(m))),
            None => Ok(()),
        }
    });
}

#[cfg(test)]
mod tests;
