//! `/metrics` after real traffic (contract: Metrics): request, denial, cache and
//! row counters carry the contract names and closed label values; no token
//! text ever appears.

use crate::support::http;
use crate::support::world::{World, log_row};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_denials_cache_and_rows_without_token_text() {
    let w = World::start().await;
    // Traffic: two good batches (3 rows), one denied batch (2 rows), one
    // unauthenticated request, one unknown object.
    assert_eq!(w.logs3(&w.writer, vec![log_row(&w.project), log_row(&w.project)]).await.status, 200);
    assert_eq!(w.logs3(&w.writer, vec![log_row(&w.project)]).await.status, 200);
    let r = w.logs3(&w.writer, vec![log_row(&w.project), log_row(&w.other_project)]).await;
    w.error(&r, 403, "permission_denied");
    let r = http::send(w.request(reqwest::Method::POST, "/logs3", &w.unknown).body("{}")).await;
    w.error(&r, 401, "unauthenticated");
    let r = w.logs3(&w.writer, vec![log_row(&crate::support::policy::new_id())]).await;
    w.error(&r, 403, "unknown_object");

    let text = w.gw.metrics().await;
    let m = |s: &str| crate::support::gateway::metric_value(&text, s);
    assert_eq!(m(r#"loggate_requests_total{route="logs3",status="200"}"#), 2.0, "{text}");
    assert_eq!(m(r#"loggate_requests_total{route="logs3",status="403"}"#), 2.0);
    assert_eq!(m(r#"loggate_requests_total{route="logs3",status="401"}"#), 1.0);
    let org = &w.org;
    assert_eq!(
        m(&format!(r#"loggate_denials_total{{reason="permission_denied",object_type="project_log",org="{org}"}}"#)),
        1.0,
        "{text}"
    );
    assert_eq!(
        m(&format!(r#"loggate_denials_total{{reason="unknown_object",object_type="project_log",org="{org}"}}"#)),
        1.0
    );
    assert_eq!(m(r#"loggate_denials_total{reason="unauthenticated",object_type="",org=""}"#), 1.0, "{text}");
    assert!(m(r#"loggate_decision_cache_total{result="hit"}"#) >= 1.0, "{text}");
    assert!(m(r#"loggate_decision_cache_total{result="miss"}"#) >= 1.0, "{text}");
    assert_eq!(m(r#"loggate_rows_total{outcome="forwarded"}"#), 3.0);
    assert_eq!(m(r#"loggate_rows_total{outcome="denied"}"#), 3.0, "2 rows of the denied batch + 1 unknown");
    for name in [
        "loggate_request_seconds_bucket",
        "loggate_upstream_seconds_count",
        "loggate_decision_seconds_count",
        "loggate_policy_revision",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    assert!(!text.contains("loggate_invalidation_feed_up"), "no feed configured");
    for secret in w.secrets() {
        assert!(!text.contains(secret), "a token appears in /metrics");
    }
    assert!(!text.contains("bt-st-"), "token text in /metrics");
    assert!(!text.contains("ci-writer"), "token names are not labels");
    w.still_serves().await;
}
