//! Retroactive loss (遡及喪失), effective-dated changes, retractions and
//! re-joins, each answered as known now and as known before.

use projectors::Lookup;
use scenario_tests::{ev, Scenario};

const SRC: &str = "insurer-01130012";

fn copays(
    s: &Scenario,
    n: &ledger::domain::IndividualInsuredNumber,
    on: &str,
    as_of: Option<ledger::domain::RecordTime>,
) -> Vec<u8> {
    match s.by_number(n, on, as_of) {
        Lookup::Found(e) => e
            .qualifications
            .iter()
            .map(|q| q.qualification.copay_percent.percent())
            .collect(),
        other => panic!("expected found, got {other:?}"),
    }
}

#[test]
fn retroactive_loss_ends_coverage_in_the_past_only_from_its_record_time() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "1", Some("00"));
    let before = s.publish(vec![ev::acquired("L1", "Q1", &n, "2023-04-01")]);
    s.publish(vec![ev::lost("L1", SRC, "Q1", "2024-01-01")]);
    assert_eq!(copays(&s, &n, "2024-02-01", Some(before)), vec![30]);
    assert_eq!(copays(&s, &n, "2024-02-01", None), Vec::<u8>::new());
    assert_eq!(copays(&s, &n, "2023-12-31", None), vec![30]);
    match s.by_number(&n, "2024-02-01", None) {
        Lookup::Found(e) => assert!(e.qualifications.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn change_effective_mid_qualification_splits_the_timeline() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "2", Some("00"));
    s.publish(vec![ev::acquired("L2", "Q2", &n, "2023-04-01")]);
    // Recorded later, effective earlier than a second change recorded first.
    s.publish(vec![ev::copay_changed("L2", SRC, "Q2", "2024-10-01", 10)]);
    s.publish(vec![ev::copay_changed("L2", SRC, "Q2", "2024-04-01", 20)]);
    assert_eq!(copays(&s, &n, "2024-03-31", None), vec![30]);
    assert_eq!(copays(&s, &n, "2024-04-01", None), vec![20]);
    assert_eq!(copays(&s, &n, "2024-09-30", None), vec![20]);
    assert_eq!(copays(&s, &n, "2024-10-01", None), vec![10]);
}

#[test]
fn retracting_a_change_restores_what_held_and_keeps_the_record() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "3", Some("00"));
    s.publish(vec![ev::acquired("L3", "Q3", &n, "2023-04-01")]);
    let wrong = ev::copay_changed("L3", SRC, "Q3", "2024-01-01", 20);
    let with_wrong = s.publish(vec![wrong.clone()]);
    s.publish(vec![ev::retract_event("L3", SRC, &wrong)]);
    assert_eq!(copays(&s, &n, "2024-06-01", None), vec![30]);
    assert_eq!(copays(&s, &n, "2024-06-01", Some(with_wrong)), vec![20]);
    // History shows the closed version and the event that closed it.
    let h = s.ledger.history(&"L3".parse().unwrap()).unwrap().unwrap();
    assert!(h.versions.iter().any(|v| v.closed_by.is_some()));
    assert!(h
        .versions
        .iter()
        .all(|v| v.recorded_to.is_none_or(|t| t > v.recorded_from)));
}

#[test]
fn retracting_a_qualification_removes_it_now_but_not_as_known_before() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "4", Some("00"));
    let t = s.publish(vec![ev::acquired("L4", "Q4", &n, "2023-04-01")]);
    s.publish(vec![ev::retract_qualification("L4", SRC, "Q4")]);
    assert_eq!(s.by_number(&n, "2024-01-01", None), Lookup::NotFound);
    assert_eq!(copays(&s, &n, "2024-01-01", Some(t)), vec![30]);
}

#[test]
fn a_rejoin_is_a_new_qualification_with_its_own_identity() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "5", Some("00"));
    s.publish(vec![ev::acquired("L5", "Q5a", &n, "2020-04-01")]);
    s.publish(vec![ev::lost("L5", SRC, "Q5a", "2022-04-01")]);
    s.publish(vec![ev::acquired("L5", "Q5b", &n, "2023-04-01")]);
    assert_eq!(copays(&s, &n, "2021-01-01", None), vec![30]);
    assert_eq!(copays(&s, &n, "2022-10-01", None), Vec::<u8>::new());
    match s.by_number(&n, "2024-01-01", None) {
        Lookup::Found(e) => {
            assert_eq!(e.qualifications.len(), 1);
            assert_eq!(
                e.qualifications[0].qualification.qualification_id.as_str(),
                "Q5b"
            );
            assert_eq!(e.qualifications[0].qualification.lost_on, None);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_enrolment_returns_both_qualifications() {
    let s = Scenario::new();
    let seamen = ev::insured("02130011", Some("1"), "77", Some("00"));
    let elderly = ev::insured("39131008", None, "12345678", None);
    s.publish(vec![
        ev::acquired("L6", "Q6s", &seamen, "2020-04-01"),
        ev::acquired("L6", "Q6e", &elderly, "2024-01-10"),
    ]);
    let mut insurers = s.insurers_on(&seamen, "2024-02-01", None);
    insurers.sort();
    assert_eq!(insurers, vec!["02130011", "39131008"]);
    assert_eq!(
        s.insurers_on(&elderly, "2023-02-01", None),
        vec!["02130011"]
    );
}

#[test]
fn certificates_and_subsidies_come_with_the_dates_they_cover() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("A"), "7", Some("00"));
    s.publish(vec![
        ev::acquired("L7", "Q7", &n, "2023-04-01"),
        ev::certificate("L7", SRC, "C7", "Q7", "2024-04-01", Some("2024-07-31")),
        ev::card_linked("L7", "ABCDEF0123", &n, "2024-04-01"),
        ev::subsidy(
            "L7",
            "S7",
            Some("ABCDEF0123"),
            "2024-04-01",
            Some("2025-03-31"),
        ),
    ]);
    let look = |on: &str| match s.by_number(&n, on, None) {
        Lookup::Found(e) => (e.qualifications[0].certificates.len(), e.subsidies.len()),
        other => panic!("{other:?}"),
    };
    assert_eq!(look("2024-03-31"), (0, 0));
    assert_eq!(look("2024-07-31"), (1, 1));
    assert_eq!(look("2024-08-01"), (0, 1));
    assert_eq!(look("2025-04-01"), (0, 0));
}
