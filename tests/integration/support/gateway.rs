//! Starts the real `loggate` binary as a child process against a config the
//! test builds, and stops it on drop.
//!
//! Start-up contract (contract: Configuration plus the harness agreement): the server binds
//! `server.listen` and `admin.listen` (both `127.0.0.1:0` here, also passed as
//! `LOGGATE_SERVER__LISTEN` / `LOGGATE_ADMIN__LISTEN`) and prints one JSON log
//! line with `"message":"listening"`, `"addr":"IP:PORT"` and
//! `"admin_addr":"IP:PORT"` (top level or under `"fields"`). The harness then
//! waits for `GET http://admin_addr/readyz` to answer 200.

use super::policy::PolicyBuilder;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the config of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayBuilder {
    upstream_url: String,
    /// `upstream.app_url` when it differs from `api_url`.
    app_url: Option<String>,
    public_url: Option<String>,
    reserve_port: bool,
    max_body_bytes: u64,
    /// Extra TOML appended verbatim (other sections, e.g. `[limits]`).
    extra_toml: String,
    /// `key = value` lines added to the `[server]` / `[upstream]` sections.
    server_toml: String,
    upstream_toml: String,
    /// The `[invalidation]` section, if any.
    invalidation: Option<String>,
    env: Vec<(String, String)>,
    /// `[policy]` for the postgres store instead of the policy file.
    postgres_url: Option<String>,
}

/// A running gateway.
pub struct Gateway {
    /// `http://127.0.0.1:PORT` of the public listener.
    pub url: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin_url: String,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// What login responses are rewritten to.
    pub public_url: String,
    pub config_path: PathBuf,
    pub policy_path: PathBuf,
    output: Arc<Mutex<Vec<String>>>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl GatewayBuilder {
    /// A gateway in front of `upstream_url` (both `api_url` and `app_url`).
    pub fn new(upstream_url: &str) -> Self {
        GatewayBuilder {
            upstream_url: upstream_url.trim_end_matches('/').to_owned(),
            app_url: None,
            public_url: None,
            reserve_port: false,
            max_body_bytes: 8 * 1024 * 1024,
            extra_toml: String::new(),
            server_toml: String::new(),
            upstream_toml: String::new(),
            invalidation: None,
            env: Vec::new(),
            postgres_url: None,
        }
    }

    /// Sets `server.public_url` explicitly (default: a sentinel
    /// `http://loggate.public.test:8787`, or the real address with
    /// [`reserve_public_port`](Self::reserve_public_port)).
    pub fn public_url(mut self, url: &str) -> Self {
        self.public_url = Some(url.to_owned());
        self
    }

    /// Picks a free port up front and uses it for both `server.listen` and
    /// `server.public_url`, so that SDKs configured with only the app URL
    /// follow the rewritten login response back to loggate. (Bind-then-release:
    /// a tiny race with other processes, the price of knowing the URL before
    /// the server starts.)
    pub fn reserve_public_port(mut self) -> Self {
        self.reserve_port = true;
        self
    }

    pub fn max_body_bytes(mut self, n: u64) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Appends TOML (whole sections) to the generated config.
    pub fn extra_toml(mut self, toml: &str) -> Self {
        self.extra_toml.push_str(toml);
        self.extra_toml.push('\n');
        self
    }

    /// Adds `key = value` (value already TOML, e.g. `"\"1s\""`) to `[server]`.
    pub fn server_option(mut self, key: &str, toml_value: &str) -> Self {
        self.server_toml.push_str(&format!("{key} = {toml_value}\n"));
        self
    }

    /// Adds `key = value` (value already TOML) to `[upstream]`.
    pub fn upstream_option(mut self, key: &str, toml_value: &str) -> Self {
        self.upstream_toml.push_str(&format!("{key} = {toml_value}\n"));
        self
    }

    /// Points `upstream.app_url` (login, register) somewhere other than `api_url`.
    pub fn app_url(mut self, url: &str) -> Self {
        self.app_url = Some(url.trim_end_matches('/').to_owned());
        self
    }

    /// Points `upstream.api_url` (/logs3, /v1, /version) at `url`, keeping
    /// `app_url` on the original upstream.
    pub fn api_url(mut self, url: &str) -> Self {
        if self.app_url.is_none() {
            self.app_url = Some(self.upstream_url.clone());
        }
        self.upstream_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// `server.header_read_timeout` (e.g. `"1s"`).
    pub fn header_read_timeout(self, d: &str) -> Self {
        self.server_option("header_read_timeout", &format!("\"{d}\""))
    }

    /// `upstream.timeout` (e.g. `"1s"`).
    pub fn upstream_timeout(self, d: &str) -> Self {
        self.upstream_option("timeout", &format!("\"{d}\""))
    }

    /// `upstream.passthrough_prefixes`.
    pub fn passthrough_prefixes(self, prefixes: &[&str]) -> Self {
        let list = serde_json::to_string(prefixes).expect("json list is TOML");
        self.upstream_option("passthrough_prefixes", &list)
    }

    /// Configures `[invalidation]`: `feed` is `"redis"` or `"nats"`, `url`
    /// its server, `channel` the channel/subject, `max_staleness` e.g. `"10s"`.
    pub fn invalidation(mut self, feed: &str, url: &str, channel: &str, max_staleness: &str) -> Self {
        self.invalidation = Some(format!(
            "[invalidation]\nfeed = \"{feed}\"\nurl = \"{url}\"\nchannel = \"{channel}\"\nmax_staleness = \"{max_staleness}\"\n"
        ));
        self
    }

    /// Uses the postgres policy store at `url` (`migrate_on_start = true`,
    /// `timeout = "1s"`); the policy passed to `start` is then not used.
    pub fn postgres(mut self, url: &str) -> Self {
        self.postgres_url = Some(url.to_owned());
        self
    }

    /// Sets an environment variable for the child (e.g. a `LOGGATE_X__Y` override).
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Writes the config and the policy into a temp dir, starts `loggate
    /// serve`, and waits until it is ready.
    pub async fn start(self, policy: &PolicyBuilder) -> Gateway {
        self.start_with_policy_bytes(&policy.to_bytes()).await
    }

    /// [`start`](Self::start) with a policy file of exactly these bytes, for
    /// documents a [`PolicyBuilder`] cannot express (`deleted_at`, unknown
    /// fields, `not_before`, cross-organization references).
    pub async fn start_with_policy_bytes(self, policy: &[u8]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let policy_path = dir.path().join("policy.json");
        let tmp = policy_path.with_extension("json.tmp");
        std::fs::write(&tmp, policy).expect("write policy");
        std::fs::rename(&tmp, &policy_path).expect("rename policy");

        let (listen, public_url) = if self.reserve_port {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let a = l.local_addr().unwrap();
            drop(l);
            (a.to_string(), self.public_url.clone().unwrap_or_else(|| format!("http://{a}")))
        } else {
            (
                "127.0.0.1:0".to_owned(),
                self.public_url.clone().unwrap_or_else(|| "http://loggate.public.test:8787".to_owned()),
            )
        };

        let config = format!(
            r#"[server]
listen = "{listen}"
public_url = "{public_url}"
max_body_bytes = {max_body}
{server_extra}
[upstream]
api_url = "{up}"
app_url = "{app}"
{upstream_extra}

{policy_section}
[admin]
listen = "127.0.0.1:0"

[log]
format = "json"

{invalidation}
{extra}"#,
            max_body = self.max_body_bytes,
            up = self.upstream_url,
            app = self.app_url.as_deref().unwrap_or(&self.upstream_url),
            invalidation = self.invalidation.as_deref().unwrap_or(""),
            policy_section = match &self.postgres_url {
                None => format!("[policy]\nsource = \"file\"\nfile = \"{}\"\n", toml_escape(&policy_path)),
                Some(url) => format!(
                    "[policy]\nsource = \"postgres\"\npostgres_url = \"{url}\"\nmigrate_on_start = true\ntimeout = \"1s\"\n"
                ),
            },
            extra = self.extra_toml,
            server_extra = self.server_toml,
            upstream_extra = self.upstream_toml,
        );
        let config_path = dir.path().join("loggate.toml");
        std::fs::write(&config_path, config).expect("write config");

        let mut cmd = Command::new(loggate_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("LOGGATE_SERVER__LISTEN", &listen)
            .env("LOGGATE_ADMIN__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", std::env::var("LOGGATE_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn loggate");

        let output = Arc::new(Mutex::new(Vec::<String>::new()));
        let listening = Arc::new(Mutex::new(None::<(SocketAddr, SocketAddr)>));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            let listening = listening.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addrs) = parse_listening(&line) {
                        *listening.lock().unwrap() = Some(addrs);
                    }
                    if std::env::var_os("LOGGATE_TEST_ECHO").is_some() {
                        eprintln!("[loggate] {line}");
                    }
                    output.lock().unwrap().push(line);
                }
            });
        }

        let mut gw = Gateway {
            url: String::new(),
            admin_url: String::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
            admin_addr: "0.0.0.0:0".parse().unwrap(),
            public_url,
            config_path,
            policy_path,
            output,
            child,
            _dir: dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        let (addr, admin_addr) = loop {
            if let Some(a) = *listening.lock().unwrap() {
                break a;
            }
            gw.fail_if_exited("before printing its \"listening\" line");
            if Instant::now() > deadline {
                panic!("loggate printed no \"listening\" line within {START_TIMEOUT:?}; output:\n{}", gw.output());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        gw.addr = addr;
        gw.admin_addr = admin_addr;
        gw.url = format!("http://{addr}");
        gw.admin_url = format!("http://{admin_addr}");

        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", gw.admin_url)).send().await
                && r.status() == 200
            {
                break;
            }
            gw.fail_if_exited("before becoming ready");
            if Instant::now() > deadline {
                panic!("loggate /readyz not 200 within {START_TIMEOUT:?}; output:\n{}", gw.output());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        gw
    }
}

impl Gateway {
    /// Everything the server printed so far (stdout and stderr lines).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    /// The printed lines that parse as JSON.
    pub fn log_lines(&self) -> Vec<Value> {
        self.output.lock().unwrap().iter().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Rewrites the policy file in place (atomically); the server hot-reloads it.
    pub fn write_policy(&self, policy: &PolicyBuilder) {
        policy.write(&self.policy_path);
    }

    /// Overwrites the policy file's bytes in place (open, truncate, write:
    /// what an editor or `cat > file` does), no rename.
    pub fn write_policy_in_place(&self, bytes: &[u8]) {
        std::fs::write(&self.policy_path, bytes).expect("write policy in place");
    }

    /// Replaces the policy file with `bytes` atomically (temp file + rename).
    pub fn write_policy_atomic(&self, bytes: &[u8]) {
        let tmp = self.policy_path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).expect("write policy");
        std::fs::rename(&tmp, &self.policy_path).expect("rename policy");
    }

    /// Panics if anything the server printed contains one of `secrets`.
    pub fn assert_output_free_of(&self, secrets: &[&str]) {
        let out = self.output();
        for s in secrets {
            assert!(!s.is_empty());
            assert!(!out.contains(s), "loggate's output contains a secret ({}…)", &s[..s.len().min(10)]);
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size of the child (Linux `/proc`), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }

    /// The value of the first sample of `/metrics` whose line starts with
    /// `series` (name plus labels, exactly as exported), or 0.
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics().await, series)
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The body of `GET /metrics` on the admin listener.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin_url)).await.unwrap().text().await.unwrap()
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) {
        let st = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().expect("kill");
        assert!(st.success(), "kill -TERM failed");
    }

    /// Waits (without blocking the runtime) up to `timeout` for the exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn fail_if_exited(&mut self, when: &str) {
        if let Ok(Some(st)) = self.child.try_wait() {
            std::thread::sleep(Duration::from_millis(100)); // let the readers drain
            panic!("loggate exited ({st}) {when}; output:\n{}", self.output());
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the sample `series` (e.g. `loggate_rows_total{outcome="denied"}`)
/// in a Prometheus text exposition, or 0 when absent. Labels match in any
/// order (the exposition sorts them); values must not contain `",`.
pub fn metric_value(text: &str, series: &str) -> f64 {
    let (name, labels) = split_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (sample, value) = l.rsplit_once(' ')?;
            let (n, mut ls) = split_series(sample);
            let mut want = labels.clone();
            ls.sort();
            want.sort();
            (n == name && ls == want).then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

fn split_series(series: &str) -> (&str, Vec<String>) {
    match series.split_once('{') {
        None => (series.trim(), Vec::new()),
        Some((name, rest)) => {
            let inner = rest.trim_end().trim_end_matches('}');
            let labels =
                inner.split("\",").filter(|l| !l.is_empty()).map(|l| l.trim_end_matches('"').to_owned()).collect();
            (name, labels)
        }
    }
}

/// The `loggate` binary under test (`LOGGATE_TEST_BIN` runs another build,
/// e.g. a release binary, instead).
pub fn loggate_bin() -> PathBuf {
    std::env::var_os("LOGGATE_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_loggate")))
}

pub fn toml_escape(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
}

/// `(addr, admin_addr)` from a `"message":"listening"` JSON log line.
fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    let field = |k: &str| -> Option<&Value> { v.get(k).or_else(|| v.get("fields").and_then(|f| f.get(k))) };
    if field("message")?.as_str()? != "listening" {
        return None;
    }
    let addr = field("addr")?.as_str()?.parse().ok()?;
    let admin = field("admin_addr")?.as_str()?.parse().ok()?;
    Some((addr, admin))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_listening_line_flat_and_nested() {
        let flat = r#"{"level":"INFO","message":"listening","addr":"127.0.0.1:1234","admin_addr":"127.0.0.1:5678"}"#;
        let nested = r#"{"timestamp":"x","level":"INFO","fields":{"message":"listening","addr":"127.0.0.1:1234","admin_addr":"127.0.0.1:5678"},"target":"loggate"}"#;
        for l in [flat, nested] {
            let (a, b) = super::parse_listening(l).unwrap();
            assert_eq!(a.port(), 1234);
            assert_eq!(b.port(), 5678);
        }
        assert!(super::parse_listening(r#"{"message":"starting"}"#).is_none());
    }

    #[test]
    fn metric_values_match_labels_in_any_order() {
        let text = "# HELP x\nloggate_denials_total{object_type=\"project_log\",org=\"o1\",reason=\"permission_denied\"} 3\nloggate_rows_total{outcome=\"denied\"} 2\nplain 7\n";
        let v = super::metric_value(
            text,
            r#"loggate_denials_total{reason="permission_denied",object_type="project_log",org="o1"}"#,
        );
        assert_eq!(v, 3.0);
        assert_eq!(super::metric_value(text, r#"loggate_rows_total{outcome="denied"}"#), 2.0);
        assert_eq!(super::metric_value(text, r#"loggate_rows_total{outcome="forwarded"}"#), 0.0);
        assert_eq!(super::metric_value(text, "plain"), 7.0);
    }
}
