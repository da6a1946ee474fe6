//! Byte layout of every RocksDB key of the views. Only this module builds keys.
//!
//! A key is a one-byte view id, then big-endian fields, so byte order equals
//! logical order. Strings (link numbers, entity ids, index keys) are validated
//! domain ids that never contain NUL, and end with a NUL terminator so a
//! shorter string sorts before its extensions. Days and record times flip the
//! sign bit so negative values sort first.
//!
//! Version rows sort by person, entity kind, entity, valid_from, then
//! recorded_from: one prefix scan reads a person's whole bitemporal history.
//! Bump [`KEY_FORMAT_VERSION`] on any change to keys or values, or to what
//! the projector makes of an event: views are then rebuilt from the log.

use ledger::domain::{Day, RecordTime};
use ledger::log::{Offset, Partition};
use uuid::Uuid;

/// Stored under [`meta_format`]; a mismatch at open means "rebuild".
/// 2: subsidies are held only for linked card holders.
/// 3: applied marks carry a content digest.
/// 4: link requests carry their notice and contact key; the notices outbox;
///    claims and their decisions.
pub const KEY_FORMAT_VERSION: u32 = 4;

/// One-byte view ids.
pub mod view {
    pub const META: u8 = 0x00;
    pub const OFFSETS: u8 = 0x01;
    pub const APPLIED: u8 = 0x02;
    pub const LAST_RECORD_TIME: u8 = 0x03;
    pub const VERSION: u8 = 0x10;
    pub const ENTITY: u8 = 0x11;
    pub const EVENT: u8 = 0x12;
    pub const LINK_REQUEST: u8 = 0x13;
    pub const NOTICE_INDEX: u8 = 0x14;
    pub const NOTICE_OUTBOX: u8 = 0x15;
    pub const CLAIM: u8 = 0x16;
    pub const CLAIM_INDEX: u8 = 0x17;
    pub const CLAIM_BY_ID: u8 = 0x18;
    pub const DECISION_FEED: u8 = 0x19;
    pub const PERSON_ENTITIES: u8 = 0x1A;
    pub const OVERLAPS: u8 = 0x1B;
    pub const OVERLAP_FEED: u8 = 0x1C;
    pub const INSURED_INDEX: u8 = 0x20;
    pub const SERIAL_INDEX: u8 = 0x21;
    pub const DEAD_LETTER: u8 = 0x30;
}

/// The kinds of bitemporal records a person has.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum EntityKind {
    Qualification = 1,
    Certificate = 2,
    Subsidy = 3,
    CardLink = 4,
}

impl EntityKind {
    pub fn from_byte(b: u8) -> Option<EntityKind> {
        Some(match b {
            1 => EntityKind::Qualification,
            2 => EntityKind::Certificate,
            3 => EntityKind::Subsidy,
            4 => EntityKind::CardLink,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Qualification => "qualification",
            EntityKind::Certificate => "certificate",
            EntityKind::Subsidy => "subsidy",
            EntityKind::CardLink => "card_link",
        }
    }
}

/// A view key. Only this module builds one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewKey(Vec<u8>);

impl ViewKey {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    /// Wraps bytes read back from the store (iteration).
    pub fn from_stored(bytes: &[u8]) -> ViewKey {
        ViewKey(bytes.to_vec())
    }
}

struct Builder(Vec<u8>);

impl Builder {
    fn new(view: u8) -> Builder {
        let mut v = Vec::with_capacity(48);
        v.push(view);
        Builder(v)
    }
    fn str(mut self, s: &str) -> Builder {
        debug_assert!(!s.as_bytes().contains(&0), "key strings never contain NUL");
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(0);
        self
    }
    fn u8(mut self, b: u8) -> Builder {
        self.0.push(b);
        self
    }
    fn u32(mut self, n: u32) -> Builder {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn u64(mut self, n: u64) -> Builder {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
    fn day(mut self, d: Day) -> Builder {
        self.0
            .extend_from_slice(&((d.days_since_epoch() as u32) ^ 0x8000_0000).to_be_bytes());
        self
    }
    fn time(mut self, t: RecordTime) -> Builder {
        self.0
            .extend_from_slice(&((t.micros() as u64) ^ 0x8000_0000_0000_0000).to_be_bytes());
        self
    }
    fn uuid(mut self, u: Uuid) -> Builder {
        self.0.extend_from_slice(u.as_bytes());
        self
    }
    fn done(self) -> ViewKey {
        ViewKey(self.0)
    }
}

pub fn meta_format() -> ViewKey {
    Builder::new(view::META).str("key_format_version").done()
}

/// The name of the log the views were built from (see
/// `EventLog::identity`); not part of the views' content.
pub fn meta_log_identity() -> ViewKey {
    Builder::new(view::META).str("log_identity").done()
}

/// The next offset to consume of a log partition.
pub fn offset(partition: Partition) -> ViewKey {
    Builder::new(view::OFFSETS).u32(partition).done()
}

pub fn offsets_prefix() -> ViewKey {
    Builder::new(view::OFFSETS).done()
}

/// Parses the partition out of an [`offset`] key.
pub fn decode_offset_key(key: &[u8]) -> Option<Partition> {
    (key.len() == 5 && key[0] == view::OFFSETS)
        .then(|| u32::from_be_bytes(key[1..5].try_into().unwrap()))
}

/// The record time of the last record applied from a partition.
pub fn last_record_time(partition: Partition) -> ViewKey {
    Builder::new(view::LAST_RECORD_TIME).u32(partition).done()
}

/// Marks an event id as applied (idempotence), per partition.
pub fn applied(partition: Partition, event_id: Uuid) -> ViewKey {
    Builder::new(view::APPLIED)
        .u32(partition)
        .uuid(event_id)
        .done()
}

/// One bitemporal version row of an entity.
pub fn version(
    link: &str,
    kind: EntityKind,
    entity: &str,
    valid_from: Day,
    recorded_from: RecordTime,
    offset: Offset,
) -> ViewKey {
    Builder::new(view::VERSION)
        .str(link)
        .u8(kind as u8)
        .str(entity)
        .day(valid_from)
        .time(recorded_from)
        .u64(offset)
        .done()
}

/// Every version row of every person.
pub fn versions_all() -> ViewKey {
    Builder::new(view::VERSION).done()
}

/// The person and entity kind of a version row's key.
pub fn decode_version_key(key: &[u8]) -> Option<(&[u8], EntityKind)> {
    let rest = key.strip_prefix(&[view::VERSION])?;
    let end = rest.iter().position(|&b| b == 0)?;
    let kind = EntityKind::from_byte(*rest.get(end + 1)?)?;
    Some((&rest[..end], kind))
}

/// All version rows of a person.
pub fn versions_of_person(link: &str) -> ViewKey {
    Builder::new(view::VERSION).str(link).done()
}

/// The current facts of an entity.
pub fn entity(link: &str, kind: EntityKind, entity: &str) -> ViewKey {
    Builder::new(view::ENTITY)
        .str(link)
        .u8(kind as u8)
        .str(entity)
        .done()
}

/// Which entity an event of a person touched (for retraction by event id).
pub fn event(link: &str, event_id: Uuid) -> ViewKey {
    Builder::new(view::EVENT).str(link).uuid(event_id).done()
}

pub fn link_request(link: &str, request_id: &str) -> ViewKey {
    Builder::new(view::LINK_REQUEST)
        .str(link)
        .str(request_id)
        .done()
}

/// Every link request of a person (prefix of [`link_request`]).
pub fn link_requests_of(link: &str) -> ViewKey {
    Builder::new(view::LINK_REQUEST).str(link).done()
}

/// Request id → person, for looking a request up by its id alone. The
/// person is in the key so two partitions never write the same key.
pub fn request_index(request_id: &str, link: &str) -> ViewKey {
    Builder::new(view::NOTICE_INDEX)
        .str(request_id)
        .str(link)
        .done()
}

pub fn request_index_prefix(request_id: &str) -> ViewKey {
    Builder::new(view::NOTICE_INDEX).str(request_id).done()
}

/// The notices outbox: a request with notice or erasure work left (request
/// id, person); deleted when none is left.
pub fn notice_outbox(request_id: &str, link: &str) -> ViewKey {
    Builder::new(view::NOTICE_OUTBOX)
        .str(request_id)
        .str(link)
        .done()
}

pub fn notice_outbox_prefix() -> ViewKey {
    Builder::new(view::NOTICE_OUTBOX).done()
}

/// The request id and person of an outbox key.
pub fn decode_notice_outbox(key: &[u8]) -> Option<(String, String)> {
    let rest = key.strip_prefix(&[view::NOTICE_OUTBOX])?;
    let mut parts = rest.split(|b| *b == 0);
    let request = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let link = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    Some((request, link))
}

/// A registered claim of a person, with its decisions.
pub fn claim(link: &str, claim_id: &str) -> ViewKey {
    Builder::new(view::CLAIM).str(link).str(claim_id).done()
}

/// A person's claims by service month (one value per person).
pub fn claim_index(link: &str) -> ViewKey {
    Builder::new(view::CLAIM_INDEX).str(link).done()
}

/// Claim id → person (the person is in the key: no two partitions write it).
pub fn claim_by_id(claim_id: &str, link: &str) -> ViewKey {
    Builder::new(view::CLAIM_BY_ID)
        .str(claim_id)
        .str(link)
        .done()
}

pub fn claim_by_id_prefix(claim_id: &str) -> ViewKey {
    Builder::new(view::CLAIM_BY_ID).str(claim_id).done()
}

/// The decision feed of a payer organisation, in (record time, partition,
/// offset, claim) order: the cursor a payer keeps is the key's tail.
pub fn decision_feed(
    payer: u8,
    record_time: RecordTime,
    partition: Partition,
    offset: Offset,
    claim_id: &str,
) -> ViewKey {
    Builder::new(view::DECISION_FEED)
        .u8(payer)
        .time(record_time)
        .u32(partition)
        .u64(offset)
        .str(claim_id)
        .done()
}

/// The feed of `payer` from (record time, partition, offset) on.
pub fn decision_feed_from(
    payer: u8,
    record_time: RecordTime,
    partition: Partition,
    offset: Offset,
) -> ViewKey {
    Builder::new(view::DECISION_FEED)
        .u8(payer)
        .time(record_time)
        .u32(partition)
        .u64(offset)
        .done()
}

pub fn decision_feed_prefix(payer: u8) -> ViewKey {
    Builder::new(view::DECISION_FEED).u8(payer).done()
}

/// A person's overlap notices, open and cleared (one value per person).
pub fn overlaps(link: &str) -> ViewKey {
    Builder::new(view::OVERLAPS).str(link).done()
}

/// The overlap feed of a 国保 insurer, in (record time, partition, offset,
/// person, employee qualification) order.
pub fn overlap_feed(
    insurer: &str,
    record_time: RecordTime,
    partition: Partition,
    offset: Offset,
    tail: &str,
) -> ViewKey {
    Builder::new(view::OVERLAP_FEED)
        .str(insurer)
        .time(record_time)
        .u32(partition)
        .u64(offset)
        .str(tail)
        .done()
}

pub fn overlap_feed_prefix(insurer: Option<&str>) -> ViewKey {
    match insurer {
        Some(i) => Builder::new(view::OVERLAP_FEED).str(i).done(),
        None => Builder::new(view::OVERLAP_FEED).done(),
    }
}

/// The entities a person has (one value per person).
pub fn person_entities(link: &str) -> ViewKey {
    Builder::new(view::PERSON_ENTITIES).str(link).done()
}

/// Candidate index: individual insured number → person.
pub fn insured_index(index_key: &str, link: &str) -> ViewKey {
    Builder::new(view::INSURED_INDEX)
        .str(index_key)
        .str(link)
        .done()
}

pub fn insured_index_prefix(index_key: &str) -> ViewKey {
    Builder::new(view::INSURED_INDEX).str(index_key).done()
}

/// Candidate index: card serial → person.
pub fn serial_index(serial: &str, link: &str) -> ViewKey {
    Builder::new(view::SERIAL_INDEX)
        .str(serial)
        .str(link)
        .done()
}

pub fn serial_index_prefix(serial: &str) -> ViewKey {
    Builder::new(view::SERIAL_INDEX).str(serial).done()
}

/// The last component of an index key: the person's link number.
pub fn link_of_index_key(key: &[u8], prefix: &ViewKey) -> Option<String> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    let rest = rest.strip_suffix(&[0])?;
    String::from_utf8(rest.to_vec()).ok()
}

pub fn dead_letter(partition: Partition, offset: Offset) -> ViewKey {
    Builder::new(view::DEAD_LETTER)
        .u32(partition)
        .u64(offset)
        .done()
}

pub fn dead_letters_prefix() -> ViewKey {
    Builder::new(view::DEAD_LETTER).done()
}

/// The key just past every key starting with `prefix` (for range bounds).
pub fn prefix_end(prefix: &ViewKey) -> Option<Vec<u8>> {
    let mut end = prefix.0.clone();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(n: i32) -> Day {
        Day::from_days_since_epoch(n).unwrap()
    }

    proptest! {
        #[test]
        fn version_key_order_is_logical_order(
            a in (-100_000i32..100_000, any::<i64>(), any::<u64>()),
            b in (-100_000i32..100_000, any::<i64>(), any::<u64>()),
        ) {
            let ka = version("L1", EntityKind::Qualification, "Q1", day(a.0), RecordTime::from_micros(a.1), a.2);
            let kb = version("L1", EntityKind::Qualification, "Q1", day(b.0), RecordTime::from_micros(b.1), b.2);
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }

        #[test]
        fn string_components_sort_like_strings(a in "[A-Za-z0-9._:-]{1,12}", b in "[A-Za-z0-9._:-]{1,12}") {
            let ka = entity(&a, EntityKind::Subsidy, "x");
            let kb = entity(&b, EntityKind::Subsidy, "x");
            prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
        }
    }

    #[test]
    fn prefixes_contain_their_keys_and_nothing_else() {
        let p = versions_of_person("L1");
        let k = version(
            "L1",
            EntityKind::Certificate,
            "C",
            day(0),
            RecordTime::from_micros(0),
            0,
        );
        let other = version(
            "L10",
            EntityKind::Certificate,
            "C",
            day(0),
            RecordTime::from_micros(0),
            0,
        );
        assert!(k.as_bytes().starts_with(p.as_bytes()));
        assert!(!other.as_bytes().starts_with(p.as_bytes()));
        let end = prefix_end(&p).unwrap();
        assert!(k.as_bytes() < end.as_slice());
    }

    #[test]
    fn index_keys_give_back_the_link() {
        let prefix = insured_index_prefix("01130012\u{1f}x");
        let key = insured_index("01130012\u{1f}x", "L-42");
        assert_eq!(
            link_of_index_key(key.as_bytes(), &prefix).as_deref(),
            Some("L-42")
        );
        assert_eq!(decode_offset_key(offset(7).as_bytes()), Some(7));
    }
}
