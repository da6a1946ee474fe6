//! Verification of the user-authentication certificate (利用者証明用電子証明書)
//! of a My Number card, for link requests (初回紐づけ).
//!
//! A card holder's link request carries the certificate of the card's
//! user-authentication key (JPKI). Before the ledger links a card serial
//! (シリアル) to anyone, [`CardAuthority::verify`] checks the certificate for
//! real and takes the serial from it:
//!
//! 1. **chain**: a signature chain from the certificate to one of the
//!    configured trust anchors, optionally through the configured
//!    intermediate CA certificates (path building, signatures, CA basic
//!    constraints, path length and name constraints, all by
//!    [rustls-webpki](webpki)). Trust anchors are taken as name + key: their
//!    own validity dates are not checked; intermediates' are.
//! 2. **validity** at the given instant: `notBefore ≤ at ≤ notAfter`, for the
//!    card certificate and every intermediate in the chain. A date refusal
//!    (`CERTIFICATE_EXPIRED`, `CERTIFICATE_NOT_YET_VALID`) is only given for a
//!    certificate whose chain verifies at the edge of its validity: a forged
//!    or foreign certificate is untrusted whatever its dates, and so is a
//!    card whose intermediate is outside its own validity.
//! 3. **revocation**, when CRL files are configured: the card certificate's
//!    serial against the CRL of its issuer. The CRL's signature must verify
//!    with the issuer's key and the instant must be before the CRL's
//!    `nextUpdate`. It **fails closed**: a certificate whose issuer has no CRL
//!    among the configured ones, whose CRL is past `nextUpdate` or does not
//!    verify, is refused as [`CertificateRefusal::RevocationUnknown`]
//!    (`REVOCATION_UNKNOWN`). Only the card certificate is checked against
//!    CRLs: CA certificates (anchors, intermediates) are trusted by
//!    configuration, and a revoked CA is removed from it. The CRLs in force
//!    are those loaded now, whatever the instant: a card revoked after `at` is
//!    refused too. `crls = []` turns revocation checking off (logged as a
//!    warning at load); the key itself is required in the configuration so
//!    that it cannot be forgotten silently.
//! 4. **usage**: an end-entity certificate (a CA certificate is refused) whose
//!    extended key usage, when present, includes `clientAuth`
//!    (1.3.6.1.5.5.7.3.2) — JPKI user-authentication certificates are client
//!    certificates. Key usage bits of the card certificate are not checked.
//!    Unknown *critical* extensions are refused, as RFC 5280 requires
//!    (webpki knows key usage, basic and name constraints, subject alt name,
//!    CRL distribution points and extended key usage); check a real JPKI test
//!    certificate against this before production.
//!
//! Intermediates come from the configuration only, never from the request.
//!
//! Signature algorithms: RSA PKCS#1 v1.5 (2048–8192 bits, SHA-256/384/512;
//! JPKI uses sha256WithRSAEncryption), RSA-PSS, ECDSA P-256/P-384 and Ed25519.
//! SHA-1 signatures are refused.
//!
//! The card serial is the certificate's serial number as upper-case hex, one
//! pair of digits per octet, without the 00 octet DER puts in front of a
//! serial whose first bit is set (`00 8F 12` → `8F12`). Zero, negative and
//! non-minimally encoded serials, and serials longer than 20 octets, are
//! refused as malformed.
//!
//! # CRL files
//!
//! Each configured file holds one or more CRLs, PEM (`X509 CRL` blocks) or
//! DER. At most once a second ([`DEFAULT_CRL_CHECK_INTERVAL`]), a
//! verification looks at the files' modification time, size and inode; when
//! any changed, the whole set is read again and replaces the one in force
//! ([`CardAuthority::crl_generation`] counts the sets). Every CRL must parse
//! and verify with the key of a configured CA of its issuer's name (a CRL of
//! some other issuer is logged and never used). If a changed file cannot be
//! read, parsed or verified, the previous set stays in force and a warning is
//! logged once per change. Replace files by renaming a complete file over the
//! old one. Two CRLs of the same issuer and scope (issuing distribution
//! point) are refused: which one held would depend on file order.
//!
//! # What this module must not do
//!
//! The card certificate's subject carries the holder's name. This module
//! never returns, logs, stores or puts into a message any field of a card
//! certificate except its serial number and dates: refusal messages are
//! fixed texts and dates, and nothing of the certificate is kept after
//! [`CardAuthority::verify`] returns. It does not decide links
//! ([`crate::cardlink`] does) and does not fetch CRLs (an operator's job
//! writes the files).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant, SystemTime};

use ledger::domain::{CardSerial, RecordTime};
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use serde::Deserialize;
use webpki::{
    CertRevocationList, EndEntityCert, ExpirationPolicy, KeyUsage, OwnedCertRevocationList,
    RevocationCheckDepth, RevocationOptionsBuilder, UnknownStatusPolicy,
};

/// How often a verification looks at the CRL files' metadata, by default.
pub const DEFAULT_CRL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The largest certificate input [`CardAuthority::verify`] reads. A JPKI
/// certificate is about 1.5 KB.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;

/// Signature algorithms accepted in chains and CRLs.
static SIGNATURE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
];

/// Where the card CA certificates and CRLs are; a `[cards]` table:
///
/// ```toml
/// [cards]
/// trust_anchors = ["/etc/qledger/jpki-auth-ca.pem"]
/// intermediates = []                      # optional
/// crls = ["/var/lib/qledger/jpki-auth.crl"] # required; [] = no revocation check
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CardAuthorityConfig {
    /// CA certificates (PEM, one or more blocks, or DER) a chain must end at.
    pub trust_anchors: Vec<PathBuf>,
    /// CA certificates a chain may pass through (PEM or DER).
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    /// CRL files (PEM, one or more blocks, or DER). Empty: no revocation check.
    pub crls: Vec<PathBuf>,
}

/// A configuration that cannot be loaded; names the file and why.
#[derive(Debug, thiserror::Error)]
pub enum CardCertError {
    #[error("no trust anchors configured: trust_anchors must name at least one CA certificate file (PEM or DER)")]
    NoTrustAnchors,
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "{} and {} hold CRLs of the same issuer and scope; which one holds would depend on \
         file order: keep one CRL per issuer (or per issuing distribution point)",
        first.display(),
        second.display()
    )]
    DuplicateCrl { first: PathBuf, second: PathBuf },
}

/// Why a card certificate was refused. Messages are fixed texts and dates:
/// nothing of the certificate's subject.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CertificateRefusal {
    /// Not a certificate (or not one this verifier can read).
    #[error("card certificate is malformed: {0}")]
    Malformed(String),
    /// No chain to a configured trust anchor, a signature that does not
    /// verify, or a CA certificate of the chain outside its validity.
    #[error("card certificate is not trusted: {0}")]
    Untrusted(String),
    /// A CA certificate, or an extended key usage without `clientAuth`.
    #[error("not a card user-authentication certificate: {0}")]
    WrongUsage(String),
    /// The card certificate's validity ended before the instant.
    #[error("card certificate expired at {not_after}")]
    Expired { not_after: RecordTime },
    /// The card certificate's validity begins after the instant.
    #[error("card certificate is not valid before {not_before}")]
    NotYetValid { not_before: RecordTime },
    /// On its issuer's CRL; the revocation date when the CRL gives it.
    #[error("card certificate has been revoked{}", revoked_suffix(.revoked_at))]
    Revoked { revoked_at: Option<RecordTime> },
    /// CRLs are configured, but none can say whether this certificate is
    /// revoked (none from its issuer, out of date, or not verifying).
    #[error("revocation status of the card certificate is unknown: {0}")]
    RevocationUnknown(String),
}

fn revoked_suffix(at: &Option<RecordTime>) -> String {
    at.map(|t| format!(" (revoked at {t})")).unwrap_or_default()
}

impl CertificateRefusal {
    /// A stable machine-readable reason.
    pub fn reason_code(&self) -> &'static str {
        match self {
            CertificateRefusal::Malformed(_) => "CERTIFICATE_MALFORMED",
            CertificateRefusal::Untrusted(_) => "CERTIFICATE_UNTRUSTED",
            CertificateRefusal::WrongUsage(_) => "CERTIFICATE_WRONG_USAGE",
            CertificateRefusal::Expired { .. } => "CERTIFICATE_EXPIRED",
            CertificateRefusal::NotYetValid { .. } => "CERTIFICATE_NOT_YET_VALID",
            CertificateRefusal::Revoked { .. } => "CERTIFICATE_REVOKED",
            CertificateRefusal::RevocationUnknown(_) => "REVOCATION_UNKNOWN",
        }
    }

    /// Whether the refusal says the chain itself is bad (as opposed to dates
    /// or revocation of a certificate the CAs did issue).
    fn is_about_trust(&self) -> bool {
        matches!(
            self,
            CertificateRefusal::Malformed(_)
                | CertificateRefusal::Untrusted(_)
                | CertificateRefusal::WrongUsage(_)
        )
    }
}

/// The card CAs and CRLs: verifies card certificates. Shared across request
/// handlers (`Send + Sync`); CRL files are re-read when they change.
pub struct CardAuthority {
    anchors: Vec<TrustAnchor<'static>>,
    intermediates: Vec<CertificateDer<'static>>,
    /// The configured CAs' names and keys, to check CRLs as they are loaded.
    cas: Vec<CaKey>,
    crl_paths: Vec<PathBuf>,
    crls: RwLock<Arc<CrlSet>>,
    watch: Mutex<CrlWatch>,
    check_interval: Duration,
}

/// A configured CA's name (DER contents) and public key (SPKI DER).
struct CaKey {
    subject: Vec<u8>,
    spki: Vec<u8>,
}

/// The CRLs in force.
struct CrlSet {
    lists: Vec<LoadedCrl>,
    generation: u64,
}

struct LoadedCrl {
    path: PathBuf,
    list: CertRevocationList<'static>,
    /// The card serials it revokes and when (empty for a CRL of no
    /// configured CA, which is never used).
    revoked: Vec<RevokedCard>,
}

/// A card certificate a CRL in force revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCard {
    pub serial: CardSerial,
    /// The CRL entry's revocation date.
    pub revoked_at: RecordTime,
}

/// What the CRL files looked like when last looked at.
struct CrlWatch {
    last_check: Instant,
    stamps: Vec<Option<FileStamp>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl fmt::Debug for CardAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let crls = self.current_crls();
        f.debug_struct("CardAuthority")
            .field("trust_anchors", &self.anchors.len())
            .field("intermediates", &self.intermediates.len())
            .field("crl_files", &self.crl_paths)
            .field("crls", &crls.lists.len())
            .field("crl_generation", &crls.generation)
            .field("crl_check_interval", &self.check_interval)
            .finish()
    }
}

impl CardAuthority {
    /// Reads the trust anchors, intermediates and CRLs the configuration
    /// names. Every file must be readable and hold what it should.
    pub fn load(config: &CardAuthorityConfig) -> Result<CardAuthority, CardCertError> {
        if config.trust_anchors.is_empty() {
            return Err(CardCertError::NoTrustAnchors);
        }
        let mut anchors = Vec::new();
        let mut cas = Vec::new();
        for path in &config.trust_anchors {
            for der in certificates_in(path, &read_file(path)?)? {
                let anchor = webpki::anchor_from_trusted_cert(&der)
                    .map_err(|e| invalid(path, format!("not a usable CA certificate ({e:?})")))?
                    .to_owned();
                cas.push(CaKey {
                    subject: anchor.subject.as_ref().to_vec(),
                    spki: webpki::spki_for_anchor(&anchor).as_ref().to_vec(),
                });
                anchors.push(anchor);
            }
        }
        let mut intermediates = Vec::new();
        for path in &config.intermediates {
            for der in certificates_in(path, &read_file(path)?)? {
                {
                    let cert = EndEntityCert::try_from(&der).map_err(|e| {
                        invalid(path, format!("not a usable CA certificate ({e:?})"))
                    })?;
                    cas.push(CaKey {
                        subject: cert.subject().to_vec(),
                        spki: cert.subject_public_key_info().as_ref().to_vec(),
                    });
                }
                intermediates.push(der);
            }
        }
        let (lists, stamps) = load_crls(&config.crls, &cas)?;
        if config.crls.is_empty() {
            tracing::warn!("no CRLs configured for card certificates: revocation is not checked");
        }
        Ok(CardAuthority {
            anchors,
            intermediates,
            cas,
            crl_paths: config.crls.clone(),
            crls: RwLock::new(Arc::new(CrlSet {
                lists,
                generation: 1,
            })),
            watch: Mutex::new(CrlWatch {
                last_check: Instant::now(),
                stamps,
            }),
            check_interval: DEFAULT_CRL_CHECK_INTERVAL,
        })
    }

    /// Looks at the CRL files at most once per `interval` (default one
    /// second; zero: at every verification).
    pub fn with_crl_check_interval(mut self, interval: Duration) -> CardAuthority {
        self.check_interval = interval;
        self
    }

    /// The CRL set in force: 1 for the set [`CardAuthority::load`] read, one
    /// more for each reload that took effect.
    pub fn crl_generation(&self) -> u64 {
        self.current_crls().generation
    }

    /// Every card certificate the CRLs in force revoke, with the generation
    /// of that CRL set.
    pub fn revoked_cards(&self) -> (u64, Vec<RevokedCard>) {
        let crls = self.current_crls();
        let cards = crls
            .lists
            .iter()
            .flat_map(|l| l.revoked.iter().cloned())
            .collect();
        (crls.generation, cards)
    }

    /// Whether certificates are checked against CRLs (`crls` not empty).
    pub fn checks_revocation(&self) -> bool {
        !self.crl_paths.is_empty()
    }

    /// Looks at the CRL files now, whatever the interval, and reloads them
    /// if any changed: `Ok(true)` when a new set is in force, `Ok(false)`
    /// when nothing changed, the error when a changed file could not be
    /// loaded (the previous set stays in force).
    pub fn reload_crls(&self) -> Result<bool, CardCertError> {
        let mut watch = self.watch.lock().unwrap_or_else(PoisonError::into_inner);
        watch.last_check = Instant::now();
        self.reload_if_changed(&mut watch)
    }

    /// Verifies `certificate` (DER, or PEM with one `CERTIFICATE` block) as a
    /// card user-authentication certificate at the instant `at`, and returns
    /// the card serial it carries.
    pub fn verify(
        &self,
        certificate: &[u8],
        at: RecordTime,
    ) -> Result<CardSerial, CertificateRefusal> {
        self.refresh_crls();
        let der = decode_certificate(certificate)?;
        let cert = EndEntityCert::try_from(&der).map_err(|e| refusal(&e))?;
        let serial = card_serial(cert.serial())?;
        let crls = self.current_crls();
        let time = unix_time(at);
        match self.check(&cert, &crls, time) {
            Ok(()) => Ok(serial),
            Err(e) => Err(self.explain(&cert, &crls, e, time)),
        }
    }

    fn check(
        &self,
        cert: &EndEntityCert<'_>,
        crls: &CrlSet,
        time: UnixTime,
    ) -> Result<(), webpki::Error> {
        let lists: Vec<&CertRevocationList<'static>> = crls.lists.iter().map(|l| &l.list).collect();
        let revocation = RevocationOptionsBuilder::new(&lists).ok().map(|options| {
            options
                .with_depth(RevocationCheckDepth::EndEntity)
                .with_status_policy(UnknownStatusPolicy::Deny)
                .with_expiration_policy(ExpirationPolicy::Enforce)
                .build()
        });
        cert.verify_for_usage(
            SIGNATURE_ALGORITHMS,
            &self.anchors,
            &self.intermediates,
            time,
            KeyUsage::client_auth(),
            revocation,
            None,
        )
        .map(|_| ())
    }

    /// The refusal for a failed check. webpki checks the card certificate's
    /// own dates before anything else, so an expired forgery would read
    /// "expired": a date refusal is given only when the chain verifies at
    /// the edge of the certificate's validity, otherwise the chain's fault.
    fn explain(
        &self,
        cert: &EndEntityCert<'_>,
        crls: &CrlSet,
        error: webpki::Error,
        time: UnixTime,
    ) -> CertificateRefusal {
        let edge = match error {
            webpki::Error::CertExpired { not_after, .. } => not_after,
            webpki::Error::CertNotValidYet { not_before, .. } => not_before,
            webpki::Error::CertRevoked => {
                return CertificateRefusal::Revoked {
                    revoked_at: revocation_date(cert, crls),
                }
            }
            other => return refusal(&other),
        };
        // The card certificate's own properties alone (no anchor to reach).
        let own = cert.verify_for_usage(
            SIGNATURE_ALGORITHMS,
            &[],
            &[],
            time,
            KeyUsage::client_auth(),
            None,
            None,
        );
        if !matches!(
            own,
            Err(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. })
        ) {
            // The dates of a CA certificate in the chain.
            return CertificateRefusal::Untrusted(format!(
                "a CA certificate in its chain is not valid at this instant (valid {} {})",
                if matches!(error, webpki::Error::CertExpired { .. }) {
                    "until"
                } else {
                    "from"
                },
                record_time(edge)
            ));
        }
        if let Err(at_edge) = self.check(cert, crls, edge) {
            let at_edge = refusal(&at_edge);
            if at_edge.is_about_trust() {
                return at_edge;
            }
        }
        refusal(&error)
    }

    fn current_crls(&self) -> Arc<CrlSet> {
        Arc::clone(&self.crls.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The cheap check at each verification: at most once per interval, and
    /// never waiting for another thread that is checking or reloading.
    fn refresh_crls(&self) {
        if self.crl_paths.is_empty() {
            return;
        }
        let mut watch = match self.watch.try_lock() {
            Ok(watch) => watch,
            Err(TryLockError::WouldBlock) => return,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if now.saturating_duration_since(watch.last_check) < self.check_interval {
            return;
        }
        watch.last_check = now;
        // A failure is logged inside; the previous set stays in force.
        let _ = self.reload_if_changed(&mut watch);
    }

    fn reload_if_changed(&self, watch: &mut CrlWatch) -> Result<bool, CardCertError> {
        let stamps: Vec<_> = self.crl_paths.iter().map(|p| stamp(p)).collect();
        if stamps == watch.stamps {
            return Ok(false);
        }
        // Remembered even if loading fails: a broken file is reported once,
        // and read again when it changes again.
        watch.stamps = stamps;
        match load_crls(&self.crl_paths, &self.cas) {
            Ok((lists, stamps)) => {
                watch.stamps = stamps;
                let mut current = self.crls.write().unwrap_or_else(PoisonError::into_inner);
                let generation = current.generation + 1;
                let count = lists.len();
                *current = Arc::new(CrlSet { lists, generation });
                drop(current);
                tracing::info!(generation, crls = count, "card certificate CRLs reloaded");
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    generation = self.crl_generation(),
                    "card certificate CRL files changed but cannot be loaded; the previous CRLs stay in force"
                );
                Err(e)
            }
        }
    }
}

/// The serial of a card certificate **without verifying it**: for logging
/// a refused request only, never for linking.
pub fn unverified_serial(certificate: &[u8]) -> Result<CardSerial, CertificateRefusal> {
    let der = decode_certificate(certificate)?;
    let cert = EndEntityCert::try_from(&der).map_err(|e| refusal(&e))?;
    card_serial(cert.serial())
}

/// The card serial from the raw serial number (big-endian two's complement,
/// as in DER).
fn card_serial(raw: &[u8]) -> Result<CardSerial, CertificateRefusal> {
    let malformed = |why: &str| Err(CertificateRefusal::Malformed(why.to_owned()));
    let digits = match raw {
        [] => return malformed("its serial number is empty"),
        [first, ..] if first & 0x80 != 0 => return malformed("its serial number is negative"),
        [0] => return malformed("its serial number is zero"),
        [0, next, ..] if next & 0x80 == 0 => {
            return malformed("its serial number is not minimally encoded (DER)")
        }
        [0, rest @ ..] => rest,
        _ => raw,
    };
    if digits.len() > 20 {
        return malformed("its serial number is longer than 20 octets");
    }
    let hex: String = digits.iter().map(|b| format!("{b:02X}")).collect();
    CardSerial::parse(&hex)
        .map_err(|e| CertificateRefusal::Malformed(format!("serial number: {e}")))
}

/// webpki's error as a refusal, in words that carry nothing of the
/// certificate but dates.
#[allow(deprecated)]
fn refusal(error: &webpki::Error) -> CertificateRefusal {
    use webpki::Error as E;
    use CertificateRefusal as R;
    let untrusted = |why: &str| R::Untrusted(why.to_owned());
    let malformed = |why: &str| R::Malformed(why.to_owned());
    let unknown = |why: &str| R::RevocationUnknown(why.to_owned());
    match error {
        E::CertExpired { not_after, .. } => R::Expired {
            not_after: record_time(*not_after),
        },
        E::CertNotValidYet { not_before, .. } => R::NotYetValid {
            not_before: record_time(*not_before),
        },
        E::CertRevoked => R::Revoked { revoked_at: None },
        E::UnknownRevocationStatus => unknown("no CRL of the certificate's issuer is configured"),
        E::CrlExpired { next_update, .. } => R::RevocationUnknown(format!(
            "the CRL of the certificate's issuer is out of date (next update was due at {})",
            record_time(*next_update)
        )),
        E::InvalidCrlSignatureForPublicKey
        | E::UnsupportedCrlSignatureAlgorithm
        | E::UnsupportedCrlSignatureAlgorithmContext(_)
        | E::UnsupportedCrlSignatureAlgorithmForPublicKey
        | E::UnsupportedCrlSignatureAlgorithmForPublicKeyContext(_) => {
            unknown("the CRL of the certificate's issuer does not verify with the issuer's key")
        }
        E::IssuerNotCrlSigner => {
            unknown("the certificate's issuer is not allowed to sign CRLs (key usage)")
        }
        E::UnsupportedCrlVersion
        | E::UnsupportedDeltaCrl
        | E::UnsupportedIndirectCrl
        | E::UnsupportedRevocationReason
        | E::UnsupportedRevocationReasonsPartitioning
        | E::UnsupportedCrlIssuingDistributionPoint
        | E::InvalidCrlNumber => unknown("the CRL of the certificate's issuer is not usable"),
        E::UnknownIssuer => untrusted("no chain to a configured trust anchor"),
        E::InvalidSignatureForPublicKey => untrusted("a signature in its chain does not verify"),
        E::UnsupportedSignatureAlgorithm
        | E::UnsupportedSignatureAlgorithmContext(_)
        | E::UnsupportedSignatureAlgorithmForPublicKey
        | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => {
            untrusted("its chain uses a signature algorithm or key that is not accepted")
        }
        E::CertDistrusted => untrusted("a key in its chain is distrusted"),
        E::EndEntityUsedAsCa => {
            untrusted("its chain passes through a certificate that is not a CA")
        }
        E::PathLenConstraintViolated => {
            untrusted("its chain is longer than a CA's path length constraint allows")
        }
        E::NameConstraintViolation => untrusted("it violates a CA's name constraints"),
        E::MaximumPathDepthExceeded
        | E::MaximumSignatureChecksExceeded
        | E::MaximumPathBuildCallsExceeded
        | E::MaximumNameConstraintComparisonsExceeded => {
            untrusted("no chain to a configured trust anchor within the path-building limits")
        }
        E::UnsupportedCriticalExtension => {
            untrusted("it carries a critical extension this verifier does not support")
        }
        E::CaUsedAsEndEntity => R::WrongUsage("it is a CA certificate".to_owned()),
        E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) | E::EmptyEkuExtension => {
            R::WrongUsage(
                "the extended key usage of the certificate (or of a CA in its chain) \
                 does not include clientAuth"
                    .to_owned(),
            )
        }
        E::SignatureAlgorithmMismatch => {
            malformed("its inner and outer signature algorithms differ")
        }
        E::UnsupportedCertVersion => malformed("it is not an X.509 v3 certificate"),
        E::InvalidSerialNumber => malformed("its serial number is invalid"),
        E::InvalidCertValidity => malformed("its validity period ends before it begins"),
        E::BadDerTime => malformed("a time in it is not valid DER"),
        E::MalformedExtensions | E::ExtensionValueInvalid => {
            malformed("its extensions are malformed")
        }
        E::BadDer | E::TrailingData(_) => malformed("not a DER-encoded X.509 certificate"),
        _ => untrusted("it could not be verified"),
    }
}

/// The revocation date of a certificate its issuer's CRL lists.
fn revocation_date(cert: &EndEntityCert<'_>, crls: &CrlSet) -> Option<RecordTime> {
    crls.lists
        .iter()
        .filter(|l| l.list.issuer() == cert.issuer())
        .find_map(|l| l.list.find_serial(cert.serial()).ok().flatten())
        .map(|revoked| record_time(revoked.revocation_date))
}

fn unix_time(at: RecordTime) -> UnixTime {
    // Before 1970 nothing is valid; webpki's time cannot go there.
    UnixTime::since_unix_epoch(Duration::from_micros(
        u64::try_from(at.micros()).unwrap_or(0),
    ))
}

fn record_time(t: UnixTime) -> RecordTime {
    let micros = i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| s.checked_mul(1_000_000))
        .unwrap_or(i64::MAX);
    RecordTime::from_micros(micros)
}

/// The certificate's DER from the request's bytes: DER as is, or PEM with
/// exactly one `CERTIFICATE` block.
fn decode_certificate(input: &[u8]) -> Result<CertificateDer<'_>, CertificateRefusal> {
    let malformed = |why: String| Err(CertificateRefusal::Malformed(why));
    if input.len() > MAX_CERTIFICATE_BYTES {
        return malformed(format!("larger than {MAX_CERTIFICATE_BYTES} bytes"));
    }
    if input.first() == Some(&0x30) {
        return Ok(CertificateDer::from(input));
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return malformed("empty".to_owned());
    }
    if !looks_like_pem(input) {
        return malformed("neither DER nor PEM".to_owned());
    }
    // Lines may come indented (PEM pasted into JSON or a form).
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n' || b == b'\r')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
        .collect();
    let pem = lines.join(&b'\n');
    let mut blocks = Vec::new();
    for block in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(&pem) {
        blocks.push(block.map_err(|e| CertificateRefusal::Malformed(pem_problem(&e)))?);
    }
    if blocks.iter().any(|(kind, _)| is_secret(*kind)) {
        return malformed("the PEM holds a private key; send the certificate only".to_owned());
    }
    if blocks.len() > 1 {
        return malformed(format!(
            "expected one CERTIFICATE block in the PEM, found {} blocks",
            blocks.len()
        ));
    }
    match blocks.pop() {
        None => malformed("no CERTIFICATE block in the PEM".to_owned()),
        Some((SectionKind::Certificate, der)) => Ok(CertificateDer::from(der)),
        Some((kind, _)) => malformed(format!("the PEM block is {}, not CERTIFICATE", label(kind))),
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn is_secret(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

fn label(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Certificate => "CERTIFICATE",
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::RsaPrivateKey => "RSA PRIVATE KEY",
        SectionKind::PrivateKey => "PRIVATE KEY",
        SectionKind::EcPrivateKey => "EC PRIVATE KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        _ => "another kind",
    }
}

/// PEM trouble in words that quote nothing of the input.
fn pem_problem(error: &pem::Error) -> String {
    match error {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a PEM block is too large".to_owned(),
        _ => "the PEM cannot be read".to_owned(),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, CardCertError> {
    fs::read(path).map_err(|source| CardCertError::Read {
        path: path.to_owned(),
        source,
    })
}

fn invalid(path: &Path, reason: String) -> CardCertError {
    CardCertError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

/// The blocks of one kind in a PEM or DER file; anything else is an error.
fn blocks_in(path: &Path, bytes: &[u8], want: SectionKind) -> Result<Vec<Vec<u8>>, CardCertError> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    if !looks_like_pem(bytes) {
        return Err(invalid(
            path,
            format!("neither DER nor PEM with {} blocks", label(want)),
        ));
    }
    let mut out = Vec::new();
    for block in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(bytes) {
        let (kind, der) = block.map_err(|e| invalid(path, pem_problem(&e)))?;
        if is_secret(kind) {
            return Err(invalid(
                path,
                format!(
                    "holds a private key; it must hold {} blocks only",
                    label(want)
                ),
            ));
        }
        if kind != want {
            return Err(invalid(
                path,
                format!("holds a {} block; expected {}", label(kind), label(want)),
            ));
        }
        out.push(der);
    }
    if out.is_empty() {
        return Err(invalid(path, format!("holds no {} block", label(want))));
    }
    Ok(out)
}

fn certificates_in(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CardCertError> {
    Ok(blocks_in(path, bytes, SectionKind::Certificate)?
        .into_iter()
        .map(CertificateDer::from)
        .collect())
}

/// Reads every CRL file; the files' stamps are taken before reading, so a
/// change while reading is seen at the next check. A CRL must verify with
/// the key of a configured CA of its issuer's name (webpki checks it again at
/// each verification); one of an issuer that is none of them is kept, never
/// used, and logged.
fn load_crls(
    paths: &[PathBuf],
    cas: &[CaKey],
) -> Result<(Vec<LoadedCrl>, Vec<Option<FileStamp>>), CardCertError> {
    let stamps = paths.iter().map(|p| stamp(p)).collect();
    let mut lists: Vec<LoadedCrl> = Vec::new();
    for path in paths {
        for der in blocks_in(path, &read_file(path)?, SectionKind::Crl)? {
            let list = OwnedCertRevocationList::from_der(&der)
                .map_err(|e| invalid(path, format!("not a usable X.509 v2 CRL ({e:?})")))?;
            let list = CertRevocationList::from(list);
            let mut issuers = cas
                .iter()
                .filter(|ca| ca.subject == list.issuer())
                .peekable();
            let issuers_known = issuers.peek().is_some();
            if !issuers_known {
                tracing::warn!(
                    file = %path.display(),
                    "a card certificate CRL is issued by none of the configured CAs; it is never used"
                );
            } else if !issuers.any(|ca| crl_signed_by(&der, &ca.spki)) {
                return Err(invalid(
                    path,
                    "its signature does not verify with the key of a configured CA of its issuer's name"
                        .to_owned(),
                ));
            }
            let revoked = if issuers_known {
                revoked_cards(path, &der)?
            } else {
                Vec::new()
            };
            if let Some(other) = lists.iter().find(|other| {
                other.list.issuer() == list.issuer()
                    && other.list.issuing_distribution_point() == list.issuing_distribution_point()
            }) {
                return Err(CardCertError::DuplicateCrl {
                    first: other.path.clone(),
                    second: path.clone(),
                });
            }
            lists.push(LoadedCrl {
                path: path.clone(),
                list,
                revoked,
            });
        }
    }
    Ok((lists, stamps))
}

/// The entries of a CRL whose signature verified, as card serials. An entry
/// whose serial is no card serial (zero, too long) is skipped: no card
/// carries it.
fn revoked_cards(path: &Path, der: &[u8]) -> Result<Vec<RevokedCard>, CardCertError> {
    let list = webpki::BorrowedCertRevocationList::from_der(der)
        .map_err(|e| invalid(path, format!("not a usable X.509 v2 CRL ({e:?})")))?;
    let mut out = Vec::new();
    for entry in &list {
        let entry =
            entry.map_err(|e| invalid(path, format!("a revoked-certificate entry ({e:?})")))?;
        if let Ok(serial) = card_serial(entry.serial_number) {
            out.push(RevokedCard {
                serial,
                revoked_at: record_time(entry.revocation_date),
            });
        }
    }
    Ok(out)
}

/// Whether the CRL `crl_der` is signed by the key of `spki_der`, with one
/// of the accepted algorithms.
fn crl_signed_by(crl_der: &[u8], spki_der: &[u8]) -> bool {
    let (Some((tbs, algorithm, signature)), Some((key_algorithm, key))) =
        (signed_parts(crl_der), spki_parts(spki_der))
    else {
        return false;
    };
    SIGNATURE_ALGORITHMS.iter().any(|alg| {
        alg.signature_alg_id().as_ref() == algorithm
            && alg.public_key_alg_id().as_ref() == key_algorithm
            && alg.verify_signature(key, tbs, signature).is_ok()
    })
}

/// A signed DER structure (`SEQUENCE { tbs, AlgorithmIdentifier, BIT
/// STRING }`): the signed bytes, the algorithm's contents, the signature.
fn signed_parts(der: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let Some((0x30, body, [])) = der_element(der) else {
        return None;
    };
    let Some((0x30, _, after_tbs)) = der_element(body) else {
        return None;
    };
    let tbs = &body[..body.len() - after_tbs.len()];
    let Some((0x30, algorithm, after_algorithm)) = der_element(after_tbs) else {
        return None;
    };
    let Some((0x03, [0, signature @ ..], [])) = der_element(after_algorithm) else {
        return None;
    };
    Some((tbs, algorithm, signature))
}

/// A SubjectPublicKeyInfo: the algorithm's contents and the key's bits.
fn spki_parts(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let Some((0x30, body, [])) = der_element(der) else {
        return None;
    };
    let Some((0x30, algorithm, rest)) = der_element(body) else {
        return None;
    };
    let Some((0x03, [0, key @ ..], [])) = der_element(rest) else {
        return None;
    };
    Some((algorithm, key))
}

/// The first DER element of `input`: tag, contents and what follows.
/// One-octet tags and definite lengths only (all that CRLs and keys use).
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (len, rest) = rest.split_at(octets);
        (
            len.iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
            rest,
        )
    };
    if rest.len() < len {
        return None;
    }
    let (contents, rest) = rest.split_at(len);
    Some((tag, contents, rest))
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let meta = fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode: inode(&meta),
    })
}

#[cfg(unix)]
fn inode(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &fs::Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(raw: &[u8]) -> Result<String, CertificateRefusal> {
        card_serial(raw).map(|s| s.as_str().to_owned())
    }

    fn malformed(input: &[u8]) -> String {
        match decode_certificate(input) {
            Err(CertificateRefusal::Malformed(why)) => why,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn serial_is_upper_hex_without_der_padding() {
        assert_eq!(serial(&[0x01, 0x02, 0xa3]).unwrap(), "0102A3");
        assert_eq!(serial(&[0x00, 0x8f, 0x12]).unwrap(), "8F12");
        assert_eq!(serial(&[0x7f]).unwrap(), "7F");
        assert_eq!(serial(&[0x0a, 0xbc]).unwrap(), "0ABC");
        let mut twenty = vec![0x00];
        twenty.extend([0xff; 20]);
        assert_eq!(serial(&twenty).unwrap(), "F".repeat(40));
    }

    #[test]
    fn odd_serials_are_malformed() {
        for (raw, why) in [
            (&[][..], "empty"),
            (&[0x80, 0x01][..], "negative"),
            (&[0xff][..], "negative"),
            (&[0x00][..], "zero"),
            (&[0x00, 0x12][..], "not minimally encoded"),
            (&[0x12; 21][..], "longer than 20 octets"),
        ] {
            match serial(raw) {
                Err(CertificateRefusal::Malformed(m)) => assert!(m.contains(why), "{raw:?}: {m}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn inputs_that_are_not_one_certificate() {
        assert!(malformed(b"").contains("empty"));
        assert!(malformed(b" \r\n\t").contains("empty"));
        assert!(malformed(b"hello, card").contains("neither DER nor PEM"));
        assert!(malformed(&[0x42; MAX_CERTIFICATE_BYTES + 1]).contains("larger than"));
        assert!(malformed(b"-----BEGIN CERTIFICATE-----\nAAAA\n").contains("no END line"));
        assert!(
            malformed(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
                .contains("not valid base64")
        );
        assert!(malformed(b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")
            .contains("no CERTIFICATE block"));
        assert!(
            malformed(b"-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n")
                .contains("X509 CRL, not CERTIFICATE")
        );
        let two = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n\
                    -----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert!(malformed(two).contains("found 2 blocks"));
        let key = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n\
                    -----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n";
        let why = malformed(key);
        assert!(why.contains("private key"), "{why}");
        // One block, with text around it: the DER inside is returned as is.
        let pem =
            b"subject=whoever\n-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            decode_certificate(pem).unwrap().as_ref(),
            &[0x30, 0x03, 0x02, 0x01, 0x01]
        );
        // DER is taken as it is; whether it parses is webpki's business.
        assert_eq!(
            decode_certificate(&[0x30, 0x00]).unwrap().as_ref(),
            &[0x30, 0x00]
        );
        assert!(matches!(
            unverified_serial(&[0x30, 0x00]),
            Err(CertificateRefusal::Malformed(_))
        ));
    }

    #[test]
    fn reason_codes_are_distinct_and_stable() {
        let t: RecordTime = "2025-01-01T00:00:00Z".parse().unwrap();
        let all = [
            (
                CertificateRefusal::Malformed("x".into()),
                "CERTIFICATE_MALFORMED",
            ),
            (
                CertificateRefusal::Untrusted("x".into()),
                "CERTIFICATE_UNTRUSTED",
            ),
            (
                CertificateRefusal::WrongUsage("x".into()),
                "CERTIFICATE_WRONG_USAGE",
            ),
            (
                CertificateRefusal::Expired { not_after: t },
                "CERTIFICATE_EXPIRED",
            ),
            (
                CertificateRefusal::NotYetValid { not_before: t },
                "CERTIFICATE_NOT_YET_VALID",
            ),
            (
                CertificateRefusal::Revoked {
                    revoked_at: Some(t),
                },
                "CERTIFICATE_REVOKED",
            ),
            (
                CertificateRefusal::RevocationUnknown("x".into()),
                "REVOCATION_UNKNOWN",
            ),
        ];
        for (refusal, code) in &all {
            assert_eq!(refusal.reason_code(), *code);
        }
        let mut codes: Vec<_> = all.iter().map(|(r, _)| r.reason_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        assert_eq!(
            CertificateRefusal::Expired { not_after: t }.to_string(),
            "card certificate expired at 2025-01-01T00:00:00Z"
        );
        assert_eq!(
            CertificateRefusal::Revoked {
                revoked_at: Some(t)
            }
            .to_string(),
            "card certificate has been revoked (revoked at 2025-01-01T00:00:00Z)"
        );
        assert_eq!(
            CertificateRefusal::Revoked { revoked_at: None }.to_string(),
            "card certificate has been revoked"
        );
    }

    #[test]
    fn webpki_errors_map_to_refusals() {
        use webpki::Error as E;
        let cases = [
            (E::UnknownIssuer, "CERTIFICATE_UNTRUSTED"),
            (E::InvalidSignatureForPublicKey, "CERTIFICATE_UNTRUSTED"),
            (E::UnsupportedCriticalExtension, "CERTIFICATE_UNTRUSTED"),
            (E::CaUsedAsEndEntity, "CERTIFICATE_WRONG_USAGE"),
            (E::EmptyEkuExtension, "CERTIFICATE_WRONG_USAGE"),
            (E::BadDer, "CERTIFICATE_MALFORMED"),
            (E::UnsupportedCertVersion, "CERTIFICATE_MALFORMED"),
            (E::CertRevoked, "CERTIFICATE_REVOKED"),
            (E::UnknownRevocationStatus, "REVOCATION_UNKNOWN"),
            (E::InvalidCrlSignatureForPublicKey, "REVOCATION_UNKNOWN"),
            (E::IssuerNotCrlSigner, "REVOCATION_UNKNOWN"),
        ];
        for (error, code) in cases {
            assert_eq!(refusal(&error).reason_code(), code, "{error:?}");
        }
        let next_update = UnixTime::since_unix_epoch(Duration::from_secs(1_735_689_600));
        let stale = refusal(&E::CrlExpired {
            time: next_update,
            next_update,
        });
        assert_eq!(
            stale.to_string(),
            "revocation status of the card certificate is unknown: the CRL of the \
             certificate's issuer is out of date (next update was due at 2025-01-01T00:00:00Z)"
        );
    }

    #[test]
    fn times_convert_both_ways() {
        let t: RecordTime = "2025-06-01T00:00:00Z".parse().unwrap();
        assert_eq!(record_time(unix_time(t)), t);
        assert_eq!(unix_time(RecordTime::from_micros(-5)).as_secs(), 0);
        // Sub-second instants round down to webpki's whole seconds.
        assert_eq!(unix_time(t.next()).as_secs(), unix_time(t).as_secs());
    }

    #[test]
    fn config_refuses_unknown_fields_and_requires_crls() {
        let config: CardAuthorityConfig =
            serde_json::from_str(r#"{"trust_anchors": ["a.pem"], "crls": ["c.crl"]}"#).unwrap();
        assert_eq!(config.trust_anchors, vec![PathBuf::from("a.pem")]);
        assert!(config.intermediates.is_empty());
        assert_eq!(config.crls, vec![PathBuf::from("c.crl")]);
        let e = serde_json::from_str::<CardAuthorityConfig>(
            r#"{"trust_anchors": [], "crls": [], "crl": []}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `crl`"), "{e}");
        let e = serde_json::from_str::<CardAuthorityConfig>(r#"{"trust_anchors": ["a.pem"]}"#)
            .unwrap_err();
        assert!(e.to_string().contains("missing field `crls`"), "{e}");
    }

    #[test]
    fn load_needs_anchors_and_names_files() {
        let e = CardAuthority::load(&CardAuthorityConfig::default()).unwrap_err();
        assert!(matches!(e, CardCertError::NoTrustAnchors));
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing-ca.pem");
        let e = CardAuthority::load(&CardAuthorityConfig {
            trust_anchors: vec![missing.clone()],
            ..CardAuthorityConfig::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );
        let junk = dir.path().join("junk.pem");
        fs::write(
            &junk,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = CardAuthority::load(&CardAuthorityConfig {
            trust_anchors: vec![junk.clone()],
            ..CardAuthorityConfig::default()
        })
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}: not a usable CA certificate", junk.display())),
            "{e}"
        );
    }

    #[test]
    fn der_elements_and_signed_parts() {
        assert_eq!(
            der_element(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]),
            Some((0x04, &[0xaa, 0xbb][..], &[0xcc][..]))
        );
        let mut long = vec![0x04, 0x82, 0x01, 0x00];
        long.extend([7; 256]);
        let (tag, contents, rest) = der_element(&long).unwrap();
        assert_eq!((tag, contents.len(), rest.len()), (0x04, 256, 0));
        assert_eq!(der_element(&[0x04, 0x03, 0xaa]), None);
        assert_eq!(der_element(&[0x04, 0x80]), None);
        assert_eq!(der_element(&[0x04]), None);
        assert_eq!(der_element(&[]), None);
        // SEQUENCE { SEQUENCE {}, SEQUENCE { 05 00 }, BIT STRING 00 AB }
        let signed = [
            0x30, 0x0a, 0x30, 0x00, 0x30, 0x02, 0x05, 0x00, 0x03, 0x02, 0x00, 0xab,
        ];
        assert_eq!(
            signed_parts(&signed),
            Some((&[0x30, 0x00][..], &[0x05, 0x00][..], &[0xab][..]))
        );
        // Unused bits in the signature, or trailing bytes: not a signed structure.
        let mut unused = signed;
        unused[10] = 0x01;
        assert_eq!(signed_parts(&unused), None);
        let mut trailing = signed.to_vec();
        trailing.push(0);
        assert_eq!(signed_parts(&trailing), None);
        assert!(!crl_signed_by(&signed, &[0x30, 0x00]));
    }

    #[test]
    fn authority_is_shareable() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<CardAuthority>();
        shareable::<CertificateRefusal>();
        shareable::<CardCertError>();
    }
}
