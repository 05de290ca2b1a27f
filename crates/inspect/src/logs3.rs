//! `POST /logs3`: `{"rows":[...],"api_version":2}`, or `rows` as an
//! overflow reference.

use super::collect::Collector;
use super::json::{Kind, Scanner};
use super::path::{At, Path};
use super::row::{read_row, string_value};
use super::target::{named_target, permission};
use super::walk::{self, elements, members, once};
use super::{InspectError, Logs3, Targets};

#[cfg(test)]
mod tests;

/// Inspects a `/logs3` body: each row's own target, with `update` (or
/// `delete` for `_object_delete: true`), or the key of an overflow
/// reference.
pub fn logs3(body: &[u8]) -> Result<Logs3, InspectError> {
    walk::body(body, |sc| {
        let root = Path::Root;
        let mut rows = None;
        members(sc, &root, |sc, key| {
            if key != "rows" {
                return sc.skip_value().at(&root.key(&key));
            }
            let here = root.key("rows");
            if rows.is_some() {
                return Err(here.bad("duplicate key 'rows'"));
            }
            rows = Some(match sc.kind().at(&here)? {
                Kind::Array => Logs3::Rows(self_addressed_rows(sc, &here)?),
                Kind::Object => overflow_reference(sc, &here)?,
                k => {
                    return Err(
                        here.bad(format!("must be an array of rows or an overflow reference, not {}", k.name()))
                    );
                }
            });
            Ok(())
        })?;
        rows.ok_or_else(|| root.key("rows").bad("missing 'rows'"))
    })
}

/// An array of rows that each name their target.
fn self_addressed_rows(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<Targets, InspectError> {
    let mut acc = Collector::default();
    elements(sc, path, |sc, i| {
        let here = path.index(i);
        let fields = read_row(sc, &here)?;
        let permission = permission(&fields);
        let (object_type, id) = named_target(fields, &here)?;
        acc.row();
        acc.add(object_type, id, permission);
        Ok(())
    })?;
    Ok(acc.finish())
}

/// `{"type":"logs3_overflow","key":K,...}`.
fn overflow_reference(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<Logs3, InspectError> {
    let (mut seen_type, mut key) = (false, None);
    members(sc, path, |sc, k| {
        let here = path.key(&k);
        match &*k {
            "type" => {
                once(&mut seen_type, &here)?;
                if string_value(sc, &here)? != "logs3_overflow" {
                    return Err(here.bad("must be \"logs3_overflow\""));
                }
            }
            "key" => {
                if key.is_some() {
                    return Err(here.bad("duplicate key"));
                }
                key = Some(string_value(sc, &here)?.into_owned());
            }
            _ => sc.skip_value().at(&here)?,
        }
        Ok(())
    })?;
    if !seen_type {
        return Err(path.key("type").bad("missing 'type' of overflow reference"));
    }
    let key = key.ok_or_else(|| path.key("key").bad("missing 'key' of overflow reference"))?;
    Ok(Logs3::OverflowRef { key })
}
