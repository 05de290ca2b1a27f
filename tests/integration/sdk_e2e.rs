//! End-to-end: the real Braintrust SDKs (Python and JS), configured only
//! through `BRAINTRUST_*` environment variables, log through loggate to a
//! recording fake data plane.
//!
//! The `fake_upstream_*` cases talk to the fake directly (no loggate): they
//! prove the fake answers like Braintrust closely enough for the SDKs to
//! finish, so that a failure of the gateway cases is loggate's.
//!
//! The callers are the standard cast's: the writer (`update` on checkout's
//! project log), the log creator (`create` there, never `update`) and a
//! token the policy does not know. The SDKs log to project "checkout" of
//! the first organization the login answer names, "acme".

use crate::support::sdk::{self, Sdk, SdkRun};
use crate::support::upstream::Upstream;
use crate::support::world::{Cast, ORG_NAME, PROJECT_NAME, World, cast};
use serde_json::Value;

const PROJECT: &str = PROJECT_NAME;

/// The fake data plane alone, knowing the cast's organizations and projects.
async fn fake_upstream(c: &Cast) -> Upstream {
    Upstream::start(c.policy.upstream_orgs()).await
}

/// Every row the SDK logged reached the data plane with its input and
/// output, in the project's log; and the `/logs3` bodies that arrived are
/// exactly the ones the SDK sent (as JSON values).
fn assert_rows_arrived(run: &SdkRun, upstream: &Upstream, project_id: &str) {
    trace(run, upstream);
    assert!(run.success(), "{}", run.describe());
    let logged = run.logged();
    assert_eq!(logged.len(), 5, "script should report 5 logged rows; {}", run.describe());
    let rows = upstream.logs3_rows();
    assert!(!rows.is_empty(), "no rows reached upstream /logs3; {}", run.describe());
    for want in &logged {
        let id = &want["id"];
        let with_id: Vec<&Value> = rows.iter().filter(|r| &r["id"] == id).collect();
        assert!(!with_id.is_empty(), "row {id} never reached upstream; rows: {rows:#?}");
        for key in ["input", "output"] {
            assert!(
                with_id.iter().any(|r| r[key] == want[key]),
                "row {id}: no forwarded row has {key} = {}; rows with that id: {with_id:#?}",
                want[key]
            );
        }
    }
    for r in &rows {
        assert_eq!(r["project_id"], project_id, "row logged to the wrong project: {r:#}");
        assert_eq!(r["log_id"], "g", "row not in the project log: {r:#}");
    }
    let mut sent = run.sent_payloads();
    let mut arrived: Vec<Value> = upstream.requests_to("/logs3").iter().map(|r| r.json()).collect();
    let key = |v: &Value| v.to_string();
    sent.sort_by_key(key);
    arrived.sort_by_key(key);
    assert_eq!(arrived, sent, "the /logs3 bodies that arrived differ from those the SDK sent");
}

/// With `LOGGATE_TEST_ECHO` set, prints the SDK's output and what reached
/// the data plane (run with `--no-capture`).
fn trace(run: &SdkRun, upstream: &Upstream) {
    if std::env::var_os("LOGGATE_TEST_ECHO").is_none() {
        return;
    }
    eprintln!("{}", run.describe());
    for r in upstream.requests() {
        eprintln!(
            ">> {} {}{} {}",
            r.method,
            r.path,
            r.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default(),
            String::from_utf8_lossy(&r.body)
        );
    }
}

// ---------------------------------------------------------------------------
// The fake data plane alone, driven by the real SDKs.

async fn fake_upstream_satisfies(sdk: Sdk) {
    if !sdk::require(sdk) {
        return;
    }
    let w = cast();
    let upstream = fake_upstream(&w).await;
    // Only the app URL: the SDK must follow org_info[].api_url back to the fake.
    let run = sdk::run(sdk, &w.writer.raw, &upstream.url, None, PROJECT).await;
    assert_rows_arrived(&run, &upstream, &w.project);
    let paths: Vec<String> = upstream.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert!(paths.contains(&"POST /api/apikey/login".to_owned()), "{paths:?}");
    assert!(paths.contains(&"GET /version".to_owned()), "{paths:?}");
    let register = match sdk {
        Sdk::Python => "POST /v1/project",
        Sdk::Js => "POST /api/project/register",
    };
    assert!(paths.contains(&register.to_owned()), "{paths:?}");
    assert!(upstream.created_projects().is_empty(), "the SDK looked up an unknown project name");
    // What loggate must accept (contract: Routes): Python posts /logs3 without a
    // Content-Type, JS with application/json; JS's login has a JSON type.
    let logs3 = upstream.requests_to("/logs3");
    let ct = logs3[0].header("content-type");
    match sdk {
        Sdk::Python => assert_eq!(ct, None, "Python /logs3 Content-Type"),
        Sdk::Js => assert_eq!(ct, Some("application/json"), "JS /logs3 Content-Type"),
    }
    for r in upstream.requests() {
        assert_eq!(r.bearer(), Some(w.writer.raw.as_str()), "{} {} without the token", r.method, r.path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_satisfies_python_sdk() {
    fake_upstream_satisfies(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_satisfies_js_sdk() {
    fake_upstream_satisfies(Sdk::Js).await;
}

/// The fake's 401 surfaces in both SDKs the way the gateway cases expect.
async fn fake_upstream_denial_surfaces(sdk: Sdk, status: u16) {
    if !sdk::require(sdk) {
        return;
    }
    let w = cast();
    let upstream = fake_upstream(&w).await;
    let path = if status == 401 { "/api/apikey/login" } else { "/logs3" };
    let body = format!(r#"{{"error":{{"code":"x","message":"fake {status}"}}}}"#);
    upstream.set_fault(path, crate::support::upstream::Fault::Status(status, body));
    let run = sdk::run(sdk, &w.writer.raw, &upstream.url, Some(&upstream.url), PROJECT).await;
    trace(&run, &upstream);
    assert!(!run.success(), "{}", run.describe());
    assert!(run.errors().contains(&status.to_string()), "{status} not reported; {}", run.describe());
    assert!(run.errors().contains(&format!("fake {status}")), "error body not reported; {}", run.describe());
    // Retries are off: exactly one attempt.
    assert_eq!(upstream.requests_to(path).len(), 1, "{}", run.describe());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_denials_surface_in_python_sdk() {
    fake_upstream_denial_surfaces(Sdk::Python, 401).await;
    fake_upstream_denial_surfaces(Sdk::Python, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_denials_surface_in_js_sdk() {
    fake_upstream_denial_surfaces(Sdk::Js, 401).await;
    fake_upstream_denial_surfaces(Sdk::Js, 403).await;
}

// ---------------------------------------------------------------------------
// Through loggate.

/// (a) A writer's rows all reach the data plane unchanged.
async fn writer_rows_reach_upstream(sdk: Sdk) {
    if !sdk::require(sdk) {
        return;
    }
    let w = World::start().await;
    let run = sdk::run(sdk, &w.writer.raw, &w.gw.url, Some(&w.gw.url), PROJECT).await;
    assert_rows_arrived(&run, &w.upstream, &w.project);
    for r in w.upstream.requests_to("/logs3") {
        assert_eq!(r.bearer(), Some(w.writer.raw.as_str()), "passthrough credentials: the caller's token is forwarded");
    }
}

/// (b) `create` is not `update`: nothing reaches `/logs3`, the SDK reports 403.
async fn create_only_token_is_denied(sdk: Sdk) {
    if !sdk::require(sdk) {
        return;
    }
    let w = World::start().await;
    let run = sdk::run(sdk, &w.log_creator.raw, &w.gw.url, Some(&w.gw.url), PROJECT).await;
    assert!(!run.success(), "a create-only token must not log; {}", run.describe());
    assert!(run.errors().contains("403"), "the SDK should report the 403; {}", run.describe());
    assert!(run.errors().contains("update"), "the 403 should name the missing permission; {}", run.describe());
    assert!(w.upstream.requests_to("/logs3").is_empty(), "a denied batch was forwarded");
    assert!(w.upstream.logs3_rows().is_empty());
    assert!(!w.gw.output().contains(&w.log_creator.raw), "loggate logged a raw token");
}

/// (c) An unknown token is 401 at login; nothing at all is forwarded.
async fn unknown_token_is_unauthenticated(sdk: Sdk) {
    if !sdk::require(sdk) {
        return;
    }
    let w = World::start().await;
    let run = sdk::run(sdk, &w.unknown, &w.gw.url, Some(&w.gw.url), PROJECT).await;
    assert!(!run.success(), "{}", run.describe());
    assert!(run.errors().contains("401"), "the SDK should report the 401; {}", run.describe());
    assert!(w.upstream.requests().is_empty(), "an unauthenticated request was forwarded: {:?}", w.upstream.requests());
    assert!(!w.gw.output().contains(&w.unknown), "loggate logged a raw token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_writer_rows_reach_upstream_unchanged() {
    writer_rows_reach_upstream(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_writer_rows_reach_upstream_unchanged() {
    writer_rows_reach_upstream(Sdk::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_create_only_token_gets_403_and_nothing_is_forwarded() {
    create_only_token_is_denied(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_create_only_token_gets_403_and_nothing_is_forwarded() {
    create_only_token_is_denied(Sdk::Js).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_unknown_token_gets_401_and_nothing_is_forwarded() {
    unknown_token_is_unauthenticated(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_unknown_token_gets_401_and_nothing_is_forwarded() {
    unknown_token_is_unauthenticated(Sdk::Js).await;
}

/// (d) Configured with only the app URL, the SDKs find the data plane through
/// the login response, which loggate rewrites to its own public URL: rows
/// still go through loggate, never straight to the data plane's URL.
async fn app_url_only_follows_rewritten_login(sdk: Sdk) {
    if !sdk::require(sdk) {
        return;
    }
    let w = World::start_with(|b| b.reserve_public_port()).await;
    // Whatever the data plane advertises, loggate must replace it; advertise
    // a dead address so that a missed rewrite cannot pass unnoticed.
    w.upstream.set_advertised_url(Some("http://127.0.0.1:9"));
    assert_eq!(w.gw.public_url, w.gw.url);
    let run = sdk::run(sdk, &w.writer.raw, &w.gw.url, None, PROJECT).await;
    assert_rows_arrived(&run, &w.upstream, &w.project);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_with_only_app_url_logs_through_loggate() {
    app_url_only_follows_rewritten_login(Sdk::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_with_only_app_url_logs_through_loggate() {
    app_url_only_follows_rewritten_login(Sdk::Js).await;
}

/// The login answer loggate forwards names loggate's public URL, not the
/// data plane's, in every `api_url` and `proxy_url`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_response_is_rewritten_to_the_public_url() {
    let w = World::start().await;
    let (upstream, gateway) = (&w.upstream, &w.gw);
    let resp = reqwest::Client::new()
        .post(format!("{}/api/apikey/login", gateway.url))
        .bearer_auth(&w.writer.raw)
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let orgs = body["org_info"].as_array().expect("org_info[]");
    let names: Vec<&str> = orgs.iter().filter_map(|o| o["name"].as_str()).collect();
    assert_eq!(names, [ORG_NAME, "globex"], "the data plane's organizations, in its order: {body:#}");
    for o in orgs {
        assert_eq!(o["api_url"], gateway.public_url.as_str(), "{body:#}");
        assert_eq!(o["proxy_url"], gateway.public_url.as_str(), "{body:#}");
    }
    assert_eq!(upstream.requests_to("/api/apikey/login").len(), 1);
}

/// The fake's fault modes behave as later failure tests expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_upstream_fault_modes() {
    use crate::support::upstream::Fault;
    use std::time::{Duration, Instant};
    let upstream = fake_upstream(&cast()).await;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let post = || client.post(format!("{}/logs3", upstream.url)).body(r#"{"rows":[],"api_version":2}"#).send();

    assert_eq!(post().await.unwrap().status(), 200);
    upstream.set_fault_times("/logs3", Fault::Status(503, r#"{"error":"down"}"#.into()), 1);
    let r = post().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"down"}"#);
    assert_eq!(post().await.unwrap().status(), 200, "a counted fault expires");

    upstream.set_fault_times("/logs3", Fault::Delay(Duration::from_millis(300)), 1);
    let t = Instant::now();
    assert_eq!(post().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));

    upstream.set_fault_times("/logs3", Fault::Reset, 1);
    assert!(post().await.is_err(), "reset: no HTTP answer");

    upstream.set_fault_times("/logs3", Fault::StallBody, 1);
    let r = post().await.unwrap();
    assert_eq!(r.status(), 200, "stall: headers arrive");
    assert!(r.bytes().await.is_err(), "stall: the body never completes");

    upstream.set_fault("/version", Fault::Status(500, "{}".into()));
    assert_eq!(client.get(format!("{}/version", upstream.url)).send().await.unwrap().status(), 500);
    upstream.clear_faults();
    let v: Value = client.get(format!("{}/version", upstream.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["logs3_payload_max_bytes"], 5 * 1024 * 1024);
    upstream.set_payload_max_bytes(None);
    let v: Value = client.get(format!("{}/version", upstream.url)).send().await.unwrap().json().await.unwrap();
    assert!(v.get("logs3_payload_max_bytes").is_none());

    // Every request was recorded, faulted or not.
    assert_eq!(upstream.requests_to("/logs3").len(), 6);
}
