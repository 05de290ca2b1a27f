//! A local stand-in for the Braintrust data plane, for trying loggate with
//! the real SDKs without an account: it answers login, project lookups,
//! `/version`, `/logs3`, OpenTelemetry exports (`/otel/v1/traces`) and the
//! attachment routes (with a signed upload URL on itself) the way the SDKs
//! need (the same recording fake the integration tests use), and prints
//! every row, export and attachment that reaches it.
//!
//! ```sh
//! cargo run --example dataplane -- config/policy.json 127.0.0.1:8800
//! ```
//!
//! It is a development aid only; it stores nothing.

#[allow(dead_code)]
#[path = "../tests/integration/support/upstream.rs"]
mod upstream;

use loggate_model::doc::PolicyDoc;
use std::time::Duration;
use upstream::{FakeOrg, Upstream};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let policy_path = args.next().unwrap_or_else(|| "config/policy.json".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8800".into());
    // Projects keep their policy ids, so rows loggate authorizes land on them.
    let doc: PolicyDoc = serde_json::from_slice(&std::fs::read(&policy_path)?)?;
    let orgs = doc
        .organizations
        .iter()
        .map(|o| {
            let projects: Vec<(&str, &str)> =
                doc.projects.iter().filter(|p| p.org_id == o.id).map(|p| (p.id.as_str(), p.name.as_str())).collect();
            FakeOrg::new(&o.id, &o.name, &projects)
        })
        .collect();
    let plane = Upstream::start_on(&addr, orgs).await;
    println!("data plane listening on {} (projects from {policy_path}); Ctrl-C to stop", plane.url);
    let (mut seen, mut seen_requests) = (0, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let rows = plane.logs3_rows();
        for row in &rows[seen.min(rows.len())..] {
            println!("row received: {row}");
        }
        seen = rows.len();
        let requests = plane.requests();
        for r in &requests[seen_requests.min(requests.len())..] {
            let header = |name| r.header(name).unwrap_or("-");
            match r.path.as_str() {
                "/otel/v1/traces" => println!(
                    "otel export received: {} bytes, {} ({}), x-bt-parent {}",
                    r.body.len(),
                    header("content-type"),
                    header("content-encoding"),
                    header("x-bt-parent")
                ),
                "/attachment" | "/attachment/status" => {
                    let query = r.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
                    println!("{} {}{query} {}", r.method, r.path, String::from_utf8_lossy(&r.body))
                }
                p if p.starts_with("/_upload/") && r.method == hyper::Method::PUT => {
                    println!("attachment uploaded: {} ({} bytes)", &p["/_upload/".len()..], r.body.len())
                }
                _ => {}
            }
        }
        seen_requests = requests.len();
    }
}
