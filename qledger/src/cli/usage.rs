//! `qledger verifications` and `qledger metering`: an institution's
//! verification records for its hospital information system, and the
//! month's metering per insurer (table, CSV, SVG chart) — from a server
//! (`--server`, with the caller's token) or a data directory (read-only,
//! beside a running server).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use ledger::domain::{Day, InstitutionCode, ServiceMonth};

use super::query::read_only_views;
use super::remote::{query, Remote};
use super::{emit, Target};
use crate::usage::{metering_csv, verifications_csv, MeterRow, UsageStore, VerificationRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Args)]
pub struct VerificationsArgs {
    /// The institution (with --data, or as an auditor with --server); an
    /// institution's own token implies it.
    #[arg(long, value_name = "CODE")]
    pub institution: Option<InstitutionCode>,
    /// Records after this cursor (the last one read) [default: from the start].
    #[arg(long, value_name = "CURSOR", default_value_t = 0)]
    pub after: u64,
    /// Records at most.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub limit: usize,
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: RecordFormat,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct MeteringArgs {
    /// The month, YYYY-MM [default: this month in Japan].
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<ServiceMonth>,
    /// CSV instead of JSON.
    #[arg(long)]
    pub csv: bool,
    /// Also write the month's chart (SVG) to this file.
    #[arg(long, value_name = "FILE")]
    pub chart: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

pub(super) fn verifications(args: VerificationsArgs) -> Result<ExitCode> {
    if let Some(server) = &args.target.server {
        let format = match args.format {
            RecordFormat::Jsonl => "jsonl",
            RecordFormat::Csv => "csv",
        };
        let path = format!(
            "/v1/verifications{}",
            query(&[
                (
                    "institution",
                    args.institution.as_ref().map(|i| i.to_string())
                ),
                ("after", Some(args.after.to_string())),
                ("limit", Some(args.limit.to_string())),
                ("format", Some(format.to_owned())),
            ])
        );
        let answer = Remote::new(server)?.get(&path)?;
        if !answer.status.is_success() {
            bail!("the server answered {}: {}", answer.status, answer.detail());
        }
        let text = answer
            .body
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| answer.body.to_string());
        emit(text.trim_end())?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(institution) = &args.institution else {
        bail!("give --institution: whose verification records");
    };
    let store = UsageStore::open_read_only(&args.target.data_dir().join("usage"))
        .context("opening the usage store")?;
    let records: Vec<VerificationRecord> = store.records(institution, args.after, args.limit)?;
    match args.format {
        RecordFormat::Csv => emit(verifications_csv(&records).trim_end())?,
        RecordFormat::Jsonl => {
            for r in &records {
                emit(&serde_json::to_string(r)?)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn metering(args: MeteringArgs) -> Result<ExitCode> {
    let month = match args.month {
        Some(m) => m,
        None => Day::today_in_japan().to_string()[..7]
            .parse()
            .map_err(|e| anyhow::anyhow!("this month: {e}"))?,
    };
    let rows: Vec<MeterRow> = if let Some(server) = &args.target.server {
        let answer =
            Remote::new(server)?.get(&format!("/v1/metering?month={month}&format=json"))?;
        if !answer.status.is_success() {
            bail!("the server answered {}: {}", answer.status, answer.detail());
        }
        answer.body["insurers"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| {
                        Some(MeterRow {
                            insurer: r["insurer"].as_str()?.parse().ok()?,
                            answers: r["answers"].as_u64()?,
                            insured: r["insured"].as_u64()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        let data = args.target.data_dir();
        let views = read_only_views(&data)?;
        // A data directory that never served answers has no usage store.
        let dir = data.join("usage");
        let usage = if dir.join("CURRENT").exists() {
            Some(UsageStore::open_read_only(&dir).context("opening the usage store")?)
        } else {
            None
        };
        crate::usage::metering(&views, usage.as_ref(), month)?
    };
    if let Some(file) = &args.chart {
        let svg = crate::usage::chart::svg(month, &rows).map_err(anyhow::Error::msg)?;
        std::fs::write(file, svg).with_context(|| format!("writing {}", file.display()))?;
    }
    if args.csv {
        emit(metering_csv(month, &rows).trim_end())?;
    } else {
        emit(&serde_json::to_string_pretty(
            &serde_json::json!({"month": month, "insurers": rows}),
        )?)?;
    }
    Ok(ExitCode::SUCCESS)
}
