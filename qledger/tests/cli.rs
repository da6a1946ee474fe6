//! The `qledger` binary, run as a user would: exit statuses and output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn qledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run qledger")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn check_id_insurer() {
    let ok = qledger(&["check-id", "insurer", "01130012"]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(stdout(&ok).contains("KYOKAI_KENPO"), "{}", stdout(&ok));
    assert!(
        stdout(&ok).contains("SOCIAL_INSURANCE_FUND"),
        "{}",
        stdout(&ok)
    );

    let bad = qledger(&["check-id", "insurer", "01130013"]);
    assert_eq!(code(&bad), 1);
    assert!(stdout(&bad).contains("check digit"), "{}", stdout(&bad));

    let kokuho = qledger(&["check-id", "insurer", "00138057"]);
    assert_eq!(code(&kokuho), 0);
    assert!(stdout(&kokuho).contains("138057") && stdout(&kokuho).contains("NHI_FEDERATION"));
}

#[test]
fn check_id_other_kinds() {
    assert_eq!(code(&qledger(&["check-id", "recipient", "1234566"])), 0);
    let bad = qledger(&["check-id", "recipient", "1234567"]);
    assert_eq!(code(&bad), 1);
    assert!(stdout(&bad).contains("check digit"));
    assert_eq!(
        code(&qledger(&["check-id", "public-expense", "88130109"])),
        0
    );
    assert_eq!(
        code(&qledger(&[
            "check-id",
            "insured",
            "01130012,あいう,1234,01"
        ])),
        0
    );
    assert_eq!(
        code(&qledger(&["check-id", "insured", "39131008,,12345678,"])),
        0
    );
    let no_branch = qledger(&["check-id", "insured", "01130012,あいう,1234,"]);
    assert_eq!(code(&no_branch), 1);
    assert!(
        stdout(&no_branch).contains("branch"),
        "{}",
        stdout(&no_branch)
    );
    // Not an identifier kind: a usage error.
    assert_eq!(code(&qledger(&["check-id", "passport", "1"])), 2);
}

/// The first few insured numbers in a JSON-lines file, with a date each was covered.
fn acquisitions(file: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["type"] == "QualificationAcquired")
        .take(20)
        .map(|e| {
            let mut args = vec![
                "--insurer".to_owned(),
                e["insurer_number"].as_str().unwrap().to_owned(),
            ];
            for (flag, field) in [("--symbol", "card_symbol"), ("--branch", "branch")] {
                if let Some(v) = e[field].as_str() {
                    args.extend([flag.to_owned(), v.to_owned()]);
                }
            }
            args.extend([
                "--number".to_owned(),
                e["card_number"].as_str().unwrap().to_owned(),
            ]);
            args.extend([
                "--on".to_owned(),
                e["acquired_on"].as_str().unwrap().to_owned(),
            ]);
            args
        })
        .collect()
}

#[test]
fn generate_publish_query_replay_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("events.jsonl");

    let generated = qledger(&[
        "generate",
        "--persons",
        "20",
        "--seed",
        "7",
        "--out",
        path(&file),
    ]);
    assert_eq!(code(&generated), 0, "{}", stderr(&generated));
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines >= 20, "{lines} events for 20 persons");

    // generate | publish -
    let mut generate = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(["generate", "--persons", "20", "--seed", "7"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let published = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(["publish", "-", "--data", path(&data)])
        .env("RUST_LOG", "warn")
        .stdin(generate.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(generate.wait().unwrap().success());
    assert_eq!(code(&published), 0, "{}", stderr(&published));
    assert!(
        stdout(&published).contains(&format!("{lines} accepted")),
        "{}",
        stdout(&published)
    );

    // The same file again: every line a duplicate, applied once.
    let again = qledger(&["publish", path(&file), "--data", path(&data)]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert!(
        stdout(&again).contains(&format!("0 accepted, {lines} duplicates")),
        "{}",
        stdout(&again)
    );

    // A rejected line: reported with its number and field, exit status 1.
    let bad = tmp.path().join("bad.jsonl");
    let mut f = std::fs::File::create(&bad).unwrap();
    writeln!(
        f,
        "{}\n\n{{\"type\": \"QualificationLost\"}}",
        std::fs::read_to_string(&file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
    )
    .unwrap();
    drop(f);
    let rejected = qledger(&["publish", path(&bad), "--data", path(&data)]);
    assert_eq!(code(&rejected), 1);
    assert!(
        stderr(&rejected).contains("line 3: envelope: is required"),
        "{}",
        stderr(&rejected)
    );

    // Someone is found by insured number, on a date they were covered.
    let found = acquisitions(&file).into_iter().find_map(|args| {
        let mut all = vec!["eligibility", "--data", path(&data)];
        all.extend(args.iter().map(String::as_str));
        let o = qledger(&all);
        (code(&o) == 0).then(|| serde_json::from_str::<Value>(&stdout(&o)).unwrap())
    });
    let found = found.expect("a published person is found");
    assert_eq!(found["status"], "found");
    assert!(
        !found["qualifications"].as_array().unwrap().is_empty(),
        "{found}"
    );

    let nobody = qledger(&[
        "eligibility",
        "--data",
        path(&data),
        "--insurer",
        "01130012",
        "--number",
        "99999999",
        "--branch",
        "99",
    ]);
    assert_eq!(code(&nobody), 1);
    let bad_date = qledger(&[
        "eligibility",
        "--data",
        path(&data),
        "--card",
        "0A",
        "--birth-date",
        "1980-05-12",
        "--on",
        "2024-02-30",
    ]);
    assert_eq!(code(&bad_date), 2);

    // Two replays into fresh directories give the same digest.
    let digest = |into: &str| {
        let o = qledger(&[
            "replay",
            "--data",
            path(&data),
            "--into",
            path(&tmp.path().join(into)),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = stdout(&o);
        out.lines()
            .find_map(|l| l.strip_prefix("digest"))
            .expect("a digest line")
            .trim()
            .to_owned()
    };
    let first = digest("r1");
    assert_eq!(first.len(), 64);
    assert_eq!(first, digest("r2"));
    // Not into a used directory.
    assert_eq!(
        code(&qledger(&[
            "replay",
            "--data",
            path(&data),
            "--into",
            path(&tmp.path().join("r1"))
        ])),
        2
    );

    let verified = qledger(&["verify", "--data", path(&data)]);
    assert_eq!(
        code(&verified),
        0,
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    assert!(stdout(&verified).contains("match"), "{}", stdout(&verified));

    let letters = qledger(&["dead-letters", "--data", path(&data)]);
    assert_eq!(code(&letters), 0, "{}", stderr(&letters));
    assert!(serde_json::from_str::<Value>(&stdout(&letters)).unwrap()["count"].is_u64());
}

#[test]
fn demo_loads_without_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo");
    for _ in 0..2 {
        // The second run empties the first run's data.
        let o = qledger(&[
            "demo",
            "--no-serve",
            "--persons",
            "200",
            "--data",
            path(&data),
        ]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.lines().any(|l| l.trim() == "dead letters: 0"), "{out}");
        // p17 at the time (insurer A) and now: real values, ready to paste.
        assert!(
            out.contains("on=2024-04-02&as_of=2024-04-03T00:00:00Z'"),
            "{out}"
        );
        assert!(out.contains("/v1/persons/L-P17/history"), "{out}");
        assert!(out.contains("/v1/eligibility/card/"), "{out}");
        assert!(
            out.contains("?birth_date="),
            "a card lookup gives the birth date: {out}"
        );
        // The demo's auditor token is printed once and stored as a hash.
        let token = out
            .lines()
            .find_map(|l| l.trim().strip_prefix("T=qlt_"))
            .expect("the demo prints its token");
        let tokens = std::fs::read_to_string(data.join("tokens.toml")).unwrap();
        assert!(
            tokens.contains("demo-auditor") && !tokens.contains(token),
            "{tokens}"
        );
        assert!(out.contains("rejected: 0"), "{out}");
        assert!(
            out.contains("curl -s -H \"Authorization: Bearer $T\" 'http://127.0.0.1:8080/v1/eligibility?insurer="),
            "{out}"
        );
    }
    // It refuses to empty a directory that is not demo data.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("precious.txt"), "keep").unwrap();
    let refused = qledger(&[
        "demo",
        "--no-serve",
        "--persons",
        "5",
        "--data",
        path(&other),
    ]);
    assert_eq!(code(&refused), 2);
    assert!(other.join("precious.txt").exists());
}

/// `serve` as a process, and the commands' `--server` mode against it; then
/// SIGTERM stops it gracefully.
#[cfg(unix)]
#[test]
fn server_mode_against_a_running_server() {
    use std::io::{BufRead, BufReader};

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let file = tmp.path().join("events.jsonl");
    assert_eq!(
        code(&qledger(&[
            "generate",
            "--persons",
            "10",
            "--out",
            path(&file)
        ])),
        0
    );

    let mut server = Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args([
            "serve",
            "--data",
            path(&data),
            "--listen",
            "127.0.0.1:0",
            "--partitions",
            "2",
            "--no-auth",
            "--plain-http",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned)
        })
        .expect("the server says where it listens");
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let published = qledger(&["publish", path(&file), "--server", &url, "--wait"]);
    assert_eq!(code(&published), 0, "{}", stderr(&published));
    assert!(
        stdout(&published).contains(" 0 rejected"),
        "{}",
        stdout(&published)
    );

    let found = acquisitions(&file).into_iter().find_map(|args| {
        let mut all = vec!["eligibility", "--server", url.as_str()];
        all.extend(args.iter().map(String::as_str));
        let o = qledger(&all);
        (code(&o) == 0).then(|| serde_json::from_str::<Value>(&stdout(&o)).unwrap())
    });
    assert_eq!(
        found.expect("a published person is found over HTTP")["status"],
        "found"
    );

    let nobody = qledger(&[
        "eligibility",
        "--server",
        &url,
        "--insurer",
        "01130012",
        "--number",
        "1",
        "--branch",
        "01",
    ]);
    assert_eq!(code(&nobody), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&nobody)).unwrap()["type"],
        "/problems/not-found"
    );

    let history = qledger(&["history", "L000000000000", "--server", &url]);
    assert_eq!(code(&history), 0, "{}", stderr(&history));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&history)).unwrap()["link"],
        "L000000000000"
    );

    let letters = qledger(&["dead-letters", "--server", &url]);
    assert_eq!(code(&letters), 0, "{}", stderr(&letters));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&letters)).unwrap()["count"],
        0
    );

    // The server holds the log; read-only queries work beside it.
    let beside = qledger(&["dead-letters", "--data", path(&data)]);
    assert_eq!(code(&beside), 0, "{}", stderr(&beside));

    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let exit = server.wait().unwrap();
    let logs = drain.join().unwrap();
    assert!(exit.success(), "{exit:?}: {logs:?}");
}
