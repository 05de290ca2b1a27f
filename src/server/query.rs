//! Query-string parameters the gateway authorizes on. Keys are compared
//! decoded, as the data plane reads them, and a parameter given twice is
//! refused: the data plane must not read another value than the one
//! loggate authorized.

use crate::error::GatewayError;

/// The one value of `name`, if the query has it (an empty value counts as
/// absent); a repeated `name` is 400.
pub fn optional(query: Option<&str>, name: &str) -> Result<Option<String>, GatewayError> {
    let mut values = query.unwrap_or("").split('&').filter_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    });
    let first = values.next();
    if values.next().is_some() {
        return Err(GatewayError::bad_request(
            Some(name.to_owned()),
            format!("query parameter {name} must appear once"),
        ));
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// The one value of query parameter `name`. Keys are compared decoded
/// (`i%64` is `id`), and a parameter given twice is refused: the data plane
/// must not read a different value than the one loggate authorized.
pub fn single(query: Option<&str>, name: &str) -> Result<String, GatewayError> {
    optional(query, name)?
        .ok_or_else(|| GatewayError::bad_request(Some(name.to_owned()), format!("query parameter {name} is required")))
}

/// A query-string key or value decoded (`application/x-www-form-urlencoded`,
/// as the data plane reads it): `+` is a space, `%XY` the byte it names
/// (`%2B` a plus); a `%` not followed by two hex digits stays as it is, and
/// bytes that are not UTF-8 become U+FFFD. Why the crate:
/// docs/decisions/percent-decoding.md.
pub fn percent_decode(s: &str) -> String {
    let spaced;
    let s = if s.contains('+') {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode() {
        let one = |q| single(q, "id").map_err(|e| e.code());
        assert_eq!(one(Some("a=1&id=p%201")).as_deref(), Ok("p 1"));
        assert_eq!(one(Some("id=")), Err("bad_request"));
        assert_eq!(one(None), Err("bad_request"));
        assert_eq!(one(Some("id=%zz%")).as_deref(), Ok("%zz%"));
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape_and_replaces_what_is_not_utf8() {
        for (raw, decoded) in [
            ("p%201", "p 1"),
            ("a+b%2Bc", "a b+c"),
            ("%2f%2F", "//"),
            ("n%C3%A9", "né"),
            ("%zz%", "%zz%"),
            ("%4", "%4"),
            ("%4g", "%4g"),
            ("100%", "100%"),
            ("%%41", "%A"),
            ("%ff", "\u{fffd}"),
            ("%C3", "\u{fffd}"),
            ("%00", "\0"),
            ("", ""),
        ] {
            assert_eq!(percent_decode(raw), decoded, "{raw}");
        }
    }

    #[test]
    fn a_repeated_query_param_is_refused_even_with_an_encoded_key() {
        let one = |q| single(Some(q), "id").map_err(|e| e.code());
        assert_eq!(one("id=a&id=b"), Err("bad_request"));
        assert_eq!(one("id=a&i%64=b"), Err("bad_request"));
        assert_eq!(one("id=a&id"), Err("bad_request"));
        assert_eq!(one("idx=b&id=a").as_deref(), Ok("a"));
    }

    #[test]
    fn an_optional_param_may_be_absent_or_empty_but_not_repeated() {
        let opt = |q| optional(q, "org_id").map_err(|e| e.code());
        assert_eq!(opt(None), Ok(None));
        assert_eq!(opt(Some("key=k&org_id=")), Ok(None));
        assert_eq!(opt(Some("org_id=o%31")), Ok(Some("o1".into())));
        assert_eq!(opt(Some("org_id=a&org_id=")), Err("bad_request"));
    }
}
