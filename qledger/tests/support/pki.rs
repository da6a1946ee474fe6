//! A test PKI made at test time (no key is committed): CAs, card
//! user-authentication certificates with chosen serials and dates, CRLs.
#![allow(dead_code)]

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SerialNumber,
};

/// The holder's name in every card certificate: it must never come back.
pub const HOLDER: &str = "券面 太郎 CARDHOLDER-NAME";

pub type Date = (i32, u8, u8);

pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    pub der: Vec<u8>,
    pub pem: String,
}

pub fn dn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "JP");
    dn.push(DnType::OrganizationName, "qledger test PKI");
    dn.push(DnType::CommonName, name);
    dn
}

pub fn ca_with(name: &str, parent: Option<&Ca>, from: Date, to: Date, key: KeyPair) -> Ca {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(to.0, to.1, to.2);
    params.use_authority_key_identifier_extension = parent.is_some();
    let cert = match parent {
        Some(parent) => params.signed_by(&key, &parent.issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    Ca {
        der: cert.der().to_vec(),
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

pub fn ca(name: &str, parent: Option<&Ca>) -> Ca {
    ca_with(
        name,
        parent,
        (2020, 1, 1),
        (2040, 1, 1),
        KeyPair::generate().unwrap(),
    )
}

pub struct Card {
    pub der: Vec<u8>,
    pub pem: String,
}

pub struct CardSpec {
    pub serial: Vec<u8>,
    pub from: Date,
    pub to: Date,
    pub eku: Vec<ExtendedKeyUsagePurpose>,
    pub is_ca: bool,
}

pub fn spec(serial: &[u8]) -> CardSpec {
    CardSpec {
        serial: serial.to_vec(),
        from: (2024, 1, 1),
        to: (2029, 1, 1),
        eku: vec![ExtendedKeyUsagePurpose::ClientAuth],
        is_ca: false,
    }
}

pub fn issue_with(issuer: &Ca, spec: CardSpec, key: &KeyPair) -> Card {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CountryName, "JP");
    params.distinguished_name.push(DnType::CommonName, HOLDER);
    params.serial_number = Some(SerialNumber::from_slice(&spec.serial));
    params.not_before = date_time_ymd(spec.from.0, spec.from.1, spec.from.2);
    params.not_after = date_time_ymd(spec.to.0, spec.to.1, spec.to.2);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = spec.eku;
    params.is_ca = if spec.is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(key, &issuer.issuer).unwrap();
    Card {
        der: cert.der().to_vec(),
        pem: cert.pem(),
    }
}

pub fn issue(issuer: &Ca, spec: CardSpec) -> Card {
    issue_with(issuer, spec, &KeyPair::generate().unwrap())
}

pub fn card(issuer: &Ca, serial: &[u8]) -> Card {
    issue(issuer, spec(serial))
}

pub struct Crl {
    pub der: Vec<u8>,
    pub pem: String,
}

pub fn crl_with(issuer: &Ca, revoked: &[&[u8]], number: u64, from: Date, to: Date) -> Crl {
    crl_revoking_at(issuer, revoked, number, from, to, (2025, 3, 1))
}

/// A CRL whose entries were revoked on `revoked_at` (UTC midnight).
pub fn crl_revoking_at(
    issuer: &Ca,
    revoked: &[&[u8]],
    number: u64,
    from: Date,
    to: Date,
    revoked_at: Date,
) -> Crl {
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(from.0, from.1, from.2),
        next_update: date_time_ymd(to.0, to.1, to.2),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|serial| RevokedCertParams {
                serial_number: SerialNumber::from_slice(serial),
                revocation_time: date_time_ymd(revoked_at.0, revoked_at.1, revoked_at.2),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&issuer.issuer).unwrap();
    Crl {
        der: crl.der().to_vec(),
        pem: crl.pem().unwrap(),
    }
}

pub fn crl(issuer: &Ca, revoked: &[&[u8]], number: u64) -> Crl {
    crl_with(issuer, revoked, number, (2025, 1, 1), (2026, 1, 1))
}

/// A TLS leaf certificate signed by `ca`: for a server (`names` are its DNS
/// names and IP addresses) or a client. Returns (certificate PEM, key PEM).
pub fn tls_leaf(ca: &Ca, name: &str, names: &[&str], client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    params.distinguished_name = dn(name);
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}
