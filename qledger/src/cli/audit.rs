//! `qledger replay` and `verify`: rebuild the views from the log alone.
//!
//! The log is opened read-only, so both work beside a running server.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ledger::log::embedded::EmbeddedLog;
use ledger::log::{EventLog, Offset, Partition};
use replay::Until;

use super::query::read_only_views;
use super::{emit, status, KafkaArgs, ReplayArgs, VerifyArgs};

/// The log to replay: Kafka when `--kafka`/`--config` name a cluster,
/// otherwise the embedded log of `data`, opened read-only.
fn log_to_read(data: &Path, kafka: &KafkaArgs) -> Result<Box<dyn EventLog>> {
    if let Some(log) = super::kafka::events_log(kafka, false)? {
        return Ok(log);
    }
    Ok(Box::new(read_only_log(data)?))
}

fn read_only_log(data: &Path) -> Result<EmbeddedLog> {
    let dir = data.join("log");
    if !dir.join("CURRENT").exists() {
        bail!("{} holds no event log", data.display());
    }
    EmbeddedLog::open_read_only(&dir)
        .with_context(|| format!("cannot open the event log in {}", dir.display()))
}

/// `P:O,P:O` — the form `replay` prints and `--offsets` reads.
pub(super) fn format_offsets(offsets: &BTreeMap<Partition, Offset>) -> String {
    offsets
        .iter()
        .map(|(p, o)| format!("{p}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_offsets(s: &str) -> Result<BTreeMap<Partition, Offset>> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part
            .split_once(':')
            .and_then(|(p, o)| Some((p.parse().ok()?, o.parse().ok()?)));
        let Some((p, o)) = parsed else {
            bail!("--offsets: {part:?} is not PARTITION:OFFSET");
        };
        if out.insert(p, o).is_some() {
            bail!("--offsets: partition {p} is given twice");
        }
    }
    Ok(out)
}

pub(super) fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let until = match (&args.as_of, &args.offsets) {
        (Some(t), _) => Until::RecordTime(*t),
        (None, Some(o)) => Until::Offsets(parse_offsets(o)?),
        (None, None) => Until::End,
    };
    let log = log_to_read(&args.data, &args.kafka)?;
    let rebuilt = replay::rebuild(log.as_ref(), &args.into, &until)
        .with_context(|| format!("rebuilding the views into {}", args.into.display()))?;
    emit(&format!(
        "digest        {}\nrecords       {}\napplied       {}\nduplicates    {}\ndead letters  {}\npairs         {}\noffsets       {}",
        rebuilt.digest,
        rebuilt.records,
        rebuilt.stats.applied,
        rebuilt.stats.duplicates,
        rebuilt.stats.dead_lettered,
        rebuilt.pairs,
        format_offsets(&rebuilt.offsets)
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub(super) fn verify(args: VerifyArgs) -> Result<ExitCode> {
    // Views first: the log opened after holds at least the offsets they consumed.
    let live = read_only_views(&args.data)?;
    let log = log_to_read(&args.data, &args.kafka)?;
    let temporary;
    let scratch = match &args.scratch {
        Some(dir) => dir.as_path(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("qledger-verify-")
                .tempdir()
                .context("creating a scratch directory")?;
            temporary.path()
        }
    };
    let v = replay::verify(log.as_ref(), &live, scratch)
        .context("verifying the views against the log")?;
    let mut text = format!(
        "live          {}\nrebuilt       {}\nrecords       {}\npairs         {}\n",
        v.live, v.rebuilt, v.records, v.pairs
    );
    if v.matches() {
        text.push_str("the views match a rebuild from the log");
    } else {
        text.push_str("MISMATCH: the views differ from a rebuild from the log");
        if let Some(d) = &v.first_difference {
            let absent = "(absent)";
            text.push_str(&format!(
                "\nfirst differing key  {}\n  live     {}\n  rebuilt  {}",
                d.key,
                d.live.as_deref().unwrap_or(absent),
                d.rebuilt.as_deref().unwrap_or(absent)
            ));
        }
    }
    emit(&text)?;
    Ok(status(v.matches()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let o = parse_offsets("0:12, 3:4").unwrap();
        assert_eq!(format_offsets(&o), "0:12,3:4");
        assert!(parse_offsets("0:1,0:2").is_err());
        assert!(parse_offsets("x").is_err());
    }
}
