//! Roles and scopes through a running `qledger serve` with authentication on:
//! every route asked by every kind of client (none, a bad token, each role,
//! out-of-scope principals), each answer checked against the policy written
//! out here independently of the code's table; an insurer's batch with
//! another insurer's event in it; revocation taking effect while serving.

mod support;

use support::auth::issue;

use ledger::event::{examples, json};
use serde_json::{json, Value};
use support::{qledger, text, Server};

/// The clients: name and token.
struct Clients(Vec<(&'static str, String)>);

impl Clients {
    fn token(&self, name: &str) -> &str {
        &self.0.iter().find(|(n, _)| *n == name).unwrap().1
    }
}

fn clients(data: &str) -> Clients {
    let specs: &[(&str, &[&str])] = &[
        (
            "ins-a",
            &[
                "--role",
                "insurer",
                "--publisher",
                "insurer-01130012",
                "--insurer",
                "01130012",
            ],
        ),
        (
            "ins-b",
            &[
                "--role",
                "insurer",
                "--publisher",
                "insurer-06130017",
                "--insurer",
                "06130017",
            ],
        ),
        (
            "agg",
            &[
                "--role",
                "aggregator",
                "--publisher",
                "nhi-aggregation",
                "--insurer",
                "138057",
            ],
        ),
        (
            "clinic",
            &["--role", "institution", "--institution", "1311234567"],
        ),
        (
            "sif",
            &["--role", "payer", "--payer", "SOCIAL_INSURANCE_FUND"],
        ),
        ("nhif", &["--role", "payer", "--payer", "NHI_FEDERATION"]),
        ("portal", &["--role", "portal"]),
        ("auditor", &["--role", "auditor"]),
        ("monitor", &["--role", "monitor"]),
        ("admin", &["--role", "admin"]),
    ];
    Clients(
        specs
            .iter()
            .map(|(name, args)| {
                let mut a = vec!["--name", name];
                a.extend_from_slice(args);
                (*name, issue(data, &a))
            })
            .collect(),
    )
}

/// The example acquisition: insurer 01130012, published as insurer-01130012.
fn acquisition() -> Value {
    json::to_value(&examples::all()[0])
}

fn claim(id: &str, payer: &str, institution: &str) -> Value {
    json!({
        "claim_id": id,
        "institution": institution,
        "kind": "MEDICAL",
        "payer": payer,
        "billed_insurer": "01130012",
        "card_symbol": "あいう",
        "card_number": "1234",
        "branch": "01",
        "service_month": "2024-04",
        "service_days": [2],
        "total_points": 850,
    })
}

/// One row of the policy: who is allowed, who is refused for scope (a 403
/// naming the value), everyone else authenticated is refused for role.
struct Row {
    method: &'static str,
    path: String,
    body: Option<Value>,
    allowed: &'static [&'static str],
    out_of_scope: &'static [&'static str],
}

fn row(
    method: &'static str,
    path: &str,
    body: Option<Value>,
    allowed: &'static [&'static str],
    out_of_scope: &'static [&'static str],
) -> Row {
    Row {
        method,
        path: path.to_owned(),
        body,
        allowed,
        out_of_scope,
    }
}

#[test]
fn every_role_meets_every_route_as_the_policy_says() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let clients = clients(data);
    let server = Server::start_secured(&["--data", data], &[]);

    // The insurer publishes its acquisition; the person is then known.
    let (status, body) = server.http_as(
        Some(clients.token("ins-a")),
        "POST",
        "/v1/events?wait=projected",
        Some(&acquisition()),
    );
    assert_eq!(status, 201, "{body:#}");

    let symbol = "%E3%81%82%E3%81%84%E3%81%86";
    let by_number = format!(
        "/v1/eligibility?insurer=01130012&symbol={symbol}&number=1234&branch=01&on=2024-04-02"
    );
    let rows = vec![
        row(
            "POST",
            "/v1/events",
            Some(acquisition()),
            &["ins-a"],
            &["ins-b", "agg"],
        ),
        row(
            "GET",
            &by_number,
            None,
            &["ins-a", "clinic", "sif", "nhif", "auditor"],
            &["ins-b", "agg"],
        ),
        row(
            "GET",
            "/v1/eligibility/card/ABCDEF01?on=2024-04-02",
            None,
            &["clinic", "sif", "nhif", "auditor"],
            &[],
        ),
        row(
            "GET",
            "/v1/persons/L-0000000001/history",
            None,
            &["auditor"],
            &[],
        ),
        row("GET", "/v1/dead-letters", None, &["auditor"], &[]),
        row("POST", "/v1/card-links", Some(json!({})), &["portal"], &[]),
        row(
            "POST",
            "/v1/card-links/ABCDEF01/unlink",
            Some(json!({"reason": "CARD_LOST"})),
            &["portal"],
            &[],
        ),
        row(
            "GET",
            "/v1/card-links/requests/R-1",
            None,
            &["portal", "auditor"],
            &[],
        ),
        row("GET", "/v1/notices", None, &["auditor", "admin"], &[]),
        row(
            "POST",
            "/v1/claims",
            Some(claim("C-1", "SOCIAL_INSURANCE_FUND", "1311234567")),
            &["sif"],
            &["nhif"],
        ),
        row(
            "POST",
            "/v1/claims/check",
            Some(claim("C-2", "SOCIAL_INSURANCE_FUND", "1311234567")),
            &["sif", "clinic"],
            &["nhif"],
        ),
        row(
            "GET",
            "/v1/claims/C-1",
            None,
            &["sif", "nhif", "auditor"],
            &[],
        ),
        row(
            "GET",
            "/v1/claims/decisions?payer=SOCIAL_INSURANCE_FUND",
            None,
            &["sif", "auditor"],
            &["nhif"],
        ),
        row(
            "POST",
            "/v1/claims/C-9/withdraw",
            Some(json!({"reason": "test"})),
            &["sif", "nhif"],
            &[],
        ),
        row(
            "GET",
            "/v1/overlaps?insurer=138057",
            None,
            &["agg", "auditor"],
            &["ins-a", "ins-b"],
        ),
        row(
            "GET",
            "/v1/verifications?institution=1311234567",
            None,
            &["clinic", "auditor"],
            &[],
        ),
        row(
            "POST",
            "/v1/eligibility/batch",
            Some(json!({"insurer": "01130012", "number": "1234"})),
            &["ins-a", "ins-b", "agg", "clinic", "sif", "nhif", "auditor"],
            &[],
        ),
        // The online check's XML: the by-number lookup's roles (the body,
        // not XML here, is refused after authorisation).
        row(
            "POST",
            "/v1/onlinecheck",
            Some(json!({})),
            &["ins-a", "ins-b", "agg", "clinic", "sif", "nhif", "auditor"],
            &[],
        ),
        row(
            "GET",
            "/v1/metering",
            None,
            &["ins-a", "ins-b", "agg", "auditor", "admin"],
            &[],
        ),
        row("GET", "/metrics", None, &["monitor", "admin"], &[]),
        row("GET", "/v1/whoami", None, EVERYONE, &[]),
        row(
            "GET",
            "/schema-registry/subjects",
            None,
            &[
                "ins-a", "ins-b", "agg", "clinic", "sif", "nhif", "portal", "auditor", "monitor",
                "admin",
            ],
            &[],
        ),
        row(
            "POST",
            "/schema-registry/subjects/qledger-test/versions",
            Some(json!({"schema": "\"string\""})),
            &["ins-a", "ins-b", "agg", "admin"],
            &[],
        ),
    ];

    let mut failures = Vec::new();
    for r in &rows {
        // Nobody, and a token that is not one, are unauthenticated.
        for token in [None, Some("qlt_00000000_not-a-token")] {
            let (status, _) = server.http_as(token, r.method, &r.path, r.body.as_ref());
            if status != 401 {
                failures.push(format!(
                    "{} {} with {token:?}: {status}, want 401",
                    r.method, r.path
                ));
            }
        }
        for (name, token) in &clients.0 {
            let (status, body) = server.http_as(Some(token), r.method, &r.path, r.body.as_ref());
            let detail = body["detail"].as_str().unwrap_or_default().to_owned();
            let verdict = if r.allowed.contains(name) {
                (status != 401 && status != 403 && status < 500)
                    .then_some(())
                    .ok_or("allowed")
            } else if r.out_of_scope.contains(name) {
                (status == 403 && !detail.contains("role may not"))
                    .then_some(())
                    .ok_or("refused for scope")
            } else {
                (status == 403 && detail.contains(&format!("the {} role may not", role_of(name))))
                    .then_some(())
                    .ok_or("refused for role")
            };
            if let Err(want) = verdict {
                failures.push(format!(
                    "{} {} as {name}: {status} {detail:?}, want {want}",
                    r.method, r.path
                ));
            }
        }
    }
    // The probe answers everyone.
    let (status, _) = server.http_as(None, "GET", "/healthz", None);
    assert_eq!(status, 200);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A scoped insurer asking overlaps must name its insurer.
    let (status, body) = server.http_as(Some(clients.token("agg")), "GET", "/v1/overlaps", None);
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["field"], "insurer");
    server.stop();
}

/// Every client of [`clients`].
const EVERYONE: &[&str] = &[
    "ins-a", "ins-b", "agg", "clinic", "sif", "nhif", "portal", "auditor", "monitor", "admin",
];

fn role_of(name: &str) -> &'static str {
    match name {
        "ins-a" | "ins-b" => "insurer",
        "agg" => "aggregator",
        "clinic" => "institution",
        "sif" | "nhif" => "payer",
        "portal" => "portal",
        "auditor" => "auditor",
        "monitor" => "monitor",
        "admin" => "admin",
        other => panic!("no role for {other}"),
    }
}

#[test]
fn a_batch_with_another_insurers_event_loses_only_that_event() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let token = issue(
        data,
        &[
            "--name",
            "ins-b",
            "--role",
            "insurer",
            "--publisher",
            "insurer-06130017",
            "--insurer",
            "06130017",
        ],
    );
    let server = Server::start_secured(&["--data", data], &[]);

    // Its own acquisition, then one for insurer 01130012 under its own
    // source (out of scope), then one under another insurer's source.
    let mut own = acquisition();
    own["envelope"]["event_id"] = json!("0190a1b2-c3d4-7000-8000-0000000000a1");
    own["envelope"]["source"] = json!("insurer-06130017");
    own["envelope"]["link"] = json!("L-B-1");
    own["qualification_id"] = json!("Q-06130017-1");
    own["insurer_number"] = json!("06130017");
    let mut foreign_number = acquisition();
    foreign_number["envelope"]["event_id"] = json!("0190a1b2-c3d4-7000-8000-0000000000a2");
    foreign_number["envelope"]["source"] = json!("insurer-06130017");
    let foreign_source = acquisition();
    let batch = json!([own, foreign_number, foreign_source]);
    let (status, body) = server.http_as(
        Some(&token),
        "POST",
        "/v1/events?wait=projected",
        Some(&batch),
    );
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["accepted"], 1, "{body:#}");
    assert_eq!(body["forbidden"], 2, "{body:#}");
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], "accepted");
    assert_eq!(results[1]["status"], "forbidden");
    assert_eq!(results[1]["field"], "insurer_number");
    assert_eq!(results[2]["field"], "envelope.source");

    // Another insurer's change of that record passes intake under its own
    // source and is dead-lettered by the projector: only the publisher that
    // acquired a qualification may change it.
    let other = support::auth::insurer_a(data);
    let auditor = issue(data, &["--name", "aud", "--role", "auditor"]);
    // The server reloads the token file within a second.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let change = json!({
        "type": "QualificationLost",
        "envelope": {
            "event_id": "0190a1b2-c3d4-7000-8000-0000000000a3",
            "source": "insurer-01130012",
            "link": "L-B-1",
            "produced_at": "2024-05-01T00:00:00Z",
        },
        "qualification_id": "Q-06130017-1",
        "lost_on": "2024-05-01",
        "reason": "DEATH",
    });
    let (status, body) = server.http_as(
        Some(&other),
        "POST",
        "/v1/events?wait=projected",
        Some(&change),
    );
    assert_eq!(status, 201, "{body:#}");
    let (status, letters) = server.http_as(Some(&auditor), "GET", "/v1/dead-letters", None);
    assert_eq!(status, 200, "{letters:#}");
    let letters = letters["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:#?}");
    assert_eq!(letters[0]["field"], "envelope.source", "{letters:#?}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("insurer-06130017"),
        "{letters:#?}"
    );
    server.stop();
}

#[test]
fn a_revoked_token_stops_working_while_the_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let token = issue(data, &["--name", "aud", "--role", "auditor"]);
    let server = Server::start_secured(&["--data", data], &[]);
    let (status, _) = server.http_as(Some(&token), "GET", "/v1/dead-letters", None);
    assert_eq!(status, 200);

    let listed = qledger(&["tokens", "list", "--data", data]);
    let listing = text(&listed.stdout);
    assert!(listing.contains("\"aud\""), "{listing}");
    assert!(
        !listing.contains(&token),
        "a listing must not show the token"
    );
    let file = std::fs::read_to_string(std::path::Path::new(data).join("tokens.toml")).unwrap();
    assert!(!file.contains(&token), "the token file holds hashes only");

    let out = qledger(&["tokens", "revoke", "aud", "--data", data]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _) = server.http_as(Some(&token), "GET", "/v1/dead-letters", None);
        if status == 401 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked token still works"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.stop();
}

#[test]
fn no_auth_is_refused_off_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let out = qledger(&[
        "serve",
        "--data",
        tmp.path().to_str().unwrap(),
        "--listen",
        "0.0.0.0:0",
        "--no-auth",
        "--plain-http",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("loopback"),
        "{}",
        text(&out.stderr)
    );
}

fn median(mut samples: Vec<std::time::Duration>) -> std::time::Duration {
    samples.sort();
    samples[samples.len() / 2]
}

#[test]
fn a_card_lookup_needs_the_birth_date_and_a_wrong_one_looks_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let insurer = support::auth::insurer_a(data);
    let clinic = support::auth::clinic(data);
    let server = Server::start_secured(&["--data", data, "--miss-limit", "1000"], &[]);
    let (status, body) = server.http_as(
        Some(&insurer),
        "POST",
        "/v1/events?wait=projected",
        Some(&support::auth::example_person()),
    );
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body:#}");

    let ask = |serial: &str, born: Option<&str>| {
        let mut path = format!("/v1/eligibility/card/{serial}?on=2024-05-01");
        if let Some(b) = born {
            path.push_str(&format!("&birth_date={b}"));
        }
        let started = std::time::Instant::now();
        let (status, body) = server.http_as(Some(&clinic), "GET", &path, None);
        (status, body, started.elapsed())
    };
    let (status, body, _) = ask("0A1B2C3D4E5F", Some("1980-05-12"));
    assert_eq!(status, 200, "{body:#}");
    let (status, body, _) = ask("0A1B2C3D4E5F", None);
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("birth_date")),
        "{body:#}"
    );

    // A wrong date of birth and an unknown serial: same status, same body,
    // and times a client cannot tell apart (interleaved, medians compared).
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    let mut bodies = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (s1, b1, t1) = ask("0A1B2C3D4E5F", Some("1980-05-13"));
        let (s2, b2, t2) = ask("FFFF0001", Some("1980-05-13"));
        assert_eq!((s1, s2), (404, 404));
        bodies.insert(b1.to_string());
        bodies.insert(b2.to_string());
        wrong.push(t1);
        unknown.push(t2);
    }
    assert_eq!(bodies.len(), 1, "{bodies:#?}");
    let (wrong, unknown) = (median(wrong), median(unknown));
    // Every miss takes at least the server's floor (5 ms), which hides what
    // a lookup costs; what is left between the two must be noise.
    let floor = std::time::Duration::from_millis(5);
    assert!(wrong >= floor && unknown >= floor, "{wrong:?} {unknown:?}");
    let gap = wrong.abs_diff(unknown);
    assert!(
        gap < std::time::Duration::from_millis(1),
        "median miss times differ: wrong birth date {wrong:?}, unknown serial {unknown:?}"
    );
    server.stop();
}

#[test]
fn repeated_misses_from_one_client_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let data = data.to_str().unwrap();
    let clinic = support::auth::clinic(data);
    let other = issue(
        data,
        &[
            "--name",
            "other",
            "--role",
            "institution",
            "--institution",
            "1311234567",
        ],
    );
    let server = Server::start_secured(
        &["--data", data, "--miss-limit", "3", "--miss-window", "60"],
        &[],
    );
    let path = "/v1/eligibility/card/FFFF0001?birth_date=1980-05-12";
    for _ in 0..3 {
        assert_eq!(server.http_as(Some(&clinic), "GET", path, None).0, 404);
    }
    let (status, body) = server.http_as(Some(&clinic), "GET", path, None);
    assert_eq!(status, 429, "{body:#}");
    assert_eq!(body["type"], "/problems/too-many-requests");
    // Another client is not held back by the first one's misses.
    assert_eq!(server.http_as(Some(&other), "GET", path, None).0, 404);
    server.stop();
}
