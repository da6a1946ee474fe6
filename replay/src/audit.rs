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
    // Walk both in key order, in step; memory stays flat whatever the size.
    let (mut left, mut right) = (a.pairs(), b.pairs());
    let (mut l, mut r) = (left.next().transpose()?, right.next().transpose()?);
    loop {
        match (&l, &r) {
            (None, None) => return Ok(None),
            (Some((lk, lv)), Some((rk, rv))) if lk == rk => {
                if lv != rv {
                    return Ok(Some(Difference {
                        key: hex::encode(lk),
                        live: Some(hex::encode(lv)),
                        rebuilt: Some(hex::encode(rv)),
                    }));
                }
                l = left.next().transpose()?;
                r = right.next().transpose()?;
            }
            (Some((lk, lv)), Some((rk, _))) if lk < rk => {
                return Ok(Some(Difference {
                    key: hex::encode(lk),
                    live: Some(hex::encode(lv)),
                    rebuilt: None,
                }))
            }
            (Some(_), Some((rk, rv))) | (None, Some((rk, rv))) => {
                return Ok(Some(Difference {
                    key: hex::encode(rk),
                    live: None,
                    rebuilt: Some(hex::encode(rv)),
                }))
            }
            (Some((lk, lv)), None) => {
                return Ok(Some(Difference {
                    key: hex::encode(lk),
                    live: Some(hex::encode(lv)),
                    rebuilt: None,
                }))
            }
        }
    }
}
