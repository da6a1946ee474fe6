//! From an entity's facts to its valid-time timeline: pure functions, no I/O.
//!
//! A timeline is a list of non-overlapping segments `[from, to)` in date
//! order, adjacent segments with equal attributes merged. The projector
//! diffs the new timeline against the stored one to close and open version
//! rows; the query engine never calls this.
//!
//! Rules: changes apply from their `effective_on`, in date order, ties in log
//! order; the latest recorded loss (or end) wins; a retracted event is simply
//! no longer among the facts.

use ledger::domain::Day;
use ledger::event::{
    CardLinked, CertificateIssued, Payload, QualificationAcquired, QualificationChanged,
    SubsidyChanged, SubsidyGranted,
};

use crate::model::*;

/// A segment of a timeline: `[from, to)` with the attributes that hold.
pub type Span = (Day, Option<Day>, Snapshot);

fn before(a: Day, end: Option<Day>) -> bool {
    end.is_none_or(|e| a < e)
}

/// Splits `[start, end)` at every change date inside it and gives each
/// piece the attributes `at(from)` returns; merges equal neighbours.
fn segments(
    start: Day,
    end: Option<Day>,
    mut cuts: Vec<Day>,
    at: impl Fn(Day) -> Snapshot,
) -> Vec<Span> {
    if !before(start, end) {
        return Vec::new();
    }
    cuts.retain(|&d| d > start && before(d, end));
    cuts.sort();
    cuts.dedup();
    let mut bounds = vec![start];
    bounds.extend(cuts);
    let mut out: Vec<Span> = Vec::with_capacity(bounds.len());
    for (i, &from) in bounds.iter().enumerate() {
        let to = bounds.get(i + 1).copied().or(end);
        let snap = at(from);
        match out.last_mut() {
            Some(last) if last.2 == snap => last.1 = to,
            _ => out.push((from, to, snap)),
        }
    }
    out
}

fn acquired(facts: &[Fact]) -> Option<&QualificationAcquired> {
    facts.iter().find_map(|f| match &f.payload {
        Payload::QualificationAcquired(a) => Some(a),
        _ => None,
    })
}

/// Changes sorted by effective date, ties kept in log order.
fn sorted_changes<'a, T>(
    facts: &'a [Fact],
    pick: impl Fn(&'a Payload) -> Option<(Day, &'a T)>,
) -> Vec<(Day, &'a T)> {
    let mut changes: Vec<(Day, &T)> = facts.iter().filter_map(|f| pick(&f.payload)).collect();
    changes.sort_by_key(|(d, _)| *d);
    changes
}

/// The qualification's base attributes from its acquisition.
pub fn qualification_base(a: &QualificationAcquired) -> QualificationSnapshot {
    QualificationSnapshot {
        qualification_id: a.qualification_id.clone(),
        insurer_number: a.insurer_number.clone(),
        insurer_kind: a.insurer_number.kind(),
        card_symbol: a.card_symbol.clone(),
        card_number: a.card_number.clone(),
        branch: a.branch.clone(),
        relationship: a.relationship,
        name: a.name.clone(),
        name_kana: a.name_kana.clone(),
        sex: a.sex,
        birth_date: a.birth_date,
        card_kind: a.card_kind,
        copay_percent: a.copay,
        card_valid_until: a.card_valid_until,
        special_statuses: a.special_statuses.clone(),
        acquired_on: a.acquired_on,
        lost_on: None,
        loss_reason: None,
    }
}

/// Applies a change's set attributes.
pub fn apply_change(s: &mut QualificationSnapshot, c: &QualificationChanged) {
    if let Some(v) = &c.card_symbol {
        s.card_symbol = Some(v.clone());
    }
    if let Some(v) = &c.card_number {
        s.card_number = v.clone();
    }
    if let Some(v) = &c.branch {
        s.branch = Some(v.clone());
    }
    if let Some(v) = c.relationship {
        s.relationship = v;
    }
    if let Some(v) = &c.name {
        s.name = v.clone();
    }
    if let Some(v) = &c.name_kana {
        s.name_kana = v.clone();
    }
    if let Some(v) = c.card_kind {
        s.card_kind = v;
    }
    if let Some(v) = c.copay {
        s.copay_percent = v;
    }
    if let Some(v) = c.card_valid_until {
        s.card_valid_until = Some(v);
    }
    if let Some(v) = &c.special_statuses {
        s.special_statuses = v.clone();
    }
}

/// 資格: `[acquired_on, lost_on)`, split where changes take effect.
pub fn qualification(facts: &[Fact]) -> Vec<Span> {
    let Some(acq) = acquired(facts) else {
        return Vec::new();
    };
    let mut base = qualification_base(acq);
    if let Some(lost) = facts.iter().rev().find_map(|f| match &f.payload {
        Payload::QualificationLost(l) => Some(l),
        _ => None,
    }) {
        base.lost_on = Some(lost.lost_on);
        base.loss_reason = Some(lost.reason);
    }
    let changes = sorted_changes(facts, |p| match p {
        Payload::QualificationChanged(c) => Some((c.effective_on, c)),
        _ => None,
    });
    let cuts = changes.iter().map(|(d, _)| *d).collect();
    segments(base.acquired_on, base.lost_on, cuts, |from| {
        let mut s = base.clone();
        for (_, c) in changes.iter().take_while(|(d, _)| *d <= from) {
            apply_change(&mut s, c);
        }
        Snapshot::Qualification(s)
    })
}

pub(crate) fn certificate_issued(facts: &[Fact]) -> Option<&CertificateIssued> {
    facts.iter().find_map(|f| match &f.payload {
        Payload::CertificateIssued(c) => Some(c),
        _ => None,
    })
}

fn end_of(valid_until: Option<Day>, ended_on: Option<Day>) -> Option<Day> {
    match (valid_until.map(Day::succ), ended_on) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// 限度額適用認定証 etc.: `[valid_from, min(valid_until + 1, ended_on))`.
pub fn certificate(facts: &[Fact]) -> Vec<Span> {
    let Some(c) = certificate_issued(facts) else {
        return Vec::new();
    };
    let ended_on = facts.iter().rev().find_map(|f| match &f.payload {
        Payload::CertificateEnded(e) => Some(e.ended_on),
        _ => None,
    });
    let changes = sorted_changes(facts, |p| match p {
        Payload::CertificateChanged(c) => Some((c.effective_on, c)),
        _ => None,
    });
    // Like a subsidy's, the expiry is a whole-certificate attribute: the
    // latest-effective change that sets it wins everywhere.
    let valid_until = changes
        .iter()
        .rev()
        .find_map(|(_, c)| c.valid_until)
        .or(c.valid_until);
    let base = CertificateSnapshot {
        certificate_id: c.certificate_id.clone(),
        qualification_id: c.qualification_id.clone(),
        kind: c.kind,
        valid_from: c.valid_from,
        valid_until,
        ended_on,
        limit_category: c.limit_category,
        disease: c.disease,
        monthly_cap_yen: c.monthly_cap_yen,
        copay_percent: c.copay,
    };
    let cuts = changes.iter().map(|(d, _)| *d).collect();
    segments(c.valid_from, end_of(valid_until, ended_on), cuts, |from| {
        let mut s = base.clone();
        for (_, change) in changes.iter().take_while(|(d, _)| *d <= from) {
            if let Some(v) = change.limit_category {
                s.limit_category = Some(v);
            }
            if let Some(v) = change.monthly_cap_yen {
                s.monthly_cap_yen = Some(v);
            }
            if let Some(v) = change.copay {
                s.copay_percent = Some(v);
            }
        }
        Snapshot::Certificate(s)
    })
}

fn subsidy_granted(facts: &[Fact]) -> Option<&SubsidyGranted> {
    facts.iter().find_map(|f| match &f.payload {
        Payload::SubsidyGranted(g) => Some(g),
        _ => None,
    })
}

fn apply_subsidy_change(s: &mut SubsidySnapshot, c: &SubsidyChanged) {
    if let Some(v) = &c.recipient_number {
        s.recipient_number = v.clone();
    }
    if let Some(v) = c.copay_percent {
        s.copay_percent = Some(v);
    }
    if let Some(v) = c.copay_amount_yen {
        s.copay_amount_yen = Some(v);
    }
    if let Some(v) = c.method {
        s.method = v;
    }
    if let Some(v) = &c.remarks {
        s.remarks = Some(v.clone());
    }
}

/// 公費: `[valid_from, min(valid_until + 1, ended_on))`, split at changes.
/// `valid_until` is a whole-subsidy attribute: the latest-effective change
/// that sets it wins everywhere.
pub fn subsidy(facts: &[Fact]) -> Vec<Span> {
    let Some(g) = subsidy_granted(facts) else {
        return Vec::new();
    };
    let ended_on = facts.iter().rev().find_map(|f| match &f.payload {
        Payload::SubsidyEnded(e) => Some(e.ended_on),
        _ => None,
    });
    let changes = sorted_changes(facts, |p| match p {
        Payload::SubsidyChanged(c) => Some((c.effective_on, c)),
        _ => None,
    });
    let valid_until = changes
        .iter()
        .rev()
        .find_map(|(_, c)| c.valid_until)
        .or(g.valid_until);
    let base = SubsidySnapshot {
        subsidy_id: g.subsidy_id.clone(),
        municipality: g.municipality.clone(),
        programme: g.programme,
        payer_number: g.payer_number.clone(),
        recipient_number: g.recipient_number.clone(),
        card_serial: g.card_serial.clone(),
        copay_percent: g.copay_percent,
        copay_amount_yen: g.copay_amount_yen,
        valid_from: g.valid_from,
        valid_until,
        ended_on,
        method: g.method,
        remarks: g.remarks.clone(),
    };
    let cuts = changes.iter().map(|(d, _)| *d).collect();
    segments(g.valid_from, end_of(valid_until, ended_on), cuts, |from| {
        let mut s = base.clone();
        for (_, c) in changes.iter().take_while(|(d, _)| *d <= from) {
            apply_subsidy_change(&mut s, c);
        }
        Snapshot::Subsidy(s)
    })
}

/// Card link periods: each link opens one, the next unlink closes it.
pub fn card_link(facts: &[Fact]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut open: Option<CardLinkSnapshot> = None;
    let snapshot = |l: &CardLinked| CardLinkSnapshot {
        card_serial: l.card_serial.clone(),
        insurer_number: l.insurer_number.clone(),
        card_symbol: l.card_symbol.clone(),
        card_number: l.card_number.clone(),
        branch: l.branch.clone(),
        request_id: l.request_id.clone(),
        linked_on: l.linked_on,
        unlinked_on: None,
        unlink_reason: None,
    };
    for f in facts {
        match &f.payload {
            Payload::CardLinked(l) if open.is_none() => open = Some(snapshot(l)),
            Payload::CardUnlinked(u) => {
                if let Some(mut s) = open.take() {
                    s.unlinked_on = Some(u.unlinked_on);
                    s.unlink_reason = Some(u.reason);
                    // A link ended the day it began (the card was replaced
                    // that day) is kept as an empty period: the serial then
                    // answers "not linked since" that day.
                    if s.linked_on <= u.unlinked_on {
                        out.push((s.linked_on, Some(u.unlinked_on), Snapshot::CardLink(s)));
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        out.push((s.linked_on, None, Snapshot::CardLink(s)));
    }
    out
}

/// The day ranges on which two timelines of one entity differ (a segment
/// present in one and not the other, or another snapshot), merged and in
/// order; `None` is "onwards".
pub fn changed_ranges<T: PartialEq>(
    before: &[(Day, Option<Day>, T)],
    after: &[(Day, Option<Day>, T)],
) -> Vec<(Day, Option<Day>)> {
    let mut cuts: Vec<Day> = before
        .iter()
        .chain(after)
        .flat_map(|(from, to, _)| std::iter::once(*from).chain(*to))
        .collect();
    cuts.sort();
    cuts.dedup();
    let at = |list: &[(Day, Option<Day>, T)], day: Day| {
        list.iter()
            .position(|(from, to, _)| *from <= day && to.is_none_or(|to| day < to))
    };
    let mut out: Vec<(Day, Option<Day>)> = Vec::new();
    for (i, &start) in cuts.iter().enumerate() {
        let end = cuts.get(i + 1).copied();
        let same = match (at(before, start), at(after, start)) {
            (None, None) => true,
            (Some(b), Some(a)) => before[b].2 == after[a].2,
            _ => false,
        };
        if same {
            continue;
        }
        match out.last_mut() {
            Some((_, last_end)) if *last_end == Some(start) => *last_end = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// The timeline of an entity of any kind.
pub fn of(kind: EntityKind, facts: &[Fact]) -> Vec<Span> {
    match kind {
        EntityKind::Qualification => qualification(facts),
        EntityKind::Certificate => certificate(facts),
        EntityKind::Subsidy => subsidy(facts),
        EntityKind::CardLink => card_link(facts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(n: i32) -> Day {
        Day::from_days_since_epoch(n).unwrap()
    }

    #[test]
    fn changed_ranges_are_where_the_timelines_differ() {
        // A loss from day 100 of an open qualification: only [100, ∞) changed.
        let before = [(d(0), None, 1)];
        let after = [(d(0), Some(d(100)), 1)];
        assert_eq!(changed_ranges(&before, &after), vec![(d(100), None)]);
        // A change from day 50 to day 80 of a snapshot.
        let before = [(d(0), Some(d(200)), 1)];
        let after = [
            (d(0), Some(d(50)), 1),
            (d(50), Some(d(80)), 2),
            (d(80), Some(d(200)), 1),
        ];
        assert_eq!(changed_ranges(&before, &after), vec![(d(50), Some(d(80)))]);
        // Nothing changed; everything changed.
        assert_eq!(changed_ranges(&before, &before), vec![]);
        assert_eq!(changed_ranges(&before, &[]), vec![(d(0), Some(d(200)))]);
        // Adjacent changes merge.
        let after = [(d(0), Some(d(10)), 2), (d(10), Some(d(200)), 3)];
        assert_eq!(changed_ranges(&before, &after), vec![(d(0), Some(d(200)))]);
    }

    /// A timeline of non-overlapping segments from sorted cut points.
    fn tiles(cuts: &[i32], tags: &[u8], open_end: bool) -> Vec<(Day, Option<Day>, u8)> {
        let mut cuts = cuts.to_vec();
        cuts.sort();
        cuts.dedup();
        let mut out = Vec::new();
        for (i, w) in cuts.windows(2).enumerate() {
            let tag = tags[i % tags.len()];
            if tag != 0 {
                out.push((d(w[0]), Some(d(w[1])), tag));
            }
        }
        if open_end {
            if let (Some(last), Some(tag)) = (cuts.last(), tags.last()) {
                out.push((d(*last), None, *tag));
            }
        }
        out
    }

    proptest! {
        #[test]
        fn changed_ranges_hold_exactly_the_days_that_differ(
            a in proptest::collection::vec(0i32..60, 1..6),
            b in proptest::collection::vec(0i32..60, 1..6),
            ta in proptest::collection::vec(0u8..3, 1..4),
            tb in proptest::collection::vec(0u8..3, 1..4),
            oa: bool,
            ob: bool,
        ) {
            let before = tiles(&a, &ta, oa);
            let after = tiles(&b, &tb, ob);
            let changed = changed_ranges(&before, &after);
            let at = |list: &[(Day, Option<Day>, u8)], day: Day| {
                list.iter().find(|(f, t, _)| *f <= day && t.is_none_or(|t| day < t)).map(|x| x.2)
            };
            for n in -1..80 {
                let day = d(n);
                let differs = at(&before, day) != at(&after, day);
                let inside = changed.iter().any(|(f, t)| *f <= day && t.is_none_or(|t| day < t));
                prop_assert_eq!(differs, inside, "day {}", n);
            }
        }
    }

    fn snap(tag: i32) -> Snapshot {
        // Any snapshot distinguishable by a number will do for the algebra.
        Snapshot::Certificate(CertificateSnapshot {
            certificate_id: format!("C{tag}").parse().unwrap(),
            qualification_id: "Q".parse().unwrap(),
            kind: ledger::domain::CertificateKind::ElderlyRecipient,
            valid_from: d(0),
            valid_until: None,
            ended_on: None,
            limit_category: None,
            disease: None,
            monthly_cap_yen: None,
            copay_percent: None,
        })
    }

    proptest! {
        /// Segments tile [start, end) exactly, in order, with no equal neighbours,
        /// and each day gets the attributes `at` gives for the last cut at or
        /// before it.
        #[test]
        fn segments_tile_the_interval(
            start in 0i32..50,
            len in proptest::option::of(1i32..60),
            cuts in proptest::collection::vec((0i32..120, 0i32..3), 0..8),
        ) {
            let end = len.map(|l| d(start + l));
            let cut_days: Vec<Day> = cuts.iter().map(|(c, _)| d(*c)).collect();
            let value_at = |day: Day| -> i32 {
                // the tag of the latest cut at or before `day` (0 before any)
                cuts.iter().filter(|(c, _)| d(*c) <= day && d(*c) > d(start)).max_by_key(|(c, _)| *c).map(|(_, t)| *t).unwrap_or(0)
            };
            let spans = segments(d(start), end, cut_days, |from| snap(value_at(from)));
            prop_assert!(!spans.is_empty());
            prop_assert_eq!(spans[0].0, d(start));
            prop_assert_eq!(spans.last().unwrap().1, end);
            for w in spans.windows(2) {
                prop_assert_eq!(w[0].1, Some(w[1].0));
                prop_assert!(w[0].2 != w[1].2);
            }
            let last_day = end.map(|e| e.days_since_epoch()).unwrap_or(start + 130);
            for day in start..last_day {
                let day = d(day);
                let span = spans.iter().find(|s| s.0 <= day && s.1.is_none_or(|t| day < t)).unwrap();
                prop_assert_eq!(&span.2, &snap(value_at(day)));
            }
        }
    }

    #[test]
    fn empty_interval_has_no_segments() {
        assert!(segments(d(5), Some(d(5)), vec![], |_| snap(0)).is_empty());
        assert!(segments(d(5), Some(d(3)), vec![], |_| snap(0)).is_empty());
    }

    #[test]
    fn validity_ends_at_the_earlier_of_expiry_and_end() {
        assert_eq!(end_of(Some(d(9)), Some(d(5))), Some(d(5)));
        assert_eq!(end_of(Some(d(3)), Some(d(5))), Some(d(4)));
        assert_eq!(end_of(None, None), None);
    }
}
