//! Reading the claims view: a claim with its decision history, the
//! decision feed a payer polls, and the pre-submission check (請求前資格確認)
//! that decides a claim without registering it, as known now or at an
//! instant.

use std::fmt;
use std::str::FromStr;

use ledger::domain::{ClaimId, LinkNumber, PayerOrganisation, RecordTime};
use ledger::event::ClaimSubmitted;
use ledger::log::{Offset, Partition};

use super::{coverage, ClaimState, Evaluation, FeedEntry};
use crate::apply::payer_byte;
use crate::error::ProjectorError;
use crate::keys::{self, EntityKind, ViewKey};
use crate::store::Views;
use crate::txn;

/// Where a payer is in its decision feed: the last entry it read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor {
    pub record_time: RecordTime,
    pub partition: Partition,
    pub offset: Offset,
    pub claim_id: ClaimId,
}

impl fmt::Display for FeedCursor {
    /// `MICROS,PARTITION,OFFSET,CLAIM_ID`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{},{},{},{}",
            self.record_time.micros(),
            self.partition,
            self.offset,
            self.claim_id.as_str()
        )
    }
}

impl FromStr for FeedCursor {
    type Err = String;

    fn from_str(s: &str) -> Result<FeedCursor, String> {
        let shape = || format!("a feed cursor is MICROS,PARTITION,OFFSET,CLAIM_ID, got {s:?}");
        let mut parts = s.splitn(4, ',');
        let mut next = || parts.next().ok_or_else(shape);
        let micros: i64 = next()?.parse().map_err(|_| shape())?;
        let partition = next()?.parse().map_err(|_| shape())?;
        let offset = next()?.parse().map_err(|_| shape())?;
        let claim_id = ClaimId::parse(next()?).map_err(|e| e.to_string())?;
        Ok(FeedCursor {
            record_time: RecordTime::from_micros(micros),
            partition,
            offset,
            claim_id,
        })
    }
}

impl Views {
    /// The claim with this id, with its patient (ids are unique per
    /// person; if two persons' claims share one, both).
    pub fn claims_by_id(
        &self,
        id: &ClaimId,
    ) -> Result<Vec<(LinkNumber, ClaimState)>, ProjectorError> {
        let prefix = keys::claim_by_id_prefix(id.as_str());
        let mut out = Vec::new();
        for (k, _) in self.scan(&prefix)? {
            let Some(link) = keys::link_of_index_key(&k, &prefix) else {
                continue;
            };
            if let (Some(state), Ok(link)) = (
                self.get_json::<ClaimState>(&keys::claim(&link, id.as_str()))?,
                LinkNumber::parse(&link),
            ) {
                out.push((link, state));
            }
        }
        Ok(out)
    }

    /// Up to `limit` decisions of claims `payer` handles, after `after`.
    pub fn decision_feed(
        &self,
        payer: PayerOrganisation,
        after: Option<&FeedCursor>,
        limit: usize,
    ) -> Result<Vec<(FeedCursor, FeedEntry)>, ProjectorError> {
        let prefix = keys::decision_feed_prefix(payer_byte(payer));
        let from = match after {
            Some(c) => keys::decision_feed(
                payer_byte(payer),
                c.record_time,
                c.partition,
                c.offset,
                c.claim_id.as_str(),
            ),
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for (k, v) in self.scan_from(&prefix, from.as_bytes(), limit + 1)? {
            if after.is_some() && *k == *from.as_bytes() {
                continue;
            }
            let entry: FeedEntry = txn::decode_json(&ViewKey::from_stored(&k), &v)?;
            let by = &entry.record.caused_by;
            let cursor = FeedCursor {
                record_time: by.record_time,
                partition: by.partition,
                offset: by.offset,
                claim_id: entry.claim_id.clone(),
            };
            out.push((cursor, entry));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Decides `claim` for the person `link` on what the ledger knew at
    /// `as_of` (`None`: now), registering nothing.
    pub fn check_claim(
        &self,
        link: &LinkNumber,
        claim: &ClaimSubmitted,
        as_of: Option<RecordTime>,
    ) -> Result<Evaluation, ProjectorError> {
        let rows = self.rows_of(link.as_str())?;
        let versions: Vec<coverage::Version<'_>> = rows
            .iter()
            .filter(|(kind, _, r)| *kind != EntityKind::CardLink && r.known_at(as_of))
            .map(|(_, _, r)| coverage::Version {
                from: r.valid_from,
                to: r.valid_to,
                snapshot: &r.snapshot,
                by: &r.created_by,
            })
            .collect();
        Ok(super::evaluate(claim, &versions))
    }
}

impl Views {
    /// Up to `limit` overlap notices raised or cleared, of one 国保 insurer
    /// (a municipality) or of all, after the cursor `after` (the hex key the
    /// previous page ended on).
    pub fn overlap_feed(
        &self,
        insurer: Option<&ledger::domain::InsurerNumber>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, super::overlap::OverlapFeedEntry)>, ProjectorError> {
        let prefix = keys::overlap_feed_prefix(insurer.map(|i| i.as_str()));
        let from = match after {
            Some(hexed) => hex::decode(hexed).map_err(|e| ProjectorError::Corrupt {
                key: hexed.to_owned(),
                reason: format!("not a cursor: {e}"),
            })?,
            None => prefix.as_bytes().to_vec(),
        };
        let mut out = Vec::new();
        for (k, v) in self.scan_from(&prefix, &from, limit + 1)? {
            if after.is_some() && *k == *from {
                continue;
            }
            let entry = txn::decode_json(&ViewKey::from_stored(&k), &v)?;
            out.push((hex::encode(&k), entry));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }
}
