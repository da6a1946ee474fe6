//! Running `qledger serve` as operators do: the effective configuration and
//! its precedence (`qledger config show`), Prometheus metrics, readiness
//! while the projector catches up, graceful shutdown with a request in
//! flight, and limits on hostile bodies.

mod support;

use support::auth::issue;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{qledger, text, Server};

#[test]
fn config_show_applies_file_then_environment_then_flags_and_masks_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("qledger.toml");
    std::fs::write(
        &file,
        r#"
[server]
data = "/srv/qledger"
listen = "127.0.0.1:9001"
miss_limit = 7
ready_max_lag = 50
plain_http = true

[kafka]
bootstrap = "broker-1:9093"
[kafka.properties]
"security.protocol" = "SASL_SSL"
"sasl.mechanisms" = "SCRAM-SHA-512"
"sasl.username" = "qledger"
"sasl.password" = "hunter2-very-secret"
"ssl.ca.location" = "/etc/qledger/kafka-ca.pem"
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(["config", "show", "--config", file.to_str().unwrap()])
        .args(["--listen", "127.0.0.1:9003"])
        .env("QLEDGER_LISTEN", "127.0.0.1:9002")
        .env("QLEDGER_MISS_LIMIT", "9")
        .env_remove("QLEDGER_KAFKA_BOOTSTRAP")
        .env_remove("QLEDGER_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let parsed: toml::Value = toml::from_str(&shown).expect("config show prints TOML");
    let server = &parsed["server"];
    // Flag over environment over file over default.
    assert_eq!(server["listen"].as_str(), Some("127.0.0.1:9003"), "{shown}");
    assert_eq!(server["miss_limit"].as_integer(), Some(9), "{shown}");
    assert_eq!(server["ready_max_lag"].as_integer(), Some(50), "{shown}");
    assert_eq!(server["data"].as_str(), Some("/srv/qledger"), "{shown}");
    assert_eq!(server["miss_window_secs"].as_integer(), Some(60), "{shown}");
    // Kafka's TLS and SASL settings pass through; the password does not show.
    let props = &parsed["kafka"]["properties"];
    assert_eq!(props["security.protocol"].as_str(), Some("SASL_SSL"));
    assert_eq!(props["sasl.username"].as_str(), Some("qledger"));
    assert_eq!(props["sasl.password"].as_str(), Some("***"));
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn metrics_whoami_and_limits_over_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let monitor = issue(data, &["--name", "prometheus", "--role", "monitor"]);
    let clinic = support::auth::clinic(data);
    let server = Server::start_secured(&["--data", data, "--body-limit", "4096"], &[]);

    let (status, who) = server.http_as(Some(&clinic), "GET", "/v1/whoami", None);
    assert_eq!(status, 200);
    assert_eq!(who, json!({"name": "clinic", "role": "institution"}));
    let (status, _) = server.http_as(
        Some(&clinic),
        "GET",
        "/v1/eligibility?insurer=01130012&number=1234&branch=01",
        None,
    );
    assert_eq!(status, 404);
    // Metrics are for monitors, not clinics.
    let (status, _) = server.http_as(Some(&clinic), "GET", "/metrics", None);
    assert_eq!(status, 403);

    // Hostile bodies: nesting beyond the limit, a body beyond the limit.
    let deep = format!("{}{}", "[".repeat(64), "]".repeat(64));
    let (status, problem) = raw_post(&server, &clinic, "/v1/claims/check", &deep);
    assert_eq!(status, 400, "{problem}");
    assert!(problem.contains("deeper than 32"), "{problem}");
    let big = format!("[{}]", vec!["{}"; 3000].join(","));
    let (status, problem) = raw_post(&server, &clinic, "/v1/claims/check", &big);
    assert_eq!(status, 413, "{problem}");

    let metrics = get_text(&server, &monitor, "/metrics");
    assert!(
        metrics.contains(
            r#"qledger_http_requests_total{method="GET",route="/v1/whoami",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/v1/eligibility",status="404"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("qledger_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"qledger_projector_lag_events{partition="0"} 0"#),
        "{metrics}"
    );
    assert!(metrics.contains("qledger_dead_letters 0"), "{metrics}");
    assert!(metrics.contains("qledger_log_events 0"), "{metrics}");
    assert!(metrics.contains("qledger_log_bytes "), "{metrics}");
    // Labels are route templates: no value from a path or query.
    assert!(
        !metrics.contains("1234") && !metrics.contains("01130012"),
        "{metrics}"
    );
    server.stop();
}

/// POST of a raw body: status and the body as text.
fn raw_post(server: &Server, token: &str, path: &str, body: &str) -> (u16, String) {
    support::auth::exchange(server, token, "POST", path, Some(body))
}

fn get_text(server: &Server, token: &str, path: &str) -> String {
    let (status, body) = support::auth::exchange(server, token, "GET", path, None);
    assert_eq!(status, 200, "{body}");
    body
}

/// A data directory holding `persons` sample persons, projected.
fn loaded(dir: &std::path::Path, persons: &str) -> String {
    let data = dir.join("data");
    let file = dir.join("sample.jsonl");
    let o = qledger(&[
        "generate",
        "--persons",
        persons,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let o = qledger(&[
        "publish",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    data.to_str().unwrap().to_owned()
}

#[test]
fn readyz_waits_for_the_projector_to_catch_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = loaded(tmp.path(), "8000");
    // Views are derived: dropped, they are rebuilt from the log at start.
    std::fs::remove_dir_all(std::path::Path::new(&data).join("views")).unwrap();
    let server = Server::start(&["--data", &data, "--ready-max-lag", "0"]);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, body) = server.http("GET", "/readyz", None);
        seen.push(status);
        if status == 200 {
            assert_eq!(body["status"], "ready", "{body}");
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "catching_up", "{body}");
        assert!(body["partitions"][0]["lag"].as_u64().is_some(), "{body}");
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        seen.first(),
        Some(&503),
        "the rebuild of ~40k events was over before the first probe: {seen:?}"
    );
    // Liveness never depended on it.
    assert_eq!(server.http("GET", "/healthz", None).0, 200);
    server.stop();
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_flushes() {
    let tmp = tempfile::tempdir().unwrap();
    let sample = tmp.path().join("sample.jsonl");
    let o = qledger(&[
        "generate",
        "--persons",
        "2500",
        "--out",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let events: Vec<Value> = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let n = events.len();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap().to_owned();
    let server = Server::start(&["--data", &data]);
    // The whole request is written before SIGTERM (the server has read most
    // of its 5 MB body by then: it is in flight), then the answer is read.
    let body = Value::Array(events).to_string();
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    {
        use std::io::Write;
        write!(
            stream,
            "POST /v1/events?wait=projected&timeout_ms=60000 HTTP/1.1\r\nHost: x\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        stream.write_all(body.as_bytes()).unwrap();
    }
    server.stop(); // SIGTERM, and a clean exit
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let rest = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        rest.split_once("\r\n").unwrap().1
    } else {
        rest
    };
    let end = rest.rfind('}').unwrap() + 1;
    let body: Value = serde_json::from_str(&rest[..end]).unwrap();
    assert_eq!(body["accepted"].as_u64(), Some(n as u64));
    let results = body["results"].as_array().unwrap();
    assert!(
        results.iter().all(|r| r["projected"] == true),
        "every event projected before exit"
    );
    // What was acknowledged is durable and the flushed views match a rebuild.
    let o = qledger(&["verify", "--data", &data]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
}
