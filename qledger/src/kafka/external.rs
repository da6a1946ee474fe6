//! An external Confluent schema registry, for producers whose serializers
//! registered qledger's schemas there under that registry's own ids.
//!
//! With an external registry configured, every Confluent-framed record's
//! id is that registry's (its ids may collide with the contract's own,
//! [`ledger::event::registry`]) and is resolved here: the schema text is
//! fetched once (`GET /schemas/ids/{id}`), recognised as a version of the
//! contract by its Parsing Canonical Form, and the datum decoded with it
//! exactly as a contract id would be. A schema that is not a contract
//! version is refused (the record is dead-lettered); a registry that cannot
//! be reached is a transient error (the relay retries the batch).
//! Ids are immutable in a registry, so answers are cached for good; a missing
//! id is asked again next time.
//!
//! Plain `http://` only (the shared small client has no TLS).

use std::collections::HashMap;
use std::sync::Mutex;

use apache_avro::Schema;
use ledger::event::avro::{self, AvroError, SchemaVersion};
use ledger::event::{registry, Event};

use crate::cli::remote::Remote;

/// How long one schema lookup may take (the relay retries after it).
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What an id of the external registry turned out to be.
#[derive(Debug, Clone)]
enum Known {
    Ours(&'static SchemaVersion),
    /// Not a version of the contract, with why.
    Foreign(String),
}

/// A client of one external registry, with its answers cached.
#[derive(Debug)]
pub struct ExternalRegistry {
    url: String,
    remote: Remote,
    known: Mutex<HashMap<u32, Known>>,
}

/// The registry could not answer; the record is to be tried again.
#[derive(Debug, thiserror::Error)]
#[error("schema registry {url}: {reason}")]
pub struct Unreachable {
    pub url: String,
    pub reason: String,
}

impl ExternalRegistry {
    /// A client of the registry at `url` (`http://host:port[/path]`).
    pub fn new(url: &str) -> Result<ExternalRegistry, Unreachable> {
        let refuse = |reason: String| Unreachable {
            url: url.to_owned(),
            reason,
        };
        if !url.starts_with("http://") {
            return Err(refuse("only http:// registry URLs are supported".into()));
        }
        let remote = Remote::new(url)
            .map_err(|e| refuse(format!("{e:#}")))?
            .with_timeout(LOOKUP_TIMEOUT);
        Ok(ExternalRegistry {
            url: url.trim_end_matches('/').to_owned(),
            remote,
            known: Mutex::new(HashMap::new()),
        })
    }

    /// Decodes a Confluent-framed record whose schema id is this registry's:
    /// the outer error is transient, the inner one the record's own.
    pub fn decode(&self, bytes: &[u8]) -> Result<Result<Event, AvroError>, Unreachable> {
        let (id, datum) = match avro::split_confluent(bytes) {
            Ok(split) => split,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match self.resolve(id)? {
            Known::Ours(writer) => avro::decode_datum(writer, datum),
            Known::Foreign(why) => Err(AvroError::NotConfluent(format!(
                "schema id {id} of the registry at {}: {why}",
                self.url
            ))),
        })
    }

    fn resolve(&self, id: u32) -> Result<Known, Unreachable> {
        if let Some(known) = self.known.lock().expect("registry cache").get(&id) {
            return Ok(known.clone());
        }
        let unreachable = |reason: String| Unreachable {
            url: self.url.clone(),
            reason,
        };
        let answer = self
            .remote
            .get(&format!("/schemas/ids/{id}"))
            .map_err(|e| unreachable(format!("{e:#}")))?;
        let known = if answer.status.as_u16() == 404 {
            // Maybe registered later: not cached.
            return Ok(Known::Foreign("the registry does not know it".into()));
        } else if !answer.status.is_success() {
            return Err(unreachable(format!(
                "GET /schemas/ids/{id} answered {}: {}",
                answer.status, answer.body
            )));
        } else {
            let kind = answer
                .body
                .get("schemaType")
                .and_then(|t| t.as_str())
                .unwrap_or("AVRO");
            match answer.body.get("schema").and_then(|s| s.as_str()) {
                _ if kind != "AVRO" => Known::Foreign(format!("a {kind} schema, not Avro")),
                None => Known::Foreign("the registry's answer has no schema".into()),
                Some(text) => match Schema::parse_str(text) {
                    Err(e) => Known::Foreign(format!("its schema does not parse: {e}")),
                    Ok(schema) => match registry::contract_version_of(&schema) {
                        Some(r) => Known::Ours(r.schema),
                        None => Known::Foreign(
                            "its schema is not a version of the qledger contract (schemas/)".into(),
                        ),
                    },
                },
            }
        };
        self.known
            .lock()
            .expect("registry cache")
            .insert(id, known.clone());
        Ok(known)
    }
}
