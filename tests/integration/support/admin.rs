//! A client of one gateway's admin API (`/v1/...` on the admin listener,
//! bearer `LOGGATE_ADMIN_TOKEN`), as a [`World`](super::world::World) on
//! Postgres and every replica of a [`Fleet`](super::fleet::Fleet) use it.

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The admin token a world on Postgres starts its gateway with.
pub const ADMIN_TOKEN: &str = "admin-secret-for-tests";

pub struct AdminApi<'a> {
    http: &'a reqwest::Client,
    /// `http://127.0.0.1:PORT` of the admin listener.
    url: &'a str,
    token: &'a str,
}

impl<'a> AdminApi<'a> {
    pub fn new(http: &'a reqwest::Client, admin_url: &'a str, token: &'a str) -> Self {
        AdminApi { http, url: admin_url, token }
    }

    /// One call: the status and the body (as JSON, or a JSON string when it is not JSON).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("the admin API answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A call that must answer 200; its body.
    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method.clone(), path, body.clone()).await;
        assert_eq!(status, 200, "{method} {path} {}: {v}", body.unwrap_or(Value::Null));
        v
    }

    /// A call that must answer 400 `bad_request` naming `field`.
    pub async fn bad(&self, method: Method, path: &str, body: Value, field: &str) {
        let (status, v) = self.call(method.clone(), path, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{v}");
        assert_eq!(v["error"]["field"], field, "{method} {path} {body}: {v}");
    }
}
