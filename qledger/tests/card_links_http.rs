//! Card-link requests over HTTP against a real `qledger serve` process on a
//! socket, with certificates of a PKI made here (see `support::pki`): a link,
//! the refusals (revoked and expired certificates, an unknown number, a serial
//! linked elsewhere, bad input), an unlink, and a server without `[cards]`.

use std::path::Path;

use base64::Engine;
use serde_json::{json, Value};

mod support;
use support::cards::*;
use support::pki::*;
use support::{qledger, Server};

fn serve(data: &Path, config: Option<&Path>) -> Server {
    let data = data.to_str().unwrap();
    match config {
        Some(config) => Server::start(&["--data", data, "--config", config.to_str().unwrap()]),
        None => Server::start(&["--data", data]),
    }
}

fn http(server: &Server, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    server.http(method, path, body)
}

#[test]
fn link_requests_over_http_are_decided_with_verified_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let setup = card_setup(dir.path(), "");
    let (root, config) = (&setup.root, setup.config.clone());
    let valid = |serial: &[u8]| setup.card(serial);
    let good = valid(&[0xaa, 0x01]);
    let revoked = valid(&[0xcc, 0x03]);
    let mut expired_spec = spec(&[0xdd, 0x04]);
    (expired_spec.from, expired_spec.to) = ((2020, 1, 1), (2025, 1, 1));
    let expired = issue(root, expired_spec);
    let der_base64 = base64::engine::general_purpose::STANDARD.encode(&good.der);

    let server = serve(&dir.path().join("data"), Some(&config));
    let events = json!([
        acquisition("L-ONE", "1234", "Q-ONE"),
        acquisition("L-TWO", "2345", "Q-TWO"),
    ]);
    let (status, body) = http(&server, "POST", "/v1/events?wait=projected", Some(&events));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 2, "{body}");

    // Linked, with the certificate as PEM; the same card again changes nothing
    // (as base64 DER this time).
    let (status, body) = http(
        &server,
        "POST",
        "/v1/card-links",
        Some(&link_request("R-1", "1234", &good.pem)),
    );
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("linked")),
        "{body}"
    );
    assert_eq!(body["card_serial"], "AA01");
    let (status, body) = http(
        &server,
        "POST",
        "/v1/card-links",
        Some(&link_request("R-1b", "1234", &der_base64)),
    );
    assert_eq!(
        (status, body["decision"].as_str()),
        (200, Some("already_linked")),
        "{body}"
    );
    let (status, body) = http(
        &server,
        "GET",
        "/v1/eligibility/card/AA01?birth_date=1980-05-12",
        None,
    );
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("found")),
        "{body}"
    );

    // The refusals, each logged as the person's decision.
    let unmatched = valid(&[0xee, 0x05]);
    for (id, number, cert, reason) in [
        ("R-2", "2345", good.pem.as_str(), "SERIAL_LINKED_ELSEWHERE"),
        ("R-3", "2345", revoked.pem.as_str(), "CERTIFICATE_REVOKED"),
        ("R-4", "2345", expired.pem.as_str(), "CERTIFICATE_EXPIRED"),
        (
            "R-5",
            "9999",
            unmatched.pem.as_str(),
            "NO_SUCH_QUALIFICATION",
        ),
    ] {
        let (status, body) = http(
            &server,
            "POST",
            "/v1/card-links",
            Some(&link_request(id, number, cert)),
        );
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["decision"], "rejected", "{id}: {body}");
        assert_eq!(body["reason"], reason, "{id}: {body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            !detail.contains(HOLDER),
            "no personal field of the certificate"
        );
    }
    let (_, body) = http(
        &server,
        "GET",
        "/v1/eligibility/card/CC03?birth_date=1980-05-12",
        None,
    );
    assert_eq!(
        body["type"], "/problems/not-found",
        "a refused card is not linked"
    );

    // Bad input is refused before any decision, naming the field.
    let (status, body) = http(
        &server,
        "POST",
        "/v1/card-links",
        Some(&link_request("R-6", "2345", "not a certificate")),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("certificate")),
        "{body}"
    );
    let (status, body) = http(
        &server,
        "POST",
        "/v1/card-links",
        Some(&link_request("R-7", "12AB", &good.pem)),
    );
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("number")),
        "{body}"
    );

    // A lost card: unlinked from tomorrow; asked about tomorrow, not linked.
    let today = ledger::domain::Day::today_in_japan();
    let tomorrow = today.succ();
    let (status, body) = http(
        &server,
        "POST",
        "/v1/card-links/AA01/unlink",
        Some(&json!({"reason": "CARD_LOST", "on": tomorrow.to_string()})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "CARD_LOST");
    let (status, body) = http(
        &server,
        "GET",
        &format!("/v1/eligibility/card/AA01?birth_date=1980-05-12&on={tomorrow}"),
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "/problems/card-not-linked", "{body}");
    assert_eq!(body["since"], tomorrow.to_string());
    let (status, _) = http(
        &server,
        "POST",
        "/v1/card-links/0BAD/unlink",
        Some(&json!({"reason": "CARD_LOST"})),
    );
    assert_eq!(status, 404);

    // The decisions are in the persons' histories (a replay reproduces them).
    let (status, body) = http(&server, "GET", "/v1/persons/L-ONE/history", None);
    assert_eq!(status, 200);
    let card_rows = body["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "card_link")
        .count();
    assert!(card_rows >= 1, "{body}");
    drop(server);

    // Without [cards], link requests are refused as not configured.
    let bare = serve(&dir.path().join("bare"), None);
    let (status, body) = http(
        &bare,
        "POST",
        "/v1/card-links",
        Some(&link_request("R-8", "1234", &good.pem)),
    );
    assert_eq!(
        (status, body["type"].as_str()),
        (501, Some("/problems/not-configured")),
        "{body}"
    );
}

#[test]
fn link_and_unlink_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let root = ca("Test JPKI Root CA", None);
    let fresh_crl = crl_with(&root, &[&[0xcc, 0x03]], 1, (2026, 1, 1), (2035, 1, 1));
    std::fs::write(path("root.pem"), &root.pem).unwrap();
    std::fs::write(path("root.crl.pem"), &fresh_crl.pem).unwrap();
    std::fs::write(
        path("qledger.toml"),
        format!(
            "[cards]\ntrust_anchors = [\"{}\"]\ncrls = [\"{}\"]\n",
            path("root.pem"),
            path("root.crl.pem")
        ),
    )
    .unwrap();
    let issue_card = |serial: &[u8], file: &str| {
        let mut s = spec(serial);
        s.to = (2035, 1, 1);
        std::fs::write(path(file), issue(&root, s).der).unwrap();
    };
    issue_card(&[0xaa, 0x01], "good.der");
    issue_card(&[0xcc, 0x03], "revoked.der");
    std::fs::write(
        path("events.jsonl"),
        format!("{}\n", acquisition("L-ONE", "1234", "Q-ONE")),
    )
    .unwrap();
    let data = path("data");
    let published = qledger(&["publish", &path("events.jsonl"), "--data", &data]);
    assert_eq!(published.status.code(), Some(0), "{published:?}");

    let link = |id: &str, cert: &str| {
        qledger(&[
            "link-card",
            "--data",
            &data,
            "--config",
            &path("qledger.toml"),
            "--request-id",
            id,
            "--certificate",
            &path(cert),
            "--insurer",
            "01130012",
            "--symbol",
            "あいう",
            "--number",
            "1234",
            "--branch",
            "01",
            "--notice",
        ])
    };
    let linked = link("R-1", "good.der");
    let out = String::from_utf8_lossy(&linked.stdout).into_owned();
    assert_eq!(linked.status.code(), Some(0), "{out}{linked:?}");
    assert!(out.contains("\"linked\"") && out.contains("AA01"), "{out}");
    let refused = link("R-2", "revoked.der");
    let out = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(out.contains("CERTIFICATE_REVOKED"), "{out}");

    let found = qledger(&[
        "eligibility",
        "--data",
        &data,
        "--card",
        "AA01",
        "--birth-date",
        "1980-05-12",
    ]);
    assert_eq!(found.status.code(), Some(0), "{found:?}");
    let tomorrow = ledger::domain::Day::today_in_japan().succ().to_string();
    let unlinked = qledger(&[
        "unlink-card",
        "AA01",
        "--reason",
        "CARD_LOST",
        "--on",
        &tomorrow,
        "--data",
        &data,
    ]);
    assert_eq!(unlinked.status.code(), Some(0), "{unlinked:?}");
    let after = qledger(&[
        "eligibility",
        "--data",
        &data,
        "--card",
        "AA01",
        "--birth-date",
        "1980-05-12",
        "--on",
        &tomorrow,
    ]);
    assert_eq!(after.status.code(), Some(1), "{after:?}");
    let nobody = qledger(&[
        "unlink-card",
        "0BAD",
        "--reason",
        "CARD_LOST",
        "--data",
        &data,
    ]);
    assert_eq!(nobody.status.code(), Some(1), "{nobody:?}");
}
