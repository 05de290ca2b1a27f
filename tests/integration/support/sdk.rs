//! Runs the real Braintrust SDKs (`tests/sdk/*.py`, `tests/sdk/*.mjs`) as
//! child processes. See `tests/sdk/README.md` for what they call.
//!
//! Interpreters: `LOGGATE_TEST_PYTHON` (default `<repo>/.venv/bin/python`)
//! and `LOGGATE_TEST_NODE_MODULES` (default `<repo>/tests/sdk/node_modules`),
//! `node` from `PATH` (or `LOGGATE_TEST_NODE`). When they are missing a test
//! is skipped with a message, except under `CI`, where it fails.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    Python,
    Js,
}

/// What an SDK script run produced.
#[derive(Debug)]
pub struct SdkRun {
    pub sdk: Sdk,
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The script's last stdout line, parsed (`{"ok", "logged":[…], "errors":[…]}`).
    pub report: Value,
    /// Directory the SDK dumped every `/logs3` payload it sent into
    /// (`BRAINTRUST_ALL_PUBLISH_PAYLOADS_DIR`).
    pub payload_dir: PathBuf,
    /// Directory the OTel scripts dump every request their exporter put on
    /// the wire into (`LOGGATE_TEST_WIRE_DIR`): see [`SdkRun::wire`].
    pub wire_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl SdkRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!("{:?} SDK exited {}\n--- stdout\n{}\n--- stderr\n{}", self.sdk, self.status, self.stdout, self.stderr)
    }

    /// Every `/logs3` body the SDK says it sent, parsed, in file-name order.
    pub fn sent_payloads(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(&self.payload_dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|p| std::fs::read(p).ok()).filter_map(|b| serde_json::from_slice(&b).ok()).collect()
    }

    /// The rows the script logged: `[{"id", "input", "output"?}]`.
    pub fn logged(&self) -> Vec<Value> {
        self.report["logged"].as_array().cloned().unwrap_or_default()
    }

    /// Errors the SDK surfaced (flush exceptions / onFlushError), as text.
    pub fn errors(&self) -> String {
        self.report["errors"].to_string()
    }

    /// Every request an OTel script's exporter sent, in order: URL, the
    /// headers the exporter set, and the exact body bytes (after compression).
    pub fn wire(&self) -> Vec<WireRequest> {
        let mut metas: Vec<PathBuf> = std::fs::read_dir(&self.wire_dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        metas.retain(|p| p.extension().is_some_and(|e| e == "json"));
        metas.sort();
        metas
            .iter()
            .map(|m| {
                let meta: Value =
                    serde_json::from_slice(&std::fs::read(m).expect("read wire meta")).expect("wire meta");
                let body = std::fs::read(m.with_extension("body")).expect("read wire body");
                let headers = meta["headers"]
                    .as_object()
                    .map(|h| {
                        h.iter()
                            .map(|(k, v)| {
                                (k.to_ascii_lowercase(), v.as_str().map(str::to_owned).unwrap_or(v.to_string()))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                WireRequest { url: meta["url"].as_str().unwrap_or_default().to_owned(), headers, body }
            })
            .collect()
    }
}

/// A request an SDK's exporter put on the wire ([`SdkRun::wire`]).
#[derive(Debug, Clone)]
pub struct WireRequest {
    pub url: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl WireRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("LOGGATE_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

/// A command-line tool installed beside the test Python (the venv's `bin`),
/// e.g. `schemathesis`.
pub fn venv_tool(name: &str) -> PathBuf {
    python().with_file_name(name)
}

fn node_modules() -> PathBuf {
    std::env::var_os("LOGGATE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tests/sdk/node_modules"))
}

fn node() -> PathBuf {
    std::env::var_os("LOGGATE_TEST_NODE").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("node"))
}

/// `Ok(())` when the SDK can run here; otherwise the reason.
fn available(sdk: Sdk) -> Result<(), String> {
    match sdk {
        Sdk::Python => {
            let py = python();
            let ok = Command::new(&py)
                .args(["-c", "import braintrust"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                Ok(())
            } else {
                Err(format!(
                    "Python SDK unavailable: `{} -c 'import braintrust'` failed; run .ci/run or set LOGGATE_TEST_PYTHON",
                    py.display()
                ))
            }
        }
        Sdk::Js => {
            let nm = node_modules();
            if !nm.join("braintrust/package.json").is_file() {
                return Err(format!(
                    "JS SDK unavailable: no {}/braintrust; run `npm ci` in tests/sdk or set LOGGATE_TEST_NODE_MODULES",
                    nm.display()
                ));
            }
            let ok = Command::new(node())
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok { Ok(()) } else { Err("JS SDK unavailable: `node` not found (set LOGGATE_TEST_NODE)".into()) }
        }
    }
}

/// Returns false (after printing why) when the SDK is missing and the test
/// should be skipped; panics instead when `CI` is set.
pub fn require(sdk: Sdk) -> bool {
    skip_or_fail(available(sdk))
}

/// [`require`], and also these Python modules (e.g. `braintrust.otel`,
/// `opentelemetry.exporter.otlp.json.http`) or, for JS, these packages in
/// the node_modules (e.g. `@braintrust/otel`).
pub fn require_with(sdk: Sdk, modules: &[&str]) -> bool {
    skip_or_fail(available(sdk).and_then(|()| modules_available(sdk, modules)))
}

fn skip_or_fail(availability: Result<(), String>) -> bool {
    match availability {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{why} (CI is set: SDK tests must run)")
        }
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            false
        }
    }
}

fn modules_available(sdk: Sdk, modules: &[&str]) -> Result<(), String> {
    for m in modules {
        let ok = match sdk {
            Sdk::Python => Command::new(python())
                .args(["-c", &format!("import {m}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false),
            Sdk::Js => node_modules().join(m).join("package.json").is_file(),
        };
        if !ok {
            return Err(format!(
                "{sdk:?} package {m} unavailable; install tests/sdk/requirements.txt and package-lock.json (.ci/run)"
            ));
        }
    }
    Ok(())
}

/// Runs one SDK script with only the env configuration a user would set:
/// `BRAINTRUST_API_KEY`, `BRAINTRUST_APP_URL` and (if given)
/// `BRAINTRUST_API_URL`. Retries are turned off (`BRAINTRUST_NUM_RETRIES=0`)
/// and flush errors are made to raise (`BRAINTRUST_SYNC_FLUSH=1`, Python) so
/// that denials surface at once.
pub async fn run(sdk: Sdk, api_key: &str, app_url: &str, api_url: Option<&str>, project: &str) -> SdkRun {
    let script = match sdk {
        Sdk::Python => "python_logger.py",
        Sdk::Js => "js_logger.mjs",
    };
    run_script(sdk, script, api_key, app_url, api_url, project, &[]).await
}

/// [`run`] with another script of `tests/sdk` and more environment
/// (`LOGGATE_TEST_*` switches of the script, `BRAINTRUST_PARENT`,
/// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, …).
pub async fn run_script(
    sdk: Sdk,
    script: &str,
    api_key: &str,
    app_url: &str,
    api_url: Option<&str>,
    project: &str,
    env: &[(&str, &str)],
) -> SdkRun {
    let tmp = tempfile::tempdir().unwrap();
    let payload_dir = tmp.path().join("payloads");
    let wire_dir = tmp.path().join("wire");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let sdk_dir = repo_root().join("tests/sdk");
    let mut cmd = match sdk {
        Sdk::Python => {
            let mut c = Command::new(python());
            c.arg(sdk_dir.join(script));
            c
        }
        Sdk::Js => {
            let mut c = Command::new(node());
            c.arg(sdk_dir.join(script)).env("LOGGATE_TEST_NODE_MODULES", node_modules());
            c
        }
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("BRAINTRUST_API_KEY", api_key)
        .env("BRAINTRUST_APP_URL", app_url)
        .env("BRAINTRUST_NUM_RETRIES", "0")
        .env("BRAINTRUST_SYNC_FLUSH", "1")
        .env("BRAINTRUST_ALL_PUBLISH_PAYLOADS_DIR", &payload_dir)
        .env("LOGGATE_TEST_PROJECT", project)
        .env("LOGGATE_TEST_WIRE_DIR", &wire_dir)
        .env("NO_PROXY", "*")
        .current_dir(tmp.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(u) = api_url {
        cmd.env("BRAINTRUST_API_URL", u);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {sdk:?} SDK script: {e}"));
    let out = wait_with_timeout(child, SCRIPT_TIMEOUT).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l.trim()).ok().filter(Value::is_object))
        .unwrap_or(Value::Null);
    SdkRun { sdk, status: out.status, stdout, stderr, report, payload_dir, wire_dir, _tmp: tmp }
}

async fn wait_with_timeout(child: std::process::Child, timeout: Duration) -> std::process::Output {
    let pid = child.id();
    let started = Instant::now();
    let handle = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(timeout, handle).await {
        Ok(out) => out.unwrap().expect("wait for SDK script"),
        Err(_) => {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            panic!("SDK script did not finish within {:?}", started.elapsed());
        }
    }
}
