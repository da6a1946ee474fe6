//! Authentication of every request before any route runs: an API token
//! (`Authorization: Bearer qlt_…`) or a mutual-TLS client certificate names
//! a [`Principal`](crate::auth::Principal); the routes then authorise the
//! [`Caller`] for what they do. Only `/healthz`, `/readyz` and
//! `/openapi.json` answer without credentials. With [`Access::open`] (`serve --no-auth`, loopback only)
//! every request is [`Caller::Unrestricted`].
//!
//! Nothing here logs a token, a header or a path's values.

use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::misses::MissLimiter;
use super::problem::ApiError;
use super::tls::Peer;
use crate::auth::tokens::Tokens;
use crate::auth::{Action, Caller, Denied};

/// Paths that answer without credentials (probes, the API's description).
pub(super) const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/openapi.json"];

/// How a server authenticates its callers.
#[derive(Debug)]
pub struct Access {
    tokens: Option<Arc<Tokens>>,
    open: bool,
    misses: Arc<MissLimiter>,
}

/// The authenticated caller's name, put in the response for the request log.
#[derive(Debug, Clone)]
pub(super) struct CallerName(pub String);

/// Who a request counts against for rate limits: the principal's name, or
/// the remote address on a server without authentication.
#[derive(Debug, Clone)]
pub(super) struct ClientKey(pub String);

impl Access {
    /// Every request is allowed everything: development on loopback only
    /// (`serve --no-auth` refuses any other address).
    pub fn open() -> Access {
        Access {
            tokens: None,
            open: true,
            misses: Arc::default(),
        }
    }

    /// Requests authenticate with a token of `tokens` or a client
    /// certificate the TLS listener mapped to a principal.
    pub fn enforced(tokens: Arc<Tokens>) -> Access {
        Access {
            tokens: Some(tokens),
            open: false,
            misses: Arc::default(),
        }
    }

    /// Card lookups that miss are limited by `misses`.
    pub fn with_miss_limiter(mut self, misses: MissLimiter) -> Access {
        self.misses = Arc::new(misses);
        self
    }

    pub fn misses(&self) -> &Arc<MissLimiter> {
        &self.misses
    }

    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn tokens(&self) -> Option<&Arc<Tokens>> {
        self.tokens.as_ref()
    }

    fn caller(&self, request: &Request) -> Option<Caller> {
        if self.open {
            return Some(Caller::Unrestricted);
        }
        if let Some(value) = request.headers().get(header::AUTHORIZATION) {
            // A wrong token is a 401 even with a good certificate: the
            // client meant the token.
            let token = value.to_str().ok()?.strip_prefix("Bearer ")?.trim();
            return self
                .tokens
                .as_ref()?
                .authenticate(token)
                .map(Caller::Principal);
        }
        let certificate = request
            .extensions()
            .get::<ConnectInfo<Peer>>()
            .and_then(|peer| peer.0.certificate)?;
        self.tokens
            .as_ref()?
            .authenticate_certificate(&certificate)
            .map(Caller::Principal)
    }
}

/// What each route does, for authorisation: the one table of the policy
/// (with [`Role::may`](crate::auth::Role::may)). Scopes (whose insurer,
/// which payer) are checked by the routes, on the values they read.
pub fn action_of(method: &Method, route: &str) -> Option<Action> {
    use Action as A;
    let post = method == Method::POST;
    Some(match route {
        "/v1/events" => A::Publish,
        "/v1/eligibility" => A::EligibilityByNumber,
        "/v1/eligibility/card/{serial}" => A::EligibilityByCard,
        // The online check's XML request: by insured number and birth date.
        "/v1/onlinecheck" => A::EligibilityByNumber,
        // Each pair is authorised on its own (by number or by card).
        "/v1/eligibility/batch" => A::BatchCheck,
        "/v1/persons/{link}/history" => A::History,
        "/v1/dead-letters" => A::DeadLetters,
        "/v1/card-links" | "/v1/card-links/{serial}/unlink" => A::LinkCard,
        "/v1/card-links/requests/{request_id}" => A::LinkRequestStatus,
        "/v1/notices" => A::NoticesOutbox,
        "/v1/claims" | "/v1/claims/{claim_id}/withdraw" => A::RegisterClaims,
        "/v1/claims/check" => A::CheckClaims,
        "/v1/claims/{claim_id}" | "/v1/claims/decisions" => A::ReadClaims,
        "/v1/overlaps" => A::Overlaps,
        "/metrics" => A::Metrics,
        "/v1/verifications" => A::Verifications,
        "/v1/metering" | "/v1/metering/chart.svg" => A::Metering,
        "/v1/whoami" => A::WhoAmI,
        // Registering a version writes; every other registry request
        // (lookups and compatibility checks are POSTs too) reads.
        "/schema-registry/subjects/{subject}/versions" if post => A::WriteSchemas,
        r if r.starts_with("/schema-registry") => A::ReadSchemas,
        _ => return None,
    })
}

/// The middleware: a [`Caller`] into the request, or a 401; then the
/// caller's role must allow the route's action, or a 403 — before the route
/// reads the body.
pub(super) async fn authenticate(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let Some(caller) = access.caller(&request) else {
        return ApiError::Unauthenticated.into_response();
    };
    let name = CallerName(caller.name().to_owned());
    // Fail closed: a route missing from the table is refused to all.
    // Without a matched route the fallback answers 404.
    let allowed = match request.extensions().get::<MatchedPath>() {
        Some(route) => match action_of(request.method(), route.as_str()) {
            Some(action) => caller.allow(action),
            None => Err(Denied::new("this route has no access rule")),
        },
        None => Ok(()),
    };
    let mut response = match allowed {
        Err(denied) => ApiError::Forbidden(denied).into_response(),
        Ok(()) => {
            let key = match &caller {
                Caller::Principal(p) => p.name.clone(),
                Caller::Unrestricted => request
                    .extensions()
                    .get::<ConnectInfo<Peer>>()
                    .map_or_else(|| "-".to_owned(), |peer| peer.0.addr.ip().to_string()),
            };
            request.extensions_mut().insert(ClientKey(key));
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
    };
    response.extensions_mut().insert(name);
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}
