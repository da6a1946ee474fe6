//! The contract as a Confluent schema registry: numeric schema ids and
//! subjects for the schemas in `schemas/history/`, so producers that frame
//! events in the Confluent wire format (`00`, a 4-byte big-endian schema id,
//! the binary datum) can serialize against qledger's own contract with an
//! ordinary Confluent client. The HTTP face is `qledger::http::registry`.
//!
//! The registry is read-only: the contract is owned by the repository's
//! `schemas/` directory, not by clients. [`register`] answers the id of a
//! schema that is already in the contract and refuses anything else.
//!
//! # Schema ids
//!
//! Every (event type, version) of `schemas/history/<Type>/vN.avsc` has the id
//!
//! ```text
//! id = type number × 1000 + version          (version 1..=999)
//! ```
//!
//! where the type number is fixed per event type by [`type_number`]
//! (`QualificationAcquired` = 1 … `SubsidyEnded` = 13; a new event type takes
//! the next unused number, a number is never reused). So
//! `QualificationAcquired` v1 is 1001 and `SubsidyEnded` v2 would be 13002.
//! An id depends only on its own type and version: adding versions or types
//! never changes an id already handed out, so framed messages stay decodable
//! forever (tests pin ids and check they are unique).
//!
//! # Subjects
//!
//! Subjects follow Confluent's `RecordNameStrategy` — the record's fully
//! qualified name, `jp.qledger.events.QualificationAcquired` — and
//! `TopicRecordNameStrategy` — `<topic>-<fully qualified name>`, e.g.
//! `qledger.events-jp.qledger.events.QualificationAcquired`. A subject is
//! resolved by stripping an optional `<topic>-` prefix, for any topic name
//! that Kafka allows (`[A-Za-z0-9._-]`, at most 249 characters); Avro names
//! cannot contain `-`, so the split is at the last `-`. [`subjects`] lists the
//! record-name subjects only (topics are not enumerable). The default
//! `TopicNameStrategy` (`<topic>-value`) is not served: one topic carries
//! every event type, so a per-topic subject would have no single schema.
//!
//! Every subject has the versions of its event type's history, numbered as
//! in `schemas/history/<Type>/`, under the compatibility level
//! [`COMPATIBILITY_LEVEL`] (`FULL_TRANSITIVE`): the contract's evolution rule
//! is that every version reads every other in both directions.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use super::avro::{Contract, SchemaVersion};
use super::EventType;

/// The namespace of every event record.
pub const NAMESPACE: &str = "jp.qledger.events";

/// Ids are `type number × ID_STRIDE + version`.
pub const ID_STRIDE: u32 = 1000;

/// The compatibility level that matches the contract's evolution rule.
pub const COMPATIBILITY_LEVEL: &str = "FULL_TRANSITIVE";

/// The only schema type served.
pub const SCHEMA_TYPE: &str = "AVRO";

/// Why a registry request cannot be answered, with Confluent's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error(
        "subject '{0}' not found: subjects are the events' full record names \
         (jp.qledger.events.<Type>, RecordNameStrategy), optionally prefixed \
         by '<topic>-' (TopicRecordNameStrategy)"
    )]
    SubjectNotFound(String),
    #[error("subject '{subject}' has no version {version} (it has 1 to {latest})")]
    VersionNotFound {
        subject: String,
        version: u32,
        latest: u32,
    },
    #[error("schema not found: {0}")]
    SchemaNotFound(String),
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    #[error(
        "the specified version '{0}' is not a valid version id: \
         allowed are 'latest', -1 or a number from 1 to 2^31-1"
    )]
    InvalidVersion(String),
    #[error(
        "schema being registered under '{subject}' is not in the qledger contract: \
         the contract is owned by schemas/ in the qledger repository (a change adds \
         schemas/history/{event_type}/vN.avsc), so schemas cannot be registered \
         through the API; only schemas already in the contract answer their id"
    )]
    NotInContract {
        subject: String,
        event_type: EventType,
    },
}

impl RegistryError {
    /// Confluent's `error_code` for this error; the HTTP status is the first
    /// three digits.
    pub fn error_code(&self) -> u32 {
        match self {
            RegistryError::SubjectNotFound(_) => 40401,
            RegistryError::VersionNotFound { .. } => 40402,
            RegistryError::SchemaNotFound(_) => 40403,
            RegistryError::InvalidSchema(_) => 42201,
            RegistryError::InvalidVersion(_) => 42202,
            RegistryError::NotInContract { .. } => 409,
        }
    }
}

/// The fixed number of each event type in schema ids. Never change or reuse
/// a number: ids written into messages are derived from it. The match is
/// exhaustive, so a new event type does not compile without its number.
pub fn type_number(t: EventType) -> u32 {
    match t {
        EventType::QualificationAcquired => 1,
        EventType::QualificationChanged => 2,
        EventType::QualificationLost => 3,
        EventType::QualificationRetracted => 4,
        EventType::CertificateIssued => 5,
        EventType::CertificateEnded => 6,
        EventType::CardLinkRequested => 7,
        EventType::CardLinked => 8,
        EventType::CardLinkRejected => 9,
        EventType::CardUnlinked => 10,
        EventType::SubsidyGranted => 11,
        EventType::SubsidyChanged => 12,
        EventType::SubsidyEnded => 13,
        EventType::NoticePublished => 14,
        EventType::NoticeSendStarted => 15,
        EventType::NoticeDelivered => 16,
        EventType::NoticeDeliveryFailed => 17,
        EventType::ContactErased => 18,
        EventType::CertificateChanged => 19,
        EventType::ClaimSubmitted => 20,
        EventType::ClaimWithdrawn => 21,
    }
}

/// The schema id of version `version` (1-based) of `t`.
pub fn schema_id(t: EventType, version: u32) -> u32 {
    debug_assert!(
        (1..ID_STRIDE).contains(&version),
        "version {version} does not fit the id rule"
    );
    type_number(t) * ID_STRIDE + version
}

/// The record-name subject (fully qualified record name) of `t`.
pub fn record_subject(t: EventType) -> String {
    format!("{NAMESPACE}.{}", t.name())
}

/// A schema version as the registry presents it.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub id: u32,
    pub event_type: EventType,
    pub version: u32,
    pub schema: &'static SchemaVersion,
}

impl Registered {
    fn of(schema: &'static SchemaVersion) -> Registered {
        Registered {
            id: schema_id(schema.event_type, schema.version),
            event_type: schema.event_type,
            version: schema.version,
            schema,
        }
    }

    /// The schema text as committed in `schemas/history/`.
    pub fn text(&self) -> &'static str {
        self.schema.text
    }
}

/// The schema version an id names, if any.
pub fn by_id(id: u32) -> Option<Registered> {
    let (number, version) = (id / ID_STRIDE, id % ID_STRIDE);
    let t = EventType::ALL
        .iter()
        .copied()
        .find(|&t| type_number(t) == number)?;
    let history = Contract::get().history(t);
    let index = usize::try_from(version).ok()?.checked_sub(1)?;
    history.get(index).map(Registered::of)
}

/// Every schema version of the contract, by type (in [`EventType::ALL`]
/// order) and version.
pub fn all() -> impl Iterator<Item = Registered> {
    let contract = Contract::get();
    EventType::ALL
        .iter()
        .flat_map(move |&t| contract.history(t).iter().map(Registered::of))
}

/// The contract's version with the same Parsing Canonical Form as `schema`,
/// of any event type: how a schema fetched from another registry (under its
/// own id) is recognised as one of ours.
pub fn contract_version_of(schema: &Schema) -> Option<Registered> {
    let canonical = parsing_canonical_form(schema);
    all().find(|r| parsing_canonical_form(&r.schema.schema) == canonical)
}

/// The record-name subjects, sorted.
pub fn subjects() -> Vec<String> {
    let mut out: Vec<String> = EventType::ALL.iter().map(|&t| record_subject(t)).collect();
    out.sort();
    out
}

/// The event type a subject names: `<full record name>` or
/// `<topic>-<full record name>`.
pub fn resolve_subject(subject: &str) -> Result<EventType, RegistryError> {
    let not_found = || RegistryError::SubjectNotFound(subject.to_owned());
    let record = match subject.rsplit_once('-') {
        None => subject,
        Some((topic, record)) if is_topic_name(topic) => record,
        Some(_) => return Err(not_found()),
    };
    record
        .strip_prefix(NAMESPACE)
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(EventType::from_name)
        .ok_or_else(not_found)
}

/// A legal Kafka topic name.
fn is_topic_name(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The versions of a subject, ascending.
pub fn versions(subject: &str) -> Result<Vec<u32>, RegistryError> {
    let t = resolve_subject(subject)?;
    Ok(Contract::get()
        .history(t)
        .iter()
        .map(|v| v.version)
        .collect())
}

/// A version as a request names it: a number or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl FromStr for VersionSpec {
    type Err = RegistryError;

    /// `latest`, `-1` (Confluent's alias of latest) or 1..=2^31-1.
    fn from_str(s: &str) -> Result<VersionSpec, RegistryError> {
        if s == "latest" || s == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match s.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(VersionSpec::Number(n.unsigned_abs())),
            _ => Err(RegistryError::InvalidVersion(s.to_owned())),
        }
    }
}

impl fmt::Display for VersionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionSpec::Latest => f.write_str("latest"),
            VersionSpec::Number(n) => write!(f, "{n}"),
        }
    }
}

/// The schema of a subject's version.
pub fn version(subject: &str, version: VersionSpec) -> Result<Registered, RegistryError> {
    let t = resolve_subject(subject)?;
    let history = Contract::get().history(t);
    let latest = u32::try_from(history.len()).expect("fewer than 2^32 versions");
    let n = match version {
        VersionSpec::Latest => latest,
        VersionSpec::Number(n) => n,
    };
    n.checked_sub(1)
        .and_then(|i| history.get(i as usize))
        .map(Registered::of)
        .ok_or_else(|| RegistryError::VersionNotFound {
            subject: subject.to_owned(),
            version: n,
            latest,
        })
}

/// Parses a schema a client sent.
pub fn parse_candidate(text: &str) -> Result<Schema, RegistryError> {
    Schema::parse_str(text).map_err(|e| RegistryError::InvalidSchema(e.to_string()))
}

/// The Parsing Canonical Form of a schema, as JSON.
///
/// apache-avro 0.22's `canonical_form` writes a primitive that carries a
/// logical type as `{"type":"string"}` where the specification (and Java's
/// `SchemaNormalization`, fastavro) write `"string"`; it is not even
/// idempotent (the canonical form of its own output differs). Both sides of
/// a comparison go through this normalisation, so a client's schema and the
/// committed one match whichever way they spell it.
pub fn parsing_canonical_form(schema: &Schema) -> serde_json::Value {
    fn collapse(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(o) => {
                if o.len() == 1 {
                    if let Some(Value::String(t)) = o.get("type") {
                        if PRIMITIVES.contains(&t.as_str()) {
                            return Value::String(t.clone());
                        }
                    }
                }
                Value::Object(o.into_iter().map(|(k, v)| (k, collapse(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(collapse).collect()),
            other => other,
        }
    }
    const PRIMITIVES: &[&str] = &[
        "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    ];
    let json: serde_json::Value = serde_json::from_str(&schema.canonical_form())
        .expect("apache-avro writes its canonical form as JSON");
    collapse(json)
}

/// The version of `subject` whose Parsing Canonical Form
/// ([`parsing_canonical_form`]) equals that of `text`: its id and version.
/// When two versions share a canonical form (a change of docs or defaults
/// only), the earliest answers, as the single-object fingerprint resolves to
/// it too.
pub fn lookup(subject: &str, text: &str) -> Result<Registered, RegistryError> {
    let t = resolve_subject(subject)?;
    let canonical = parsing_canonical_form(&parse_candidate(text)?);
    Contract::get()
        .history(t)
        .iter()
        .find(|v| parsing_canonical_form(&v.schema) == canonical)
        .map(Registered::of)
        .ok_or_else(|| {
            RegistryError::SchemaNotFound(format!(
                "no version of subject '{subject}' has this schema's parsing canonical form"
            ))
        })
}

/// Registration: a schema already in the contract answers its id and
/// version, anything else is refused ([`RegistryError::NotInContract`]).
pub fn register(subject: &str, text: &str) -> Result<Registered, RegistryError> {
    let t = resolve_subject(subject)?;
    match lookup(subject, text) {
        Err(RegistryError::SchemaNotFound(_)) => Err(RegistryError::NotInContract {
            subject: subject.to_owned(),
            event_type: t,
        }),
        other => other,
    }
}

/// The outcome of a compatibility check; `messages` say why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

/// Whether `text` and version `version` of `subject` read each other in
/// both directions (the contract's rule; `avro_contract.rs` checks the
/// committed versions the same way: any `Ok` of apache-avro's
/// `SchemaCompatibility::can_read` counts, `Partial` included).
pub fn check_compatibility(
    subject: &str,
    version: VersionSpec,
    text: &str,
) -> Result<Compatibility, RegistryError> {
    let existing = self::version(subject, version)?;
    let candidate = parse_candidate(text)?;
    let mut messages = Vec::new();
    mutual(&candidate, existing.schema, &mut messages);
    Ok(Compatibility {
        is_compatible: messages.is_empty(),
        messages,
    })
}

/// Like [`check_compatibility`], against every version of the subject
/// (`FULL_TRANSITIVE`).
pub fn check_compatibility_all(subject: &str, text: &str) -> Result<Compatibility, RegistryError> {
    let t = resolve_subject(subject)?;
    let candidate = parse_candidate(text)?;
    let mut messages = Vec::new();
    for existing in Contract::get().history(t) {
        mutual(&candidate, existing, &mut messages);
    }
    Ok(Compatibility {
        is_compatible: messages.is_empty(),
        messages,
    })
}

fn mutual(candidate: &Schema, existing: &SchemaVersion, messages: &mut Vec<String>) {
    let v = existing.version;
    if let Err(e) = SchemaCompatibility::can_read(&existing.schema, candidate) {
        messages.push(format!(
            "the candidate cannot read version {v} (backward): {}",
            chain(&e)
        ));
    }
    if let Err(e) = SchemaCompatibility::can_read(candidate, &existing.schema) {
        messages.push(format!(
            "version {v} cannot read the candidate (forward): {}",
            chain(&e)
        ));
    }
}

/// An error and its sources, joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_follow_the_rule_and_are_pinned() {
        assert_eq!(schema_id(EventType::QualificationAcquired, 1), 1001);
        assert_eq!(schema_id(EventType::QualificationChanged, 1), 2001);
        assert_eq!(schema_id(EventType::CardUnlinked, 1), 10001);
        assert_eq!(schema_id(EventType::SubsidyEnded, 1), 13001);
        assert_eq!(schema_id(EventType::SubsidyEnded, 2), 13002);
        // The numbers are fixed; this list only grows.
        let pinned: Vec<u32> = EventType::ALL.iter().map(|&t| type_number(t)).collect();
        assert_eq!(pinned, (1..=21).collect::<Vec<u32>>());
    }

    #[test]
    fn ids_are_unique_and_every_version_has_one() {
        let mut seen = HashSet::new();
        let mut count = 0;
        for r in all() {
            assert!(
                (1..ID_STRIDE).contains(&r.version),
                "{} v{} does not fit the id rule",
                r.event_type,
                r.version
            );
            assert!(seen.insert(r.id), "id {} given twice", r.id);
            let back = by_id(r.id).expect("the id resolves");
            assert_eq!((back.event_type, back.version), (r.event_type, r.version));
            count += 1;
        }
        let expected: usize = EventType::ALL
            .iter()
            .map(|&t| Contract::get().history(t).len())
            .sum();
        assert_eq!(count, expected);
        let numbers: HashSet<u32> = EventType::ALL.iter().map(|&t| type_number(t)).collect();
        assert_eq!(numbers.len(), EventType::ALL.len(), "type numbers unique");
        assert!(!numbers.contains(&0), "0 would give ids below 1000");
    }

    #[test]
    fn unknown_ids_resolve_to_nothing() {
        for id in [0, 1, 999, 1000, 1999, 22001, 99_001, u32::MAX] {
            assert!(by_id(id).is_none(), "{id}");
        }
        let latest = Contract::get()
            .history(EventType::QualificationAcquired)
            .len() as u32;
        assert!(by_id(schema_id(EventType::QualificationAcquired, latest + 1)).is_none());
    }

    #[test]
    fn subjects_resolve_with_and_without_a_topic() {
        let acquired = "jp.qledger.events.QualificationAcquired";
        assert!(subjects().contains(&acquired.to_owned()));
        assert_eq!(subjects().len(), EventType::ALL.len());
        assert_eq!(
            resolve_subject(acquired),
            Ok(EventType::QualificationAcquired)
        );
        for topic in ["qledger", "qledger.events", "q-ledger-events", "a_b"] {
            assert_eq!(
                resolve_subject(&format!("{topic}-{acquired}")),
                Ok(EventType::QualificationAcquired),
                "{topic}"
            );
        }
        for bad in [
            "QualificationAcquired",
            "jp.qledger.events.Nothing",
            "jp.qledger.events",
            "-jp.qledger.events.QualificationAcquired",
            "a b-jp.qledger.events.QualificationAcquired",
            "qledger-value",
            "",
        ] {
            assert!(
                matches!(resolve_subject(bad), Err(RegistryError::SubjectNotFound(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn versions_and_latest() {
        let s = "jp.qledger.events.CardLinked";
        let n = Contract::get().history(EventType::CardLinked).len() as u32;
        assert_eq!(versions(s).unwrap(), (1..=n).collect::<Vec<_>>());
        let latest = version(s, VersionSpec::Latest).unwrap();
        assert_eq!(latest.version, n);
        assert_eq!(latest.id, schema_id(EventType::CardLinked, n));
        assert_eq!(
            version(s, VersionSpec::Number(1)).unwrap().id,
            schema_id(EventType::CardLinked, 1)
        );
        assert_eq!(
            version(s, VersionSpec::Number(n + 1))
                .unwrap_err()
                .error_code(),
            40402
        );
        assert_eq!("latest".parse(), Ok(VersionSpec::Latest));
        assert_eq!("-1".parse(), Ok(VersionSpec::Latest));
        assert_eq!("3".parse(), Ok(VersionSpec::Number(3)));
        for bad in ["0", "-2", "x", "", "2147483648", "1.0"] {
            assert_eq!(
                bad.parse::<VersionSpec>().unwrap_err().error_code(),
                42202,
                "{bad}"
            );
        }
    }

    #[test]
    fn lookup_matches_by_canonical_form() {
        let t = EventType::QualificationLost;
        let subject = record_subject(t);
        let committed = Contract::get().history(t)[0].text;
        let found = lookup(&subject, committed).unwrap();
        assert_eq!((found.id, found.version), (schema_id(t, 1), 1));
        // Docs and whitespace do not matter: the canonical form itself
        // matches, as apache-avro writes it and as the specification does
        // (primitives with a logical type in their simple form).
        let canonical = Contract::get().history(t)[0].schema.canonical_form();
        assert_eq!(lookup(&subject, &canonical).unwrap().id, found.id);
        let spec = canonical
            .replace(r#"{"type":"string"}"#, r#""string""#)
            .replace(r#"{"type":"long"}"#, r#""long""#)
            .replace(r#"{"type":"int"}"#, r#""int""#);
        assert_ne!(spec, canonical, "the contract uses logical types");
        assert_eq!(lookup(&subject, &spec).unwrap().id, found.id);
        assert_eq!(
            lookup(&format!("events-{subject}"), &canonical).unwrap().id,
            found.id
        );
        // Another type's schema is not under this subject.
        let other = Contract::get().history(EventType::CardLinked)[0].text;
        assert_eq!(lookup(&subject, other).unwrap_err().error_code(), 40403);
        assert_eq!(
            lookup(&subject, "{not json").unwrap_err().error_code(),
            42201
        );
        assert_eq!(lookup("nope", committed).unwrap_err().error_code(), 40401);
    }

    /// The schema of `t` with one more optional field (a compatible change).
    fn with_extra_field(t: EventType, field: &str) -> String {
        let mut v: serde_json::Value =
            serde_json::from_str(Contract::get().current(t).text).unwrap();
        let field: serde_json::Value = serde_json::from_str(field).unwrap();
        v["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "extra", "type": field, "default": null}));
        v.to_string()
    }

    #[test]
    fn registration_answers_contract_schemas_only() {
        let t = EventType::SubsidyEnded;
        let subject = record_subject(t);
        let r = register(&subject, Contract::get().current(t).text).unwrap();
        assert_eq!(r.id, schema_id(t, r.version));
        let compatible_but_new = with_extra_field(t, r#"["null", "string"]"#);
        let err = register(&subject, &compatible_but_new).unwrap_err();
        assert_eq!(err.error_code(), 409);
        assert!(err.to_string().contains("schemas/"), "{err}");
        assert_eq!(register(&subject, "[").unwrap_err().error_code(), 42201);
        assert_eq!(
            register("t-value", Contract::get().current(t).text)
                .unwrap_err()
                .error_code(),
            40401
        );
    }

    #[test]
    fn compatibility_is_checked_both_ways() {
        let t = EventType::CertificateEnded;
        let subject = record_subject(t);
        let same = check_compatibility(
            &subject,
            VersionSpec::Latest,
            Contract::get().current(t).text,
        )
        .unwrap();
        assert!(same.is_compatible, "{:?}", same.messages);

        // The canonical form drops logical types; the underlying types match.
        let spec = Contract::get()
            .current(t)
            .schema
            .canonical_form()
            .replace(r#"{"type":"string"}"#, r#""string""#)
            .replace(r#"{"type":"long"}"#, r#""long""#)
            .replace(r#"{"type":"int"}"#, r#""int""#);
        let c = check_compatibility(&subject, VersionSpec::Latest, &spec).unwrap();
        assert!(c.is_compatible, "{:?}", c.messages);

        // An optional field with a default: both directions read.
        let added = with_extra_field(t, r#"["null", "string"]"#);
        let c = check_compatibility(&subject, VersionSpec::Number(1), &added).unwrap();
        assert!(c.is_compatible, "{:?}", c.messages);
        assert!(
            check_compatibility_all(&subject, &added)
                .unwrap()
                .is_compatible
        );

        // A new required field: old data cannot be read by the candidate.
        let mut v: serde_json::Value =
            serde_json::from_str(Contract::get().current(t).text).unwrap();
        v["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "required_now", "type": "string"}));
        let c = check_compatibility(&subject, VersionSpec::Latest, &v.to_string()).unwrap();
        assert!(!c.is_compatible);
        assert!(
            c.messages.iter().any(|m| m.contains("required_now")),
            "{:?}",
            c.messages
        );
        // A removed field without a default: the candidate's data cannot be
        // read by the committed version.
        let mut v: serde_json::Value =
            serde_json::from_str(Contract::get().current(t).text).unwrap();
        v["fields"].as_array_mut().unwrap().pop();
        let c = check_compatibility_all(&subject, &v.to_string()).unwrap();
        assert!(!c.is_compatible);
        assert!(
            c.messages.iter().any(|m| m.contains("forward")),
            "{:?}",
            c.messages
        );

        assert_eq!(
            check_compatibility(&subject, VersionSpec::Number(99), &added)
                .unwrap_err()
                .error_code(),
            40402
        );
    }
}
