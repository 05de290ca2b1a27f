//! Scoped tokens on the file store (contract: "Scoped and derived tokens"):
//! a token's `scope` narrows what its service account's ACLs allow, by
//! object and permission (`grants`) and by client address (`client_cidrs`,
//! judged on the socket peer or, behind `server.trusted_proxies`, on the
//! right-most untrusted `X-Forwarded-For` hop); `not_before`/`expires_at`
//! bound its life. A denial forwards nothing, whatever else the batch held.
//!
//! The cast is the standard one plus "org-writer", a service account with
//! `update` and `read` on the whole organization acme, and tokens of it (and of the
//! standard writer) whose scopes narrow that down.

use crate::support::http::{self, Resp};
use crate::support::policy::Token;
use crate::support::sdk::{self, Sdk};
use crate::support::world::{Cast, PROJECT_NAME, World, cast, experiment_row, log_row};
use reqwest::Method;
use serde_json::{Value, json};

/// The extra tokens of these stories, all in acme.
struct Scoped {
    /// org-writer (ACL: `update` and `read` on acme), scope: `update`/`read` on project checkout.
    checkout_only: Token,
    /// org-writer, scope: `read` on project checkout.
    read_only: Token,
    /// org-writer, scope: `grants: []`.
    grants_none: Token,
    /// The standard writer's account (ACL: `update` on checkout's log only),
    /// scope: `update` on project checkout.
    writer_checkout_scope: Token,
    /// The standard writer's account, bound to 10.0.0.0/8 and 2001:db8::/32.
    bound_ten: Token,
    /// The standard writer's account, bound to 127.0.0.0/8.
    bound_loopback: Token,
    /// The standard writer's account, `not_before` in 2999.
    not_yet: Token,
    /// The standard writer's account, `expires_at` in 2001.
    lapsed: Token,
    /// The standard writer's account, valid from 2000 to 2999.
    in_window: Token,
    /// The standard writer's account, bound to "10.9.9.9/8" (host bits set).
    host_bits: Token,
    /// The standard writer's account, `client_cidrs: []`.
    admits_none: Token,
    /// The standard writer's account, `grants` and `client_cidrs` null.
    null_scope: Token,
    /// org-writer, bound to 10/8 and scoped to project checkout.
    ten_and_checkout: Token,
    /// The standard writer's account, bound to 10/8, expired in 2001.
    lapsed_ten: Token,
}

impl Scoped {
    /// The raw values of other tokens, for the leak checks.
    fn extra(tokens: Vec<&Token>) -> Vec<String> {
        tokens.into_iter().map(|t| t.raw.clone()).collect()
    }

    fn raws(&self) -> Vec<&str> {
        [
            &self.checkout_only,
            &self.read_only,
            &self.grants_none,
            &self.writer_checkout_scope,
            &self.bound_ten,
            &self.bound_loopback,
            &self.not_yet,
            &self.lapsed,
            &self.in_window,
            &self.host_bits,
            &self.admits_none,
            &self.null_scope,
            &self.ten_and_checkout,
            &self.lapsed_ten,
        ]
        .iter()
        .map(|t| t.raw.as_str())
        .collect()
    }
}

fn scoped_cast() -> (Cast, Scoped) {
    let mut c = cast();
    let (org, project) = (c.org.clone(), c.project.clone());
    let p = &mut c.policy;
    let org_writer = p.user("org-writer", true);
    p.grant_user(&org_writer, "update", "organization", &org);
    // The SDK looks its project up (POST /v1/project) before it logs.
    p.grant_user(&org_writer, "read", "organization", &org);
    let grant = |perms: &[&str]| json!({"object_type": "project", "object_id": project, "permissions": perms});
    let checkout_only =
        p.scoped_token(&org, "checkout-only", &org_writer, json!({"grants": [grant(&["update", "read"])]}));
    let read_only = p.scoped_token(&org, "read-only", &org_writer, json!({"grants": [grant(&["read"])]}));
    let grants_none = p.scoped_token(&org, "grants-none", &org_writer, json!({"grants": []}));
    let w = c.writer.user_id.clone();
    let writer_checkout_scope =
        p.scoped_token(&org, "writer-checkout-scope", &w, json!({"grants": [grant(&["update"])]}));
    let bound_ten = p.scoped_token(&org, "bound-ten", &w, json!({"client_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}));
    let bound_loopback = p.scoped_token(&org, "bound-loopback", &w, json!({"client_cidrs": ["127.0.0.0/8"]}));
    let not_yet = p.token_entry(&org, "not-yet", &w, json!({"not_before": "2999-01-01T00:00:00Z"}));
    let lapsed = p.token_entry(&org, "lapsed", &w, json!({"expires_at": "2001-01-01T00:00:00Z"}));
    let in_window = p.token_entry(
        &org,
        "in-window",
        &w,
        json!({"not_before": "2000-01-01T00:00:00Z", "expires_at": "2999-01-01T00:00:00Z"}),
    );
    let host_bits = p.scoped_token(&org, "host-bits", &w, json!({"client_cidrs": ["10.9.9.9/8"]}));
    let admits_none = p.scoped_token(&org, "admits-none", &w, json!({"client_cidrs": []}));
    let null_scope = p.scoped_token(&org, "null-scope", &w, json!({"grants": null, "client_cidrs": null}));
    let ten_and_checkout = p.scoped_token(
        &org,
        "ten-and-checkout",
        &org_writer,
        json!({"grants": [grant(&["update"])], "client_cidrs": ["10.0.0.0/8"]}),
    );
    let lapsed_ten = p.token_entry(
        &org,
        "lapsed-ten",
        &w,
        json!({"expires_at": "2001-01-01T00:00:00Z", "scope": {"client_cidrs": ["10.0.0.0/8"]}}),
    );
    let s = Scoped {
        checkout_only,
        read_only,
        grants_none,
        writer_checkout_scope,
        bound_ten,
        bound_loopback,
        not_yet,
        lapsed,
        in_window,
        host_bits,
        admits_none,
        null_scope,
        ten_and_checkout,
        lapsed_ten,
    };
    (c, s)
}

async fn world() -> (World, Scoped) {
    let (c, s) = scoped_cast();
    (World::builder_for(c).start().await, s)
}

/// The secrets of the world and of the extra tokens.
fn secrets<'a>(w: &'a World, s: &'a Scoped) -> Vec<&'a str> {
    let mut all = w.secrets();
    all.extend(s.raws());
    all
}

/// Checks a denial's §5 shape; returns the `error` object.
fn denied(w: &World, s: &Scoped, r: &Resp, status: u16, code: &str) -> Value {
    http::assert_error(r, status, code, &secrets(w, s))
}

/// `POST /logs3` of `rows`, with `X-Forwarded-For: xff` when given.
async fn logs3_via(w: &World, token: &Token, rows: Vec<Value>, xff: Option<&str>) -> Resp {
    let mut req = w
        .request(Method::POST, "/logs3", &token.raw)
        .header("content-type", "application/json")
        .body(json!({"rows": rows, "api_version": 2}).to_string());
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    http::send(req).await
}

/// Sends a request that must be refused and checks that the data plane
/// received nothing for it.
async fn refused_unforwarded(w: &World, what: &str, send: impl AsyncFnOnce() -> Resp) -> Resp {
    let before = w.upstream.requests().len();
    let r = send().await;
    assert!(r.status >= 400, "{what}: expected a refusal, got {}: {}", r.status, r.text());
    let after = w.upstream.requests();
    assert_eq!(after.len(), before, "{what}: the data plane received {:?}", &after[before..]);
    r
}

/// A request that must be allowed; checks the rows' ids arrived.
async fn allowed_and_forwarded(w: &World, token: &Token, rows: Vec<Value>, xff: Option<&str>) {
    let ids: Vec<Value> = rows.iter().map(|r| r["id"].clone()).collect();
    let r = logs3_via(w, token, rows, xff).await;
    assert_eq!(r.status, 200, "{} (xff {xff:?}): {}", token.name, r.text());
    let arrived: Vec<Value> = w.upstream.logs3_rows().iter().map(|r| r["id"].clone()).collect();
    for id in ids {
        assert!(arrived.contains(&id), "{}: row {id} never reached the data plane", token.name);
    }
}

// ---------------------------------------------------------------------------
// Grants, with the real Python SDK and raw /logs3.

/// An org-wide writer whose token is scoped to one project logs there with
/// the real SDK; the same token is refused (`scope_denied`, nothing
/// forwarded) on another project of the organization, by the SDK and raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_scope_limits_an_org_writer_to_one_project() {
    if !sdk::require(Sdk::Python) {
        return;
    }
    let (w, s) = world().await;
    let run = sdk::run(Sdk::Python, &s.checkout_only.raw, &w.gw.url, Some(&w.gw.url), PROJECT_NAME).await;
    assert!(run.success(), "{}", run.describe());
    let logged = run.logged();
    assert_eq!(logged.len(), 5, "{}", run.describe());
    let rows = w.upstream.logs3_rows();
    for want in &logged {
        assert!(rows.iter().any(|r| r["id"] == want["id"]), "row {} never arrived; {rows:#?}", want["id"]);
    }
    assert!(rows.iter().all(|r| r["project_id"] == w.project.as_str()), "{rows:#?}");

    // The SDK on the organization's other project: refused, nothing logged.
    let before = w.upstream.requests_to("/logs3").len();
    let run = sdk::run(Sdk::Python, &s.checkout_only.raw, &w.gw.url, Some(&w.gw.url), "internal").await;
    assert!(!run.success(), "a checkout-scoped token logged to another project; {}", run.describe());
    assert!(run.errors().contains("403"), "{}", run.describe());
    assert!(run.errors().contains("scope_denied"), "{}", run.describe());
    assert_eq!(w.upstream.requests_to("/logs3").len(), before, "a scope-denied batch was forwarded");
    assert!(w.upstream.logs3_rows().iter().all(|r| r["project_id"] == w.project.as_str()));

    // The same, raw: the ACL (update on acme) allows, the scope does not.
    let r = refused_unforwarded(&w, "raw /logs3 to internal", async || {
        logs3_via(&w, &s.checkout_only, vec![log_row(&w.other_project)], None).await
    })
    .await;
    let e = denied(&w, &s, &r, 403, "scope_denied");
    assert_eq!(e["missing_permission"], "update", "{e}");
    assert_eq!(e["object_type"], "project_log", "{e}");
    assert_eq!(e["object_id"], w.other_project.as_str(), "{e}");
    // The SDK's project lookup (any permission will do): the ACLs allow
    // read and update there, the scope neither, so the scope is the reason.
    let r = refused_unforwarded(&w, "project lookup of internal", async || {
        w.post_json("/v1/project", &s.checkout_only, &json!({"name": "internal"})).await
    })
    .await;
    let e = denied(&w, &s, &r, 403, "scope_denied");
    assert_eq!(e["object_type"], "project", "{e}");
    assert_eq!(e["object_id"], w.other_project.as_str(), "{e}");
    w.gw.assert_output_free_of(&secrets(&w, &s));
    w.still_serves().await;
}

/// A read-only scope and an empty grant list write nowhere, not even where
/// the ACLs (update on the whole organization) and the named project agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_empty_scopes_write_nowhere() {
    let (w, s) = world().await;
    for token in [&s.read_only, &s.grants_none] {
        for project in [&w.project, &w.other_project] {
            let r =
                refused_unforwarded(&w, &token.name, async || logs3_via(&w, token, vec![log_row(project)], None).await)
                    .await;
            let e = denied(&w, &s, &r, 403, "scope_denied");
            assert_eq!(e["missing_permission"], "update", "{}: {e}", token.name);
            assert_eq!(e["object_type"], "project_log", "{}: {e}", token.name);
            assert_eq!(e["object_id"], project.as_str(), "{}: {e}", token.name);
        }
        let r = refused_unforwarded(&w, &token.name, async || {
            logs3_via(&w, token, vec![experiment_row(&w.experiment)], None).await
        })
        .await;
        let e = denied(&w, &s, &r, 403, "scope_denied");
        assert_eq!(e["object_type"], "experiment", "{}: {e}", token.name);
    }
    w.still_serves().await;
}

/// All or nothing: a batch with a row the scope allows and one it does not
/// is refused whole; a batch of rows under the scoped project (its log and
/// its experiment: the project is their ancestor) passes whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scope_denied_row_refuses_the_whole_batch() {
    let (w, s) = world().await;
    let good = log_row(&w.project);
    let bad = log_row(&w.other_project);
    let good_id = good["id"].clone();
    for rows in [vec![good.clone(), bad.clone()], vec![bad.clone(), good.clone()]] {
        let r =
            refused_unforwarded(&w, "mixed batch", async || logs3_via(&w, &s.checkout_only, rows, None).await).await;
        let e = denied(&w, &s, &r, 403, "scope_denied");
        assert_eq!(e["object_id"], w.other_project.as_str(), "{e}");
    }
    assert!(!w.upstream.logs3_rows().iter().any(|r| r["id"] == good_id), "the allowed row of a refused batch leaked");
    allowed_and_forwarded(&w, &s.checkout_only, vec![log_row(&w.project), experiment_row(&w.experiment)], None).await;
    w.still_serves().await;
}

/// When the ACLs deny too, the answer is the ACL's `permission_denied`;
/// when only the scope denies, `scope_denied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_and_scope_both_denying_is_permission_denied() {
    let (w, s) = world().await;
    // The writer's ACL covers checkout's log only; its scope names checkout.
    let r = refused_unforwarded(&w, "both deny", async || {
        logs3_via(&w, &s.writer_checkout_scope, vec![log_row(&w.other_project)], None).await
    })
    .await;
    let e = denied(&w, &s, &r, 403, "permission_denied");
    assert_eq!(e["object_id"], w.other_project.as_str(), "{e}");
    // Both deny on checkout too: a delete row (the ACL grants `update`
    // only, the scope `update` only).
    let mut del = log_row(&w.project);
    del["_object_delete"] = json!(true);
    let r = refused_unforwarded(&w, "both deny a delete", async || {
        logs3_via(&w, &s.writer_checkout_scope, vec![del], None).await
    })
    .await;
    denied(&w, &s, &r, 403, "permission_denied");
    // ACL allows, scope allows.
    allowed_and_forwarded(&w, &s.writer_checkout_scope, vec![log_row(&w.project)], None).await;
    // ACL allows (org-wide), scope denies.
    let r = refused_unforwarded(&w, "scope denies", async || {
        logs3_via(&w, &s.checkout_only, vec![log_row(&w.other_project)], None).await
    })
    .await;
    denied(&w, &s, &r, 403, "scope_denied");
    w.still_serves().await;
}

// ---------------------------------------------------------------------------
// Client addresses.

/// Without trusted proxies the socket peer (127.0.0.1) is the client: a
/// token bound to 10/8 is refused even when the request claims a 10/8
/// address in `X-Forwarded-For`; one bound to 127/8 passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cidrs_judge_the_peer_when_no_proxy_is_trusted() {
    let (w, s) = world().await;
    for xff in [None, Some("10.1.2.3"), Some("10.1.2.3, 10.9.9.9"), Some("banana")] {
        let r = refused_unforwarded(&w, &format!("bound-ten, xff {xff:?}"), async || {
            logs3_via(&w, &s.bound_ten, vec![log_row(&w.project)], xff).await
        })
        .await;
        denied(&w, &s, &r, 403, "client_address_denied");
        w.still_serves().await;
    }
    allowed_and_forwarded(&w, &s.bound_loopback, vec![log_row(&w.project)], None).await;
    // The untrusted peer's header is ignored both ways: claiming 192.0.2.1
    // does not lock the loopback-bound token out either.
    allowed_and_forwarded(&w, &s.bound_loopback, vec![log_row(&w.project)], Some("192.0.2.1")).await;
    w.still_serves().await;
}

/// Behind a trusted proxy (127/8), the right-most untrusted
/// `X-Forwarded-For` hop is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cidrs_judge_the_forwarded_address_behind_a_trusted_proxy() {
    let (c, s) = scoped_cast();
    let w = World::builder_for(c).gateway(|b| b.server_option("trusted_proxies", r#"["127.0.0.0/8"]"#)).start().await;
    let row = || vec![log_row(&w.project)];
    allowed_and_forwarded(&w, &s.bound_ten, row(), Some("10.1.2.3")).await;
    allowed_and_forwarded(&w, &s.bound_ten, row(), Some("[2001:db8::7]")).await;
    // The client wrote 10.1.2.3, our proxy appended what it saw: 192.0.2.1.
    allowed_and_forwarded(&w, &s.bound_ten, row(), Some("192.0.2.1, 10.1.2.3, 127.0.0.5")).await;
    for xff in ["192.0.2.1", "10.1.2.3, 192.0.2.1", "10.1.2.3, 192.0.2.1, 127.0.0.9"] {
        let r = refused_unforwarded(&w, &format!("xff {xff}"), async || {
            logs3_via(&w, &s.bound_ten, row(), Some(xff)).await
        })
        .await;
        denied(&w, &s, &r, 403, "client_address_denied");
        w.still_serves().await;
    }
    // No header, or only trusted hops: the peer / the left-most, 127.x.
    for xff in [None, Some("127.0.0.2, 127.0.0.3")] {
        let r =
            refused_unforwarded(&w, &format!("xff {xff:?}"), async || logs3_via(&w, &s.bound_ten, row(), xff).await)
                .await;
        denied(&w, &s, &r, 403, "client_address_denied");
        allowed_and_forwarded(&w, &s.bound_loopback, row(), xff).await;
    }
    // A header that does not parse, from a trusted peer: 400, whoever asks.
    for xff in ["banana", "10.1.2.3,", "10.1.2.3:8080"] {
        for token in [&s.bound_ten, &s.bound_loopback, &w.writer] {
            let r =
                refused_unforwarded(&w, &format!("xff {xff}"), async || logs3_via(&w, token, row(), Some(xff)).await)
                    .await;
            let e = denied(&w, &s, &r, 400, "bad_request");
            assert_eq!(e["field"], "x-forwarded-for", "{e}");
        }
        w.still_serves().await;
    }
}

/// The finer points of `client_cidrs` (behind a trusted proxy, so that the
/// test can pick the address): host bits may be set; an IPv4-mapped IPv6
/// address is not inside an IPv4 block; an empty list admits no one; null
/// fields narrow nothing. And the order of the answers: the window, then
/// the address, then the targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cidrs_edge_cases_and_the_order_of_answers() {
    let (c, s) = scoped_cast();
    let w = World::builder_for(c).gateway(|b| b.server_option("trusted_proxies", r#"["127.0.0.0/8"]"#)).start().await;
    let row = || vec![log_row(&w.project)];
    allowed_and_forwarded(&w, &s.host_bits, row(), Some("10.1.2.3")).await;
    allowed_and_forwarded(&w, &s.null_scope, row(), Some("203.0.113.5")).await;
    allowed_and_forwarded(&w, &s.null_scope, vec![log_row(&w.project), experiment_row(&w.experiment)], None).await;
    for (token, xff) in [
        (&s.host_bits, "11.0.0.1"),
        (&s.bound_ten, "::ffff:10.1.2.3"),
        (&s.admits_none, "10.1.2.3"),
        (&s.admits_none, "127.0.0.1"),
    ] {
        let r = refused_unforwarded(&w, &format!("{} from {xff}", token.name), async || {
            logs3_via(&w, token, row(), Some(xff)).await
        })
        .await;
        denied(&w, &s, &r, 403, "client_address_denied");
    }
    // Address before targets: outside the range, a target the scope refuses
    // is not what the caller is told.
    let other = || vec![log_row(&w.other_project)];
    let r = refused_unforwarded(&w, "outside, scope-denied target", async || {
        logs3_via(&w, &s.ten_and_checkout, other(), Some("192.0.2.1")).await
    })
    .await;
    denied(&w, &s, &r, 403, "client_address_denied");
    let r = refused_unforwarded(&w, "inside, scope-denied target", async || {
        logs3_via(&w, &s.ten_and_checkout, other(), Some("10.1.2.3")).await
    })
    .await;
    denied(&w, &s, &r, 403, "scope_denied");
    allowed_and_forwarded(&w, &s.ten_and_checkout, row(), Some("10.1.2.3")).await;
    // The window before the address.
    for xff in ["10.1.2.3", "192.0.2.1"] {
        let r = refused_unforwarded(&w, &format!("lapsed from {xff}"), async || {
            logs3_via(&w, &s.lapsed_ten, row(), Some(xff)).await
        })
        .await;
        denied(&w, &s, &r, 401, "unauthenticated");
    }
    w.still_serves().await;
}

// ---------------------------------------------------------------------------
// Validity windows.

/// Before `not_before` and after `expires_at` a token is unknown (401);
/// inside its window it writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_outside_its_validity_window_is_unauthenticated() {
    let (w, s) = world().await;
    for token in [&s.not_yet, &s.lapsed] {
        let r =
            refused_unforwarded(&w, &token.name, async || logs3_via(&w, token, vec![log_row(&w.project)], None).await)
                .await;
        denied(&w, &s, &r, 401, "unauthenticated");
        // Login too: the SDK would be told at once.
        let r = refused_unforwarded(&w, &token.name, async || {
            w.post_json("/api/apikey/login", &token.raw, &json!({})).await
        })
        .await;
        denied(&w, &s, &r, 401, "unauthenticated");
    }
    allowed_and_forwarded(&w, &s.in_window, vec![log_row(&w.project)], None).await;
    w.still_serves().await;
}

// ---------------------------------------------------------------------------
// Derivation needs Postgres.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_refuses_derivation() {
    let (w, s) = world().await;
    for token in [&w.writer, &s.checkout_only] {
        let r = refused_unforwarded(&w, "derive", async || {
            w.post_json("/v1/service_token/derive", token, &json!({"name": "child", "ttl": "1h"})).await
        })
        .await;
        let e = denied(&w, &s, &r, 404, "route_not_allowed");
        assert!(e["message"].as_str().unwrap().to_lowercase().contains("postgres"), "{e}");
    }
    // Unauthenticated callers learn nothing more than 401.
    let r = w.post_json("/v1/service_token/derive", &w.unknown, &json!({"name": "child", "ttl": "1h"})).await;
    denied(&w, &s, &r, 401, "unauthenticated");
    w.still_serves().await;
}

// ---------------------------------------------------------------------------
// Metrics.

/// `(labels, value)` of every `loggate_denials_total` sample with `reason`.
fn denial_samples(metrics: &str, reason: &str) -> Vec<(String, f64)> {
    let needle = format!("reason=\"{reason}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("loggate_denials_total{") && l.contains(&needle))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// Scope and address denials are counted by reason, under the caller's
/// organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_are_counted_by_reason() {
    let (w, s) = world().await;
    let before = w.gw.metrics().await;
    assert!(denial_samples(&before, "scope_denied").is_empty(), "{before}");
    assert!(denial_samples(&before, "client_address_denied").is_empty(), "{before}");
    for _ in 0..3 {
        let r = logs3_via(&w, &s.checkout_only, vec![log_row(&w.other_project)], None).await;
        denied(&w, &s, &r, 403, "scope_denied");
    }
    for _ in 0..2 {
        let r = logs3_via(&w, &s.bound_ten, vec![log_row(&w.project)], None).await;
        denied(&w, &s, &r, 403, "client_address_denied");
    }
    let text = w.gw.metrics().await;
    let scope = denial_samples(&text, "scope_denied");
    assert_eq!(scope.iter().map(|(_, v)| v).sum::<f64>(), 3.0, "{scope:?}");
    assert!(scope.iter().all(|(l, _)| l.contains(&format!("org=\"{}\"", w.org))), "{scope:?}");
    assert!(scope.iter().all(|(l, _)| l.contains("object_type=\"project_log\"")), "{scope:?}");
    let addr = denial_samples(&text, "client_address_denied");
    assert_eq!(addr.iter().map(|(_, v)| v).sum::<f64>(), 2.0, "{addr:?}");
    assert!(addr.iter().all(|(l, _)| l.contains(&format!("org=\"{}\"", w.org))), "{addr:?}");
}

// ---------------------------------------------------------------------------
// Derived tokens written into the policy file.

/// A policy file may hold derived tokens (`parent_id`): a child is held to
/// every ancestor's scope and window; a child whose parent is not loaded is
/// left out (401); removing a parent from the file (hot
/// reload) takes its children with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_tokens_in_the_policy_file_follow_their_ancestors() {
    let mut c = cast();
    let (org, project) = (c.org.clone(), c.project.clone());
    let experiment = c.experiment.clone();
    let p = &mut c.policy;
    let account = p.user("org-writer", true);
    p.grant_user(&account, "update", "organization", &org);
    let parent = p.scoped_token(
        &org,
        "parent",
        &account,
        json!({"grants": [{"object_type": "project", "object_id": project, "permissions": ["update"]}]}),
    );
    let child = p.token_entry(&org, "child", &account, json!({"parent_id": parent.id}));
    let grandchild = p.token_entry(
        &org,
        "grandchild",
        &account,
        json!({"parent_id": child.id,
               "scope": {"grants": [{"object_type": "experiment", "object_id": experiment, "permissions": ["update"]}]}}),
    );
    let lapsed_parent = p.token_entry(&org, "lapsed-parent", &account, json!({"expires_at": "2001-01-01T00:00:00Z"}));
    let child_of_lapsed = p.token_entry(&org, "child-of-lapsed", &account, json!({"parent_id": lapsed_parent.id}));
    let future_parent = p.token_entry(&org, "future-parent", &account, json!({"not_before": "2999-01-01T00:00:00Z"}));
    let child_of_future = p.token_entry(&org, "child-of-future", &account, json!({"parent_id": future_parent.id}));
    let orphan = p.token_entry(&org, "orphan", &account, json!({"parent_id": crate::support::policy::new_id()}));
    let s = Scoped::extra(vec![
        &parent,
        &child,
        &grandchild,
        &lapsed_parent,
        &child_of_lapsed,
        &future_parent,
        &child_of_future,
        &orphan,
    ]);
    let w = World::builder_for(c).start().await;
    let secrets: Vec<&str> = w.secrets().into_iter().chain(s.iter().map(String::as_str)).collect();
    let check = |r: &Resp, status: u16, code: &str| {
        http::assert_error(r, status, code, &secrets);
    };

    for t in [&parent, &child] {
        allowed_and_forwarded(&w, t, vec![log_row(&w.project), experiment_row(&w.experiment)], None).await;
        let r =
            refused_unforwarded(&w, &t.name, async || logs3_via(&w, t, vec![log_row(&w.other_project)], None).await)
                .await;
        check(&r, 403, "scope_denied");
    }
    allowed_and_forwarded(&w, &grandchild, vec![experiment_row(&w.experiment)], None).await;
    let r = refused_unforwarded(&w, "grandchild", async || {
        logs3_via(&w, &grandchild, vec![log_row(&w.project)], None).await
    })
    .await;
    check(&r, 403, "scope_denied");
    for t in [&child_of_lapsed, &child_of_future, &orphan] {
        let r =
            refused_unforwarded(&w, &t.name, async || logs3_via(&w, t, vec![log_row(&w.project)], None).await).await;
        check(&r, 401, "unauthenticated");
    }
    w.still_serves().await;

    // The parent leaves the file: its child and grandchild leave with it.
    let mut next = w.policy.clone();
    assert!(next.remove_token(&parent.id));
    w.gw.write_policy(&next);
    crate::support::wait::until(
        "the parent's removal reaches its descendants",
        std::time::Duration::from_secs(10),
        async || logs3_via(&w, &parent, vec![log_row(&w.project)], None).await.status == 401,
    )
    .await;
    for t in [&child, &grandchild] {
        let r = refused_unforwarded(&w, &t.name, async || {
            logs3_via(&w, t, vec![experiment_row(&w.experiment)], None).await
        })
        .await;
        check(&r, 401, "unauthenticated");
    }
    w.still_serves().await;
}

// ---------------------------------------------------------------------------
// The resolved address everywhere; shadow mode; the decision cache.

/// Behind a trusted proxy, the address the failed-authentication budget
/// counts and the audit trail records is the forwarded one, not the proxy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_and_the_audit_trail_see_the_forwarded_address() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let (c, s) = scoped_cast();
    let toml = format!(
        "[limits]\nauth_failures_per_minute = 3\n[audit]\nsink = \"file\"\npath = \"{}\"\nqueue = 1024\n",
        crate::support::gateway::toml_escape(&path)
    );
    let w = World::builder_for(c)
        .gateway(|b| b.server_option("trusted_proxies", r#"["127.0.0.0/8"]"#).extra_toml(&toml))
        .start()
        .await;
    let row = || vec![log_row(&w.project)];
    let unknown = crate::support::policy::Token {
        raw: w.unknown.clone(),
        id: String::new(),
        name: "unknown".into(),
        user_id: String::new(),
        org_id: String::new(),
    };
    for _ in 0..3 {
        denied(&w, &s, &logs3_via(&w, &unknown, row(), Some("192.0.2.1")).await, 401, "unauthenticated");
    }
    denied(&w, &s, &logs3_via(&w, &unknown, row(), Some("192.0.2.1")).await, 429, "rate_limited");
    denied(&w, &s, &logs3_via(&w, &w.writer, row(), Some("192.0.2.1")).await, 429, "rate_limited");
    // Another client behind the same proxy has a budget of its own.
    denied(&w, &s, &logs3_via(&w, &unknown, row(), Some("192.0.2.2")).await, 401, "unauthenticated");
    allowed_and_forwarded(&w, &w.writer, row(), Some("192.0.2.2")).await;

    let allowed = logs3_via(&w, &s.bound_ten, row(), Some("10.1.2.3")).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    let refused = logs3_via(&w, &s.bound_ten, row(), Some("198.51.100.4")).await;
    denied(&w, &s, &refused, 403, "client_address_denied");
    let id = |r: &Resp| r.header("x-request-id").expect("x-request-id").to_owned();
    let (allowed_id, refused_id) = (id(&allowed), id(&refused));
    let records = crate::support::wait::until("both audit records", std::time::Duration::from_secs(5), async || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let all: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let find = |rid: &str| all.iter().find(|r| r["request_id"] == rid).cloned();
        Some((find(&allowed_id)?, find(&refused_id)?))
    })
    .await;
    assert_eq!(records.0["client_addr"], "10.1.2.3", "{}", records.0);
    assert_eq!(records.1["client_addr"], "198.51.100.4", "{}", records.1);
    assert_eq!(records.1["reason"], "client_address_denied", "{}", records.1);
    assert_eq!(records.1["decision"], "deny", "{}", records.1);
}

/// Scope denials are policy denials: in shadow mode they are forwarded,
/// counted as shadow denials by reason, and audited as `shadow_allow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_covers_scope_denials() {
    let (c, s) = scoped_cast();
    let org = c.org.clone();
    let w = World::builder_for(c).gateway(|b| b.extra_toml(&format!("[shadow]\norgs = [\"{org}\"]\n"))).start().await;
    allowed_and_forwarded(&w, &s.checkout_only, vec![log_row(&w.other_project)], None).await;
    let text = w.gw.metrics().await;
    let shadowed: f64 = text
        .lines()
        .filter(|l| l.starts_with("loggate_shadow_denials_total{") && l.contains("reason=\"scope_denied\""))
        .filter_map(|l| l.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
        .sum();
    assert_eq!(shadowed, 1.0, "{text}");
    assert!(denial_samples(&text, "scope_denied").is_empty(), "a shadowed denial counted as enforced: {text}");
}

/// Decisions are cached, but never across tokens of one account: an
/// unscoped token's allow is not a scoped token's, nor the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_decision_never_crosses_tokens_of_one_account() {
    let mut c = cast();
    let (org, dataset) = (c.org.clone(), c.dataset.clone());
    let user = c.writer.user_id.clone();
    let dataset_only = c.policy.scoped_token(
        &org,
        "dataset-only",
        &user,
        json!({"grants": [{"object_type": "dataset", "object_id": dataset, "permissions": ["update"]}]}),
    );
    let w = World::builder_for(c).start().await;
    let secrets: Vec<&str> = w.secrets().into_iter().chain([dataset_only.raw.as_str()]).collect();
    for round in 0..3 {
        // The unscoped writer first (cached allow), then the scoped one.
        allowed_and_forwarded(&w, &w.writer, vec![experiment_row(&w.experiment)], None).await;
        let r = refused_unforwarded(&w, &format!("round {round}"), async || {
            logs3_via(&w, &dataset_only, vec![experiment_row(&w.experiment)], None).await
        })
        .await;
        http::assert_error(&r, 403, "scope_denied", &secrets);
        // The scoped one refused on the project log first, then the writer.
        let r = refused_unforwarded(&w, &format!("round {round}"), async || {
            logs3_via(&w, &dataset_only, vec![log_row(&w.project)], None).await
        })
        .await;
        http::assert_error(&r, 403, "scope_denied", &secrets);
        allowed_and_forwarded(&w, &w.writer, vec![log_row(&w.project)], None).await;
        allowed_and_forwarded(&w, &dataset_only, vec![crate::support::world::dataset_row(&w.dataset)], None).await;
    }
}
