//! Appends to an embedded log forever, for `tests/log_crash.rs` to `kill -9`.
//!
//! Usage: `log-crash-writer DIR [PARTITIONS]` (4 partitions unless given).
//!
//! Four threads append small batches (1 to 4 records). After each append is
//! acknowledged, so durable, each new record is printed to stdout as one line,
//! `partition offset event_id`, flushed at once: every printed line must
//! survive the kill. The value of each record is [`value_of`] its event id, so
//! the test can check the record is intact.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ledger::log::embedded::EmbeddedLog;
use ledger::log::{AppendRequest, Appended, EventLog};
use uuid::Uuid;

const THREADS: usize = 4;

/// The value stored for an event; `tests/log_crash.rs` expects the same.
fn value_of(event_id: Uuid) -> Vec<u8> {
    format!("crash-test value of {event_id}").into_bytes()
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: log-crash-writer DIR [PARTITIONS]");
        return ExitCode::from(2);
    };
    let partitions = match args.next().map(|p| p.to_string_lossy().parse::<u32>()) {
        None => 4,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            eprintln!("log-crash-writer: PARTITIONS: {e}");
            return ExitCode::from(2);
        }
    };
    let log = match EmbeddedLog::open(&dir, partitions) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("log-crash-writer: opening {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let log = &log;
            s.spawn(move || {
                let failure = append_forever(log, thread);
                eprintln!("log-crash-writer: thread {thread}: {failure}");
                std::process::exit(1);
            });
        }
    });
    ExitCode::FAILURE
}

/// Returns only on failure, saying what failed.
fn append_forever(log: &EmbeddedLog, thread: usize) -> String {
    let stdout = std::io::stdout();
    let mut n: u64 = 0;
    loop {
        let batch: Vec<AppendRequest> = (0..1 + n % 4)
            .map(|i| {
                let event_id = Uuid::now_v7();
                AppendRequest {
                    timestamp: None,
                    key: format!("LINK-{thread}-{:03}", (n + i) % 64).into_bytes(),
                    event_id,
                    headers: vec![("writer".into(), thread.to_string().into_bytes())],
                    value: value_of(event_id),
                }
            })
            .collect();
        let ids: Vec<Uuid> = batch.iter().map(|r| r.event_id).collect();
        let outcomes = match log.append(batch) {
            Ok(outcomes) => outcomes,
            Err(e) => return format!("append: {e}"),
        };
        for (id, outcome) in ids.iter().zip(outcomes) {
            let Appended::New(at) = outcome else {
                return format!("event {id} was taken for a duplicate");
            };
            let mut out = stdout.lock();
            let printed =
                writeln!(out, "{} {} {id}", at.partition, at.offset).and_then(|()| out.flush());
            if let Err(e) = printed {
                return format!("stdout: {e}");
            }
        }
        n += 1;
    }
}
