//! OTLP/JSON trace exports: the whole body passes the crate's validating
//! JSON scanner (UTF-8, syntax of every value, nesting of at most
//! `MAX_DEPTH`), and the walk descends
//! `resourceSpans[].{resource, scopeSpans[].{scope, spans[]}}` to every
//! attribute list (resource, scope, span, event, link) to check value
//! levels, reading `braintrust.parent` in span attributes.
//!
//! Rules of the walk, in the objects it descends into:
//! - a field may be spelled lowerCamelCase or snake_case (proto3 JSON
//!   parsers accept both), and may appear once in either spelling: a
//!   second occurrence (of any key) is refused, since another parser could
//!   keep the other one;
//! - `null` for a field is the field left out;
//! - an `AnyValue` sets at most one member of its oneof (`null` members
//!   aside): two would be ambiguous the same way;
//! - where the walk reads, types are checked: lists are arrays, their
//!   elements objects, `key` and `stringValue` strings; fields the walk
//!   does not read are only checked for syntax.

mod fields;

use std::borrow::Cow;

use super::super::InspectError;
use super::super::json::{Kind, Scanner};
use super::super::path::{At, Path};
use super::super::row::{expect_object, string_value};
use super::super::walk::{self, elements, members};
use super::tally::Tally;
use super::{MAX_VALUE_LEVELS, OtelSpans, PARENT_KEY, parent_not_string, too_deep};
use fields::{Fields, Seen};

#[cfg(test)]
mod tests;

/// Scans an OTLP/JSON `ExportTraceServiceRequest`.
pub(super) fn scan(body: &[u8]) -> Result<OtelSpans, InspectError> {
    walk::body(body, |sc| {
        let mut tally = Tally::default();
        object(sc, &Path::Root, fields::REQUEST, |sc, _, here| {
            repeated(sc, here, |sc, here| resource_spans(sc, here, &mut tally))
        })?;
        Ok(tally.finish())
    })
}

fn resource_spans<'a>(sc: &mut Scanner<'a>, path: &Path<'_>, tally: &mut Tally<'a>) -> Result<(), InspectError> {
    object(sc, path, fields::RESOURCE_SPANS, |sc, field, here| match field {
        0 => optional(sc, here, |sc| {
            object(sc, here, fields::RESOURCE, |sc, field, at| match field {
                0 => attributes(sc, at, |_, _, _| Ok(())),
                _ => sc.skip_value().at(at),
            })
        }),
        1 => repeated(sc, here, |sc, here| scope_spans(sc, here, tally)),
        _ => sc.skip_value().at(here),
    })
}

fn scope_spans<'a>(sc: &mut Scanner<'a>, path: &Path<'_>, tally: &mut Tally<'a>) -> Result<(), InspectError> {
    object(sc, path, fields::SCOPE_SPANS, |sc, field, here| match field {
        0 => optional(sc, here, |sc| {
            object(sc, here, fields::SCOPE, |sc, field, at| match field {
                2 => attributes(sc, at, |_, _, _| Ok(())),
                _ => sc.skip_value().at(at),
            })
        }),
        1 => repeated(sc, here, |sc, here| span(sc, here, tally)),
        _ => sc.skip_value().at(here),
    })
}

fn span<'a>(sc: &mut Scanner<'a>, path: &Path<'_>, tally: &mut Tally<'a>) -> Result<(), InspectError> {
    let mut parents = 0;
    object(sc, path, fields::SPAN, |sc, field, here| match field {
        9 => attributes(sc, here, |key, value, at| {
            if key != PARENT_KEY {
                return Ok(());
            }
            parents += 1;
            match value {
                Some(s) => {
                    tally.parent(s);
                    Ok(())
                }
                None => Err(parent_not_string(at.render())),
            }
        }),
        11 => repeated(sc, here, |sc, here| nested_attributes(sc, here, fields::EVENT, 2)),
        13 => repeated(sc, here, |sc, here| nested_attributes(sc, here, fields::LINK, 3)),
        _ => sc.skip_value().at(here),
    })?;
    tally.span(parents);
    Ok(())
}

/// An event or a link: a message whose field `attributes` is at `index`.
fn nested_attributes(sc: &mut Scanner<'_>, path: &Path<'_>, fields: Fields, index: usize) -> Result<(), InspectError> {
    object(sc, path, fields, |sc, field, here| {
        if field == index { attributes(sc, here, |_, _, _| Ok(())) } else { sc.skip_value().at(here) }
    })
}

/// An attribute list: `each` gets every attribute's key, its value when
/// that is a `stringValue`, and its place.
fn attributes<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    mut each: impl FnMut(Cow<'a, str>, Option<Cow<'a, str>>, &Path<'_>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    repeated(sc, path, |sc, here| {
        let (key, value) = key_value(sc, here, 0, here)?;
        each(key, value, here)
    })
}

/// A `KeyValue` whose value is inside `level` containers of the attribute
/// at `attribute`: its key (`""` when absent) and its string value.
fn key_value<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    level: u32,
    attribute: &Path<'_>,
) -> Result<(Cow<'a, str>, Option<Cow<'a, str>>), InspectError> {
    let (mut key, mut string) = (Cow::Borrowed(""), None);
    object(sc, path, fields::KEY_VALUE, |sc, field, here| match field {
        0 => {
            if !null(sc, here)? {
                key = string_value(sc, here)?;
            }
            Ok(())
        }
        1 => optional(sc, here, |sc| {
            string = any_value(sc, here, level, attribute)?;
            Ok(())
        }),
        _ => sc.skip_value().at(here),
    })?;
    Ok((key, string))
}

/// An `AnyValue` inside `level` containers: its `stringValue`, if that is
/// the member it sets.
fn any_value<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    level: u32,
    attribute: &Path<'_>,
) -> Result<Option<Cow<'a, str>>, InspectError> {
    let (mut set, mut string) = (false, None);
    object(sc, path, fields::ANY_VALUE, |sc, member, here| {
        if null(sc, here)? {
            return Ok(());
        }
        if std::mem::replace(&mut set, true) {
            return Err(here.bad("a value sets more than one member of its oneof"));
        }
        match member {
            0 => string = Some(string_value(sc, here)?),
            4 | 5 => {
                if level + 1 > MAX_VALUE_LEVELS {
                    return Err(too_deep(attribute.render()));
                }
                let kvlist = member == 5;
                optional(sc, here, |sc| {
                    object(sc, here, fields::VALUES, |sc, _, values| {
                        repeated(sc, values, |sc, element| {
                            if kvlist {
                                key_value(sc, element, level + 1, attribute).map(drop)
                            } else {
                                any_value(sc, element, level + 1, attribute).map(drop)
                            }
                        })
                    })
                })?;
            }
            _ => sc.skip_value().at(here)?,
        }
        Ok(())
    })?;
    Ok(string)
}

/// Calls `each` with the index (in `fields`) of every field of the object
/// at the cursor and its place, the cursor on its value; skips (checking)
/// unknown keys; refuses a field or key given twice.
fn object<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    fields: Fields,
    mut each: impl FnMut(&mut Scanner<'a>, usize, &Path<'_>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    let mut seen = Seen::default();
    members(sc, path, |sc, key| {
        let here = path.key(&key);
        match seen.field(fields, key.clone(), path)? {
            Some(i) => each(sc, i, &here),
            None => sc.skip_value().at(&here),
        }
    })
}

/// A repeated field: `null` or an array of objects.
fn repeated<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    mut each: impl FnMut(&mut Scanner<'a>, &Path<'_>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    if null(sc, path)? {
        return Ok(());
    }
    elements(sc, path, |sc, i| {
        let here = path.index(i);
        expect_object(sc, &here)?;
        each(sc, &here)
    })
}

/// A message field: `null` or an object.
fn optional<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    each: impl FnOnce(&mut Scanner<'a>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    if null(sc, path)? {
        return Ok(());
    }
    expect_object(sc, path)?;
    each(sc)
}

/// Consumes a `null` at the cursor, if that is what is there.
fn null(sc: &mut Scanner<'_>, path: &Path<'_>) -> Result<bool, InspectError> {
    if sc.kind().at(path)? == Kind::Null {
        sc.null().at(path)?;
        return Ok(true);
    }
    Ok(false)
}
