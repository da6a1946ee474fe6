//! The online check's own XML messages (オンライン資格確認, 資格確認 by
//! 被保険者証 information), so hospital systems plug in with the request
//! they send today: `XmlMsg/MessageHeader` + `QualificationConfirmSearchInfo`
//! in, `ProcessingResultStatus`, `QualificationValidity` and
//! `ResultList/ResultOfQualificationConfirmation` out, YYYYMMDD dates and the
//! format's code values ([`codes`]).
//!
//! [`answer`] is the one entry: bytes in, result bytes out, never a panic
//! and never an error without a result — a request that cannot be read is
//! answered `SegmentOfResult` 9 with an `ErrorCode` and a message naming the
//! element. The HTTP route (`POST /v1/onlinecheck`), the batch check and the
//! folder exchange ([`folder`]) all go through it; this module holds no
//! transport, and the lookup itself is the ledger's.
//!
//! ```text
//! <XmlMsg><MessageHeader><QualificationConfirmationDate>20240402</…>
//!   <MedicalInstitutionCode>1311234567</…></MessageHeader>
//!   <MessageBody><QualificationConfirmSearchInfo><InsurerNumber>01130012</…>
//!   <InsuredCardSymbol>13010017</…><InsuredIdentificationNumber>1234</…>
//!   <InsuredBranchNumber>00</…><Birthdate>19800512</…>
//!   <LimitApplicationCertificateRelatedConsFlg>1</…></…></MessageBody></XmlMsg>
//! ```

pub mod batch;
pub mod codes;
pub mod folder;
pub mod request;
pub mod result;
pub mod xml;

use ledger::domain::{Day, IndividualInsuredNumber, InstitutionCode};
use projectors::model::QualificationSnapshot;
use projectors::{Lookup, LookupKey, Views};

use crate::auth::Caller;
use crate::service::{Ledger, ServiceError};
use codes::{ErrorCode, QualificationValidity};
use request::{Refusal, Request};
use result::Finding;
use xml::Charset;

/// Who sent a request, for scopes and verification records.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    /// Over HTTP, by an authenticated caller: an institution asks only for
    /// its own code, an insurer only about its own numbers.
    Http(&'a Caller),
    /// Through the folder exchange: the folder is the institution's own, so
    /// the request's institution code is taken as the asker.
    Folder,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Answered(QualificationValidity),
    Refused(ErrorCode),
}

/// A result message, ready to send or write.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Status,
    /// The result XML, in `charset`.
    pub body: Vec<u8>,
    pub charset: Charset,
}

/// The verification records' name for answers given through the folder.
pub const FOLDER_ASKER: &str = "folder exchange";

/// What answers a request: the running [`Ledger`] (which keeps verification
/// records), or [`Views`] opened read-only beside it (the CLI's `--data`,
/// which records nothing).
pub trait Source {
    fn eligibility_of_holder(
        &self,
        key: &LookupKey,
        birth_date: Day,
        on: Day,
    ) -> Result<Lookup, ServiceError>;
    fn qualification_named(
        &self,
        number: &IndividualInsuredNumber,
        birth_date: Day,
        on: Day,
    ) -> Result<Option<QualificationSnapshot>, ServiceError>;
    /// Keeps the verification record and meters the answer.
    fn record(
        &self,
        asker: Option<(&InstitutionCode, &str)>,
        key: &LookupKey,
        on: Day,
        lookup: &Lookup,
    ) -> Result<(), ServiceError>;
}

impl Source for Ledger {
    fn eligibility_of_holder(
        &self,
        key: &LookupKey,
        birth_date: Day,
        on: Day,
    ) -> Result<Lookup, ServiceError> {
        Ledger::eligibility_of_holder(self, key, birth_date, on, None)
    }

    fn qualification_named(
        &self,
        number: &IndividualInsuredNumber,
        birth_date: Day,
        on: Day,
    ) -> Result<Option<QualificationSnapshot>, ServiceError> {
        Ledger::qualification_named(self, number, birth_date, on, None)
    }

    fn record(
        &self,
        asker: Option<(&InstitutionCode, &str)>,
        key: &LookupKey,
        on: Day,
        lookup: &Lookup,
    ) -> Result<(), ServiceError> {
        Ok(self.usage().answered(asker, key, on, None, lookup)?)
    }
}

impl Source for Views {
    fn eligibility_of_holder(
        &self,
        key: &LookupKey,
        birth_date: Day,
        on: Day,
    ) -> Result<Lookup, ServiceError> {
        Ok(Views::eligibility_of_holder(
            self, key, birth_date, on, None,
        )?)
    }

    fn qualification_named(
        &self,
        number: &IndividualInsuredNumber,
        birth_date: Day,
        on: Day,
    ) -> Result<Option<QualificationSnapshot>, ServiceError> {
        Ok(Views::qualification_named(
            self, number, birth_date, on, None,
        )?)
    }

    fn record(
        &self,
        _: Option<(&InstitutionCode, &str)>,
        _: &LookupKey,
        _: Day,
        _: &Lookup,
    ) -> Result<(), ServiceError> {
        Ok(())
    }
}

/// Answers one request message.
pub fn answer(source: &dyn Source, channel: Channel<'_>, bytes: &[u8]) -> Answer {
    let (status, element, charset) = answer_element(source, channel, bytes);
    Answer {
        status,
        body: xml::write(&element, charset),
        charset,
    }
}

/// [`answer`], as an element tree (the batch check writes many into one
/// document) and the charset the request came in.
pub fn answer_element(
    source: &dyn Source,
    channel: Channel<'_>,
    bytes: &[u8],
) -> (Status, xml::Element, Charset) {
    let at = chrono::Utc::now();
    let refused = |refusal: Refusal, charset: Charset| {
        (
            Status::Refused(refusal.code),
            result::refused(&refusal, charset, at),
            charset,
        )
    };
    let (request, charset) = match request::parse(bytes) {
        Ok(parsed) => parsed,
        Err((refusal, charset)) => return refused(refusal, charset),
    };
    if let Err(refusal) = permitted(channel, &request) {
        return refused(refusal, charset);
    }
    match find(source, channel, &request) {
        Ok(finding) => (
            Status::Answered(finding.validity),
            result::answered(&request, &finding, charset, at),
            charset,
        ),
        Err(e) => {
            tracing::error!(error = %e, "an online-check lookup failed");
            let mut refusal = Refusal::new(
                ErrorCode::Internal,
                None,
                "the ledger could not answer; the cause has been logged",
            );
            refusal.header.confirmation_date = Some(codes::date(request.confirmation_date));
            refusal.header.institution = Some(request.institution.as_str().to_owned());
            refusal.header.file_identifier = request.file_identifier.clone();
            refused(refusal, charset)
        }
    }
}

fn permitted(channel: Channel<'_>, request: &Request) -> Result<(), Refusal> {
    let Channel::Http(caller) = channel else {
        return Ok(());
    };
    let denied = |element: &str, reason: String| {
        let mut r = Refusal::new(ErrorCode::NotPermitted, Some(element), reason);
        r.header.confirmation_date = Some(codes::date(request.confirmation_date));
        r.header.institution = Some(request.institution.as_str().to_owned());
        r.header.file_identifier = request.file_identifier.clone();
        r
    };
    caller
        .institution("MedicalInstitutionCode", &request.institution)
        .map_err(|d| denied("MessageHeader/MedicalInstitutionCode", d.reason))?;
    caller
        .insurer("InsurerNumber", request.search.number.insurer())
        .map_err(|d| {
            denied(
                "MessageBody/QualificationConfirmSearchInfo/InsurerNumber",
                d.reason,
            )
        })
}

/// The lookup: the holder's qualifications on the day, as known now, and
/// the 資格有効性 of the number asked about among them.
fn find(
    source: &dyn Source,
    channel: Channel<'_>,
    request: &Request,
) -> Result<Finding, ServiceError> {
    let search = &request.search;
    let on = request.confirmation_date;
    let key = LookupKey::Insured(search.number.clone());
    let lookup = source.eligibility_of_holder(&key, search.birth_date, on)?;
    let finding = match &lookup {
        Lookup::Found(eligibility) => {
            let valid: Vec<_> = eligibility
                .qualifications
                .iter()
                .map(|a| (a.qualification.clone(), a.certificates.clone()))
                .collect();
            let named = valid
                .iter()
                .any(|(q, _)| q.insured_number().as_ref() == Some(&search.number));
            if named {
                Finding {
                    validity: if valid.len() > 1 {
                        QualificationValidity::Multiple
                    } else {
                        QualificationValidity::Valid
                    },
                    qualifications: valid,
                }
            } else {
                // Not valid on the day: report the number's own record (its
                // dates, 資格喪失事由), not the newer qualification's.
                let own = source.qualification_named(&search.number, search.birth_date, on)?;
                Finding {
                    validity: if valid.is_empty() {
                        QualificationValidity::Invalid
                    } else {
                        QualificationValidity::InvalidNewerExists
                    },
                    qualifications: own.into_iter().map(|q| (q, Vec::new())).collect(),
                }
            }
        }
        Lookup::NotFound | Lookup::NotLinked { .. } => Finding {
            validity: QualificationValidity::NoMatch,
            qualifications: Vec::new(),
        },
    };
    let asker: Option<(InstitutionCode, String)> = match channel {
        Channel::Http(caller) => caller.as_institution(),
        Channel::Folder => Some((request.institution.clone(), FOLDER_ASKER.to_owned())),
    };
    let asker = asker.as_ref().map(|(code, name)| (code, name.as_str()));
    source.record(asker, &key, on, &lookup)?;
    Ok(finding)
}
