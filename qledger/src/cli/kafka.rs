//! `--kafka` / `--config`: the commands' way to a Kafka log of record.
//!
//! Without the `kafka` feature, asking for Kafka is a clear error.

use std::path::Path;

use anyhow::Result;

use super::KafkaArgs;
use crate::service::Ledger;

#[cfg(feature = "kafka")]
pub(super) use enabled::*;

#[cfg(not(feature = "kafka"))]
pub(super) use disabled::*;

#[cfg(feature = "kafka")]
mod enabled {
    use std::sync::Arc;

    use anyhow::Context;
    use ledger::log::kafka::KafkaLog;
    use ledger::log::EventLog;
    use projectors::Assignment;

    use super::*;
    use crate::kafka::relay::Relay;
    use crate::kafka::{group, KafkaSettings, Topics};

    /// The Kafka settings when the command line, the environment or the
    /// settings file names a cluster; `None` for the embedded log.
    pub fn settings(args: &KafkaArgs) -> Result<Option<KafkaSettings>> {
        if args.kafka.is_none() && args.config.is_none() {
            return Ok(None);
        }
        let mut settings =
            KafkaSettings::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
        if let Some(bootstrap) = &args.kafka {
            settings.bootstrap = bootstrap.clone();
        }
        if settings.bootstrap.trim().is_empty() {
            // A settings file without a cluster: the embedded log.
            return Ok(None);
        }
        Ok(Some(settings))
    }

    /// The ledger over Kafka with its views in `data`: topics ensured, the
    /// projectors in their consumer group, the relay from the inbound topic
    /// running. Threads stop when the ledger shuts down.
    pub fn open_ledger(data: &Path, settings: &KafkaSettings) -> Result<Ledger> {
        settings.validate()?;
        let topics = Topics::connect(settings)
            .with_context(|| format!("connecting to Kafka at {}", settings.bootstrap))?;
        let events: Arc<dyn EventLog> = Arc::new(topics.events);
        let dead_letters: Arc<dyn EventLog> = Arc::new(topics.dead_letters);
        let mut ledger = Ledger::with_log(data, Arc::clone(&events))
            .with_context(|| format!("opening the views in {}", data.display()))?;
        ledger.set_notices_log(Arc::new(topics.notices));
        let assignment = Arc::new(Assignment::none(events.partitions()));
        ledger.start_projector_assigned(Arc::clone(&assignment));
        let stop = Arc::clone(ledger.stop_flag());
        let member = group::join(
            settings,
            Arc::clone(ledger.projector()),
            assignment,
            Arc::clone(&stop),
        )
        .context("joining the projectors' consumer group")?;
        ledger.attach(member);
        let relay =
            Relay::new(settings, events, dead_letters).context("starting the inbound relay")?;
        ledger.attach(relay.spawn(stop));
        tracing::info!(
            events = %settings.events_topic,
            inbound = %settings.inbound_topic,
            "serving over Kafka"
        );
        Ok(ledger)
    }

    /// The events topic of the cluster the args name, if any: what import
    /// writes (`create`: made when absent) and replay and verify read.
    pub fn events_log(args: &KafkaArgs, create: bool) -> Result<Option<Box<dyn EventLog>>> {
        let Some(settings) = settings(args)? else {
            return Ok(None);
        };
        let config = ledger::log::kafka::KafkaConfig {
            create_topic: create,
            ..settings.log_config(&settings.events_topic)
        };
        let log = KafkaLog::connect(config)
            .with_context(|| format!("connecting to Kafka at {}", settings.bootstrap))?;
        Ok(Some(Box::new(log)))
    }
}

#[cfg(not(feature = "kafka"))]
mod disabled {
    use anyhow::bail;
    use ledger::log::EventLog;

    use super::*;

    fn refuse(args: &KafkaArgs) -> Result<()> {
        if args.kafka.is_some() {
            bail!("this qledger was built without Kafka support (feature `kafka`)");
        }
        Ok(())
    }

    pub fn settings(args: &KafkaArgs) -> Result<Option<std::convert::Infallible>> {
        refuse(args)?;
        Ok(None)
    }

    pub fn open_ledger(_: &Path, never: &std::convert::Infallible) -> Result<Ledger> {
        match *never {}
    }

    pub fn events_log(args: &KafkaArgs, _create: bool) -> Result<Option<Box<dyn EventLog>>> {
        refuse(args)?;
        Ok(None)
    }
}
