//! `qledger-bench kafka-import`: `qledger import` of a generated CSV batch
//! file into a Kafka events topic, against the raw producer rate measured in
//! the same run on the same cluster: an idempotent librdkafka producer
//! (`acks=all`) sending the same pre-encoded records, keyed and with the same
//! headers, and waiting for every delivery. The cluster is librdkafka's mock
//! cluster, in process over TCP, so both sides pay the same broker.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ledger::log::kafka::{KafkaConfig, KafkaLog, EVENT_ID_HEADER};
use ledger::log::{AppendRequest, EventLog};
use qledger::import::{CsvEvents, Format, ImportOptions, Importer};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

use crate::{grouped, rate, write_batch_csv, IMPORT_TARGET};

pub(crate) fn run(seed: u64, partitions: u32, rows: u64, chunk: usize, dir: &Path) -> Result<()> {
    let csv = dir.join("batch.csv");
    write_batch_csv(&csv, seed, rows)?;
    let requests = prepare(&csv)?;
    let events = requests.len() as u64;
    eprintln!(
        "qledger-bench kafka-import: {events} events, {partitions} partitions, chunk {chunk}"
    );

    let mock: MockCluster<'static, DefaultProducerContext> =
        MockCluster::new(1).context("starting the mock cluster")?;
    for topic in ["raw", "import"] {
        mock.create_topic(topic, partitions as i32, 1)
            .with_context(|| format!("creating topic {topic}"))?;
    }

    eprintln!("  raw producer");
    let raw = raw_produce(&mock.bootstrap_servers(), partitions, &requests)?;
    drop(requests);

    eprintln!("  import");
    let log = Arc::new(
        KafkaLog::connect(KafkaConfig {
            topic: "import".into(),
            partitions,
            delivery_timeout: Duration::from_secs(120),
            ..KafkaConfig::new(mock.bootstrap_servers())
        })
        .context("connecting the import log")?,
    );
    let input = std::io::BufReader::new(
        std::fs::File::open(&csv).with_context(|| format!("opening {}", csv.display()))?,
    );
    let started = Instant::now();
    let summary = Importer::new(
        log.clone(),
        ImportOptions {
            batch: chunk,
            ..ImportOptions::default()
        },
    )
    .import(input, Format::Csv, &mut ())
    .context("importing the CSV")?;
    let import = started.elapsed();
    let stored: u64 = (0..partitions)
        .map(|p| log.end_offset(p))
        .sum::<Result<u64, _>>()?;
    if summary.accepted != events || stored != events {
        bail!(
            "the import accepted {} and the topic holds {stored}; the raw pass sent {events}",
            summary.accepted
        );
    }

    let (raw_rate, import_rate) = (rate(events, raw), rate(events, import));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nqledger-bench kafka-import: {events} events, {partitions} partitions, chunk {chunk}, \
         seed {seed}, librdkafka mock cluster (1 broker)"
    );
    let _ = writeln!(
        t,
        "{:<40} {:>8} {:>11} {:>8}",
        "phase", "seconds", "events/s", "vs raw"
    );
    let _ = writeln!(
        t,
        "{:<40} {:>8.2} {:>11} {:>8}",
        "raw producer (pre-encoded, acks=all)",
        raw.as_secs_f64(),
        grouped(raw_rate),
        "100 %"
    );
    let _ = writeln!(
        t,
        "{:<40} {:>8.2} {:>11} {:>7.1} %",
        "qledger import (CSV → KafkaLog)",
        import.as_secs_f64(),
        grouped(import_rate),
        100.0 * import_rate / raw_rate
    );
    let _ = writeln!(
        t,
        "import target {} events/s: {}",
        grouped(IMPORT_TARGET),
        if import_rate >= IMPORT_TARGET {
            "met"
        } else {
            "MISSED"
        }
    );
    print!("{t}");
    Ok(())
}

/// The CSV's rows as the records the import appends (untimed).
fn prepare(csv: &Path) -> Result<Vec<AppendRequest>> {
    let input = std::io::BufReader::new(
        std::fs::File::open(csv).with_context(|| format!("opening {}", csv.display()))?,
    );
    let mut out = Vec::new();
    for parsed in CsvEvents::new(input, ImportOptions::default().source)? {
        let parsed = parsed?;
        let event = parsed
            .event
            .map_err(|e| anyhow::anyhow!("{}: {e}", parsed.at))?;
        out.push(qledger::service::append_request(&event)?);
    }
    Ok(out)
}

/// Sends every record with an idempotent producer and waits for all
/// deliveries; the time taken.
fn raw_produce(bootstrap: &str, partitions: u32, requests: &[AppendRequest]) -> Result<Duration> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("creating the raw producer")?;
    let started = Instant::now();
    for r in requests {
        let id = r.event_id.hyphenated().to_string();
        let mut headers = OwnedHeaders::new_with_capacity(r.headers.len() + 1);
        for (key, value) in &r.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_slice()),
            });
        }
        headers = headers.insert(Header {
            key: EVENT_ID_HEADER,
            value: Some(id.as_bytes()),
        });
        let partition = ledger::log::partitioner::partition_for(&r.key, partitions);
        let mut record = BaseRecord::to("raw")
            .partition(partition as i32)
            .key(r.key.as_slice())
            .payload(r.value.as_slice())
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(500));
                }
                Err((e, _)) => bail!("raw send: {e}"),
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .context("waiting for the raw deliveries")?;
    let took = started.elapsed();
    let stored: i64 = (0..partitions as i32)
        .map(|p| {
            producer
                .client()
                .fetch_watermarks("raw", p, Duration::from_secs(10))
                .map(|(_, high)| high)
        })
        .sum::<Result<i64, _>>()?;
    if stored != requests.len() as i64 {
        bail!("the raw topic holds {stored} of {} records", requests.len());
    }
    Ok(took)
}
