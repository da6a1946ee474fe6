//! The sample population projects cleanly and deterministically: every
//! generated event applies (no dead letters), and two ledgers fed the same
//! generated history produce views with the same digest.

use std::time::Duration;

use ledger::log::RecordTimePolicy;
use ledger::sample::{population, scenario_p17, SampleConfig};
use qledger::service::{Ledger, Submitted, Wait};
use replay::Until;

fn load(dir: &std::path::Path, config: &SampleConfig) -> Ledger {
    let ledger = Ledger::open_with(
        dir,
        4,
        RecordTimePolicy::CreateTime {
            max_future_micros: 0,
        },
    )
    .unwrap();
    let mut events: Vec<_> = population(config).chain(scenario_p17()).collect();
    events.sort_by_key(|e| e.envelope.produced_at);
    for chunk in events.chunks(500) {
        for s in ledger.submit(chunk.to_vec(), Wait::Durable).unwrap() {
            assert!(!matches!(s, Submitted::Rejected { .. }), "{s:?}");
        }
    }
    ledger.catch_up().unwrap();
    ledger
}

#[test]
fn the_sample_population_applies_without_dead_letters_and_rebuilds_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let config = SampleConfig {
        persons: 400,
        ..SampleConfig::default()
    };
    let a = load(&tmp.path().join("a"), &config);
    let b = load(&tmp.path().join("b"), &config);
    let letters = a.dead_letters(None, 10).unwrap();
    assert!(letters.is_empty(), "{letters:?}");

    let (da, _) = replay::digest(a.views()).unwrap();
    let (db, _) = replay::digest(b.views()).unwrap();
    assert_eq!(da, db, "same history, same views");
    let rebuilt = replay::rebuild(a.log().as_ref(), &tmp.path().join("r"), &Until::End).unwrap();
    assert_eq!(rebuilt.digest, da);
    // The projector's own progress is visible and complete.
    assert!(
        a.projector().wait_applied(0, 0, Duration::from_secs(1))
            || a.log().end_offset(0).unwrap() == 0
    );
    assert!(a
        .projector()
        .lag()
        .unwrap()
        .iter()
        .all(|(_, lag)| *lag == 0));
}
