//! The result message (`OQSsiquc01res_…`): a [`Finding`] or a [`Refusal`]
//! written as `XmlMsg` in the format's element order. Pure shaping: the
//! lookup was made by the caller ([`super::answer`]).

use ledger::domain::{CertificateKind, Day};
use projectors::model::{CertificateSnapshot, QualificationSnapshot};

use super::codes::{self, QualificationValidity, SegmentOfResult};
use super::request::{Refusal, Request};
use super::xml::{Charset, Element};

/// What the ledger found for a request: its 資格有効性 and the
/// qualifications to report, each with its certificates valid on the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub validity: QualificationValidity,
    pub qualifications: Vec<(QualificationSnapshot, Vec<CertificateSnapshot>)>,
}

fn header(
    at: chrono::DateTime<chrono::Utc>,
    charset: Charset,
    confirmation_date: Option<String>,
    institution: Option<String>,
    file_identifier: Option<String>,
    segment: SegmentOfResult,
) -> Element {
    Element::new("MessageHeader")
        .with(Element::leaf(
            "ProcessExecutionTime",
            codes::execution_time(at),
        ))
        .with_opt("QualificationConfirmationDate", confirmation_date)
        .with_opt("MedicalInstitutionCode", institution)
        .with_opt("ArbitraryFileIdentifier", file_identifier)
        .with(Element::leaf(
            "ReferenceClassification",
            codes::REFERENCE_BY_CARD_DETAILS,
        ))
        .with(Element::leaf("SegmentOfResult", segment.code()))
        .with(Element::leaf(
            "CharacterCodeIdentifier",
            codes::character_code(charset),
        ))
}

/// The result of an answered request.
pub fn answered(
    request: &Request,
    finding: &Finding,
    charset: Charset,
    at: chrono::DateTime<chrono::Utc>,
) -> Element {
    let mut list = Element::new("ResultList");
    for (q, certificates) in &finding.qualifications {
        list = list.with(qualification(request, q, certificates));
    }
    let mut body = Element::new("MessageBody")
        .with(Element::leaf(
            "ProcessingResultStatus",
            codes::PROCESSING_NORMAL,
        ))
        .with(Element::leaf(
            "QualificationValidity",
            finding.validity.code(),
        ));
    if !list.children.is_empty() {
        body = body.with(list);
    }
    body = body.with(search_echo(request));
    Element::new("XmlMsg")
        .with(header(
            at,
            charset,
            Some(codes::date(request.confirmation_date)),
            Some(request.institution.as_str().to_owned()),
            request.file_identifier.clone(),
            SegmentOfResult::Normal,
        ))
        .with(body)
}

/// The result of a refused request: `SegmentOfResult` 9 with `ErrorCode`
/// and `ErrorMessage` in the header, no body.
pub fn refused(refusal: &Refusal, charset: Charset, at: chrono::DateTime<chrono::Utc>) -> Element {
    let h = &refusal.header;
    let mut head = header(
        at,
        charset,
        h.confirmation_date.clone(),
        h.institution.clone(),
        h.file_identifier.clone(),
        SegmentOfResult::Abnormal,
    );
    // ErrorCode and ErrorMessage sit before CharacterCodeIdentifier.
    let last = head.children.pop();
    head = head
        .with(Element::leaf("ErrorCode", refusal.code.code()))
        .with(Element::leaf("ErrorMessage", refusal.message.clone()));
    head.children.extend(last);
    Element::new("XmlMsg").with(head)
}

/// The request's search information, echoed (as the results show it).
fn search_echo(request: &Request) -> Element {
    let s = &request.search;
    Element::new("QualificationConfirmSearchInfo")
        .with(Element::leaf(
            "InsurerNumber",
            codes::insurer_number(s.number.insurer()),
        ))
        .with_opt(
            "InsuredCardSymbol",
            s.number.symbol().map(|x| x.as_str().to_owned()),
        )
        .with(Element::leaf(
            "InsuredIdentificationNumber",
            s.number.number().as_str(),
        ))
        .with_opt(
            "InsuredBranchNumber",
            s.number.branch().map(|x| x.as_str().to_owned()),
        )
        .with(Element::leaf("Birthdate", codes::date(s.birth_date)))
        .with(Element::leaf(
            "LimitApplicationCertificateRelatedConsFlg",
            codes::consent_code(s.limit_consent),
        ))
        .with_opt("ArbitraryIdentifier", s.arbitrary_identifier.clone())
}

/// One `ResultOfQualificationConfirmation`.
fn qualification(
    request: &Request,
    q: &QualificationSnapshot,
    certificates: &[CertificateSnapshot],
) -> Element {
    let on = request.confirmation_date;
    let consent = request.search.limit_consent;
    let mut e = Element::new("ResultOfQualificationConfirmation")
        .with(Element::leaf(
            "InsuredCardClassification",
            codes::card_classification(q.card_kind, q.insurer_kind),
        ))
        .with(Element::leaf(
            "InsurerNumber",
            codes::insurer_number(&q.insurer_number),
        ))
        .with_opt(
            "InsuredCardSymbol",
            q.card_symbol.as_ref().map(|s| s.as_str().to_owned()),
        )
        .with(Element::leaf(
            "InsuredIdentificationNumber",
            q.card_number.as_str(),
        ))
        .with_opt(
            "InsuredBranchNumber",
            q.branch.as_ref().map(|b| b.as_str().to_owned()),
        )
        .with(Element::leaf(
            "PersonalFamilyClassification",
            codes::personal_family(q.relationship),
        ))
        // 全角, the parts separated by a 全角 space.
        .with(Element::leaf(
            "Name",
            q.name.as_str().replace(' ', "\u{3000}"),
        ))
        .with(Element::leaf("NameKana", q.name_kana.to_half_width()))
        .with(Element::leaf("Sex1", codes::sex(q.sex)))
        .with(Element::leaf("Birthdate", codes::date(q.birth_date)))
        .with(Element::leaf(
            "QualificationDate",
            codes::date(q.acquired_on),
        ))
        .with_opt("DisqualificationDate", q.lost_on.map(codes::date))
        .with(Element::leaf(
            "InsuredCardValidDate",
            codes::date(q.acquired_on),
        ))
        .with_opt(
            "InsuredCardExpirationDate",
            q.card_valid_until.map(codes::date),
        )
        .with(Element::leaf(
            "InsuredPartialContributionRatio",
            codes::contribution_ratio(q.copay_percent),
        ))
        .with_opt(
            "PreschoolClassification",
            codes::preschool(q.birth_date, on),
        )
        .with_opt("ReasonOfLoss", q.loss_reason.map(codes::reason_of_loss));
    let of = |kind: CertificateKind| certificates.iter().filter(move |c| c.kind == kind);
    if let Some(c) = of(CertificateKind::ElderlyRecipient).next() {
        e = e.with(
            Element::new("ElderlyRecipientCertificateInfo")
                .with(Element::leaf(
                    "ElderlyRecipientValidStartDate",
                    codes::date(c.valid_from),
                ))
                .with_opt("ElderlyRecipientValidEndDate", end_of(c).map(codes::date))
                .with_opt(
                    "ElderlyRecipientContributionRatio",
                    c.copay_percent.map(codes::contribution_ratio),
                ),
        );
    }
    e = e.with(Element::leaf(
        "LimitApplicationCertificateRelatedConsFlg",
        codes::consent_code(consent),
    ));
    // The certificates are answered only with the holder's consent.
    if !consent {
        return e;
    }
    let limit = certificates
        .iter()
        .find_map(|c| Some((c, codes::limit_certificate_classification(c.kind)?)));
    if let Some((c, classification)) = limit {
        e = e.with(
            Element::new("LimitApplicationCertificateRelatedInfo")
                .with(Element::leaf(
                    "LimitApplicationCertificateClassification",
                    classification,
                ))
                .with_opt(
                    "LimitApplicationCertificateClassificationFlag",
                    c.limit_category.map(codes::limit_category),
                )
                .with(Element::leaf(
                    "LimitApplicationCertificateValidStartDate",
                    codes::date(c.valid_from),
                ))
                .with_opt(
                    "LimitApplicationCertificateValidEndDate",
                    end_of(c).map(codes::date),
                ),
        );
    }
    let mut diseases = Element::new("SpecificDiseasesCertificateList");
    for c in of(CertificateKind::SpecificDisease) {
        diseases = diseases.with(
            Element::new("SpecificDiseasesCertificateInfo")
                .with_opt(
                    "SpecificDiseasesDiseaseCategory",
                    c.disease.map(codes::disease_category),
                )
                .with(Element::leaf(
                    "SpecificDiseasesValidStartDate",
                    codes::date(c.valid_from),
                ))
                .with_opt("SpecificDiseasesValidEndDate", end_of(c).map(codes::date))
                .with_opt(
                    "SpecificDiseasesSelfPay",
                    c.monthly_cap_yen.map(|y| y.to_string()),
                ),
        );
    }
    if !diseases.children.is_empty() {
        e = e.with(diseases);
    }
    e
}

/// A certificate's last day: the earlier of its validity's end and the day
/// before it ended (`ended_on` is the first day not covered).
fn end_of(c: &CertificateSnapshot) -> Option<Day> {
    let ended = c.ended_on.map(Day::pred);
    match (c.valid_until, ended) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
