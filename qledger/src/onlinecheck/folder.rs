//! The folder exchange hospital systems use: a request file dropped into
//! `DIR/req/` is answered into `DIR/res/`, the request's identifier kept in
//! the name (`OQSsiquc01req_<id>.xml` → `OQSsiquc01res_<id>.xml`).
//!
//! - A result appears atomically: written to a hidden temporary file in
//!   `res/`, synced, then renamed; a reader never sees half a result.
//! - A request is read once it is complete: unchanged in size and time
//!   since the previous pass (or older than [`SETTLED`]), so a system that
//!   writes in place is not read mid-write. Hidden and `.tmp` files are
//!   skipped: write there, then rename, and the request is taken at once.
//! - The request file is removed only after its result is in place; a
//!   crash between the two answers it again, which is harmless.
//! - Nothing is lost: a file whose name is no request is moved to
//!   `DIR/rejected/` with a `.reason.txt` beside it; a request for another
//!   operation (another `OQS…req_` prefix) is answered `SegmentOfResult` 9.
//!
//! The exchange does not answer requests itself: it hands the bytes to a
//! responder (the ledger in process, or a server over HTTPS), so the same
//! folder works beside `qledger serve` or on a clinic's own machine.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::codes::ErrorCode;
use super::request::Refusal;
use super::xml::Charset;

/// The request prefix of the 資格確認 by 被保険者証 information.
pub const REQUEST_PREFIX: &str = "OQSsiquc01req_";
/// Its result prefix.
pub const RESULT_PREFIX: &str = "OQSsiquc01res_";
/// A file untouched this long is complete whatever the previous pass saw.
pub const SETTLED: Duration = Duration::from_secs(2);
/// How often the request folder is scanned by [`Exchange::run`].
pub const POLL: Duration = Duration::from_millis(200);
/// The longest identifier a file name may carry.
const MAX_ID: usize = 100;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Requests answered (results written), refusals included.
    pub answered: usize,
    /// Files moved to `rejected/`.
    pub rejected: usize,
    /// Files seen but not yet complete.
    pub waiting: usize,
}

/// A request folder and its result folder.
#[derive(Debug)]
pub struct Exchange {
    requests: PathBuf,
    results: PathBuf,
    rejected: PathBuf,
    /// Size and modification time of each file at the previous pass.
    seen: HashMap<PathBuf, (u64, SystemTime)>,
}

/// What a file name asks for.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    /// `OQSsiquc01req_<id>.xml`.
    Request { result: String },
    /// Another operation's request (`OQSsiimm01req_<id>.xml`): answered refused.
    Unsupported { result: String },
    /// Not a request name at all.
    Invalid(&'static str),
    /// Someone's temporary file.
    Skip,
}

fn classify(name: &str) -> Name {
    if name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part") {
        return Name::Skip;
    }
    let Some(stem) = name.strip_suffix(".xml") else {
        return Name::Invalid("the name does not end in .xml");
    };
    let Some(at) = stem.find("req_") else {
        return Name::Invalid("the name has no <operation>req_<identifier> form");
    };
    let (operation, id) = (&stem[..at], &stem[at + "req_".len()..]);
    if id.is_empty()
        || id.len() > MAX_ID
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Name::Invalid("the identifier must be 1 to 100 of A-Z a-z 0-9 _ - .");
    }
    if operation.len() != 10 || !operation.is_ascii() {
        return Name::Invalid("the operation prefix is not of the OQSsiquc01 form");
    }
    let result = format!("{operation}res_{id}.xml");
    if stem.starts_with(REQUEST_PREFIX) {
        Name::Request { result }
    } else {
        Name::Unsupported { result }
    }
}

impl Exchange {
    /// Opens (creating) `dir/req`, `dir/res` and `dir/rejected`.
    pub fn open(dir: &Path) -> io::Result<Exchange> {
        let exchange = Exchange {
            requests: dir.join("req"),
            results: dir.join("res"),
            rejected: dir.join("rejected"),
            seen: HashMap::new(),
        };
        for d in [&exchange.requests, &exchange.results, &exchange.rejected] {
            fs::create_dir_all(d)?;
        }
        Ok(exchange)
    }

    pub fn requests(&self) -> &Path {
        &self.requests
    }

    pub fn results(&self) -> &Path {
        &self.results
    }

    /// Answers every complete request in the folder, oldest name first.
    /// `respond` turns request bytes into result bytes.
    pub fn pass(
        &mut self,
        respond: &mut dyn FnMut(&[u8]) -> io::Result<Vec<u8>>,
    ) -> io::Result<Pass> {
        let mut pass = Pass::default();
        let mut names: Vec<(String, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.requests)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                names.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        names.sort();
        let mut seen = HashMap::with_capacity(names.len());
        for (name, path) in names {
            let meta = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let stamp = (meta.len(), meta.modified()?);
            let settled = self.seen.get(&path) == Some(&stamp)
                || stamp.1.elapsed().is_ok_and(|age| age >= SETTLED);
            match classify(&name) {
                Name::Skip => continue,
                _ if !settled => {
                    seen.insert(path, stamp);
                    pass.waiting += 1;
                }
                Name::Invalid(reason) => {
                    self.reject(&path, &name, reason)?;
                    pass.rejected += 1;
                }
                Name::Request { result } => {
                    let bytes = fs::read(&path)?;
                    let answer = respond(&bytes)?;
                    self.write_result(&result, &answer)?;
                    fs::remove_file(&path)?;
                    pass.answered += 1;
                }
                Name::Unsupported { result } => {
                    let refusal = Refusal::new(
                        ErrorCode::UnsupportedOperation,
                        None,
                        format!(
                            "{name}: only the 資格確認 by 被保険者証 information ({REQUEST_PREFIX}…) is answered"
                        ),
                    );
                    let element =
                        super::result::refused(&refusal, Charset::Utf8, chrono::Utc::now());
                    self.write_result(&result, &super::xml::write(&element, Charset::Utf8))?;
                    fs::remove_file(&path)?;
                    pass.answered += 1;
                }
            }
        }
        self.seen = seen;
        Ok(pass)
    }

    /// Writes `res/<name>` atomically: a hidden temporary file, synced,
    /// renamed, and the directory synced.
    fn write_result(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temporary = self.results.join(format!(".{name}.tmp"));
        let mut file = fs::File::create(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, self.results.join(name))?;
        fs::File::open(&self.results)?.sync_all()
    }

    fn reject(&self, path: &Path, name: &str, reason: &str) -> io::Result<()> {
        fs::write(
            self.rejected.join(format!("{name}.reason.txt")),
            format!("{reason}: a request is named {REQUEST_PREFIX}<identifier>.xml\n"),
        )?;
        fs::rename(path, self.rejected.join(name))
    }

    /// Passes every [`POLL`] until `stop` is set. A failed pass (a full
    /// disk, a responder that cannot reach its server) is logged and
    /// retried at the next; the request stays where it is.
    pub fn run(
        mut self,
        stop: Arc<AtomicBool>,
        mut respond: impl FnMut(&[u8]) -> io::Result<Vec<u8>>,
    ) {
        while !stop.load(Ordering::Relaxed) {
            match self.pass(&mut respond) {
                Ok(p) if p.answered + p.rejected > 0 => {
                    tracing::info!(
                        answered = p.answered,
                        rejected = p.rejected,
                        "online-check folder pass"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "online-check folder pass failed; retrying"),
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_requests_to_results() {
        assert_eq!(
            classify("OQSsiquc01req_20240402-0001.xml"),
            Name::Request {
                result: "OQSsiquc01res_20240402-0001.xml".into()
            }
        );
        assert_eq!(
            classify("OQSsiimm01req_X1.xml"),
            Name::Unsupported {
                result: "OQSsiimm01res_X1.xml".into()
            }
        );
        assert_eq!(classify(".OQSsiquc01req_1.xml"), Name::Skip);
        assert_eq!(classify("OQSsiquc01req_1.xml.tmp"), Name::Skip);
        assert!(matches!(classify("notes.txt"), Name::Invalid(_)));
        assert!(matches!(classify("OQSsiquc01req_.xml"), Name::Invalid(_)));
        assert!(matches!(
            classify("OQSsiquc01req_../x.xml"),
            Name::Invalid(_)
        ));
        assert!(matches!(classify("Xreq_1.xml"), Name::Invalid(_)));
    }

    #[test]
    fn a_pass_answers_complete_requests_and_keeps_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let mut exchange = Exchange::open(dir.path()).unwrap();
        let req = exchange.requests().to_owned();
        fs::write(req.join("OQSsiquc01req_A.xml"), b"<a/>").unwrap();
        fs::write(req.join("readme.txt"), b"hello").unwrap();
        fs::write(req.join(".OQSsiquc01req_B.xml.tmp"), b"half").unwrap();
        let mut respond = |b: &[u8]| Ok([b"answer to ", b].concat());
        // Fresh files wait one pass (they might still be written) ...
        let first = exchange.pass(&mut respond).unwrap();
        assert_eq!(
            first,
            Pass {
                answered: 0,
                rejected: 0,
                waiting: 2
            }
        );
        // ... and are taken when unchanged at the next.
        let second = exchange.pass(&mut respond).unwrap();
        assert_eq!(
            second,
            Pass {
                answered: 1,
                rejected: 1,
                waiting: 0
            }
        );
        let res = exchange.results().to_owned();
        assert_eq!(
            fs::read(res.join("OQSsiquc01res_A.xml")).unwrap(),
            b"answer to <a/>"
        );
        assert!(!req.join("OQSsiquc01req_A.xml").exists());
        assert!(req.join(".OQSsiquc01req_B.xml.tmp").exists());
        let rejected = dir.path().join("rejected");
        assert_eq!(fs::read(rejected.join("readme.txt")).unwrap(), b"hello");
        assert!(rejected.join("readme.txt.reason.txt").exists());
        // No temporary file is left in the result folder.
        let left: Vec<_> = fs::read_dir(&res)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn a_responder_failure_keeps_the_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut exchange = Exchange::open(dir.path()).unwrap();
        let request = exchange.requests().join("OQSsiquc01req_A.xml");
        fs::write(&request, b"<a/>").unwrap();
        let mut failing = |_: &[u8]| Err(io::Error::other("server unreachable"));
        exchange.pass(&mut failing).unwrap();
        assert!(exchange.pass(&mut failing).is_err());
        assert!(request.exists());
        assert_eq!(fs::read_dir(exchange.results()).unwrap().count(), 0);
    }
}
