//! qledger-bench: how fast the views project the log and answer eligibility
//! lookups, each beside a baseline of raw RocksDB measured in the same run.
//!
//! The sample population ([`ledger::sample::population`]) is streamed twice,
//! the same bytes both times (a digest checks it), and never held in memory:
//! each event is Avro-encoded, numbered as the log would number it (partition
//! from the link number, dense offsets, increasing record times) and put in
//! its partition's batch of `--batch` records, written as soon as it fills.
//!
//! 1. **raw load**: each batch as one `WriteBatch` of the Avro bytes keyed by
//!    partition ++ offset, into a plain RocksDB opened with the options
//!    `Views::open` uses (lz4, Bloom filters, a 64 MiB block cache holding
//!    index and filter blocks, `increase_parallelism(2)`, writes not synced).
//! 2. **projection**: each batch through `Views::apply` (decode, check,
//!    version rows, indexes and the offset, in one atomic `WriteBatch`).
//! 3. **lookups**: `Views::eligibility` on keys drawn from a fixed-size
//!    reservoir sample of the population (80 % by individual insured number
//!    on a day its qualification was open, 20 % by card serial on a day the
//!    card was linked; one in ten as of a record time in the person's
//!    history), in chunks interleaved with as many `DB::get`s of random
//!    records of the raw database.
//!
//! Only the write, apply, eligibility and get calls are timed, on one thread
//! with one clock; generation and encoding are timed apart. Peak resident
//! memory (`VmHWM` of `/proc/self/status`) is read after each phase and reset
//! between phases where the kernel allows it.
//!
//! ```text
//! cargo run --release -p qledger-bench -- --persons 100000
//! cargo run --release -p qledger-bench -- --persons 1000000 --json
//! cargo run --release -p qledger-bench -- import --rows 200000
//! cargo run --release -p qledger-bench -- claims --persons 1000000
//! cargo run --release -p qledger-bench -- lookups PAIRS.jsonl --data DIR
//! ```
//!
//! The `import` mode writes a CSV batch file of `--rows` sample qualification
//! events (no event ids, as the NHI aggregation system sends them) and times
//! `qledger import`'s library (read, validate, encode, append) into a fresh
//! embedded log against raw `EventLog::append`s of the same pre-encoded
//! records, in the same chunk size, to another fresh log.
//!
//! Reading the table: `rate/s` is the views' rate, `baseline/s` raw RocksDB's
//! in the same run, `ratio` the first over the second and `target` the design
//! target for that ratio (projection ≥ 50 %, lookups ≥ 30 %). Peak RSS is the
//! whole process, both databases included (two sets of memtables, two block
//! caches); it must not grow with `--persons`: run two sizes and compare.

mod claims;
#[cfg(feature = "kafka")]
mod kafka_import;
mod probe;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use ledger::domain::{LinkNumber, RecordTime};
use ledger::event::{avro, Event};
use ledger::log::embedded::EmbeddedLog;
use ledger::log::{partitioner, LogRecord, Offset, Partition};
use ledger::sample::{population, SampleConfig};
use projectors::{ApplyStats, Lookup, Views};
// The options `Views::open` uses, so the baseline runs the same engine.
use projectors::store::view_options;
use rocksdb::{WaitForCompactOptions, WriteBatch, WriteOptions, DB};
use serde_json::json;

use crate::probe::{Kind, Probes, Sampler, SplitMix64};

/// Projection and eligibility lookups against raw RocksDB baselines.
#[derive(Debug, Parser)]
#[command(name = "qledger-bench", version)]
struct Args {
    /// Persons to generate.
    #[arg(long, default_value_t = 1_000_000)]
    persons: u64,
    /// Seed of the sample population and of the lookup draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Records per `Views::apply` call and per raw `WriteBatch`.
    #[arg(long, default_value_t = 1_000)]
    batch: usize,
    /// Eligibility lookups, and as many raw gets.
    #[arg(long, default_value_t = 200_000)]
    lookups: u64,
    /// Where to put the two databases (default: a temporary directory,
    /// removed at the end). `views/` and `raw/` must not exist in it.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Log partitions.
    #[arg(long, default_value_t = 8)]
    partitions: u32,
    /// Keys sampled for lookups, per kind (insured numbers, card serials).
    #[arg(long, default_value_t = 100_000)]
    reservoir: usize,
    /// Also print a machine-readable summary (one JSON line).
    #[arg(long)]
    json: bool,
    /// Another benchmark instead of projection and lookups (`--seed`,
    /// `--partitions`, `--dir` and `--json` go before it).
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// `qledger import` of a generated CSV batch file into the embedded log,
    /// against raw appends of the same pre-encoded records.
    Import(ImportBench),
    /// `qledger import` into a Kafka events topic (librdkafka's mock
    /// cluster), against a raw idempotent producer sending the same records.
    #[cfg(feature = "kafka")]
    KafkaImport(ImportBench),
    /// Claims: the pure decision function, re-evaluation after a burst of
    /// retroactive losses and pre-submission checks, against raw multi_gets.
    Claims(claims::ClaimsBench),
    /// The library's own lookup rate on a batch check's pairs (JSON lines),
    /// straight on the views of a data directory opened read-only, one
    /// thread: the baseline of `benches/interfaces/run.sh`.
    Lookups(PairsBench),
}

#[derive(Debug, clap::Args)]
struct PairsBench {
    /// The pairs, JSON lines as `qledger check-batch` reads them.
    #[arg(value_name = "PAIRS")]
    pairs: PathBuf,
    /// The data directory whose views (DIR/views) are opened read-only.
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// Passes over the pairs, each timed and reported; the rate is over all.
    #[arg(long, default_value_t = 1)]
    passes: u32,
}

#[derive(Debug, clap::Args)]
struct ImportBench {
    /// CSV rows (events) to generate.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Rows per import chunk, and records per raw append.
    #[arg(long, default_value_t = qledger::import::DEFAULT_BATCH)]
    chunk: usize,
}

/// Lookups (and gets) per interleaved chunk.
const CHUNK: u64 = 1_000;
/// One batch in this many is also decoded outside `apply`, to price Avro decoding.
const DECODE_SAMPLE_EVERY: u64 = 8;
/// Design targets: views' rate over the raw rate.
const PROJECTION_TARGET: f64 = 0.50;
const LOOKUP_TARGET: f64 = 0.30;

fn main() -> Result<()> {
    let args = Args::parse();
    match &args.mode {
        Some(Mode::Import(bench)) => return import_bench(&args, bench),
        Some(Mode::Lookups(bench)) => return pair_lookups(bench),
        Some(Mode::Claims(bench)) => {
            let temp = tempfile::tempdir().context("creating a temporary directory")?;
            let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
            return claims::run(args.seed, args.partitions, args.batch, bench, &dir);
        }
        #[cfg(feature = "kafka")]
        Some(Mode::KafkaImport(bench)) => {
            let temp = tempfile::tempdir().context("creating a temporary directory")?;
            let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
            return kafka_import::run(args.seed, args.partitions, bench.rows, bench.chunk, &dir);
        }
        None => {}
    }
    if args.batch == 0 || args.partitions == 0 || args.persons == 0 {
        bail!("--persons, --batch and --partitions must be positive");
    }
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let (raw_dir, views_dir) = (dir.join("raw"), dir.join("views"));
    for d in [&raw_dir, &views_dir] {
        if d.exists() {
            bail!("{} exists: remove it or choose another --dir", d.display());
        }
    }
    let config = SampleConfig {
        seed: args.seed,
        persons: args.persons,
        ..SampleConfig::default()
    };
    eprintln!(
        "qledger-bench: {} persons, seed {}, {} partitions, batch {}, in {}",
        args.persons,
        args.seed,
        args.partitions,
        args.batch,
        dir.display()
    );
    let mut memory = Memory::start();

    let raw = open_raw(&raw_dir)?;
    let raw_load = load_raw(&raw, &config, &args)?;
    // Let the raw database settle so its compactions do not run under the projection.
    raw.flush().context("flushing the raw database")?;
    raw.wait_for_compact(&WaitForCompactOptions::default())
        .context("waiting for raw compactions")?;
    let raw_peak = memory.phase();

    let views = Views::open(&views_dir).context("opening the views")?;
    let projection = load_views(&views, &config, &args)?;
    if projection.stream.digest != raw_load.stream.digest
        || projection.stream.events != raw_load.stream.events
    {
        bail!("the two passes over the sample generated different records");
    }
    let projection_peak = memory.phase();

    let lookups = lookups(
        &views,
        &raw,
        &projection.probes,
        &raw_load.stream.ends,
        &args,
    )?;
    let lookup_peak = memory.phase();
    let raw_block_cache = raw_property(&raw, "rocksdb.block-cache-usage");
    let census = census(&views)?;
    views.flush().context("flushing the views")?;
    drop(views);
    drop(raw);
    let views_table_readers = views_table_readers(&views_dir);

    let report = Report {
        args: &args,
        raw: raw_load,
        projection,
        lookups,
        memory: MemoryReport {
            raw_load: raw_peak,
            projection: projection_peak,
            lookups: lookup_peak,
            peak: memory.peak,
            reset_works: memory.reset_works,
        },
        census,
        raw_block_cache,
        views_table_readers,
        raw_bytes: dir_size(&raw_dir),
        views_bytes: dir_size(&views_dir),
    };
    print!("{}", report.table());
    if args.json {
        println!("{}", report.json());
    }
    Ok(())
}

/// Opens a plain RocksDB with the options of `Views::open`.
fn open_raw(dir: &Path) -> Result<DB> {
    let mut opts = view_options();
    opts.create_if_missing(true);
    DB::open(&opts, dir).with_context(|| format!("opening raw RocksDB at {}", dir.display()))
}

fn raw_property(db: &DB, name: &str) -> Option<u64> {
    db.property_int_value(name).ok().flatten()
}

/// Memory the views' open table readers hold outside the block cache, read
/// by opening the closed views read-only with their options: every table
/// file is opened at open.
fn views_table_readers(dir: &Path) -> Option<u64> {
    let db = DB::open_for_read_only(&view_options(), dir, false).ok()?;
    raw_property(&db, "rocksdb.estimate-table-readers-mem")
}

fn raw_key(partition: Partition, offset: Offset) -> [u8; 12] {
    let mut k = [0; 12];
    k[..4].copy_from_slice(&partition.to_be_bytes());
    k[4..].copy_from_slice(&offset.to_be_bytes());
    k
}

// Streaming the population.

/// What generating and encoding the population cost, and what it gave.
#[derive(Debug, Default)]
struct Stream {
    persons: u64,
    events: u64,
    value_bytes: u64,
    /// Time in `population(..).next()`.
    generate: Duration,
    /// Time in `avro::encode`.
    encode: Duration,
    /// Of every record's partition, offset and value, to check both passes agree.
    digest: u64,
    /// Per partition, the offset after the last record.
    ends: Vec<Offset>,
}

/// Record times start the day after the sample's history, a millisecond apart.
fn first_record_time(config: &SampleConfig) -> RecordTime {
    let day = i64::from(config.today.succ().days_since_epoch());
    RecordTime::from_micros(day * 86_400_000_000)
}

/// Streams the population as log records, numbered as the log would number
/// them, handing each (with its event) to `sink`.
fn stream_records(
    config: &SampleConfig,
    partitions: u32,
    phase: &str,
    mut sink: impl FnMut(LogRecord, &Event) -> Result<()>,
) -> Result<Stream> {
    let mut s = Stream {
        digest: 0xcbf2_9ce4_8422_2325,
        ends: vec![0; partitions as usize],
        ..Stream::default()
    };
    let mut events = population(config);
    let mut person: Option<LinkNumber> = None;
    let mut recorded = first_record_time(config).micros();
    let progress_every = (config.persons / 10).max(1);
    loop {
        let t0 = Instant::now();
        let Some(event) = events.next() else { break };
        let t1 = Instant::now();
        let value = avro::encode(&event)
            .with_context(|| format!("encoding event {}", event.envelope.event_id))?;
        s.encode += t1.elapsed();
        s.generate += t1 - t0;
        if person.as_ref() != Some(&event.envelope.link) {
            s.persons += 1;
            person = Some(event.envelope.link.clone());
            if s.persons % progress_every == 0 {
                eprintln!("  {phase}: {} persons, {} events", s.persons, s.events);
            }
        }
        let key = event.envelope.link.as_str().as_bytes().to_vec();
        let partition = partitioner::partition_for(&key, partitions);
        let offset = s.ends[partition as usize];
        s.ends[partition as usize] += 1;
        recorded += 1_000;
        s.digest = digest(s.digest, &raw_key(partition, offset));
        s.digest = digest(s.digest, &value);
        s.events += 1;
        s.value_bytes += value.len() as u64;
        let record = LogRecord {
            partition,
            offset,
            record_time: RecordTime::from_micros(recorded),
            key,
            event_id: event.envelope.event_id,
            headers: Vec::new(),
            value,
            defect: None,
        };
        sink(record, &event)?;
    }
    Ok(s)
}

/// FNV-1a over 8-byte words, then the length.
fn digest(mut h: u64, bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    for chunk in bytes.chunks(8) {
        let mut word = [0; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(PRIME);
    }
    (h ^ bytes.len() as u64).wrapping_mul(PRIME)
}

/// Records waiting, per partition, handed out a full batch at a time.
#[derive(Debug)]
struct Batches {
    pending: Vec<Vec<LogRecord>>,
    size: usize,
}

impl Batches {
    fn new(partitions: u32, size: usize) -> Batches {
        Batches {
            pending: (0..partitions).map(|_| Vec::with_capacity(size)).collect(),
            size,
        }
    }

    /// Adds a record; returns its partition's batch once that is full.
    fn push(&mut self, record: LogRecord) -> Option<&mut Vec<LogRecord>> {
        let batch = &mut self.pending[record.partition as usize];
        batch.push(record);
        (batch.len() >= self.size).then_some(batch)
    }

    /// The partly filled batches left at the end.
    fn rest(&mut self) -> impl Iterator<Item = &mut Vec<LogRecord>> {
        self.pending.iter_mut().filter(|b| !b.is_empty())
    }
}

// Phase 1: the raw baseline.

#[derive(Debug)]
struct RawLoad {
    stream: Stream,
    /// Time in building and writing the `WriteBatch`es.
    write: Duration,
    batches: u64,
    /// RocksDB's estimate of memory held by open table readers (index and
    /// filter blocks), after the load.
    table_readers_mem: Option<u64>,
    /// Memtables at the end of the load, before the flush.
    memtables: Option<u64>,
}

fn load_raw(db: &DB, config: &SampleConfig, args: &Args) -> Result<RawLoad> {
    let mut opts = WriteOptions::default();
    opts.set_sync(false);
    let mut batches = Batches::new(args.partitions, args.batch);
    let (mut write, mut count) = (Duration::ZERO, 0u64);
    let mut write_batch = |records: &mut Vec<LogRecord>| -> Result<()> {
        let started = Instant::now();
        let mut batch = WriteBatch::default();
        for r in records.iter() {
            batch.put(raw_key(r.partition, r.offset), &r.value);
        }
        db.write_opt(batch, &opts).context("raw write")?;
        write += started.elapsed();
        count += 1;
        records.clear();
        Ok(())
    };
    let stream = stream_records(
        config,
        args.partitions,
        "raw load",
        |record, _| match batches.push(record) {
            Some(full) => write_batch(full),
            None => Ok(()),
        },
    )?;
    for rest in batches.rest() {
        write_batch(rest)?;
    }
    Ok(RawLoad {
        stream,
        write,
        batches: count,
        table_readers_mem: raw_property(db, "rocksdb.estimate-table-readers-mem"),
        memtables: raw_property(db, "rocksdb.cur-size-all-mem-tables"),
    })
}

// Phase 2: the projection.

#[derive(Debug)]
struct Projection {
    stream: Stream,
    /// Time in `Views::apply`.
    apply: Duration,
    batches: u64,
    stats: ApplyStats,
    /// Avro decoding of a sample of the records, outside `apply`.
    decode: Duration,
    decoded: u64,
    probes: Probes,
}

fn load_views(views: &Views, config: &SampleConfig, args: &Args) -> Result<Projection> {
    let mut batches = Batches::new(args.partitions, args.batch);
    let mut sampler = Sampler::new(args.reservoir, args.seed, config.today);
    let (mut apply, mut count, mut stats) = (Duration::ZERO, 0u64, ApplyStats::default());
    let (mut decode, mut decoded) = (Duration::ZERO, 0u64);
    let mut apply_batch = |records: &mut Vec<LogRecord>| -> Result<()> {
        if count % DECODE_SAMPLE_EVERY == 0 {
            let started = Instant::now();
            for r in records.iter() {
                std::hint::black_box(avro::decode(&r.value).ok());
            }
            decode += started.elapsed();
            decoded += records.len() as u64;
        }
        let partition = records[0].partition;
        let started = Instant::now();
        let s = views
            .apply(partition, records)
            .with_context(|| format!("applying partition {partition}"))?;
        apply += started.elapsed();
        stats += s;
        count += 1;
        records.clear();
        Ok(())
    };
    let stream = stream_records(config, args.partitions, "projection", |record, event| {
        sampler.observe(event, record.record_time);
        match batches.push(record) {
            Some(full) => apply_batch(full),
            None => Ok(()),
        }
    })?;
    for rest in batches.rest() {
        apply_batch(rest)?;
    }
    Ok(Projection {
        stream,
        apply,
        batches: count,
        stats,
        decode,
        decoded,
        probes: sampler.finish(),
    })
}

// Phase 3: lookups.

/// How lookups of one kind went.
#[derive(Debug, Default, Clone, Copy)]
struct Answers {
    count: u64,
    time: Duration,
    /// Found, with at least one qualification valid on the day.
    qualified: u64,
    /// Found, with none valid on the day.
    unqualified: u64,
    not_found: u64,
    not_linked: u64,
}

impl Answers {
    fn add(&mut self, answer: &Lookup, time: Duration) {
        self.count += 1;
        self.time += time;
        match answer {
            Lookup::Found(e) if e.qualifications.is_empty() => self.unqualified += 1,
            Lookup::Found(_) => self.qualified += 1,
            Lookup::NotFound => self.not_found += 1,
            Lookup::NotLinked { .. } => self.not_linked += 1,
        }
    }

    fn rate(&self) -> f64 {
        rate(self.count, self.time)
    }
}

#[derive(Debug, Default)]
struct Lookups {
    insured: Answers,
    card: Answers,
    /// Of either kind, asked as of a past record time.
    as_of: Answers,
    /// The time of every eligibility call.
    time: Duration,
    count: u64,
    gets: u64,
    get_time: Duration,
    gets_found: u64,
}

fn lookups(
    views: &Views,
    raw: &DB,
    probes: &Probes,
    ends: &[Offset],
    args: &Args,
) -> Result<Lookups> {
    let mut rng = SplitMix64::new(args.seed ^ 0x5EED_100C);
    let mut out = Lookups::default();
    let filled: Vec<Partition> = (0..ends.len() as Partition)
        .filter(|&p| ends[p as usize] > 0)
        .collect();
    let mut chunk_index = 0u64;
    while out.count < args.lookups {
        let n = CHUNK.min(args.lookups - out.count);
        let mut queries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            match probes.draw(&mut rng) {
                Some(q) => queries.push(q),
                None => bail!("the sample has no insured numbers or card serials to look up"),
            }
        }
        let keys: Vec<[u8; 12]> = (0..n)
            .map(|_| {
                let p = filled[rng.below(filled.len() as u64) as usize];
                raw_key(p, rng.below(ends[p as usize]))
            })
            .collect();
        let run_views = |out: &mut Lookups| -> Result<()> {
            for (kind, as_of, q) in &queries {
                let started = Instant::now();
                let answer = views
                    .eligibility(&q.key, q.on, q.as_of)
                    .context("eligibility lookup")?;
                let took = started.elapsed();
                out.time += took;
                out.count += 1;
                match kind {
                    Kind::Insured => out.insured.add(&answer, took),
                    Kind::Card => out.card.add(&answer, took),
                }
                if *as_of {
                    out.as_of.add(&answer, took);
                }
            }
            Ok(())
        };
        let run_raw = |out: &mut Lookups| -> Result<()> {
            let started = Instant::now();
            let mut found = 0;
            for k in &keys {
                if raw.get(k).context("raw get")?.is_some() {
                    found += 1;
                }
            }
            out.get_time += started.elapsed();
            out.gets += keys.len() as u64;
            out.gets_found += found;
            Ok(())
        };
        // Alternate which goes first, so neither always runs on a warmer cache.
        if chunk_index % 2 == 0 {
            run_views(&mut out)?;
            run_raw(&mut out)?;
        } else {
            run_raw(&mut out)?;
            run_views(&mut out)?;
        }
        chunk_index += 1;
    }
    Ok(out)
}

// What the views hold.

/// Live keys and their uncompressed bytes, per view.
#[derive(Debug, Default)]
struct Census {
    /// (view name, keys, key + value bytes), in view-id order.
    views: Vec<(&'static str, u64, u64)>,
    keys: u64,
    bytes: u64,
}

fn census(views: &Views) -> Result<Census> {
    use projectors::keys::view;
    let names: [(u8, &str); 20] = [
        (view::META, "meta"),
        (view::OFFSETS, "offsets"),
        (view::APPLIED, "applied"),
        (view::LAST_RECORD_TIME, "last_record_time"),
        (view::VERSION, "version"),
        (view::ENTITY, "entity"),
        (view::EVENT, "event"),
        (view::LINK_REQUEST, "link_request"),
        (view::INSURED_INDEX, "insured_index"),
        (view::SERIAL_INDEX, "serial_index"),
        (view::DEAD_LETTER, "dead_letter"),
        (view::NOTICE_INDEX, "request_index"),
        (view::NOTICE_OUTBOX, "notice_outbox"),
        (view::CLAIM, "claim"),
        (view::CLAIM_INDEX, "claim_index"),
        (view::CLAIM_BY_ID, "claim_by_id"),
        (view::DECISION_FEED, "decision_feed"),
        (view::PERSON_ENTITIES, "person_entities"),
        (view::OVERLAPS, "overlaps"),
        (view::OVERLAP_FEED, "overlap_feed"),
    ];
    let mut counts = [(0u64, 0u64); 256];
    views
        .for_each_pair(|k, v| {
            let c = &mut counts[k.first().copied().unwrap_or(0) as usize];
            c.0 += 1;
            c.1 += (k.len() + v.len()) as u64;
        })
        .context("reading the views")?;
    let mut out = Census::default();
    for (id, (keys, bytes)) in counts.iter().enumerate() {
        if *keys == 0 {
            continue;
        }
        let name = names
            .iter()
            .find(|(v, _)| *v as usize == id)
            .map_or("other", |n| n.1);
        out.views.push((name, *keys, *bytes));
        out.keys += keys;
        out.bytes += bytes;
    }
    Ok(out)
}

// Memory.

/// Peak resident memory, per phase where the kernel lets us reset the peak.
#[derive(Debug)]
struct Memory {
    peak: Option<u64>,
    reset_works: bool,
}

impl Memory {
    fn start() -> Memory {
        Memory {
            peak: None,
            reset_works: reset_peak(),
        }
    }

    /// The peak since the last phase (since the start if resets fail), then resets it.
    fn phase(&mut self) -> Option<u64> {
        let hwm = status_kib("VmHWM:").map(|k| k * 1024);
        self.peak = self.peak.max(hwm);
        if self.reset_works {
            reset_peak();
        }
        hwm
    }
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

// The report.

#[derive(Debug)]
struct MemoryReport {
    raw_load: Option<u64>,
    projection: Option<u64>,
    lookups: Option<u64>,
    peak: Option<u64>,
    reset_works: bool,
}

#[derive(Debug)]
struct Report<'a> {
    args: &'a Args,
    raw: RawLoad,
    projection: Projection,
    lookups: Lookups,
    memory: MemoryReport,
    census: Census,
    raw_block_cache: Option<u64>,
    views_table_readers: Option<u64>,
    raw_bytes: u64,
    views_bytes: u64,
}

fn rate(count: u64, time: Duration) -> f64 {
    let secs = time.as_secs_f64();
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| format!("{:.0} MiB", b as f64 / 1048576.0))
}

/// 1234567 → "1 234 567".
fn grouped(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Report<'_> {
    fn projection_ratio(&self) -> f64 {
        self.projection_rate() / self.raw_write_rate()
    }
    fn projection_rate(&self) -> f64 {
        rate(self.projection.stream.events, self.projection.apply)
    }
    fn raw_write_rate(&self) -> f64 {
        rate(self.raw.stream.events, self.raw.write)
    }
    fn lookup_rate(&self) -> f64 {
        rate(self.lookups.count, self.lookups.time)
    }
    fn get_rate(&self) -> f64 {
        rate(self.lookups.gets, self.lookups.get_time)
    }
    fn lookup_ratio(&self) -> f64 {
        self.lookup_rate() / self.get_rate()
    }
    /// Avro decoding's estimated share of `apply`, from the sampled batches.
    fn decode_micros(&self) -> f64 {
        self.projection.decode.as_secs_f64() * 1e6 / self.projection.decoded.max(1) as f64
    }
    fn apply_micros(&self) -> f64 {
        self.projection.apply.as_secs_f64() * 1e6 / self.projection.stream.events.max(1) as f64
    }

    fn table(&self) -> String {
        let (s, p, l) = (&self.projection.stream, &self.projection, &self.lookups);
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\nqledger-bench: {} persons ({} with events, seed {}), {} events ({:.2} per person, \
             Avro {:.0} B mean), {} partitions, batch {}, {} lookups",
            self.args.persons,
            s.persons,
            self.args.seed,
            s.events,
            s.events as f64 / s.persons.max(1) as f64,
            s.value_bytes as f64 / s.events.max(1) as f64,
            self.args.partitions,
            self.args.batch,
            l.count,
        );
        let _ = writeln!(
            t,
            "\n{:<30} {:>10} {:>9} {:>12} {:>12} {:>7} {:>8}",
            "phase", "count", "seconds", "rate/s", "baseline/s", "ratio", "target"
        );
        let row = |t: &mut String,
                   name: &str,
                   n: u64,
                   d: Duration,
                   base: Option<f64>,
                   target: Option<f64>| {
            let r = rate(n, d);
            let (base_s, ratio_s, target_s) = match base {
                Some(b) => {
                    let ratio = r / b;
                    let verdict = target.map_or(String::new(), |tg| {
                        format!(
                            "≥{:.0}% {}",
                            tg * 100.0,
                            if ratio >= tg { "ok" } else { "MISS" }
                        )
                    });
                    (grouped(b), format!("{:.1}%", ratio * 100.0), verdict)
                }
                None => ("-".into(), "-".into(), "-".into()),
            };
            let _ = writeln!(
                t,
                "{:<30} {:>10} {:>9.2} {:>12} {:>12} {:>7} {:>8}",
                name,
                n,
                d.as_secs_f64(),
                grouped(r),
                base_s,
                ratio_s,
                target_s
            );
        };
        row(
            &mut t,
            "generate (sample::population)",
            s.events,
            s.generate,
            None,
            None,
        );
        row(
            &mut t,
            "encode (avro::encode)",
            s.events,
            s.encode,
            None,
            None,
        );
        row(
            &mut t,
            "raw load (WriteBatch)",
            self.raw.stream.events,
            self.raw.write,
            None,
            None,
        );
        row(
            &mut t,
            "project (Views::apply)",
            s.events,
            p.apply,
            Some(self.raw_write_rate()),
            Some(PROJECTION_TARGET),
        );
        row(&mut t, "raw get (DB::get)", l.gets, l.get_time, None, None);
        row(
            &mut t,
            "lookup (Views::eligibility)",
            l.count,
            l.time,
            Some(self.get_rate()),
            Some(LOOKUP_TARGET),
        );
        for (name, a) in [
            ("  by insured number", &l.insured),
            ("  by card serial", &l.card),
            ("  as of a past record time", &l.as_of),
        ] {
            row(&mut t, name, a.count, a.time, Some(self.get_rate()), None);
        }
        let _ = writeln!(
            t,
            "\nprojection: {} applied, {} duplicates, {} dead-lettered, {} skipped in {} applies; \
             {:.1} µs/event in apply, of which Avro decode ≈ {:.1} µs ({:.0}%, sampled 1 batch in {})",
            p.stats.applied,
            p.stats.duplicates,
            p.stats.dead_lettered,
            p.stats.skipped,
            p.batches,
            self.apply_micros(),
            self.decode_micros(),
            100.0 * self.decode_micros() / self.apply_micros().max(f64::MIN_POSITIVE),
            DECODE_SAMPLE_EVERY,
        );
        let _ = writeln!(
            t,
            "raw baseline: {:.2} µs/event in {} WriteBatches; gets found {} of {}",
            self.raw.write.as_secs_f64() * 1e6 / self.raw.stream.events.max(1) as f64,
            self.raw.batches,
            l.gets_found,
            l.gets,
        );
        for (name, a) in [
            ("insured", &l.insured),
            ("card", &l.card),
            ("as_of", &l.as_of),
        ] {
            let _ = writeln!(
                t,
                "lookups {name:<8} {:>7}: {} with a qualification, {} without, {} not found, {} not linked",
                a.count, a.qualified, a.unqualified, a.not_found, a.not_linked
            );
        }
        let _ = writeln!(
            t,
            "sampled keys: {} of {} insured numbers, {} of {} card serials",
            p.probes.insured.len(),
            p.probes.insured_seen,
            p.probes.cards.len(),
            p.probes.cards_seen
        );
        let m = &self.memory;
        let _ =
            writeln!(
            t,
            "\npeak RSS (VmHWM): {} overall; per phase{}: raw load {}, projection {}, lookups {}",
            mib(m.peak),
            if m.reset_works { "" } else { " (cumulative: reset refused)" },
            mib(m.raw_load),
            mib(m.projection),
            mib(m.lookups),
        );
        let _ = writeln!(
            t,
            "raw RocksDB (same options as the views): memtables {} at the end of the load, \
             table readers {}, block cache {} after the lookups",
            mib(self.raw.memtables),
            mib(self.raw.table_readers_mem),
            mib(self.raw_block_cache),
        );
        let _ = writeln!(
            t,
            "views table readers (memory outside the block cache): {}",
            mib(self.views_table_readers)
        );
        let _ = writeln!(
            t,
            "on disk: views {} ({:.0} B/event), raw {} ({:.0} B/event)",
            mib(Some(self.views_bytes)),
            self.views_bytes as f64 / s.events.max(1) as f64,
            mib(Some(self.raw_bytes)),
            self.raw_bytes as f64 / s.events.max(1) as f64,
        );
        let c = &self.census;
        let per_event = |n: u64| n as f64 / s.events.max(1) as f64;
        let _ = writeln!(
            t,
            "views hold {} keys ({:.2} per event), {} uncompressed ({:.0} B/event); \
             the raw baseline 1 key and {:.0} B per event:",
            c.keys,
            per_event(c.keys),
            mib(Some(c.bytes)),
            per_event(c.bytes),
            per_event(s.value_bytes) + 12.0,
        );
        for (name, keys, bytes) in &c.views {
            let _ = writeln!(
                t,
                "  {name:<18} {keys:>10} keys {:>6.2}/event {:>8.0} B/key",
                per_event(*keys),
                *bytes as f64 / (*keys).max(1) as f64
            );
        }
        t
    }

    fn json(&self) -> serde_json::Value {
        let (s, p, l) = (&self.projection.stream, &self.projection, &self.lookups);
        let answers = |a: &Answers| {
            json!({
                "count": a.count, "seconds": a.time.as_secs_f64(), "per_second": a.rate(),
                "qualified": a.qualified, "unqualified": a.unqualified,
                "not_found": a.not_found, "not_linked": a.not_linked,
            })
        };
        json!({
            "persons": self.args.persons,
            "persons_with_events": s.persons,
            "events": s.events,
            "seed": self.args.seed,
            "partitions": self.args.partitions,
            "batch": self.args.batch,
            "avro_bytes_mean": s.value_bytes as f64 / s.events.max(1) as f64,
            "generate_seconds": s.generate.as_secs_f64(),
            "encode_seconds": s.encode.as_secs_f64(),
            "projection": {
                "seconds": p.apply.as_secs_f64(),
                "events_per_second": self.projection_rate(),
                "raw_seconds": self.raw.write.as_secs_f64(),
                "raw_events_per_second": self.raw_write_rate(),
                "ratio": self.projection_ratio(),
                "target": PROJECTION_TARGET,
                "applied": p.stats.applied,
                "duplicates": p.stats.duplicates,
                "dead_lettered": p.stats.dead_lettered,
                "apply_micros_per_event": self.apply_micros(),
                "avro_decode_micros_per_event": self.decode_micros(),
            },
            "lookups": {
                "count": l.count,
                "seconds": l.time.as_secs_f64(),
                "per_second": self.lookup_rate(),
                "raw_gets_per_second": self.get_rate(),
                "ratio": self.lookup_ratio(),
                "target": LOOKUP_TARGET,
                "insured": answers(&l.insured),
                "card": answers(&l.card),
                "as_of": answers(&l.as_of),
            },
            "memory": {
                "peak_rss_bytes": self.memory.peak,
                "raw_load_peak_bytes": self.memory.raw_load,
                "projection_peak_bytes": self.memory.projection,
                "lookups_peak_bytes": self.memory.lookups,
                "per_phase": self.memory.reset_works,
                "raw_table_readers_bytes": self.raw.table_readers_mem,
                "raw_memtables_bytes": self.raw.memtables,
                "raw_block_cache_bytes": self.raw_block_cache,
                "views_table_readers_bytes": self.views_table_readers,
            },
            "disk": { "views_bytes": self.views_bytes, "raw_bytes": self.raw_bytes },
            "views_census": {
                "keys": self.census.keys,
                "bytes": self.census.bytes,
                "by_view": self.census.views.iter()
                    .map(|(name, keys, bytes)| json!({ "view": name, "keys": keys, "bytes": bytes }))
                    .collect::<Vec<_>>(),
            },
        })
    }
}

// The import mode: `qledger import` of a CSV batch file against raw appends.

/// The design target of `qledger import`, in events per second.
const IMPORT_TARGET: f64 = 100_000.0;

/// Raw appends of the pre-encoded records, and what preparing them cost.
#[derive(Debug, Default)]
struct RawAppends {
    events: u64,
    appends: u64,
    /// Time in `EventLog::append` only.
    append: Duration,
    /// Reading, validating and encoding the rows (untimed for the baseline).
    prepare: Duration,
    /// Of every record's partition, offset and value, to check the import
    /// appended the same records.
    digest: u64,
}

/// Import bench: writes the CSV, appends its records raw, imports it.
fn import_bench(args: &Args, bench: &ImportBench) -> Result<()> {
    use qledger::import::{Format, ImportOptions, Importer};
    use std::sync::Arc;

    if bench.rows == 0 || bench.chunk == 0 || args.partitions == 0 {
        bail!("--rows, --chunk and --partitions must be positive");
    }
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_owned()
        }
    };
    let (csv, raw_dir, import_dir) = (
        dir.join("batch.csv"),
        dir.join("raw-log"),
        dir.join("import-log"),
    );
    for p in [&csv, &raw_dir, &import_dir] {
        if p.exists() {
            bail!("{} exists: remove it or choose another --dir", p.display());
        }
    }
    eprintln!(
        "qledger-bench import: {} rows, seed {}, {} partitions, chunk {}, in {}",
        bench.rows,
        args.seed,
        args.partitions,
        bench.chunk,
        dir.display()
    );
    let mut memory = Memory::start();

    let started = Instant::now();
    write_batch_csv(&csv, args.seed, bench.rows)?;
    let generate = started.elapsed();
    let csv_bytes = std::fs::metadata(&csv).map(|m| m.len()).unwrap_or(0);
    memory.phase();

    eprintln!("  raw appends");
    let raw = raw_appends(&csv, &raw_dir, args.partitions, bench.chunk)?;
    let raw_peak = memory.phase();

    eprintln!("  import");
    let log = Arc::new(
        EmbeddedLog::open(&import_dir, args.partitions).context("opening the import log")?,
    );
    let options = ImportOptions {
        batch: bench.chunk,
        ..ImportOptions::default()
    };
    let input = std::io::BufReader::new(
        std::fs::File::open(&csv).with_context(|| format!("opening {}", csv.display()))?,
    );
    let started = Instant::now();
    let summary = Importer::new(log.clone(), options)
        .import(input, Format::Csv, &mut ())
        .context("importing the CSV")?;
    let import = started.elapsed();
    let import_peak = memory.phase();
    if summary.accepted != raw.events || summary.rejected != 0 || summary.duplicates != 0 {
        bail!(
            "the import accepted {}, rejected {} and found {} duplicates; the raw pass appended {}",
            summary.accepted,
            summary.rejected,
            summary.duplicates,
            raw.events
        );
    }
    if log_digest(&*log)? != raw.digest {
        bail!("the import appended other records than the raw baseline");
    }
    drop(log);

    let per = |d: Duration| d.as_secs_f64() * 1e6 / raw.events.max(1) as f64;
    let (raw_rate, import_rate) = (rate(raw.events, raw.append), rate(raw.events, import));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nqledger-bench import: {} CSV rows ({}, {:.0} B/row), {} partitions, chunk {}, seed {}",
        summary.rows,
        mib(Some(csv_bytes)),
        csv_bytes as f64 / summary.rows.max(1) as f64,
        args.partitions,
        bench.chunk,
        args.seed,
    );
    let _ = writeln!(
        t,
        "\n{:<34} {:>9} {:>8} {:>11} {:>8} {:>12} {:>8}",
        "phase", "events", "seconds", "events/s", "µs/ev", "vs raw", "target"
    );
    let line = |t: &mut String, name: &str, d: Duration, vs: String, target: String| {
        let _ = writeln!(
            t,
            "{:<34} {:>9} {:>8.2} {:>11} {:>8.2} {:>12} {:>8}",
            name,
            raw.events,
            d.as_secs_f64(),
            grouped(rate(raw.events, d)),
            per(d),
            vs,
            target
        );
    };
    line(
        &mut t,
        "generate CSV (CsvWriter)",
        generate,
        "-".into(),
        "-".into(),
    );
    line(
        &mut t,
        "read+validate+encode (CsvEvents)",
        raw.prepare,
        "-".into(),
        "-".into(),
    );
    line(
        &mut t,
        "raw append (EmbeddedLog::append)",
        raw.append,
        "-".into(),
        "-".into(),
    );
    let verdict = if import_rate >= IMPORT_TARGET {
        "ok"
    } else {
        "MISS"
    };
    line(
        &mut t,
        "import (Importer, file to log)",
        import,
        format!(
            "{:.1}%",
            100.0 * import_rate / raw_rate.max(f64::MIN_POSITIVE)
        ),
        format!("≥100k {verdict}"),
    );
    let _ = writeln!(
        t,
        "\nraw baseline: {} appends of up to {} pre-encoded records (read and encoded untimed); \
         import: {} accepted, {} rejected; both logs hold the same records",
        raw.appends, bench.chunk, summary.accepted, summary.rejected
    );
    let _ = writeln!(
        t,
        "peak RSS (VmHWM){}: raw appends {}, import {}",
        if memory.reset_works {
            ""
        } else {
            " (cumulative: reset refused)"
        },
        mib(raw_peak),
        mib(import_peak)
    );
    print!("{t}");
    if args.json {
        println!(
            "{}",
            json!({
                "mode": "import",
                "rows": summary.rows,
                "chunk": bench.chunk,
                "partitions": args.partitions,
                "seed": args.seed,
                "csv_bytes": csv_bytes,
                "generate_seconds": generate.as_secs_f64(),
                "prepare_seconds": raw.prepare.as_secs_f64(),
                "raw": {
                    "seconds": raw.append.as_secs_f64(),
                    "events_per_second": raw_rate,
                    "appends": raw.appends,
                },
                "import": {
                    "seconds": import.as_secs_f64(),
                    "events_per_second": import_rate,
                    "ratio": import_rate / raw_rate,
                    "target_events_per_second": IMPORT_TARGET,
                },
                "memory": {
                    "raw_peak_bytes": raw_peak,
                    "import_peak_bytes": import_peak,
                    "per_phase": memory.reset_works,
                },
            })
        );
    }
    Ok(())
}

/// The NHI aggregation system's file as it would come: the sample
/// population's acquisitions, changes and losses, without event ids.
fn write_batch_csv(path: &Path, seed: u64, rows: u64) -> Result<()> {
    use qledger::import::CsvWriter;
    use std::io::Write as _;

    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = CsvWriter::new(std::io::BufWriter::new(file), false)?;
    let config = SampleConfig {
        seed,
        persons: rows.saturating_mul(2),
        ..SampleConfig::default()
    };
    let mut written = 0;
    for event in population(&config) {
        if written == rows {
            break;
        }
        if out.write(&event)? {
            written += 1;
        }
    }
    if written < rows {
        bail!("the sample gave only {written} rows");
    }
    out.into_inner()?.flush().context("writing the CSV")?;
    Ok(())
}

/// Reads the CSV with the importer's reader (untimed), then appends its
/// records a chunk at a time to a fresh embedded log (timed).
fn raw_appends(csv: &Path, dir: &Path, partitions: u32, chunk: usize) -> Result<RawAppends> {
    use ledger::log::{Appended, EventLog};
    use qledger::import::{CsvEvents, ImportOptions};

    let log = EmbeddedLog::open(dir, partitions).context("opening the raw log")?;
    let input = std::io::BufReader::new(
        std::fs::File::open(csv).with_context(|| format!("opening {}", csv.display()))?,
    );
    let mut rows = CsvEvents::new(input, ImportOptions::default().source)?;
    let mut out = RawAppends::default();
    loop {
        let started = Instant::now();
        let mut requests = Vec::with_capacity(chunk);
        for parsed in rows.by_ref().take(chunk) {
            let parsed = parsed?;
            let event = parsed
                .event
                .map_err(|e| anyhow::anyhow!("{}: {e}", parsed.at))?;
            requests.push(qledger::service::append_request(&event)?);
        }
        out.prepare += started.elapsed();
        if requests.is_empty() {
            break;
        }
        let n = requests.len();
        let started = Instant::now();
        let appended = log.append(requests).context("raw append")?;
        out.append += started.elapsed();
        out.appends += 1;
        let new = appended
            .iter()
            .filter(|a| matches!(a, Appended::New(_)))
            .count();
        if new != n {
            bail!("the raw log took {new} of {n} records as new");
        }
        out.events += n as u64;
    }
    out.digest = log_digest(&log)?;
    Ok(out)
}

/// A digest of every record of a log: partition, offset and value.
fn log_digest(log: &dyn ledger::log::EventLog) -> Result<u64> {
    let mut h = 0xcbf2_9ce4_8422_2325;
    for p in 0..log.partitions() {
        let mut from = 0;
        loop {
            let records = log.read(p, from, 10_000).context("reading a log")?;
            let Some(last) = records.last() else { break };
            from = last.offset + 1;
            for r in &records {
                h = digest(h, &raw_key(r.partition, r.offset));
                h = digest(h, &r.value);
            }
        }
    }
    Ok(h)
}

// The `lookups` mode: the library's rate on a batch check's pairs.

/// How one pass over the pairs was answered.
#[derive(Debug, Default, Clone, Copy)]
struct PairAnswers {
    qualified: u64,
    unqualified: u64,
    not_found: u64,
    not_linked: u64,
}

/// Reads and parses every pair first (with `qledger::batch::pair_of_json`,
/// as `check-batch` does, timed apart), then times `Views::eligibility`
/// (`eligibility_of_holder` for a pair with a birth date) over them, one
/// thread, one clock around each pass. Shaping the answers as the batch
/// does (`batch::answered`, to a JSON line) is timed apart in one more
/// pass, to tell lookups from the rest of the CLI's work.
///
/// Prints a table on standard error and one machine-readable line on
/// standard output: `LOOKUPS pairs=… passes=… secs=… rate=… parse_rate=…
/// shape_rate=… qualified=… unqualified=… not_found=… not_linked=…
/// bad_lines=…` (rates per second, counts of the last pass).
fn pair_lookups(bench: &PairsBench) -> Result<()> {
    use std::io::BufRead as _;
    if bench.passes == 0 {
        bail!("--passes must be positive");
    }
    let file = std::fs::File::open(&bench.pairs)
        .with_context(|| format!("cannot open {}", bench.pairs.display()))?;
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", bench.pairs.display()))?;
    let started = Instant::now();
    let mut pairs = Vec::with_capacity(lines.len());
    let mut bad_lines = 0u64;
    for line in &lines {
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        match qledger::batch::pair_of_json(text) {
            Ok(p) => pairs.push(p),
            Err(_) => bad_lines += 1,
        }
    }
    let parse_time = started.elapsed();
    drop(lines);
    if pairs.is_empty() {
        bail!("no pairs in {}", bench.pairs.display());
    }
    let dir = bench.data.join("views");
    let views = Views::open_read_only(&dir)
        .with_context(|| format!("cannot open the views in {}", dir.display()))?;

    let mut total = Duration::ZERO;
    let mut answers = PairAnswers::default();
    for pass in 1..=bench.passes {
        answers = PairAnswers::default();
        let started = Instant::now();
        for pair in &pairs {
            let lookup = match pair.birth_date {
                Some(b) => views.eligibility_of_holder(&pair.key, b, pair.on, pair.as_of),
                None => views.eligibility(&pair.key, pair.on, pair.as_of),
            }
            .context("eligibility lookup")?;
            match &lookup {
                Lookup::Found(e) if e.qualifications.is_empty() => answers.unqualified += 1,
                Lookup::Found(_) => answers.qualified += 1,
                Lookup::NotFound => answers.not_found += 1,
                Lookup::NotLinked { .. } => answers.not_linked += 1,
            }
            std::hint::black_box(&lookup);
        }
        let took = started.elapsed();
        total += took;
        eprintln!(
            "pass {pass}/{}: {} lookups in {:.3} s, {}/s",
            bench.passes,
            pairs.len(),
            took.as_secs_f64(),
            grouped(rate(pairs.len() as u64, took))
        );
    }

    // Lookup and shape, as the batch answers each pair (not the baseline).
    let started = Instant::now();
    let mut shaped = 0usize;
    for (i, pair) in pairs.iter().enumerate() {
        let lookup = match pair.birth_date {
            Some(b) => views.eligibility_of_holder(&pair.key, b, pair.on, pair.as_of),
            None => views.eligibility(&pair.key, pair.on, pair.as_of),
        }
        .context("eligibility lookup")?;
        shaped += qledger::batch::answered(i as u64 + 1, pair, &lookup).len();
    }
    let shape_time = started.elapsed();
    std::hint::black_box(shaped);

    let n = pairs.len() as u64;
    let all = n * u64::from(bench.passes);
    let lookup_rate = rate(all, total);
    let parse_rate = rate(n + bad_lines, parse_time);
    let shape_rate = rate(n, shape_time);
    eprintln!(
        "{n} pairs ({bad_lines} bad lines): parse {}/s; lookups {}/s over {} passes; \
         lookup + answer line {}/s; last pass: {} qualified, {} found without a \
         qualification, {} not found, {} not linked",
        grouped(parse_rate),
        grouped(lookup_rate),
        bench.passes,
        grouped(shape_rate),
        answers.qualified,
        answers.unqualified,
        answers.not_found,
        answers.not_linked,
    );
    println!(
        "LOOKUPS pairs={n} passes={} secs={:.6} rate={lookup_rate:.1} parse_rate={parse_rate:.1} \
         shape_rate={shape_rate:.1} qualified={} unqualified={} not_found={} not_linked={} \
         bad_lines={bad_lines}",
        bench.passes,
        total.as_secs_f64(),
        answers.qualified,
        answers.unqualified,
        answers.not_found,
        answers.not_linked,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_keys_sort_by_partition_then_offset() {
        assert!(raw_key(0, u64::MAX) < raw_key(1, 0));
        assert!(raw_key(3, 9) < raw_key(3, 10));
    }

    #[test]
    fn grouped_digits() {
        assert_eq!(grouped(1234567.0), "1 234 567");
        assert_eq!(grouped(999.0), "999");
    }

    #[test]
    fn batches_hand_out_full_batches_per_partition() {
        let record = |partition, offset| LogRecord {
            partition,
            offset,
            record_time: RecordTime::from_micros(0),
            key: vec![],
            event_id: Default::default(),
            headers: vec![],
            value: vec![],
            defect: None,
        };
        let mut b = Batches::new(2, 2);
        assert!(b.push(record(0, 0)).is_none());
        assert!(b.push(record(1, 0)).is_none());
        assert_eq!(b.push(record(0, 1)).map(|v| v.len()), Some(2));
    }
}
