//! The 資格確認 request by 被保険者証 information (`OQSsiquc01req_…`):
//! `XmlMsg/MessageHeader` and `XmlMsg/MessageBody/QualificationConfirmSearchInfo`,
//! read into domain types. Every refusal names the element and the rule, and
//! carries the error code the result will show; nothing is looked up here.

use ledger::domain::{
    Branch, CardNumber, CardSymbol, Day, IndividualInsuredNumber, InstitutionCode, InsurerNumber,
};
use ledger::error::RuleViolation;

use super::codes::{self, ErrorCode};
use super::xml::{self, Charset, Element};

/// The longest `ArbitraryFileIdentifier` / `ArbitraryIdentifier` accepted.
const MAX_IDENTIFIER: usize = 64;

/// A request, read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// 資格確認日: the day the qualification is checked for.
    pub confirmation_date: Day,
    /// 医療機関コード of the asking institution.
    pub institution: InstitutionCode,
    /// 任意のファイル識別子, echoed in the result.
    pub file_identifier: Option<String>,
    pub search: SearchInfo,
}

/// `QualificationConfirmSearchInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchInfo {
    pub number: IndividualInsuredNumber,
    /// 生年月日: must match the holder's.
    pub birth_date: Day,
    /// 限度額適用認定証提供同意フラグ: the certificates are answered only with it.
    pub limit_consent: bool,
    /// 任意の識別子, echoed.
    pub arbitrary_identifier: Option<String>,
}

/// Why a request cannot be answered; the result carries `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: ErrorCode,
    /// The element at fault (a path under `XmlMsg`), when one is.
    pub element: Option<String>,
    pub message: String,
    /// What could be read of the header, for the result's echo.
    pub header: Box<PartialHeader>,
}

/// The header fields a refused request's result still echoes when readable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartialHeader {
    pub confirmation_date: Option<String>,
    pub institution: Option<String>,
    pub file_identifier: Option<String>,
}

impl Refusal {
    pub fn new(code: ErrorCode, element: Option<&str>, message: impl Into<String>) -> Refusal {
        let message = message.into();
        Refusal {
            code,
            message: match element {
                Some(e) => format!("{e}: {message}"),
                None => message,
            },
            element: element.map(str::to_owned),
            header: Box::default(),
        }
    }

    fn with_header(mut self, header: PartialHeader) -> Refusal {
        self.header = Box::new(header);
        self
    }
}

impl From<xml::XmlError> for Refusal {
    fn from(e: xml::XmlError) -> Refusal {
        let code = match e {
            xml::XmlError::TooLarge { .. } => ErrorCode::TooLarge,
            xml::XmlError::UnknownEncoding(_) => ErrorCode::UnsupportedEncoding,
            xml::XmlError::Undecodable { .. } => ErrorCode::Undecodable,
            _ => ErrorCode::MalformedXml,
        };
        Refusal::new(code, None, e.to_string())
    }
}

const HEADER: &str = "MessageHeader";
const SEARCH: &str = "MessageBody/QualificationConfirmSearchInfo";
const HEADER_ELEMENTS: &[&str] = &[
    "QualificationConfirmationDate",
    "MedicalInstitutionCode",
    "ArbitraryFileIdentifier",
];
const SEARCH_ELEMENTS: &[&str] = &[
    "InsurerNumber",
    "InsuredCardSymbol",
    "InsuredIdentificationNumber",
    "InsuredBranchNumber",
    "Birthdate",
    "LimitApplicationCertificateRelatedConsFlg",
    "ArbitraryIdentifier",
];

/// Reads a request from its bytes. The charset is returned either way when
/// the bytes could be decoded, so the result goes back in it.
pub fn parse(bytes: &[u8]) -> Result<(Request, Charset), (Refusal, Charset)> {
    let (root, charset) = xml::parse(bytes).map_err(|e| (Refusal::from(e), Charset::Utf8))?;
    from_element(&root)
        .map(|r| (r, charset))
        .map_err(|e| (e, charset))
}

/// Reads a request from its element tree.
pub fn from_element(root: &Element) -> Result<Request, Refusal> {
    if root.name != "XmlMsg" {
        return Err(Refusal::new(
            ErrorCode::NotARequest,
            None,
            format!("the root element is <{}>, not <XmlMsg>", root.name),
        ));
    }
    let header = root
        .child(HEADER)
        .ok_or_else(|| Refusal::new(ErrorCode::NotARequest, Some(HEADER), "is missing"))?;
    // Echoed only when valid: a refusal must not repeat what broke it.
    let partial = PartialHeader {
        confirmation_date: header
            .text_of("QualificationConfirmationDate")
            .filter(|t| codes::parse_date(t).is_some())
            .map(str::to_owned),
        institution: header
            .text_of("MedicalInstitutionCode")
            .and_then(|t| InstitutionCode::parse(t).ok())
            .map(|c| c.as_str().to_owned()),
        file_identifier: header
            .text_of("ArbitraryFileIdentifier")
            .filter(|t| printable(t) && t.chars().count() <= MAX_IDENTIFIER)
            .map(str::to_owned),
    };
    read(root, header).map_err(|r| r.with_header(partial))
}

fn read(root: &Element, header: &Element) -> Result<Request, Refusal> {
    known_only(header, HEADER, HEADER_ELEMENTS)?;
    let confirmation_date = date(header, HEADER, "QualificationConfirmationDate")?;
    let institution = value(
        header,
        HEADER,
        "MedicalInstitutionCode",
        InstitutionCode::parse,
    )?
    .ok_or_else(|| missing(HEADER, "MedicalInstitutionCode"))?;
    let file_identifier = identifier(header, HEADER, "ArbitraryFileIdentifier")?;
    let body = root
        .child("MessageBody")
        .ok_or_else(|| Refusal::new(ErrorCode::NotARequest, Some("MessageBody"), "is missing"))?;
    let info = body
        .child("QualificationConfirmSearchInfo")
        .ok_or_else(|| {
            Refusal::new(
                ErrorCode::NotARequest,
                Some(SEARCH),
                "is missing: only the 資格確認 request by 被保険者証 information is answered",
            )
        })?;
    known_only(info, SEARCH, SEARCH_ELEMENTS)?;
    // 6-digit 国保 numbers come padded to eight with spaces (or zeros).
    let insurer = value(info, SEARCH, "InsurerNumber", |t| {
        let t = t.trim();
        let t = if t.len() == 8 && t.starts_with("00") {
            &t[2..]
        } else {
            t
        };
        t.parse::<InsurerNumber>()
    })?
    .ok_or_else(|| missing(SEARCH, "InsurerNumber"))?;
    let symbol = value(info, SEARCH, "InsuredCardSymbol", |t| {
        t.parse::<CardSymbol>()
    })?;
    let number = value(info, SEARCH, "InsuredIdentificationNumber", |t| {
        t.parse::<CardNumber>()
    })?
    .ok_or_else(|| missing(SEARCH, "InsuredIdentificationNumber"))?;
    let branch = value(info, SEARCH, "InsuredBranchNumber", |t| t.parse::<Branch>())?;
    let number = IndividualInsuredNumber::new(insurer, symbol, number, branch).map_err(|e| {
        let element = match e.field.as_str() {
            "insurer_number" => "InsurerNumber",
            "card_symbol" => "InsuredCardSymbol",
            "branch" => "InsuredBranchNumber",
            _ => "InsuredIdentificationNumber",
        };
        Refusal::new(
            ErrorCode::InvalidValue,
            Some(&format!("{SEARCH}/{element}")),
            e.rule,
        )
    })?;
    let birth_date = date(info, SEARCH, "Birthdate")?;
    let consent_text = info
        .text_of("LimitApplicationCertificateRelatedConsFlg")
        .ok_or_else(|| missing(SEARCH, "LimitApplicationCertificateRelatedConsFlg"))?;
    let limit_consent = codes::consent_of(consent_text).ok_or_else(|| {
        Refusal::new(
            ErrorCode::UnknownCode,
            Some(&format!(
                "{SEARCH}/LimitApplicationCertificateRelatedConsFlg"
            )),
            format!("{consent_text:?} is not a code of OQSCD001 (0 未同意, 1 同意)"),
        )
    })?;
    Ok(Request {
        confirmation_date,
        institution,
        file_identifier,
        search: SearchInfo {
            number,
            birth_date,
            limit_consent,
            arbitrary_identifier: identifier(info, SEARCH, "ArbitraryIdentifier")?,
        },
    })
}

fn missing(section: &str, name: &str) -> Refusal {
    Refusal::new(
        ErrorCode::MissingElement,
        Some(&format!("{section}/{name}")),
        "is required",
    )
}

/// Refuses an element the section does not have, rather than ignore a
/// misspelt one; refuses a repeated one too.
fn known_only(section: &Element, path: &str, known: &[&str]) -> Result<(), Refusal> {
    for (i, child) in section.children.iter().enumerate() {
        if !known.contains(&child.name.as_str()) {
            return Err(Refusal::new(
                ErrorCode::UnknownElement,
                Some(&format!("{path}/{}", child.name)),
                format!("is not an element of {path}; known: {}", known.join(", ")),
            ));
        }
        if section.children[..i].iter().any(|c| c.name == child.name) {
            return Err(Refusal::new(
                ErrorCode::InvalidValue,
                Some(&format!("{path}/{}", child.name)),
                "is given more than once",
            ));
        }
    }
    Ok(())
}

fn value<T>(
    section: &Element,
    path: &str,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, RuleViolation>,
) -> Result<Option<T>, Refusal> {
    section
        .text_of(name)
        .map(|t| {
            parse(t).map_err(|e| {
                Refusal::new(
                    ErrorCode::InvalidValue,
                    Some(&format!("{path}/{name}")),
                    e.to_string(),
                )
            })
        })
        .transpose()
}

fn date(section: &Element, path: &str, name: &str) -> Result<Day, Refusal> {
    let text = section.text_of(name).ok_or_else(|| missing(path, name))?;
    codes::parse_date(text).ok_or_else(|| {
        Refusal::new(
            ErrorCode::InvalidValue,
            Some(&format!("{path}/{name}")),
            format!("{text:?} is not a date in YYYYMMDD (西暦)"),
        )
    })
}

fn identifier(section: &Element, path: &str, name: &str) -> Result<Option<String>, Refusal> {
    match section.text_of(name) {
        Some(t) if t.chars().count() > MAX_IDENTIFIER => Err(Refusal::new(
            ErrorCode::InvalidValue,
            Some(&format!("{path}/{name}")),
            format!("is longer than {MAX_IDENTIFIER} characters"),
        )),
        Some(t) if !printable(t) => Err(Refusal::new(
            ErrorCode::InvalidValue,
            Some(&format!("{path}/{name}")),
            "holds a control character",
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

/// No control characters: an echoed identifier must be writable as XML 1.0
/// text in either encoding.
fn printable(text: &str) -> bool {
    !text.chars().any(char::is_control)
}
