//! Lookup-or-create routes (contract: Routes): projects by name, experiments and
//! datasets by name within a project. An existing object needs a grant on
//! it; a new one needs `create` on its parent. Other organizations: 403.

use super::pipeline::{Caller, Gateway};
use super::routes::Route;
use crate::error::GatewayError;
use crate::policy::PolicyStore;
use crate::policy::discovery::{Child, Creator, Discovery};
use loggate_authz::DenyReason;
use loggate_inspect::{Target, Targets};
use loggate_model::doc::{Dataset, Experiment, Project};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use serde_json::Value;

/// Parses a small JSON object body after the full "Bodies" checks of the
/// contract (UTF-8, depth, syntax of every value).
pub(super) fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, GatewayError> {
    loggate_inspect::validate_json(body)?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(GatewayError::bad_request(None, "body must be a JSON object")),
        Err(e) => Err(GatewayError::bad_request(None, format!("malformed JSON: {e}"))),
    }
}

/// An optional string field; present with another type is 400.
pub(super) fn opt_str<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, GatewayError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GatewayError::bad_request(Some(field.to_owned()), format!("{field} must be a string"))),
    }
}

fn req_str<'a>(map: &'a serde_json::Map<String, Value>, field: &str) -> Result<&'a str, GatewayError> {
    opt_str(map, field)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| GatewayError::bad_request(Some(field.to_owned()), format!("{field} is required")))
}

fn store_error(_: crate::policy::StoreError) -> GatewayError {
    GatewayError::PolicyUnavailable
}

pub(super) fn other_org() -> GatewayError {
    GatewayError::Forbidden { message: "the token's organization does not match the requested organization".into() }
}

/// Checks the org named in the body (by name or id) is the caller's.
async fn check_org(
    gw: &Gateway,
    caller: &Caller,
    org_name: Option<&str>,
    org_id: Option<&str>,
) -> Result<(), GatewayError> {
    if org_id.is_some_and(|id| id != caller.identity.org_id) {
        return Err(other_org());
    }
    if let Some(name) = org_name {
        let own = gw.store.org_name(&caller.identity.org_id).await.map_err(store_error)?;
        if own.as_deref() != Some(name) {
            return Err(other_org());
        }
    }
    Ok(())
}

/// `POST /v1/project` and `POST /api/project/register`.
pub async fn project(gw: &Gateway, caller: &Caller, route: &Route, body: &[u8]) -> Result<Targets, GatewayError> {
    let map = parse_object(body)?;
    let name = match route {
        Route::ProjectCreate => {
            check_org(gw, caller, opt_str(&map, "org_name")?, None).await?;
            req_str(&map, "name")?
        }
        _ => {
            check_org(gw, caller, None, opt_str(&map, "org_id")?).await?;
            req_str(&map, "project_name")?
        }
    };
    match gw.store.project_by_name(&caller.identity.org_id, name).await.map_err(store_error)? {
        Some(id) => any_on_project(gw, caller, &id).await,
        None => Ok(create_on(ObjectRef::new(ObjectType::Organization, caller.identity.org_id.clone()))),
    }
}

/// Lookup of an existing project: any permission on the project or its
/// project_log will do.
pub async fn any_on_project(gw: &Gateway, caller: &Caller, project_id: &str) -> Result<Targets, GatewayError> {
    let project = ObjectRef::new(ObjectType::Project, project_id);
    let log = ObjectRef::new(ObjectType::ProjectLog, project_id);
    let mut reason = DenyReason::MissingPermission;
    for object in [&project, &log] {
        for permission in Permission::ALL {
            match gw.decide(caller, object, permission).await? {
                loggate_authz::Decision::Allow => return Ok(Targets::default()),
                // The ACLs allowing some permission the scope refuses is scope_denied, whatever the order.
                loggate_authz::Decision::Deny(r) => reason = if reason == DenyReason::ScopeDenied { reason } else { r },
            }
        }
    }
    Err(gw.denial(caller, &Target { object: project, permission: Permission::Read }, reason))
}

fn create_on(object: ObjectRef) -> Targets {
    Targets { targets: vec![Target { object, permission: Permission::Create }], rows: 0 }
}

/// `POST /api/experiment/register` and `/api/dataset/register`: an existing
/// object needs `update`, a new one `create` on its project (and a new
/// project `create` on the organization).
pub async fn object(gw: &Gateway, caller: &Caller, route: &Route, body: &[u8]) -> Result<Targets, GatewayError> {
    let map = parse_object(body)?;
    check_org(gw, caller, opt_str(&map, "org_name")?, opt_str(&map, "org_id")?).await?;
    let org = &caller.identity.org_id;
    let project_id = match opt_str(&map, "project_id")? {
        Some(id) => Some(id.to_owned()),
        None => {
            let name = req_str(&map, "project_name")?;
            gw.store.project_by_name(org, name).await.map_err(store_error)?
        }
    };
    let Some(project_id) = project_id else {
        return Ok(create_on(ObjectRef::new(ObjectType::Organization, org.clone())));
    };
    let (name_field, object_type) = match route {
        Route::ExperimentRegister => ("experiment_name", ObjectType::Experiment),
        _ => ("dataset_name", ObjectType::Dataset),
    };
    let existing = match opt_str(&map, name_field)? {
        Some(name) => match object_type {
            ObjectType::Experiment => gw.store.experiment_by_name(&project_id, name).await,
            _ => gw.store.dataset_by_name(&project_id, name).await,
        }
        .map_err(store_error)?,
        None => None,
    };
    Ok(match existing {
        Some(id) => Targets {
            targets: vec![Target { object: ObjectRef::new(object_type, id), permission: Permission::Update }],
            rows: 0,
        },
        None => create_on(ObjectRef::new(ObjectType::Project, project_id)),
    })
}

/// Discovery: the project (and experiment or dataset) a register answer
/// names becomes known, so the caller's rows for it can be authorized; what
/// the caller was authorized to create gets the creator's owner grant,
/// unless the data plane says it found the object existing.
pub async fn learn_from_response(gw: &Gateway, caller: &Caller, route: &Route, targets: &Targets, response: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(response) else {
        return;
    };
    let p = v.get("project").unwrap_or(&v);
    let field = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(id), Some(name)) = (field(p, "id"), field(p, "name")) else {
        return;
    };
    let org_id = field(p, "org_id").unwrap_or_else(|| caller.identity.org_id.clone());
    if org_id != caller.identity.org_id {
        return;
    }
    let project = Project::new(id, org_id, name);
    let child_of = |key: &str| {
        let o = v.get(key)?;
        let (id, name) = (field(o, "id")?, field(o, "name")?);
        let project_id = field(o, "project_id").unwrap_or_else(|| project.id.clone());
        Some((id, project_id, name))
    };
    let child = match route {
        Route::ExperimentRegister => {
            child_of("experiment").map(|(i, p, n)| Child::Experiment(Experiment::new(i, p, n)))
        }
        Route::DatasetRegister => child_of("dataset").map(|(i, p, n)| Child::Dataset(Dataset::new(i, p, n))),
        _ => None,
    };
    // What loggate authorized as a creation: `create` on the organization
    // made the project (and its first experiment or dataset), `create` on
    // the project made the experiment or dataset.
    let created_on = targets.targets.iter().find(|t| t.permission == Permission::Create).map(|t| t.object.object_type);
    let found_existing = v.get("found_existing").and_then(Value::as_bool).unwrap_or(false);
    let mut created = Vec::new();
    if !found_existing {
        if created_on == Some(ObjectType::Organization) {
            created.push(ObjectRef::new(ObjectType::Project, project.id.clone()));
        }
        if matches!(created_on, Some(ObjectType::Organization | ObjectType::Project))
            && let Some(child) = &child
        {
            created.push(child.object());
        }
    }
    let creator = (!created.is_empty()).then(|| Creator { user_id: caller.identity.user_id.clone(), created });
    match gw.store.learn(Discovery { project, child, creator }).await {
        // A decision cached before the object was known (a denial of the
        // caller's first write, say) must not outlive this answer: the
        // caller's next request writes to what it just registered. New
        // objects are rare (an SDK's first run against a project), so the
        // whole cache goes rather than a search for what named them.
        Ok(true) => gw.cache.invalidate_all(),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not record a discovered project"),
    }
}
