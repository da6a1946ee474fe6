//! Card-link fixtures: a settings file with a test PKI as trust anchors,
//! acquisitions to link to, and link-request bodies.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ledger::event::{examples, json, Payload};
use serde_json::{json, Value};

use super::pki::*;

/// A root CA, a CRL revoking serial CC03 (valid 2026–2035), and the
/// settings file's `[cards]` table naming both; `extra` is appended.
pub struct CardSetup {
    pub root: Ca,
    pub config: PathBuf,
}

pub fn card_setup(dir: &Path, extra: &str) -> CardSetup {
    let root = ca("Test JPKI Root CA", None);
    // Valid now (2026 on): the CRL must not be past its nextUpdate.
    let fresh_crl = crl_with(&root, &[&[0xcc, 0x03]], 1, (2026, 1, 1), (2035, 1, 1));
    std::fs::write(dir.join("root.pem"), &root.pem).unwrap();
    std::fs::write(dir.join("root.crl.pem"), &fresh_crl.pem).unwrap();
    let config = dir.join("qledger.toml");
    write_config(&config, dir, extra);
    CardSetup { root, config }
}

/// (Re)writes the settings file: the `[cards]` table and `extra`.
pub fn write_config(config: &Path, dir: &Path, extra: &str) {
    std::fs::write(
        config,
        format!(
            "[cards]\ntrust_anchors = [\"{0}/root.pem\"]\ncrls = [\"{0}/root.crl.pem\"]\n{extra}",
            dir.display()
        ),
    )
    .unwrap();
}

impl CardSetup {
    /// A card certificate valid until 2035.
    pub fn card(&self, serial: &[u8]) -> Card {
        let mut s = spec(serial);
        s.to = (2035, 1, 1);
        issue(&self.root, s)
    }
}

/// An acquisition of person `link` at 01130012, あいう 番号 `number` 枝番 01.
pub fn acquisition(link: &str, number: &str, qualification: &str) -> Value {
    let mut e = examples::all().remove(0);
    e.envelope.event_id = uuid::Uuid::now_v7();
    e.envelope.link = link.parse().unwrap();
    let Payload::QualificationAcquired(q) = &mut e.payload else {
        unreachable!()
    };
    q.card_number = number.parse().unwrap();
    q.qualification_id = qualification.parse().unwrap();
    json::to_value(&e)
}

/// The body of `POST /v1/card-links` for that person's number, asking for a
/// notice.
pub fn link_request(id: &str, number: &str, certificate: &str) -> Value {
    json!({
        "request_id": id,
        "certificate": certificate,
        "insurer": "01130012",
        "symbol": "あいう",
        "number": number,
        "branch": "01",
        "notice_requested": true,
    })
}
