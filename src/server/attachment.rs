//! Attachment routes (contract: OpenTelemetry traces and attachments).
//! A blob belongs to an organization, not to one object: the row that
//! references it is authorized on its own write route. Here the caller
//! must be of that organization and able to write (upload, status) or read
//! (download) somewhere in it, so a create-only or read-only token stores
//! nothing. The signed URL the data plane answers with passes through; the
//! object store itself is not behind loggate.

use super::pipeline::{Caller, Gateway};
use super::query;
use super::register::{opt_str, other_org, parse_object};
use crate::error::GatewayError;
use crate::policy::PolicyStore;
use loggate_authz::{Decision, DenyReason, Principal};
use loggate_inspect::{Target, Targets};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use serde_json::{Map, Value};

/// Objects whose `update` lets a caller store blobs.
const WRITABLE: [ObjectType; 3] = [ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
/// Objects whose `read` lets a caller fetch blobs.
const READABLE: [ObjectType; 4] =
    [ObjectType::Project, ObjectType::ProjectLog, ObjectType::Experiment, ObjectType::Dataset];
/// Candidates decided per request at most: a principal with grants on more
/// objects than this has one among the first that allows (fail closed
/// otherwise).
const MAX_CANDIDATES: usize = 64;

/// `POST /attachment` `{key, filename, content_type, org_id}`.
pub async fn upload(gw: &Gateway, caller: &Caller, body: &[u8]) -> Result<Targets, GatewayError> {
    let map = parse_object(body)?;
    required_key(&map)?;
    own_org(caller, opt_str(&map, "org_id")?)?;
    somewhere(gw, caller, Permission::Update, &WRITABLE).await
}

/// `POST /attachment/status` `{key, org_id, status: {upload_status, error_message?}}`.
pub async fn status(gw: &Gateway, caller: &Caller, body: &[u8]) -> Result<Targets, GatewayError> {
    let map = parse_object(body)?;
    required_key(&map)?;
    upload_status(&map)?;
    own_org(caller, opt_str(&map, "org_id")?)?;
    somewhere(gw, caller, Permission::Update, &WRITABLE).await
}

/// `GET /attachment?key=…&org_id=…`.
pub async fn download(gw: &Gateway, caller: &Caller, query: Option<&str>) -> Result<Targets, GatewayError> {
    own_org(caller, query::optional(query, "org_id")?.as_deref())?;
    somewhere(gw, caller, Permission::Read, &READABLE).await
}

fn required_key(map: &Map<String, Value>) -> Result<(), GatewayError> {
    match opt_str(map, "key")? {
        Some(k) if !k.is_empty() => Ok(()),
        _ => Err(GatewayError::bad_request(Some("key".into()), "key is required")),
    }
}

/// `status` is an object whose `upload_status` is "done" or "error".
fn upload_status(map: &Map<String, Value>) -> Result<(), GatewayError> {
    let field = |f: &str| Some(f.to_owned());
    let Some(Value::Object(status)) = map.get("status") else {
        return Err(GatewayError::bad_request(
            field("status"),
            "status must be an object {\"upload_status\": \"done\"|\"error\"}",
        ));
    };
    match status.get("upload_status") {
        Some(Value::String(s)) if s == "done" || s == "error" => {}
        _ => {
            return Err(GatewayError::bad_request(
                field("status.upload_status"),
                "upload_status must be \"done\" or \"error\"",
            ));
        }
    }
    match status.get("error_message") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(_) => Err(GatewayError::bad_request(field("status.error_message"), "error_message must be a string")),
    }
}

/// An empty or missing `org_id` means the token's own organization.
fn own_org(caller: &Caller, org_id: Option<&str>) -> Result<(), GatewayError> {
    match org_id {
        Some(id) if !id.is_empty() && id != caller.identity.org_id => Err(other_org()),
        _ => Ok(()),
    }
}

/// `permission` on at least one object of `types` in the caller's
/// organization: the candidates the store lists, each decided (and cached)
/// like any other decision. The object found is the request's target, so
/// the audit trail names it.
async fn somewhere(
    gw: &Gateway,
    caller: &Caller,
    permission: Permission,
    types: &[ObjectType],
) -> Result<Targets, GatewayError> {
    let principal = Principal::from(&*caller.identity);
    let candidates = gw.store.candidates(&principal, types, MAX_CANDIDATES).await?;
    let mut reason = DenyReason::MissingPermission;
    for object in candidates {
        match gw.decide(caller, &object, permission).await? {
            Decision::Allow => return Ok(Targets { targets: vec![Target { object, permission }], rows: 0 }),
            // The ACLs granting something a scope refuses is the scope's denial.
            Decision::Deny(DenyReason::ScopeDenied) => reason = DenyReason::ScopeDenied,
            Decision::Deny(_) => {}
        }
    }
    let org = ObjectRef::new(ObjectType::Organization, caller.identity.org_id.clone());
    Err(gw.denial(caller, &Target { object: org, permission }, reason))
}
