//! `kill -9` the embedded log mid-stream: every acknowledged append survives.
//!
//! Given `log-crash-writer` appending from 4 threads and printing each
//! acknowledged record, when it is SIGKILLed after a few hundred, then the
//! reopened log holds every acknowledged event at its acknowledged position,
//! intact, with dense offsets and strictly increasing record times. Three
//! rounds on the same directory, so recovery is appended to and crashed again.
//!
//! SIGKILL leaves the page cache alone, so this exercises WAL replay and
//! offset recovery; surviving power loss rests on the synced write.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ledger::log::embedded::EmbeddedLog;
use ledger::log::{partitioner, AppendRequest, Appended, EventLog, Offset, Partition};
use uuid::Uuid;

const PARTITIONS: u32 = 4;
const ROUNDS: usize = 3;
/// Acknowledgements to see before the kill.
const ACKS_BEFORE_KILL: usize = 500;

/// One acknowledged append, as the writer printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    partition: Partition,
    offset: Offset,
    event_id: Uuid,
}

/// What `log-crash-writer` stores for an event.
fn value_of(event_id: Uuid) -> Vec<u8> {
    format!("crash-test value of {event_id}").into_bytes()
}

#[test]
fn log_keeps_every_acknowledged_append_through_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<Ack> = Vec::new();
    for round in 1..=ROUNDS {
        let new = run_writer_until_killed(dir.path());
        let this_round = new.len();
        acked.extend(new);
        let records = verify(dir.path(), &acked);
        let probes = (round - 1) * PARTITIONS as usize;
        println!(
            "round {round}: {this_round} records acknowledged before the kill ({} in all); \
             after recovery the log holds {records}: {} acknowledged, {probes} recovery probes, \
             {} written but not yet acknowledged at a kill",
            acked.len(),
            acked.len(),
            records - acked.len() - probes,
        );
    }
}

/// Starts the writer, SIGKILLs it after [`ACKS_BEFORE_KILL`] acknowledgements,
/// and returns every acknowledgement it printed (including those printed
/// between our decision and its death).
fn run_writer_until_killed(dir: &Path) -> Vec<Ack> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_log-crash-writer"))
        .arg(dir)
        .arg(PARTITIONS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start log-crash-writer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acks = Vec::new();
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return acks,
                // Cut short by the kill: never fully printed, so not acknowledged.
                Ok(_) if !line.ends_with('\n') => return acks,
                Ok(_) => {
                    acks.push(parse(&line));
                    let _ = tx.send(());
                }
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < ACKS_BEFORE_KILL {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(()) => seen += 1,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("after {seen} acknowledgements the writer stopped ({e:?}, exit {status:?})");
            }
        }
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    reader.join().expect("stdout reader")
}

fn parse(line: &str) -> Ack {
    let mut fields = line.split_whitespace();
    let mut next = || {
        fields
            .next()
            .unwrap_or_else(|| panic!("short line {line:?}"))
    };
    Ack {
        partition: next().parse().unwrap(),
        offset: next().parse().unwrap(),
        event_id: next().parse().unwrap(),
    }
}

/// Reopens the log and checks it against everything acknowledged so far;
/// appends one probe to check offsets and times resume where they stopped.
/// Returns the number of records in the log before the probe.
fn verify(dir: &Path, acked: &[Ack]) -> usize {
    let log = EmbeddedLog::open(dir, PARTITIONS).expect("reopen after the kill");
    let mut at: HashMap<Uuid, (Partition, Offset)> = HashMap::new();
    let mut records = 0;
    for partition in 0..PARTITIONS {
        let end = log.end_offset(partition).unwrap();
        let mut last = None;
        let mut offset = 0;
        loop {
            // Reading decodes every record: a torn one is an error here.
            let page = log
                .read(partition, offset, 500)
                .expect("every record decodes");
            if page.is_empty() {
                break;
            }
            for r in page {
                assert_eq!(r.offset, offset, "partition {partition} is dense");
                assert!(
                    last < Some(r.record_time),
                    "record times increase at {partition}:{offset}"
                );
                assert_eq!(
                    partitioner::partition_for(&r.key, PARTITIONS),
                    partition,
                    "key of {partition}:{offset}"
                );
                assert!(
                    r.value == value_of(r.event_id),
                    "value of {partition}:{offset} is intact"
                );
                assert!(
                    at.insert(r.event_id, (partition, r.offset)).is_none(),
                    "event {} twice",
                    r.event_id
                );
                last = Some(r.record_time);
                offset += 1;
            }
        }
        assert_eq!(
            end, offset,
            "end offset of partition {partition} after recovery"
        );
        records += offset as usize;

        let probe_id = Uuid::now_v7();
        let probe = AppendRequest {
            timestamp: None,
            key: partition_key(partition),
            event_id: probe_id,
            headers: vec![],
            value: value_of(probe_id),
        };
        match log.append(vec![probe]).unwrap()[..] {
            [Appended::New(p)] => {
                assert_eq!(
                    (p.partition, p.offset),
                    (partition, end),
                    "appends resume at the end"
                );
                assert!(
                    last < Some(p.record_time),
                    "record time resumes after the last"
                );
            }
            ref other => panic!("probe {probe_id}: {other:?}"),
        }
    }
    for ack in acked {
        assert_eq!(
            at.get(&ack.event_id),
            Some(&(ack.partition, ack.offset)),
            "acknowledged event {} at {}:{} after the kill",
            ack.event_id,
            ack.partition,
            ack.offset
        );
    }
    records
}

/// A key that goes to `partition`.
fn partition_key(partition: Partition) -> Vec<u8> {
    (0u64..)
        .map(|i| format!("PROBE-{i}").into_bytes())
        .find(|k| partitioner::partition_for(k, PARTITIONS) == partition)
        .unwrap()
}
