//! HTTPS with rustls through a running `qledger serve`: the CLI's `--server`
//! client trusting the server's CA, a token or a registered client
//! certificate (mutual TLS) as the credential, an unknown CA refused on
//! both sides, and plain HTTP refused unless asked for on loopback.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::pki::{ca, tls_leaf};
use support::{qledger, text, Server};

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `qledger ARGS` with exactly these environment variables of its own.
fn qledger_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("QLEDGER_TOKEN")
        .env_remove("QLEDGER_CA_CERT")
        .env_remove("QLEDGER_CLIENT_CERT")
        .env_remove("QLEDGER_CLIENT_KEY")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn https_with_a_token_or_a_client_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    let data = data.to_str().unwrap();

    let server_ca = ca("qledger test server CA", None);
    let client_ca = ca("qledger test client CA", None);
    let stranger_ca = ca("someone else's CA", None);
    let (server_cert, server_key) =
        tls_leaf(&server_ca, "qledger", &["127.0.0.1", "localhost"], false);
    let (client_cert, client_key) = tls_leaf(&client_ca, "audit-office", &[], true);
    let (stranger_cert, stranger_key) = tls_leaf(&stranger_ca, "intruder", &[], true);
    let server_ca_pem = write(dir, "server-ca.pem", &server_ca.pem);
    let files = [
        write(dir, "server.pem", &server_cert),
        write(dir, "server.key", &server_key),
        write(dir, "client-ca.pem", &client_ca.pem),
    ];
    let client_pem = write(dir, "client.pem", &client_cert);
    let client_key_pem = write(dir, "client.key", &client_key);
    let stranger_pem = write(dir, "stranger.pem", &stranger_cert);
    let stranger_key_pem = write(dir, "stranger.key", &stranger_key);

    let token = text(
        &qledger(&[
            "tokens", "issue", "--data", data, "--name", "aud", "--role", "auditor", "--quiet",
        ])
        .stdout,
    )
    .trim()
    .to_owned();
    let registered = qledger(&[
        "tokens",
        "issue",
        "--data",
        data,
        "--name",
        "audit-office",
        "--role",
        "auditor",
        "--certificate",
        &client_pem,
    ]);
    assert_eq!(
        registered.status.code(),
        Some(0),
        "{}",
        text(&registered.stderr)
    );

    let server = Server::start_raw(
        &[
            "--data",
            data,
            "--tls-cert",
            &files[0],
            "--tls-key",
            &files[1],
            "--tls-client-ca",
            &files[2],
        ],
        &[],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ask = |env: &[(&str, &str)]| qledger_env(&["dead-letters", "--server", &server.url], env);

    // A token over TLS, trusting the server's CA.
    let o = ask(&[
        ("QLEDGER_CA_CERT", &server_ca_pem),
        ("QLEDGER_TOKEN", &token),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("dead_letters"),
        "{}",
        text(&o.stdout)
    );
    // No credentials: the server answers 401.
    let o = ask(&[("QLEDGER_CA_CERT", &server_ca_pem)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("401"), "{}", text(&o.stderr));
    // A registered client certificate is the credential (no token).
    let o = ask(&[
        ("QLEDGER_CA_CERT", &server_ca_pem),
        ("QLEDGER_CLIENT_CERT", &client_pem),
        ("QLEDGER_CLIENT_KEY", &client_key_pem),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    // A certificate from a CA the server does not trust: no handshake.
    let o = ask(&[
        ("QLEDGER_CA_CERT", &server_ca_pem),
        ("QLEDGER_CLIENT_CERT", &stranger_pem),
        ("QLEDGER_CLIENT_KEY", &stranger_key_pem),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));
    // A client that does not trust the server's CA refuses it.
    let o = ask(&[("QLEDGER_TOKEN", &token)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!text(&o.stdout).contains("dead_letters"));
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = server.try_http("GET", "/healthz", None);
    assert!(plain.is_err() || plain.is_ok_and(|(s, _)| s != 200));

    // Revoking the certificate's entry ends its access.
    let revoked = qledger(&["tokens", "revoke", "--data", data, "audit-office"]);
    assert_eq!(revoked.status.code(), Some(0), "{}", text(&revoked.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = ask(&[
            ("QLEDGER_CA_CERT", &server_ca_pem),
            ("QLEDGER_CLIENT_CERT", &client_pem),
            ("QLEDGER_CLIENT_KEY", &client_key_pem),
        ]);
        if text(&o.stderr).contains("401") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked certificate still works"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    server.stop();
}

#[test]
fn plain_http_must_be_asked_for_and_stays_on_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let o = qledger(&["serve", "--data", data, "--listen", "127.0.0.1:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("--tls-cert"),
        "{}",
        text(&o.stderr)
    );
    let o = qledger(&[
        "serve",
        "--data",
        data,
        "--listen",
        "0.0.0.0:0",
        "--plain-http",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("loopback"), "{}", text(&o.stderr));
}
