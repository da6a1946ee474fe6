//! `qledger link-card` and `unlink-card`: a holder's link request and the end
//! of a link, through a server (`--server`) or on a data directory (with the
//! `[cards]` table of `--config` for link requests). The decision is the
//! ledger's ([`crate::cardlink`]); this only carries the request.
//! `link-request` and `notices` read where requests and their completion
//! notices stand, in the same form as the HTTP API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use clap::Args;
use hyper::StatusCode;
use ledger::domain::{
    Branch, CardNumber, CardSerial, CardSymbol, Day, InsurerNumber, LinkNumber, PublisherId,
    RequestId,
};
use ledger::event::UnlinkReason;
use projectors::model::LinkRequestStatus;
use serde_json::{json, Value};

use super::query::{print_answer, read_only_views};
use super::remote::{encode, Remote};
use super::{card_authority, open_ledger, print_json, status, Target};
use crate::cardlink::{LinkDecision, LinkRequest};
use crate::contact::ContactAddress;
use crate::service::{LinkRequestError, DEFAULT_PARTITIONS};

#[derive(Debug, Args)]
pub struct LinkCardArgs {
    /// The request's id (from the portal).
    #[arg(long, value_name = "ID")]
    pub request_id: RequestId,
    /// The card's user-authentication certificate: a PEM or DER file.
    #[arg(long, value_name = "FILE")]
    pub certificate: PathBuf,
    /// 保険者番号
    #[arg(long, value_name = "I")]
    pub insurer: InsurerNumber,
    /// 記号 (none on 後期高齢者 cards)
    #[arg(long, value_name = "S")]
    pub symbol: Option<CardSymbol>,
    /// 番号
    #[arg(long, value_name = "N")]
    pub number: CardNumber,
    /// 枝番 (none on 後期高齢者 cards)
    #[arg(long, value_name = "B")]
    pub branch: Option<Branch>,
    /// The holder wants a completion notice.
    #[arg(long)]
    pub notice: bool,
    /// E-mail the notice here (with --notice); the address is sealed and
    /// erased once the notice is sent.
    #[arg(long, value_name = "ADDRESS", requires = "notice")]
    pub contact_email: Option<String>,
    /// Publisher id of the forwarding system.
    #[arg(long, value_name = "ID", default_value = "portal")]
    pub source: PublisherId,
    /// Settings file whose [cards] table names the trust anchors and CRLs
    /// (with --data).
    #[arg(long, value_name = "FILE", env = "QLEDGER_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct UnlinkCardArgs {
    /// The card serial (シリアル).
    #[arg(value_name = "SERIAL")]
    pub serial: CardSerial,
    /// CARD_LOST, CERTIFICATE_REVOKED, HOLDER_REQUEST, CARD_RENEWED,
    /// CARD_REISSUED or OTHER.
    #[arg(long, value_name = "REASON")]
    pub reason: String,
    /// First day not linked [default: today in Japan].
    #[arg(long, value_name = "DATE")]
    pub on: Option<Day>,
    #[arg(long, value_name = "ID", default_value = "portal")]
    pub source: PublisherId,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct LinkRequestArgs {
    /// The request's id.
    #[arg(value_name = "REQUEST_ID")]
    pub request_id: RequestId,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct NoticesArgs {
    #[command(flatten)]
    pub target: Target,
}

/// A link request with its person, as the HTTP API answers it.
fn with_link(link: &LinkNumber, request: &LinkRequestStatus) -> Value {
    let mut value = serde_json::to_value(request).expect("a link request serialises");
    value["link"] = json!(link);
    value
}

/// Exit 0 when the request is known, 1 when not.
pub(super) fn link_request(args: LinkRequestArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let path = format!(
            "/v1/card-links/requests/{}",
            encode(args.request_id.as_str())
        );
        let answer = Remote::new(server)?.get(&path)?;
        return print_answer(answer);
    }
    let views = read_only_views(&args.target.data_dir())?;
    let mut found: Vec<Value> = views
        .link_request_by_id(&args.request_id)?
        .into_iter()
        .map(|(link, request)| with_link(&link, &request))
        .collect();
    match found.len() {
        0 => {
            eprintln!("no link request has the id {}", args.request_id);
            Ok(status(false))
        }
        1 => print_json(&found.remove(0)).map(|_| ExitCode::SUCCESS),
        _ => print_json(&found).map(|_| ExitCode::SUCCESS),
    }
}

pub(super) fn notices(args: NoticesArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let answer = Remote::new(server)?.get("/v1/notices")?;
        return match answer.status {
            StatusCode::OK => print_json(&answer.body).map(|_| ExitCode::SUCCESS),
            s => bail!("the server answered {s}: {}", answer.detail()),
        };
    }
    let views = read_only_views(&args.target.data_dir())?;
    let open: Vec<_> = views
        .notice_outbox()?
        .into_iter()
        .map(|(link, request)| with_link(&link, &request))
        .collect();
    print_json(&json!({ "open": open }))?;
    Ok(ExitCode::SUCCESS)
}

/// Exit 0 when linked (or already), 1 when rejected.
pub(super) fn link(args: LinkCardArgs) -> Result<ExitCode> {
    let certificate = std::fs::read(&args.certificate)
        .with_context(|| format!("cannot read {}", args.certificate.display()))?;
    let request = LinkRequest {
        request_id: args.request_id,
        insurer_number: args.insurer,
        card_symbol: args.symbol,
        card_number: args.number,
        branch: args.branch,
        notice_requested: args.notice,
        contact: args
            .contact_email
            .as_deref()
            .map(ContactAddress::parse)
            .transpose()
            .map_err(|e| anyhow!("--contact-email: {e}"))?,
        source: args.source,
    };
    request
        .insured_number()
        .map_err(|e| anyhow!("--{}: {}", e.field.replace('_', "-"), e.rule))?;
    if let Some(server) = &args.target.server {
        let body = json!({
            "request_id": request.request_id.as_str(),
            "certificate": base64::engine::general_purpose::STANDARD.encode(&certificate),
            "insurer": request.insurer_number.to_string(),
            "symbol": request.card_symbol.as_ref().map(|s| s.to_string()),
            "number": request.card_number.to_string(),
            "branch": request.branch.as_ref().map(|b| b.to_string()),
            "notice_requested": request.notice_requested,
            "contact_email": args.contact_email,
            "source": request.source.to_string(),
        });
        let answer = Remote::new(server)?.post("/v1/card-links", &body)?;
        return match answer.status {
            StatusCode::OK | StatusCode::CREATED => {
                print_json(&answer.body)?;
                Ok(status(answer.body["decision"] != "rejected"))
            }
            s => bail!("the server answered {s}: {}", answer.detail()),
        };
    }
    let cards = card_authority(args.config.as_deref())?.ok_or_else(|| {
        anyhow!("give --config FILE with a [cards] table (trust anchors, CRLs) to verify the certificate")
    })?;
    let mut ledger = open_ledger(&args.target.data_dir(), DEFAULT_PARTITIONS)?;
    ledger.start_projector();
    ledger.set_card_authority(cards);
    let decision = ledger
        .request_card_link(&request, &certificate)
        .map_err(|e| match e {
            LinkRequestError::Invalid(e) => anyhow!("--{}: {}", e.field, e.rule),
            other => anyhow!(other),
        })?;
    print_json(&decision)?;
    Ok(status(!matches!(decision, LinkDecision::Rejected { .. })))
}

/// Exit 0 when a link ended, 1 when the serial was linked to nobody.
pub(super) fn unlink(args: UnlinkCardArgs) -> Result<ExitCode> {
    let reason = UnlinkReason::from_symbol(args.reason.trim())
        .ok_or_else(|| anyhow!("--reason: unknown reason {:?}", args.reason))?;
    let on = args.on.unwrap_or_else(Day::today_in_japan);
    if let Some(server) = &args.target.server {
        let body = json!({
            "reason": args.reason.trim(),
            "on": on.to_string(),
            "source": args.source.to_string(),
        });
        let path = format!("/v1/card-links/{}/unlink", encode(args.serial.as_str()));
        let answer = Remote::new(server)?.post(&path, &body)?;
        return print_answer(answer);
    }
    let mut ledger = open_ledger(&args.target.data_dir(), DEFAULT_PARTITIONS)?;
    ledger.start_projector();
    match ledger
        .unlink_card(&args.serial, on, reason, &args.source)
        .map_err(|e| anyhow!(e))?
    {
        Some(done) => print_json(&done).map(|_| ExitCode::SUCCESS),
        None => {
            eprintln!("card {} is linked to nobody now", args.serial);
            Ok(status(false))
        }
    }
}
