//! Route matching (contract: Routes): from method and path to what the gateway
//! must check. Unknown paths are 404 unless a passthrough prefix covers them.

use crate::config::Upstream;
use crate::error::GatewayError;
use crate::forward::Credit;
use http::Method;
use loggate_model::types::{ObjectRef, ObjectType};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /logs3`: per-row targets.
    Logs3,
    /// `POST /logs3/overflow`: loggate does not mediate overflow uploads.
    Logs3Overflow,
    /// `POST /v1/{project_logs|experiment|dataset}/{id}/insert`.
    Insert(ObjectRef),
    /// `POST /v1/{…}/{id}/feedback`.
    Feedback(ObjectRef),
    /// `GET|POST /v1/{…}/{id}/fetch`: `read`.
    Fetch(ObjectRef),
    /// `POST /v1/insert`: every object named in the body.
    CrossObjectInsert,
    /// `POST /api/apikey/login`.
    Login,
    /// `GET /version`.
    Version,
    /// `POST /v1/project` `{"name","org_name"}`.
    ProjectCreate,
    /// `POST /api/project/register` `{"project_name","org_id"}`.
    ProjectRegister,
    /// `GET /v1/project/{id}`.
    ProjectGet(String),
    /// `GET /api/project?id=…`.
    ProjectLookup,
    /// `POST /api/experiment/register`.
    ExperimentRegister,
    /// `POST /api/dataset/register`.
    DatasetRegister,
    /// `POST /v1/service_token/derive`: answered by loggate itself.
    DeriveToken,
    /// `POST /otel/v1/traces`: OTLP/HTTP, every span's target.
    OtelTraces,
    /// `POST /attachment`: a signed upload URL for a blob of the org.
    Attachment,
    /// `POST /attachment/status`: the upload's outcome.
    AttachmentStatus,
    /// `GET /attachment`: a signed download URL.
    AttachmentGet,
    /// A configured passthrough prefix: authenticated, forwarded as is.
    Passthrough(Upstream),
}

impl Route {
    /// A closed label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Logs3 => "logs3",
            Route::Logs3Overflow => "logs3_overflow",
            Route::Insert(o) => match o.object_type {
                ObjectType::Experiment => "experiment_insert",
                ObjectType::Dataset => "dataset_insert",
                _ => "project_logs_insert",
            },
            Route::Feedback(_) => "feedback",
            Route::Fetch(_) => "fetch",
            Route::CrossObjectInsert => "insert",
            Route::Login => "login",
            Route::Version => "version",
            Route::ProjectCreate => "project_create",
            Route::ProjectRegister => "project_register",
            Route::ProjectGet(_) | Route::ProjectLookup => "project_get",
            Route::ExperimentRegister => "experiment_register",
            Route::DatasetRegister => "dataset_register",
            Route::DeriveToken => "service_token_derive",
            Route::OtelTraces => "otel_traces",
            Route::Attachment => "attachment",
            Route::AttachmentStatus => "attachment_status",
            Route::AttachmentGet => "attachment_get",
            Route::Passthrough(_) => "passthrough",
        }
    }

    /// Which data plane endpoint serves the route.
    pub fn upstream(&self) -> Upstream {
        match self {
            Route::Login
            | Route::ProjectRegister
            | Route::ProjectLookup
            | Route::ExperimentRegister
            | Route::DatasetRegister => Upstream::App,
            Route::Passthrough(u) => *u,
            _ => Upstream::Api,
        }
    }

    /// Whose credentials the data plane gets (see `upstream.passthrough_credentials`).
    pub fn credit(&self) -> Credit {
        match self {
            Route::Passthrough(_) => Credit::Passthrough,
            _ => Credit::Checked,
        }
    }

    /// Whether the request body is JSON the gateway reads (415 rules apply;
    /// OTLP bodies have rules of their own).
    pub fn reads_json_body(&self) -> bool {
        !matches!(
            self,
            Route::Login
                | Route::Version
                | Route::ProjectGet(_)
                | Route::ProjectLookup
                | Route::Passthrough(_)
                | Route::Fetch(_)
                | Route::OtelTraces
                | Route::AttachmentGet
        )
    }
}

/// Label for requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

pub fn match_route(method: &Method, path: &str, passthrough_prefixes: &[String]) -> Result<Route, GatewayError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let post = |route: Route| allow(method, &[Method::POST], route);
    let get = |route: Route| allow(method, &[Method::GET], route);
    let found = match segments.as_slice() {
        ["logs3"] => Some(post(Route::Logs3)),
        ["logs3", "overflow"] => Some(post(Route::Logs3Overflow)),
        ["version"] => Some(get(Route::Version)),
        ["api", "apikey", "login"] => Some(post(Route::Login)),
        ["api", "project", "register"] => Some(post(Route::ProjectRegister)),
        ["api", "project"] => Some(get(Route::ProjectLookup)),
        ["api", "experiment", "register"] => Some(post(Route::ExperimentRegister)),
        ["api", "dataset", "register"] => Some(post(Route::DatasetRegister)),
        ["v1", "insert"] => Some(post(Route::CrossObjectInsert)),
        ["v1", "project"] => Some(post(Route::ProjectCreate)),
        ["v1", "service_token", "derive"] => Some(post(Route::DeriveToken)),
        ["otel", "v1", "traces"] => Some(post(Route::OtelTraces)),
        ["attachment"] => Some(allow(method, &[Method::GET, Method::POST], attachment(method))),
        ["attachment", "status"] => Some(post(Route::AttachmentStatus)),
        ["v1", "project", id] if !id.is_empty() => Some(get(Route::ProjectGet((*id).to_owned()))),
        ["v1", kind, id, action] if !id.is_empty() => object_type(kind).and_then(|t| {
            let object = ObjectRef::new(t, *id);
            match *action {
                "insert" => Some(post(Route::Insert(object))),
                "feedback" => Some(post(Route::Feedback(object))),
                "fetch" => Some(allow(method, &[Method::GET, Method::POST], Route::Fetch(object))),
                _ => None,
            }
        }),
        _ => None,
    };
    if let Some(route) = found {
        return route;
    }
    if let Some(prefix) = passthrough_prefixes.iter().find(|p| path.starts_with(p.as_str())) {
        let upstream = if prefix.starts_with("/api/") { Upstream::App } else { Upstream::Api };
        return Ok(Route::Passthrough(upstream));
    }
    Err(GatewayError::RouteNotAllowed { method: method.to_string(), path: sanitize(path) })
}

fn attachment(method: &Method) -> Route {
    if *method == Method::GET { Route::AttachmentGet } else { Route::Attachment }
}

fn object_type(segment: &str) -> Option<ObjectType> {
    match segment {
        "project_logs" => Some(ObjectType::ProjectLog),
        "experiment" => Some(ObjectType::Experiment),
        "dataset" => Some(ObjectType::Dataset),
        _ => None,
    }
}

fn allow(method: &Method, allowed: &[Method], route: Route) -> Result<Route, GatewayError> {
    if allowed.contains(method) { Ok(route) } else { Err(GatewayError::MethodNotAllowed(method.to_string())) }
}

/// Paths echo back in errors: keep them short and printable.
fn sanitize(path: &str) -> String {
    path.chars().take(200).filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(method: Method, path: &str) -> Result<Route, GatewayError> {
        match_route(&method, path, &["/api/extra/".to_string()])
    }

    #[test]
    fn every_contract_route_matches() {
        assert_eq!(m(Method::POST, "/logs3").unwrap(), Route::Logs3);
        assert_eq!(m(Method::POST, "/logs3/overflow").unwrap(), Route::Logs3Overflow);
        assert_eq!(
            m(Method::POST, "/v1/project_logs/p1/insert").unwrap(),
            Route::Insert(ObjectRef::new(ObjectType::ProjectLog, "p1"))
        );
        assert_eq!(
            m(Method::POST, "/v1/experiment/e1/feedback").unwrap(),
            Route::Feedback(ObjectRef::new(ObjectType::Experiment, "e1"))
        );
        assert_eq!(
            m(Method::GET, "/v1/dataset/d1/fetch").unwrap(),
            Route::Fetch(ObjectRef::new(ObjectType::Dataset, "d1"))
        );
        assert_eq!(
            m(Method::POST, "/v1/dataset/d1/fetch").unwrap(),
            Route::Fetch(ObjectRef::new(ObjectType::Dataset, "d1"))
        );
        assert_eq!(m(Method::POST, "/v1/insert").unwrap(), Route::CrossObjectInsert);
        assert_eq!(m(Method::POST, "/api/apikey/login").unwrap(), Route::Login);
        assert_eq!(m(Method::GET, "/version").unwrap(), Route::Version);
        assert_eq!(m(Method::POST, "/v1/project").unwrap(), Route::ProjectCreate);
        assert_eq!(m(Method::POST, "/api/project/register").unwrap(), Route::ProjectRegister);
        assert_eq!(m(Method::GET, "/v1/project/p1").unwrap(), Route::ProjectGet("p1".into()));
        assert_eq!(m(Method::GET, "/api/project").unwrap(), Route::ProjectLookup);
        assert_eq!(m(Method::POST, "/api/experiment/register").unwrap(), Route::ExperimentRegister);
        assert_eq!(m(Method::POST, "/api/dataset/register").unwrap(), Route::DatasetRegister);
        assert_eq!(m(Method::GET, "/api/extra/thing").unwrap(), Route::Passthrough(Upstream::App));
        assert_eq!(m(Method::POST, "/v1/service_token/derive").unwrap(), Route::DeriveToken);
        assert_eq!(m(Method::POST, "/otel/v1/traces").unwrap(), Route::OtelTraces);
        assert_eq!(m(Method::POST, "/attachment").unwrap(), Route::Attachment);
        assert_eq!(m(Method::GET, "/attachment").unwrap(), Route::AttachmentGet);
        assert_eq!(m(Method::POST, "/attachment/status").unwrap(), Route::AttachmentStatus);
        assert_eq!(m(Method::PUT, "/attachment").unwrap_err().code(), "method_not_allowed");
        assert_eq!(m(Method::GET, "/otel/v1/traces").unwrap_err().code(), "method_not_allowed");
        assert_eq!(m(Method::POST, "/otel/v1/metrics").unwrap_err().code(), "route_not_allowed");
    }

    #[test]
    fn only_passthrough_routes_may_keep_the_callers_credentials() {
        assert_eq!(m(Method::GET, "/api/extra/thing").unwrap().credit(), Credit::Passthrough);
        assert_eq!(m(Method::POST, "/otel/v1/traces").unwrap().credit(), Credit::Checked);
        assert_eq!(m(Method::POST, "/logs3").unwrap().credit(), Credit::Checked);
    }

    #[test]
    fn unknown_routes_and_methods_are_refused() {
        assert_eq!(m(Method::GET, "/v1/acl").unwrap_err().code(), "route_not_allowed");
        assert_eq!(m(Method::POST, "/v1/prompt/x/insert").unwrap_err().code(), "route_not_allowed");
        assert_eq!(m(Method::POST, "/v1/project_logs//insert").unwrap_err().code(), "route_not_allowed");
        assert_eq!(m(Method::GET, "/logs3").unwrap_err().code(), "method_not_allowed");
        assert_eq!(m(Method::DELETE, "/v1/project/p1").unwrap_err().code(), "method_not_allowed");
        assert_eq!(m(Method::GET, "/healthz").unwrap_err().code(), "route_not_allowed");
    }
}
