//! The core of qledger: domain types with validation, the event catalogue and
//! its Avro wire contract, and the event log of record.
//!
//! Nothing here knows about views or HTTP: projectors (`projectors` crate) turn
//! the log into RocksDB views; the `qledger` crate serves them.
//!
//! ```
//! use ledger::domain::InsurerNumber;
//! let n: InsurerNumber = "０１１３００１２".parse().unwrap(); // full-width digits normalised
//! assert_eq!(n.as_str(), "01130012");
//! assert!("01130013".parse::<InsurerNumber>().is_err()); // wrong check digit
//! ```

pub mod domain;
pub mod error;
pub mod event;
pub mod log;
pub mod sample;

pub use error::{FieldError, RuleViolation};
