//! End to end on a real, separate Kafka-compatible broker process (tansu):
//! `qledger serve --config FILE` over Kafka, events in over HTTP and from
//! an ordinary Kafka producer on the inbound topic (published while the
//! server was down: a restarted server resumes), queries over HTTP, then
//! `verify` and `replay` from Kafka after the server stopped.
//!
//! Needs the broker: `scripts/setup` installs tansu, `.ci/run` starts it
//! (`QLEDGER_TEST_KAFKA_BOOTSTRAP`); otherwise the harness starts one itself, and
//! fails loudly if it cannot.
#![cfg(feature = "kafka")]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kafka_harness::{unique_topic, Broker};
use ledger::event::{avro, json};
use ledger::sample::{self, SampleConfig};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

mod support;
use support::{qledger, text, Server};

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// The value after `name` on the line that starts with it.
fn field(output: &str, name: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in {output}"))
}

#[test]
fn serve_over_kafka_restart_then_verify_and_replay_from_kafka() {
    // The group settings hand partitions out within seconds.
    let broker = Broker::start();
    let prefix = unique_topic("e2e");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("views");
    let config = dir.path().join("qledger.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbootstrap = \"{bootstrap}\"\npartitions = 3\nreplication_factor = 1\n\
             events_topic = \"{prefix}.events\"\ninbound_topic = \"{prefix}.inbound\"\n\
             dead_letter_topic = \"{prefix}.dead-letters\"\nnotices_topic = \"{prefix}.notices\"\n\
             projector_group = \"{prefix}.projector\"\nrelay_group = \"{prefix}.relay\"\n\
             [kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n",
            bootstrap = broker.bootstrap,
        ),
    )
    .unwrap();

    // Half the sample population over HTTP, half from an insurer's producer.
    let events: Vec<_> = sample::population(&SampleConfig {
        persons: 20,
        ..SampleConfig::default()
    })
    .collect();
    let (over_http, over_kafka): (Vec<_>, Vec<_>) = events
        .iter()
        .partition(|e| e.envelope.link.as_str() < "L000000000010");
    let file = dir.path().join("http.jsonl");
    let mut out = std::fs::File::create(&file).unwrap();
    for e in &over_http {
        writeln!(out, "{}", json::to_value(e)).unwrap();
    }
    drop(out);

    let server = Server::start(&["--config", path(&config), "--data", path(&data)]);
    let published = qledger(&["publish", path(&file), "--server", &server.url]);
    assert_eq!(
        published.status.code(),
        Some(0),
        "{}",
        text(&published.stderr)
    );
    assert!(
        text(&published.stdout).contains(" 0 rejected"),
        "{}",
        text(&published.stdout)
    );
    let http_links: BTreeSet<&str> = over_http.iter().map(|e| e.envelope.link.as_str()).collect();
    server.wait_projected(http_links);
    // A restarted server resumes from its views' offsets.
    server.stop();

    let producer: BaseProducer = broker.client_config().create().unwrap();
    for e in &over_kafka {
        let value = avro::encode(e).unwrap();
        producer
            .send(
                BaseRecord::to(&format!("{prefix}.inbound"))
                    .key(e.envelope.link.as_str().as_bytes())
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let server = Server::start(&["--config", path(&config), "--data", path(&data)]);
    let links: BTreeSet<&str> = events.iter().map(|e| e.envelope.link.as_str()).collect();
    server.wait_projected(links);
    server.stop();

    let verified = qledger(&["verify", "--config", path(&config), "--data", path(&data)]);
    let verified_out = text(&verified.stdout);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{verified_out}{}",
        text(&verified.stderr)
    );
    let live = field(&verified_out, "live");

    let replayed = qledger(&[
        "replay",
        "--config",
        path(&config),
        "--into",
        path(&dir.path().join("rebuilt")),
    ]);
    let replayed_out = text(&replayed.stdout);
    assert_eq!(
        replayed.status.code(),
        Some(0),
        "{replayed_out}{}",
        text(&replayed.stderr)
    );
    assert_eq!(
        field(&replayed_out, "digest"),
        live,
        "replay from Kafka == live views"
    );
    assert_eq!(field(&replayed_out, "records"), events.len().to_string());
}

#[test]
fn import_publishes_a_batch_file_to_the_events_topic() {
    let broker = Broker::start();
    let prefix = unique_topic("import");
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = sample::population(&SampleConfig {
        persons: 200,
        ..SampleConfig::default()
    })
    .collect();
    let csv = dir.path().join("batch.csv");
    let mut writer = qledger::import::CsvWriter::new(Vec::new(), true).unwrap();
    let mut rows = 0u64;
    for e in &events {
        if writer.write(e).unwrap() {
            rows += 1;
        }
    }
    std::fs::write(&csv, writer.into_inner().unwrap()).unwrap();
    assert!(rows > 500, "{rows} rows");

    let topic = format!("{prefix}.events");
    let import = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_qledger"))
            .args(["import", path(file), "--kafka", &broker.bootstrap])
            .env("QLEDGER_KAFKA_EVENTS_TOPIC", &topic)
            .env("QLEDGER_KAFKA_PARTITIONS", "3")
            .env("QLEDGER_KAFKA_REPLICATION_FACTOR", "1")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = import(&csv);
    let summary = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{summary}{}", text(&out.stderr));
    assert!(
        summary.contains(&format!("{rows} accepted, 0 duplicates, 0 rejected")),
        "{summary}"
    );

    // Every row is on the topic, readable, stamped by the ledger.
    let log = ledger::log::kafka::KafkaLog::connect(ledger::log::kafka::KafkaConfig {
        topic: topic.clone(),
        partitions: 3,
        ..ledger::log::kafka::KafkaConfig::new(broker.bootstrap.clone())
    })
    .unwrap();
    let mut read = 0u64;
    for p in 0..3 {
        let end = ledger::log::EventLog::end_offset(&log, p).unwrap();
        for r in ledger::log::EventLog::read(&log, p, 0, end as usize).unwrap() {
            assert!(r.defect.is_none());
            avro::decode(&r.value).unwrap();
            read += 1;
        }
    }
    assert_eq!(read, rows);
}
