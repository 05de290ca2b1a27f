//! OTLP exports name their project by name (`project_name:…`; the SDKs'
//! default project is one). On a Postgres store, the name's project and
//! the decision on a project not created yet are cached like every other
//! answer (contract: caching and invalidation). So a stream of exports
//! costs the store nothing once warm, and a project created or renamed
//! with plain SQL reaches both replicas' answers within 2 s. Two replicas,
//! one Postgres store, a private Redis feed.

use crate::support::fleet::{Fleet, FleetBuilder};
use crate::support::otlp::{Encoding, PROTOBUF, export, parent_attr, span};
use crate::support::policy::{PolicyBuilder, new_id};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(2);
const EXPORTS: usize = 20;

/// One OTLP/protobuf export with one span stamped `project_name:<name>`,
/// on replica `i`: its status.
async fn export_to(fleet: &Fleet, i: usize, token: &str, name: &str) -> u16 {
    let req = export(vec![span("llm", vec![parent_attr(&format!("project_name:{name}"))])]);
    fleet
        .http
        .post(format!("{}/otel/v1/traces", fleet.replicas[i].url))
        .bearer_auth(token)
        .header("content-type", PROTOBUF)
        .body(Encoding::Protobuf.encode(&req))
        .send()
        .await
        .expect("POST /otel/v1/traces")
        .status()
        .as_u16()
}

/// Waits (up to 20 s) for two seconds in a row in which the store sees at
/// most a few transactions: the replicas' start-up reads are over.
/// Backends report their counters when idle, up to a second late.
async fn settle(fleet: &Fleet) {
    let mut quiet = 0;
    for _ in 0..20 {
        let before = fleet.db.stats().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        quiet = if (fleet.db.stats().await - before).transactions <= 10 { quiet + 1 } else { 0 };
        if quiet == 2 {
            return;
        }
    }
    panic!("the store never went quiet");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_by_project_name_come_from_the_cache_and_follow_sql_changes() {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let checkout = policy.project(&org, "checkout");
    let writer = policy.service_token(&org, "checkout-writer");
    policy.grant_user(&writer.user_id, "update", "project_log", &checkout);
    // May create projects and write to any project log of the organization.
    let founder = policy.service_token(&org, "founder");
    policy.grant_user(&founder.user_id, "create", "organization", &org);
    policy.grant_user(&founder.user_id, "update", "organization", &org);
    let fleet = &FleetBuilder::redis().replicas(2).start(&policy).await;
    let sql = fleet.db.client().await;
    let (writer, founder) = (&writer.raw, &founder.raw);

    // The three answers an export by name can get: a known project, a new
    // one the token may create, a new one it may not.
    let answers = || async {
        let mut got = Vec::new();
        for i in 0..2 {
            got.push([
                export_to(fleet, i, writer, "checkout").await,
                export_to(fleet, i, founder, "brand-new").await,
                export_to(fleet, i, writer, "brand-new").await,
            ]);
        }
        got
    };
    assert_eq!(answers().await, [[200, 200, 403]; 2]);

    // Warm: the store is not asked again, not even about the unknown name.
    // Measured once the replicas' start-up reads are over; what is left is
    // the background (change-log reads, readiness), a few transactions a
    // second. One lookup per export would be 120 or more.
    settle(fleet).await;
    let before = fleet.db.stats().await;
    for _ in 0..EXPORTS {
        assert_eq!(answers().await, [[200, 200, 403]; 2]);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cost = fleet.db.stats().await - before;
    let exports = 6 * EXPORTS;
    println!("{exports} exports by name on two warm replicas: {} store transactions", cost.transactions);
    assert!(
        cost.transactions < 40,
        "{exports} warm exports by name cost {} store transactions, more than the background",
        cost.transactions
    );

    // A project named "brand-new" appears, writable by the checkout writer:
    // both replicas resolve the name to it within the limit.
    let created = new_id();
    sql.batch_execute(&format!(
        "BEGIN;
         INSERT INTO projects (id, org_id, name) VALUES ('{created}', '{org}', 'brand-new');
         INSERT INTO acls (id, object_type, object_id, user_id, permission)
           SELECT '{acl}', 'project_log', '{created}', service_account_id, 'update'
           FROM service_tokens WHERE name = 'checkout-writer';
         COMMIT;",
        acl = new_id()
    ))
    .await
    .unwrap();
    let lag = fleet
        .until_all("a project created with SQL", LIMIT, |i| async move {
            export_to(fleet, i, writer, "brand-new").await == 200
        })
        .await;
    println!("project created with SQL -> both replicas resolve its name: {lag:?}");

    // "checkout" is renamed: its old name now means a project to create.
    sql.execute("UPDATE projects SET name = 'checkout-v2' WHERE id = $1", &[&checkout]).await.unwrap();
    fleet
        .until_all("a project renamed with SQL", LIMIT, |i| async move {
            export_to(fleet, i, writer, "checkout").await == 403
        })
        .await;
    for i in 0..2 {
        assert_eq!(export_to(fleet, i, writer, "checkout-v2").await, 200, "replica {i}");
        assert_eq!(export_to(fleet, i, founder, "checkout").await, 200, "replica {i}");
    }
}
