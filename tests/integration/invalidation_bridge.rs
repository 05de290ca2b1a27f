//! The bridge (Postgres `LISTEN loggate_policy` -> Redis feed) against a
//! real Postgres and a private Redis. The change log here is a stand-in
//! with the shape the postgres store's triggers produce (one revision per
//! transaction, `policy_changes(revision, kind, id, committed_at)`,
//! `pg_notify('loggate_policy', revision)`), read through the bridge's
//! `ChangeSource` trait, exactly as `PgStore` will be.

use crate::support::feeds::RedisServer;
use crate::support::pg::TestDb;
use futures_util::StreamExt;
use loggate::invalidation::bridge::{Bridge, ChangeSource};
use loggate::invalidation::redis::Publisher;
use loggate::policy::StoreError;
use std::time::{Duration, Instant};

const CHANNEL: &str = "loggate.policy.bridge";

const SCHEMA: &str = r#"
CREATE TABLE policy_revision (id int PRIMARY KEY, revision bigint NOT NULL);
INSERT INTO policy_revision VALUES (1, 0);
CREATE TABLE policy_changes (revision bigint NOT NULL, kind text NOT NULL, id text NOT NULL,
                             committed_at timestamptz NOT NULL DEFAULT clock_timestamp());
-- One revision per transaction: the counter row is locked until commit, so
-- revisions are assigned in commit order and without holes.
CREATE FUNCTION record_change(k text, i text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r bigint;
BEGIN
  r := nullif(current_setting('loggate.revision', true), '')::bigint;
  IF r IS NULL THEN
    UPDATE policy_revision SET revision = revision + 1 WHERE id = 1 RETURNING revision INTO r;
    PERFORM set_config('loggate.revision', r::text, true);
    PERFORM pg_notify('loggate_policy', r::text);
  END IF;
  INSERT INTO policy_changes (revision, kind, id) VALUES (r, k, i);
END $$;
"#;

struct PgLog {
    client: tokio_postgres::Client,
}

impl ChangeSource for PgLog {
    async fn revision(&self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT revision FROM policy_revision WHERE id = 1", &[])
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn changes(&self, revision: u64) -> Result<(i64, Vec<(String, String)>), StoreError> {
        let rows = self
            .client
            .query(
                "SELECT kind, id, (extract(epoch FROM committed_at) * 1000)::bigint FROM policy_changes \
                 WHERE revision = $1 ORDER BY kind, id",
                &[&(revision as i64)],
            )
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        let at = rows.first().map(|r| r.get::<_, i64>(2)).unwrap_or(0);
        Ok((at, rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

/// Commits one transaction with these changes.
async fn commit(db: &tokio_postgres::Client, changes: &[(&str, &str)]) {
    let mut sql = String::from("BEGIN;");
    for (k, i) in changes {
        sql.push_str(&format!("SELECT record_change('{k}', '{i}');"));
    }
    sql.push_str("COMMIT;");
    db.batch_execute(&sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transaction_is_published_once_in_order_and_reconnects_catch_up() {
    let db = TestDb::create().await;
    let writer = connect(&db.url).await;
    writer.batch_execute(SCHEMA).await.unwrap();
    commit(&writer, &[("acl", "a0")]).await;

    let redis = RedisServer::start();
    let mut feed = redis::Client::open(redis.url()).unwrap().get_async_pubsub().await.unwrap();
    feed.subscribe(CHANNEL).await.unwrap();
    let mut feed = feed.into_on_message();
    let mut next = async || -> serde_json::Value {
        let m = tokio::time::timeout(Duration::from_secs(5), feed.next()).await.expect("a message within 5 s").unwrap();
        serde_json::from_slice(m.get_payload_bytes()).unwrap()
    };

    let log = PgLog { client: connect(&db.url).await };
    let bridge = Bridge::new(log, Publisher::new(&redis.url(), CHANNEL).unwrap());
    let task = tokio::spawn(bridge.run(db.url.clone()));

    // On start: the newest revision.
    let m = next().await;
    assert_eq!((m["revision"].as_u64(), &m["changes"]), (Some(1), &serde_json::json!([{"kind": "acl", "id": "a0"}])));

    // One transaction with three changes: one message. Then measure.
    commit(&writer, &[("service_token", "t1"), ("group", "g1"), ("acl", "a1")]).await;
    let m = next().await;
    assert_eq!(m["revision"], 2);
    assert_eq!(m["changes"].as_array().unwrap().len(), 3);
    assert!(m["committed_at_ms"].as_i64().unwrap() > 1_600_000_000_000);
    let mut lags = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        commit(&writer, &[("service_token", &format!("t{i}"))]).await;
        let m = next().await;
        lags.push(started.elapsed());
        assert_eq!(m["revision"], 3 + i);
    }
    lags.sort();
    println!("commit -> published: p50 {:?}, max {:?}", lags[lags.len() / 2], lags[lags.len() - 1]);

    // The LISTEN connection is killed while two transactions commit: the
    // bridge reconnects and publishes both, in order.
    let admin = connect(&db.url).await;
    admin
        .batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
        .await
        .unwrap();
    commit(&writer, &[("user", "u1")]).await;
    commit(&writer, &[("project", "p1")]).await;
    let (a, b) = (next().await, next().await);
    assert_eq!((a["revision"].as_u64(), b["revision"].as_u64()), (Some(23), Some(24)));
    assert_eq!(b["changes"], serde_json::json!([{"kind": "project", "id": "p1"}]));
    task.abort();
}
