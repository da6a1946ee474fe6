//! The closed vocabularies of a qualification: card kinds, special statuses,
//! loss reasons, certificates and their categories, subsidy programmes.
//!
//! Each is a `Copy` enum whose symbol (`SCREAMING_SNAKE_CASE`, [`CardKind::symbol`])
//! is its serde form and the Avro enum symbol of the wire contract: symbols
//! must never change or be reused; add variants only. This module must not
//! hold the codes of other systems (the online check's code tables); map them
//! at the edge.

use super::ids::InsurerKind;
use crate::error::RuleViolation;

/// A `Copy` enum with a stable symbol (its serde form and Avro symbol) and a
/// Japanese name per variant: `ALL`, `symbol`, `from_symbol`, `japanese`,
/// `Display` (the symbol) and `FromStr` (from the symbol).
macro_rules! symbol_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $symbol:literal, $japanese:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $symbol)] $variant, )+
        }

        /// A string schema of the symbols (a derive would not see the
        /// `rename` this macro writes).
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($what))
                    .enum_values(Some(Self::ALL.iter().map(|v| v.symbol())))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stable symbol: serde form and Avro enum symbol.
            pub fn symbol(self) -> &'static str {
                match self { $(Self::$variant => $symbol,)+ }
            }

            pub fn from_symbol(symbol: &str) -> Option<Self> {
                match symbol { $($symbol => Some(Self::$variant),)+ _ => None }
            }

            /// The Japanese name.
            pub fn japanese(self) -> &'static str {
                match self { $(Self::$variant => $japanese,)+ }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.symbol())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::RuleViolation;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = $crate::domain::checkdigit::trim_spaces(s);
                Self::from_symbol(s).ok_or_else(|| {
                    let symbols: Vec<&str> = Self::ALL.iter().map(|v| v.symbol()).collect();
                    $crate::error::RuleViolation::new(format!(
                        "{:?} is not a {}: use one of {}", s, $what, symbols.join(", ")
                    ))
                })
            }
        }
    };
}
pub(crate) use symbol_enum;

symbol_enum! {
    /// 証の種別 (card kind): the card the person shows, p8–9 of the source.
    ///
    /// Who may issue which ([`CardKind::allowed_for`]):
    ///
    /// | card | insurer kinds |
    /// | --- | --- |
    /// | `HEALTH_INSURANCE` | 協会けんぽ, 健康保険組合, 共済組合, 自衛官等, 特例退職 |
    /// | `SEAMEN_INSURANCE`, `SEAMEN_MEDICAL_COMPENSATION`, `SEAMEN_CONTINUED_CARE` | 船員保険 |
    /// | `NATIONAL_HEALTH_INSURANCE`, `NHI_WITH_ELDERLY_RECIPIENT`, `CHILD_SHORT_TERM` | 国保, 退職者医療 |
    /// | `SHORT_TERM`, `QUALIFICATION_CERTIFICATE` | 国保, 退職者医療, 後期高齢者医療 |
    /// | `LATE_ELDERLY` | 後期高齢者医療 |
    /// | `RETIREE` | 退職者医療 |
    /// | `ELDERLY_RECIPIENT` | every employee-insurance kind (日雇特例 included), and 国保 (国保組合 and some municipalities issue it apart from the card) |
    /// | `DAY_LABOURER_ELIGIBILITY`, `DAY_LABOURER_SPECIAL_BENEFIT` | 日雇特例 |
    pub enum CardKind ("card kind (証の種別)") {
        /// 健康保険被保険者証.
        HealthInsurance = "HEALTH_INSURANCE", "健康保険被保険者証";
        /// 船員保険被保険者証.
        SeamenInsurance = "SEAMEN_INSURANCE", "船員保険被保険者証";
        /// 国民健康保険被保険者証.
        NationalHealthInsurance = "NATIONAL_HEALTH_INSURANCE", "国民健康保険被保険者証";
        /// 後期高齢者医療被保険者証.
        LateElderly = "LATE_ELDERLY", "後期高齢者医療被保険者証";
        /// 退職被保険者証 (retiree scheme, legacy until age 65).
        Retiree = "RETIREE", "退職被保険者証";
        /// 高齢受給者証 on its own (ages 70–74; carries the copay rate).
        ElderlyRecipient = "ELDERLY_RECIPIENT", "高齢受給者証";
        /// 国民健康保険被保険者証兼高齢受給者証.
        NhiWithElderlyRecipient = "NHI_WITH_ELDERLY_RECIPIENT", "国民健康保険被保険者証兼高齢受給者証";
        /// 短期被保険者証 (households in arrears under a year).
        ShortTerm = "SHORT_TERM", "短期被保険者証";
        /// 子ども短期被保険者証.
        ChildShortTerm = "CHILD_SHORT_TERM", "子ども短期被保険者証";
        /// 日雇特例被保険者 受給資格者票.
        DayLabourerEligibility = "DAY_LABOURER_ELIGIBILITY", "受給資格者票";
        /// 日雇特例被保険者 特別療養費受給票.
        DayLabourerSpecialBenefit = "DAY_LABOURER_SPECIAL_BENEFIT", "特別療養費受給票";
        /// 被保険者資格証明書 (in arrears over a year: the patient pays everything first).
        QualificationCertificate = "QUALIFICATION_CERTIFICATE", "被保険者資格証明書";
        /// 船員保険療養補償証明書: under study in the source.
        SeamenMedicalCompensation = "SEAMEN_MEDICAL_COMPENSATION", "船員保険療養補償証明書";
        /// 船員保険継続療養受領証明書: under study in the source.
        SeamenContinuedCare = "SEAMEN_CONTINUED_CARE", "船員保険継続療養受領証明書";
    }
}

impl CardKind {
    /// Marked 要検討 (still under study) in the source, p8.
    pub fn under_study(self) -> bool {
        matches!(
            self,
            CardKind::SeamenMedicalCompensation | CardKind::SeamenContinuedCare
        )
    }

    /// Whether an insurer of `kind` may issue this card (table on [`CardKind`]).
    pub fn allowed_for(self, kind: InsurerKind) -> Result<(), RuleViolation> {
        use InsurerKind as K;
        let allowed = match self {
            CardKind::HealthInsurance => matches!(
                kind,
                K::KyokaiKenpo
                    | K::HealthInsuranceSociety
                    | K::MutualAid
                    | K::SelfDefenseForces
                    | K::SpecialRetiree
            ),
            CardKind::SeamenInsurance
            | CardKind::SeamenMedicalCompensation
            | CardKind::SeamenContinuedCare => kind == K::SeamenInsurance,
            CardKind::NationalHealthInsurance
            | CardKind::NhiWithElderlyRecipient
            | CardKind::ChildShortTerm => {
                matches!(kind, K::NationalHealthInsurance | K::NhiRetiree)
            }
            CardKind::ShortTerm | CardKind::QualificationCertificate => {
                matches!(
                    kind,
                    K::NationalHealthInsurance | K::NhiRetiree | K::LateElderly
                )
            }
            CardKind::LateElderly => kind == K::LateElderly,
            CardKind::Retiree => kind == K::NhiRetiree,
            CardKind::ElderlyRecipient => {
                kind.is_employee_insurance() || kind == K::NationalHealthInsurance
            }
            CardKind::DayLabourerEligibility | CardKind::DayLabourerSpecialBenefit => {
                kind == K::DayLabourer
            }
        };
        if allowed {
            Ok(())
        } else {
            Err(RuleViolation::new(format!(
                "card kind {} ({}) cannot be issued by insurer kind {} ({})",
                self.japanese(),
                self.symbol(),
                kind.japanese(),
                kind.symbol()
            )))
        }
    }
}

symbol_enum! {
    /// 特例 (special status) on an ordinary card.
    pub enum SpecialStatus ("special status (特例)") {
        /// マル学: a student living away from the household (遠隔地被保険者証).
        StudentAway = "STUDENT_AWAY", "修学中の被保険者の特例 (マル学)";
        /// 住所地特例: a long-term inpatient or resident of a care facility.
        AddressException = "ADDRESS_EXCEPTION", "住所地特例";
    }
}

symbol_enum! {
    /// 資格喪失事由 (reason of loss).
    pub enum LossReason ("loss reason (資格喪失事由)") {
        /// 退職.
        EmploymentEnded = "EMPLOYMENT_ENDED", "退職";
        /// 死亡.
        Death = "DEATH", "死亡";
        /// 転出.
        MovedOut = "MOVED_OUT", "転出";
        /// 後期高齢者医療への移行 (reached 75).
        ReachedSeventyFive = "REACHED_SEVENTY_FIVE", "後期高齢者医療への移行";
        /// 他の保険の取得.
        JoinedOtherInsurance = "JOINED_OTHER_INSURANCE", "他の保険の取得";
        /// 生活保護.
        Welfare = "WELFARE", "生活保護";
        /// 被扶養者でなくなった.
        DependentNoLonger = "DEPENDENT_NO_LONGER", "被扶養者でなくなった";
        /// その他.
        Other = "OTHER", "その他";
    }
}

symbol_enum! {
    /// 併用する証 (certificate used together with a card).
    pub enum CertificateKind ("certificate kind (証明書の種別)") {
        /// 限度額適用認定証.
        LimitApplication = "LIMIT_APPLICATION", "限度額適用認定証";
        /// 限度額適用・標準負担額減額認定証 (low income).
        LimitApplicationReduction = "LIMIT_APPLICATION_REDUCTION", "限度額適用・標準負担額減額認定証";
        /// 特定疾病療養受療証.
        SpecificDisease = "SPECIFIC_DISEASE", "特定疾病療養受療証";
        /// 高齢受給者証.
        ElderlyRecipient = "ELDERLY_RECIPIENT", "高齢受給者証";
        /// 特別療養証明書: benefits after the qualification is lost, while valid
        /// (schema v2).
        SpecialCareAfterLoss = "SPECIAL_CARE_AFTER_LOSS", "特別療養証明書";
        /// 継続療養受療証明書: 船員保険 benefits for three months after leaving
        /// the ship, after the qualification is lost (schema v2).
        SeamenContinuedCare = "SEAMEN_CONTINUED_CARE", "継続療養受療証明書";
        /// 日雇特例受給資格者票: a 日雇特例 enrolment pays benefits only while
        /// one is valid (schema v2).
        DayLabourerEligibility = "DAY_LABOURER_ELIGIBILITY", "日雇特例被保険者受給資格者票";
    }
}

impl CertificateKind {
    /// Certificates that give benefits after the qualification is lost.
    pub fn pays_after_loss(self) -> bool {
        matches!(
            self,
            CertificateKind::SpecialCareAfterLoss | CertificateKind::SeamenContinuedCare
        )
    }
}

symbol_enum! {
    /// 適用区分 (limit category) of a 限度額適用認定証: ア to オ under 70,
    /// 現役並み, 一般 and 低所得 from 70.
    pub enum LimitCategory ("limit category (適用区分)") {
        /// ア (under 70).
        A = "A", "ア";
        /// イ (under 70).
        B = "B", "イ";
        /// ウ (under 70).
        C = "C", "ウ";
        /// エ (under 70).
        D = "D", "エ";
        /// オ (under 70).
        E = "E", "オ";
        /// 現役並みⅢ (70 and over).
        Active3 = "ACTIVE3", "現役並みⅢ";
        /// 現役並みⅡ (70 and over).
        Active2 = "ACTIVE2", "現役並みⅡ";
        /// 現役並みⅠ (70 and over).
        Active1 = "ACTIVE1", "現役並みⅠ";
        /// 一般 (70 and over).
        General = "GENERAL", "一般";
        /// 低所得Ⅱ (70 and over).
        LowIncome2 = "LOW_INCOME2", "低所得Ⅱ";
        /// 低所得Ⅰ (70 and over).
        LowIncome1 = "LOW_INCOME1", "低所得Ⅰ";
    }
}

impl LimitCategory {
    /// The categories ア to オ, for people under 70.
    pub fn under_seventy(self) -> bool {
        matches!(self, Self::A | Self::B | Self::C | Self::D | Self::E)
    }
}

symbol_enum! {
    /// 特定疾病 (specific disease) of a 特定疾病療養受療証.
    pub enum SpecificDisease ("specific disease (特定疾病)") {
        /// 血友病.
        Hemophilia = "HEMOPHILIA", "血友病";
        /// 人工透析を実施している慢性腎不全.
        ChronicRenalFailure = "CHRONIC_RENAL_FAILURE", "人工透析を実施している慢性腎不全";
        /// 血液凝固因子製剤の投与に起因するHIV感染症.
        HivDrugInduced = "HIV_DRUG_INDUCED", "血液凝固因子製剤の投与に起因するHIV感染症";
    }
}

symbol_enum! {
    /// 医療費助成制度 (subsidy programme) of a public-expense or local subsidy.
    pub enum SubsidyProgramme ("subsidy programme (医療費助成制度)") {
        /// 乳幼児医療.
        Infant = "INFANT", "乳幼児医療";
        /// 子ども医療.
        Child = "CHILD", "子ども医療";
        /// ひとり親家庭医療.
        SingleParent = "SINGLE_PARENT", "ひとり親家庭医療";
        /// 重度心身障害者医療.
        Disabled = "DISABLED", "重度心身障害者医療";
        /// 難病等 (disease-based; undecided in the source).
        Disease = "DISEASE", "難病等";
        /// その他.
        Other = "OTHER", "その他";
    }
}

symbol_enum! {
    /// 助成方法 (subsidy method). 償還払い is out of scope.
    pub enum SubsidyMethod ("subsidy method (助成方法)") {
        /// 現物給付: at the counter.
        InKind = "IN_KIND", "現物給付";
        /// 自動償還: automatic reimbursement; only the eligibility check is in scope.
        AutoReimbursement = "AUTO_REIMBURSEMENT", "自動償還";
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InsurerKind, PayerOrganisation, Relationship, Sex};

    /// `symbol`, `from_symbol`, `FromStr`, serde and `ALL` agree, and every
    /// symbol is a valid Avro name in SCREAMING_SNAKE_CASE.
    macro_rules! check_symbols {
        ($($t:ty),+) => {$(
            let mut seen = std::collections::HashSet::new();
            for &v in <$t>::ALL {
                let s = v.symbol();
                assert!(seen.insert(s), "duplicate symbol {s}");
                assert!(
                    s.starts_with(|c: char| c.is_ascii_uppercase())
                        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
                    "{s}"
                );
                assert_eq!(<$t>::from_symbol(s), Some(v));
                assert_eq!(s.parse::<$t>(), Ok(v));
                assert_eq!(v.to_string(), s);
                assert!(!v.japanese().is_empty());
                let json = serde_json::to_string(&v).unwrap();
                assert_eq!(json, format!("\"{s}\""));
                assert_eq!(serde_json::from_str::<$t>(&json).unwrap(), v);
            }
        )+};
    }

    #[test]
    fn symbols_are_stable_and_agree() {
        check_symbols!(
            CardKind,
            SpecialStatus,
            LossReason,
            CertificateKind,
            LimitCategory,
            SpecificDisease,
            SubsidyProgramme,
            SubsidyMethod,
            InsurerKind,
            PayerOrganisation,
            Sex,
            Relationship
        );
        assert_eq!(CardKind::ALL.len(), 14);
        assert_eq!(LimitCategory::LowIncome2.symbol(), "LOW_INCOME2");
        assert_eq!(LimitCategory::A.japanese(), "ア");
    }

    #[test]
    fn unknown_symbols_are_refused_with_the_choices() {
        let e = "HEALTH".parse::<SubsidyMethod>().unwrap_err();
        assert_eq!(
            e.rule(),
            "\"HEALTH\" is not a subsidy method (助成方法): use one of IN_KIND, AUTO_REIMBURSEMENT"
        );
        assert!(serde_json::from_str::<CardKind>("\"health_insurance\"").is_err());
    }

    #[test]
    fn who_issues_which_card() {
        use InsurerKind as K;
        let ok = |c: CardKind, k: K| c.allowed_for(k).is_ok();
        assert!(ok(CardKind::HealthInsurance, K::KyokaiKenpo));
        assert!(!ok(CardKind::HealthInsurance, K::NationalHealthInsurance));
        assert!(ok(CardKind::LateElderly, K::LateElderly));
        assert!(!ok(CardKind::LateElderly, K::NationalHealthInsurance));
        assert!(ok(CardKind::ShortTerm, K::LateElderly));
        assert!(!ok(CardKind::ChildShortTerm, K::LateElderly));
        assert!(ok(CardKind::Retiree, K::NhiRetiree));
        assert!(ok(CardKind::ElderlyRecipient, K::DayLabourer));
        assert!(!ok(CardKind::ElderlyRecipient, K::LateElderly));
        assert!(ok(CardKind::SeamenContinuedCare, K::SeamenInsurance));
        assert!(ok(CardKind::DayLabourerSpecialBenefit, K::DayLabourer));
        assert_eq!(
            CardKind::Retiree.allowed_for(K::KyokaiKenpo).unwrap_err().rule(),
            "card kind 退職被保険者証 (RETIREE) cannot be issued by insurer kind 全国健康保険協会 (KYOKAI_KENPO)"
        );
        // Every card has at least one issuer.
        for &card in CardKind::ALL {
            assert!(K::ALL.iter().any(|&k| ok(card, k)), "{card}");
        }
        assert_eq!(CardKind::ALL.iter().filter(|c| c.under_study()).count(), 2);
    }
}
