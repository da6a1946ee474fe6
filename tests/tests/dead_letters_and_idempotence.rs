//! Events that cannot be applied are kept with their reason and the
//! projector keeps going; a re-sent event is acknowledged again, applied once.

use qledger::service::Submitted;
use scenario_tests::{ev, Scenario};

#[test]
fn unapplicable_events_become_dead_letters_with_reasons() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("D"), "1", Some("00"));
    let unknown = ev::insured("01130012", Some("D"), "999", Some("00"));
    s.publish(vec![
        ev::lost("LD", "insurer-01130012", "NOPE", "2024-01-01"),
        ev::acquired("LD", "QD", &n, "2024-01-01"),
        ev::lost("LD", "insurer-01130012", "QD", "2023-12-01"),
        ev::card_linked("LD", "AAAA", &unknown, "2024-02-01"),
    ]);
    let letters = s.ledger.dead_letters(None, 100).unwrap();
    let reasons: Vec<String> = letters
        .iter()
        .map(|d| format!("{}: {}", d.field.as_deref().unwrap_or("-"), d.reason))
        .collect();
    assert_eq!(letters.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains("loss of an unknown qualification"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("lost_on: loss before acquisition"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("unknown individual insured number"),
        "{reasons:?}"
    );
    // The good event was applied regardless.
    assert_eq!(s.insurers_on(&n, "2024-06-01", None), vec!["01130012"]);
}

#[test]
fn a_resent_event_is_acknowledged_again_and_applied_once() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("I"), "1", Some("00"));
    let e = ev::acquired("LI", "QI", &n, "2024-01-01");
    let first = s.submit(vec![e.clone()]);
    let again = s.submit(vec![e.clone()]);
    let (Submitted::Accepted(a), Submitted::Duplicate(b)) = (&first[0], &again[0]) else {
        panic!("expected accepted then duplicate: {first:?} {again:?}");
    };
    assert_eq!((a.partition, a.offset), (b.partition, b.offset));
    let total: u64 = (0..4).map(|p| s.ledger.log().end_offset(p).unwrap()).sum();
    assert_eq!(total, 1);
    // Same id, different content: refused.
    let mut forged = e.clone();
    if let ledger::event::Payload::QualificationAcquired(q) = &mut forged.payload {
        q.copay = ledger::domain::CopayRate::from_percent(10).unwrap();
    }
    match &s.submit(vec![forged])[0] {
        Submitted::Rejected { error } => assert_eq!(error.field, "envelope.event_id"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_events_in_a_batch_are_refused_alone() {
    let s = Scenario::new();
    let good = serde_json::to_value(ledger::event::json::to_value(
        &ledger::event::examples::all()[0],
    ))
    .unwrap();
    let mut bad = good.clone();
    bad["insurer_number"] = serde_json::json!("01130013");
    bad["envelope"]["event_id"] = serde_json::json!("0190a1b2-c3d4-7000-8000-0000000000ff");
    let out = s
        .ledger
        .submit_json(vec![bad, good], qledger::service::Wait::Durable)
        .unwrap();
    match &out[0] {
        Submitted::Rejected { error } => {
            assert_eq!(error.field, "insurer_number");
            assert!(error.rule.contains("check digit"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(out[1], Submitted::Accepted(_)));
}
