//! Batch check (一括照会) through a running server and the CLI: thousands
//! of pairs as JSON lines and as CSV, answered one line per pair in order,
//! bad lines answered with their field and rule while the rest go on, the
//! same answers from the data directory, scopes and the card-miss limit
//! applied per pair.

mod support;

use support::auth::issue;

use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::{qledger, text, Server};

fn lines(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn check_batch(server: &Server, token: &str, file: &std::path::Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args([
            "check-batch",
            file.to_str().unwrap(),
            "--server",
            &server.url,
        ])
        .env("QLEDGER_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    lines(&out.stdout)
}

#[test]
fn thousands_of_pairs_answered_in_order_with_errors_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let insurer = support::auth::insurer_a(data);
    let other = issue(
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
    let clinic = support::auth::clinic(data);
    let server = Server::start_secured(&["--data", data, "--miss-limit", "1000"], &[]);
    let batch = support::auth::example_person();
    let (status, body) = server.http_as(
        Some(&insurer),
        "POST",
        "/v1/events?wait=projected",
        Some(&batch),
    );
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body}");

    // 6,000 lines: mostly hits, some misses, some cards, and bad lines.
    let found = r#"{"insurer": "01130012", "symbol": "あいう", "number": "1234", "branch": "01", "on": "2024-05-01"}"#;
    let missing =
        r#"{"insurer": "01130012", "symbol": "あいう", "number": "9999", "branch": "01"}"#;
    let card =
        r#"{"card": "0A1B2C3D4E5F", "birth_date": "1980-05-12", "on": "2024-05-01", "id": "c-1"}"#;
    let wrong_birth = r#"{"card": "0A1B2C3D4E5F", "birth_date": "1999-09-09"}"#;
    let no_birth = r#"{"card": "0A1B2C3D4E5F"}"#;
    let bad_check_digit = r#"{"insurer": "01130013", "number": "1234"}"#;
    let mut file = String::new();
    let mut expected = Vec::new();
    for i in 0..6_000 {
        let (line, status) = match i % 500 {
            7 => (missing, "not_found"),
            11 => (card, "found"),
            13 => (wrong_birth, "not_found"),
            17 => (no_birth, "error"),
            19 => (bad_check_digit, "error"),
            23 => ("not json at all", "error"),
            _ => (found, "found"),
        };
        file.push_str(line);
        file.push('\n');
        expected.push(status);
    }
    let path = tmp.path().join("pairs.jsonl");
    std::fs::write(&path, &file).unwrap();
    let answers = check_batch(&server, &clinic, &path);
    assert_eq!(answers.len(), expected.len());
    for (i, (a, want)) in answers.iter().zip(&expected).enumerate() {
        assert_eq!(a["line"], i as u64 + 1, "in order: {a}");
        assert_eq!(a["status"], *want, "line {}: {a}", i + 1);
    }
    assert_eq!(answers[11]["id"], "c-1");
    assert_eq!(
        answers[11]["qualifications"][0]["insurer_number"],
        "01130012"
    );
    assert_eq!(answers[17]["error"]["field"], "birth_date");
    assert_eq!(answers[19]["error"]["field"], "insurer");

    // CSV with a header.
    let csv = tmp.path().join("pairs.csv");
    std::fs::write(
        &csv,
        "id,insurer,symbol,number,branch,card,birth_date,on\n\
         a,01130012,あいう,1234,01,,,2024-05-01\n\
         b,,,,,0A1B2C3D4E5F,1980-05-12,2024-05-01\n\
         c,01130012,あいう,1234\n",
    )
    .unwrap();
    let answers = check_batch(&server, &clinic, &csv);
    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["found", "found", "error"]);
    assert_eq!(answers[1]["id"], "b");

    // Scopes per pair: another insurer's number is refused, not the batch.
    let scoped = tmp.path().join("scoped.jsonl");
    std::fs::write(
        &scoped,
        format!(
            "{found}\n{}\n",
            r#"{"insurer": "06130017", "symbol": "1", "number": "1", "branch": "01"}"#
        ),
    )
    .unwrap();
    let answers = check_batch(&server, &other, &scoped);
    assert_eq!(answers[0]["status"], "forbidden");
    assert_eq!(answers[1]["status"], "not_found");

    // Every answer became a verification record of the clinic.
    let (status, _) = server.http_as(Some(&clinic), "GET", "/v1/whoami", None);
    assert_eq!(status, 200);
    server.stop();

    // The same file from the data directory: the same statuses.
    let out = qledger(&["check-batch", path.to_str().unwrap(), "--data", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let local = lines(&out.stdout);
    let statuses: Vec<&str> = local
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, expected);
    let out = qledger(&[
        "verifications",
        "--data",
        data,
        "--institution",
        "1311234567",
        "--limit",
        "100000",
    ]);
    let records = text(&out.stdout).lines().count();
    assert_eq!(records, 6_000 - 3 * 12 + 2, "one record per answered pair");
}

#[test]
fn card_misses_in_a_batch_count_against_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let clinic = support::auth::clinic(data);
    let server = Server::start_secured(&["--data", data, "--miss-limit", "3"], &[]);
    let path = tmp.path().join("probe.jsonl");
    let probe = r#"{"card": "FFFF0001", "birth_date": "1980-05-12"}"#;
    std::fs::write(&path, format!("{probe}\n").repeat(5)).unwrap();
    let answers = check_batch(&server, &clinic, &path);
    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "not_found",
            "not_found",
            "not_found",
            "rate_limited",
            "rate_limited"
        ]
    );
    server.stop();
}
