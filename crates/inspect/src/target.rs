//! What object a row writes to: named by the row itself (`/logs3`, overflow
//! requests), or fixed by the route and merely not contradicted by the row
//! (`/v1/.../insert`, `/feedback`, `/v1/insert`).

use std::borrow::Cow;

use loggate_model::types::{ObjectRef, ObjectType, Permission};

use super::InspectError;
use super::path::Path;
use super::row::RowFields;

/// The one target a self-describing row names: `project_id` with
/// `log_id: "g"` (project_log), `experiment_id`, or `dataset_id`.
///
/// A `project_id` without `log_id` is only the parent project and names
/// nothing; a `log_id` other than `"g"`, a `log_id` without `project_id`,
/// or a `prompt_session_id` is refused, as is a row naming two targets or
/// none.
pub(crate) fn named_target<'a>(f: RowFields<'a>, path: &Path<'_>) -> Result<(ObjectType, Cow<'a, str>), InspectError> {
    if f.prompt_session_id.is_some() {
        return Err(path.key("prompt_session_id").bad("prompt session rows are not supported"));
    }
    let mut found: Option<(ObjectType, Cow<'a, str>)> = None;
    let mut count = 0;
    match (f.project_id, f.log_id) {
        (Some(project), Some(log)) if log == "g" => {
            count += 1;
            found = Some((ObjectType::ProjectLog, project));
        }
        (Some(_), Some(_)) => {
            return Err(path
                .key("log_id")
                .bad("row has no recognizable target: log_id must be \"g\" for project logs"));
        }
        (None, Some(_)) => {
            return Err(path.key("log_id").bad("row has no recognizable target: log_id without project_id"));
        }
        _ => {}
    }
    if let Some(id) = f.experiment_id {
        count += 1;
        found = Some((ObjectType::Experiment, id));
    }
    if let Some(id) = f.dataset_id {
        count += 1;
        found = Some((ObjectType::Dataset, id));
    }
    match (count, found) {
        (1, Some(target)) => Ok(target),
        (0, _) | (_, None) => Err(path.bad(
            "row has no recognizable target (project_id with log_id \"g\", experiment_id or \
             dataset_id)",
        )),
        _ => Err(path.bad("row names more than one target")),
    }
}

/// Checks that a row of a route-addressed insert does not name an object
/// other than the route's: `experiment_id`/`dataset_id`/`project_id` of the
/// route's type must equal its id; `project_id` may name the parent project
/// of an experiment or dataset; `log_id` is allowed (as `"g"`) only for
/// project logs; ids of other object types are refused.
pub(crate) fn check_against(f: &RowFields<'_>, object: &ObjectRef, path: &Path<'_>) -> Result<(), InspectError> {
    let mismatch = |key: &str| path.key(key).bad(format!("names an object other than the route's {object}"));
    if f.prompt_session_id.is_some() {
        return Err(mismatch("prompt_session_id"));
    }
    let is = |t: ObjectType| object.object_type == t;
    let same = |id: &Option<Cow<'_, str>>| id.as_deref().is_none_or(|id| id == object.id);
    if let Some(id) = &f.experiment_id
        && !(is(ObjectType::Experiment) && id == &object.id)
    {
        return Err(mismatch("experiment_id"));
    }
    if let Some(id) = &f.dataset_id
        && !(is(ObjectType::Dataset) && id == &object.id)
    {
        return Err(mismatch("dataset_id"));
    }
    if is(ObjectType::ProjectLog) {
        if !same(&f.project_id) {
            return Err(mismatch("project_id"));
        }
        if f.log_id.as_deref().is_some_and(|l| l != "g") {
            return Err(mismatch("log_id"));
        }
    } else if f.log_id.is_some() {
        return Err(mismatch("log_id"));
    }
    Ok(())
}

/// `delete` for rows marked `_object_delete: true`, else `update`.
pub(crate) fn permission(f: &RowFields<'_>) -> Permission {
    if f.object_delete { Permission::Delete } else { Permission::Update }
}
