//! Private Redis and NATS servers for feed tests: each on a free port of
//! its own, so a test can kill, stop and restart it without disturbing
//! anything else. Stopped on drop.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A `redis-server` of the test's own.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> Self {
        let mut s = RedisServer { port: free_port(), child: None };
        s.restart();
        s
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port.
    pub fn restart(&mut self) {
        stop_child(&mut self.child);
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server");
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// `CLIENT KILL TYPE pubsub`: drops every subscriber connection.
    pub fn kill_pubsub_clients(&self) -> String {
        self.cli(&["CLIENT", "KILL", "TYPE", "pubsub"])
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let out =
            Command::new("redis-cli").args(["-p", &self.port.to_string()]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `PUBLISH channel message`; returns the number of receivers.
    pub async fn publish(&self, channel: &str, message: &str) -> u64 {
        let client = redis::Client::open(self.url()).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.expect("connect to test redis");
        redis::cmd("PUBLISH").arg(channel).arg(message).query_async(&mut c).await.expect("PUBLISH")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `nats-server` of the test's own.
pub struct NatsServer {
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        let mut s = NatsServer { port: free_port(), child: None };
        s.restart();
        s
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        stop_child(&mut self.child);
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server is installed");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server");
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Publishes one message and waits until the server has it.
    pub async fn publish(&self, subject: &str, message: &str) {
        let client = async_nats::connect(self.url()).await.expect("connect to test nats");
        client.publish(subject.to_owned(), message.to_owned().into()).await.unwrap();
        client.flush().await.unwrap();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The contract message for one revision committed now.
pub fn revision_message(revision: u64, changes: &[(&str, &str)]) -> String {
    let committed_at_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let changes: Vec<_> = changes.iter().map(|(k, id)| serde_json::json!({"kind": k, "id": id})).collect();
    serde_json::json!({"revision": revision, "committed_at_ms": committed_at_ms, "changes": changes}).to_string()
}

/// The value of one sample line (`name{labels} value`) of a `/metrics` body.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
