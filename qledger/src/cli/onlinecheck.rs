//! `qledger onlinecheck FILE` and `qledger onlinecheck-folder DIR`: the
//! online check's XML request answered from the command line, and the
//! folder exchange run beside a server (`--server`, over HTTPS, as a
//! clinic's own machine would) or on a data directory (`--data`, read-only:
//! no verification records are kept that way).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use super::query::read_only_views;
use super::remote::Remote;
use super::Target;
use crate::onlinecheck::folder::Exchange;
use crate::onlinecheck::{self, Channel, Status};

#[derive(Debug, Args)]
pub struct OnlineCheckArgs {
    /// The request (`XmlMsg`, UTF-8 or Shift_JIS); the result goes to stdout.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Debug, Args)]
pub struct OnlineCheckFolderArgs {
    /// The exchange folder: requests are read from DIR/req, results written to DIR/res.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Answer what is there (twice over, so fresh files settle) and exit.
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub target: Target,
}

/// Request bytes → result bytes.
type Responder = Box<dyn FnMut(&[u8]) -> std::io::Result<Vec<u8>>>;

/// A responder by the server or the views.
fn responder(target: &Target) -> Result<Responder> {
    if let Some(server) = &target.server {
        let remote = Remote::new(server)?;
        return Ok(Box::new(move |bytes: &[u8]| {
            remote
                .post_bytes("/v1/onlinecheck", "application/xml", bytes.to_vec())
                .map(|(_, body)| body)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))
        }));
    }
    let views = read_only_views(&target.data_dir())?;
    Ok(Box::new(move |bytes: &[u8]| {
        Ok(onlinecheck::answer(&views, Channel::Folder, bytes).body)
    }))
}

pub(super) fn run(args: OnlineCheckArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let (refused, body) = match &args.target.server {
        Some(server) => {
            let (status, body) =
                Remote::new(server)?.post_bytes("/v1/onlinecheck", "application/xml", bytes)?;
            (!status.is_success(), body)
        }
        None => {
            let views = read_only_views(&args.target.data_dir())?;
            let answer = onlinecheck::answer(&views, Channel::Folder, &bytes);
            (matches!(answer.status, Status::Refused(_)), answer.body)
        }
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&body).context("writing the result")?;
    out.flush()?;
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn run_folder(args: OnlineCheckFolderArgs) -> Result<ExitCode> {
    let mut respond = responder(&args.target)?;
    let mut exchange = Exchange::open(&args.dir)
        .with_context(|| format!("cannot open the exchange folder {}", args.dir.display()))?;
    if args.once {
        let mut answered = 0;
        // Fresh files settle over one pass; the second takes them.
        for _ in 0..2 {
            let pass = exchange
                .pass(&mut *respond)
                .context("answering the requests")?;
            answered += pass.answered;
            if pass.waiting > 0 {
                std::thread::sleep(onlinecheck::folder::POLL);
            }
        }
        eprintln!(
            "answered {answered} request(s) into {}",
            exchange.results().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "answering requests dropped into {} (Ctrl-C to stop)",
        exchange.requests().display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    exchange.run(stop, respond);
    Ok(ExitCode::SUCCESS)
}
