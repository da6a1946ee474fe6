//! Link-completion notices end to end: a `qledger serve` process on a socket,
//! e-mailing through a real SMTP server (aiosmtpd, `tests/interop/
//! smtp_sink.py`, a separate process), with the holder's address sealed in
//! the log and its key destroyed once the notice is settled — then searched
//! for in every byte of the data directory. Also: retries with back-off and
//! parking, and crashes on either side of the hand-off to the relay (with
//! the `failpoints` feature).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;
use support::cards::*;
use support::{qledger, text, Server};

const ADDRESS: &str = "hanako.yamada@example.jp";
const SETTLED_WITHIN: Duration = Duration::from_secs(60);

/// The SMTP server: aiosmtpd writing each message into a Maildir.
struct SmtpSink {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpSink {
    fn start(maildir: &Path) -> SmtpSink {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop/smtp_sink.py");
        let mut child = Command::new(&python)
            .arg(script)
            .args(["--listen", "127.0.0.1:0", "--maildir"])
            .arg(maildir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!(
                    "smtp_sink.py did not start (pip install -r tests/interop/requirements.txt): {line:?}"
                )
            });
        SmtpSink {
            child,
            port,
            maildir: maildir.to_owned(),
        }
    }

    /// The messages received so far.
    fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    /// The `[notices]` table sending through this server.
    fn notices_table(&self, max_attempts: u32) -> String {
        format!(
            "[notices]\nmax_attempts = {max_attempts}\nretry_base_ms = 200\nretry_max_ms = 1000\npoll_ms = 100\n\
             [notices.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nfrom = \"noreply@qledger.example\"\n",
            self.port
        )
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    setup: CardSetup,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let setup = card_setup(dir.path(), "[notices]\npoll_ms = 100\n");
        Fixture { dir, setup }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn configure(&self, extra: &str) {
        write_config(&self.setup.config, self.dir.path(), extra);
    }

    fn serve(&self, env: &[(&str, &str)]) -> Server {
        Server::start_with(
            &[
                "--data",
                self.data().to_str().unwrap(),
                "--config",
                self.setup.config.to_str().unwrap(),
            ],
            env,
        )
    }
}

/// Registers person `link` and asks to link card `serial` with a notice to
/// `address`; returns the request id.
fn link_with_notice(server: &Server, setup: &CardSetup, n: u8, address: &str) -> String {
    let link = format!("L-N{n}");
    let number = format!("{}", 1000 + u32::from(n));
    let events = json!([acquisition(&link, &number, &format!("Q-N{n}"))]);
    let (status, body) = server.http("POST", "/v1/events?wait=projected", Some(&events));
    assert_eq!((status, &body["accepted"]), (200, &json!(1)), "{body}");
    let id = format!("R-N{n}");
    let mut request = link_request(&id, &number, &setup.card(&[0xa0, n]).pem);
    request["contact_email"] = json!(address);
    // Crash tests may lose the answer: the decision is in the log regardless.
    if let Ok((status, body)) = server.try_http("POST", "/v1/card-links", Some(&request)) {
        assert!(
            status == 201 || body.is_null(),
            "link request answered {status}: {body}"
        );
    }
    id
}

fn request_status(server: &Server, id: &str) -> Value {
    let (status, body) = server.http("GET", &format!("/v1/card-links/requests/{id}"), None);
    assert_eq!(status, 200, "{body}");
    body
}

/// Polls the request until `done` holds for it.
fn wait_for(server: &Server, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLED_WITHIN;
    loop {
        let body = request_status(server, id);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{id}: never {what}: {body:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn settled_and_erased(body: &Value) -> bool {
    let state = body["notice"]["state"].as_str();
    matches!(state, Some("delivered" | "parked")) && body["contact_key"].is_null()
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn holders_of(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn a_notice_is_emailed_once_and_the_address_is_then_unrecoverable() {
    let fx = Fixture::new();
    // No relay yet: the notice is published and waits, keeping its key.
    let server = fx.serve(&[]);
    let id = link_with_notice(&server, &fx.setup, 1, ADDRESS);
    let body = wait_for(&server, &id, "published", |b| {
        b["notice"]["state"] == "published"
    });
    assert_eq!(body["notice"]["email"], true, "{body:#}");
    let key_id = body["contact_key"]
        .as_str()
        .expect("a contact key")
        .to_owned();
    server.stop();

    // Sealed from the start: the address is in no file, though the log holds
    // its ciphertext (which the search finds, so it can see the log).
    let key_file = fx.data().join("keys").join(format!("{key_id}.key"));
    let key = std::fs::read(&key_file).expect("the key is stored until the notice is sent");
    assert_eq!(key.len(), 32);
    assert_eq!(
        holders_of(&fx.data(), ADDRESS.as_bytes()),
        Vec::<PathBuf>::new()
    );
    let log_record = qledger(&["history", "L-N1", "--data", fx.data().to_str().unwrap()]);
    assert_eq!(
        log_record.status.code(),
        Some(0),
        "{}",
        text(&log_record.stderr)
    );
    assert!(!text(&log_record.stdout).contains(ADDRESS));

    // With the relay configured, the notice is e-mailed once, then the key
    // is destroyed.
    let sink = SmtpSink::start(&fx.dir.path().join("maildir"));
    fx.configure(&sink.notices_table(5));
    let server = fx.serve(&[]);
    let body = wait_for(&server, &id, "delivered and erased", settled_and_erased);
    assert_eq!(body["notice"]["state"], "delivered", "{body:#}");
    assert_eq!(body["notice"]["attempts"], 1, "{body:#}");
    let notice_id = body["notice"]["notice_id"].as_str().unwrap().to_owned();
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(
        messages[0].contains(&format!("X-Envelope-To: {ADDRESS}")),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].contains(&notice_id),
        "Message-ID names the notice: {}",
        messages[0]
    );
    assert!(
        body["contact_erased_by"]["event_id"].is_string(),
        "{body:#}"
    );
    // The trail: linked, published, send started, delivered.
    assert_eq!(
        body["notice"]["trail"].as_array().unwrap().len(),
        4,
        "{body:#}"
    );
    let (_, outbox) = server.http("GET", "/v1/notices", None);
    assert_eq!(outbox["open"], json!([]), "{outbox:#}");
    // Nothing is sent twice, however long it runs.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1);
    server.stop();

    // Erased for good: no key file, and neither the address nor the key's
    // bytes anywhere in the data directory (log, views, key store, notices).
    assert!(!key_file.exists());
    assert_eq!(
        holders_of(&fx.data(), ADDRESS.as_bytes()),
        Vec::<PathBuf>::new()
    );
    assert_eq!(holders_of(&fx.data(), &key), Vec::<PathBuf>::new());
    // The notice went to the embedded notices log, without the address.
    let notices = holders_of(&fx.data().join("notices"), notice_id.as_bytes());
    assert!(!notices.is_empty(), "the notice is on the notices log");

    // Replay rebuilds the same views from the log, address or not.
    let verified = qledger(&["verify", "--data", fx.data().to_str().unwrap()]);
    assert_eq!(
        verified.status.code(),
        Some(0),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
    let history = qledger(&["history", "L-N1", "--data", fx.data().to_str().unwrap()]);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let request = &history["link_requests"][0];
    assert_eq!(request["notice"]["state"], "delivered", "{history:#}");
    assert!(request["contact_key"].is_null());
    // The CLI reads the same from the data directory.
    let status = qledger(&["link-request", &id, "--data", fx.data().to_str().unwrap()]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["link"], "L-N1");
    assert_eq!(status["notice"]["state"], "delivered", "{status:#}");
    let outbox = qledger(&["notices", "--data", fx.data().to_str().unwrap()]);
    let outbox: Value = serde_json::from_slice(&outbox.stdout).unwrap();
    assert_eq!(outbox["open"], json!([]), "{outbox:#}");
}

#[test]
fn failed_deliveries_are_retried_with_back_off_then_parked() {
    let fx = Fixture::new();
    let sink = SmtpSink::start(&fx.dir.path().join("maildir"));
    fx.configure(&sink.notices_table(3));
    let server = fx.serve(&[]);
    // 451 at RCPT: temporary, retried, parked after the third attempt.
    let later = link_with_notice(&server, &fx.setup, 2, "hanako@later.invalid");
    // 550 at RCPT: permanent, parked at once.
    let refused = link_with_notice(&server, &fx.setup, 3, "taro@reject.invalid");
    // No address: published for the portal inbox, nothing to e-mail.
    let mut plain = link_request("R-N4", "1004", &fx.setup.card(&[0xa0, 4]).pem);
    let events = json!([acquisition("L-N4", "1004", "Q-N4")]);
    assert_eq!(
        server
            .http("POST", "/v1/events?wait=projected", Some(&events))
            .0,
        200
    );
    plain["notice_requested"] = json!(true);
    assert_eq!(server.http("POST", "/v1/card-links", Some(&plain)).0, 201);

    let body = wait_for(&server, &later, "parked", settled_and_erased);
    assert_eq!(body["notice"]["state"], "parked", "{body:#}");
    assert_eq!(body["notice"]["attempts"], 3, "{body:#}");
    assert_eq!(
        body["notice"]["last_failure"][0], "TEMPORARY_FAILURE",
        "{body:#}"
    );
    let detail = body["notice"]["last_failure"][1].as_str().unwrap();
    assert!(detail.contains("451"), "{detail}");
    assert!(
        !detail.contains("later.invalid"),
        "no address in the reason: {detail}"
    );
    // Each failure but the last set a retry time; attempts were spaced out.
    assert_eq!(body["notice"]["retry_at"], Value::Null);

    let body = wait_for(&server, &refused, "parked", settled_and_erased);
    assert_eq!(body["notice"]["state"], "parked", "{body:#}");
    assert_eq!(body["notice"]["attempts"], 1, "{body:#}");
    assert_eq!(
        body["notice"]["last_failure"][0], "PERMANENT_FAILURE",
        "{body:#}"
    );

    let body = wait_for(&server, "R-N4", "published", |b| {
        b["notice"]["state"] == "published"
    });
    assert_eq!(body["notice"]["email"], false, "{body:#}");
    assert!(body["contact_key"].is_null());
    let (_, outbox) = server.http("GET", "/v1/notices", None);
    assert_eq!(outbox["open"], json!([]), "{outbox:#}");
    assert_eq!(sink.messages().len(), 0, "nothing was accepted");
    server.stop();
    assert_eq!(
        std::fs::read_dir(fx.data().join("keys")).unwrap().count(),
        0,
        "every key destroyed"
    );
}

/// The history's record times of the notice's events, to show the back-off.
#[test]
fn retries_wait_longer_each_time() {
    // The back-off itself is unit-tested (qledger::notices); here the
    // recorded retry times of a parked notice must grow.
    let fx = Fixture::new();
    let sink = SmtpSink::start(&fx.dir.path().join("maildir"));
    fx.configure(&sink.notices_table(3));
    let server = fx.serve(&[]);
    let id = link_with_notice(&server, &fx.setup, 5, "jiro@later.invalid");
    wait_for(&server, &id, "parked", settled_and_erased);
    server.stop();
    let history = qledger(&["history", "L-N5", "--data", fx.data().to_str().unwrap()]);
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let trail = history["link_requests"][0]["notice"]["trail"]
        .as_array()
        .unwrap()
        .clone();
    // linked, published, then a failure per attempt (451 comes before DATA,
    // so no attempt was started), then nothing: 2 + 3 events.
    assert_eq!(trail.len(), 5, "{trail:#?}");
    let micros = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["record_time"].as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    let gaps: Vec<i64> = trail[2..]
        .windows(2)
        .map(|w| micros(&w[1]) - micros(&w[0]))
        .collect();
    assert!(gaps[0] >= 200_000, "waited the base: {gaps:?}");
    assert!(gaps[1] >= 400_000, "then twice the base: {gaps:?}");
}

#[cfg(feature = "failpoints")]
mod crashes {
    use super::*;

    /// Runs the server until the crash point aborts it.
    fn crash_at(fx: &Fixture, point: &str, n: u8) -> String {
        let failpoints = format!("{point}=return");
        let server = fx.serve(&[("FAILPOINTS", failpoints.as_str())]);
        let id = link_with_notice(&server, &fx.setup, n, ADDRESS);
        let status = server.wait_exit(SETTLED_WITHIN);
        assert!(!status.success(), "the crash point aborts: {status}");
        id
    }

    #[test]
    fn a_crash_after_the_relay_accepted_never_sends_twice() {
        let fx = Fixture::new();
        let sink = SmtpSink::start(&fx.dir.path().join("maildir"));
        fx.configure(&sink.notices_table(5));
        let id = crash_at(&fx, "notice::after_send", 6);
        assert_eq!(sink.messages().len(), 1, "the relay has the message");

        let server = fx.serve(&[]);
        let body = wait_for(&server, &id, "settled and erased", settled_and_erased);
        assert_eq!(body["notice"]["state"], "parked", "{body:#}");
        assert_eq!(
            body["notice"]["last_failure"][0], "OUTCOME_UNKNOWN",
            "{body:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(sink.messages().len(), 1, "not sent a second time");
        server.stop();
        assert_eq!(
            holders_of(&fx.data(), ADDRESS.as_bytes()),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn a_crash_before_the_hand_off_sends_it_after_the_restart() {
        let fx = Fixture::new();
        let sink = SmtpSink::start(&fx.dir.path().join("maildir"));
        fx.configure(&sink.notices_table(5));
        let id = crash_at(&fx, "notice::before_send", 7);
        assert_eq!(
            sink.messages().len(),
            0,
            "the relay discarded the unfinished message"
        );

        let server = fx.serve(&[]);
        let body = wait_for(&server, &id, "delivered and erased", settled_and_erased);
        assert_eq!(body["notice"]["state"], "delivered", "{body:#}");
        assert_eq!(body["notice"]["attempts"], 1, "{body:#}");
        assert_eq!(sink.messages().len(), 1, "sent exactly once");
        server.stop();
    }
}

#[test]
fn a_rebuild_of_the_views_does_not_make_the_notifier_repeat_itself() {
    let fx = Fixture::new();
    let server = fx.serve(&[]);
    let ids: Vec<String> = (1..=5)
        .map(|n| link_with_notice(&server, &fx.setup, 20 + n, ADDRESS))
        .collect();
    for id in &ids {
        wait_for(&server, id, "published", |b| {
            b["notice"]["state"] == "published"
        });
    }
    server.stop();

    // The views are derived: dropped, they are rebuilt at start, under a
    // running notifier. A notifier working the outbox of views still catching
    // up would publish again (dead-lettered as already published); it waits
    // for the views instead. (This small log rebuilds fast, so the test
    // checks the outcome, not that the race was hit.)
    std::fs::remove_dir_all(fx.data().join("views")).unwrap();
    let server = fx.serve(&[]);
    let deadline = Instant::now() + SETTLED_WITHIN;
    for id in &ids {
        // 404 until the rebuild reaches the request.
        loop {
            let (status, body) = server.http("GET", &format!("/v1/card-links/requests/{id}"), None);
            if status == 200 && body["notice"]["state"] == "published" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never rebuilt: {status} {body:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // Several notifier rounds (poll_ms = 100).
    std::thread::sleep(Duration::from_millis(1_500));
    let (status, letters) = server.http("GET", "/v1/dead-letters", None);
    assert_eq!(status, 200);
    assert_eq!(letters["dead_letters"], json!([]), "{letters:#}");
    for id in &ids {
        let body = request_status(&server, id);
        let trail = body["notice"]["trail"].as_array().unwrap().len();
        assert_eq!(trail, 2, "linked, then published once: {body:#}");
    }
    server.stop();
}
