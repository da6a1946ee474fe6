//! `kill -9` in the middle of intake and projection loses nothing: every
//! acknowledged event is in the log, and on restart the projector resumes
//! from the offsets stored with the views, so the views equal a rebuild.
//!
//! The test re-runs its own binary as the child process (selected by an
//! environment variable), so the crash is a real SIGKILL of a real process
//! with RocksDB on disk.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use qledger::service::{Ledger, Submitted, Wait};
use scenario_tests::ev;

const CHILD_ENV: &str = "QLEDGER_CRASH_CHILD_DIR";

/// Child: publish batches forever with the projector running, printing the
/// position of every acknowledged event.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut ledger = Ledger::open(Path::new(&dir), 4).unwrap();
    ledger.start_projector();
    let round: u64 = std::env::var("QLEDGER_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    for i in 0.. {
        let link = format!("LC{round}-{i}");
        let n = ev::insured(
            "01130012",
            Some("K"),
            &format!("{}", 10_000 + i),
            Some("00"),
        );
        let events = vec![
            ev::acquired(&link, "Q1", &n, "2020-04-01"),
            ev::copay_changed(&link, "insurer-01130012", "Q1", "2022-04-01", 20),
            ev::lost(&link, "insurer-01130012", "Q1", "2024-04-01"),
        ];
        for s in ledger.submit(events, Wait::Durable).unwrap() {
            if let Submitted::Accepted(r) = s {
                println!("ACK {} {} {}", r.partition, r.offset, r.event_id);
            }
        }
    }
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_event_and_views_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut acknowledged: Vec<(u32, u64, String)> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &data)
            .env("QLEDGER_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            let mut parts = line
                .strip_prefix("ACK ")
                .map(|l| l.split(' '))
                .into_iter()
                .flatten();
            if let (Some(p), Some(o), Some(id)) = (parts.next(), parts.next(), parts.next()) {
                acknowledged.push((p.parse().unwrap(), o.parse().unwrap(), id.to_owned()));
                seen += 1;
                if seen >= 300 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        // Restart: every acknowledged event is where it was acknowledged.
        let mut ledger = Ledger::open(&data, 4).unwrap();
        for (p, o, id) in &acknowledged {
            let rec = ledger.log().read(*p, *o, 1).unwrap();
            assert_eq!(
                rec.first().map(|r| r.event_id.to_string()).as_deref(),
                Some(id.as_str()),
                "lost {p}:{o}"
            );
        }
        // The projector resumes from its stored offsets; nothing twice, nothing lost.
        let before: std::collections::BTreeMap<_, _> = ledger.views().offsets().unwrap();
        let stats = ledger.catch_up().unwrap();
        assert_eq!(stats.duplicates, 0);
        assert_eq!(
            stats.dead_lettered, 0,
            "a record applied twice would dead-letter as 'already acquired'"
        );
        let scratch = tmp.path().join(format!("scratch{round}"));
        let v = replay::verify(ledger.log().as_ref(), ledger.views(), &scratch).unwrap();
        assert!(
            v.matches(),
            "round {round}: views differ from a rebuild: {:?}",
            v.first_difference
        );
        println!(
            "round {round}: {} acknowledged so far, views resumed from {:?}, projected {} more",
            acknowledged.len(),
            before,
            stats.applied
        );
        ledger.shutdown();
        drop(ledger);
        std::thread::sleep(Duration::from_millis(50));
    }
}
