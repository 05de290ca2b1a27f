//! The field names of the OTLP messages the JSON walk descends into, in
//! both spellings proto3 JSON parsers accept (the lowerCamelCase JSON name
//! and the original snake_case name), and the refusal of a field given
//! twice in one object, in either spelling.

use std::borrow::Cow;

use super::super::super::InspectError;
use super::super::super::path::Path;

/// One message's fields: `(json_name, proto_name)`, at most 32.
pub(super) type Fields = &'static [(&'static str, &'static str)];

pub(super) const REQUEST: Fields = &[("resourceSpans", "resource_spans")];
pub(super) const RESOURCE_SPANS: Fields =
    &[("resource", "resource"), ("scopeSpans", "scope_spans"), ("schemaUrl", "schema_url")];
pub(super) const RESOURCE: Fields = &[
    ("attributes", "attributes"),
    ("droppedAttributesCount", "dropped_attributes_count"),
    ("entityRefs", "entity_refs"),
];
pub(super) const SCOPE_SPANS: Fields = &[("scope", "scope"), ("spans", "spans"), ("schemaUrl", "schema_url")];
pub(super) const SCOPE: Fields = &[
    ("name", "name"),
    ("version", "version"),
    ("attributes", "attributes"),
    ("droppedAttributesCount", "dropped_attributes_count"),
];
pub(super) const SPAN: Fields = &[
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("traceState", "trace_state"),
    ("parentSpanId", "parent_span_id"),
    ("flags", "flags"),
    ("name", "name"),
    ("kind", "kind"),
    ("startTimeUnixNano", "start_time_unix_nano"),
    ("endTimeUnixNano", "end_time_unix_nano"),
    ("attributes", "attributes"),
    ("droppedAttributesCount", "dropped_attributes_count"),
    ("events", "events"),
    ("droppedEventsCount", "dropped_events_count"),
    ("links", "links"),
    ("droppedLinksCount", "dropped_links_count"),
    ("status", "status"),
];
pub(super) const EVENT: Fields = &[
    ("timeUnixNano", "time_unix_nano"),
    ("name", "name"),
    ("attributes", "attributes"),
    ("droppedAttributesCount", "dropped_attributes_count"),
];
pub(super) const LINK: Fields = &[
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("traceState", "trace_state"),
    ("attributes", "attributes"),
    ("droppedAttributesCount", "dropped_attributes_count"),
    ("flags", "flags"),
];
pub(super) const KEY_VALUE: Fields = &[("key", "key"), ("value", "value"), ("keyStrindex", "key_strindex")];
/// The members of the `AnyValue` oneof.
pub(super) const ANY_VALUE: Fields = &[
    ("stringValue", "string_value"),
    ("boolValue", "bool_value"),
    ("intValue", "int_value"),
    ("doubleValue", "double_value"),
    ("arrayValue", "array_value"),
    ("kvlistValue", "kvlist_value"),
    ("bytesValue", "bytes_value"),
    ("stringValueStrindex", "string_value_strindex"),
];
/// `ArrayValue` and `KeyValueList`.
pub(super) const VALUES: Fields = &[("values", "values")];

/// The keys met so far in one object.
#[derive(Default)]
pub(super) struct Seen<'a> {
    /// Bit `i` for field `i` of the message's table.
    known: u32,
    /// Keys that name no field of the message (rare: allocated on demand).
    others: Vec<Cow<'a, str>>,
}

impl<'a> Seen<'a> {
    /// The index in `fields` of the field `key` names (`None` for an
    /// unknown key), refusing a field or an unknown key met before.
    #[inline]
    pub fn field(&mut self, fields: Fields, key: Cow<'a, str>, path: &Path<'_>) -> Result<Option<usize>, InspectError> {
        let duplicate = || path.key(&key).bad("field given twice in one object (in either of its spellings)");
        match fields.iter().position(|&(json, proto)| key == json || key == proto) {
            Some(i) => {
                if self.known & (1 << i) != 0 {
                    return Err(duplicate());
                }
                self.known |= 1 << i;
                Ok(Some(i))
            }
            None => {
                if self.others.contains(&key) {
                    return Err(duplicate());
                }
                self.others.push(key);
                Ok(None)
            }
        }
    }
}
