//! Prometheus metrics at `GET /metrics` (text exposition format):
//!
//! | metric | labels | what |
//! | --- | --- | --- |
//! | `qledger_http_requests_total` | method, route, status | requests answered |
//! | `qledger_http_request_duration_seconds` | method, route | time to answer (histogram) |
//! | `qledger_projector_lag_events` | partition | events in the log the projector has not applied (partitions this process projects) |
//! | `qledger_log_end_offset` | partition | events in the log |
//! | `qledger_dead_letters` | | events the projector could not apply |
//! | `qledger_log_events` | | events in the log, all partitions |
//! | `qledger_log_bytes` | | bytes of the embedded log on disk (absent with Kafka) |
//!
//! Labels are route templates (`/v1/eligibility/card/{serial}`), never the
//! values in a path or query: no personal data reaches a metric. The ledger
//! gauges are read when scraped.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::service::{Ledger, PartitionLag};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    partition: u32,
}

fn latency_histogram() -> Histogram {
    // 100 µs to ~6.5 s.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// The registry and the metrics the HTTP layer and the scrape fill.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    lag: Family<PartitionLabels, Gauge>,
    end_offset: Family<PartitionLabels, Gauge>,
    dead_letters: Gauge,
    log_events: Gauge,
    log_bytes: Gauge,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("qledger")),
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            lag: Family::default(),
            end_offset: Family::default(),
            dead_letters: Gauge::default(),
            log_events: Gauge::default(),
            log_bytes: Gauge::default(),
        };
        {
            let mut r = metrics.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register(
                "http_requests",
                "HTTP requests answered, by route template and status",
                metrics.requests.clone(),
            );
            r.register(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by route template",
                metrics.latency.clone(),
            );
            r.register(
                "projector_lag_events",
                "Events in the log not yet applied, per partition this process projects",
                metrics.lag.clone(),
            );
            r.register(
                "log_end_offset",
                "Events in the log, per partition",
                metrics.end_offset.clone(),
            );
            r.register(
                "dead_letters",
                "Events the projector could not apply",
                metrics.dead_letters.clone(),
            );
            r.register(
                "log_events",
                "Events in the log, all partitions",
                metrics.log_events.clone(),
            );
            r.register(
                "log_bytes",
                "Bytes of the embedded log on disk",
                metrics.log_bytes.clone(),
            );
        }
        metrics
    }

    /// Counts one answered request.
    pub fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Reads the ledger's gauges and encodes everything.
    pub fn scrape(&self, ledger: &Ledger) -> Result<String, crate::service::ServiceError> {
        let lags = ledger.projection_lag()?;
        self.set_lag(&lags);
        self.dead_letters
            .set(gauge(ledger.views().dead_letter_count()? as u64));
        let events: u64 = lags.iter().map(|l| l.end).sum();
        self.log_events.set(gauge(events));
        if let Some(bytes) = ledger.embedded_log_dir().map(|d| dir_size(&d)) {
            self.log_bytes.set(gauge(bytes));
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map_err(|e| crate::service::ServiceError::Internal(e.to_string()))?;
        Ok(out)
    }

    fn set_lag(&self, lags: &[PartitionLag]) {
        for l in lags {
            let labels = PartitionLabels {
                partition: l.partition,
            };
            self.end_offset.get_or_create(&labels).set(gauge(l.end));
            if l.projected_here {
                self.lag.get_or_create(&labels).set(gauge(l.lag()));
            } else {
                self.lag.remove(&labels);
            }
        }
    }
}

fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Bytes of the files under `dir` (not following links).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}
