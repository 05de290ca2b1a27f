//! `POST /otel/v1/traces` (contract: OpenTelemetry traces and attachments):
//! every span writes to its own `braintrust.parent`, or to the request's
//! `x-bt-parent` header when it has none. Each distinct target needs
//! `update`; the body is forwarded as received.

use super::pipeline::{Caller, Gateway};
use crate::error::GatewayError;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use loggate_authz::Decision;
use loggate_inspect::{self as inspect, OtelParent, OtlpEncoding, ProjectRef, Target, Targets};
use loggate_model::types::{ObjectRef, ObjectType, Permission};

/// The header naming the parent of spans that carry no attribute of their own.
const PARENT_HEADER: &str = "x-bt-parent";
/// The span attribute naming a span's own parent.
const PARENT_ATTRIBUTE: &str = "braintrust.parent";

/// The targets of an OTLP export: one per distinct parent, `update` each.
/// `rows` is the number of spans. A project named by a name the store does
/// not know is one the data plane will create: see [`new_project`].
pub async fn targets(gw: &Gateway, caller: &Caller, headers: &HeaderMap, raw: &[u8]) -> Result<Targets, GatewayError> {
    let encoding = otlp_encoding(headers)?;
    let content_encoding = headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("invalid"));
    let decoded = inspect::decode_otlp(raw, content_encoding, gw.config.server.max_body_bytes)?;
    let spans = inspect::otel_traces(&decoded, encoding)?;
    let mut parents: Vec<OtelParent> = Vec::with_capacity(spans.parents.len() + 1);
    for p in &spans.parents {
        parents.push(parse(p, PARENT_ATTRIBUTE)?);
    }
    if spans.unparented > 0 {
        parents.push(parse(parent_header(headers)?, PARENT_HEADER)?);
    }
    let mut targets: Vec<Target> = Vec::with_capacity(parents.len());
    for parent in parents {
        let target = match parent {
            OtelParent::ProjectLog(ProjectRef::Id(id)) => update(ObjectRef::new(ObjectType::ProjectLog, id)),
            OtelParent::ProjectLog(ProjectRef::Name(name)) => {
                match gw.project_by_name(caller, &name).await? {
                    Some(id) => update(ObjectRef::new(ObjectType::ProjectLog, &*id)),
                    // Authorized here (organization-level grants only); the
                    // `create` stays a target, so the audit trail names it.
                    None => new_project(gw, caller, spans.spans).await?,
                }
            }
            OtelParent::Experiment(id) => update(ObjectRef::new(ObjectType::Experiment, id)),
            OtelParent::PromptSession(id) => update(ObjectRef::new(ObjectType::PromptSession, id)),
        };
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    Ok(Targets { targets, rows: spans.spans })
}

/// A project the data plane will create from its name: the token must be
/// able to create projects in its organization and to write to a project
/// log that does not exist yet, which only organization-level grants do.
async fn new_project(gw: &Gateway, caller: &Caller, spans: usize) -> Result<Target, GatewayError> {
    let org = ObjectRef::new(ObjectType::Organization, caller.identity.org_id.clone());
    let create = Target { object: org, permission: Permission::Create };
    let denied = match gw.decide(caller, &create.object, Permission::Create).await? {
        Decision::Deny(reason) => Some(reason),
        Decision::Allow => match gw.decide_new(caller, ObjectType::ProjectLog, Permission::Update).await? {
            Decision::Deny(reason) => Some(reason),
            Decision::Allow => None,
        },
    };
    match denied {
        None => Ok(create),
        Some(reason) => {
            gw.count_otel_spans(false, spans);
            Err(gw.denial(caller, &create, reason))
        }
    }
}

fn update(object: ObjectRef) -> Target {
    Target { object, permission: Permission::Update }
}

/// `application/x-protobuf` or `application/json` (parameters allowed).
fn otlp_encoding(headers: &HeaderMap) -> Result<OtlpEncoding, GatewayError> {
    let essence =
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(|v| v.split(';').next().unwrap_or("").trim());
    match essence {
        Some(e) if e.eq_ignore_ascii_case("application/x-protobuf") => Ok(OtlpEncoding::Protobuf),
        Some(e) if e.eq_ignore_ascii_case("application/json") => Ok(OtlpEncoding::Json),
        _ => Err(GatewayError::UnsupportedMediaType(
            "OTLP Content-Type must be application/x-protobuf or application/json".into(),
        )),
    }
}

/// The one `x-bt-parent` header; spans without a parent of their own need it.
fn parent_header(headers: &HeaderMap) -> Result<&str, GatewayError> {
    let field = || Some(PARENT_HEADER.to_owned());
    let mut values = headers.get_all(PARENT_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let message = if headers.contains_key(PARENT_HEADER) {
            "x-bt-parent must appear once"
        } else {
            "spans without a braintrust.parent attribute need an x-bt-parent header (e.g. project_id:<id>)"
        };
        return Err(GatewayError::bad_request(field(), message));
    };
    value.to_str().map_err(|_| GatewayError::bad_request(field(), "x-bt-parent is not printable ASCII"))
}

fn parse(parent: &str, field: &str) -> Result<OtelParent, GatewayError> {
    inspect::parse_parent(parent).map_err(|message| GatewayError::bad_request(Some(field.to_owned()), message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn content_types_pick_the_encoding() {
        let enc = |ct| otlp_encoding(&headers(&[("content-type", ct)])).map_err(|e| e.code());
        assert_eq!(enc("application/x-protobuf"), Ok(OtlpEncoding::Protobuf));
        assert_eq!(enc("application/json; charset=utf-8"), Ok(OtlpEncoding::Json));
        assert_eq!(enc("text/plain"), Err("unsupported_media_type"));
        assert_eq!(otlp_encoding(&HeaderMap::new()).map_err(|e| e.code()), Err("unsupported_media_type"));
    }

    #[test]
    fn the_parent_header_must_be_there_once() {
        assert_eq!(parent_header(&headers(&[("x-bt-parent", "project_id:p")])).ok(), Some("project_id:p"));
        let missing = parent_header(&HeaderMap::new()).unwrap_err();
        assert!(matches!(&missing, GatewayError::BadRequest { field: Some(f), .. } if f == "x-bt-parent"));
        let twice = headers(&[("x-bt-parent", "project_id:p"), ("x-bt-parent", "project_id:q")]);
        assert_eq!(parent_header(&twice).unwrap_err().code(), "bad_request");
    }
}
