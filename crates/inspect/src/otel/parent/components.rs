//! Serialized span components (`SpanComponentsV3` / `SpanComponentsV4` of
//! the Python SDK, `span_identifier_v3.py` / `span_identifier_v4.py`),
//! decoded as their `from_str` does:
//!
//! base64 of: a version byte (3 or 4); an object type byte (1 experiment,
//! 2 project_logs, 3 playground_logs); a count byte; that many entries of
//! a field byte (1 object_id, 2 row_id, 3 span_id, 4 root_span_id) and its
//! value; then, when bytes remain, a JSON object whose members override the
//! entries (`dict.update`). Version 3 entries hold 16-byte UUIDs (read back
//! as `8-4-4-4-12` lowercase hex); version 4 entries hold 8 bytes for
//! span_id and 16 for the others (read back as plain lowercase hex), and
//! version 4 writes `object_id` in the JSON part. After decoding, the
//! checks of the dataclass constructor apply: exactly one of a non-empty
//! `object_id` and a non-empty `compute_object_metadata_args`; `span_id`
//! and `root_span_id` non-empty exactly when `row_id` is.
//!
//! Where the Python decoder is lenient about input its `to_str` never
//! writes, this one refuses, since the data plane's decoder may read such
//! input differently (fail closed): only canonical padded base64 of the
//! standard alphabet (Python drops stray characters), no truncated entry
//! (Python reads a short slice), a JSON part that is an object without
//! duplicate keys (Python keeps the last) and with the types the SDK
//! writes (strings or null for ids, an object for
//! `compute_object_metadata_args`), and no `object_type` in the JSON part.
//! Version 3 refuses unknown JSON members as its constructor does; version
//! 4 ignores them as its `_from_json_obj` does.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::super::super::InspectError;
use super::super::super::json::{Kind, Scanner};
use super::super::super::path::{At, Path};
use super::super::super::row::string_value;
use super::super::super::walk::{self, members, once};
use super::super::{OtelParent, ProjectRef};

/// The decoded fields that matter for the target and for validity.
#[derive(Default)]
struct Components {
    object_id: Option<String>,
    compute: Option<Compute>,
    row_id: Option<String>,
    span_id: Option<String>,
    root_span_id: Option<String>,
}

/// `compute_object_metadata_args`: how the SDK names a project it has not
/// resolved to an id yet.
#[derive(Default)]
struct Compute {
    /// Python truthiness of the dict: any member at all.
    members: usize,
    project_id: Option<String>,
    project_name: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ObjectType {
    Experiment,
    ProjectLogs,
    PlaygroundLogs,
}

pub(super) fn parse(s: &str) -> Result<OtelParent, String> {
    let raw = STANDARD.decode(s).map_err(|e| format!("not padded standard base64 ({e})"))?;
    let [version, object_type, count, rest @ ..] = &raw[..] else {
        return Err("too short for span components".into());
    };
    if !matches!(version, 3 | 4) {
        return Err(format!("span components version {version} (only 3 and 4 are known)"));
    }
    let object_type = match object_type {
        1 => ObjectType::Experiment,
        2 => ObjectType::ProjectLogs,
        3 => ObjectType::PlaygroundLogs,
        t => return Err(format!("unknown span object type {t}")),
    };
    let mut c = Components::default();
    let tail = entries(*version, *count, rest, &mut c)?;
    if !tail.is_empty() {
        json_part(tail, *version, &mut c).map_err(|e| format!("JSON part: {e}"))?;
    }
    c.check()?;
    c.target(object_type)
}

/// Reads `count` binary entries into `c`; returns what follows them.
fn entries<'r>(version: u8, count: u8, mut rest: &'r [u8], c: &mut Components) -> Result<&'r [u8], String> {
    for _ in 0..count {
        let Some((&field, after)) = rest.split_first() else {
            return Err("fewer entries than announced".into());
        };
        let len = if version == 4 && field == 3 { 8 } else { 16 };
        let Some((bytes, after)) = after.split_at_checked(len) else {
            return Err("truncated entry".into());
        };
        let value = if version == 3 { uuid(bytes) } else { hex(bytes) };
        *match field {
            1 => &mut c.object_id,
            2 => &mut c.row_id,
            3 => &mut c.span_id,
            4 => &mut c.root_span_id,
            f => return Err(format!("unknown entry field {f}")),
        } = Some(value);
        rest = after;
    }
    Ok(rest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `str(uuid.UUID(bytes=...))`.
fn uuid(bytes: &[u8]) -> String {
    let h = hex(bytes);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The JSON object after the entries.
fn json_part(tail: &[u8], version: u8, c: &mut Components) -> Result<(), InspectError> {
    walk::body(tail, |sc| {
        let root = Path::Root;
        let mut seen = [false; 6];
        members(sc, &root, |sc, key| {
            let here = root.key(&key);
            let (slot, field) = match &*key {
                "object_id" => (0, &mut c.object_id),
                "row_id" => (1, &mut c.row_id),
                "span_id" => (2, &mut c.span_id),
                "root_span_id" => (3, &mut c.root_span_id),
                "compute_object_metadata_args" => {
                    once(&mut seen[4], &here)?;
                    c.compute = compute(sc, &here)?;
                    return Ok(());
                }
                "propagated_event" => {
                    once(&mut seen[5], &here)?;
                    return sc.skip_value().at(&here);
                }
                "object_type" => return Err(here.bad("object_type may only be given in the binary part")),
                _ if version == 4 => return sc.skip_value().at(&here),
                _ => return Err(here.bad("unknown member (version 3 has none)")),
            };
            once(&mut seen[slot], &here)?;
            *field = nullable_string(sc, &here)?;
            Ok(())
        })
    })
}

fn compute(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<Option<Compute>, InspectError> {
    match sc.kind().at(path)? {
        Kind::Null => return sc.null().at(path).map(|()| None),
        Kind::Object => {}
        k => return Err(path.bad(format!("must be an object, not {}", k.name()))),
    }
    let mut out = Compute::default();
    let (mut seen_id, mut seen_name) = (false, false);
    members(sc, path, |sc, key| {
        out.members += 1;
        let here = path.key(&key);
        match &*key {
            "project_id" => {
                once(&mut seen_id, &here)?;
                out.project_id = nullable_string(sc, &here)?;
            }
            "project_name" => {
                once(&mut seen_name, &here)?;
                out.project_name = nullable_string(sc, &here)?;
            }
            _ => sc.skip_value().at(&here)?,
        }
        Ok(())
    })?;
    Ok(Some(out))
}

fn nullable_string(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<Option<String>, InspectError> {
    if sc.kind().at(path)? == Kind::Null {
        return sc.null().at(path).map(|()| None);
    }
    Ok(Some(string_value(sc, path)?.into_owned()))
}

/// Python truthiness of an optional string.
fn truthy(s: &Option<String>) -> bool {
    s.as_deref().is_some_and(|s| !s.is_empty())
}

impl Components {
    /// The constructor's assertions.
    fn check(&self) -> Result<(), String> {
        let by_id = truthy(&self.object_id);
        let by_args = self.compute.as_ref().is_some_and(|c| c.members > 0);
        if by_id && by_args {
            return Err("both object_id and compute_object_metadata_args".into());
        }
        if !by_id && !by_args {
            return Err("neither object_id nor compute_object_metadata_args".into());
        }
        let row = truthy(&self.row_id);
        if row != truthy(&self.span_id) || row != truthy(&self.root_span_id) {
            return Err("row_id, span_id and root_span_id must be given all or none".into());
        }
        Ok(())
    }

    fn target(self, object_type: ObjectType) -> Result<OtelParent, String> {
        if let Some(id) = self.object_id.filter(|id| !id.is_empty()) {
            return Ok(match object_type {
                ObjectType::Experiment => OtelParent::Experiment(id),
                ObjectType::ProjectLogs => OtelParent::ProjectLog(ProjectRef::Id(id)),
                ObjectType::PlaygroundLogs => OtelParent::PromptSession(id),
            });
        }
        if object_type != ObjectType::ProjectLogs {
            return Err("an experiment or playground parent must carry its object_id".into());
        }
        // `check` saw non-empty compute args. Like the SDK, an id wins over
        // a name.
        let args = self.compute.unwrap_or_default();
        let named = |v: Option<String>, what: &str| match v {
            Some(v) if v.is_empty() => Err(format!("empty {what} in compute_object_metadata_args")),
            v => Ok(v),
        };
        if let Some(id) = named(args.project_id, "project_id")? {
            return Ok(OtelParent::ProjectLog(ProjectRef::Id(id)));
        }
        if let Some(name) = named(args.project_name, "project_name")? {
            return Ok(OtelParent::ProjectLog(ProjectRef::Name(name)));
        }
        Err("compute_object_metadata_args names neither project_id nor project_name".into())
    }
}
