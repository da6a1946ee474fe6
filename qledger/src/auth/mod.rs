//! Who may do what: roles, their scopes, and the callers the HTTP API
//! authenticates (API tokens, mutual-TLS client certificates).
//!
//! A [`Principal`] is a configured client: a role and the insurer numbers,
//! municipalities, institution or payer organisation it acts for. Routes ask
//! a [`Caller`] for an [`Action`] and for each scoped value they touch; the
//! answer is `Ok` or a [`Denied`] carrying the reason the client is told.
//!
//! | role | may |
//! | --- | --- |
//! | `insurer` | publish events for its insurer numbers under its publisher id; eligibility by its own insured numbers; its overlap notices |
//! | `aggregator` | the same, for the 国保 insurers (and municipalities) it serves — the NHI aggregation system |
//! | `institution` | eligibility; check its own claims before submission; its own verification records |
//! | `payer` | eligibility; register, check, read, withdraw claims of its payer organisation; its decision feed |
//! | `portal` | card-link requests and unlinks (the holder's channel), and their status |
//! | `auditor` | read everything (history, dead letters, claims, feeds, notices, verification records, metering), change nothing |
//! | `monitor` | `/metrics` only |
//! | `admin` | `/metrics`, the metering and the notices outbox; tokens are managed with `qledger tokens` |
//!
//! This module holds no secrets and reads no files: the token file is
//! [`tokens`]; the certificate mapping lives in the settings file.

pub mod tokens;

use std::fmt;
use std::sync::Arc;

use ledger::domain::{
    InstitutionCode, InsurerKind, InsurerNumber, MunicipalityCode, PayerOrganisation, PublisherId,
};
use ledger::event::{Event, EventType, Payload};
use serde::{Deserialize, Serialize};

/// What a client is for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// 保険者: publishes its own insurer numbers' qualifications.
    Insurer,
    /// 国保中央会 / NHI aggregation system: publishes for the 国保 insurers it serves.
    Aggregator,
    /// 医療機関・薬局: asks eligibility, checks its claims.
    Institution,
    /// 審査支払機関 (支払基金, 国保連合会): claims of its organisation.
    Payer,
    /// マイナポータル: the card holder's link requests.
    Portal,
    /// Reads everything, changes nothing.
    Auditor,
    /// Scrapes `/metrics`.
    Monitor,
    /// Operations: metrics and the notices outbox.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Insurer => "insurer",
            Role::Aggregator => "aggregator",
            Role::Institution => "institution",
            Role::Payer => "payer",
            Role::Portal => "portal",
            Role::Auditor => "auditor",
            Role::Monitor => "monitor",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may take the action at all (scopes are checked after).
    pub fn may(self, action: Action) -> bool {
        use Action as A;
        use Role as R;
        match action {
            A::Publish => matches!(self, R::Insurer | R::Aggregator),
            A::EligibilityByNumber => matches!(
                self,
                R::Insurer | R::Aggregator | R::Institution | R::Payer | R::Auditor
            ),
            A::EligibilityByCard => matches!(self, R::Institution | R::Payer | R::Auditor),
            A::BatchCheck => Role::may(self, A::EligibilityByNumber),
            A::History | A::DeadLetters => matches!(self, R::Auditor),
            A::LinkCard => matches!(self, R::Portal),
            A::LinkRequestStatus => matches!(self, R::Portal | R::Auditor),
            A::NoticesOutbox => matches!(self, R::Auditor | R::Admin),
            A::RegisterClaims => matches!(self, R::Payer),
            A::CheckClaims => matches!(self, R::Payer | R::Institution),
            A::ReadClaims => matches!(self, R::Payer | R::Auditor),
            A::Overlaps => matches!(self, R::Insurer | R::Aggregator | R::Auditor),
            A::ReadSchemas | A::WhoAmI => true,
            A::Verifications => matches!(self, R::Institution | R::Auditor),
            A::Metering => matches!(self, R::Insurer | R::Aggregator | R::Auditor | R::Admin),
            A::WriteSchemas => matches!(self, R::Insurer | R::Aggregator | R::Admin),
            A::Metrics => matches!(self, R::Monitor | R::Admin),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a request does, as far as authorisation is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Publish,
    EligibilityByNumber,
    EligibilityByCard,
    /// Many pairs at once; each pair is then authorised on its own.
    BatchCheck,
    History,
    DeadLetters,
    LinkCard,
    LinkRequestStatus,
    NoticesOutbox,
    RegisterClaims,
    CheckClaims,
    ReadClaims,
    Overlaps,
    ReadSchemas,
    WriteSchemas,
    Metrics,
    /// Who the credentials name: any client.
    WhoAmI,
    /// An institution's verification records.
    Verifications,
    /// Answers served and insured persons per insurer and month.
    Metering,
}

impl Action {
    /// How the action is named to a refused client.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Publish => "publish events",
            Action::EligibilityByNumber => "ask eligibility by insured number",
            Action::EligibilityByCard => "ask eligibility by card",
            Action::BatchCheck => "check eligibility in batches",
            Action::History => "read a person's history",
            Action::DeadLetters => "read dead letters",
            Action::LinkCard => "request or end card links",
            Action::LinkRequestStatus => "read link requests",
            Action::NoticesOutbox => "read the notices outbox",
            Action::RegisterClaims => "register or withdraw claims",
            Action::CheckClaims => "check claims",
            Action::ReadClaims => "read claims and decisions",
            Action::Overlaps => "read overlap notices",
            Action::ReadSchemas => "read schemas",
            Action::WriteSchemas => "register schemas",
            Action::Metrics => "read metrics",
            Action::WhoAmI => "ask who it is",
            Action::Verifications => "read verification records",
            Action::Metering => "read the metering",
        }
    }
}

/// A configured client: its role and what it acts for. Names and scopes are
/// organisational, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// A label for logs and `qledger tokens list`, e.g. `kyokai-tokyo`.
    pub name: String,
    pub role: Role,
    /// The `envelope.source` its events must carry (insurer, aggregator),
    /// or the source of the events made for it (payer, portal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<PublisherId>,
    /// 保険者番号 it acts for (insurer, aggregator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insurers: Vec<InsurerNumber>,
    /// 地方公共団体コード whose subsidies it publishes (insurer, aggregator).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub municipalities: Vec<MunicipalityCode>,
    /// 医療機関コード (institution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub institution: Option<InstitutionCode>,
    /// 審査支払機関 (payer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<PayerOrganisation>,
}

/// A principal that does not have what its role needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: a {role} needs {needs}")]
pub struct IncompletePrincipal {
    pub name: String,
    pub role: Role,
    pub needs: &'static str,
}

impl Principal {
    /// A principal of `role` with no scope yet.
    pub fn new(name: impl Into<String>, role: Role) -> Principal {
        Principal {
            name: name.into(),
            role,
            publisher: None,
            insurers: Vec::new(),
            municipalities: Vec::new(),
            institution: None,
            payer: None,
        }
    }

    /// Whether the principal has what its role needs.
    pub fn check(&self) -> Result<(), IncompletePrincipal> {
        let needs = match self.role {
            Role::Insurer | Role::Aggregator if self.publisher.is_none() => {
                Some("a publisher id (the envelope.source of its events)")
            }
            Role::Insurer | Role::Aggregator if self.insurers.is_empty() => {
                Some("at least one insurer number")
            }
            Role::Aggregator
                if self.insurers.iter().any(|i| {
                    !matches!(
                        i.kind(),
                        InsurerKind::NationalHealthInsurance | InsurerKind::NhiRetiree
                    )
                }) =>
            {
                Some("国保 insurer numbers only (市町村国保, 国保組合, 退職者医療)")
            }
            Role::Institution if self.institution.is_none() => Some("an institution code"),
            Role::Payer if self.payer.is_none() => Some("a payer organisation"),
            _ => None,
        };
        match needs {
            Some(needs) => Err(IncompletePrincipal {
                name: self.name.clone(),
                role: self.role,
                needs,
            }),
            None => Ok(()),
        }
    }
}

/// Why a request, or one event of a batch, is refused (a 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Denied {
    /// The field or parameter whose value is out of scope, if one is.
    pub field: Option<String>,
    pub reason: String,
}

impl Denied {
    pub fn new(reason: impl Into<String>) -> Denied {
        Denied {
            field: None,
            reason: reason.into(),
        }
    }

    pub fn at(field: &str, reason: impl Into<String>) -> Denied {
        Denied {
            field: Some(field.to_owned()),
            reason: reason.into(),
        }
    }
}

/// Who is asking: an authenticated principal, or anyone on a server run
/// with `--no-auth` (development on loopback only).
#[derive(Debug, Clone)]
pub enum Caller {
    Unrestricted,
    Principal(Arc<Principal>),
}

impl Caller {
    /// The principal's name for logs (`-` without authentication).
    pub fn name(&self) -> &str {
        match self {
            Caller::Unrestricted => "-",
            Caller::Principal(p) => &p.name,
        }
    }

    /// The principal, for `/v1/whoami` (`None` without authentication).
    pub fn principal_shown(&self) -> Option<&Principal> {
        self.principal()
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Caller::Unrestricted => None,
            Caller::Principal(p) => Some(p.role),
        }
    }

    fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Unrestricted => None,
            Caller::Principal(p) => Some(p),
        }
    }

    /// Whether the caller's role may take `action`.
    pub fn allow(&self, action: Action) -> Result<(), Denied> {
        match self.principal() {
            Some(p) if !p.role.may(action) => Err(Denied::new(format!(
                "the {} role may not {}",
                p.role,
                action.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// The insurer number is one the caller acts for. Roles without an
    /// insurer scope (institutions, payers, auditors) may name any.
    pub fn insurer(&self, field: &str, insurer: &InsurerNumber) -> Result<(), Denied> {
        match self.principal() {
            Some(p) if matches!(p.role, Role::Insurer | Role::Aggregator) => {
                if p.insurers.contains(insurer) {
                    Ok(())
                } else {
                    Err(Denied::at(
                        field,
                        format!("insurer {insurer} is not one this client acts for"),
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    /// The insurer numbers a scoped caller is limited to, if it is.
    pub fn insurer_scope(&self) -> Option<&[InsurerNumber]> {
        match self.principal() {
            Some(p) if matches!(p.role, Role::Insurer | Role::Aggregator) => Some(&p.insurers),
            _ => None,
        }
    }

    /// The payer organisation is the caller's (payers only are scoped).
    pub fn payer(&self, field: &str, payer: PayerOrganisation) -> Result<(), Denied> {
        match self.principal() {
            Some(p) if p.role == Role::Payer && p.payer != Some(payer) => Err(Denied::at(
                field,
                format!("payer organisation {payer} is not this client's"),
            )),
            _ => Ok(()),
        }
    }

    /// The institution code and client name of an institution caller: whose
    /// verification records its answers become.
    pub fn as_institution(&self) -> Option<(InstitutionCode, String)> {
        self.principal()
            .filter(|p| p.role == Role::Institution)
            .and_then(|p| Some((p.institution.clone()?, p.name.clone())))
    }

    /// The payer organisation a payer caller acts for.
    pub fn own_payer(&self) -> Option<PayerOrganisation> {
        self.principal()
            .filter(|p| p.role == Role::Payer)
            .and_then(|p| p.payer)
    }

    /// The institution code is the caller's (institutions only are scoped).
    pub fn institution(&self, field: &str, code: &InstitutionCode) -> Result<(), Denied> {
        match self.principal() {
            Some(p) if p.role == Role::Institution && p.institution.as_ref() != Some(code) => {
                Err(Denied::at(
                    field,
                    "the institution code is not this client's".to_owned(),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The source of the events the ledger makes for the caller: its
    /// publisher id (`default` if it has none). An unauthenticated caller
    /// may name one; an authenticated one may only repeat its own.
    pub fn source(
        &self,
        field: &str,
        given: Option<PublisherId>,
        default: &str,
    ) -> Result<PublisherId, Denied> {
        let default =
            || PublisherId::parse(default).map_err(|e| Denied::at(field, e.rule().to_owned()));
        match self.principal() {
            None => given.map_or_else(default, Ok),
            Some(p) => {
                let own = p.publisher.clone().map_or_else(default, Ok)?;
                match given {
                    Some(g) if g != own => Err(Denied::at(
                        field,
                        format!("must be this client's publisher id ({own}) or left out"),
                    )),
                    _ => Ok(own),
                }
            }
        }
    }

    /// Whether the caller may publish this event through `POST /v1/events`.
    ///
    /// The source must be the caller's publisher id, and every insurer
    /// number or municipality the event names must be in its scope. Events
    /// that only name an existing record (a change, a loss, a certificate)
    /// are held to the record's publisher by the projector, which dead-letters
    /// a change by any other source.
    pub fn publish(&self, event: &Event) -> Result<(), Denied> {
        let t = event.event_type();
        if t.is_notice_progress() {
            return Err(Denied::at(
                "type",
                format!(
                    "{} events are written by the ledger's notifier only",
                    t.name()
                ),
            ));
        }
        let Some(p) = self.principal() else {
            return Ok(());
        };
        self.allow(Action::Publish)?;
        if t.is_claim() {
            return Err(Denied::at(
                "type",
                "claims are registered by payers through /v1/claims",
            ));
        }
        if matches!(
            t,
            EventType::CardLinkRequested | EventType::CardLinkRejected | EventType::CardUnlinked
        ) {
            return Err(Denied::at(
                "type",
                format!(
                    "{} events come from the ledger's card-link decisions (/v1/card-links)",
                    t.name()
                ),
            ));
        }
        if p.publisher.as_ref() != Some(&event.envelope.source) {
            return Err(Denied::at(
                "envelope.source",
                format!(
                    "must be this client's publisher id ({})",
                    p.publisher.as_ref().map_or("none", |s| s.as_str())
                ),
            ));
        }
        match &event.payload {
            Payload::QualificationAcquired(a) => self.insurer("insurer_number", &a.insurer_number),
            Payload::CardLinked(l) => self.insurer("insurer_number", &l.insurer_number),
            Payload::SubsidyGranted(g) if !p.municipalities.contains(&g.municipality) => {
                Err(Denied::at(
                    "municipality",
                    "the municipality is not one this client acts for",
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::event::examples;

    fn insurer(n: &str) -> Caller {
        let mut p = Principal::new("ins", Role::Insurer);
        p.publisher = Some(format!("insurer-{n}").parse().unwrap());
        p.insurers = vec![n.parse().unwrap()];
        Caller::Principal(Arc::new(p))
    }

    #[test]
    fn roles_need_their_scope() {
        let p = Principal::new("x", Role::Insurer);
        assert!(p.check().unwrap_err().needs.contains("publisher"));
        assert!(Principal::new("x", Role::Payer).check().is_err());
        assert!(Principal::new("x", Role::Auditor).check().is_ok());
        let mut agg = Principal::new("agg", Role::Aggregator);
        agg.publisher = Some("nhi-aggregation".parse().unwrap());
        agg.insurers = vec!["138057".parse().unwrap()];
        assert!(agg.check().is_ok());
        agg.insurers.push("01130012".parse().unwrap());
        assert!(agg.check().unwrap_err().needs.contains("国保"));
    }

    #[test]
    fn an_auditor_reads_and_never_writes() {
        for a in [Action::History, Action::ReadClaims, Action::DeadLetters] {
            assert!(Role::Auditor.may(a));
        }
        for a in [Action::Publish, Action::RegisterClaims, Action::LinkCard] {
            assert!(!Role::Auditor.may(a));
        }
    }

    #[test]
    fn an_insurer_publishes_only_for_its_own_numbers() {
        let event = examples::all().remove(0);
        let Payload::QualificationAcquired(a) = &event.payload else {
            panic!()
        };
        let own = insurer(a.insurer_number.as_str());
        let mut event = event.clone();
        event.envelope.source = own.source("source", None, "x").unwrap();
        assert_eq!(own.publish(&event), Ok(()));
        let other = insurer("06130017");
        let denied = other.publish(&event).unwrap_err();
        assert_eq!(denied.field.as_deref(), Some("envelope.source"));
        let mut p = Principal::new("ins", Role::Insurer);
        p.publisher = Some(event.envelope.source.clone());
        p.insurers = vec!["06130017".parse().unwrap()];
        let denied = Caller::Principal(Arc::new(p)).publish(&event).unwrap_err();
        assert_eq!(denied.field.as_deref(), Some("insurer_number"));
        assert!(Caller::Unrestricted.publish(&event).is_ok());
    }
}
