//! An independent client against qledger's schema registry: the real HTTP
//! server on a socket, confluent-kafka's own `SchemaRegistryClient` and
//! `AvroSerializer` (Python, `tests/interop/confluent_client.py`) framing the
//! example events in the Confluent wire format, and qledger decoding every
//! framed message back to the event it started from.
//!
//! Needs `python3` (or `$PYTHON`) with the packages of
//! `tests/interop/requirements-confluent.txt`; without them the test fails
//! and says what to install.

mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::datum;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use ledger::event::avro::{self, Contract};
use ledger::event::{examples, registry, Event};
use qledger::http::registry::REGISTRY_JSON;
use qledger::http::{router, serve};
use qledger::service::Ledger;
use serde_json::{json, Value};
use tower::ServiceExt;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn unhex(line: &str) -> Vec<u8> {
    assert!(line.len() % 2 == 0, "odd hex line: {line}");
    (0..line.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Runs the Python client; panics with its output if it fails, and with the
/// install command if its packages are missing.
fn run_client(url: &str, events: &Path, out: &Path) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = repo().join("tests/interop/confluent_client.py");
    let mut child = Command::new(&python)
        .arg(&script)
        .arg("--url")
        .arg(url)
        .arg("--schemas")
        .arg(repo().join("schemas"))
        .arg("--events")
        .arg(events)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {python} (set $PYTHON to a Python 3 with \
                 `pip install -r tests/interop/requirements-confluent.txt`): {e}"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("confluent_client.py did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "the Confluent client's Python packages are missing: \
             pip install -r tests/interop/requirements-confluent.txt\n{stderr}"
        ),
        _ => panic!(
            "confluent_client.py failed ({}):\n{stdout}\n{stderr}",
            output.status
        ),
    }
}

/// The Confluent client frames every example event; qledger decodes each
/// back to the event it started from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_serializer_output_decodes_to_the_original_events() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(data.path(), 2).unwrap();
    ledger.start_projector();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let access = std::sync::Arc::new(qledger::http::Access::open());
    let server = tokio::spawn(serve(ledger, access, listener, async {
        let _ = stopped.await;
    }));

    let events: Vec<Event> = examples::all();
    let lines: String = events
        .iter()
        .map(|e| {
            let line = json!({"type": e.event_type().name(), "datum": datum(&avro::to_value(e))});
            format!("{line}\n")
        })
        .collect();
    let input = dir.path().join("events.jsonl");
    let output = dir.path().join("framed.hex");
    std::fs::write(&input, lines).unwrap();

    let url = format!("http://{addr}/schema-registry");
    let (input2, output2) = (input.clone(), output.clone());
    if let Err(e) = tokio::task::spawn_blocking(move || run_client(&url, &input2, &output2)).await {
        std::panic::resume_unwind(e.into_panic());
    }

    let framed: Vec<Vec<u8>> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(unhex)
        .collect();
    assert_eq!(framed.len(), events.len());
    for (event, bytes) in events.iter().zip(&framed) {
        let t = event.event_type();
        let latest = Contract::get().history(t).len() as u32;
        assert_eq!(bytes[0], 0, "{t}: magic byte");
        assert_eq!(
            u32::from_be_bytes(bytes[1..5].try_into().unwrap()),
            registry::schema_id(t, latest),
            "{t}: schema id"
        );
        let decoded = avro::decode_confluent(bytes)
            .unwrap_or_else(|e| panic!("{t}: qledger cannot decode the Confluent bytes: {e}"));
        assert_eq!(&decoded, event, "{t}");
        assert_eq!(&avro::decode_any(bytes).unwrap(), event, "{t}");
        // fastavro writes the same datum bytes as qledger's own encoder.
        assert_eq!(
            &bytes[..],
            &avro::encode_confluent(event).unwrap()[..],
            "{t}"
        );
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("serve stops")
        .unwrap()
        .unwrap();
}

/// The registry is wired into the service's router under /schema-registry,
/// with its own error format there and the API's problems elsewhere.
#[tokio::test]
async fn the_registry_is_served_beside_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Ledger::open(dir.path(), 2).unwrap());
    let app = router(ledger, std::sync::Arc::new(qledger::http::Access::open()));
    let call = |uri: &str| {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let app = app.clone();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                content_type,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };

    let (status, content_type, body) =
        call("/schema-registry/subjects/jp.qledger.events.CardLinked/versions/latest").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, REGISTRY_JSON);
    assert_eq!(body["id"], 8001);

    let (status, content_type, body) = call("/schema-registry/no/such/thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, REGISTRY_JSON);
    assert_eq!(body["error_code"], 404, "{body}");

    let (status, content_type, body) = call("/schema-registry/schemas/ids/1").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, REGISTRY_JSON);
    assert_eq!(body["error_code"], 40403, "{body}");

    let (status, content_type, body) = call("/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["type"], "/problems/no-such-route");

    let (status, _, body) = call("/healthz").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}
