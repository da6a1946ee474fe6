//! The online check's XML messages through a running server: the request
//! files of `tests/onlinecheck/requests/` dropped into the folder exchange
//! come back in the result folder as the files of
//! `tests/onlinecheck/results/`, element by element (only
//! `ProcessExecutionTime` differs, and is checked for its form); the same
//! requests over `POST /v1/onlinecheck` and as one XML batch give the same
//! results; Shift_JIS in gives Shift_JIS out; malformed XML, unknown codes
//! and wrong encodings get `SegmentOfResult` 9 with an error code, never a
//! crash. `QLEDGER_BLESS=1` rewrites the expected files (review the diff).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ledger::event::{examples, json};
use qledger::onlinecheck::xml::{self, Charset, Element};
use serde_json::{json, Value};
use support::{http_to, Server};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onlinecheck")
}

/// The people of the requests (see each request's name).
fn population() -> Value {
    let all = examples::all();
    let yamada = json::to_value(&all[0]);
    let mut events = vec![yamada.clone()];
    let mut n = 0;
    let mut event = |link: &str, source: &str, body: Value| {
        n += 1;
        let mut e = body;
        e["envelope"] = json!({
            "event_id": uuid::Uuid::now_v7().to_string(),
            "link": link,
            "produced_at": format!("2024-04-01T00:00:{n:02}Z"),
            "source": source,
        });
        e
    };
    let acquisition = |fields: Value| {
        let mut q = yamada.clone();
        for (k, v) in fields.as_object().unwrap() {
            if v.is_null() {
                q.as_object_mut().unwrap().remove(k);
            } else {
                q[k] = v.clone();
            }
        }
        q
    };
    // Yamada: a 限度額 certificate (ウ), a 特定疾病 one, and from June a
    // second enrolment (後期高齢者医療): duplicate enrolment.
    events.push(event(
        "L-0000000001",
        "insurer-01130012",
        json!({
        "type": "CertificateIssued", "certificate_id": "C-LIMIT-1",
        "qualification_id": "Q-01130012-0001", "kind": "LIMIT_APPLICATION",
        "limit_category": "C", "valid_from": "2024-04-01", "valid_until": "2025-03-31"}),
    ));
    events.push(event(
        "L-0000000001",
        "insurer-01130012",
        json!({
        "type": "CertificateIssued", "certificate_id": "C-DISEASE-1",
        "qualification_id": "Q-01130012-0001", "kind": "SPECIFIC_DISEASE",
        "disease": "CHRONIC_RENAL_FAILURE", "monthly_cap_yen": 10000,
        "valid_from": "2024-04-01", "valid_until": "2025-03-31"}),
    ));
    events.push(event(
        "L-0000000001",
        "insurer-39131008",
        acquisition(json!({
        "qualification_id": "Q-LATE-1", "insurer_number": "39131008",
        "card_symbol": null, "branch": null, "card_number": "12345678",
        "card_kind": "LATE_ELDERLY", "copay_percent": 10, "acquired_on": "2024-06-01"})),
    ));
    // A child of four, dependent on a 国保 (6-digit insurer number).
    events.push(event(
        "L-0000000002",
        "nhi-aggregation",
        acquisition(json!({
        "qualification_id": "Q-138057-1", "insurer_number": "138057",
        "card_symbol": null, "card_number": "5555", "branch": "02",
        "relationship": "DEPENDENT", "name": "国保 花子", "name_kana": "コクホ ハナコ",
        "sex": "FEMALE", "birth_date": "2020-08-15", "acquired_on": "2020-08-15",
        "card_kind": "NATIONAL_HEALTH_INSURANCE", "copay_percent": 20})),
    ));
    // Left a 健保組合 on 1 June for another insurer.
    events.push(event(
        "L-0000000003",
        "insurer-06135008",
        acquisition(json!({
        "qualification_id": "Q-06135008-777", "insurer_number": "06135008",
        "card_symbol": null, "card_number": "777", "branch": "00",
        "name": "転職 一郎", "name_kana": "テンショク イチロウ",
        "birth_date": "1975-01-20", "acquired_on": "2020-04-01"})),
    ));
    events.push(event(
        "L-0000000003",
        "insurer-06135008",
        json!({
        "type": "QualificationLost", "qualification_id": "Q-06135008-777",
        "lost_on": "2024-06-01", "reason": "JOINED_OTHER_INSURANCE"}),
    ));
    events.push(event(
        "L-0000000003",
        "insurer-01130012",
        acquisition(json!({
        "qualification_id": "Q-01130012-888", "card_symbol": null,
        "card_number": "888", "branch": "00", "name": "転職 一郎",
        "name_kana": "テンショク イチロウ", "birth_date": "1975-01-20",
        "acquired_on": "2024-06-01"})),
    ));
    // Died on 9 May (lost from the 10th).
    events.push(event(
        "L-0000000004",
        "insurer-06135008",
        acquisition(json!({
        "qualification_id": "Q-06135008-999", "insurer_number": "06135008",
        "card_symbol": null, "card_number": "999", "branch": "00",
        "name": "故人 次郎", "name_kana": "コジン ジロウ",
        "birth_date": "1950-03-03", "acquired_on": "2010-04-01"})),
    ));
    events.push(event(
        "L-0000000004",
        "insurer-06135008",
        json!({
        "type": "QualificationLost", "qualification_id": "Q-06135008-999",
        "lost_on": "2024-05-10", "reason": "DEATH"}),
    ));
    Value::Array(events)
}

/// Every element as (path, text), in document order, the execution time
/// (which differs run to run) checked for its form and left out.
fn flatten(e: &Element) -> Vec<(String, String)> {
    fn walk(e: &Element, path: &str, out: &mut Vec<(String, String)>) {
        let path = format!("{path}/{}", e.name);
        if e.name == "ProcessExecutionTime" {
            assert!(
                e.text.len() == 14 && e.text.bytes().all(|b| b.is_ascii_digit()),
                "{path}: {:?} is not YYYYMMDDHHmmss",
                e.text
            );
            return;
        }
        out.push((path.clone(), e.text.clone()));
        for c in &e.children {
            walk(c, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(e, "", &mut out);
    out
}

fn assert_same(name: &str, got: &Element, want: &Element) {
    let (got, want) = (flatten(got), flatten(want));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name}: element {i} differs");
    }
    assert_eq!(got.len(), want.len(), "{name}: {got:#?}\nwant {want:#?}");
}

/// A raw exchange with a byte body: status, content type, body.
fn post(server: &Server, path: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    post_as(server, None, path, content_type, body)
}

fn post_as(
    server: &Server,
    token: Option<&str>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n{authorization}\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let media = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    (status, media, body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line + 2..line + 2 + size]);
        body = &body[line + 2 + size + 2..];
    }
}

/// The request files: (name without the prefix, bytes).
fn requests() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures().join("requests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    // Shift_JIS bytes under a UTF-8 declaration: a wrong encoding.
    let sjis = {
        let text = String::from_utf8(out[0].1.clone()).unwrap();
        let text = text.replace("F01", "F27");
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode(&text);
        bytes.into_owned()
    };
    out.push(("OQSsiquc01req_27-shift-jis-declared-utf-8.xml".into(), sjis));
    out.sort();
    out
}

fn expected(result_name: &str) -> Element {
    let path = fixtures().join("results").join(result_name);
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (QLEDGER_BLESS=1 writes it)", path.display()));
    xml::parse(&bytes).unwrap().0
}

#[test]
fn request_files_are_answered_in_the_result_folder_element_by_element() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let exchange = tmp.path().join("exchange");
    let server = Server::start(&[
        "--data",
        data.to_str().unwrap(),
        "--onlinecheck-dir",
        exchange.to_str().unwrap(),
    ]);
    let (status, body) = http_to(
        server.addr(),
        None,
        "POST",
        "/v1/events?wait=projected",
        Some(&population()),
    )
    .unwrap();
    assert_eq!((status, &body["rejected"]), (200, &json!(0)), "{body}");

    // Drop every request: half written then renamed (as the format's
    // clients should), half written in place.
    let requests = requests();
    let req = exchange.join("req");
    for (i, (name, bytes)) in requests.iter().enumerate() {
        if i % 2 == 0 {
            let part = req.join(format!(".{name}.part"));
            std::fs::write(&part, bytes).unwrap();
            std::fs::rename(&part, req.join(name)).unwrap();
        } else {
            std::fs::write(req.join(name), bytes).unwrap();
        }
    }
    // Another operation's request, and a file that is no request at all.
    std::fs::write(req.join("OQSsiimm01req_X1.xml"), &requests[0].1).unwrap();
    std::fs::write(req.join("notes.txt"), b"not a request").unwrap();

    let res = exchange.join("res");
    let deadline = Instant::now() + Duration::from_secs(30);
    let result_name = |request: &str| request.replace("01req_", "01res_");
    while requests
        .iter()
        .any(|(name, _)| !res.join(result_name(name)).exists())
    {
        assert!(Instant::now() < deadline, "results missing after 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let bless = std::env::var_os("QLEDGER_BLESS").is_some();
    for (name, bytes) in &requests {
        let result = std::fs::read(res.join(result_name(name))).unwrap();
        let (got, charset) = xml::parse(&result).unwrap();
        assert_eq!(charset, Charset::Utf8, "{name}");
        if bless {
            std::fs::write(fixtures().join("results").join(result_name(name)), &result).unwrap();
            continue;
        }
        assert_same(name, &got, &expected(&result_name(name)));
        // The request was taken: nothing left of it.
        assert!(!req.join(name).exists(), "{name} left in req/");
        // Over HTTP: the same result, and a status that says the same.
        let (status, media, http_body) = post(&server, "/v1/onlinecheck", "application/xml", bytes);
        let (over_http, _) = xml::parse(&http_body).unwrap();
        assert_same(&format!("{name} over HTTP"), &over_http, &got);
        assert!(media.starts_with("application/xml"), "{name}: {media}");
        let refused = got.at(&["MessageHeader", "SegmentOfResult"]).unwrap().text == "9";
        assert_eq!(status, if refused { 400 } else { 200 }, "{name}");
    }
    if bless {
        return;
    }
    // The other operation is answered refused; the stray file is kept aside.
    let other = std::fs::read(res.join("OQSsiimm01res_X1.xml")).unwrap();
    let (other, _) = xml::parse(&other).unwrap();
    assert_eq!(
        other
            .at(&["MessageHeader", "SegmentOfResult"])
            .unwrap()
            .text,
        "9"
    );
    assert_eq!(
        other.at(&["MessageHeader", "ErrorCode"]).unwrap().text,
        "QLX021"
    );
    assert_eq!(
        std::fs::read(exchange.join("rejected/notes.txt")).unwrap(),
        b"not a request"
    );
    // No temporary files in the result folder.
    for entry in std::fs::read_dir(&res).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.starts_with("OQS") && name.ends_with(".xml"), "{name}");
    }

    // Shift_JIS in, Shift_JIS out: the same elements, CharacterCodeIdentifier 1.
    let utf8 = String::from_utf8(requests[0].1.clone()).unwrap();
    let relabelled = utf8.replace("UTF-8", "Shift_JIS");
    let (sjis, _, _) = encoding_rs::SHIFT_JIS.encode(&relabelled);
    let (status, media, body) = post(&server, "/v1/onlinecheck", "application/xml", &sjis);
    assert_eq!(status, 200);
    assert!(media.contains("shift_jis"), "{media}");
    assert!(
        std::str::from_utf8(&body).is_err(),
        "the answer is not Shift_JIS"
    );
    let (got, charset) = xml::parse(&body).unwrap();
    assert_eq!(charset, Charset::ShiftJis);
    let want = expected(&result_name(&requests[0].0));
    let (mut got, mut want) = (flatten(&got), flatten(&want));
    got.retain(|(p, _)| !p.ends_with("CharacterCodeIdentifier"));
    want.retain(|(p, _)| !p.ends_with("CharacterCodeIdentifier"));
    assert_eq!(got, want);
    assert!(body.windows(2).any(|w| w == b"\x8e\x52"), "山 in Shift_JIS");

    // The XML batch: every request in one body, one result per request, in order.
    let mut batch = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Requests>\n".to_vec();
    let mut answerable = Vec::new();
    for (name, bytes) in &requests {
        let text = String::from_utf8_lossy(bytes);
        if !text.contains("encoding=\"UTF-8\"")
            || name.contains("malformed")
            || name.contains("shift-jis")
        {
            continue; // other encodings and a broken document cannot share one body
        }
        let start = text.find("<XmlMsg>").unwrap();
        batch.extend_from_slice(text[start..].as_bytes());
        answerable.push(name);
    }
    batch.extend_from_slice(b"</Requests>\n");
    let (status, media, body) = post(&server, "/v1/eligibility/batch", "application/xml", &batch);
    assert_eq!(status, 200);
    assert!(media.starts_with("application/xml"), "{media}");
    let (all, _) = xml::parse(&body).unwrap();
    assert_eq!(all.name, "QualificationConfirmationResults");
    assert_eq!(all.children.len(), answerable.len());
    for (got, name) in all.children.iter().zip(&answerable) {
        assert_same(
            &format!("{name} in the batch"),
            got,
            &expected(&result_name(name)),
        );
    }

    // The same batch from a file through the CLI, on the data directory.
    let file = tmp.path().join("batch.xml");
    std::fs::write(&file, &batch).unwrap();
    let out = support::qledger(&[
        "check-batch",
        file.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", support::text(&out.stderr));
    let (all, _) = xml::parse(&out.stdout).unwrap();
    assert_eq!(all.children.len(), answerable.len());
    for (got, name) in all.children.iter().zip(&answerable) {
        assert_same(
            &format!("{name} in the CLI batch"),
            got,
            &expected(&result_name(name)),
        );
    }

    // An independent parser (Python's) reads every result file, in its
    // declared encoding, as the document the format says.
    let files: Vec<String> = requests
        .iter()
        .map(|(name, _)| res.join(result_name(name)).to_string_lossy().into_owned())
        .collect();
    let script = r#"
import sys, xml.etree.ElementTree as ET
for f in sys.argv[1:]:
    root = ET.parse(f).getroot()
    assert root.tag == "XmlMsg", f
    segment = root.findtext("MessageHeader/SegmentOfResult")
    if segment == "1":
        assert root.findtext("MessageBody/ProcessingResultStatus") == "1", f
        assert root.findtext("MessageBody/QualificationValidity") in "12345", f
        for r in root.iterfind("MessageBody/ResultList/ResultOfQualificationConfirmation"):
            assert len(r.findtext("Birthdate")) == 8 and len(r.findtext("InsurerNumber")) == 8, f
    else:
        assert segment == "9" and root.findtext("MessageHeader/ErrorCode").startswith("QLX"), f
print(len(sys.argv) - 1)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        files.len().to_string()
    );

    // Verification records were kept for the institution of the folder's
    // requests: one per answered request, none for refusals, no birth date.
    // (HTTP callers here are unauthenticated, so not institutions: no records.)
    let (status, body) = support::auth::exchange(
        &server,
        "unused",
        "GET",
        "/v1/verifications?institution=1311234567&limit=1000",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let records: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let answered = requests
        .iter()
        .filter(|(name, _)| name.contains("req_0"))
        .count();
    assert_eq!(records.len(), answered, "{body}");
    assert!(records
        .iter()
        .all(|r| r["client"] == json!(qledger::onlinecheck::FOLDER_ASKER)));
    assert!(!body.contains("19800512") && !body.contains("1980-05-12"));
    let logs = server.stop();
    assert!(
        !logs.iter().any(|l| l.contains("panicked")),
        "{}",
        logs.join("\n")
    );
}

#[test]
fn an_institution_asks_under_its_own_code_and_an_insurer_about_its_own_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let insurer = support::auth::insurer_a(data);
    let clinic = support::auth::clinic(data);
    let other_insurer = support::auth::issue(
        data,
        &[
            "--name",
            "ins-b",
            "--role",
            "insurer",
            "--publisher",
            "insurer-06135008",
            "--insurer",
            "06135008",
        ],
    );
    let server = Server::start_secured(&["--data", data], &[]);
    let (status, body) = server.http_as(
        Some(&insurer),
        "POST",
        "/v1/events?wait=projected",
        Some(&support::auth::example_person()),
    );
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body:#}");
    let request =
        std::fs::read(fixtures().join("requests/OQSsiquc01req_02-valid-without-consent.xml"))
            .unwrap();
    let other_clinic = String::from_utf8(request.clone())
        .unwrap()
        .replace("1311234567", "1311234568");
    let ask = |token: &str, body: &[u8]| {
        let (status, _, body) = post_as(
            &server,
            Some(token),
            "/v1/onlinecheck",
            "application/xml",
            body,
        );
        let (result, _) = xml::parse(&body).unwrap();
        let code = |path: &[&str]| result.at(path).map(|e| e.text.clone()).unwrap_or_default();
        (
            status,
            code(&["MessageHeader", "ErrorCode"]),
            code(&["MessageBody", "QualificationValidity"]),
        )
    };
    assert_eq!(ask(&clinic, &request), (200, String::new(), "1".into()));
    assert_eq!(ask(&insurer, &request), (200, String::new(), "1".into()));
    assert_eq!(
        ask(&clinic, other_clinic.as_bytes()),
        (403, "QLX020".into(), String::new())
    );
    assert_eq!(
        ask(&other_insurer, &request),
        (403, "QLX020".into(), String::new())
    );
    // Without a token: the API's 401 (problem+json), before any XML is read.
    let (status, media, _) = post(&server, "/v1/onlinecheck", "application/xml", &request);
    assert_eq!(status, 401);
    assert!(media.starts_with("application/problem+json"), "{media}");
    server.stop();
}
