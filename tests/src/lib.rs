//! Scenario harness: given events, when a question, then the views' answer.
//!
//! A [`Scenario`] is a real data directory (embedded log and RocksDB views on
//! disk) in a temporary folder, driven through the same `Ledger` the HTTP API
//! and the CLI use. Builders in [`ev`] make valid events with little noise.

use std::path::Path;
use std::time::Duration;

use ledger::domain::{Day, IndividualInsuredNumber, RecordTime};
use ledger::event::Event;
use projectors::{Lookup, LookupKey};
use qledger::service::{Ledger, Submitted, Wait};

pub mod ev;

/// A ledger on a temporary data directory, projector running.
#[derive(Debug)]
pub struct Scenario {
    pub dir: tempfile::TempDir,
    pub ledger: Ledger,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::new()
    }
}

impl Scenario {
    pub fn new() -> Scenario {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ledger = Ledger::open(&dir.path().join("data"), 4).expect("open ledger");
        ledger.start_projector();
        Scenario { dir, ledger }
    }

    pub fn data(&self) -> &Path {
        self.ledger.data_dir()
    }

    /// Publishes events and waits until the views reflect them; returns the
    /// record time of the last one (the instant "just after" this step).
    pub fn publish(&self, events: Vec<Event>) -> RecordTime {
        let out = self
            .ledger
            .submit(events, Wait::Projected(Duration::from_secs(10)))
            .expect("submit");
        let mut last = None;
        for s in out {
            match s {
                Submitted::Accepted(r) | Submitted::Duplicate(r) => {
                    assert_eq!(
                        r.projected,
                        Some(true),
                        "event {} not projected in time",
                        r.event_id
                    );
                    last = Some(r.record_time);
                }
                Submitted::Rejected { error } => panic!("event refused at intake: {error}"),
            }
        }
        last.expect("at least one event")
    }

    pub fn submit(&self, events: Vec<Event>) -> Vec<Submitted> {
        self.ledger
            .submit(events, Wait::Projected(Duration::from_secs(10)))
            .expect("submit")
    }

    pub fn by_number(
        &self,
        n: &IndividualInsuredNumber,
        on: &str,
        as_of: Option<RecordTime>,
    ) -> Lookup {
        self.ledger
            .eligibility(&LookupKey::Insured(n.clone()), day(on), as_of)
            .expect("query")
    }

    /// Insurer numbers of the qualifications valid on `on`, as known at `as_of`.
    pub fn insurers_on(
        &self,
        n: &IndividualInsuredNumber,
        on: &str,
        as_of: Option<RecordTime>,
    ) -> Vec<String> {
        match self.by_number(n, on, as_of) {
            Lookup::Found(e) => e
                .qualifications
                .iter()
                .map(|q| q.qualification.insurer_number.to_string())
                .collect(),
            other => panic!("expected the person to be found, got {other:?}"),
        }
    }
}

pub fn day(s: &str) -> Day {
    s.parse().expect("test date")
}
