//! Plain SQL reaches every replica (contract: Policy file: "triggers, so that changes
//! made by any writer count"; §8). Two replicas share one Postgres store and
//! a private Redis feed. Writers are allowed on both (answers cached), then
//! revoked with plain SQL — not the admin API — and both replicas must deny
//! within 2 s. The measured lag (SQL commit -> both replicas deny) is printed.

use crate::support::fleet::FleetBuilder;
use crate::support::policy::PolicyBuilder;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sql_revocations_reach_both_replicas() {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project = policy.project(&org, "checkout");
    let direct = policy.service_token(&org, "direct-writer");
    let member = policy.service_token(&org, "group-writer");
    let doomed = policy.service_token(&org, "doomed-writer");
    let direct_acl = policy.grant_user(&direct.user_id, "update", "project_log", &project);
    let writers = policy.group(&org, "writers", &[&member.user_id], &[]);
    policy.grant_group(&writers, "update", "project_log", &project);
    policy.grant_user(&doomed.user_id, "update", "project_log", &project);
    let fleet = &FleetBuilder::redis().replicas(2).start(&policy).await;
    let sql = fleet.db.client().await;
    let (direct, member, doomed, project) = (&direct, &member, &doomed, project.as_str());

    // Every writer allowed on both replicas, the second answer from the cache.
    for i in 0..2 {
        for token in [direct, member, doomed] {
            assert_eq!(fleet.log_write(i, &token.raw, project).await, 200, "{} on replica {i}", token.name);
        }
        let hits = fleet.replicas[i].metric(r#"loggate_decision_cache_total{result="hit"}"#).await;
        for token in [direct, member, doomed] {
            assert_eq!(fleet.log_write(i, &token.raw, project).await, 200, "{} on replica {i}", token.name);
        }
        let after = fleet.replicas[i].metric(r#"loggate_decision_cache_total{result="hit"}"#).await;
        assert!(after >= hits + 6.0, "replica {i}: identities and decisions come from the cache ({hits} -> {after})");
    }

    // 1. The direct grant's ACL row is deleted.
    let n = sql.execute("DELETE FROM acls WHERE id = $1", &[&direct_acl]).await.unwrap();
    assert_eq!(n, 1);
    let acl_lag = fleet
        .until_all("DELETE FROM acls", LIMIT, |i| async move { fleet.log_write(i, &direct.raw, project).await == 403 })
        .await;
    for i in 0..2 {
        let (status, body) =
            fleet.write(i, &direct.raw, &crate::support::fleet::row("project_log", project, false)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("permission_denied")), "{body}");
        assert_eq!(fleet.log_write(i, &member.raw, project).await, 200, "the group's grant is untouched");
    }

    // 2. The group membership row is deleted (the group's ACL stays).
    let n = sql
        .execute("DELETE FROM group_member_users WHERE group_id = $1 AND user_id = $2", &[&writers, &member.user_id])
        .await
        .unwrap();
    assert_eq!(n, 1);
    let member_lag = fleet
        .until_all("DELETE FROM group_member_users", LIMIT, |i| async move {
            fleet.log_write(i, &member.raw, project).await == 403
        })
        .await;

    // 3. A service token row is deleted: 401 everywhere.
    let n = sql.execute("DELETE FROM service_tokens WHERE id = $1", &[&doomed.id]).await.unwrap();
    assert_eq!(n, 1);
    let token_lag = fleet
        .until_all("DELETE FROM service_tokens", LIMIT, |i| async move {
            fleet.log_write(i, &doomed.raw, project).await == 401
        })
        .await;
    for i in 0..2 {
        let (status, body) =
            fleet.write(i, &doomed.raw, &crate::support::fleet::row("project_log", project, false)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    }

    // Every change went through the feed: both replicas applied the last revision.
    let revision = fleet.converge(LIMIT).await;
    println!(
        "plain SQL -> both replicas deny (redis feed): acl {acl_lag:?}, group membership {member_lag:?}, \
         service token {token_lag:?} (revision {revision})"
    );
}
