//! `POST /v1/{project_logs|experiment|dataset}/{id}/insert` (`events`) and
//! `/feedback` (`feedback`): rows addressed by the route.

use std::borrow::Cow;

use loggate_model::types::ObjectRef;

use super::collect::Collector;
use super::json::Scanner;
use super::path::{At, Path};
use super::row::read_row;
use super::target::{check_against, permission};
use super::walk::{self, elements, members, once};
use super::{InspectError, Targets};

#[cfg(test)]
mod tests;

/// Inspects an insert body `{"events":[...]}` for `object`: `update` on it
/// (`delete` for `_object_delete: true` events).
pub fn events(body: &[u8], object: &ObjectRef) -> Result<Targets, InspectError> {
    addressed(body, object, "events")
}

/// Inspects a feedback body `{"feedback":[...]}` for `object`: `update` on
/// it. Items are checked like events (an item with `_object_delete: true`
/// also needs `delete`).
pub fn feedback(body: &[u8], object: &ObjectRef) -> Result<Targets, InspectError> {
    addressed(body, object, "feedback")
}

fn addressed(body: &[u8], object: &ObjectRef, list: &str) -> Result<Targets, InspectError> {
    walk::body(body, |sc| {
        let root = Path::Root;
        let id = Cow::Borrowed(object.id.as_str());
        let mut acc = Collector::default();
        let mut seen = false;
        members(sc, &root, |sc, key| {
            let here = root.key(&key);
            if key != list {
                return sc.skip_value().at(&here);
            }
            once(&mut seen, &here)?;
            addressed_rows(sc, &here, object, id.clone(), &mut acc)
        })?;
        if !seen {
            return Err(root.key(list).bad(format!("missing '{list}'")));
        }
        Ok(acc.finish())
    })
}

/// An array of rows written to `object` (whose id is `id`, borrowed from
/// wherever the object came from).
pub(crate) fn addressed_rows<'c>(
    sc: &mut Scanner<'_>,
    path: &Path<'_>,
    object: &ObjectRef,
    id: Cow<'c, str>,
    acc: &mut Collector<'c>,
) -> Result<(), InspectError> {
    elements(sc, path, |sc, i| {
        let here = path.index(i);
        let fields = read_row(sc, &here)?;
        check_against(&fields, object, &here)?;
        acc.row();
        acc.add(object.object_type, id.clone(), permission(&fields));
        Ok(())
    })
}
