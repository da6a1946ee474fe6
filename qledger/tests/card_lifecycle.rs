//! A card's life through the public interfaces of a running `qledger serve`
//! (HTTP, and the CLI against it): linked, renewed the same day, the new
//! card's certificate revoked by a CRL the server reloads; and certificate
//! and subsidy windows answered on either side of month and year
//! boundaries, by individual insured number and by card serial.

use std::path::Path;
use std::time::{Duration, Instant};

use ledger::domain::Day;
use serde_json::{json, Value};

mod support;
use support::cards::*;
use support::pki::*;
use support::{qledger, text, Server};

const NUMBER: &str = "1234";

fn serve(data: &Path, config: &Path) -> Server {
    Server::start(&[
        "--data",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ])
}

fn date(d: Day) -> (i32, u8, u8) {
    let text = d.to_string();
    let mut parts = text.split('-').map(|p| p.parse::<i32>().unwrap());
    let (y, m, d) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    (y, m as u8, d as u8)
}

fn card_answer(server: &Server, serial: &str, on: Day) -> (u16, Value) {
    server.http(
        "GET",
        &format!("/v1/eligibility/card/{serial}?birth_date=1980-05-12&on={on}"),
        None,
    )
}

fn publish(server: &Server, events: Value) {
    let (status, body) = server.http("POST", "/v1/events?wait=projected", Some(&events));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"], 0, "{body:#}");
}

#[test]
fn a_card_is_linked_renewed_the_same_day_then_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let setup = card_setup(dir.path(), "");
    let server = serve(&dir.path().join("data"), &setup.config);
    let today = Day::today_in_japan();
    publish(&server, json!([acquisition("L-LIFE", NUMBER, "Q-LIFE")]));

    // Linked over HTTP.
    let first = setup.card(&[0xaa, 0x11]);
    let (status, body) = server.http(
        "POST",
        "/v1/card-links",
        Some(&link_request("R-L1", NUMBER, &first.pem)),
    );
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("linked")),
        "{body}"
    );

    // Renewed the same day, through the CLI: the new card replaces the old,
    // whose link never held on any day.
    let second = setup.card(&[0xbb, 0x22]);
    let pem = dir.path().join("second.pem");
    std::fs::write(&pem, &second.pem).unwrap();
    let renewed = qledger(&[
        "link-card",
        "--server",
        &server.url,
        "--request-id",
        "R-L2",
        "--certificate",
        pem.to_str().unwrap(),
        "--insurer",
        "01130012",
        "--symbol",
        "あいう",
        "--number",
        NUMBER,
        "--branch",
        "01",
    ]);
    assert_eq!(renewed.status.code(), Some(0), "{}", text(&renewed.stderr));
    let decision: Value = serde_json::from_slice(&renewed.stdout).unwrap();
    assert_eq!(decision["decision"], "linked", "{decision}");
    assert_eq!(decision["replaced"], json!(["AA11"]), "{decision}");
    let (status, body) = card_answer(&server, "AA11", today);
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["type"], "/problems/card-not-linked", "{body}");
    assert_eq!(body["since"], today.to_string(), "{body}");
    let (status, body) = card_answer(&server, "BB22", today);
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("found")),
        "{body}"
    );

    // The CA revokes the new card from the day after tomorrow; the server
    // notices the CRL file change by itself and unlinks from that day.
    let revoked_on = today.add_days(2);
    let crl = crl_revoking_at(
        &setup.root,
        &[&[0xcc, 0x03], &[0xbb, 0x22]],
        2,
        (2026, 1, 1),
        (2035, 1, 1),
        date(revoked_on),
    );
    std::fs::write(dir.path().join("root.crl.pem"), &crl.pem).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = card_answer(&server, "BB22", revoked_on);
        if status == 404 {
            assert_eq!(body["type"], "/problems/card-not-linked", "{body}");
            assert_eq!(body["since"], revoked_on.to_string(), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "never unlinked: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Until then the card still answers; a link request with it is refused.
    let (status, body) = card_answer(&server, "BB22", today.succ());
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("found")),
        "{body}"
    );
    let (_, body) = server.http(
        "POST",
        "/v1/card-links",
        Some(&link_request("R-L3", NUMBER, &second.pem)),
    );
    assert_eq!(body["reason"], "CERTIFICATE_REVOKED", "{body}");

    // The person's history has it all, each step with its event.
    let history = qledger(&["history", "L-LIFE", "--server", &server.url]);
    assert_eq!(history.status.code(), Some(0), "{}", text(&history.stderr));
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let links: Vec<&Value> = history["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["kind"] == "card_link" && v["recorded_to"].is_null())
        .collect();
    let reasons: Vec<(&str, &str)> = links
        .iter()
        .map(|v| {
            (
                v["entity_id"].as_str().unwrap(),
                v["snapshot"]["card_link"]["unlink_reason"]
                    .as_str()
                    .unwrap_or("-"),
            )
        })
        .collect();
    assert!(reasons.contains(&("AA11", "CARD_RENEWED")), "{reasons:?}");
    assert!(
        reasons.contains(&("BB22", "CERTIFICATE_REVOKED")),
        "{reasons:?}"
    );
    let requests = history["link_requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    server.stop();

    // Replay reproduces the decisions and the unlink without deciding again.
    let verified = qledger(&[
        "verify",
        "--data",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}",
        text(&verified.stderr)
    );
}

/// An event of the example catalogue for person L-WIN, edited by `edit`.
fn example(kind: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut e = ledger::event::examples::all()
        .into_iter()
        .map(|e| ledger::event::json::to_value(&e))
        .find(|e| e["type"] == kind)
        .unwrap();
    e["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    e["envelope"]["link"] = json!("L-WIN");
    edit(&mut e);
    e
}

#[test]
fn certificate_and_subsidy_windows_hold_to_the_day_across_month_and_year_ends() {
    let dir = tempfile::tempdir().unwrap();
    let setup = card_setup(dir.path(), "");
    let server = serve(&dir.path().join("data"), &setup.config);
    publish(&server, json!([acquisition("L-WIN", NUMBER, "Q-WIN")]));
    let card = setup.card(&[0xd0, 0x01]);
    let (status, body) = server.http(
        "POST",
        "/v1/card-links",
        Some(&link_request("R-W1", NUMBER, &card.pem)),
    );
    assert_eq!(status, 201, "{body}");

    // 限度額適用 C from 2025-08-01 to 2025-12-31, D from 2025-11-01;
    // 特定疾病 from 2025-12-01, ended 2026-02-01. A subsidy from
    // 2026-12-01 to 2027-03-31, 200 yen a visit from 2027-01-01, ended
    // 2027-02-01.
    publish(
        &server,
        json!([
            example("CertificateIssued", |e| {
                e["certificate_id"] = json!("C-LIMIT");
                e["qualification_id"] = json!("Q-WIN");
                e["kind"] = json!("LIMIT_APPLICATION");
                e["limit_category"] = json!("C");
                e["disease"] = Value::Null;
                e["monthly_cap_yen"] = Value::Null;
                e["valid_from"] = json!("2025-08-01");
                e["valid_until"] = json!("2025-12-31");
            }),
            example("CertificateChanged", |e| {
                e["certificate_id"] = json!("C-LIMIT");
                e["effective_on"] = json!("2025-11-01");
                e["limit_category"] = json!("D");
                e["monthly_cap_yen"] = Value::Null;
            }),
            example("CertificateIssued", |e| {
                e["certificate_id"] = json!("C-DISEASE");
                e["qualification_id"] = json!("Q-WIN");
                e["disease"] = json!("HEMOPHILIA");
                e["valid_from"] = json!("2025-12-01");
                e["valid_until"] = Value::Null;
            }),
            example("CertificateEnded", |e| {
                e["certificate_id"] = json!("C-DISEASE");
                e["ended_on"] = json!("2026-02-01");
            }),
            example("SubsidyGranted", |e| {
                e["subsidy_id"] = json!("S-WIN");
                e["card_serial"] = json!("D001");
                e["valid_from"] = json!("2026-12-01");
                e["valid_until"] = json!("2027-03-31");
            }),
            example("SubsidyChanged", |e| {
                e["subsidy_id"] = json!("S-WIN");
                e["effective_on"] = json!("2027-01-01");
            }),
            example("SubsidyEnded", |e| {
                e["subsidy_id"] = json!("S-WIN");
                e["ended_on"] = json!("2027-02-01");
            }),
        ]),
    );

    // A change the certificate's kind does not have is kept as a dead
    // letter, naming the field, and changes nothing.
    let wrong = json!([example("CertificateChanged", |e| {
        e["certificate_id"] = json!("C-LIMIT");
        e["effective_on"] = json!("2025-12-01");
        e["copay_percent"] = json!(20);
        e["monthly_cap_yen"] = Value::Null;
    })]);
    let (status, body) = server.http("POST", "/v1/events?wait=projected", Some(&wrong));
    assert_eq!(status, 200, "{body}");
    let (_, letters) = server.http("GET", "/v1/dead-letters", None);
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["field"], "copay_percent", "{letters:#}");
    assert_eq!(letter["event_type"], "CertificateChanged", "{letters:#}");

    let by_number = |on: &str| {
        let (status, body) = server.http(
            "GET",
            &format!(
                "/v1/eligibility?insurer=01130012&symbol=%E3%81%82%E3%81%84%E3%81%86&number={NUMBER}&branch=01&on={on}"
            ),
            None,
        );
        assert_eq!(status, 200, "{on}: {body}");
        body
    };
    let certificates = |body: &Value| -> Vec<String> {
        let mut out: Vec<String> = body["qualifications"][0]["certificates"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        format!(
                            "{}:{}",
                            c["certificate_id"].as_str().unwrap(),
                            c["limit_category"]
                                .as_str()
                                .or(c["disease"].as_str())
                                .unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    };
    for (on, expected) in [
        ("2025-07-31", vec![]),
        ("2025-08-01", vec!["C-LIMIT:C"]),
        ("2025-10-31", vec!["C-LIMIT:C"]),
        ("2025-11-01", vec!["C-LIMIT:D"]),
        ("2025-11-30", vec!["C-LIMIT:D"]),
        ("2025-12-01", vec!["C-DISEASE:HEMOPHILIA", "C-LIMIT:D"]),
        ("2025-12-31", vec!["C-DISEASE:HEMOPHILIA", "C-LIMIT:D"]),
        ("2026-01-01", vec!["C-DISEASE:HEMOPHILIA"]),
        ("2026-01-31", vec!["C-DISEASE:HEMOPHILIA"]),
        ("2026-02-01", vec![]),
    ] {
        assert_eq!(certificates(&by_number(on)), expected, "on {on}");
    }

    let subsidy = |body: &Value| -> Option<(Value, Value)> {
        let s = body["subsidies"].as_array()?.first()?;
        Some((s["copay_percent"].clone(), s["copay_amount_yen"].clone()))
    };
    for (on, expected) in [
        ("2026-11-30", None),
        ("2026-12-01", Some((json!(0), Value::Null))),
        ("2026-12-31", Some((json!(0), Value::Null))),
        ("2027-01-01", Some((json!(0), json!(200)))),
        ("2027-01-31", Some((json!(0), json!(200)))),
        ("2027-02-01", None),
    ] {
        assert_eq!(subsidy(&by_number(on)), expected, "by number on {on}");
        let (status, body) = card_answer(&server, "D001", on.parse().unwrap());
        assert_eq!(status, 200, "{body}");
        assert_eq!(subsidy(&body), expected, "by card on {on}");
    }

    // The CLI answers the same from the server.
    let cli = |on: &str| {
        let o = qledger(&[
            "eligibility",
            "--card",
            "D001",
            "--birth-date",
            "1980-05-12",
            "--on",
            on,
            "--server",
            &server.url,
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    assert_eq!(subsidy(&cli("2026-12-31")), Some((json!(0), Value::Null)));
    assert_eq!(subsidy(&cli("2027-01-01")), Some((json!(0), json!(200))));
    server.stop();
}
