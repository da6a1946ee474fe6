//! A publisher in another language: `tests/interop/publish_avro.py` encodes
//! events with the Apache Avro reference library (Python) from the committed
//! `.avsc` files, in single-object encoding, and publishes them to a real
//! broker (tansu, see `kafka-harness`); every message must decode with
//! [`ledger::event::avro::decode`] to the event it came from, byte for byte
//! what the ledger itself would write, on the partition the ledger would pick.
//!
//! The publisher fingerprints the specification's Parsing Canonical Form;
//! with `--fingerprint legacy` it writes the fingerprint qledger wrote before
//! it followed the specification, which must still decode.
//!
//! Needs `python3` with `pip install -r tests/interop/requirements.txt`; fails
//! (never skips) without it.
#![cfg(feature = "kafka")]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_harness::{unique_topic, Broker};
use ledger::event::{avro, examples, Event};
use ledger::log::kafka::EVENT_ID_HEADER;
use ledger::log::partitioner;
use ledger::sample::{self, SampleConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use uuid::Uuid;

const PARTITIONS: u32 = 4;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the ledger crate is in the workspace")
        .to_path_buf()
}

/// `python3`, with the interop requirements importable; panics otherwise.
fn python() -> &'static str {
    let python = "python3";
    let check = Command::new(python)
        .args(["-c", "import avro.io, avro.schema, confluent_kafka"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}; install Python 3"));
    assert!(
        check.status.success(),
        "the Python interop publisher's dependencies are missing: \
         pip install -r tests/interop/requirements.txt\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// Every example event (one per type) and a few generated persons' events.
fn events() -> Vec<Event> {
    let config = SampleConfig {
        persons: 6,
        ..SampleConfig::default()
    };
    let mut events = examples::all();
    events.extend(sample::population(&config).take(40));
    events
}

/// The event as a line of the publisher's input: its Avro record as plain
/// JSON (unions as the bare value or null, enums as symbols, dates as days,
/// timestamps as µs, uuids as text).
fn json_line(event: &Event) -> String {
    let datum =
        serde_json::Value::try_from(avro::to_value(event)).expect("an event's Avro value is JSON");
    serde_json::json!({
        "type": event.event_type().name(),
        "key": event.envelope.link.to_string(),
        "datum": datum,
    })
    .to_string()
}

/// Runs the publisher on `events` to `topic`, with `extra` arguments.
fn publish(broker: &Broker, topic: &str, events: &[Event], extra: &[&str]) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    for event in events {
        writeln!(file, "{}", json_line(event)).unwrap();
    }
    file.flush().unwrap();
    let root = workspace();
    let output = Command::new(python())
        .arg(root.join("tests/interop/publish_avro.py"))
        .args(["--bootstrap", &broker.bootstrap, "--topic", topic])
        .arg("--schemas")
        .arg(root.join("schemas"))
        .arg("--events")
        .arg(file.path())
        .args(extra)
        .output()
        .expect("run publish_avro.py");
    assert!(
        output.status.success(),
        "publish_avro.py failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        printed.trim(),
        events.len().to_string(),
        "the count printed"
    );
}

/// A message read back: partition, key, value, the event id header.
struct Received {
    partition: u32,
    key: Vec<u8>,
    value: Vec<u8>,
    event_id_header: Option<Vec<u8>>,
}

/// The first `n` messages of `topic`, read with a plain consumer.
fn consume(broker: &Broker, topic: &str, n: usize) -> Vec<Received> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", unique_topic("interop-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment
            .add_partition_offset(topic, partition as i32, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} messages\n{}",
            received.len(),
            broker.log_tail()
        );
        let message = match consumer.poll(Duration::from_millis(500)) {
            None => continue,
            Some(Err(e)) => panic!("consuming {topic}: {e}"),
            Some(Ok(m)) => m,
        };
        received.push(Received {
            partition: message.partition() as u32,
            key: message.key().expect("a key").to_vec(),
            value: message.payload().expect("a payload").to_vec(),
            event_id_header: message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == EVENT_ID_HEADER))
                .and_then(|h| h.value)
                .map(<[u8]>::to_vec),
        });
    }
    received
}

/// Each message decodes to the event it came from, each event once.
fn decode_all<'a>(events: &'a [Event], received: &[Received]) -> Vec<(&'a Event, Vec<u8>)> {
    let by_id: HashMap<Uuid, &Event> = events.iter().map(|e| (e.envelope.event_id, e)).collect();
    assert_eq!(by_id.len(), events.len(), "distinct event ids");
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for m in received {
        let decoded = avro::decode(&m.value).unwrap_or_else(|e| {
            panic!(
                "a message on partition {} does not decode: {e}",
                m.partition
            )
        });
        let id = decoded.envelope.event_id;
        let original = by_id
            .get(&id)
            .unwrap_or_else(|| panic!("unexpected event {id}"));
        assert_eq!(&decoded, *original);
        assert!(seen.insert(id), "event {id} twice");
        assert_eq!(m.key, original.envelope.link.to_string().as_bytes());
        assert_eq!(
            m.partition,
            partitioner::partition_for(&m.key, PARTITIONS),
            "murmur2, as the ledger partitions"
        );
        assert_eq!(
            m.event_id_header.as_deref(),
            Some(id.to_string().as_bytes())
        );
        out.push((*original, m.value.clone()));
    }
    assert_eq!(seen.len(), events.len(), "every event");
    out
}

#[test]
fn events_published_by_the_python_avro_library_decode_to_the_same_events() {
    let broker = Broker::start();
    let topic = unique_topic("interop");
    broker.create_topic(&topic, PARTITIONS as i32);
    let events = events();
    publish(&broker, &topic, &events, &[]);
    for (event, bytes) in decode_all(&events, &consume(&broker, &topic, events.len())) {
        assert_eq!(
            bytes,
            avro::encode(event).unwrap(),
            "the bytes the ledger writes for {}",
            event.envelope.event_id
        );
    }
}

#[test]
fn events_with_the_legacy_fingerprint_still_decode() {
    let broker = Broker::start();
    let topic = unique_topic("interop-legacy");
    broker.create_topic(&topic, PARTITIONS as i32);
    let events = examples::all();
    publish(&broker, &topic, &events, &["--fingerprint", "legacy"]);
    for (event, bytes) in decode_all(&events, &consume(&broker, &topic, events.len())) {
        let ours = avro::encode(event).unwrap();
        assert_eq!(bytes[10..], ours[10..], "the same datum");
    }
}
