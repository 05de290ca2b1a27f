//! Rolling loggate out without losing data: the audit trail (one record per
//! request that reached authentication, off the request path), shadow mode
//! (policy denials of the listed organizations forwarded and counted, not
//! enforced) and what stays enforced.

use crate::support::gateway::toml_escape;
use crate::support::http;
use crate::support::world::{World, experiment_row, log_row};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn audit_toml(path: &Path, queue: usize) -> String {
    format!("[audit]\nsink = \"file\"\npath = \"{}\"\nqueue = {queue}\n", toml_escape(path))
}

/// The audit file's records, once at least `n` are there.
async fn records(path: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let records: Vec<Value> =
            text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
        if records.len() >= n || Instant::now() > deadline {
            assert!(records.len() >= n, "{} audit records, waited for {n}:\n{text}", records.len());
            return records;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn request_id(resp: &http::Resp) -> String {
    resp.headers["x-request-id"].to_str().unwrap().to_owned()
}

fn by_id<'a>(records: &'a [Value], id: &str) -> &'a Value {
    records.iter().find(|r| r["request_id"] == id).unwrap_or_else(|| panic!("no record for {id}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authenticated_request_gets_one_record_without_token_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let w = World::start_with(|b| b.extra_toml(&audit_toml(&path, 1024))).await;

    let allowed = w.logs3(&w.writer, vec![log_row(&w.project), experiment_row(&w.experiment)]).await;
    assert_eq!(allowed.status, 200);
    let denied = w.logs3(&w.writer, vec![log_row(&w.project), log_row(&w.other_project)]).await;
    w.error(&denied, 403, "permission_denied");
    let unknown = w.logs3(&w.writer, vec![log_row(&crate::support::policy::new_id())]).await;
    w.error(&unknown, 403, "unknown_object");
    let unauthenticated = http::send(w.request(reqwest::Method::POST, "/logs3", &w.unknown).body("{}")).await;
    w.error(&unauthenticated, 401, "unauthenticated");
    let bad = w.post_json("/logs3", &w.writer, &serde_json::json!({"rows": [{"input": 1}]})).await;
    w.error(&bad, 400, "bad_request");
    // Never reached authentication: no record.
    let unrouted = http::send(w.request(reqwest::Method::GET, "/nowhere", &w.writer.raw)).await;
    assert_eq!(unrouted.status, 404);

    let all = records(&path, 5).await;
    assert_eq!(all.len(), 5, "one record per authenticated request: {all:#?}");
    let revision = w.gw.metric("loggate_policy_revision").await as u64;

    let r = by_id(&all, &request_id(&allowed));
    assert_eq!(r["decision"], "allow");
    assert_eq!(r["status"], 200);
    assert_eq!(r["reason"], Value::Null);
    assert_eq!(r["route"], "logs3");
    assert_eq!(r["client_addr"], "127.0.0.1");
    assert_eq!(r["token_id"], w.writer.id.as_str());
    assert_eq!(r["org_id"], w.org.as_str());
    assert_eq!(r["rows"], 2);
    assert_eq!(r["policy_revision"], revision);
    assert!(r["latency_us"].as_u64().unwrap() > 0);
    assert!(chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap()).is_ok());
    let targets = r["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2, "{r}");
    assert!(targets.iter().any(|t| t["object_type"] == "project_log"
        && t["object_id"] == w.project.as_str()
        && t["permission"] == "update"
        && t["decision"] == "allow"));

    let r = by_id(&all, &request_id(&denied));
    assert_eq!(
        (r["decision"].as_str(), r["status"].as_u64(), r["reason"].as_str()),
        (Some("deny"), Some(403), Some("permission_denied"))
    );
    let decisions: Vec<(&str, &str)> = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["object_id"].as_str().unwrap(), t["decision"].as_str().unwrap()))
        .collect();
    assert!(
        decisions.contains(&(w.project.as_str(), "allow")) && decisions.contains(&(w.other_project.as_str(), "deny"))
    );

    let r = by_id(&all, &request_id(&unknown));
    assert_eq!((r["decision"].as_str(), r["reason"].as_str()), (Some("deny"), Some("unknown_object")));

    let r = by_id(&all, &request_id(&unauthenticated));
    assert_eq!((r["decision"].as_str(), r["status"].as_u64()), (Some("deny"), Some(401)));
    assert_eq!(r["token_id"], Value::Null);
    assert_eq!(r["reason"], "unauthenticated");

    let r = by_id(&all, &request_id(&bad));
    assert_eq!((r["decision"].as_str(), r["reason"].as_str()), (Some("deny"), Some("bad_request")));

    let text = std::fs::read_to_string(&path).unwrap();
    for secret in w.secrets() {
        assert!(!text.contains(secret), "a token in the audit trail");
        assert!(!text.contains(&secret[6..20]), "part of a token in the audit trail");
    }
    assert_eq!(w.gw.metric("loggate_audit_records_total").await, 5.0);
    assert_eq!(w.gw.metric("loggate_audit_dropped_total").await, 0.0);
    w.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_after_logrotate_moved_the_file_writes_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let w = World::start_with(|b| b.extra_toml(&audit_toml(&path, 1024))).await;
    assert_eq!(w.logs3(&w.writer, vec![log_row(&w.project)]).await.status, 200);
    records(&path, 1).await;

    let rotated: PathBuf = dir.path().join("audit.jsonl.1");
    std::fs::rename(&path, &rotated).unwrap();
    // Before SIGHUP, records still go to the (renamed) open file.
    let before = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    by_id(&records(&rotated, 2).await, &request_id(&before));
    assert!(!path.exists());

    // logrotate's postrotate: SIGHUP to the gateway.
    let status = std::process::Command::new("kill").args(["-HUP", &w.gw.pid().to_string()]).status().unwrap();
    assert!(status.success());
    // The new file appears once the writer has acted on the signal; from
    // then on, records go there.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no new audit file after SIGHUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = w.logs3(&w.writer, vec![log_row(&w.project)]).await;
    assert_eq!(after.status, 200, "SIGHUP must not stop the gateway");
    let fresh = records(&path, 1).await;
    assert!(fresh.iter().any(|r| r["request_id"] == request_id(&after).as_str()), "{fresh:#?}");
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains(&request_id(&after)), "written to the rotated file after SIGHUP");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sink_drops_and_counts_but_never_slows_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
    // A reader that opens the pipe and never reads: once its buffer is full
    // every write blocks.
    let _reader = std::fs::File::open_options_nonblocking(&path);
    let w = World::start_with(|b| b.extra_toml(&audit_toml(&path, 8))).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..400 {
        let started = Instant::now();
        let rows: Vec<Value> = (0..20).map(|_| log_row(&w.project)).collect();
        assert_eq!(w.logs3(&w.writer, rows).await.status, 200);
        slowest = slowest.max(started.elapsed());
    }
    let dropped = w.gw.metric("loggate_audit_dropped_total").await;
    assert!(dropped > 0.0, "a stuck sink must drop (and count) records");
    assert!(slowest < Duration::from_secs(1), "a request waited on the audit sink: {slowest:?}");
    println!("dropped {dropped} records; slowest request {slowest:?}");
    w.still_serves().await;
}

/// Opening a FIFO for reading without blocking (no writer yet).
trait OpenNonblocking {
    fn open_options_nonblocking(path: &Path) -> std::fs::File;
}

impl OpenNonblocking for std::fs::File {
    fn open_options_nonblocking(path: &Path) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new().read(true).custom_flags(libc_o_nonblock()).open(path).unwrap()
    }
}

/// `O_NONBLOCK` on Linux (asm-generic), without a libc dependency.
const fn libc_o_nonblock() -> i32 {
    0o4000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_forwards_policy_denials_of_listed_orgs_and_enforces_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let cast = crate::support::world::cast();
    let shadowed = cast.org.clone();
    let toml = format!("{}[shadow]\norgs = [\"{shadowed}\"]\n", audit_toml(&path, 1024));
    let w = World::start_cast(cast, |b| b.extra_toml(&toml)).await;

    // A create-only token writes logs: denied by policy, forwarded anyway.
    let before = w.forwarded("/logs3");
    let row = log_row(&w.project);
    let shadow = w.logs3(&w.project_creator, vec![row.clone()]).await;
    assert_eq!(shadow.status, 200, "{}", shadow.text());
    assert_eq!(w.forwarded("/logs3"), before + 1);
    assert_eq!(w.upstream.requests_to("/logs3").pop().unwrap().json()["rows"][0]["id"], row["id"]);
    // An unknown object is a policy denial too.
    let unknown = w.logs3(&w.writer, vec![log_row(&crate::support::policy::new_id())]).await;
    assert_eq!(unknown.status, 200);
    let text = w.gw.metrics().await;
    let m = |s: &str| crate::support::gateway::metric_value(&text, s);
    let org = &w.org;
    assert_eq!(
        m(&format!(
            r#"loggate_shadow_denials_total{{reason="permission_denied",object_type="project_log",org="{org}"}}"#
        )),
        1.0,
        "{text}"
    );
    assert_eq!(
        m(&format!(r#"loggate_shadow_denials_total{{reason="unknown_object",object_type="project_log",org="{org}"}}"#)),
        1.0
    );
    assert_eq!(
        m(&format!(r#"loggate_denials_total{{reason="permission_denied",object_type="project_log",org="{org}"}}"#)),
        0.0
    );

    // Still enforced: authentication, bad input, and other organizations.
    let forwarded = w.forwarded("/logs3");
    let r = http::send(w.request(reqwest::Method::POST, "/logs3", &w.unknown).body("{}")).await;
    w.error(&r, 401, "unauthenticated");
    let r = w.post_json("/logs3", &w.project_creator, &serde_json::json!({"rows": [{"input": 1}]})).await;
    w.error(&r, 400, "bad_request");
    let r = http::send(
        w.request(reqwest::Method::POST, "/logs3", &w.project_creator.raw)
            .header("content-type", "application/json")
            .body("{\"rows\": [{\"id\": \"x\", \"project_id\": "),
    )
    .await;
    w.error(&r, 400, "bad_request");
    // A token of another (unshadowed) organization.
    let r = w.logs3(&w.outsider, vec![log_row(&w.project)]).await;
    w.error(&r, 403, "permission_denied");
    let r = w.logs3(&w.expired, vec![log_row(&w.project)]).await;
    w.error(&r, 401, "unauthenticated");
    assert_eq!(w.forwarded("/logs3"), forwarded, "nothing else reached the data plane");

    let all = records(&path, 7).await;
    let r = by_id(&all, &request_id(&shadow));
    assert_eq!(
        (r["decision"].as_str(), r["reason"].as_str(), r["status"].as_u64()),
        (Some("shadow_allow"), Some("permission_denied"), Some(200))
    );
    assert_eq!(r["targets"][0]["decision"], "deny");
    let r = by_id(&all, &request_id(&unknown));
    assert_eq!((r["decision"].as_str(), r["reason"].as_str()), (Some("shadow_allow"), Some("unknown_object")));
    w.still_serves().await;
}
