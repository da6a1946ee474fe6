//! `GET /openapi.json` on a running `qledger serve`: served without
//! credentials when authentication is on, an OpenAPI 3.1 document, and every
//! operation it describes is one the server routes (the unit tests of
//! `qledger::http::openapi` hold the converse: every route is described).

mod support;

use serde_json::{json, Value};
use support::Server;

#[test]
fn the_document_is_served_without_credentials_and_parses_as_openapi_3() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Server::start_secured(&["--data", data], &[]);

    let (status, doc) = server.http("GET", "/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "qledger");
    assert!(doc["paths"]["/v1/eligibility"]["get"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    // The routes it describes are not open.
    let (status, _) = server.http("GET", "/v1/whoami", None);
    assert_eq!(status, 401);
    // `qledger openapi` prints the same document, without a server.
    let out = support::qledger(&["openapi"]);
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, doc);
    assert!(doc["paths"]["/v1/onlinecheck"]["post"].is_object());
    server.stop();
}

#[test]
fn every_documented_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Server::start(&["--data", data]);
    let (_, doc) = server.http("GET", "/openapi.json", None);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20);
    for (path, item) in paths {
        // Path parameters get a value of every parameter's syntax.
        let concrete: String = path
            .split('/')
            .map(|s| if s.starts_with('{') { "0A1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            let method = method.to_ascii_uppercase();
            let body = (method == "POST").then(|| json!({}));
            let (status, answer) = server.http(&method, &concrete, body.as_ref());
            assert_ne!(status, 405, "{method} {path}: {answer}");
            assert_ne!(
                answer.get("type").and_then(Value::as_str),
                Some("/problems/no-such-route"),
                "{method} {path}"
            );
        }
    }
    server.stop();
}
