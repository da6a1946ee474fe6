//! `qledger import`, run as a user would: a CSV batch file of a few thousand
//! municipal records and an Avro object container file, then eligibility
//! answers checked against the same events published through the service.

use std::path::Path;
use std::process::Output;

use apache_avro::types::Value as AvroValue;
use ledger::domain::Day;
use ledger::event::{avro, Event, EventType, Payload};
use ledger::sample::{population, SampleConfig};
use projectors::LookupKey;
use qledger::import::{union_schema, CsvWriter};
use qledger::service::{Ledger, Submitted, Wait};
use serde_json::Value;

mod support;
use support::qledger;

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn is_qualification_event(e: &Event) -> bool {
    matches!(
        e.event_type(),
        EventType::QualificationAcquired
            | EventType::QualificationChanged
            | EventType::QualificationLost
    )
}

/// A ledger holding `events`, published through the service API and projected.
fn reference(dir: &Path, events: &[Event]) -> Ledger {
    let ledger = Ledger::open(dir, 8).unwrap();
    for chunk in events.chunks(1_000) {
        let out = ledger.submit(chunk.to_vec(), Wait::Durable).unwrap();
        assert!(out.iter().all(|s| matches!(s, Submitted::Accepted(_))));
    }
    ledger.catch_up().unwrap();
    ledger
}

/// An answer without what depends on when and by which event the ledger
/// learned it.
fn facts(mut v: Value) -> Value {
    if let Some(qs) = v.get_mut("qualifications").and_then(Value::as_array_mut) {
        for q in qs {
            let q = q.as_object_mut().unwrap();
            q.remove("recorded_at");
            q.remove("event_id");
        }
    }
    v
}

/// Every acquisition's insured number, asked about on its acquisition date
/// and on the sample's "today", and every card link's serial on its date.
fn questions(events: &[Event]) -> Vec<(LookupKey, Day)> {
    let today = SampleConfig::default().today;
    let mut out = Vec::new();
    for e in events {
        match &e.payload {
            Payload::QualificationAcquired(q) => {
                let key = LookupKey::Insured(q.insured_number().unwrap());
                out.push((key.clone(), q.acquired_on));
                out.push((key, today));
            }
            Payload::CardLinked(l) => {
                out.push((LookupKey::Card(l.card_serial.clone()), l.linked_on));
            }
            _ => {}
        }
    }
    out
}

/// Every question answered alike by the two ledgers (as known now).
fn same_answers(imported: &Ledger, reference: &Ledger, questions: &[(LookupKey, Day)]) {
    for (key, on) in questions {
        let a = serde_json::to_value(imported.eligibility(key, *on, None).unwrap()).unwrap();
        let b = serde_json::to_value(reference.eligibility(key, *on, None).unwrap()).unwrap();
        assert_eq!(facts(a), facts(b), "{key:?} on {on}");
    }
}

/// `eligibility` arguments for an acquisition on its acquisition date.
fn eligibility_args(e: &Event) -> Option<Vec<String>> {
    let Payload::QualificationAcquired(q) = &e.payload else {
        return None;
    };
    let mut args = vec![
        "--insurer".to_owned(),
        q.insurer_number.to_string(),
        "--number".to_owned(),
        q.card_number.to_string(),
        "--on".to_owned(),
        q.acquired_on.to_string(),
    ];
    if let Some(s) = &q.card_symbol {
        args.extend(["--symbol".to_owned(), s.to_string()]);
    }
    if let Some(b) = &q.branch {
        args.extend(["--branch".to_owned(), b.to_string()]);
    }
    Some(args)
}

#[test]
fn csv_batch_file_imports_and_answers_like_intake() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SampleConfig {
        persons: 1_500,
        seed: 11,
        ..SampleConfig::default()
    };
    let events: Vec<Event> = population(&config).filter(is_qualification_event).collect();
    assert!(events.len() >= 2_000, "{} rows", events.len());

    // The NHI aggregation system's file: no event ids, derived on import.
    let mut w = CsvWriter::new(Vec::new(), false).unwrap();
    for e in &events {
        assert!(w.write(e).unwrap());
    }
    let mut text = String::from_utf8(w.into_inner().unwrap()).unwrap();
    // One more row, copied from the first acquisition with a 25 % copay.
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let copay = header.iter().position(|c| *c == "copay_percent").unwrap();
    let qid = header
        .iter()
        .position(|c| *c == "qualification_id")
        .unwrap();
    let first = text
        .lines()
        .find(|l| l.starts_with("ACQUIRED,"))
        .unwrap()
        .to_owned();
    let mut cells: Vec<String> = first.split(',').map(str::to_owned).collect();
    cells[copay] = "25".into();
    cells[qid] = "Q-IMPORT-BAD".into();
    text.push_str(&cells.join(","));
    text.push('\n');
    let bad_line = events.len() + 2;
    let file = tmp.path().join("nhi-batch.csv");
    std::fs::write(&file, &text).unwrap();

    let data = tmp.path().join("data");
    let rejects = tmp.path().join("rejects.jsonl");
    let o = qledger(&[
        "import",
        path(&file),
        "--data",
        path(&data),
        "--rejects",
        path(&rejects),
        "--batch",
        "700",
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let n = events.len();
    assert!(
        out.contains(&format!(
            "{} rows; {n} accepted, 0 duplicates, 1 rejected",
            n + 1
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "line {bad_line}: copay_percent: copay rate (負担割合) must be 10, 20 or 30 percent, got 25"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("views: {n} events applied")), "{out}");
    let logged: Vec<Value> = std::fs::read_to_string(&rejects)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["line"], bad_line);
    assert_eq!(logged[0]["field"], "copay_percent");

    // Through the CLI: the first acquisitions are found, as intake answers.
    let reference = reference(&tmp.path().join("reference"), &events);
    for e in events.iter().filter_map(eligibility_args).take(5) {
        let mut args = vec!["eligibility", "--data", path(&data)];
        args.extend(e.iter().map(String::as_str));
        let o = qledger(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
        let got: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(got["status"], "found");
    }

    // The same file again: nothing appended, the same rejection.
    let again = qledger(&["import", path(&file), "--data", path(&data)]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        stdout(&again).contains(&format!("0 accepted, {n} duplicates, 1 rejected")),
        "{}",
        stdout(&again)
    );

    // Every answer, through the service API, equals intake's.
    let imported = Ledger::open(&data, 8).unwrap();
    same_answers(&imported, &reference, &questions(&events));
}

#[test]
fn avro_union_file_imports_every_event_type() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SampleConfig {
        persons: 300,
        seed: 5,
        ..SampleConfig::default()
    };
    let events: Vec<Event> = population(&config).collect();
    let kinds: std::collections::BTreeSet<EventType> =
        events.iter().map(Event::event_type).collect();
    assert!(kinds.contains(&EventType::CardLinked), "{kinds:?}");

    let types = EventType::ALL.to_vec();
    let schema = union_schema(&types).unwrap();
    let file = tmp.path().join("events.avro");
    let mut w = apache_avro::Writer::new(&schema, std::fs::File::create(&file).unwrap()).unwrap();
    for e in &events {
        let branch = types.iter().position(|t| *t == e.event_type()).unwrap();
        w.append_value(AvroValue::Union(branch as u32, Box::new(avro::to_value(e))))
            .unwrap();
    }
    w.into_inner().unwrap();

    let data = tmp.path().join("data");
    let o = qledger(&["import", path(&file), "--data", path(&data)]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let n = events.len();
    assert!(
        stdout(&o).contains(&format!(
            "(avro): {n} rows; {n} accepted, 0 duplicates, 0 rejected"
        )),
        "{}",
        stdout(&o)
    );

    // A serial linked in the file is found through the CLI.
    let (linked_link, linked) = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::CardLinked(l) => Some((e.envelope.link.clone(), l.clone())),
            _ => None,
        })
        .unwrap();
    let born = events
        .iter()
        .find_map(|e| match &e.payload {
            Payload::QualificationAcquired(a) if e.envelope.link == linked_link => {
                Some(a.birth_date.to_string())
            }
            _ => None,
        })
        .unwrap();
    let o = qledger(&[
        "eligibility",
        "--data",
        path(&data),
        "--card",
        linked.card_serial.as_str(),
        "--birth-date",
        &born,
        "--on",
        &linked.linked_on.to_string(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // The same events (same ids) through intake: every answer alike.
    let reference = reference(&tmp.path().join("reference"), &events);
    let imported = Ledger::open(&data, 8).unwrap();
    same_answers(&imported, &reference, &questions(&events));
}

#[test]
fn unusable_input_is_an_error_with_status_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let unknown = tmp.path().join("batch.dat");
    std::fs::write(&unknown, "record_kind\n").unwrap();
    let o = qledger(&["import", path(&unknown), "--data", path(&data)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--format csv"), "{}", stderr(&o));

    let header = tmp.path().join("batch.csv");
    std::fs::write(&header, "record_kind,link,copay\nACQUIRED,L-1,30\n").unwrap();
    let o = qledger(&["import", path(&header), "--data", path(&data)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("required columns missing: qualification_id")
            && stderr(&o).contains("unknown columns: copay"),
        "{}",
        stderr(&o)
    );

    let o = qledger(&["import", path(&tmp.path().join("absent.csv"))]);
    assert_eq!(code(&o), 2);

    // Rejected rows alone do not fail the import.
    let rows = tmp.path().join("rows.csv");
    std::fs::write(&rows, "record_kind,link,qualification_id\nLOST,L-1,Q-1\n").unwrap();
    let o = qledger(&["import", path(&rows), "--data", path(&data)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("line 2: lost_on: is required for a LOST row"),
        "{}",
        stdout(&o)
    );

    let help = qledger(&["import", "--help"]);
    assert_eq!(code(&help), 0);
    assert!(
        stdout(&help).contains("Exit status: 0"),
        "{}",
        stdout(&help)
    );
}
