//! What the views store: version rows, entity facts, dead letters.
//!
//! Values are postcard-encoded serde structs; their layout is covered by
//! [`KEY_FORMAT_VERSION`](crate::keys::KEY_FORMAT_VERSION) like the keys.
//! Nothing here reads a clock: every time comes from the log, so a rebuild
//! writes the same bytes.

use ledger::domain::*;
use ledger::event::{NoticeFailure, Payload, UnlinkReason};
use ledger::log::{Offset, Partition};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::keys::EntityKind;

/// The log record that made (or closed) a version: id, source, position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventRef {
    pub event_id: Uuid,
    pub source: PublisherId,
    pub partition: Partition,
    pub offset: Offset,
    pub record_time: RecordTime,
}

/// One event in an entity's current facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    pub by: EventRef,
    pub payload: Payload,
}

/// A segment of an entity's current valid-time timeline, with when it was
/// recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub valid_from: Day,
    pub valid_to: Option<Day>,
    pub snapshot: Snapshot,
    pub recorded_from: RecordTime,
    pub created_by: EventRef,
}

/// An entity's current state: the events that hold (in log order) and the
/// timeline they give.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityState {
    pub facts: Vec<Fact>,
    pub current: Vec<Segment>,
}

/// Which entity an event touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRef {
    pub kind: EntityKind,
    pub id: String,
}

/// A bitemporal version row: the entity's attributes on `[valid_from,
/// valid_to)`, as the ledger knew them on `[recorded_from, recorded_to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRow {
    pub valid_from: Day,
    pub valid_to: Option<Day>,
    pub recorded_from: RecordTime,
    pub recorded_to: Option<RecordTime>,
    pub created_by: EventRef,
    pub closed_by: Option<EventRef>,
    pub snapshot: Snapshot,
}

impl VersionRow {
    /// Valid on `day`.
    pub fn valid_on(&self, day: Day) -> bool {
        self.valid_from <= day && self.valid_to.is_none_or(|to| day < to)
    }

    /// Known to the ledger at `as_of` (`None`: now).
    pub fn known_at(&self, as_of: Option<RecordTime>) -> bool {
        match as_of {
            None => self.recorded_to.is_none(),
            Some(t) => self.recorded_from <= t && self.recorded_to.is_none_or(|to| t < to),
        }
    }
}

/// The attributes of an entity over one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Snapshot {
    Qualification(QualificationSnapshot),
    Certificate(CertificateSnapshot),
    Subsidy(SubsidySnapshot),
    CardLink(CardLinkSnapshot),
}

impl Snapshot {
    pub fn kind(&self) -> EntityKind {
        match self {
            Snapshot::Qualification(_) => EntityKind::Qualification,
            Snapshot::Certificate(_) => EntityKind::Certificate,
            Snapshot::Subsidy(_) => EntityKind::Subsidy,
            Snapshot::CardLink(_) => EntityKind::CardLink,
        }
    }
}

/// 資格: a qualification's attributes over a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualificationSnapshot {
    pub qualification_id: QualificationId,
    pub insurer_number: InsurerNumber,
    pub insurer_kind: InsurerKind,
    pub card_symbol: Option<CardSymbol>,
    pub card_number: CardNumber,
    pub branch: Option<Branch>,
    pub relationship: Relationship,
    pub name: NameKanji,
    pub name_kana: NameKana,
    pub sex: Sex,
    pub birth_date: Day,
    pub card_kind: CardKind,
    pub copay_percent: CopayRate,
    pub card_valid_until: Option<Day>,
    pub special_statuses: Vec<SpecialStatus>,
    /// 資格取得年月日
    pub acquired_on: Day,
    /// 資格喪失年月日 (first day not covered), as known.
    pub lost_on: Option<Day>,
    pub loss_reason: Option<LossReason>,
}

impl QualificationSnapshot {
    pub fn insured_number(&self) -> Option<IndividualInsuredNumber> {
        IndividualInsuredNumber::new(
            self.insurer_number.clone(),
            self.card_symbol.clone(),
            self.card_number.clone(),
            self.branch.clone(),
        )
        .ok()
    }
}

/// 限度額適用認定証, 特定疾病療養受療証, 高齢受給者証 …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CertificateSnapshot {
    pub certificate_id: CertificateId,
    pub qualification_id: QualificationId,
    pub kind: CertificateKind,
    pub valid_from: Day,
    pub valid_until: Option<Day>,
    pub ended_on: Option<Day>,
    pub limit_category: Option<LimitCategory>,
    pub disease: Option<SpecificDisease>,
    pub monthly_cap_yen: Option<u32>,
    pub copay_percent: Option<CopayRate>,
}

/// 公費負担・地方単独事業 over a segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubsidySnapshot {
    pub subsidy_id: SubsidyId,
    pub municipality: MunicipalityCode,
    pub programme: SubsidyProgramme,
    pub payer_number: PublicExpensePayerNumber,
    pub recipient_number: RecipientNumber,
    pub card_serial: Option<CardSerial>,
    pub copay_percent: Option<u8>,
    pub copay_amount_yen: Option<u32>,
    pub valid_from: Day,
    pub valid_until: Option<Day>,
    pub ended_on: Option<Day>,
    pub method: SubsidyMethod,
    pub remarks: Option<String>,
}

/// A card serial linked to the person over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CardLinkSnapshot {
    pub card_serial: CardSerial,
    pub insurer_number: InsurerNumber,
    pub card_symbol: Option<CardSymbol>,
    pub card_number: CardNumber,
    pub branch: Option<Branch>,
    pub request_id: Option<RequestId>,
    pub linked_on: Day,
    pub unlinked_on: Option<Day>,
    pub unlink_reason: Option<UnlinkReason>,
}

/// Where a card-link request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkRequestStatus {
    pub request_id: RequestId,
    pub card_serial: CardSerial,
    pub notice_requested: bool,
    pub requested_by: EventRef,
    pub outcome: Option<LinkOutcome>,
    /// The key sealing the holder's contact address while it may exist;
    /// `None` when no address was given or once it is erased.
    pub contact_key: Option<Uuid>,
    /// The `ContactErased` that recorded the key's destruction.
    pub contact_erased_by: Option<EventRef>,
    /// The completion notice, once the link completed and one was asked for.
    pub notice: Option<NoticeStatus>,
}

impl LinkRequestStatus {
    /// Whether the notifier has work left: a notice to publish or e-mail,
    /// or a contact key to destroy once nothing needs it.
    pub fn has_work(&self) -> bool {
        let notice_open = self.notice.as_ref().is_some_and(|n| !n.is_settled());
        let decided = self.outcome.is_some();
        notice_open || (decided && self.contact_key.is_some())
    }
}

/// Where a link-completion notice stands (the notices outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoticeStatus {
    /// The notice's id on the notices topic: the `CardLinked` event's id.
    pub notice_id: Uuid,
    pub state: NoticeState,
    /// An e-mail is due too (the holder gave an address).
    pub email: bool,
    /// E-mail attempts so far.
    pub attempts: u32,
    /// When the next e-mail attempt is due (UTC), after a failed one.
    pub retry_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The e-mail's `Message-ID`, once an attempt started.
    pub message_id: Option<String>,
    /// The relay's reply to the delivered e-mail.
    pub relay_reply: Option<String>,
    /// The last failed attempt's failure and detail.
    pub last_failure: Option<(NoticeFailure, String)>,
    /// Every event that changed the notice, oldest first (provenance): the
    /// `CardLinked` that made it due, then its progress.
    pub trail: Vec<EventRef>,
}

impl NoticeStatus {
    /// Nothing more will happen to it.
    pub fn is_settled(&self) -> bool {
        match self.state {
            NoticeState::Delivered | NoticeState::Parked => true,
            NoticeState::Published => !self.email,
            NoticeState::Pending | NoticeState::Sending => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    /// Due; not yet on the notices topic.
    Pending,
    /// On the notices topic; settled unless an e-mail is due.
    Published,
    /// An e-mail attempt was handed to the relay; no outcome recorded yet.
    Sending,
    /// The relay accepted the e-mail.
    Delivered,
    /// Given up, with the last failure as the reason.
    Parked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkOutcome {
    Linked {
        by: EventRef,
    },
    Rejected {
        by: EventRef,
        reason: ledger::event::LinkRejectionReason,
    },
}

/// An event that could not be applied, kept with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub partition: Partition,
    pub offset: Offset,
    pub record_time: RecordTime,
    pub event_id: Uuid,
    /// The event type, when the record could be decoded that far.
    pub event_type: Option<String>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    pub reason: String,
}
