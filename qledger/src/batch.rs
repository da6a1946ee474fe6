//! Batch check (一括照会): many (key, date) pairs answered one result per
//! pair, in order, with an error for a bad line instead of the batch.
//!
//! A pair is a JSON object per line —
//! `{"insurer": "01130012", "symbol": "あいう", "number": "1234", "branch": "01", "on": "2024-04-02"}`
//! or `{"card": "0A1B2C3D4E5F", "birth_date": "1980-05-12"}`, with optional
//! `on`, `as_of`, `birth_date` and a client `id` echoed back — or a CSV row
//! under a header naming those columns. Each result is one JSON line:
//! `{"line": N, "id": …, "status": "found" | "not_found" | "not_linked", …}`
//! or `{"line": N, "status": "error", "error": {"field": …, "rule": …}}`.
//!
//! This module parses and shapes; the caller streams (HTTP, CLI) so memory
//! stays bounded whatever the size, and applies the same rules as single
//! lookups (birth date with a card, scopes, rate limits, records).

use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, IndividualInsuredNumber, InsurerNumber,
    RecordTime,
};
use ledger::error::FieldError;
use projectors::{Lookup, LookupKey};
use serde_json::{json, Map, Value};

/// The longest line read; longer is an error for that line.
pub const MAX_LINE: usize = 64 * 1024;

/// One question of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The client's own id for the pair, echoed in its result.
    pub id: Option<String>,
    pub key: LookupKey,
    pub birth_date: Option<Day>,
    pub on: Day,
    pub as_of: Option<RecordTime>,
}

/// The columns (and JSON fields) a pair may have.
pub const FIELDS: &[&str] = &[
    "id",
    "insurer",
    "symbol",
    "number",
    "branch",
    "card",
    "birth_date",
    "on",
    "as_of",
];

fn parse<T: std::str::FromStr<Err = ledger::error::RuleViolation>>(
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, FieldError> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse::<T>().map(Some).map_err(|e| e.at(name)),
        Some(_) => Err(FieldError::new(name, "must be a string")),
    }
}

/// A pair from its fields (a JSON object, or a CSV row made into one).
pub fn pair_of(fields: &Map<String, Value>) -> Result<Pair, FieldError> {
    if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            unknown,
            format!(
                "is not a field of a batch line; known: {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let card: Option<CardSerial> = match fields.get("card") {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            Some(CardSerial::parse(s).map_err(|e| e.at("card"))?)
        }
        _ => None,
    };
    let insurer: Option<InsurerNumber> = parse(fields, "insurer")?;
    let key = match (card, insurer) {
        (Some(_), Some(_)) => {
            return Err(FieldError::new(
                "card",
                "give a card serial or an insured number, not both",
            ))
        }
        (Some(serial), None) => LookupKey::Card(serial),
        (None, Some(insurer)) => {
            let number: CardNumber = parse(fields, "number")?
                .ok_or_else(|| FieldError::new("number", "is required with insurer"))?;
            let symbol: Option<CardSymbol> = parse(fields, "symbol")?;
            let branch: Option<Branch> = parse(fields, "branch")?;
            let n = IndividualInsuredNumber::new(insurer, symbol, number, branch)
                .map_err(|e| FieldError::new(field_name(&e.field), e.rule))?;
            LookupKey::Insured(n)
        }
        (None, None) => {
            return Err(FieldError::new(
                "insurer",
                "each line asks by insured number (insurer, number, …) or by card",
            ))
        }
    };
    let birth_date: Option<Day> = parse(fields, "birth_date")?;
    if matches!(key, LookupKey::Card(_)) && birth_date.is_none() {
        return Err(FieldError::new(
            "birth_date",
            "is required with a card serial, as the online check asks",
        ));
    }
    let id = match fields.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(FieldError::new("id", "must be a string or a number")),
    };
    if id.as_ref().is_some_and(|i| i.len() > 128) {
        return Err(FieldError::new("id", "is longer than 128 characters"));
    }
    Ok(Pair {
        id,
        key,
        birth_date,
        on: parse(fields, "on")?.unwrap_or_else(Day::today_in_japan),
        as_of: parse(fields, "as_of")?,
    })
}

/// The batch field an [`IndividualInsuredNumber`] error names.
fn field_name(field: &str) -> &str {
    match field {
        "insurer_number" => "insurer",
        "card_symbol" => "symbol",
        "card_number" => "number",
        other => other,
    }
}

/// A pair from one JSON line.
pub fn pair_of_json(line: &str) -> Result<Pair, FieldError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => pair_of(&fields),
        Ok(_) => Err(FieldError::new("", "a batch line is a JSON object")),
        Err(e) => Err(FieldError::new("", format!("not JSON: {e}"))),
    }
}

/// The CSV header's columns, checked.
pub fn csv_header(line: &str) -> Result<Vec<String>, FieldError> {
    let columns = csv_fields(line)?;
    if let Some(unknown) = columns.iter().find(|c| !FIELDS.contains(&c.as_str())) {
        return Err(FieldError::new(
            unknown,
            format!("is not a batch column; known: {}", FIELDS.join(", ")),
        ));
    }
    Ok(columns)
}

fn csv_fields(line: &str) -> Result<Vec<String>, FieldError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    match reader.records().next() {
        Some(Ok(r)) => Ok(r.iter().map(|f| f.trim().to_owned()).collect()),
        Some(Err(e)) => Err(FieldError::new("", format!("not a CSV row: {e}"))),
        None => Ok(Vec::new()),
    }
}

/// A pair from one CSV row under `header`.
pub fn pair_of_csv(header: &[String], line: &str) -> Result<Pair, FieldError> {
    let values = csv_fields(line)?;
    if values.len() != header.len() {
        return Err(FieldError::new(
            "",
            format!("has {} columns, the header {}", values.len(), header.len()),
        ));
    }
    let fields: Map<String, Value> = header
        .iter()
        .zip(values)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), Value::String(v)))
        .collect();
    pair_of(&fields)
}

/// The result line of an answered pair (without its newline): the lookup's
/// JSON with `line` and `id` in front, written in one pass — building a
/// `Value` first cost half as much again as the lookup (benches/interfaces).
pub fn answered(line: u64, pair: &Pair, lookup: &Lookup) -> String {
    let body = serde_json::to_string(lookup).unwrap_or_else(|_| "{}".into());
    // An internally tagged enum: always an object with `status`.
    let rest = body.strip_prefix('{').unwrap_or("}");
    let mut out = String::with_capacity(body.len() + 48);
    out.push_str("{\"line\":");
    out.push_str(&line.to_string());
    if let Some(id) = &pair.id {
        out.push_str(",\"id\":");
        out.push_str(&Value::from(id.as_str()).to_string());
    }
    if rest != "}" {
        out.push(',');
    }
    out.push_str(rest);
    out
}

/// The result line of a pair that got no answer (without its newline).
pub fn failed(line: u64, id: Option<&str>, status: &str, error: &FieldError) -> String {
    let mut v = json!({"line": line, "status": status, "error": error});
    if let Some(id) = id {
        v["id"] = id.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_name_the_field_at_fault() {
        let p = pair_of_json(
            r#"{"insurer": "01130012", "symbol": "あいう", "number": "1234", "branch": "01", "on": "2024-04-02", "id": 7}"#,
        )
        .unwrap();
        assert_eq!(p.id.as_deref(), Some("7"));
        assert_eq!(p.on, "2024-04-02".parse().unwrap());
        let e = pair_of_json(r#"{"card": "0A1B"}"#).unwrap_err();
        assert_eq!(e.field, "birth_date");
        let e = pair_of_json(r#"{"insurer": "01130013", "number": "1"}"#).unwrap_err();
        assert_eq!(e.field, "insurer");
        let e =
            pair_of_json(r#"{"insurer": "01130012", "number": "1", "colour": "x"}"#).unwrap_err();
        assert_eq!(e.field, "colour");
        assert!(pair_of_json("[1]").is_err());
        assert!(pair_of_json("{").is_err());
    }

    #[test]
    fn csv_rows_follow_their_header() {
        let header = csv_header("id,insurer,symbol,number,branch,card,birth_date,on").unwrap();
        let p = pair_of_csv(&header, "a,01130012,あいう,1234,01,,,2024-04-02").unwrap();
        assert!(matches!(p.key, LookupKey::Insured(_)));
        let p = pair_of_csv(&header, "b,,,,,0A1B,1980-05-12,").unwrap();
        assert!(matches!(p.key, LookupKey::Card(_)));
        assert!(pair_of_csv(&header, "c,01130012").is_err());
        assert_eq!(csv_header("insurer,wat").unwrap_err().field, "wat");
    }

    #[test]
    fn an_answer_line_is_the_lookup_with_line_and_id_in_front() {
        let pair = pair_of_json(
            r#"{"id": "a\"b", "insurer": "01130012", "number": "1234", "branch": "01"}"#,
        )
        .unwrap();
        let line = answered(7, &pair, &Lookup::NotFound);
        assert_eq!(line, r#"{"line":7,"id":"a\"b","status":"not_found"}"#);
        let since: Day = "2024-04-01".parse().unwrap();
        let line: Value =
            serde_json::from_str(&answered(8, &pair, &Lookup::NotLinked { since })).unwrap();
        assert_eq!(
            line,
            json!({"line": 8, "id": "a\"b", "status": "not_linked", "since": "2024-04-01"})
        );
    }
}
