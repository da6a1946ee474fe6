//! What the lookup phase asks about: a fixed-size reservoir sample of the
//! population's individual insured numbers and card serials, each with the
//! days it identified its person and the record times of that person's
//! events. Memory is the reservoir's, whatever the number of persons.

use ledger::domain::{Day, IndividualInsuredNumber, LinkNumber, QualificationId, RecordTime};
use ledger::event::{Event, Payload};
use projectors::LookupKey;

/// SplitMix64: a fixed, seedable PRNG, so runs draw the same keys.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// One key to look up, with when it identified its person.
#[derive(Debug, Clone)]
pub struct Probe {
    pub key: LookupKey,
    /// First day the key identified the person.
    pub from: Day,
    /// First day it no longer did (the day after the sample's today if open).
    pub until: Day,
    /// Record times of the person's first and last events.
    pub first_recorded: RecordTime,
    pub last_recorded: RecordTime,
}

/// A question for `Views::eligibility`.
#[derive(Debug, Clone)]
pub struct Query {
    pub key: LookupKey,
    pub on: Day,
    pub as_of: Option<RecordTime>,
}

/// Algorithm R: a uniform sample of at most `cap` of everything offered.
#[derive(Debug)]
struct Reservoir {
    items: Vec<Probe>,
    seen: u64,
    cap: usize,
}

impl Reservoir {
    fn new(cap: usize) -> Reservoir {
        Reservoir {
            items: Vec::with_capacity(cap),
            seen: 0,
            cap,
        }
    }

    fn offer(&mut self, probe: Probe, rng: &mut SplitMix64) {
        self.seen += 1;
        if self.items.len() < self.cap {
            self.items.push(probe);
        } else {
            let j = rng.below(self.seen) as usize;
            if j < self.cap {
                self.items[j] = probe;
            }
        }
    }
}

/// A key of the person being read, still open or already closed.
#[derive(Debug)]
struct Open {
    qualification: Option<QualificationId>,
    key: LookupKey,
    from: Day,
    until: Option<Day>,
}

/// Watches the event stream person by person and samples lookup keys.
#[derive(Debug)]
pub struct Sampler {
    insured: Reservoir,
    cards: Reservoir,
    rng: SplitMix64,
    /// First day after the sample's history.
    end: Day,
    person: Option<LinkNumber>,
    open: Vec<Open>,
    first_recorded: RecordTime,
    last_recorded: RecordTime,
}

impl Sampler {
    /// Keeps up to `cap` insured numbers and `cap` card serials.
    pub fn new(cap: usize, seed: u64, today: Day) -> Sampler {
        Sampler {
            insured: Reservoir::new(cap),
            cards: Reservoir::new(cap),
            rng: SplitMix64::new(seed),
            end: today.succ(),
            person: None,
            open: Vec::new(),
            first_recorded: RecordTime::from_micros(0),
            last_recorded: RecordTime::from_micros(0),
        }
    }

    /// Reads one event (a person's events are consecutive).
    pub fn observe(&mut self, event: &Event, recorded: RecordTime) {
        if self.person.as_ref() != Some(&event.envelope.link) {
            self.close_person();
            self.person = Some(event.envelope.link.clone());
            self.first_recorded = recorded;
        }
        self.last_recorded = recorded;
        match &event.payload {
            Payload::QualificationAcquired(q) => {
                if let Ok(number) = q.insured_number() {
                    self.open.push(Open {
                        qualification: Some(q.qualification_id.clone()),
                        key: LookupKey::Insured(number),
                        from: q.acquired_on,
                        until: None,
                    });
                }
            }
            Payload::QualificationChanged(c)
                if c.card_symbol.is_some() || c.card_number.is_some() || c.branch.is_some() =>
            {
                let Some(open) = self.open.iter_mut().find(|o| {
                    o.until.is_none() && o.qualification.as_ref() == Some(&c.qualification_id)
                }) else {
                    return;
                };
                let LookupKey::Insured(old) = &open.key else {
                    return;
                };
                let renumbered = IndividualInsuredNumber::new(
                    old.insurer().clone(),
                    c.card_symbol.clone().or_else(|| old.symbol().cloned()),
                    c.card_number
                        .clone()
                        .unwrap_or_else(|| old.number().clone()),
                    c.branch.clone().or_else(|| old.branch().cloned()),
                );
                open.until = Some(c.effective_on);
                if let Ok(number) = renumbered {
                    self.open.push(Open {
                        qualification: Some(c.qualification_id.clone()),
                        key: LookupKey::Insured(number),
                        from: c.effective_on,
                        until: None,
                    });
                }
            }
            Payload::QualificationLost(l) => {
                for o in &mut self.open {
                    if o.until.is_none() && o.qualification.as_ref() == Some(&l.qualification_id) {
                        o.until = Some(l.lost_on);
                    }
                }
            }
            Payload::QualificationRetracted(r) => {
                if let Some(q) = &r.retracted_qualification_id {
                    self.open.retain(|o| o.qualification.as_ref() != Some(q));
                }
            }
            Payload::CardLinked(l) => self.open.push(Open {
                qualification: None,
                key: LookupKey::Card(l.card_serial.clone()),
                from: l.linked_on,
                until: None,
            }),
            Payload::CardUnlinked(u) => {
                for o in &mut self.open {
                    if o.until.is_none()
                        && matches!(&o.key, LookupKey::Card(s) if *s == u.card_serial)
                    {
                        o.until = Some(u.unlinked_on);
                    }
                }
            }
            _ => {}
        }
    }

    /// Offers the keys of the person just read to the reservoirs.
    fn close_person(&mut self) {
        for o in std::mem::take(&mut self.open) {
            let until = o.until.unwrap_or(self.end).min(self.end);
            if o.from >= until {
                continue;
            }
            let probe = Probe {
                key: o.key,
                from: o.from,
                until,
                first_recorded: self.first_recorded,
                last_recorded: self.last_recorded,
            };
            match probe.key {
                LookupKey::Insured(_) => self.insured.offer(probe, &mut self.rng),
                LookupKey::Card(_) => self.cards.offer(probe, &mut self.rng),
            }
        }
    }

    /// Ends the stream: the last person's keys are offered too.
    pub fn finish(mut self) -> Probes {
        self.close_person();
        Probes {
            insured: self.insured.items,
            cards: self.cards.items,
            insured_seen: self.insured.seen,
            cards_seen: self.cards.seen,
        }
    }
}

/// The sampled keys.
#[derive(Debug)]
pub struct Probes {
    pub insured: Vec<Probe>,
    pub cards: Vec<Probe>,
    /// How many keys of each kind the population had.
    pub insured_seen: u64,
    pub cards_seen: u64,
}

/// What a drawn query is keyed by, for the breakdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Insured,
    Card,
}

impl Probes {
    /// A query: 80 % by insured number, 20 % by card serial (whichever
    /// exists), on a day the key identified its person; one in ten as of a
    /// record time within the person's history, the rest as known now.
    pub fn draw(&self, rng: &mut SplitMix64) -> Option<(Kind, bool, Query)> {
        let by_card = rng.below(100) < 20;
        let (kind, pool) = match (by_card, self.insured.is_empty(), self.cards.is_empty()) {
            (_, true, true) => return None,
            (true, _, false) | (false, true, false) => (Kind::Card, &self.cards),
            _ => (Kind::Insured, &self.insured),
        };
        let p = &pool[rng.below(pool.len() as u64) as usize];
        let span = (p.until.days_since_epoch() - p.from.days_since_epoch()) as u64;
        let on = p.from.add_days(rng.below(span) as i32);
        let as_of = (rng.below(10) == 0).then(|| {
            let (first, last) = (p.first_recorded.micros(), p.last_recorded.micros());
            RecordTime::from_micros(first + rng.below((last - first) as u64 + 1) as i64)
        });
        Some((
            kind,
            as_of.is_some(),
            Query {
                key: p.key.clone(),
                on,
                as_of,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservoir_keeps_at_most_its_capacity_and_draws_inside_the_ranges() {
        let config = ledger::sample::SampleConfig {
            persons: 300,
            ..Default::default()
        };
        let mut sampler = Sampler::new(50, 7, config.today);
        for (i, e) in ledger::sample::population(&config).enumerate() {
            sampler.observe(&e, RecordTime::from_micros(i as i64));
        }
        let probes = sampler.finish();
        assert_eq!(probes.insured.len(), 50);
        assert!(probes.insured_seen >= 300);
        let mut rng = SplitMix64::new(1);
        for _ in 0..1000 {
            let (_, _, q) = probes.draw(&mut rng).unwrap();
            assert!(q.on <= config.today);
        }
    }
}
