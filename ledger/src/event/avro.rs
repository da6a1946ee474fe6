//! The Avro wire contract: one record schema per event type, in `schemas/`.
//!
//! Values are written in Avro's single-object encoding (`C3 01`, the 8-byte
//! little-endian CRC-64-AVRO fingerprint of the writer's schema, the datum),
//! so every message says which schema wrote it without a registry. The
//! fingerprint is of the specification's Parsing Canonical Form
//! ([`canonical_form`]), as Java's `SchemaNormalization` and fastavro
//! compute it (apache-avro 0.22 and the Python `avro` 1.12 library keep
//! logical types in it and compute another); messages with the fingerprint qledger wrote before it followed
//! the specification ([`legacy_fingerprint`]) still decode. Readers
//! resolve any known writer version (`schemas/history/<Type>/vN.avsc`) to
//! the current schema, so old and new producers can share a topic.
//!
//! Producers using Confluent's serializers frame values in the Confluent
//! wire format instead (`00`, a 4-byte big-endian schema id, the datum);
//! the ids are the contract's own ([`super::registry`], served over HTTP
//! as a schema registry). [`decode_confluent`] reads that framing through
//! the same writer-to-current resolution, and [`decode_any`] either framing
//! by its first byte.
//!
//! Evolution rule (enforced by the `schema_history` tests): a change adds a
//! new `history` version identical to the new current schema; every version
//! must be readable by every other version in both directions (transitive
//! backward + forward compatibility), so new fields carry defaults and
//! fields are never removed without one. Golden vectors in
//! `schemas/golden/` pin the bytes.
//!
//! This module maps between [`Event`] and Avro values by hand, field by field,
//! rather than through serde, so the wire format is explicit and a change to
//! a Rust type cannot silently change the bytes.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::OnceLock;

use apache_avro::rabin::Rabin;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::*;
use crate::error::{FieldError, RuleViolation};

/// The two bytes that open an Avro single-object encoded message.
pub const SINGLE_OBJECT_MAGIC: [u8; 2] = [0xC3, 0x01];

/// The byte that opens a message in the Confluent wire format, followed by
/// the 4-byte big-endian schema id ([`super::registry`]) and the datum.
pub const CONFLUENT_MAGIC: u8 = 0x00;

/// Errors decoding or encoding the wire format.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AvroError {
    #[error("not Avro single-object encoding (expected C3 01 and an 8-byte fingerprint)")]
    NotSingleObject,
    #[error("unknown writer schema fingerprint {} (its 8 bytes as on the wire)", hex::encode(.0.to_le_bytes()))]
    UnknownFingerprint(u64),
    #[error("not the Confluent wire format: {0}")]
    NotConfluent(String),
    #[error(
        "unknown Confluent schema id {0}: no version of any qledger schema has it \
         (ids are type number × 1000 + version, see ledger::event::registry)"
    )]
    UnknownSchemaId(u32),
    #[error(
        "unknown framing ({0}): accepted are Avro single-object encoding \
         (C3 01, an 8-byte fingerprint, the datum) and the Confluent wire format \
         (00, a 4-byte big-endian schema id, the datum)"
    )]
    UnknownFraming(String),
    #[error("undecodable {event_type} datum: {reason}")]
    Undecodable {
        event_type: EventType,
        reason: String,
    },
    #[error("{event_type}: {error}")]
    Invalid {
        event_type: EventType,
        error: FieldError,
    },
    #[error("cannot encode {event_type}: {reason}")]
    Encode {
        event_type: EventType,
        reason: String,
    },
}

/// One version of one event type's schema.
#[derive(Debug)]
pub struct SchemaVersion {
    pub event_type: EventType,
    /// 1-based version in `schemas/history/<Type>/`.
    pub version: u32,
    pub schema: Schema,
    /// CRC-64-AVRO (Rabin) fingerprint of the parsing canonical form.
    pub fingerprint: u64,
    /// The fingerprint qledger wrote before it followed the specification
    /// ([`legacy_fingerprint`]); messages carrying it still decode.
    pub legacy_fingerprint: u64,
    pub text: &'static str,
}

macro_rules! schema_files {
    ($($name:ident => [$($version:literal),+]),+ $(,)?) => {
        fn current_text(t: EventType) -> &'static str {
            match t {
                $(EventType::$name => include_str!(concat!("../../../schemas/", stringify!($name), ".avsc")),)+
            }
        }
        fn history_texts(t: EventType) -> &'static [&'static str] {
            match t {
                $(EventType::$name => &[$(include_str!(concat!(
                    "../../../schemas/history/", stringify!($name), "/v", $version, ".avsc"
                )),)+],)+
            }
        }
    };
}

// Every committed version of every schema. Add a version here when you add
// its file under schemas/history/ (a test checks the two agree).
schema_files!(
    QualificationAcquired => ["1"],
    QualificationChanged => ["1"],
    QualificationLost => ["1"],
    QualificationRetracted => ["1"],
    CertificateIssued => ["1", "2"],
    CertificateEnded => ["1"],
    CardLinkRequested => ["1", "2"],
    CardLinked => ["1"],
    CardLinkRejected => ["1", "2"],
    CardUnlinked => ["1"],
    SubsidyGranted => ["1"],
    SubsidyChanged => ["1"],
    SubsidyEnded => ["1"],
    NoticePublished => ["1"],
    NoticeSendStarted => ["1"],
    NoticeDelivered => ["1"],
    NoticeDeliveryFailed => ["1"],
    ContactErased => ["1"],
    CertificateChanged => ["1"],
    ClaimSubmitted => ["1"],
    ClaimWithdrawn => ["1"],
);

/// The contract: current schemas and every historic version, by fingerprint.
#[derive(Debug)]
pub struct Contract {
    current: HashMap<EventType, SchemaVersion>,
    history: HashMap<EventType, Vec<SchemaVersion>>,
    by_fingerprint: HashMap<u64, (EventType, Option<u32>)>,
}

fn parse(t: EventType, version: u32, text: &'static str) -> SchemaVersion {
    let schema = Schema::parse_str(text).unwrap_or_else(|e| {
        panic!(
            "schemas/{}.avsc (version {version}) does not parse: {e}",
            t.name()
        )
    });
    let fingerprint = fingerprint(&schema);
    let legacy_fingerprint = legacy_fingerprint(&schema);
    SchemaVersion {
        event_type: t,
        version,
        schema,
        fingerprint,
        legacy_fingerprint,
        text,
    }
}

/// The CRC-64-AVRO fingerprint of a schema's Parsing Canonical Form, as the
/// Avro specification defines it, as a number (its bytes are the
/// little-endian form written after the single-object magic). Java's
/// `SchemaNormalization` and fastavro compute the same, so their
/// single-object messages name our schemas.
pub fn fingerprint(schema: &Schema) -> u64 {
    let canonical =
        Schema::parse_str(&canonical_form(schema)).expect("a parsing canonical form parses");
    rabin(&canonical)
}

/// The fingerprint apache-avro 0.22 computes itself, whose canonical form
/// keeps a logical type as `{"type":"string"}` where the specification
/// writes `"string"`. qledger wrote it before the fix; it is still read.
pub fn legacy_fingerprint(schema: &Schema) -> u64 {
    rabin(schema)
}

fn rabin(schema: &Schema) -> u64 {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    u64::from_le_bytes(
        bytes[..8]
            .try_into()
            .expect("Rabin fingerprints are 8 bytes"),
    )
}

/// The schema's Parsing Canonical Form as the specification defines it:
/// apache-avro's, with logical types reduced to their primitive type (the
/// specification strips `logicalType`, leaving `"string"`, not
/// `{"type":"string"}`).
pub fn canonical_form(schema: &Schema) -> String {
    const PRIMITIVES: [&str; 8] = [
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    let mut text = schema.canonical_form();
    for p in PRIMITIVES {
        text = text.replace(&format!("{{\"type\":\"{p}\"}}"), &format!("\"{p}\""));
    }
    text
}

impl Contract {
    /// The contract compiled into this binary.
    pub fn get() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(Contract::load)
    }

    fn load() -> Contract {
        let mut current = HashMap::new();
        let mut history = HashMap::new();
        let mut by_fingerprint = HashMap::new();
        for &t in EventType::ALL {
            let texts = history_texts(t);
            let cur = parse(t, texts.len() as u32, current_text(t));
            by_fingerprint.insert(cur.fingerprint, (t, None));
            by_fingerprint.insert(cur.legacy_fingerprint, (t, None));
            let versions: Vec<SchemaVersion> = texts
                .iter()
                .enumerate()
                .map(|(i, text)| parse(t, i as u32 + 1, text))
                .collect();
            for v in &versions {
                for fp in [v.fingerprint, v.legacy_fingerprint] {
                    by_fingerprint.entry(fp).or_insert((t, Some(v.version)));
                }
            }
            current.insert(t, cur);
            history.insert(t, versions);
        }
        Contract {
            current,
            history,
            by_fingerprint,
        }
    }

    pub fn current(&self, t: EventType) -> &SchemaVersion {
        &self.current[&t]
    }

    pub fn history(&self, t: EventType) -> &[SchemaVersion] {
        &self.history[&t]
    }

    /// The schema a fingerprint names, current or historic.
    pub fn by_fingerprint(&self, fp: u64) -> Option<&SchemaVersion> {
        let (t, version) = self.by_fingerprint.get(&fp)?;
        Some(match version {
            None => &self.current[t],
            Some(v) => &self.history[t][*v as usize - 1],
        })
    }
}

/// Datum writers of the current schemas, built once (resolving a schema's
/// names is costly; a projector decodes every record).
fn writers() -> &'static HashMap<EventType, GenericDatumWriter<'static>> {
    static WRITERS: OnceLock<HashMap<EventType, GenericDatumWriter<'static>>> = OnceLock::new();
    WRITERS.get_or_init(|| {
        let contract = Contract::get();
        EventType::ALL
            .iter()
            .map(|&t| {
                let w = GenericDatumWriter::builder(&contract.current(t).schema)
                    .build()
                    .expect("the compiled-in schemas resolve");
                (t, w)
            })
            .collect()
    })
}

/// Datum readers from every known writer schema to the current one, by the
/// writer's fingerprint.
fn readers() -> &'static HashMap<u64, GenericDatumReader<'static>> {
    static READERS: OnceLock<HashMap<u64, GenericDatumReader<'static>>> = OnceLock::new();
    READERS.get_or_init(|| {
        let contract = Contract::get();
        let mut out = HashMap::new();
        for &t in EventType::ALL {
            let current = contract.current(t);
            for writer in contract.history(t).iter().chain(std::iter::once(current)) {
                for fp in [writer.fingerprint, writer.legacy_fingerprint] {
                    out.entry(fp).or_insert_with(|| {
                        GenericDatumReader::builder(&writer.schema)
                            .reader_schema(&current.schema)
                            .build()
                            .expect("the compiled-in schemas resolve")
                    });
                }
            }
        }
        out
    })
}

/// Encodes an event in single-object encoding under its current schema.
pub fn encode(event: &Event) -> Result<Vec<u8>, AvroError> {
    let current = Contract::get().current(event.event_type());
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&SINGLE_OBJECT_MAGIC);
    out.extend_from_slice(&current.fingerprint.to_le_bytes());
    out.extend_from_slice(&encode_datum(event)?);
    Ok(out)
}

/// Encodes the bare datum (no header) under the current schema.
pub fn encode_datum(event: &Event) -> Result<Vec<u8>, AvroError> {
    let t = event.event_type();
    let writer = writers().get(&t).ok_or_else(|| AvroError::Encode {
        event_type: t,
        reason: "no writer for the current schema".into(),
    })?;
    writer
        .write_value_to_vec(to_value(event))
        .map_err(|e| AvroError::Encode {
            event_type: t,
            reason: e.to_string(),
        })
}

/// Decodes and validates a single-object encoded event.
pub fn decode(bytes: &[u8]) -> Result<Event, AvroError> {
    let (fp, datum) = split_single_object(bytes)?;
    let writer = Contract::get()
        .by_fingerprint(fp)
        .ok_or(AvroError::UnknownFingerprint(fp))?;
    decode_datum(writer, datum)
}

/// The writer fingerprint and datum of a single-object encoded message.
pub fn split_single_object(bytes: &[u8]) -> Result<(u64, &[u8]), AvroError> {
    if bytes.len() < 10 || bytes[..2] != SINGLE_OBJECT_MAGIC {
        return Err(AvroError::NotSingleObject);
    }
    let fp = u64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
    Ok((fp, &bytes[10..]))
}

/// Encodes an event in the Confluent wire format under its current schema
/// (the schema id of the latest history version, which equals it).
pub fn encode_confluent(event: &Event) -> Result<Vec<u8>, AvroError> {
    let t = event.event_type();
    let latest = Contract::get().history(t).len() as u32;
    let mut out = Vec::with_capacity(256);
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&super::registry::schema_id(t, latest).to_be_bytes());
    out.extend_from_slice(&encode_datum(event)?);
    Ok(out)
}

/// Decodes and validates an event in the Confluent wire format: the schema
/// id names the writer schema (`schemas/history/<Type>/vN.avsc`), which is
/// resolved to the current schema as a single-object fingerprint is.
pub fn decode_confluent(bytes: &[u8]) -> Result<Event, AvroError> {
    let (id, datum) = split_confluent(bytes)?;
    let writer = super::registry::by_id(id)
        .ok_or(AvroError::UnknownSchemaId(id))?
        .schema;
    decode_datum(writer, datum)
}

/// The schema id and datum of a message in the Confluent wire format.
pub fn split_confluent(bytes: &[u8]) -> Result<(u32, &[u8]), AvroError> {
    match bytes.first() {
        None => return Err(AvroError::NotConfluent("the message is empty".into())),
        Some(&CONFLUENT_MAGIC) => {}
        Some(b) => {
            return Err(AvroError::NotConfluent(format!(
                "the first byte is {b:02X}, not the magic byte 00"
            )))
        }
    }
    let Some(id) = bytes.get(1..5) else {
        return Err(AvroError::NotConfluent(format!(
            "truncated header: {} bytes, the magic byte and the 4-byte schema id need 5",
            bytes.len()
        )));
    };
    let id = u32::from_be_bytes(id.try_into().expect("4 bytes"));
    Ok((id, &bytes[5..]))
}

/// Decodes an event in either framing, by its first byte: `C3 01` is
/// single-object encoding ([`decode`]), `00` the Confluent wire format
/// ([`decode_confluent`]); anything else is refused.
pub fn decode_any(bytes: &[u8]) -> Result<Event, AvroError> {
    match bytes {
        [0xC3, 0x01, ..] => decode(bytes),
        [CONFLUENT_MAGIC, ..] => decode_confluent(bytes),
        [] => Err(AvroError::UnknownFraming("the message is empty".into())),
        [0xC3] => Err(AvroError::UnknownFraming(
            "the message is the single byte C3".into(),
        )),
        [0xC3, b, ..] => Err(AvroError::UnknownFraming(format!(
            "C3 followed by {b:02X}, not 01"
        ))),
        [a, ..] => Err(AvroError::UnknownFraming(format!("first byte {a:02X}"))),
    }
}

/// Decodes a bare datum written with `writer`, resolved to the current schema.
pub fn decode_datum(writer: &SchemaVersion, datum: &[u8]) -> Result<Event, AvroError> {
    let t = writer.event_type;
    let undecodable = |reason: String| AvroError::Undecodable {
        event_type: t,
        reason,
    };
    let reader = readers()
        .get(&writer.fingerprint)
        .ok_or_else(|| undecodable("no reader for this writer schema".into()))?;
    let mut input = datum;
    let value = reader
        .read_value(&mut input)
        .map_err(|e| undecodable(e.to_string()))?;
    if !input.is_empty() {
        return Err(undecodable(format!(
            "{} bytes left over after the datum",
            input.len()
        )));
    }
    let event = from_value(t, value).map_err(|error| AvroError::Invalid {
        event_type: t,
        error,
    })?;
    event.validate().map_err(|error| AvroError::Invalid {
        event_type: t,
        error,
    })?;
    Ok(event)
}

// ---------------------------------------------------------------------------
// Enums: the Rust enum's `ALL` order is the schema's symbol order (tested).

/// A Rust enum that is an Avro enum of the contract.
pub trait AvroEnum: Copy + Sized + 'static {
    const ALL: &'static [Self];
    fn symbol(self) -> &'static str;
    fn from_symbol(s: &str) -> Option<Self>;
    fn to_avro(self) -> Value {
        let index = Self::ALL
            .iter()
            .position(|x| x.symbol() == self.symbol())
            .expect("in ALL");
        Value::Enum(index as u32, self.symbol().to_owned())
    }
}

macro_rules! avro_enums {
    ($($t:ty),+ $(,)?) => {$(
        impl AvroEnum for $t {
            const ALL: &'static [Self] = <$t>::ALL;
            fn symbol(self) -> &'static str { <$t>::symbol(self) }
            fn from_symbol(s: &str) -> Option<Self> { <$t>::from_symbol(s) }
        }
    )+};
}

avro_enums!(
    Relationship,
    Sex,
    CardKind,
    SpecialStatus,
    LossReason,
    CertificateKind,
    LimitCategory,
    SpecificDisease,
    SubsidyProgramme,
    SubsidyMethod,
    ClaimKind,
    PayerOrganisation,
);

macro_rules! local_enum_symbols {
    ($t:ident { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            pub fn symbol(self) -> &'static str {
                match self { $($t::$v => $s),+ }
            }
            pub fn from_symbol(s: &str) -> Option<$t> {
                match s { $($s => Some($t::$v),)+ _ => None }
            }
        }
        avro_enums!($t);
    };
}

local_enum_symbols!(LinkRejectionReason {
    NoSuchQualification => "NO_SUCH_QUALIFICATION",
    QualificationLost => "QUALIFICATION_LOST",
    CertificateInvalid => "CERTIFICATE_INVALID",
    SerialLinkedElsewhere => "SERIAL_LINKED_ELSEWHERE",
    Other => "OTHER",
    CertificateExpired => "CERTIFICATE_EXPIRED",
    CertificateRevoked => "CERTIFICATE_REVOKED",
});

local_enum_symbols!(NoticeFailure {
    TemporaryFailure => "TEMPORARY_FAILURE",
    PermanentFailure => "PERMANENT_FAILURE",
    OutcomeUnknown => "OUTCOME_UNKNOWN",
    ContactUnavailable => "CONTACT_UNAVAILABLE",
});

local_enum_symbols!(UnlinkReason {
    CardRenewed => "CARD_RENEWED",
    CardReissued => "CARD_REISSUED",
    CertificateRevoked => "CERTIFICATE_REVOKED",
    CardLost => "CARD_LOST",
    HolderRequest => "HOLDER_REQUEST",
    Other => "OTHER",
});

// ---------------------------------------------------------------------------
// Event -> Value

struct Rec(Vec<(String, Value)>);

impl Rec {
    fn new() -> Rec {
        Rec(Vec::with_capacity(16))
    }
    fn put(mut self, name: &str, v: Value) -> Rec {
        self.0.push((name.to_owned(), v));
        self
    }
    fn done(self) -> Value {
        Value::Record(self.0)
    }
}

fn s(x: &impl ToString) -> Value {
    Value::String(x.to_string())
}
fn date(d: Day) -> Value {
    Value::Date(d.days_since_epoch())
}
fn opt<T>(o: &Option<T>, f: impl FnOnce(&T) -> Value) -> Value {
    match o {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(x) => Value::Union(1, Box::new(f(x))),
    }
}
fn enums<E: AvroEnum>(items: &[E]) -> Value {
    Value::Array(items.iter().map(|e| e.to_avro()).collect())
}

fn sealed_contact(c: &SealedContact) -> Value {
    Rec::new()
        .put("key_id", Value::Uuid(c.key_id))
        .put("nonce", Value::Bytes(c.nonce.clone()))
        .put("ciphertext", Value::Bytes(c.ciphertext.clone()))
        .done()
}

fn envelope_value(e: &Envelope, t: EventType) -> Value {
    Rec::new()
        .put("event_id", Value::Uuid(e.event_id))
        .put("event_type", Value::String(t.name().to_owned()))
        .put("source", s(&e.source))
        .put("link", s(&e.link))
        .put(
            "produced_at",
            Value::TimestampMicros(e.produced_at.timestamp_micros()),
        )
        .done()
}

fn insured(
    r: Rec,
    insurer: &InsurerNumber,
    symbol: &Option<CardSymbol>,
    number: &CardNumber,
    branch: &Option<Branch>,
) -> Rec {
    r.put("insurer_number", s(insurer))
        .put("card_symbol", opt(symbol, s))
        .put("card_number", s(number))
        .put("branch", opt(branch, s))
}

/// The Avro value of an event under its current schema.
pub fn to_value(event: &Event) -> Value {
    let t = event.event_type();
    let r = Rec::new().put("envelope", envelope_value(&event.envelope, t));
    let copay = |c: &CopayRate| Value::Int(c.percent() as i32);
    // Validation bounds every u32 field to i32::MAX (`attempt`) or far
    // below; saturate rather than wrap if that ever changes.
    let int = |n: &u32| Value::Int(i32::try_from(*n).unwrap_or(i32::MAX));
    let int8 = |n: &u8| Value::Int(*n as i32);
    match &event.payload {
        Payload::QualificationAcquired(p) => insured(
            r.put("qualification_id", s(&p.qualification_id)),
            &p.insurer_number,
            &p.card_symbol,
            &p.card_number,
            &p.branch,
        )
        .put("relationship", p.relationship.to_avro())
        .put("name", s(&p.name))
        .put("name_kana", s(&p.name_kana))
        .put("sex", p.sex.to_avro())
        .put("birth_date", date(p.birth_date))
        .put("acquired_on", date(p.acquired_on))
        .put("card_kind", p.card_kind.to_avro())
        .put("copay_percent", copay(&p.copay))
        .put("card_valid_until", opt(&p.card_valid_until, |d| date(*d)))
        .put("special_statuses", enums(&p.special_statuses)),
        Payload::QualificationChanged(p) => r
            .put("qualification_id", s(&p.qualification_id))
            .put("effective_on", date(p.effective_on))
            .put("card_symbol", opt(&p.card_symbol, s))
            .put("card_number", opt(&p.card_number, s))
            .put("branch", opt(&p.branch, s))
            .put("relationship", opt(&p.relationship, |x| x.to_avro()))
            .put("name", opt(&p.name, s))
            .put("name_kana", opt(&p.name_kana, s))
            .put("card_kind", opt(&p.card_kind, |x| x.to_avro()))
            .put("copay_percent", opt(&p.copay, copay))
            .put("card_valid_until", opt(&p.card_valid_until, |d| date(*d)))
            .put("special_statuses", opt(&p.special_statuses, |v| enums(v))),
        Payload::QualificationLost(p) => r
            .put("qualification_id", s(&p.qualification_id))
            .put("lost_on", date(p.lost_on))
            .put("reason", p.reason.to_avro()),
        Payload::QualificationRetracted(p) => r
            .put(
                "retracted_event_id",
                opt(&p.retracted_event_id, |u| Value::Uuid(*u)),
            )
            .put(
                "retracted_qualification_id",
                opt(&p.retracted_qualification_id, s),
            )
            .put("reason", s(&p.reason)),
        Payload::CertificateIssued(p) => r
            .put("certificate_id", s(&p.certificate_id))
            .put("qualification_id", s(&p.qualification_id))
            .put("kind", p.kind.to_avro())
            .put("valid_from", date(p.valid_from))
            .put("valid_until", opt(&p.valid_until, |d| date(*d)))
            .put("limit_category", opt(&p.limit_category, |x| x.to_avro()))
            .put("disease", opt(&p.disease, |x| x.to_avro()))
            .put("monthly_cap_yen", opt(&p.monthly_cap_yen, int))
            .put("copay_percent", opt(&p.copay, copay)),
        Payload::CertificateEnded(p) => r
            .put("certificate_id", s(&p.certificate_id))
            .put("ended_on", date(p.ended_on)),
        Payload::CardLinkRequested(p) => insured(
            r.put("request_id", s(&p.request_id))
                .put("card_serial", s(&p.card_serial)),
            &p.insurer_number,
            &p.card_symbol,
            &p.card_number,
            &p.branch,
        )
        .put("notice_requested", Value::Boolean(p.notice_requested))
        .put("contact", opt(&p.contact, sealed_contact)),
        Payload::CardLinked(p) => insured(
            r.put("request_id", opt(&p.request_id, s))
                .put("card_serial", s(&p.card_serial)),
            &p.insurer_number,
            &p.card_symbol,
            &p.card_number,
            &p.branch,
        )
        .put("linked_on", date(p.linked_on)),
        Payload::CardLinkRejected(p) => r
            .put("request_id", s(&p.request_id))
            .put("card_serial", s(&p.card_serial))
            .put("reason", p.reason.to_avro()),
        Payload::CardUnlinked(p) => r
            .put("card_serial", s(&p.card_serial))
            .put("unlinked_on", date(p.unlinked_on))
            .put("reason", p.reason.to_avro()),
        Payload::SubsidyGranted(p) => r
            .put("subsidy_id", s(&p.subsidy_id))
            .put("municipality", s(&p.municipality))
            .put("programme", p.programme.to_avro())
            .put("payer_number", s(&p.payer_number))
            .put("recipient_number", s(&p.recipient_number))
            .put("card_serial", opt(&p.card_serial, s))
            .put("copay_percent", opt(&p.copay_percent, int8))
            .put("copay_amount_yen", opt(&p.copay_amount_yen, int))
            .put("valid_from", date(p.valid_from))
            .put("valid_until", opt(&p.valid_until, |d| date(*d)))
            .put("method", p.method.to_avro())
            .put("remarks", opt(&p.remarks, s)),
        Payload::SubsidyChanged(p) => r
            .put("subsidy_id", s(&p.subsidy_id))
            .put("effective_on", date(p.effective_on))
            .put("recipient_number", opt(&p.recipient_number, s))
            .put("copay_percent", opt(&p.copay_percent, int8))
            .put("copay_amount_yen", opt(&p.copay_amount_yen, int))
            .put("valid_until", opt(&p.valid_until, |d| date(*d)))
            .put("method", opt(&p.method, |x| x.to_avro()))
            .put("remarks", opt(&p.remarks, s)),
        Payload::SubsidyEnded(p) => r
            .put("subsidy_id", s(&p.subsidy_id))
            .put("ended_on", date(p.ended_on)),
        Payload::NoticePublished(p) => r
            .put("request_id", s(&p.request_id))
            .put("notice_id", Value::Uuid(p.notice_id)),
        Payload::NoticeSendStarted(p) => r
            .put("request_id", s(&p.request_id))
            .put("attempt", int(&p.attempt))
            .put("message_id", s(&p.message_id)),
        Payload::NoticeDelivered(p) => r
            .put("request_id", s(&p.request_id))
            .put("attempt", int(&p.attempt))
            .put("relay_reply", s(&p.relay_reply)),
        Payload::NoticeDeliveryFailed(p) => r
            .put("request_id", s(&p.request_id))
            .put("attempt", int(&p.attempt))
            .put("failure", p.failure.to_avro())
            .put("detail", s(&p.detail))
            .put(
                "retry_at",
                opt(&p.retry_at, |t| {
                    Value::TimestampMicros(t.timestamp_micros())
                }),
            ),
        Payload::ContactErased(p) => r
            .put("request_id", s(&p.request_id))
            .put("key_id", Value::Uuid(p.key_id)),
        Payload::ClaimSubmitted(p) => r
            .put("claim_id", s(&p.claim_id))
            .put("institution", s(&p.institution))
            .put("kind", p.kind.to_avro())
            .put("payer", p.payer.to_avro())
            .put("billed_insurer", s(&p.billed_insurer))
            .put("card_symbol", opt(&p.card_symbol, s))
            .put("card_number", opt(&p.card_number, s))
            .put("branch", opt(&p.branch, s))
            .put("card_serial", opt(&p.card_serial, s))
            .put("service_month", s(&p.service_month))
            .put(
                "service_days",
                Value::Array(p.service_days.iter().map(int8).collect()),
            )
            .put("limit_category", opt(&p.limit_category, |x| x.to_avro()))
            .put(
                "specific_disease",
                opt(&p.specific_disease, |x| x.to_avro()),
            )
            .put("public_expense_payer", opt(&p.public_expense_payer, s))
            .put("recipient_number", opt(&p.recipient_number, s))
            .put("total_points", int(&p.total_points)),
        Payload::ClaimWithdrawn(p) => r
            .put("claim_id", s(&p.claim_id))
            .put("reason", s(&p.reason)),
        Payload::CertificateChanged(p) => r
            .put("certificate_id", s(&p.certificate_id))
            .put("effective_on", date(p.effective_on))
            .put("limit_category", opt(&p.limit_category, |x| x.to_avro()))
            .put("monthly_cap_yen", opt(&p.monthly_cap_yen, int))
            .put("copay_percent", opt(&p.copay, copay))
            .put("valid_until", opt(&p.valid_until, |d| date(*d))),
    }
    .done()
}

// ---------------------------------------------------------------------------
// Value -> Event

/// A decoded record's fields, with the path used in errors.
struct Fields<'a> {
    prefix: &'static str,
    map: HashMap<&'a str, &'a Value>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, prefix: &'static str) -> Result<Fields<'a>, FieldError> {
        match value {
            Value::Record(fields) => Ok(Fields {
                prefix,
                map: fields.iter().map(|(k, v)| (k.as_str(), v)).collect(),
            }),
            other => Err(FieldError::new(
                prefix.trim_end_matches('.'),
                format!("expected a record, got {other:?}"),
            )),
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn err(&self, name: &str, rule: impl Into<String>) -> FieldError {
        FieldError::new(self.path(name), rule)
    }

    fn raw(&self, name: &str) -> Result<&'a Value, FieldError> {
        self.map
            .get(name)
            .copied()
            .ok_or_else(|| self.err(name, "is missing from the record"))
    }

    /// The field's value, `None` for a null union branch.
    fn maybe(&self, name: &str) -> Result<Option<&'a Value>, FieldError> {
        Ok(match self.raw(name)? {
            Value::Union(_, inner) => match inner.as_ref() {
                Value::Null => None,
                v => Some(v),
            },
            Value::Null => None,
            v => Some(v),
        })
    }

    fn required(&self, name: &str) -> Result<&'a Value, FieldError> {
        self.maybe(name)?
            .ok_or_else(|| self.err(name, "is required"))
    }

    fn parse<T: FromStr<Err = RuleViolation>>(&self, name: &str) -> Result<T, FieldError> {
        let v = self.required(name)?;
        self.parse_value(name, v)
    }

    fn parse_opt<T: FromStr<Err = RuleViolation>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, FieldError> {
        self.maybe(name)?
            .map(|v| self.parse_value(name, v))
            .transpose()
    }

    fn parse_value<T: FromStr<Err = RuleViolation>>(
        &self,
        name: &str,
        v: &Value,
    ) -> Result<T, FieldError> {
        match v {
            Value::String(text) => text
                .parse()
                .map_err(|e: RuleViolation| e.at(self.path(name))),
            other => Err(self.err(name, format!("expected a string, got {other:?}"))),
        }
    }

    fn string(&self, name: &str) -> Result<String, FieldError> {
        match self.required(name)? {
            Value::String(text) => Ok(text.clone()),
            other => Err(self.err(name, format!("expected a string, got {other:?}"))),
        }
    }

    fn string_opt(&self, name: &str) -> Result<Option<String>, FieldError> {
        match self.maybe(name)? {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.err(name, format!("expected a string, got {other:?}"))),
        }
    }

    fn date_value(&self, name: &str, v: &Value) -> Result<Day, FieldError> {
        match v {
            Value::Date(d) | Value::Int(d) => Day::from_days_since_epoch(*d)
                .ok_or_else(|| self.err(name, format!("date {d} is out of range"))),
            other => Err(self.err(name, format!("expected a date, got {other:?}"))),
        }
    }

    fn date(&self, name: &str) -> Result<Day, FieldError> {
        let v = self.required(name)?;
        self.date_value(name, v)
    }

    fn date_opt(&self, name: &str) -> Result<Option<Day>, FieldError> {
        self.maybe(name)?
            .map(|v| self.date_value(name, v))
            .transpose()
    }

    fn int_value(&self, name: &str, v: &Value) -> Result<i64, FieldError> {
        match v {
            Value::Int(n) => Ok(*n as i64),
            Value::Long(n) => Ok(*n),
            other => Err(self.err(name, format!("expected an int, got {other:?}"))),
        }
    }

    fn int_opt<T: TryFrom<i64>>(&self, name: &str) -> Result<Option<T>, FieldError> {
        self.maybe(name)?
            .map(|v| {
                let n = self.int_value(name, v)?;
                T::try_from(n).map_err(|_| self.err(name, format!("{n} is out of range")))
            })
            .transpose()
    }

    fn copay(&self, name: &str) -> Result<CopayRate, FieldError> {
        let v = self.required(name)?;
        self.copay_value(name, v)
    }

    fn copay_opt(&self, name: &str) -> Result<Option<CopayRate>, FieldError> {
        self.maybe(name)?
            .map(|v| self.copay_value(name, v))
            .transpose()
    }

    fn copay_value(&self, name: &str, v: &Value) -> Result<CopayRate, FieldError> {
        let n = self.int_value(name, v)?;
        let p = u8::try_from(n).map_err(|_| self.err(name, format!("{n} is not a copay rate")))?;
        CopayRate::from_percent(p).map_err(|e| e.at(self.path(name)))
    }

    fn enum_value<E: AvroEnum>(&self, name: &str, v: &Value) -> Result<E, FieldError> {
        let symbol = match v {
            Value::Enum(_, s) | Value::String(s) => s,
            other => return Err(self.err(name, format!("expected an enum symbol, got {other:?}"))),
        };
        E::from_symbol(symbol).ok_or_else(|| self.err(name, format!("unknown symbol {symbol:?}")))
    }

    fn enumerated<E: AvroEnum>(&self, name: &str) -> Result<E, FieldError> {
        let v = self.required(name)?;
        self.enum_value(name, v)
    }

    fn enumerated_opt<E: AvroEnum>(&self, name: &str) -> Result<Option<E>, FieldError> {
        self.maybe(name)?
            .map(|v| self.enum_value(name, v))
            .transpose()
    }

    fn enum_array_value<E: AvroEnum>(&self, name: &str, v: &Value) -> Result<Vec<E>, FieldError> {
        match v {
            Value::Array(items) => items.iter().map(|i| self.enum_value(name, i)).collect(),
            other => Err(self.err(name, format!("expected an array, got {other:?}"))),
        }
    }

    fn uuid_value(&self, name: &str, v: &Value) -> Result<Uuid, FieldError> {
        match v {
            Value::Uuid(u) => Ok(*u),
            Value::String(s) => Uuid::parse_str(s).map_err(|e| self.err(name, e.to_string())),
            other => Err(self.err(name, format!("expected a uuid, got {other:?}"))),
        }
    }

    fn uuid(&self, name: &str) -> Result<Uuid, FieldError> {
        let v = self.required(name)?;
        self.uuid_value(name, v)
    }

    fn int<T: TryFrom<i64>>(&self, name: &str) -> Result<T, FieldError> {
        let n = self.int_value(name, self.required(name)?)?;
        T::try_from(n).map_err(|_| self.err(name, format!("{n} is out of range")))
    }

    fn bytes(&self, name: &str) -> Result<Vec<u8>, FieldError> {
        match self.required(name)? {
            Value::Bytes(b) | Value::Fixed(_, b) => Ok(b.clone()),
            other => Err(self.err(name, format!("expected bytes, got {other:?}"))),
        }
    }

    fn timestamp_value(&self, name: &str, v: &Value) -> Result<DateTime<Utc>, FieldError> {
        match v {
            Value::TimestampMicros(m) | Value::Long(m) => {
                DateTime::<Utc>::from_timestamp_micros(*m)
                    .ok_or_else(|| self.err(name, "out of range"))
            }
            other => Err(self.err(name, format!("expected timestamp-micros, got {other:?}"))),
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, FieldError> {
        match self.required(name)? {
            Value::Boolean(b) => Ok(*b),
            other => Err(self.err(name, format!("expected a boolean, got {other:?}"))),
        }
    }
}

fn envelope_from(value: &Value, t: EventType) -> Result<Envelope, FieldError> {
    let f = Fields::of(value, "envelope.")?;
    let declared = f.string("event_type")?;
    if declared != t.name() {
        return Err(f.err(
            "event_type",
            format!("must equal the record name {}, got {declared:?}", t.name()),
        ));
    }
    Ok(Envelope {
        event_id: f.uuid("event_id")?,
        source: f.parse("source")?,
        link: f.parse("link")?,
        produced_at: f.timestamp_value("produced_at", f.required("produced_at")?)?,
    })
}

/// The event held in a decoded Avro value of type `t` (already resolved to
/// the current schema). Does not run [`Event::validate`].
pub fn from_value(t: EventType, value: Value) -> Result<Event, FieldError> {
    let f = Fields::of(&value, "")?;
    let envelope = envelope_from(f.required("envelope")?, t)?;
    let payload = match t {
        EventType::QualificationAcquired => Payload::QualificationAcquired(QualificationAcquired {
            qualification_id: f.parse("qualification_id")?,
            insurer_number: f.parse("insurer_number")?,
            card_symbol: f.parse_opt("card_symbol")?,
            card_number: f.parse("card_number")?,
            branch: f.parse_opt("branch")?,
            relationship: f.enumerated("relationship")?,
            name: f.parse("name")?,
            name_kana: f.parse("name_kana")?,
            sex: f.enumerated("sex")?,
            birth_date: f.date("birth_date")?,
            acquired_on: f.date("acquired_on")?,
            card_kind: f.enumerated("card_kind")?,
            copay: f.copay("copay_percent")?,
            card_valid_until: f.date_opt("card_valid_until")?,
            special_statuses: f
                .enum_array_value("special_statuses", f.required("special_statuses")?)?,
        }),
        EventType::QualificationChanged => Payload::QualificationChanged(QualificationChanged {
            qualification_id: f.parse("qualification_id")?,
            effective_on: f.date("effective_on")?,
            card_symbol: f.parse_opt("card_symbol")?,
            card_number: f.parse_opt("card_number")?,
            branch: f.parse_opt("branch")?,
            relationship: f.enumerated_opt("relationship")?,
            name: f.parse_opt("name")?,
            name_kana: f.parse_opt("name_kana")?,
            card_kind: f.enumerated_opt("card_kind")?,
            copay: f.copay_opt("copay_percent")?,
            card_valid_until: f.date_opt("card_valid_until")?,
            special_statuses: f
                .maybe("special_statuses")?
                .map(|v| f.enum_array_value("special_statuses", v))
                .transpose()?,
        }),
        EventType::QualificationLost => Payload::QualificationLost(QualificationLost {
            qualification_id: f.parse("qualification_id")?,
            lost_on: f.date("lost_on")?,
            reason: f.enumerated("reason")?,
        }),
        EventType::QualificationRetracted => {
            Payload::QualificationRetracted(QualificationRetracted {
                retracted_event_id: f
                    .maybe("retracted_event_id")?
                    .map(|v| f.uuid_value("retracted_event_id", v))
                    .transpose()?,
                retracted_qualification_id: f.parse_opt("retracted_qualification_id")?,
                reason: f.string("reason")?,
            })
        }
        EventType::CertificateIssued => Payload::CertificateIssued(CertificateIssued {
            certificate_id: f.parse("certificate_id")?,
            qualification_id: f.parse("qualification_id")?,
            kind: f.enumerated("kind")?,
            valid_from: f.date("valid_from")?,
            valid_until: f.date_opt("valid_until")?,
            limit_category: f.enumerated_opt("limit_category")?,
            disease: f.enumerated_opt("disease")?,
            monthly_cap_yen: f.int_opt("monthly_cap_yen")?,
            copay: f.copay_opt("copay_percent")?,
        }),
        EventType::CertificateEnded => Payload::CertificateEnded(CertificateEnded {
            certificate_id: f.parse("certificate_id")?,
            ended_on: f.date("ended_on")?,
        }),
        EventType::CardLinkRequested => Payload::CardLinkRequested(CardLinkRequested {
            request_id: f.parse("request_id")?,
            card_serial: f.parse("card_serial")?,
            insurer_number: f.parse("insurer_number")?,
            card_symbol: f.parse_opt("card_symbol")?,
            card_number: f.parse("card_number")?,
            branch: f.parse_opt("branch")?,
            notice_requested: f.boolean("notice_requested")?,
            contact: f
                .maybe("contact")?
                .map(|v| sealed_contact_from(v, "contact."))
                .transpose()?,
        }),
        EventType::CardLinked => Payload::CardLinked(CardLinked {
            request_id: f.parse_opt("request_id")?,
            card_serial: f.parse("card_serial")?,
            insurer_number: f.parse("insurer_number")?,
            card_symbol: f.parse_opt("card_symbol")?,
            card_number: f.parse("card_number")?,
            branch: f.parse_opt("branch")?,
            linked_on: f.date("linked_on")?,
        }),
        EventType::CardLinkRejected => Payload::CardLinkRejected(CardLinkRejected {
            request_id: f.parse("request_id")?,
            card_serial: f.parse("card_serial")?,
            reason: f.enumerated("reason")?,
        }),
        EventType::CardUnlinked => Payload::CardUnlinked(CardUnlinked {
            card_serial: f.parse("card_serial")?,
            unlinked_on: f.date("unlinked_on")?,
            reason: f.enumerated("reason")?,
        }),
        EventType::SubsidyGranted => Payload::SubsidyGranted(SubsidyGranted {
            subsidy_id: f.parse("subsidy_id")?,
            municipality: f.parse("municipality")?,
            programme: f.enumerated("programme")?,
            payer_number: f.parse("payer_number")?,
            recipient_number: f.parse("recipient_number")?,
            card_serial: f.parse_opt("card_serial")?,
            copay_percent: f.int_opt("copay_percent")?,
            copay_amount_yen: f.int_opt("copay_amount_yen")?,
            valid_from: f.date("valid_from")?,
            valid_until: f.date_opt("valid_until")?,
            method: f.enumerated("method")?,
            remarks: f.string_opt("remarks")?,
        }),
        EventType::SubsidyChanged => Payload::SubsidyChanged(SubsidyChanged {
            subsidy_id: f.parse("subsidy_id")?,
            effective_on: f.date("effective_on")?,
            recipient_number: f.parse_opt("recipient_number")?,
            copay_percent: f.int_opt("copay_percent")?,
            copay_amount_yen: f.int_opt("copay_amount_yen")?,
            valid_until: f.date_opt("valid_until")?,
            method: f.enumerated_opt("method")?,
            remarks: f.string_opt("remarks")?,
        }),
        EventType::SubsidyEnded => Payload::SubsidyEnded(SubsidyEnded {
            subsidy_id: f.parse("subsidy_id")?,
            ended_on: f.date("ended_on")?,
        }),
        EventType::NoticePublished => Payload::NoticePublished(NoticePublished {
            request_id: f.parse("request_id")?,
            notice_id: f.uuid("notice_id")?,
        }),
        EventType::NoticeSendStarted => Payload::NoticeSendStarted(NoticeSendStarted {
            request_id: f.parse("request_id")?,
            attempt: f.int("attempt")?,
            message_id: f.string("message_id")?,
        }),
        EventType::NoticeDelivered => Payload::NoticeDelivered(NoticeDelivered {
            request_id: f.parse("request_id")?,
            attempt: f.int("attempt")?,
            relay_reply: f.string("relay_reply")?,
        }),
        EventType::NoticeDeliveryFailed => Payload::NoticeDeliveryFailed(NoticeDeliveryFailed {
            request_id: f.parse("request_id")?,
            attempt: f.int("attempt")?,
            failure: f.enumerated("failure")?,
            detail: f.string("detail")?,
            retry_at: f
                .maybe("retry_at")?
                .map(|v| f.timestamp_value("retry_at", v))
                .transpose()?,
        }),
        EventType::ContactErased => Payload::ContactErased(ContactErased {
            request_id: f.parse("request_id")?,
            key_id: f.uuid("key_id")?,
        }),
        EventType::ClaimSubmitted => Payload::ClaimSubmitted(ClaimSubmitted {
            claim_id: f.parse("claim_id")?,
            institution: f.parse("institution")?,
            kind: f.enumerated("kind")?,
            payer: f.enumerated("payer")?,
            billed_insurer: f.parse("billed_insurer")?,
            card_symbol: f.parse_opt("card_symbol")?,
            card_number: f.parse_opt("card_number")?,
            branch: f.parse_opt("branch")?,
            card_serial: f.parse_opt("card_serial")?,
            service_month: f.parse("service_month")?,
            service_days: match f.required("service_days")? {
                Value::Array(items) => items
                    .iter()
                    .map(|v| {
                        let n = f.int_value("service_days", v)?;
                        u8::try_from(n)
                            .map_err(|_| f.err("service_days", format!("{n} is not a day")))
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(f.err("service_days", format!("expected an array, got {other:?}")))
                }
            },
            limit_category: f.enumerated_opt("limit_category")?,
            specific_disease: f.enumerated_opt("specific_disease")?,
            public_expense_payer: f.parse_opt("public_expense_payer")?,
            recipient_number: f.parse_opt("recipient_number")?,
            total_points: f.int("total_points")?,
        }),
        EventType::ClaimWithdrawn => Payload::ClaimWithdrawn(ClaimWithdrawn {
            claim_id: f.parse("claim_id")?,
            reason: f.string("reason")?,
        }),
        EventType::CertificateChanged => Payload::CertificateChanged(CertificateChanged {
            certificate_id: f.parse("certificate_id")?,
            effective_on: f.date("effective_on")?,
            limit_category: f.enumerated_opt("limit_category")?,
            monthly_cap_yen: f.int_opt("monthly_cap_yen")?,
            copay: f.copay_opt("copay_percent")?,
            valid_until: f.date_opt("valid_until")?,
        }),
    };
    Ok(Event { envelope, payload })
}

fn sealed_contact_from(value: &Value, prefix: &'static str) -> Result<SealedContact, FieldError> {
    let f = Fields::of(value, prefix)?;
    Ok(SealedContact {
        key_id: f.uuid("key_id")?,
        nonce: f.bytes("nonce")?,
        ciphertext: f.bytes("ciphertext")?,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{examples, json, registry};

    #[test]
    fn confluent_framing_round_trips_every_example() {
        for event in examples::all() {
            let t = event.event_type();
            let bytes = encode_confluent(&event).unwrap();
            assert_eq!(bytes[0], CONFLUENT_MAGIC);
            let id = u32::from_be_bytes(bytes[1..5].try_into().unwrap());
            assert_eq!(registry::by_id(id).unwrap().event_type, t);
            assert_eq!(&bytes[5..], &encode_datum(&event).unwrap()[..]);
            assert_eq!(decode_confluent(&bytes).unwrap(), event, "{t}");
            assert_eq!(decode_any(&bytes).unwrap(), event, "{t}");
            assert_eq!(decode_any(&encode(&event).unwrap()).unwrap(), event, "{t}");
        }
    }

    #[test]
    fn every_history_version_decodes_through_its_id() {
        // A datum of the current schema, framed with each version's id that
        // has the same canonical form, decodes the same way.
        let event = &examples::all()[0];
        let t = event.event_type();
        let current = Contract::get().current(t).schema.canonical_form();
        for v in Contract::get().history(t) {
            if v.schema.canonical_form() == current {
                let mut bytes = vec![CONFLUENT_MAGIC];
                bytes.extend_from_slice(&registry::schema_id(t, v.version).to_be_bytes());
                bytes.extend_from_slice(&encode_datum(event).unwrap());
                assert_eq!(&decode_confluent(&bytes).unwrap(), event);
            }
        }
    }

    #[test]
    fn confluent_errors_say_what_is_wrong() {
        let err = decode_confluent(&[0, 0, 0, 0x03, 0xE7, 1, 2]).unwrap_err();
        assert!(matches!(err, AvroError::UnknownSchemaId(999)), "{err:?}");
        assert!(err.to_string().contains("999"), "{err}");

        for short in [&[][..], &[0][..], &[0, 0, 0, 0x03][..]] {
            let err = decode_confluent(short).unwrap_err();
            assert!(matches!(err, AvroError::NotConfluent(_)), "{err:?}");
        }
        let err = decode_confluent(&[0, 0, 0]).unwrap_err();
        assert!(
            err.to_string().contains("truncated header: 3 bytes"),
            "{err}"
        );
        let err = decode_confluent(&[0xC3, 1, 2, 3, 4]).unwrap_err();
        assert!(err.to_string().contains("C3"), "{err}");

        let good = encode_confluent(&examples::all()[0]).unwrap();
        let err = decode_confluent(&good[..good.len() - 5]).unwrap_err();
        assert!(matches!(err, AvroError::Undecodable { .. }), "{err:?}");
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(matches!(
            decode_confluent(&trailing),
            Err(AvroError::Undecodable { .. })
        ));
    }

    #[test]
    fn decode_any_names_the_accepted_framings() {
        for (bytes, says) in [
            (&b"{}"[..], "first byte 7B"),
            (&[][..], "empty"),
            (&[0xC3][..], "single byte C3"),
            (&[0xC3, 0x02, 0, 0][..], "C3 followed by 02"),
        ] {
            let err = decode_any(bytes).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, AvroError::UnknownFraming(_)), "{err:?}");
            assert!(text.contains(says), "{text}");
            assert!(
                text.contains("single-object") && text.contains("Confluent"),
                "{text}"
            );
        }
        // A framing it recognises, with a bad header, keeps that framing's error.
        assert!(matches!(
            decode_any(&[0xC3, 0x01, 0]),
            Err(AvroError::NotSingleObject)
        ));
        assert!(matches!(
            decode_any(&[0, 1]),
            Err(AvroError::NotConfluent(_))
        ));
    }

    #[test]
    fn attempts_beyond_the_schemas_int_are_refused() {
        // Found by the `json_event` fuzz target: an attempt above i32::MAX
        // was accepted, then saturated by the encoder, so the log held
        // another number than the one acknowledged.
        let example = examples::all()
            .into_iter()
            .find(|e| e.event_type() == EventType::NoticeSendStarted)
            .unwrap();
        for (attempt, accepted) in [(i32::MAX as u32, true), (i32::MAX as u32 + 1, false)] {
            let mut value = json::to_value(&example);
            value["attempt"] = attempt.into();
            match json::from_value(value) {
                Ok(event) => {
                    assert!(accepted, "attempt {attempt} was accepted");
                    assert_eq!(decode(&encode(&event).unwrap()).unwrap(), event);
                }
                Err(e) => {
                    assert!(!accepted, "attempt {attempt} was refused: {e:?}");
                    assert_eq!(e.field, "attempt");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn random_bytes_after_a_zero_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut bytes = vec![CONFLUENT_MAGIC];
            bytes.extend_from_slice(&tail);
            let _ = decode_confluent(&bytes);
            let _ = decode_any(&bytes);
        }

        #[test]
        fn random_datums_under_known_ids_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..256),
            pick in 0usize..13,
        ) {
            let t = EventType::ALL[pick];
            let mut bytes = vec![CONFLUENT_MAGIC];
            bytes.extend_from_slice(&registry::schema_id(t, 1).to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = decode_any(&bytes);
        }
    }
}
