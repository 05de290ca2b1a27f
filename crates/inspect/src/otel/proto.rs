//! The walk over an `ExportTraceServiceRequest` (opentelemetry-proto,
//! `collector/trace/v1`) in protobuf: every field is checked as prost
//! decodes it (wire type of known fields, UTF-8 of every `string`, framing
//! of unknown ones), and only span attributes are read.
//!
//! Field numbers (checked against the `opentelemetry-proto` crate's
//! generated types by the differential tests):
//! - ExportTraceServiceRequest { 1 resource_spans: ResourceSpans* }
//! - ResourceSpans { 1 resource: Resource, 2 scope_spans: ScopeSpans*,
//!   3 schema_url: string }
//! - Resource { 1 attributes: KeyValue*, 2 dropped_attributes_count: uint32,
//!   3 entity_refs: EntityRef* }
//! - EntityRef { 1 schema_url: string, 2 type: string, 3 id_keys: string*,
//!   4 description_keys: string* }
//! - ScopeSpans { 1 scope: InstrumentationScope, 2 spans: Span*,
//!   3 schema_url: string }
//! - InstrumentationScope { 1 name: string, 2 version: string,
//!   3 attributes: KeyValue*, 4 dropped_attributes_count: uint32 }
//! - Span { 1 trace_id: bytes, 2 span_id: bytes, 3 trace_state: string,
//!   4 parent_span_id: bytes, 16 flags: fixed32, 5 name: string, 6 kind: enum,
//!   7 start_time_unix_nano: fixed64, 8 end_time_unix_nano: fixed64,
//!   9 attributes: KeyValue*, 10 dropped_attributes_count: uint32,
//!   11 events: Event*, 12 dropped_events_count: uint32, 13 links: Link*,
//!   14 dropped_links_count: uint32, 15 status: Status }
//! - Event { 1 time_unix_nano: fixed64, 2 name: string, 3 attributes:
//!   KeyValue*, 4 dropped_attributes_count: uint32 }
//! - Link { 1 trace_id: bytes, 2 span_id: bytes, 3 trace_state: string,
//!   4 attributes: KeyValue*, 5 dropped_attributes_count: uint32,
//!   6 flags: fixed32 }
//! - Status { 2 message: string, 3 code: enum }
//! - the attribute values: see `value`.
//!
//! Each message function gets the recursion budget of its own fields
//! (prost's decode context): 100 for the request's, one less per level.

mod value;

use super::super::InspectError;
use super::super::path::Path;
use super::tally::Tally;
use super::wire::{RECURSION_LIMIT, Reader, WireError, WireType};
use super::{MAX_VALUE_LEVELS, OtelSpans, PARENT_KEY, parent_not_string, too_deep};
use value::{Member, key_value};

#[cfg(test)]
mod tests;

/// Attaches the place being read to a wire error.
trait At<T> {
    fn at(self, path: &Path<'_>) -> Result<T, InspectError>;
}

impl<T> At<T> for Result<T, WireError> {
    #[inline]
    fn at(self, path: &Path<'_>) -> Result<T, InspectError> {
        self.map_err(|e| path.bad(format!("malformed protobuf at byte {}: {}", e.pos, e.kind)))
    }
}

/// Scans an `ExportTraceServiceRequest`.
pub(super) fn scan(body: &[u8]) -> Result<OtelSpans, InspectError> {
    let mut tally = Tally::default();
    let root = Path::Root;
    let list = root.key("resourceSpans");
    let budget = RECURSION_LIMIT;
    let mut r = Reader::new(body);
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(&root)? {
        match tag {
            1 => {
                let here = list.index(i);
                i += 1;
                let m = r.message(wt, budget).at(&here)?;
                resource_spans(m, budget - 1, &here, &mut tally)?;
            }
            _ => r.skip(tag, wt, budget).at(&root)?,
        }
    }
    Ok(tally.finish())
}

fn resource_spans<'a>(
    mut r: Reader<'a>,
    budget: u32,
    path: &Path<'_>,
    tally: &mut Tally<'a>,
) -> Result<(), InspectError> {
    let list = path.key("scopeSpans");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => {
                let here = path.key("resource");
                let m = r.message(wt, budget).at(&here)?;
                resource(m, budget - 1, &here)?;
            }
            2 => {
                let here = list.index(i);
                i += 1;
                let m = r.message(wt, budget).at(&here)?;
                scope_spans(m, budget - 1, &here, tally)?;
            }
            3 => r.string_field(wt).map(drop).at(&path.key("schemaUrl"))?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn resource(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    let list = path.key("attributes");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => {
                attribute(&mut r, wt, budget, &list.index(i))?;
                i += 1;
            }
            2 => r.varint_field(wt).at(path)?,
            3 => {
                let here = path.key("entityRefs");
                let m = r.message(wt, budget).at(&here)?;
                entity_ref(m, budget - 1, &here)?;
            }
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn entity_ref(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1..=4 => r.string_field(wt).map(drop).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn scope_spans<'a>(mut r: Reader<'a>, budget: u32, path: &Path<'_>, tally: &mut Tally<'a>) -> Result<(), InspectError> {
    let list = path.key("spans");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => {
                let here = path.key("scope");
                let m = r.message(wt, budget).at(&here)?;
                scope(m, budget - 1, &here)?;
            }
            2 => {
                let here = list.index(i);
                i += 1;
                let m = r.message(wt, budget).at(&here)?;
                span(m, budget - 1, &here, tally)?;
            }
            3 => r.string_field(wt).map(drop).at(&path.key("schemaUrl"))?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn scope(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    let list = path.key("attributes");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 | 2 => r.string_field(wt).map(drop).at(path)?,
            3 => {
                attribute(&mut r, wt, budget, &list.index(i))?;
                i += 1;
            }
            4 => r.varint_field(wt).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn span<'a>(mut r: Reader<'a>, budget: u32, path: &Path<'_>, tally: &mut Tally<'a>) -> Result<(), InspectError> {
    let attributes = path.key("attributes");
    let (events, links) = (path.key("events"), path.key("links"));
    let (mut a, mut e, mut l) = (0, 0, 0);
    let mut parents = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 | 2 | 4 => r.bytes_field(wt).at(path)?,
            3 | 5 => r.string_field(wt).map(drop).at(path)?,
            6 | 10 | 12 | 14 => r.varint_field(wt).at(path)?,
            7 | 8 => r.fixed64_field(wt).at(path)?,
            16 => r.fixed32_field(wt).at(path)?,
            9 => {
                let here = attributes.index(a);
                a += 1;
                let (key, value) = attribute(&mut r, wt, budget, &here)?;
                if key == PARENT_KEY {
                    match value.member {
                        Member::String(s) => tally.parent(s.into()),
                        _ => return Err(parent_not_string(here.render())),
                    }
                    parents += 1;
                }
            }
            11 => {
                let here = events.index(e);
                e += 1;
                let m = r.message(wt, budget).at(&here)?;
                event(m, budget - 1, &here)?;
            }
            13 => {
                let here = links.index(l);
                l += 1;
                let m = r.message(wt, budget).at(&here)?;
                link(m, budget - 1, &here)?;
            }
            15 => {
                let here = path.key("status");
                let m = r.message(wt, budget).at(&here)?;
                status(m, budget - 1, &here)?;
            }
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    tally.span(parents);
    Ok(())
}

fn event(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    let list = path.key("attributes");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => r.fixed64_field(wt).at(path)?,
            2 => r.string_field(wt).map(drop).at(path)?,
            3 => {
                attribute(&mut r, wt, budget, &list.index(i))?;
                i += 1;
            }
            4 => r.varint_field(wt).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn link(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    let list = path.key("attributes");
    let mut i = 0;
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 | 2 => r.bytes_field(wt).at(path)?,
            3 => r.string_field(wt).map(drop).at(path)?,
            4 => {
                attribute(&mut r, wt, budget, &list.index(i))?;
                i += 1;
            }
            5 => r.varint_field(wt).at(path)?,
            6 => r.fixed32_field(wt).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

fn status(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<(), InspectError> {
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            2 => r.string_field(wt).map(drop).at(path)?,
            3 => r.varint_field(wt).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(())
}

/// One element of an attribute list (a `KeyValue` message field of a
/// message whose fields have `budget`): its key and value, after the level
/// check, which can only be made once the element is complete.
fn attribute<'a>(
    r: &mut Reader<'a>,
    wt: WireType,
    budget: u32,
    path: &Path<'_>,
) -> Result<(&'a str, value::Value<'a>), InspectError> {
    let m = r.message(wt, budget).at(path)?;
    let (key, value) = key_value(m, budget - 1, path)?;
    if value.levels() > MAX_VALUE_LEVELS {
        return Err(too_deep(path.render()));
    }
    Ok((key, value))
}
