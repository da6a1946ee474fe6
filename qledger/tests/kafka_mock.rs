//! The ledger over Kafka, on librdkafka's mock cluster over TCP: the relay
//! from the inbound topic (skewed producer clocks, dead letters), the
//! projectors' consumer group (partitions shared, handed over), and replay
//! from Kafka agreeing with the live views and with the embedded log.
//!
//! `cargo test -p qledger --features kafka --test kafka_mock`
#![cfg(feature = "kafka")]

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ledger::domain::RecordTime;
use ledger::event::{avro, Event, Payload};
use ledger::log::embedded::EmbeddedLog;
use ledger::log::{AppendRequest, EventLog, RecordTimePolicy};
use ledger::sample::{self, SampleConfig};
use projectors::Assignment;
use qledger::kafka::relay::{Relay, FIELD_HEADER, REASON_HEADER, SOURCE_HEADER};
use qledger::kafka::{group, KafkaSettings, Topics};
use qledger::service::{Ledger, Submitted, Wait};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use tempfile::TempDir;

type Mock = MockCluster<'static, DefaultProducerContext>;

const PARTITIONS: u32 = 4;

/// Settings for `mock`, every topic created on the mock (it has no CreateTopics).
fn settings(mock: &Mock, prefix: &str) -> KafkaSettings {
    let settings = KafkaSettings {
        bootstrap: mock.bootstrap_servers(),
        partitions: PARTITIONS,
        events_topic: format!("{prefix}.events"),
        inbound_topic: format!("{prefix}.inbound"),
        dead_letter_topic: format!("{prefix}.dead-letters"),
        notices_topic: format!("{prefix}.notices"),
        projector_group: format!("{prefix}.projector"),
        relay_group: format!("{prefix}.relay"),
        delivery_timeout_ms: 5_000,
        request_timeout_ms: 5_000,
        // Hand partitions over within seconds, not the default 45 s.
        properties: [
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        ..KafkaSettings::default()
    };
    for topic in [
        &settings.events_topic,
        &settings.inbound_topic,
        &settings.dead_letter_topic,
        &settings.notices_topic,
    ] {
        mock.create_topic(topic, PARTITIONS as i32, 1).unwrap();
    }
    settings
}

fn population(persons: u64) -> Vec<Event> {
    sample::population(&SampleConfig {
        persons,
        ..SampleConfig::default()
    })
    .collect()
}

fn producer(mock: &Mock) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap()
}

fn read_all(log: &dyn EventLog) -> Vec<ledger::log::LogRecord> {
    let mut out = Vec::new();
    for p in 0..log.partitions() {
        let end = log.end_offset(p).unwrap();
        out.extend(log.read(p, 0, end as usize).unwrap());
    }
    out
}

fn until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn header<'a>(record: &'a ledger::log::LogRecord, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| std::str::from_utf8(v).unwrap())
}

#[test]
fn the_relay_stamps_with_the_ledger_clock_and_dead_letters_what_it_cannot_relay() {
    let mock = MockCluster::new(1).unwrap();
    let settings = settings(&mock, "relay");
    let topics = Topics::connect(&settings).unwrap();
    let events: Arc<dyn EventLog> = Arc::new(topics.events);
    let dead: Arc<dyn EventLog> = Arc::new(topics.dead_letters);
    let relay = Relay::new(&settings, Arc::clone(&events), Arc::clone(&dead)).unwrap();

    let good = population(3);
    let producer = producer(&mock);
    let year_ahead = RecordTime::now().micros() / 1000 + 365 * 86_400_000;
    let send = |key: &[u8], value: &[u8]| {
        producer
            .send(
                BaseRecord::to(&settings.inbound_topic)
                    .key(key)
                    .payload(value)
                    .timestamp(year_ahead),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    };
    for event in &good {
        send(
            event.envelope.link.as_str().as_bytes(),
            &avro::encode(event).unwrap(),
        );
    }
    send(b"L-GARBAGE", b"not avro at all");
    let misfiled = &good[0];
    send(b"L-SOMEONE-ELSE", &avro::encode(misfiled).unwrap());
    producer.flush(Duration::from_secs(10)).unwrap();
    let sent = good.len() as u64 + 2;

    let before = RecordTime::now();
    let mut total = qledger::kafka::relay::RelayStats::default();
    until(
        "the relay to take every inbound record",
        Duration::from_secs(30),
        || {
            total += relay.step(Duration::from_millis(200)).unwrap();
            total.relayed + total.dead_lettered == sent
        },
    );
    let after = RecordTime::now();
    assert_eq!((total.relayed, total.dead_lettered), (good.len() as u64, 2));

    let relayed = read_all(events.as_ref());
    assert_eq!(relayed.len(), good.len());
    for r in &relayed {
        assert!(r.defect.is_none());
        assert!(
            before <= r.record_time && r.record_time <= after,
            "record time {} is the ledger's clock, not the producer's year-ahead one",
            r.record_time
        );
        let event = avro::decode(&r.value).unwrap();
        assert_eq!(r.event_id, event.envelope.event_id);
        assert_eq!(r.key, event.envelope.link.as_str().as_bytes());
    }
    let ids: BTreeSet<_> = relayed.iter().map(|r| r.event_id).collect();
    assert_eq!(ids, good.iter().map(|e| e.envelope.event_id).collect());

    let letters = read_all(dead.as_ref());
    assert_eq!(letters.len(), 2);
    let garbage = letters.iter().find(|r| r.key == b"L-GARBAGE").unwrap();
    assert_eq!(garbage.value, b"not avro at all", "kept unchanged");
    assert!(header(garbage, REASON_HEADER).unwrap().contains("framing"));
    assert!(header(garbage, SOURCE_HEADER)
        .unwrap()
        .starts_with("relay.inbound/"));
    let wrong_key = letters.iter().find(|r| r.key == b"L-SOMEONE-ELSE").unwrap();
    assert_eq!(header(wrong_key, FIELD_HEADER), Some("envelope.link"));

    // Committed: a new relay in the same group has nothing left to do.
    drop(relay);
    let again = Relay::new(&settings, Arc::clone(&events), dead).unwrap();
    let mut later = qledger::kafka::relay::RelayStats::default();
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        later += again.step(Duration::from_millis(200)).unwrap();
    }
    assert_eq!(later, Default::default(), "nothing relayed twice");
}

#[test]
fn projectors_share_partitions_in_a_group_and_hand_them_over() {
    let mock = MockCluster::new(1).unwrap();
    let settings = settings(&mock, "group");
    let dirs = [TempDir::new().unwrap(), TempDir::new().unwrap()];
    let stop = [
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    ];
    let mut members = Vec::new();
    let mut ledgers = Vec::new();
    for (dir, stop) in dirs.iter().zip(&stop) {
        let topics = Topics::connect(&settings).unwrap();
        let mut ledger = Ledger::with_log(dir.path(), Arc::new(topics.events)).unwrap();
        let assignment = Arc::new(Assignment::none(PARTITIONS));
        ledger.start_projector_assigned(Arc::clone(&assignment));
        let member = group::join(
            &settings,
            Arc::clone(ledger.projector()),
            Arc::clone(&assignment),
            Arc::clone(stop),
        )
        .unwrap();
        members.push((member, assignment));
        ledgers.push(ledger);
    }
    until(
        "both members to be assigned",
        Duration::from_secs(30),
        || {
            let (a, b) = (members[0].1.owned(), members[1].1.owned());
            !a.is_empty() && !b.is_empty() && a.len() + b.len() == PARTITIONS as usize
        },
    );
    let (a, b): (BTreeSet<u32>, BTreeSet<u32>) = (
        members[0].1.owned().into_iter().collect(),
        members[1].1.owned().into_iter().collect(),
    );
    assert!(a.is_disjoint(&b), "{a:?} and {b:?} overlap");

    let events = population(40);
    let submitted = ledgers[0].submit(events.clone(), Wait::Durable).unwrap();
    assert!(submitted
        .iter()
        .all(|s| matches!(s, Submitted::Accepted(_))));
    let log = Arc::clone(ledgers[0].log());
    let ends: Vec<u64> = (0..PARTITIONS)
        .map(|p| log.end_offset(p).unwrap())
        .collect();
    let caught_up = |ledger: &Ledger, owned: &BTreeSet<u32>| {
        (0..PARTITIONS).all(|p| {
            let at = ledger.views().offset(p).unwrap();
            if owned.contains(&p) {
                at == ends[p as usize]
            } else {
                at == 0
            }
        })
    };
    until(
        "each member to project exactly its partitions",
        Duration::from_secs(30),
        || caught_up(&ledgers[0], &a) && caught_up(&ledgers[1], &b),
    );

    // The second member leaves: the first takes every partition over,
    // resuming each from its own views' offsets.
    stop[1].store(true, std::sync::atomic::Ordering::Relaxed);
    let (member, _) = members.pop().unwrap();
    member.join().unwrap();
    let mut gone = ledgers.pop().unwrap();
    gone.shutdown();
    let all: BTreeSet<u32> = (0..PARTITIONS).collect();
    until(
        "the remaining member to own and project everything",
        Duration::from_secs(40),
        || caught_up(&ledgers[0], &all),
    );

    // Its views are exactly a rebuild from Kafka, and a rebuild from an
    // embedded log holding the same records at the same record times.
    let live = replay::digest(ledgers[0].views()).unwrap().0;
    let scratch = TempDir::new().unwrap();
    let from_kafka = replay::rebuild(
        log.as_ref(),
        &scratch.path().join("kafka"),
        &replay::Until::End,
    )
    .unwrap();
    assert_eq!(from_kafka.digest, live, "replay from Kafka == live views");
    let mirror = EmbeddedLog::open(&scratch.path().join("log"), PARTITIONS).unwrap();
    mirror.set_record_time_policy(RecordTimePolicy::CreateTime {
        max_future_micros: i64::MAX / 2,
    });
    for p in 0..PARTITIONS {
        let records = log.read(p, 0, usize::MAX).unwrap();
        let batch = records
            .into_iter()
            .map(|r| AppendRequest {
                key: r.key,
                event_id: r.event_id,
                headers: r.headers,
                value: r.value,
                timestamp: Some(r.record_time),
            })
            .collect();
        mirror.append(batch).unwrap();
    }
    let from_embedded = replay::rebuild(
        &mirror,
        &scratch.path().join("embedded"),
        &replay::Until::End,
    )
    .unwrap();
    assert_eq!(
        from_embedded.digest, live,
        "replay from the embedded log == live views"
    );
    for (member, _) in members {
        stop[0].store(true, std::sync::atomic::Ordering::Relaxed);
        member.join().unwrap();
    }
}

#[test]
fn http_intake_over_kafka_answers_503_in_an_outage_and_loses_nothing() {
    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    let mock = MockCluster::new(1).unwrap();
    let settings = KafkaSettings {
        delivery_timeout_ms: 2_000,
        request_timeout_ms: 2_000,
        ..settings(&mock, "outage")
    };
    let topics = Topics::connect(&settings).unwrap();
    let dir = TempDir::new().unwrap();
    let ledger = Arc::new(Ledger::with_log(dir.path(), Arc::new(topics.events)).unwrap());
    let app = qledger::http::router(
        Arc::clone(&ledger),
        std::sync::Arc::new(qledger::http::Access::open()),
    );
    let event = ledger::event::examples::all().remove(0);
    let body = serde_json::to_vec(&ledger::event::json::to_value(&event)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = || {
        let request = Request::post("/v1/events")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        runtime.block_on(async {
            let response = app.clone().oneshot(request).await.unwrap();
            let status = response.status();
            let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                retry_after,
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
    };

    mock.broker_down(1).unwrap();
    let (status, retry_after, text) = post();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(retry_after.is_some(), "a retryable answer says when");
    assert!(text.contains("/problems/retry"), "{text}");

    mock.broker_up(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, text) = post();
        if status == StatusCode::CREATED {
            assert!(text.contains("\"accepted\""), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "intake never recovered: {text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    ledger.catch_up().unwrap();
    let copies = read_all(ledger.log().as_ref())
        .into_iter()
        .filter(|r| r.event_id == event.envelope.event_id)
        .count();
    assert!(copies >= 1, "the acknowledged event is in the log");
    let history = ledger.history(&event.envelope.link).unwrap();
    assert!(history.is_some(), "and projected");
}

/// A stand-in for an external Confluent registry on a socket, knowing
/// `schemas` (id → schema text), until the returned sender is dropped.
fn external_registry(
    listener: std::net::TcpListener,
    schemas: Vec<(u32, String)>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    use axum::extract::Path;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Json;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let schemas: std::collections::HashMap<u32, String> = schemas.into_iter().collect();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().route(
                "/schemas/ids/{id}",
                get(move |Path(id): Path<u32>| {
                    let found = schemas.get(&id).cloned();
                    async move {
                        match found {
                            Some(schema) => {
                                (StatusCode::OK, Json(serde_json::json!({ "schema": schema })))
                            }
                            None => (
                                StatusCode::NOT_FOUND,
                                Json(serde_json::json!({"error_code": 40403, "message": "not found"})),
                            ),
                        }
                    }
                }),
            );
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
    });
    (stop, thread)
}

#[test]
fn confluent_ids_of_an_external_registry_are_resolved_against_the_contract() {
    let mock = MockCluster::new(1).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let event = ledger::event::examples::all().remove(0);
    let own = ledger::event::avro::Contract::get().current(event.event_type());
    let foreign = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"long"}]}"#;
    let (stop, server) = external_registry(
        listener,
        vec![(77, own.text.to_string()), (78, foreign.to_string())],
    );
    let settings = KafkaSettings {
        schema_registry_url: Some(format!("http://{address}")),
        ..settings(&mock, "external")
    };
    let topics = Topics::connect(&settings).unwrap();
    let events: Arc<dyn EventLog> = Arc::new(topics.events);
    let dead: Arc<dyn EventLog> = Arc::new(topics.dead_letters);
    let relay = Relay::new(&settings, Arc::clone(&events), Arc::clone(&dead)).unwrap();

    let framed = |id: u32| {
        let mut bytes = avro::encode_confluent(&event).unwrap();
        bytes[1..5].copy_from_slice(&id.to_be_bytes());
        bytes
    };
    let producer = producer(&mock);
    let key = event.envelope.link.as_str().as_bytes();
    for id in [77, 78, 79] {
        producer
            .send(
                BaseRecord::to(&settings.inbound_topic)
                    .key(key)
                    .payload(&framed(id)),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let mut total = qledger::kafka::relay::RelayStats::default();
    until("the three records", Duration::from_secs(30), || {
        total += relay.step(Duration::from_millis(200)).unwrap();
        total.relayed + total.dead_lettered == 3
    });
    assert_eq!((total.relayed, total.dead_lettered), (1, 2));
    let relayed = read_all(events.as_ref());
    assert_eq!(avro::decode(&relayed[0].value).unwrap(), event);
    let letters = read_all(dead.as_ref());
    let reasons: Vec<&str> = letters
        .iter()
        .map(|r| header(r, REASON_HEADER).unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("78") && r.contains("not a version")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("79") && r.contains("does not know")),
        "{reasons:?}"
    );

    // The registry goes away: a new id cannot be resolved, the batch is
    // retried, nothing is dead-lettered or lost.
    drop(stop);
    server.join().unwrap();
    producer
        .send(
            BaseRecord::to(&settings.inbound_topic)
                .key(key)
                .payload(&framed(80)),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match relay.step(Duration::from_millis(200)) {
            Err(qledger::kafka::relay::RelayError::Registry(e)) => {
                assert!(e.to_string().contains(&address.to_string()), "{e}");
                break;
            }
            Ok(stats) => assert_eq!(stats, Default::default(), "nothing relayed meanwhile"),
            Err(e) => panic!("expected the registry to be unreachable, got {e}"),
        }
        assert!(Instant::now() < deadline, "the record never came");
    }
    let listener = std::net::TcpListener::bind(address).unwrap();
    let (_stop, _server) = external_registry(listener, vec![(80, own.text.to_string())]);
    let mut later = qledger::kafka::relay::RelayStats::default();
    until("the retried record", Duration::from_secs(30), || {
        later += relay.step(Duration::from_millis(200)).unwrap();
        later.relayed == 1
    });
    assert_eq!(read_all(dead.as_ref()).len(), 2, "no new dead letter");
}

#[test]
fn a_different_event_reusing_an_id_is_dead_lettered_over_kafka() {
    let mock = MockCluster::new(1).unwrap();
    let settings = settings(&mock, "reuse");
    let topics = Topics::connect(&settings).unwrap();
    let dir = TempDir::new().unwrap();
    let mut ledger = Ledger::with_log(dir.path(), Arc::new(topics.events)).unwrap();
    ledger.start_projector();
    let first = population(1).remove(0);
    let mut other = first.clone();
    let Payload::QualificationAcquired(q) = &mut other.payload else {
        panic!("the first sample event is an acquisition")
    };
    q.card_number = "99999".parse().unwrap();
    let wait = Wait::Projected(Duration::from_secs(10));
    let receipts: Vec<Submitted> = [first.clone(), first, other]
        .into_iter()
        .map(|e| ledger.submit(vec![e], wait).unwrap().remove(0))
        .collect();
    let notes: Vec<Option<String>> = receipts
        .iter()
        .map(|s| match s {
            Submitted::Accepted(r) => r.dead_letter.as_ref().map(|d| d.reason.clone()),
            other => panic!("Kafka accepts every append: {other:?}"),
        })
        .collect();
    assert_eq!(notes[0], None, "applied");
    assert_eq!(
        notes[1], None,
        "an identical re-send is a duplicate, applied once"
    );
    let reused = notes[2]
        .as_deref()
        .expect("a different event reusing the id");
    assert!(
        reused.contains("already used by a different event"),
        "{reused}"
    );
}

#[test]
fn views_of_another_log_are_refused_not_resumed() {
    let mock = MockCluster::new(1).unwrap();
    let settings = settings(&mock, "identity");
    let dir = TempDir::new().unwrap();
    {
        let ledger = Ledger::open(dir.path(), PARTITIONS).unwrap();
        ledger.submit(population(2), Wait::Durable).unwrap();
        ledger.catch_up().unwrap();
    }
    let topics = Topics::connect(&settings).unwrap();
    match Ledger::with_log(dir.path(), Arc::new(topics.events)) {
        Err(qledger::service::ServiceError::Views(projectors::ProjectorError::OtherLog {
            built_from,
            log,
            ..
        })) => {
            assert!(built_from.starts_with("embedded:"), "{built_from}");
            assert!(
                log.starts_with("kafka:") && log.ends_with("/identity.events"),
                "{log}"
            );
        }
        other => panic!("expected the views to be refused, got {other:?}"),
    }
    // The same log again is fine.
    Ledger::open(dir.path(), PARTITIONS).unwrap();
}
