//! The projectors' consumer group: which events partitions this process
//! projects, when several processes share a Kafka log.
//!
//! The group ([`KafkaSettings::projector_group`]) decides only *who*
//! projects a partition. *Where* a projector resumes is the offset stored in
//! its own views, in the same RocksDB write batch as the rows it produced
//! (see [`projectors::runtime`]); the group's committed offsets are written
//! from the views every few seconds for lag monitoring (`kafka-consumer-groups
//! --describe`) and never read. The member consumes nothing itself: its
//! assigned partitions are paused at once, and the projector threads read
//! the log from the views' offsets. On revocation the partition's batch in
//! flight is finished before the partition is handed over; since every
//! process writes only its own views, a late batch cannot harm another's.
//!
//! Each process's views hold only the partitions it has projected, so a
//! query must reach the process that owns the person's partition (or one
//! process with every partition); see the README.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ledger::log::Partition;
use projectors::{Assignment, Projector};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset as KafkaOffset, TopicPartitionList};

use super::KafkaSettings;

/// How often the views' offsets are committed to the group.
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// Keeps the [`Assignment`] in step with the group's rebalances.
struct Rebalancer {
    topic: String,
    assignment: Arc<Assignment>,
}

impl Rebalancer {
    fn partitions(&self, list: &TopicPartitionList) -> Vec<Partition> {
        list.elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| Partition::try_from(e.partition()).ok())
            .collect()
    }
}

impl ClientContext for Rebalancer {}

impl ConsumerContext for Rebalancer {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = self.partitions(list);
            self.assignment.revoke(&partitions);
            tracing::info!(?partitions, "projector partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // The member only holds the partitions; the projectors read them.
            if let Err(e) = consumer.pause(list) {
                tracing::warn!(error = %e, "cannot pause the group member's partitions");
            }
            let partitions = self.partitions(list);
            self.assignment.assign(&partitions);
            tracing::info!(?partitions, "projector partitions assigned");
        }
    }
}

/// Joins the projectors' group and keeps `assignment` up to date on a
/// thread until `stop` is set; then leaves the group (its partitions go to
/// the other members).
pub fn join(
    settings: &KafkaSettings,
    projector: Arc<Projector>,
    assignment: Arc<Assignment>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, KafkaError> {
    let config = settings.group_consumer_config(&settings.projector_group);
    let context = Rebalancer {
        topic: settings.events_topic.clone(),
        assignment: Arc::clone(&assignment),
    };
    let consumer: BaseConsumer<Rebalancer> =
        BaseConsumer::from_config_and_context(&config, context)?;
    consumer.subscribe(&[settings.events_topic.as_str()])?;
    let topic = settings.events_topic.clone();
    let handle = std::thread::Builder::new()
        .name("projector-group".into())
        .spawn(move || {
            let mut committed = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                    // Fetched before the pause took: the projectors read it.
                    tracing::debug!(partition = m.partition(), "group member got a record");
                }
                if committed.elapsed() >= COMMIT_EVERY {
                    committed = Instant::now();
                    commit_progress(&consumer, &topic, &projector, &assignment);
                }
            }
            commit_progress(&consumer, &topic, &projector, &assignment);
            consumer.unsubscribe();
            assignment.revoke(&assignment.owned());
        })
        .expect("spawn projector-group thread");
    Ok(handle)
}

/// Commits the views' offsets of the owned partitions to the group.
fn commit_progress(
    consumer: &BaseConsumer<Rebalancer>,
    topic: &str,
    projector: &Projector,
    assignment: &Assignment,
) {
    let mut list = TopicPartitionList::new();
    for partition in assignment.owned() {
        match projector.views().offset(partition) {
            Ok(0) => {}
            Ok(next) => {
                let _ = list.add_partition_offset(
                    topic,
                    partition as i32,
                    KafkaOffset::Offset(next as i64),
                );
            }
            Err(e) => tracing::warn!(partition, error = %e, "cannot read a view offset"),
        }
    }
    if list.count() > 0 {
        if let Err(e) = consumer.commit(&list, CommitMode::Async) {
            tracing::debug!(error = %e, "committing progress for lag monitoring");
        }
    }
}
