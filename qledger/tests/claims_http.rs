//! Claims through a running `qledger serve`: registered by a payer,
//! re-decided by the ledger as qualifications change after the fact, read
//! back with their decision history and from the payer's feed, checked
//! before submission as known now and at an instant, and rebuilt by replay.

use serde_json::{json, Value};

mod support;
use support::{qledger, text, Server};

const KYOKAI: &str = "01130012";
const SOCIETY: &str = "06139000";
const SEAMEN: &str = "02130011";
const LATE_ELDERLY: &str = "39132014";
const NHI: &str = "138057";
const DAY_LABOURER: &str = "03130010";

/// A qualification of person `link` with `insurer` from `from`; the card
/// kind and number shape follow the insurer.
fn acquired(link: &str, qualification: &str, insurer: &str, number: &str, from: &str) -> Value {
    let mut e = ledger::event::json::to_value(&ledger::event::examples::all()[0]);
    e["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    e["envelope"]["link"] = json!(link);
    e["qualification_id"] = json!(qualification);
    e["insurer_number"] = json!(insurer);
    e["card_number"] = json!(number);
    e["acquired_on"] = json!(from);
    let kind = match insurer {
        SEAMEN => "SEAMEN_INSURANCE",
        DAY_LABOURER => "DAY_LABOURER_ELIGIBILITY",
        LATE_ELDERLY => "LATE_ELDERLY",
        NHI => "NATIONAL_HEALTH_INSURANCE",
        _ => "HEALTH_INSURANCE",
    };
    e["card_kind"] = json!(kind);
    if insurer == LATE_ELDERLY {
        e.as_object_mut().unwrap().remove("card_symbol");
        e.as_object_mut().unwrap().remove("branch");
        e["birth_date"] = json!("1945-05-12");
        e["copay_percent"] = json!(10);
    }
    e
}

fn event(link: &str, kind: &str, body: Value) -> Value {
    let mut e = body;
    e["type"] = json!(kind);
    e["envelope"] = json!({
        "event_id": uuid::Uuid::now_v7().to_string(),
        "link": link,
        "produced_at": "2024-05-20T00:00:00Z",
        "source": "insurer-01130012",
    });
    e
}

fn lost(link: &str, qualification: &str, on: &str, reason: &str) -> Value {
    event(
        link,
        "QualificationLost",
        json!({"qualification_id": qualification, "lost_on": on, "reason": reason}),
    )
}

/// A certificate of `kind` for qualification `qualification`, valid
/// `from`..=`until`, with no kind-specific terms.
fn certificate_of(
    link: &str,
    id: &str,
    qualification: &str,
    kind: &str,
    from: &str,
    until: &str,
) -> Value {
    event(
        link,
        "CertificateIssued",
        json!({"certificate_id": id, "qualification_id": qualification, "kind": kind,
               "valid_from": from, "valid_until": until}),
    )
}

fn publish(server: &Server, events: Value) -> Value {
    let (status, body) = server.http("POST", "/v1/events?wait=projected", Some(&events));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rejected"], 0, "{body:#}");
    body
}

fn claim(id: &str, insurer: &str, number: &str, month: &str, days: &[u8]) -> Value {
    let nhi = insurer == NHI;
    let mut c = json!({
        "claim_id": id,
        "institution": "1311234567",
        "kind": "MEDICAL",
        "payer": if nhi || insurer == LATE_ELDERLY { "NHI_FEDERATION" } else { "SOCIAL_INSURANCE_FUND" },
        "billed_insurer": insurer,
        "card_symbol": "あいう",
        "card_number": number,
        "branch": "01",
        "service_month": month,
        "service_days": days,
        "total_points": 850,
    });
    if insurer == LATE_ELDERLY {
        c.as_object_mut().unwrap().remove("card_symbol");
        c.as_object_mut().unwrap().remove("branch");
    }
    c
}

fn register(server: &Server, claim: &Value) -> Value {
    let (status, body) = server.http("POST", "/v1/claims", Some(claim));
    assert_eq!(status, 201, "{body:#}");
    body
}

fn decision(server: &Server, id: &str) -> Value {
    let (status, body) = server.http("GET", &format!("/v1/claims/{id}"), None);
    assert_eq!(status, 200, "{body:#}");
    body["decisions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone()
}

fn action(server: &Server, id: &str) -> String {
    decision(server, id)["decision"]["action"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn claims_are_decided_again_as_qualifications_change_after_the_fact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&["--data", data.to_str().unwrap()]);

    // p17: moved from A (協会けんぽ) to B (健保組合) on 1 April; the claim
    // for 2 April went to A, whose card the patient showed.
    publish(
        &server,
        json!([acquired("L-P17", "Q-A", KYOKAI, "1234", "2020-04-01")]),
    );
    let first = register(&server, &claim("K-P17", KYOKAI, "1234", "2024-04", &[2]));
    assert_eq!(first["decision"]["action"], "keep", "{first:#}");
    assert_eq!(first["link"], "L-P17");
    let before_may = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // A records the loss; nothing is valid on 2 April: return.
    publish(
        &server,
        json!([lost("L-P17", "Q-A", "2024-04-01", "EMPLOYMENT_ENDED")]),
    );
    assert_eq!(action(&server, "K-P17"), "return");
    // B registers the acquisition in May: re-route to B.
    let b = acquired("L-P17", "Q-B", SOCIETY, "5678", "2024-04-01");
    publish(&server, json!([b.clone()]));
    let d = decision(&server, "K-P17");
    assert_eq!(d["decision"]["action"], "reroute", "{d:#}");
    assert_eq!(d["decision"]["insurer"], SOCIETY);
    assert_eq!(d["caused_by"]["event_id"], b["envelope"]["event_id"]);
    assert_eq!(d["based_on"][0]["event_id"], b["envelope"]["event_id"]);
    let (_, history) = server.http("GET", "/v1/claims/K-P17", None);
    let actions: Vec<&str> = history["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["keep", "return", "reroute"]);

    // B withdraws its acquisition (a retraction): the decision before holds
    // again, and is recorded again.
    publish(
        &server,
        json!([event(
            "L-P17",
            "QualificationRetracted",
            json!({
                "retracted_qualification_id": "Q-B", "reason": "keyed for the wrong person"
            })
        )]),
    );
    assert_eq!(action(&server, "K-P17"), "return");

    // Pre-submission check, registering nothing: as known now (return),
    // and as the ledger knew it before the loss was recorded (keep).
    let check = claim("K-CHECK", KYOKAI, "1234", "2024-04", &[2]);
    let (status, now) = server.http("POST", "/v1/claims/check", Some(&check));
    assert_eq!(status, 200, "{now:#}");
    assert_eq!(now["decision"]["action"], "return", "{now:#}");
    let (_, then) = server.http(
        "POST",
        &format!("/v1/claims/check?as_of={}", before_may.replace('+', "%2B")),
        Some(&check),
    );
    assert_eq!(then["decision"]["action"], "keep", "{then:#}");
    let (status, _) = server.http("GET", "/v1/claims/K-CHECK", None);
    assert_eq!(status, 404, "a check registers nothing");

    // Changed on the 16th, service days on the 10th and 20th: split.
    publish(
        &server,
        json!([
            acquired("L-SPLIT", "Q-S1", KYOKAI, "2001", "2020-01-01"),
            lost("L-SPLIT", "Q-S1", "2024-06-16", "EMPLOYMENT_ENDED"),
            acquired("L-SPLIT", "Q-S2", SOCIETY, "2002", "2024-06-16"),
        ]),
    );
    let split = register(
        &server,
        &claim("K-SPLIT", KYOKAI, "2001", "2024-06", &[10, 20]),
    );
    assert_eq!(split["decision"]["action"], "split", "{split:#}");
    let parts = split["decision"]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["insurer"], KYOKAI);
    assert_eq!(parts[0]["days"], json!(["2024-06-10"]));
    assert_eq!(parts[1]["insurer"], SOCIETY);
    assert_eq!(parts[1]["days"], json!(["2024-06-20"]));

    // 船員保険 and 後期高齢 at once: a claim to either is kept.
    publish(
        &server,
        json!([
            acquired("L-DUAL", "Q-D1", SEAMEN, "3001", "2020-01-01"),
            acquired("L-DUAL", "Q-D2", LATE_ELDERLY, "30000017", "2020-01-01"),
        ]),
    );
    let dual = register(
        &server,
        &claim("K-DUAL", LATE_ELDERLY, "30000017", "2024-06", &[3]),
    );
    assert_eq!(dual["decision"]["action"], "keep", "{dual:#}");

    // 国保, then 協会けんぽ from 1 June recorded late: the claim moves to
    // the other payer organisation.
    publish(
        &server,
        json!([acquired("L-MOVE", "Q-M1", NHI, "4001", "2020-01-01")]),
    );
    let moved = register(&server, &claim("K-MOVE", NHI, "4001", "2024-06", &[5]));
    assert_eq!(moved["decision"]["action"], "keep", "{moved:#}");
    publish(
        &server,
        json!([
            lost("L-MOVE", "Q-M1", "2024-06-01", "JOINED_OTHER_INSURANCE"),
            acquired("L-MOVE", "Q-M2", KYOKAI, "4002", "2024-06-01"),
        ]),
    );
    let d = decision(&server, "K-MOVE");
    assert_eq!(d["decision"]["action"], "move_payer", "{d:#}");
    assert_eq!(d["decision"]["payer"], "SOCIAL_INSURANCE_FUND");

    // Death recorded after the claim: returned.
    publish(
        &server,
        json!([acquired("L-DEATH", "Q-X", KYOKAI, "5001", "2020-01-01")]),
    );
    register(&server, &claim("K-DEATH", KYOKAI, "5001", "2024-06", &[20]));
    publish(
        &server,
        json!([lost("L-DEATH", "Q-X", "2024-06-11", "DEATH")]),
    );
    let d = decision(&server, "K-DEATH");
    assert_eq!(d["decision"]["action"], "return", "{d:#}");
    assert_eq!(d["decision"]["uncovered_days"], json!(["2024-06-20"]));

    // The claim applied 限度額 区分 C; the new insurer's certificate says D:
    // review, with the re-route proposed.
    publish(
        &server,
        json!([acquired("L-CAP", "Q-C1", KYOKAI, "6001", "2020-01-01"),]),
    );
    let mut capped = claim("K-CAP", KYOKAI, "6001", "2024-07", &[8]);
    capped["limit_category"] = json!("C");
    register(&server, &capped);
    let mut certificate = ledger::event::json::to_value(&ledger::event::examples::all()[4]);
    certificate["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    certificate["envelope"]["link"] = json!("L-CAP");
    certificate["certificate_id"] = json!("C-CAP");
    certificate["qualification_id"] = json!("Q-C2");
    certificate["kind"] = json!("LIMIT_APPLICATION");
    certificate["limit_category"] = json!("D");
    certificate["valid_from"] = json!("2024-07-01");
    certificate["valid_until"] = json!("2025-06-30");
    let cert_obj = certificate.as_object_mut().unwrap();
    cert_obj.remove("disease");
    cert_obj.remove("monthly_cap_yen");
    publish(
        &server,
        json!([
            lost("L-CAP", "Q-C1", "2024-07-01", "EMPLOYMENT_ENDED"),
            acquired("L-CAP", "Q-C2", SOCIETY, "6002", "2024-07-01"),
            certificate,
        ]),
    );
    let d = decision(&server, "K-CAP");
    assert_eq!(d["decision"]["action"], "review", "{d:#}");
    assert_eq!(d["decision"]["proposed"]["action"], "reroute", "{d:#}");
    assert_eq!(
        d["decision"]["reasons"][0]["reason"], "LIMIT_CATEGORY_DIFFERS",
        "{d:#}"
    );

    // The feed of 支払基金 has the decisions of its claims in order; paging
    // with the cursor gives the rest and nothing twice.
    let (_, page1) = server.http(
        "GET",
        "/v1/claims/decisions?payer=SOCIAL_INSURANCE_FUND&limit=3",
        None,
    );
    let page1 = page1.clone();
    let next = page1["next"].as_str().unwrap().to_owned();
    let (_, rest) = server.http(
        "GET",
        &format!("/v1/claims/decisions?payer=SOCIAL_INSURANCE_FUND&after={next}&limit=1000"),
        None,
    );
    let mut seen: Vec<String> = page1["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["decisions"].as_array().unwrap())
        .map(|d| d["cursor"].as_str().unwrap().to_owned())
        .collect();
    let total = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), total, "no entry twice");
    let p17: Vec<&Value> = page1["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["decisions"].as_array().unwrap())
        .filter(|d| d["claim_id"] == "K-P17")
        .collect();
    assert_eq!(p17.len(), 4, "keep, return, reroute, return");
    // The NHI federation sees the claim that moves to 支払基金 too.
    let (_, nhi) = server.http("GET", "/v1/claims/decisions?payer=NHI_FEDERATION", None);
    assert!(nhi["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["claim_id"] == "K-MOVE" && d["decision"]["action"] == "move_payer"));

    // Bad claims are refused with the field; a batch keeps the good ones.
    let mut bad = claim("K-BAD", KYOKAI, "1234", "2024-02", &[30]);
    let (status, body) = server.http("POST", "/v1/claims", Some(&bad));
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("service_days")),
        "{body}"
    );
    bad["service_days"] = json!([3]);
    bad["points"] = json!(1);
    let good = claim("K-GOOD", KYOKAI, "1234", "2024-02", &[3]);
    let (status, body) = server.http("POST", "/v1/claims", Some(&json!([bad, good])));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(1)),
        "{body:#}"
    );
    assert_eq!(body["results"][0]["error"]["field"], "points");

    // Prevention: 協会けんぽ from 1 August while the 国保 is still open
    // raises an overlap notice for the municipality; the 国保 loss clears it.
    publish(
        &server,
        json!([acquired("L-OVER", "Q-O1", NHI, "7001", "2020-01-01")]),
    );
    publish(
        &server,
        json!([acquired("L-OVER", "Q-O2", KYOKAI, "7002", "2024-08-01")]),
    );
    let (_, feed) = server.http("GET", &format!("/v1/overlaps?insurer={NHI}"), None);
    let raised = &feed["overlaps"][0];
    assert_eq!(raised["change"], "raised", "{feed:#}");
    assert_eq!(raised["link"], "L-OVER");
    assert_eq!(raised["employee_insurer"], KYOKAI);
    assert_eq!(raised["from"], "2024-08-01");
    assert!(raised["cleared_by"].is_null());
    let next = feed["next"].as_str().unwrap().to_owned();
    publish(
        &server,
        json!([lost(
            "L-OVER",
            "Q-O1",
            "2024-08-01",
            "JOINED_OTHER_INSURANCE"
        )]),
    );
    let cli = qledger(&[
        "claims",
        "overlaps",
        "--insurer",
        NHI,
        "--after",
        &next,
        "--server",
        &server.url,
    ]);
    assert_eq!(cli.status.code(), Some(0), "{}", text(&cli.stderr));
    let feed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(feed["overlaps"].as_array().unwrap().len(), 1, "{feed:#}");
    assert_eq!(feed["overlaps"][0]["change"], "cleared", "{feed:#}");
    let (_, other) = server.http("GET", &format!("/v1/overlaps?insurer={KYOKAI}"), None);
    assert_eq!(
        other["overlaps"],
        json!([]),
        "the feed is the municipality's"
    );

    // p18: benefits after loss. 船員保険 lost on 1 September; with a
    // 継続療養受療証明書 for three months the claim billed to it is kept.
    publish(
        &server,
        json!([
            acquired("L-SEA", "Q-SEA", SEAMEN, "8001", "2020-01-01"),
            lost("L-SEA", "Q-SEA", "2024-09-01", "EMPLOYMENT_ENDED"),
        ]),
    );
    let sea = register(&server, &claim("K-SEA", SEAMEN, "8001", "2024-10", &[5]));
    assert_eq!(sea["decision"]["action"], "return", "{sea:#}");
    publish(
        &server,
        json!([certificate_of(
            "L-SEA",
            "C-SEA",
            "Q-SEA",
            "SEAMEN_CONTINUED_CARE",
            "2024-09-01",
            "2024-11-30"
        )]),
    );
    assert_eq!(action(&server, "K-SEA"), "keep");

    // p18: enrolled without benefit. A 日雇特例 enrolment pays only while a
    // 受給資格者票 is valid.
    publish(
        &server,
        json!([acquired(
            "L-DAY",
            "Q-DAY",
            DAY_LABOURER,
            "9001",
            "2024-01-01"
        )]),
    );
    let day = register(
        &server,
        &claim("K-DAY", DAY_LABOURER, "9001", "2024-10", &[7]),
    );
    assert_eq!(day["decision"]["action"], "return", "{day:#}");
    publish(
        &server,
        json!([certificate_of(
            "L-DAY",
            "C-DAY",
            "Q-DAY",
            "DAY_LABOURER_ELIGIBILITY",
            "2024-10-01",
            "2024-12-31"
        )]),
    );
    assert_eq!(action(&server, "K-DAY"), "keep");

    // Withdrawn: no longer re-decided.
    let (status, body) = server.http(
        "POST",
        "/v1/claims/K-GOOD/withdraw",
        Some(&json!({"reason": "returned"})),
    );
    assert_eq!(status, 200, "{body}");
    server.stop();

    // Replay reproduces every decision.
    let verified = qledger(&["verify", "--data", data.to_str().unwrap()]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}
