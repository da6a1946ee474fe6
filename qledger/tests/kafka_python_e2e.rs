//! End to end on a real broker (tansu, see `kafka-harness`), with publishers
//! that share nothing with qledger: a running `qledger serve --config FILE`
//! over Kafka takes events from its inbound topic, published by independent
//! Python clients in both framings the README promises —
//!
//! * Avro single-object encoding by the Apache Avro reference library
//!   (`tests/interop/publish_avro.py`), no registry involved;
//! * the Confluent wire format by confluent-kafka's own `SchemaRegistryClient`
//!   and `AvroSerializer`, pointed at the running server's `/schema-registry`,
//!   produced with confluent-kafka's `Producer`
//!   (`tests/interop/confluent_client.py --bootstrap --topic`)
//!
//! — and one garbage record from an ordinary Kafka producer. The relay must
//! append every event to the events topic (each exactly as sent), the
//! projectors must apply them (every person answers `history`, an
//! acquisition answers `eligibility` over HTTP, nothing is dead-lettered by
//! the projectors), the garbage must land unchanged on the dead-letter topic
//! with the reason in `qledger.dead_letter.reason`, and the server must stop
//! cleanly on SIGTERM.
//!
//! Needs the broker (`scripts/setup` installs tansu; the harness spawns it)
//! and `python3` (or `$PYTHON`) with
//! `pip install -r tests/interop/requirements.txt -r tests/interop/requirements-confluent.txt`;
//! fails, never skips, without them.
#![cfg(feature = "kafka")]

mod support;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::{datum, Server};

use kafka_harness::{unique_topic, Broker};
use ledger::event::{avro, json, Event};
use ledger::log::kafka::{KafkaConfig, KafkaLog};
use ledger::log::{EventLog, LogRecord};
use ledger::sample::{self, SampleConfig};
use qledger::kafka::relay::{REASON_HEADER, SOURCE_HEADER};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::{json, Value};

/// Partitions of every topic.
const PARTITIONS: u32 = 3;
/// Persons generated; the first half goes through publish_avro.py, the rest
/// through confluent_client.py.
const PERSONS: u64 = 10;
/// How long the ledger may take to relay and project everything.
const PROJECTED_WITHIN: Duration = Duration::from_secs(90);
/// How long one helper process may run.
const HELPER_WITHIN: Duration = Duration::from_secs(120);
/// The garbage record's key, value and a header the dead letter must keep.
const GARBAGE_KEY: &[u8] = b"L-GARBAGE";
const GARBAGE_VALUE: &[u8] = b"\xc3\x01 this is not an Avro single-object record";
const GARBAGE_HEADER: (&str, &[u8]) = ("x-interop-test", b"garbage");

const INSTALL: &str =
    "pip install -r tests/interop/requirements.txt -r tests/interop/requirements-confluent.txt";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qledger is in the workspace")
        .to_path_buf()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A child process that is killed (and reaped) when dropped, whatever
/// happened to the test.
struct Guard {
    child: Option<Child>,
    what: String,
}

impl Guard {
    fn spawn(mut command: Command, what: &str) -> Guard {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Guard {
            child: Some(child),
            what: what.to_owned(),
        }
    }

    /// Waits up to `within` for the process to exit; kills it and panics if
    /// it does not.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait for a child") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                self.child = None;
                panic!("{} did not finish within {within:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a finished helper said.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Runs `command` to completion (killed after `within`), its output
/// collected through files (no pipe to fill).
fn run(mut command: Command, what: &str, within: Duration) -> Ran {
    let mut stdout = tempfile::tempfile().unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap());
    let status = Guard::spawn(command, what).wait(within);
    let read = |f: &mut File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        f.rewind().unwrap();
        f.read_to_string(&mut text).unwrap();
        text
    };
    Ran {
        status,
        stdout: read(&mut stdout),
        stderr: read(&mut stderr),
    }
}

fn qledger(args: &[&str]) -> Ran {
    let mut command = Command::new(env!("CARGO_BIN_EXE_qledger"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("QLEDGER_KAFKA_BOOTSTRAP");
    run(
        command,
        &format!("qledger {}", args.join(" ")),
        HELPER_WITHIN,
    )
}

/// Panics, naming what to install, unless the Python packages of both
/// publishers import.
fn require_python_packages() {
    let python = python();
    let check = run(
        {
            let mut c = Command::new(&python);
            c.args([
                "-c",
                "import avro.io, avro.schema, confluent_kafka, fastavro, \
                 confluent_kafka.schema_registry.avro",
            ]);
            c
        },
        "the Python package check",
        HELPER_WITHIN,
    );
    assert!(
        check.status.success(),
        "the Python interop publishers' packages are missing ({python}; set $PYTHON to \
         another Python 3): {INSTALL}\n{}",
        check.stderr
    );
}

/// The events as the publishers' JSON-lines input:
/// `{"type", "key", "datum"}` (confluent_client.py ignores `key`; it keys
/// by `datum.envelope.link`).
fn write_events(file: &Path, events: &[&Event]) {
    let mut out = File::create(file).unwrap();
    for e in events {
        let line = json!({
            "type": e.event_type().name(),
            "key": e.envelope.link.to_string(),
            "datum": datum(&avro::to_value(e)),
        });
        writeln!(out, "{line}").unwrap();
    }
    out.flush().unwrap();
}

fn helper_failed(what: &str, ran: &Ran) -> String {
    format!(
        "{what} failed ({}):\n{}\n{}",
        ran.status, ran.stdout, ran.stderr
    )
}

/// publish_avro.py: the Apache Avro reference library, single-object
/// encoding, to `topic`.
fn publish_single_object(bootstrap: &str, topic: &str, file: &Path, count: usize) {
    let root = repo();
    let mut command = Command::new(python());
    command
        .arg(root.join("tests/interop/publish_avro.py"))
        .args(["--bootstrap", bootstrap, "--topic", topic])
        .arg("--schemas")
        .arg(root.join("schemas"))
        .arg("--events")
        .arg(file);
    let ran = run(command, "publish_avro.py", HELPER_WITHIN);
    assert!(
        ran.status.success(),
        "{}",
        helper_failed("publish_avro.py", &ran)
    );
    assert_eq!(
        ran.stdout.trim(),
        count.to_string(),
        "delivered, as printed"
    );
}

/// confluent_client.py: confluent-kafka's registry client and serializer
/// against the server's registry, then its Producer to `topic`.
fn publish_confluent(registry: &str, bootstrap: &str, topic: &str, file: &Path, count: usize) {
    let root = repo();
    let mut command = Command::new(python());
    command
        .arg(root.join("tests/interop/confluent_client.py"))
        .args(["--url", registry])
        .arg("--schemas")
        .arg(root.join("schemas"))
        .arg("--events")
        .arg(file)
        .args(["--bootstrap", bootstrap, "--topic", topic]);
    let ran = run(command, "confluent_client.py", HELPER_WITHIN);
    match ran.code() {
        Some(0) => {}
        Some(3) => panic!(
            "the Confluent client's Python packages are missing: {INSTALL}\n{}",
            ran.stderr
        ),
        _ => panic!("{}", helper_failed("confluent_client.py", &ran)),
    }
    assert!(
        ran.stdout
            .contains(&format!("{count} messages delivered to {topic}")),
        "{}",
        ran.stdout
    );
}

/// Every record of a topic the ledger writes, read with its own log reader.
fn read_all(log: &KafkaLog) -> Vec<LogRecord> {
    let mut records = Vec::new();
    for p in 0..PARTITIONS {
        let end = log.end_offset(p).unwrap();
        let mut from = 0;
        while from < end {
            let batch = log.read(p, from, (end - from) as usize).unwrap();
            assert!(
                !batch.is_empty(),
                "{}:{p} stops at {from} of {end}",
                log.topic()
            );
            from = batch.last().unwrap().offset + 1;
            records.extend(batch);
        }
    }
    records
}

fn header<'a>(record: &'a LogRecord, name: &str) -> Option<&'a [u8]> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// The log of `topic` on the broker (it exists: the server created it).
fn connect(broker: &Broker, topic: &str) -> KafkaLog {
    KafkaLog::connect(KafkaConfig {
        topic: topic.to_owned(),
        partitions: PARTITIONS,
        replication_factor: 1,
        ..KafkaConfig::new(broker.bootstrap.clone())
    })
    .unwrap_or_else(|e| panic!("connecting to {topic}: {e}"))
}

/// An acquisition of `events` that nothing later changes, ends or retracts,
/// as the `eligibility` arguments that find it and its JSON form.
fn untouched_acquisition(events: &[&Event]) -> (Vec<String>, Value) {
    let all: Vec<Value> = events.iter().map(|e| json::to_value(e)).collect();
    let touched: BTreeSet<String> = all
        .iter()
        .filter(|e| {
            matches!(
                e["type"].as_str(),
                Some("QualificationChanged" | "QualificationLost" | "QualificationRetracted")
            )
        })
        .flat_map(|e| {
            [
                &e["qualification_id"],
                &e["retracted_qualification_id"],
                &e["retracted_event_id"],
            ]
        })
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let acquired = all
        .into_iter()
        .find(|e| {
            e["type"] == "QualificationAcquired"
                && !touched.contains(e["qualification_id"].as_str().unwrap())
                && !touched.contains(e["envelope"]["event_id"].as_str().unwrap())
        })
        .expect("an acquisition nothing later touches");
    let mut args = vec![
        "--insurer".to_owned(),
        acquired["insurer_number"].as_str().unwrap().to_owned(),
        "--number".to_owned(),
        acquired["card_number"].as_str().unwrap().to_owned(),
        "--on".to_owned(),
        acquired["acquired_on"].as_str().unwrap().to_owned(),
    ];
    for (flag, field) in [("--symbol", "card_symbol"), ("--branch", "branch")] {
        if let Some(v) = acquired[field].as_str() {
            args.extend([flag.to_owned(), v.to_owned()]);
        }
    }
    (args, acquired)
}

/// The server answers eligibility for the acquisition with the
/// qualification it made, copay and all.
fn check_eligibility(server: &Server, events: &[&Event], framing: &str) {
    let (args, acquired) = untouched_acquisition(events);
    let mut all = vec!["eligibility", "--server", server.url.as_str()];
    all.extend(args.iter().map(String::as_str));
    let o = qledger(&all);
    assert_eq!(
        o.code(),
        Some(0),
        "{framing}: {args:?}: {}{}",
        o.stdout,
        o.stderr
    );
    let answer: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(answer["status"], "found", "{framing}: {answer:#}");
    assert_eq!(
        answer["on"], acquired["acquired_on"],
        "{framing}: {answer:#}"
    );
    let q = answer["qualifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["qualification_id"] == acquired["qualification_id"])
        .unwrap_or_else(|| {
            panic!(
                "{framing}: {} is not in the answer: {answer:#}",
                acquired["qualification_id"]
            )
        });
    assert_eq!(
        q["event_id"], acquired["envelope"]["event_id"],
        "{framing}: {q:#}"
    );
    assert_eq!(
        q["insurer_number"], acquired["insurer_number"],
        "{framing}: {q:#}"
    );
    assert_eq!(
        q["card_number"], acquired["card_number"],
        "{framing}: {q:#}"
    );
    assert_eq!(
        q["acquired_on"], acquired["acquired_on"],
        "{framing}: {q:#}"
    );
    assert_eq!(
        q["copay_percent"], acquired["copay_percent"],
        "{framing}: {q:#}"
    );
    assert_eq!(q["lost_on"], Value::Null, "{framing}: {q:#}");
}

#[test]
fn python_publishers_on_the_inbound_topic_reach_the_views_of_a_running_server() {
    require_python_packages();
    let broker = Broker::start();
    let prefix = unique_topic("python-e2e");
    let inbound = format!("{prefix}.inbound");
    let events_topic = format!("{prefix}.events");
    let dead_letter_topic = format!("{prefix}.dead-letters");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qledger.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap = \"{bootstrap}\"\npartitions = {PARTITIONS}\nreplication_factor = 1\n\
             events_topic = \"{events_topic}\"\ninbound_topic = \"{inbound}\"\n\
             dead_letter_topic = \"{dead_letter_topic}\"\nnotices_topic = \"{prefix}.notices\"\n\
             projector_group = \"{prefix}.projector\"\nrelay_group = \"{prefix}.relay\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n",
            bootstrap = broker.bootstrap,
        ),
    )
    .unwrap();

    // Two disjoint sets of persons, one per framing.
    let events: Vec<Event> = sample::population(&SampleConfig {
        persons: PERSONS,
        ..SampleConfig::default()
    })
    .collect();
    let half = sample::link_number(PERSONS / 2);
    let (single_object, confluent): (Vec<&Event>, Vec<&Event>) = events
        .iter()
        .partition(|e| e.envelope.link.as_str() < half.as_str());
    assert!(!single_object.is_empty() && !confluent.is_empty());
    let links = |set: &[&Event]| -> BTreeSet<String> {
        set.iter().map(|e| e.envelope.link.to_string()).collect()
    };
    assert!(links(&single_object).is_disjoint(&links(&confluent)));
    let single_object_file = dir.path().join("single-object.jsonl");
    let confluent_file = dir.path().join("confluent.jsonl");
    write_events(&single_object_file, &single_object);
    write_events(&confluent_file, &confluent);

    let views = dir.path().join("views");
    let server = Server::start(&["--config", path(&config), "--data", path(&views)]);
    let registry = format!("{}/schema-registry", server.url);

    publish_single_object(
        &broker.bootstrap,
        &inbound,
        &single_object_file,
        single_object.len(),
    );
    publish_confluent(
        &registry,
        &broker.bootstrap,
        &inbound,
        &confluent_file,
        confluent.len(),
    );
    let producer: BaseProducer = broker.client_config().create().unwrap();
    producer
        .send(
            BaseRecord::to(&inbound)
                .key(GARBAGE_KEY)
                .payload(GARBAGE_VALUE)
                .headers(OwnedHeaders::new().insert(Header {
                    key: GARBAGE_HEADER.0,
                    value: Some(GARBAGE_HEADER.1),
                })),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();

    // Every person is in the views.
    let mut all_links = links(&single_object);
    all_links.extend(links(&confluent));
    server.wait_projected(all_links.iter().map(String::as_str));
    check_eligibility(&server, &single_object, "single-object encoding");
    check_eligibility(&server, &confluent, "Confluent wire format");

    // The relay appended every event once, as sent, keyed by its link
    // number; the projectors dead-lettered none.
    let log = connect(&broker, &events_topic);
    let expected: BTreeMap<_, _> = events.iter().map(|e| (e.envelope.event_id, e)).collect();
    let deadline = Instant::now() + PROJECTED_WITHIN;
    let relayed = loop {
        let records = read_all(&log);
        let published = records
            .iter()
            .filter(|r| {
                avro::decode(&r.value)
                    .is_ok_and(|e| e.envelope.source.as_str() != "qledger.notifier")
            })
            .count();
        if published >= events.len() || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let mut seen = BTreeSet::new();
    let mut published_notices = BTreeSet::new();
    for r in &relayed {
        assert_eq!(r.defect, None, "{}:{}", r.partition, r.offset);
        let event = avro::decode(&r.value)
            .unwrap_or_else(|e| panic!("{}:{} does not decode: {e}", r.partition, r.offset));
        if event.envelope.source.as_str() == "qledger.notifier" {
            // The ledger's own notifier, publishing the sample's notices.
            assert!(event.event_type().is_notice_progress(), "{event:?}");
            if let ledger::event::Payload::NoticePublished(n) = &event.payload {
                published_notices.insert(n.notice_id);
            }
            continue;
        }
        let sent = expected
            .get(&event.envelope.event_id)
            .unwrap_or_else(|| panic!("an event nobody sent: {event:?}"));
        assert_eq!(&&event, sent);
        assert_eq!(r.event_id, event.envelope.event_id);
        assert_eq!(r.key, event.envelope.link.as_str().as_bytes());
        assert!(
            seen.insert(event.envelope.event_id),
            "{} twice",
            event.envelope.event_id
        );
    }
    assert_eq!(seen.len(), events.len(), "every event relayed");
    // Each notice the notifier recorded as published is on the notices
    // topic, as JSON keyed by the person, under its notice id.
    let on_topic: BTreeMap<_, _> = read_all(&connect(&broker, &format!("{prefix}.notices")))
        .into_iter()
        .map(|r| (r.event_id, r))
        .collect();
    for id in &published_notices {
        let record = on_topic
            .get(id)
            .unwrap_or_else(|| panic!("notice {id} is not on the notices topic"));
        let notice: Value = serde_json::from_slice(&record.value).unwrap();
        assert_eq!(notice["notice_id"], id.to_string());
        assert_eq!(
            notice["link"].as_str().unwrap().as_bytes(),
            record.key.as_slice()
        );
    }
    let letters = qledger(&["dead-letters", "--server", &server.url]);
    assert_eq!(letters.code(), Some(0), "{}", letters.stderr);
    assert_eq!(
        serde_json::from_str::<Value>(&letters.stdout).unwrap()["count"],
        0,
        "the projectors' dead letters: {}",
        letters.stdout
    );

    // The garbage, and only it, is on the dead-letter topic, unchanged.
    let dead = connect(&broker, &dead_letter_topic);
    let deadline = Instant::now() + PROJECTED_WITHIN;
    let letters = loop {
        let records = read_all(&dead);
        if !records.is_empty() || Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(letters.len(), 1, "dead letters: {letters:#?}");
    let letter = &letters[0];
    assert_eq!(letter.key, GARBAGE_KEY);
    assert_eq!(letter.value, GARBAGE_VALUE);
    let reason = header(letter, REASON_HEADER)
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .unwrap_or_else(|| panic!("no {REASON_HEADER}: {letter:#?}"));
    assert!(!reason.trim().is_empty(), "an empty reason");
    let source = String::from_utf8_lossy(header(letter, SOURCE_HEADER).unwrap()).into_owned();
    assert!(source.starts_with(&format!("{inbound}/")), "{source}");
    assert_eq!(header(letter, GARBAGE_HEADER.0), Some(GARBAGE_HEADER.1));

    server.stop();
}
