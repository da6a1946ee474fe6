//! The bitemporal query engine: "on date X, as known at instant T".
//!
//! A person's version rows are one prefix scan; a row answers when it is
//! valid on the date (`valid_from <= on < valid_to`) and was known at T
//! (`recorded_from <= T < recorded_to`; "now" means not yet closed). Indexes
//! from insured number and card serial to person are candidate lists only:
//! every answer is checked against the rows as known at T, so a number the
//! ledger learned after T, or a retracted one, is not found.

use ledger::domain::*;
use ledger::event::Payload;
use serde::Serialize;
use uuid::Uuid;

use crate::error::ProjectorError;
use crate::keys::{self, EntityKind, ViewKey};
use crate::model::*;
use crate::store::Views;
use crate::txn;

/// A person's version row with its entity kind and id.
pub(crate) type PersonRow = (EntityKind, String, VersionRow);

/// What a lookup is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupKey {
    /// 個人単位被保険者番号
    Insured(IndividualInsuredNumber),
    /// シリアル of a linked My Number card.
    Card(CardSerial),
}

/// The answer to an eligibility question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Lookup {
    /// The key identifies a person; these qualifications were valid on the
    /// date (possibly none).
    Found(Eligibility),
    /// The ledger did not know the key at that time.
    NotFound,
    /// The serial was linked but the link had ended by the date.
    NotLinked { since: Day },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Eligibility {
    pub on: Day,
    /// The record time asked about; `None` is "as known now".
    pub as_of: Option<RecordTime>,
    /// Every qualification valid on the date (two are legal: duplicate enrolment).
    pub qualifications: Vec<QualificationAnswer>,
    /// Subsidies valid on the date.
    pub subsidies: Vec<SubsidySnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QualificationAnswer {
    #[serde(flatten)]
    pub qualification: QualificationSnapshot,
    /// The claim payer for this insurer (支払基金 or 国保連合会).
    pub payer: PayerOrganisation,
    /// Certificates of this qualification valid on the date.
    pub certificates: Vec<CertificateSnapshot>,
    /// When the ledger recorded this version, and the event that made it.
    pub recorded_at: RecordTime,
    pub event_id: Uuid,
}

/// One version row of a person, for audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub kind: &'static str,
    pub entity_id: String,
    pub valid_from: Day,
    pub valid_to: Option<Day>,
    pub recorded_from: RecordTime,
    pub recorded_to: Option<RecordTime>,
    pub created_by: EventRef,
    pub closed_by: Option<EventRef>,
    pub snapshot: Snapshot,
}

/// A person's records: version rows plus link requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct History {
    pub link: String,
    pub versions: Vec<HistoryEntry>,
    /// Card-link requests, their decisions and completion notices, each
    /// with the events that made them.
    pub link_requests: Vec<LinkRequestStatus>,
}

impl Views {
    pub(crate) fn rows_of(&self, link: &str) -> Result<Vec<PersonRow>, ProjectorError> {
        let prefix = keys::versions_of_person(link);
        let mut out = Vec::new();
        for (k, v) in self.scan(&prefix)? {
            let rest = &k[prefix.as_bytes().len()..];
            let kind = rest.first().copied().and_then(EntityKind::from_byte);
            let id_end = rest.iter().skip(1).position(|&b| b == 0).map(|i| i + 1);
            let (Some(kind), Some(id_end)) = (kind, id_end) else {
                return Err(ProjectorError::Corrupt {
                    key: hex::encode(&k),
                    reason: "malformed version key".into(),
                });
            };
            let id = String::from_utf8_lossy(&rest[1..id_end]).into_owned();
            let row: VersionRow = txn::decode(&ViewKey::from_stored(&k), &v)?;
            out.push((kind, id, row));
        }
        Ok(out)
    }

    fn candidates(&self, prefix: &ViewKey) -> Result<Vec<String>, ProjectorError> {
        Ok(self
            .scan(prefix)?
            .iter()
            .filter_map(|(k, _)| keys::link_of_index_key(k, prefix))
            .collect())
    }

    /// Eligibility on `on`, as known at `as_of` (`None`: now).
    pub fn eligibility(
        &self,
        key: &LookupKey,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Lookup, ProjectorError> {
        self.lookup(key, on, as_of, None)
    }

    /// [`Views::eligibility`] for a caller who must also know the holder's
    /// date of birth (as the online check asks): a person none of whose
    /// qualifications, as known at `as_of`, carries `birth_date` is not
    /// found — the same answer as a key the ledger does not know.
    pub fn eligibility_of_holder(
        &self,
        key: &LookupKey,
        birth_date: Day,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Lookup, ProjectorError> {
        self.lookup(key, on, as_of, Some(birth_date))
    }

    fn lookup(
        &self,
        key: &LookupKey,
        on: Day,
        as_of: Option<RecordTime>,
        birth_date: Option<Day>,
    ) -> Result<Lookup, ProjectorError> {
        let born = |rows: &[PersonRow]| {
            birth_date.is_none_or(|b| {
                rows.iter().any(|(_, _, r)| {
                    r.known_at(as_of)
                        && matches!(&r.snapshot, Snapshot::Qualification(q) if q.birth_date == b)
                })
            })
        };
        let mut found: Vec<Vec<PersonRow>> = Vec::new();
        let mut not_linked_since: Option<Day> = None;
        match key {
            LookupKey::Insured(number) => {
                for link in self.candidates(&keys::insured_index_prefix(&number.index_key()))? {
                    let rows = self.rows_of(&link)?;
                    let carries = rows.iter().any(|(_, _, r)| {
                        r.known_at(as_of)
                            && matches!(&r.snapshot, Snapshot::Qualification(q) if q.insured_number().as_ref() == Some(number))
                    });
                    if carries && born(&rows) {
                        found.push(rows);
                    }
                }
            }
            LookupKey::Card(serial) => {
                // The serial identifies whoever it was linked to on `on`, as
                // known at `as_of`; if links to two persons were recorded for
                // that day, the latest recorded one holds.
                let mut holder: Option<(RecordTime, Vec<PersonRow>)> = None;
                for link in self.candidates(&keys::serial_index_prefix(serial.as_str()))? {
                    let rows = self.rows_of(&link)?;
                    if !born(&rows) {
                        continue;
                    }
                    let periods = rows.iter().filter(|(kind, id, r)| {
                        *kind == EntityKind::CardLink && id == serial.as_str() && r.known_at(as_of)
                    });
                    let mut covering = None;
                    for (_, _, r) in periods {
                        if r.valid_on(on) {
                            covering = covering.max(Some(r.recorded_from));
                        } else if let Some(end) = r.valid_to.filter(|&end| end <= on) {
                            not_linked_since = not_linked_since.max(Some(end));
                        }
                    }
                    if let Some(recorded) = covering {
                        if holder.as_ref().is_none_or(|(t, _)| recorded > *t) {
                            holder = Some((recorded, rows));
                        }
                    }
                }
                found.extend(holder.map(|(_, rows)| rows));
            }
        }
        if found.is_empty() {
            return Ok(match not_linked_since {
                Some(since) => Lookup::NotLinked { since },
                None => Lookup::NotFound,
            });
        }
        let mut qualifications = Vec::new();
        let mut subsidies = Vec::new();
        for rows in &found {
            let current = rows
                .iter()
                .filter(|(_, _, r)| r.known_at(as_of) && r.valid_on(on));
            let mut certificates: Vec<&CertificateSnapshot> = Vec::new();
            for (_, _, row) in current {
                match &row.snapshot {
                    Snapshot::Qualification(q) => qualifications.push(QualificationAnswer {
                        qualification: q.clone(),
                        payer: q.insurer_kind.payer(),
                        certificates: Vec::new(),
                        recorded_at: row.recorded_from,
                        event_id: row.created_by.event_id,
                    }),
                    Snapshot::Certificate(c) => certificates.push(c),
                    Snapshot::Subsidy(s) => subsidies.push(s.clone()),
                    Snapshot::CardLink(_) => {}
                }
            }
            for c in certificates {
                if let Some(q) = qualifications
                    .iter_mut()
                    .find(|q| q.qualification.qualification_id == c.qualification_id)
                {
                    q.certificates.push(c.clone());
                }
            }
        }
        qualifications.sort_by(|a, b| {
            (
                a.qualification.acquired_on,
                &a.qualification.qualification_id,
            )
                .cmp(&(
                    b.qualification.acquired_on,
                    &b.qualification.qualification_id,
                ))
        });
        subsidies.sort_by(|a, b| (a.valid_from, &a.subsidy_id).cmp(&(b.valid_from, &b.subsidy_id)));
        Ok(Lookup::Found(Eligibility {
            on,
            as_of,
            qualifications,
            subsidies,
        }))
    }

    /// The qualification an insured number names, for a holder born on
    /// `birth_date`, as known at `as_of`: its version in force on `on`, else
    /// the last before `on`, else the first after. The online check reports
    /// it when the number is not valid on the date (its dates and 資格喪失事由),
    /// which [`Views::eligibility_of_holder`] does not carry.
    pub fn qualification_named(
        &self,
        number: &IndividualInsuredNumber,
        birth_date: Day,
        on: Day,
        as_of: Option<RecordTime>,
    ) -> Result<Option<QualificationSnapshot>, ProjectorError> {
        // Rank: 0 in force on the day, 1 before it (latest first), 2 after
        // it (earliest first).
        let mut best: Option<((u8, i32), QualificationSnapshot)> = None;
        for link in self.candidates(&keys::insured_index_prefix(&number.index_key()))? {
            for (_, _, row) in self.rows_of(&link)? {
                let Snapshot::Qualification(q) = &row.snapshot else {
                    continue;
                };
                if !row.known_at(as_of)
                    || q.birth_date != birth_date
                    || q.insured_number().as_ref() != Some(number)
                {
                    continue;
                }
                let from = row.valid_from.days_since_epoch();
                let rank = if row.valid_on(on) {
                    (0, 0)
                } else if row.valid_from <= on {
                    (1, -from)
                } else {
                    (2, from)
                };
                if best.as_ref().is_none_or(|(r, _)| rank < *r) {
                    best = Some((rank, q.clone()));
                }
            }
        }
        Ok(best.map(|(_, q)| q))
    }

    /// Per insurer: the persons with a qualification of that insurer valid
    /// on some day from `first` to `last` (inclusive), as known now — what
    /// the costs shared by number of insured are counted on (source p25).
    /// Reads every version row, in pages: seconds for a million persons.
    pub fn insured_by_insurer(
        &self,
        first: Day,
        last: Day,
    ) -> Result<std::collections::BTreeMap<InsurerNumber, u64>, ProjectorError> {
        let prefix = keys::versions_all();
        let mut counts = std::collections::BTreeMap::new();
        let mut person: Vec<u8> = Vec::new();
        let mut seen: Vec<InsurerNumber> = Vec::new();
        let mut from: Vec<u8> = prefix.as_bytes().to_vec();
        loop {
            let page = self.scan_from(&prefix, &from, 10_000)?;
            let Some((last_key, _)) = page.last() else {
                break;
            };
            from = last_key.to_vec();
            from.push(0);
            for (k, v) in &page {
                let Some((link, kind)) = keys::decode_version_key(k) else {
                    continue;
                };
                if link != person.as_slice() {
                    person = link.to_vec();
                    seen.clear();
                }
                if kind != EntityKind::Qualification {
                    continue;
                }
                let row: VersionRow = txn::decode(&ViewKey::from_stored(k), v)?;
                let Snapshot::Qualification(q) = &row.snapshot else {
                    continue;
                };
                let overlaps = row.valid_from <= last && row.valid_to.is_none_or(|to| first < to);
                if row.known_at(None) && overlaps && !seen.contains(&q.insurer_number) {
                    seen.push(q.insurer_number.clone());
                    *counts.entry(q.insurer_number.clone()).or_insert(0) += 1;
                }
            }
        }
        Ok(counts)
    }

    /// The persons whose qualifications, as known now, carry `number`, each
    /// with whether one of those is valid on `on`. For deciding link requests.
    pub fn persons_carrying(
        &self,
        number: &IndividualInsuredNumber,
        on: Day,
    ) -> Result<Vec<(LinkNumber, bool)>, ProjectorError> {
        let mut out = Vec::new();
        for link in self.candidates(&keys::insured_index_prefix(&number.index_key()))? {
            let rows = self.rows_of(&link)?;
            let carrying: Vec<&VersionRow> = rows
                .iter()
                .map(|(_, _, r)| r)
                .filter(|r| {
                    r.known_at(None)
                        && matches!(&r.snapshot, Snapshot::Qualification(q) if q.insured_number().as_ref() == Some(number))
                })
                .collect();
            if let (false, Ok(link)) = (carrying.is_empty(), LinkNumber::parse(&link)) {
                out.push((link, carrying.iter().any(|r| r.valid_on(on))));
            }
        }
        Ok(out)
    }

    /// The person's card-link requests and their outcomes, by request id.
    pub fn link_requests(
        &self,
        link: &LinkNumber,
    ) -> Result<Vec<LinkRequestStatus>, ProjectorError> {
        self.scan(&keys::link_requests_of(link.as_str()))?
            .iter()
            .map(|(k, v)| txn::decode(&ViewKey::from_stored(k), v))
            .collect()
    }

    /// A link request by its id alone, with its person (ids are unique per
    /// person; in the rare case two persons used one, both are returned).
    pub fn link_request_by_id(
        &self,
        request_id: &RequestId,
    ) -> Result<Vec<(LinkNumber, LinkRequestStatus)>, ProjectorError> {
        let mut out = Vec::new();
        let prefix = keys::request_index_prefix(request_id.as_str());
        for link in self.candidates(&prefix)? {
            let key = keys::link_request(&link, request_id.as_str());
            if let (Some(status), Ok(link)) = (
                self.get_value::<LinkRequestStatus>(&key)?,
                LinkNumber::parse(&link),
            ) {
                out.push((link, status));
            }
        }
        Ok(out)
    }

    /// The notices outbox: every link request with notice or erasure work
    /// left, in request-id order.
    pub fn notice_outbox(&self) -> Result<Vec<(LinkNumber, LinkRequestStatus)>, ProjectorError> {
        let mut out = Vec::new();
        for (key, _) in self.scan(&keys::notice_outbox_prefix())? {
            let Some((request, link)) = keys::decode_notice_outbox(&key) else {
                continue;
            };
            if let Some(status) =
                self.get_value::<LinkRequestStatus>(&keys::link_request(&link, &request))?
            {
                out.extend(LinkNumber::parse(&link).ok().map(|l| (l, status)));
            }
        }
        Ok(out)
    }

    /// The persons `serial` is linked to now (an open link, as known now).
    pub fn holders_of(&self, serial: &CardSerial) -> Result<Vec<LinkNumber>, ProjectorError> {
        let mut out = Vec::new();
        for link in self.candidates(&keys::serial_index_prefix(serial.as_str()))? {
            if self.open_links(&link)?.iter().any(|(s, _)| s == serial) {
                out.extend(LinkNumber::parse(&link).ok());
            }
        }
        Ok(out)
    }

    /// The person's open card links, as known now: serial and link date.
    pub fn open_card_links(
        &self,
        link: &LinkNumber,
    ) -> Result<Vec<(CardSerial, Day)>, ProjectorError> {
        self.open_links(link.as_str())
    }

    fn open_links(&self, link: &str) -> Result<Vec<(CardSerial, Day)>, ProjectorError> {
        Ok(self
            .rows_of(link)?
            .into_iter()
            .filter_map(|(_, _, r)| match r.snapshot {
                Snapshot::CardLink(c) if r.known_at(None) && r.valid_to.is_none() => {
                    Some((c.card_serial, r.valid_from))
                }
                _ => None,
            })
            .collect())
    }

    /// Every version of a person's records with both time axes and the
    /// event that made (and closed) it, in record-time order.
    pub fn history(&self, link: &LinkNumber) -> Result<Option<History>, ProjectorError> {
        let rows = self.rows_of(link.as_str())?;
        let link_requests = self.link_requests(link)?;
        if rows.is_empty() && link_requests.is_empty() {
            return Ok(None);
        }
        let mut versions: Vec<HistoryEntry> = rows
            .into_iter()
            .map(|(kind, id, r)| HistoryEntry {
                kind: kind.name(),
                entity_id: id,
                valid_from: r.valid_from,
                valid_to: r.valid_to,
                recorded_from: r.recorded_from,
                recorded_to: r.recorded_to,
                created_by: r.created_by,
                closed_by: r.closed_by,
                snapshot: r.snapshot,
            })
            .collect();
        versions.sort_by(|a, b| {
            (
                a.recorded_from,
                a.created_by.offset,
                a.kind,
                &a.entity_id,
                a.valid_from,
            )
                .cmp(&(
                    b.recorded_from,
                    b.created_by.offset,
                    b.kind,
                    &b.entity_id,
                    b.valid_from,
                ))
        });
        Ok(Some(History {
            link: link.as_str().to_owned(),
            versions,
            link_requests,
        }))
    }

    /// Dead letters in (partition, offset) order, after `after` if given.
    pub fn dead_letters(
        &self,
        after: Option<(u32, u64)>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, ProjectorError> {
        let mut out = Vec::new();
        for (k, v) in self.scan(&keys::dead_letters_prefix())? {
            let letter: DeadLetter = txn::decode(&ViewKey::from_stored(&k), &v)?;
            if after.is_some_and(|a| (letter.partition, letter.offset) <= a) {
                continue;
            }
            out.push(letter);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Number of dead letters.
    pub fn dead_letter_count(&self) -> Result<usize, ProjectorError> {
        Ok(self.scan(&keys::dead_letters_prefix())?.len())
    }

    /// The payloads of a person's current facts (for the oracle tests and audit).
    pub fn current_facts(
        &self,
        link: &LinkNumber,
        kind: EntityKind,
        id: &str,
    ) -> Result<Vec<Payload>, ProjectorError> {
        let key = keys::entity(link.as_str(), kind, id);
        Ok(
            match self
                .db
                .get(key.as_bytes())
                .map_err(|source| ProjectorError::Storage {
                    path: self.path().display().to_string(),
                    source,
                })? {
                None => Vec::new(),
                Some(v) => txn::decode::<EntityState>(&key, &v)?
                    .facts
                    .into_iter()
                    .map(|f| f.payload)
                    .collect(),
            },
        )
    }
}
