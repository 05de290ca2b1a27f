//! A recording fake of the Braintrust data plane (and app server).
//!
//! It runs in-process on `127.0.0.1:0`, records every request that reaches it
//! and answers the calls the real Python and JavaScript SDKs make closely
//! enough for them to complete (see `tests/sdk/README.md`):
//!
//! - `POST /api/apikey/login` -> `{"org_info":[{id,name,api_url,proxy_url,…}]}`
//!   whose `api_url`/`proxy_url` point back at this fake (loggate must rewrite
//!   them to its own public URL);
//! - `GET /version` -> `{"version", "logs3_payload_max_bytes"?}`;
//! - `POST /v1/project` `{name, org_name}` (Python) and
//!   `POST /api/project/register` `{project_name, org_id}` (JS): lookup or
//!   create by name, known projects keep the ids the test gave them;
//! - `GET /v1/project/{id}`, `GET /api/project?id=`;
//! - `POST /logs3` (inline rows and overflow references), `POST /logs3/overflow`
//!   plus the signed upload URL it hands out (`PUT /_overflow/{key}`);
//! - `/v1/{project_logs,experiment,dataset}/{id}/{insert,feedback,fetch}`,
//!   `POST /v1/insert`, `POST /api/{experiment,dataset}/register`;
//! - `POST /otel/v1/traces` (OTLP/HTTP): 200 with an empty
//!   `ExportTraceServiceResponse` (zero bytes, `application/x-protobuf`) to a
//!   protobuf export, `{}` to a JSON one; the raw body and headers are in the
//!   recorded request;
//! - attachments: `POST /attachment` `{key, filename, content_type, org_id}`
//!   -> `{"signedUrl": "<fake>/_upload/<key>", "headers": {"Content-Type": …}}`,
//!   the upload itself (`PUT /_upload/{key}`, kept: [`Upstream::uploaded`]),
//!   `POST /attachment/status` (kept: [`Upstream::attachment_status`]) -> `{}`,
//!   `GET /attachment?key=…` -> `{"downloadUrl": "<fake>/_upload/<key>",
//!   "status": …}` and `GET /_upload/{key}` (the blob).
//!
//! Faults (status override, delay, connection reset, stalled body) can be set
//! per path prefix for failure tests.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One organization the fake knows, with its projects `(id, name)`.
#[derive(Debug, Clone)]
pub struct FakeOrg {
    pub id: String,
    pub name: String,
    pub projects: Vec<(String, String)>,
}

impl FakeOrg {
    pub fn new(id: &str, name: &str, projects: &[(&str, &str)]) -> Self {
        FakeOrg {
            id: id.to_owned(),
            name: name.to_owned(),
            projects: projects.iter().map(|(i, n)| ((*i).to_owned(), (*n).to_owned())).collect(),
        }
    }
}

/// A request as it crossed the wire into the fake.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} {} body is not JSON ({e}): {:?}", self.method, self.path, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization").and_then(|v| v.strip_prefix("Bearer "))
    }
}

/// What the fake does instead of its normal answer.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and body.
    Status(u16, String),
    /// Wait, then answer normally.
    Delay(Duration),
    /// Close the connection without answering.
    Reset,
    /// Send the response headers and the first bytes of a body, then stall.
    StallBody,
}

#[derive(Debug, Clone)]
struct FaultRule {
    path_prefix: String,
    fault: Fault,
    /// `None` = every matching request; `Some(n)` = the next n of them.
    remaining: Option<usize>,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Recorded>,
    orgs: Vec<FakeOrg>,
    /// Projects created by name through register calls: (org_id, id, name).
    created_projects: Vec<(String, String, String)>,
    overflow: HashMap<String, Bytes>,
    /// Attachment blobs uploaded to the signed URL, by key.
    uploads: HashMap<String, Bytes>,
    /// The last `status` object posted to `/attachment/status`, by key.
    attachment_status: HashMap<String, Value>,
    faults: Vec<FaultRule>,
    payload_max_bytes: Option<u64>,
    /// What login advertises as `api_url`/`proxy_url` (default: the fake itself).
    advertised_url: Option<String>,
    next_id: u64,
}

/// Handle to a running fake; the server stops when the handle is dropped.
pub struct Upstream {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    state: Arc<Mutex<State>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Upstream {
    /// Starts the fake with these organizations and projects. Must be called
    /// inside a tokio runtime (multi-threaded if the test blocks on child
    /// processes).
    pub async fn start(orgs: Vec<FakeOrg>) -> Upstream {
        Self::start_with("127.0.0.1:0", orgs, None).await
    }

    /// Starts the fake on a given address (the `dataplane` example).
    pub async fn start_on(addr: &str, orgs: Vec<FakeOrg>) -> Upstream {
        Self::start_with(addr, orgs, None).await
    }

    /// Starts the fake behind TLS with this server config (see
    /// `crate::support::tls::TestCa::server_config`); its URL is `https://127.0.0.1:PORT`.
    /// A client whose handshake fails is simply dropped (and not recorded).
    pub async fn start_tls(orgs: Vec<FakeOrg>, config: rustls::ServerConfig) -> Upstream {
        Self::start_with("127.0.0.1:0", orgs, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(addr: &str, orgs: Vec<FakeOrg>, tls: Option<tokio_rustls::TlsAcceptor>) -> Upstream {
        let listener = TcpListener::bind(addr).await.expect("bind fake upstream");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State { orgs, payload_max_bytes: Some(5 * 1024 * 1024), ..State::default() }));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let base = url.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    _ = &mut rx => return,
                };
                let st = st.clone();
                let base = base.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), base.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Upstream { url, state, _shutdown: tx }
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests whose path is exactly `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Every row that reached `POST /logs3`, overflow references resolved to
    /// the uploaded payload's rows, in arrival order.
    pub fn logs3_rows(&self) -> Vec<Value> {
        let overflow = self.state.lock().unwrap().overflow.clone();
        let mut out = Vec::new();
        for r in self.requests_to("/logs3") {
            if r.method != Method::POST {
                continue;
            }
            let body = r.json();
            match &body["rows"] {
                Value::Array(rows) => out.extend(rows.iter().cloned()),
                Value::Object(o) if o.get("type") == Some(&json!("logs3_overflow")) => {
                    let key = o["key"].as_str().unwrap_or_default();
                    if let Some(payload) = overflow.get(key) {
                        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                        if let Some(rows) = v["rows"].as_array() {
                            out.extend(rows.iter().cloned());
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The blob uploaded to the signed URL of attachment `key`, if any.
    pub fn uploaded(&self, key: &str) -> Option<Bytes> {
        self.state.lock().unwrap().uploads.get(key).cloned()
    }

    /// The last `status` object `/attachment/status` recorded for `key`.
    pub fn attachment_status(&self, key: &str) -> Option<Value> {
        self.state.lock().unwrap().attachment_status.get(key).cloned()
    }

    /// Forgets the recorded requests (not the created projects).
    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// Sets what `GET /version` advertises as `logs3_payload_max_bytes`
    /// (`None`: the key is absent). Default 5 MiB.
    pub fn set_payload_max_bytes(&self, v: Option<u64>) {
        self.state.lock().unwrap().payload_max_bytes = v;
    }

    /// Makes login advertise `url` as every org's `api_url` and `proxy_url`
    /// (`None`: the fake's own URL, the default).
    pub fn set_advertised_url(&self, url: Option<&str>) {
        self.state.lock().unwrap().advertised_url = url.map(str::to_owned);
    }

    /// Applies `fault` to every request whose path starts with `path_prefix`
    /// (`""` = all), until cleared.
    pub fn set_fault(&self, path_prefix: &str, fault: Fault) {
        self.push_fault(path_prefix, fault, None);
    }

    /// Applies `fault` to the next `n` requests whose path starts with `path_prefix`.
    pub fn set_fault_times(&self, path_prefix: &str, fault: Fault, n: usize) {
        self.push_fault(path_prefix, fault, Some(n));
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    fn push_fault(&self, path_prefix: &str, fault: Fault, remaining: Option<usize>) {
        self.state.lock().unwrap().faults.push(FaultRule { path_prefix: path_prefix.to_owned(), fault, remaining });
    }

    /// Projects the fake created because a register call named an unknown
    /// project: `(org_id, project_id, name)`.
    pub fn created_projects(&self) -> Vec<(String, String, String)> {
        self.state.lock().unwrap().created_projects.clone()
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn json_response(status: StatusCode, v: Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn ok(v: Value) -> Response<Body> {
    json_response(StatusCode::OK, v)
}

fn not_found(what: &str) -> Response<Body> {
    json_response(StatusCode::NOT_FOUND, json!({"error": format!("not found: {what}")}))
}

/// Error type that makes hyper drop the connection without answering.
#[derive(Debug)]
struct ResetConnection;
impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault: reset")
    }
}
impl std::error::Error for ResetConnection {}

async fn handle(
    state: Arc<Mutex<State>>,
    base: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, ResetConnection> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let rec = Recorded {
        method: parts.method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers.clone(),
        body,
    };
    let fault = {
        let mut st = state.lock().unwrap();
        st.requests.push(rec.clone());
        take_fault(&mut st.faults, &rec.path)
    };
    match fault {
        Some(Fault::Status(code, body)) => {
            let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
            *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(resp);
        }
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Reset) => return Err(ResetConnection),
        Some(Fault::StallBody) => {
            let stream = futures_util::stream::once(async {
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"{\"partial\":")))
            })
            .chain(futures_util::stream::pending());
            let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(resp);
        }
        None => {}
    }
    Ok(route(&state, &base, &rec))
}

use futures_util::StreamExt;

fn take_fault(faults: &mut Vec<FaultRule>, path: &str) -> Option<Fault> {
    let i = faults.iter().position(|f| path.starts_with(&f.path_prefix))?;
    let fault = faults[i].fault.clone();
    if let Some(n) = faults[i].remaining.as_mut() {
        *n -= 1;
        if *n == 0 {
            faults.remove(i);
        }
    }
    Some(fault)
}

fn project_json(org_id: &str, id: &str, name: &str) -> Value {
    json!({
        "id": id, "org_id": org_id, "name": name,
        "created": "2024-01-01T00:00:00.000Z", "deleted_at": null,
        "user_id": "00000000-0000-4000-8000-0000000000aa", "settings": null,
    })
}

impl State {
    fn fresh_id(&mut self, kind: &str) -> String {
        self.next_id += 1;
        format!("{kind}-{:08}-0000-4000-8000-{:012}", self.next_id, self.next_id)
    }

    fn org_by_name(&self, name: &str) -> Option<&FakeOrg> {
        self.orgs.iter().find(|o| o.name == name)
    }

    fn org_by_id(&self, id: &str) -> Option<&FakeOrg> {
        self.orgs.iter().find(|o| o.id == id)
    }

    /// Lookup-or-create by name within an org: (project id, name).
    fn register_project(&mut self, org_id: &str, name: &str) -> String {
        if let Some(org) = self.org_by_id(org_id)
            && let Some((id, _)) = org.projects.iter().find(|(_, n)| n == name)
        {
            return id.clone();
        }
        if let Some((_, id, _)) = self.created_projects.iter().find(|(o, _, n)| o == org_id && n == name) {
            return id.clone();
        }
        let id = self.fresh_id("proj");
        self.created_projects.push((org_id.to_owned(), id.clone(), name.to_owned()));
        id
    }

    /// (org_id, name) of a project id.
    fn project_by_id(&self, id: &str) -> Option<(String, String)> {
        for o in &self.orgs {
            if let Some((_, n)) = o.projects.iter().find(|(i, _)| i == id) {
                return Some((o.id.clone(), n.clone()));
            }
        }
        self.created_projects.iter().find(|(_, i, _)| i == id).map(|(o, _, n)| (o.clone(), n.clone()))
    }
}

fn route(state: &Arc<Mutex<State>>, base: &str, rec: &Recorded) -> Response<Body> {
    let segs: Vec<&str> = rec.path.trim_matches('/').split('/').collect();
    let body_json = || serde_json::from_slice::<Value>(&rec.body).unwrap_or(Value::Null);
    let mut st = state.lock().unwrap();
    match (&rec.method, segs.as_slice()) {
        (&Method::POST, ["api", "apikey", "login"]) => {
            let base = st.advertised_url.clone().unwrap_or_else(|| base.to_owned());
            let orgs: Vec<Value> = st
                .orgs
                .iter()
                .map(|o| {
                    json!({
                        "id": o.id, "name": o.name,
                        "api_url": base, "proxy_url": base, "realtime_url": null,
                        "git_metadata": null, "is_universal_api": false,
                    })
                })
                .collect();
            ok(json!({ "org_info": orgs }))
        }
        (&Method::GET, ["version"]) => {
            let mut v = json!({"version": "fake-upstream-1", "brainstore_default": true});
            if let Some(max) = st.payload_max_bytes {
                v["logs3_payload_max_bytes"] = json!(max);
            }
            ok(v)
        }
        (&Method::POST, ["v1", "project"]) => {
            let b = body_json();
            let name = b["name"].as_str().unwrap_or("Global").to_owned();
            let org = match b["org_name"].as_str() {
                Some(n) => st.org_by_name(n).cloned(),
                None => st.orgs.first().cloned(),
            };
            let Some(org) = org else {
                return not_found("org_name");
            };
            let id = st.register_project(&org.id, &name);
            ok(project_json(&org.id, &id, &name))
        }
        (&Method::POST, ["api", "project", "register"]) => {
            let b = body_json();
            let name = b["project_name"].as_str().unwrap_or("Global").to_owned();
            let org_id = match b["org_id"].as_str() {
                Some(o) => o.to_owned(),
                None => match st.orgs.first() {
                    Some(o) => o.id.clone(),
                    None => return not_found("org_id"),
                },
            };
            if st.org_by_id(&org_id).is_none() {
                return not_found("org_id");
            }
            let id = st.register_project(&org_id, &name);
            ok(json!({ "project": project_json(&org_id, &id, &name) }))
        }
        (&Method::GET, ["v1", "project", id]) => match st.project_by_id(id) {
            Some((org, name)) => ok(project_json(&org, id, &name)),
            None => not_found("project"),
        },
        (&Method::GET, ["api", "project"]) => {
            let id = rec
                .query
                .as_deref()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("id="))
                .unwrap_or("")
                .to_owned();
            match st.project_by_id(&id) {
                Some((org, name)) => {
                    let p = project_json(&org, &id, &name);
                    let mut v = p.clone();
                    v["project"] = p;
                    ok(v)
                }
                None => not_found("project"),
            }
        }
        (&Method::POST, ["api", kind @ ("experiment" | "dataset"), "register"]) => {
            let b = body_json();
            let project_id = b["project_id"].as_str().unwrap_or("").to_owned();
            let name = b[if *kind == "experiment" { "experiment_name" } else { "dataset_name" }]
                .as_str()
                .unwrap_or("unnamed")
                .to_owned();
            let project = st.project_by_id(&project_id);
            let (org_id, pname) = project.unwrap_or_default();
            let id = st.fresh_id(kind);
            ok(json!({
                "project": project_json(&org_id, &project_id, &pname),
                *kind: {"id": id, "name": name, "project_id": project_id, "created": "2024-01-01T00:00:00.000Z"},
            }))
        }
        (&Method::POST, ["logs3"]) => ok(json!({})),
        (&Method::POST, ["logs3", "overflow"]) => {
            let key = st.fresh_id("overflow");
            ok(json!({
                "method": "PUT",
                "signedUrl": format!("{base}/_overflow/{key}"),
                "headers": {"Content-Type": "application/json"},
                "key": key,
            }))
        }
        (&Method::PUT, ["_overflow", key]) => {
            st.overflow.insert((*key).to_owned(), rec.body.clone());
            ok(json!({}))
        }
        (&Method::POST, ["v1", "project_logs" | "experiment" | "dataset", _, "insert"]) => {
            let ids: Vec<Value> = body_json()["events"]
                .as_array()
                .map(|evs| evs.iter().map(|e| e.get("id").cloned().unwrap_or(Value::Null)).collect())
                .unwrap_or_default();
            ok(json!({ "row_ids": ids }))
        }
        (&Method::POST, ["v1", "project_logs" | "experiment" | "dataset", _, "feedback"]) => {
            ok(json!({"status": "success"}))
        }
        (&Method::GET | &Method::POST, ["v1", "project_logs" | "experiment" | "dataset", _, "fetch"]) => {
            ok(json!({"events": [], "cursor": null}))
        }
        (&Method::POST, ["v1", "insert"]) => ok(json!({})),
        (&Method::POST, ["otel", "v1", "traces"]) => {
            let protobuf = rec.header("content-type").is_some_and(|c| c.starts_with("application/x-protobuf"));
            if protobuf {
                // An ExportTraceServiceResponse with no partial_success: zero bytes.
                let mut resp = Response::new(Full::new(Bytes::new()).boxed());
                resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
                resp
            } else {
                ok(json!({}))
            }
        }
        (&Method::POST, ["attachment"]) => {
            let b = body_json();
            let Some(key) = b["key"].as_str().filter(|k| !k.is_empty()) else {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": "key is required"}));
            };
            let content_type = b["content_type"].as_str().unwrap_or("application/octet-stream");
            ok(json!({
                "signedUrl": format!("{base}/_upload/{key}"),
                "headers": {"Content-Type": content_type},
            }))
        }
        (&Method::PUT, ["_upload", key]) => {
            st.uploads.insert((*key).to_owned(), rec.body.clone());
            let mut resp = Response::new(Full::new(Bytes::new()).boxed());
            resp.headers_mut().insert("etag", HeaderValue::from_static("\"fake-etag\""));
            resp
        }
        (&Method::GET, ["_upload", key]) => match st.uploads.get(*key) {
            Some(blob) => {
                let mut resp = Response::new(Full::new(blob.clone()).boxed());
                resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                resp
            }
            None => not_found("upload"),
        },
        (&Method::POST, ["attachment", "status"]) => {
            let b = body_json();
            let (Some(key), Some(status)) = (b["key"].as_str(), b.get("status").filter(|s| s.is_object())) else {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": "key and status are required"}));
            };
            st.attachment_status.insert(key.to_owned(), status.clone());
            ok(json!({}))
        }
        (&Method::GET, ["attachment"]) => {
            let key = query_param(rec.query.as_deref(), "key").unwrap_or_default();
            let status =
                st.attachment_status.get(&key).cloned().unwrap_or_else(|| json!({"upload_status": "uploading"}));
            ok(json!({"downloadUrl": format!("{base}/_upload/{key}"), "status": status}))
        }
        _ => not_found(&rec.path),
    }
}

/// The value of `name` in a query string (percent-decoded), if present.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())
    })
}

/// A "data plane" that is not HTTP at all: a raw TCP listener that answers
/// every connection with `reply` (after reading whatever arrives for a
/// moment) and closes. Counts the connections it accepted.
pub struct GarbageUpstream {
    pub url: String,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl GarbageUpstream {
    pub async fn start(reply: &'static [u8]) -> GarbageUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind garbage upstream");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                    _ = &mut rx => return,
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
                    let _ = stream.write_all(reply).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        GarbageUpstream { url, accepted, _shutdown: tx }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}
