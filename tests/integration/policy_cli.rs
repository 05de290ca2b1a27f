//! `loggate policy test` and `loggate policy diff` (contract: Command line)
//! on the real binary: expectations checked against the configured store
//! (file and Postgres), FAIL lines naming the expectation and the evidence,
//! bad expectation files named by entry; diffs between two files and
//! between the configured store and a file, in a deterministic order, with
//! token validity and left-out entries counted as `serve` counts them.

use crate::support::gateway::{loggate_bin, toml_escape};
use crate::support::pg::TestDb;
use crate::support::policy::{PolicyBuilder, Token};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary, bounded (a hang fails the test).
fn loggate(args: &[&str]) -> Output {
    let mut child = Command::new(loggate_bin())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run loggate");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loggate {args:?} still running after 30 s");
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

fn write_json(path: &Path, v: &Value) -> PathBuf {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.to_owned()
}

/// A file-store config in `dir` whose policy is `policy`.
fn file_config(dir: &Path, policy: &Value) -> PathBuf {
    let policy_path = write_json(&dir.join("policy.json"), policy);
    let config = dir.join("loggate.toml");
    std::fs::write(&config, format!("[policy]\nfile = \"{}\"\n", toml_escape(&policy_path))).unwrap();
    config
}

fn entry<'a>(doc: &'a mut Value, collection: &str, id: &str) -> &'a mut Value {
    doc[collection].as_array_mut().unwrap().iter_mut().find(|e| e["id"] == id).unwrap()
}

fn remove(doc: &mut Value, collection: &str, id: &str) {
    doc[collection].as_array_mut().unwrap().retain(|e| e["id"] != id);
}

/// One organization (`acme`: project `checkout` with an experiment and a
/// dataset) and another (`globex`: project `other`):
/// - `ci-writer` holds update on checkout's log through group `writers`
///   (nested in `platform`), ACL `writer_acl`;
/// - `reader` holds read on project checkout (so on its log, experiment and
///   dataset), ACL `reader_acl`;
/// - `old-writer` holds update on checkout's log but expired in 2020;
/// - `globex` holds update on other's log.
struct World {
    policy: PolicyBuilder,
    org: String,
    project: String,
    experiment: String,
    dataset: String,
    other_project: String,
    writer: Token,
    reader: Token,
    expired: Token,
    globex: Token,
    writers: String,
    writer_acl: String,
    reader_acl: String,
}

fn world() -> World {
    let mut p = PolicyBuilder::new();
    let org = p.org("acme");
    let project = p.project(&org, "checkout");
    let experiment = p.experiment(&project, "candidate");
    let dataset = p.dataset(&project, "golden");
    let writer = p.service_token(&org, "ci-writer");
    let reader = p.service_token(&org, "reader");
    let old_user = p.user("old-writer", true);
    let expired = p.token_for(&org, "old-writer", &old_user, Some("2020-01-01T00:00:00Z"));
    p.grant_user(&old_user, "update", "project_log", &project);
    let writers = p.group(&org, "writers", &[&writer.user_id], &[]);
    let platform = p.group(&org, "platform", &[], &[&writers]);
    let writer_acl = p.grant_group(&platform, "update", "project_log", &project);
    let reader_acl = p.grant_user(&reader.user_id, "read", "project", &project);
    let other_org = p.org("globex");
    let other_project = p.project(&other_org, "other");
    let globex = p.service_token(&other_org, "globex");
    p.grant_user(&globex.user_id, "update", "project_log", &other_project);
    World {
        policy: p,
        org,
        project,
        experiment,
        dataset,
        other_project,
        writer,
        reader,
        expired,
        globex,
        writers,
        writer_acl,
        reader_acl,
    }
}

fn expect(who: (&str, &str), object: &str, permission: &str, decision: &str) -> Value {
    json!({who.0: who.1, "object": object, "permission": permission, "expect": decision})
}

fn fail_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("FAIL")).collect()
}

// ---- policy test ------------------------------------------------------------

fn passing_expectations(w: &World) -> Vec<Value> {
    let log = format!("project_log:{}", w.project);
    vec![
        expect(("token_id", &w.writer.id), &log, "update", "allow"),
        expect(("token_id", &w.writer.id), &log, "delete", "deny"),
        expect(("token_id", &w.reader.id), &format!("dataset:{}", w.dataset), "read", "allow"),
        expect(("token_id", &w.reader.id), &log, "update", "deny"),
        expect(("token_id", &w.globex.id), &log, "update", "deny"),
        expect(("token_id", &w.globex.id), &format!("project_log:{}", w.other_project), "update", "allow"),
        expect(("token_id", &w.expired.id), &log, "update", "deny"),
        expect(("token_id", "no-such-token"), &log, "read", "deny"),
        // Users act in the object's organization.
        expect(("user_id", &w.writer.user_id), &log, "update", "allow"),
        expect(("user_id", &w.reader.user_id), &format!("experiment:{}", w.experiment), "read", "allow"),
        expect(("user_id", &w.reader.user_id), &format!("experiment:{}", w.experiment), "update", "deny"),
        expect(("user_id", &w.globex.user_id), &log, "update", "deny"),
        expect(("user_id", &w.writer.user_id), "project_log:no-such-project", "update", "deny"),
    ]
}

#[test]
fn policy_cli_test_passes_when_every_expectation_holds() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), &w.policy.to_json());
    let file = write_json(&dir.path().join("expect.json"), &Value::Array(passing_expectations(&w)));
    let o = loggate(&["policy", "test", "--config", config.to_str().unwrap(), file.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(fail_lines(&out).is_empty(), "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["13 expectations, all hold"], "{out}");
    assert!(!out.contains(&w.writer.raw) && !stderr(&o).contains(&w.writer.raw), "a token leaked");
}

#[test]
fn policy_cli_test_names_the_one_wrong_expectation_with_its_explanation() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), &w.policy.to_json());
    let log = format!("project_log:{}", w.project);
    let mut expectations = passing_expectations(&w);
    expectations[3] = expect(("token_id", &w.reader.id), &log, "update", "allow");
    let file = write_json(&dir.path().join("expect.json"), &Value::Array(expectations));
    let o = loggate(&["policy", "test", "--config", config.to_str().unwrap(), file.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    let fails = fail_lines(&out);
    assert_eq!(fails.len(), 1, "{out}");
    let head = format!("FAIL expect[3] token reader ({}) update {log}: expected allow, got deny: ", w.reader.id);
    assert!(fails[0].starts_with(&head), "{}\nwanted {head}", fails[0]);
    assert!(
        fails[0].contains(&format!("user {} does not hold update on {log}", w.reader.user_id))
            && fails[0].contains("holds on")
            && fails[0].contains("read")
            && fails[0].contains("missing: update"),
        "{}",
        fails[0]
    );
    assert_eq!(out.lines().last(), Some("13 expectations, 1 failed"), "{out}");
    assert_eq!(out.lines().count(), 2, "one FAIL line and one summary: {out}");

    // An allow expected wrongly to be a deny names the granting ACL and the group chain.
    let file = write_json(
        &dir.path().join("expect2.json"),
        &json!([expect(("user_id", &w.writer.user_id), &log, "update", "deny")]),
    );
    let o = loggate(&["policy", "test", "--config", config.to_str().unwrap(), file.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let fails = fail_lines(&out);
    assert_eq!(fails.len(), 1, "{out}");
    let head = format!(
        "FAIL expect[0] user {} update {log}: expected deny, got allow: acl {}",
        w.writer.user_id, w.writer_acl
    );
    assert!(fails[0].starts_with(&head), "{}\nwanted {head}", fails[0]);
    assert!(fails[0].contains("writers") && fails[0].contains("platform"), "{}", fails[0]);
}

#[test]
fn policy_cli_test_an_expired_token_fails_its_allow_naming_validity() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), &w.policy.to_json());
    let log = format!("project_log:{}", w.project);
    let file = write_json(
        &dir.path().join("expect.json"),
        &json!([
            expect(("token_id", &w.writer.id), &log, "update", "allow"),
            expect(("token_id", &w.expired.id), &log, "update", "allow"),
            // Its service account still holds the grant: the token's window refuses it.
            expect(("user_id", &w.expired.user_id), &log, "update", "allow"),
            expect(("token_id", "no-such-token"), &log, "update", "allow"),
        ]),
    );
    let o = loggate(&["policy", "test", "--config", config.to_str().unwrap(), file.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    let fails = fail_lines(&out);
    assert_eq!(fails.len(), 2, "{out}");
    assert!(
        fails[0].starts_with(&format!(
            "FAIL expect[1] token old-writer ({}) update {log}: expected allow, got deny: validity",
            w.expired.id
        )) && fails[0].contains("2020-01-01T00:00:00Z"),
        "{}",
        fails[0]
    );
    assert!(
        fails[1].starts_with(&format!("FAIL expect[3] token no-such-token update {log}: expected allow, got deny: "))
            && fails[1].contains("no service token no-such-token"),
        "{}",
        fails[1]
    );
    assert_eq!(out.lines().last(), Some("4 expectations, 2 failed"));
}

#[test]
fn policy_cli_test_refuses_a_bad_expectation_file_naming_the_entry() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), &w.policy.to_json());
    let log = format!("project_log:{}", w.project);
    let good = expect(("token_id", &w.writer.id), &log, "update", "allow");
    let mut both = good.clone();
    both["user_id"] = json!(w.writer.user_id);
    let cases = [
        (
            json!([good, good, expect(("token_id", &w.writer.id), &log, "fly", "allow")]).to_string(),
            "expect[2].permission",
        ),
        (json!([both]).to_string(), "expect[0]: both token_id and user_id"),
        (
            json!([good, expect(("token_id", &w.writer.id), "planet:earth", "read", "deny")]).to_string(),
            "expect[1].object",
        ),
        (json!([expect(("token_id", &w.writer.id), &log, "read", "yes")]).to_string(), "expect[0].expect"),
        ("[{\"token_id\": ".into(), "not JSON"),
        (json!({"token_id": w.writer.id}).to_string(), "array"),
    ];
    for (i, (text, named)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&file, text).unwrap();
        let o = loggate(&["policy", "test", "--config", config.to_str().unwrap(), file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(named), "{text}: wanted {named} in {}", stderr(&o));
        assert!(fail_lines(&stdout(&o)).is_empty());
    }
    // A missing file, a bad config, a store that is not there: errors too.
    let file = write_json(&dir.path().join("ok.json"), &json!([good]));
    for args in [
        ["policy", "test", "--config", config.to_str().unwrap(), "/nonexistent/expect.json"],
        ["policy", "test", "--config", "/nonexistent/loggate.toml", file.to_str().unwrap()],
    ] {
        let o = loggate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let gone = dir.path().join("gone.toml");
    std::fs::write(
        &gone,
        "[policy]\nsource = \"postgres\"\npostgres_url = \"postgres://postgres@127.0.0.1:1/none\"\ntimeout = \"1s\"\n",
    )
    .unwrap();
    let o = loggate(&["policy", "test", "--config", gone.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_cli_test_and_diff_against_the_postgres_store() {
    let w = world();
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("loggate.toml");
    std::fs::write(&config, format!("[policy]\nsource = \"postgres\"\npostgres_url = \"{}\"\n", db.url)).unwrap();
    let config = config.to_str().unwrap().to_owned();
    let policy = write_json(&dir.path().join("policy.json"), &w.policy.to_json());
    tokio::task::block_in_place(|| {
        let o = loggate(&["migrate", "--config", &config]);
        assert!(o.status.success(), "migrate: {}", stderr(&o));
        let o = loggate(&["policy", "import", "--config", &config, policy.to_str().unwrap()]);
        assert!(o.status.success(), "import: {}", stderr(&o));

        let log = format!("project_log:{}", w.project);
        let file = write_json(&dir.path().join("expect.json"), &Value::Array(passing_expectations(&w)));
        let o = loggate(&["policy", "test", "--config", &config, file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
        let file = write_json(
            &dir.path().join("wrong.json"),
            &json!([expect(("token_id", &w.reader.id), &log, "update", "allow")]),
        );
        let o = loggate(&["policy", "test", "--config", &config, file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
        assert_eq!(fail_lines(&stdout(&o)).len(), 1);

        // The store against the same policy, then against one without the writer's ACL.
        let o = loggate(&["policy", "diff", "--config", &config, policy.to_str().unwrap()]);
        assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), ""), "{}", stderr(&o));
        let mut new = w.policy.to_json();
        remove(&mut new, "acls", &w.writer_acl);
        let new = write_json(&dir.path().join("new.json"), &new);
        let o = loggate(&["policy", "diff", "--config", &config, new.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert_eq!(heads(&stdout(&o)), [format!("token ci-writer ({}) update {log}: allow -> deny", w.writer.id)]);
    });
    drop(db);
}

// ---- policy diff ------------------------------------------------------------

/// Each line up to its first ` | `: `token … PERM OBJECT: a -> b`.
fn heads(out: &str) -> Vec<String> {
    out.lines().map(|l| l.split(" | ").next().unwrap().to_owned()).collect()
}

fn diff(dir: &Path, old: &Value, new: &Value) -> Output {
    let old = write_json(&dir.join("old.json"), old);
    let new = write_json(&dir.join("new.json"), new);
    loggate(&["policy", "diff", old.to_str().unwrap(), new.to_str().unwrap()])
}

#[test]
fn policy_cli_diff_of_identical_files_prints_nothing() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let o = diff(dir.path(), &w.policy.to_json(), &w.policy.to_json());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn policy_cli_diff_of_a_removed_acl_lists_exactly_the_lost_grants() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let mut new = w.policy.to_json();
    remove(&mut new, "acls", &w.reader_acl);
    let o = diff(dir.path(), &w.policy.to_json(), &new);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    // The reader loses read on every object of the project, in object order.
    let mut objects = [
        format!("dataset:{}", w.dataset),
        format!("experiment:{}", w.experiment),
        format!("project_log:{}", w.project),
    ];
    objects.sort_by_key(|o| o.parse::<loggate_model::types::ObjectRef>().unwrap());
    let wanted: Vec<String> =
        objects.iter().map(|o| format!("token reader ({}) read {o}: allow -> deny", w.reader.id)).collect();
    assert_eq!(heads(&out), wanted, "{out}");
    for line in out.lines() {
        assert!(line.contains(&format!("| old: allow: acl {} on project:{}", w.reader_acl, w.project)), "{line}");
        assert!(line.contains(&format!("| new: deny: user {} does not hold read", w.reader.user_id)), "{line}");
    }
}

#[test]
fn policy_cli_diff_of_a_deleted_group_and_an_expired_token() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let log = format!("project_log:{}", w.project);
    let mut new = w.policy.to_json();
    entry(&mut new, "groups", &w.writers)["deleted_at"] = json!("2026-01-01T00:00:00Z");
    let o = diff(dir.path(), &w.policy.to_json(), &new);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(heads(&stdout(&o)), [format!("token ci-writer ({}) update {log}: allow -> deny", w.writer.id)]);

    // The reader's token expires: it loses everything it could do.
    let mut new = w.policy.to_json();
    entry(&mut new, "service_tokens", &w.reader.id)["expires_at"] = json!("2021-06-01T00:00:00Z");
    let o = diff(dir.path(), &w.policy.to_json(), &new);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(out.lines().count(), 3, "{out}");
    for line in out.lines() {
        assert!(line.contains(&format!("token reader ({}) read ", w.reader.id)) && line.contains(": allow -> deny"));
        assert!(
            line.contains("| new: deny: validity: token reader") && line.contains("2021-06-01T00:00:00Z"),
            "{line}"
        );
    }
    // And the expired token, renewed, gains what its account holds.
    let mut new = w.policy.to_json();
    entry(&mut new, "service_tokens", &w.expired.id)["expires_at"] = Value::Null;
    let o = diff(dir.path(), &w.policy.to_json(), &new);
    assert_eq!(heads(&stdout(&o)), [format!("token old-writer ({}) update {log}: deny -> allow", w.expired.id)]);
}

#[test]
fn policy_cli_diff_against_the_configured_store_and_in_a_stable_order() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let config = file_config(dir.path(), &w.policy.to_json());
    // Many changes at once: the order is token id, object, permission.
    let mut new = w.policy.to_json();
    remove(&mut new, "acls", &w.reader_acl);
    remove(&mut new, "acls", &w.writer_acl);
    remove(&mut new, "service_tokens", &w.globex.id);
    let extra = new["acls"].as_array().unwrap().len();
    new["acls"].as_array_mut().unwrap().push(json!({
        "id": format!("00000000-0000-4000-8000-{extra:012}"), "object_type": "organization", "object_id": w.org,
        "user_id": w.expired.user_id, "permission": "delete",
    }));
    let new = write_json(&dir.path().join("new.json"), &new);
    let o = loggate(&["policy", "diff", "--config", config.to_str().unwrap(), new.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let lines = heads(&out);
    // reader: 3 objects; writer: 1; globex: 1 (absent in the new policy);
    // the expired token's new grant changes nothing (it is still expired).
    assert_eq!(lines.len(), 5, "{out}");
    assert!(out.contains(&format!("new: deny: no service token {} in the policy", w.globex.id)), "{out}");
    assert!(!out.contains(&w.expired.id), "{out}");
    let key = |l: &String| {
        let ids = [&w.writer, &w.reader, &w.globex].map(|t| t.id.clone());
        let id = ids.iter().find(|id| l.contains(id.as_str())).unwrap().clone();
        let mut words = l.rsplit(": ").nth(1).unwrap().rsplit(' ');
        let object: loggate_model::types::ObjectRef = words.next().unwrap().parse().unwrap();
        let permission: loggate_model::types::Permission = words.next().unwrap().parse().unwrap();
        (id, object, permission)
    };
    let mut sorted = lines.clone();
    sorted.sort_by_key(key);
    assert_eq!(lines, sorted, "not in (token id, object, permission) order");
    // The same question twice: the same answer, byte for byte.
    let again = loggate(&["policy", "diff", "--config", config.to_str().unwrap(), new.to_str().unwrap()]);
    assert_eq!(stdout(&again), out);

    // Usage: one file needs --config; --config takes one file; files must load.
    for args in [
        vec!["policy", "diff", new.to_str().unwrap()],
        vec!["policy", "diff", "--config", config.to_str().unwrap(), new.to_str().unwrap(), new.to_str().unwrap()],
        vec!["policy", "diff", "/nonexistent/old.json", new.to_str().unwrap()],
        vec!["policy", "diff", "--config", "/nonexistent/loggate.toml", new.to_str().unwrap()],
    ] {
        let o = loggate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(stdout(&o), "");
    }
}

#[test]
fn policy_cli_diff_loads_a_file_as_serve_does_leaving_out_a_bad_entry() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let log = format!("project_log:{}", w.project);
    // A field loggate does not know leaves the writer's ACL out of the new
    // file, as `serve` would: the writer loses update.
    let mut new = w.policy.to_json();
    entry(&mut new, "acls", &w.writer_acl)["scope"] = json!({"grants": []});
    let o = diff(dir.path(), &w.policy.to_json(), &new);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(heads(&stdout(&o)), [format!("token ci-writer ({}) update {log}: allow -> deny", w.writer.id)]);
    assert!(stderr(&o).contains("left out") && stderr(&o).contains("scope"), "{}", stderr(&o));
    // A file that is not a policy at all is an error.
    let o = diff(dir.path(), &w.policy.to_json(), &json!([1, 2]));
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
}
