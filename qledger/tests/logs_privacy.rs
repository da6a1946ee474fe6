//! No personal data in the logs: a full scenario against `qledger serve`
//! logging at debug level as JSON lines — a sample population published,
//! eligibility asked by number and by card with birth dates (right and
//! wrong), a link request with an e-mail address, claims checked, invalid
//! events refused — and then every name, kana name, birth date, card number,
//! card serial and e-mail address the scenario used is looked for in what
//! the server wrote. None may be there.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::cards::{card_setup, link_request};
use support::{qledger, text, Server};

const EMAIL: &str = "taro.privacy-check@example.jp";

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn a_full_scenario_logs_no_personal_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cards = card_setup(dir, "");
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let sample = dir.join("sample.jsonl");
    let o = qledger(&[
        "generate",
        "--persons",
        "300",
        "--out",
        sample.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let events: Vec<Value> = std::fs::read_to_string(&sample)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let server = Server::start_with(
        &[
            "--data",
            data,
            "--config",
            cards.config.to_str().unwrap(),
            "--miss-limit",
            "100000",
        ],
        &[("RUST_LOG", "debug"), ("QLEDGER_LOG_FORMAT", "json")],
    );
    for chunk in events.chunks(500) {
        let (status, body) = server.http(
            "POST",
            "/v1/events?wait=projected",
            Some(&Value::Array(chunk.to_vec())),
        );
        assert_eq!(status, 200, "{body}");
    }

    // What the scenario knows about people, to look for afterwards.
    let mut needles = BTreeSet::new();
    let mut births = std::collections::HashMap::new();
    let mut asked = 0;
    for e in &events {
        match e["type"].as_str() {
            Some("QualificationAcquired") => {
                for f in ["name", "name_kana"] {
                    needles.insert(e[f].as_str().unwrap().to_owned());
                }
                let born = e["birth_date"].as_str().unwrap().to_owned();
                births.insert(e["envelope"]["link"].clone(), born.clone());
                needles.insert(born);
                let number = e["card_number"].as_str().unwrap();
                if number.len() >= 6 {
                    needles.insert(number.to_owned());
                }
                if asked < 40 {
                    asked += 1;
                    let mut q = format!(
                        "/v1/eligibility?insurer={}&number={}",
                        e["insurer_number"].as_str().unwrap(),
                        encode(number)
                    );
                    for (field, param) in [("card_symbol", "symbol"), ("branch", "branch")] {
                        if let Some(v) = e[field].as_str() {
                            q.push_str(&format!("&{param}={}", encode(v)));
                        }
                    }
                    let (status, _) = server.http("GET", &q, None);
                    assert!(status == 200 || status == 404, "{q}: {status}");
                }
            }
            Some("CardLinked") => {
                let serial = e["card_serial"].as_str().unwrap().to_owned();
                if let Some(born) = births.get(&e["envelope"]["link"]) {
                    for b in [born.as_str(), "1901-01-01"] {
                        let path = format!("/v1/eligibility/card/{serial}?birth_date={b}");
                        let (status, _) = server.http("GET", &path, None);
                        assert!(status == 200 || status == 404, "{path}: {status}");
                    }
                }
                needles.insert(serial);
            }
            _ => {}
        }
    }
    assert!(
        needles.len() > 300,
        "the scenario has personal data to look for"
    );

    // A link request with an e-mail address, for a person of our own.
    let mut acquired = support::cards::acquisition("L-PRIV-1", "4404", "Q-PRIV-1");
    acquired["name"] = json!("秘密 花子");
    acquired["name_kana"] = json!("ヒミツ ハナコ");
    acquired["birth_date"] = json!("1977-07-17");
    let (status, body) = server.http("POST", "/v1/events?wait=projected", Some(&acquired));
    assert_eq!(status, 201, "{body}");
    let card = cards.card(&[0x7e, 0x57, 0xa1, 0x1c]);
    let mut request = link_request("R-PRIV-1", "4404", &card.pem);
    request["contact_email"] = json!(EMAIL);
    let (status, body) = server.http("POST", "/v1/card-links", Some(&request));
    assert!(status == 201 || status == 200, "{status} {body}");
    let (status, _) = server.http(
        "GET",
        "/v1/eligibility/card/7E57A11C?birth_date=1977-07-17",
        None,
    );
    assert_eq!(status, 200);
    for n in [
        "秘密 花子",
        "ヒミツ ハナコ",
        "1977-07-17",
        "7E57A11C",
        EMAIL,
    ] {
        needles.insert(n.to_owned());
    }

    // Refused input carrying personal data: an event born after it joined,
    // a claim for a number nobody has.
    let mut bad = acquired.clone();
    bad["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    bad["birth_date"] = json!("2031-03-03");
    needles.insert("2031-03-03".to_owned());
    let (status, _) = server.http("POST", "/v1/events", Some(&bad));
    assert_eq!(status, 422);
    let claim = json!({
        "claim_id": "K-PRIV", "institution": "1311234567", "kind": "MEDICAL",
        "payer": "SOCIAL_INSURANCE_FUND", "billed_insurer": "01130012",
        "card_symbol": "あいう", "card_number": "98765432", "branch": "01",
        "service_month": "2024-04", "service_days": [2], "total_points": 100,
    });
    needles.insert("98765432".to_owned());
    let (status, _) = server.http("POST", "/v1/claims/check", Some(&claim));
    assert!(status < 500, "{status}");

    let logs = server.stop();
    assert!(
        logs.len() > 50,
        "debug logging was on: {} lines",
        logs.len()
    );
    assert!(
        logs.iter().any(|l| l.contains("projected")),
        "the projector logged at debug"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("/v1/eligibility/card/{serial}")),
        "requests are logged by route"
    );
    for line in &logs {
        serde_json::from_str::<Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
    let leaks: Vec<(&String, &String)> = logs
        .iter()
        .flat_map(|line| {
            needles
                .iter()
                .filter(move |n| line.contains(n.as_str()))
                .map(move |n| (n, line))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "{} log lines carry personal data, e.g. {:#?}",
        leaks.len(),
        &leaks[..leaks.len().min(5)]
    );
}
