//! A real Prometheus (Debian's `prometheus` package; `.ci/run` installs it)
//! scrapes loggate's admin listener every second while the test sends
//! allowed and denied traffic; the denial counters by reason must show up in
//! Prometheus' query API. The shipped alert rules must pass `promtool check
//! rules` and load into that Prometheus.
//!
//! Without the binaries the tests are skipped locally and fail under CI.

use crate::support::wait;
use crate::support::world::World;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How often to ask Prometheus, which scrapes every second.
const SCRAPED: Duration = Duration::from_millis(250);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The binary's path, or `None` (skip) when it is missing outside CI.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "{name} is not installed (apt-get install prometheus; .ci/run does)");
        eprintln!("skipped: {name} is not installed (apt-get install prometheus)");
    }
    found
}

#[test]
fn alert_rules_pass_promtool() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let out =
        Command::new(promtool).args(["check", "rules"]).arg(repo("deploy/prometheus/alerts.yml")).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// A Prometheus server for one test, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    async fn start(binary: &Path, scrape: std::net::SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {:?}\nscrape_configs:\n  - job_name: loggate\n    static_configs:\n      - targets: [\"{scrape}\"]\n",
                repo("deploy/prometheus/alerts.yml").to_str().unwrap()
            ),
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), _dir: dir };
        wait::until_every("prometheus ready", Duration::from_secs(30), Duration::from_millis(100), async || {
            reqwest::get(format!("{}/-/ready", p.url)).await.map(|r| r.status()).ok() == Some(reqwest::StatusCode::OK)
        })
        .await;
        p
    }

    async fn api(&self, path_and_query: &str) -> Value {
        let v: Value = reqwest::get(format!("{}{path_and_query}", self.url)).await.unwrap().json().await.unwrap();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// `(labels, value)` of every series an instant query returns.
    async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let q: String = promql
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        let data = self.api(&format!("/api/v1/query?query={q}")).await;
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["metric"].clone(), s["value"][1].as_str().unwrap().parse().unwrap()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_denials_by_reason() {
    let Some(binary) = tool("prometheus") else {
        return;
    };
    let w = World::start().await;
    let prometheus = Prometheus::start(&binary, w.gw.admin_addr).await;

    let client = reqwest::Client::new();
    let send = |token: String| {
        let req = client.post(format!("{}/logs3", w.gw.url)).bearer_auth(token).body(w.logs3_body());
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(send(w.writer.raw.clone()).await, 200);
    assert_eq!(send(w.writer.raw.clone()).await, 200);
    assert_eq!(send(w.reader.raw.clone()).await, 403);
    assert_eq!(send(w.unknown.clone()).await, 401);

    let denials =
        wait::until_every("both denials scraped by prometheus", Duration::from_secs(30), SCRAPED, async || {
            let series = prometheus.query("loggate_denials_total").await;
            let reasons: Vec<&str> = series.iter().filter_map(|(m, _)| m["reason"].as_str()).collect();
            match reasons.contains(&"permission_denied") && reasons.contains(&"unauthenticated") {
                true => Ok(series),
                false => Err(series),
            }
        })
        .await;
    let by_reason = |reason: &str| denials.iter().find(|(m, _)| m["reason"] == reason).unwrap();
    let (labels, count) = by_reason("permission_denied");
    assert_eq!(*count, 1.0);
    assert_eq!(labels["object_type"], "project_log");
    assert_eq!(labels["org"], w.org.as_str());
    assert_eq!(labels["job"], "loggate");
    assert_eq!(by_reason("unauthenticated").1, 1.0);
    for (labels, _) in &denials {
        let text = labels.to_string();
        for secret in [&w.writer.raw, &w.reader.raw, &w.unknown] {
            assert!(!text.contains(secret.as_str()), "a token became a label: {text}");
        }
    }

    let allowed = prometheus.query("sum(loggate_requests_total{status=\"200\"})").await;
    assert_eq!(allowed.first().map(|(_, v)| *v), Some(2.0), "{allowed:?}");
    assert_eq!(prometheus.query("up{job=\"loggate\"}").await.first().map(|(_, v)| *v), Some(1.0));

    // The shipped alert rules loaded into this Prometheus.
    let rules = prometheus.api("/api/v1/rules").await;
    let names: Vec<&str> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .filter_map(|r| r["name"].as_str())
        .collect();
    for alert in ["LoggateDenialSpike", "LoggateInvalidationFeedDown", "LoggatePolicyStale", "LoggateUpstreamErrors"] {
        assert!(names.contains(&alert), "{alert} not loaded: {names:?}");
    }
}
