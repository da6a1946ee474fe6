//! Errors of the views and the projector. A bad *event* is not an error here:
//! it becomes a dead letter. These are failures of storage or of the log.

use ledger::log::{LogError, Offset, Partition};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectorError {
    #[error("views storage at {path}: {source}")]
    Storage {
        path: String,
        source: rocksdb::Error,
    },
    /// `key` (hex) may hold a person's numbers: it is kept for inspection
    /// but left out of the message, which is logged.
    #[error("a view value is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("views at {path} have key format {found}, this build writes {expected}; rebuild them from the log (qledger replay)")]
    FormatMismatch {
        path: String,
        found: u32,
        expected: u32,
    },
    #[error("partition {partition}: expected offset {expected}, got {got} (a gap in the log)")]
    Gap {
        partition: Partition,
        expected: Offset,
        got: Offset,
    },
    #[error("the views at {path} were built from the log {built_from}, not from {log}; remove them (they are rebuilt from the log) or use the right log")]
    OtherLog {
        path: String,
        built_from: String,
        log: String,
    },
    #[error("the views are open read-only")]
    ReadOnly,
    #[error(transparent)]
    Log(#[from] LogError),
}
