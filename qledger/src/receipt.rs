//! The claim files payers already receive: レセプト電算処理システム files
//! (`RECEIPTC.UKE` and the like: comma-separated records, one per line,
//! Shift_JIS or UTF-8), read as claims.
//!
//! Only the records that say who billed whom for whom and on which days are
//! read; the rest (diagnoses, procedures' codes, comments) are skipped:
//!
//! | record | fields read (1-based) |
//! | --- | --- |
//! | `IR` 医療機関情報 | 2 審査支払機関 (1 支払基金, 2 国保連), 3 都道府県, 4 点数表, 5 医療機関コード |
//! | `RE` レセプト共通 | 2 レセプト番号, 4 診療年月 (GYYMM, G 4 平成 5 令和) |
//! | `HO` 保険者 | 2 保険者番号, 3 記号, 4 番号, 6 合計点数 |
//! | `KO` 公費 | 2 公費負担者番号, 3 受給者番号, 6 合計点数 (the first `KO` only) |
//! | `SN` 資格確認 | 7 枝番 |
//! | `JD` 受診日等 | 3–33: days 1–31, a day with any mark is a service day |
//! | `SI`, `IY`, `TO` 摘要 | 14–44: 算定日情報 of days 1–31, used when a claim has no `JD` |
//!
//! Each `RE` starts a claim; its id is `<医療機関コード 10 digits>-<請求年月>-
//! <レセプト番号>`. A claim that lacks what a claim needs comes back as an
//! error naming the record and field, with its line, and reading goes on.
//! This module builds the claims' JSON form only; validation is
//! [`crate::claims::parse_claim`]'s.

use std::io::BufRead;

use serde_json::{json, Map, Value};

/// One claim read from a receipt file: the line of its `RE` record, and
/// its JSON form or why it has none.
pub type ReceiptClaim = (u64, Result<Value, String>);

/// Decodes a receipt file's bytes: UTF-8 if they are, else Shift_JIS.
pub fn decode(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => encoding_rs::SHIFT_JIS.decode(bytes).0.into_owned(),
    }
}

/// Reads the claims of a receipt file, one `RE` group at a time.
pub struct Reader<R> {
    lines: std::iter::Enumerate<std::io::Split<R>>,
    institution: Option<Institution>,
    current: Option<Group>,
    done: bool,
}

impl<R> std::fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("institution", &self.institution)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Institution {
    code: String,
    payer: &'static str,
    kind: &'static str,
    billed_month: String,
}

#[derive(Debug, Default)]
struct Group {
    line: u64,
    number: String,
    month: Option<String>,
    insurer: Option<(String, String, String, String)>,
    public: Option<(String, String, String)>,
    branch: Option<String>,
    visit_days: Option<Vec<u8>>,
    counted_days: Vec<u8>,
    dpc: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Reader<R> {
        Reader {
            lines: input.split(b'\n').enumerate(),
            institution: None,
            current: None,
            done: false,
        }
    }

    fn finish(&mut self) -> Option<ReceiptClaim> {
        let group = self.current.take()?;
        Some((group.line, claim_of(self.institution.as_ref(), group)))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = std::io::Result<ReceiptClaim>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let Some((i, line)) = self.lines.next() else {
                self.done = true;
                return self.finish().map(Ok);
            };
            let line = match line {
                Ok(l) => decode(&l),
                Err(e) => return Some(Err(e)),
            };
            let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split(',').collect();
            let field = |n: usize| fields.get(n - 1).map(|f| f.trim()).unwrap_or("");
            match field(1) {
                "IR" => {
                    self.institution = Some(Institution {
                        code: format!("{}{}{}", field(3), field(4), field(5)),
                        payer: if field(2) == "2" {
                            "NHI_FEDERATION"
                        } else {
                            "SOCIAL_INSURANCE_FUND"
                        },
                        kind: match field(4) {
                            "3" => "DENTAL",
                            "4" => "PHARMACY",
                            _ => "MEDICAL",
                        },
                        billed_month: field(8).to_owned(),
                    });
                }
                "RE" => {
                    let previous = self.finish();
                    self.current = Some(Group {
                        line: i as u64 + 1,
                        number: field(2).to_owned(),
                        month: Some(field(4).to_owned()).filter(|m| !m.is_empty()),
                        ..Group::default()
                    });
                    if previous.is_some() {
                        return previous.map(Ok);
                    }
                }
                kind => {
                    let Some(group) = self.current.as_mut() else {
                        continue;
                    };
                    match kind {
                        "HO" if group.insurer.is_none() => {
                            group.insurer = Some((
                                field(2).to_owned(),
                                field(3).to_owned(),
                                field(4).to_owned(),
                                field(6).to_owned(),
                            ))
                        }
                        "KO" if group.public.is_none() => {
                            group.public = Some((
                                field(2).to_owned(),
                                field(3).to_owned(),
                                field(6).to_owned(),
                            ))
                        }
                        "SN" => group.branch = Some(field(7).to_owned()).filter(|b| !b.is_empty()),
                        "JD" => {
                            let days = group.visit_days.get_or_insert_with(Vec::new);
                            for day in 1..=31u8 {
                                if !field(2 + usize::from(day)).is_empty() && !days.contains(&day) {
                                    days.push(day);
                                }
                            }
                        }
                        "SI" | "IY" | "TO" => {
                            for day in 1..=31u8 {
                                let count = field(13 + usize::from(day));
                                if !count.is_empty()
                                    && count != "0"
                                    && !group.counted_days.contains(&day)
                                {
                                    group.counted_days.push(day);
                                }
                            }
                        }
                        "BU" | "SB" => group.dpc = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

/// 和暦 GYYMM (G: 1 明治, 2 大正, 3 昭和, 4 平成, 5 令和) as `YYYY-MM`.
pub fn era_month(text: &str) -> Option<String> {
    let digits: Vec<u32> = text
        .chars()
        .map(|c| c.to_digit(10))
        .collect::<Option<_>>()?;
    if digits.len() != 5 {
        return None;
    }
    let first = match digits[0] {
        1 => 1868,
        2 => 1912,
        3 => 1926,
        4 => 1989,
        5 => 2019,
        _ => return None,
    };
    let year = first + digits[1] * 10 + digits[2] - 1;
    let month = digits[3] * 10 + digits[4];
    (1..=12)
        .contains(&month)
        .then(|| format!("{year:04}-{month:02}"))
}

fn claim_of(institution: Option<&Institution>, group: Group) -> Result<Value, String> {
    let ir = institution.ok_or("RE before any IR record (医療機関情報)")?;
    let month = group
        .month
        .as_deref()
        .ok_or("RE field 4 (診療年月) is empty")?;
    let service_month =
        era_month(month).ok_or_else(|| format!("RE field 4 (診療年月) {month:?} is not GYYMM"))?;
    let (insurer, symbol, number, points) = group
        .insurer
        .ok_or("no HO record (保険者): claims without an insurer (公費 only) are not checked")?;
    let mut days = group.visit_days.unwrap_or(group.counted_days);
    days.sort_unstable();
    if days.is_empty() {
        return Err("no service day: neither a JD record nor days in SI/IY/TO".into());
    }
    if group.number.is_empty() {
        return Err("RE field 2 (レセプト番号) is empty".into());
    }
    let mut claim = Map::new();
    let mut put = |k: &str, v: Value| {
        claim.insert(k.to_owned(), v);
    };
    put(
        "claim_id",
        json!(format!("{}-{}-{}", ir.code, ir.billed_month, group.number)),
    );
    put("institution", json!(ir.code));
    put("kind", json!(if group.dpc { "DPC" } else { ir.kind }));
    put("payer", json!(ir.payer));
    put("billed_insurer", json!(insurer));
    if !symbol.is_empty() {
        put("card_symbol", json!(symbol));
    }
    put("card_number", json!(number));
    if let Some(branch) = group.branch {
        put("branch", json!(branch));
    }
    put("service_month", json!(service_month));
    put("service_days", json!(days));
    if let Some((payer_number, recipient, _)) = group.public {
        if !payer_number.is_empty() {
            put("public_expense_payer", json!(payer_number));
            put("recipient_number", json!(recipient));
        }
    }
    put(
        "total_points",
        json!(points
            .parse::<u64>()
            .map_err(|_| format!("HO field 6 (合計点数) {points:?} is not a number"))?),
    );
    Ok(Value::Object(claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
UK,1,13,1,1234567,,テスト医院,202405,00,00
IR,1,13,1,1234567,,テスト医院,50605,00,0312345678
RE,1,1112,50604,ヤマダ　タロウ,1,3550512,70,,,,,,,,,,,,,,,,,,ﾔﾏﾀﾞ ﾀﾛｳ
HO,01130012,あいう,1234,2,850,,,,,,,
SN,1,01,01130012,あいう,1234,01,,
SY,8830417,50604,,,,,
SI,1,1,111000110,,288,1,,,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,,,,,
SI,1,1,112007410,,73,1,,,,,,,,,,,,,,,,1,,,,,,,,,,,,,,,,,,,,
RE,2,1112,50604,サトウ　ハナコ,2,4020101,70
HO,06139000,11,55,1,300
KO,88130109,1234566,,1,300
JD,1,,,,,1,,,,,,,,,,,,,,,,,,,,,,,,,,
RE,3,1112,50604,スズキ,1,3450101,70
KO,12136014,1234566,,1,100
JD,1,1
GO,3,30,1
";

    #[test]
    fn claims_are_read_from_the_records_that_name_them() {
        let claims: Vec<ReceiptClaim> = Reader::new(FILE.as_bytes()).map(Result::unwrap).collect();
        assert_eq!(claims.len(), 3);
        let (line, first) = &claims[0];
        assert_eq!(*line, 3);
        let first = first.as_ref().unwrap();
        assert_eq!(first["claim_id"], "1311234567-50605-1");
        assert_eq!(first["payer"], "SOCIAL_INSURANCE_FUND");
        assert_eq!(first["service_month"], "2024-04");
        assert_eq!(first["billed_insurer"], "01130012");
        assert_eq!(first["branch"], "01");
        assert_eq!(first["service_days"], json!([1, 10]));
        assert_eq!(first["total_points"], 850);
        let second = claims[1].1.as_ref().unwrap();
        assert_eq!(second["service_days"], json!([5]), "JD wins over SI");
        assert_eq!(second["public_expense_payer"], "88130109");
        assert!(claims[2].1.as_ref().unwrap_err().contains("no HO record"));
        // What the reader builds passes the claim rules.
        assert!(crate::claims::parse_claim(first.clone()).is_ok());
    }

    #[test]
    fn era_months_convert() {
        assert_eq!(era_month("50604").as_deref(), Some("2024-04"));
        assert_eq!(era_month("43112").as_deref(), Some("2019-12"));
        assert_eq!(era_month("50613"), None);
        assert_eq!(era_month("5060"), None);
    }

    #[test]
    fn shift_jis_files_are_decoded() {
        let (bytes, _, _) = encoding_rs::SHIFT_JIS.encode("RE,1,1112,50604,ヤマダ");
        assert_eq!(decode(&bytes), "RE,1,1112,50604,ヤマダ");
    }
}
