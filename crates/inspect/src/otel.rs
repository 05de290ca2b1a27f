//! `POST /otel/v1/traces`: which parents the spans of an OTLP trace export
//! name, from a validating scan of the (decompressed) body.
//!
//! A span's target is its `braintrust.parent` string attribute (one of the
//! span's own attributes: resource, scope, event and link attributes name
//! nothing), else the request's `x-bt-parent` header; [`parse_parent`]
//! turns either into an object.
//!
//! Both encodings are checked in full, not only where the parents are:
//! - protobuf (`proto`): the body must be an `ExportTraceServiceRequest`
//!   that prost would decode (`wire` holds the framing rules), read
//!   without building it;
//! - JSON (`otlp_json`): the crate's validating JSON scanner, walking
//!   `resourceSpans[].scopeSpans[].spans[].attributes[]`.
//!
//! In both, attribute values nested deeper than [`MAX_VALUE_LEVELS`] are
//! refused, in every attribute list of the body.

mod otlp_json;
mod parent;
mod proto;
mod tally;
mod wire;

#[cfg(test)]
mod differential;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

pub use parent::parse_parent;

use super::InspectError;

/// The attribute whose string value names a span's parent.
const PARENT_KEY: &str = "braintrust.parent";

/// How deep attribute values may nest.
///
/// The level of an attribute value is the number of `kvlist_value` /
/// `array_value` containers on the deepest path from the attribute's value
/// down, the value itself included: a string, number, bool or bytes value
/// is level 0, an empty `kvlist_value` or an array of strings is level 1, a
/// kvlist holding an array of strings is level 2. Level 24 passes, 25 is
/// refused; this holds in resource, scope, span, event and link attributes
/// alike.
///
/// For protobuf the level is that of the value prost decodes: a container
/// that a later field replaces (a oneof set twice) does not count, and a
/// container given twice merges (see `proto`).
pub const MAX_VALUE_LEVELS: u32 = 24;

/// The encoding of a trace export body (from its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpEncoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

/// What a decoded (already decompressed) OTLP trace export body holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelSpans {
    /// Distinct `braintrust.parent` string-attribute values of spans,
    /// first-seen order.
    pub parents: Vec<String>,
    /// Number of spans in the body.
    pub spans: usize,
    /// Spans with no `braintrust.parent` attribute (they take the
    /// `x-bt-parent` header).
    pub unparented: usize,
}

/// Where a span writes (parent grammar of contract: OpenTelemetry traces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtelParent {
    /// `project_id:<id>`, `project_name:<name>`, or span components of
    /// object type `project_logs`.
    ProjectLog(ProjectRef),
    /// `experiment_id:<id>`, or span components of object type
    /// `experiment` with an `object_id`.
    Experiment(String),
    /// Span components of object type `playground_logs` (a prompt session)
    /// with an `object_id`.
    PromptSession(String),
}

/// A project, by id or by name (a name the data plane may create).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(String),
    Name(String),
}

/// Inspects a decoded OTLP trace export body: the distinct parents its
/// spans name, how many spans it has and how many name none.
///
/// Malformed protobuf or JSON, an attribute value nested deeper than
/// [`MAX_VALUE_LEVELS`], or a `braintrust.parent` attribute whose value is
/// not a string (field `braintrust.parent`) is `BadRequest`.
pub fn otel_traces(body: &[u8], encoding: OtlpEncoding) -> Result<OtelSpans, InspectError> {
    match encoding {
        OtlpEncoding::Protobuf => proto::scan(body),
        OtlpEncoding::Json => otlp_json::scan(body),
    }
}

/// The refusal of a `braintrust.parent` attribute that is not a string;
/// `at` says where it is.
fn parent_not_string(at: Option<String>) -> InspectError {
    let place = at.map(|p| format!(" (at {p})")).unwrap_or_default();
    InspectError::BadRequest {
        field: Some(PARENT_KEY.to_owned()),
        message: format!("the value of a span's '{PARENT_KEY}' attribute must be a string (stringValue){place}"),
    }
}

/// The refusal of an attribute value nested too deep; `at` names the
/// attribute.
fn too_deep(at: Option<String>) -> InspectError {
    InspectError::BadRequest {
        field: at,
        message: format!("attribute value nested deeper than {MAX_VALUE_LEVELS} levels of kvlistValue/arrayValue"),
    }
}
