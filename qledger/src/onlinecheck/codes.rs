//! The online check's code values (業務コード, OQSCD…) and formats, from the
//! ledger's domain types. One function per element; nothing else here.
//!
//! The tables follow the clinic-system codebases that implement the format
//! (the official 別紙5-1 was not at hand); where they disagree the majority
//! is taken. The error codes of 別紙6-1 were not found anywhere public:
//! [`ErrorCode`] is qledger's own table, each with a message naming the
//! element at fault.

use ledger::domain::{
    CardKind, CertificateKind, CopayRate, Day, InsurerKind, InsurerNumber, LimitCategory,
    LossReason, Relationship, Sex, SpecificDisease,
};

/// 照会区分 (OQSCD002): 2, a query by 被保険者証 information.
pub const REFERENCE_BY_CARD_DETAILS: &str = "2";

/// 処理結果区分 (OQSCD003).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentOfResult {
    /// 1 正常終了.
    Normal,
    /// 9 異常終了: the request could not be processed (header ErrorCode).
    Abnormal,
}

impl SegmentOfResult {
    pub fn code(self) -> &'static str {
        match self {
            SegmentOfResult::Normal => "1",
            SegmentOfResult::Abnormal => "9",
        }
    }
}

/// 処理結果状況 (OQSCD004): 1 正常終了.
pub const PROCESSING_NORMAL: &str = "1";

/// 資格有効性 (OQSCD006).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QualificationValidity {
    /// 1 有効.
    Valid,
    /// 2 無効.
    Invalid,
    /// 3 無効（新しい資格あり）: the person holds another qualification on the date.
    InvalidNewerExists,
    /// 4 該当資格なし.
    NoMatch,
    /// 5 複数該当: more than one qualification on the date (duplicate enrolment).
    Multiple,
}

impl QualificationValidity {
    pub fn code(self) -> &'static str {
        match self {
            QualificationValidity::Valid => "1",
            QualificationValidity::Invalid => "2",
            QualificationValidity::InvalidNewerExists => "3",
            QualificationValidity::NoMatch => "4",
            QualificationValidity::Multiple => "5",
        }
    }
}

/// 文字コード識別 (OQSCD005): 0 UTF-8, 1 Shift_JIS.
pub fn character_code(charset: super::xml::Charset) -> &'static str {
    match charset {
        super::xml::Charset::Utf8 => "0",
        super::xml::Charset::ShiftJis => "1",
    }
}

/// 限度額適用認定証提供同意フラグ (OQSCD001): 0 未同意, 1 同意.
pub fn consent_of(code: &str) -> Option<bool> {
    match code {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

pub fn consent_code(consent: bool) -> &'static str {
    if consent {
        "1"
    } else {
        "0"
    }
}

/// 被保険者証区分 (OQSCD010): 01 一般, 02 退職, 03 短期（一般）, 04 短期（退職）,
/// 05 被保険者資格証明書, 06 特例退職被保険者証, 07 自衛官診療証.
pub fn card_classification(card: CardKind, insurer: InsurerKind) -> &'static str {
    let retiree = insurer == InsurerKind::NhiRetiree || card == CardKind::Retiree;
    match card {
        CardKind::ShortTerm | CardKind::ChildShortTerm if retiree => "04",
        CardKind::ShortTerm | CardKind::ChildShortTerm => "03",
        CardKind::QualificationCertificate => "05",
        _ if retiree => "02",
        _ if insurer == InsurerKind::SpecialRetiree => "06",
        _ if insurer == InsurerKind::SelfDefenseForces => "07",
        _ => "01",
    }
}

/// 本人・家族の別 (OQSCD009): 1 本人, 2 家族.
pub fn personal_family(relationship: Relationship) -> &'static str {
    match relationship {
        Relationship::Insured => "1",
        Relationship::Dependent => "2",
    }
}

/// 性別 (OQSCD007): 1 男, 2 女.
pub fn sex(sex: Sex) -> String {
    sex.code().to_string()
}

/// 資格喪失事由 (OQSCD008): 01 死亡, 02 生活保護受給開始, 03 医療保険等の資格取得,
/// 99 その他. Reaching 75 is moving to 後期高齢者医療: another insurance.
pub fn reason_of_loss(reason: LossReason) -> &'static str {
    match reason {
        LossReason::Death => "01",
        LossReason::Welfare => "02",
        LossReason::JoinedOtherInsurance | LossReason::ReachedSeventyFive => "03",
        LossReason::EmploymentEnded
        | LossReason::MovedOut
        | LossReason::DependentNoLonger
        | LossReason::Other => "99",
    }
}

/// 一部負担金割合: the percentage in three digits, "030" for 3割.
pub fn contribution_ratio(rate: CopayRate) -> String {
    format!("{:03}", rate.percent())
}

/// 未就学区分 (OQSCD015): "1" while the child has not reached school age on
/// the day — before the 1 April after the sixth birthday (a child born on
/// 1 April starts a year earlier: the age counts up the day before the
/// birthday). `None` otherwise (the element is left out).
pub fn preschool(birth_date: Day, on: Day) -> Option<&'static str> {
    let born = birth_date.naive();
    use chrono::Datelike;
    let entry_year = if (born.month(), born.day()) <= (4, 1) {
        born.year() + 6
    } else {
        born.year() + 7
    };
    let entry = Day::from_ymd(entry_year, 4, 1)?;
    (on < entry).then_some("1")
}

/// 保険者番号 in eight characters: a six-digit 国保 number is padded with
/// two leading spaces, as the results show it.
pub fn insurer_number(number: &InsurerNumber) -> String {
    format!("{:>8}", number.as_str())
}

/// 限度額適用認定証区分 (OQSCD011): 01 限度額適用認定証, 02 限度額適用・標準負担額減額認定証.
pub fn limit_certificate_classification(kind: CertificateKind) -> Option<&'static str> {
    match kind {
        CertificateKind::LimitApplication => Some("01"),
        CertificateKind::LimitApplicationReduction => Some("02"),
        _ => None,
    }
}

/// 適用区分 (OQSCD012): A01–A05 (ア–オ) under 70, B01–B06 from 70.
pub fn limit_category(category: LimitCategory) -> &'static str {
    match category {
        LimitCategory::A => "A01",
        LimitCategory::B => "A02",
        LimitCategory::C => "A03",
        LimitCategory::D => "A04",
        LimitCategory::E => "A05",
        LimitCategory::Active3 => "B01",
        LimitCategory::Active2 => "B02",
        LimitCategory::Active1 => "B03",
        LimitCategory::General => "B04",
        LimitCategory::LowIncome2 => "B05",
        LimitCategory::LowIncome1 => "B06",
    }
}

/// 認定疾病区分 (OQSCD013): 1 人工透析を必要とする慢性腎不全, 2 先天性血液凝固因子障害,
/// 3 血液凝固因子製剤の投与に起因するHIV感染症.
pub fn disease_category(disease: SpecificDisease) -> &'static str {
    match disease {
        SpecificDisease::ChronicRenalFailure => "1",
        SpecificDisease::Hemophilia => "2",
        SpecificDisease::HivDrugInduced => "3",
    }
}

/// A date as the messages write it: YYYYMMDD (西暦).
pub fn date(day: Day) -> String {
    day.to_yyyymmdd()
}

/// A YYYYMMDD date of a request.
pub fn parse_date(text: &str) -> Option<Day> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year = text[..4].parse().ok()?;
    let month = text[4..6].parse().ok()?;
    let day = text[6..].parse().ok()?;
    Day::from_ymd(year, month, day)
}

/// 処理実行日時: the instant in Japan's time, YYYYMMDDHHmmss (the messages
/// carry local time; Japan has no daylight saving).
pub fn execution_time(at: chrono::DateTime<chrono::Utc>) -> String {
    let japan = chrono::FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset");
    at.with_timezone(&japan).format("%Y%m%d%H%M%S").to_string()
}

/// The error codes qledger answers with (header `ErrorCode`, with
/// `SegmentOfResult` 9). qledger's own: 別紙6-1 was not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The bytes are not well-formed XML.
    MalformedXml,
    /// The declared encoding is neither UTF-8 nor Shift_JIS.
    UnsupportedEncoding,
    /// The bytes are not valid in the declared encoding.
    Undecodable,
    /// The message is over the size limit.
    TooLarge,
    /// Not a 資格確認 request (root, or a required section, missing).
    NotARequest,
    /// A required element is missing or empty.
    MissingElement,
    /// An element's value breaks its rule (format, check digit, date).
    InvalidValue,
    /// A code value outside its table.
    UnknownCode,
    /// An element the request does not have.
    UnknownElement,
    /// The caller may not ask for this institution (or insurer).
    NotPermitted,
    /// The file name names an operation qledger does not answer.
    UnsupportedOperation,
    /// qledger failed; the cause is logged.
    Internal,
}

impl ErrorCode {
    pub fn code(self) -> &'static str {
        match self {
            ErrorCode::MalformedXml => "QLX001",
            ErrorCode::UnsupportedEncoding => "QLX002",
            ErrorCode::Undecodable => "QLX003",
            ErrorCode::TooLarge => "QLX004",
            ErrorCode::NotARequest => "QLX010",
            ErrorCode::MissingElement => "QLX011",
            ErrorCode::InvalidValue => "QLX012",
            ErrorCode::UnknownCode => "QLX013",
            ErrorCode::UnknownElement => "QLX014",
            ErrorCode::NotPermitted => "QLX020",
            ErrorCode::UnsupportedOperation => "QLX021",
            ErrorCode::Internal => "QLX900",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        s.parse().unwrap()
    }

    #[test]
    fn preschool_ends_at_the_april_after_the_sixth_birthday() {
        // Born 2 April 2018: school from 1 April 2025.
        assert_eq!(preschool(day("2018-04-02"), day("2025-03-31")), Some("1"));
        assert_eq!(preschool(day("2018-04-02"), day("2025-04-01")), None);
        // Born 1 April 2018: a year earlier, with those born before.
        assert_eq!(preschool(day("2018-04-01"), day("2024-03-31")), Some("1"));
        assert_eq!(preschool(day("2018-04-01"), day("2024-04-01")), None);
        assert_eq!(preschool(day("2018-01-10"), day("2024-04-01")), None);
        assert_eq!(preschool(day("1980-05-12"), day("2024-04-01")), None);
    }

    #[test]
    fn dates_and_numbers_in_the_message_formats() {
        assert_eq!(parse_date("20240402"), Some(day("2024-04-02")));
        for bad in ["2024-04-02", "20240230", "2024040", "２０２４０４０２", ""] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(
            insurer_number(&"138057".parse().unwrap()),
            "  138057".to_string()
        );
        assert_eq!(
            contribution_ratio(CopayRate::from_percent(30).unwrap()),
            "030"
        );
        let at = chrono::DateTime::parse_from_rfc3339("2024-04-01T15:30:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(execution_time(at), "20240402003000");
    }

    #[test]
    fn card_classification_follows_card_and_insurer() {
        use CardKind as C;
        use InsurerKind as I;
        assert_eq!(
            card_classification(C::HealthInsurance, I::KyokaiKenpo),
            "01"
        );
        assert_eq!(card_classification(C::Retiree, I::NhiRetiree), "02");
        assert_eq!(
            card_classification(C::ShortTerm, I::NationalHealthInsurance),
            "03"
        );
        assert_eq!(card_classification(C::ShortTerm, I::NhiRetiree), "04");
        assert_eq!(
            card_classification(C::QualificationCertificate, I::NationalHealthInsurance),
            "05"
        );
        assert_eq!(
            card_classification(C::HealthInsurance, I::SpecialRetiree),
            "06"
        );
        assert_eq!(
            card_classification(C::HealthInsurance, I::SelfDefenseForces),
            "07"
        );
    }
}
