use std::path::PathBuf;

use ledger::log::LogError;
use projectors::ProjectorError;

/// Errors of replay and audit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    #[error("rebuild target {0} is not empty; replay writes only into a fresh directory")]
    TargetNotEmpty(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Views(#[from] ProjectorError),
}
