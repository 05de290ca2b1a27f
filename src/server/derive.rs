//! `POST /v1/service_token/derive` (contract: "Scoped and derived tokens"):
//! a token holder mints a shorter-lived, narrower child without the admin
//! token. The caller has been authenticated as the parent (validity and
//! `client_cidrs` included) before this runs.

use super::pipeline::{Caller, Gateway};
use crate::error::GatewayError;
use crate::forward::{Body, full};
use crate::policy::Store;
use crate::policy::postgres::DeriveRequest;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use loggate_model::{Scope, Timestamp};
use serde_json::{Map, Value, json};
use std::time::Duration;

/// The checked request body: `{"name", "scope"?, "ttl"}`.
struct Ask {
    name: String,
    scope: Option<Scope>,
    ttl: Duration,
}

fn bad(field: &str, message: impl Into<String>) -> GatewayError {
    GatewayError::bad_request(Some(field.to_owned()), message)
}

impl Ask {
    fn parse(body: &[u8], max_ttl: Duration) -> Result<Ask, GatewayError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| GatewayError::bad_request(None, format!("body is not JSON: {e}")))?;
        let Value::Object(map) = value else {
            return Err(GatewayError::bad_request(None, "body must be a JSON object"));
        };
        if let Some(unknown) = map.keys().find(|k| !["name", "scope", "ttl"].contains(&k.as_str())) {
            return Err(bad(unknown, format!("unknown field '{}'", unknown.chars().take(64).collect::<String>())));
        }
        let name = match map.get("name") {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => s.clone(),
            _ => return Err(bad("name", "name must be a non-empty string of at most 256 bytes")),
        };
        let scope = scope(&map)?;
        let ttl = match map.get("ttl") {
            Some(Value::String(s)) => crate::config::duration::parse_duration(s).map_err(|e| bad("ttl", e))?,
            _ => return Err(bad("ttl", "ttl is required, as a duration such as \"1h\"")),
        };
        if ttl.is_zero() || ttl > max_ttl {
            let max = humantime::format_duration(max_ttl);
            return Err(bad("ttl", format!("ttl must be above zero and at most limits.max_derived_ttl ({max})")));
        }
        Ok(Ask { name, scope, ttl })
    }
}

fn scope(map: &Map<String, Value>) -> Result<Option<Scope>, GatewayError> {
    match map.get("scope") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => <Scope as serde::Deserialize>::deserialize(v)
            .map(Some)
            .map_err(|e| bad("scope", format!("invalid scope: {e}"))),
    }
}

pub(super) async fn derive(gw: &Gateway, caller: &Caller, body: &[u8]) -> Result<Response<Body>, GatewayError> {
    let Store::Postgres(pg) = &*gw.store else {
        return Err(GatewayError::DerivationUnavailable);
    };
    let ask = Ask::parse(body, gw.config.limits.max_derived_ttl)?;
    let now = crate::clock::now_ms();
    let ttl_ms = i64::try_from(ask.ttl.as_millis()).unwrap_or(i64::MAX);
    let key = loggate_model::token::generate();
    let preview = loggate_model::token::preview(&key);
    let request = DeriveRequest {
        name: &ask.name,
        scope: ask.scope.as_ref(),
        until: Timestamp::from_unix_ms(now.saturating_add(ttl_ms)),
        key: &key,
        preview: &preview,
    };
    let derived =
        pg.derive(&caller.identity, request).await?.ok_or(GatewayError::Unauthenticated("the token was deleted"))?;
    let answer = json!({
        "id": derived.id,
        "key": key,
        "expires_at": derived.expires_at,
        "scope": derived.scope,
        "parent_id": caller.identity.token_id,
    });
    let mut response = Response::new(full(Bytes::from(answer.to_string())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // The key is shown once: nothing on the way may keep it.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_request_names_a_ttl_within_the_limit() {
        let ok = Ask::parse(br#"{"name":"job-1","ttl":"1h","scope":{"grants":[]}}"#, DAY).unwrap();
        assert_eq!(ok.ttl, Duration::from_secs(3600));
        assert_eq!(ok.scope.unwrap().grants, Some(vec![]));
        for (body, field) in [
            (&br#"{"ttl":"1h"}"#[..], Some("name")),
            (br#"{"name":"x"}"#, Some("ttl")),
            (br#"{"name":"x","ttl":"25h"}"#, Some("ttl")),
            (br#"{"name":"x","ttl":"0s"}"#, Some("ttl")),
            (br#"{"name":"x","ttl":"soon"}"#, Some("ttl")),
            (br#"{"name":"x","ttl":"1h","scope":{"grants":[{"object_type":"project"}]}}"#, Some("scope")),
            (br#"{"name":"x","ttl":"1h","scope":{"client_cidrs":["10.0.0.0/33"]}}"#, Some("scope")),
            (br#"{"name":"x","ttl":"1h","parent_id":"p"}"#, Some("parent_id")),
            (br#"[1]"#, None),
            (br#"{"#, None),
        ] {
            let e = Ask::parse(body, DAY).err().unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(body)));
            assert_eq!(e.code(), "bad_request");
            let json = e.to_json("r");
            assert_eq!(json["error"]["field"].as_str(), field, "{}", String::from_utf8_lossy(body));
        }
    }
}
