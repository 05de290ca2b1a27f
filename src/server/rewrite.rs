//! Rewrites of small upstream JSON answers that keep SDKs talking to loggate:
//! the login response's URLs and `/version`'s overflow advertisement.

use serde_json::Value;

/// Points every `org_info[].api_url` (and `proxy_url`, where present) at
/// `public_url`. `None` when the body is not the expected JSON (then it is
/// passed back unchanged).
pub fn login_response(body: &[u8], public_url: &str) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let orgs = v.get_mut("org_info")?.as_array_mut()?;
    for org in orgs.iter_mut().filter_map(Value::as_object_mut) {
        org.insert("api_url".into(), Value::String(public_url.to_owned()));
        if org.get("proxy_url").is_some_and(|p| !p.is_null()) {
            org.insert("proxy_url".into(), Value::String(public_url.to_owned()));
        }
    }
    serde_json::to_vec(&v).ok()
}

/// Removes `logs3_payload_max_bytes`: loggate does not mediate overflow
/// uploads, and the SDKs treat any advertised limit as "overflow available"
/// (contract: Large batches).
pub fn version_response(body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    v.as_object_mut()?.remove("logs3_payload_max_bytes");
    serde_json::to_vec(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_urls_point_at_the_gateway() {
        let body = br#"{"org_info":[{"id":"o","name":"acme","api_url":"https://api.x","proxy_url":"https://p.x","git_metadata":null},{"id":"o2","api_url":"https://a","proxy_url":null}]}"#;
        let out: Value = serde_json::from_slice(&login_response(body, "http://gw:8787").unwrap()).unwrap();
        assert_eq!(out["org_info"][0]["api_url"], "http://gw:8787");
        assert_eq!(out["org_info"][0]["proxy_url"], "http://gw:8787");
        assert_eq!(out["org_info"][1]["proxy_url"], Value::Null);
        assert!(login_response(b"not json", "x").is_none());
    }

    #[test]
    fn version_never_advertises_overflow() {
        let out: Value =
            serde_json::from_slice(&version_response(br#"{"version":"1","logs3_payload_max_bytes":5}"#).unwrap())
                .unwrap();
        assert!(out.get("logs3_payload_max_bytes").is_none());
        assert_eq!(out["version"], "1");
    }
}
