//! The command line of the real binary: `authz --explain` (decision first,
//! then the evidence; exit 0/1/2), `token new` (parseable, hash matches),
//! and credential swap (`check`/`serve` refuse a missing upstream token
//! naming the variable; the data plane only ever sees loggate's token).

use crate::support::gateway::{loggate_bin, toml_escape};
use crate::support::policy::{PolicyBuilder, token_sha256};
use crate::support::world::{World, cast};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn loggate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(loggate_bin());
    cmd.args(args).env_remove("BRAINTRUST_UPSTREAM_API_KEY").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Bounded: a `serve` that wrongly starts must fail the test, not hang it.
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run loggate");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loggate {args:?} still running after 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `policy` and a config using it (plus `extra` TOML) into `dir`.
fn write_config(dir: &Path, policy: &PolicyBuilder, extra: &str) -> PathBuf {
    let policy_path = dir.join("policy.json");
    policy.write(&policy_path);
    let config = dir.join("loggate.toml");
    std::fs::write(&config, format!("[policy]\nfile = \"{}\"\n{extra}", toml_escape(&policy_path))).unwrap();
    config
}

/// A writer that holds `update` through group "writers" (nested in
/// "platform") and role "ingest" (which inherits "base-ingest").
struct Explained {
    policy: PolicyBuilder,
    project_id: String,
    writer_token_id: String,
    writer_raw: String,
    acl_id: String,
    outer_group: String,
    inner_group: String,
    role: String,
    base_role: String,
}

fn explained_world() -> Explained {
    let mut policy = PolicyBuilder::new();
    let org = policy.org("acme");
    let project_id = policy.project(&org, "checkout");
    let writer = policy.service_token(&org, "ci-writer");
    let inner_group = policy.group(&org, "writers", &[&writer.user_id], &[]);
    let outer_group = policy.group(&org, "platform", &[], &[&inner_group]);
    let base_role = policy.role(Some(&org), "base-ingest", &[("update", Some("project_log"))], &[]);
    let role = policy.role(Some(&org), "ingest", &[("read", None)], &[&base_role]);
    let acl_id = policy.acl(None, Some(&outer_group), None, Some(&role), "project", &project_id, None);
    Explained {
        policy,
        project_id,
        writer_token_id: writer.id,
        writer_raw: writer.raw,
        acl_id,
        outer_group,
        inner_group,
        role,
        base_role,
    }
}

#[test]
fn authz_explain_prints_the_decision_first_then_acl_group_chain_and_role() {
    let w = explained_world();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &w.policy, "");
    let object = format!("project_log:{}", w.project_id);
    let o = loggate(
        &[
            "authz",
            "--config",
            config.to_str().unwrap(),
            "--token-id",
            &w.writer_token_id,
            "--object",
            &object,
            "--permission",
            "update",
            "--explain",
        ],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert_eq!(out.split_whitespace().next(), Some("allow"), "{out}");
    for evidence in [&w.acl_id, &w.outer_group, &w.inner_group, &w.role, &w.base_role] {
        assert!(out.contains(evidence.as_str()), "explanation lacks {evidence}:\n{out}");
    }
    assert!(!out.contains(&w.writer_raw), "the token leaked");

    // The raw token works too and is never printed.
    let o =
        loggate(&["authz", "--config", config.to_str().unwrap(), "--token", &w.writer_raw, "--object", &object], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(!stdout(&o).contains(&w.writer_raw) && !stderr(&o).contains(&w.writer_raw));

    // `delete` is held by nobody: deny, with what was found and what is missing.
    let o = loggate(
        &[
            "authz",
            "--config",
            config.to_str().unwrap(),
            "--token-id",
            &w.writer_token_id,
            "--object",
            &object,
            "--permission",
            "delete",
            "--explain",
        ],
        &[],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(out.split_whitespace().next(), Some("deny"), "{out}");
    assert!(out.contains("missing") && out.contains("delete"), "{out}");

    // Errors: unknown token, bad object, bad permission, unreadable config.
    for args in [
        vec!["--token-id", "no-such-token", "--object", object.as_str()],
        vec!["--token-id", w.writer_token_id.as_str(), "--object", "planet:earth"],
        vec!["--token-id", w.writer_token_id.as_str(), "--object", object.as_str(), "--permission", "fly"],
    ] {
        let mut full = vec!["authz", "--config", config.to_str().unwrap()];
        full.extend(args);
        let o = loggate(&full, &[]);
        assert_eq!(o.status.code(), Some(2), "{full:?}: {}{}", stdout(&o), stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
    let o = loggate(
        &["authz", "--config", "/nonexistent/loggate.toml", "--token-id", "x", "--object", object.as_str()],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn token_new_prints_a_token_whose_hash_matches() {
    let o = loggate(&["token", "new", "--name", "ci-writer", "--org-id", "org-1"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let field = |name: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{out}"))
            .trim()
            .to_owned()
    };
    let token = field("token:");
    let sha = field("sha256:");
    let tail = token.strip_prefix("bt-st-").expect("bt-st- prefix");
    assert!(tail.len() >= 32 && tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");
    assert_eq!(sha, token_sha256(&token));
    let entry: Value = serde_json::from_str(&out[out.find('{').expect("a JSON entry")..]).unwrap();
    assert_eq!(entry["token_sha256"], sha);
    assert_eq!(entry["name"], "ci-writer");
    assert_eq!(entry["org_id"], "org-1");
    let again = stdout(&loggate(&["token", "new"], &[]));
    assert_ne!(again.lines().next(), out.lines().next(), "two runs printed the same token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_without_the_upstream_token_fails_check_and_serve_naming_the_variable() {
    let w = cast();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &w.policy,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[upstream]\ncredentials = \"swap\"\n",
    );
    let config = config.to_str().unwrap();
    for env in [vec![], vec![("BRAINTRUST_UPSTREAM_API_KEY", "  ")]] {
        for cmd in ["check", "serve"] {
            let o = loggate(&[cmd, "--config", config], &env);
            assert!(!o.status.success(), "{cmd} succeeded without the upstream token");
            let all = format!("{}{}", stdout(&o), stderr(&o));
            assert!(all.contains("BRAINTRUST_UPSTREAM_API_KEY"), "{cmd} did not name the variable: {all}");
        }
    }
    // A custom variable name is the one named.
    let custom = write_config(
        dir.path(),
        &w.policy,
        "[upstream]\ncredentials = \"swap\"\nupstream_token_env = \"MY_DATA_PLANE_KEY\"\n",
    );
    let o = loggate(&["check", "--config", custom.to_str().unwrap()], &[]);
    assert!(!o.status.success() && stderr(&o).contains("MY_DATA_PLANE_KEY"), "{}", stderr(&o));
    let o = loggate(&["check", "--config", custom.to_str().unwrap()], &[("MY_DATA_PLANE_KEY", "bt-st-x")]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swap_sends_loggate_token_upstream_never_the_callers() {
    const UPSTREAM_KEY: &str = "sk-loggate-own-data-plane-key-0123456789";
    let w = World::start_with(|b| {
        b.env("LOGGATE_UPSTREAM__CREDENTIALS", "swap").env("BRAINTRUST_UPSTREAM_API_KEY", UPSTREAM_KEY)
    })
    .await;
    let (gw, upstream) = (&w.gw, &w.upstream);
    let client = reqwest::Client::new();
    let login = client.post(format!("{}/api/apikey/login", gw.url)).bearer_auth(&w.writer.raw).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let version = client.get(format!("{}/version", gw.url)).bearer_auth(&w.writer.raw).send().await.unwrap();
    assert_eq!(version.status(), 200);
    let write = client
        .post(format!("{}/logs3", gw.url))
        .bearer_auth(&w.writer.raw)
        .header("content-type", "application/json")
        .body(w.logs3_body())
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);

    let seen = upstream.requests();
    assert_eq!(seen.len(), 3, "{seen:?}");
    for r in &seen {
        assert_eq!(r.bearer(), Some(UPSTREAM_KEY), "{} {} carried another credential", r.method, r.path);
        let all: Vec<&[u8]> = r.headers.iter().map(|(_, v)| v.as_bytes()).collect();
        assert!(
            !all.iter().any(|v| v.windows(w.writer.raw.len()).any(|s| s == w.writer.raw.as_bytes()))
                && !String::from_utf8_lossy(&r.body).contains(&w.writer.raw),
            "the caller's token reached the data plane on {}",
            r.path
        );
    }
    // The caller's token is still what loggate authenticates: an unknown one is 401.
    let denied = client.get(format!("{}/version", gw.url)).bearer_auth(&w.unknown).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(upstream.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_routes_keep_the_callers_credentials_unless_lending_the_key_is_asked_for() {
    const UPSTREAM_KEY: &str = "sk-loggate-own-data-plane-key-0123456789";
    for lend in [false, true] {
        let w = World::start_with(|b| {
            let b = b
                .env("LOGGATE_UPSTREAM__CREDENTIALS", "swap")
                .env("LOGGATE_UPSTREAM__PASSTHROUGH_PREFIXES", "[\"/v1/prompt\"]")
                .env("BRAINTRUST_UPSTREAM_API_KEY", UPSTREAM_KEY);
            if lend { b.env("LOGGATE_UPSTREAM__PASSTHROUGH_CREDENTIALS", "swap") } else { b }
        })
        .await;
        let client = reqwest::Client::new();
        // Whatever the fake data plane answers, it records what it got.
        client.get(format!("{}/v1/prompt?name=x", w.gw.url)).bearer_auth(&w.reader.raw).send().await.unwrap();
        let write = client
            .post(format!("{}/logs3", w.gw.url))
            .bearer_auth(&w.writer.raw)
            .header("content-type", "application/json")
            .body(w.logs3_body())
            .send()
            .await
            .unwrap();
        assert_eq!(write.status(), 200);
        let passed = w.upstream.requests_to("/v1/prompt");
        assert_eq!(passed.len(), 1, "the passthrough prefix was not forwarded");
        let expected = if lend { UPSTREAM_KEY } else { w.reader.raw.as_str() };
        assert_eq!(passed[0].bearer(), Some(expected), "lend = {lend}");
        // Checked routes get loggate's key either way.
        assert_eq!(w.upstream.requests_to("/logs3")[0].bearer(), Some(UPSTREAM_KEY));
    }

    // `check` warns about lending, naming the setting, and still passes.
    let w = cast();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &w.policy,
        "[upstream]\npassthrough_prefixes = [\"/v1/prompt\"]\npassthrough_credentials = \"swap\"\n",
    );
    let o = loggate(&["check", "--config", config.to_str().unwrap()], &[("BRAINTRUST_UPSTREAM_API_KEY", "k")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = stderr(&o).lines().find(|l| l.contains("warning")).map(str::to_owned).unwrap_or_default();
    assert!(warning.contains("passthrough_credentials"), "no warning line: {}", stderr(&o));
    let o = loggate(&["check", "--config", config.to_str().unwrap()], &[]);
    assert!(!o.status.success() && stderr(&o).contains("passthrough_credentials"), "{}", stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_probes_the_admin_listener() {
    let w = World::start().await;
    let gw = &w.gw;
    let url = format!("{}/healthz", gw.admin_url);
    let o = tokio::task::block_in_place(|| loggate(&["healthcheck", "--url", &url], &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let o = tokio::task::block_in_place(|| {
        loggate(&["healthcheck", "--url", &format!("http://{free}/healthz"), "--timeout", "1s"], &[])
    });
    assert_eq!(o.status.code(), Some(1));
    let o = tokio::task::block_in_place(|| loggate(&["healthcheck", "--url", &format!("{}/nope", gw.admin_url)], &[]));
    assert_eq!(o.status.code(), Some(1), "a 404 is not healthy");
}
