//! The HTTP API (axum): intake of events and eligibility, history and
//! dead-letter queries, all through [`Ledger`].
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /v1/events[?wait=projected&timeout_ms=N]` | 201 accepted, 200 duplicate, 422 rejected; an array gives 200 with one result per element |
//! | `GET /v1/eligibility?insurer=&symbol=&number=&branch=&on=&as_of=` | 200 eligibility, 404 not found, 400 bad parameter |
//! | `GET /v1/eligibility/card/{serial}?on=&as_of=` | 200, 404 not found or card not linked |
//! | `GET /v1/persons/{link}/history` | 200 history, 404 |
//! | `GET /v1/dead-letters?after=P:O&limit=N` | 200 `{"dead_letters": [...], "next": "P:O" or null}` |
//! | `POST /v1/onlinecheck` | the online check's XML result ([`crate::onlinecheck`]); 400 with the result's `ErrorCode` for a request it cannot read |
//! | `GET /healthz` | 200 `{"status": "ok"}` |
//! | `GET /openapi.json` | 200 the OpenAPI 3.1 document of every route ([`openapi`]) |
//!
//! Errors are `application/problem+json` ([`problem`]). Requests are traced by
//! route template and status only: query strings carry insured numbers.

pub mod access;
mod batch;
mod cards;
mod claims;
pub mod metrics;
pub mod misses;
mod onlinecheck;
pub mod openapi;
pub mod problem;
pub mod registry;
mod routes;
pub mod tls;
mod usage;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::Uri;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Router;
use tokio::net::TcpListener;

pub use self::access::Access;
pub use self::metrics::Metrics;
pub use self::problem::ApiError;
pub use self::routes::{DEFAULT_PAGE, DEFAULT_WAIT, MAX_PAGE, MAX_WAIT};
use self::tls::{Peer, TlsListener};
use crate::service::Ledger;

/// The largest request body accepted (a batch of events); larger is a 413.
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What the HTTP layer is configured with beyond access.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The largest request body (413 beyond).
    pub body_limit: usize,
    /// A request not answered in this time gets 503 (its work is abandoned).
    pub request_timeout: Duration,
    /// `/readyz` is 200 once no partition projected here lags by more.
    pub ready_max_lag: u64,
    /// Verification records older than this are deleted hourly (`None`:
    /// kept).
    pub verification_retention: Option<Duration>,
    /// The online check's folder exchange: requests in `DIR/req`, results
    /// in `DIR/res` ([`crate::onlinecheck::folder`]).
    pub onlinecheck_dir: Option<std::path::PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            body_limit: BODY_LIMIT,
            request_timeout: Duration::from_secs(60),
            ready_max_lag: 1_000,
            verification_retention: None,
            onlinecheck_dir: None,
        }
    }
}

/// The API over `ledger`, its callers authenticated by `access`. Start the
/// projector first if queries should see what intake appends.
pub fn router(ledger: Arc<Ledger>, access: Arc<Access>) -> Router {
    router_with(ledger, access, &HttpSettings::default(), Arc::default())
}

/// [`router`] with its settings and the metrics it fills.
pub fn router_with(
    ledger: Arc<Ledger>,
    access: Arc<Access>,
    settings: &HttpSettings,
    metrics: Arc<Metrics>,
) -> Router {
    routes::routes()
        .merge(cards::routes())
        .merge(claims::routes())
        .merge(usage::routes())
        .merge(onlinecheck::routes())
        .merge(registry::routes())
        .merge(openapi::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(Extension(Arc::clone(access.misses())))
        .layer(Extension(Arc::clone(&metrics)))
        .layer(Extension(ReadyMaxLag(settings.ready_max_lag)))
        .layer(middleware::from_fn_with_state(access, access::authenticate))
        .layer(middleware::from_fn_with_state(
            settings.request_timeout,
            deadline,
        ))
        .layer(middleware::from_fn_with_state(metrics, trace))
        .with_state(ledger)
}

/// The lag `/readyz` tolerates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadyMaxLag(pub u64);

/// Cuts a request off after the configured time with a 503.
async fn deadline(
    axum::extract::State(limit): axum::extract::State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout { after: limit }.into_response(),
    }
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute {
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Logs and counts method, route template and status: never the path's
/// values or the query string, which carry card serials and insured numbers.
async fn trace(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let route = route.as_deref().unwrap_or("(no route)");
    let client = response
        .extensions()
        .get::<access::CallerName>()
        .map_or("(none)", |c| c.0.as_str());
    let took = started.elapsed();
    metrics.request(method.as_str(), route, status, took);
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    if response.status().is_server_error() {
        tracing::warn!(%method, route, status, client, micros, "request");
    } else {
        tracing::info!(%method, route, status, client, micros, "request");
    }
    response
}

/// Where the API listens: plain HTTP (loopback, development) or TLS.
#[derive(Debug)]
pub enum Endpoint {
    Plain(TcpListener),
    Tls(TlsListener),
}

impl Endpoint {
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match self {
            Endpoint::Plain(l) => l.local_addr(),
            Endpoint::Tls(l) => axum::serve::Listener::local_addr(l).map(|p| p.addr),
        }
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Plain(_) => "http",
            Endpoint::Tls(_) => "https",
        }
    }
}

/// Serves the API on `endpoint` until `shutdown` resolves, lets requests in
/// flight finish, then shuts the ledger down (projector threads stopped,
/// views flushed). Start the projector before.
pub async fn serve(
    ledger: Ledger,
    access: Arc<Access>,
    endpoint: impl Into<Endpoint>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(ledger, access, HttpSettings::default(), endpoint, shutdown).await
}

/// [`serve`] with its settings.
pub async fn serve_with(
    ledger: Ledger,
    access: Arc<Access>,
    settings: HttpSettings,
    endpoint: impl Into<Endpoint>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let endpoint = endpoint.into();
    let ledger = Arc::new(ledger);
    let addr = endpoint.local_addr()?;
    tracing::info!(%addr, scheme = endpoint.scheme(), "serving the HTTP API");
    let sweeper = ledger
        .card_authority()
        .map(|_| tokio::spawn(sweep_revocations(Arc::clone(&ledger))));
    let reloader = access
        .tokens()
        .map(|tokens| tokio::spawn(reload_tokens(Arc::clone(tokens))));
    let usage = Some(tokio::spawn(flush_usage(Arc::clone(&ledger))));
    let retention = settings
        .verification_retention
        .map(|keep| tokio::spawn(purge_verifications(Arc::clone(&ledger), keep)));
    let folder = match &settings.onlinecheck_dir {
        Some(dir) => Some(start_folder_exchange(Arc::clone(&ledger), dir)?),
        None => None,
    };
    let app = router_with(Arc::clone(&ledger), access, &settings, Arc::default())
        .into_make_service_with_connect_info::<Peer>();
    let served = match endpoint {
        Endpoint::Plain(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
        Endpoint::Tls(l) => axum::serve(l, app).with_graceful_shutdown(shutdown).await,
    };
    tracing::info!("HTTP API stopped; shutting the ledger down");
    for task in [sweeper, reloader, usage, retention].into_iter().flatten() {
        task.abort();
        let _ = task.await;
    }
    if let Some((stop, thread)) = folder {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    close(ledger).await;
    served
}

/// The folder exchange on its own thread, answering through the ledger in
/// process; stopped (flag, then join) before the ledger closes.
fn start_folder_exchange(
    ledger: Arc<Ledger>,
    dir: &std::path::Path,
) -> std::io::Result<(
    Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
)> {
    use crate::onlinecheck::{self, folder::Exchange, Channel};
    let exchange = Exchange::open(dir)?;
    tracing::info!(requests = %exchange.requests().display(), "online-check folder exchange started");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("onlinecheck-folder".into())
        .spawn(move || {
            exchange.run(stopping, |bytes| {
                Ok(onlinecheck::answer(&*ledger, Channel::Folder, bytes).body)
            })
        })?;
    Ok((stop, thread))
}

/// Unlinks the cards the configured CRLs revoke, at start and whenever the
/// CRL files change (looked at every second).
async fn sweep_revocations(ledger: Arc<Ledger>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let sweeping = Arc::clone(&ledger);
        match tokio::task::spawn_blocking(move || sweeping.sweep_revoked_cards()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "unlinking revoked cards failed; retrying"),
            Err(e) => tracing::warn!(error = %e, "the revocation sweep stopped"),
        }
    }
}

impl From<TcpListener> for Endpoint {
    fn from(l: TcpListener) -> Endpoint {
        Endpoint::Plain(l)
    }
}

impl From<TlsListener> for Endpoint {
    fn from(l: TlsListener) -> Endpoint {
        Endpoint::Tls(l)
    }
}

/// Writes the buffered answers of the usage store every
/// [`FLUSH_EVERY`](crate::usage::FLUSH_EVERY), off the requests' path.
async fn flush_usage(ledger: Arc<Ledger>) {
    let mut tick = tokio::time::interval(crate::usage::FLUSH_EVERY);
    loop {
        tick.tick().await;
        let flushing = Arc::clone(&ledger);
        match tokio::task::spawn_blocking(move || flushing.usage().flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "writing answers to the usage store failed; retrying")
            }
            Err(e) => tracing::warn!(error = %e, "the usage writer stopped"),
        }
    }
}

/// Deletes verification records older than `keep`, at start and hourly.
async fn purge_verifications(ledger: Arc<Ledger>, keep: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3_600));
    loop {
        tick.tick().await;
        let purging = Arc::clone(&ledger);
        let before = ledger::domain::RecordTime::from_micros(
            ledger::domain::RecordTime::now()
                .micros()
                .saturating_sub(i64::try_from(keep.as_micros()).unwrap_or(i64::MAX)),
        );
        match tokio::task::spawn_blocking(move || purging.usage().purge_before(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(
                records = n,
                "verification records past their retention deleted"
            ),
            Ok(Err(e)) => tracing::warn!(error = %e, "deleting old verification records failed"),
            Err(e) => tracing::warn!(error = %e, "the retention sweep stopped"),
        }
    }
}

/// Reloads the token file when it changes (looked at every second), so an
/// issued or revoked token takes effect without a restart.
async fn reload_tokens(tokens: Arc<crate::auth::tokens::Tokens>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match tokens.reload_if_changed() {
            Ok(true) => tracing::info!("token file reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "the token file did not load; the tokens in force are kept")
            }
        }
    }
}

/// Shuts the ledger down once no request holds it any more: the blocking task
/// of a request whose client went away may still run for a moment. If one
/// outlives the grace period, the ledger shuts down when it drops it.
async fn close(mut ledger: Arc<Ledger>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Arc::try_unwrap(ledger) {
            Ok(mut owned) => {
                let _ = tokio::task::spawn_blocking(move || owned.shutdown()).await;
                return;
            }
            Err(_) if Instant::now() >= deadline => {
                tracing::warn!(
                    "a request still holds the ledger; it shuts down when that request ends"
                );
                return;
            }
            Err(shared) => {
                ledger = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_request_past_its_deadline_gets_a_503_problem() {
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/quick", axum::routing::get(|| async { "now" }))
            .layer(middleware::from_fn_with_state(
                Duration::from_millis(50),
                deadline,
            ));
        let ask = |path: &'static str| {
            app.clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
        };
        let slow = ask("/slow").await.unwrap();
        assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
        let quick = ask("/quick").await.unwrap();
        assert_eq!(quick.status(), StatusCode::OK);
    }
}
