//! `qledger claims …` as a payer's batch job runs it: a CSV of received
//! claims registered on a data directory (bad lines reported, the rest
//! kept), a JSON-lines batch checked before submission line by line, the
//! decision feed read with its cursor, a claim withdrawn; and the same
//! submit and check against a running server.

use std::path::Path;

use serde_json::{json, Value};

mod support;
use support::{qledger, text, Server};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Person L-C1 with 協会けんぽ until 2024-04-16, then a 健保組合.
fn history(dir: &Path) -> std::path::PathBuf {
    let mut first = ledger::event::json::to_value(&ledger::event::examples::all()[0]);
    first["envelope"]["link"] = json!("L-C1");
    first["qualification_id"] = json!("Q-C1");
    first["acquired_on"] = json!("2020-04-01");
    let mut second = first.clone();
    second["envelope"]["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    second["qualification_id"] = json!("Q-C2");
    second["insurer_number"] = json!("06139000");
    second["card_number"] = json!("9999");
    second["acquired_on"] = json!("2024-04-16");
    let lost = json!({
        "type": "QualificationLost",
        "envelope": {"event_id": uuid::Uuid::now_v7().to_string(), "link": "L-C1",
                     "produced_at": "2024-05-01T00:00:00Z", "source": "insurer-01130012"},
        "qualification_id": "Q-C1", "lost_on": "2024-04-16", "reason": "EMPLOYMENT_ENDED",
    });
    let file = dir.join("events.jsonl");
    std::fs::write(&file, format!("{first}\n{lost}\n{second}\n")).unwrap();
    file
}

const CSV: &str = "claim_id,institution,kind,payer,billed_insurer,card_symbol,card_number,branch,service_month,service_days,total_points\n\
K-1,1311234567,MEDICAL,SOCIAL_INSURANCE_FUND,01130012,あいう,1234,01,2024-04,2 9,300\n\
K-2,1311234567,MEDICAL,SOCIAL_INSURANCE_FUND,01130012,あいう,1234,01,2024-04,10;20,500\n\
K-3,1311234567,PHARMACY,SOCIAL_INSURANCE_FUND,01130012,あいう,1234,01,2024-04,31,100\n\
K-4,1311234567,MEDICAL,SOCIAL_INSURANCE_FUND,01130012,あいう,1234,01,2024-05,7,100\n";

fn lines(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_payer_registers_checks_and_follows_claims_from_batch_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let published = qledger(&["publish", path(&history(dir.path())), "--data", path(&data)]);
    assert_eq!(
        published.status.code(),
        Some(0),
        "{}",
        text(&published.stderr)
    );

    let csv = dir.path().join("claims.csv");
    std::fs::write(&csv, CSV).unwrap();
    let submitted = qledger(&["claims", "submit", path(&csv), "--data", path(&data)]);
    assert_eq!(
        submitted.status.code(),
        Some(1),
        "one line is bad: {}",
        text(&submitted.stderr)
    );
    let results = lines(&submitted.stdout);
    assert_eq!(results.len(), 4);
    let actions: Vec<(u64, &str)> = results
        .iter()
        .map(|r| {
            let action = r["decision"]["action"]
                .as_str()
                .or(r["status"].as_str())
                .unwrap();
            (r["line"].as_u64().unwrap(), action)
        })
        .collect();
    // Line 4's day 31 is not a day of April; the others are decided.
    assert_eq!(
        actions,
        [(2, "keep"), (3, "split"), (4, "rejected"), (5, "reroute")]
    );
    assert_eq!(results[2]["error"]["field"], "service_days");
    assert!(text(&submitted.stderr).contains("3 accepted, 0 duplicate, 1 rejected"));

    // The same file again: the good lines are duplicates, not new claims.
    let again = qledger(&["claims", "submit", path(&csv), "--data", path(&data)]);
    let again = lines(&again.stdout);
    assert_eq!(again[0]["status"], "duplicate", "{again:?}");
    let letters = qledger(&["dead-letters", "--data", path(&data)]);
    let letters: Value = serde_json::from_slice(&letters.stdout).unwrap();
    assert_eq!(
        letters["count"], 0,
        "a claim sent again is not logged again: {letters:#}"
    );

    // Check before submission: one answer per line, in order, nothing kept.
    let batch = dir.path().join("check.jsonl");
    let claim = |id: &str, days: &[u8]| {
        json!({"claim_id": id, "institution": "1311234567", "kind": "MEDICAL",
               "payer": "SOCIAL_INSURANCE_FUND", "billed_insurer": "06139000",
               "card_symbol": "あいう", "card_number": "9999", "branch": "01",
               "service_month": "2024-04", "service_days": days, "total_points": 1})
    };
    std::fs::write(
        &batch,
        format!(
            "{}\nnot json\n{}\n",
            claim("C-1", &[20]),
            claim("C-2", &[2])
        ),
    )
    .unwrap();
    let checked = qledger(&["claims", "check", path(&batch), "--data", path(&data)]);
    let checked = lines(&checked.stdout);
    assert_eq!(checked.len(), 3);
    assert_eq!(checked[0]["decision"]["action"], "keep");
    assert_eq!(checked[1]["status"], "rejected");
    assert_eq!(checked[2]["decision"]["action"], "reroute", "{checked:?}");
    assert_eq!(checked[2]["decision"]["insurer"], "01130012");
    let none = qledger(&["claims", "show", "C-1", "--data", path(&data)]);
    assert_eq!(none.status.code(), Some(1), "a check registers nothing");

    // Show, the feed with its cursor, withdraw.
    let shown = qledger(&["claims", "show", "K-2", "--data", path(&data)]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["link"], "L-C1");
    assert_eq!(shown["decisions"][0]["decision"]["action"], "split");
    let feed = qledger(&[
        "claims",
        "decisions",
        "--payer",
        "SOCIAL_INSURANCE_FUND",
        "--limit",
        "2",
        "--data",
        path(&data),
    ]);
    let feed: Value = serde_json::from_slice(&feed.stdout).unwrap();
    assert_eq!(feed["decisions"].as_array().unwrap().len(), 2);
    let next = feed["next"].as_str().unwrap();
    let rest = qledger(&[
        "claims",
        "decisions",
        "--payer",
        "SOCIAL_INSURANCE_FUND",
        "--after",
        next,
        "--data",
        path(&data),
    ]);
    let rest: Value = serde_json::from_slice(&rest.stdout).unwrap();
    assert_eq!(rest["decisions"].as_array().unwrap().len(), 1, "{rest:#}");
    let withdrawn = qledger(&[
        "claims",
        "withdraw",
        "K-4",
        "--reason",
        "returned",
        "--data",
        path(&data),
    ]);
    assert_eq!(
        withdrawn.status.code(),
        Some(0),
        "{}",
        text(&withdrawn.stderr)
    );
    let shown = qledger(&["claims", "show", "K-4", "--data", path(&data)]);
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(shown["withdrawn_by"]["event_id"].is_string(), "{shown:#}");

    // A receipt file as the payer received it (Shift_JIS): each RE group a
    // claim; the one without a service day is reported with its line.
    let uke = dir.path().join("RECEIPTC.UKE");
    let receipt = "IR,1,13,1,1234567,,テスト医院,50605,00,0312345678\r\n\
        RE,1,1112,50604,ヤマダ　タロウ,1,3550512,70\r\n\
        HO,01130012,あいう,1234,2,850\r\n\
        SN,1,01,01130012,あいう,1234,01,,\r\n\
        JD,1,,,,,,,,,,,,,,,,,,,,,1\r\n\
        RE,2,1112,50604,サトウ,2,4020101,70\r\n\
        HO,01130012,あいう,1234,1,300\r\n";
    let (bytes, _, unmappable) = encoding_rs::SHIFT_JIS.encode(receipt);
    assert!(!unmappable);
    std::fs::write(&uke, &bytes).unwrap();
    let checked = qledger(&["claims", "check", path(&uke), "--data", path(&data)]);
    let checked = lines(&checked.stdout);
    assert_eq!(checked.len(), 2, "{checked:?}");
    assert_eq!(checked[0]["line"], 2);
    assert_eq!(checked[0]["claim_id"], "1311234567-50605-1");
    // 2024-04-20: after the move to the 健保組合 on the 16th.
    assert_eq!(checked[0]["decision"]["action"], "reroute", "{checked:?}");
    assert_eq!(checked[1]["line"], 6);
    assert_eq!(checked[1]["error"]["field"], "record");

    // Through a server: the same answers.
    let server = Server::start(&["--data", path(&data)]);
    let remote = qledger(&["claims", "check", path(&batch), "--server", &server.url]);
    let remote = lines(&remote.stdout);
    assert_eq!(remote[2]["decision"]["action"], "reroute", "{remote:?}");
    assert_eq!(remote[1]["status"], "rejected");
    let csv2 = dir.path().join("more.csv");
    std::fs::write(
        &csv2,
        "claim_id,institution,kind,payer,billed_insurer,card_symbol,card_number,branch,service_month,service_days,total_points\n\
         K-9,1311234567,DENTAL,SOCIAL_INSURANCE_FUND,06139000,あいう,9999,01,2024-05,1,10\n",
    )
    .unwrap();
    let remote = qledger(&["claims", "submit", path(&csv2), "--server", &server.url]);
    assert_eq!(remote.status.code(), Some(0), "{}", text(&remote.stderr));
    assert_eq!(lines(&remote.stdout)[0]["decision"]["action"], "keep");
    server.stop();
}
