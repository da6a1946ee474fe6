//! The bitemporal query engine against a naive oracle.
//!
//! Random histories of acquisitions, effective-dated changes, losses,
//! retractions and re-joins are projected into real RocksDB views; for random
//! (date, as-of) pairs the engine's answer must equal the oracle's: replay the
//! events recorded up to `as_of` into plain structs and filter by date.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use ledger::domain::*;
use ledger::event::*;
use ledger::log::LogRecord;
use projectors::{Lookup, LookupKey, Views};
use proptest::prelude::*;
use uuid::Uuid;

const LINK: &str = "L-ORACLE";

fn day(n: i32) -> Day {
    Day::from_ymd(2024, 1, 1).unwrap().add_days(n)
}

/// A step of a random history, before it becomes an event.
#[derive(Debug, Clone)]
enum Step {
    Acquire {
        q: u8,
        on: i32,
        number: u8,
    },
    Change {
        q: u8,
        on: i32,
        copay: u8,
        number: Option<u8>,
    },
    Lose {
        q: u8,
        on: i32,
    },
    RetractQualification {
        q: u8,
    },
    RetractEvent {
        nth: usize,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3, 0i32..60, 0u8..3).prop_map(|(q, on, number)| Step::Acquire { q, on, number }),
        3 => (0u8..3, 0i32..90, 0u8..3, proptest::option::of(0u8..3)).prop_map(|(q, on, copay, number)| Step::Change { q, on, copay, number }),
        2 => (0u8..3, 0i32..90).prop_map(|(q, on)| Step::Lose { q, on }),
        1 => (0u8..3).prop_map(|q| Step::RetractQualification { q }),
        1 => (0usize..20).prop_map(|nth| Step::RetractEvent { nth }),
    ]
}

fn copay(i: u8) -> CopayRate {
    CopayRate::from_percent([10, 20, 30][i as usize % 3]).unwrap()
}

fn number(i: u8) -> CardNumber {
    format!("{}", 100 + i).parse().unwrap()
}

fn qid(q: u8) -> QualificationId {
    format!("Q{q}").parse().unwrap()
}

fn insured(n: u8) -> IndividualInsuredNumber {
    IndividualInsuredNumber::new(
        "01130012".parse().unwrap(),
        Some("AB".parse().unwrap()),
        number(n),
        Some("00".parse().unwrap()),
    )
    .unwrap()
}

fn to_events(steps: &[Step]) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let payload: Payload = match s {
            Step::Acquire { q, on, number: n } => QualificationAcquired {
                qualification_id: qid(*q),
                insurer_number: "01130012".parse().unwrap(),
                card_symbol: Some("AB".parse().unwrap()),
                card_number: number(*n),
                branch: Some("00".parse().unwrap()),
                relationship: Relationship::Insured,
                name: "試験 花子".parse().unwrap(),
                name_kana: "シケン ハナコ".parse().unwrap(),
                sex: Sex::Female,
                birth_date: Day::from_ymd(1970, 1, 1).unwrap(),
                acquired_on: day(*on),
                card_kind: CardKind::HealthInsurance,
                copay: copay(2),
                card_valid_until: None,
                special_statuses: vec![],
            }
            .into(),
            Step::Change {
                q,
                on,
                copay: c,
                number: n,
            } => QualificationChanged {
                copay: Some(copay(*c)),
                card_number: n.map(number),
                ..QualificationChanged::effective(qid(*q), day(*on))
            }
            .into(),
            Step::Lose { q, on } => QualificationLost {
                qualification_id: qid(*q),
                lost_on: day(*on),
                reason: LossReason::Other,
            }
            .into(),
            Step::RetractQualification { q } => QualificationRetracted {
                retracted_event_id: None,
                retracted_qualification_id: Some(qid(*q)),
                reason: "test".into(),
            }
            .into(),
            Step::RetractEvent { nth } => {
                let Some(target) = out.get(*nth % out.len().max(1)) else {
                    continue;
                };
                QualificationRetracted {
                    retracted_event_id: Some(target.envelope.event_id),
                    retracted_qualification_id: None,
                    reason: "test".into(),
                }
                .into()
            }
        };
        let raw =
            (0x0190_0000_0000u128 << 80) | (0x7u128 << 76) | (0x8u128 << 60) | (i as u128 + 1);
        out.push(Event {
            envelope: Envelope {
                event_id: Uuid::from_u128(raw),
                source: "insurer-01130012".parse().unwrap(),
                link: LINK.parse().unwrap(),
                produced_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            },
            payload,
        });
    }
    out
}

fn time(i: usize) -> RecordTime {
    RecordTime::from_micros(1_700_000_000_000_000 + i as i64 * 1_000_000)
}

fn records(events: &[Event]) -> Vec<LogRecord> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| LogRecord {
            partition: 0,
            offset: i as u64,
            record_time: time(i),
            key: LINK.as_bytes().to_vec(),
            event_id: e.envelope.event_id,
            headers: vec![],
            value: ledger::event::avro::encode(e).unwrap(),
            defect: None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The oracle: plain structs, replayed from scratch for every question.

#[derive(Debug, Clone, Default)]
struct Qual {
    acquired: Option<(Uuid, Day, u8)>,
    changes: Vec<(Uuid, Day, CopayRate, Option<u8>)>,
    lost: Vec<(Uuid, Day)>,
}

/// (qualification id, copay, card number, lost_on) of every qualification
/// valid on `on`, from the events recorded up to `upto` (exclusive).
fn oracle(events: &[Event], upto: usize, on: Day) -> Vec<(String, u8, String, Option<Day>)> {
    let mut quals: BTreeMap<String, Qual> = BTreeMap::new();
    for e in &events[..upto] {
        let id = e.envelope.event_id;
        match &e.payload {
            Payload::QualificationAcquired(a) => {
                let q = quals.entry(a.qualification_id.to_string()).or_default();
                if q.acquired.is_none() {
                    let n: u8 = (a.card_number.as_str().parse::<u32>().unwrap() - 100) as u8;
                    *q = Qual {
                        acquired: Some((id, a.acquired_on, n)),
                        ..Default::default()
                    };
                }
            }
            Payload::QualificationChanged(c) => {
                if let Some(q) = quals.get_mut(c.qualification_id.as_str()) {
                    if let Some((_, acq, _)) = q.acquired {
                        if c.effective_on >= acq {
                            let n = c
                                .card_number
                                .as_ref()
                                .map(|n| (n.as_str().parse::<u32>().unwrap() - 100) as u8);
                            q.changes.push((id, c.effective_on, c.copay.unwrap(), n));
                        }
                    }
                }
            }
            Payload::QualificationLost(l) => {
                if let Some(q) = quals.get_mut(l.qualification_id.as_str()) {
                    if let Some((_, acq, _)) = q.acquired {
                        if l.lost_on > acq {
                            q.lost.push((id, l.lost_on));
                        }
                    }
                }
            }
            Payload::QualificationRetracted(r) => {
                if let Some(qid) = &r.retracted_qualification_id {
                    if let Some(q) = quals.get_mut(qid.as_str()) {
                        *q = Qual::default();
                    }
                } else if let Some(target) = r.retracted_event_id {
                    for q in quals.values_mut() {
                        if q.acquired.is_some_and(|(i, _, _)| i == target) {
                            *q = Qual::default();
                        }
                        q.changes.retain(|c| c.0 != target);
                        q.lost.retain(|l| l.0 != target);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (qid, q) in &quals {
        let Some((_, acquired_on, n0)) = q.acquired else {
            continue;
        };
        let lost_on = q.lost.last().map(|l| l.1);
        if on < acquired_on || lost_on.is_some_and(|l| on >= l) {
            continue;
        }
        let mut changes = q.changes.clone();
        changes.sort_by_key(|c| c.1); // stable: ties stay in log order
        let (mut c, mut n) = (copay(2), n0);
        for (_, _, copay, number) in changes.iter().filter(|c| c.1 <= on) {
            c = *copay;
            if let Some(x) = number {
                n = *x;
            }
        }
        out.push((qid.clone(), c.percent(), number(n).to_string(), lost_on));
    }
    out
}

fn engine(
    views: &Views,
    on: Day,
    as_of: Option<RecordTime>,
) -> Vec<(String, u8, String, Option<Day>)> {
    // Ask by every number any qualification may carry; collect the union.
    let mut out: BTreeMap<String, (String, u8, String, Option<Day>)> = BTreeMap::new();
    for n in 0..3 {
        if let Lookup::Found(e) = views
            .eligibility(&LookupKey::Insured(insured(n)), on, as_of)
            .unwrap()
        {
            for q in e.qualifications {
                let q = q.qualification;
                out.insert(
                    q.qualification_id.to_string(),
                    (
                        q.qualification_id.to_string(),
                        q.copay_percent.percent(),
                        q.card_number.to_string(),
                        q.lost_on,
                    ),
                );
            }
        }
    }
    out.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_the_naive_oracle(
        steps in proptest::collection::vec(step(), 1..24),
        questions in proptest::collection::vec((0i32..100, 0usize..30), 12),
    ) {
        let events = to_events(&steps);
        let dir = tempfile::tempdir().unwrap();
        let views = Views::open(dir.path()).unwrap();
        // Apply in uneven batches, as the runtime would.
        let recs = records(&events);
        for chunk in recs.chunks(3) {
            views.apply(0, chunk).unwrap();
        }
        for (on, upto) in questions {
            let upto = upto.min(events.len());
            let on = day(on);
            // As of just before record `upto`: records 0..upto are known.
            let as_of = if upto == 0 { RecordTime::from_micros(0) } else { time(upto - 1) };
            let mut want = oracle(&events, upto, on);
            want.sort();
            // The lookup needs a number known at as_of; the oracle's answers are
            // only comparable when the person is findable, so compare all quals.
            let got = engine(&views, on, Some(as_of));
            prop_assert_eq!(&got, &want, "on {} as of record {}", on, upto);
        }
        let mut want_now = oracle(&events, events.len(), day(45));
        want_now.sort();
        prop_assert_eq!(engine(&views, day(45), None), want_now);
    }
}
