//! Source p17: a person moves from insurer A to insurer B on 1 April and shows
//! A's old card on 2 April; B registers the acquisition late. What the ledger
//! said on 3 April about 2 April (A), and what it says now (B): both forever.

use scenario_tests::{ev, Scenario};

#[test]
fn late_acquisition_changes_the_answer_about_the_past_but_not_the_past_answer() {
    let s = Scenario::new();
    let a = ev::insured("01130012", Some("あいう"), "1234", Some("00"));
    let b = ev::insured("06139992", Some("12"), "345", Some("00"));
    let link = "L-P17";

    // Long before: the person is insured by A.
    let t_known_a = s.publish(vec![ev::acquired(link, "QA", &a, "2020-04-01")]);
    // "3 April": nothing about the move is recorded yet.
    let on_3_april = t_known_a;
    assert_eq!(
        s.insurers_on(&a, "2024-04-02", Some(on_3_april)),
        vec!["01130012"]
    );

    // Later A records the loss (1 April), and later still B the acquisition.
    let t_loss = s.publish(vec![ev::lost(link, "insurer-01130012", "QA", "2024-04-01")]);
    // Between the two, the ledger knew A had ended and B had not begun: nobody.
    assert!(s.insurers_on(&a, "2024-04-02", Some(t_loss)).is_empty());
    let t_b = s.publish(vec![ev::acquired(link, "QB", &b, "2024-04-01")]);

    // Now: on 2 April the holder of A's number was insured by B.
    assert_eq!(s.insurers_on(&a, "2024-04-02", None), vec!["06139992"]);
    assert_eq!(s.insurers_on(&b, "2024-04-02", Some(t_b)), vec!["06139992"]);
    // And what the ledger said on 3 April is still what it said then.
    assert_eq!(
        s.insurers_on(&a, "2024-04-02", Some(on_3_april)),
        vec!["01130012"]
    );
    // On 31 March, A (known now and then).
    assert_eq!(s.insurers_on(&a, "2024-03-31", None), vec!["01130012"]);
    // B's number was unknown on 3 April.
    assert_eq!(
        s.by_number(&b, "2024-04-02", Some(on_3_april)),
        projectors::Lookup::NotFound
    );
}
