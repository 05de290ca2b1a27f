//! Body inspection: reads a request body once, checks it against the
//! "Bodies" rules of contract: Routes, and lists every object it writes to with the
//! permission each needs. The original bytes are forwarded unchanged; this
//! module never re-serializes.
//!
//! Pure and synchronous: bytes in, targets or a precise error out.
//!
//! Layers: [`decode`] undoes `Content-Encoding` under a size cap; a
//! validating single-pass JSON scanner (`json`) checks every byte of the
//! body, including the members no inspector reads; the route inspectors
//! ([`logs3`], [`events`], [`feedback`], [`cross_object_insert`],
//! [`overflow_request`]) read the target fields of each row as they go.
//! OpenTelemetry trace exports ([`otel_traces`], protobuf or JSON) are
//! scanned for the parents their spans name, which [`parse_parent`] reads.

mod collect;
mod cross;
mod decode;
mod events;
mod json;
mod logs3;
mod otel;
mod overflow;
mod path;
#[cfg(test)]
mod properties;
mod row;
mod target;
mod walk;

pub use cross::cross_object_insert;
pub use decode::{decode, decode_otlp};
pub use events::{events, feedback};
pub use logs3::logs3;
pub use otel::{MAX_VALUE_LEVELS, OtelParent, OtelSpans, OtlpEncoding, ProjectRef, otel_traces, parse_parent};
pub use overflow::overflow_request;

use loggate_model::types::{ObjectRef, Permission};

/// One object a request touches and what it needs there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub object: ObjectRef,
    pub permission: Permission,
}

/// The distinct targets of a body, in first-seen order, and how many rows
/// (events, feedback items) it carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub targets: Vec<Target>,
    pub rows: usize,
}

/// What a `POST /logs3` body turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logs3 {
    Rows(Targets),
    /// `{"rows":{"type":"logs3_overflow","key":K,...}}`.
    OverflowRef {
        key: String,
    },
}

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    /// Malformed JSON, wrong shape, bad UTF-8, too deep, duplicate or
    /// wrongly typed target field, row without (or with several) targets.
    /// `field` is a path like `rows[3].project_id` when one applies.
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    /// The (decompressed) body exceeds the configured cap.
    #[error("body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// A `Content-Encoding` other than identity or gzip (or, for OTLP
    /// bodies, deflate).
    #[error("unsupported content encoding '{0}'")]
    UnsupportedEncoding(String),
}

/// Nesting deeper than this anywhere in a body is refused. Depth is the
/// number of arrays/objects open at a point: `{}` is depth 1, and 128
/// nested `[` (or `{`) pass while 129 are refused, in ignored members too.
pub const MAX_DEPTH: usize = 128;

/// Checks that `body` is one valid UTF-8 JSON value nested at most
/// [`MAX_DEPTH`] deep (for routes whose bodies are forwarded but not
/// otherwise inspected).
pub fn validate_json(body: &[u8]) -> Result<(), InspectError> {
    walk::body(body, |sc| sc.skip_value().map_err(|e| path::Path::Root.syntax(e)))
}
