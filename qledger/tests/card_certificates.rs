//! Card user-authentication certificates verified against a PKI made here,
//! at test time, in a temporary directory (no key is committed): a root CA,
//! an intermediate CA, card certificates with chosen serials, CRLs. Each
//! outcome of `CardAuthority::verify`, PEM and DER input, garbage, CRL
//! replacement while the authority is in use, and that no refusal carries
//! the holder's name.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ledger::domain::RecordTime;
use qledger::cardcert::{
    unverified_serial, CardAuthority, CardAuthorityConfig, CardCertError, CertificateRefusal,
};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

mod support;
use support::pki::*;

/// The instant of most verifications.
fn at() -> RecordTime {
    "2025-06-01T00:00:00Z".parse().unwrap()
}

fn instant(s: &str) -> RecordTime {
    s.parse().unwrap()
}

/// Writes `contents` at `path` the way an operator's job should: a complete
/// file renamed over the old one.
fn replace(path: &Path, contents: impl AsRef<[u8]>) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Serials used throughout.
const GOOD: &[u8] = &[0x01, 0x02, 0xa3];
const HIGH_BIT: &[u8] = &[0x8f, 0x12, 0x34, 0x56];
const REVOKED: &[u8] = &[0x12, 0x34];
const OTHER: &[u8] = &[0x56, 0x78];

/// Root → intermediate, their CRLs on disk (the intermediate's revoking
/// `REVOKED`), and a configuration naming them: root as PEM, intermediate
/// as DER, the intermediate's CRL as PEM, the root's as DER.
struct Pki {
    dir: TempDir,
    root: Ca,
    intermediate: Ca,
    config: CardAuthorityConfig,
    intermediate_crl: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let root = ca("Test JPKI Root CA", None);
        let intermediate = ca("Test JPKI User Authentication CA", Some(&root));
        let root_pem = dir.path().join("root.pem");
        fs::write(&root_pem, &root.pem).unwrap();
        let intermediate_der = dir.path().join("intermediate.der");
        fs::write(&intermediate_der, &intermediate.der).unwrap();
        let intermediate_crl = dir.path().join("intermediate.crl.pem");
        fs::write(&intermediate_crl, crl(&intermediate, &[REVOKED], 1).pem).unwrap();
        let root_crl = dir.path().join("root.crl");
        fs::write(&root_crl, crl(&root, &[], 1).der).unwrap();
        let config = CardAuthorityConfig {
            trust_anchors: vec![root_pem],
            intermediates: vec![intermediate_der],
            crls: vec![intermediate_crl.clone(), root_crl],
        };
        Pki {
            dir,
            root,
            intermediate,
            config,
            intermediate_crl,
        }
    }

    fn authority(&self) -> CardAuthority {
        CardAuthority::load(&self.config).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn refused(authority: &CardAuthority, certificate: &[u8], at: RecordTime) -> CertificateRefusal {
    match authority.verify(certificate, at) {
        Ok(serial) => panic!("accepted, serial {serial}"),
        Err(refusal) => refusal,
    }
}

fn code(authority: &CardAuthority, certificate: &[u8]) -> &'static str {
    refused(authority, certificate, at()).reason_code()
}

#[test]
fn card_through_intermediate_is_accepted_as_pem_and_der() {
    let pki = Pki::new();
    let authority = pki.authority();
    assert!(authority.checks_revocation());
    assert_eq!(authority.crl_generation(), 1);
    let card = card(&pki.intermediate, GOOD);
    for input in [
        card.der.clone(),
        card.pem.clone().into_bytes(),
        card.pem.replace('\n', "\r\n").into_bytes(),
        format!("\n  {}\n\n", card.pem).into_bytes(),
        card.pem
            .lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
            .into_bytes(),
    ] {
        assert_eq!(authority.verify(&input, at()).unwrap().as_str(), "0102A3");
    }
    // At the edges of the validity period, inclusive (without CRLs, whose
    // own period is shorter).
    let mut config = pki.config.clone();
    config.crls.clear();
    let without_crls = CardAuthority::load(&config).unwrap();
    for edge in ["2024-01-01T00:00:00Z", "2029-01-01T00:00:00Z"] {
        assert!(
            without_crls.verify(&card.der, instant(edge)).is_ok(),
            "{edge}"
        );
    }
    assert_eq!(
        unverified_serial(&card.pem.into_bytes()).unwrap().as_str(),
        "0102A3"
    );
}

#[test]
fn serial_with_leading_high_bit_loses_its_der_padding() {
    let pki = Pki::new();
    let card = card(&pki.intermediate, HIGH_BIT);
    // DER does pad it: INTEGER, length 5, 00 8F 12 34 56.
    assert!(card
        .der
        .windows(7)
        .any(|w| w == [0x02, 0x05, 0x00, 0x8f, 0x12, 0x34, 0x56]));
    let serial = pki.authority().verify(&card.der, at()).unwrap();
    assert_eq!(serial.as_str(), "8F123456");
    assert_eq!(serial, "8f123456".parse().unwrap());
}

#[test]
fn card_issued_by_the_root_itself() {
    // JPKI's shape: the user-authentication CA is the anchor itself.
    let pki = Pki::new();
    let card = card(&pki.root, OTHER);
    assert_eq!(
        pki.authority()
            .verify(&card.pem.into_bytes(), at())
            .unwrap()
            .as_str(),
        "5678"
    );
}

#[test]
fn jpki_profile_rsa_2048_sha256() {
    use rsa::pkcs8::EncodePrivateKey;
    let rsa_key = |bits| {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits).unwrap();
        let der = key.to_pkcs8_der().unwrap();
        KeyPair::from_pkcs8_der_and_sign_algo(&der.as_bytes().into(), &rcgen::PKCS_RSA_SHA256)
            .unwrap()
    };
    let root = ca_with(
        "Test RSA CA",
        None,
        (2020, 1, 1),
        (2040, 1, 1),
        rsa_key(2048),
    );
    let card = issue_with(&root, spec(&[0x00, 0xc1, 0x5e, 0x11]), &rsa_key(2048));
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("rsa-root.der");
    fs::write(&anchor, &root.der).unwrap();
    let crl_path = dir.path().join("rsa.crl");
    fs::write(&crl_path, crl(&root, &[REVOKED], 7).pem).unwrap();
    let authority = CardAuthority::load(&CardAuthorityConfig {
        trust_anchors: vec![anchor],
        intermediates: vec![],
        crls: vec![crl_path],
    })
    .unwrap();
    assert_eq!(
        authority.verify(&card.der, at()).unwrap().as_str(),
        "C15E11"
    );
    let revoked = issue_with(&root, spec(REVOKED), &rsa_key(2048));
    assert_eq!(code(&authority, &revoked.der), "CERTIFICATE_REVOKED");
}

#[test]
fn expired_and_not_yet_valid_cards_carry_their_dates() {
    let pki = Pki::new();
    let authority = pki.authority();
    let expired = issue(
        &pki.intermediate,
        CardSpec {
            from: (2020, 1, 1),
            to: (2025, 1, 1),
            ..spec(&[0x21])
        },
    );
    assert_eq!(
        refused(&authority, &expired.der, at()),
        CertificateRefusal::Expired {
            not_after: instant("2025-01-01T00:00:00Z")
        }
    );
    assert_eq!(
        refused(&authority, &expired.pem.into_bytes(), at()).to_string(),
        "card certificate expired at 2025-01-01T00:00:00Z"
    );
    let early = issue(
        &pki.intermediate,
        CardSpec {
            from: (2026, 1, 1),
            to: (2031, 1, 1),
            ..spec(&[0x22])
        },
    );
    let refusal = refused(&authority, &early.der, at());
    assert_eq!(
        refusal,
        CertificateRefusal::NotYetValid {
            not_before: instant("2026-01-01T00:00:00Z")
        }
    );
    assert_eq!(refusal.reason_code(), "CERTIFICATE_NOT_YET_VALID");
    // A second before its validity begins, and after it ends.
    let good = card(&pki.intermediate, GOOD);
    assert_eq!(
        refused(&authority, &good.der, instant("2023-12-31T23:59:59Z")).reason_code(),
        "CERTIFICATE_NOT_YET_VALID"
    );
    assert_eq!(
        refused(&authority, &good.der, instant("2029-01-01T00:00:01Z")).reason_code(),
        "CERTIFICATE_EXPIRED"
    );
}

#[test]
fn cards_of_other_cas_and_forgeries_are_untrusted() {
    let pki = Pki::new();
    let authority = pki.authority();
    let stranger = ca("Unrelated CA", None);
    assert_eq!(
        code(&authority, &card(&stranger, GOOD).der),
        "CERTIFICATE_UNTRUSTED"
    );
    assert_eq!(
        refused(&authority, &card(&stranger, GOOD).der, at()).to_string(),
        "card certificate is not trusted: no chain to a configured trust anchor"
    );
    // A CA with the intermediate's very name but another key: the chain is
    // found by name, the signature gives it away.
    let impostor = ca("Test JPKI User Authentication CA", None);
    assert_eq!(
        code(&authority, &card(&impostor, GOOD).der),
        "CERTIFICATE_UNTRUSTED"
    );
    // An expired card of a stranger is untrusted, not "expired".
    let old = issue(
        &stranger,
        CardSpec {
            from: (2015, 1, 1),
            to: (2020, 1, 1),
            ..spec(GOOD)
        },
    );
    assert_eq!(code(&authority, &old.der), "CERTIFICATE_UNTRUSTED");
}

#[test]
fn tampered_certificates_are_refused() {
    let pki = Pki::new();
    let authority = pki.authority();
    let genuine = card(&pki.intermediate, &[0x33, 0x44]);
    assert!(authority.verify(&genuine.der, at()).is_ok());
    // The signature's last byte.
    let mut signature = genuine.der.clone();
    *signature.last_mut().unwrap() ^= 0x01;
    assert_eq!(
        refused(&authority, &signature, at()).to_string(),
        "card certificate is not trusted: a signature in its chain does not verify"
    );
    // The serial, to claim another card: INTEGER 33 44 becomes 33 45.
    let mut serial = genuine.der.clone();
    let at_serial = serial
        .windows(4)
        .position(|w| w == [0x02, 0x02, 0x33, 0x44])
        .unwrap();
    serial[at_serial + 3] = 0x45;
    assert_eq!(unverified_serial(&serial).unwrap().as_str(), "3345");
    assert_eq!(code(&authority, &serial), "CERTIFICATE_UNTRUSTED");
    // An expired card with a tampered signature is untrusted, not "expired".
    let expired = issue(
        &pki.intermediate,
        CardSpec {
            from: (2020, 1, 1),
            to: (2025, 1, 1),
            ..spec(&[0x35])
        },
    );
    let mut forged = expired.der.clone();
    *forged.last_mut().unwrap() ^= 0x01;
    assert_eq!(code(&authority, &expired.der), "CERTIFICATE_EXPIRED");
    assert_eq!(code(&authority, &forged), "CERTIFICATE_UNTRUSTED");
}

#[test]
fn revoked_card_is_refused_with_its_revocation_date() {
    let pki = Pki::new();
    let authority = pki.authority();
    let revoked = card(&pki.intermediate, REVOKED);
    let refusal = refused(&authority, &revoked.der, at());
    assert_eq!(
        refusal,
        CertificateRefusal::Revoked {
            revoked_at: Some(instant("2025-03-01T00:00:00Z"))
        }
    );
    assert_eq!(refusal.reason_code(), "CERTIFICATE_REVOKED");
    // Revocation is judged by the CRLs in force, whatever the instant.
    assert_eq!(
        refused(&authority, &revoked.der, instant("2024-06-01T00:00:00Z")).reason_code(),
        "CERTIFICATE_REVOKED"
    );
    // A high-bit serial is found on the CRL too (both DER-padded).
    fs::write(
        &pki.intermediate_crl,
        crl(&pki.intermediate, &[HIGH_BIT], 2).der,
    )
    .unwrap();
    let authority = pki.authority();
    assert_eq!(
        code(&authority, &card(&pki.intermediate, HIGH_BIT).der),
        "CERTIFICATE_REVOKED"
    );
    assert!(authority.verify(&revoked.der, at()).is_ok());
}

#[test]
fn replacing_the_crl_file_takes_effect_without_rebuilding() {
    let pki = Pki::new();
    let authority = pki.authority();
    let first = card(&pki.intermediate, REVOKED);
    let second = card(&pki.intermediate, OTHER);
    assert_eq!(code(&authority, &first.der), "CERTIFICATE_REVOKED");
    assert!(authority.verify(&second.der, at()).is_ok());
    assert_eq!(authority.crl_generation(), 1);

    // The new CRL revokes the other card instead. The files are looked at
    // at most once a second.
    replace(
        &pki.intermediate_crl,
        crl(&pki.intermediate, &[OTHER], 2).pem,
    );
    std::thread::sleep(Duration::from_millis(1100));
    assert!(authority.verify(&first.der, at()).is_ok());
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");
    assert_eq!(authority.crl_generation(), 2);

    // A broken replacement: the last good CRLs stay in force, and the
    // broken file is not read again until it changes.
    replace(
        &pki.intermediate_crl,
        "-----BEGIN X509 CRL-----\nnot base64\n",
    );
    let e = authority.reload_crls().unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&pki.intermediate_crl.display().to_string()),
        "{e}"
    );
    assert_eq!(authority.crl_generation(), 2);
    assert!(!authority.reload_crls().unwrap());
    assert!(authority.verify(&first.der, at()).is_ok());
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");
    // So is a CRL under the intermediate's name signed by another key.
    let impostor = ca("Test JPKI User Authentication CA", None);
    replace(&pki.intermediate_crl, crl(&impostor, &[], 9).pem);
    assert_eq!(
        authority.reload_crls().unwrap_err().to_string(),
        format!(
            "{}: its signature does not verify with the key of a configured CA of its \
             issuer's name",
            pki.intermediate_crl.display()
        )
    );
    assert_eq!(authority.crl_generation(), 2);
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");
    // A CRL file that vanishes is a broken change too.
    fs::remove_file(&pki.intermediate_crl).unwrap();
    assert!(matches!(
        authority.reload_crls(),
        Err(CardCertError::Read { .. })
    ));
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");

    // Repaired, written in place, as DER this time.
    fs::write(
        &pki.intermediate_crl,
        crl(&pki.intermediate, &[REVOKED, OTHER], 3).der,
    )
    .unwrap();
    assert!(authority.reload_crls().unwrap());
    assert_eq!(authority.crl_generation(), 3);
    assert_eq!(code(&authority, &first.der), "CERTIFICATE_REVOKED");
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");
    assert!(!authority.reload_crls().unwrap());
}

#[test]
fn a_zero_interval_checks_at_every_verification() {
    let pki = Pki::new();
    let authority = pki.authority().with_crl_check_interval(Duration::ZERO);
    let second = card(&pki.intermediate, OTHER);
    assert!(authority.verify(&second.der, at()).is_ok());
    replace(
        &pki.intermediate_crl,
        crl(&pki.intermediate, &[OTHER], 2).pem,
    );
    assert_eq!(code(&authority, &second.der), "CERTIFICATE_REVOKED");
    assert_eq!(authority.crl_generation(), 2);
}

#[test]
fn shared_across_threads_while_the_crl_changes() {
    let pki = Pki::new();
    let authority = Arc::new(pki.authority().with_crl_check_interval(Duration::ZERO));
    let second = Arc::new(card(&pki.intermediate, OTHER).der);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let authority = Arc::clone(&authority);
            let second = Arc::clone(&second);
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| match authority.verify(&second, at()) {
                        Ok(serial) => serial.as_str().to_owned(),
                        Err(refusal) => refusal.reason_code().to_owned(),
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    replace(
        &pki.intermediate_crl,
        crl(&pki.intermediate, &[OTHER], 2).pem,
    );
    for worker in workers {
        for outcome in worker.join().unwrap() {
            assert!(
                outcome == "5678" || outcome == "CERTIFICATE_REVOKED",
                "{outcome}"
            );
        }
    }
    authority.reload_crls().unwrap();
    assert_eq!(code(&authority, &second), "CERTIFICATE_REVOKED");
    assert_eq!(authority.crl_generation(), 2);
}

#[test]
fn revocation_unknown_fails_closed() {
    let pki = Pki::new();
    let good = card(&pki.intermediate, GOOD);

    // Only the root's CRL: nothing says whether the intermediate's cards are revoked.
    let mut config = pki.config.clone();
    config.crls.remove(0);
    let authority = CardAuthority::load(&config).unwrap();
    let refusal = refused(&authority, &good.der, at());
    assert_eq!(refusal.reason_code(), "REVOCATION_UNKNOWN");
    assert_eq!(
        refusal.to_string(),
        "revocation status of the card certificate is unknown: no CRL of the certificate's \
         issuer is configured"
    );
    // A card of the root is still checked against the root's CRL.
    assert!(authority.verify(&card(&pki.root, OTHER).der, at()).is_ok());

    // A CRL past its nextUpdate.
    fs::write(
        &pki.intermediate_crl,
        crl_with(&pki.intermediate, &[], 2, (2024, 1, 1), (2025, 5, 1)).pem,
    )
    .unwrap();
    let authority = pki.authority();
    assert_eq!(
        refused(&authority, &good.der, at()).to_string(),
        "revocation status of the card certificate is unknown: the CRL of the certificate's \
         issuer is out of date (next update was due at 2025-05-01T00:00:00Z)"
    );
    assert!(authority
        .verify(&good.der, instant("2025-04-30T23:59:59Z"))
        .is_ok());

    // A CRL signed by a CA whose certificate does not allow it to sign
    // CRLs (key usage without cRLSign).
    let root = ca("Test Root", None);
    let key = KeyPair::generate().unwrap();
    let crl_key = KeyPair::try_from(key.serialized_der()).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = dn("No CRL Signing CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let no_crl_sign = Ca {
        der: params.signed_by(&key, &root.issuer).unwrap().der().to_vec(),
        pem: String::new(),
        issuer: Issuer::new(params.clone(), key),
    };
    params.key_usages.push(KeyUsagePurpose::CrlSign);
    let crl_signer = Ca {
        der: vec![],
        pem: String::new(),
        issuer: Issuer::new(params, crl_key),
    };
    fs::write(pki.path("ncs-root.der"), &root.der).unwrap();
    fs::write(pki.path("ncs.der"), &no_crl_sign.der).unwrap();
    fs::write(pki.path("ncs.crl"), crl(&crl_signer, &[], 1).der).unwrap();
    let authority = CardAuthority::load(&CardAuthorityConfig {
        trust_anchors: vec![pki.path("ncs-root.der")],
        intermediates: vec![pki.path("ncs.der")],
        crls: vec![pki.path("ncs.crl")],
    })
    .unwrap();
    assert_eq!(
        refused(&authority, &card(&no_crl_sign, GOOD).der, at()).to_string(),
        "revocation status of the card certificate is unknown: the certificate's issuer is \
         not allowed to sign CRLs (key usage)"
    );
}

#[test]
fn without_crls_revocation_is_not_checked() {
    let pki = Pki::new();
    let mut config = pki.config.clone();
    config.crls.clear();
    let authority = CardAuthority::load(&config).unwrap();
    assert!(!authority.checks_revocation());
    assert!(authority
        .verify(&card(&pki.intermediate, REVOKED).der, at())
        .is_ok());
    assert!(!authority.reload_crls().unwrap());
    assert_eq!(authority.crl_generation(), 1);
}

#[test]
fn extended_key_usage_and_ca_certificates() {
    let pki = Pki::new();
    let authority = pki.authority();
    let with = |eku: Vec<ExtendedKeyUsagePurpose>| {
        issue(
            &pki.intermediate,
            CardSpec {
                eku,
                ..spec(&[0x44])
            },
        )
        .der
    };
    // No EKU at all, or clientAuth among others: accepted.
    assert!(authority.verify(&with(vec![]), at()).is_ok());
    assert!(authority
        .verify(
            &with(vec![
                ExtendedKeyUsagePurpose::EmailProtection,
                ExtendedKeyUsagePurpose::ClientAuth
            ]),
            at()
        )
        .is_ok());
    // An EKU without clientAuth: not a user-authentication certificate.
    let server = with(vec![ExtendedKeyUsagePurpose::ServerAuth]);
    assert_eq!(code(&authority, &server), "CERTIFICATE_WRONG_USAGE");
    assert!(refused(&authority, &server, at())
        .to_string()
        .contains("clientAuth"));
    // A CA certificate presented as a card.
    assert_eq!(
        code(&authority, &pki.intermediate.der),
        "CERTIFICATE_WRONG_USAGE"
    );
    let ca_card = issue(
        &pki.intermediate,
        CardSpec {
            is_ca: true,
            ..spec(&[0x45])
        },
    );
    assert_eq!(
        refused(&authority, &ca_card.der, at()).to_string(),
        "not a card user-authentication certificate: it is a CA certificate"
    );
}

#[test]
fn ca_outside_its_validity_makes_the_card_untrusted() {
    let dir = tempfile::tempdir().unwrap();
    let root = ca("Test Root", None);
    let old = ca_with(
        "Old Intermediate",
        Some(&root),
        (2019, 1, 1),
        (2025, 1, 1),
        KeyPair::generate().unwrap(),
    );
    let card = card(&old, GOOD);
    let paths = [
        ("root.pem", root.pem.as_bytes()),
        ("old.pem", old.pem.as_bytes()),
    ];
    for (name, contents) in paths {
        fs::write(dir.path().join(name), contents).unwrap();
    }
    fs::write(dir.path().join("old.crl"), crl(&old, &[], 1).pem).unwrap();
    let authority = CardAuthority::load(&CardAuthorityConfig {
        trust_anchors: vec![dir.path().join("root.pem")],
        intermediates: vec![dir.path().join("old.pem")],
        crls: vec![dir.path().join("old.crl")],
    })
    .unwrap();
    assert!(authority
        .verify(&card.der, instant("2024-06-01T00:00:00Z"))
        .is_ok());
    let refusal = refused(&authority, &card.der, at());
    assert_eq!(
        refusal.to_string(),
        "card certificate is not trusted: a CA certificate in its chain is not valid at this \
         instant (valid until 2025-01-01T00:00:00Z)"
    );
}

#[test]
fn garbage_is_malformed() {
    let pki = Pki::new();
    let authority = pki.authority();
    let good = card(&pki.intermediate, GOOD);
    let truncated = good.der[..good.der.len() / 2].to_vec();
    let mut trailing = good.der.clone();
    trailing.push(0);
    let inputs: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "empty"),
        (b"not a certificate".to_vec(), "neither DER nor PEM"),
        (
            (0..=255u8).cycle().take(3000).collect(),
            "neither DER nor PEM",
        ),
        (
            vec![0x30, 0x03, 0x02, 0x01, 0x01],
            "not a DER-encoded X.509 certificate",
        ),
        (truncated, "not a DER-encoded X.509 certificate"),
        (trailing, "not a DER-encoded X.509 certificate"),
        (
            format!("{}{}", good.pem, good.pem).into_bytes(),
            "expected one CERTIFICATE block in the PEM, found 2 blocks",
        ),
        (
            crl(&pki.intermediate, &[], 5).pem.into_bytes(),
            "the PEM block is X509 CRL, not CERTIFICATE",
        ),
        (
            good.pem
                .replace("-----END CERTIFICATE-----", "")
                .into_bytes(),
            "a PEM block has no END line",
        ),
        (
            format!(
                "{}{}",
                good.pem,
                KeyPair::generate().unwrap().serialize_pem()
            )
            .into_bytes(),
            "the PEM holds a private key; send the certificate only",
        ),
    ];
    for (input, why) in inputs {
        assert_eq!(
            refused(&authority, &input, at()),
            CertificateRefusal::Malformed(why.to_owned()),
            "{why}"
        );
    }
}

#[test]
fn configuration_errors_name_the_file() {
    let pki = Pki::new();
    let load = |config: &CardAuthorityConfig| CardAuthority::load(config).unwrap_err().to_string();

    let mut config = pki.config.clone();
    config.trust_anchors.clear();
    assert!(load(&config).starts_with("no trust anchors configured"));

    let missing = pki.path("nowhere.pem");
    let mut config = pki.config.clone();
    config.intermediates.push(missing.clone());
    assert!(load(&config).starts_with(&format!("cannot read {}", missing.display())));

    let key = pki.path("key.pem");
    fs::write(&key, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let mut config = pki.config.clone();
    config.trust_anchors = vec![key.clone()];
    assert_eq!(
        load(&config),
        format!(
            "{}: holds a private key; it must hold CERTIFICATE blocks only",
            key.display()
        )
    );

    // A certificate where a CRL should be.
    let mut config = pki.config.clone();
    config.crls.push(config.trust_anchors[0].clone());
    assert_eq!(
        load(&config),
        format!(
            "{}: holds a CERTIFICATE block; expected X509 CRL",
            config.trust_anchors[0].display()
        )
    );

    let text = pki.path("notes.txt");
    fs::write(&text, "see the wiki").unwrap();
    let mut config = pki.config.clone();
    config.crls = vec![text.clone()];
    assert_eq!(
        load(&config),
        format!(
            "{}: neither DER nor PEM with X509 CRL blocks",
            text.display()
        )
    );

    let garbage_crl = pki.path("garbage.crl");
    fs::write(&garbage_crl, [0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
    let mut config = pki.config.clone();
    config.crls = vec![garbage_crl.clone()];
    assert!(load(&config).starts_with(&format!(
        "{}: not a usable X.509 v2 CRL",
        garbage_crl.display()
    )));

    // A CRL under the intermediate's name that its key did not sign.
    let impostor = ca("Test JPKI User Authentication CA", None);
    let forged = pki.path("forged.crl");
    fs::write(&forged, crl(&impostor, &[], 1).der).unwrap();
    let mut config = pki.config.clone();
    config.crls[0] = forged.clone();
    assert_eq!(
        load(&config),
        format!(
            "{}: its signature does not verify with the key of a configured CA of its \
             issuer's name",
            forged.display()
        )
    );

    // Two CRLs of one issuer: which one held would depend on file order.
    let again = pki.path("intermediate-again.crl");
    fs::write(&again, crl(&pki.intermediate, &[], 4).der).unwrap();
    let mut config = pki.config.clone();
    config.crls.push(again.clone());
    let e = CardAuthority::load(&config).unwrap_err();
    assert!(
        matches!(&e, CardCertError::DuplicateCrl { first, second } if *first == pki.intermediate_crl && *second == again),
        "{e}"
    );

    // Several anchors in one PEM file are fine; the stranger's cards are then trusted.
    let stranger = ca("Another CA", None);
    let bundle = pki.path("bundle.pem");
    fs::write(&bundle, format!("{}{}", pki.root.pem, stranger.pem)).unwrap();
    let stranger_crl = pki.path("stranger.crl");
    fs::write(&stranger_crl, crl(&stranger, &[], 1).pem).unwrap();
    let mut config = pki.config.clone();
    config.trust_anchors = vec![bundle];
    config.crls.push(stranger_crl);
    let authority = CardAuthority::load(&config).unwrap();
    assert!(authority.verify(&card(&stranger, GOOD).der, at()).is_ok());
    assert!(authority
        .verify(&card(&pki.intermediate, GOOD).der, at())
        .is_ok());
}

#[test]
fn nothing_personal_in_refusals_or_debug_output() {
    let pki = Pki::new();
    let authority = pki.authority();
    let stranger = ca("Unrelated CA", None);
    let mut tampered = card(&pki.intermediate, GOOD).der;
    *tampered.last_mut().unwrap() ^= 0x01;
    let cases = [
        card(&stranger, GOOD).der,
        tampered,
        card(&pki.intermediate, REVOKED).der,
        issue(
            &pki.intermediate,
            CardSpec {
                to: (2025, 1, 1),
                ..spec(&[0x50])
            },
        )
        .der,
        issue(
            &pki.intermediate,
            CardSpec {
                eku: vec![ExtendedKeyUsagePurpose::ServerAuth],
                ..spec(&[0x51])
            },
        )
        .der,
        card(&pki.intermediate, GOOD)
            .pem
            .replace("-----END CERTIFICATE-----", "")
            .into_bytes(),
    ];
    let personal = ["券面", "太郎", "CARDHOLDER"];
    for input in cases {
        let refusal = refused(&authority, &input, at());
        for text in [refusal.to_string(), format!("{refusal:?}")] {
            for word in personal {
                assert!(!text.contains(word), "{text}");
            }
        }
    }
    let debug = format!("{authority:?}");
    assert!(debug.contains("crl_generation: 1"), "{debug}");
    for word in personal {
        assert!(!debug.contains(word), "{debug}");
    }
}
