//! The HTTP API, driven with `router().oneshot(req)` over a ledger in a
//! temporary directory; and once end to end over a real socket.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ledger::event::{examples, json};
use qledger::http::{router, serve};
use qledger::service::Ledger;
use serde_json::{json, Value};
use tempfile::TempDir;
use tower::ServiceExt;

/// The examples' insured number: 01130012 記号 あいう 番号 1234 枝番 01.
const NUMBER: &str = "insurer=01130012&symbol=%E3%81%82%E3%81%84%E3%81%86&number=1234&branch=01";

fn ledger() -> (TempDir, Arc<Ledger>) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 2).unwrap();
    ledger.start_projector();
    (dir, Arc::new(ledger))
}

/// The JSON of example event `i` (in `EventType::ALL` order).
fn example(i: usize) -> Value {
    json::to_value(&examples::all()[i])
}

const ACQUIRED: usize = 0;
const LOST: usize = 2;
const LINKED: usize = 7;
const UNLINKED: usize = 9;

struct Reply {
    status: StatusCode,
    content_type: String,
    body: Value,
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        content_type,
        body,
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    send(app, request).await
}

fn assert_problem(reply: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.content_type, "application/problem+json");
    assert_eq!(reply.body["type"], kind, "{}", reply.body);
    assert_eq!(reply.body["status"], status.as_u16());
    assert!(reply.body["title"].is_string() && reply.body["detail"].is_string());
}

#[tokio::test]
async fn single_event_accepted_then_duplicate_then_rejected() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));

    let accepted = post(&app, "/v1/events", &example(ACQUIRED)).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "accepted");
    assert_eq!(accepted.body["event_type"], "QualificationAcquired");
    assert_eq!(
        accepted.body["event_id"],
        example(ACQUIRED)["envelope"]["event_id"]
    );

    let again = post(&app, "/v1/events", &example(ACQUIRED)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["status"], "duplicate");
    assert_eq!(again.body["offset"], accepted.body["offset"]);
    assert_eq!(again.body["partition"], accepted.body["partition"]);

    let mut bad = example(ACQUIRED);
    bad["envelope"]["event_id"] = json!("0190a1b2-c3d4-7000-8000-00000000ffff");
    bad["insurer_number"] = json!("01130013");
    let rejected = post(&app, "/v1/events", &bad).await;
    assert_problem(
        &rejected,
        StatusCode::UNPROCESSABLE_ENTITY,
        "/problems/invalid-event",
    );
    assert_eq!(rejected.body["field"], "insurer_number");
    assert!(rejected.body["detail"]
        .as_str()
        .unwrap()
        .contains("check digit"));

    // Same id, different content: refused, not acknowledged.
    let mut reused = example(ACQUIRED);
    reused["card_number"] = json!("9999");
    let reused = post(&app, "/v1/events", &reused).await;
    assert_problem(
        &reused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "/problems/invalid-event",
    );
    assert_eq!(reused.body["field"], "envelope.event_id");
}

#[tokio::test]
async fn a_rejected_element_does_not_lose_the_rest_of_the_batch() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    let mut bad = example(LOST);
    bad.as_object_mut().unwrap().remove("lost_on");
    let batch = json!([example(ACQUIRED), bad, example(LINKED)]);

    let reply = post(&app, "/v1/events?wait=projected", &batch).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["accepted"], 2);
    assert_eq!(reply.body["duplicates"], 0);
    assert_eq!(reply.body["rejected"], 1);
    let results = reply.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["index"], 0);
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[0]["projected"], true);
    assert_eq!(results[1]["index"], 1);
    assert_eq!(results[1]["status"], "rejected");
    assert_eq!(results[1]["error"]["field"], "lost_on");
    assert_eq!(results[2]["status"], "accepted");

    let again = post(&app, "/v1/events", &batch).await;
    assert_eq!(
        (
            again.body["accepted"].as_u64(),
            again.body["duplicates"].as_u64()
        ),
        (Some(0), Some(2))
    );
}

#[tokio::test]
async fn eligibility_by_insured_number() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    let posted = post(
        &app,
        "/v1/events?wait=projected&timeout_ms=10000",
        &example(ACQUIRED),
    )
    .await;
    assert_eq!(posted.body["projected"], true, "{}", posted.body);

    let found = get(&app, &format!("/v1/eligibility?{NUMBER}&on=2024-05-01")).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.content_type, "application/json");
    assert_eq!(found.body["status"], "found");
    assert_eq!(found.body["on"], "2024-05-01");
    let q = &found.body["qualifications"][0];
    assert_eq!(q["insurer_number"], "01130012");
    assert_eq!(q["payer"], "SOCIAL_INSURANCE_FUND");

    // Full-width digits are the same number.
    let wide = get(&app, "/v1/eligibility?insurer=%EF%BC%90%EF%BC%91%EF%BC%91%EF%BC%93%EF%BC%90%EF%BC%90%EF%BC%91%EF%BC%92&symbol=%E3%81%82%E3%81%84%E3%81%86&number=1234&branch=01&on=2024-05-01").await;
    assert_eq!(wide.status, StatusCode::OK, "{}", wide.body);

    // Before the acquisition date: known, but no qualification on that date.
    let before = get(&app, &format!("/v1/eligibility?{NUMBER}&on=2024-03-01")).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(before.body["qualifications"], json!([]));

    // As known before anything was recorded: not found.
    let then = get(
        &app,
        &format!("/v1/eligibility?{NUMBER}&on=2024-05-01&as_of=2000-01-01T00:00:00Z"),
    )
    .await;
    assert_problem(&then, StatusCode::NOT_FOUND, "/problems/not-found");

    let unknown = get(
        &app,
        "/v1/eligibility?insurer=01130012&number=999&branch=01&on=2024-05-01",
    )
    .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test]
async fn each_bad_parameter_is_a_400_naming_it() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    let cases = [
        (
            "/v1/eligibility?insurer=01130013&number=1234&branch=01",
            "insurer",
        ),
        ("/v1/eligibility?insurer=01130012&branch=01", "number"),
        ("/v1/eligibility?number=1234&branch=01", "insurer"),
        (
            "/v1/eligibility?insurer=01130012&number=12a4&branch=01",
            "number",
        ),
        (
            "/v1/eligibility?insurer=01130012&number=1234&branch=1",
            "branch",
        ),
        ("/v1/eligibility?insurer=01130012&number=1234", "branch"),
        (
            "/v1/eligibility?insurer=39131008&number=12345678&branch=01",
            "branch",
        ),
        (
            "/v1/eligibility?insurer=01130012&symbol=%21&number=1234&branch=01",
            "symbol",
        ),
        (
            "/v1/eligibility?insurer=01130012&number=1234&branch=01&on=2024-02-30",
            "on",
        ),
        (
            "/v1/eligibility?insurer=01130012&number=1234&branch=01&as_of=2024-04-03",
            "as_of",
        ),
        (
            "/v1/eligibility?insurer=01130012&number=1234&branch=01&insurer_number=1",
            "insurer_number",
        ),
        ("/v1/eligibility/card/XYZ", "serial"),
        (
            "/v1/eligibility/card/0A1B?birth_date=1980-05-12&on=tomorrow",
            "on",
        ),
        ("/v1/eligibility/card/0A1B?on=2024-05-01", "birth_date"),
        (
            "/v1/eligibility/card/0A1B?birth_date=1980-02-30",
            "birth_date",
        ),
        ("/v1/persons/a%20b/history", "link"),
        ("/v1/dead-letters?after=3", "after"),
        ("/v1/dead-letters?limit=0", "limit"),
    ];
    for (uri, field) in cases {
        let reply = get(&app, uri).await;
        assert_problem(
            &reply,
            StatusCode::BAD_REQUEST,
            "/problems/invalid-parameter",
        );
        assert_eq!(reply.body["field"], field, "{uri}: {}", reply.body);
    }
    // 後期高齢者: no symbol, no branch — a well-formed question (not known here).
    let late = get(&app, "/v1/eligibility?insurer=39131008&number=12345678").await;
    assert_problem(&late, StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test]
async fn eligibility_by_card_serial() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    let batch = json!([example(ACQUIRED), example(LINKED)]);
    assert_eq!(
        post(&app, "/v1/events?wait=projected", &batch).await.body["accepted"],
        2
    );

    let found = get(
        &app,
        "/v1/eligibility/card/0a1b2c3d4e5f?birth_date=1980-05-12&on=2024-05-01",
    )
    .await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.body);
    assert_eq!(found.body["status"], "found");
    assert_eq!(found.body["qualifications"][0]["card_number"], "1234");

    let unlinked = post(&app, "/v1/events?wait=projected", &example(UNLINKED)).await;
    assert_eq!(unlinked.status, StatusCode::CREATED, "{}", unlinked.body);
    // Another date of birth is answered as an unknown serial: same status,
    // same body, whether the link is live or ended.
    let wrong_birth = get(
        &app,
        "/v1/eligibility/card/0a1b2c3d4e5f?birth_date=1980-05-13&on=2024-05-01",
    )
    .await;
    assert_problem(&wrong_birth, StatusCode::NOT_FOUND, "/problems/not-found");

    let after = get(
        &app,
        "/v1/eligibility/card/0A1B2C3D4E5F?birth_date=1980-05-12&on=2029-06-01",
    )
    .await;
    assert_problem(&after, StatusCode::NOT_FOUND, "/problems/card-not-linked");
    assert_eq!(after.body["since"], "2029-05-12");
    let after_wrong = get(
        &app,
        "/v1/eligibility/card/0A1B2C3D4E5F?birth_date=1981-05-12&on=2029-06-01",
    )
    .await;
    assert_problem(&after_wrong, StatusCode::NOT_FOUND, "/problems/not-found");

    let unknown = get(
        &app,
        "/v1/eligibility/card/FFFF?birth_date=1980-05-13&on=2024-05-01",
    )
    .await;
    assert_problem(&unknown, StatusCode::NOT_FOUND, "/problems/not-found");
    assert_eq!(unknown.body, wrong_birth.body);
    assert_eq!(unknown.body, after_wrong.body);
}

#[tokio::test]
async fn history_of_a_person() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    post(
        &app,
        "/v1/events?wait=projected",
        &json!([example(ACQUIRED), example(LOST)]),
    )
    .await;

    let history = get(&app, "/v1/persons/L-0000000001/history").await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    assert_eq!(history.body["link"], "L-0000000001");
    let versions = history.body["versions"].as_array().unwrap();
    assert!(versions.len() >= 2, "{}", history.body);
    assert!(versions
        .iter()
        .all(|v| v["recorded_from"].is_string() && v["valid_from"].is_string()));

    let nobody = get(&app, "/v1/persons/L-nobody/history").await;
    assert_problem(&nobody, StatusCode::NOT_FOUND, "/problems/not-found");
}

#[tokio::test]
async fn dead_letters_page_with_a_cursor() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    // Losses of qualifications the ledger never saw acquired cannot be applied.
    let mut second = example(LOST);
    second["envelope"]["event_id"] = json!("0190a1b2-c3d4-7000-8000-00000000fff1");
    let reply = post(
        &app,
        "/v1/events?wait=projected",
        &json!([example(LOST), second]),
    )
    .await;
    assert_eq!(reply.body["accepted"], 2, "{}", reply.body);

    let all = get(&app, "/v1/dead-letters").await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["dead_letters"].as_array().unwrap().len(), 2);
    assert_eq!(all.body["next"], Value::Null);
    assert_eq!(all.body["dead_letters"][0]["field"], "qualification_id");

    let first = get(&app, "/v1/dead-letters?limit=1").await;
    assert_eq!(first.body["dead_letters"].as_array().unwrap().len(), 1);
    let next = first.body["next"].as_str().expect("a cursor").to_owned();
    let rest = get(&app, &format!("/v1/dead-letters?after={next}&limit=1")).await;
    assert_eq!(rest.body["dead_letters"].as_array().unwrap().len(), 1);
    assert_ne!(rest.body["dead_letters"][0], first.body["dead_letters"][0]);
}

#[tokio::test]
async fn healthz() {
    let (_dir, ledger) = ledger();
    let reply = get(
        &router(ledger, std::sync::Arc::new(qledger::http::Access::open())),
        "/healthz",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!({"status": "ok"}));
}

#[tokio::test]
async fn request_errors_are_problems_too() {
    let (_dir, ledger) = ledger();
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));

    let malformed = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"type\": "))
        .unwrap();
    let malformed = send(&app, malformed).await;
    assert_problem(
        &malformed,
        StatusCode::BAD_REQUEST,
        "/problems/malformed-request",
    );
    assert!(malformed.body["detail"].as_str().unwrap().contains("JSON"));

    let untyped = send(
        &app,
        Request::post("/v1/events").body(Body::from("{}")).unwrap(),
    )
    .await;
    assert_problem(
        &untyped,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "/problems/unsupported-media-type",
    );

    let huge = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; qledger::http::BODY_LIMIT + 1]))
        .unwrap();
    assert_problem(
        &send(&app, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "/problems/payload-too-large",
    );

    let not_an_object = post(&app, "/v1/events", &json!(42)).await;
    assert_problem(
        &not_an_object,
        StatusCode::UNPROCESSABLE_ENTITY,
        "/problems/invalid-event",
    );
    assert_eq!(not_an_object.body["field"], "$");

    let bad_wait = post(&app, "/v1/events?wait=forever", &example(ACQUIRED)).await;
    assert_eq!(bad_wait.body["field"], "wait");

    assert_problem(
        &get(&app, "/v2/nothing").await,
        StatusCode::NOT_FOUND,
        "/problems/no-such-route",
    );
    let wrong_method = send(
        &app,
        Request::builder()
            .method(Method::DELETE)
            .uri("/healthz")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_problem(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "/problems/method-not-allowed",
    );
}

/// End to end: `serve` on a real socket, HTTP/1 over TCP, graceful shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_a_socket_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 2).unwrap();
    ledger.start_projector();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let access = std::sync::Arc::new(qledger::http::Access::open());
    let server = tokio::spawn(serve(ledger, access, listener, async {
        let _ = stopped.await;
    }));

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let call = |method: Method, path: &str, body: Option<Value>| {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| serde_json::to_vec(&b).unwrap())
                    .unwrap_or_default(),
            )))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice::<Value>(&bytes).unwrap())
        }
    };

    let (status, body) = call(Method::GET, "/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    let (status, body) = call(
        Method::POST,
        "/v1/events?wait=projected",
        Some(example(ACQUIRED)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["projected"], true);

    let (status, body) = call(
        Method::GET,
        &format!("/v1/eligibility?{NUMBER}&on=2024-05-01"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["qualifications"][0]["copay_percent"], 30);

    let (status, body) = call(
        Method::GET,
        "/v1/eligibility?insurer=01130013&number=1&branch=01",
        None,
    )
    .await;
    assert_eq!(
        (status, &body["field"]),
        (StatusCode::BAD_REQUEST, &json!("insurer"))
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();
    // The ledger was shut down and released its locks: the directory opens again.
    drop(client);
    Ledger::open(dir.path(), 2).expect("reopen after shutdown");
}
