//! Who the insured person is: sex, 本人/家族, copay rate and names.
//!
//! Names are normalised (spaces, kana width and script) so that two spellings
//! of one name compare equal; they are never checked against anything else.
//! Names are personal data: refusals name the offending character only, never
//! the value, and nothing here logs.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::card::symbol_enum;
use super::checkdigit::{normalize_digits, trim_spaces};
use super::ids::string_newtype;
use crate::error::RuleViolation;

symbol_enum! {
    /// 性別 (sex) as the online check records it.
    pub enum Sex ("sex (性別)") {
        /// 男 (code 1).
        Male = "MALE", "男";
        /// 女 (code 2).
        Female = "FEMALE", "女";
    }
}

impl Sex {
    /// The online check's code: 1 male, 2 female.
    pub fn code(self) -> u8 {
        match self {
            Sex::Male => 1,
            Sex::Female => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Sex> {
        Sex::ALL.iter().copied().find(|s| s.code() == code)
    }
}

symbol_enum! {
    /// 本人/家族 (relationship): the insured person or a dependent (被扶養者).
    pub enum Relationship ("relationship (本人/家族)") {
        /// 本人: the insured person (被保険者).
        Insured = "INSURED", "本人";
        /// 家族: a dependent (被扶養者).
        Dependent = "DEPENDENT", "家族";
    }
}

/// 負担割合 (copay rate): the share the patient pays at the counter, 10, 20 or
/// 30 percent. Serialises as the integer percentage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct CopayRate(u8);

impl CopayRate {
    pub fn from_percent(percent: u8) -> Result<CopayRate, RuleViolation> {
        match percent {
            10 | 20 | 30 => Ok(CopayRate(percent)),
            _ => Err(RuleViolation::new(format!(
                "copay rate (負担割合) must be 10, 20 or 30 percent, got {percent}"
            ))),
        }
    }

    /// Accepts `30`, `30%` and full-width `３０％`.
    pub fn parse(s: &str) -> Result<CopayRate, RuleViolation> {
        let n = normalize_digits(s);
        let digits = n.strip_suffix(['%', '％']).unwrap_or(&n);
        match digits.parse::<u8>() {
            Ok(p) if digits.bytes().all(|b| b.is_ascii_digit()) => CopayRate::from_percent(p),
            _ => Err(RuleViolation::new(
                "copay rate (負担割合) must be a percentage: 10, 20 or 30",
            )),
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }
}

impl fmt::Display for CopayRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl std::str::FromStr for CopayRate {
    type Err = RuleViolation;

    fn from_str(s: &str) -> Result<CopayRate, RuleViolation> {
        CopayRate::parse(s)
    }
}

impl TryFrom<u8> for CopayRate {
    type Error = RuleViolation;

    fn try_from(percent: u8) -> Result<CopayRate, RuleViolation> {
        CopayRate::from_percent(percent)
    }
}

impl From<CopayRate> for u8 {
    fn from(rate: CopayRate) -> u8 {
        rate.0
    }
}

const NAME_MAX: usize = 100;

fn name_length(n: usize) -> Result<(), RuleViolation> {
    if (1..=NAME_MAX).contains(&n) {
        Ok(())
    } else {
        Err(RuleViolation::new(format!(
            "must be 1 to {NAME_MAX} characters, got {n}"
        )))
    }
}

/// Pushes `c`, turning a run of spaces into one ideographic space (U+3000).
/// The input is trimmed, so a run never starts or ends the name.
fn push_collapsing_spaces(out: &mut String, c: char, is_space: bool) {
    if !is_space {
        out.push(c);
    } else if !out.ends_with('\u{3000}') {
        out.push('\u{3000}');
    }
}

/// 氏名 (name in kanji): as written, trimmed, 1 to 100 characters, no control
/// characters; each run of spaces becomes one ideographic space (U+3000).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKanji(String);
string_newtype!(NameKanji);

impl NameKanji {
    pub fn parse(s: &str) -> Result<NameKanji, RuleViolation> {
        let mut out = String::with_capacity(s.len());
        for c in s.trim_matches(|c: char| c.is_whitespace()).chars() {
            if c.is_control() {
                return Err(RuleViolation::new(format!(
                    "control character {c:?} is not allowed in a name (氏名)"
                )));
            }
            push_collapsing_spaces(&mut out, c, c.is_whitespace());
        }
        name_length(out.chars().count())?;
        Ok(NameKanji(out))
    }
}

/// カナ氏名 (name in kana): full-width katakana (U+30A0–U+30FF, ー and ・
/// included) and ideographic spaces, 1 to 100 characters. Half-width katakana
/// (with its separate voiced sound marks) becomes full-width, hiragana becomes
/// katakana, each run of spaces one U+3000.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameKana(String);
string_newtype!(NameKana);

impl NameKana {
    pub fn parse(s: &str) -> Result<NameKana, RuleViolation> {
        let folded = fold_kana(trim_spaces(s), Script::Katakana)?;
        let mut out = String::with_capacity(folded.len());
        for c in folded.chars() {
            let is_space = c == ' ' || c == '\u{3000}';
            if !(is_space || ('\u{30A0}'..='\u{30FF}').contains(&c)) {
                return Err(RuleViolation::new(format!(
                    "character {c:?} is not allowed in a kana name (カナ氏名): use katakana, hiragana or spaces"
                )));
            }
            push_collapsing_spaces(&mut out, c, is_space);
        }
        name_length(out.chars().count())?;
        Ok(NameKana(out))
    }
}

impl NameKana {
    /// The name in half-width katakana (半角カナ) with half-width spaces, as
    /// the online check's `NameKana` carries it: voiced kana become the kana
    /// and ﾞ or ﾟ; ヮ ヵ ヶ, which have no half-width form, their large kana.
    pub fn to_half_width(&self) -> String {
        const VOICED: &str = "ガギグゲゴザジズゼゾダヂヅデドバビブベボ";
        const SEMI_VOICED: &str = "パピプペポ";
        let half = |c: char| {
            HALF_WIDTH_KATAKANA
                .chars()
                .position(|f| f == c)
                .and_then(|i| char::from_u32(0xFF65 + i as u32))
        };
        let mut out = String::with_capacity(self.0.len());
        for c in self.0.chars() {
            let base = |offset: u32| char::from_u32(c as u32 - offset).and_then(half);
            match c {
                '\u{3000}' | ' ' => out.push(' '),
                'ヴ' => out.push_str("ｳﾞ"),
                'ヮ' => out.push('ﾜ'),
                'ヵ' => out.push('ｶ'),
                'ヶ' => out.push('ｹ'),
                c if VOICED.contains(c) => {
                    out.extend(base(1));
                    out.push('ﾞ');
                }
                c if SEMI_VOICED.contains(c) => {
                    out.extend(base(2));
                    out.push('ﾟ');
                }
                c => out.push(half(c).unwrap_or(c)),
            }
        }
        out
    }
}

/// What [`fold_kana`] does with hiragana.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Script {
    /// Keep hiragana and katakana as written (card symbols).
    AsWritten,
    /// Turn hiragana into katakana (kana names).
    Katakana,
}

/// Full-width forms of the half-width katakana U+FF65 (･) to U+FF9D (ﾝ).
const HALF_WIDTH_KATAKANA: &str =
    "・ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";

/// Half-width katakana to full-width, separate voiced sound marks (ﾞ ﾟ, ゛ ゜
/// and the combining U+3099, U+309A) joined to the kana before them, and,
/// for [`Script::Katakana`], hiragana to katakana. Other characters pass
/// through for the caller to judge.
pub(crate) fn fold_kana(s: &str, script: Script) -> Result<String, RuleViolation> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let mark = match c {
            '\u{FF9E}' | '\u{3099}' | '\u{309B}' => Some(false),
            '\u{FF9F}' | '\u{309A}' | '\u{309C}' => Some(true),
            _ => None,
        };
        if let Some(semi) = mark {
            let composed = out.pop().and_then(|prev| voiced(prev, semi));
            match composed {
                Some(v) => out.push(v),
                None => {
                    return Err(RuleViolation::new(format!(
                        "voiced sound mark {c:?} must follow a kana that takes it"
                    )))
                }
            }
            continue;
        }
        let c = match c {
            '\u{FF65}'..='\u{FF9D}' => HALF_WIDTH_KATAKANA
                .chars()
                .nth(c as usize - 0xFF65)
                .unwrap_or(c),
            '\u{3041}'..='\u{3096}' | 'ゝ' | 'ゞ' if script == Script::Katakana => {
                char::from_u32(c as u32 + 0x60).unwrap_or(c)
            }
            _ => c,
        };
        out.push(c);
    }
    Ok(out)
}

/// The kana with a dakuten (`semi == false`) or handakuten, if it takes one.
fn voiced(c: char, semi: bool) -> Option<char> {
    const HIRAGANA_TO_KATAKANA: u32 = 0x60;
    let hiragana = ('\u{3041}'..='\u{309E}').contains(&c);
    let k = if hiragana {
        char::from_u32(c as u32 + HIRAGANA_TO_KATAKANA)?
    } else {
        c
    };
    let v = match (semi, k) {
        (false, 'ウ') => 'ヴ',
        (false, 'ヽ') => 'ヾ',
        (false, 'カ' | 'キ' | 'ク' | 'ケ' | 'コ' | 'サ' | 'シ' | 'ス' | 'セ' | 'ソ')
        | (false, 'タ' | 'チ' | 'ツ' | 'テ' | 'ト' | 'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ') => {
            char::from_u32(k as u32 + 1)?
        }
        (true, 'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ') => char::from_u32(k as u32 + 2)?,
        _ => return None,
    };
    if hiragana {
        char::from_u32(v as u32 - HIRAGANA_TO_KATAKANA)
    } else {
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sex_and_relationship_codes() {
        assert_eq!(Sex::Female.code(), 2);
        assert_eq!(Sex::from_code(1), Some(Sex::Male));
        assert_eq!(Sex::from_code(3), None);
        assert_eq!(Relationship::Dependent.japanese(), "家族");
    }

    #[test]
    fn copay_rates() {
        assert_eq!(CopayRate::from_percent(30).unwrap().percent(), 30);
        assert_eq!(
            CopayRate::from_percent(15).unwrap_err().rule(),
            "copay rate (負担割合) must be 10, 20 or 30 percent, got 15"
        );
        assert_eq!("３０％".parse::<CopayRate>().unwrap().percent(), 30);
        assert_eq!(CopayRate::parse("20").unwrap().to_string(), "20%");
        assert!(CopayRate::parse("+20").is_err());
        assert!(CopayRate::parse("").is_err());
        assert_eq!(
            serde_json::to_string(&CopayRate::from_percent(10).unwrap()).unwrap(),
            "10"
        );
        assert!(serde_json::from_str::<CopayRate>("40")
            .unwrap_err()
            .to_string()
            .contains("got 40"));
    }

    #[test]
    fn kanji_names() {
        assert_eq!(
            NameKanji::parse("  山田 \u{3000} 太郎\u{3000}")
                .unwrap()
                .as_str(),
            "山田\u{3000}太郎"
        );
        assert_eq!(NameKanji::parse("山田太郎").unwrap().as_str(), "山田太郎");
        assert!(NameKanji::parse("山田\t太郎")
            .unwrap_err()
            .rule()
            .starts_with("control character"));
        assert_eq!(
            NameKanji::parse(" \u{3000}").unwrap_err().rule(),
            "must be 1 to 100 characters, got 0"
        );
        assert!(NameKanji::parse(&"字".repeat(100)).is_ok());
        assert!(NameKanji::parse(&"字".repeat(101)).is_err());
    }

    #[test]
    fn kana_names_fold_width_and_script() {
        let full = "ヤマダ\u{3000}タロウ";
        assert_eq!(NameKana::parse("ﾔﾏﾀﾞ ﾀﾛｳ").unwrap().as_str(), full);
        assert_eq!(NameKana::parse("やまだ　　たろう").unwrap().as_str(), full);
        assert_eq!(NameKana::parse("ﾊﾟﾊﾞｳﾞｧ･ｰ").unwrap().as_str(), "パバヴァ・ー");
        assert_eq!(
            NameKana::parse("ハ\u{309A}か\u{3099}").unwrap().as_str(),
            "パガ"
        );
        assert_eq!(
            NameKana::parse("ヤマダ1").unwrap_err().rule(),
            "character '1' is not allowed in a kana name (カナ氏名): use katakana, hiragana or spaces"
        );
        assert!(NameKana::parse("山田").unwrap_err().rule().contains("'山'"));
        assert!(NameKana::parse("ｱﾞ")
            .unwrap_err()
            .rule()
            .starts_with("voiced sound mark"));
        assert!(NameKana::parse("ﾞ").is_err());
        assert!(NameKana::parse("").is_err());
    }

    #[test]
    fn every_half_width_katakana_has_a_full_width_form() {
        assert_eq!(HALF_WIDTH_KATAKANA.chars().count(), 0xFF9D - 0xFF65 + 1);
        assert_eq!(fold_kana("ｦｧﾝ", Script::AsWritten).unwrap(), "ヲァン");
        assert_eq!(fold_kana("がｶﾞ", Script::AsWritten).unwrap(), "がガ");
    }

    fn half_width(s: &str) -> String {
        s.chars()
            .map(|c| match HALF_WIDTH_KATAKANA.chars().position(|k| k == c) {
                Some(i) => char::from_u32(0xFF65 + i as u32).unwrap(),
                None => c,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn kana_names_round_trip_and_fold(
            name in "[\u{30A1}-\u{30F3}\u{30FC}]{1,10}(\u{3000}[\u{30A1}-\u{30F3}\u{30FC}]{1,10})?",
        ) {
            let n = NameKana::parse(&name).unwrap();
            prop_assert_eq!(n.as_str(), name.as_str());
            prop_assert_eq!(n.to_string().parse::<NameKana>().unwrap(), n.clone());
            let hiragana: String = name
                .chars()
                .map(|c| match c {
                    '\u{30A1}'..='\u{30F6}' => char::from_u32(c as u32 - 0x60).unwrap(),
                    _ => c,
                })
                .collect();
            prop_assert_eq!(NameKana::parse(&hiragana).unwrap(), n.clone());
            // Unvoiced kana only: voiced ones have no single half-width form.
            let plain = half_width(&name);
            if plain.chars().all(|c| !('\u{30A1}'..='\u{30FF}').contains(&c)) {
                prop_assert_eq!(NameKana::parse(&plain).unwrap(), n);
            }
        }

        #[test]
        fn kanji_names_round_trip(name in "[一-龥]{1,5}( {1,3}[一-龥]{1,5})?") {
            let n = NameKanji::parse(&name).unwrap();
            prop_assert!(!n.as_str().contains(' '));
            prop_assert_eq!(n.to_string().parse::<NameKanji>().unwrap(), n);
        }

        #[test]
        fn copay_rates_round_trip(p in prop::sample::select(vec![10u8, 20, 30])) {
            let r = CopayRate::from_percent(p).unwrap();
            prop_assert_eq!(r.to_string().parse::<CopayRate>().unwrap(), r);
        }
    }
    #[test]
    fn kana_names_in_half_width() {
        let name = NameKana::parse("ホケン　ガッパ ヴィ").unwrap();
        assert_eq!(name.to_half_width(), "ﾎｹﾝ ｶﾞｯﾊﾟ ｳﾞｨ");
        // And back: parsing the half-width form gives the name again.
        assert_eq!(NameKana::parse(&name.to_half_width()).unwrap(), name);
    }
}
