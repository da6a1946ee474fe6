//! The `claims` mode: how fast claims are decided, beside raw RocksDB.
//!
//! 1. **pure decision**: `projectors::claims::decide` over `--decisions`
//!    generated inputs (one to three insurers a day, one to four service
//!    days, a third with a 限度額 category), on one core. Target ≥ 1M/s.
//! 2. **load**: `--persons` persons, each a 協会けんぽ qualification from
//!    2020 and `--claims-per-person` claims (2024-01 onwards, two service
//!    days each), through `Views::apply` as the projector applies them.
//! 3. **re-evaluation burst**: a retroactive loss (2024-06-01) for
//!    `--retro` persons through `Views::apply`: their claims of the months
//!    the loss touched (June onwards) are decided again (and change to
//!    `return`). Baseline: raw `multi_get` of the same claims' keys in the
//!    same database, just before the burst, through a read-only handle.
//! 4. **pre-submission checks**: `qledger::claims::check` for `--checks`
//!    claims drawn from the load (patient lookup, version rows, decision),
//!    beside a raw `multi_get` of the same claims' keys.
//!
//! Targets for 3 and 4: ≥ 30 % of the raw rate.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ledger::domain::*;
use ledger::event::{
    avro, ClaimSubmitted, Envelope, Event, Payload, QualificationAcquired, QualificationLost,
};
use ledger::log::{partitioner, LogRecord};
use projectors::claims::{decide, ClaimTerms, DayCover, InsurerCover};
use projectors::keys;
use projectors::model::EventRef;
use projectors::Views;
use rocksdb::DB;
use uuid::Uuid;

use crate::probe::SplitMix64;
use crate::Batches;

#[derive(Debug, clap::Args)]
pub struct ClaimsBench {
    /// Inputs of the pure decision phase.
    #[arg(long, default_value_t = 2_000_000)]
    decisions: usize,
    /// Persons of the load.
    #[arg(long, default_value_t = 100_000)]
    persons: u64,
    #[arg(long, default_value_t = 10)]
    claims_per_person: u32,
    /// Persons given a retroactive loss in the burst.
    #[arg(long, default_value_t = 10_000)]
    retro: u64,
    /// Pre-submission checks.
    #[arg(long, default_value_t = 50_000)]
    checks: u64,
}

const KYOKAI: &str = "01130012";
const SOCIETY: &str = "06139000";
const TARGET: f64 = 0.30;
/// Claim `k` bills 2024-01 + k months; the burst's losses are from June.
const LOSS_MONTH_INDEX: u32 = 5;

fn insurer(n: &str) -> InsurerNumber {
    n.parse().expect("a valid insurer number")
}

fn link(n: u64) -> LinkNumber {
    LinkNumber::parse(&format!("B{n:09}")).expect("a valid link")
}

fn claim_id(person: u64, k: u32) -> ClaimId {
    ClaimId::parse(&format!("K{person:09}-{k:02}")).expect("a valid claim id")
}

fn number(person: u64) -> CardNumber {
    format!("{}", 100_000 + person)
        .parse()
        .expect("a valid card number")
}

pub fn run(
    seed: u64,
    partitions: u32,
    batch: usize,
    bench: &ClaimsBench,
    dir: &Path,
) -> Result<()> {
    eprintln!(
        "qledger-bench claims: {} decisions; {} persons × {} claims, {} retroactive losses, {} checks; seed {seed}, {partitions} partitions, in {}",
        bench.decisions,
        bench.persons,
        bench.claims_per_person,
        bench.retro,
        bench.checks,
        dir.display()
    );
    let pure = pure_decisions(seed, bench.decisions);
    let views_dir = dir.join("claims-views");
    let views = Views::open(&views_dir).context("opening the views")?;
    let mut numbering = Numbering::new(partitions);
    let started = Instant::now();
    let mut batches = Batches::new(partitions, batch);
    for p in 0..bench.persons {
        let mut events = vec![acquired(p)];
        for k in 0..bench.claims_per_person {
            events.push(claim(p, k));
        }
        for e in events {
            let record = numbering.record(&e)?;
            if let Some(full) = batches.push(record) {
                let part = full[0].partition;
                views.apply(part, full)?;
                full.clear();
            }
        }
    }
    for rest in batches.rest() {
        let part = rest[0].partition;
        views.apply(part, rest)?;
        rest.clear();
    }
    let load = started.elapsed();
    let loaded = bench.persons * (1 + u64::from(bench.claims_per_person));
    // The burst must not pay for the load's compactions.
    views.settle()?;

    // The burst: retroactive losses, each re-deciding the person's claims.
    let mut rng = SplitMix64::new(seed ^ 0xC1A1);
    let retro: Vec<u64> = (0..bench.retro.min(bench.persons))
        .map(|_| rng.below(bench.persons))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // A loss from 2024-06-01 touches the claims of June onwards only: the
    // ones decided again. Their baseline is read before the burst, from a
    // second (read-only) handle with a cold block cache, as the burst reads
    // them.
    let touched: Vec<u32> = (0..bench.claims_per_person)
        .filter(|k| *k >= LOSS_MONTH_INDEX)
        .collect();
    let retro_keys: Vec<Vec<u8>> = retro
        .iter()
        .flat_map(|p| {
            touched.iter().map(move |k| {
                keys::claim(link(*p).as_str(), claim_id(*p, *k).as_str()).into_bytes()
            })
        })
        .collect();
    let raw = DB::open_for_read_only(&projectors::store::view_options(), &views_dir, false)
        .context("opening the views raw")?;
    let raw_retro = multi_get(&raw, &retro_keys)?;
    drop(raw);
    let mut burst = Batches::new(partitions, batch);
    let mut pending = Vec::new();
    for p in &retro {
        pending.push(numbering.record(&lost(*p))?);
    }
    let started = Instant::now();
    for record in pending {
        if let Some(full) = burst.push(record) {
            let part = full[0].partition;
            views.apply(part, full)?;
            full.clear();
        }
    }
    for rest in burst.rest() {
        let part = rest[0].partition;
        views.apply(part, rest)?;
        rest.clear();
    }
    let burst_time = started.elapsed();
    let redecided = retro.len() as u64 * touched.len() as u64;
    views.settle()?;
    drop(views);

    // The baselines: raw multi_get of the same claims' keys.
    let check_draws: Vec<(u64, u32)> = (0..bench.checks)
        .map(|_| {
            (
                rng.below(bench.persons),
                rng.below(u64::from(bench.claims_per_person)) as u32,
            )
        })
        .collect();
    let check_keys: Vec<Vec<u8>> = check_draws
        .iter()
        .map(|(p, k)| keys::claim(link(*p).as_str(), claim_id(*p, *k).as_str()).into_bytes())
        .collect();
    let raw = DB::open_for_read_only(&projectors::store::view_options(), &views_dir, false)
        .context("opening the views raw")?;
    let raw_checks = multi_get(&raw, &check_keys)?;
    drop(raw);

    // Pre-submission checks, read-only.
    let views = Views::open_read_only(&views_dir)?;
    let claims: Vec<ClaimSubmitted> = check_draws
        .iter()
        .map(|(p, k)| match claim(*p, *k).payload {
            Payload::ClaimSubmitted(c) => c,
            _ => unreachable!(),
        })
        .collect();
    let started = Instant::now();
    let mut returned = 0u64;
    for c in &claims {
        let checked = qledger::claims::check(&views, c, None)?;
        if matches!(
            checked.evaluation.decision,
            projectors::claims::Decision::Return { .. }
        ) {
            returned += 1;
        }
    }
    let check_time = started.elapsed();

    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64().max(1e-9);
    let pure_rate = rate(pure.0, pure.1);
    let load_rate = rate(loaded, load);
    let burst_rate = rate(redecided, burst_time);
    let retro_raw = rate(retro_keys.len() as u64, raw_retro);
    let check_rate = rate(claims.len() as u64, check_time);
    let check_raw = rate(check_keys.len() as u64, raw_checks);
    println!("phase                         rate/s      baseline/s  ratio   target");
    println!(
        "pure decision (1 core)        {pure_rate:>10.0}  {:>10}  {:>6}  ≥ 1M/s",
        "-", "-"
    );
    println!(
        "load (events through apply)   {load_rate:>10.0}  {:>10}  {:>6}  -",
        "-", "-"
    );
    println!(
        "re-evaluations after burst    {burst_rate:>10.0}  {retro_raw:>10.0}  {:>5.1}%  ≥ {:.0}%",
        100.0 * burst_rate / retro_raw,
        100.0 * TARGET
    );
    println!(
        "pre-submission checks         {check_rate:>10.0}  {check_raw:>10.0}  {:>5.1}%  ≥ {:.0}%",
        100.0 * check_rate / check_raw,
        100.0 * TARGET
    );
    eprintln!(
        "  ({} claims re-decided by {} losses in {:.2?}; {} of {} checked claims returned)",
        redecided,
        retro.len(),
        burst_time,
        returned,
        claims.len()
    );
    Ok(())
}

/// Times `decide` over `n` generated inputs: (decisions, time).
fn pure_decisions(seed: u64, n: usize) -> (u64, Duration) {
    let mut rng = SplitMix64::new(seed);
    let pool = [
        insurer(KYOKAI),
        insurer(SOCIETY),
        insurer("138057"),
        insurer("39132014"),
    ];
    let source = EventRef {
        event_id: Uuid::nil(),
        source: "bench".parse().expect("a publisher id"),
        partition: 0,
        offset: 0,
        record_time: RecordTime::from_micros(0),
    };
    let inputs: Vec<(ClaimTerms, Vec<DayCover>)> = (0..n)
        .map(|_| {
            let days: Vec<Day> = (0..1 + rng.below(4))
                .map(|d| Day::from_ymd(2024, 4, 1 + d as u32 * 7).expect("a day"))
                .collect();
            let billed = pool[rng.below(4) as usize].clone();
            let cover = days
                .iter()
                .map(|day| DayCover {
                    day: *day,
                    insurers: (0..1 + rng.below(3))
                        .map(|_| {
                            let i = pool[rng.below(4) as usize].clone();
                            InsurerCover {
                                qualification: "Q".parse().expect("an id"),
                                payer: i.kind().payer(),
                                insurer: i,
                                copay: CopayRate::from_percent(30).expect("a rate"),
                                benefits: rng.below(20) != 0,
                                after_loss: false,
                                limit_categories: vec![LimitCategory::C],
                                diseases: vec![],
                                source: source.clone(),
                            }
                        })
                        .collect(),
                    public_expense: vec![],
                })
                .collect();
            let terms = ClaimTerms {
                payer: billed.kind().payer(),
                billed_insurer: billed,
                days,
                limit_category: (rng.below(3) == 0).then_some(LimitCategory::C),
                specific_disease: None,
                public_expense_payer: None,
            };
            (terms, cover)
        })
        .collect();
    let started = Instant::now();
    let mut keeps = 0u64;
    for (terms, cover) in &inputs {
        let e = decide(terms, cover, None);
        if matches!(e.decision, projectors::claims::Decision::Keep) {
            keeps += 1;
        }
    }
    let time = started.elapsed();
    std::hint::black_box(keeps);
    (n as u64, time)
}

fn multi_get(db: &DB, keys: &[Vec<u8>]) -> Result<Duration> {
    let started = Instant::now();
    let mut found = 0usize;
    for chunk in keys.chunks(1_000) {
        for v in db.multi_get(chunk) {
            if v.context("multi_get")?.is_some() {
                found += 1;
            }
        }
    }
    let time = started.elapsed();
    anyhow::ensure!(
        found == keys.len(),
        "the baseline found {found} of {} claims",
        keys.len()
    );
    Ok(time)
}

/// Numbers records as the log would: partition by link, dense offsets,
/// increasing record times.
struct Numbering {
    partitions: u32,
    ends: Vec<u64>,
    time: i64,
}

impl Numbering {
    fn new(partitions: u32) -> Numbering {
        Numbering {
            partitions,
            ends: vec![0; partitions as usize],
            time: 1_700_000_000_000_000,
        }
    }

    fn record(&mut self, event: &Event) -> Result<LogRecord> {
        let key = event.envelope.link.as_str().as_bytes().to_vec();
        let partition = partitioner::partition_for(&key, self.partitions);
        let offset = self.ends[partition as usize];
        self.ends[partition as usize] += 1;
        self.time += 1_000;
        Ok(LogRecord {
            partition,
            offset,
            record_time: RecordTime::from_micros(self.time),
            key,
            event_id: event.envelope.event_id,
            headers: Vec::new(),
            value: avro::encode(event).context("encoding")?,
            defect: None,
        })
    }
}

fn event(person: u64, n: u64, payload: Payload) -> Event {
    Event {
        envelope: Envelope {
            event_id: Uuid::from_u128(
                (0x0190_a1b2_c3d4_7000_8000u128 << 48) | u128::from(person * 64 + n),
            ),
            source: "bench".parse().expect("a publisher id"),
            link: link(person),
            produced_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("a time"),
        },
        payload,
    }
}

fn acquired(p: u64) -> Event {
    event(
        p,
        0,
        QualificationAcquired {
            qualification_id: format!("Q{p}").parse().expect("an id"),
            insurer_number: insurer(KYOKAI),
            card_symbol: Some("1".parse().expect("a symbol")),
            card_number: number(p),
            branch: Some("00".parse().expect("a branch")),
            relationship: Relationship::Insured,
            name: "山田 太郎".parse().expect("a name"),
            name_kana: "ヤマダ タロウ".parse().expect("a kana name"),
            sex: Sex::Male,
            birth_date: "1980-05-12".parse().expect("a date"),
            acquired_on: "2020-01-01".parse().expect("a date"),
            card_kind: CardKind::HealthInsurance,
            copay: CopayRate::from_percent(30).expect("a rate"),
            card_valid_until: None,
            special_statuses: vec![],
        }
        .into(),
    )
}

fn claim(p: u64, k: u32) -> Event {
    event(
        p,
        1 + u64::from(k),
        ClaimSubmitted {
            claim_id: claim_id(p, k),
            institution: "1311234567".parse().expect("a code"),
            kind: ClaimKind::Medical,
            payer: PayerOrganisation::SocialInsuranceFund,
            billed_insurer: insurer(KYOKAI),
            card_symbol: Some("1".parse().expect("a symbol")),
            card_number: Some(number(p)),
            branch: Some("00".parse().expect("a branch")),
            card_serial: None,
            service_month: ServiceMonth::from_index(
                "2024-01".parse::<ServiceMonth>().expect("a month").index() + k,
            )
            .expect("a month"),
            service_days: vec![3, 17],
            limit_category: None,
            specific_disease: None,
            public_expense_payer: None,
            recipient_number: None,
            total_points: 500,
        }
        .into(),
    )
}

fn lost(p: u64) -> Event {
    event(
        p,
        63,
        QualificationLost {
            qualification_id: format!("Q{p}").parse().expect("an id"),
            lost_on: "2024-06-01".parse().expect("a date"),
            reason: LossReason::EmploymentEnded,
        }
        .into(),
    )
}
