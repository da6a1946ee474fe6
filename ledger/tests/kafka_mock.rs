//! The Kafka event log against librdkafka's mock cluster, over TCP, in process:
//! the shared contract suite, a broker going down and coming back, injected
//! produce errors, and record times derived alike by every reader.
//!
//! `cargo test -p ledger --features kafka --test kafka_mock`
#![cfg(feature = "kafka")]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ledger::domain::time::RecordTime;
use ledger::log::contract::{self, Capabilities};
use ledger::log::kafka::{KafkaConfig, KafkaLog, EVENT_ID_HEADER, RECORD_TIME_HEADER};
use ledger::log::{AppendRequest, Appended, EventLog, LogError, Position, RecordTimePolicy};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use uuid::Uuid;

type Mock = MockCluster<'static, DefaultProducerContext>;

const PARTITIONS: u32 = 4;

/// A config for `topic` on `mock`, failing fast enough for tests.
fn config(mock: &Mock, topic: &str) -> KafkaConfig {
    KafkaConfig {
        topic: topic.to_string(),
        partitions: PARTITIONS,
        delivery_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        properties: vec![
            // Reconnect soon after a broker comes back.
            ("reconnect.backoff.max.ms".into(), "200".into()),
            ("retry.backoff.max.ms".into(), "200".into()),
        ],
        ..KafkaConfig::new(mock.bootstrap_servers())
    }
}

/// A new topic on `mock` and a log on it.
fn log_on(mock: &Mock, topic: &str) -> KafkaLog {
    mock.create_topic(topic, PARTITIONS as i32, 1).unwrap();
    KafkaLog::connect(config(mock, topic)).unwrap()
}

fn new_position(outcome: Appended) -> Position {
    match outcome {
        Appended::New(p) => p,
        Appended::Duplicate(p) => panic!("Kafka cannot tell duplicates, yet reported one at {p:?}"),
    }
}

#[test]
fn contract_suite_on_the_mock_cluster() {
    let mock = MockCluster::new(3).unwrap();
    let made = AtomicUsize::new(0);
    contract::run_with(
        Capabilities {
            dedups_event_ids: false,
        },
        &|| {
            let topic = format!("contract-{}", made.fetch_add(1, Ordering::Relaxed));
            Box::new(log_on(&mock, &topic))
        },
    );
}

#[test]
fn an_existing_topic_with_another_partition_count_is_refused() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("three", 3, 1).unwrap();
    match KafkaLog::connect(config(&mock, "three")) {
        Err(LogError::PartitionCountMismatch {
            existing: 3,
            requested: PARTITIONS,
        }) => {}
        other => panic!("expected a partition count mismatch, got {other:?}"),
    }
}

#[test]
fn a_topic_the_cluster_cannot_create_is_unavailable_not_a_hang() {
    // The mock cluster has no CreateTopics; connect must say so and return.
    let mock = MockCluster::new(1).unwrap();
    let started = Instant::now();
    match KafkaLog::connect(config(&mock, "absent")) {
        Err(LogError::Unavailable(reason)) => assert!(reason.contains("absent"), "{reason}"),
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_broker_outage_fails_appends_retryably_and_loses_nothing() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "outage");
    let key = b"LINK-000001";
    let a = contract::request(key, b"a");
    let b = contract::request(key, b"b");
    let c = contract::request(key, b"c");
    let at = new_position(log.append(vec![a.clone()]).unwrap()[0]);

    mock.broker_down(1).unwrap();
    let started = Instant::now();
    match log.append(vec![b.clone()]) {
        Err(LogError::Unavailable(reason)) => {
            assert!(reason.contains(&b.event_id.to_string()), "{reason}")
        }
        other => panic!("expected the append to fail as unavailable, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(3 + 10),
        "bounded by the delivery timeout, took {waited:?}"
    );

    mock.broker_up(1).unwrap();
    let c_at = new_position(log.append(vec![c.clone()]).unwrap()[0]);
    // The caller's retry of the failed event.
    let b_at = new_position(log.append(vec![b.clone()]).unwrap()[0]);
    assert_eq!(
        (c_at.offset, b_at.offset),
        (at.offset + 1, at.offset + 2),
        "the failed record was not stored"
    );
    let read = contract::read_all(&log, at.partition);
    let ids: Vec<Uuid> = read.iter().map(|r| r.event_id).collect();
    assert_eq!(ids, [a.event_id, c.event_id, b.event_id]);
    assert!(read.windows(2).all(|w| w[0].record_time < w[1].record_time));
}

#[test]
fn injected_produce_errors_are_retried_into_exactly_one_copy() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "flaky");
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let keys = contract::keys_on(&log, 2, 3);
    let batch: Vec<AppendRequest> = (0..9)
        .map(|i| contract::request(&keys[i % 3], &[i as u8]))
        .collect();
    let sent: Vec<Uuid> = batch.iter().map(|r| r.event_id).collect();
    let at: Vec<Position> = log
        .append(batch)
        .unwrap()
        .into_iter()
        .map(new_position)
        .collect();
    assert_eq!(
        at.iter().map(|p| p.offset).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
    let read = contract::read_all(&log, 2);
    assert_eq!(read.iter().map(|r| r.event_id).collect::<Vec<_>>(), sent);
    assert_eq!(log.end_offset(2).unwrap(), 9);
}

#[test]
fn record_times_are_the_same_whichever_offset_a_reader_starts_from() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "times");
    // Producers' times, as when importing history.
    log.set_record_time_policy(RecordTimePolicy::CreateTime {
        max_future_micros: 0,
    });
    let key = b"LINK-000042";
    let partition = log.partition_for(key);
    // 1500 records stamped in one millisecond push the next millisecond's on.
    let t0 = RecordTime::from_micros(1_712_102_400_000_000);
    let mut batch: Vec<AppendRequest> = (0..1500)
        .map(|_| AppendRequest {
            timestamp: Some(t0),
            ..contract::request(key, b"v")
        })
        .collect();
    batch.push(AppendRequest {
        timestamp: Some(RecordTime::from_micros(t0.micros() + 1_000)),
        ..contract::request(key, b"w")
    });
    let at: Vec<Position> = log
        .append(batch)
        .unwrap()
        .into_iter()
        .map(new_position)
        .collect();
    assert_eq!(at[0].record_time, t0);
    assert_eq!(at[1499].record_time.micros(), t0.micros() + 1_499);
    assert_eq!(at[1500].record_time.micros(), t0.micros() + 1_500);

    // Readers that remember nothing, starting at different offsets.
    for from in [0, 1, 999, 1500] {
        let fresh = KafkaLog::connect(config(&mock, "times")).unwrap();
        let read = fresh.read(partition, from, 2000).unwrap();
        assert_eq!(read.len(), 1501 - from as usize);
        for r in &read {
            assert_eq!(
                r.record_time, at[r.offset as usize].record_time,
                "from {from}"
            );
        }
    }
}

#[test]
fn records_written_past_the_ledger_are_defects_and_a_skewed_clock_moves_nothing() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "foreign");
    let key = b"LINK-000009";
    let partition = log.partition_for(key);
    let ours = new_position(log.append(vec![contract::request(key, b"ours")]).unwrap()[0]);

    // An ordinary client writing straight to the events topic with a clock a
    // year ahead: one record without the event id header, one with an
    // unreadable id and a forged, unreadable stamp.
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    let ahead = ours.record_time.micros() / 1000 + 365 * 86_400_000;
    producer
        .send(
            BaseRecord::to("foreign")
                .partition(partition as i32)
                .key(&key[..])
                .payload(&b"theirs"[..])
                .timestamp(ahead)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "event-type",
                    value: Some(&b"QualificationLost"[..]),
                })),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer
        .send(
            BaseRecord::to("foreign")
                .partition(partition as i32)
                .key(&key[..])
                .payload(&b"garbled id"[..])
                .timestamp(ahead)
                .headers(
                    OwnedHeaders::new()
                        .insert(Header {
                            key: EVENT_ID_HEADER,
                            value: Some(&b"not a uuid"[..]),
                        })
                        .insert(Header {
                            key: RECORD_TIME_HEADER,
                            value: Some(&b"tomorrow"[..]),
                        }),
                ),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let later = new_position(log.append(vec![contract::request(key, b"later")]).unwrap()[0]);

    let read = log.read(partition, 0, 10).unwrap();
    assert_eq!(read.len(), 4);
    assert_eq!(read[1].value, b"theirs");
    assert_eq!(read[1].event_id, Uuid::nil());
    assert_eq!(
        read[1].headers,
        [("event-type".to_string(), b"QualificationLost".to_vec())]
    );
    assert_eq!((read[2].event_id, read[2].headers.len()), (Uuid::nil(), 0));
    for foreign in &read[1..3] {
        let defect = foreign
            .defect
            .as_deref()
            .expect("a record past the ledger is a defect");
        assert!(defect.contains(RECORD_TIME_HEADER), "{defect}");
    }
    assert_eq!(
        (read[0].defect.as_ref(), read[3].defect.as_ref()),
        (None, None)
    );
    let times: Vec<i64> = read.iter().map(|r| r.record_time.micros()).collect();
    let first = ours.record_time.micros();
    assert_eq!(
        &times[..3],
        [first, first + 1, first + 2],
        "a year ahead moved nothing"
    );
    assert_eq!(times[3], later.record_time.micros());
    assert!(
        later.record_time.micros() < RecordTime::now().micros() + 60_000_000,
        "the next record of the partition is not dragged into the future"
    );
}

#[test]
fn create_time_stamps_are_clamped_to_the_ledger_clock() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "clamped");
    log.set_record_time_policy(RecordTimePolicy::CreateTime {
        max_future_micros: 1_000_000,
    });
    let key = b"LINK-000077";
    let past = RecordTime::from_micros(1_712_102_400_000_000);
    let future = RecordTime::from_micros(RecordTime::now().micros() + 86_400_000_000);
    let at: Vec<Position> = log
        .append(vec![
            AppendRequest {
                timestamp: Some(past),
                ..contract::request(key, b"history")
            },
            AppendRequest {
                timestamp: Some(future),
                ..contract::request(key, b"skewed")
            },
        ])
        .unwrap()
        .into_iter()
        .map(new_position)
        .collect();
    assert_eq!(at[0].record_time, past, "a producer's past time is kept");
    let bound = RecordTime::now().micros() + 1_000_000;
    assert!(
        at[1].record_time.micros() <= bound,
        "clamped to the clock + 1 s"
    );
    // A fresh reader computes the same.
    let fresh = KafkaLog::connect(config(&mock, "clamped")).unwrap();
    let read = fresh.read(at[0].partition, 0, 10).unwrap();
    assert_eq!(
        read.iter().map(|r| r.record_time).collect::<Vec<_>>(),
        at.iter().map(|p| p.record_time).collect::<Vec<_>>()
    );
}

#[test]
fn a_broker_going_down_mid_stream_loses_no_acknowledged_event() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("mid-stream", PARTITIONS as i32, 1)
        .unwrap();
    let log = KafkaLog::connect(KafkaConfig {
        delivery_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(2),
        ..config(&mock, "mid-stream")
    })
    .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acknowledged, retried) = std::thread::scope(|s| {
        let appender = s.spawn(|| {
            let (mut acknowledged, mut retried) = (Vec::new(), HashSet::new());
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let batch = vec![
                    contract::request(format!("LINK-{}", i % 5).as_bytes(), b"v"),
                    contract::request(format!("LINK-{}", (i + 1) % 5).as_bytes(), b"v"),
                ];
                // The caller's rule: retry the same events until acknowledged.
                let give_up = Instant::now() + Duration::from_secs(30);
                loop {
                    assert!(Instant::now() < give_up, "appends never recovered");
                    match log.append(batch.clone()) {
                        Ok(out) => {
                            for (r, a) in batch.iter().zip(out) {
                                acknowledged.push((r.event_id, new_position(a)));
                            }
                            break;
                        }
                        Err(LogError::Unavailable(_)) => {
                            retried.extend(batch.iter().map(|r| r.event_id));
                        }
                        Err(e) => panic!("only unavailability is expected: {e}"),
                    }
                }
                i += 1;
            }
            (acknowledged, retried)
        });
        std::thread::sleep(Duration::from_millis(300));
        mock.broker_down(1).unwrap();
        // Longer than any timeout of the log: the append in progress fails,
        // whether it is producing or reading its records back.
        std::thread::sleep(Duration::from_secs(3));
        mock.broker_up(1).unwrap();
        std::thread::sleep(Duration::from_millis(1000));
        stop.store(true, Ordering::Relaxed);
        appender.join().unwrap()
    });
    assert!(
        !retried.is_empty(),
        "the outage outlasted the log's timeouts"
    );

    let mut copies: std::collections::HashMap<Uuid, Vec<Position>> = Default::default();
    for partition in 0..PARTITIONS {
        let read = contract::read_all(&log, partition);
        for (i, r) in read.iter().enumerate() {
            assert_eq!(r.offset, i as u64, "partition {partition} is dense");
            copies.entry(r.event_id).or_default().push(Position {
                partition,
                offset: r.offset,
                record_time: r.record_time,
            });
        }
    }
    for (id, at) in &acknowledged {
        let found = copies.get(id).expect("an acknowledged event is in the log");
        assert!(
            found.contains(at),
            "event {id} is where it was acknowledged"
        );
    }
    for (id, found) in &copies {
        assert!(
            found.len() == 1 || retried.contains(id),
            "event {id} stored {} times without a failed append",
            found.len()
        );
    }
    let twice = copies.values().filter(|f| f.len() > 1).count();
    eprintln!(
        "{} events acknowledged, {} retried, {twice} stored twice",
        acknowledged.len(),
        retried.len()
    );
}

#[test]
fn a_reader_told_a_record_time_derives_the_rest_from_there() {
    let mock = MockCluster::new(1).unwrap();
    let log = log_on(&mock, "told");
    let key = b"LINK-000123";
    let partition = log.partition_for(key);
    let at: Vec<Position> = log
        .append((0..3).map(|i| contract::request(key, &[i])).collect())
        .unwrap()
        .into_iter()
        .map(new_position)
        .collect();

    // A fresh reader, told what offset 1's time was, does not re-derive it
    // from offset 0: a (deliberately wrong) later time shows through.
    let fresh = KafkaLog::connect(config(&mock, "told")).unwrap();
    let told = RecordTime::from_micros(at[2].record_time.micros() + 1_000_000);
    fresh.remember_record_time(partition, 1, told);
    let read = fresh.read(partition, 2, 1).unwrap();
    assert_eq!(read[0].record_time, told.next());

    // Told the truth, it agrees with every other reader.
    let honest = KafkaLog::connect(config(&mock, "told")).unwrap();
    honest.remember_record_time(partition, 1, at[1].record_time);
    assert_eq!(
        honest.read(partition, 2, 1).unwrap()[0].record_time,
        at[2].record_time
    );
}

#[test]
fn a_reader_that_must_not_create_the_topic_says_it_is_absent() {
    let mock = MockCluster::new(1).unwrap();
    match KafkaLog::connect(KafkaConfig {
        create_topic: false,
        ..config(&mock, "never-made")
    }) {
        Err(LogError::NoSuchTopic(topic)) => assert_eq!(topic, "never-made"),
        other => panic!("expected no such topic, got {other:?}"),
    }
}
