//! Every HTTP error, mapped once to RFC 9457 `application/problem+json`.
//!
//! Handlers return [`ApiError`]; extractor rejections (malformed JSON, a body
//! over the limit, an undecodable query or path) come through the [`Json`],
//! [`Query`] and [`Path`] wrappers and become problems too. Internal causes
//! are logged here — never with request bodies or personal data — and sent as
//! a generic 500.
//!
//! ```json
//! {"type": "/problems/invalid-parameter", "title": "Invalid parameter",
//!  "status": 400, "detail": "insurer: check digit must be 2, got 3", "field": "insurer"}
//! ```

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger::domain::Day;
use ledger::error::FieldError;
use projectors::ProjectorError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::service::ServiceError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The deepest nesting of arrays and objects a JSON body may have: the
/// deepest legitimate body (a batch of events) has four levels.
pub const JSON_MAX_DEPTH: usize = 32;

/// An error of the HTTP API; each variant maps to one problem type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// An event was refused by validation: nothing was appended.
    #[error("{0}")]
    InvalidEvent(FieldError),
    /// A query or path parameter broke its rule; `field` is the parameter.
    #[error("{0}")]
    InvalidParameter(FieldError),
    /// A request body (not an event) broke a rule; `field` is the field.
    #[error("{0}")]
    InvalidRequest(FieldError),
    /// The route needs configuration this server does not have.
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// The ledger did not know the key (at the instant asked about).
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The card serial was linked, but the link had ended by the date.
    #[error("the card is not linked since {since}")]
    CardNotLinked { since: Day },
    /// No route has this path.
    #[error("no route for {path}")]
    NoRoute { path: String },
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// An extractor refused the request (malformed JSON, body too large, …).
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    /// No credentials, or credentials no token or certificate matches (401).
    #[error("authentication required")]
    Unauthenticated,
    /// The caller's role or scope does not allow the request (403).
    #[error("{0}")]
    Forbidden(#[from] crate::auth::Denied),
    /// The request took longer than the server allows (503).
    #[error("the request took longer than {after:?}")]
    Timeout { after: std::time::Duration },
    /// Too many misses from this client; retry after the given seconds (429).
    #[error("too many requests")]
    TooManyRequests { retry_after: u64 },
    /// The service failed; logged, and sent as 503 (log unavailable) or 500.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Any other internal failure (a panicked blocking task); logged, sent as 500.
    #[error("{0}")]
    Internal(String),
}

/// The RFC 9457 body of every error (`application/problem+json`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(super) struct Problem {
    /// The problem type, a relative URI such as `/problems/invalid-parameter`.
    #[serde(rename = "type")]
    #[schema(pattern = "^/problems/[a-z-]+$")]
    kind: &'static str,
    title: &'static str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    detail: String,
    /// The parameter or field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    /// With `/problems/card-not-linked`: the day the card's link ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    since: Option<Day>,
}

impl ApiError {
    /// A parameter error naming the parameter.
    pub fn parameter(field: &str, rule: impl Into<String>) -> ApiError {
        ApiError::InvalidParameter(FieldError::new(field, rule))
    }

    /// Whether this is a failure of ours (a 5xx) rather than of the request.
    fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ApiError::Service(ServiceError::Log(_))
                | ApiError::Service(ServiceError::Views(ProjectorError::Log(_)))
        )
    }

    fn problem(&self) -> (StatusCode, Problem) {
        let problem = |status: StatusCode, kind, title, detail: String| Problem {
            kind,
            title,
            status: status.as_u16(),
            detail,
            field: None,
            since: None,
        };
        match self {
            ApiError::InvalidEvent(e) => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                let p = problem(
                    status,
                    "/problems/invalid-event",
                    "Invalid event",
                    e.to_string(),
                );
                (
                    status,
                    Problem {
                        field: Some(e.field.clone()),
                        ..p
                    },
                )
            }
            ApiError::InvalidParameter(e) => {
                let status = StatusCode::BAD_REQUEST;
                let p = problem(
                    status,
                    "/problems/invalid-parameter",
                    "Invalid parameter",
                    e.to_string(),
                );
                (
                    status,
                    Problem {
                        field: Some(e.field.clone()),
                        ..p
                    },
                )
            }
            ApiError::InvalidRequest(e) => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                let p = problem(
                    status,
                    "/problems/invalid-request",
                    "Invalid request",
                    e.to_string(),
                );
                (
                    status,
                    Problem {
                        field: Some(e.field.clone()),
                        ..p
                    },
                )
            }
            ApiError::NotConfigured(what) => {
                let status = StatusCode::NOT_IMPLEMENTED;
                let detail = format!("this server is not configured for it: {what}");
                (
                    status,
                    problem(status, "/problems/not-configured", "Not configured", detail),
                )
            }
            ApiError::NotFound { what } => {
                let status = StatusCode::NOT_FOUND;
                (
                    status,
                    problem(
                        status,
                        "/problems/not-found",
                        "Not found",
                        format!("no such {what} is known"),
                    ),
                )
            }
            ApiError::CardNotLinked { since } => {
                let status = StatusCode::NOT_FOUND;
                let detail = format!("the card serial was linked, but the link ended on {since}");
                let p = problem(
                    status,
                    "/problems/card-not-linked",
                    "Card not linked",
                    detail,
                );
                (
                    status,
                    Problem {
                        since: Some(*since),
                        ..p
                    },
                )
            }
            ApiError::NoRoute { path } => {
                let status = StatusCode::NOT_FOUND;
                (
                    status,
                    problem(
                        status,
                        "/problems/no-such-route",
                        "No such route",
                        format!("no route for {path}"),
                    ),
                )
            }
            ApiError::MethodNotAllowed => {
                let status = StatusCode::METHOD_NOT_ALLOWED;
                let detail = "this route does not accept the method".to_owned();
                (
                    status,
                    problem(
                        status,
                        "/problems/method-not-allowed",
                        "Method not allowed",
                        detail,
                    ),
                )
            }
            ApiError::Rejected { status, detail } => {
                let (kind, title) = match *status {
                    StatusCode::PAYLOAD_TOO_LARGE => {
                        ("/problems/payload-too-large", "Payload too large")
                    }
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        ("/problems/unsupported-media-type", "Unsupported media type")
                    }
                    s if s.is_server_error() => ("/problems/internal", "Internal error"),
                    _ => ("/problems/malformed-request", "Malformed request"),
                };
                (*status, problem(*status, kind, title, detail.clone()))
            }
            ApiError::Unauthenticated => {
                let status = StatusCode::UNAUTHORIZED;
                let detail =
                    "send an API token (Authorization: Bearer qlt_…) or a client certificate this server knows"
                        .to_owned();
                (
                    status,
                    problem(
                        status,
                        "/problems/unauthenticated",
                        "Unauthenticated",
                        detail,
                    ),
                )
            }
            ApiError::Forbidden(denied) => {
                let status = StatusCode::FORBIDDEN;
                let p = problem(
                    status,
                    "/problems/forbidden",
                    "Forbidden",
                    denied.reason.clone(),
                );
                (
                    status,
                    Problem {
                        field: denied.field.clone(),
                        ..p
                    },
                )
            }
            ApiError::Timeout { after } => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                let detail = format!(
                    "the request was not answered within {} s; retry later",
                    after.as_secs_f64()
                );
                (
                    status,
                    problem(status, "/problems/timeout", "Request timed out", detail),
                )
            }
            ApiError::TooManyRequests { .. } => {
                let status = StatusCode::TOO_MANY_REQUESTS;
                let detail = "too many lookups that found nothing; slow down".to_owned();
                (
                    status,
                    problem(
                        status,
                        "/problems/too-many-requests",
                        "Too many requests",
                        detail,
                    ),
                )
            }
            ApiError::Service(_) if self.is_unavailable() => {
                let status = StatusCode::SERVICE_UNAVAILABLE;
                let detail = "the event log is unavailable; nothing was acknowledged, retry later"
                    .to_owned();
                (
                    status,
                    problem(status, "/problems/retry", "Service unavailable", detail),
                )
            }
            ApiError::Service(_) | ApiError::Internal(_) => {
                let status = StatusCode::INTERNAL_SERVER_ERROR;
                let detail = "an internal error occurred; it has been logged".to_owned();
                (
                    status,
                    problem(status, "/problems/internal", "Internal error", detail),
                )
            }
        }
    }

    /// Logs what the client will not see. Error texts of the libraries name
    /// paths, offsets and ids, never personal data; a corrupt view key could
    /// hold an insured number, so only its reason is logged.
    fn log(&self, status: StatusCode) {
        match self {
            ApiError::Service(ServiceError::Views(ProjectorError::Corrupt { reason, .. })) => {
                tracing::error!(status = status.as_u16(), reason = %reason, "corrupt view value");
            }
            ApiError::Service(e) if status.is_server_error() => {
                tracing::error!(status = status.as_u16(), error = %e, "request failed");
            }
            ApiError::Internal(e) => {
                tracing::error!(status = status.as_u16(), error = %e, "request failed")
            }
            ApiError::Rejected { status, .. } if status.is_server_error() => {
                tracing::error!(status = status.as_u16(), "extractor failed");
            }
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, problem) = self.problem();
        self.log(status);
        let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (
            status,
            [(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON))],
            body,
        )
            .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        match self {
            ApiError::Unauthenticated => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"qledger\""),
                );
            }
            ApiError::TooManyRequests { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        ApiError::Rejected {
            status: r.status(),
            detail: r.body_text(),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::Rejected {
            status: StatusCode::BAD_REQUEST,
            detail: r.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        let status = if r.status().is_server_error() {
            r.status()
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::Rejected {
            status,
            detail: r.body_text(),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::Internal(format!("blocking task failed: {e}"))
    }
}

/// `axum::Json`, with rejections as problems. Also a response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    /// Checks the media type, reads the body (within the body limit), refuses
    /// nesting deeper than [`JSON_MAX_DEPTH`] before parsing anything, then
    /// deserializes.
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::Rejected {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                detail: "expected a request body with Content-Type: application/json".into(),
            });
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::Rejected {
                status: r.status(),
                detail: r.body_text(),
            })?;
        if let Some(at) = too_deep(&bytes, JSON_MAX_DEPTH) {
            return Err(ApiError::Rejected {
                status: StatusCode::BAD_REQUEST,
                detail: format!(
                    "the JSON body nests arrays and objects deeper than {JSON_MAX_DEPTH} levels (at byte {at})"
                ),
            });
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Json(value))
    }
}

/// `application/json` or `application/…+json`.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(mime) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Where a JSON text first nests deeper than `max`, if it does: brackets
/// counted outside strings. Malformed text is left to the parser.
pub fn too_deep(text: &[u8], max: usize) -> Option<usize> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, with rejections as problems.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// `axum::extract::Path`, with rejections as problems.
#[derive(Debug, Clone)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::log::LogError;

    fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let (status, p) = e.problem();
        (status, serde_json::to_value(p).unwrap())
    }

    #[test]
    fn nesting_is_counted_outside_strings() {
        assert_eq!(too_deep(br#"{"a": [[1]]}"#, 3), None);
        assert_eq!(too_deep(br#"{"a": [[[1]]]}"#, 3), Some(8));
        assert_eq!(too_deep(br#"{"a": "[[[[[[", "b": "\"[[[["}"#, 2), None);
        let deep = "[".repeat(100_000);
        assert_eq!(
            too_deep(deep.as_bytes(), JSON_MAX_DEPTH),
            Some(JSON_MAX_DEPTH)
        );
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let (status, p) = body(ApiError::parameter(
            "insurer",
            "check digit must be 2, got 3",
        ));
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(p["field"], "insurer");
        assert_eq!(p["type"], "/problems/invalid-parameter");
        assert_eq!(p["status"], 400);
    }

    #[test]
    fn log_failures_ask_to_retry_and_hide_the_cause() {
        let e = ApiError::Service(ServiceError::Log(LogError::Unavailable(
            "disk on fire at /srv".into(),
        )));
        let (status, p) = body(e);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(p["type"], "/problems/retry");
        assert!(!p["detail"].as_str().unwrap().contains("/srv"));
    }

    #[test]
    fn internal_errors_are_generic() {
        let (status, p) = body(ApiError::Service(ServiceError::Encode(
            "secret detail".into(),
        )));
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!p["detail"].as_str().unwrap().contains("secret"));
        assert!(p.get("field").is_none());
    }
}
