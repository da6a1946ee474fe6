//! A real Kafka-compatible broker for tests: [tansu](https://crates.io/crates/tansu)
//! in its own process, on a free loopback port, storing into SQLite in a
//! temporary directory.
//!
//! ```no_run
//! let broker = kafka_harness::Broker::start();
//! let topic = kafka_harness::unique_topic("events");
//! // … connect clients to `broker.bootstrap` …
//! # let _ = (broker, topic);
//! ```
//!
//! With `QLEDGER_TEST_KAFKA_BOOTSTRAP` set, [`Broker::start`] uses that broker
//! (shared by every test; nothing is spawned), so tests must name their topics
//! with [`unique_topic`]. Otherwise it runs the tansu binary from
//! `QLEDGER_TANSU`, else [`DEFAULT_TANSU`], else `tansu` on the `PATH`, and
//! kills it when the [`Broker`] is dropped. No broker at all is a panic, never
//! a skipped test.
//!
//! The storage engine is SQLite (tansu's `libsql` feature, which
//! `scripts/setup` builds in), not `memory://`: tansu 0.6's in-memory engine
//! answers ListOffsets(latest) with the base offset of the partition's last
//! batch plus one, not the offset after its last record, so every batch of
//! more than one record makes the high watermark lag (the ledger's
//! `end_offset` and reads stop short). `QLEDGER_TANSU_STORAGE` picks another
//! engine URL, e.g. `memory://tansu/`, to see that.

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tempfile::{TempDir, TempPath};

/// An external broker to use instead of spawning one (`host:port[,…]`).
pub const BOOTSTRAP_ENV: &str = "QLEDGER_TEST_KAFKA_BOOTSTRAP";
/// The tansu binary to spawn.
pub const TANSU_ENV: &str = "QLEDGER_TANSU";
/// Where `scripts/setup` installs tansu.
pub const DEFAULT_TANSU: &str = "/var/cache/qledger/tansu/bin/tansu";
/// tansu's storage engine URL, instead of SQLite in a temporary directory.
pub const STORAGE_ENV: &str = "QLEDGER_TANSU_STORAGE";

/// How long a broker may take to answer metadata requests.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// Spawn attempts, in case another process takes the free port first.
const ATTEMPTS: usize = 3;

/// A running broker; a spawned one is killed on drop.
#[derive(Debug)]
pub struct Broker {
    /// `bootstrap.servers` for clients.
    pub bootstrap: String,
    child: Option<Child>,
    log: Option<TempPath>,
    /// The spawned broker's working directory, where SQLite keeps its file.
    data: Option<TempDir>,
}

impl Broker {
    /// The broker of `QLEDGER_TEST_KAFKA_BOOTSTRAP`, or a new tansu process, ready
    /// to answer metadata requests. Panics, naming the cause (and the broker's
    /// log), if there is none or it does not come up.
    pub fn start() -> Broker {
        if let Some(bootstrap) = std::env::var(BOOTSTRAP_ENV).ok().filter(|b| !b.is_empty()) {
            if let Err(e) = wait_ready(&bootstrap, None) {
                panic!("the broker at {BOOTSTRAP_ENV}={bootstrap} is not answering: {e}");
            }
            return Broker {
                bootstrap,
                child: None,
                log: None,
                data: None,
            };
        }
        let tansu = find_tansu().unwrap_or_else(|| {
            panic!(
                "tansu not found: run scripts/setup, or set {TANSU_ENV} / {BOOTSTRAP_ENV} \
                 (looked at ${TANSU_ENV}, {DEFAULT_TANSU} and the PATH)"
            )
        });
        let mut failures = Vec::new();
        for _ in 0..ATTEMPTS {
            match spawn(&tansu) {
                Ok(broker) => return broker,
                // Another process took the free port before tansu: again.
                Err(e) if e.contains("Address already in use") => failures.push(e),
                Err(e) => {
                    failures.push(e);
                    break;
                }
            }
        }
        panic!(
            "tansu ({}) did not come up (scripts/setup installs the pinned version):\n{}",
            tansu.display(),
            failures.join("\n")
        );
    }

    /// The spawned broker's log file.
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The end of the spawned broker's log (empty for an external broker).
    pub fn log_tail(&self) -> String {
        self.log.as_deref().map(tail).unwrap_or_default()
    }

    /// A client config for this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        config
    }

    /// Creates `topic` with `partitions` partitions (replication factor 1)
    /// through the admin API and waits until its metadata shows them all.
    /// Panics if the broker refuses.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .unwrap_or_else(|e| panic!("admin client for {}: {e}", self.bootstrap));
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = block_on(admin.create_topics([&new], &options))
            .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
        for result in results {
            if let Err((name, code)) = result {
                panic!("creating topic {name}: {code}");
            }
        }
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let found = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .ok()
                .and_then(|m| {
                    let t = m.topics().iter().find(|t| t.name() == topic)?;
                    Some(t.partitions().len())
                });
            if found == Some(partitions as usize) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "topic {topic} shows {found:?} partitions, not {partitions}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Keep the log and data of a broker whose test failed.
        if std::thread::panicking() {
            if let Some(log) = self.log.take() {
                match log.keep() {
                    Ok(path) => eprintln!("tansu log kept at {}", path.display()),
                    Err(e) => eprintln!("could not keep the tansu log: {e}"),
                }
            }
            if let Some(data) = self.data.take() {
                eprintln!("tansu data kept in {}", data.keep().display());
            }
        }
    }
}

/// A topic name no other test uses: `prefix-<random>`.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

fn find_tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(TANSU_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    if Path::new(DEFAULT_TANSU).is_file() {
        return Some(PathBuf::from(DEFAULT_TANSU));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("tansu"))
        .find(|p| p.is_file())
}

/// Spawns tansu on a free port and waits for it; the reason (with the log's
/// path and tail) if it does not come up.
fn spawn(tansu: &Path) -> Result<Broker, String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    // tansu listens on IPv4 only: advertise 127.0.0.1, never localhost.
    let url = format!("tcp://127.0.0.1:{port}");
    let log = tempfile::Builder::new()
        .prefix("tansu-")
        .suffix(".log")
        .tempfile()
        .map_err(|e| format!("no log file: {e}"))?;
    let (file, log) = log.into_parts();
    let data = tempfile::Builder::new()
        .prefix("tansu-data-")
        .tempdir()
        .map_err(|e| format!("no data directory: {e}"))?;
    // A relative sqlite:// URL is a file in the working directory.
    let storage = std::env::var(STORAGE_ENV)
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "sqlite://tansu.db".into());
    let stderr = file
        .try_clone()
        .map_err(|e| format!("log file {}: {e}", log.display()))?;
    let child = Command::new(tansu)
        .arg("broker")
        .args(["--storage-engine", &storage])
        .args(["--listener-url", &url])
        .args(["--advertised-listener-url", &url])
        .current_dir(data.path())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", tansu.display()))?;
    let mut broker = Broker {
        bootstrap: format!("127.0.0.1:{port}"),
        child: Some(child),
        log: Some(log),
        data: Some(data),
    };
    let bootstrap = broker.bootstrap.clone();
    match wait_ready(&bootstrap, broker.child.as_mut()) {
        Ok(()) => Ok(broker),
        Err(e) => {
            let path = broker.log.as_deref().map(Path::to_path_buf);
            let tail = broker.log_tail();
            // Keep the log for the panic message to point at.
            if let Some(log) = broker.log.take() {
                let _ = log.keep();
            }
            drop(broker);
            Err(format!(
                "tansu on {bootstrap}: {e}; log {}:\n{tail}",
                path.map(|p| p.display().to_string()).unwrap_or_default()
            ))
        }
    }
}

/// Waits until `bootstrap` accepts TCP connections and answers a metadata
/// request, for at most [`READY_WITHIN`]; fails early if `child` exits.
fn wait_ready(bootstrap: &str, mut child: Option<&mut Child>) -> Result<(), String> {
    let deadline = Instant::now() + READY_WITHIN;
    let addrs: Vec<SocketAddr> = bootstrap
        .split(',')
        .filter_map(|a| a.trim().to_socket_addrs().ok())
        .flatten()
        .collect();
    if addrs.is_empty() {
        return Err(format!("{bootstrap:?} names no address"));
    }
    let mut last = String::from("not tried");
    let mut consumer: Option<BaseConsumer> = None;
    while Instant::now() < deadline {
        if let Some(child) = child.as_deref_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}"));
            }
        }
        let connected = addrs
            .iter()
            .any(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok());
        if !connected {
            last = "no connection".into();
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let client = match &consumer {
            Some(c) => c,
            None => {
                let created = ClientConfig::new()
                    .set("bootstrap.servers", bootstrap)
                    .set("group.id", "kafka-harness.ready")
                    .create::<BaseConsumer>()
                    .map_err(|e| format!("cannot create a client: {e}"))?;
                consumer.insert(created)
            }
        };
        match client.fetch_metadata(None, Duration::from_secs(1)) {
            Ok(metadata) if !metadata.brokers().is_empty() => return Ok(()),
            Ok(_) => last = "metadata lists no broker".into(),
            Err(e) => last = format!("metadata request: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("not ready within {READY_WITHIN:?} ({last})"))
}

/// Runs a future (rdkafka's admin calls) to completion on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// The last 4 KiB of a file.
fn tail(path: &Path) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_end(&mut text);
    }
    let start = text.len().saturating_sub(4096);
    String::from_utf8_lossy(&text[start..]).into_owned()
}
