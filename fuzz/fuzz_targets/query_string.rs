//! Fuzzes the query strings of the HTTP API through the real router
//! ([`qledger::http::router`]): axum's `Query` (serde_urlencoded), then each
//! route's own checks of names and values.
//!
//! The low four bits of the first byte pick a route of [`ROUTES`] (so a seed
//! file may start with `0`…`;`); the other bytes are the query string, sent
//! as they are where a URI allows them and percent-encoded where it does
//! not. Checks that no query panics and that none is answered with a 5xx:
//! a query the API cannot use is the client's error (4xx).
//!
//! The router serves a ledger opened once per process in a temporary
//! directory and loaded with the p17 scenario, one example of every event
//! type and a small sample population, so lookups find qualifications,
//! cards, claims and dead letters.

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use ledger::event::examples;
use ledger::log::RecordTimePolicy;
use ledger::sample::{self, SampleConfig};
use libfuzzer_sys::fuzz_target;
use qledger::http::misses::MissLimiter;
use qledger::http::Access;
use qledger::service::{Ledger, Submitted, Wait};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tower::ServiceExt;

/// The routes that read a query string (and `/v1/notices`, which has none
/// and must ignore one), with the body a POST needs.
const ROUTES: &[(Method, &str, &str)] = &[
    (Method::GET, "/v1/eligibility", ""),
    (Method::GET, "/v1/eligibility/card/0A1B2C3D4E5F", ""),
    (Method::GET, "/v1/dead-letters", ""),
    (Method::GET, "/v1/claims/decisions", ""),
    (Method::GET, "/v1/overlaps", ""),
    (Method::GET, "/v1/notices", ""),
    (Method::GET, "/v1/persons/L-P17/history", ""),
    (Method::GET, "/schema-registry/subjects", ""),
    // Checks a claim and appends nothing to the log.
    (Method::POST, "/v1/claims/check", CLAIM),
    (Method::GET, "/v1/verifications", ""),
    (Method::GET, "/v1/metering", ""),
    (Method::GET, "/v1/metering/chart.svg", ""),
];

/// The README's p17 claim: billed to the insurer the person had left.
const CLAIM: &str = r#"{"claim_id": "K-P17", "institution": "1311234567", "kind": "MEDICAL",
 "payer": "SOCIAL_INSURANCE_FUND", "billed_insurer": "01130012", "card_symbol": "13010017",
 "card_number": "1234", "branch": "00", "service_month": "2024-04", "service_days": [2],
 "total_points": 850}"#;

struct Server {
    runtime: Runtime,
    router: Router,
    _data: TempDir,
}

static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let data = tempfile::Builder::new()
        .prefix("qledger-fuzz-")
        .tempdir()
        .expect("a temporary directory");
    let policy = RecordTimePolicy::CreateTime {
        max_future_micros: 0,
    };
    let ledger = Ledger::open_with(data.path(), 2, policy).expect("the ledger opens");
    let mut events = sample::scenario_p17();
    events.extend(examples::all());
    events.extend(sample::population(&SampleConfig {
        persons: 50,
        ..SampleConfig::default()
    }));
    let submitted = ledger
        .submit(events, Wait::Durable)
        .expect("the events are appended");
    let refused: Vec<_> = submitted
        .iter()
        .filter(|s| matches!(s, Submitted::Rejected { .. }))
        .collect();
    assert!(refused.is_empty(), "sample events refused: {refused:?}");
    ledger.catch_up().expect("the events are projected");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let router = router(Arc::new(ledger));
    // The loaded data answers: a fuzzed lookup can find something.
    let found = runtime.block_on(
        router.clone().oneshot(
            Request::get(P17_LOOKUP)
                .body(Body::empty())
                .expect("a request"),
        ),
    );
    assert_eq!(
        found.expect("the router is infallible").status(),
        StatusCode::OK,
        "{P17_LOOKUP} finds nothing in the loaded ledger"
    );
    Server {
        runtime,
        router,
        _data: data,
    }
});

/// What the ledger knew on 3 April 2024 about 2 April of person `L-P17`.
const P17_LOOKUP: &str = "/v1/eligibility?insurer=01130012&symbol=13010017&number=1234\
    &branch=00&on=2024-04-02&as_of=2024-04-03T00:00:00Z";

/// The API as `serve --no-auth` builds it: the one place that knows the
/// router's signature. Misses of card lookups are neither limited nor
/// slowed down, so the fuzzer is not answered 429 after a few inputs.
fn router(ledger: Arc<Ledger>) -> Router {
    let misses = MissLimiter::new(u32::MAX, Duration::from_secs(60), Duration::ZERO);
    let access = Access::open().with_miss_limiter(misses);
    qledger::http::router(ledger, Arc::new(access))
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, query)) = data.split_first() else {
        return;
    };
    let (method, path, body) = &ROUTES[usize::from(pick & 0x0F) % ROUTES.len()];
    let uri = format!("{path}?{}", uri_query(query));
    let mut request = Request::builder().method(method.clone()).uri(&uri);
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Body::from(*body))
        .unwrap_or_else(|e| panic!("not a request URI: {uri:?}: {e}"));

    let server = &*SERVER;
    server.runtime.block_on(async {
        let response = server
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        if status.is_server_error() {
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            panic!(
                "{method} {uri} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    });
});

/// The bytes as a URI's query: those RFC 3986 allows there as they are
/// (with `%`, so broken escapes reach the decoder), the rest as `%XX`.
fn uri_query(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
