//! Prevention (p17, p47): an employee-insurance qualification that overlaps
//! a 国保 qualification still open is the usual source of 資格過誤 — the
//! person joined a company and the municipality has not yet ended the 国保.
//! The projector raises an overlap notice for the municipality when such an
//! overlap appears and clears it when it goes (the 国保 loss arrives, or a
//! retraction removes either side).

use ledger::domain::{Day, InsurerKind, InsurerNumber, QualificationId};
use serde::{Deserialize, Serialize};

use super::coverage::Version;
use crate::model::{EventRef, Snapshot};

/// An overlap of an open 国保 qualification with an employee-insurance one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Overlap {
    pub nhi_qualification: QualificationId,
    /// The 国保 insurer (the municipality) the notice is for.
    pub nhi_insurer: InsurerNumber,
    pub employee_qualification: QualificationId,
    pub employee_insurer: InsurerNumber,
    /// First day both hold.
    pub from: Day,
}

/// An overlap notice with its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverlapNotice {
    #[serde(flatten)]
    pub overlap: Overlap,
    pub raised_by: EventRef,
    pub cleared_by: Option<EventRef>,
}

/// One entry of a municipality's overlap feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OverlapFeedEntry {
    /// The person's id.
    pub link: String,
    /// `raised` or `cleared`.
    pub change: String,
    #[serde(flatten)]
    pub notice: OverlapNotice,
}

fn is_nhi(kind: InsurerKind) -> bool {
    matches!(
        kind,
        InsurerKind::NationalHealthInsurance | InsurerKind::NhiRetiree
    )
}

/// The overlaps the person's versions (as known now) show: each open 国保
/// qualification against each employee-insurance qualification that holds
/// on some day from the 国保's start on.
pub fn open_overlaps(versions: &[Version<'_>]) -> Vec<Overlap> {
    let mut out: Vec<Overlap> = Vec::new();
    let qualifications = versions.iter().filter_map(|v| match v.snapshot {
        Snapshot::Qualification(q) => Some((v, q)),
        _ => None,
    });
    let nhi_open: Vec<_> = qualifications
        .clone()
        .filter(|(v, q)| is_nhi(q.insurer_kind) && v.to.is_none())
        .collect();
    for (nv, nq) in &nhi_open {
        for (ev, eq) in qualifications
            .clone()
            .filter(|(_, q)| q.insurer_kind.is_employee_insurance())
        {
            if ev.to.is_some_and(|to| to <= nv.from) {
                continue;
            }
            let from = nv.from.max(ev.from);
            match out.iter_mut().find(|o| {
                o.nhi_qualification == nq.qualification_id
                    && o.employee_qualification == eq.qualification_id
            }) {
                Some(o) => o.from = o.from.min(from),
                None => out.push(Overlap {
                    nhi_qualification: nq.qualification_id.clone(),
                    nhi_insurer: nq.insurer_number.clone(),
                    employee_qualification: eq.qualification_id.clone(),
                    employee_insurer: eq.insurer_number.clone(),
                    from,
                }),
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.nhi_qualification, &a.employee_qualification)
            .cmp(&(&b.nhi_qualification, &b.employee_qualification))
    });
    out
}
