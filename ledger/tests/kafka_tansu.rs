//! The Kafka event log against a real broker in its own process: tansu,
//! spawned by `kafka-harness` (or the broker at `QLEDGER_TEST_KAFKA_BOOTSTRAP`).
//! The shared contract suite, topic creation, a restarted log reading the
//! same record times, and records written by an ordinary Kafka client.
//!
//! `cargo test -p ledger --features kafka --test kafka_tansu`; without a
//! broker these tests fail (run `scripts/setup`), they are never skipped.
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_harness::{unique_topic, Broker};
use ledger::log::contract::{self, Capabilities};
use ledger::log::kafka::{KafkaConfig, KafkaLog, EVENT_ID_HEADER};
use ledger::log::{AppendRequest, Appended, EventLog, LogError, LogRecord, Position};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use uuid::Uuid;

const PARTITIONS: u32 = 3;

/// A config for `topic` on `broker`.
fn config(broker: &Broker, topic: &str, partitions: u32) -> KafkaConfig {
    KafkaConfig {
        topic: topic.to_string(),
        partitions,
        delivery_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        ..KafkaConfig::new(&broker.bootstrap)
    }
}

/// A log on a new topic that `connect` creates.
fn new_log(broker: &Broker, prefix: &str) -> KafkaLog {
    let topic = unique_topic(prefix);
    KafkaLog::connect(config(broker, &topic, PARTITIONS))
        .unwrap_or_else(|e| panic!("connect to {topic}: {e}\n{}", broker.log_tail()))
}

fn new_position(outcome: Appended) -> Position {
    match outcome {
        Appended::New(p) => p,
        Appended::Duplicate(p) => panic!("Kafka cannot tell duplicates, yet reported one at {p:?}"),
    }
}

/// The topic's partition count as the broker's metadata has it.
fn partitions_in_metadata(broker: &Broker, topic: &str) -> Option<usize> {
    let client: BaseConsumer = broker
        .client_config()
        .set("group.id", "kafka-tansu-test")
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    // An unknown topic comes back with an error, or (tansu) with no partitions.
    let found = metadata.topics().iter().find(|t| t.name() == topic)?;
    Some(found.partitions().len()).filter(|n| found.error().is_none() && *n > 0)
}

#[test]
fn contract_suite_on_tansu() {
    let broker = Broker::start();
    contract::run_with(
        Capabilities {
            dedups_event_ids: false,
        },
        &|| Box::new(new_log(&broker, "contract")),
    );
}

#[test]
fn connect_creates_the_topic_with_the_requested_partition_count() {
    let broker = Broker::start();
    let topic = unique_topic("created");
    assert_eq!(
        partitions_in_metadata(&broker, &topic),
        None,
        "not there yet"
    );

    let log = KafkaLog::connect(config(&broker, &topic, 5)).unwrap();
    assert_eq!(log.partitions(), 5);
    assert_eq!(partitions_in_metadata(&broker, &topic), Some(5));
    for partition in 0..5 {
        assert_eq!(log.end_offset(partition).unwrap(), 0);
    }
    assert!(log.end_offset(5).is_err());

    // A second connect accepts the topic as it is, with the same count …
    let again = KafkaLog::connect(config(&broker, &topic, 5)).unwrap();
    assert_eq!(again.partitions(), 5);
    // … and refuses another count rather than repartition.
    match KafkaLog::connect(config(&broker, &topic, 4)) {
        Err(LogError::PartitionCountMismatch {
            existing: 5,
            requested: 4,
        }) => {}
        other => panic!("expected a partition count mismatch, got {other:?}"),
    }
    // A topic created by someone else is used as it is.
    let theirs = unique_topic("precreated");
    broker.create_topic(&theirs, 2);
    let log = KafkaLog::connect(config(&broker, &theirs, 2)).unwrap();
    assert_eq!(log.partitions(), 2);
}

#[test]
fn a_restarted_log_reads_every_record_with_the_same_record_time() {
    let broker = Broker::start();
    let topic = unique_topic("restart");
    let mut acknowledged: Vec<(AppendRequest, Position)> = Vec::new();
    {
        let log = KafkaLog::connect(config(&broker, &topic, PARTITIONS)).unwrap();
        for round in 0..6 {
            let batch: Vec<AppendRequest> = (0..25)
                .map(|i| {
                    let key = format!("LINK-{:04}", (round * 7 + i) % 11);
                    contract::request(key.as_bytes(), format!("{round}/{i}").as_bytes())
                })
                .collect();
            let at = log.append(batch.clone()).unwrap();
            acknowledged.extend(batch.into_iter().zip(at.into_iter().map(new_position)));
        }
        // Everything read back before the restart, so this log has computed
        // (and cached) the times the new one must derive from scratch.
        for partition in 0..PARTITIONS {
            assert!(!contract::read_all(&log, partition).is_empty());
        }
    }

    let restarted = KafkaLog::connect(config(&broker, &topic, PARTITIONS)).unwrap();
    let mut read: BTreeMap<(u32, u64), LogRecord> = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let records = contract::read_all(&restarted, partition);
        assert_eq!(
            restarted.end_offset(partition).unwrap(),
            records.len() as u64
        );
        for r in records {
            read.insert((r.partition, r.offset), r);
        }
    }
    assert_eq!(read.len(), acknowledged.len(), "every record, once");
    for (request, at) in &acknowledged {
        let r = &read[&(at.partition, at.offset)];
        assert_eq!(r.event_id, request.event_id, "{at:?}");
        assert_eq!(r.record_time, at.record_time, "record time of {at:?}");
        assert_eq!((&r.key, &r.value), (&request.key, &request.value));
        assert_eq!(r.headers, request.headers);
    }
    // A reader starting mid-partition, with nothing remembered, agrees too.
    let fresh = KafkaLog::connect(config(&broker, &topic, PARTITIONS)).unwrap();
    for partition in 0..PARTITIONS {
        let end = fresh.end_offset(partition).unwrap();
        for r in fresh.read(partition, end / 2, 1000).unwrap() {
            assert_eq!(
                r.record_time,
                read[&(partition, r.offset)].record_time,
                "{partition}:{}",
                r.offset
            );
        }
    }
}

#[test]
fn a_record_from_a_plain_kafka_producer_is_readable() {
    let broker = Broker::start();
    let log = new_log(&broker, "plain-producer");
    let key = b"LINK-000009";
    let partition = log.partition_for(key);
    let ours = new_position(log.append(vec![contract::request(key, b"ours")]).unwrap()[0]);

    let producer: BaseProducer = broker.client_config().create().unwrap();
    let theirs = Uuid::now_v7();
    producer
        .send(
            BaseRecord::to(log.topic())
                .partition(partition as i32)
                .key(&key[..])
                .payload(&b"theirs"[..])
                .headers(
                    OwnedHeaders::new()
                        .insert(Header {
                            key: "event-type",
                            value: Some(&b"QualificationLost"[..]),
                        })
                        .insert(Header {
                            key: EVENT_ID_HEADER,
                            value: Some(theirs.hyphenated().to_string().as_bytes()),
                        }),
                ),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .send(
            BaseRecord::to(log.topic())
                .partition(partition as i32)
                .key(&key[..])
                .payload(&b"bare"[..]),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let later = new_position(log.append(vec![contract::request(key, b"later")]).unwrap()[0]);
    assert_eq!(later.offset, ours.offset + 3);

    let read = log.read(partition, 0, 10).unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read[1].key, key);
    assert_eq!(read[1].value, b"theirs");
    assert_eq!(read[1].event_id, theirs);
    assert_eq!(
        read[1].headers,
        [("event-type".to_string(), b"QualificationLost".to_vec())]
    );
    assert_eq!(
        (
            read[2].value.as_slice(),
            read[2].event_id,
            read[2].headers.len()
        ),
        (&b"bare"[..], Uuid::nil(), 0)
    );
    // Written past the ledger: flagged for the projector to dead-letter.
    assert!(read[1].defect.is_some() && read[2].defect.is_some());
    assert_eq!(
        (read[0].defect.as_ref(), read[3].defect.as_ref()),
        (None, None)
    );
    assert!(read.windows(2).all(|w| w[0].record_time < w[1].record_time));
    assert_eq!(
        (read[0].record_time, read[3].record_time),
        (ours.record_time, later.record_time)
    );
    // A fresh reader computes the same times.
    let fresh = KafkaLog::connect(config(&broker, log.topic(), PARTITIONS)).unwrap();
    assert_eq!(fresh.read(partition, 0, 10).unwrap(), read);
}
