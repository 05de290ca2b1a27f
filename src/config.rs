//! Typed configuration (contract: Configuration), parsed once at start-up: TOML file, then
//! `LOGGATE_<SECTION>__<KEY>` environment overrides, then validation. Nothing
//! reads the environment after this.

pub mod duration;
mod env;

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use duration::parse_duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub invalidation: InvalidationConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub shadow: ShadowConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    pub max_body_bytes: usize,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: usize,
    pub max_concurrent_requests: usize,
    #[serde(with = "duration::serde_str")]
    pub header_read_timeout: Duration,
    #[serde(with = "duration::serde_str")]
    pub body_read_timeout: Duration,
    #[serde(with = "duration::serde_str")]
    pub idle_timeout: Duration,
    #[serde(with = "duration::serde_str")]
    pub shutdown_grace: Duration,
    /// Threads serving connections, each with its own event loop and
    /// upstream pool; 0 = one per available core.
    pub workers: usize,
    /// Peers whose `X-Forwarded-For` names the client (see
    /// `server::client_addr`); empty: the socket peer is the client.
    pub trusted_proxies: Vec<loggate_model::Cidr>,
}

impl ServerConfig {
    /// `workers`, with 0 resolved to the number of available cores.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "0.0.0.0:8787".parse().expect("valid"),
            public_url: "http://localhost:8787".into(),
            max_body_bytes: 8 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            max_connections: 10_000,
            max_concurrent_requests: 4096,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            workers: 0,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Credentials {
    /// The caller's Authorization header goes to the data plane.
    Passthrough,
    /// The data plane gets loggate's own token; the caller's never leaves.
    Swap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassthroughCredentials {
    /// The caller's own Authorization header, whatever `credentials` says.
    Caller,
    /// loggate's own token: every authenticated caller borrows its key.
    Swap,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub api_url: String,
    pub app_url: String,
    pub credentials: Credentials,
    pub upstream_token_env: String,
    pub passthrough_prefixes: Vec<String>,
    /// Whose credentials passthrough routes carry: the caller's own even
    /// under `credentials = "swap"`, unless lending loggate's key there is
    /// asked for explicitly (loggate checks nothing on those routes).
    pub passthrough_credentials: PassthroughCredentials,
    #[serde(with = "duration::serde_str")]
    pub timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Idle connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            api_url: "https://api.braintrust.dev".into(),
            app_url: "https://www.braintrust.dev".into(),
            credentials: Credentials::Passthrough,
            upstream_token_env: "BRAINTRUST_UPSTREAM_API_KEY".into(),
            passthrough_prefixes: Vec::new(),
            passthrough_credentials: PassthroughCredentials::Caller,
            timeout: Duration::from_secs(30),
            ca_file: None,
            client_cert: None,
            client_key: None,
            pool_max_idle_per_host: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicySource {
    File,
    Postgres,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub source: PolicySource,
    pub file: PathBuf,
    pub postgres_url: Option<String>,
    pub migrate_on_start: bool,
    #[serde(with = "duration::serde_str")]
    pub timeout: Duration,
    /// Learn projects from successful register responses of the data plane.
    pub discovery: bool,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            source: PolicySource::File,
            file: "config/policy.json".into(),
            postgres_url: None,
            migrate_on_start: false,
            timeout: Duration::from_secs(2),
            discovery: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Feed {
    None,
    Redis,
    Nats,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InvalidationConfig {
    pub feed: Feed,
    pub url: String,
    pub channel: String,
    #[serde(with = "duration::serde_str")]
    pub max_staleness: Duration,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        InvalidationConfig {
            feed: Feed::None,
            url: "redis://127.0.0.1:6379".into(),
            channel: "loggate.policy".into(),
            max_staleness: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub max_decisions: u64,
    #[serde(with = "duration::serde_str")]
    pub ttl: Duration,
    #[serde(with = "duration::serde_str")]
    pub negative_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig { max_decisions: 100_000, ttl: Duration::from_secs(300), negative_ttl: Duration::from_secs(5) }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub per_token_rps: u32,
    pub per_token_burst: u32,
    pub per_org_rps: u32,
    pub per_org_burst: u32,
    pub auth_failures_per_minute: u32,
    /// The longest life a derived token may ask for.
    #[serde(with = "duration::serde_str")]
    pub max_derived_ttl: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            per_token_rps: 0,
            per_token_burst: 0,
            per_org_rps: 0,
            per_org_burst: 0,
            auth_failures_per_minute: 60,
            max_derived_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    pub token_env: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { listen: "127.0.0.1:9787".parse().expect("valid"), token_env: "LOGGATE_ADMIN_TOKEN".into() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accept `sk-` user API keys (mapped to users like service tokens).
    pub accept_api_keys: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// Where audit records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditSink {
    #[default]
    None,
    Stderr,
    File,
}

/// `[audit]`: one JSON record per request that reached authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub sink: AuditSink,
    /// `sink = "file"`: appended to, reopened on SIGHUP (logrotate).
    pub path: Option<PathBuf>,
    /// Records buffered between requests and the writer; when full, new
    /// records are dropped and counted, never waited for.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig { sink: AuditSink::None, path: None, queue: 65536 }
    }
}

/// `[shadow]`: organizations whose policy denials are logged and counted,
/// not enforced.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShadowConfig {
    /// Organization ids, or `"*"` for every organization.
    pub orgs: Vec<String>,
}

impl ShadowConfig {
    pub fn covers(&self, org_id: &str) -> bool {
        self.orgs.iter().any(|o| o == "*" || o == org_id)
    }
}

/// Why a configuration could not be loaded. Messages name the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Parse(String),
    #[error("environment override {var}: {message}")]
    Env { var: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Reads `path`, applies overrides from the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Config::from_toml(&text, std::env::vars(), path.parent())
    }

    /// Parses TOML text with the given `LOGGATE_*` overrides. Relative paths
    /// in the config are resolved against `base` (the config file's folder)
    /// when they do not exist relative to the working directory.
    pub fn from_toml(
        text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
        base: Option<&Path>,
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        env::apply_overrides(&mut table, vars)?;
        let mut config: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        if let Some(base) = base {
            config.resolve_paths(base);
        }
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && !p.exists() {
                let candidate = base.join(&*p);
                if candidate.exists() {
                    *p = candidate;
                }
            }
        };
        resolve(&mut self.policy.file);
        for p in [
            &mut self.server.tls_cert,
            &mut self.server.tls_key,
            &mut self.upstream.ca_file,
            &mut self.upstream.client_cert,
            &mut self.upstream.client_key,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| Err(ConfigError::Invalid { key, message: message.to_owned() });
        for (key, url) in [("upstream.api_url", &self.upstream.api_url), ("upstream.app_url", &self.upstream.app_url)] {
            match url.parse::<http::Uri>() {
                Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
                _ => return invalid(key, "must be an absolute http(s) URL"),
            }
        }
        if self.server.public_url.parse::<http::Uri>().map(|u| u.scheme().is_none()).unwrap_or(true) {
            return invalid("server.public_url", "must be an absolute URL");
        }
        if self.server.max_body_bytes == 0 {
            return invalid("server.max_body_bytes", "must be positive");
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid("server.tls_cert", "tls_cert and tls_key must be set together");
        }
        if self.upstream.client_cert.is_some() != self.upstream.client_key.is_some() {
            return invalid("upstream.client_cert", "client_cert and client_key must be set together");
        }
        if self.policy.source == PolicySource::Postgres && self.policy.postgres_url.is_none() {
            return invalid("policy.postgres_url", "required when policy.source = \"postgres\"");
        }
        if self.server.workers > 1024 {
            return invalid("server.workers", "at most 1024 worker threads (0 = one per core)");
        }
        if self.server.max_connections == 0 || self.server.max_concurrent_requests == 0 {
            return invalid("server.max_concurrent_requests", "connection and request caps must be positive");
        }
        if self.audit.sink == AuditSink::File && self.audit.path.is_none() {
            return invalid("audit.path", "required when audit.sink = \"file\"");
        }
        if self.audit.queue == 0 {
            return invalid("audit.queue", "must be positive");
        }
        if self.shadow.orgs.iter().any(|o| o.is_empty()) {
            return invalid("shadow.orgs", "an organization id must not be empty (\"*\" means every organization)");
        }
        for p in &self.upstream.passthrough_prefixes {
            if !p.starts_with('/') {
                return invalid("upstream.passthrough_prefixes", "each prefix must start with '/'");
            }
        }
        Ok(())
    }

    /// The upstream token for `credentials = "swap"` (or
    /// `passthrough_credentials = "swap"`), read from the env var
    /// `upstream.upstream_token_env` names. Fails naming the variable.
    pub fn upstream_token(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<Option<String>, ConfigError> {
        let setting = match (self.upstream.credentials, self.upstream.passthrough_credentials) {
            (Credentials::Swap, _) => "credentials",
            (_, PassthroughCredentials::Swap) => "passthrough_credentials",
            _ => return Ok(None),
        };
        match lookup(&self.upstream.upstream_token_env) {
            Some(v) if !v.trim().is_empty() => Ok(Some(v.trim().to_owned())),
            _ => Err(ConfigError::Invalid {
                key: "upstream.upstream_token_env",
                message: format!(
                    "{setting} = \"swap\" needs the upstream token in env var {}, which is unset or empty",
                    self.upstream.upstream_token_env
                ),
            }),
        }
    }

    /// Settings that are valid but risky; `check` and `serve` print each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.upstream.passthrough_credentials == PassthroughCredentials::Swap {
            warnings.push(format!(
                "warning: upstream.passthrough_credentials = \"swap\" lends loggate's own data-plane key to every \
                 authenticated caller on the passthrough prefixes ({}), where loggate checks no permission",
                if self.upstream.passthrough_prefixes.is_empty() {
                    "none configured".to_owned()
                } else {
                    self.upstream.passthrough_prefixes.join(", ")
                }
            ));
        }
        warnings
    }

    /// The admin token from the env var `admin.token_env` names, if set.
    pub fn admin_token(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        lookup(&self.admin.token_env).filter(|v| !v.trim().is_empty())
    }
}

/// Which upstream base a route goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// `upstream.api_url`: /logs3, /version, /v1/…
    Api,
    /// `upstream.app_url`: /api/… (login, register).
    App,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_toml(text, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())), None)
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "0.0.0.0:8787");
        assert_eq!(c.server.max_body_bytes, 8_388_608);
        assert_eq!(c.invalidation.max_staleness, Duration::from_secs(10));
        assert_eq!(c.cache.negative_ttl, Duration::from_secs(5));
        assert_eq!(c.upstream.credentials, Credentials::Passthrough);
        assert_eq!(c.limits.auth_failures_per_minute, 60);
    }

    #[test]
    fn workers_default_to_one_per_core_and_are_bounded() {
        let c = parse("", &[]).unwrap();
        assert_eq!(c.server.workers, 0);
        assert!(c.server.worker_threads() >= 1);
        let c = parse("[server]\nworkers = 3\n", &[]).unwrap();
        assert_eq!(c.server.worker_threads(), 3);
        let e = parse("", &[("LOGGATE_SERVER__WORKERS", "5000")]).unwrap_err();
        assert!(e.to_string().contains("server.workers"), "{e}");
    }

    #[test]
    fn env_overrides_win_and_are_typed() {
        let c = parse(
            "[server]\nlisten = \"0.0.0.0:1\"\n",
            &[
                ("LOGGATE_SERVER__LISTEN", "127.0.0.1:8787"),
                ("LOGGATE_SERVER__MAX_BODY_BYTES", "1024"),
                ("LOGGATE_CACHE__TTL", "1m"),
                ("LOGGATE_UPSTREAM__PASSTHROUGH_PREFIXES", "[\"/api/x\"]"),
                ("UNRELATED", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(c.server.max_body_bytes, 1024);
        assert_eq!(c.cache.ttl, Duration::from_secs(60));
        assert_eq!(c.upstream.passthrough_prefixes, vec!["/api/x".to_string()]);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = parse("[server]\nlisen = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("lisen"), "{e}");
        let e = parse("[upstream]\napi_url = \"ftp://x\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("upstream.api_url"), "{e}");
        let e = parse("", &[("LOGGATE_NOPE__X", "1")]).unwrap_err().to_string();
        assert!(e.contains("LOGGATE_NOPE__X"), "{e}");
        let e = parse("[cache]\nttl = \"soon\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("soon"), "{e}");
    }

    #[test]
    fn swap_without_token_names_the_variable() {
        let c = parse("[upstream]\ncredentials = \"swap\"\n", &[]).unwrap();
        let e = c.upstream_token(|_| None).unwrap_err().to_string();
        assert!(e.contains("BRAINTRUST_UPSTREAM_API_KEY"), "{e}");
        assert_eq!(c.upstream_token(|_| Some("k".into())).unwrap().as_deref(), Some("k"));
    }

    #[test]
    fn passthrough_routes_keep_the_callers_credentials_unless_lending_is_asked_for() {
        let c = parse("[upstream]\ncredentials = \"swap\"\n", &[]).unwrap();
        assert_eq!(c.upstream.passthrough_credentials, PassthroughCredentials::Caller);
        assert!(c.warnings().is_empty());
        let c =
            parse("[upstream]\npassthrough_credentials = \"swap\"\npassthrough_prefixes = [\"/x/\"]\n", &[]).unwrap();
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("warning") && warnings[0].contains("passthrough_credentials"), "{warnings:?}");
        // Lending a key needs the key, even with credentials = "passthrough".
        let e = c.upstream_token(|_| None).unwrap_err().to_string();
        assert!(e.contains("passthrough_credentials") && e.contains("BRAINTRUST_UPSTREAM_API_KEY"), "{e}");
        let e = parse("[upstream]\npassthrough_credentials = \"lend\"\n", &[]).unwrap_err().to_string();
        assert!(e.contains("lend"), "{e}");
    }
}
