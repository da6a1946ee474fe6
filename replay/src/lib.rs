//! Audit and replay: rebuild every view from the log alone, digest it, and
//! check live views against a rebuild.
//!
//! A rebuild projects the log into a fresh directory with the same projector
//! code the service runs. The digest is SHA-256 over every (key, value) pair
//! of the views in key order, so identical logs give identical digests on any
//! machine. A rebuild can stop at a record time or at per-partition offsets,
//! to see the ledger's state as it was at that moment.
//!
//! This crate never writes to the log or to live views.

mod audit;
mod error;
mod rebuild;

pub use audit::{verify, Difference, Verification};
pub use error::ReplayError;
pub use rebuild::{digest, rebuild, Digest, Rebuild, Until};
