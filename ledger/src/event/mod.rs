//! The event catalogue: every fact the ledger records, in the past tense.
//!
//! Each event is an [`Envelope`] (id, type, source, person, producer's clock)
//! and a [`Payload`]. The wire contract is one Avro record per event type in
//! `schemas/` ([`avro`]); the JSON form used by the HTTP API and the
//! `publish` command mirrors it field for field, with a top-level `type`
//! ([`json`]). Both decoders end in [`Event::validate`], so an event is held
//! to the same rules whichever way it arrives.
//!
//! Events carry no record time: the log stamps it. They must not be mutated
//! after publication; a mistake is withdrawn by [`QualificationRetracted`].

pub mod avro;
pub mod examples;
pub mod json;
pub mod registry;
mod validate;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::*;
use crate::error::FieldError;

/// What every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// UUIDv7 chosen by the producer; a re-sent event keeps its id.
    pub event_id: Uuid,
    /// Publisher id: the insurer or system that published the event.
    pub source: PublisherId,
    /// 紐付番号: the person the event is about; the partitioning key.
    pub link: LinkNumber,
    /// The producer's clock when it made the event. Not record time.
    pub produced_at: DateTime<Utc>,
}

/// An event: envelope and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub envelope: Envelope,
    pub payload: Payload,
}

macro_rules! event_types {
    ($($name:ident),+ $(,)?) => {
        /// The payload of an event, one variant per event type.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Payload {
            $($name($name),)+
        }

        /// The event types, named as their Avro records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventType {
            $($name,)+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$name,)+];

            /// The Avro record's simple name, which is also the JSON `type`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventType::$name => stringify!($name),)+
                }
            }

            pub fn from_name(name: &str) -> Option<EventType> {
                match name {
                    $(stringify!($name) => Some(EventType::$name),)+
                    _ => None,
                }
            }
        }

        impl Payload {
            pub fn event_type(&self) -> EventType {
                match self {
                    $(Payload::$name(_) => EventType::$name,)+
                }
            }
        }

        $(impl From<$name> for Payload {
            fn from(p: $name) -> Payload {
                Payload::$name(p)
            }
        })+
    };
}

event_types!(
    QualificationAcquired,
    QualificationChanged,
    QualificationLost,
    QualificationRetracted,
    CertificateIssued,
    CertificateEnded,
    CardLinkRequested,
    CardLinked,
    CardLinkRejected,
    CardUnlinked,
    SubsidyGranted,
    SubsidyChanged,
    SubsidyEnded,
    NoticePublished,
    NoticeSendStarted,
    NoticeDelivered,
    NoticeDeliveryFailed,
    ContactErased,
    CertificateChanged,
    ClaimSubmitted,
    ClaimWithdrawn,
);

impl EventType {
    /// The types only the ledger's notifier writes: the progress of a
    /// link-completion notice. Publishers never send them.
    pub fn is_notice_progress(self) -> bool {
        matches!(
            self,
            EventType::NoticePublished
                | EventType::NoticeSendStarted
                | EventType::NoticeDelivered
                | EventType::NoticeDeliveryFailed
                | EventType::ContactErased
        )
    }
}

impl EventType {
    /// The types payers write: claims they registered.
    pub fn is_claim(self) -> bool {
        matches!(self, EventType::ClaimSubmitted | EventType::ClaimWithdrawn)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Event {
    /// A new event made now by `source` about person `link`: a fresh
    /// UUIDv7 and the clock as the producer's time.
    pub fn new(source: &PublisherId, link: &LinkNumber, payload: Payload) -> Event {
        Event {
            envelope: Envelope {
                event_id: Uuid::now_v7(),
                source: source.clone(),
                link: link.clone(),
                produced_at: Utc::now(),
            },
            payload,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// Cross-field rules that single fields cannot check (the card kind an
    /// insurer may issue, the parts of an individual insured number, …).
    pub fn validate(&self) -> Result<(), FieldError> {
        validate::event(self)
    }
}

/// The individual insured number's parts, as they appear flat in events.
fn insured_number(
    insurer_number: &InsurerNumber,
    card_symbol: &Option<CardSymbol>,
    card_number: &CardNumber,
    branch: &Option<Branch>,
) -> Result<IndividualInsuredNumber, FieldError> {
    IndividualInsuredNumber::new(
        insurer_number.clone(),
        card_symbol.clone(),
        card_number.clone(),
        branch.clone(),
    )
}

/// 資格取得: a person acquired a qualification (enrolment) with an insurer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualificationAcquired {
    /// The qualification's own identity; a re-join is a new qualification.
    pub qualification_id: QualificationId,
    /// 保険者番号
    pub insurer_number: InsurerNumber,
    /// 記号 (absent on 後期高齢者 cards)
    #[serde(default)]
    pub card_symbol: Option<CardSymbol>,
    /// 番号
    pub card_number: CardNumber,
    /// 枝番 (absent on 後期高齢者 cards)
    #[serde(default)]
    pub branch: Option<Branch>,
    /// 本人/家族
    pub relationship: Relationship,
    /// 氏名
    pub name: NameKanji,
    /// カナ氏名
    pub name_kana: NameKana,
    pub sex: Sex,
    /// 生年月日
    pub birth_date: Day,
    /// 資格取得年月日: first day covered.
    pub acquired_on: Day,
    pub card_kind: CardKind,
    /// 負担割合
    #[serde(rename = "copay_percent")]
    pub copay: CopayRate,
    /// 有効期限: last day the card is valid, where it is time-limited.
    #[serde(default)]
    pub card_valid_until: Option<Day>,
    /// マル学, 住所地特例
    #[serde(default)]
    pub special_statuses: Vec<SpecialStatus>,
}

impl QualificationAcquired {
    pub fn insured_number(&self) -> Result<IndividualInsuredNumber, FieldError> {
        insured_number(
            &self.insurer_number,
            &self.card_symbol,
            &self.card_number,
            &self.branch,
        )
    }
}

/// 資格変更: attributes change from `effective_on` on; `None` is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualificationChanged {
    pub qualification_id: QualificationId,
    /// First day the new attributes hold.
    pub effective_on: Day,
    #[serde(default)]
    pub card_symbol: Option<CardSymbol>,
    #[serde(default)]
    pub card_number: Option<CardNumber>,
    #[serde(default)]
    pub branch: Option<Branch>,
    #[serde(default)]
    pub relationship: Option<Relationship>,
    #[serde(default)]
    pub name: Option<NameKanji>,
    #[serde(default)]
    pub name_kana: Option<NameKana>,
    #[serde(default)]
    pub card_kind: Option<CardKind>,
    #[serde(default, rename = "copay_percent")]
    pub copay: Option<CopayRate>,
    #[serde(default)]
    pub card_valid_until: Option<Day>,
    #[serde(default)]
    pub special_statuses: Option<Vec<SpecialStatus>>,
}

impl QualificationChanged {
    /// A change of nothing yet: set the attributes that change.
    pub fn effective(qualification_id: QualificationId, effective_on: Day) -> QualificationChanged {
        QualificationChanged {
            qualification_id,
            effective_on,
            card_symbol: None,
            card_number: None,
            branch: None,
            relationship: None,
            name: None,
            name_kana: None,
            card_kind: None,
            copay: None,
            card_valid_until: None,
            special_statuses: None,
        }
    }
}

/// 資格喪失: coverage ends the day before `lost_on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualificationLost {
    pub qualification_id: QualificationId,
    /// 資格喪失年月日: first day not covered.
    pub lost_on: Day,
    /// 資格喪失事由
    pub reason: LossReason,
}

/// A record made in error is withdrawn: one event, or a whole qualification.
/// Exactly one of the two targets is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualificationRetracted {
    #[serde(default)]
    pub retracted_event_id: Option<Uuid>,
    #[serde(default)]
    pub retracted_qualification_id: Option<QualificationId>,
    /// Why, in a few words (no personal data).
    pub reason: String,
}

/// A certificate used together with a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateIssued {
    pub certificate_id: CertificateId,
    pub qualification_id: QualificationId,
    pub kind: CertificateKind,
    /// First day valid.
    pub valid_from: Day,
    /// 有効期限: last day valid.
    #[serde(default)]
    pub valid_until: Option<Day>,
    /// 適用区分 (限度額適用 certificates).
    #[serde(default)]
    pub limit_category: Option<LimitCategory>,
    /// 特定疾病
    #[serde(default)]
    pub disease: Option<SpecificDisease>,
    /// 特定疾病: 10,000 or 20,000 yen a month.
    #[serde(default)]
    pub monthly_cap_yen: Option<u32>,
    /// 高齢受給者証: the copay rate it carries.
    #[serde(default, rename = "copay_percent")]
    pub copay: Option<CopayRate>,
}

/// A certificate's terms change from `effective_on` on (a new 適用区分 after
/// an income reassessment, a new copay on a 高齢受給者証, a later expiry);
/// `None` is unchanged. The kind and the disease never change: another
/// disease is another certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateChanged {
    pub certificate_id: CertificateId,
    /// First day the new terms hold.
    pub effective_on: Day,
    #[serde(default)]
    pub limit_category: Option<LimitCategory>,
    #[serde(default)]
    pub monthly_cap_yen: Option<u32>,
    #[serde(default, rename = "copay_percent")]
    pub copay: Option<CopayRate>,
    /// 有効期限: the new last day valid (of the whole certificate).
    #[serde(default)]
    pub valid_until: Option<Day>,
}

/// A certificate ends before its expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateEnded {
    pub certificate_id: CertificateId,
    /// First day not valid.
    pub ended_on: Day,
}

/// 初回紐づけ: the card holder applied to link the card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardLinkRequested {
    pub request_id: RequestId,
    pub card_serial: CardSerial,
    pub insurer_number: InsurerNumber,
    #[serde(default)]
    pub card_symbol: Option<CardSymbol>,
    pub card_number: CardNumber,
    #[serde(default)]
    pub branch: Option<Branch>,
    pub notice_requested: bool,
    /// The holder's e-mail address for the notice, sealed under a key of
    /// its own (schema v2): never in the clear in the log.
    #[serde(default)]
    pub contact: Option<SealedContact>,
}

impl CardLinkRequested {
    pub fn insured_number(&self) -> Result<IndividualInsuredNumber, FieldError> {
        insured_number(
            &self.insurer_number,
            &self.card_symbol,
            &self.card_number,
            &self.branch,
        )
    }
}

/// The card serial is linked to the person's qualification with this
/// individual insured number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardLinked {
    #[serde(default)]
    pub request_id: Option<RequestId>,
    pub card_serial: CardSerial,
    pub insurer_number: InsurerNumber,
    #[serde(default)]
    pub card_symbol: Option<CardSymbol>,
    pub card_number: CardNumber,
    #[serde(default)]
    pub branch: Option<Branch>,
    /// Date (Japan) the link took effect.
    pub linked_on: Day,
}

impl CardLinked {
    pub fn insured_number(&self) -> Result<IndividualInsuredNumber, FieldError> {
        insured_number(
            &self.insurer_number,
            &self.card_symbol,
            &self.card_number,
            &self.branch,
        )
    }
}

/// Why a link request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinkRejectionReason {
    /// No qualification carries the individual insured number.
    NoSuchQualification,
    /// The qualification with that number was lost by the request date.
    QualificationLost,
    /// The certificate is untrusted, malformed or not yet valid.
    CertificateInvalid,
    /// The serial is linked to another person.
    SerialLinkedElsewhere,
    Other,
    /// The certificate's validity ended before the request (schema v2).
    CertificateExpired,
    /// The certificate is on the configured CRL (schema v2).
    CertificateRevoked,
}

/// A link request refused, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardLinkRejected {
    pub request_id: RequestId,
    pub card_serial: CardSerial,
    pub reason: LinkRejectionReason,
}

/// Why a serial stopped identifying the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnlinkReason {
    CardRenewed,
    CardReissued,
    CertificateRevoked,
    CardLost,
    HolderRequest,
    Other,
}

/// A card serial no longer identifies the person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardUnlinked {
    pub card_serial: CardSerial,
    /// First day the serial is not linked.
    pub unlinked_on: Day,
    pub reason: UnlinkReason,
}

/// 公費負担・地方単独事業: a municipality's medical-expense subsidy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyGranted {
    pub subsidy_id: SubsidyId,
    /// 地方公共団体コード
    pub municipality: MunicipalityCode,
    pub programme: SubsidyProgramme,
    /// 公費負担者番号
    pub payer_number: PublicExpensePayerNumber,
    /// 受給者番号
    pub recipient_number: RecipientNumber,
    /// The linked card the subsidy is tied to.
    #[serde(default)]
    pub card_serial: Option<CardSerial>,
    /// The holder's copay under the subsidy, 0..=30 percent.
    #[serde(default)]
    pub copay_percent: Option<u8>,
    /// A fixed copay amount where the programme uses one.
    #[serde(default)]
    pub copay_amount_yen: Option<u32>,
    pub valid_from: Day,
    /// Last day valid.
    #[serde(default)]
    pub valid_until: Option<Day>,
    /// 現物給付 or 自動償還
    pub method: SubsidyMethod,
    /// 特記事項: exceptional rules.
    #[serde(default)]
    pub remarks: Option<String>,
}

/// Subsidy terms change from `effective_on` on; `None` is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyChanged {
    pub subsidy_id: SubsidyId,
    pub effective_on: Day,
    #[serde(default)]
    pub recipient_number: Option<RecipientNumber>,
    #[serde(default)]
    pub copay_percent: Option<u8>,
    #[serde(default)]
    pub copay_amount_yen: Option<u32>,
    #[serde(default)]
    pub valid_until: Option<Day>,
    #[serde(default)]
    pub method: Option<SubsidyMethod>,
    #[serde(default)]
    pub remarks: Option<String>,
}

/// A subsidy ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubsidyEnded {
    pub subsidy_id: SubsidyId,
    /// First day not valid.
    pub ended_on: Day,
}

/// The link-completion notice of a request is on the notices topic (or the
/// embedded notices log), where the holder's portal inbox picks it up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticePublished {
    pub request_id: RequestId,
    /// The notice's id on the notices topic; consumers de-duplicate by it.
    pub notice_id: Uuid,
}

/// Write-ahead record of an e-mail attempt: the notice is about to be handed
/// to the SMTP relay. An attempt with no outcome after it was interrupted by
/// a crash and is never retried blindly (it may have been delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeSendStarted {
    pub request_id: RequestId,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The e-mail's `Message-ID`, the same on every attempt.
    pub message_id: String,
}

/// The SMTP relay accepted the notice e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeDelivered {
    pub request_id: RequestId,
    pub attempt: u32,
    /// The relay's reply (addresses removed).
    pub relay_reply: String,
}

/// Why an e-mail attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NoticeFailure {
    /// The relay could not be reached or answered 4xx: worth retrying.
    TemporaryFailure,
    /// The relay answered 5xx: retrying would not help.
    PermanentFailure,
    /// The process stopped between handing the e-mail to the relay and
    /// recording the reply: it may have been delivered, so it is not resent.
    OutcomeUnknown,
    /// The sealed address cannot be opened (its key is gone or wrong).
    ContactUnavailable,
}

/// An e-mail attempt failed. With `retry_at` the notice is tried again then;
/// without, it is parked for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeDeliveryFailed {
    pub request_id: RequestId,
    pub attempt: u32,
    pub failure: NoticeFailure,
    /// What went wrong, without personal data.
    pub detail: String,
    /// When to try again (UTC); `None`: parked.
    #[serde(default)]
    pub retry_at: Option<DateTime<Utc>>,
}

/// The key that sealed the request's contact address was destroyed: the
/// address is unrecoverable from here on (crypto-shredding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactErased {
    pub request_id: RequestId,
    pub key_id: Uuid,
}

/// A payer registered a claim (レセプト) it received, so the ledger can check
/// it against the qualifications of its service days, now and whenever they
/// change. Logged in the patient's partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimSubmitted {
    pub claim_id: ClaimId,
    /// 医療機関コード (10 digits).
    pub institution: InstitutionCode,
    pub kind: ClaimKind,
    /// 審査支払機関 the claim was sent to.
    pub payer: PayerOrganisation,
    /// 保険者番号 billed.
    pub billed_insurer: InsurerNumber,
    /// 記号 of the card shown.
    #[serde(default)]
    pub card_symbol: Option<CardSymbol>,
    /// 番号 of the card shown (absent when identified by card serial only).
    #[serde(default)]
    pub card_number: Option<CardNumber>,
    #[serde(default)]
    pub branch: Option<Branch>,
    /// シリアル of the My Number card, when the patient was identified by it.
    #[serde(default)]
    pub card_serial: Option<CardSerial>,
    /// 診療年月.
    pub service_month: ServiceMonth,
    /// 診療日: days of the month, increasing.
    pub service_days: Vec<u8>,
    /// 適用区分 the claim applied (限度額適用).
    #[serde(default)]
    pub limit_category: Option<LimitCategory>,
    /// 特定疾病 the claim applied.
    #[serde(default)]
    pub specific_disease: Option<SpecificDisease>,
    /// 公費負担者番号 the claim billed.
    #[serde(default)]
    pub public_expense_payer: Option<PublicExpensePayerNumber>,
    /// 公費受給者番号.
    #[serde(default)]
    pub recipient_number: Option<RecipientNumber>,
    /// 合計点数.
    pub total_points: u32,
}

impl ClaimSubmitted {
    /// The individual insured number of the card shown, if the claim has one.
    pub fn insured_number(&self) -> Option<Result<IndividualInsuredNumber, FieldError>> {
        self.card_number.as_ref().map(|number| {
            insured_number(
                &self.billed_insurer,
                &self.card_symbol,
                number,
                &self.branch,
            )
        })
    }

    /// The service days as dates.
    pub fn days(&self) -> Vec<Day> {
        self.service_days
            .iter()
            .filter_map(|d| self.service_month.day(*d))
            .collect()
    }
}

/// The payer withdrew a claim (returned to the institution, or registered
/// by mistake): it is no longer checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimWithdrawn {
    pub claim_id: ClaimId,
    /// Why, in a few words (no personal data).
    pub reason: String,
}
