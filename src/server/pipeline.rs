//! The request pipeline of contract: Request flow, phase by phase:
//! route -> size limit -> authenticate -> inspect body -> authorize every
//! target -> rate limit -> forward -> stream back. Every phase returns a
//! `GatewayError`; `error.rs` alone turns those into responses.

use super::body;
use super::query;
use super::register;
use super::rewrite;
use super::routes::{self, Route};
use crate::audit::{Audit, AuditTarget};
use crate::cache::{DecisionCache, DecisionKey, Lookup, WorkerCache};
use crate::config::Config;
use crate::error::GatewayError;
use crate::forward::{self, Body, Forwarder};
use crate::limits::Limits;
use crate::metrics::{Metrics, RequestMetrics};
use crate::policy::{PolicyStore, Store};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH};
use http::uri::PathAndQuery;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use loggate_authz::{Decision, DenyReason, Principal};
use loggate_inspect::{self as inspect, Logs3, Target, Targets};
use loggate_model::types::{ObjectRef, ObjectType, Permission};
use loggate_model::{Identity, TokenDigest, TokenKind, parse_authorization};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Upstream answers loggate reads whole (login, version, register) are small.
const MAX_REWRITTEN_RESPONSE: usize = 4 * 1024 * 1024;

pub struct Gateway {
    pub config: Arc<Config>,
    pub store: Arc<Store>,
    pub cache: Arc<DecisionCache>,
    /// This worker's front for `cache` (what its requests look up).
    pub worker_cache: WorkerCache,
    pub forwarder: Forwarder,
    pub metrics: Arc<Metrics>,
    /// This worker's copy of the per-request series.
    pub request_metrics: RequestMetrics,
    pub limits: Arc<Limits>,
    pub audit: Audit,
}

/// What one request did, for its log line and audit record.
#[derive(Default)]
pub struct RequestFacts {
    /// Whether the request got as far as authentication (it is audited).
    pub reached_auth: bool,
    /// The authenticated caller (token id and name, org), once known.
    pub identity: Option<Arc<Identity>>,
    pub rows: usize,
    pub decision: &'static str,
    /// The decision on each target, when the audit trail is on.
    pub targets: Vec<AuditTarget>,
    /// The error code of a policy denial forwarded anyway (shadow mode).
    pub shadow_reason: Option<&'static str>,
}

/// An authenticated caller.
pub struct Caller {
    pub digest: TokenDigest,
    pub identity: Arc<Identity>,
}

impl Gateway {
    /// This gateway for one worker thread: everything shared but the
    /// upstream connection pool (see `Forwarder::with_own_pool`).
    pub fn for_worker(&self) -> Gateway {
        Gateway {
            config: self.config.clone(),
            store: self.store.clone(),
            cache: self.cache.clone(),
            worker_cache: WorkerCache::new(self.cache.clone()),
            forwarder: self.forwarder.with_own_pool(),
            metrics: self.metrics.clone(),
            request_metrics: self.metrics.worker_copy(),
            limits: self.limits.clone(),
            audit: self.audit.clone(),
        }
    }

    /// Runs the pipeline for one request. `route` was matched by the caller.
    pub async fn handle<B>(
        &self,
        route: &Route,
        request: Request<B>,
        client: IpAddr,
        facts: &mut RequestFacts,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parts, incoming) = request.into_parts();
        let server = &self.config.server;
        if route.reads_json_body() {
            body::check_json_content_type(&parts.headers)?;
        }
        // A declared oversize body is refused before authentication reads
        // anything else (contract: Request flow order: size limit, then authenticate).
        body::check_declared_length(&parts.headers, server.max_body_bytes)?;
        #[cfg(feature = "bench-authz-off")]
        if cfg!(feature = "bench-authz-off") {
            let _ = client;
            return self.forward_unchecked(route, parts, incoming).await;
        }
        facts.reached_auth = true;
        let caller = self.authenticate(&parts.headers, client).await?;
        facts.identity = Some(caller.identity.clone());
        // Bound to addresses: checked on every request (the address is the
        // request's, not the cached identity's).
        if !caller.identity.admits(client) {
            return Err(GatewayError::ClientAddressDenied(client));
        }

        let raw = body::read(incoming, server.max_body_bytes, server.body_read_timeout).await?;
        if *route == Route::DeriveToken {
            self.rate_limit(&caller)?;
            return super::derive::derive(self, &caller, &raw).await;
        }
        // The lookup routes decide inside inspection; their denials are
        // policy denials like any other (and so can be shadowed).
        let targets = match self.inspect(route, &parts.headers, &parts.method, parts.uri.query(), &raw, &caller).await {
            Ok(targets) => targets,
            Err(e) if self.shadow(&caller, &e, facts) => Targets::default(),
            Err(e) => return Err(e),
        };
        facts.rows = targets.rows;
        facts.decision = "allow";
        let spans = if *route == Route::OtelTraces { targets.rows } else { 0 };
        if let Err(e) = self.authorize(&caller, &targets.targets, facts).await
            && !self.shadow(&caller, &e, facts)
        {
            self.request_metrics.rows_denied.inc_by(targets.rows as u64);
            self.count_otel_spans(false, spans);
            facts.decision = "deny";
            return Err(e);
        }
        self.rate_limit(&caller)?;

        let forwarded = self
            .forwarder
            .send(route.upstream(), route.credit(), parts.method, request_path(&parts.uri), parts.headers, raw)
            .await?;
        self.request_metrics.upstream_seconds.observe(forwarded.upstream_time.as_secs_f64());
        self.request_metrics.rows_forwarded.inc_by(targets.rows as u64);
        self.count_otel_spans(true, spans);
        self.respond(route, forwarded.response, &caller, &targets).await
    }

    /// Benchmark-only (`--features bench-authz-off`): the pipeline without
    /// authenticate, inspect, authorize and rate limit, to measure what
    /// those phases cost. Routing, body read and forwarding are unchanged.
    #[cfg(feature = "bench-authz-off")]
    async fn forward_unchecked<B>(
        &self,
        route: &Route,
        parts: http::request::Parts,
        incoming: B,
    ) -> Result<Response<Body>, GatewayError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let server = &self.config.server;
        let raw = body::read(incoming, server.max_body_bytes, server.body_read_timeout).await?;
        let forwarded = self
            .forwarder
            .send(route.upstream(), route.credit(), parts.method, request_path(&parts.uri), parts.headers, raw)
            .await?;
        self.request_metrics.upstream_seconds.observe(forwarded.upstream_time.as_secs_f64());
        let (parts, body) = forwarded.response.into_parts();
        Ok(Response::from_parts(parts, forward::stream_body(body, self.config.upstream.timeout)))
    }

    /// Phase: authenticate. 401 for anything but a known, unexpired token;
    /// 429 for an address that keeps failing; 503 if the store cannot say.
    async fn authenticate(&self, headers: &HeaderMap, client: IpAddr) -> Result<Caller, GatewayError> {
        self.limits.auth_blocked(client).map_err(|l| self.rate_limited(l.retry_after))?;
        match self.identify(headers).await {
            Ok(caller) => Ok(caller),
            Err(e @ GatewayError::Unauthenticated(_)) => {
                self.limits.auth_failed(client).map_err(|l| self.rate_limited(l.retry_after))?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn identify(&self, headers: &HeaderMap) -> Result<Caller, GatewayError> {
        let values = headers.get_all(AUTHORIZATION).iter().map(|v| v.as_bytes());
        let (token, kind) =
            parse_authorization(values).map_err(|e| GatewayError::Unauthenticated(bearer_message(e)))?;
        if kind == TokenKind::ApiKey && !self.config.auth.accept_api_keys {
            return Err(GatewayError::Unauthenticated("sk- API keys are not accepted; use a bt-st- service token"));
        }
        let digest = TokenDigest::of(token);
        let (identity, lookup) = self
            .worker_cache
            .identity(&digest, || self.store.identity(&digest))
            .await
            .map_err(|_| GatewayError::PolicyUnavailable)?;
        self.count_lookup(lookup);
        let identity = identity.ok_or(GatewayError::Unauthenticated("unknown token"))?;
        if identity.expired(crate::clock::now_ms) {
            return Err(GatewayError::Unauthenticated("token expired"));
        }
        Ok(Caller { digest, identity })
    }

    /// Phase: inspect. Every object the request touches, with the permission
    /// each needs. Bodies are decoded (gzip) only for inspection.
    async fn inspect(
        &self,
        route: &Route,
        headers: &HeaderMap,
        method: &Method,
        query: Option<&str>,
        raw: &Bytes,
        caller: &Caller,
    ) -> Result<Targets, GatewayError> {
        let encoding = headers.get(CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("invalid"));
        let decoded = || inspect::decode(raw, encoding, self.config.server.max_body_bytes).map_err(GatewayError::from);
        let single = |object: &ObjectRef, permission| Targets {
            targets: vec![Target { object: object.clone(), permission }],
            rows: 0,
        };
        // The register routes' futures (store lookups) are boxed: this
        // function's future is part of every request's, and /logs3 should
        // not carry their size.
        Ok(match route {
            Route::Logs3 => match inspect::logs3(&decoded()?)? {
                Logs3::Rows(targets) => targets,
                Logs3::OverflowRef { .. } => {
                    return Err(GatewayError::Forbidden {
                        message: "overflow references are refused: loggate did not see and authorize those rows; send them inline".into(),
                    });
                }
            },
            Route::Logs3Overflow => {
                return Err(GatewayError::Forbidden {
                    message: "loggate does not mediate overflow uploads; send rows inline in /logs3".into(),
                });
            }
            Route::Insert(object) => inspect::events(&decoded()?, object)?,
            Route::Feedback(object) => inspect::feedback(&decoded()?, object)?,
            Route::CrossObjectInsert => inspect::cross_object_insert(&decoded()?)?,
            Route::Fetch(object) => {
                if *method == Method::POST && !raw.is_empty() {
                    inspect::validate_json(&decoded()?)?;
                }
                single(object, Permission::Read)
            }
            // DeriveToken is answered by loggate before inspection.
            Route::Login | Route::Version | Route::Passthrough(_) | Route::DeriveToken => Targets::default(),
            Route::OtelTraces => Box::pin(super::otel::targets(self, caller, headers, raw)).await?,
            Route::Attachment => Box::pin(super::attachment::upload(self, caller, &decoded()?)).await?,
            Route::AttachmentStatus => Box::pin(super::attachment::status(self, caller, &decoded()?)).await?,
            Route::AttachmentGet => Box::pin(super::attachment::download(self, caller, query)).await?,
            Route::ProjectCreate | Route::ProjectRegister => {
                Box::pin(register::project(self, caller, route, &decoded()?)).await?
            }
            Route::ProjectGet(id) => Box::pin(register::any_on_project(self, caller, id)).await?,
            Route::ProjectLookup => {
                let id = query::single(query, "id")?;
                Box::pin(register::any_on_project(self, caller, &id)).await?
            }
            Route::ExperimentRegister | Route::DatasetRegister => {
                Box::pin(register::object(self, caller, route, &decoded()?)).await?
            }
        })
    }

    /// Phase: authorize. All targets must pass; the first failure names the
    /// missing permission and the object.
    /// With the audit trail on, every target is decided and recorded;
    /// otherwise the first denial ends the phase.
    pub(super) async fn authorize(
        &self,
        caller: &Caller,
        targets: &[Target],
        facts: &mut RequestFacts,
    ) -> Result<(), GatewayError> {
        let started = Instant::now();
        let audited = self.audit.enabled();
        let mut result = Ok(());
        for target in targets {
            let decision = self.decide(caller, &target.object, target.permission).await?;
            if audited {
                facts.targets.push(AuditTarget {
                    object_type: target.object.object_type,
                    object_id: target.object.id.clone(),
                    permission: target.permission,
                    decision: if decision.is_allow() { "allow" } else { "deny" },
                });
            }
            if let Decision::Deny(reason) = decision {
                if result.is_ok() {
                    result = Err(self.denial(caller, target, reason));
                }
                if !audited {
                    break;
                }
            }
        }
        self.request_metrics.decision_seconds.observe(started.elapsed().as_secs_f64());
        result
    }

    /// One cached decision.
    pub(super) async fn decide(
        &self,
        caller: &Caller,
        object: &ObjectRef,
        permission: Permission,
    ) -> Result<Decision, GatewayError> {
        let key = DecisionKey::new(caller.digest, object, permission);
        let (decision, lookup) = self
            .worker_cache
            .decision(key, &caller.identity, object, || async move {
                // Only a miss needs the principal: a hit copies no strings.
                self.store.decide(&Principal::from(&*caller.identity), object, permission).await
            })
            .await
            .map_err(|_| GatewayError::PolicyUnavailable)?;
        self.count_lookup(lookup);
        Ok(decision)
    }

    /// The decision on an object of `object_type` that does not exist yet
    /// in the caller's organization (organization-level grants only),
    /// cached like any decision.
    pub(super) async fn decide_new(
        &self,
        caller: &Caller,
        object_type: ObjectType,
        permission: Permission,
    ) -> Result<Decision, GatewayError> {
        let org_id = &caller.identity.org_id;
        let key = DecisionKey::for_new(caller.digest, org_id, object_type, permission);
        // Filed under the organization: only organization-wide changes
        // (and ACLs, groups, roles, the token) can alter it.
        let org = ObjectRef::new(ObjectType::Organization, org_id.clone());
        let (decision, lookup) = self
            .worker_cache
            .decision(key, &caller.identity, &org, || async move {
                let principal = Principal::from(&*caller.identity);
                self.store.decide_new(&principal, org_id, object_type, permission).await
            })
            .await
            .map_err(|_| GatewayError::PolicyUnavailable)?;
        self.count_lookup(lookup);
        Ok(decision)
    }

    /// The id of the project named `name` in the caller's organization, if
    /// there is one, cached until a project or the organization changes.
    pub(super) async fn project_by_name(&self, caller: &Caller, name: &str) -> Result<Option<Arc<str>>, GatewayError> {
        let org_id = &caller.identity.org_id;
        let (id, lookup) = self
            .cache
            .project_by_name(org_id, name, || self.store.project_by_name(org_id, name))
            .await
            .map_err(|_| GatewayError::PolicyUnavailable)?;
        self.count_lookup(lookup);
        Ok(id)
    }

    pub(super) fn denial(&self, caller: &Caller, target: &Target, reason: DenyReason) -> GatewayError {
        match reason {
            DenyReason::UnknownObject => {
                GatewayError::UnknownObject { permission: target.permission, object: target.object.clone() }
            }
            DenyReason::MissingPermission | DenyReason::OtherOrganization => GatewayError::PermissionDenied {
                token: caller.identity.token_name.clone(),
                permission: target.permission,
                object: target.object.clone(),
            },
            DenyReason::ScopeDenied => GatewayError::ScopeDenied {
                token: caller.identity.token_name.clone(),
                permission: target.permission,
                object: target.object.clone(),
            },
        }
    }

    /// Shadow mode: a policy denial for a shadowed organization is counted
    /// and recorded, and the request goes on. Authentication, bad input,
    /// rate limits and everything else are always enforced.
    fn shadow(&self, caller: &Caller, e: &GatewayError, facts: &mut RequestFacts) -> bool {
        let (GatewayError::PermissionDenied { object, .. }
        | GatewayError::ScopeDenied { object, .. }
        | GatewayError::UnknownObject { object, .. }) = e
        else {
            return false;
        };
        let org = caller.identity.org_id.as_str();
        if !self.config.shadow.covers(org) {
            return false;
        }
        self.metrics.shadow_denials.with_label_values(&[e.code(), object.object_type.as_str(), org]).inc();
        facts.decision = "shadow_allow";
        facts.shadow_reason.get_or_insert(e.code());
        true
    }

    /// Phase: rate limit, per token and per organization.
    fn rate_limit(&self, caller: &Caller) -> Result<(), GatewayError> {
        if !self.limits.limits_requests() {
            return Ok(());
        }
        let token: Arc<str> = caller.identity.token_id.as_str().into();
        let org: Arc<str> = caller.identity.org_id.as_str().into();
        self.limits.check_request(&token, &org).map_err(|l| self.rate_limited(l.retry_after))
    }

    fn rate_limited(&self, retry_after: std::time::Duration) -> GatewayError {
        self.metrics.rate_limited.inc();
        GatewayError::RateLimited { retry_after }
    }

    /// Phase: respond. Streams the data plane's answer back, except the few
    /// small answers loggate rewrites or learns from.
    async fn respond(
        &self,
        route: &Route,
        response: Response<forward::UpstreamBody>,
        caller: &Caller,
        targets: &Targets,
    ) -> Result<Response<Body>, GatewayError> {
        let rewrites = matches!(route, Route::Login | Route::Version);
        let learns = matches!(
            route,
            Route::ProjectCreate | Route::ProjectRegister | Route::ExperimentRegister | Route::DatasetRegister
        );
        if !(response.status().is_success() && (rewrites || learns)) {
            let (parts, body) = response.into_parts();
            return Ok(Response::from_parts(parts, forward::stream_body(body, self.config.upstream.timeout)));
        }
        let (mut parts, body) = response.into_parts();
        let bytes = self.forwarder.read_body(body, MAX_REWRITTEN_RESPONSE).await?;
        if learns && self.config.policy.discovery {
            Box::pin(register::learn_from_response(self, caller, route, targets, &bytes)).await;
        }
        let rewritten = match route {
            Route::Login => rewrite::login_response(&bytes, &self.config.server.public_url),
            Route::Version => rewrite::version_response(&bytes),
            _ => None,
        };
        let out = rewritten.map(Bytes::from).unwrap_or(bytes);
        parts.headers.remove(CONTENT_LENGTH);
        parts.headers.remove(CONTENT_ENCODING);
        Ok(Response::from_parts(parts, forward::full(out)))
    }

    /// `loggate_otel_spans_total`; its spans are also the request's rows.
    pub(super) fn count_otel_spans(&self, forwarded: bool, spans: usize) {
        if spans == 0 {
            return;
        }
        let outcome = if forwarded {
            &self.request_metrics.otel_spans_forwarded
        } else {
            &self.request_metrics.otel_spans_denied
        };
        outcome.inc_by(spans as u64);
    }

    fn count_lookup(&self, lookup: Lookup) {
        match lookup {
            Lookup::Hit => self.request_metrics.decision_hits.inc(),
            Lookup::Miss => self.request_metrics.decision_misses.inc(),
        }
    }

    /// Answers a request that matched no route or failed routing.
    pub fn route(&self, method: &Method, path: &str) -> Result<Route, GatewayError> {
        routes::match_route(method, path, &self.config.upstream.passthrough_prefixes)
    }

    /// Status for logging and metrics, error or not.
    pub fn status_of(result: &Result<Response<Body>, GatewayError>) -> StatusCode {
        match result {
            Ok(r) => r.status(),
            Err(e) => e.status(),
        }
    }
}

/// The path and query a request is forwarded with (origin-form requests,
/// the only ones routed, always have one).
fn request_path(uri: &http::Uri) -> &PathAndQuery {
    static ROOT: PathAndQuery = PathAndQuery::from_static("/");
    uri.path_and_query().unwrap_or(&ROOT)
}

fn bearer_message(e: loggate_model::BearerError) -> &'static str {
    use loggate_model::BearerError::*;
    match e {
        Missing => "missing Authorization header",
        Repeated => "more than one Authorization header",
        NotBearer => "Authorization header is not 'Bearer <token>'",
        WrongPrefix => "token is not a bt-st- service token",
        Malformed => "token is malformed",
    }
}

impl From<inspect::InspectError> for GatewayError {
    fn from(e: inspect::InspectError) -> Self {
        match e {
            inspect::InspectError::BadRequest { field, message } => GatewayError::BadRequest { field, message },
            inspect::InspectError::TooLarge { limit } => GatewayError::PayloadTooLarge { limit },
            inspect::InspectError::UnsupportedEncoding(enc) => GatewayError::UnsupportedMediaType(format!(
                "unsupported Content-Encoding '{}'",
                enc.chars().take(40).collect::<String>()
            )),
        }
    }
}
