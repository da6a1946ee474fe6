//! Deterministic sample population: a stream of events for many persons that
//! every rule of the ledger accepts, for demos, benchmarks and tests.
//!
//! [`population`] walks persons one after another and yields each person's
//! events in the order their publishers would publish them: the insurers, the
//! NHI aggregation system (国保情報集約システム) for 市町村国保 and 退職者医療,
//! the municipalities for subsidies and the portal (マイナポータル) for card
//! links. A household (世帯) is a run of consecutive persons sharing one card's
//! 記号・番号, each with their own 枝番 (`00` for the insured person, `01`… for
//! the family) and their own link number and qualifications.
//!
//! Between [`SampleConfig::start`] and [`SampleConfig::today`] people change
//! jobs (the new insurer often registers the acquisition weeks late: the p17
//! case, see [`scenario_p17`]), retire into 国保, turn 70 (高齢受給者) and 75
//! (後期高齢者医療), die, are born, marry, get certificates, link their My
//! Number card and receive municipal subsidies. What is already true on
//! `start` is published that day, as the insurers' initial load, with its
//! attributes as of that day. Nothing is published after `today`; an event
//! whose publication would fall later is left out, together with everything
//! that depends on it.
//!
//! # Determinism
//!
//! The output is a function of the [`SampleConfig`] alone, byte for byte, on
//! every platform and for good: the generator has its own SplitMix64 PRNG, no
//! floating point, no hash-map iteration and no clock. Each person draws from
//! a PRNG seeded from (seed, person index), each household from one seeded
//! from (seed, index of its first person), so memory does not grow with the
//! number of persons, and a smaller population is a prefix of a larger one
//! with the same seed and dates. A unit test pins a digest of the stream:
//! changing the generator's output is a deliberate, breaking change.
//!
//! ```
//! use ledger::sample::{population, SampleConfig};
//!
//! let config = SampleConfig { persons: 30, ..SampleConfig::default() };
//! let events: Vec<_> = population(&config).collect();
//! assert_eq!(events, population(&config).collect::<Vec<_>>());
//! assert!(events.iter().all(|e| e.validate().is_ok()));
//! ```

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use uuid::Uuid;

use crate::domain::checkdigit::check_digit;
use crate::domain::*;
use crate::event::*;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleConfig {
    /// Same seed, persons and dates: the same events, byte for byte.
    pub seed: u64,
    /// How many persons (each has their own link number).
    pub persons: u64,
    /// First day of the generated history (Japan). Qualifications open on
    /// that day are published on it, as the insurers' initial load.
    pub start: Day,
    /// The generator's "now" (Japan): nothing is published after this day.
    pub today: Day,
}

impl Default for SampleConfig {
    /// Seed 42, 10,000 persons, 2023-04-01 to 2026-11-01.
    fn default() -> SampleConfig {
        SampleConfig {
            seed: 42,
            persons: 10_000,
            start: ymd(2023, 4, 1),
            today: ymd(2026, 11, 1),
        }
    }
}

/// The sample's insurer schemes; finer than [`InsurerKind`], which cannot tell
/// 市町村国保 from 国保組合.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// 全国健康保険協会 (協会けんぽ), 法別番号 01: one branch per prefecture used.
    KyokaiKenpo,
    /// 船員保険, 02.
    Seamen,
    /// 日雇特例被保険者, 03.
    DayLabourer,
    /// 健康保険組合, 06.
    Society,
    /// 共済組合, 31, 32 and 34.
    MutualAid,
    /// 後期高齢者医療広域連合, 39: one per prefecture used.
    LateElderly,
    /// 市町村国保 (6 digits), published by the NHI aggregation system.
    MunicipalNhi,
    /// 国民健康保険組合 (6 digits).
    NhiSociety,
    /// 退職者医療, 67, run by a municipality and published by the NHI
    /// aggregation system.
    NhiRetiree,
}

impl Scheme {
    pub const ALL: &'static [Scheme] = &[
        Scheme::KyokaiKenpo,
        Scheme::Seamen,
        Scheme::DayLabourer,
        Scheme::Society,
        Scheme::MutualAid,
        Scheme::LateElderly,
        Scheme::MunicipalNhi,
        Scheme::NhiSociety,
        Scheme::NhiRetiree,
    ];

    /// 被用者保険: the insured person's family are dependents (家族) on the card.
    pub fn is_employee(self) -> bool {
        matches!(
            self,
            Scheme::KyokaiKenpo
                | Scheme::Seamen
                | Scheme::DayLabourer
                | Scheme::Society
                | Scheme::MutualAid
        )
    }
}

/// One insurer of the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleInsurer {
    /// 保険者番号, with a valid check digit.
    pub number: InsurerNumber,
    /// e.g. 全国健康保険協会 東京支部.
    pub name: String,
    pub scheme: Scheme,
    /// Who publishes its events: `insurer-<number>`, or `nhi-aggregation`
    /// for 市町村国保 and 退職者医療.
    pub source: PublisherId,
    /// The municipality that runs it (市町村国保, 退職者医療).
    pub municipality: Option<MunicipalityCode>,
    /// Leading characters of the 記号 on its cards (共済組合, 国保組合).
    symbol_prefix: &'static str,
}

/// The fixed insurer set: every scheme, in the prefectures the sample uses.
///
/// Kinds, prefectures and names are the same for every seed, as are the
/// numbers of 協会けんぽ, 船員保険, 日雇特例, 後期高齢者医療広域連合 and the
/// municipalities; the three-digit codes of 健康保険組合, 共済組合 and 国保組合
/// are drawn from `seed`. Every number's check digit is computed.
pub fn insurers(seed: u64) -> Vec<SampleInsurer> {
    let mut rng = stream(seed, Stream::Insurers, 0);
    let mut list = Vec::new();
    for p in PREFECTURES {
        let name = format!("全国健康保険協会 {}", p.branch);
        list.push(insurer(
            Scheme::KyokaiKenpo,
            number(Some(1), p.code, 1),
            name,
            None,
            "",
        ));
    }
    list.push(insurer(
        Scheme::Seamen,
        number(Some(2), 13, 1),
        "全国健康保険協会 船員保険部".into(),
        None,
        "",
    ));
    let day_labourer = "全国健康保険協会 東京支部 (日雇特例被保険者)".to_owned();
    list.push(insurer(
        Scheme::DayLabourer,
        number(Some(3), 13, 1),
        day_labourer,
        None,
        "",
    ));
    for &(name, prefecture) in SOCIETIES {
        let n = fresh_number(&mut rng, &list, Some(6), prefecture, 100);
        list.push(insurer(Scheme::Society, n, name.into(), None, ""));
    }
    for &(law, prefecture, name, prefix) in MUTUAL_AID {
        let n = fresh_number(&mut rng, &list, Some(law), prefecture, 100);
        list.push(insurer(Scheme::MutualAid, n, name.into(), None, prefix));
    }
    for p in PREFECTURES {
        let name = format!("{}後期高齢者医療広域連合", p.name);
        list.push(insurer(
            Scheme::LateElderly,
            number(Some(39), p.code, 100),
            name,
            None,
            "",
        ));
    }
    for (i, m) in MUNICIPALITIES.iter().enumerate() {
        let name = format!("{} 国民健康保険", m.name);
        let n = number(None, m.prefecture, m.code);
        list.push(insurer(
            Scheme::MunicipalNhi,
            n,
            name,
            Some(municipality_code(i)),
            "",
        ));
    }
    for &(prefecture, name, prefix) in NHI_SOCIETIES {
        let n = fresh_number(&mut rng, &list, None, prefecture, 300);
        list.push(insurer(Scheme::NhiSociety, n, name.into(), None, prefix));
    }
    for (i, m) in MUNICIPALITIES.iter().enumerate() {
        let name = format!("{} 国民健康保険 (退職者医療)", m.name);
        let n = number(Some(67), m.prefecture, m.code);
        list.push(insurer(
            Scheme::NhiRetiree,
            n,
            name,
            Some(municipality_code(i)),
            "",
        ));
    }
    list
}

/// 紐付番号 of person `index`: `L` and the index in 12 digits.
pub fn link_number(index: u64) -> LinkNumber {
    LinkNumber::parse(&format!("L{index:012}")).expect("link numbers are opaque ids")
}

/// The sample population: every person's events, person after person, each
/// person's in publication order. See the [module docs](self).
///
/// # Panics
///
/// If `config.today` is not after `config.start`.
pub fn population(config: &SampleConfig) -> impl Iterator<Item = Event> {
    assert!(
        config.start < config.today,
        "the sample's today must be after its start"
    );
    let ctx = Context::new(*config);
    (0..config.persons).flat_map(move |index| person_events(&ctx, index))
}

/// The source's p17 case (資格過誤 from a late registration) for one person,
/// link `L-P17`, in publication order:
///
/// | # | event | published | valid time |
/// | --- | --- | --- | --- |
/// | 1 | acquisition at A, 協会けんぽ 東京支部 `01130012` (`Q-P17-A`) | 2020-04-07 | from 2020-04-01 |
/// | 2 | loss at A, 退職 | 2024-04-20 | `lost_on` 2024-04-01 |
/// | 3 | acquisition at B, 健康保険組合 `06135008` (`Q-P17-B`) | 2024-05-20 | from 2024-04-01 |
///
/// The person moved from A to B on 1 April 2024. Asked about 2 April, the
/// ledger answers A until 20 April (a claim then goes to A by mistake), no
/// one from 20 April to 20 May (the claim would be returned, 返戻), and B
/// from 20 May on, when the claim is re-routed to B (振替).
pub fn scenario_p17() -> Vec<Event> {
    let mut rng = stream(0, Stream::Scenario, 17);
    let link = LinkNumber::parse("L-P17").expect("opaque id");
    let a = number(Some(1), 13, 1);
    let b = number(Some(6), 13, 500);
    let acquired =
        |id: &str, insurer: &InsurerNumber, symbol: &str, number: &str| QualificationAcquired {
            qualification_id: parse(id),
            insurer_number: insurer.clone(),
            card_symbol: Some(parse(symbol)),
            card_number: parse(number),
            branch: Some(parse("00")),
            relationship: Relationship::Insured,
            name: parse("山田\u{3000}太郎"),
            name_kana: parse("ヤマダ\u{3000}タロウ"),
            sex: Sex::Male,
            birth_date: ymd(1985, 6, 15),
            acquired_on: ymd(2020, 4, 1),
            card_kind: CardKind::HealthInsurance,
            copay: copay(30),
            card_valid_until: None,
            special_statuses: vec![],
        };
    let mut b_acquired = acquired("Q-P17-B", &b, "2105", "3310");
    b_acquired.acquired_on = ymd(2024, 4, 1);
    let lost = QualificationLost {
        qualification_id: parse("Q-P17-A"),
        lost_on: ymd(2024, 4, 1),
        reason: LossReason::EmploymentEnded,
    };
    let steps: [(Day, &InsurerNumber, Payload); 3] = [
        (
            ymd(2020, 4, 7),
            &a,
            acquired("Q-P17-A", &a, "13010017", "1234").into(),
        ),
        (ymd(2024, 4, 20), &a, lost.into()),
        (ymd(2024, 5, 20), &b, b_acquired.into()),
    ];
    steps
        .into_iter()
        .map(|(day, insurer, payload)| {
            let at = At::jst(day, NINE_AM + rng.below(600) as i64);
            let envelope = Envelope {
                event_id: uuid_v7(at, &mut rng),
                source: insurer_source(insurer),
                link: link.clone(),
                produced_at: at.datetime(),
            };
            Event { envelope, payload }
        })
        .collect()
}

/// Event counts of a stream, for the demo to print what it loaded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleStats {
    /// Persons with at least one event (a person's events are consecutive).
    pub persons: u64,
    pub events: u64,
    /// Events per type; types without events are absent.
    pub by_type: BTreeMap<EventType, u64>,
    /// Earliest and latest `produced_at` (the stream is ordered per person only).
    pub first_produced_at: Option<DateTime<Utc>>,
    pub last_produced_at: Option<DateTime<Utc>>,
    last_link: Option<LinkNumber>,
}

impl SampleStats {
    /// Counts one event.
    pub fn add(&mut self, event: &Event) {
        if self.last_link.as_ref() != Some(&event.envelope.link) {
            self.persons += 1;
            self.last_link = Some(event.envelope.link.clone());
        }
        self.events += 1;
        *self.by_type.entry(event.event_type()).or_default() += 1;
        let at = event.envelope.produced_at;
        self.first_produced_at = Some(self.first_produced_at.map_or(at, |t| t.min(at)));
        self.last_produced_at = Some(self.last_produced_at.map_or(at, |t| t.max(at)));
    }

    /// Events of one type.
    pub fn count(&self, t: EventType) -> u64 {
        self.by_type.get(&t).copied().unwrap_or(0)
    }
}

impl fmt::Display for SampleStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} events for {} persons", self.events, self.persons)?;
        if let (Some(first), Some(last)) = (self.first_produced_at, self.last_produced_at) {
            write!(
                f,
                ", produced {} to {}",
                first.format("%Y-%m-%d"),
                last.format("%Y-%m-%d")
            )?;
        }
        for t in EventType::ALL {
            write!(f, "\n  {:<24}{:>10}", t.name(), self.count(*t))?;
        }
        Ok(())
    }
}

/// Counts the events of [`population`]`(config)` per type.
pub fn describe(config: &SampleConfig) -> SampleStats {
    let mut stats = SampleStats::default();
    for event in population(config) {
        stats.add(&event);
    }
    stats
}

// The PRNG.

/// SplitMix64 (Steele, Lea and Flood, 2014): a 64-bit state advanced by a
/// fixed odd constant and finalised by [`mix64`]. Small, fast and fixed
/// forever, unlike the streams of general-purpose crates.
#[derive(Debug, Clone)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    fn new(state: u64) -> SplitMix64 {
        SplitMix64 { state }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        mix64(self.state)
    }

    /// Uniform in `0..n` (multiply-shift; the bias is below 2^-32 for our `n`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`; `lo` if the range is empty.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below((hi - lo) as u64 + 1) as i64
    }

    fn days(&mut self, lo: i32, hi: i32) -> i32 {
        self.range(i64::from(lo), i64::from(hi)) as i32
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|&(_, w)| w).sum();
        let mut x = self.below(total);
        for &(item, weight) in items {
            if x < weight {
                return item;
            }
            x -= weight;
        }
        items[items.len() - 1].0
    }
}

/// The SplitMix64 finaliser: a bijection on `u64` that mixes every bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Independent PRNG streams; the discriminants are part of the output.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Insurers = 1,
    Layout = 2,
    Household = 3,
    Person = 4,
    Scenario = 5,
    Serial = 6,
}

/// The PRNG of one (seed, stream, index).
fn stream(seed: u64, stream: Stream, index: u64) -> SplitMix64 {
    let key = mix64(seed ^ (stream as u64).wrapping_mul(SplitMix64::GAMMA));
    SplitMix64::new(mix64(key ^ index))
}

// Instants and ids.

const HOUR: i64 = 3600;
const NINE_AM: i64 = 9 * HOUR;

/// A publication instant: seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct At(i64);

impl At {
    /// `seconds` after midnight of `day` in Japan (UTC+9).
    fn jst(day: Day, seconds: i64) -> At {
        At(i64::from(day.days_since_epoch()) * 86_400 - NINE_AM + seconds)
    }

    fn plus(self, seconds: i64) -> At {
        At(self.0 + seconds)
    }

    /// The date in Japan.
    fn jst_day(self) -> Day {
        let days = (self.0 + NINE_AM).div_euclid(86_400);
        Day::from_days_since_epoch(days as i32).expect("sample instants are in range")
    }

    fn datetime(self) -> DateTime<Utc> {
        Utc.timestamp_opt(self.0, 0)
            .single()
            .expect("sample instants are in range")
    }
}

/// Who publishes, which decides the time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Desk {
    /// An insurer's office, 09:00 to 17:00 JST.
    Insurer,
    /// The NHI aggregation system's evening batch, 20:00 JST.
    NhiBatch,
    /// A municipality's nightly batch, 19:00 JST.
    Municipality,
    /// The portal, 07:00 to 23:00 JST.
    Portal,
}

impl Desk {
    fn of(scheme: Scheme) -> Desk {
        match scheme {
            Scheme::MunicipalNhi | Scheme::NhiRetiree => Desk::NhiBatch,
            _ => Desk::Insurer,
        }
    }

    fn at(self, day: Day, rng: &mut SplitMix64) -> At {
        let (opens, spread) = match self {
            Desk::Insurer => (NINE_AM, 8 * HOUR),
            Desk::NhiBatch => (20 * HOUR, HOUR / 2),
            Desk::Municipality => (19 * HOUR, HOUR),
            Desk::Portal => (7 * HOUR, 16 * HOUR),
        };
        At::jst(day, opens + rng.below(spread as u64) as i64)
    }
}

/// A UUIDv7: 48-bit millisecond timestamp of `at`, version 7, 12 random bits,
/// the RFC 4122 variant and 62 random bits.
fn uuid_v7(at: At, rng: &mut SplitMix64) -> Uuid {
    let millis = (at.0 as u64).wrapping_mul(1000) & ((1 << 48) - 1);
    let rand_a = rng.next_u64() & 0xFFF;
    let rand_b = rng.next_u64() & ((1 << 62) - 1);
    let raw = (u128::from(millis) << 80)
        | (0x7 << 76)
        | (u128::from(rand_a) << 64)
        | (0b10 << 62)
        | u128::from(rand_b);
    Uuid::from_u128(raw)
}

/// A household's 番号: unique per (head, slot) for heads below 62.5 million;
/// an affine map modulo 10^9 (multiplier prime to 10) makes it look issued.
fn household_number(head: u64, slot: usize, scheme: Scheme) -> String {
    const SPACE: u64 = 1_000_000_000;
    let v = head.wrapping_mul(32).wrapping_add(slot as u64);
    let n = if v < SPACE {
        (v * 387_420_489 + 305_175_781) % SPACE
    } else {
        v
    };
    match scheme {
        // 国保組合 numbers carry a hyphen.
        Scheme::NhiSociety => format!("{}-{:04}", n / 10_000, n % 10_000),
        _ => n.to_string(),
    }
}

/// 後期高齢者 被保険者番号: 8 digits, unique for persons below 10^8.
fn late_elderly_number(index: u64) -> String {
    const SPACE: u64 = 100_000_000;
    format!("{:08}", ((index % SPACE) * 48_271 + 1_234_567) % SPACE)
}

/// A card serial: 16 hex digits, unique per (person, k) for k below 16.
fn card_serial(seed: u64, index: u64, k: u64) -> CardSerial {
    let key = stream(seed, Stream::Serial, 0).next_u64();
    parse(&format!("{:016X}", mix64(key ^ (index << 4 | k))))
}

/// Digits with their check digit appended (保険者番号, 公費負担者番号, 受給者番号).
fn with_check(body: &[u8]) -> String {
    body.iter()
        .copied()
        .chain([check_digit(body)])
        .map(|d| char::from(b'0' + d))
        .collect()
}

fn digits(n: u64, width: usize) -> Vec<u8> {
    format!("{n:0width$}").bytes().map(|b| b - b'0').collect()
}

/// 保険者番号 from 法別番号 (none for 国保), prefecture and 3-digit code.
fn number(law: Option<u8>, prefecture: u8, code: u16) -> InsurerNumber {
    let mut body = law.map(|l| digits(u64::from(l), 2)).unwrap_or_default();
    body.extend(digits(u64::from(prefecture), 2));
    body.extend(digits(u64::from(code), 3));
    parse(&with_check(&body))
}

/// JIS X 0402 地方公共団体コード of `MUNICIPALITIES[i]`, with its 検査数字.
fn municipality_code(i: usize) -> MunicipalityCode {
    let m = &MUNICIPALITIES[i];
    let mut body = digits(u64::from(m.prefecture), 2);
    body.extend(digits(u64::from(m.code), 3));
    let sum: u32 = body
        .iter()
        .zip([6u32, 5, 4, 3, 2])
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    body.push(((11 - sum % 11) % 10) as u8);
    parse(
        &body
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect::<String>(),
    )
}

fn insurer_source(n: &InsurerNumber) -> PublisherId {
    parse(&format!("insurer-{n}"))
}

fn insurer(
    scheme: Scheme,
    number: InsurerNumber,
    name: String,
    municipality: Option<MunicipalityCode>,
    symbol_prefix: &'static str,
) -> SampleInsurer {
    let source = match scheme {
        Scheme::MunicipalNhi | Scheme::NhiRetiree => parse("nhi-aggregation"),
        _ => insurer_source(&number),
    };
    SampleInsurer {
        number,
        name,
        scheme,
        source,
        municipality,
        symbol_prefix,
    }
}

/// A number not yet in `list`, its 3-digit code drawn from `first..first+100`
/// or, for 健保組合 and 共済組合, `first..1000`.
fn fresh_number(
    rng: &mut SplitMix64,
    list: &[SampleInsurer],
    law: Option<u8>,
    prefecture: u8,
    first: u16,
) -> InsurerNumber {
    let span = if first == 100 { 900 } else { 100 };
    loop {
        let n = number(law, prefecture, first + rng.below(span) as u16);
        if list.iter().all(|i| i.number != n) {
            return n;
        }
    }
}

/// Parses generated text; a failure is a bug in this module.
fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: fmt::Debug,
{
    s.parse()
        .unwrap_or_else(|e| panic!("sample generated an invalid value {s:?}: {e:?}"))
}

fn copay(percent: u8) -> CopayRate {
    CopayRate::from_percent(percent).expect("10, 20 or 30")
}

// Calendar.

fn ymd(year: i32, month: u32, day: u32) -> Day {
    Day::from_ymd(year, month, day).expect("a calendar date")
}

fn days_between(from: Day, to: Day) -> i32 {
    to.days_since_epoch() - from.days_since_epoch()
}

/// A uniformly drawn day in `lo..=hi` (`lo` if empty).
fn day_in(rng: &mut SplitMix64, lo: Day, hi: Day) -> Day {
    lo.add_days(rng.days(0, days_between(lo, hi)))
}

fn add_months(d: Day, n: i32) -> Day {
    let months = Months::new(n.unsigned_abs());
    let shifted = if n >= 0 {
        d.naive().checked_add_months(months)
    } else {
        d.naive().checked_sub_months(months)
    };
    shifted
        .map(Day::from_naive)
        .unwrap_or(if n >= 0 { Day::MAX } else { Day::MIN })
}

fn first_of_month(d: Day) -> Day {
    let n = d.naive();
    ymd(n.year(), n.month(), 1)
}

/// Completed years on `day` (the birthday counts).
fn age_on(birth: Day, day: Day) -> i32 {
    let (b, d) = (birth.naive(), day.naive());
    let years = d.year() - b.year();
    if (d.month(), d.day()) < (b.month(), b.day()) {
        years - 1
    } else {
        years
    }
}

/// 1 April of the school year that starts after the child turns `age`
/// (school years run 2 April to 1 April by birthday).
fn april_after(birth: Day, age: i32) -> Day {
    let b = birth.naive();
    let late = (b.month(), b.day()) > (4, 1);
    ymd(b.year() + age + i32::from(late), 4, 1)
}

/// 就学: the copay goes from 20 to 30 percent.
fn school_entry(birth: Day) -> Day {
    april_after(birth, 6)
}

/// End of 18歳年度末: children's programmes and 子ども短期証 stop.
fn end_of_childhood(birth: Day) -> Day {
    april_after(birth, 18)
}

/// 高齢受給者: from the 1st of the month after the 70th birthday (that day,
/// if the birthday is a 1st).
fn seventy_date(birth: Day) -> Day {
    let b = birth.add_years(70);
    if b.naive().day() == 1 {
        b
    } else {
        add_months(first_of_month(b), 1)
    }
}

/// The first 31 July on or after `d` (end of a certificate year).
fn july_31_after(d: Day) -> Day {
    let end = ymd(d.year(), 7, 31);
    if d <= end {
        end
    } else {
        ymd(d.year() + 1, 7, 31)
    }
}

/// The 1 October on or before `d` (start of a subsidy year).
fn october_before(d: Day) -> Day {
    let oct = ymd(d.year(), 10, 1);
    if d >= oct {
        oct
    } else {
        ymd(d.year() - 1, 10, 1)
    }
}

/// Last day of the subsidy year of `from`, or the day before `until`.
fn subsidy_year_end(from: Day, until: Option<Day>) -> Day {
    let year_end = october_before(from).add_years(1).pred();
    until.map_or(year_end, |u| year_end.min(u.pred()))
}

// Reference data.

struct Prefecture {
    code: u8,
    name: &'static str,
    /// 協会けんぽ 支部.
    branch: &'static str,
}

const PREFECTURES: &[Prefecture] = &[
    Prefecture {
        code: 1,
        name: "北海道",
        branch: "北海道支部",
    },
    Prefecture {
        code: 13,
        name: "東京都",
        branch: "東京支部",
    },
    Prefecture {
        code: 14,
        name: "神奈川県",
        branch: "神奈川支部",
    },
    Prefecture {
        code: 23,
        name: "愛知県",
        branch: "愛知支部",
    },
    Prefecture {
        code: 27,
        name: "大阪府",
        branch: "大阪支部",
    },
    Prefecture {
        code: 40,
        name: "福岡県",
        branch: "福岡支部",
    },
];

struct Municipality {
    prefecture: u8,
    /// The three digits of the 地方公共団体コード after the prefecture.
    code: u16,
    name: &'static str,
    /// Share of households living there.
    weight: u64,
}

const MUNICIPALITIES: &[Municipality] = &[
    Municipality {
        prefecture: 1,
        code: 100,
        name: "札幌市",
        weight: 8,
    },
    Municipality {
        prefecture: 13,
        code: 101,
        name: "千代田区",
        weight: 3,
    },
    Municipality {
        prefecture: 13,
        code: 104,
        name: "新宿区",
        weight: 9,
    },
    Municipality {
        prefecture: 13,
        code: 112,
        name: "世田谷区",
        weight: 16,
    },
    Municipality {
        prefecture: 14,
        code: 100,
        name: "横浜市",
        weight: 14,
    },
    Municipality {
        prefecture: 23,
        code: 100,
        name: "名古屋市",
        weight: 12,
    },
    Municipality {
        prefecture: 27,
        code: 100,
        name: "大阪市",
        weight: 15,
    },
    Municipality {
        prefecture: 40,
        code: 130,
        name: "福岡市",
        weight: 8,
    },
];

/// 健康保険組合: name, prefecture.
const SOCIETIES: &[(&str, u8)] = &[
    ("さくら電機健康保険組合", 13),
    ("あおば商事健康保険組合", 13),
    ("東都製薬健康保険組合", 13),
    ("みなと物流健康保険組合", 14),
    ("中部自動車健康保険組合", 23),
    ("なにわ鉄鋼健康保険組合", 27),
];

/// 共済組合: 法別番号, prefecture, name, 記号 prefix.
const MUTUAL_AID: &[(u8, u8, &str, &str)] = &[
    (31, 13, "財務省共済組合", "財務"),
    (32, 13, "東京都職員共済組合", "都職"),
    (32, 27, "大阪府市町村職員共済組合", "府職"),
    (34, 13, "日本私立学校振興・共済事業団", "私学"),
];

/// 国民健康保険組合: prefecture, name, 記号 prefix.
const NHI_SOCIETIES: &[(u8, &str, &str)] = &[
    (13, "東京都建設国民健康保険組合", "建設"),
    (27, "大阪府医師国民健康保険組合", "医師"),
];

const FAMILY_NAMES: &[(&str, &str)] = &[
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山口", "ヤマグチ"),
];

const MALE_NAMES: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("健一", "ケンイチ"),
    ("大輔", "ダイスケ"),
    ("翔太", "ショウタ"),
    ("蓮", "レン"),
    ("悠真", "ユウマ"),
    ("浩", "ヒロシ"),
    ("誠", "マコト"),
    ("茂", "シゲル"),
    ("湊", "ミナト"),
    ("陽翔", "ハルト"),
    ("勇", "イサム"),
];

const FEMALE_NAMES: &[(&str, &str)] = &[
    ("花子", "ハナコ"),
    ("陽子", "ヨウコ"),
    ("美咲", "ミサキ"),
    ("陽菜", "ヒナ"),
    ("結衣", "ユイ"),
    ("恵子", "ケイコ"),
    ("幸子", "サチコ"),
    ("裕子", "ユウコ"),
    ("芽依", "メイ"),
    ("凛", "リン"),
    ("さくら", "サクラ"),
    ("和子", "カズコ"),
];

/// Age bands (at `start`) of persons living alone.
const SINGLE_AGES: &[((i64, i64), u64)] = &[
    ((18, 29), 14),
    ((30, 44), 14),
    ((45, 59), 16),
    ((60, 64), 10),
    ((65, 69), 10),
    ((70, 74), 12),
    ((75, 84), 16),
    ((85, 99), 8),
];

/// Age bands (at `start`) of household heads with a family.
const HEAD_AGES: &[((i64, i64), u64)] = &[
    ((25, 34), 20),
    ((35, 49), 38),
    ((50, 64), 25),
    ((65, 69), 9),
    ((70, 74), 8),
];

/// Household sizes; a size is cut short at the end of a layout block.
const HOUSEHOLD_SIZES: &[(u64, u64)] = &[(1, 34), (2, 22), (3, 20), (4, 17), (5, 7)];

/// Persons per layout block: households never straddle one.
const BLOCK: u64 = 6;

// Probabilities, per mille.
const LINKS_CARD: u64 = 600;
const LATE_ACQUISITION: u64 = 300;
const LATE_LOSS: u64 = 150;
const MISTAKEN_CHANGE: u64 = 50;

/// What the generator needs of the config and the insurer set.
struct Context {
    config: SampleConfig,
    insurers: Vec<SampleInsurer>,
    municipalities: Vec<MunicipalityCode>,
    portal: PublisherId,
}

impl Context {
    fn new(config: SampleConfig) -> Context {
        Context {
            config,
            insurers: insurers(config.seed),
            municipalities: (0..MUNICIPALITIES.len()).map(municipality_code).collect(),
            portal: parse("portal"),
        }
    }

    fn scheme(&self, insurer: usize) -> Scheme {
        self.insurers[insurer].scheme
    }

    fn of(&self, scheme: Scheme) -> impl Iterator<Item = usize> + '_ {
        self.insurers
            .iter()
            .enumerate()
            .filter(move |(_, i)| i.scheme == scheme)
            .map(|(n, _)| n)
    }

    fn pick(&self, rng: &mut SplitMix64, scheme: Scheme) -> usize {
        let all: Vec<usize> = self.of(scheme).collect();
        all[rng.index(all.len())]
    }

    /// The insurer of `scheme` in `prefecture`, else the first of `scheme`.
    fn in_prefecture(&self, scheme: Scheme, prefecture: u8) -> usize {
        let mut all = self.of(scheme);
        let first = all.next().expect("every scheme has an insurer");
        self.of(scheme)
            .find(|&i| self.insurers[i].number.prefecture() == prefecture)
            .unwrap_or(first)
    }

    /// The 市町村国保 or 退職者医療 of municipality `home`.
    fn of_municipality(&self, scheme: Scheme, home: usize) -> usize {
        let code = &self.municipalities[home];
        self.of(scheme)
            .find(|&i| self.insurers[i].municipality.as_ref() == Some(code))
            .expect("every municipality runs 国保 and 退職者医療")
    }
}

// Households.

/// The household of person `index`: its first person, size, and the
/// person's position in it (0 is the head).
fn household_of(seed: u64, index: u64) -> (u64, u8, u8) {
    let block = index / BLOCK;
    let mut rng = stream(seed, Stream::Layout, block);
    let end = (block + 1) * BLOCK;
    let mut first = block * BLOCK;
    loop {
        let size = rng.weighted(HOUSEHOLD_SIZES).min(end - first);
        if index < first + size {
            return (first, size as u8, (index - first) as u8);
        }
        first += size;
    }
}

/// A household's card with one insurer: the 記号・番号 its members share.
#[derive(Debug, Clone)]
struct Enrolment {
    insurer: usize,
    from: Day,
    /// First day not covered, for those who leave with the household.
    to: Option<Day>,
    /// Why the head's qualification ends at `to`.
    loss: LossReason,
    /// Why the other members' qualifications end at `to`.
    member_loss: LossReason,
    /// Days from `from` to the publication of the acquisition.
    acquire_lag: i32,
    /// Days from `to` to the publication of the loss.
    lose_lag: i32,
    symbol: Option<String>,
    number: String,
    /// The day the household got a new card number, and the number.
    reissue: Option<(Day, String)>,
    /// 短期被保険者証 (arrears), renewed every six months from `from`.
    short_term: bool,
    /// False for the 国保 the family joins after the head left.
    head_in: bool,
    /// 船員保険 or 共済組合 kept past 75, beside 後期高齢者医療.
    keeps_after_75: bool,
}

/// Everything about a household decided by its own PRNG.
#[derive(Debug, Clone)]
struct Plan {
    head: u64,
    size: u8,
    spouse: bool,
    /// Index into `MUNICIPALITIES`.
    home: usize,
    /// Index into `FAMILY_NAMES`.
    family: usize,
    head_birth: Day,
    head_sex: Sex,
    head_death: Option<Day>,
    /// Days from a death to its registration.
    head_death_lag: i32,
    enrolments: Vec<Enrolment>,
}

impl Plan {
    fn prefecture(&self) -> u8 {
        MUNICIPALITIES[self.home].prefecture
    }

    /// The day the head leaves the household's cards: 75th birthday or death.
    fn head_exit(&self) -> Day {
        let at_75 = self.head_birth.add_years(75);
        self.head_death.map_or(at_75, |d| at_75.min(d.succ()))
    }
}

fn plan_household(ctx: &Context, head: u64, size: u8) -> Plan {
    let cfg = &ctx.config;
    let mut rng = stream(cfg.seed, Stream::Household, head);
    let spouse = size > 1 && rng.chance(800);
    let (lo, hi) = rng.weighted(if size == 1 { SINGLE_AGES } else { HEAD_AGES });
    let age = rng.range(lo, hi) as i32;
    let head_birth = birth_for_age(&mut rng, cfg.start, age);
    let head_sex = match (size, spouse) {
        (1, _) | (_, true) => random_sex(&mut rng, 500),
        _ => random_sex(&mut rng, 800),
    };
    let weights: Vec<(usize, u64)> = MUNICIPALITIES
        .iter()
        .enumerate()
        .map(|(i, m)| (i, m.weight))
        .collect();
    let home = rng.weighted(&weights);
    let family = rng.index(FAMILY_NAMES.len());
    let head_death = draw_death(&mut rng, cfg, age);
    let head_death_lag = rng.days(5, 30);
    let mut plan = Plan {
        head,
        size,
        spouse,
        home,
        family,
        head_birth,
        head_sex,
        head_death,
        head_death_lag,
        enrolments: Vec::new(),
    };
    plan.enrolments = career(ctx, &mut rng, &plan);
    plan
}

fn random_sex(rng: &mut SplitMix64, female_per_mille: u64) -> Sex {
    if rng.chance(female_per_mille) {
        Sex::Female
    } else {
        Sex::Male
    }
}

/// A birth date making the person `age` on `start` (negative: born later).
fn birth_for_age(rng: &mut SplitMix64, start: Day, age: i32) -> Day {
    start.add_years(-age).add_days(-rng.days(1, 365))
}

/// A death within the window, more likely with age.
fn draw_death(rng: &mut SplitMix64, cfg: &SampleConfig, age: i32) -> Option<Day> {
    let per_mille = match age {
        ..=39 => 2,
        40..=59 => 10,
        60..=69 => 30,
        70..=79 => 70,
        80..=89 => 180,
        _ => 350,
    };
    rng.chance(per_mille)
        .then(|| day_in(rng, cfg.start.succ(), cfg.today))
}

/// The household's cards over time: the head's first card, job changes,
/// retirement, and what the family does when the head leaves.
fn career(ctx: &Context, rng: &mut SplitMix64, plan: &Plan) -> Vec<Enrolment> {
    let cfg = &ctx.config;
    let exit = Some(plan.head_exit()).filter(|&d| d <= cfg.today);
    let mut list: Vec<Enrolment> = initial_enrolment(ctx, rng, plan).into_iter().collect();
    for day in move_dates(rng, cfg) {
        if exit.is_some_and(|e| day >= e) {
            break;
        }
        change_job(ctx, rng, plan, &mut list, day, exit);
    }
    retire_from_retiree_scheme(ctx, rng, plan, &mut list, exit);
    leave_at_exit(ctx, rng, plan, &mut list, exit);
    list
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstCard {
    Employer,
    Municipal,
    NhiSociety,
    Retiree,
    None,
}

fn initial_enrolment(ctx: &Context, rng: &mut SplitMix64, plan: &Plan) -> Option<Enrolment> {
    let cfg = &ctx.config;
    let age = age_on(plan.head_birth, cfg.start);
    let single = plan.size == 1;
    let choice = match age {
        75.. => {
            // Duplicate enrolment: 船員保険 or 共済組合 beside 後期高齢者医療.
            if single && rng.chance(40) {
                let scheme = if rng.chance(500) {
                    Scheme::Seamen
                } else {
                    Scheme::MutualAid
                };
                let from = cfg.start.add_days(-rng.days(365, 4000));
                let insurer = ctx.pick(rng, scheme);
                let mut e = new_enrolment(ctx, rng, plan, insurer, from, 0);
                e.keeps_after_75 = true;
                return Some(e);
            }
            FirstCard::None
        }
        60..=64 => rng.weighted(&[
            (FirstCard::Employer, 50),
            (FirstCard::Municipal, 35),
            (FirstCard::Retiree, if single { 15 } else { 0 }),
        ]),
        65..=74 => rng.weighted(&[(FirstCard::Employer, 25), (FirstCard::Municipal, 75)]),
        _ => rng.weighted(&[
            (FirstCard::Employer, 82),
            (FirstCard::Municipal, 12),
            (FirstCard::NhiSociety, 6),
        ]),
    };
    let insurer = match choice {
        FirstCard::Employer => employer(ctx, rng, plan, None),
        FirstCard::Municipal => ctx.of_municipality(Scheme::MunicipalNhi, plan.home),
        FirstCard::NhiSociety => ctx.in_prefecture(Scheme::NhiSociety, plan.prefecture()),
        FirstCard::Retiree => ctx.of_municipality(Scheme::NhiRetiree, plan.home),
        FirstCard::None => return None,
    };
    let from = cfg
        .start
        .add_days(-rng.days(1, 7000))
        .max(plan.head_birth.add_years(18));
    Some(new_enrolment(ctx, rng, plan, insurer, from, 0))
}

/// An employee-insurance insurer other than `avoid`.
fn employer(ctx: &Context, rng: &mut SplitMix64, plan: &Plan, avoid: Option<usize>) -> usize {
    loop {
        let scheme = rng.weighted(&[
            (Scheme::KyokaiKenpo, 50),
            (Scheme::Society, 28),
            (Scheme::MutualAid, 14),
            (Scheme::Seamen, 4),
            (Scheme::DayLabourer, 4),
        ]);
        let insurer = match scheme {
            Scheme::KyokaiKenpo => ctx.in_prefecture(scheme, plan.prefecture()),
            _ => ctx.pick(rng, scheme),
        };
        if Some(insurer) != avoid {
            return insurer;
        }
    }
}

/// The household's `ordinal`-th card, from `from` on.
fn new_enrolment(
    ctx: &Context,
    rng: &mut SplitMix64,
    plan: &Plan,
    insurer: usize,
    from: Day,
    ordinal: usize,
) -> Enrolment {
    let cfg = &ctx.config;
    let ins = &ctx.insurers[insurer];
    let symbol = card_symbol(rng, ins);
    let number = household_number(plan.head, 2 * ordinal, ins.scheme);
    let reissue = if rng.chance(50) {
        let earliest = from.max(cfg.start).add_days(30);
        (earliest <= cfg.today).then(|| {
            (
                day_in(rng, earliest, cfg.today),
                household_number(plan.head, 2 * ordinal + 1, ins.scheme),
            )
        })
    } else {
        None
    };
    Enrolment {
        insurer,
        from,
        to: None,
        loss: LossReason::Other,
        member_loss: LossReason::Other,
        acquire_lag: acquire_lag(rng, ins.scheme),
        lose_lag: 0,
        symbol,
        number,
        reissue,
        short_term: ins.scheme == Scheme::MunicipalNhi && rng.chance(70),
        head_in: true,
        keeps_after_75: false,
    }
}

/// 記号 in the style of each scheme; none for 国保 and 後期高齢者医療.
fn card_symbol(rng: &mut SplitMix64, ins: &SampleInsurer) -> Option<String> {
    match ins.scheme {
        Scheme::KyokaiKenpo => Some(format!(
            "{:02}{:06}",
            ins.number.prefecture(),
            rng.below(1_000_000)
        )),
        Scheme::Seamen => Some(format!("{:04}", 1 + rng.below(9999))),
        Scheme::DayLabourer => Some(format!("日{:03}", rng.below(1000))),
        Scheme::Society => Some((1 + rng.below(9999)).to_string()),
        Scheme::MutualAid | Scheme::NhiSociety => {
            Some(format!("{}{}", ins.symbol_prefix, 1 + rng.below(99)))
        }
        Scheme::LateElderly | Scheme::MunicipalNhi | Scheme::NhiRetiree => None,
    }
}

/// Days from the first covered day to the acquisition's publication. An
/// employer's insurer registers late about a third of the time (p17).
fn acquire_lag(rng: &mut SplitMix64, scheme: Scheme) -> i32 {
    match scheme {
        s if s.is_employee() => {
            if rng.chance(LATE_ACQUISITION) {
                rng.days(21, 50)
            } else {
                rng.days(3, 14)
            }
        }
        Scheme::MunicipalNhi | Scheme::NhiRetiree => rng.days(7, 35),
        Scheme::LateElderly => -rng.days(10, 25),
        _ => rng.days(5, 20),
    }
}

/// Days from the first day not covered to the loss's publication. 国保
/// learns late that someone joined an employer's insurance (p47).
fn lose_lag(rng: &mut SplitMix64, scheme: Scheme) -> i32 {
    match scheme {
        s if s.is_employee() => {
            if rng.chance(LATE_LOSS) {
                rng.days(20, 45)
            } else {
                rng.days(3, 10)
            }
        }
        Scheme::MunicipalNhi => rng.days(14, 60),
        _ => rng.days(5, 30),
    }
}

/// Days of job changes and moves between schemes: most heads none or one,
/// a few many.
fn move_dates(rng: &mut SplitMix64, cfg: &SampleConfig) -> Vec<Day> {
    let n = rng.weighted(&[(0, 520), (1, 280), (2, 120), (3, 50), (4, 20), (6, 10)]);
    let mut days: Vec<Day> = (0..n)
        .map(|_| {
            let d = day_in(rng, cfg.start.succ(), cfg.today);
            if rng.chance(700) {
                add_months(first_of_month(d), 1)
            } else {
                d
            }
        })
        .filter(|&d| d <= cfg.today)
        .collect();
    days.sort();
    days
}

/// A job change, retirement into 国保, or a move between 国保 and 国保組合 on
/// `day`: loss at the current insurer with `lost_on = day`, acquisition at
/// the next from `day` (rarely after an uninsured gap).
fn change_job(
    ctx: &Context,
    rng: &mut SplitMix64,
    plan: &Plan,
    list: &mut Vec<Enrolment>,
    day: Day,
    exit: Option<Day>,
) {
    let Some(current) = list.last() else { return };
    if current.to.is_some() || day <= current.from.add_days(30) {
        return;
    }
    let scheme = ctx.scheme(current.insurer);
    let age = age_on(plan.head_birth, day);
    let municipal = ctx.of_municipality(Scheme::MunicipalNhi, plan.home);
    let target = match scheme {
        s if s.is_employee() => {
            let retires = if age >= 60 { 700 } else { 150 };
            if rng.chance(retires) {
                municipal
            } else {
                employer(ctx, rng, plan, Some(current.insurer))
            }
        }
        Scheme::MunicipalNhi if age < 65 => {
            if rng.chance(750) {
                employer(ctx, rng, plan, None)
            } else {
                ctx.in_prefecture(Scheme::NhiSociety, plan.prefecture())
            }
        }
        Scheme::NhiSociety => {
            if rng.chance(600) {
                employer(ctx, rng, plan, None)
            } else {
                municipal
            }
        }
        _ => return,
    };
    let (loss, member_loss) = if scheme.is_employee() {
        (LossReason::EmploymentEnded, LossReason::DependentNoLonger)
    } else {
        (
            LossReason::JoinedOtherInsurance,
            LossReason::JoinedOtherInsurance,
        )
    };
    let lag = lose_lag(rng, scheme);
    let gap = if rng.chance(80) { rng.days(1, 45) } else { 0 };
    let from = day.add_days(gap);
    let from = if exit.is_some_and(|e| from >= e) {
        day
    } else {
        from
    };
    let ordinal = list.len();
    if let Some(current) = list.last_mut() {
        current.to = Some(day);
        current.loss = loss;
        current.member_loss = member_loss;
        current.lose_lag = lag;
    }
    list.push(new_enrolment(ctx, rng, plan, target, from, ordinal));
}

/// 退職者医療 ends at 65: the person goes on in the municipality's 国保.
fn retire_from_retiree_scheme(
    ctx: &Context,
    rng: &mut SplitMix64,
    plan: &Plan,
    list: &mut Vec<Enrolment>,
    exit: Option<Day>,
) {
    let at_65 = plan.head_birth.add_years(65);
    let ordinal = list.len();
    let Some(current) = list.last_mut() else {
        return;
    };
    let open_retiree = current.to.is_none() && ctx.scheme(current.insurer) == Scheme::NhiRetiree;
    if !open_retiree
        || at_65 > ctx.config.today
        || exit.is_some_and(|e| at_65 >= e)
        || at_65 <= current.from
    {
        return;
    }
    current.to = Some(at_65);
    current.loss = LossReason::Other;
    current.member_loss = LossReason::Other;
    current.lose_lag = rng.days(0, 20);
    let municipal = ctx.of_municipality(Scheme::MunicipalNhi, plan.home);
    list.push(new_enrolment(ctx, rng, plan, municipal, at_65, ordinal));
}

/// When the head turns 75 or dies, an employer's card ends for the whole
/// family, who join the municipality's 国保; a 国保 card stays with them.
/// A 船員保険 or 共済組合 card is sometimes kept past 75 (duplicate enrolment).
fn leave_at_exit(
    ctx: &Context,
    rng: &mut SplitMix64,
    plan: &Plan,
    list: &mut Vec<Enrolment>,
    exit: Option<Day>,
) {
    let Some(exit) = exit else { return };
    let at_75 = plan.head_birth.add_years(75) == exit;
    let ordinal = list.len();
    let Some(current) = list.last_mut() else {
        return;
    };
    let scheme = ctx.scheme(current.insurer);
    if current.to.is_some()
        || current.from >= exit
        || !scheme.is_employee()
        || current.keeps_after_75
    {
        return;
    }
    if at_75 && matches!(scheme, Scheme::Seamen | Scheme::MutualAid) && rng.chance(500) {
        current.keeps_after_75 = true;
        return;
    }
    current.to = Some(exit);
    current.member_loss = LossReason::DependentNoLonger;
    current.lose_lag = if at_75 {
        rng.days(-5, 10)
    } else {
        plan.head_death_lag
    };
    if plan.size > 1 {
        let municipal = ctx.of_municipality(Scheme::MunicipalNhi, plan.home);
        let mut family = new_enrolment(ctx, rng, plan, municipal, exit, ordinal);
        family.head_in = false;
        list.push(family);
    }
}

// Persons.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Head,
    Spouse,
    Child,
}

/// One person's own facts.
#[derive(Debug, Clone)]
struct Person {
    index: u64,
    position: u8,
    role: Role,
    home: usize,
    family: usize,
    given: usize,
    sex: Sex,
    birth: Day,
    death: Option<Day>,
    death_lag: i32,
    /// 現役並み所得: 30 % from 70 on.
    high_income: bool,
    /// Marriage day and new family name (name change).
    marriage: Option<(Day, usize)>,
    disease: Option<SpecificDisease>,
    student_away: bool,
    address_exception: bool,
    disabled: bool,
    single_parent: bool,
}

fn profile(ctx: &Context, plan: &Plan, index: u64, position: u8, rng: &mut SplitMix64) -> Person {
    let cfg = &ctx.config;
    let role = match position {
        0 => Role::Head,
        1 if plan.spouse => Role::Spouse,
        _ => Role::Child,
    };
    let (birth, sex, death, death_lag) = match role {
        Role::Head => (
            plan.head_birth,
            plan.head_sex,
            plan.head_death,
            plan.head_death_lag,
        ),
        Role::Spouse | Role::Child => {
            let (birth, sex) = member_birth(cfg, plan, role, rng);
            let death =
                draw_death(rng, cfg, age_on(birth, cfg.start).max(0)).filter(|&d| d > birth);
            (birth, sex, death, rng.days(5, 30))
        }
    };
    let names = if sex == Sex::Male {
        MALE_NAMES
    } else {
        FEMALE_NAMES
    };
    let given = rng.index(names.len());
    let age = age_on(birth, cfg.start);
    let marriage =
        (plan.size == 1 && sex == Sex::Female && (22..=40).contains(&age) && rng.chance(200))
            .then(|| {
                let day = day_in(rng, cfg.start.add_days(30), cfg.today);
                let family =
                    (plan.family + 1 + rng.index(FAMILY_NAMES.len() - 1)) % FAMILY_NAMES.len();
                (day, family)
            })
            .filter(|&(day, _)| death.is_none_or(|d| day < d));
    let disease = rng.chance(10).then(|| {
        rng.weighted(&[
            (SpecificDisease::ChronicRenalFailure, 80),
            (SpecificDisease::Hemophilia, 15),
            (SpecificDisease::HivDrugInduced, 5),
        ])
    });
    Person {
        index,
        position,
        role,
        home: plan.home,
        family: plan.family,
        given,
        sex,
        birth,
        death,
        death_lag,
        high_income: rng.chance(150),
        marriage,
        disease,
        student_away: role == Role::Child && rng.chance(150),
        address_exception: rng.chance(40),
        disabled: age >= 18 && rng.chance(20),
        single_parent: role == Role::Head && plan.size > 1 && !plan.spouse && rng.chance(700),
    }
}

/// A spouse near the head's age, or a child born when the head was 20 to
/// 45 (at most 22 on `start`, some born later).
fn member_birth(cfg: &SampleConfig, plan: &Plan, role: Role, rng: &mut SplitMix64) -> (Day, Sex) {
    if role == Role::Spouse {
        let birth = plan
            .head_birth
            .add_years(rng.days(-6, 4))
            .add_days(rng.days(-180, 180));
        let sex = if plan.head_sex == Sex::Male {
            Sex::Female
        } else {
            Sex::Male
        };
        return (birth, sex);
    }
    let head_age = age_on(plan.head_birth, cfg.start);
    let hi = (head_age - 20).min(22);
    let lo = (head_age - 45).max(-3);
    let lo = if lo > hi { hi - 10 } else { lo };
    let age = rng.days(lo, hi);
    let birth = birth_for_age(rng, cfg.start, age).min(cfg.today.add_days(-60));
    (birth, random_sex(rng, 490))
}

impl Person {
    fn is_head(&self) -> bool {
        self.role == Role::Head
    }

    fn name_on(&self, day: Day) -> (NameKanji, NameKana) {
        let family = match self.marriage {
            Some((married, family)) if day >= married => family,
            _ => self.family,
        };
        let names = if self.sex == Sex::Male {
            MALE_NAMES
        } else {
            FEMALE_NAMES
        };
        let (family, family_kana) = FAMILY_NAMES[family];
        let (given, given_kana) = names[self.given];
        (
            parse(&format!("{family}\u{3000}{given}")),
            parse(&format!("{family_kana}\u{3000}{given_kana}")),
        )
    }

    /// 負担割合: 20 % before school, 30 %, then 20 % (30 % with high income)
    /// from 70; 10 % (30 %) in 後期高齢者医療.
    fn copay_on(&self, scheme: Scheme, day: Day) -> CopayRate {
        let percent = if scheme == Scheme::LateElderly {
            if self.high_income {
                30
            } else {
                10
            }
        } else if day < school_entry(self.birth) {
            20
        } else if day < seventy_date(self.birth) || self.high_income {
            30
        } else {
            20
        };
        copay(percent)
    }

    fn card_kind_on(&self, scheme: Scheme, short_term: bool, day: Day) -> CardKind {
        match scheme {
            Scheme::KyokaiKenpo | Scheme::Society | Scheme::MutualAid => CardKind::HealthInsurance,
            Scheme::Seamen => CardKind::SeamenInsurance,
            Scheme::DayLabourer => CardKind::DayLabourerEligibility,
            Scheme::LateElderly => CardKind::LateElderly,
            Scheme::NhiRetiree => CardKind::Retiree,
            Scheme::MunicipalNhi if short_term => {
                if day < end_of_childhood(self.birth) {
                    CardKind::ChildShortTerm
                } else {
                    CardKind::ShortTerm
                }
            }
            Scheme::MunicipalNhi | Scheme::NhiSociety => {
                if day >= seventy_date(self.birth) {
                    CardKind::NhiWithElderlyRecipient
                } else {
                    CardKind::NationalHealthInsurance
                }
            }
        }
    }

    /// マル学 for students living away, 住所地特例 for some elderly.
    fn statuses_on(&self, scheme: Scheme, day: Day) -> Vec<SpecialStatus> {
        let age = age_on(self.birth, day);
        let mut statuses = Vec::new();
        if self.student_away && (18..=22).contains(&age) {
            statuses.push(SpecialStatus::StudentAway);
        }
        let residential = matches!(scheme, Scheme::LateElderly | Scheme::MunicipalNhi);
        if self.address_exception && residential && age >= 65 {
            statuses.push(SpecialStatus::AddressException);
        }
        statuses
    }

    /// Last day anything new may happen to the person.
    fn last_day(&self, cfg: &SampleConfig) -> Day {
        self.death.map_or(cfg.today, |d| d.min(cfg.today))
    }
}

// Qualifications.

/// One qualification of one person, before it becomes events.
#[derive(Debug, Clone)]
struct QualSpec {
    insurer: usize,
    from: Day,
    to: Option<Day>,
    loss: LossReason,
    acquire_on: Day,
    lose_on: Option<Day>,
    symbol: Option<String>,
    number: String,
    branch: Option<String>,
    relationship: Relationship,
    /// Anchor of the six-month 短期証 periods.
    short_term: Option<Day>,
    reissue: Option<(Day, String)>,
}

impl QualSpec {
    fn number_on(&self, day: Day) -> &str {
        match &self.reissue {
            Some((reissued, number)) if day >= *reissued => number,
            _ => &self.number,
        }
    }
}

fn qualification_specs(
    ctx: &Context,
    plan: &Plan,
    p: &Person,
    rng: &mut SplitMix64,
) -> Vec<QualSpec> {
    let mut specs: Vec<QualSpec> = plan
        .enrolments
        .iter()
        .filter_map(|e| household_spec(ctx, p, e, rng))
        .collect();
    specs.extend(late_elderly_spec(ctx, p, rng));
    specs.sort_by_key(|s| s.from);
    specs
}

/// The person's part of a household card: from their birth or the card's
/// start, to the card's end, their 75th birthday or their death.
fn household_spec(
    ctx: &Context,
    p: &Person,
    e: &Enrolment,
    rng: &mut SplitMix64,
) -> Option<QualSpec> {
    let cfg = &ctx.config;
    if p.is_head() && !e.head_in {
        return None;
    }
    let from = e.from.max(p.birth);
    let reason = if p.is_head() { e.loss } else { e.member_loss };
    let mut end = e.to.map(|to| (to, reason, e.lose_lag));
    let at_75 = p.birth.add_years(75);
    if !e.keeps_after_75 && end.is_none_or(|(to, ..)| at_75 <= to) {
        end = Some((at_75, LossReason::ReachedSeventyFive, rng.days(-5, 10)));
    }
    if let Some(lost_on) = p.death.map(Day::succ) {
        if end.is_none_or(|(to, ..)| lost_on <= to) {
            end = Some((lost_on, LossReason::Death, p.death_lag));
        }
    }
    if end.is_some_and(|(to, ..)| to <= from || to <= cfg.start) || from > cfg.today {
        return None;
    }
    let acquire_on = if p.birth > e.from {
        from.add_days(rng.days(14, 45))
    } else {
        from.add_days(e.acquire_lag)
    };
    let scheme = ctx.scheme(e.insurer);
    Some(QualSpec {
        insurer: e.insurer,
        from,
        to: end.map(|(to, ..)| to),
        loss: end.map_or(LossReason::Other, |(_, reason, _)| reason),
        acquire_on,
        lose_on: end.map(|(to, _, lag)| to.add_days(lag)),
        symbol: e.symbol.clone(),
        number: e.number.clone(),
        branch: Some(format!("{:02}", p.position)),
        relationship: if scheme.is_employee() && !p.is_head() {
            Relationship::Dependent
        } else {
            Relationship::Insured
        },
        short_term: e.short_term.then_some(e.from),
        reissue: e.reissue.clone(),
    })
}

/// 後期高齢者医療 from the 75th birthday, registered in advance.
fn late_elderly_spec(ctx: &Context, p: &Person, rng: &mut SplitMix64) -> Option<QualSpec> {
    let from = p.birth.add_years(75);
    let lost_on = p.death.map(Day::succ);
    if lost_on.is_some_and(|d| d <= from) || from > ctx.config.today.add_days(30) {
        return None;
    }
    Some(QualSpec {
        insurer: ctx.in_prefecture(Scheme::LateElderly, MUNICIPALITIES[p.home].prefecture),
        from,
        to: lost_on,
        loss: LossReason::Death,
        acquire_on: from.add_days(-rng.days(10, 25)),
        lose_on: p.death.map(|d| d.add_days(p.death_lag)),
        symbol: None,
        number: late_elderly_number(p.index),
        branch: None,
        relationship: Relationship::Insured,
        short_term: None,
        reissue: None,
    })
}

/// The individual insured number, as the events carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Insured {
    insurer: InsurerNumber,
    symbol: Option<CardSymbol>,
    number: CardNumber,
    branch: Option<Branch>,
}

/// What later events need to know of an emitted qualification.
#[derive(Debug, Clone)]
struct QualRecord {
    id: QualificationId,
    scheme: Scheme,
    source: PublisherId,
    desk: Desk,
    from: Day,
    as_of: Day,
    to: Option<Day>,
    acquired_at: At,
    lost_at: Option<At>,
    /// Publication of the last acquisition, change or loss.
    last_at: At,
    /// The insured number from each publication on.
    numbers: Vec<(At, Insured)>,
    certificates: Vec<CertificateRecord>,
}

impl QualRecord {
    fn end(&self) -> Day {
        self.to.unwrap_or(Day::MAX)
    }

    /// Whether the ledger, at `at`, holds this qualification as covering `day`
    /// and which number it carries then.
    fn carried(&self, day: Day, at: At) -> Option<&Insured> {
        let covers = self.from <= day && day < self.end();
        let known = self.acquired_at < at && self.lost_at.is_none_or(|l| l > at);
        if !(covers && known) {
            return None;
        }
        self.numbers
            .iter()
            .rev()
            .find(|(t, _)| *t < at)
            .map(|(_, n)| n)
    }
}

#[derive(Debug, Clone)]
struct CertificateRecord {
    id: CertificateId,
    valid_until: Option<Day>,
    issued_at: At,
    ended: bool,
}

#[derive(Debug, Clone)]
struct SubsidyRecord {
    id: SubsidyId,
    valid_from: Day,
    valid_until: Option<Day>,
    ended: bool,
    last_at: At,
}

#[derive(Debug, Clone)]
struct LinkRecord {
    serial: CardSerial,
    linked_on: Day,
    linked_at: At,
    unlinked_at: Option<At>,
}

/// One event before sorting into publication order.
#[derive(Debug)]
struct Draft {
    at: At,
    event: Event,
}

/// Builds one person's events: ids, instants, and the person's PRNG.
struct Emitter<'c> {
    ctx: &'c Context,
    index: u64,
    link: LinkNumber,
    rng: SplitMix64,
    drafts: Vec<Draft>,
    issued: [u32; 4],
    serials: u64,
}

impl<'c> Emitter<'c> {
    fn new(ctx: &'c Context, index: u64) -> Emitter<'c> {
        Emitter {
            ctx,
            index,
            link: link_number(index),
            rng: stream(ctx.config.seed, Stream::Person, index),
            drafts: Vec::new(),
            issued: [0; 4],
            serials: 0,
        }
    }

    fn publish(&mut self, desk: Desk, day: Day) -> At {
        desk.at(day, &mut self.rng)
    }

    fn emit(&mut self, at: At, source: &PublisherId, payload: impl Into<Payload>) -> Uuid {
        let event_id = uuid_v7(at, &mut self.rng);
        let envelope = Envelope {
            event_id,
            source: source.clone(),
            link: self.link.clone(),
            produced_at: at.datetime(),
        };
        self.drafts.push(Draft {
            at,
            event: Event {
                envelope,
                payload: payload.into(),
            },
        });
        event_id
    }

    fn latest(&self) -> Option<At> {
        self.drafts.iter().map(|d| d.at).max()
    }

    /// The next number of a kind of id: 0 qualification, 1 certificate,
    /// 2 subsidy, 3 request.
    fn next(&mut self, kind: usize) -> u32 {
        self.issued[kind] += 1;
        self.issued[kind]
    }

    fn qualification_id(&mut self, insurer: &InsurerNumber) -> QualificationId {
        let n = self.next(0);
        parse(&format!("Q-{insurer}-{:012}-{n}", self.index))
    }

    fn certificate_id(&mut self) -> CertificateId {
        let n = self.next(1);
        parse(&format!("C-{:012}-{n}", self.index))
    }

    fn subsidy_id(&mut self) -> SubsidyId {
        let n = self.next(2);
        parse(&format!("S-{:012}-{n}", self.index))
    }

    fn request_id(&mut self) -> RequestId {
        let n = self.next(3);
        parse(&format!("R-{:012}-{n}", self.index))
    }

    fn card_serial(&mut self) -> CardSerial {
        self.serials += 1;
        card_serial(self.ctx.config.seed, self.index, self.serials)
    }

    /// The events in publication order, up to the end of `today`.
    fn finish(mut self) -> Vec<Event> {
        let today = self.ctx.config.today;
        self.drafts.sort_by_key(|d| d.at);
        self.drafts
            .into_iter()
            .take_while(|d| d.at.jst_day() <= today)
            .map(|d| d.event)
            .collect()
    }
}

/// All events of person `index`, in publication order.
fn person_events(ctx: &Context, index: u64) -> Vec<Event> {
    let (head, size, position) = household_of(ctx.config.seed, index);
    let plan = plan_household(ctx, head, size);
    let mut em = Emitter::new(ctx, index);
    let person = profile(ctx, &plan, index, position, &mut em.rng);
    let specs = qualification_specs(ctx, &plan, &person, &mut em.rng);
    let mut records = Vec::with_capacity(specs.len());
    for spec in &specs {
        let mut record = acquire(&mut em, &person, spec);
        issue_certificates(&mut em, &person, &mut record);
        lose(&mut em, spec, &mut record);
        records.push(record);
    }
    let links = link_cards(&mut em, &person, &records);
    let mut subsidies = grant_subsidies(&mut em, &person, &links);
    record_death(&mut em, &person, &mut records, &mut subsidies);
    em.finish()
}

/// The acquisition, with the attributes as of `max(from, start)`, and the
/// effective-dated changes after it.
fn acquire(em: &mut Emitter<'_>, p: &Person, spec: &QualSpec) -> QualRecord {
    let ctx = em.ctx;
    let cfg = &ctx.config;
    let ins = &ctx.insurers[spec.insurer];
    let desk = Desk::of(ins.scheme);
    let as_of = spec.from.max(cfg.start);
    let id = em.qualification_id(&ins.number);
    let acquired_at = em.publish(desk, spec.acquire_on.max(cfg.start));
    let insured = Insured {
        insurer: ins.number.clone(),
        symbol: spec.symbol.as_deref().map(parse),
        number: parse(spec.number_on(as_of)),
        branch: spec.branch.as_deref().map(parse),
    };
    let (name, name_kana) = p.name_on(as_of);
    let acquired = QualificationAcquired {
        qualification_id: id.clone(),
        insurer_number: insured.insurer.clone(),
        card_symbol: insured.symbol.clone(),
        card_number: insured.number.clone(),
        branch: insured.branch.clone(),
        relationship: spec.relationship,
        name,
        name_kana,
        sex: p.sex,
        birth_date: p.birth,
        acquired_on: spec.from,
        card_kind: p.card_kind_on(ins.scheme, spec.short_term.is_some(), as_of),
        copay: p.copay_on(ins.scheme, as_of),
        card_valid_until: spec
            .short_term
            .map(|anchor| short_term_until(anchor, as_of)),
        special_statuses: p.statuses_on(ins.scheme, as_of),
    };
    em.emit(acquired_at, &ins.source, acquired);
    let mut record = QualRecord {
        id,
        scheme: ins.scheme,
        source: ins.source.clone(),
        desk,
        from: spec.from,
        as_of,
        to: spec.to,
        acquired_at,
        lost_at: None,
        last_at: acquired_at,
        numbers: vec![(acquired_at, insured)],
        certificates: Vec::new(),
    };
    for change in planned_changes(em, p, spec, &record) {
        publish_change(em, &mut record, change);
    }
    record
}

/// Last day of the six-month 短期証 period (from `anchor`) holding `day`.
fn short_term_until(anchor: Day, day: Day) -> Day {
    let mut k = 1;
    while add_months(anchor, 6 * k) <= day {
        k += 1;
    }
    add_months(anchor, 6 * k).pred()
}

/// A change to publish on `publish_on`; a few are first keyed wrongly.
struct PlannedChange {
    publish_on: Day,
    change: QualificationChanged,
    may_be_mistaken: bool,
}

/// Changes effective after `as_of` and before the qualification ends:
/// school entry and 70 (copay, 高齢受給者 card), card reissue, 短期証
/// renewal, name change on marriage.
fn planned_changes(
    em: &mut Emitter<'_>,
    p: &Person,
    spec: &QualSpec,
    record: &QualRecord,
) -> Vec<PlannedChange> {
    let cfg = em.ctx.config;
    let scheme = record.scheme;
    let end = record.end().min(cfg.today.succ());
    let in_range = |d: Day| d > record.as_of && d < end;
    let rng = &mut em.rng;
    let mut planned = Vec::new();
    let entry = school_entry(p.birth);
    if in_range(entry) && scheme != Scheme::LateElderly {
        let mut change = QualificationChanged::effective(record.id.clone(), entry);
        change.copay = Some(copay(30));
        planned.push(PlannedChange {
            publish_on: entry.add_days(-rng.days(15, 40)),
            change,
            may_be_mistaken: false,
        });
    }
    let seventy = seventy_date(p.birth);
    if in_range(seventy) {
        let mut change = QualificationChanged::effective(record.id.clone(), seventy);
        let before = p.copay_on(scheme, seventy.pred());
        let after = p.copay_on(scheme, seventy);
        change.copay = (before != after).then_some(after);
        let kind = p.card_kind_on(scheme, spec.short_term.is_some(), seventy);
        if kind != p.card_kind_on(scheme, spec.short_term.is_some(), seventy.pred()) {
            change.card_kind = Some(kind);
        }
        if change.copay.is_some() || change.card_kind.is_some() {
            let publish_on = seventy.add_days(-rng.days(15, 40));
            planned.push(PlannedChange {
                publish_on,
                change,
                may_be_mistaken: true,
            });
        }
    }
    if let Some((day, number)) = &spec.reissue {
        if in_range(*day) {
            let mut change = QualificationChanged::effective(record.id.clone(), *day);
            change.card_number = Some(parse(number));
            planned.push(PlannedChange {
                publish_on: day.add_days(rng.days(0, 3)),
                change,
                may_be_mistaken: false,
            });
        }
    }
    if let Some(anchor) = spec.short_term {
        let mut k = 1;
        while add_months(anchor, 6 * k) < end {
            let renewal = add_months(anchor, 6 * k);
            if in_range(renewal) {
                let mut change = QualificationChanged::effective(record.id.clone(), renewal);
                change.card_valid_until = Some(add_months(anchor, 6 * (k + 1)).pred());
                let publish_on = renewal.add_days(-rng.days(5, 15));
                planned.push(PlannedChange {
                    publish_on,
                    change,
                    may_be_mistaken: false,
                });
            }
            k += 1;
        }
    }
    if let Some((married, _)) = p.marriage {
        if in_range(married) {
            let mut change = QualificationChanged::effective(record.id.clone(), married);
            let (name, kana) = p.name_on(married);
            change.name = Some(name);
            change.name_kana = Some(kana);
            let publish_on = married.add_days(rng.days(7, 30));
            planned.push(PlannedChange {
                publish_on,
                change,
                may_be_mistaken: true,
            });
        }
    }
    planned.sort_by_key(|c| c.change.effective_on);
    planned
}

/// Publishes a change after the qualification's earlier events; a few are
/// first keyed with a wrong date, retracted by event id, then keyed right.
fn publish_change(em: &mut Emitter<'_>, record: &mut QualRecord, planned: PlannedChange) {
    let mut at = em
        .publish(record.desk, planned.publish_on)
        .max(record.last_at.plus(60));
    let change = planned.change;
    if planned.may_be_mistaken && em.rng.chance(MISTAKEN_CHANGE) {
        let month_early = add_months(change.effective_on, -1);
        let month_late = add_months(change.effective_on, 1);
        let wrong_day = [month_early, month_late]
            .into_iter()
            .find(|&d| d > record.as_of && d < record.end());
        if let Some(wrong_day) = wrong_day {
            let wrong = QualificationChanged {
                effective_on: wrong_day,
                ..change.clone()
            };
            let wrong_id = em.emit(at, &record.source, wrong);
            let retract_on = at.jst_day().add_days(em.rng.days(2, 6));
            let retracted_at = em.publish(record.desk, retract_on);
            let retraction = QualificationRetracted {
                retracted_event_id: Some(wrong_id),
                retracted_qualification_id: None,
                reason: "effective date keyed wrongly".into(),
            };
            em.emit(retracted_at, &record.source, retraction);
            at = retracted_at.plus(60 + em.rng.range(0, 600));
        }
    }
    if let Some(number) = &change.card_number {
        let previous = record
            .numbers
            .last()
            .map(|(_, n)| n.clone())
            .expect("acquired first");
        record.numbers.push((
            at,
            Insured {
                number: number.clone(),
                ..previous
            },
        ));
    }
    em.emit(at, &record.source, change);
    record.last_at = at;
}

/// The loss (other than by death, which waits for [`record_death`]) and the
/// certificates it ends.
fn lose(em: &mut Emitter<'_>, spec: &QualSpec, record: &mut QualRecord) {
    let (Some(lost_on), Some(lose_on)) = (spec.to, spec.lose_on) else {
        return;
    };
    if spec.loss == LossReason::Death {
        return;
    }
    let start = em.ctx.config.start;
    let at = em
        .publish(record.desk, lose_on.max(start))
        .max(record.last_at.plus(60));
    let lost = QualificationLost {
        qualification_id: record.id.clone(),
        lost_on,
        reason: spec.loss,
    };
    em.emit(at, &record.source, lost);
    record.lost_at = Some(at);
    record.last_at = at;
    end_certificates(em, record, lost_on, at);
}

/// Ends the qualification's certificates still valid on `lost_on`.
fn end_certificates(em: &mut Emitter<'_>, record: &mut QualRecord, lost_on: Day, after: At) {
    for cert in record.certificates.iter_mut() {
        if cert.ended || cert.valid_until.is_some_and(|u| u < lost_on) {
            continue;
        }
        let at = after.max(cert.issued_at).plus(60);
        em.emit(
            at,
            &record.source,
            CertificateEnded {
                certificate_id: cert.id.clone(),
                ended_on: lost_on,
            },
        );
        cert.ended = true;
    }
}

// Certificates.

fn issue_certificates(em: &mut Emitter<'_>, p: &Person, record: &mut QualRecord) {
    elderly_recipient_certificates(em, p, record);
    limit_certificate(em, p, record);
    specific_disease_certificate(em, p, record);
}

fn issue(
    em: &mut Emitter<'_>,
    record: &mut QualRecord,
    publish_on: Day,
    certificate: CertificateIssued,
) -> At {
    let at = em
        .publish(record.desk, publish_on)
        .max(record.acquired_at.plus(60));
    let issued = CertificateRecord {
        id: certificate.certificate_id.clone(),
        valid_until: certificate.valid_until,
        issued_at: at,
        ended: false,
    };
    em.emit(at, &record.source, certificate);
    record.certificates.push(issued);
    at
}

fn certificate(
    id: CertificateId,
    record: &QualRecord,
    kind: CertificateKind,
    valid_from: Day,
    valid_until: Option<Day>,
) -> CertificateIssued {
    CertificateIssued {
        certificate_id: id,
        qualification_id: record.id.clone(),
        kind,
        valid_from,
        valid_until,
        limit_category: None,
        disease: None,
        monthly_cap_yen: None,
        copay: None,
    }
}

/// 高齢受給者証 (70 to 74, employee insurance): one per certificate year,
/// ending 31 July, issued a few weeks ahead.
fn elderly_recipient_certificates(em: &mut Emitter<'_>, p: &Person, record: &mut QualRecord) {
    if !record.scheme.is_employee() {
        return;
    }
    let today = em.ctx.config.today;
    let at_75 = p.birth.add_years(75);
    let mut from = seventy_date(p.birth).max(record.as_of);
    while from < record.end() && from < at_75 && from <= today {
        let until = july_31_after(from).min(at_75.pred());
        let id = em.certificate_id();
        let mut cert = certificate(
            id,
            record,
            CertificateKind::ElderlyRecipient,
            from,
            Some(until),
        );
        cert.copay = Some(p.copay_on(record.scheme, from));
        let publish_on = from.add_days(-em.rng.days(10, 30));
        issue(em, record, publish_on, cert);
        from = until.succ();
    }
}

/// 限度額適用認定証 (or the 減額 one for low incomes) for a few, some
/// returned early.
fn limit_certificate(em: &mut Emitter<'_>, p: &Person, record: &mut QualRecord) {
    let today = em.ctx.config.today;
    let last = record.end().pred().min(today);
    if !em.rng.chance(50) || record.as_of > last {
        return;
    }
    let rng = &mut em.rng;
    let applied = day_in(rng, record.as_of, last);
    // Valid from the month of application, for a year.
    let valid_from = first_of_month(applied).max(record.from);
    let valid_until = add_months(first_of_month(applied), 12).pred();
    let (kind, category) = if age_on(p.birth, applied) < 70 {
        if rng.chance(100) {
            (CertificateKind::LimitApplicationReduction, LimitCategory::E)
        } else {
            let category = rng.weighted(&[
                (LimitCategory::A, 10),
                (LimitCategory::B, 20),
                (LimitCategory::C, 45),
                (LimitCategory::D, 25),
            ]);
            (CertificateKind::LimitApplication, category)
        }
    } else if p.high_income {
        let category = if rng.chance(500) {
            LimitCategory::Active1
        } else {
            LimitCategory::Active2
        };
        (CertificateKind::LimitApplication, category)
    } else {
        let category = if rng.chance(500) {
            LimitCategory::LowIncome1
        } else {
            LimitCategory::LowIncome2
        };
        (CertificateKind::LimitApplicationReduction, category)
    };
    let publish_on = applied.add_days(rng.days(0, 5));
    let id = em.certificate_id();
    let mut cert = certificate(id, record, kind, valid_from, Some(valid_until));
    cert.limit_category = Some(category);
    let mut issued_at = issue(em, record, publish_on, cert);
    let last_day = valid_until.min(record.end().pred()).min(today);
    // 所得区分 reassessed in August: the 適用区分 changes mid-validity.
    let reassessed = add_months(first_of_month(applied), 4);
    if kind == CertificateKind::LimitApplication
        && em.rng.chance(150)
        && valid_from < reassessed
        && reassessed <= last_day
    {
        let category = if category == LimitCategory::C {
            LimitCategory::D
        } else {
            LimitCategory::C
        };
        let at = em.publish(record.desk, reassessed).max(issued_at.plus(60));
        let cert = record.certificates.last().expect("just issued");
        em.emit(
            at,
            &record.source,
            CertificateChanged {
                certificate_id: cert.id.clone(),
                effective_on: reassessed,
                limit_category: Some(category),
                monthly_cap_yen: None,
                copay: None,
                valid_until: None,
            },
        );
        issued_at = at;
    }
    if em.rng.chance(100) && valid_from.succ() <= last_day {
        let ended_on = day_in(&mut em.rng, valid_from.succ(), last_day);
        let returned_on = ended_on.add_days(em.rng.days(0, 5));
        let at = em.publish(record.desk, returned_on).max(issued_at.plus(60));
        let cert = record.certificates.last_mut().expect("just issued");
        em.emit(
            at,
            &record.source,
            CertificateEnded {
                certificate_id: cert.id.clone(),
                ended_on,
            },
        );
        cert.ended = true;
    }
}

/// 特定疾病療養受療証: each new insurer certifies again (p18).
fn specific_disease_certificate(em: &mut Emitter<'_>, p: &Person, record: &mut QualRecord) {
    let Some(disease) = p.disease else { return };
    let cap = if disease == SpecificDisease::ChronicRenalFailure
        && p.high_income
        && age_on(p.birth, record.as_of) < 70
    {
        20_000
    } else {
        10_000
    };
    let publish_on = record.acquired_at.jst_day().add_days(em.rng.days(1, 20));
    let id = em.certificate_id();
    let mut cert = certificate(
        id,
        record,
        CertificateKind::SpecificDisease,
        record.as_of,
        None,
    );
    cert.disease = Some(disease);
    cert.monthly_cap_yen = Some(cap);
    issue(em, record, publish_on, cert);
}

// Card links.

/// How the first link request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstTry {
    Accepted,
    /// The card's certificate had expired (CERTIFICATE_INVALID).
    ExpiredCertificate,
    /// A mistyped 枝番 (NO_SUCH_QUALIFICATION).
    MistypedBranch,
}

/// 初回紐づけ for about 60 % of persons: a request and the link, sometimes
/// after a rejection; a few renew their card later and link the new serial.
fn link_cards(em: &mut Emitter<'_>, p: &Person, quals: &[QualRecord]) -> Vec<LinkRecord> {
    let cfg = em.ctx.config;
    let first = cfg.start.add_days(7);
    let last = p.last_day(&cfg).add_days(-3);
    let mut links = Vec::new();
    if !em.rng.chance(LINKS_CARD) || first > last {
        return links;
    }
    let mut day = day_in(&mut em.rng, first, last);
    let mut serial = em.card_serial();
    let mut after = None;
    let first_try = em.rng.weighted(&[
        (FirstTry::Accepted, 940),
        (FirstTry::ExpiredCertificate, 30),
        (FirstTry::MistypedBranch, 30),
    ]);
    match first_try {
        FirstTry::Accepted => {}
        FirstTry::ExpiredCertificate => {
            let reason = LinkRejectionReason::CertificateInvalid;
            let rejected = reject(em, quals, day, &serial, None, reason);
            if rejected.is_some() {
                // A new card, so a new serial, a few weeks later.
                day = day.add_days(em.rng.days(7, 40));
                serial = em.card_serial();
            }
        }
        FirstTry::MistypedBranch => {
            // Typed again, correctly, at once.
            let typo = Some(parse::<Branch>("99"));
            let reason = LinkRejectionReason::NoSuchQualification;
            after = reject(em, quals, day, &serial, typo, reason);
        }
    }
    let Some(link) = link_within(em, quals, day, last, after, &serial) else {
        return links;
    };
    links.push(link);
    if em.rng.chance(120) {
        renew_card(em, quals, last, &mut links);
    }
    links
}

/// Links `serial` on `day`, or, while the person is between qualifications
/// the ledger knows, tries again a few weeks later (up to three times).
fn link_within(
    em: &mut Emitter<'_>,
    quals: &[QualRecord],
    mut day: Day,
    last: Day,
    after: Option<At>,
    serial: &CardSerial,
) -> Option<LinkRecord> {
    for _ in 0..3 {
        if day > last {
            return None;
        }
        if let Some(link) = request_link(em, quals, day, after, serial) {
            return Some(link);
        }
        day = day.add_days(em.rng.days(20, 40));
    }
    None
}

/// Requests a link on `day` (after `after`) and links it if a qualification
/// carries the number when the link is made; emits nothing otherwise.
fn request_link(
    em: &mut Emitter<'_>,
    quals: &[QualRecord],
    day: Day,
    after: Option<At>,
    serial: &CardSerial,
) -> Option<LinkRecord> {
    let requested_at = em
        .publish(Desk::Portal, day)
        .max(after.map_or(At(i64::MIN), |a| a.plus(60)));
    let linked_at = requested_at.plus(em.rng.range(5, 600));
    let linked_on = linked_at.jst_day();
    let insured = quals
        .iter()
        .find_map(|q| q.carried(linked_on, requested_at))?
        .clone();
    // Nothing the ledger learns between request and link may change the answer.
    if !quals
        .iter()
        .any(|q| q.carried(linked_on, linked_at) == Some(&insured))
    {
        return None;
    }
    let request_id = em.request_id();
    let portal = em.ctx.portal.clone();
    let requested = CardLinkRequested {
        request_id: request_id.clone(),
        card_serial: serial.clone(),
        insurer_number: insured.insurer.clone(),
        card_symbol: insured.symbol.clone(),
        card_number: insured.number.clone(),
        branch: insured.branch.clone(),
        notice_requested: em.rng.chance(600),
        contact: None,
    };
    em.emit(requested_at, &portal, requested);
    let linked = CardLinked {
        request_id: Some(request_id),
        card_serial: serial.clone(),
        insurer_number: insured.insurer,
        card_symbol: insured.symbol,
        card_number: insured.number,
        branch: insured.branch,
        linked_on,
    };
    em.emit(linked_at, &portal, linked);
    Some(LinkRecord {
        serial: serial.clone(),
        linked_on,
        linked_at,
        unlinked_at: None,
    })
}

/// A request on `day` that is refused; `branch` replaces the real 枝番 (a
/// typo). Returns when the rejection was published.
fn reject(
    em: &mut Emitter<'_>,
    quals: &[QualRecord],
    day: Day,
    serial: &CardSerial,
    branch: Option<Branch>,
    reason: LinkRejectionReason,
) -> Option<At> {
    let requested_at = em.publish(Desk::Portal, day);
    let insured = quals
        .iter()
        .find_map(|q| q.carried(day, requested_at))?
        .clone();
    if branch.is_some() && insured.branch.is_none() {
        return None;
    }
    let request_id = em.request_id();
    let portal = em.ctx.portal.clone();
    let requested = CardLinkRequested {
        request_id: request_id.clone(),
        card_serial: serial.clone(),
        insurer_number: insured.insurer,
        card_symbol: insured.symbol,
        card_number: insured.number,
        branch: branch.or(insured.branch),
        notice_requested: em.rng.chance(600),
        contact: None,
    };
    em.emit(requested_at, &portal, requested);
    let rejected_at = requested_at.plus(em.rng.range(5, 300));
    em.emit(
        rejected_at,
        &portal,
        CardLinkRejected {
            request_id,
            card_serial: serial.clone(),
            reason,
        },
    );
    Some(rejected_at)
}

/// The card is renewed: the old serial is unlinked and the new one linked.
fn renew_card(em: &mut Emitter<'_>, quals: &[QualRecord], last: Day, links: &mut Vec<LinkRecord>) {
    let Some(current) = links.last_mut() else {
        return;
    };
    let renewed = current.linked_on.add_days(em.rng.days(180, 1200));
    if renewed > last {
        return;
    }
    let at = em
        .publish(Desk::Portal, renewed)
        .max(current.linked_at.plus(60));
    let unlinked = CardUnlinked {
        card_serial: current.serial.clone(),
        unlinked_on: renewed,
        reason: UnlinkReason::CardRenewed,
    };
    current.unlinked_at = Some(at);
    let portal = em.ctx.portal.clone();
    em.emit(at, &portal, unlinked);
    let serial = em.card_serial();
    if let Some(link) = link_within(em, quals, renewed, last, Some(at), &serial) {
        links.push(link);
    }
}

/// The serial linked at `at`, if any.
fn linked_serial(links: &[LinkRecord], at: At) -> Option<&CardSerial> {
    links
        .iter()
        .rev()
        .find(|l| l.linked_at < at && l.unlinked_at.is_none_or(|u| u > at))
        .map(|l| &l.serial)
}

// Subsidies.

/// A stretch of eligibility for one programme; `until` is the first day not
/// eligible.
#[derive(Debug, Clone, Copy)]
struct Eligibility {
    programme: SubsidyProgramme,
    from: Day,
    until: Option<Day>,
}

fn eligibilities(p: &Person, cfg: &SampleConfig, rng: &mut SplitMix64) -> Vec<Eligibility> {
    let mut list = Vec::new();
    let since = cfg.start.add_years(-1);
    if end_of_childhood(p.birth) > cfg.start {
        let entry = school_entry(p.birth);
        list.push(Eligibility {
            programme: SubsidyProgramme::Infant,
            from: p.birth,
            until: Some(entry),
        });
        let until = Some(end_of_childhood(p.birth));
        list.push(Eligibility {
            programme: SubsidyProgramme::Child,
            from: entry,
            until,
        });
    }
    if p.single_parent {
        list.push(Eligibility {
            programme: SubsidyProgramme::SingleParent,
            from: since,
            until: None,
        });
    }
    if p.disabled {
        list.push(Eligibility {
            programme: SubsidyProgramme::Disabled,
            from: since,
            until: None,
        });
    }
    if age_on(p.birth, cfg.start) >= 18 && rng.chance(5) {
        list.push(Eligibility {
            programme: SubsidyProgramme::Disease,
            from: since,
            until: None,
        });
    }
    list
}

/// Municipal subsidies, only for persons with a linked card: registered at
/// linking time or later, renewed each October by a change or by an end and
/// a new grant.
fn grant_subsidies(em: &mut Emitter<'_>, p: &Person, links: &[LinkRecord]) -> Vec<SubsidyRecord> {
    let mut records = Vec::new();
    let Some(first) = links.first() else {
        return records;
    };
    let cfg = em.ctx.config;
    let registered_on = first.linked_on.add_days(em.rng.days(0, 20));
    let mut floor = first.linked_at;
    for eligibility in eligibilities(p, &cfg, &mut em.rng) {
        subsidy_years(
            em,
            p,
            links,
            eligibility,
            registered_on,
            &mut floor,
            &mut records,
        );
    }
    records
}

fn subsidy_years(
    em: &mut Emitter<'_>,
    p: &Person,
    links: &[LinkRecord],
    e: Eligibility,
    registered_on: Day,
    floor: &mut At,
    records: &mut Vec<SubsidyRecord>,
) {
    let last = p.last_day(&em.ctx.config);
    if e.until.is_some_and(|u| u <= registered_on) {
        return;
    }
    let publish_on = if e.from <= registered_on {
        registered_on
    } else {
        e.from.add_days(-em.rng.days(5, 15)).max(registered_on)
    };
    if publish_on > last {
        return;
    }
    let valid_from = if e.from <= publish_on {
        october_before(publish_on).max(e.from)
    } else {
        e.from
    };
    let at = em
        .publish(Desk::Municipality, publish_on)
        .max(floor.plus(60));
    let Some(mut current) = grant(em, p, links, e, valid_from, at) else {
        return;
    };
    let mut renewal = october_before(valid_from).add_years(1);
    while renewal <= last && e.until.is_none_or(|u| renewal < u) {
        let batch_on = renewal.add_days(-em.rng.days(5, 20));
        let at = em
            .publish(Desk::Municipality, batch_on)
            .max(current.last_at.plus(60));
        let source = municipality_source(em.ctx, p);
        if em.rng.chance(600) {
            let valid_until = subsidy_year_end(renewal, e.until);
            let change = SubsidyChanged {
                subsidy_id: current.id.clone(),
                effective_on: renewal,
                recipient_number: None,
                copay_percent: None,
                copay_amount_yen: None,
                valid_until: Some(valid_until),
                method: None,
                remarks: None,
            };
            em.emit(at, &source, change);
            current.valid_until = Some(valid_until);
            current.last_at = at;
        } else {
            em.emit(
                at,
                &source,
                SubsidyEnded {
                    subsidy_id: current.id.clone(),
                    ended_on: renewal,
                },
            );
            current.ended = true;
            current.last_at = at;
            let next = grant(em, p, links, e, renewal, at.plus(60));
            records.push(current);
            match next {
                Some(next) => current = next,
                None => {
                    *floor = at;
                    return;
                }
            }
        }
        renewal = renewal.add_years(1);
    }
    end_early(em, p, e, last, &mut current);
    *floor = current.last_at;
    records.push(current);
}

/// Adults' subsidies sometimes end before their expiry (income, recovery).
fn end_early(
    em: &mut Emitter<'_>,
    p: &Person,
    e: Eligibility,
    last: Day,
    current: &mut SubsidyRecord,
) {
    if e.until.is_some() || current.ended || !em.rng.chance(100) {
        return;
    }
    let until = current.valid_until.unwrap_or(Day::MAX).min(last);
    if current.valid_from.add_days(30) > until {
        return;
    }
    let ended_on = day_in(&mut em.rng, current.valid_from.add_days(30), until);
    let at = em
        .publish(Desk::Municipality, ended_on)
        .max(current.last_at.plus(60));
    let source = municipality_source(em.ctx, p);
    em.emit(
        at,
        &source,
        SubsidyEnded {
            subsidy_id: current.id.clone(),
            ended_on,
        },
    );
    current.ended = true;
    current.last_at = at;
}

fn municipality_source(ctx: &Context, p: &Person) -> PublisherId {
    parse(&format!("municipality-{}", ctx.municipalities[p.home]))
}

/// A grant for one subsidy year, tied to the serial linked at `at`.
fn grant(
    em: &mut Emitter<'_>,
    p: &Person,
    links: &[LinkRecord],
    e: Eligibility,
    valid_from: Day,
    at: At,
) -> Option<SubsidyRecord> {
    let serial = linked_serial(links, at)?.clone();
    let municipality = em.ctx.municipalities[p.home].clone();
    let rng = &mut em.rng;
    let (law, copay_percent, copay_amount_yen, remarks) = match e.programme {
        SubsidyProgramme::Infant => (88, Some(0), None, None),
        SubsidyProgramme::Child if rng.chance(300) => {
            (88, None, Some(200), Some("通院1回200円".to_owned()))
        }
        SubsidyProgramme::Child => (88, Some(0), None, None),
        SubsidyProgramme::SingleParent => {
            (81, Some(if rng.chance(500) { 10 } else { 0 }), None, None)
        }
        SubsidyProgramme::Disabled => (80, Some(if rng.chance(300) { 10 } else { 0 }), None, None),
        SubsidyProgramme::Disease | SubsidyProgramme::Other => {
            (82, Some(20), Some(2500), Some("月額上限2,500円".to_owned()))
        }
    };
    let mut payer = digits(law, 2);
    payer.extend(digits(u64::from(MUNICIPALITIES[p.home].prefecture), 2));
    payer.extend(digits(u64::from(MUNICIPALITIES[p.home].code), 3));
    let recipient = digits(rng.below(1_000_000), 6);
    let method = if rng.chance(150) {
        SubsidyMethod::AutoReimbursement
    } else {
        SubsidyMethod::InKind
    };
    let valid_until = subsidy_year_end(valid_from, e.until);
    let id = em.subsidy_id();
    let granted = SubsidyGranted {
        subsidy_id: id.clone(),
        municipality,
        programme: e.programme,
        payer_number: parse(&with_check(&payer)),
        recipient_number: parse(&with_check(&recipient)),
        card_serial: Some(serial),
        copay_percent,
        copay_amount_yen,
        valid_from,
        valid_until: Some(valid_until),
        method,
        remarks,
    };
    let source = municipality_source(em.ctx, p);
    em.emit(at, &source, granted);
    Some(SubsidyRecord {
        id,
        valid_from,
        valid_until: Some(valid_until),
        ended: false,
        last_at: at,
    })
}

// Death.

/// A death is registered after everything else the person did: every
/// insurer records the loss (the day after death), certificates and
/// subsidies end. Nothing follows.
fn record_death(
    em: &mut Emitter<'_>,
    p: &Person,
    quals: &mut [QualRecord],
    subsidies: &mut [SubsidyRecord],
) {
    let Some(death) = p.death else { return };
    let lost_on = death.succ();
    let Some(latest) = em.latest() else { return };
    let floor = latest.plus(60);
    for record in quals
        .iter_mut()
        .filter(|q| q.to == Some(lost_on) && q.lost_at.is_none())
    {
        let at = em
            .publish(record.desk, death.add_days(p.death_lag))
            .max(floor);
        let lost = QualificationLost {
            qualification_id: record.id.clone(),
            lost_on,
            reason: LossReason::Death,
        };
        em.emit(at, &record.source, lost);
        record.lost_at = Some(at);
        end_certificates(em, record, lost_on, at);
    }
    let source = municipality_source(em.ctx, p);
    for subsidy in subsidies.iter_mut() {
        if subsidy.ended || subsidy.valid_until.is_some_and(|u| u < lost_on) {
            continue;
        }
        let at = em
            .publish(Desk::Municipality, death.add_days(p.death_lag + 7))
            .max(floor);
        em.emit(
            at,
            &source,
            SubsidyEnded {
                subsidy_id: subsidy.id.clone(),
                ended_on: lost_on,
            },
        );
        subsidy.ended = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::json;
    use serde_json::Value;
    use std::collections::{HashMap, HashSet};

    fn config(persons: u64) -> SampleConfig {
        SampleConfig {
            persons,
            ..SampleConfig::default()
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Reference outputs for seed 1234567 (Vigna's splitmix64.c).
        let mut rng = SplitMix64::new(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn insurers_cover_every_scheme_with_valid_unique_numbers() {
        let list = insurers(42);
        for &scheme in Scheme::ALL {
            assert!(list.iter().any(|i| i.scheme == scheme), "{scheme:?}");
        }
        let numbers: HashSet<_> = list.iter().map(|i| i.number.clone()).collect();
        assert_eq!(numbers.len(), list.len(), "numbers are unique");
        for i in &list {
            // Re-parsing checks the check digit again.
            assert_eq!(
                i.number.as_str().parse::<InsurerNumber>().as_ref(),
                Ok(&i.number)
            );
            let expected_kind = match i.scheme {
                Scheme::KyokaiKenpo => InsurerKind::KyokaiKenpo,
                Scheme::Seamen => InsurerKind::SeamenInsurance,
                Scheme::DayLabourer => InsurerKind::DayLabourer,
                Scheme::Society => InsurerKind::HealthInsuranceSociety,
                Scheme::MutualAid => InsurerKind::MutualAid,
                Scheme::LateElderly => InsurerKind::LateElderly,
                Scheme::MunicipalNhi | Scheme::NhiSociety => InsurerKind::NationalHealthInsurance,
                Scheme::NhiRetiree => InsurerKind::NhiRetiree,
            };
            assert_eq!(i.number.kind(), expected_kind, "{}", i.name);
        }
        let tokyo_kenpo = list
            .iter()
            .find(|i| i.name == "全国健康保険協会 東京支部")
            .unwrap();
        assert_eq!(tokyo_kenpo.number.as_str(), "01130012");
        let tokyo_koki = list
            .iter()
            .find(|i| i.name == "東京都後期高齢者医療広域連合")
            .unwrap();
        assert_eq!(tokyo_koki.number.as_str(), "39131008");
        assert!(list
            .iter()
            .any(|i| i.municipality.as_ref().map(|m| m.as_str()) == Some("131016")));
        assert_eq!(insurers(42), list, "deterministic");
    }

    #[test]
    fn households_tile_the_population() {
        let mut next = 0;
        while next < 600 {
            let (head, size, position) = household_of(7, next);
            assert_eq!((head, position), (next, 0));
            for k in 0..u64::from(size) {
                assert_eq!(household_of(7, next + k), (head, size, k as u8));
            }
            next += u64::from(size);
        }
    }

    #[test]
    fn every_event_validates_and_round_trips_through_json() {
        for event in population(&config(2_000)) {
            event
                .validate()
                .unwrap_or_else(|e| panic!("{e}: {event:?}"));
            let back = json::from_value(json::to_value(&event))
                .unwrap_or_else(|e| panic!("{e}: {event:?}"));
            assert_eq!(back, event);
        }
    }

    #[test]
    fn replaying_the_stream_breaks_no_rule() {
        for (seed, persons) in [(42, 2_000), (7, 1_000)] {
            let cfg = SampleConfig {
                seed,
                persons,
                ..SampleConfig::default()
            };
            let mut replay = Replay::new(cfg);
            population(&cfg).for_each(|e| replay.apply(&e));
            assert!(replay.events > 3 * persons, "{} events", replay.events);
            assert!(
                replay.violations.is_empty(),
                "seed {seed}: {} violations, first: {:#?}",
                replay.violations.len(),
                &replay.violations[..replay.violations.len().min(20)]
            );
        }
    }

    #[test]
    fn other_windows_replay_cleanly() {
        let windows = [
            (ymd(2010, 4, 1), ymd(2014, 3, 31)),
            (ymd(2024, 2, 29), ymd(2024, 3, 10)),
            (ymd(2026, 1, 1), ymd(2031, 12, 31)),
        ];
        for (start, today) in windows {
            let cfg = SampleConfig {
                seed: 3,
                persons: 400,
                start,
                today,
            };
            let mut replay = Replay::new(cfg);
            for e in population(&cfg) {
                e.validate().unwrap_or_else(|err| panic!("{err}: {e:?}"));
                replay.apply(&e);
            }
            assert!(
                replay.events >= 400,
                "{start}..{today}: {} events",
                replay.events
            );
            assert_eq!(replay.violations, Vec::<String>::new(), "{start}..{today}");
        }
    }

    #[test]
    fn the_p17_scenario_replays_in_publication_order() {
        let events = scenario_p17();
        let mut replay = Replay::new(SampleConfig {
            start: ymd(2020, 4, 1),
            ..SampleConfig::default()
        });
        for e in &events {
            e.validate().unwrap();
            replay.apply(e);
        }
        assert_eq!(replay.violations, Vec::<String>::new());
        let days: Vec<Day> = events
            .iter()
            .map(|e| At(e.envelope.produced_at.timestamp()).jst_day())
            .collect();
        assert_eq!(days, [ymd(2020, 4, 7), ymd(2024, 4, 20), ymd(2024, 5, 20)]);
        let Payload::QualificationLost(lost) = &events[1].payload else {
            panic!("loss second")
        };
        assert_eq!(lost.lost_on, ymd(2024, 4, 1));
        let Payload::QualificationAcquired(b) = &events[2].payload else {
            panic!("B third")
        };
        assert_eq!(
            (b.insurer_number.as_str(), b.acquired_on),
            ("06135008", ymd(2024, 4, 1))
        );
        assert_eq!(b.insurer_number.kind(), InsurerKind::HealthInsuranceSociety);
        assert!(events.iter().all(|e| e.envelope.link.as_str() == "L-P17"));
        assert_eq!(scenario_p17(), events);
    }

    /// FNV-1a over canonical JSON (keys sorted), independent of serde_json's
    /// map features.
    fn digest(events: impl Iterator<Item = Event>) -> u64 {
        fn canonical(v: &Value, out: &mut String) {
            match v {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    out.push('{');
                    for (i, k) in keys.into_iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push_str(&Value::String(k.clone()).to_string());
                        out.push(':');
                        canonical(&map[k], out);
                    }
                    out.push('}');
                }
                Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        canonical(item, out);
                    }
                    out.push(']');
                }
                other => out.push_str(&other.to_string()),
            }
        }
        let mut hash = 0xCBF2_9CE4_8422_2325u64;
        let mut text = String::new();
        for event in events {
            text.clear();
            canonical(&json::to_value(&event), &mut text);
            text.push('\n');
            for b in text.bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
            }
        }
        hash
    }

    #[test]
    fn same_config_same_events_byte_for_byte() {
        let cfg = config(300);
        let a: Vec<Event> = population(&cfg).collect();
        let b: Vec<Event> = population(&cfg).collect();
        assert_eq!(a, b);
        assert_eq!(digest(a.iter().cloned()), digest(b.into_iter()));
        // A smaller population is a prefix of a larger one.
        let small: Vec<Event> = population(&config(100)).collect();
        assert_eq!(&a[..small.len()], &small[..]);
        // Another seed, another population.
        let other = SampleConfig { seed: 43, ..cfg };
        assert_ne!(digest(population(&other)), digest(a.into_iter()));
    }

    #[test]
    fn the_stream_is_pinned() {
        // Changing the generator's output changes this digest: that is a
        // breaking change for anyone relying on the sample (demos, goldens).
        assert_eq!(
            digest(population(&config(10_000)).take(2_000)),
            PINNED_DIGEST
        );
    }

    // Changed when 限度額適用 certificates began to change their 適用区分 mid-validity.
    const PINNED_DIGEST: u64 = 0x94E6_4B68_14E5_3C54;

    #[test]
    fn event_ids_are_unique_uuidv7_stamped_with_produced_at() {
        let mut seen = HashSet::new();
        for e in population(&config(1_000)) {
            let id = e.envelope.event_id;
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs as i64, e.envelope.produced_at.timestamp());
            assert_eq!(nanos, 0);
            assert!(seen.insert(id), "duplicate {id}");
        }
    }

    #[test]
    fn describe_counts_every_event() {
        let cfg = config(500);
        let stats = describe(&cfg);
        assert_eq!(stats.events, population(&cfg).count() as u64);
        assert_eq!(stats.by_type.values().sum::<u64>(), stats.events);
        assert!(
            stats.persons > 450 && stats.persons <= 500,
            "{}",
            stats.persons
        );
        assert!(stats.first_produced_at.unwrap() >= At::jst(cfg.start, 0).datetime());
        assert!(stats.last_produced_at.unwrap() < At::jst(cfg.today.succ(), 0).datetime());
        assert!(stats.to_string().contains("QualificationAcquired"));
    }

    /// The life events the brief asks for all occur in 2,000 persons.
    #[test]
    fn the_population_covers_the_interesting_cases() {
        let cfg = config(2_000);
        let mut cover = Coverage::default();
        let mut person: Vec<Event> = Vec::new();
        for e in population(&cfg) {
            if person
                .last()
                .is_some_and(|p| p.envelope.link != e.envelope.link)
            {
                cover.person(&person, &cfg);
                person.clear();
            }
            person.push(e);
        }
        cover.person(&person, &cfg);
        let stats = describe(&cfg);
        // The population is insurers' and portals' events; notices and
        // claims are the notifier's and the payers'.
        for t in EventType::ALL
            .iter()
            .filter(|t| !t.is_notice_progress() && !t.is_claim())
        {
            assert!(stats.count(*t) > 0, "no {t}");
        }
        assert!(cover.late_acquisition_after_loss > 20, "{cover:?}");
        assert!(cover.nhi_after_employee > 5, "{cover:?}");
        assert!(cover.late_elderly_at_75 > 5, "{cover:?}");
        assert!(cover.deaths > 5, "{cover:?}");
        assert!(cover.households_with_dependents > 50, "{cover:?}");
        assert!(
            cover.short_term > 0 && cover.child_short_term > 0,
            "{cover:?}"
        );
        assert!(
            cover.elderly_certificates > 5 && cover.nhi_elderly_cards > 5,
            "{cover:?}"
        );
        assert!(cover.duplicate_enrolments > 0, "{cover:?}");
        assert!(
            cover.name_changes > 0 && cover.number_reissues > 0,
            "{cover:?}"
        );
        assert!(cover.retiree_to_nhi > 0, "{cover:?}");
        assert!(cover.newborns > 5, "{cover:?}");
        let schemes: HashSet<_> = cover.schemes.iter().collect();
        assert_eq!(schemes.len(), Scheme::ALL.len(), "{schemes:?}");
        let linked = stats.persons_linked_share(&cfg);
        assert!((500..700).contains(&linked), "{linked} per mille linked");
    }

    impl SampleStats {
        fn persons_linked_share(&self, cfg: &SampleConfig) -> u64 {
            let linked_persons = population(cfg)
                .filter(|e| e.event_type() == EventType::CardLinked)
                .map(|e| e.envelope.link)
                .collect::<HashSet<_>>()
                .len() as u64;
            linked_persons * 1000 / self.persons
        }
    }

    #[derive(Debug, Default)]
    struct Coverage {
        late_acquisition_after_loss: u32,
        nhi_after_employee: u32,
        late_elderly_at_75: u32,
        deaths: u32,
        households_with_dependents: u32,
        short_term: u32,
        child_short_term: u32,
        elderly_certificates: u32,
        nhi_elderly_cards: u32,
        duplicate_enrolments: u32,
        name_changes: u32,
        number_reissues: u32,
        retiree_to_nhi: u32,
        newborns: u32,
        schemes: Vec<Scheme>,
    }

    impl Coverage {
        fn person(&mut self, events: &[Event], cfg: &SampleConfig) {
            let insurers = insurers(cfg.seed);
            let scheme =
                |n: &InsurerNumber| insurers.iter().find(|i| &i.number == n).unwrap().scheme;
            let mut acquired: Vec<(&QualificationAcquired, Day)> = Vec::new();
            let mut losses: Vec<(&QualificationLost, Day)> = Vec::new();
            for e in events {
                let published = At(e.envelope.produced_at.timestamp()).jst_day();
                match &e.payload {
                    Payload::QualificationAcquired(q) => {
                        acquired.push((q, published));
                        self.schemes.push(scheme(&q.insurer_number));
                        if q.branch.as_ref().is_some_and(|b| b.as_str() == "01")
                            && q.relationship == Relationship::Dependent
                        {
                            self.households_with_dependents += 1;
                        }
                        match q.card_kind {
                            CardKind::ShortTerm => self.short_term += 1,
                            CardKind::ChildShortTerm => self.child_short_term += 1,
                            CardKind::NhiWithElderlyRecipient => self.nhi_elderly_cards += 1,
                            _ => {}
                        }
                        if q.acquired_on == q.birth_date && q.acquired_on > cfg.start {
                            self.newborns += 1;
                        }
                    }
                    Payload::QualificationLost(l) => {
                        losses.push((l, published));
                        if l.reason == LossReason::Death {
                            self.deaths += 1;
                        }
                    }
                    Payload::QualificationChanged(c) => {
                        self.name_changes += u32::from(c.name.is_some());
                        self.number_reissues += u32::from(c.card_number.is_some());
                        self.nhi_elderly_cards +=
                            u32::from(c.card_kind == Some(CardKind::NhiWithElderlyRecipient));
                    }
                    Payload::CertificateIssued(c) => {
                        self.elderly_certificates +=
                            u32::from(c.kind == CertificateKind::ElderlyRecipient);
                    }
                    _ => {}
                }
            }
            let qual = |id: &QualificationId| {
                acquired
                    .iter()
                    .find(|(q, _)| &q.qualification_id == id)
                    .unwrap()
                    .0
            };
            for (loss, lost_published) in &losses {
                let from = qual(&loss.qualification_id);
                let from_scheme = scheme(&from.insurer_number);
                for (next, published) in &acquired {
                    if next.acquired_on != loss.lost_on
                        || next.qualification_id == from.qualification_id
                    {
                        continue;
                    }
                    let to_scheme = scheme(&next.insurer_number);
                    let late =
                        *published >= loss.lost_on.add_days(21) && published > lost_published;
                    if late && to_scheme.is_employee() {
                        self.late_acquisition_after_loss += 1;
                    }
                    if from_scheme.is_employee() && to_scheme == Scheme::MunicipalNhi {
                        self.nhi_after_employee += 1;
                    }
                    if loss.reason == LossReason::ReachedSeventyFive
                        && to_scheme == Scheme::LateElderly
                        && next.acquired_on == next.birth_date.add_years(75)
                    {
                        self.late_elderly_at_75 += 1;
                    }
                    if from_scheme == Scheme::NhiRetiree && to_scheme == Scheme::MunicipalNhi {
                        self.retiree_to_nhi += 1;
                    }
                }
            }
            let open = |q: &QualificationAcquired| {
                !losses
                    .iter()
                    .any(|(l, _)| l.qualification_id == q.qualification_id)
            };
            let late_elderly = acquired
                .iter()
                .any(|(q, _)| scheme(&q.insurer_number) == Scheme::LateElderly && open(q));
            let beside = acquired.iter().any(|(q, _)| {
                matches!(
                    scheme(&q.insurer_number),
                    Scheme::Seamen | Scheme::MutualAid
                ) && open(q)
                    && age_on(q.birth_date, cfg.today) >= 75
            });
            self.duplicate_enrolments += u32::from(late_elderly && beside);
        }
    }

    /// A tiny projector holding exactly the rules the brief names: what each
    /// event refers to must exist, in publication order.
    struct Replay {
        cfg: SampleConfig,
        events: u64,
        seen_persons: HashSet<LinkNumber>,
        current: Option<LinkNumber>,
        person: PersonState,
        event_ids: HashSet<Uuid>,
        qualification_ids: HashSet<QualificationId>,
        certificate_ids: HashSet<CertificateId>,
        subsidy_ids: HashSet<SubsidyId>,
        serials: HashMap<CardSerial, LinkNumber>,
        violations: Vec<String>,
    }

    #[derive(Default)]
    struct PersonState {
        quals: HashMap<QualificationId, QualState>,
        events: HashMap<Uuid, EventType>,
        certificates: HashSet<CertificateId>,
        requests: HashMap<RequestId, CardSerial>,
        linked: HashSet<CardSerial>,
        subsidies: HashMap<SubsidyId, bool>,
        dead: bool,
        last_produced_at: Option<DateTime<Utc>>,
    }

    struct QualState {
        acquired_on: Day,
        lost: bool,
        insured: IndividualInsuredNumber,
    }

    impl Replay {
        fn new(cfg: SampleConfig) -> Replay {
            Replay {
                cfg,
                events: 0,
                seen_persons: HashSet::new(),
                current: None,
                person: PersonState::default(),
                event_ids: HashSet::new(),
                qualification_ids: HashSet::new(),
                certificate_ids: HashSet::new(),
                subsidy_ids: HashSet::new(),
                serials: HashMap::new(),
                violations: Vec::new(),
            }
        }

        fn apply(&mut self, e: &Event) {
            self.events += 1;
            let link = &e.envelope.link;
            if self.current.as_ref() != Some(link) {
                let first_time = self.seen_persons.insert(link.clone());
                self.check(first_time, e, "person's events are not consecutive");
                self.current = Some(link.clone());
                self.person = PersonState::default();
            }
            let at = e.envelope.produced_at;
            self.check(
                self.person.last_produced_at.is_none_or(|t| t <= at),
                e,
                "produced_at goes back",
            );
            self.person.last_produced_at = Some(at);
            let day = At(at.timestamp()).jst_day();
            self.check(
                self.cfg.start <= day && day <= self.cfg.today,
                e,
                "published outside [start, today]",
            );
            let fresh = self.event_ids.insert(e.envelope.event_id);
            self.check(fresh, e, "duplicate event id");
            let after_death = matches!(
                &e.payload,
                Payload::QualificationLost(QualificationLost {
                    reason: LossReason::Death,
                    ..
                }) | Payload::CertificateEnded(_)
                    | Payload::SubsidyEnded(_)
            );
            self.check(!self.person.dead || after_death, e, "event after death");
            self.person
                .events
                .insert(e.envelope.event_id, e.event_type());
            self.payload(e);
        }

        fn payload(&mut self, e: &Event) {
            match &e.payload {
                Payload::QualificationAcquired(q) => {
                    let fresh = self.qualification_ids.insert(q.qualification_id.clone());
                    self.check(fresh, e, "qualification id reused");
                    let insured = q.insured_number().unwrap();
                    let state = QualState {
                        acquired_on: q.acquired_on,
                        lost: false,
                        insured,
                    };
                    self.person.quals.insert(q.qualification_id.clone(), state);
                }
                Payload::QualificationChanged(c) => {
                    let ok = self
                        .person
                        .quals
                        .get_mut(&c.qualification_id)
                        .is_some_and(|q| {
                            let ok = !q.lost && c.effective_on > q.acquired_on;
                            if c.card_symbol.is_some()
                                || c.card_number.is_some()
                                || c.branch.is_some()
                            {
                                q.insured = IndividualInsuredNumber::new(
                                    q.insured.insurer().clone(),
                                    c.card_symbol
                                        .clone()
                                        .or_else(|| q.insured.symbol().cloned()),
                                    c.card_number
                                        .clone()
                                        .unwrap_or_else(|| q.insured.number().clone()),
                                    c.branch.clone().or_else(|| q.insured.branch().cloned()),
                                )
                                .unwrap();
                            }
                            ok
                        });
                    self.check(
                        ok,
                        e,
                        "change of no open qualification, or effective before acquisition",
                    );
                }
                Payload::QualificationLost(l) => {
                    let ok = self
                        .person
                        .quals
                        .get_mut(&l.qualification_id)
                        .is_some_and(|q| {
                            let ok = !q.lost && l.lost_on > q.acquired_on;
                            q.lost = true;
                            ok
                        });
                    self.check(
                        ok,
                        e,
                        "loss of no open qualification, or before acquisition",
                    );
                    if l.reason == LossReason::Death {
                        self.person.dead = true;
                    }
                }
                Payload::QualificationRetracted(r) => {
                    let ok = match (&r.retracted_event_id, &r.retracted_qualification_id) {
                        (Some(id), None) => {
                            self.person.events.contains_key(id) && id != &e.envelope.event_id
                        }
                        (None, Some(q)) => self.person.quals.contains_key(q),
                        _ => false,
                    };
                    self.check(ok, e, "retraction of nothing known");
                }
                Payload::CertificateIssued(c) => {
                    let ok = self.person.quals.contains_key(&c.qualification_id);
                    self.check(ok, e, "certificate of no qualification");
                    let fresh = self.certificate_ids.insert(c.certificate_id.clone());
                    self.check(fresh, e, "certificate id reused");
                    self.person.certificates.insert(c.certificate_id.clone());
                }
                Payload::CertificateEnded(c) => {
                    let ok = self.person.certificates.contains(&c.certificate_id);
                    self.check(ok, e, "end of no certificate");
                }
                Payload::CertificateChanged(c) => {
                    let ok = self.person.certificates.contains(&c.certificate_id);
                    self.check(ok, e, "change of no certificate");
                }
                Payload::CardLinkRequested(r) => {
                    self.person
                        .requests
                        .insert(r.request_id.clone(), r.card_serial.clone());
                }
                Payload::CardLinked(l) => {
                    let insured = l.insured_number().unwrap();
                    let carried = self
                        .person
                        .quals
                        .values()
                        .any(|q| !q.lost && q.insured == insured);
                    self.check(carried, e, "link to a number no open qualification carries");
                    let requested = l
                        .request_id
                        .as_ref()
                        .is_none_or(|r| self.person.requests.get(r) == Some(&l.card_serial));
                    self.check(requested, e, "link without its request");
                    let link = e.envelope.link.clone();
                    let free = self
                        .serials
                        .insert(l.card_serial.clone(), link.clone())
                        .is_none_or(|l2| l2 == link);
                    self.check(
                        free && !self.person.linked.contains(&l.card_serial),
                        e,
                        "serial linked twice",
                    );
                    self.person.linked.insert(l.card_serial.clone());
                }
                Payload::CardLinkRejected(r) => {
                    let ok = self.person.requests.get(&r.request_id) == Some(&r.card_serial);
                    self.check(ok, e, "rejection without its request");
                }
                Payload::CardUnlinked(u) => {
                    let ok = self.person.linked.remove(&u.card_serial);
                    self.check(ok, e, "unlink of a serial not linked");
                }
                Payload::SubsidyGranted(s) => {
                    let ok = s
                        .card_serial
                        .as_ref()
                        .is_some_and(|c| self.person.linked.contains(c));
                    self.check(ok, e, "subsidy without a linked card");
                    let fresh = self.subsidy_ids.insert(s.subsidy_id.clone());
                    self.check(fresh, e, "subsidy id reused");
                    self.person.subsidies.insert(s.subsidy_id.clone(), false);
                }
                Payload::SubsidyChanged(s) => {
                    let ok = self.person.subsidies.get(&s.subsidy_id) == Some(&false);
                    self.check(ok, e, "change of no open subsidy");
                }
                Payload::SubsidyEnded(s) => {
                    let ok =
                        self.person.subsidies.insert(s.subsidy_id.clone(), true) == Some(false);
                    self.check(ok, e, "end of no open subsidy");
                }
                Payload::ClaimSubmitted(_) | Payload::ClaimWithdrawn(_) => {
                    self.check(false, e, "the generator never writes claims");
                }
                Payload::NoticePublished(_)
                | Payload::NoticeSendStarted(_)
                | Payload::NoticeDelivered(_)
                | Payload::NoticeDeliveryFailed(_)
                | Payload::ContactErased(_) => {
                    self.check(false, e, "the generator never writes notice progress");
                }
            }
        }

        fn check(&mut self, ok: bool, e: &Event, rule: &str) {
            if !ok {
                self.violations
                    .push(format!("{rule}: {} {}", e.event_type(), json::to_value(e)));
            }
        }
    }
}
