//! Identifiers: insurer, card, person, public-expense and the ledger's own ids.
//!
//! Each type normalises what people write two ways (full-width digits, variant
//! hyphens, the 8-digit form of a 国保 insurer number) and refuses the rest
//! with a [`RuleViolation`] naming the rule. The types hold identifiers only:
//! they must not look anything up, and must not hold names, dates or the My
//! Number itself (the ledger never sees it).
//!
//! ```
//! use ledger::domain::{InsurerKind, InsurerNumber};
//! let kokuho: InsurerNumber = "00138057".parse().unwrap();
//! assert_eq!(kokuho.as_str(), "138057");
//! assert_eq!(kokuho.kind(), InsurerKind::NationalHealthInsurance);
//! let err = "01130013".parse::<InsurerNumber>().unwrap_err();
//! assert_eq!(err.rule(), "check digit must be 2, got 3");
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

use super::card::symbol_enum;
use super::checkdigit::{self, normalize_alphanumeric, normalize_digits};
use super::person::{fold_kana, Script};
use crate::error::{FieldError, RuleViolation};

/// `as_str`, `Display`, `FromStr`, `AsRef<str>` and the `String` conversions
/// serde uses, for a newtype over its normalised `String` with a `parse`.
macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            /// The normalised form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::RuleViolation;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $crate::error::RuleViolation;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        /// Human-readable input (JSON) is validated and normalised. Binary
        /// forms are the ledger's own stored values (views), written from
        /// validated values, and are taken as they are: re-validating every
        /// stored string on every read is the projector's hottest cost.
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let human = d.is_human_readable();
                let s = <String as ::serde::Deserialize>::deserialize(d)?;
                if human {
                    Self::parse(&s).map_err(::serde::de::Error::custom)
                } else {
                    Ok(Self(s))
                }
            }
        }
    };
}
pub(crate) use string_newtype;

fn all_digits(s: &str, what: &str) -> Result<(), RuleViolation> {
    match s.chars().find(|c| !c.is_ascii_digit()) {
        Some(c) => Err(RuleViolation::new(format!(
            "character {c:?} is not allowed in {what}: use digits only"
        ))),
        None => Ok(()),
    }
}

/// Digits only, exactly `len` of them, the last one the check digit.
fn checked_digits(s: &str, len: usize, what: &str) -> Result<String, RuleViolation> {
    let n = normalize_digits(s);
    all_digits(&n, what)?;
    if n.len() != len {
        return Err(RuleViolation::new(format!(
            "must be {len} digits, got {}",
            n.len()
        )));
    }
    checkdigit::verify(&n)?;
    Ok(n)
}

fn prefecture_code(two_digits: &str) -> Result<u8, RuleViolation> {
    match two_digits.parse::<u8>() {
        Ok(p @ 1..=47) => Ok(p),
        _ => Err(RuleViolation::new(format!(
            "prefecture code (都道府県番号) must be 01 to 47, got {two_digits}"
        ))),
    }
}

symbol_enum! {
    /// 審査支払機関 (claim payer): the organisation that checks and pays claims
    /// for an insurer — 支払基金 for employee insurance, the prefectural
    /// 国保連合会 for 国保 and 後期高齢者医療.
    pub enum PayerOrganisation ("payer organisation (審査支払機関)") {
        /// 社会保険診療報酬支払基金.
        SocialInsuranceFund = "SOCIAL_INSURANCE_FUND", "社会保険診療報酬支払基金";
        /// 国民健康保険団体連合会.
        NhiFederation = "NHI_FEDERATION", "国民健康保険団体連合会";
    }
}

symbol_enum! {
    /// 保険者の種別 (insurer kind), read from the 法別番号 (first two digits) of an
    /// 8-digit insurer number, or from the 6-digit form for 国保.
    ///
    /// | 法別番号 | kind |
    /// | --- | --- |
    /// | 01 | [`KyokaiKenpo`](Self::KyokaiKenpo) 全国健康保険協会 |
    /// | 02 | [`SeamenInsurance`](Self::SeamenInsurance) 船員保険 |
    /// | 03, 04 | [`DayLabourer`](Self::DayLabourer) 日雇特例被保険者 |
    /// | 06 | [`HealthInsuranceSociety`](Self::HealthInsuranceSociety) 健康保険組合 |
    /// | 07 | [`SelfDefenseForces`](Self::SelfDefenseForces) 自衛官等 |
    /// | 31–34 | [`MutualAid`](Self::MutualAid) 共済組合 |
    /// | 39 | [`LateElderly`](Self::LateElderly) 後期高齢者医療広域連合 |
    /// | 63, 72–75 | [`SpecialRetiree`](Self::SpecialRetiree) 特例退職被保険者 |
    /// | 67 | [`NhiRetiree`](Self::NhiRetiree) 退職者医療 |
    /// | (6 digits) | [`NationalHealthInsurance`](Self::NationalHealthInsurance) 市町村国保, 国保組合 |
    pub enum InsurerKind ("insurer kind (保険者の種別)") {
        /// 全国健康保険協会 (協会けんぽ), 法別番号 01.
        KyokaiKenpo = "KYOKAI_KENPO", "全国健康保険協会";
        /// 船員保険, 法別番号 02.
        SeamenInsurance = "SEAMEN_INSURANCE", "船員保険";
        /// 日雇特例被保険者, 法別番号 03 and 04.
        DayLabourer = "DAY_LABOURER", "日雇特例被保険者";
        /// 健康保険組合, 法別番号 06.
        HealthInsuranceSociety = "HEALTH_INSURANCE_SOCIETY", "健康保険組合";
        /// 自衛官等, 法別番号 07.
        SelfDefenseForces = "SELF_DEFENSE_FORCES", "自衛官等";
        /// 共済組合, 法別番号 31 to 34.
        MutualAid = "MUTUAL_AID", "共済組合";
        /// 特例退職被保険者, 法別番号 63 and 72 to 75.
        SpecialRetiree = "SPECIAL_RETIREE", "特例退職被保険者";
        /// 後期高齢者医療広域連合, 法別番号 39.
        LateElderly = "LATE_ELDERLY", "後期高齢者医療広域連合";
        /// 国民健康保険 (市町村国保 and 国保組合): the 6-digit insurer numbers.
        NationalHealthInsurance = "NATIONAL_HEALTH_INSURANCE", "国民健康保険";
        /// 退職者医療 (国民健康保険), 法別番号 67.
        NhiRetiree = "NHI_RETIREE", "退職者医療";
    }
}

impl InsurerKind {
    /// The kind a 法別番号 names, or `None` if it is not a medical-insurance scheme.
    pub fn from_law_code(code: u8) -> Option<InsurerKind> {
        InsurerKind::ALL
            .iter()
            .copied()
            .find(|k| k.law_codes().contains(&code))
    }

    /// The 法別番号 of this kind (none for 国保, whose numbers have 6 digits).
    pub fn law_codes(self) -> &'static [u8] {
        match self {
            InsurerKind::KyokaiKenpo => &[1],
            InsurerKind::SeamenInsurance => &[2],
            InsurerKind::DayLabourer => &[3, 4],
            InsurerKind::HealthInsuranceSociety => &[6],
            InsurerKind::SelfDefenseForces => &[7],
            InsurerKind::MutualAid => &[31, 32, 33, 34],
            InsurerKind::SpecialRetiree => &[63, 72, 73, 74, 75],
            InsurerKind::LateElderly => &[39],
            InsurerKind::NationalHealthInsurance => &[],
            InsurerKind::NhiRetiree => &[67],
        }
    }

    /// Who pays this kind's claims.
    pub fn payer(self) -> PayerOrganisation {
        match self {
            InsurerKind::NationalHealthInsurance
            | InsurerKind::NhiRetiree
            | InsurerKind::LateElderly => PayerOrganisation::NhiFederation,
            _ => PayerOrganisation::SocialInsuranceFund,
        }
    }

    /// 被用者保険 (employee insurance): the kinds whose claims 支払基金 pays.
    pub fn is_employee_insurance(self) -> bool {
        self.payer() == PayerOrganisation::SocialInsuranceFund
    }
}

/// 保険者番号 (insurer number): 8 digits — 法別番号 2, prefecture 2, insurer 3,
/// check digit 1 — or 6 digits for 国保 (市町村国保 and 国保組合: prefecture 2,
/// insurer 3, check digit 1).
///
/// A 国保 number written in 8 digits with two leading zeros (`00138057`) is
/// the same insurer and normalises to the 6-digit form (`138057`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsurerNumber(String);
string_newtype!(InsurerNumber);

impl InsurerNumber {
    pub fn parse(s: &str) -> Result<InsurerNumber, RuleViolation> {
        let n = normalize_digits(s);
        all_digits(&n, "an insurer number (保険者番号)")?;
        let n = match n.len() {
            8 if n.starts_with("00") => n[2..].to_owned(),
            6 | 8 => n,
            len => {
                return Err(RuleViolation::new(format!(
                    "must be 8 digits (or 6 for 国保), got {len}"
                )))
            }
        };
        checkdigit::verify(&n)?;
        if n.len() == 8 {
            let law = &n[..2];
            if law
                .parse()
                .ok()
                .and_then(InsurerKind::from_law_code)
                .is_none()
            {
                return Err(RuleViolation::new(format!(
                    "法別番号 {law} is not a medical-insurance scheme"
                )));
            }
        }
        prefecture_code(&n[n.len() - 6..n.len() - 4])?;
        Ok(InsurerNumber(n))
    }

    pub fn kind(&self) -> InsurerKind {
        self.law_code()
            .and_then(InsurerKind::from_law_code)
            .unwrap_or(InsurerKind::NationalHealthInsurance)
    }

    /// 法別番号: the first two digits of an 8-digit number; `None` for 国保.
    pub fn law_code(&self) -> Option<u8> {
        (self.0.len() == 8).then(|| two_digits(&self.0[..2]))
    }

    /// 都道府県番号, `1..=47`.
    pub fn prefecture(&self) -> u8 {
        let n = self.0.len();
        two_digits(&self.0[n - 6..n - 4])
    }
}

/// The value of two ASCII digits already validated.
fn two_digits(s: &str) -> u8 {
    s.bytes().fold(0, |acc, b| acc * 10 + b.wrapping_sub(b'0'))
}

/// Hiragana and katakana letters, ー and the iteration marks ゝゞヽヾ.
fn is_kana(c: char) -> bool {
    matches!(c,
        '\u{3041}'..='\u{3096}' | 'ゝ' | 'ゞ' | '\u{30A1}'..='\u{30FA}' | 'ー' | 'ヽ' | 'ヾ')
}

/// CJK ideographs (unified, extensions, compatibility) and 々.
fn is_kanji(c: char) -> bool {
    matches!(c,
        '々' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3134F}')
}

fn length_between(n: usize, min: usize, max: usize) -> Result<(), RuleViolation> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(RuleViolation::new(format!(
            "must be {min} to {max} characters, got {n}"
        )))
    }
}

/// 記号 (card symbol): the household's symbol on the card, 「文字等」 — digits,
/// kana, kanji, Latin letters and `-`, 1 to 38 characters. Full-width digits,
/// letters and hyphens normalise to ASCII, half-width katakana to full-width;
/// hiragana and katakana stay as written.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardSymbol(String);
string_newtype!(CardSymbol);

impl CardSymbol {
    pub fn parse(s: &str) -> Result<CardSymbol, RuleViolation> {
        let n = fold_kana(&normalize_alphanumeric(s), Script::AsWritten)?;
        if let Some(c) = n
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || is_kana(c) || is_kanji(c)))
        {
            return Err(RuleViolation::new(format!(
                "character {c:?} is not allowed in a card symbol (記号): use digits, kana, kanji, letters or '-'"
            )));
        }
        length_between(n.chars().count(), 1, 38)?;
        Ok(CardSymbol(n))
    }
}

/// 番号 (card number): the household's number on the card; digits, and hyphens
/// where a 国保組合 uses them, 1 to 20 characters with at least one digit.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardNumber(String);
string_newtype!(CardNumber);

impl CardNumber {
    pub fn parse(s: &str) -> Result<CardNumber, RuleViolation> {
        let n = normalize_digits(s);
        if let Some(c) = n.chars().find(|&c| !(c.is_ascii_digit() || c == '-')) {
            return Err(RuleViolation::new(format!(
                "character {c:?} is not allowed in a card number (番号): use digits or '-'"
            )));
        }
        length_between(n.len(), 1, 20)?;
        if !n.bytes().any(|b| b.is_ascii_digit()) {
            return Err(RuleViolation::new("must contain a digit (番号)"));
        }
        Ok(CardNumber(n))
    }
}

/// 枝番 (branch): the 2 digits that make the household's card number
/// individual (個人単位被保険者番号).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Branch(String);
string_newtype!(Branch);

impl Branch {
    pub fn parse(s: &str) -> Result<Branch, RuleViolation> {
        let n = normalize_digits(s);
        all_digits(&n, "a branch (枝番)")?;
        if n.len() != 2 {
            return Err(RuleViolation::new(format!(
                "must be 2 digits (枝番), got {}",
                n.len()
            )));
        }
        Ok(Branch(n))
    }
}

/// 個人単位被保険者番号 (individual insured number): insurer number, 記号
/// (optional), 番号 and 枝番.
///
/// For 後期高齢者医療 the 番号 is the 8-digit individual 被保険者番号, and there
/// is neither 記号 nor 枝番; every other kind needs the 枝番.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(
    try_from = "IndividualInsuredNumberFields",
    into = "IndividualInsuredNumberFields"
)]
pub struct IndividualInsuredNumber {
    insurer: InsurerNumber,
    symbol: Option<CardSymbol>,
    number: CardNumber,
    branch: Option<Branch>,
}

/// The serde form of [`IndividualInsuredNumber`], checked on the way in.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndividualInsuredNumberFields {
    insurer_number: InsurerNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    card_symbol: Option<CardSymbol>,
    card_number: CardNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    branch: Option<Branch>,
}

impl IndividualInsuredNumber {
    pub fn new(
        insurer: InsurerNumber,
        symbol: Option<CardSymbol>,
        number: CardNumber,
        branch: Option<Branch>,
    ) -> Result<IndividualInsuredNumber, FieldError> {
        let kind = insurer.kind();
        if kind == InsurerKind::LateElderly {
            let digits = number.as_str();
            if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
                return Err(FieldError::new(
                    "card_number",
                    format!("must be digits only for 後期高齢者医療 (被保険者番号), got {c:?}"),
                ));
            }
            if digits.len() != 8 {
                return Err(FieldError::new(
                    "card_number",
                    format!(
                        "must be 8 digits for 後期高齢者医療 (被保険者番号), got {}",
                        digits.len()
                    ),
                ));
            }
            if symbol.is_some() {
                return Err(FieldError::new(
                    "card_symbol",
                    "must be absent for 後期高齢者医療: the 被保険者番号 is already individual",
                ));
            }
            if branch.is_some() {
                return Err(FieldError::new(
                    "branch",
                    "must be absent for 後期高齢者医療: the 被保険者番号 is already individual",
                ));
            }
        } else if branch.is_none() {
            return Err(FieldError::new(
                "branch",
                format!(
                    "is required (枝番) for insurer kind {} ({})",
                    kind.japanese(),
                    kind.symbol()
                ),
            ));
        }
        Ok(IndividualInsuredNumber {
            insurer,
            symbol,
            number,
            branch,
        })
    }

    pub fn insurer(&self) -> &InsurerNumber {
        &self.insurer
    }

    pub fn symbol(&self) -> Option<&CardSymbol> {
        self.symbol.as_ref()
    }

    pub fn number(&self) -> &CardNumber {
        &self.number
    }

    pub fn branch(&self) -> Option<&Branch> {
        self.branch.as_ref()
    }

    /// A canonical lookup key: the four fields joined by U+001F (absent ones
    /// empty). No field can contain U+001F or be empty when present, so two
    /// numbers have the same key exactly when they are equal.
    pub fn index_key(&self) -> String {
        let opt = |o: Option<&str>| o.unwrap_or("").to_owned();
        [
            self.insurer.as_str().to_owned(),
            opt(self.symbol.as_ref().map(CardSymbol::as_str)),
            self.number.as_str().to_owned(),
            opt(self.branch.as_ref().map(Branch::as_str)),
        ]
        .join("\u{1F}")
    }
}

impl fmt::Display for IndividualInsuredNumber {
    /// `01130012 記号 1234 番号 567 枝番 01`; the absent parts are left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.insurer.as_str())?;
        if let Some(symbol) = &self.symbol {
            write!(f, " 記号 {symbol}")?;
        }
        write!(f, " 番号 {}", self.number)?;
        if let Some(branch) = &self.branch {
            write!(f, " 枝番 {branch}")?;
        }
        Ok(())
    }
}

impl TryFrom<IndividualInsuredNumberFields> for IndividualInsuredNumber {
    type Error = FieldError;

    fn try_from(f: IndividualInsuredNumberFields) -> Result<Self, FieldError> {
        IndividualInsuredNumber::new(f.insurer_number, f.card_symbol, f.card_number, f.branch)
    }
}

impl From<IndividualInsuredNumber> for IndividualInsuredNumberFields {
    fn from(n: IndividualInsuredNumber) -> Self {
        IndividualInsuredNumberFields {
            insurer_number: n.insurer,
            card_symbol: n.symbol,
            card_number: n.number,
            branch: n.branch,
        }
    }
}

/// The rule of opaque ids: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
fn opaque(s: &str, what: &str) -> Result<String, RuleViolation> {
    let n = normalize_alphanumeric(s);
    if let Some(c) = n
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
    {
        return Err(RuleViolation::new(format!(
            "character {c:?} is not allowed in {what}: use A-Z, a-z, 0-9, '.', '_', ':' or '-'"
        )));
    }
    length_between(n.len(), 1, 64)?;
    Ok(n)
}

/// An opaque id: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`.
macro_rules! opaque_id {
    ($(#[$meta:meta])* $name:ident, $what:literal) => {
        $(#[$meta])*
        ///
        /// Opaque: 1 to 64 characters of `A-Z a-z 0-9 . _ : -`, compared exactly.
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);
        string_newtype!($name);

        impl $name {
            pub fn parse(s: &str) -> Result<$name, RuleViolation> {
                opaque(s, $what).map($name)
            }
        }
    };
}

opaque_id!(
    /// 紐付番号 (link number): the per-person id the intermediate server
    /// (中間サーバー) issues; it ties one person's records together across
    /// insurers. Not the My Number.
    LinkNumber,
    "a link number (紐付番号)"
);
opaque_id!(
    /// 資格 id: one qualification (one person's enrolment with one insurer).
    QualificationId,
    "a qualification id"
);
opaque_id!(
    /// 証明書 id: one certificate (限度額適用認定証, 特定疾病療養受療証, …).
    CertificateId,
    "a certificate id"
);
opaque_id!(
    /// 医療費助成 id: one public-expense subsidy entitlement.
    SubsidyId,
    "a subsidy id"
);
opaque_id!(
    /// 要求 id: one request to the ledger, chosen by the caller for idempotency.
    RequestId,
    "a request id"
);
opaque_id!(
    /// レセプト id: one claim, as its payer numbers it.
    ClaimId,
    "a claim id"
);
opaque_id!(
    /// 発行元 id: who publishes events (an insurer, the NHI aggregation system).
    PublisherId,
    "a publisher id"
);

/// シリアル (card serial): the serial number of the user-authentication
/// certificate (JPKI) on the My Number card; 1 to 40 hex digits, uppercase,
/// leading zeros kept. A `0x` prefix and `:` separators are dropped.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardSerial(String);
string_newtype!(CardSerial);

impl CardSerial {
    pub fn parse(s: &str) -> Result<CardSerial, RuleViolation> {
        let n = normalize_alphanumeric(s);
        let n = n
            .strip_prefix("0x")
            .or_else(|| n.strip_prefix("0X"))
            .unwrap_or(&n);
        let hex: String = n.chars().filter(|&c| c != ':').collect();
        if let Some(c) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(RuleViolation::new(format!(
                "character {c:?} is not allowed in a card serial (シリアル): use hex digits 0-9, A-F"
            )));
        }
        if !(1..=40).contains(&hex.len()) {
            return Err(RuleViolation::new(format!(
                "must be 1 to 40 hex digits (シリアル), got {}",
                hex.len()
            )));
        }
        Ok(CardSerial(hex.to_ascii_uppercase()))
    }
}

/// 公費負担者番号 (public-expense payer number): 8 digits — 法別番号 2,
/// prefecture 2, payer 3, check digit 1 — with the insurer-number check rule.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicExpensePayerNumber(String);
string_newtype!(PublicExpensePayerNumber);

impl PublicExpensePayerNumber {
    pub fn parse(s: &str) -> Result<PublicExpensePayerNumber, RuleViolation> {
        checked_digits(s, 8, "a public-expense payer number (公費負担者番号)").map(Self)
    }

    /// 法別番号: the programme, first two digits.
    pub fn law_code(&self) -> u8 {
        two_digits(&self.0[..2])
    }
}

/// 受給者番号 (recipient number): 7 digits, the 7th the check digit of the
/// first 6 (the insurer-number rule).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipientNumber(String);
string_newtype!(RecipientNumber);

impl RecipientNumber {
    pub fn parse(s: &str) -> Result<RecipientNumber, RuleViolation> {
        checked_digits(s, 7, "a recipient number (受給者番号)").map(Self)
    }
}

/// 地方公共団体コード (municipality code, JIS X 0402): 6 digits — prefecture
/// 2, municipality 3, 検査数字 1. The check digit is the last digit of
/// `11 − (6·d1 + 5·d2 + 4·d3 + 3·d4 + 2·d5) mod 11` (千代田区 131016, 札幌市
/// 011002, 新宿区 131041). The 5-digit form without check digit is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MunicipalityCode(String);
string_newtype!(MunicipalityCode);

impl MunicipalityCode {
    pub fn parse(s: &str) -> Result<MunicipalityCode, RuleViolation> {
        let n = normalize_digits(s);
        all_digits(&n, "a municipality code (地方公共団体コード)")?;
        if n.len() != 6 {
            return Err(RuleViolation::new(format!(
                "must be 6 digits (地方公共団体コード with 検査数字), got {}",
                n.len()
            )));
        }
        let d = checkdigit::digit_values(&n);
        let expected = municipality_check_digit(&d[..5]);
        if d[5] != expected {
            return Err(RuleViolation::new(format!(
                "check digit (検査数字) must be {expected}, got {}",
                d[5]
            )));
        }
        prefecture_code(&n[..2])?;
        Ok(MunicipalityCode(n))
    }

    /// 都道府県コード, `1..=47`.
    pub fn prefecture(&self) -> u8 {
        two_digits(&self.0[..2])
    }
}

/// JIS X 0402 検査数字 of the 5 code digits.
fn municipality_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .zip([6u32, 5, 4, 3, 2])
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    // `sum % 11` is at most 10, so the result is a digit.
    ((11 - sum % 11) % 10) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::checkdigit::check_digit;
    use proptest::prelude::*;

    fn rule<T: fmt::Debug>(r: Result<T, RuleViolation>) -> String {
        r.unwrap_err().rule().to_owned()
    }

    fn iin(
        insurer: &str,
        symbol: Option<&str>,
        number: &str,
        branch: Option<&str>,
    ) -> Result<IndividualInsuredNumber, FieldError> {
        IndividualInsuredNumber::new(
            insurer.parse().unwrap(),
            symbol.map(|s| s.parse().unwrap()),
            number.parse().unwrap(),
            branch.map(|s| s.parse().unwrap()),
        )
    }

    #[test]
    fn insurer_numbers_of_each_form() {
        let kenpo = InsurerNumber::parse("01130012").unwrap();
        assert_eq!(kenpo.kind(), InsurerKind::KyokaiKenpo);
        assert_eq!(kenpo.law_code(), Some(1));
        assert_eq!(kenpo.prefecture(), 13);
        assert_eq!(kenpo.kind().payer(), PayerOrganisation::SocialInsuranceFund);

        let koki = InsurerNumber::parse("３９１３１００８").unwrap();
        assert_eq!(koki.as_str(), "39131008");
        assert_eq!(koki.kind(), InsurerKind::LateElderly);
        assert_eq!(koki.kind().payer(), PayerOrganisation::NhiFederation);

        let kokuho = InsurerNumber::parse(" 138057\u{3000}").unwrap();
        assert_eq!(kokuho.kind(), InsurerKind::NationalHealthInsurance);
        assert_eq!(kokuho.law_code(), None);
        assert_eq!(kokuho.prefecture(), 13);
        assert_eq!(InsurerNumber::parse("00138057").unwrap(), kokuho);
    }

    #[test]
    fn insurer_number_refusals_name_the_rule() {
        assert_eq!(
            rule(InsurerNumber::parse("01130013")),
            "check digit must be 2, got 3"
        );
        assert_eq!(
            rule(InsurerNumber::parse("0113001")),
            "must be 8 digits (or 6 for 国保), got 7"
        );
        assert_eq!(
            rule(InsurerNumber::parse("0113OO12")),
            "character 'O' is not allowed in an insurer number (保険者番号): use digits only"
        );
        // 99 + 130012 with its own check digit.
        let mut body = vec![9, 9, 1, 3, 0, 0, 1];
        body.push(check_digit(&body));
        let s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        assert_eq!(
            rule(InsurerNumber::parse(&s)),
            "法別番号 99 is not a medical-insurance scheme"
        );
        // prefecture 48: 01 48 001 + check.
        let mut body = vec![0, 1, 4, 8, 0, 0, 1];
        body.push(check_digit(&body));
        let s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        assert_eq!(
            rule(InsurerNumber::parse(&s)),
            "prefecture code (都道府県番号) must be 01 to 47, got 48"
        );
    }

    #[test]
    fn every_law_code_maps_back_to_its_kind() {
        for &kind in InsurerKind::ALL {
            for &code in kind.law_codes() {
                assert_eq!(InsurerKind::from_law_code(code), Some(kind));
            }
        }
        assert_eq!(InsurerKind::from_law_code(0), None);
        assert_eq!(InsurerKind::from_law_code(5), None);
        assert_eq!(
            InsurerKind::NhiRetiree.payer(),
            PayerOrganisation::NhiFederation
        );
        assert!(InsurerKind::SpecialRetiree.is_employee_insurance());
    }

    #[test]
    fn card_symbol_accepts_the_characters_of_文字等() {
        assert_eq!(CardSymbol::parse("ＡＢ－１２").unwrap().as_str(), "AB-12");
        assert_eq!(CardSymbol::parse("あいう").unwrap().as_str(), "あいう");
        assert_eq!(CardSymbol::parse("ｱｲﾀﾞｰ").unwrap().as_str(), "アイダー");
        assert_eq!(
            CardSymbol::parse("東京都千代田区").unwrap().as_str(),
            "東京都千代田区"
        );
        assert_eq!(
            rule(CardSymbol::parse("AB!")),
            "character '!' is not allowed in a card symbol (記号): use digits, kana, kanji, letters or '-'"
        );
        assert!(rule(CardSymbol::parse("A B")).contains("' '"));
        assert_eq!(
            rule(CardSymbol::parse("")),
            "must be 1 to 38 characters, got 0"
        );
        assert!(CardSymbol::parse(&"字".repeat(38)).is_ok());
        assert_eq!(
            rule(CardSymbol::parse(&"字".repeat(39))),
            "must be 1 to 38 characters, got 39"
        );
    }

    #[test]
    fn card_number_and_branch() {
        assert_eq!(
            CardNumber::parse("１２３－４５").unwrap().as_str(),
            "123-45"
        );
        assert_eq!(rule(CardNumber::parse("--")), "must contain a digit (番号)");
        assert!(rule(CardNumber::parse("12a")).contains("'a'"));
        assert_eq!(
            rule(CardNumber::parse(&"1".repeat(21))),
            "must be 1 to 20 characters, got 21"
        );
        assert_eq!(Branch::parse("０１").unwrap().as_str(), "01");
        assert_eq!(rule(Branch::parse("1")), "must be 2 digits (枝番), got 1");
        assert!(rule(Branch::parse("1a")).contains("'a'"));
    }

    #[test]
    fn individual_number_rules_by_insurer_kind() {
        let n = iin("01130012", Some("1234"), "567", Some("01")).unwrap();
        assert_eq!(n.to_string(), "01130012 記号 1234 番号 567 枝番 01");
        assert_eq!(n.index_key(), "01130012\u{1F}1234\u{1F}567\u{1F}01");

        let e = iin("01130012", Some("1234"), "567", None).unwrap_err();
        assert_eq!(e.field, "branch");
        assert_eq!(
            e.rule,
            "is required (枝番) for insurer kind 全国健康保険協会 (KYOKAI_KENPO)"
        );

        // 市町村国保: no symbol.
        let n = iin("138057", None, "1234567", Some("00")).unwrap();
        assert_eq!(n.index_key(), "138057\u{1F}\u{1F}1234567\u{1F}00");

        let koki = iin("39131008", None, "12345678", None).unwrap();
        assert_eq!(koki.to_string(), "39131008 番号 12345678");
        assert_eq!(
            iin("39131008", None, "1234567", None).unwrap_err().field,
            "card_number"
        );
        assert_eq!(
            iin("39131008", None, "1234-567", None).unwrap_err().field,
            "card_number"
        );
        assert_eq!(
            iin("39131008", Some("1"), "12345678", None)
                .unwrap_err()
                .field,
            "card_symbol"
        );
        assert_eq!(
            iin("39131008", None, "12345678", Some("01"))
                .unwrap_err()
                .field,
            "branch"
        );
    }

    #[test]
    fn individual_number_serde_is_a_checked_struct() {
        let n = iin("138057", None, "12-34", Some("02")).unwrap();
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(
            json,
            r#"{"insurer_number":"138057","card_number":"12-34","branch":"02"}"#
        );
        assert_eq!(
            serde_json::from_str::<IndividualInsuredNumber>(&json).unwrap(),
            n
        );

        let err = serde_json::from_str::<IndividualInsuredNumber>(
            r#"{"insurer_number":"01130012","card_number":"1"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("branch: is required"), "{err}");
        let err = serde_json::from_str::<IndividualInsuredNumber>(
            r#"{"insurer_number":"01130013","card_number":"1","branch":"01"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("check digit must be 2, got 3"),
            "{err}"
        );
    }

    #[test]
    fn string_ids_serialise_as_their_normalised_form() {
        let n: InsurerNumber = serde_json::from_str("\"００１３８０５７\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"138057\"");
        let err = serde_json::from_str::<InsurerNumber>("\"01130013\"").unwrap_err();
        assert!(
            err.to_string().contains("check digit must be 2, got 3"),
            "{err}"
        );
    }

    #[test]
    fn opaque_ids() {
        assert_eq!(
            LinkNumber::parse(" abc-01:x.y_z ").unwrap().as_str(),
            "abc-01:x.y_z"
        );
        assert_eq!(
            rule(LinkNumber::parse("a/b")),
            "character '/' is not allowed in a link number (紐付番号): use A-Z, a-z, 0-9, '.', '_', ':' or '-'"
        );
        assert_eq!(
            rule(QualificationId::parse("")),
            "must be 1 to 64 characters, got 0"
        );
        assert!(RequestId::parse(&"x".repeat(64)).is_ok());
        assert!(PublisherId::parse(&"x".repeat(65)).is_err());
        assert!(CertificateId::parse("c-1").is_ok() && SubsidyId::parse("s-1").is_ok());
    }

    #[test]
    fn card_serial_forms() {
        assert_eq!(
            CardSerial::parse("0x00ab:cd:ＥＦ").unwrap().as_str(),
            "00ABCDEF"
        );
        assert_eq!(CardSerial::parse("０１２ｆ").unwrap().as_str(), "012F");
        assert!(rule(CardSerial::parse("12G4")).contains("'G'"));
        assert_eq!(
            rule(CardSerial::parse("0x")),
            "must be 1 to 40 hex digits (シリアル), got 0"
        );
        assert!(CardSerial::parse(&"F".repeat(41)).is_err());
    }

    #[test]
    fn public_expense_numbers() {
        // 法別 54 (難病), Tokyo, payer 001 + check.
        let mut body = vec![5, 4, 1, 3, 0, 0, 1];
        body.push(check_digit(&body));
        let s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        let payer = PublicExpensePayerNumber::parse(&s).unwrap();
        assert_eq!(payer.law_code(), 54);
        assert_eq!(
            rule(PublicExpensePayerNumber::parse("5413001")),
            "must be 8 digits, got 7"
        );

        let mut body = vec![1, 2, 3, 4, 5, 6];
        body.push(check_digit(&body));
        let s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        assert!(RecipientNumber::parse(&s).is_ok());
        let wrong = format!("{}{}", &s[..6], (body[6] + 1) % 10);
        assert!(rule(RecipientNumber::parse(&wrong)).starts_with("check digit must be"));
    }

    #[test]
    fn municipality_codes_known_and_wrong() {
        for (code, pref) in [
            ("131016", 13),
            ("011002", 1),
            ("131041", 13),
            ("271403", 27),
        ] {
            assert_eq!(
                MunicipalityCode::parse(code).unwrap().prefecture(),
                pref,
                "{code}"
            );
        }
        assert_eq!(
            rule(MunicipalityCode::parse("131017")),
            "check digit (検査数字) must be 6, got 7"
        );
        assert!(rule(MunicipalityCode::parse("13101")).starts_with("must be 6 digits"));
    }

    fn digits(d: &[u8]) -> String {
        d.iter().map(|d| char::from(b'0' + d)).collect()
    }

    fn full_width(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '0'..='9' | 'A'..='Z' | 'a'..='z' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
                '-' => '－',
                _ => c,
            })
            .collect()
    }

    /// A valid insurer number of any kind: 8 digits, or 6 for 国保.
    fn insurer_number() -> impl Strategy<Value = String> {
        let law_codes: Vec<Option<u8>> = InsurerKind::ALL
            .iter()
            .flat_map(|k| k.law_codes().iter().map(|&c| Some(c)))
            .chain([None])
            .collect();
        (
            prop::sample::select(law_codes),
            1u8..=47,
            prop::collection::vec(0u8..=9, 3),
        )
            .prop_map(|(law, pref, insurer)| {
                let mut body: Vec<u8> = law.map(|l| vec![l / 10, l % 10]).unwrap_or_default();
                body.extend([pref / 10, pref % 10]);
                body.extend(insurer);
                body.push(check_digit(&body));
                digits(&body)
            })
    }

    proptest! {
        #[test]
        fn generated_insurer_numbers_parse_and_round_trip(s in insurer_number()) {
            let n = InsurerNumber::parse(&s).unwrap();
            prop_assert_eq!(n.as_str(), s.as_str());
            prop_assert_eq!(n.to_string().parse::<InsurerNumber>().unwrap(), n.clone());
            prop_assert_eq!(InsurerNumber::parse(&full_width(&s)).unwrap(), n.clone());
            if s.len() == 6 {
                prop_assert_eq!(InsurerNumber::parse(&format!("00{s}")).unwrap(), n);
            }
        }

        #[test]
        fn any_single_digit_change_is_refused(
            s in insurer_number(),
            at in any::<prop::sample::Index>(),
            delta in 1u8..=9,
        ) {
            let mut d = checkdigit::digit_values(&s);
            let i = at.index(d.len());
            d[i] = (d[i] + delta) % 10;
            let changed = digits(&d);
            // Two leading zeros make it the 8-digit form of a 6-digit 国保 number.
            prop_assume!(!(changed.len() == 8 && changed.starts_with("00")));
            prop_assert!(InsurerNumber::parse(&changed).is_err(), "{} -> {}", s, changed);
        }

        #[test]
        fn symbols_numbers_branches_round_trip(
            symbol in "[0-9A-Za-z\u{3041}-\u{3093}\u{30A1}-\u{30F3}\u{30FC}\u{4E00}-\u{9FA5}-]{1,38}",
            number in "[0-9][0-9-]{0,19}",
            branch in "[0-9]{2}",
        ) {
            let s = CardSymbol::parse(&symbol).unwrap();
            prop_assert_eq!(s.as_str(), symbol.as_str());
            prop_assert_eq!(s.to_string().parse::<CardSymbol>().unwrap(), s.clone());
            prop_assert_eq!(CardSymbol::parse(&full_width(&symbol)).unwrap(), s);
            let n = CardNumber::parse(&full_width(&number)).unwrap();
            prop_assert_eq!(n.as_str(), number.as_str());
            prop_assert_eq!(n.to_string().parse::<CardNumber>().unwrap(), n);
            let b = Branch::parse(&full_width(&branch)).unwrap();
            prop_assert_eq!(b.to_string().parse::<Branch>().unwrap(), b);
        }

        #[test]
        fn opaque_ids_and_serials_round_trip(
            id in "[A-Za-z0-9._:-]{1,64}",
            serial in "[0-9a-fA-F]{1,40}",
        ) {
            let link = LinkNumber::parse(&id).unwrap();
            prop_assert_eq!(link.to_string().parse::<LinkNumber>().unwrap(), link);
            let json = serde_json::to_string(&QualificationId::parse(&id).unwrap()).unwrap();
            let back: QualificationId = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.as_str(), id.as_str());
            let s = CardSerial::parse(&serial).unwrap();
            prop_assert_eq!(s.as_str(), serial.to_ascii_uppercase());
            prop_assert_eq!(s.to_string().parse::<CardSerial>().unwrap(), s.clone());
            prop_assert_eq!(CardSerial::parse(&full_width(&serial)).unwrap(), s);
        }

        #[test]
        fn check_digit_numbers_verify_and_catch_changes(
            body in prop::collection::vec(0u8..=9, 7),
            at in 0usize..8,
            delta in 1u8..=9,
        ) {
            let mut d = body.clone();
            d.push(check_digit(&body));
            let payer = PublicExpensePayerNumber::parse(&full_width(&digits(&d))).unwrap();
            prop_assert_eq!(payer.to_string().parse::<PublicExpensePayerNumber>().unwrap(), payer);
            let recipient = {
                let mut r = body[..6].to_vec();
                r.push(check_digit(&body[..6]));
                RecipientNumber::parse(&digits(&r)).unwrap()
            };
            prop_assert_eq!(recipient.to_string().parse::<RecipientNumber>().unwrap(), recipient);
            d[at] = (d[at] + delta) % 10;
            prop_assert!(PublicExpensePayerNumber::parse(&digits(&d)).is_err());
        }

        #[test]
        fn municipality_codes_verify_and_catch_changes(
            pref in 1u8..=47,
            rest in prop::collection::vec(0u8..=9, 3),
            at in 0usize..6,
            delta in 1u8..=9,
        ) {
            let mut d = vec![pref / 10, pref % 10];
            d.extend(rest);
            d.push(municipality_check_digit(&d));
            let code = MunicipalityCode::parse(&full_width(&digits(&d))).unwrap();
            prop_assert_eq!(code.to_string().parse::<MunicipalityCode>().unwrap(), code);
            d[at] = (d[at] + delta) % 10;
            // JIS X 0402 gives remainders 0 and 10 the same 検査数字 (1), so a
            // change that moves the remainder between them goes unnoticed.
            let remainder = |d: &[u8]| {
                d.iter().zip([6u32, 5, 4, 3, 2]).map(|(&d, w)| u32::from(d) * w).sum::<u32>() % 11
            };
            prop_assume!(!(d[5] == 1 && remainder(&d[..5]) % 10 == 0));
            prop_assert!(MunicipalityCode::parse(&digits(&d)).is_err());
        }
    }
}
