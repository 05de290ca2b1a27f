//! The deployment files are checked like code: every Kubernetes document
//! parses and has the kinds, probes, ports and scrape annotations loggate
//! needs; the configs they embed pass loggate's own parser; the Dockerfile
//! has its contract lines; and every query of the Grafana dashboard names
//! a series loggate really exports (checked against a live `/metrics`).

use crate::support::wait;
use crate::support::world::World;
use loggate::config::Config;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_docs(path: &str) -> Vec<Yaml> {
    let text = std::fs::read_to_string(repo(path)).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    for d in &docs {
        for key in ["apiVersion", "kind"] {
            assert!(d[key].as_str().is_some(), "{path}: a document without {key}");
        }
        assert!(d["metadata"]["name"].as_str().is_some(), "{path}: a document without metadata.name");
    }
    docs
}

fn kinds(docs: &[Yaml]) -> Vec<&str> {
    docs.iter().map(|d| d["kind"].as_str().unwrap()).collect()
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter().find(|d| d["kind"].as_str() == Some(kind)).unwrap_or_else(|| panic!("no {kind}"))
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

/// The loggate container of a Deployment (a regular or native sidecar container).
fn loggate_container(deployment: &Yaml) -> &Yaml {
    let spec = &deployment["spec"]["template"]["spec"];
    list(&spec["containers"])
        .iter()
        .chain(list(&spec["initContainers"]))
        .find(|c| c["name"].as_str() == Some("loggate"))
        .expect("a container named loggate")
}

/// The probes hit the admin port's `/readyz` and `/healthz`, the pod is
/// annotated for scraping on that port, loggate runs as non-root.
fn check_loggate_pod(deployment: &Yaml) {
    let c = loggate_container(deployment);
    let ports = list(&c["ports"]);
    let admin = ports.iter().find(|p| p["name"].as_str() == Some("admin")).expect("a port named admin");
    assert_eq!(admin["containerPort"].as_i64(), Some(9787));
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(get["port"].as_str(), Some("admin"), "{probe}");
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("9787"));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert!(pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30) > 0);
}

/// The embedded loggate.toml passes loggate's own parser and validation.
fn embedded_config(docs: &[Yaml], env: &[(&str, &str)]) -> Config {
    let text = of_kind(docs, "ConfigMap")["data"]["loggate.toml"].as_str().expect("data.loggate.toml");
    Config::from_toml(text, env.iter().map(|(k, v)| (k.to_string(), v.to_string())), None)
        .unwrap_or_else(|e| panic!("embedded loggate.toml: {e}"))
}

#[test]
fn sidecar_manifest_has_app_and_loggate_with_probes_config_and_policy() {
    let docs = yaml_docs("deploy/kubernetes/sidecar.yaml");
    assert_eq!(kinds(&docs), ["ConfigMap", "Secret", "Deployment"]);
    let deployment = of_kind(&docs, "Deployment");
    check_loggate_pod(deployment);
    let spec = &deployment["spec"]["template"]["spec"];
    let app = list(&spec["containers"]).iter().find(|c| c["name"].as_str() == Some("app")).expect("app container");
    let env: Vec<(&str, &str)> =
        list(&app["env"]).iter().filter_map(|e| Some((e["name"].as_str()?, e["value"].as_str()?))).collect();
    assert!(env.contains(&("BRAINTRUST_API_URL", "http://127.0.0.1:8787")), "{env:?}");
    assert!(env.contains(&("BRAINTRUST_APP_URL", "http://127.0.0.1:8787")), "{env:?}");

    let config = embedded_config(&docs, &[]);
    assert!(config.server.listen.ip().is_loopback(), "the sidecar must listen on loopback only");
    assert_eq!(config.admin.listen.port(), 9787);
    // Policy from the Secret, mounted as a directory (subPath mounts never see Secret updates).
    let policy_dir = config.policy.file.parent().unwrap().to_str().unwrap().to_owned();
    let mounts = list(&loggate_container(deployment)["volumeMounts"]);
    let mount = mounts.iter().find(|m| m["mountPath"].as_str() == Some(&policy_dir)).expect("policy mount");
    assert!(mount["subPath"].is_badvalue(), "policy mounted with subPath does not hot-reload");
    let volume = list(&spec["volumes"]).iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert_eq!(volume["secret"]["secretName"].as_str(), of_kind(&docs, "Secret")["metadata"]["name"].as_str());
    let grace = spec["terminationGracePeriodSeconds"].as_i64().unwrap() as u64;
    assert!(grace > config.server.shutdown_grace.as_secs(), "the pod is killed before loggate drains");
}

#[test]
fn fleet_manifest_has_deployment_service_and_configmap() {
    let docs = yaml_docs("deploy/kubernetes/fleet.yaml");
    assert_eq!(kinds(&docs), ["ConfigMap", "Deployment", "Service"]);
    let deployment = of_kind(&docs, "Deployment");
    check_loggate_pod(deployment);
    let container = loggate_container(deployment);
    let http = list(&container["ports"]).iter().find(|p| p["name"].as_str() == Some("http")).expect("http port");
    assert_eq!(http["containerPort"].as_i64(), Some(8787));
    let service = of_kind(&docs, "Service");
    assert_eq!(service["spec"]["selector"], deployment["spec"]["selector"]["matchLabels"]);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"]);
    for p in list(&service["spec"]["ports"]) {
        let target = p["targetPort"].as_str().expect("named targetPort");
        assert!(list(&container["ports"]).iter().any(|c| c["name"].as_str() == Some(target)), "{target}");
    }
    let env_names: Vec<&str> = list(&container["env"]).iter().filter_map(|e| e["name"].as_str()).collect();
    let config = embedded_config(&docs, &[("LOGGATE_POLICY__POSTGRES_URL", "postgres://x@db/loggate")]);
    assert_eq!(config.policy.source, loggate::config::PolicySource::Postgres);
    assert_eq!(config.invalidation.feed, loggate::config::Feed::Redis);
    for needed in
        ["LOGGATE_POLICY__POSTGRES_URL", config.upstream.upstream_token_env.as_str(), config.admin.token_env.as_str()]
    {
        assert!(env_names.contains(&needed), "{needed} not set on the container: {env_names:?}");
    }
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap() as u64;
    assert!(grace > config.server.shutdown_grace.as_secs());
}

#[test]
fn dockerfile_builds_a_non_root_image_with_healthcheck_and_ports() {
    let text = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("FROM rust:1.95"), "builder stage");
    assert!(has("FROM debian:bookworm-slim"), "runtime stage");
    assert!(has("EXPOSE 8787 9787"));
    assert!(
        lines.iter().any(|l| l.starts_with("USER ") && !l.contains("root") && !l.ends_with(" 0")),
        "runs as non-root"
    );
    assert!(text.contains("HEALTHCHECK") && text.contains("\"healthcheck\"") && text.contains("9787/healthz"));
    assert!(has("ENTRYPOINT [\"loggate\", \"serve\", \"--config\", \"/etc/loggate/loggate.toml\"]"));
    // What the build needs besides src/: the embedded migrations, and a stub
    // for every bench target the manifest declares (cargo checks they exist).
    assert!(has("COPY migrations ./migrations"), "migrations are include_str!'d into the binary");
    let manifest: toml::Table = std::fs::read_to_string(repo("Cargo.toml")).unwrap().parse().unwrap();
    for bench in manifest.get("bench").and_then(|b| b.as_array()).into_iter().flatten() {
        let name = bench["name"].as_str().unwrap();
        let stubs = lines.iter().find(|l| l.contains("for b in")).expect("a bench stub loop");
        assert!(stubs.split_whitespace().any(|w| w.trim_end_matches(';') == name), "no stub for bench {name}");
    }
    // The config baked into the image is valid and listens beyond loopback.
    let config = Config::from_toml(&std::fs::read_to_string(repo("config/container.toml")).unwrap(), [], None).unwrap();
    assert!(config.server.listen.ip().is_unspecified() && config.admin.listen.ip().is_unspecified());
    assert_eq!((config.server.listen.port(), config.admin.listen.port()), (8787, 9787));
}

/// Every `expr` in the dashboard, wherever it is nested.
fn exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// `loggate_*` names in a PromQL expression, histogram suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("loggate_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_queries_only_name_series_loggate_exports() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("deploy/grafana/loggate.json")).unwrap()).unwrap();
    assert!(dashboard["title"].is_string() && dashboard["panels"].is_array());
    let mut all = Vec::new();
    exprs(&dashboard["panels"], &mut all);
    assert!(all.len() >= 10, "{all:?}");
    let referenced: BTreeSet<String> = all.iter().flat_map(|e| metric_names(e)).collect();
    for wanted in [
        "loggate_denials_total",
        "loggate_requests_total",
        "loggate_request_seconds",
        "loggate_decision_cache_total",
        "loggate_revocation_lag_seconds",
        "loggate_invalidation_feed_up",
        "loggate_policy_age_seconds",
    ] {
        assert!(referenced.contains(wanted), "the dashboard lacks {wanted}");
    }

    // A live gateway (with a feed configured, so that feed_up is exported),
    // after allowed, denied and unauthenticated traffic.
    let mut w = World::start_with(|b| b.env("LOGGATE_INVALIDATION__FEED", "redis")).await;
    for token in [&w.writer.raw, &w.reader.raw, &w.unknown] {
        w.http.post(format!("{}/logs3", w.gw.url)).bearer_auth(token).body(w.logs3_body()).send().await.unwrap();
    }
    w.policy.org("another-org");
    w.gw.write_policy(&w.policy); // a reload counts an invalidation
    // Series that exist only once their situation occurred (shadow mode on
    // and denying) or with a feature on (the audit trail's counters are
    // always registered, so they need no exception).
    let situational = ["loggate_shadow_denials_total"];
    wait::until_every(
        "the dashboard queries only series loggate exports (missing ones listed)",
        std::time::Duration::from_secs(10),
        std::time::Duration::from_millis(200),
        async || {
            let text = w.gw.metrics().await;
            let exported: BTreeSet<String> = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(['{', ' ']).next())
                .flat_map(metric_names)
                .collect();
            let missing: Vec<String> = referenced
                .difference(&exported)
                .filter(|name| !situational.contains(&name.as_str()))
                .cloned()
                .collect();
            if missing.is_empty() { Ok(()) } else { Err(missing) }
        },
    )
    .await;
}
