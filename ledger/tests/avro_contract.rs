//! The Avro wire contract cannot drift unnoticed: schema history, mutual
//! compatibility of every version, enum symbol order, golden bytes.
//!
//! `UPDATE_GOLDEN=1 cargo test -p ledger --test avro_contract` rewrites the
//! golden files of the *current* version; older goldens are never rewritten
//! and must keep decoding.

use std::path::{Path, PathBuf};

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use ledger::domain::*;
use ledger::event::avro::{self, AvroEnum, AvroError, Contract};
use ledger::event::{examples, json, EventType, LinkRejectionReason, NoticeFailure, UnlinkReason};
use proptest::prelude::*;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

#[test]
fn current_schema_is_the_latest_history_version() {
    let contract = Contract::get();
    for &t in EventType::ALL {
        let history = contract.history(t);
        let latest = history.last().expect("every type has a v1");
        assert_eq!(
            contract.current(t).schema.canonical_form(),
            latest.schema.canonical_form(),
            "schemas/{0}.avsc changed without a new schemas/history/{0}/v{1}.avsc",
            t.name(),
            history.len() + 1
        );
    }
}

#[test]
fn history_directory_matches_the_compiled_list() {
    for &t in EventType::ALL {
        let dir = schemas_dir().join("history").join(t.name());
        let on_disk = std::fs::read_dir(&dir).unwrap().filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "avsc")
        });
        assert_eq!(
            on_disk.count(),
            Contract::get().history(t).len(),
            "{}: every file in {} must be listed in ledger/src/event/avro.rs",
            t.name(),
            dir.display()
        );
    }
}

#[test]
fn every_version_reads_every_other_version() {
    // Transitive backward + forward compatibility.
    let contract = Contract::get();
    for &t in EventType::ALL {
        let mut versions: Vec<&Schema> = contract.history(t).iter().map(|v| &v.schema).collect();
        versions.push(&contract.current(t).schema);
        for (i, writer) in versions.iter().enumerate() {
            for (j, reader) in versions.iter().enumerate() {
                SchemaCompatibility::can_read(writer, reader).unwrap_or_else(|e| {
                    panic!(
                        "{}: version {} cannot read version {}: {e}",
                        t.name(),
                        j + 1,
                        i + 1
                    )
                });
            }
        }
    }
}

#[test]
fn every_schema_carries_the_same_envelope() {
    let envelope_of = |t: EventType| {
        let text =
            std::fs::read_to_string(schemas_dir().join(format!("{}.avsc", t.name()))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first = v["fields"][0].clone();
        assert_eq!(
            first["name"],
            "envelope",
            "{}: the first field must be the envelope",
            t.name()
        );
        first
    };
    let reference = envelope_of(EventType::QualificationAcquired);
    for &t in EventType::ALL {
        assert_eq!(envelope_of(t), reference, "{}: envelope differs", t.name());
    }
}

fn symbols<E: AvroEnum>() -> Vec<&'static str> {
    E::ALL.iter().map(|e| e.symbol()).collect()
}

#[test]
fn rust_enums_match_schema_symbols_in_order() {
    let expected: Vec<(&str, Vec<&str>)> = vec![
        ("Relationship", symbols::<Relationship>()),
        ("Sex", symbols::<Sex>()),
        ("CardKind", symbols::<CardKind>()),
        ("SpecialStatus", symbols::<SpecialStatus>()),
        ("LossReason", symbols::<LossReason>()),
        ("CertificateKind", symbols::<CertificateKind>()),
        ("LimitCategory", symbols::<LimitCategory>()),
        ("SpecificDisease", symbols::<SpecificDisease>()),
        ("SubsidyProgramme", symbols::<SubsidyProgramme>()),
        ("SubsidyMethod", symbols::<SubsidyMethod>()),
        ("LinkRejectionReason", symbols::<LinkRejectionReason>()),
        ("UnlinkReason", symbols::<UnlinkReason>()),
        ("NoticeFailure", symbols::<NoticeFailure>()),
        ("ClaimKind", symbols::<ClaimKind>()),
        ("PayerOrganisation", symbols::<PayerOrganisation>()),
    ];
    let mut seen = std::collections::HashSet::new();
    for &t in EventType::ALL {
        let text =
            std::fs::read_to_string(schemas_dir().join(format!("{}.avsc", t.name()))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut stack = vec![&v];
        while let Some(node) = stack.pop() {
            match node {
                serde_json::Value::Object(o) => {
                    if o.get("type").and_then(|x| x.as_str()) == Some("enum") {
                        let name = o["name"].as_str().unwrap();
                        let (_, want) =
                            expected
                                .iter()
                                .find(|(n, _)| *n == name)
                                .unwrap_or_else(|| {
                                    panic!("enum {name} has no Rust counterpart in this test")
                                });
                        let got: Vec<&str> = o["symbols"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|s| s.as_str().unwrap())
                            .collect();
                        assert_eq!(&got, want, "{}: enum {name} symbols", t.name());
                        seen.insert(name.to_owned());
                    }
                    stack.extend(o.values());
                }
                serde_json::Value::Array(a) => stack.extend(a.iter()),
                _ => {}
            }
        }
    }
    assert_eq!(
        seen.len(),
        expected.len(),
        "every enum is used by some schema"
    );
}

#[test]
fn examples_round_trip_through_json_and_avro() {
    let all = examples::all();
    assert_eq!(all.len(), EventType::ALL.len());
    for (event, &t) in all.iter().zip(EventType::ALL) {
        assert_eq!(event.event_type(), t);
        event
            .validate()
            .unwrap_or_else(|e| panic!("example {t} is invalid: {e}"));
        let j = json::to_value(event);
        assert_eq!(
            &json::from_value(j.clone()).unwrap(),
            event,
            "JSON round trip of {t}: {j}"
        );
        let bytes = avro::encode(event).unwrap();
        assert_eq!(
            &avro::decode(&bytes).unwrap(),
            event,
            "Avro round trip of {t}"
        );
    }
}

#[test]
fn golden_vectors_decode_and_pin_the_current_bytes() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let golden = schemas_dir().join("golden");
    for event in examples::all() {
        let t = event.event_type();
        let version = Contract::get().history(t).len();
        let bin = golden.join(format!("{}.v{version}.bin", t.name()));
        let json_path = golden.join(format!("{}.v{version}.json", t.name()));
        let bytes = avro::encode(&event).unwrap();
        if update {
            std::fs::write(&bin, &bytes).unwrap();
            let pretty = serde_json::to_string_pretty(&json::to_value(&event)).unwrap();
            std::fs::write(&json_path, pretty + "\n").unwrap();
        }
        let committed = std::fs::read(&bin)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", bin.display()));
        assert_eq!(
            committed, bytes,
            "{t}: the wire bytes changed; a schema change needs a new version"
        );
    }
    // Every golden ever committed, of any version, still decodes to its JSON.
    for entry in std::fs::read_dir(&golden).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "bin") {
            let bytes = std::fs::read(&path).unwrap();
            let event = avro::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let expected: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(path.with_extension("json")).unwrap(),
            )
            .unwrap();
            let got = json::to_value(&event);
            for (k, v) in expected.as_object().unwrap() {
                assert_eq!(&got[k], v, "{}: field {k}", path.display());
            }
        }
    }
}

#[test]
fn malformed_messages_are_refused_with_a_reason() {
    assert!(matches!(
        avro::decode(b"{}"),
        Err(AvroError::NotSingleObject)
    ));
    let mut unknown = vec![0xC3, 0x01];
    unknown.extend_from_slice(&42u64.to_le_bytes());
    assert!(matches!(
        avro::decode(&unknown),
        Err(AvroError::UnknownFingerprint(42))
    ));
    let good = avro::encode(&examples::all()[0]).unwrap();
    let truncated = &good[..good.len() - 5];
    assert!(matches!(
        avro::decode(truncated),
        Err(AvroError::Undecodable { .. })
    ));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        avro::decode(&trailing),
        Err(AvroError::Undecodable { .. })
    ));
}

#[test]
fn decoded_values_are_validated_like_json() {
    // An insurer number with a wrong check digit, smuggled into valid Avro.
    let mut event = examples::all()[0].clone();
    let mut value = avro::to_value(&event);
    if let apache_avro::types::Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "insurer_number" {
                *v = apache_avro::types::Value::String("01130013".into());
            }
        }
    }
    let err = avro::from_value(EventType::QualificationAcquired, value).unwrap_err();
    assert_eq!(err.field, "insurer_number");
    assert!(err.rule.contains("check digit"), "{err}");
    // And the envelope's event id must be a UUIDv7.
    event.envelope.event_id = uuid::Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);
    let bytes = avro::encode(&event).unwrap();
    match avro::decode(&bytes) {
        Err(AvroError::Invalid { error, .. }) => assert_eq!(error.field, "envelope.event_id"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(tail in proptest::collection::vec(any::<u8>(), 0..256), pick in 0usize..13) {
        let t = EventType::ALL[pick];
        let fp = Contract::get().current(t).fingerprint;
        let mut bytes = vec![0xC3, 0x01];
        bytes.extend_from_slice(&fp.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = avro::decode(&bytes);
    }
}

#[test]
fn fingerprints_follow_the_specification_and_old_ones_still_read() {
    for &t in EventType::ALL {
        for v in Contract::get()
            .history(t)
            .iter()
            .chain([Contract::get().current(t)])
        {
            let canonical = avro::canonical_form(&v.schema);
            assert!(
                !canonical.contains("{\"type\":\"string\"}"),
                "{t}: logical types reduce to their primitive type"
            );
            let again = Schema::parse_str(&canonical).unwrap();
            assert_eq!(
                avro::canonical_form(&again),
                canonical,
                "{t}: a fixed point"
            );
            for fp in [v.fingerprint, v.legacy_fingerprint] {
                assert_eq!(
                    Contract::get().by_fingerprint(fp).map(|w| w.event_type),
                    Some(t)
                );
            }
        }
    }
    // As computed by fastavro 1.13 (`fingerprint(to_parsing_canonical_form(s),
    // "CRC-64-AVRO")`) from schemas/QualificationLost.avsc: an independent
    // implementation of the specification.
    let lost = Contract::get().current(EventType::QualificationLost);
    assert_eq!(
        hex::encode(lost.fingerprint.to_le_bytes()),
        "4344dfb78163b30b"
    );
}
