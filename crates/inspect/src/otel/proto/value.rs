//! Attribute values: `KeyValue`, `AnyValue` and its containers, resolved as
//! prost resolves fields that appear more than once.
//!
//! - KeyValue { 1 key: string, 2 value: AnyValue, 3 key_strindex: int32 }
//! - AnyValue { oneof value { 1 string_value: string, 2 bool_value: bool,
//!   3 int_value: int64, 4 double_value: double, 5 array_value: ArrayValue,
//!   6 kvlist_value: KeyValueList, 7 bytes_value: bytes,
//!   8 string_value_strindex: int32 } }
//! - ArrayValue { 1 values: AnyValue* }
//! - KeyValueList { 1 values: KeyValue* }
//!
//! Proto semantics, as prost implements them: a scalar or string field
//! given twice keeps the last (so does `key`); a message field given twice
//! is merged (`value` of a KeyValue: two AnyValue messages are one); in a
//! oneof the last member set wins, except that a message member set again
//! while it is the current one merges into it (two `kvlist_value`s in a
//! row are one list with the elements of both, a `string_value` between
//! them drops the first). The level of a value (see `MAX_VALUE_LEVELS`) is
//! that of what remains after all this, so it is known only once the
//! message around it ends.

use super::super::super::InspectError;
use super::super::super::path::Path;
use super::super::wire::Reader;
use super::At;

/// The member of an `AnyValue` oneof set last.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in super::super) enum Member<'a> {
    #[default]
    None,
    String(&'a str),
    /// Bool, int, double, bytes or a string-table index.
    Scalar,
    /// An `array_value` whose elements are at most `inner` levels deep.
    Array {
        inner: u32,
    },
    /// A `kvlist_value` whose values are at most `inner` levels deep.
    Kvlist {
        inner: u32,
    },
}

/// An `AnyValue` as decoded so far (possibly over several messages that
/// merge into one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(in super::super) struct Value<'a> {
    pub member: Member<'a>,
}

impl Value<'_> {
    /// The level of the value (0 for a scalar or none, 1 + the deepest
    /// element for a container).
    #[inline]
    pub fn levels(&self) -> u32 {
        match self.member {
            Member::Array { inner } | Member::Kvlist { inner } => 1 + inner,
            _ => 0,
        }
    }
}

/// A `KeyValue` message whose fields have `budget`: its key (the last one
/// given, `""` when none) and its value.
pub(super) fn key_value<'a>(
    mut r: Reader<'a>,
    budget: u32,
    path: &Path<'_>,
) -> Result<(&'a str, Value<'a>), InspectError> {
    let mut key = "";
    let mut value = Value::default();
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => key = r.string_field(wt).at(path)?,
            2 => {
                let here = path.key("value");
                let m = r.message(wt, budget).at(&here)?;
                any_value(m, budget - 1, &here, &mut value)?;
            }
            3 => r.varint_field(wt).at(path)?,
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok((key, value))
}

/// Merges one `AnyValue` message (fields with `budget`) into `value`.
fn any_value<'a>(mut r: Reader<'a>, budget: u32, path: &Path<'_>, value: &mut Value<'a>) -> Result<(), InspectError> {
    while let Some((tag, wt)) = r.next_key().at(path)? {
        value.member = match tag {
            1 => Member::String(r.string_field(wt).at(path)?),
            2 | 3 | 8 => {
                r.varint_field(wt).at(path)?;
                Member::Scalar
            }
            4 => {
                r.fixed64_field(wt).at(path)?;
                Member::Scalar
            }
            7 => {
                r.bytes_field(wt).at(path)?;
                Member::Scalar
            }
            5 => {
                let here = path.key("arrayValue");
                let m = r.message(wt, budget).at(&here)?;
                let inner = array_value(m, budget - 1, &here)?;
                match value.member {
                    Member::Array { inner: before } => Member::Array { inner: before.max(inner) },
                    _ => Member::Array { inner },
                }
            }
            6 => {
                let here = path.key("kvlistValue");
                let m = r.message(wt, budget).at(&here)?;
                let inner = kvlist_value(m, budget - 1, &here)?;
                match value.member {
                    Member::Kvlist { inner: before } => Member::Kvlist { inner: before.max(inner) },
                    _ => Member::Kvlist { inner },
                }
            }
            _ => {
                r.skip(tag, wt, budget).at(path)?;
                continue;
            }
        };
    }
    Ok(())
}

/// An `ArrayValue` message: the deepest level of its elements.
fn array_value(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<u32, InspectError> {
    let list = path.key("values");
    let (mut i, mut deepest) = (0, 0);
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => {
                let here = list.index(i);
                i += 1;
                let m = r.message(wt, budget).at(&here)?;
                // Each element is a value of its own: nothing merges across.
                let mut element = Value::default();
                any_value(m, budget - 1, &here, &mut element)?;
                deepest = deepest.max(element.levels());
            }
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(deepest)
}

/// A `KeyValueList` message: the deepest level of its values.
fn kvlist_value(mut r: Reader<'_>, budget: u32, path: &Path<'_>) -> Result<u32, InspectError> {
    let list = path.key("values");
    let (mut i, mut deepest) = (0, 0);
    while let Some((tag, wt)) = r.next_key().at(path)? {
        match tag {
            1 => {
                let here = list.index(i);
                i += 1;
                let m = r.message(wt, budget).at(&here)?;
                let (_, element) = key_value(m, budget - 1, &here)?;
                deepest = deepest.max(element.levels());
            }
            _ => r.skip(tag, wt, budget).at(path)?,
        }
    }
    Ok(deepest)
}
