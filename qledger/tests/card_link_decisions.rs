//! Link requests decided by the ledger (certificate already checked): link,
//! the same request again, another person's request for the serial, a
//! renewed card, an unknown number, a lost qualification, a refused
//! certificate; every decision is in the log and a replay reproduces it.

use ledger::domain::{CardSerial, Day, LinkNumber, RequestId};
use ledger::event::{examples, Event, LinkRejectionReason, Payload, QualificationLost};
use projectors::model::LinkOutcome;
use projectors::{Lookup, LookupKey};
use qledger::cardlink::{CertificateCheck, Decider, LinkDecision, LinkRequest};
use qledger::service::{Ledger, Submitted, Wait};

fn day(s: &str) -> Day {
    s.parse().unwrap()
}

fn serial(s: &str) -> CardSerial {
    s.parse().unwrap()
}

/// Person `link` insured at 01130012 with card number `number` from 2024-04-01.
fn acquired(link: &str, number: &str, qualification: &str) -> Event {
    let mut e = examples::all().remove(0);
    e.envelope.event_id = uuid::Uuid::now_v7();
    e.envelope.link = LinkNumber::parse(link).unwrap();
    let Payload::QualificationAcquired(q) = &mut e.payload else {
        unreachable!("example 0 is an acquisition")
    };
    q.card_number = number.parse().unwrap();
    q.qualification_id = qualification.parse().unwrap();
    e
}

fn request(id: &str, number: &str) -> LinkRequest {
    LinkRequest {
        request_id: RequestId::parse(id).unwrap(),
        insurer_number: "01130012".parse().unwrap(),
        card_symbol: Some("あいう".parse().unwrap()),
        card_number: number.parse().unwrap(),
        branch: Some("01".parse().unwrap()),
        notice_requested: true,
        contact: None,
        source: "portal".parse().unwrap(),
    }
}

fn submit(ledger: &Ledger, events: Vec<Event>) {
    for s in ledger
        .submit(events, Wait::Projected(std::time::Duration::from_secs(10)))
        .unwrap()
    {
        assert!(matches!(s, Submitted::Accepted(_)), "{s:?}");
    }
}

/// The reason of a rejection, `None` for any other decision.
fn rejection(decision: &LinkDecision) -> Option<LinkRejectionReason> {
    match decision {
        LinkDecision::Rejected { reason, .. } => Some(*reason),
        _ => None,
    }
}

fn by_card(ledger: &Ledger, s: &str, on: &str) -> Lookup {
    ledger
        .eligibility(&LookupKey::Card(serial(s)), day(on), None)
        .unwrap()
}

#[test]
fn link_requests_are_decided_logged_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 4).unwrap();
    ledger.start_projector();
    submit(
        &ledger,
        vec![
            acquired("L-ONE", "1234", "Q-ONE"),
            acquired("L-TWO", "2345", "Q-TWO"),
            acquired("L-GONE", "3456", "Q-GONE"),
        ],
    );
    let mut lost = examples::all().remove(2);
    lost.envelope.event_id = uuid::Uuid::now_v7();
    lost.envelope.link = LinkNumber::parse("L-GONE").unwrap();
    lost.payload = Payload::QualificationLost(QualificationLost {
        qualification_id: "Q-GONE".parse().unwrap(),
        lost_on: day("2024-05-01"),
        reason: ledger::domain::LossReason::EmploymentEnded,
    });
    submit(&ledger, vec![lost]);
    let decider = Decider::default();
    let valid = |s: &str| CertificateCheck::Valid(serial(s));
    let decide = |id: &str, number: &str, check: CertificateCheck, on: &str| {
        decider
            .decide(&ledger, &request(id, number), check, day(on))
            .unwrap()
    };

    // Linked, then the same request changes nothing.
    let first = decide("R-1", "1234", valid("AA01"), "2024-06-01");
    assert!(
        matches!(&first, LinkDecision::Linked { replaced, .. } if replaced.is_empty()),
        "{first:?}"
    );
    assert!(matches!(
        by_card(&ledger, "AA01", "2024-06-01"),
        Lookup::Found(_)
    ));
    let again = decide("R-1b", "1234", valid("AA01"), "2024-06-02");
    assert!(
        matches!(again, LinkDecision::AlreadyLinked { linked_on, .. } if linked_on == day("2024-06-01"))
    );

    // Another person cannot take the serial.
    let elsewhere = decide("R-2", "2345", valid("AA01"), "2024-06-02");
    assert_eq!(
        rejection(&elsewhere),
        Some(LinkRejectionReason::SerialLinkedElsewhere)
    );

    // A renewed card replaces the old one from the request date.
    let renewed = decide("R-3", "1234", valid("BB02"), "2024-07-01");
    assert!(
        matches!(&renewed, LinkDecision::Linked { replaced, .. } if replaced == &[serial("AA01")]),
        "{renewed:?}"
    );
    assert_eq!(
        by_card(&ledger, "AA01", "2024-07-02"),
        Lookup::NotLinked {
            since: day("2024-07-01")
        }
    );
    assert!(matches!(
        by_card(&ledger, "AA01", "2024-06-30"),
        Lookup::Found(_)
    ));
    assert!(matches!(
        by_card(&ledger, "BB02", "2024-07-01"),
        Lookup::Found(_)
    ));

    // Nobody carries the number; a lost qualification; a refused certificate.
    let unknown = decide("R-4", "9999", valid("CC03"), "2024-07-01");
    assert_eq!(
        rejection(&unknown),
        Some(LinkRejectionReason::NoSuchQualification)
    );
    let gone = decide("R-5", "3456", valid("DD04"), "2024-07-01");
    assert_eq!(
        rejection(&gone),
        Some(LinkRejectionReason::QualificationLost)
    );
    let revoked = decider
        .decide(
            &ledger,
            &request("R-6", "2345"),
            CertificateCheck::Refused {
                serial: serial("EE05"),
                reason: LinkRejectionReason::CertificateRevoked,
                detail: "CERTIFICATE_REVOKED".into(),
            },
            day("2024-07-01"),
        )
        .unwrap();
    assert_eq!(
        rejection(&revoked),
        Some(LinkRejectionReason::CertificateRevoked)
    );
    assert!(matches!(
        by_card(&ledger, "EE05", "2024-07-01"),
        Lookup::NotFound
    ));

    // Every decision is in the log: the requests and their outcomes are in
    // the persons' histories, the unmatched one under its own id.
    let requests = |link: &str| {
        ledger
            .views()
            .link_requests(&LinkNumber::parse(link).unwrap())
            .unwrap()
            .into_iter()
            .map(|r| {
                let outcome = match r.outcome {
                    Some(LinkOutcome::Linked { .. }) => "linked".to_string(),
                    Some(LinkOutcome::Rejected { reason, .. }) => format!("{reason:?}"),
                    None => "undecided".to_string(),
                };
                (r.request_id.as_str().to_owned(), outcome)
            })
            .collect::<Vec<_>>()
    };
    let pairs = |v: &[(&str, &str)]| {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        requests("L-ONE"),
        pairs(&[("R-1", "linked"), ("R-3", "linked")]),
        "R-1b changed nothing"
    );
    assert_eq!(
        requests("L-TWO"),
        pairs(&[
            ("R-2", "SerialLinkedElsewhere"),
            ("R-6", "CertificateRevoked")
        ])
    );
    assert_eq!(requests("L-GONE"), pairs(&[("R-5", "QualificationLost")]));
    assert_eq!(
        requests("UNMATCHED-R-4"),
        pairs(&[("R-4", "NoSuchQualification")])
    );
    assert_eq!(
        ledger.dead_letters(None, 10).unwrap(),
        vec![],
        "every decision applied"
    );

    // A replay of the log reproduces the views, decisions included.
    ledger.shutdown();
    drop(ledger);
    let live = {
        let views = projectors::Views::open_read_only(&dir.path().join("views")).unwrap();
        replay::digest(&views).unwrap().0
    };
    let log = ledger::log::embedded::EmbeddedLog::open_read_only(&dir.path().join("log")).unwrap();
    let rebuilt = replay::rebuild(&log, &dir.path().join("rebuilt"), &replay::Until::End).unwrap();
    assert_eq!(rebuilt.digest, live);
}

/// The example subsidy for `link`, tied to `serial` (or none), from `from`.
fn subsidy(link: &str, id: &str, serial: Option<&str>, from: &str, until: &str) -> Event {
    let mut e = examples::all()
        .into_iter()
        .find(|e| matches!(e.payload, Payload::SubsidyGranted(_)))
        .unwrap();
    e.envelope.event_id = uuid::Uuid::now_v7();
    e.envelope.link = LinkNumber::parse(link).unwrap();
    let Payload::SubsidyGranted(g) = &mut e.payload else {
        unreachable!()
    };
    g.subsidy_id = id.parse().unwrap();
    g.card_serial = serial.map(|s| s.parse().unwrap());
    g.valid_from = day(from);
    g.valid_until = Some(day(until));
    e
}

#[test]
fn subsidies_are_held_only_for_linked_card_holders() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path(), 4).unwrap();
    ledger.start_projector();
    submit(
        &ledger,
        vec![
            acquired("L-ONE", "1234", "Q-ONE"),
            acquired("L-TWO", "2345", "Q-TWO"),
        ],
    );
    let decider = Decider::default();
    let linked = decider
        .decide(
            &ledger,
            &request("R-1", "1234"),
            CertificateCheck::Valid(serial("AA01")),
            day("2024-06-01"),
        )
        .unwrap();
    assert!(matches!(linked, LinkDecision::Linked { .. }));

    let wait = Wait::Projected(std::time::Duration::from_secs(10));
    let outcomes = ledger
        .submit(
            vec![
                // Linked holder: held, across a year and a month boundary.
                subsidy("L-ONE", "S-1", Some("AA01"), "2024-12-01", "2025-01-31"),
                // No serial, and a serial the person has not linked: refused.
                subsidy("L-TWO", "S-2", None, "2024-06-01", "2025-03-31"),
                subsidy("L-TWO", "S-3", Some("AA01"), "2024-06-01", "2025-03-31"),
            ],
            wait,
        )
        .unwrap();
    let notes: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| match o {
            Submitted::Accepted(r) => r
                .dead_letter
                .as_ref()
                .map(|d| format!("{}: {}", d.field.clone().unwrap_or_default(), d.reason)),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(notes[0], None);
    for note in &notes[1..] {
        let note = note.as_deref().expect("refused");
        assert!(
            note.starts_with("card_serial: subsidy data is held only for linked"),
            "{note}"
        );
    }

    // Returned on the dates it covers, by card serial and by insured number.
    let subsidies =
        |key: LookupKey, on: &str| match ledger.eligibility(&key, day(on), None).unwrap() {
            Lookup::Found(e) => e
                .subsidies
                .iter()
                .map(|s| s.subsidy_id.as_str().to_owned())
                .collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
    let by_number = || LookupKey::Insured(request("R-x", "1234").insured_number().unwrap());
    let by_serial = || LookupKey::Card(serial("AA01"));
    for (on, expected) in [
        ("2024-11-30", vec![]),
        ("2024-12-01", vec!["S-1".to_string()]),
        ("2024-12-31", vec!["S-1".to_string()]),
        ("2025-01-01", vec!["S-1".to_string()]),
        // valid_until is the last day covered.
        ("2025-01-31", vec!["S-1".to_string()]),
        ("2025-02-01", vec![]),
    ] {
        assert_eq!(subsidies(by_number(), on), expected, "by number on {on}");
        assert_eq!(subsidies(by_serial(), on), expected, "by serial on {on}");
    }
}
