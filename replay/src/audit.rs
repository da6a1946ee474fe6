//! Verify live views against a rebuild from the log.

use std::path::Path;

use ledger::log::EventLog;
use projectors::Views;

use crate::error::ReplayError;
use crate::rebuild::{digest, rebuild, Digest, Until};

/// The first pair where live and rebuilt views disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// Hex of the first differing key.
    pub key: String,
    pub live: Option<String>,
    pub rebuilt: Option<String>,
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Verification {
    pub live: Digest,
    pub rebuilt: Digest,
    pub pairs: u64,
    pub records: u64,
    pub first_difference: Option<Difference>,
}

impl Verification {
    pub fn matches(&self) -> bool {
        self.live == self.rebuilt
    }
}

/// Rebuilds `log` into `scratch` up to exactly the offsets `live` has
/// consumed, and compares the two, pair by pair.
pub fn verify(
    log: &dyn EventLog,
    live: &Views,
    scratch: &Path,
) -> Result<Verification, ReplayError> {
    let offsets = live.offsets()?;
    let rebuilt = rebuild(log, scratch, &Until::Offsets(offsets))?;
    let (live_digest, pairs) = digest(live)?;
    let first_difference = if live_digest == rebuilt.digest {
        None
    } else {
        let other = Views::open_read_only(scratch)?;
        first_difference(live, &other)?
    };
    Ok(Verification {
        live: live_digest,
        rebuilt: rebuilt.digest,
        pairs,
        records: rebuilt.records,
        first_difference,
    })
}

fn first_difference(a: &Views, b: &Views) -> Result<Option<Difference>, ReplayError> {
    let mut left = Vec::new();
    a.for_each_pair(|k, v| left.push((k.to_vec(), v.to_vec())))?;
    let mut right = Vec::new();
    b.for_each_pair(|k, v| right.push((k.to_vec(), v.to_vec())))?;
    let n = left.len().max(right.len());
    for i in 0..n {
        let (l, r) = (left.get(i), right.get(i));
        if l != r {
            let key = match (l, r) {
                (Some(l), Some(r)) => l.0.clone().min(r.0.clone()),
                (Some(l), None) => l.0.clone(),
                (None, Some(r)) => r.0.clone(),
                (None, None) => unreachable!(),
            };
            let value_of = |side: &Vec<(Vec<u8>, Vec<u8>)>| {
                side.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| hex::encode(v))
            };
            return Ok(Some(Difference {
                key: hex::encode(&key),
                live: value_of(&left),
                rebuilt: value_of(&right),
            }));
        }
    }
    Ok(None)
}
