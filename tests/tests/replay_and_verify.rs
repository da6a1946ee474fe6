//! Views are derived: a rebuild from the log gives the same bytes, live views
//! verify against it, and an as-of rebuild answers like an as-of query.

use ledger::log::embedded::EmbeddedLog;
use projectors::{Lookup, LookupKey, Views};
use replay::Until;
use scenario_tests::{day, ev, Scenario};

#[test]
fn rebuilds_are_identical_and_live_views_verify() {
    let s = Scenario::new();
    let a = ev::insured("01130012", Some("R"), "1", Some("00"));
    let b = ev::insured("06139992", Some("R"), "2", Some("00"));
    let mut events = Vec::new();
    for i in 0..40 {
        let link = format!("LR{i}");
        events.push(ev::acquired(
            &link,
            &format!("QA{i}"),
            &ev::insured("01130012", Some("R"), &format!("{}", 100 + i), Some("00")),
            "2020-04-01",
        ));
    }
    s.publish(events);
    let mid = s.publish(vec![ev::acquired("LR", "QA", &a, "2020-04-01")]);
    s.publish(vec![
        ev::lost("LR", "insurer-01130012", "QA", "2024-04-01"),
        ev::acquired("LR", "QB", &b, "2024-04-01"),
    ]);
    s.publish(vec![ev::lost(
        "LR",
        "insurer-01130012",
        "NOPE",
        "2024-04-01",
    )]); // a dead letter too

    let log = s.ledger.log().clone();
    let r1 = replay::rebuild(log.as_ref(), &s.dir.path().join("r1"), &Until::End).unwrap();
    let r2 = replay::rebuild(log.as_ref(), &s.dir.path().join("r2"), &Until::End).unwrap();
    assert_eq!(r1.digest, r2.digest);
    assert_eq!(r1.stats.dead_lettered, 1);

    let v = replay::verify(
        log.as_ref(),
        s.ledger.views(),
        &s.dir.path().join("scratch"),
    )
    .unwrap();
    assert!(
        v.matches(),
        "live {} rebuilt {} first difference {:?}",
        v.live,
        v.rebuilt,
        v.first_difference
    );
    assert_eq!(v.live, r1.digest);

    // As of `mid`: the rebuilt state answers "now" what the live views answer "as of mid".
    let past = replay::rebuild(
        log.as_ref(),
        &s.dir.path().join("past"),
        &Until::RecordTime(mid),
    )
    .unwrap();
    assert!(past.records < r1.records);
    let past_views = Views::open_read_only(&s.dir.path().join("past")).unwrap();
    let key = LookupKey::Insured(a.clone());
    let then_live = s
        .ledger
        .eligibility(&key, day("2024-05-01"), Some(mid))
        .unwrap();
    let now_past = past_views
        .eligibility(&key, day("2024-05-01"), None)
        .unwrap();
    let insurers = |l: Lookup| match l {
        Lookup::Found(e) => e
            .qualifications
            .into_iter()
            .map(|q| q.qualification.insurer_number.to_string())
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(insurers(then_live), vec!["01130012"]);
    assert_eq!(insurers(now_past), vec!["01130012"]);
}

#[test]
fn verify_finds_a_tampered_view() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("T"), "1", Some("00"));
    s.publish(vec![ev::acquired("LT", "QT", &n, "2020-04-01")]);
    let data = s.data().to_owned();
    let log_dir = data.join("log");
    drop(s.ledger);
    // Tamper with the views directly, behind the projector's back.
    {
        let db = rocksdb::DB::open_default(data.join("views")).unwrap();
        db.put(b"\x30zzz", b"forged").unwrap();
    }
    let log = EmbeddedLog::open_existing(&log_dir).unwrap();
    let views = Views::open(&data.join("views")).unwrap();
    let v = replay::verify(&log, &views, &s.dir.path().join("scratch")).unwrap();
    assert!(!v.matches());
    assert!(v.first_difference.is_some());
}

#[test]
fn replay_to_offsets_stops_exactly_there() {
    let s = Scenario::new();
    let n = ev::insured("01130012", Some("O"), "1", Some("00"));
    s.publish(vec![ev::acquired("LO", "QO", &n, "2020-04-01")]);
    s.publish(vec![ev::copay_changed(
        "LO",
        "insurer-01130012",
        "QO",
        "2022-04-01",
        20,
    )]);
    let log = s.ledger.log().clone();
    let p = log.partition_for(b"LO");
    let upto = std::collections::BTreeMap::from([(p, 1u64)]);
    let r = replay::rebuild(
        log.as_ref(),
        &s.dir.path().join("o1"),
        &Until::Offsets(upto.clone()),
    )
    .unwrap();
    assert_eq!(r.records, 1);
    assert_eq!(r.offsets, upto);
    let views = Views::open_read_only(&s.dir.path().join("o1")).unwrap();
    let copay = match views
        .eligibility(&LookupKey::Insured(n), day("2023-01-01"), None)
        .unwrap()
    {
        Lookup::Found(e) => e.qualifications[0].qualification.copay_percent.percent(),
        other => panic!("{other:?}"),
    };
    assert_eq!(copay, 30, "the change at offset 1 is not replayed");
}
