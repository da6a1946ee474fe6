//! The check-digit rule of the national numbering (保険者番号, 公費負担者番号,
//! 受給者番号) and the normalisation of how people write digits.
//!
//! Arithmetic and character mapping only: this module knows no number format
//! (length, fields, which digit is the check digit); the types in
//! [`ids`](super::ids) decide that. It must not accept or refuse a number on its
//! own beyond "these are digits and the last one checks".
//!
//! ```
//! use ledger::domain::checkdigit::{check_digit, normalize_digits, verify};
//! assert_eq!(check_digit(&[0, 1, 1, 3, 0, 0, 1]), 2);
//! assert!(verify("01130012").is_ok());
//! assert_eq!(normalize_digits("　０１１３‐００１２ "), "0113-0012");
//! ```

use crate::error::RuleViolation;

/// The check digit of `body` (digit values `0..=9`, most significant first).
///
/// Walking left from the rightmost body digit, multiply by 2, 1, 2, 1, …; add
/// up the digits of the products (16 counts as 1 + 6); the check digit is
/// `(10 − sum mod 10) mod 10`. Any single changed digit changes the result.
pub fn check_digit(body: &[u8]) -> u8 {
    debug_assert!(body.iter().all(|&d| d <= 9), "body holds digit values");
    let sum: u32 = body
        .iter()
        .rev()
        .zip([2u32, 1].into_iter().cycle())
        .map(|(&d, weight)| {
            let product = u32::from(d) * weight;
            product / 10 + product % 10
        })
        .sum();
    // `sum % 10` is below 10, so the result fits a digit.
    ((10 - sum % 10) % 10) as u8
}

/// Checks an all-ASCII-digit string whose last digit is the check digit of the
/// digits before it.
pub fn verify(digits: &str) -> Result<(), RuleViolation> {
    if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
        return Err(RuleViolation::new(format!(
            "must be digits only, got character {c:?}"
        )));
    }
    let values: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    let Some((&given, body)) = values.split_last().filter(|(_, body)| !body.is_empty()) else {
        return Err(RuleViolation::new(format!(
            "must be at least 2 digits (body and check digit), got {}",
            digits.len()
        )));
    };
    let expected = check_digit(body);
    if expected == given {
        Ok(())
    } else {
        Err(RuleViolation::new(format!(
            "check digit must be {expected}, got {given}"
        )))
    }
}

/// Normalises how digits and hyphens are written: full-width digits `０`–`９`
/// become `0`–`9`; full-width and look-alike hyphens (－ ‐ ‑ ‒ – — ― −) become
/// `-`; surrounding ASCII whitespace and ideographic spaces (U+3000) are trimmed.
/// Every other character is kept as it is, for the caller to judge.
pub fn normalize_digits(s: &str) -> String {
    trim_spaces(s).chars().map(fold_digit_or_hyphen).collect()
}

/// [`normalize_digits`], and full-width Latin letters `Ａ`–`Ｚ`, `ａ`–`ｚ` become
/// ASCII letters.
pub(crate) fn normalize_alphanumeric(s: &str) -> String {
    trim_spaces(s)
        .chars()
        .map(|c| match c {
            'Ａ'..='Ｚ' | 'ａ'..='ｚ' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => fold_digit_or_hyphen(c),
        })
        .collect()
}

/// Trims surrounding ASCII whitespace and ideographic spaces (U+3000).
pub(crate) fn trim_spaces(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\u{3000}')
}

fn fold_digit_or_hyphen(c: char) -> char {
    match c {
        '０'..='９' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{FF0D}' | '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}'
        | '\u{2015}' | '\u{2212}' => '-',
        _ => c,
    }
}

/// Digit values of an all-ASCII-digit string (the caller has checked it).
pub(crate) fn digit_values(digits: &str) -> Vec<u8> {
    digits.bytes().map(|b| b.wrapping_sub(b'0')).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn published_examples_verify() {
        for n in ["01130012", "39131008", "138057"] {
            assert_eq!(verify(n), Ok(()), "{n}");
        }
    }

    #[test]
    fn products_above_nine_add_their_digits() {
        // 138057: 5×2=10 → 1, 0×1, 8×2=16 → 7, 3×1, 1×2 → sum 13 → check 7.
        assert_eq!(check_digit(&[1, 3, 8, 0, 5]), 7);
        assert_eq!(check_digit(&[]), 0);
    }

    #[test]
    fn verify_names_the_expected_digit() {
        assert_eq!(
            verify("01130013").unwrap_err().rule(),
            "check digit must be 2, got 3"
        );
        assert!(verify("0113a012").unwrap_err().rule().contains("'a'"));
        assert!(verify("7").is_err());
        assert!(verify("").is_err());
    }

    #[test]
    fn normalises_width_hyphens_and_spaces() {
        assert_eq!(normalize_digits(" ０１２３４５６７８９ "), "0123456789");
        assert_eq!(normalize_digits("1－2‐3‑4‒5–6—7―8−9"), "1-2-3-4-5-6-7-8-9");
        assert_eq!(normalize_digits("\u{3000}12\u{3000}"), "12");
        assert_eq!(
            normalize_digits("1 2"),
            "1 2",
            "inner spaces are the caller's to judge"
        );
        assert_eq!(normalize_alphanumeric("ＡｂＣ１"), "AbC1");
    }

    fn full_width(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '0'..='9' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
                '-' => '－',
                _ => c,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn any_generated_number_verifies(body in prop::collection::vec(0u8..=9, 1..16)) {
            let mut digits: String = body.iter().map(|d| char::from(b'0' + d)).collect();
            digits.push(char::from(b'0' + check_digit(&body)));
            prop_assert_eq!(verify(&digits), Ok(()));
        }

        #[test]
        fn any_single_digit_change_is_caught(
            body in prop::collection::vec(0u8..=9, 1..16),
            at in any::<prop::sample::Index>(),
            delta in 1u8..=9,
        ) {
            let mut digits = body.clone();
            digits.push(check_digit(&body));
            let i = at.index(digits.len());
            digits[i] = (digits[i] + delta) % 10;
            let s: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
            prop_assert!(verify(&s).is_err());
        }

        #[test]
        fn full_width_normalises_to_ascii(s in "[0-9-]{0,20}") {
            prop_assert_eq!(normalize_digits(&full_width(&s)), s);
        }
    }
}
