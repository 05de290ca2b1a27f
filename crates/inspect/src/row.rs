//! Reading one row (event, feedback item, overflow `object_ids`): its
//! target fields are typed and may appear once; every other member is
//! checked and skipped.

use std::borrow::Cow;

use super::InspectError;
use super::json::{Kind, Scanner};
use super::path::{At, Path};

/// The target fields of a row. Ids are strings; `_object_delete` is a
/// boolean, `null` meaning absent (the OpenAPI schema makes it nullable).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RowFields<'a> {
    pub project_id: Option<Cow<'a, str>>,
    pub log_id: Option<Cow<'a, str>>,
    pub experiment_id: Option<Cow<'a, str>>,
    pub dataset_id: Option<Cow<'a, str>>,
    /// Not a target loggate authorizes; recorded so a row carrying it can be
    /// refused rather than forwarded to an object nobody checked.
    pub prompt_session_id: Option<Cow<'a, str>>,
    pub object_delete: bool,
}

const OBJECT_DELETE: usize = 5;

fn slot(key: &str) -> Option<usize> {
    Some(match key {
        "project_id" => 0,
        "log_id" => 1,
        "experiment_id" => 2,
        "dataset_id" => 3,
        "prompt_session_id" => 4,
        "_object_delete" => OBJECT_DELETE,
        _ => return None,
    })
}

/// Reads the row object at the cursor; `path` names the row.
pub(crate) fn read_row<'a>(sc: &mut Scanner<'a>, path: &Path<'_>) -> Result<RowFields<'a>, InspectError> {
    expect_object(sc, path)?;
    sc.begin_object().at(path)?;
    let mut fields = RowFields::default();
    let mut seen = 0u8;
    let mut first = true;
    while let Some(key) = sc.next_key(first).at(path)? {
        first = false;
        let here = path.key(&key);
        let Some(slot) = slot(&key) else {
            sc.skip_value().at(&here)?;
            continue;
        };
        if seen & (1 << slot) != 0 {
            return Err(here.bad(format!("duplicate key '{key}'")));
        }
        seen |= 1 << slot;
        if slot == OBJECT_DELETE {
            fields.object_delete = nullable_bool(sc, &here)?;
            continue;
        }
        let value = string_value(sc, &here)?;
        let field = match slot {
            0 => &mut fields.project_id,
            1 => &mut fields.log_id,
            2 => &mut fields.experiment_id,
            3 => &mut fields.dataset_id,
            _ => &mut fields.prompt_session_id,
        };
        *field = Some(value);
    }
    Ok(fields)
}

/// Refuses a value at the cursor that is not an object.
pub(crate) fn expect_object(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<(), InspectError> {
    match sc.kind().at(path)? {
        Kind::Object => Ok(()),
        k => Err(path.bad(format!("must be an object, not {}", k.name()))),
    }
}

/// Refuses a value at the cursor that is not an array.
pub(crate) fn expect_array(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<(), InspectError> {
    match sc.kind().at(path)? {
        Kind::Array => Ok(()),
        k => Err(path.bad(format!("must be an array, not {}", k.name()))),
    }
}

/// Reads a string value, refusing any other type.
pub(crate) fn string_value<'a>(sc: &mut Scanner<'a>, path: &Path<'_>) -> Result<Cow<'a, str>, InspectError> {
    match sc.kind().at(path)? {
        Kind::String => sc.string().at(path),
        k => Err(path.bad(format!("must be a string, not {}", k.name()))),
    }
}

/// Reads a boolean where `null` means false, refusing any other type.
pub(crate) fn nullable_bool(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<bool, InspectError> {
    match sc.kind().at(path)? {
        Kind::Bool => sc.boolean().at(path),
        Kind::Null => sc.null().at(path).map(|()| false),
        k => Err(path.bad(format!("must be a boolean, not {}", k.name()))),
    }
}
