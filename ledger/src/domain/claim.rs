//! Claims (レセプト) as the ledger knows them: who billed whom, for which
//! patient, on which service days. The payer registers them so the ledger
//! can tell, when a qualification changes after the fact, which claims are
//! now wrong (資格過誤) and what to do with each.
//!
//! Only the identity and the parts eligibility depends on are kept: no
//! diagnoses, no procedures. This module validates those parts; deciding is
//! the claims projector's (`projectors::claims`).

use std::fmt;
use std::str::FromStr;

use chrono::Datelike;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::card::symbol_enum;
use super::checkdigit::normalize_digits;
use super::time::Day;
use crate::error::RuleViolation;

symbol_enum! {
    /// レセプトの種類: the claim's kind.
    pub enum ClaimKind ("claim kind (レセプト種別)") {
        /// 医科 (medical, fee-for-service).
        Medical = "MEDICAL", "医科";
        /// 歯科 (dental).
        Dental = "DENTAL", "歯科";
        /// 調剤 (pharmacy).
        Pharmacy = "PHARMACY", "調剤";
        /// DPC (diagnosis procedure combination, inpatient).
        Dpc = "DPC", "DPC";
    }
}

/// 医療機関コード as claims carry it: 10 digits — 都道府県番号 (2),
/// 点数表番号 (1: 1 医科, 3 歯科, 4 調剤 and 6 訪問看護), then the 7-digit
/// code of the institution within the prefecture.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionCode(String);

impl InstitutionCode {
    pub fn parse(s: &str) -> Result<InstitutionCode, RuleViolation> {
        let n = normalize_digits(s);
        if n.len() != 10 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RuleViolation::new(format!(
                "an institution code (医療機関コード) is 10 digits (prefecture 2, fee table 1, code 7), got {s:?}"
            )));
        }
        match n[..2].parse::<u8>() {
            Ok(1..=47) => {}
            _ => {
                return Err(RuleViolation::new(format!(
                    "prefecture code (都道府県番号) must be 01 to 47, got {}",
                    &n[..2]
                )))
            }
        }
        if !matches!(&n[2..3], "1" | "3" | "4" | "6") {
            return Err(RuleViolation::new(format!(
                "fee table number (点数表番号) must be 1, 3, 4 or 6, got {}",
                &n[2..3]
            )));
        }
        Ok(InstitutionCode(n))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 診療年月: the month a claim bills for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceMonth {
    year: i32,
    month: u32,
}

impl ServiceMonth {
    pub fn new(year: i32, month: u32) -> Result<ServiceMonth, RuleViolation> {
        if !(1..=12).contains(&month) || !(1900..=9999).contains(&year) {
            return Err(RuleViolation::new(format!(
                "a service month is YYYY-MM with a month 01 to 12 and a year from 1900, got {year:04}-{month:02}"
            )));
        }
        Ok(ServiceMonth { year, month })
    }

    /// The month a day falls in.
    pub fn of(day: Day) -> ServiceMonth {
        let d = day.naive();
        ServiceMonth {
            year: d.year(),
            month: d.month(),
        }
    }

    /// A number that orders months: `year * 12 + month - 1`.
    pub fn index(self) -> u32 {
        (self.year as u32) * 12 + self.month - 1
    }

    pub fn from_index(index: u32) -> Option<ServiceMonth> {
        ServiceMonth::new((index / 12) as i32, index % 12 + 1).ok()
    }

    pub fn first_day(self) -> Day {
        Day::from_ymd(self.year, self.month, 1).expect("a valid month")
    }

    pub fn days(self) -> u32 {
        let next = ServiceMonth::from_index(self.index() + 1).expect("a later month");
        (next.first_day().days_since_epoch() - self.first_day().days_since_epoch()) as u32
    }

    /// Day `n` (1-based) of the month, if it has one.
    pub fn day(self, n: u8) -> Option<Day> {
        Day::from_ymd(self.year, self.month, u32::from(n))
    }
}

impl fmt::Display for ServiceMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for ServiceMonth {
    type Err = RuleViolation;

    /// `YYYY-MM` or `YYYYMM` (the receipt files' form).
    fn from_str(s: &str) -> Result<ServiceMonth, RuleViolation> {
        let n = normalize_digits(s.trim());
        let digits: String = n.chars().filter(|c| *c != '-').collect();
        let valid_shape = digits.len() == 6
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 6 || (n.len() == 7 && n.as_bytes()[4] == b'-'));
        if !valid_shape {
            return Err(RuleViolation::new(format!(
                "a service month is YYYY-MM or YYYYMM, got {s:?}"
            )));
        }
        ServiceMonth::new(
            digits[..4].parse().expect("digits"),
            digits[4..].parse().expect("digits"),
        )
    }
}

impl Serialize for ServiceMonth {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceMonth {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ServiceMonth, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InstitutionCode {
    type Err = RuleViolation;
    fn from_str(s: &str) -> Result<InstitutionCode, RuleViolation> {
        InstitutionCode::parse(s)
    }
}

impl Serialize for InstitutionCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for InstitutionCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<InstitutionCode, D::Error> {
        let text = String::deserialize(d)?;
        InstitutionCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Checks a claim's service days against its month: at least one, each a
/// day of the month, in increasing order without repeats.
pub fn check_service_days(month: ServiceMonth, days: &[u8]) -> Result<(), RuleViolation> {
    if days.is_empty() {
        return Err(RuleViolation::new("a claim has at least one service day"));
    }
    let last = month.days();
    if let Some(d) = days.iter().find(|d| **d == 0 || u32::from(**d) > last) {
        return Err(RuleViolation::new(format!(
            "day {d} is not a day of {month} (1 to {last})"
        )));
    }
    if days.windows(2).any(|w| w[0] >= w[1]) {
        return Err(RuleViolation::new(
            "service days must be in increasing order, each once",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn institution_codes_are_checked() {
        assert_eq!(
            InstitutionCode::parse("1311234567").unwrap().as_str(),
            "1311234567"
        );
        assert!(InstitutionCode::parse("１３１１２３４５６７").is_ok());
        assert!(
            InstitutionCode::parse("4811234567").is_err(),
            "prefecture 48"
        );
        assert!(InstitutionCode::parse("1321234567").is_err(), "fee table 2");
        assert!(InstitutionCode::parse("131123456").is_err(), "9 digits");
    }

    #[test]
    fn service_months_parse_both_forms_and_know_their_days() {
        let m: ServiceMonth = "2024-02".parse().unwrap();
        assert_eq!(m, "202402".parse().unwrap());
        assert_eq!(m.days(), 29);
        assert_eq!(m.to_string(), "2024-02");
        assert_eq!(ServiceMonth::from_index(m.index()), Some(m));
        assert_eq!(
            ServiceMonth::of("2024-12-31".parse().unwrap()).index() + 1,
            "2025-01".parse::<ServiceMonth>().unwrap().index()
        );
        assert!("2024-13".parse::<ServiceMonth>().is_err());
        assert!("2024/02".parse::<ServiceMonth>().is_err());
        assert_eq!(m.day(29), "2024-02-29".parse().ok());
        assert_eq!(m.day(30), None);
    }

    #[test]
    fn service_days_must_fit_the_month() {
        let feb: ServiceMonth = "2023-02".parse().unwrap();
        assert!(check_service_days(feb, &[1, 15, 28]).is_ok());
        assert!(check_service_days(feb, &[]).is_err());
        assert!(check_service_days(feb, &[29]).is_err());
        assert!(check_service_days(feb, &[0]).is_err());
        assert!(check_service_days(feb, &[3, 3]).is_err());
        assert!(check_service_days(feb, &[5, 4]).is_err());
    }
}
