//! `qledger check-batch FILE`: a batch check (一括照会) of a JSON-lines or
//! CSV file of pairs, answered one JSON line per pair, in order, on standard
//! output — streamed both ways, so memory stays bounded whatever the size —
//! with a progress bar on standard error when it is a terminal.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::query::read_only_views;
use super::remote::Remote;
use super::Target;
use crate::batch::{self, Pair};

#[derive(Debug, Args)]
pub struct CheckBatchArgs {
    /// The pairs: JSON lines, or CSV with a header (by the .csv extension or --csv).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Read FILE as CSV whatever its name.
    #[arg(long, conflicts_with = "xml")]
    pub csv: bool,
    /// Read FILE as the online check's XML requests (XmlMsg after XmlMsg)
    /// whatever its name; the answer is one XML document of results.
    #[arg(long)]
    pub xml: bool,
    #[command(flatten)]
    pub target: Target,
}

fn bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

pub(super) fn run(args: CheckBatchArgs) -> Result<ExitCode> {
    let csv = args.csv || args.file.extension().is_some_and(|e| e == "csv");
    let xml = args.xml || args.file.extension().is_some_and(|e| e == "xml");
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = bar(size);
    let stdout = std::io::stdout();
    if let Some(server) = &args.target.server {
        let content_type = if xml {
            "application/xml"
        } else if csv {
            "text/csv"
        } else {
            "application/x-ndjson"
        };
        let shown = progress.clone();
        let mut out = stdout.lock();
        Remote::new(server)?.post_streaming(
            "/v1/eligibility/batch",
            content_type,
            file,
            move |sent| shown.set_position(sent),
            |bytes| out.write_all(bytes).context("writing the answers"),
        )?;
        out.flush()?;
        progress.finish_and_clear();
        return Ok(ExitCode::SUCCESS);
    }
    let views = read_only_views(&args.target.data_dir())?;
    let mut out = std::io::BufWriter::new(stdout.lock());
    if xml {
        xml_batch(&views, file, &progress, &mut out)?;
        out.flush()?;
        progress.finish_and_clear();
        return Ok(ExitCode::SUCCESS);
    }
    let mut header: Option<Vec<String>> = None;
    let mut read = 0u64;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", args.file.display()))?;
        read += line.len() as u64 + 1;
        progress.set_position(read);
        let n = i as u64 + 1;
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        let pair: Result<Pair, _> = if csv {
            match &header {
                None => {
                    match batch::csv_header(text) {
                        Ok(h) => header = Some(h),
                        Err(e) => writeln!(out, "{}", batch::failed(n, None, "error", &e))?,
                    }
                    continue;
                }
                Some(h) => batch::pair_of_csv(h, text),
            }
        } else {
            batch::pair_of_json(text)
        };
        let result = match pair {
            Err(e) => batch::failed(n, None, "error", &e),
            Ok(pair) => {
                let lookup = match pair.birth_date {
                    Some(b) => views.eligibility_of_holder(&pair.key, b, pair.on, pair.as_of),
                    None => views.eligibility(&pair.key, pair.on, pair.as_of),
                }
                .context("looking up eligibility")?;
                batch::answered(n, &pair, &lookup)
            }
        };
        writeln!(out, "{result}")?;
    }
    out.flush()?;
    progress.finish_and_clear();
    Ok(ExitCode::SUCCESS)
}

/// The XML batch on the data directory: requests cut from the file as it is
/// read, one result each, into one document.
fn xml_batch(
    views: &projectors::Views,
    mut file: std::fs::File,
    progress: &ProgressBar,
    out: &mut impl Write,
) -> Result<()> {
    use crate::onlinecheck::{self, batch::Splitter, Channel};
    use std::io::Read;
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    out.write_all(onlinecheck::batch::RESULTS_HEAD.as_bytes())?;
    loop {
        let n = file.read(&mut buf).context("reading the requests")?;
        read += n as u64;
        progress.set_position(read);
        let requests = if n == 0 {
            splitter.finish()
        } else {
            splitter.push(&buf[..n])
        };
        for request in requests {
            let (_, result, _) = onlinecheck::answer_element(views, Channel::Folder, &request);
            out.write_all(onlinecheck::batch::result_fragment(&result).as_bytes())?;
        }
        if n == 0 {
            break;
        }
    }
    out.write_all(onlinecheck::batch::RESULTS_TAIL.as_bytes())?;
    Ok(())
}
