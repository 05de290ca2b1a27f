//! Postgres for the tests: a fresh database per test (`loggate_test_<random>`,
//! dropped on drop), a TCP relay in front of Postgres that a test can cut
//! (to see the gateway fail closed), and the Braintrust OpenAPI component
//! schemas as JSON-Schema validators.
//!
//! The server is `LOGGATE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`).

mod frames;

pub use frames::Counts;
use frames::FrameCounter;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub fn server_url() -> String {
    std::env::var("LOGGATE_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A database of its own, dropped (with its connections) on drop.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

async fn admin_client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&format!("{}/postgres", server_url()), tokio_postgres::NoTls)
        .await
        .expect("connect to the test Postgres (set LOGGATE_TEST_PG)");
    tokio::spawn(conn);
    client
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("loggate_test_{}", super::policy::new_id().replace('-', "")[..16].to_owned());
        admin_client().await.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create database");
        TestDb { url: format!("{}/{name}", server_url()), name }
    }

    /// This database's URL through `relay` (which a test can cut).
    pub fn url_via(&self, relay: &Relay) -> String {
        format!("postgres://{}127.0.0.1:{}/{}", user_part(&self.url), relay.port, self.name)
    }

    /// A plain client on this database (for SQL a test runs itself).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await.expect("connect");
        tokio::spawn(conn);
        client
    }

    /// This database's counters in `pg_stat_database`, read from another
    /// database so that reading them adds nothing. Backends report them
    /// when they go idle, at most once a second: they lag up to that long.
    pub async fn stats(&self) -> DbStats {
        let row = admin_client()
            .await
            .query_one(
                "SELECT xact_commit + xact_rollback, tup_returned, tup_fetched FROM pg_stat_database WHERE datname = $1",
                &[&self.name],
            )
            .await
            .expect("pg_stat_database");
        DbStats { transactions: row.get(0), rows_returned: row.get(1), rows_fetched: row.get(2) }
    }
}

/// `pg_stat_database` counters of one database (see [`TestDb::stats`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct DbStats {
    /// Transactions committed or rolled back.
    pub transactions: i64,
    /// `tup_returned`: rows read by sequential scans and index entries returned.
    pub rows_returned: i64,
    /// `tup_fetched`: rows fetched by index scans.
    pub rows_fetched: i64,
}

impl std::ops::Sub for DbStats {
    type Output = DbStats;
    fn sub(self, earlier: DbStats) -> DbStats {
        DbStats {
            transactions: self.transactions - earlier.transactions,
            rows_returned: self.rows_returned - earlier.rows_returned,
            rows_fetched: self.rows_fetched - earlier.rows_fetched,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let _ =
                    admin_client().await.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            });
        })
        .join();
    }
}

/// A TCP relay to Postgres. `cut()` closes every relayed connection and
/// refuses new ones, as if the database went away; `restore()` undoes it.
/// It counts the statements clients send through it ([`Relay::statements`]).
pub struct Relay {
    pub port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// `(statements, round trips)` sent through the relay (see `frames`).
    counted: Arc<(AtomicU64, AtomicU64)>,
}

/// `host:port` of a `postgres://user@host:port` URL.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// `user@` (or `user:password@`) of a `postgres://` URL, or "".
fn user_part(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or("").rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default()
}

impl Relay {
    /// A relay to the test server ([`server_url`]); databases reach it with [`TestDb::url_via`].
    pub async fn to_server() -> Relay {
        Relay::start(&host_port(&server_url())).await
    }

    pub async fn start(target: &str) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let counted = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let (cut, _) = watch::channel(0u64);
        let (target, down2, cut2, counted2) = (target.to_owned(), down.clone(), cut.clone(), counted.clone());
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if down2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (target, counted) = (target.clone(), counted2.clone());
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_server, mut to_server) = outbound.into_split();
                    tokio::select! {
                        _ = forward_counting(&mut from_client, &mut to_server, &counted) => {}
                        _ = tokio::io::copy(&mut from_server, &mut to_client) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay { port, down, cut, counted }
    }

    /// What clients asked through the relay so far (see `frames`).
    pub fn counts(&self) -> Counts {
        Counts { statements: self.counted.0.load(Ordering::SeqCst), round_trips: self.counted.1.load(Ordering::SeqCst) }
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// Copies a client's bytes to the server, counting its statements.
async fn forward_counting(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    counted: &(AtomicU64, AtomicU64),
) {
    let mut frames = FrameCounter::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let counts = frames.feed(&buf[..n]);
        counted.0.fetch_add(counts.statements, Ordering::SeqCst);
        counted.1.fetch_add(counts.round_trips, Ordering::SeqCst);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The admin API's part of the Braintrust OpenAPI spec
/// (`tests/fixtures/braintrust-openapi-admin.json`, see the README there).
pub fn openapi_spec() -> Value {
    serde_json::from_str(include_str!("../../fixtures/braintrust-openapi-admin.json"))
        .expect("the spec fixture is JSON")
}

/// OpenAPI 3.0 -> JSON Schema: `nullable: true` becomes "or null".
fn to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m {
                if k != "nullable" && k != "example" {
                    out.insert(k.clone(), to_json_schema(v));
                }
            }
            if m.get("nullable") == Some(&Value::Bool(true)) {
                let schema = Value::Object(out);
                return json!({"anyOf": [schema, {"type": "null"}]});
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_json_schema).collect()),
        other => other.clone(),
    }
}

/// Validates instances against one component schema of the spec (with
/// `$ref`s resolved within the spec), or against an inline schema that
/// refers to components.
pub struct SpecSchemas {
    components: Value,
}

impl SpecSchemas {
    pub fn load() -> Self {
        let spec = openapi_spec();
        SpecSchemas { components: to_json_schema(&spec["components"]) }
    }

    /// Panics with every violation if `instance` does not match `schema`
    /// (e.g. `{"$ref": "#/components/schemas/Acl"}`).
    pub fn assert_valid(&self, schema: Value, instance: &Value) {
        let mut root = to_json_schema(&schema);
        root["components"] = self.components.clone();
        let validator = jsonschema::validator_for(&root).expect("schema compiles");
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(errors.is_empty(), "{instance} does not match {schema}: {errors:#?}");
    }

    pub fn assert_component(&self, name: &str, instance: &Value) {
        self.assert_valid(json!({"$ref": format!("#/components/schemas/{name}")}), instance);
    }

    /// `{"objects": [<name>...]}`.
    pub fn assert_list(&self, name: &str, instance: &Value) {
        self.assert_valid(
            json!({"type": "object", "properties": {"objects": {"type": "array", "items": {"$ref": format!("#/components/schemas/{name}")}}},
                   "required": ["objects"], "additionalProperties": false}),
            instance,
        );
    }
}
