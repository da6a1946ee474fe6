//! FHIR R4 answers through a running server (`Accept: application/fhir+json`):
//! a CoverageEligibilityResponse with its Patient and Coverages contained, by
//! insured number and by card, with duplicate enrolment and with no
//! qualification on the date; OperationOutcomes for misses. Every response
//! is validated by fhir.resources (Python, an independent implementation).

mod support;

use std::path::Path;
use std::process::Command;

use ledger::event::{examples, json};
use serde_json::{json, Value};
use support::{http_to, text, Server};

/// The Python with fhir.resources (scripts/setup makes it).
fn fhir_python() -> String {
    std::env::var("QLEDGER_FHIR_PYTHON")
        .unwrap_or_else(|_| "/var/cache/qledger/venv-fhir/bin/python".into())
}

/// GET with `Accept: application/fhir+json`: status, content type, body.
fn fhir_get(server: &Server, path: &str) -> (u16, String, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: application/fhir+json\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let media = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let end = body.rfind('}').map(|i| i + 1).unwrap_or(0);
    let start = body.find('{').unwrap_or(0);
    (
        status,
        media,
        serde_json::from_str(&body[start..end]).unwrap_or(Value::Null),
    )
}

#[test]
fn eligibility_answers_in_fhir_r4_validate_independently() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&["--data", data.to_str().unwrap()]);

    // The example person (30 %, あいう 1234 01, linked card 0A1B2C3D4E5F),
    // also enrolled with 後期高齢者医療 from 2024-06-01 (duplicate enrolment).
    let all = examples::all();
    let mut linked = json::to_value(
        all.iter()
            .find(|e| e.event_type().name() == "CardLinked")
            .unwrap(),
    );
    linked.as_object_mut().unwrap().remove("request_id");
    let mut second = json::to_value(&all[0]);
    second["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    second["envelope"]["source"] = json!("insurer-39131008");
    second["qualification_id"] = json!("Q-LATE-1");
    second["insurer_number"] = json!("39131008");
    second["card_number"] = json!("12345678");
    second["card_kind"] = json!("LATE_ELDERLY");
    second["copay_percent"] = json!(10);
    second["acquired_on"] = json!("2024-06-01");
    second.as_object_mut().unwrap().remove("card_symbol");
    second.as_object_mut().unwrap().remove("branch");
    let batch = json!([json::to_value(&all[0]), linked, second]);
    let (status, body) = http_to(
        server.addr(),
        None,
        "POST",
        "/v1/events?wait=projected",
        Some(&batch),
    )
    .unwrap();
    assert_eq!((status, &body["accepted"]), (200, &json!(3)), "{body}");

    let number =
        "/v1/eligibility?insurer=01130012&symbol=%E3%81%82%E3%81%84%E3%81%86&number=1234&branch=01";
    let cases = [
        (
            "one",
            format!("{number}&on=2024-05-01"),
            200,
            "CoverageEligibilityResponse",
        ),
        (
            "two",
            format!("{number}&on=2024-07-01"),
            200,
            "CoverageEligibilityResponse",
        ),
        (
            "none",
            format!("{number}&on=2024-03-01"),
            200,
            "CoverageEligibilityResponse",
        ),
        (
            "card",
            "/v1/eligibility/card/0A1B2C3D4E5F?birth_date=1980-05-12&on=2024-05-01".into(),
            200,
            "CoverageEligibilityResponse",
        ),
        (
            "wrong-birth",
            "/v1/eligibility/card/0A1B2C3D4E5F?birth_date=1980-05-13".into(),
            404,
            "OperationOutcome",
        ),
        (
            "unknown-card",
            "/v1/eligibility/card/FFFF0001?birth_date=1980-05-13".into(),
            404,
            "OperationOutcome",
        ),
        (
            "unknown",
            "/v1/eligibility?insurer=01130012&number=9999&branch=01".into(),
            404,
            "OperationOutcome",
        ),
    ];
    let dir = tmp.path().join("fhir");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    let mut answers = std::collections::HashMap::new();
    for (name, path, want, kind) in &cases {
        let (status, media, body) = fhir_get(&server, path);
        assert_eq!(status, *want, "{name}: {body}");
        assert!(
            media.starts_with("application/fhir+json"),
            "{name}: {media}"
        );
        assert_eq!(body["resourceType"], *kind, "{name}: {body}");
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        files.push(file);
        answers.insert(*name, body);
    }
    let coverages = |b: &Value| -> Vec<Value> {
        b["contained"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|r| r["resourceType"] == "Coverage")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let one = &answers["one"];
    assert_eq!(one["outcome"], "complete");
    assert_eq!(one["servicedDate"], "2024-05-01");
    assert_eq!(one["insurer"]["identifier"]["value"], "01130012");
    let cov = coverages(one);
    assert_eq!(cov.len(), 1);
    assert_eq!(cov[0]["payor"][0]["identifier"]["value"], "01130012");
    assert_eq!(cov[0]["costToBeneficiary"][0]["valueQuantity"]["value"], 30);
    assert_eq!(cov[0]["period"]["start"], "2024-04-01");
    assert_eq!(one["insurance"][0]["coverage"]["reference"], "#coverage-1");
    let two = coverages(&answers["two"]);
    assert_eq!(two.len(), 2, "duplicate enrolment: {}", answers["two"]);
    let payors: Vec<&str> = two
        .iter()
        .map(|c| c["payor"][0]["identifier"]["value"].as_str().unwrap())
        .collect();
    assert_eq!(payors, ["01130012", "39131008"]);
    assert!(answers["none"].get("insurance").is_none());
    assert_eq!(coverages(&answers["card"]).len(), 1);
    // A wrong birth date looks exactly like an unknown serial.
    assert_eq!(answers["wrong-birth"], answers["unknown-card"]);

    // The CLI's --fhir gives the same resources, from the server and from
    // the data directory (only the creation instant and the response's own
    // request id differ).
    let without_created = |mut v: Value| {
        v.as_object_mut().unwrap().remove("created");
        v.as_object_mut().unwrap().remove("request");
        v
    };
    let base = format!("http://{}", server.addr());
    let data_dir = data.to_str().unwrap();
    let number_args = [
        "eligibility",
        "--insurer",
        "01130012",
        "--symbol",
        "あいう",
        "--number",
        "1234",
        "--branch",
        "01",
        "--on",
        "2024-07-01",
        "--fhir",
    ];
    for (name, target) in [
        ("cli-server", ["--server", base.as_str()]),
        ("cli-data", ["--data", data_dir]),
    ] {
        let out = support::qledger(&[&number_args[..], &target[..]].concat());
        assert_eq!(out.status.code(), Some(0), "{name}: {}", text(&out.stderr));
        let body: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            without_created(body.clone()),
            without_created(answers["two"].clone()),
            "{name}"
        );
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, body.to_string()).unwrap();
        files.push(file);
    }
    let out = support::qledger(&[
        "eligibility",
        "--insurer",
        "01130012",
        "--number",
        "9999",
        "--branch",
        "01",
        "--fhir",
        "--data",
        data_dir,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body, answers["unknown"]);

    // An independent implementation accepts every one of them.
    let out = Command::new(fhir_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/fhir_validate.py"))
        .args(&files)
        .output()
        .expect("run the FHIR validator (scripts/setup installs it)");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("valid "))
            .count(),
        cases.len() + 2
    );

    // Without the FHIR media type the answer is the ledger's own JSON.
    let (status, plain) = http_to(
        server.addr(),
        None,
        "GET",
        &format!("{number}&on=2024-05-01"),
        None,
    )
    .unwrap();
    assert_eq!((status, &plain["status"]), (200, &json!("found")));
    server.stop();
}
