//! The notifier: works the notices outbox until every completion notice is
//! published, e-mailed where an address was given, and every contact key
//! is destroyed.
//!
//! The outbox is a view (`Views::notice_outbox`), derived from the log like
//! every other; the notifier's progress goes back into the log as events in
//! the person's partition, so it survives crashes and rebuilds and shows in
//! the person's history:
//!
//! 1. **Publish.** The notice (JSON, no personal data but the person's
//!    opaque link number and the card serial) is appended to the notices log
//!    — the `qledger.notices` topic, or `notices/` in the data directory —
//!    under its own id, then `NoticePublished` is logged. A crash between the
//!    two publishes it again with the same id, which consumers de-duplicate
//!    (the embedded log itself refuses the second copy).
//! 2. **E-mail**, when the holder gave an address and a relay is configured.
//!    The SMTP transaction is opened up to `DATA`; then `NoticeSendStarted`
//!    is logged (write-ahead); then the message is sent and the reply logged
//!    as `NoticeDelivered` or `NoticeDeliveryFailed` (with a retry time,
//!    exponential back-off, or parked after the last attempt or a permanent
//!    refusal). An attempt found started but unrecorded was cut short by a
//!    crash while the relay had the message: it may have been delivered, so
//!    it is parked as `OUTCOME_UNKNOWN`, never sent twice (RFC 1047's
//!    window, narrowed to the message transfer itself).
//! 3. **Erase.** Once the notice is delivered or parked (or the request was
//!    rejected), the contact key is destroyed and `ContactErased` logged.
//!
//! Only the partitions this process projects are worked (a consumer
//! group's share, with Kafka), so two processes never work one notice.
//! This module must not log or store addresses; they exist in memory only
//! for the length of one SMTP transaction.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ledger::domain::{LinkNumber, PublisherId, RecordTime, RequestId, SealedContact};
use ledger::event::{
    avro, ContactErased, Event, NoticeDelivered, NoticeDeliveryFailed, NoticeFailure,
    NoticePublished, NoticeSendStarted, Payload,
};
use ledger::log::{AppendRequest, EventLog};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::ClientId;
use lettre::Message;
use projectors::model::{LinkRequestStatus, NoticeState, NoticeStatus};
use projectors::Assignment;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::contact::{ContactError, ContactKeys};
use crate::service::{Core as Ledger, ServiceError, Submitted, Wait};

/// The publisher id of the notifier's events.
pub const NOTIFIER_SOURCE: &str = "qledger.notifier";

/// How long a progress event may take to reach the views.
const PROJECTED_WITHIN: Duration = Duration::from_secs(10);

/// How long a round waits for the views to reach the log's end as it was
/// when the round began; longer, and the round is skipped until the next.
const CAUGHT_UP_WITHIN: Duration = Duration::from_millis(500);

/// The `[notices]` table of the settings file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeSettings {
    /// The SMTP relay; without one, notices are published but not e-mailed
    /// and wait (keeping their key) until a relay is configured.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
    /// E-mail attempts before a notice is parked.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubled after each further one.
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    /// The longest wait between attempts.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How often the outbox is looked at.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
}

impl Default for NoticeSettings {
    fn default() -> NoticeSettings {
        NoticeSettings {
            smtp: None,
            max_attempts: default_max_attempts(),
            retry_base_ms: default_retry_base_ms(),
            retry_max_ms: default_retry_max_ms(),
            poll_ms: default_poll_ms(),
        }
    }
}

fn default_max_attempts() -> u32 {
    5
}
fn default_retry_base_ms() -> u64 {
    60_000
}
fn default_retry_max_ms() -> u64 {
    3_600_000
}
fn default_poll_ms() -> u64 {
    1_000
}

/// How to reach the SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (the default), `tls` (implicit, port 465) or `none`
    /// (plain; only for a relay on the same host).
    #[serde(default)]
    pub tls: SmtpTls,
    /// The sender (`From` and the envelope sender).
    pub from: String,
    /// Login, with the password in the environment variable `password_env`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_smtp_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_smtp_timeout_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    Starttls,
    Tls,
    None,
}

/// What the notices topic carries: one per completed link a notice was
/// asked for. Keyed by the person's link number; `notice_id` de-duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkCompletionNotice {
    pub notice_id: Uuid,
    pub request_id: RequestId,
    /// 紐付番号: the person's opaque id.
    pub link: LinkNumber,
    pub card_serial: ledger::domain::CardSerial,
    /// Date (Japan) the link took effect.
    pub linked_on: ledger::domain::Day,
    /// Whether an e-mail follows too.
    pub email: bool,
}

/// Why the notifier could not make progress on a notice this round.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Views(#[from] projectors::ProjectorError),
    #[error(transparent)]
    Log(#[from] ledger::log::LogError),
    #[error(transparent)]
    Contact(#[from] ContactError),
    #[error("the notifier's event was refused: {0}")]
    Refused(String),
    #[error("the log record of the request's {0} event cannot be read")]
    MissingEvent(&'static str),
    #[error("SMTP settings: {0}")]
    Settings(String),
}

/// The outcome of the SMTP transaction, kept in memory until it is logged.
#[derive(Debug, Clone)]
enum Outcome {
    Delivered(String),
    Failed(NoticeFailure, String),
}

/// Works the outbox of one ledger.
pub struct Notifier {
    settings: NoticeSettings,
    notices: Arc<dyn EventLog>,
    contacts: Arc<ContactKeys>,
    assignment: Arc<Assignment>,
    source: PublisherId,
    /// Outcomes this process saw but could not log yet (the log was down):
    /// logged on the next round instead of being taken for a crash.
    unlogged: HashMap<RequestId, (u32, Outcome)>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    pub fn new(
        settings: NoticeSettings,
        notices: Arc<dyn EventLog>,
        contacts: Arc<ContactKeys>,
        assignment: Arc<Assignment>,
    ) -> Notifier {
        Notifier {
            settings,
            notices,
            contacts,
            assignment,
            source: NOTIFIER_SOURCE.parse().expect("a valid publisher id"),
            unlogged: HashMap::new(),
        }
    }

    /// Works the outbox every `poll_ms` until `stop` is set.
    pub fn run(mut self, ledger: &Ledger, stop: &AtomicBool) {
        let poll = Duration::from_millis(self.settings.poll_ms.max(10));
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.round_until(ledger, stop) {
                tracing::warn!(error = %e, "notifier round failed; retrying");
            }
            let until = Instant::now() + poll;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10).min(poll));
            }
        }
    }

    /// One pass over the outbox. Errors of one notice do not hold up the
    /// others; the first is returned.
    pub fn round(&mut self, ledger: &Ledger) -> Result<(), NotifierError> {
        self.round_until(ledger, &AtomicBool::new(false))
    }

    /// [`Notifier::round`], ending early once `stop` is set. A round starts
    /// only when the views have caught up with the log in every partition
    /// this notifier owns: the outbox of views still being rebuilt would
    /// show progress already made as not made (and an e-mail as not sent).
    fn round_until(&mut self, ledger: &Ledger, stop: &AtomicBool) -> Result<(), NotifierError> {
        for partition in 0..ledger.log().partitions() {
            if self.assignment.owns(partition) && !ledger.caught_up(partition, CAUGHT_UP_WITHIN)? {
                return Ok(());
            }
        }
        let mut first = None;
        for (link, status) in ledger.views().notice_outbox()? {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if !self.assignment.owns(status.requested_by.partition) {
                continue;
            }
            if let Err(e) = self.work(ledger, &link, &status) {
                tracing::warn!(request_id = %status.request_id, error = %e, "notice not advanced");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn work(
        &mut self,
        ledger: &Ledger,
        link: &LinkNumber,
        status: &LinkRequestStatus,
    ) -> Result<(), NotifierError> {
        let Some(notice) = status.notice.as_ref().filter(|n| !n.is_settled()) else {
            // Settled or never due: only the key is left to destroy.
            if let Some(key_id) = status.contact_key {
                self.contacts.erase(key_id)?;
                self.log(
                    ledger,
                    link,
                    ContactErased {
                        request_id: status.request_id.clone(),
                        key_id,
                    }
                    .into(),
                )?;
                tracing::info!(request_id = %status.request_id, "contact address erased");
            }
            return Ok(());
        };
        match notice.state {
            NoticeState::Pending => self.publish(ledger, link, status, notice),
            NoticeState::Published => {
                let due = notice.retry_at.is_none_or(|at| at <= Utc::now());
                match &self.settings.smtp {
                    Some(_) if due => self.email(ledger, link, status, notice),
                    _ => Ok(()),
                }
            }
            NoticeState::Sending => {
                let attempt = notice.attempts;
                let outcome = match self.unlogged.get(&status.request_id) {
                    Some((a, outcome)) if *a == attempt => outcome.clone(),
                    _ => Outcome::Failed(
                        NoticeFailure::OutcomeUnknown,
                        "the process stopped after handing the e-mail to the relay and before recording its reply; it may have been delivered, so it is not sent again".into(),
                    ),
                };
                self.record(ledger, link, status, attempt, outcome)
            }
            NoticeState::Delivered | NoticeState::Parked => Ok(()),
        }
    }

    fn publish(
        &mut self,
        ledger: &Ledger,
        link: &LinkNumber,
        status: &LinkRequestStatus,
        notice: &NoticeStatus,
    ) -> Result<(), NotifierError> {
        let linked_on = linked_on(ledger, notice)?;
        let body = LinkCompletionNotice {
            notice_id: notice.notice_id,
            request_id: status.request_id.clone(),
            link: link.clone(),
            card_serial: status.card_serial.clone(),
            linked_on,
            email: notice.email,
        };
        self.notices.append(vec![AppendRequest {
            key: link.as_str().as_bytes().to_vec(),
            event_id: notice.notice_id,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                (
                    "qledger.notice_type".into(),
                    b"LinkCompletionNotice".to_vec(),
                ),
            ],
            value: serde_json::to_vec(&body).expect("a notice serialises"),
            timestamp: Some(RecordTime::now()),
        }])?;
        self.log(
            ledger,
            link,
            NoticePublished {
                request_id: status.request_id.clone(),
                notice_id: notice.notice_id,
            }
            .into(),
        )
    }

    fn email(
        &mut self,
        ledger: &Ledger,
        link: &LinkNumber,
        status: &LinkRequestStatus,
        notice: &NoticeStatus,
    ) -> Result<(), NotifierError> {
        let smtp = self.settings.smtp.clone().expect("checked by the caller");
        let attempt = notice.attempts + 1;
        let request_id = &status.request_id;
        let sealed = match read_event(
            ledger,
            status.requested_by.partition,
            status.requested_by.offset,
        )? {
            Payload::CardLinkRequested(r) => r.contact,
            _ => return Err(NotifierError::MissingEvent("CardLinkRequested")),
        };
        let address = match sealed
            .as_ref()
            .map(|s: &SealedContact| self.contacts.unseal(request_id, s))
        {
            Some(Ok(a)) => a,
            Some(Err(ContactError::Io { path, source })) => {
                return Err(ContactError::Io { path, source }.into())
            }
            Some(Err(e)) => {
                let outcome = Outcome::Failed(NoticeFailure::ContactUnavailable, e.to_string());
                return self.record(ledger, link, status, attempt, outcome);
            }
            None => {
                let outcome = Outcome::Failed(
                    NoticeFailure::ContactUnavailable,
                    "the request carries no sealed address".into(),
                );
                return self.record(ledger, link, status, attempt, outcome);
            }
        };
        let message_id = format!("<{}@notices.qledger.invalid>", notice.notice_id);
        let linked_on = linked_on(ledger, notice)?;
        let message = compose(&smtp, address.expose().clone(), &message_id, linked_on)?;
        // Everything up to DATA: a failure here sent nothing.
        let mut conn = match open_transaction(&smtp, &message) {
            Ok(c) => c,
            Err(e) => {
                let outcome = Outcome::Failed(failure_of(&e), scrub(&e.to_string()));
                return self.record(ledger, link, status, attempt, outcome);
            }
        };
        drop(address);
        fail::fail_point!("notice::before_send", |_| std::process::abort());
        self.log(
            ledger,
            link,
            NoticeSendStarted {
                request_id: request_id.clone(),
                attempt,
                message_id,
            }
            .into(),
        )?;
        let outcome = match conn.message(&message.formatted()) {
            Ok(reply) => Outcome::Delivered(scrub(&reply_text(&reply))),
            Err(e) => Outcome::Failed(failure_of(&e), scrub(&e.to_string())),
        };
        let _ = conn.quit();
        fail::fail_point!("notice::after_send", |_| std::process::abort());
        self.unlogged
            .insert(request_id.clone(), (attempt, outcome.clone()));
        self.record(ledger, link, status, attempt, outcome)
    }

    /// Logs an attempt's outcome, choosing retry or park for a failure.
    fn record(
        &mut self,
        ledger: &Ledger,
        link: &LinkNumber,
        status: &LinkRequestStatus,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<(), NotifierError> {
        let request_id = status.request_id.clone();
        let payload: Payload = match outcome {
            Outcome::Delivered(relay_reply) => {
                tracing::info!(request_id = %request_id, attempt, "notice e-mail delivered");
                NoticeDelivered {
                    request_id: request_id.clone(),
                    attempt,
                    relay_reply,
                }
                .into()
            }
            Outcome::Failed(failure, detail) => {
                let retry_at = (failure == NoticeFailure::TemporaryFailure
                    && attempt < self.settings.max_attempts)
                    .then(|| retry_time(&self.settings, attempt, Utc::now()));
                tracing::warn!(request_id = %request_id, attempt, ?failure,
                    parked = retry_at.is_none(), "notice e-mail failed");
                NoticeDeliveryFailed {
                    request_id: request_id.clone(),
                    attempt,
                    failure,
                    detail: truncate(&detail, 500),
                    retry_at,
                }
                .into()
            }
        };
        self.log(ledger, link, payload)?;
        self.unlogged.remove(&request_id);
        Ok(())
    }

    fn log(
        &self,
        ledger: &Ledger,
        link: &LinkNumber,
        payload: Payload,
    ) -> Result<(), NotifierError> {
        let event = Event::new(&self.source, link, payload);
        for outcome in ledger.submit(vec![event], Wait::Projected(PROJECTED_WITHIN))? {
            match outcome {
                Submitted::Rejected { error } => {
                    return Err(NotifierError::Refused(error.to_string()))
                }
                Submitted::Accepted(r) | Submitted::Duplicate(r) => {
                    if let Some(d) = r.dead_letter {
                        return Err(NotifierError::Refused(d.reason));
                    }
                }
            }
        }
        Ok(())
    }
}

/// When attempt `attempt + 1` is due after attempt `attempt` failed at `now`:
/// the base wait doubled per earlier failure, capped.
pub fn retry_time(settings: &NoticeSettings, attempt: u32, now: DateTime<Utc>) -> DateTime<Utc> {
    let factor = 1u64 << attempt.saturating_sub(1).min(30);
    let wait = settings
        .retry_base_ms
        .saturating_mul(factor)
        .min(settings.retry_max_ms);
    now + chrono::Duration::milliseconds(i64::try_from(wait).unwrap_or(i64::MAX))
}

/// The day the link of a notice took effect, from its `CardLinked` event
/// (the first of the notice's trail).
fn linked_on(ledger: &Ledger, notice: &NoticeStatus) -> Result<ledger::domain::Day, NotifierError> {
    let linked = notice
        .trail
        .first()
        .ok_or(NotifierError::MissingEvent("CardLinked"))?;
    match read_event(ledger, linked.partition, linked.offset)? {
        Payload::CardLinked(l) => Ok(l.linked_on),
        _ => Err(NotifierError::MissingEvent("CardLinked")),
    }
}

fn read_event(ledger: &Ledger, partition: u32, offset: u64) -> Result<Payload, NotifierError> {
    let records = ledger.log().read(partition, offset, 1)?;
    let record = records
        .into_iter()
        .find(|r| r.offset == offset)
        .ok_or(NotifierError::MissingEvent("request"))?;
    let event = avro::decode(&record.value).map_err(|_| NotifierError::MissingEvent("request"))?;
    Ok(event.payload)
}

/// The notice e-mail (Japanese; no personal data but the link date).
fn compose(
    smtp: &SmtpSettings,
    to: lettre::Address,
    message_id: &str,
    linked_on: ledger::domain::Day,
) -> Result<Message, NotifierError> {
    let from = smtp
        .from
        .parse::<lettre::message::Mailbox>()
        .map_err(|e| NotifierError::Settings(format!("from: {e}")))?;
    Message::builder()
        .from(from)
        .to(lettre::message::Mailbox::new(None, to))
        .subject("マイナンバーカードの健康保険証利用登録が完了しました")
        .message_id(Some(message_id.to_owned()))
        .header(ContentType::TEXT_PLAIN)
        .body(format!(
            "マイナンバーカードの健康保険証としての利用登録が完了しました。\r\n登録日: {linked_on}\r\n\r\nこのメールアドレスは本通知の送信後に消去されます。\r\n"
        ))
        .map_err(|e| NotifierError::Settings(e.to_string()))
}

/// Connects, greets, secures and logs in, and sends MAIL, RCPT and DATA:
/// the transaction up to the message itself.
fn open_transaction(
    smtp: &SmtpSettings,
    message: &Message,
) -> Result<SmtpConnection, lettre::transport::smtp::Error> {
    let hello = ClientId::default();
    let timeout = Some(Duration::from_millis(smtp.timeout_ms));
    let tls = match smtp.tls {
        SmtpTls::None => None,
        SmtpTls::Starttls | SmtpTls::Tls => Some(TlsParameters::new(smtp.host.clone())?),
    };
    let implicit = match smtp.tls {
        SmtpTls::Tls => tls.as_ref(),
        _ => None,
    };
    let mut conn = SmtpConnection::connect(
        (smtp.host.as_str(), smtp.port),
        timeout,
        &hello,
        implicit,
        None,
    )?;
    if let (SmtpTls::Starttls, Some(params)) = (smtp.tls, tls.as_ref()) {
        conn.starttls(params, &hello)?;
    }
    if let Some(user) = &smtp.username {
        let password = smtp
            .password_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .unwrap_or_default();
        conn.auth(
            &[Mechanism::Plain, Mechanism::Login],
            &Credentials::new(user.clone(), password),
        )?;
    }
    let envelope = message.envelope();
    conn.command(Mail::new(envelope.from().cloned(), vec![]))?;
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![]))?;
    }
    conn.command(Data)?;
    Ok(conn)
}

fn failure_of(e: &lettre::transport::smtp::Error) -> NoticeFailure {
    if e.is_permanent() {
        NoticeFailure::PermanentFailure
    } else {
        NoticeFailure::TemporaryFailure
    }
}

fn reply_text(reply: &lettre::transport::smtp::response::Response) -> String {
    let code = reply.code();
    let text: Vec<&str> = reply.message().collect();
    format!("{code} {}", text.join(" "))
}

/// Removes anything that looks like an address from relay text.
fn scrub(text: &str) -> String {
    text.split_whitespace()
        .map(|w| if w.contains('@') { "<address>" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_and_is_capped() {
        let s = NoticeSettings {
            retry_base_ms: 1_000,
            retry_max_ms: 5_000,
            ..NoticeSettings::default()
        };
        let now = Utc::now();
        let wait = |n| (retry_time(&s, n, now) - now).num_milliseconds();
        assert_eq!(
            [wait(1), wait(2), wait(3), wait(4), wait(40)],
            [1_000, 2_000, 4_000, 5_000, 5_000]
        );
    }

    #[test]
    fn relay_text_loses_its_addresses() {
        assert_eq!(
            scrub("550 5.1.1 <hanako@example.jp>: Recipient address rejected"),
            "550 5.1.1 <address> Recipient address rejected"
        );
    }

    #[test]
    fn settings_read_from_toml_with_defaults() {
        let s: NoticeSettings = toml::from_str(
            "max_attempts = 3\n[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\nfrom = \"noreply@qledger.example\"\n",
        )
        .unwrap();
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.retry_base_ms, 60_000);
        let smtp = s.smtp.unwrap();
        assert_eq!((smtp.port, smtp.tls), (2525, SmtpTls::None));
        assert!(toml::from_str::<NoticeSettings>("bogus = 1").is_err());
    }
}
