//! Domain types of online qualification verification (オンライン資格確認).
//!
//! Every type validates on construction and normalises what the domain allows
//! to be written two ways (full-width digits, the 8-digit form of a 国保
//! insurer number). A refusal is a [`RuleViolation`](crate::error::RuleViolation)
//! naming the rule; the caller adds the field.

pub mod card;
pub mod checkdigit;
pub mod claim;
pub mod contact;
pub mod ids;
pub mod person;
mod schema;
pub mod time;

pub use card::*;
pub use claim::{ClaimKind, InstitutionCode, ServiceMonth};
pub use contact::SealedContact;
pub use ids::*;
pub use person::*;
pub use time::{Day, RecordTime};
