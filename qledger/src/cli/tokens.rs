//! `qledger tokens issue|list|revoke`: the admin's management of API tokens
//! in the token file (hashes only). A running server picks changes up
//! within a second.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ledger::domain::{
    InstitutionCode, InsurerNumber, MunicipalityCode, PayerOrganisation, PublisherId,
};
use serde_json::json;

use super::{emit, print_json, DEFAULT_DATA};
use crate::auth::tokens::{TokenStore, DEFAULT_FILE};
use crate::auth::{Principal, Role};

#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
    /// The token file [default: DATA/tokens.toml].
    #[arg(long, value_name = "FILE", global = true, env = "QLEDGER_TOKENS")]
    pub file: Option<PathBuf>,
    /// Data directory whose token file to use [default: ./data].
    #[arg(long, value_name = "DIR", global = true, conflicts_with = "file")]
    pub data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Issue a token; it is printed once and stored only as a hash.
    Issue(IssueArgs),
    /// The tokens issued, with their roles and scopes (never the tokens).
    List,
    /// Revoke a token by id or by the name of the one in force.
    Revoke {
        #[arg(value_name = "ID_OR_NAME")]
        token: String,
    },
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// A label for logs and listings, e.g. kyokai-tokyo (no personal data).
    #[arg(long)]
    pub name: String,
    #[arg(long, value_enum)]
    pub role: Role,
    /// The envelope.source its events carry (insurer, aggregator), or of the
    /// events made for it (payer, portal).
    #[arg(long, value_name = "ID")]
    pub publisher: Option<PublisherId>,
    /// 保険者番号 it acts for (insurer, aggregator); repeat for several.
    #[arg(long = "insurer", value_name = "NUMBER")]
    pub insurers: Vec<InsurerNumber>,
    /// 地方公共団体コード whose subsidies it publishes; repeat for several.
    #[arg(long = "municipality", value_name = "CODE")]
    pub municipalities: Vec<MunicipalityCode>,
    /// 医療機関コード (institution).
    #[arg(long, value_name = "CODE")]
    pub institution: Option<InstitutionCode>,
    /// SOCIAL_INSURANCE_FUND or NHI_FEDERATION (payer).
    #[arg(long, value_name = "ORG")]
    pub payer: Option<PayerOrganisation>,
    /// Register this client certificate (PEM) for mutual TLS instead of
    /// issuing a token: the file keeps the SHA-256 of its DER.
    #[arg(long, value_name = "PEM")]
    pub certificate: Option<PathBuf>,
    /// Print only the token (for scripts).
    #[arg(long)]
    pub quiet: bool,
}

pub(super) fn run(args: TokensArgs) -> Result<ExitCode> {
    let path = args.file.clone().unwrap_or_else(|| {
        args.data
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA))
            .join(DEFAULT_FILE)
    });
    let mut store = TokenStore::load(&path)?;
    match args.command {
        TokensCommand::Issue(a) => {
            let principal = Principal {
                name: a.name,
                role: a.role,
                publisher: a.publisher,
                insurers: a.insurers,
                municipalities: a.municipalities,
                institution: a.institution,
                payer: a.payer,
            };
            if let Some(pem) = &a.certificate {
                use rustls::pki_types::pem::PemObject;
                let der = rustls::pki_types::CertificateDer::from_pem_file(pem)
                    .with_context(|| format!("reading the certificate {}", pem.display()))?;
                let entry = store.register_certificate(principal, der.as_ref())?;
                emit(&format!(
                    "certificate sha256:{} registered for {} ({}) in {}",
                    entry.sha256,
                    entry.principal.name,
                    entry.principal.role,
                    path.display()
                ))?;
                return Ok(ExitCode::SUCCESS);
            }
            let (token, entry) = store.issue(principal)?;
            if a.quiet {
                emit(&token)?;
            } else {
                emit(&format!(
                    "token {} for {} ({}), written to {}:\n\n  {token}\n\nIt is shown only now: the file keeps its hash. Send it as `Authorization: Bearer …` (the CLI reads it from QLEDGER_TOKEN).",
                    entry.id,
                    entry.principal.name,
                    entry.principal.role,
                    path.display()
                ))?;
            }
        }
        TokensCommand::List => {
            let tokens: Vec<_> = store
                .entries()
                .iter()
                .map(|e| {
                    json!({
                        "id": e.id,
                        "credential": e.credential,
                        "issued_at": e.issued_at,
                        "revoked_at": e.revoked_at,
                        "principal": e.principal,
                    })
                })
                .collect();
            print_json(&json!({ "file": path, "tokens": tokens }))?;
        }
        TokensCommand::Revoke { token } => {
            let entry = store
                .revoke(&token)
                .with_context(|| format!("revoking {token}"))?;
            emit(&format!(
                "token {} ({}) revoked at {}",
                entry.id,
                entry.principal.name,
                entry.revoked_at.map(|t| t.to_string()).unwrap_or_default()
            ))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
