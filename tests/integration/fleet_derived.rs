//! Derived tokens across a fleet (contract: "Scoped and derived tokens"):
//! two replicas on one Postgres store and one invalidation feed (Redis, and
//! NATS for the parent-follows stories). A token holder derives a child on
//! replica 1 (`POST /v1/service_token/derive`); replica 2 honours it within
//! the child's scope only; narrowing the parent (admin `PATCH`) narrows the
//! child and deleting the parent deletes the child, on every replica within
//! the revocation bound.
//!
//! Replica "1" and "2" of the stories are `replicas[0]` and `replicas[1]`.

use crate::support::fleet::{Fleet, FleetBuilder};
use crate::support::policy::{PolicyBuilder, Token};
use crate::support::wait;
use crate::support::world::{experiment_row, log_row};
use loggate_model::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a change to the parent may take to reach every replica here
/// (the contract's bound is the feed's; this is generous for a shared CI box).
const BOUND: Duration = Duration::from_secs(5);

struct Setup {
    fleet: Fleet,
    org: String,
    project: String,
    other_project: String,
    experiment: String,
    /// The service account: `update` and `read` on the whole organization.
    account: String,
    /// A token of the account, no scope.
    parent: Token,
    /// A token of the account bound to 10.0.0.0/8 (the fleet's callers are 127.0.0.1).
    parent_ten: Token,
    /// A token of the account bound to 127.0.0.0/8.
    parent_loopback: Token,
    /// A token of the account that expired in 2001.
    parent_lapsed: Token,
}

async fn setup(builder: FleetBuilder) -> Setup {
    let mut p = PolicyBuilder::new();
    let org = p.org("acme");
    let project = p.project(&org, "checkout");
    let other_project = p.project(&org, "internal");
    let experiment = p.experiment(&project, "baseline");
    let account = p.user("pipeline", true);
    p.grant_user(&account, "update", "organization", &org);
    p.grant_user(&account, "read", "organization", &org);
    let parent = p.token_for(&org, "pipeline", &account, None);
    let parent_ten = p.scoped_token(&org, "pipeline-ten", &account, json!({"client_cidrs": ["10.0.0.0/8"]}));
    let parent_loopback = p.scoped_token(&org, "pipeline-loopback", &account, json!({"client_cidrs": ["127.0.0.0/8"]}));
    let parent_lapsed = p.token_entry(&org, "pipeline-lapsed", &account, json!({"expires_at": "2001-01-01T00:00:00Z"}));
    let fleet = builder.replicas(2).start(&p).await;
    Setup {
        fleet,
        org,
        project,
        other_project,
        experiment,
        account,
        parent,
        parent_ten,
        parent_loopback,
        parent_lapsed,
    }
}

/// `(status, body)` of `POST /v1/service_token/derive` on replica `i`.
async fn derive(f: &Fleet, i: usize, parent: &str, body: &Value) -> (u16, Value) {
    let r = f
        .http
        .post(format!("{}/v1/service_token/derive", f.replicas[i].url))
        .bearer_auth(parent)
        .json(body)
        .send()
        .await
        .expect("POST /v1/service_token/derive");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// A derive call that must answer 200: `(child id, child key, answer)`.
async fn derive_ok(f: &Fleet, i: usize, parent: &str, body: &Value) -> (String, String, Value) {
    let (status, v) = derive(f, i, parent, body).await;
    assert_eq!(status, 200, "derive {body}: {v}");
    (v["id"].as_str().unwrap().to_owned(), v["key"].as_str().unwrap().to_owned(), v)
}

fn experiment_scope(experiment: &str) -> Value {
    json!({"grants": [{"object_type": "experiment", "object_id": experiment, "permissions": ["update"]}]})
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// One row on replica `i`; on 200 checks the row reached the data plane,
/// otherwise that nothing did. `(status, error code)`.
async fn write_checked(f: &Fleet, i: usize, token: &str, row: Value) -> (u16, String) {
    let before = f.upstream.requests_to("/logs3").len();
    let id = row["id"].clone();
    let (status, body) = f.write(i, token, &row).await;
    if status == 200 {
        assert!(f.upstream.logs3_rows().iter().any(|r| r["id"] == id), "replica {i}: 200 but row {id} never arrived");
    } else {
        assert_eq!(
            f.upstream.requests_to("/logs3").len(),
            before,
            "replica {i}: refused ({status} {body}) yet forwarded"
        );
    }
    (status, body["error"]["code"].as_str().unwrap_or("").to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

// ---------------------------------------------------------------------------

/// A child derived on replica 1 writes on replica 2 inside its scope only;
/// the answer names its parent, a lifetime of at most the ttl and the
/// effective scope; a ttl over `limits.max_derived_ttl` (24h by default),
/// zero or unparsable, and unknown fields, are 400 naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_derived_on_one_replica_writes_on_another_within_its_scope() {
    let s = setup(FleetBuilder::redis()).await;
    let f = &s.fleet;
    let asked_at = now_ms();
    let (child_id, key, answer) = derive_ok(
        f,
        0,
        &s.parent.raw,
        &json!({"name": "ci-job-1", "ttl": "1h", "scope": experiment_scope(&s.experiment)}),
    )
    .await;
    let answered_at = now_ms();
    assert!(key.starts_with("bt-st-") && key != s.parent.raw, "{answer}");
    assert_eq!(answer["parent_id"], s.parent.id.as_str(), "{answer}");
    assert_eq!(answer["scope"], experiment_scope(&s.experiment), "{answer}");
    let expires = Timestamp::parse_rfc3339(answer["expires_at"].as_str().expect("expires_at")).expect("RFC 3339");
    assert!(expires.unix_ms() <= answered_at + 3_600_000, "expires_at beyond now+1h: {answer}");
    assert!(expires.unix_ms() >= asked_at + 3_600_000 - 1_000, "expires_at well short of the ttl: {answer}");

    // Replica 2 honours the child at once (it is in the store), in scope only.
    assert_eq!(write_checked(f, 1, &key, experiment_row(&s.experiment)).await, (200, String::new()));
    assert_eq!(write_checked(f, 1, &key, log_row(&s.project)).await, (403, "scope_denied".into()));
    assert_eq!(write_checked(f, 1, &key, log_row(&s.other_project)).await, (403, "scope_denied".into()));
    // And replica 1, for good measure.
    assert_eq!(write_checked(f, 0, &key, experiment_row(&s.experiment)).await, (200, String::new()));

    // The admin API shows the child with its parent and scope.
    let got = f.admin_ok(1, Method::GET, &format!("/v1/service_token/{child_id}"), None).await;
    assert_eq!(got["parent_id"], s.parent.id.as_str(), "{got}");
    assert_eq!(got["scope"], experiment_scope(&s.experiment), "{got}");
    assert!(got.get("key").is_none(), "{got}");

    // A grandchild asking for more than the child has gets the intersection.
    let (_, grandkey, g) = derive_ok(
        f,
        1,
        &key,
        &json!({"name": "ci-job-1a", "ttl": "30m",
                "scope": {"grants": [{"object_type": "project", "object_id": s.project, "permissions": ["update", "read"]}]}}),
    )
    .await;
    assert_eq!(g["parent_id"], child_id.as_str(), "{g}");
    assert_eq!(g["scope"], experiment_scope(&s.experiment), "the grandchild outgrew its parent: {g}");
    assert_eq!(write_checked(f, 0, &grandkey, experiment_row(&s.experiment)).await.0, 200);
    assert_eq!(write_checked(f, 0, &grandkey, log_row(&s.project)).await, (403, "scope_denied".into()));

    // Bad requests: 400 naming the field; nothing written.
    let before: i64 = f.db.client().await.query_one("SELECT count(*) FROM service_tokens", &[]).await.unwrap().get(0);
    for (body, field) in [
        (json!({"name": "x", "ttl": "25h"}), "ttl"),
        (json!({"name": "x", "ttl": "0s"}), "ttl"),
        (json!({"name": "x", "ttl": "soon"}), "ttl"),
        (json!({"name": "x"}), "ttl"),
        (json!({"name": "x", "ttl": "1h", "parent_id": s.parent.id}), "parent_id"),
        (json!({"name": "x", "ttl": "1h", "expires_at": "2999-01-01T00:00:00Z"}), "expires_at"),
        (json!({"ttl": "1h"}), "name"),
    ] {
        let (status, v) = derive(f, 1, &s.parent.raw, &body).await;
        assert_eq!(status, 400, "{body}: {v}");
        assert_eq!(v["error"]["code"], "bad_request", "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    let after: i64 = f.db.client().await.query_one("SELECT count(*) FROM service_tokens", &[]).await.unwrap().get(0);
    assert_eq!(after, before, "a refused derivation wrote a token");
    // The parent still writes anywhere in the organization.
    assert_eq!(write_checked(f, 1, &s.parent.raw, log_row(&s.other_project)).await.0, 200);
}

/// The configured `limits.max_derived_ttl` is the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_derived_ttl_is_configurable() {
    // One replica of its own: the fleet's config already has a [limits].
    let mut p = PolicyBuilder::new();
    let org = p.org("acme");
    let account = p.user("pipeline", true);
    p.grant_user(&account, "update", "organization", &org);
    let parent = p.token_for(&org, "pipeline", &account, None);
    let db = crate::support::pg::TestDb::create().await;
    let upstream = crate::support::upstream::Upstream::start(p.upstream_orgs()).await;
    let store = loggate::policy::postgres::PgStore::open(&db.url, Duration::from_secs(10)).expect("store");
    store.migrate().await.expect("migrations");
    store.import(&serde_json::from_value(p.to_json()).expect("policy"), true).await.expect("import");
    let gw = crate::support::gateway::GatewayBuilder::new(&upstream.url)
        .postgres(&db.url)
        .extra_toml("[limits]\nmax_derived_ttl = \"2h\"\n")
        .start(&PolicyBuilder::new())
        .await;
    let http = reqwest::Client::new();
    let call = async |ttl: &str| {
        let r = http
            .post(format!("{}/v1/service_token/derive", gw.url))
            .bearer_auth(&parent.raw)
            .json(&json!({"name": "j", "ttl": ttl}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    let (status, v) = call("3h").await;
    assert_eq!((status, v["error"]["field"].as_str()), (400, Some("ttl")), "{v}");
    let (status, v) = call("2h").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["parent_id"], parent.id.as_str());
}

/// Narrowing the parent narrows the child on every replica within the bound.
async fn narrowing_the_parent_narrows_the_child(builder: FleetBuilder) {
    let s = setup(builder).await;
    let f = &s.fleet;
    let scope = experiment_scope(&s.experiment);
    let (_, key, _) = derive_ok(f, 0, &s.parent.raw, &json!({"name": "job", "ttl": "1h", "scope": scope})).await;
    for i in 0..2 {
        assert_eq!(write_checked(f, i, &key, experiment_row(&s.experiment)).await.0, 200, "replica {i}");
    }
    // The parent now covers checkout's project log only: not the experiment.
    let narrowed =
        json!({"grants": [{"object_type": "project_log", "object_id": s.project, "permissions": ["update"]}]});
    let path = format!("/v1/service_token/{}", s.parent.id);
    let answer = f.admin_ok(0, Method::PATCH, &path, Some(json!({"scope": narrowed}))).await;
    assert_eq!(answer["scope"], narrowed, "{answer}");
    let started = Instant::now();
    let took = f
        .until_all("the child is refused once its parent is narrowed", BOUND, async |i| {
            let (status, body) = f.write(i, &key, &experiment_row(&s.experiment)).await;
            status == 403 && body["error"]["code"] == "scope_denied"
        })
        .await;
    eprintln!(
        "parent narrowed -> child refused on every replica: {took:?} (since the PATCH answer: {:?})",
        started.elapsed()
    );
    // The refusal forwards nothing, and the child cannot regain ground: the
    // project log is in the parent's scope now but not in the child's own.
    for i in 0..2 {
        assert_eq!(write_checked(f, i, &key, experiment_row(&s.experiment)).await, (403, "scope_denied".into()));
        assert_eq!(write_checked(f, i, &key, log_row(&s.project)).await, (403, "scope_denied".into()));
        // The parent itself is narrowed the same way.
        assert_eq!(write_checked(f, i, &s.parent.raw, log_row(&s.project)).await.0, 200);
        assert_eq!(write_checked(f, i, &s.parent.raw, experiment_row(&s.experiment)).await.1, "scope_denied");
    }
    // Widening the parent again gives the child back exactly its own scope.
    f.admin_ok(0, Method::PATCH, &path, Some(json!({"scope": null}))).await;
    f.until_all("the child writes again once its parent is widened", BOUND, async |i| {
        f.write(i, &key, &experiment_row(&s.experiment)).await.0 == 200
    })
    .await;
    assert_eq!(write_checked(f, 1, &key, log_row(&s.project)).await, (403, "scope_denied".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_narrowing_the_parent_narrows_the_child() {
    narrowing_the_parent_narrows_the_child(FleetBuilder::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_narrowing_the_parent_narrows_the_child() {
    narrowing_the_parent_narrows_the_child(FleetBuilder::nats()).await;
}

/// `rounds` times: a fresh parent (admin API) and child (derived on replica
/// 1, warmed on replica 2); the parent is deleted through the admin API of
/// replica 1 and replica 2 is polled until the child is refused (401).
/// Returns the sorted times from the DELETE's answer to the first refusal.
async fn deleting_the_parent_refuses_the_child(builder: FleetBuilder, rounds: usize) -> Vec<Duration> {
    let s = setup(builder).await;
    let f = &s.fleet;
    let db = f.db.client().await;
    let mut lags = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let created = f
            .admin_ok(
                0,
                Method::POST,
                "/v1/service_token",
                Some(json!({"name": format!("parent-{round}"), "service_account_id": s.account})),
            )
            .await;
        let (parent_id, parent_key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
        let (child_id, child, _) = derive_ok(
            f,
            0,
            parent_key,
            &json!({"name": format!("child-{round}"), "ttl": "1h",
                                                 "scope": experiment_scope(&s.experiment)}),
        )
        .await;
        // Warm replica 2 (its cache now holds the child's identity).
        wait::until(format!("round {round}: the child writes on replica 2"), BOUND, async || {
            f.write(1, &child, &experiment_row(&s.experiment)).await.0 == 200
        })
        .await;
        f.admin_ok(0, Method::DELETE, &format!("/v1/service_token/{parent_id}"), None).await;
        let deleted = Instant::now();
        loop {
            let (status, body) = f.write(1, &child, &experiment_row(&s.experiment)).await;
            if status == 401 {
                assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
                break;
            }
            assert_eq!(status, 200, "round {round}: the child answered {status} {body}");
            assert!(
                deleted.elapsed() < BOUND,
                "round {round}: the child still writes {BOUND:?} after its parent's deletion"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lags.push(deleted.elapsed());
        // The child is gone from the store with its parent, and refused everywhere.
        let left = db.query_opt("SELECT 1 FROM service_tokens WHERE id = $1", &[&child_id]).await.unwrap();
        assert!(left.is_none(), "round {round}: the child outlived its parent in the store");
        assert_eq!(write_checked(f, 0, &child, experiment_row(&s.experiment)).await, (401, "unauthenticated".into()));
    }
    lags.sort();
    lags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_deleting_the_parent_refuses_the_child_everywhere() {
    let started = Instant::now();
    let lags = deleting_the_parent_refuses_the_child(FleetBuilder::redis(), 20).await;
    eprintln!(
        "redis: parent deleted -> child refused on replica 2 over {} rounds: p50 {:?} p99 {:?} max {:?} (test took {:?})",
        lags.len(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99),
        lags.last().unwrap(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_deleting_the_parent_refuses_the_child_everywhere() {
    let lags = deleting_the_parent_refuses_the_child(FleetBuilder::nats(), 5).await;
    eprintln!(
        "nats: parent deleted -> child refused on replica 2 over {} rounds: p50 {:?} p99 {:?}",
        lags.len(),
        percentile(&lags, 0.50),
        percentile(&lags, 0.99)
    );
}

/// The derive call is held to the parent's `client_cidrs` and validity;
/// a child of an address-bound parent inherits the binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derivation_is_held_to_the_parents_address_and_validity() {
    let s = setup(FleetBuilder::redis()).await;
    let f = &s.fleet;
    let count = async || -> i64 {
        f.db.client().await.query_one("SELECT count(*) FROM service_tokens", &[]).await.unwrap().get(0)
    };
    let before = count().await;
    for i in 0..2 {
        let (status, v) = derive(f, i, &s.parent_ten.raw, &json!({"name": "job", "ttl": "1h"})).await;
        assert_eq!(status, 403, "replica {i}: {v}");
        assert_eq!(v["error"]["code"], "client_address_denied", "replica {i}: {v}");
        let (status, v) = derive(f, i, &s.parent_lapsed.raw, &json!({"name": "job", "ttl": "1h"})).await;
        assert_eq!(status, 401, "replica {i}: {v}");
        assert_eq!(v["error"]["code"], "unauthenticated", "replica {i}: {v}");
    }
    assert_eq!(count().await, before, "a refused derivation wrote a token");
    assert!(f.upstream.requests().is_empty(), "a derive call reached the data plane: {:?}", f.upstream.requests());

    // From inside the parent's range: the child carries the range along.
    let (_, key, answer) = derive_ok(f, 0, &s.parent_loopback.raw, &json!({"name": "job", "ttl": "1h"})).await;
    assert_eq!(answer["scope"], json!({"client_cidrs": ["127.0.0.0/8"]}), "{answer}");
    assert_eq!(write_checked(f, 1, &key, log_row(&s.project)).await.0, 200);
    // Asking for a range outside the parent's gives a child that admits no one.
    let (_, key, answer) = derive_ok(
        f,
        0,
        &s.parent_loopback.raw,
        &json!({"name": "job", "ttl": "1h", "scope": {"client_cidrs": ["10.0.0.0/8"]}}),
    )
    .await;
    assert_eq!(answer["scope"], json!({"client_cidrs": []}), "{answer}");
    assert_eq!(write_checked(f, 1, &key, log_row(&s.project)).await, (403, "client_address_denied".into()));
}

/// A child lives no longer than its parent, and the parent's window and
/// address binding, changed later through the admin API, reach the child
/// on every replica within the bound.
async fn the_parents_window_and_address_bound_the_child(builder: FleetBuilder) {
    let s = setup(builder).await;
    let f = &s.fleet;
    // A parent created through the admin API with a window and a scope.
    let until = Timestamp::from_unix_ms(now_ms() + 30 * 60_000).to_rfc3339();
    let scope = json!({"grants": [{"object_type": "project", "object_id": s.project, "permissions": ["update"]}]});
    let created = f
        .admin_ok(
            0,
            Method::POST,
            "/v1/service_token",
            Some(json!({"name": "windowed", "service_account_id": s.account, "scope": scope,
                        "not_before": "2000-01-01T00:00:00Z", "expires_at": until})),
        )
        .await;
    let (parent_id, parent_key) = (created["id"].as_str().unwrap(), created["key"].as_str().unwrap());
    let got = f.admin_ok(1, Method::GET, &format!("/v1/service_token/{parent_id}"), None).await;
    assert_eq!(got["scope"], scope, "{got}");
    assert_eq!(got["parent_id"], Value::Null, "{got}");
    let ts =
        |v: &Value| Timestamp::parse_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"))).unwrap();
    assert_eq!(ts(&got["expires_at"]).unix_ms() / 1000, ts(&json!(until)).unix_ms() / 1000, "{got}");
    assert_eq!(ts(&got["not_before"]).unix_ms(), ts(&json!("2000-01-01T00:00:00Z")).unix_ms(), "{got}");

    // ttl 1h from a parent with 30 minutes left: the parent's end wins.
    let r = f
        .http
        .post(format!("{}/v1/service_token/derive", f.replicas[0].url))
        .bearer_auth(parent_key)
        .json(&json!({"name": "job", "ttl": "1h", "scope": experiment_scope(&s.experiment)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"), "the key may be kept");
    let answer: Value = r.json().await.unwrap();
    assert_eq!(ts(&answer["expires_at"]).unix_ms() / 1000, ts(&json!(until)).unix_ms() / 1000, "{answer}");
    assert_eq!(answer["scope"], experiment_scope(&s.experiment), "{answer}");
    let key = answer["key"].as_str().unwrap().to_owned();
    let path = format!("/v1/service_token/{parent_id}");
    let child_writes = async |i: usize| f.write(i, &key, &experiment_row(&s.experiment)).await;
    f.until_all("the child writes", BOUND, async |i| child_writes(i).await.0 == 200).await;

    for (change, undo, status, code) in [
        (json!({"expires_at": "2001-01-01T00:00:00Z"}), json!({"expires_at": null}), 401, "unauthenticated"),
        (json!({"not_before": "2999-01-01T00:00:00Z"}), json!({"not_before": null}), 401, "unauthenticated"),
        (json!({"scope": {"client_cidrs": ["10.0.0.0/8"]}}), json!({"scope": null}), 403, "client_address_denied"),
    ] {
        f.admin_ok(0, Method::PATCH, &path, Some(change.clone())).await;
        let took = f
            .until_all(&format!("parent {change}: the child is refused"), BOUND, async |i| {
                let (st, body) = child_writes(i).await;
                st == status && body["error"]["code"] == code
            })
            .await;
        eprintln!("parent {change} -> child {status} {code} on every replica: {took:?}");
        for i in 0..2 {
            assert_eq!(write_checked(f, i, &key, experiment_row(&s.experiment)).await, (status, code.to_owned()));
        }
        f.admin_ok(0, Method::PATCH, &path, Some(undo.clone())).await;
        f.until_all(&format!("parent {undo}: the child writes again"), BOUND, async |i| child_writes(i).await.0 == 200)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_the_parents_window_and_address_bound_the_child() {
    the_parents_window_and_address_bound_the_child(FleetBuilder::redis()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_the_parents_window_and_address_bound_the_child() {
    the_parents_window_and_address_bound_the_child(FleetBuilder::nats()).await;
}

/// A parent made through the admin API on replica 1: `(id, key)`.
async fn admin_parent(s: &Setup, name: &str, scope: Value) -> (String, String) {
    let created = s
        .fleet
        .admin_ok(
            0,
            Method::POST,
            "/v1/service_token",
            Some(json!({"name": name, "service_account_id": s.account, "scope": scope})),
        )
        .await;
    (created["id"].as_str().unwrap().to_owned(), created["key"].as_str().unwrap().to_owned())
}

/// The child's scope is the intersection with the parent's, object by
/// object; widening a child through the admin API never lets it outgrow
/// its parent; deleting the root of a chain deletes and refuses every
/// descendant; a parent deleted on one replica can no longer derive on the
/// other, however warm its cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_stay_inside_their_root() {
    let s = setup(FleetBuilder::redis()).await;
    let f = &s.fleet;
    let project_scope =
        json!({"grants": [{"object_type": "project", "object_id": s.project, "permissions": ["update", "read"]}]});
    let (root_id, root) = admin_parent(&s, "root", project_scope.clone()).await;

    // Intersections: the experiment under the project; nothing for an
    // unrelated project; the permissions both list.
    let ask = |scope: Value| json!({"name": "job", "ttl": "1h", "scope": scope});
    let (_, _, a) = derive_ok(f, 0, &root, &ask(experiment_scope(&s.experiment))).await;
    assert_eq!(a["scope"], experiment_scope(&s.experiment), "{a}");
    let other =
        json!({"grants": [{"object_type": "project", "object_id": s.other_project, "permissions": ["update"]}]});
    let (_, unrelated, a) = derive_ok(f, 0, &root, &ask(other)).await;
    assert_eq!(a["scope"], json!({"grants": []}), "{a}");
    assert_eq!(write_checked(f, 1, &unrelated, log_row(&s.other_project)).await, (403, "scope_denied".into()));
    assert_eq!(write_checked(f, 1, &unrelated, log_row(&s.project)).await, (403, "scope_denied".into()));
    let org_wide =
        json!({"grants": [{"object_type": "organization", "object_id": s.org, "permissions": ["update", "delete"]}]});
    let (_, _, a) = derive_ok(f, 0, &root, &ask(org_wide)).await;
    assert_eq!(
        a["scope"],
        json!({"grants": [{"object_type": "project", "object_id": s.project, "permissions": ["update"]}]}),
        "{a}"
    );

    // A child widened by the admin API is still held to the root's scope.
    let (child_id, child, _) = derive_ok(f, 0, &root, &ask(experiment_scope(&s.experiment))).await;
    assert_eq!(write_checked(f, 1, &child, log_row(&s.project)).await, (403, "scope_denied".into()));
    let widened =
        f.admin_ok(1, Method::PATCH, &format!("/v1/service_token/{child_id}"), Some(json!({"scope": null}))).await;
    assert_eq!(widened["parent_id"], root_id.as_str(), "{widened}");
    f.until_all("the widened child writes the project log", BOUND, async |i| {
        f.write(i, &child, &log_row(&s.project)).await.0 == 200
    })
    .await;
    for i in 0..2 {
        assert_eq!(write_checked(f, i, &child, log_row(&s.other_project)).await, (403, "scope_denied".into()));
    }

    // A grandchild; the root goes; both descendants go with it.
    let (grand_id, grand, _) = derive_ok(f, 1, &child, &ask(experiment_scope(&s.experiment))).await;
    for i in 0..2 {
        assert_eq!(write_checked(f, i, &grand, experiment_row(&s.experiment)).await.0, 200);
    }
    f.admin_ok(0, Method::DELETE, &format!("/v1/service_token/{root_id}"), None).await;
    f.until_all("the root's descendants are refused", BOUND, async |i| {
        f.write(i, &grand, &experiment_row(&s.experiment)).await.0 == 401
            && f.write(i, &child, &log_row(&s.project)).await.0 == 401
    })
    .await;
    let db = f.db.client().await;
    for id in [&child_id, &grand_id] {
        assert!(
            db.query_opt("SELECT 1 FROM service_tokens WHERE id = $1", &[id]).await.unwrap().is_none(),
            "{id} left"
        );
    }

    // Deleted on replica 1 while warm on replica 2: replica 2 derives nothing from it.
    for round in 0..5 {
        let (id, key) = admin_parent(&s, &format!("short-lived-{round}"), Value::Null).await;
        wait::until("the parent writes on replica 2", BOUND, async || {
            f.write(1, &key, &log_row(&s.project)).await.0 == 200
        })
        .await;
        f.admin_ok(0, Method::DELETE, &format!("/v1/service_token/{id}"), None).await;
        let (status, v) = derive(f, 1, &key, &ask(Value::Null)).await;
        assert_eq!(status, 401, "round {round}: a deleted parent derived on a warm replica: {v}");
        let n: i64 =
            db.query_one("SELECT count(*) FROM service_tokens WHERE parent_id = $1", &[&id]).await.unwrap().get(0);
        assert_eq!(n, 0, "round {round}: a child of a deleted parent was written");
    }
}

/// A child past its own ttl is refused (the passing of time is the
/// behaviour here: a one-second ttl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_past_its_ttl_is_unauthenticated() {
    let s = setup(FleetBuilder::redis()).await;
    let f = &s.fleet;
    let (_, key, answer) = derive_ok(f, 0, &s.parent.raw, &json!({"name": "blink", "ttl": "1s"})).await;
    let expires_ms = Timestamp::parse_rfc3339(answer["expires_at"].as_str().unwrap()).unwrap().unix_ms();
    let first = write_checked(f, 1, &key, log_row(&s.project)).await;
    assert!(first.0 == 200 || first == (401, "unauthenticated".into()), "{first:?}");
    wait::until("the child's ttl runs out", BOUND, async || f.write(1, &key, &log_row(&s.project)).await.0 == 401)
        .await;
    let late = now_ms() - expires_ms;
    eprintln!("a 1s child: first refusal {late} ms after its expires_at");
    assert!(late >= 0, "refused {} ms before its expires_at", -late);
    for i in 0..2 {
        assert_eq!(write_checked(f, i, &key, log_row(&s.project)).await, (401, "unauthenticated".into()));
    }
    assert_eq!(write_checked(f, 1, &s.parent.raw, log_row(&s.project)).await.0, 200, "the parent lives on");
}
