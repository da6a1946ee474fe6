//! What the ledger answered: verification records per institution (source
//! p29, pattern 3) and answers metered per insurer and month (p25).
//!
//! Unlike the views, this is not derived from the log — it records reads —
//! so it lives in its own RocksDB (`DATA/usage/`) and is never rebuilt.
//! A verification record holds what an institution needs to file the answer
//! against its patient and no more: when, the key it asked (insured number
//! or card serial — never the birth date it gave), the date asked about,
//! the outcome, the insurers of the answer and the SHA-256 of the answer
//! itself. Records older than the retention are deleted.
//!
//! Answers are buffered in memory and written in one batch every
//! [`FLUSH_EVERY`] (or at [`FLUSH_AT`] answers, at a read, and at shutdown),
//! off the request's path; RocksDB's write-ahead log is not synced per
//! batch. A crash loses at most the answers of the last interval.

pub mod chart;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ledger::domain::{Day, InstitutionCode, InsurerNumber, RecordTime, ServiceMonth};
use projectors::{Lookup, LookupKey};
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("usage store {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    #[error("usage store {path}: corrupt value under a {what} key")]
    Corrupt { path: PathBuf, what: &'static str },
}

/// The key an eligibility question was asked with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AskedKey {
    Insured {
        insurer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        symbol: Option<String>,
        number: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
    },
    Card {
        serial: String,
    },
}

impl From<&LookupKey> for AskedKey {
    fn from(key: &LookupKey) -> AskedKey {
        match key {
            LookupKey::Insured(n) => AskedKey::Insured {
                insurer: n.insurer().to_string(),
                symbol: n.symbol().map(|s| s.to_string()),
                number: n.number().to_string(),
                branch: n.branch().map(|b| b.to_string()),
            },
            LookupKey::Card(s) => AskedKey::Card {
                serial: s.to_string(),
            },
        }
    }
}

/// One answer given to an institution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VerificationRecord {
    /// Increasing; `after=` this to read on.
    pub cursor: u64,
    pub at: RecordTime,
    pub institution: InstitutionCode,
    /// The client (token or certificate name) that asked.
    pub client: String,
    pub key: AskedKey,
    /// The date asked about.
    pub on: Day,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<RecordTime>,
    /// `found`, `not_found` or `not_linked`.
    pub outcome: String,
    /// Qualifications valid on the date.
    pub qualifications: u32,
    /// Their insurers.
    pub insurers: Vec<InsurerNumber>,
    /// Hex SHA-256 of the answer's JSON, as sent.
    pub digest: String,
}

/// For each insurer, the answers served in a month and its insured persons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MeterRow {
    pub insurer: InsurerNumber,
    /// Eligibility answers naming the insurer's qualifications.
    pub answers: u64,
    /// Persons with a qualification of the insurer valid in the month.
    pub insured: u64,
}

/// How often buffered answers are written.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// Buffered answers that trigger a write at once.
pub const FLUSH_AT: usize = 4_096;

/// Answers not written yet.
#[derive(Debug, Default)]
struct Pending {
    /// The next cursor to hand out.
    next: u64,
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// (month, insurer) → answers to add.
    meter: std::collections::HashMap<(String, String), u64>,
}

/// `DATA/usage/`.
#[derive(Debug)]
pub struct UsageStore {
    db: DB,
    path: PathBuf,
    pending: Mutex<Pending>,
    /// Held while a batch is written (one writer at a time).
    writing: Mutex<()>,
}

const RECORD: u8 = b'v';
const METER: u8 = b'm';
const NEXT: &[u8] = b"next";

fn record_key(institution: &str, cursor: u64) -> Vec<u8> {
    let mut k = vec![RECORD];
    k.extend_from_slice(institution.as_bytes());
    k.push(0);
    k.extend_from_slice(&cursor.to_be_bytes());
    k
}

fn meter_key(month: &str, insurer: &str) -> Vec<u8> {
    let mut k = vec![METER];
    k.extend_from_slice(month.as_bytes());
    k.push(0);
    k.extend_from_slice(insurer.as_bytes());
    k
}

/// `YYYY-MM` of an instant, in Japan.
pub fn month_of(at: RecordTime) -> String {
    let day = Day::in_japan(at).to_string();
    day[..7].to_owned()
}

impl UsageStore {
    pub fn open(path: &Path) -> Result<UsageStore, UsageError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        let db = DB::open(&opts, path).map_err(|e| UsageError::Storage {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let next = match db.get(NEXT).map_err(|e| UsageError::Storage {
            path: path.to_owned(),
            reason: e.to_string(),
        })? {
            Some(v) => {
                u64::from_be_bytes(v.as_slice().try_into().map_err(|_| UsageError::Corrupt {
                    path: path.to_owned(),
                    what: "cursor",
                })?)
            }
            None => 1,
        };
        Ok(UsageStore {
            db,
            path: path.to_owned(),
            pending: Mutex::new(Pending {
                next,
                ..Pending::default()
            }),
            writing: Mutex::new(()),
        })
    }

    /// A reader beside a running server.
    pub fn open_read_only(path: &Path) -> Result<UsageStore, UsageError> {
        let db = DB::open_for_read_only(&Options::default(), path, false).map_err(|e| {
            UsageError::Storage {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?;
        Ok(UsageStore {
            db,
            path: path.to_owned(),
            pending: Mutex::new(Pending::default()),
            writing: Mutex::new(()),
        })
    }

    fn storage(&self) -> impl Fn(rocksdb::Error) -> UsageError + '_ {
        move |e| UsageError::Storage {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Records one answer: metered for each insurer in it and, when an
    /// institution asked, kept as its verification record.
    #[allow(clippy::too_many_arguments)]
    pub fn answered(
        &self,
        institution: Option<(&InstitutionCode, &str)>,
        key: &LookupKey,
        on: Day,
        as_of: Option<RecordTime>,
        lookup: &Lookup,
    ) -> Result<(), UsageError> {
        let at = RecordTime::now();
        let (outcome, insurers) = match lookup {
            Lookup::Found(e) => {
                let mut insurers: Vec<InsurerNumber> = e
                    .qualifications
                    .iter()
                    .map(|q| q.qualification.insurer_number.clone())
                    .collect();
                insurers.dedup();
                ("found", insurers)
            }
            Lookup::NotFound => ("not_found", Vec::new()),
            Lookup::NotLinked { .. } => ("not_linked", Vec::new()),
        };
        if institution.is_none() && insurers.is_empty() {
            return Ok(());
        }
        let record = institution.map(|(institution, client)| {
            let mut hasher = HashWriter(Sha256::new());
            let _ = serde_json::to_writer(&mut hasher, lookup);
            VerificationRecord {
                cursor: 0,
                at,
                institution: institution.clone(),
                client: client.to_owned(),
                key: AskedKey::from(key),
                on,
                as_of,
                outcome: outcome.to_owned(),
                qualifications: u32::try_from(insurers.len()).unwrap_or(u32::MAX),
                insurers: insurers.clone(),
                digest: hex::encode(hasher.0.finalize()),
            }
        });
        let month = month_of(at);
        let full = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for insurer in insurers {
                *pending
                    .meter
                    .entry((month.clone(), insurer.to_string()))
                    .or_insert(0) += 1;
            }
            if let Some(mut record) = record {
                record.cursor = pending.next;
                pending.next += 1;
                let key = record_key(&record.institution.to_string(), record.cursor);
                let value = serde_json::to_vec(&record).unwrap_or_default();
                pending.records.push((key, value));
            }
            pending.records.len() + pending.meter.len() >= FLUSH_AT
        };
        if full {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the buffered answers in one batch.
    pub fn flush(&self) -> Result<(), UsageError> {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (records, meter, next) = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.records.is_empty() && pending.meter.is_empty() {
                return Ok(());
            }
            (
                std::mem::take(&mut pending.records),
                std::mem::take(&mut pending.meter),
                pending.next,
            )
        };
        let mut batch = WriteBatch::default();
        for ((month, insurer), add) in meter {
            let k = meter_key(&month, &insurer);
            let n = self.counter(&k)? + add;
            batch.put(&k, n.to_be_bytes());
        }
        for (k, v) in records {
            batch.put(k, v);
        }
        batch.put(NEXT, next.to_be_bytes());
        self.db.write(batch).map_err(self.storage())
    }

    fn counter(&self, key: &[u8]) -> Result<u64, UsageError> {
        match self.db.get(key).map_err(self.storage())? {
            None => Ok(0),
            Some(v) => Ok(u64::from_be_bytes(v.as_slice().try_into().map_err(
                |_| UsageError::Corrupt {
                    path: self.path.clone(),
                    what: "meter",
                },
            )?)),
        }
    }

    /// The institution's records after `after`, up to `limit`, oldest first.
    pub fn records(
        &self,
        institution: &InstitutionCode,
        after: u64,
        limit: usize,
    ) -> Result<Vec<VerificationRecord>, UsageError> {
        self.flush()?;
        let start = record_key(&institution.to_string(), after.saturating_add(1));
        let prefix = &start[..start.len() - 8];
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            let (k, v) = item.map_err(self.storage())?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|_| UsageError::Corrupt {
                path: self.path.clone(),
                what: "verification record",
            })?);
        }
        Ok(out)
    }

    /// Answers served in `month` (`YYYY-MM`), per insurer.
    pub fn answers_in(&self, month: &str) -> Result<Vec<(InsurerNumber, u64)>, UsageError> {
        self.flush()?;
        let prefix = meter_key(month, "");
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, v) = item.map_err(self.storage())?;
            if !k.starts_with(&prefix) {
                break;
            }
            let corrupt = || UsageError::Corrupt {
                path: self.path.clone(),
                what: "meter",
            };
            let insurer = std::str::from_utf8(&k[prefix.len()..])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(corrupt)?;
            let n = u64::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt())?);
            out.push((insurer, n));
        }
        Ok(out)
    }

    /// Deletes verification records made before `before`; how many.
    pub fn purge_before(&self, before: RecordTime) -> Result<u64, UsageError> {
        self.flush()?;
        let mut batch = WriteBatch::default();
        let mut purged = 0;
        // Each institution's records are in cursor order, which is time
        // order: delete its old ones, then skip to the next institution.
        let mut from: Vec<u8> = vec![RECORD];
        'institutions: loop {
            for item in self
                .db
                .iterator(IteratorMode::From(&from, Direction::Forward))
            {
                let (k, v) = item.map_err(self.storage())?;
                if k.first() != Some(&RECORD) {
                    break 'institutions;
                }
                let record: VerificationRecord =
                    serde_json::from_slice(&v).map_err(|_| UsageError::Corrupt {
                        path: self.path.clone(),
                        what: "verification record",
                    })?;
                if record.at < before {
                    batch.delete(&k);
                    purged += 1;
                    continue;
                }
                // The first key past this institution's: its NUL made 0x01.
                let end = k.len() - 8;
                from = k[..end].to_vec();
                if let Some(last) = from.last_mut() {
                    *last = 1;
                }
                continue 'institutions;
            }
            break;
        }
        self.db.write(batch).map_err(self.storage())?;
        Ok(purged)
    }
}

impl Drop for UsageStore {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "writing the last answers of the usage store failed");
        }
    }
}

/// Feeds what serde writes into a hash, so the digest of an answer costs no
/// buffer.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// For each insurer: answers served in `month` and persons insured in it
/// (insurers with either), by insurer number.
pub fn metering(
    views: &projectors::Views,
    usage: Option<&UsageStore>,
    month: ServiceMonth,
) -> Result<Vec<MeterRow>, crate::service::ServiceError> {
    let first = month.first_day();
    let last = Day::from_days_since_epoch(first.days_since_epoch() + month.days() as i32 - 1)
        .unwrap_or(first);
    let mut insured = views.insured_by_insurer(first, last)?;
    let answers = match usage {
        Some(u) => u.answers_in(&month.to_string())?,
        None => Vec::new(),
    };
    let mut rows: Vec<MeterRow> = answers
        .into_iter()
        .map(|(insurer, answers)| MeterRow {
            insured: insured.remove(&insurer).unwrap_or(0),
            insurer,
            answers,
        })
        .collect();
    rows.extend(insured.into_iter().map(|(insurer, n)| MeterRow {
        insurer,
        answers: 0,
        insured: n,
    }));
    rows.sort_by(|a, b| a.insurer.cmp(&b.insurer));
    Ok(rows)
}

/// One row per record, for a hospital information system's import.
pub fn verifications_csv(records: &[VerificationRecord]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record([
        "cursor",
        "at",
        "institution",
        "key_kind",
        "insurer",
        "symbol",
        "number",
        "branch",
        "serial",
        "on",
        "as_of",
        "outcome",
        "qualifications",
        "insurers",
        "digest",
    ]);
    for r in records {
        let (kind, insurer, symbol, number, branch, serial) = match &r.key {
            AskedKey::Insured {
                insurer,
                symbol,
                number,
                branch,
            } => (
                "insured",
                insurer.clone(),
                symbol.clone().unwrap_or_default(),
                number.clone(),
                branch.clone().unwrap_or_default(),
                String::new(),
            ),
            AskedKey::Card { serial } => (
                "card",
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                serial.clone(),
            ),
        };
        let insurers: Vec<String> = r.insurers.iter().map(|i| i.to_string()).collect();
        let _ = w.write_record([
            r.cursor.to_string(),
            r.at.to_string(),
            r.institution.to_string(),
            kind.to_owned(),
            insurer,
            symbol,
            number,
            branch,
            serial,
            r.on.to_string(),
            r.as_of.map(|t| t.to_string()).unwrap_or_default(),
            r.outcome.clone(),
            r.qualifications.to_string(),
            insurers.join(" "),
            r.digest.clone(),
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

/// `month,insurer,insured,answers`.
pub fn metering_csv(month: ServiceMonth, rows: &[MeterRow]) -> String {
    let mut out = String::from("month,insurer,insured,answers\n");
    for r in rows {
        out.push_str(&format!(
            "{month},{},{},{}\n",
            r.insurer, r.insured, r.answers
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number() -> LookupKey {
        LookupKey::Insured(
            ledger::domain::IndividualInsuredNumber::new(
                "01130012".parse().unwrap(),
                None,
                "1234".parse().unwrap(),
                Some("01".parse().unwrap()),
            )
            .unwrap(),
        )
    }

    #[test]
    fn records_page_by_institution_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a: InstitutionCode = "1311234567".parse().unwrap();
        let b: InstitutionCode = "2741234567".parse().unwrap();
        let on: Day = "2024-04-02".parse().unwrap();
        {
            let store = UsageStore::open(dir.path()).unwrap();
            for _ in 0..3 {
                store
                    .answered(Some((&a, "clinic")), &number(), on, None, &Lookup::NotFound)
                    .unwrap();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            store
                .answered(Some((&b, "other")), &number(), on, None, &Lookup::NotFound)
                .unwrap();
        }
        let store = UsageStore::open(dir.path()).unwrap();
        let first = store.records(&a, 0, 2).unwrap();
        assert_eq!(first.len(), 2);
        assert!(first
            .iter()
            .all(|r| r.institution == a && r.outcome == "not_found"));
        let rest = store.records(&a, first[1].cursor, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].cursor > first[1].cursor);
        store
            .answered(Some((&a, "clinic")), &number(), on, None, &Lookup::NotFound)
            .unwrap();
        let after_reopen = store.records(&a, rest[0].cursor, 10).unwrap();
        assert_eq!(after_reopen.len(), 1, "cursors go on after a reopen");
        assert_eq!(store.records(&b, 0, 10).unwrap().len(), 1);
        assert_eq!(store.purge_before(RecordTime::from_micros(0)).unwrap(), 0);
        let cut = store.records(&a, 0, 10).unwrap()[2].at.next();
        assert_eq!(store.purge_before(cut).unwrap(), 3, "a's three oldest");
        assert_eq!(store.records(&a, 0, 10).unwrap().len(), 1);
        assert_eq!(
            store.records(&b, 0, 10).unwrap().len(),
            1,
            "b's is newer than the cut"
        );
        assert_eq!(store.purge_before(RecordTime::MAX).unwrap(), 2);
        assert!(store.records(&a, 0, 10).unwrap().is_empty());
    }
}
