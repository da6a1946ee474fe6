//! Regressions found in review: each failed before its fix.

use std::time::Duration;

use ledger::domain::*;
use ledger::event::*;
use projectors::{Lookup, LookupKey};
use qledger::service::{Ledger, Submitted, Wait};
use scenario_tests::ev::{self, insured};
use scenario_tests::{day, Scenario};

fn card(s: &Scenario, serial: &str, on: &str) -> Lookup {
    s.ledger
        .eligibility(&LookupKey::Card(serial.parse().unwrap()), day(on), None)
        .unwrap()
}

fn ids(l: Lookup) -> Vec<String> {
    match l {
        Lookup::Found(e) => e
            .qualifications
            .iter()
            .map(|q| q.qualification.qualification_id.to_string())
            .collect(),
        other => panic!("expected found, got {other:?}"),
    }
}

/// A serial answers for whoever held it on the date asked, never for two.
#[test]
fn a_serial_moved_to_another_person_answers_only_for_the_holder_on_that_date() {
    let s = Scenario::new();
    let a = insured("01130012", Some("A1"), "1", Some("00"));
    let b = insured("06135008", Some("B1"), "2", Some("00"));
    s.publish(vec![
        ev::acquired("L-A", "QA", &a, "2024-01-01"),
        ev::card_linked("L-A", "ABCDEF", &a, "2024-01-10"),
        ev::card_unlinked("L-A", "ABCDEF", "2024-03-01"),
    ]);
    s.publish(vec![
        ev::acquired("L-B", "QB", &b, "2024-01-01"),
        ev::card_linked("L-B", "ABCDEF", &b, "2024-04-01"),
    ]);
    assert_eq!(ids(card(&s, "ABCDEF", "2024-02-01")), vec!["QA"]);
    assert_eq!(
        card(&s, "ABCDEF", "2024-03-15"),
        Lookup::NotLinked {
            since: day("2024-03-01")
        }
    );
    assert_eq!(ids(card(&s, "ABCDEF", "2024-05-01")), vec!["QB"]);
}

#[test]
fn the_gap_between_two_link_periods_is_not_linked_and_before_the_first_is_unknown() {
    let s = Scenario::new();
    let a = insured("01130012", Some("A1"), "1", Some("00"));
    s.publish(vec![
        ev::acquired("L-A", "QA", &a, "2024-01-01"),
        ev::card_linked("L-A", "ABCDEF", &a, "2024-01-10"),
        ev::card_unlinked("L-A", "ABCDEF", "2024-03-01"),
        ev::card_linked("L-A", "ABCDEF", &a, "2024-05-01"),
    ]);
    assert_eq!(
        card(&s, "ABCDEF", "2024-04-01"),
        Lookup::NotLinked {
            since: day("2024-03-01")
        }
    );
    assert_eq!(ids(card(&s, "ABCDEF", "2024-06-01")), vec!["QA"]);
    assert_eq!(card(&s, "ABCDEF", "2024-01-05"), Lookup::NotFound);
}

/// Waiting for projection says when the event was dead-lettered, and so does
/// a re-send of it.
#[test]
fn receipts_say_when_an_event_was_dead_lettered() {
    let s = Scenario::new();
    let bad = ev::lost("L-X", "insurer-01130012", "Q-NOPE", "2024-04-01");
    let out = s.submit(vec![bad.clone()]);
    let Submitted::Accepted(r) = &out[0] else {
        panic!("{out:?}")
    };
    let note = r.dead_letter.as_ref().expect("dead letter reported");
    assert_eq!(note.field.as_deref(), Some("qualification_id"));
    let again = s.ledger.submit(vec![bad], Wait::Durable).unwrap();
    let Submitted::Duplicate(d) = &again[0] else {
        panic!("{again:?}")
    };
    assert!(
        d.dead_letter.is_some(),
        "a duplicate of a dead letter was never applied"
    );
}

#[test]
fn an_absurd_copay_amount_is_refused_at_intake() {
    let s = Scenario::new();
    let mut g = ev::subsidy("L-S", "S-1", None, "2024-04-01", None);
    if let Payload::SubsidyGranted(p) = &mut g.payload {
        p.copay_amount_yen = Some(3_000_000_000);
    }
    match &s.submit(vec![g])[0] {
        Submitted::Rejected { error } => assert_eq!(error.field, "copay_amount_yen"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_date_past_year_9999_is_refused_with_its_field() {
    let mut v = json::to_value(&ev::lost("L-X", "insurer-01130012", "Q-1", "2024-04-01"));
    v["lost_on"] = "+12345-01-01".into();
    let err = json::from_value(v).unwrap_err();
    assert_eq!(err.field, "lost_on");
}

/// The default record-time policy is the log's clock: a live event stamped
/// in the past by its producer cannot change what the ledger knew then.
#[test]
fn a_live_event_cannot_rewrite_past_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(&dir.path().join("d"), 1).unwrap();
    ledger.start_projector();
    let a = insured("01130012", Some("A1"), "1", Some("00"));
    let wait = Wait::Projected(Duration::from_secs(10));
    ledger
        .submit(vec![ev::acquired("L-A", "QA", &a, "2024-01-01")], wait)
        .unwrap();
    let known = RecordTime::now();
    let key = LookupKey::Insured(a.clone());
    let before = ledger
        .eligibility(&key, day("2024-02-01"), Some(known))
        .unwrap();
    let mut loss = ev::lost("L-A", "insurer-01130012", "QA", "2024-01-15");
    loss.envelope.produced_at = chrono::Utc::now() - chrono::Duration::days(20);
    ledger.submit(vec![loss], wait).unwrap();
    assert_eq!(
        before,
        ledger
            .eligibility(&key, day("2024-02-01"), Some(known))
            .unwrap()
    );
    assert_ne!(
        before,
        ledger.eligibility(&key, day("2024-02-01"), None).unwrap()
    );
}
