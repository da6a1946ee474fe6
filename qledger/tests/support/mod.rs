//! Shared by the integration tests: the `qledger` binary run as a user
//! would, a `qledger serve` process on a socket, a test PKI, and the plain
//! JSON form of Avro data that other implementations take.
#![allow(dead_code)]

pub mod auth;
pub mod cards;
pub mod pki;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use apache_avro::types::Value as Avro;
use serde_json::{json, Value};

/// How long a server may take to project what was sent to it.
pub const PROJECTED_WITHIN: Duration = Duration::from_secs(60);

/// Runs the `qledger` binary, with no settings from the test's environment.
pub fn qledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("QLEDGER_CONFIG")
        .env_remove("QLEDGER_KAFKA_BOOTSTRAP")
        .stdin(Stdio::null())
        .output()
        .expect("run qledger")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `qledger serve` process listening on a free loopback port; killed on
/// drop unless [stopped](Server::stop).
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    logs: Option<JoinHandle<Vec<String>>>,
}

impl Server {
    /// `qledger serve ARGS --listen 127.0.0.1:0`, once it says where it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with(args, &[])
    }

    /// Like [`Server::start`], with extra environment variables.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = args.to_vec();
        all.extend(["--no-auth", "--plain-http"]);
        Server::spawn(&all, env)
    }

    /// `qledger serve ARGS` with authentication on (the data directory's
    /// token file, unless ARGS name another), over plain HTTP on loopback.
    pub fn start_secured(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut all = args.to_vec();
        all.push("--plain-http");
        Server::spawn(&all, env)
    }

    /// `qledger serve ARGS` as given (TLS settings among them): `url` is
    /// `https://…` when it serves TLS.
    pub fn start_raw(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(args, env)
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qledger"))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .env_remove("QLEDGER_CONFIG")
            .env_remove("QLEDGER_KAFKA_BOOTSTRAP")
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start qledger serve");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut before = Vec::new();
        let url = lines.by_ref().map_while(Result::ok).find_map(|l| {
            let url = l
                .split_whitespace()
                .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                .map(|w| w.trim_end_matches('/').to_owned());
            before.push(l);
            url
        });
        let Some(url) = url else {
            let _ = child.kill();
            panic!("the server never said where it listens: {before:?}");
        };
        let logs = std::thread::spawn(move || lines.map_while(Result::ok).collect());
        Server {
            child: Some(child),
            url,
            logs: Some(logs),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
    }

    /// Waits until every person of `links` is in the server's views.
    pub fn wait_projected<'a>(&self, links: impl IntoIterator<Item = &'a str>) {
        let deadline = Instant::now() + PROJECTED_WITHIN;
        let links: BTreeSet<&str> = links.into_iter().collect();
        for link in links {
            loop {
                let o = qledger(&["history", link, "--server", &self.url]);
                if o.status.code() == Some(0) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{link} never projected within {PROJECTED_WITHIN:?}: {}{}",
                    text(&o.stdout),
                    text(&o.stderr)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// Waits for the process to end on its own (a crash), up to `within`.
    pub fn wait_exit(mut self, within: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("serve did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One HTTP/1.1 exchange over a fresh connection: status and JSON body
    /// (`Value::Null` when the body is not JSON).
    pub fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.try_http(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// [`Server::http`], with the connection's failure as an error.
    pub fn try_http(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        self.try_http_as(None, method, path, body)
    }

    /// [`Server::http`] with `Authorization: Bearer TOKEN` when given.
    pub fn http_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.try_http_as(token, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn try_http_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Value)> {
        http_to(self.addr(), token, method, path, body)
    }

    /// SIGTERM, and a clean exit within a minute; the server's log lines
    /// (standard error) after its first.
    pub fn stop(mut self) -> Vec<String> {
        let mut child = self.child.take().expect("running");
        let term = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(term.success(), "kill -TERM {}", child.id());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let logs = self.logs.take().unwrap().join().unwrap();
                panic!("serve did not stop within a minute of SIGTERM: {logs:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let logs = self.logs.take().unwrap().join().unwrap();
        assert!(status.success(), "serve exited with {status}: {logs:#?}");
        logs
    }
}

/// One HTTP/1.1 exchange with `addr` over a fresh connection.
pub fn http_to(
    addr: &str,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        addr,
        body.len()
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    // Bodies are short; a chunked one is a single chunk.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split_once("\r\n")
            .map(|(_, rest)| rest)
            .unwrap_or(body)
    } else {
        body
    };
    let end = body.rfind(['}', ']']).map(|i| i + 1).unwrap_or(0);
    Ok((
        status,
        serde_json::from_str(&body[..end]).unwrap_or(Value::Null),
    ))
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An Avro value as the plain JSON datum fastavro and the Python `avro`
/// library take: records as objects, unions as the bare value (or null),
/// enums as symbols, `date` as days, `timestamp-micros` as microseconds,
/// `uuid` as text, `bytes` as an array of byte values.
pub fn datum(v: &Avro) -> Value {
    match v {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => json!(b),
        Avro::Int(n) | Avro::Date(n) => json!(n),
        Avro::Long(n) | Avro::TimestampMicros(n) => json!(n),
        Avro::String(s) => json!(s),
        Avro::Uuid(u) => json!(u.to_string()),
        Avro::Bytes(b) => json!(b),
        Avro::Enum(_, symbol) => json!(symbol),
        Avro::Union(_, inner) => datum(inner),
        Avro::Array(items) => Value::Array(items.iter().map(datum).collect()),
        Avro::Record(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, v)| (name.clone(), datum(v)))
                .collect(),
        ),
        other => panic!("the contract has no {other:?}; teach datum() its JSON form"),
    }
}
