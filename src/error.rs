//! Every way a request can fail, one variant per condition, and the one
//! place (`GatewayError::to_response`) that maps them to a status and the
//! JSON body of contract: Errors. Handlers never build error responses by hand.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use loggate_model::types::{ObjectRef, Permission};
use serde_json::json;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("token '{token}' lacks {permission} on {} {}", object.object_type, object.id)]
    PermissionDenied { token: String, permission: Permission, object: ObjectRef },
    #[error("token '{token}' is scoped: its scope does not allow {permission} on {} {}", object.object_type, object.id)]
    ScopeDenied { token: String, permission: Permission, object: ObjectRef },
    #[error("this token may not be used from {0}: its client_cidrs do not include that address")]
    ClientAddressDenied(std::net::IpAddr),
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{} {} is not known to the policy", object.object_type, object.id)]
    UnknownObject { permission: Permission, object: ObjectRef },
    #[error("route {method} {path} is not allowed")]
    RouteNotAllowed { method: String, path: String },
    #[error(
        "deriving tokens needs a policy store loggate can write (policy.source = \"postgres\"); with the file store, add scoped tokens to the policy file (loggate token new --scope …)"
    )]
    DerivationUnavailable,
    #[error("{message}")]
    BadRequest { field: Option<String>, message: String },
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("rate limit exceeded; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("the data plane could not be reached: {0}")]
    UpstreamUnavailable(String),
    #[error("the data plane did not answer within {0:?}")]
    UpstreamTimeout(Duration),
    #[error("the policy store cannot decide right now; failing closed")]
    PolicyUnavailable,
    #[error("{0}")]
    NotFound(String),
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    #[error("the gateway is at capacity; retry later")]
    Overloaded,
    #[error("request body was not received in time")]
    BodyTimeout,
}

impl From<crate::policy::StoreError> for GatewayError {
    /// The store cannot answer: fail closed.
    fn from(_: crate::policy::StoreError) -> Self {
        GatewayError::PolicyUnavailable
    }
}

impl From<tokio_postgres::Error> for GatewayError {
    /// Admin API writes: a constraint or data error the checks before the
    /// write did not catch (e.g. a concurrent delete of a referenced row) is
    /// the caller's input; anything else means the store is unavailable.
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code().map(|c| c.code()) {
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_default();
                GatewayError::bad_request(None, format!("rejected by the policy store: {detail}"))
            }
            _ => GatewayError::PolicyUnavailable,
        }
    }
}

impl GatewayError {
    pub fn bad_request(field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        GatewayError::BadRequest { field: field.into(), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            PermissionDenied { .. }
            | ScopeDenied { .. }
            | ClientAddressDenied(_)
            | Forbidden { .. }
            | UnknownObject { .. } => StatusCode::FORBIDDEN,
            RouteNotAllowed { .. } | DerivationUnavailable | NotFound(_) => StatusCode::NOT_FOUND,
            BadRequest { .. } => StatusCode::BAD_REQUEST,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            PolicyUnavailable | Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The `error.code` of §5; also the `reason` label of denial metrics.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            Unauthenticated(_) => "unauthenticated",
            PermissionDenied { .. } | Forbidden { .. } => "permission_denied",
            ScopeDenied { .. } => "scope_denied",
            ClientAddressDenied(_) => "client_address_denied",
            UnknownObject { .. } => "unknown_object",
            RouteNotAllowed { .. } | DerivationUnavailable => "route_not_allowed",
            BadRequest { .. } => "bad_request",
            PayloadTooLarge { .. } => "payload_too_large",
            UnsupportedMediaType(_) => "unsupported_media_type",
            RateLimited { .. } => "rate_limited",
            UpstreamUnavailable(_) => "upstream_unavailable",
            UpstreamTimeout(_) => "upstream_timeout",
            PolicyUnavailable => "policy_unavailable",
            NotFound(_) => "not_found",
            MethodNotAllowed(_) => "method_not_allowed",
            Overloaded => "overloaded",
            BodyTimeout => "request_timeout",
        }
    }

    /// The object a denial is about, if any (for the body and metrics).
    pub fn object(&self) -> Option<(&ObjectRef, Permission)> {
        match self {
            GatewayError::PermissionDenied { object, permission, .. }
            | GatewayError::ScopeDenied { object, permission, .. }
            | GatewayError::UnknownObject { object, permission } => Some((object, *permission)),
            _ => None,
        }
    }

    /// The JSON error body of §5.
    pub fn to_json(&self, request_id: &str) -> serde_json::Value {
        let mut error = json!({
            "code": self.code(),
            "message": self.to_string(),
            "request_id": request_id,
        });
        if let Some((object, permission)) = self.object() {
            error["missing_permission"] = json!(permission.as_str());
            error["object_type"] = json!(object.object_type.as_str());
            error["object_id"] = json!(object.id);
        }
        if let GatewayError::BadRequest { field: Some(field), .. } = self {
            error["field"] = json!(field);
        }
        json!({ "error": error })
    }

    pub fn to_response(&self, request_id: &str) -> Response<Bytes> {
        let body = Bytes::from(serde_json::to_vec(&self.to_json(request_id)).expect("json"));
        let mut response = Response::new(body);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let GatewayError::RateLimited { retry_after } = self {
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(self, GatewayError::Overloaded | GatewayError::PolicyUnavailable) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loggate_model::types::ObjectType;

    #[test]
    fn denial_body_names_permission_and_object_not_token() {
        let e = GatewayError::PermissionDenied {
            token: "ci-writer".into(),
            permission: Permission::Update,
            object: ObjectRef::new(ObjectType::ProjectLog, "p1"),
        };
        let v = e.to_json("r1");
        assert_eq!(v["error"]["code"], "permission_denied");
        assert_eq!(v["error"]["missing_permission"], "update");
        assert_eq!(v["error"]["object_type"], "project_log");
        assert_eq!(v["error"]["object_id"], "p1");
        assert_eq!(v["error"]["request_id"], "r1");
        assert_eq!(v["error"]["message"], "token 'ci-writer' lacks update on project_log p1");
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let e = GatewayError::RateLimited { retry_after: Duration::from_millis(1500) };
        let r: Response<Bytes> = e.to_response("r");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }

    #[test]
    fn bad_request_names_field() {
        let v = GatewayError::bad_request(Some("rows[3].project_id".to_string()), "duplicate key").to_json("r");
        assert_eq!(v["error"]["field"], "rows[3].project_id");
        assert_eq!(v["error"]["code"], "bad_request");
    }
}
