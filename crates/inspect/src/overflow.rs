//! `POST /logs3/overflow`: `{"content_type","size_bytes","rows":[{"object_ids":
//! {...},"is_delete":bool,"input_row":{"byte_size":N}}]}`.

use super::collect::Collector;
use super::json::Scanner;
use super::path::{At, Path};
use super::row::{nullable_bool, read_row};
use super::target::named_target;
use super::walk::{self, elements, members, once};
use super::{InspectError, Targets};
use loggate_model::types::Permission;

#[cfg(test)]
mod tests;

/// Inspects an overflow upload request: each row's `object_ids` names its
/// target (as a `/logs3` row does); `update`, or `delete` for `is_delete`.
pub fn overflow_request(body: &[u8]) -> Result<Targets, InspectError> {
    walk::body(body, |sc| {
        let root = Path::Root;
        let mut acc = Collector::default();
        let mut seen = false;
        members(sc, &root, |sc, key| {
            let here = root.key(&key);
            if key != "rows" {
                return sc.skip_value().at(&here);
            }
            once(&mut seen, &here)?;
            elements(sc, &here, |sc, i| overflow_row(sc, &here.index(i), &mut acc))
        })?;
        if !seen {
            return Err(root.key("rows").bad("missing 'rows'"));
        }
        Ok(acc.finish())
    })
}

fn overflow_row<'a>(sc: &mut Scanner<'a>, path: &Path<'_>, acc: &mut Collector<'a>) -> Result<(), InspectError> {
    let (mut target, mut seen_delete, mut is_delete) = (None, false, false);
    members(sc, path, |sc, key| {
        let here = path.key(&key);
        match &*key {
            "object_ids" => {
                if target.is_some() {
                    return Err(here.bad("duplicate key"));
                }
                let fields = read_row(sc, &here)?;
                target = Some(named_target(fields, &here)?);
            }
            "is_delete" => {
                once(&mut seen_delete, &here)?;
                is_delete = nullable_bool(sc, &here)?;
            }
            _ => sc.skip_value().at(&here)?,
        }
        Ok(())
    })?;
    let (object_type, id) = target.ok_or_else(|| path.key("object_ids").bad("missing 'object_ids'"))?;
    acc.row();
    acc.add(object_type, id, if is_delete { Permission::Delete } else { Permission::Update });
    Ok(())
}
