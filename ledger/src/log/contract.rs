//! The contract every [`EventLog`] keeps, as checks any implementation can run.
//!
//! [`run_all`] runs each check on a fresh, empty log from `make`; the checks
//! are public too, so a backend can run one at a time while it is being
//! written. A failed check panics with what it expected. Built for this
//! crate's tests and, with the `contract-tests` feature, for other crates' (the
//! Kafka log on `MockCluster` and on a real broker).
//!
//! ```
//! # use ledger::log::{contract, embedded::EmbeddedLog};
//! let root = tempfile::tempdir()?;
//! let n = std::sync::atomic::AtomicUsize::new(0);
//! contract::run_all(&|| {
//!     let dir = root.path().join(n.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string());
//!     Box::new(EmbeddedLog::open(&dir, 3).unwrap())
//! });
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{
    partitioner, AppendRequest, Appended, EventLog, LogRecord, Offset, Partition, Position,
};

/// What a backend promises beyond what every log must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The log knows the event ids it holds and answers a repeat with
    /// [`Appended::Duplicate`] (the embedded log). Kafka cannot; there the
    /// projectors de-duplicate by event id.
    pub dedups_event_ids: bool,
}

impl Capabilities {
    /// Everything the trait allows for: the embedded log.
    pub const ALL: Capabilities = Capabilities {
        dedups_event_ids: true,
    };
}

/// Runs every check, each on a new log from `make` (which must be empty), for
/// a log with every [`Capabilities`].
pub fn run_all(make: &dyn Fn() -> Box<dyn EventLog>) {
    run_with(Capabilities::ALL, make);
}

/// Runs every check that applies to a log with `capabilities`, each on a new
/// log from `make` (which must be empty).
pub fn run_with(capabilities: Capabilities, make: &dyn Fn() -> Box<dyn EventLog>) {
    appends_get_dense_offsets_from_zero(&*make());
    same_key_goes_to_one_partition_in_order(&*make());
    partition_for_matches_the_partitioner(&*make());
    record_times_strictly_increase_per_partition(&*make());
    read_returns_exactly_what_was_appended(&*make());
    read_from_the_middle_and_past_the_end(&*make());
    unknown_partitions_are_refused(&*make());
    if capabilities.dedups_event_ids {
        duplicate_event_id_is_acknowledged_not_appended(&*make());
    } else {
        repeated_event_id_is_appended_again(&*make());
    }
    concurrent_appends_land_exactly_once(&*make());
    wait_for_times_out_then_wakes_on_append(&*make());
}

/// An append request with a fresh event id and one header.
pub fn request(key: &[u8], value: &[u8]) -> AppendRequest {
    AppendRequest {
        timestamp: None,
        key: key.to_vec(),
        event_id: Uuid::now_v7(),
        headers: vec![("event-type".into(), b"QualificationAcquired".to_vec())],
        value: value.to_vec(),
    }
}

/// `n` distinct keys that all go to `partition`.
pub fn keys_on(log: &dyn EventLog, partition: Partition, n: usize) -> Vec<Vec<u8>> {
    (0u64..)
        .map(|i| format!("LINK-{i:08}").into_bytes())
        .filter(|key| log.partition_for(key) == partition)
        .take(n)
        .collect()
}

/// Every record of `partition`, read in pages.
pub fn read_all(log: &dyn EventLog, partition: Partition) -> Vec<LogRecord> {
    let mut all: Vec<LogRecord> = Vec::new();
    loop {
        let page = log.read(partition, all.len() as Offset, 97).expect("read");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn append_new(log: &dyn EventLog, batch: Vec<AppendRequest>) -> Vec<Position> {
    let n = batch.len();
    let out = log.append(batch).expect("append");
    assert_eq!(out.len(), n, "one outcome per request");
    out.into_iter()
        .map(|a| match a {
            Appended::New(p) => p,
            Appended::Duplicate(p) => panic!("a fresh event id was taken for a duplicate of {p:?}"),
        })
        .collect()
}

/// Each partition's offsets run 0, 1, 2, … and `end_offset` is the next one.
pub fn appends_get_dense_offsets_from_zero(log: &dyn EventLog) {
    for partition in 0..log.partitions() {
        assert_eq!(
            log.end_offset(partition).unwrap(),
            0,
            "a new log's partition {partition} is empty"
        );
    }
    for partition in 0..log.partitions() {
        let keys = keys_on(log, partition, 3);
        let mut offsets = append_new(log, vec![request(&keys[0], b"first")]);
        let batch = (0..7).map(|i| request(&keys[i % 3], b"more")).collect();
        offsets.extend(append_new(log, batch));
        for p in &offsets {
            assert_eq!(p.partition, partition);
        }
        let offsets: Vec<Offset> = offsets.iter().map(|p| p.offset).collect();
        assert_eq!(offsets, (0..8).collect::<Vec<_>>(), "partition {partition}");
        assert_eq!(log.end_offset(partition).unwrap(), 8);
        let read: Vec<Offset> = read_all(log, partition).iter().map(|r| r.offset).collect();
        assert_eq!(read, (0..8).collect::<Vec<_>>());
    }
}

/// One key's records all go to its partition, in the order appended.
pub fn same_key_goes_to_one_partition_in_order(log: &dyn EventLog) {
    let key = b"LINK-000042";
    let partition = log.partition_for(key);
    let mut sent = Vec::new();
    let mut positions = Vec::new();
    for i in 0..5 {
        let r = request(key, format!("single {i}").as_bytes());
        sent.push(r.event_id);
        positions.extend(append_new(log, vec![r]));
    }
    let batch: Vec<_> = (0..5)
        .map(|i| request(key, format!("batched {i}").as_bytes()))
        .collect();
    sent.extend(batch.iter().map(|r| r.event_id));
    positions.extend(append_new(log, batch));
    for (i, p) in positions.iter().enumerate() {
        assert_eq!(p.partition, partition);
        assert_eq!(
            p.offset,
            positions[0].offset + i as Offset,
            "consecutive offsets"
        );
    }
    let read: Vec<Uuid> = read_all(log, partition)
        .iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(read, sent, "read back in append order");
}

/// `partition_for` is Kafka's murmur2 partitioner, and appends follow it.
pub fn partition_for_matches_the_partitioner(log: &dyn EventLog) {
    let n = log.partitions();
    let mut hit = HashSet::new();
    for i in 0..200 {
        let key = format!("LINK-{i:06}").into_bytes();
        let expected = partitioner::partition_for(&key, n);
        assert_eq!(log.partition_for(&key), expected, "key LINK-{i:06}");
        hit.insert(expected);
        if i % 20 == 0 {
            assert_eq!(
                append_new(log, vec![request(&key, b"v")])[0].partition,
                expected
            );
        }
    }
    assert_eq!(hit.len(), n as usize, "200 keys reach every partition");
}

/// Record times strictly increase along each partition, including within one
/// batch, and the time an append reports is the time read back.
pub fn record_times_strictly_increase_per_partition(log: &dyn EventLog) {
    let key = b"LINK-000007";
    let partition = log.partition_for(key);
    let mut positions = append_new(log, (0..50).map(|_| request(key, b"v")).collect());
    for _ in 0..10 {
        positions.extend(append_new(log, vec![request(key, b"v")]));
    }
    let read = read_all(log, partition);
    assert_eq!(read.len(), 60);
    for pair in read.windows(2) {
        assert!(
            pair[0].record_time < pair[1].record_time,
            "record time at {} ({:?}) is not before {} ({:?})",
            pair[0].offset,
            pair[0].record_time,
            pair[1].offset,
            pair[1].record_time
        );
    }
    for (p, r) in positions.iter().zip(&read) {
        assert_eq!((p.offset, p.record_time), (r.offset, r.record_time));
    }
}

/// Key, event id, headers (order and repeats kept) and value come back as sent.
pub fn read_returns_exactly_what_was_appended(log: &dyn EventLog) {
    let binary: Vec<u8> = (0..=255).collect();
    let sent = vec![
        AppendRequest {
            timestamp: None,
            key: b"LINK-000001".to_vec(),
            event_id: Uuid::now_v7(),
            headers: vec![],
            value: vec![],
        },
        AppendRequest {
            timestamp: None,
            key: "LINK-被保険者-2".as_bytes().to_vec(),
            event_id: Uuid::now_v7(),
            headers: vec![
                ("event-type".into(), b"QualificationLost".to_vec()),
                ("empty".into(), vec![]),
                ("event-type".into(), b"repeated".to_vec()),
            ],
            value: binary.clone(),
        },
        AppendRequest {
            timestamp: None,
            key: binary,
            event_id: Uuid::now_v7(),
            headers: vec![("schema".into(), vec![0xc3, 0x01, 0, 0, 0, 0, 0, 0, 0, 1])],
            value: vec![0x5a; 100_000],
        },
    ];
    let positions = append_new(log, sent.clone());
    for (request, at) in sent.iter().zip(&positions) {
        let read = log.read(at.partition, at.offset, 1).unwrap();
        assert_eq!(read.len(), 1);
        let record = &read[0];
        let expected = LogRecord {
            partition: at.partition,
            offset: at.offset,
            record_time: at.record_time,
            key: request.key.clone(),
            event_id: request.event_id,
            headers: request.headers.clone(),
            value: request.value.clone(),
            defect: None,
        };
        assert!(
            *record == expected,
            "record at {}:{} differs from what was appended",
            at.partition,
            at.offset
        );
    }
}

/// Reads start anywhere, stop at `max` or the end, and are empty past the end.
pub fn read_from_the_middle_and_past_the_end(log: &dyn EventLog) {
    let key = b"LINK-000100";
    let partition = log.partition_for(key);
    let sent = append_new(log, (0..10).map(|i| request(key, &[i])).collect());
    assert_eq!(sent.last().unwrap().offset, 9);
    let offsets = |from, max| -> Vec<Offset> {
        log.read(partition, from, max)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect()
    };
    assert_eq!(offsets(4, 3), [4, 5, 6]);
    assert_eq!(log.read(partition, 4, 3).unwrap()[0].value, [4]);
    assert_eq!(offsets(8, 100), [8, 9]);
    assert_eq!(offsets(0, 0), [] as [Offset; 0]);
    assert_eq!(offsets(10, 5), [] as [Offset; 0]);
    assert_eq!(offsets(1_000_000, 5), [] as [Offset; 0]);
    // Other partitions are untouched.
    for p in (0..log.partitions()).filter(|p| *p != partition) {
        assert!(log.read(p, 0, 10).unwrap().is_empty(), "partition {p}");
    }
}

/// Partitions past the count are errors, not empty.
pub fn unknown_partitions_are_refused(log: &dyn EventLog) {
    let beyond = log.partitions();
    assert!(log.read(beyond, 0, 1).is_err());
    assert!(log.end_offset(beyond).is_err());
    assert!(log.wait_for(beyond, 0, Duration::from_millis(1)).is_err());
}

/// An event id already in the log (or earlier in the same batch) is answered
/// with the original's position, and nothing is appended.
pub fn duplicate_event_id_is_acknowledged_not_appended(log: &dyn EventLog) {
    let a = request(b"LINK-000200", b"a");
    let original = append_new(log, vec![a.clone()])[0];
    let end = log.end_offset(original.partition).unwrap();

    assert_eq!(
        log.append(vec![a.clone()]).unwrap(),
        vec![Appended::Duplicate(original)]
    );
    // The id decides: a retry carrying other bytes is still the same event.
    let altered = AppendRequest {
        timestamp: None,
        value: b"changed".to_vec(),
        ..a.clone()
    };
    assert_eq!(
        log.append(vec![altered]).unwrap(),
        vec![Appended::Duplicate(original)]
    );
    assert_eq!(log.end_offset(original.partition).unwrap(), end);

    let b = request(b"LINK-000200", b"b");
    let c = request(b"LINK-000200", b"c");
    let out = log.append(vec![b.clone(), a, b, c]).unwrap();
    let Appended::New(b_at) = out[0] else {
        panic!("b is new: {out:?}")
    };
    assert_eq!(out[1], Appended::Duplicate(original));
    assert_eq!(
        out[2],
        Appended::Duplicate(b_at),
        "a repeat within one batch is a duplicate"
    );
    let Appended::New(c_at) = out[3] else {
        panic!("c is new: {out:?}")
    };
    assert_eq!((b_at.offset, c_at.offset), (end, end + 1));

    let values: Vec<Vec<u8>> = read_all(log, original.partition)
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(values, [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

/// Where the log cannot tell a repeat, it stores it again as a new record
/// with the same event id, for the projectors to skip.
pub fn repeated_event_id_is_appended_again(log: &dyn EventLog) {
    let a = request(b"LINK-000200", b"a");
    let first = append_new(log, vec![a.clone()])[0];
    let again = append_new(log, vec![a.clone()])[0];
    assert_eq!(
        (again.partition, again.offset),
        (first.partition, first.offset + 1)
    );
    let ids: Vec<Uuid> = read_all(log, first.partition)
        .into_iter()
        .map(|r| r.event_id)
        .collect();
    assert_eq!(ids, [a.event_id, a.event_id]);
}

/// Appends racing from 8 threads each land once, where they were acknowledged,
/// with every partition still dense.
pub fn concurrent_appends_land_exactly_once(log: &dyn EventLog) {
    const THREADS: usize = 8;
    const APPENDS: usize = 40;
    let acknowledged: Vec<(Uuid, Position)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut acks = Vec::new();
                    for i in 0..APPENDS {
                        let batch: Vec<_> = (0..1 + i % 3)
                            .map(|j| request(format!("LINK-{t}-{}", (i + j) % 7).as_bytes(), b"v"))
                            .collect();
                        let ids: Vec<Uuid> = batch.iter().map(|r| r.event_id).collect();
                        acks.extend(ids.into_iter().zip(append_new(log, batch)));
                    }
                    acks
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("appender thread"))
            .collect()
    });

    let mut found: HashMap<Uuid, (Partition, Offset)> = HashMap::new();
    for partition in 0..log.partitions() {
        let records = read_all(log, partition);
        assert_eq!(log.end_offset(partition).unwrap(), records.len() as Offset);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as Offset, "partition {partition} is dense");
            let again = found.insert(r.event_id, (partition, r.offset));
            assert!(again.is_none(), "event {} is in the log twice", r.event_id);
        }
    }
    assert_eq!(
        found.len(),
        acknowledged.len(),
        "every record was acknowledged once"
    );
    for (id, at) in &acknowledged {
        assert_eq!(
            found.get(id),
            Some(&(at.partition, at.offset)),
            "event {id}"
        );
    }
}

/// `wait_for` returns false when nothing comes in time, and true as soon as
/// another thread appends.
pub fn wait_for_times_out_then_wakes_on_append(log: &dyn EventLog) {
    let key = b"LINK-000300";
    let partition = log.partition_for(key);
    let end = log.end_offset(partition).unwrap();

    let started = Instant::now();
    assert!(!log
        .wait_for(partition, end, Duration::from_millis(100))
        .unwrap());
    assert!(
        started.elapsed() >= Duration::from_millis(100),
        "waited the whole timeout"
    );

    let started = Instant::now();
    let woke = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            append_new(log, vec![request(key, b"v")]);
        });
        log.wait_for(partition, end, Duration::from_secs(30))
            .unwrap()
    });
    assert!(woke, "an append from another thread wakes the waiter");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the append, not the timeout"
    );
    // Already there: no wait.
    assert!(log.wait_for(partition, end, Duration::ZERO).unwrap());
}
