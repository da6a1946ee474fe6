//! Credentials and raw requests for the tests of a server with
//! authentication on: tokens issued through the CLI, and requests whose
//! body is text (JSON lines, CSV, SVG) rather than one JSON value.
#![allow(dead_code)]

use ledger::event::{examples, json};
use serde_json::{json, Value};

use super::{qledger, text, Server};

/// Issues a token through the CLI (`--quiet` prints only the token).
pub fn issue(data: &str, args: &[&str]) -> String {
    let mut all = vec!["tokens", "issue", "--data", data, "--quiet"];
    all.extend_from_slice(args);
    let out = qledger(&all);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

/// A token for insurer 01130012, publishing as `insurer-01130012`.
pub fn insurer_a(data: &str) -> String {
    issue(
        data,
        &[
            "--name",
            "ins-a",
            "--role",
            "insurer",
            "--publisher",
            "insurer-01130012",
            "--insurer",
            "01130012",
        ],
    )
}

/// A token for the clinic 1311234567.
pub fn clinic(data: &str) -> String {
    issue(
        data,
        &[
            "--name",
            "clinic",
            "--role",
            "institution",
            "--institution",
            "1311234567",
        ],
    )
}

/// One exchange with a raw body: status and the answer's body as text
/// (a chunked answer must come as one chunk).
pub fn exchange(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let (_, rest) = body.split_once("\r\n").unwrap_or(("", body));
        rest.rsplit_once("\r\n0\r\n")
            .map(|(b, _)| b.to_owned())
            .unwrap_or_default()
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The example person as insurer 01130012 publishes it: the acquisition
/// (あいう 1234 01, born 1980-05-12) and the link of card 0A1B2C3D4E5F.
pub fn example_person() -> Value {
    let all = examples::all();
    let mut linked = json::to_value(
        all.iter()
            .find(|e| e.event_type().name() == "CardLinked")
            .unwrap(),
    );
    linked["envelope"]["source"] = json!("insurer-01130012");
    linked.as_object_mut().unwrap().remove("request_id");
    json!([json::to_value(&all[0]), linked])
}
