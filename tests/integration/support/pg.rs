//! Postgres for the tests: a fresh database per test (`loggate_test_<random>`,
//! dropped on drop), a TCP relay in front of Postgres that a test can cut
//! (to see the gateway fail closed), and the Braintrust OpenAPI component
//! schemas as JSON-Schema validators.
//!
//! The server is `LOGGATE_TEST_PG` (default `postgres://postgres@127.0.0.1:5432`).

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
pub struct Relay {
    pub port: u16,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
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
        let (cut, _) = watch::channel(0u64);
        let (target, down2, cut2) = (target.to_owned(), down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if down2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut_rx = cut2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Relay { port, down, cut }
    }

    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
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
