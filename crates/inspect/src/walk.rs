//! Driving the scanner over a whole body and over the members/elements of
//! the containers an inspector descends into.

use std::borrow::Cow;

use super::InspectError;
use super::json::Scanner;
use super::path::{At, Path};
use super::row::{expect_array, expect_object};

/// Checks UTF-8, runs `inspect` on the top-level value, then requires the
/// end of the body.
pub(crate) fn body<'a, T>(
    body: &'a [u8],
    inspect: impl FnOnce(&mut Scanner<'a>) -> Result<T, InspectError>,
) -> Result<T, InspectError> {
    let src = utf8(body)?;
    let mut sc = Scanner::new(src);
    let out = inspect(&mut sc)?;
    sc.end().at(&Path::Root)?;
    Ok(out)
}

/// The body as text. `simdutf8` checks it with SIMD (several times the
/// speed of `std::str::from_utf8` on non-ASCII text such as LLM output);
/// only a refused body is checked again, by std, for the error's offset.
fn utf8(body: &[u8]) -> Result<&str, InspectError> {
    match simdutf8::basic::from_utf8(body) {
        Ok(src) => Ok(src),
        Err(_) => std::str::from_utf8(body).map_err(|e| InspectError::BadRequest {
            field: None,
            message: format!("body is not valid UTF-8 (byte {})", e.valid_up_to()),
        }),
    }
}

/// Calls `each` with every key of the object at the cursor, the cursor on
/// its value; `each` must consume that value.
pub(crate) fn members<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    mut each: impl FnMut(&mut Scanner<'a>, Cow<'a, str>) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    expect_object(sc, path)?;
    sc.begin_object().at(path)?;
    let mut first = true;
    while let Some(key) = sc.next_key(first).at(path)? {
        first = false;
        each(sc, key)?;
    }
    Ok(())
}

/// Calls `each` with the index of every element of the array at the
/// cursor, the cursor on it; `each` must consume it.
pub(crate) fn elements<'a>(
    sc: &mut Scanner<'a>,
    path: &Path<'_>,
    mut each: impl FnMut(&mut Scanner<'a>, usize) -> Result<(), InspectError>,
) -> Result<(), InspectError> {
    expect_array(sc, path)?;
    sc.begin_array().at(path)?;
    let mut i = 0;
    while sc.next_elem(i == 0).at(path)? {
        each(sc, i)?;
        i += 1;
    }
    Ok(())
}

/// Refuses a second occurrence of a key the inspector reads.
pub(crate) fn once(seen: &mut bool, path: &Path<'_>) -> Result<(), InspectError> {
    if std::mem::replace(seen, true) {
        return Err(path.bad("duplicate key"));
    }
    Ok(())
}
