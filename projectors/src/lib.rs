//! qledger's views: RocksDB projections of the event log, the projector that
//! keeps them current, and the bitemporal query engine that answers from them.
//!
//! Views are derived data. Any of them can be dropped and rebuilt from the
//! log byte for byte: nothing here reads a clock or depends on the order in
//! which partitions are consumed. Offsets are stored in the same atomic
//! write as the rows they produced, so the state is exactly-once whatever
//! crashes.
//!
//! This crate must not append to the log or decide anything the log does not
//! say: it only derives.

pub mod claims;
pub mod error;
pub mod keys;
pub mod model;
pub mod query;
pub mod runtime;
pub mod store;
pub mod timeline;

mod apply;
mod txn;

pub use error::ProjectorError;
pub use query::{Eligibility, History, HistoryEntry, Lookup, LookupKey, QualificationAnswer};
pub use runtime::{Assignment, Projector};
pub use store::{ApplyStats, Views};
