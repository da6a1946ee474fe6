//! Verification records and metering through a running server and the CLI:
//! an institution reads the answers it was given, page by page, as JSON
//! lines and CSV, and nobody else's; the month's metering counts answers
//! and insured persons per insurer, scoped to an insurer's own numbers, as
//! JSON, CSV and an SVG chart.

mod support;

use support::auth::issue;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::{qledger, text, Server};

/// A GET: status and body text.
fn get(server: &Server, token: &str, path: &str) -> (u16, String) {
    support::auth::exchange(server, token, "GET", path, None)
}

#[test]
fn institutions_read_their_answers_and_insurers_their_metering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let insurer = support::auth::insurer_a(data);
    let clinic = support::auth::clinic(data);
    let other = issue(
        data,
        &[
            "--name",
            "osaka",
            "--role",
            "institution",
            "--institution",
            "2741234567",
        ],
    );
    let auditor = issue(data, &["--name", "aud", "--role", "auditor"]);
    let admin = issue(data, &["--name", "ops", "--role", "admin"]);
    let server = Server::start_secured(&["--data", data], &[]);

    let batch = support::auth::example_person();
    let (status, body) = server.http_as(
        Some(&insurer),
        "POST",
        "/v1/events?wait=projected",
        Some(&batch),
    );
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body}");

    let number =
        "/v1/eligibility?insurer=01130012&symbol=%E3%81%82%E3%81%84%E3%81%86&number=1234&branch=01";
    for _ in 0..2 {
        assert_eq!(server.http_as(Some(&clinic), "GET", number, None).0, 200);
    }
    let unknown =
        "/v1/eligibility?insurer=01130012&symbol=%E3%81%82%E3%81%84%E3%81%86&number=9999&branch=01";
    assert_eq!(server.http_as(Some(&clinic), "GET", unknown, None).0, 404);
    let card = "/v1/eligibility/card/0A1B2C3D4E5F?birth_date=1980-05-12";
    assert_eq!(server.http_as(Some(&clinic), "GET", card, None).0, 200);
    assert_eq!(server.http_as(Some(&other), "GET", number, None).0, 200);
    // An auditor's question is metered but is no institution's record.
    assert_eq!(server.http_as(Some(&auditor), "GET", number, None).0, 200);

    // The clinic's own records, oldest first, as JSON lines.
    let (status, body) = get(&server, &clinic, "/v1/verifications");
    assert_eq!(status, 200, "{body}");
    let records: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{body}");
    assert!(records.iter().all(|r| r["institution"] == "1311234567"));
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["found", "found", "not_found", "found"]);
    assert_eq!(
        records[3]["key"],
        json!({"kind": "card", "serial": "0A1B2C3D4E5F"})
    );
    assert_eq!(records[0]["insurers"], json!(["01130012"]));
    assert_eq!(records[0]["digest"].as_str().unwrap().len(), 64);
    assert_eq!(
        records[0]["digest"], records[1]["digest"],
        "the same answer twice"
    );
    // No more personal data than needed: no name, no birth date.
    assert!(
        !body.contains("山田") && !body.contains("1980-05-12"),
        "{body}"
    );
    // Incrementally, from a cursor.
    let after = records[1]["cursor"].as_u64().unwrap();
    let (_, rest) = get(
        &server,
        &clinic,
        &format!("/v1/verifications?after={after}&limit=1"),
    );
    let rest: Vec<Value> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["cursor"], records[2]["cursor"]);
    // As CSV for the hospital information system.
    let (status, csv) = get(&server, &clinic, "/v1/verifications?format=csv");
    assert_eq!(status, 200);
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .starts_with("cursor,at,institution,key_kind,insurer"));
    assert_eq!(lines.count(), 4, "{csv}");
    // Nobody else's.
    let (status, _) = get(&server, &clinic, "/v1/verifications?institution=2741234567");
    assert_eq!(status, 403);
    let (_, theirs) = get(&server, &other, "/v1/verifications");
    assert_eq!(theirs.lines().count(), 1);
    let (status, _) = get(&server, &auditor, "/v1/verifications");
    assert_eq!(status, 400, "an auditor names the institution");
    let (status, audited) = get(
        &server,
        &auditor,
        "/v1/verifications?institution=1311234567",
    );
    assert_eq!((status, audited.lines().count()), (200, 4));

    // The month's metering: 5 answers naming 01130012 (the miss names no
    // insurer), one insured person.
    let month = &ledger::domain::Day::today_in_japan().to_string()[..7];
    let (status, body) = get(&server, &admin, &format!("/v1/metering?month={month}"));
    assert_eq!(status, 200, "{body}");
    let metering: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        metering["insurers"],
        json!([{"insurer": "01130012", "answers": 5, "insured": 1}]),
        "{body}"
    );
    let (_, csv) = get(
        &server,
        &insurer,
        &format!("/v1/metering?month={month}&format=csv"),
    );
    assert_eq!(
        csv,
        format!("month,insurer,insured,answers\n{month},01130012,1,5\n")
    );
    let (status, svg) = get(
        &server,
        &insurer,
        &format!("/v1/metering/chart.svg?month={month}"),
    );
    assert_eq!(status, 200);
    assert!(
        svg.starts_with("<svg") && svg.contains("01130012"),
        "{}",
        &svg[..100.min(svg.len())]
    );
    // An insurer sees only its own numbers; a clinic none of it.
    let b = issue(
        data,
        &[
            "--name",
            "ins-b",
            "--role",
            "insurer",
            "--publisher",
            "insurer-06130017",
            "--insurer",
            "06130017",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (_, scoped) = get(&server, &b, &format!("/v1/metering?month={month}"));
    assert_eq!(
        serde_json::from_str::<Value>(&scoped).unwrap()["insurers"],
        json!([])
    );
    assert_eq!(get(&server, &clinic, "/v1/metering").0, 403);

    // The CLI, against the server with the clinic's token.
    let out = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(["verifications", "--server", &server.url, "--format", "csv"])
        .env("QLEDGER_TOKEN", &clinic)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 5);
    server.stop();

    // And from the data directory, with the chart written to a file.
    let chart = tmp.path().join("metering.svg");
    let out = qledger(&[
        "metering",
        "--data",
        data,
        "--month",
        month,
        "--csv",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("{month},01130012,1,5")),
        "{}",
        text(&out.stdout)
    );
    assert!(std::fs::read_to_string(&chart)
        .unwrap()
        .contains("answers served"));
    let out = qledger(&[
        "verifications",
        "--data",
        data,
        "--institution",
        "2741234567",
    ]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}
