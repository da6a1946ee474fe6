//! The qledger service and command line: intake, queries, replay, over HTTP
//! (axum) and the CLI. Both front ends call [`service::Ledger`]; neither
//! contains ledger logic of its own.

pub mod auth;
pub mod batch;
pub mod cardcert;
pub mod cardlink;
pub mod claims;
pub mod cli;
pub mod config;
pub mod contact;
pub mod fhir;
pub mod http;
pub mod import;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod notices;
pub mod onlinecheck;
pub mod receipt;
pub mod service;
pub mod usage;
