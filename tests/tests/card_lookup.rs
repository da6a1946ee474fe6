//! Eligibility by linked card serial, and "not linked" after an unlink.

use projectors::{Lookup, LookupKey};
use scenario_tests::{day, ev, Scenario};

#[test]
fn a_linked_serial_finds_the_person_and_an_unlinked_one_says_since_when() {
    let s = Scenario::new();
    let n = ev::insured("138057", Some("国"), "9", Some("01"));
    s.publish(vec![ev::acquired("L8", "Q8", &n, "2022-04-01")]);
    let before_link = s.publish(vec![ev::card_linked("L8", "00FF00FF", &n, "2024-05-01")]);
    let card = LookupKey::Card("00FF00FF".parse().unwrap());
    match s
        .ledger
        .eligibility(&card, day("2024-06-01"), None)
        .unwrap()
    {
        Lookup::Found(e) => assert_eq!(
            e.qualifications[0].qualification.insurer_number.as_str(),
            "138057"
        ),
        other => panic!("{other:?}"),
    }
    s.publish(vec![ev::card_unlinked("L8", "00FF00FF", "2025-01-01")]);
    assert_eq!(
        s.ledger
            .eligibility(&card, day("2025-02-01"), None)
            .unwrap(),
        Lookup::NotLinked {
            since: day("2025-01-01")
        }
    );
    // Before the unlink was recorded, the serial still answered.
    assert!(matches!(
        s.ledger
            .eligibility(&card, day("2025-02-01"), Some(before_link))
            .unwrap(),
        Lookup::Found(_)
    ));
    // An unknown serial is simply not found.
    let other = LookupKey::Card("0123".parse().unwrap());
    assert_eq!(
        s.ledger
            .eligibility(&other, day("2024-06-01"), None)
            .unwrap(),
        Lookup::NotFound
    );
}
