//! The two time axes, kept apart by type.
//!
//! [`Day`] is valid time (有効時間): a calendar date in Japan (Asia/Tokyo, which
//! has no daylight saving, so UTC+09:00 always). [`RecordTime`] is record time
//! (記録時間): the UTC instant the log stored an event. Nothing converts one into
//! the other except [`Day::in_japan`], which answers "what date was it in Japan
//! at this instant" for defaults such as "today".

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::RuleViolation;

const JST_SECONDS: i32 = 9 * 3600;

/// A calendar date in Japan: valid time. Stored as days since 1970-01-01.
///
/// Intervals of days are half-open: `[from, to)`. 資格喪失年月日 (loss date) is
/// the first day *not* covered, so it is the `to` of a qualification.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

impl Day {
    /// The earliest and latest representable days (0001-01-01 and 9999-12-31).
    pub const MIN: Day = Day(-719_162);
    pub const MAX: Day = Day(2_932_896);

    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Day> {
        NaiveDate::from_ymd_opt(year, month, day).map(Day::from_naive)
    }

    pub fn from_naive(date: NaiveDate) -> Day {
        Day(date.num_days_from_ce() - 719_163)
    }

    pub fn naive(self) -> NaiveDate {
        NaiveDate::from_num_days_from_ce_opt(self.0 + 719_163).expect("Day holds a valid date")
    }

    /// Days since 1970-01-01 (the Avro `date` logical type).
    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    pub fn from_days_since_epoch(days: i32) -> Option<Day> {
        (Day::MIN.0..=Day::MAX.0)
            .contains(&days)
            .then_some(Day(days))
    }

    /// The date in Japan at the given instant.
    pub fn in_japan(at: RecordTime) -> Day {
        let jst = FixedOffset::east_opt(JST_SECONDS).expect("+09:00 is a valid offset");
        Day::from_naive(at.to_datetime().with_timezone(&jst).date_naive())
    }

    /// Today's date in Japan.
    pub fn today_in_japan() -> Day {
        Day::in_japan(RecordTime::now())
    }

    pub fn succ(self) -> Day {
        Day(self.0.saturating_add(1).min(Day::MAX.0))
    }

    pub fn pred(self) -> Day {
        Day(self.0.saturating_sub(1).max(Day::MIN.0))
    }

    pub fn add_days(self, n: i32) -> Day {
        Day(self.0.saturating_add(n).clamp(Day::MIN.0, Day::MAX.0))
    }

    pub fn year(self) -> i32 {
        self.naive().year()
    }

    /// The same month and day `years` later (29 February becomes 1 March).
    pub fn add_years(self, years: i32) -> Day {
        let d = self.naive();
        NaiveDate::from_ymd_opt(d.year() + years, d.month(), d.day())
            .or_else(|| NaiveDate::from_ymd_opt(d.year() + years, 3, 1))
            .map(Day::from_naive)
            .unwrap_or(Day::MAX)
    }

    /// `YYYYMMDD`, the form of the online check's messages.
    pub fn to_yyyymmdd(self) -> String {
        self.naive().format("%Y%m%d").to_string()
    }
}

impl fmt::Display for Day {
    /// `YYYY-MM-DD`, written directly: answers format many dates, and
    /// chrono's `format` parses its pattern every time.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use chrono::Datelike;
        let d = self.naive();
        let year = d.year();
        if (0..=9999).contains(&year) {
            write!(f, "{year:04}-{:02}-{:02}", d.month(), d.day())
        } else {
            write!(f, "{}", d.format("%Y-%m-%d"))
        }
    }
}

impl fmt::Debug for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Day({self})")
    }
}

impl FromStr for Day {
    type Err = RuleViolation;

    /// Accepts ISO 8601 `YYYY-MM-DD` and the compact `YYYYMMDD`.
    fn from_str(s: &str) -> Result<Day, RuleViolation> {
        let s = s.trim();
        let parsed = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
            NaiveDate::parse_from_str(s, "%Y%m%d")
        } else {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
        };
        let day = parsed.map(Day::from_naive).map_err(|_| {
            RuleViolation::new(format!("must be a calendar date YYYY-MM-DD, got {s:?}"))
        })?;
        if !(Day::MIN..=Day::MAX).contains(&day) {
            return Err(RuleViolation::new(
                "must be a date between 0001-01-01 and 9999-12-31",
            ));
        }
        Ok(day)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i32(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Day, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let days = i32::deserialize(d)?;
            Day::from_days_since_epoch(days)
                .ok_or_else(|| serde::de::Error::custom("day out of range"))
        }
    }
}

/// Record time: the UTC instant at which the log stored an event, in
/// microseconds since the Unix epoch. Monotonic within a log partition.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordTime(i64);

impl RecordTime {
    pub const MIN: RecordTime = RecordTime(i64::MIN);
    pub const MAX: RecordTime = RecordTime(i64::MAX);

    pub fn from_micros(micros: i64) -> RecordTime {
        RecordTime(micros)
    }

    pub fn micros(self) -> i64 {
        self.0
    }

    pub fn now() -> RecordTime {
        RecordTime(Utc::now().timestamp_micros())
    }

    /// The next representable instant (one microsecond later).
    pub fn next(self) -> RecordTime {
        RecordTime(self.0.saturating_add(1))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_micros(self.0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    pub fn from_datetime(at: DateTime<Utc>) -> RecordTime {
        RecordTime(at.timestamp_micros())
    }
}

impl fmt::Display for RecordTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
    }
}

impl fmt::Debug for RecordTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordTime({self})")
    }
}

impl FromStr for RecordTime {
    type Err = RuleViolation;

    /// Accepts RFC 3339 instants with an explicit offset (`2024-04-03T09:00:00+09:00`,
    /// `2024-04-03T00:00:00Z`). A bare date is refused: record time is an instant.
    fn from_str(s: &str) -> Result<RecordTime, RuleViolation> {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| RecordTime::from_datetime(t.with_timezone(&Utc)))
            .map_err(|_| {
                RuleViolation::new(format!(
                    "must be an RFC 3339 instant with offset, e.g. 2024-04-03T09:00:00+09:00, got {s:?}"
                ))
            })
    }
}

impl Serialize for RecordTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for RecordTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RecordTime, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            i64::deserialize(d).map(RecordTime)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_round_trips_through_epoch_days() {
        let d = Day::from_ymd(2024, 4, 1).unwrap();
        assert_eq!(Day::from_days_since_epoch(d.days_since_epoch()), Some(d));
        assert_eq!(Day::from_ymd(1970, 1, 1).unwrap().days_since_epoch(), 0);
        assert_eq!(d.to_string(), "2024-04-01");
        assert_eq!("20240401".parse::<Day>().unwrap(), d);
        assert!("2024-02-30".parse::<Day>().is_err());
        assert!("+12345-01-01".parse::<Day>().is_err());
    }

    #[test]
    fn japan_date_is_utc_plus_nine() {
        // 2024-04-01T15:00:00Z is already 2 April in Tokyo.
        let t: RecordTime = "2024-04-01T15:00:00Z".parse().unwrap();
        assert_eq!(Day::in_japan(t), Day::from_ymd(2024, 4, 2).unwrap());
        let t: RecordTime = "2024-04-01T14:59:59Z".parse().unwrap();
        assert_eq!(Day::in_japan(t), Day::from_ymd(2024, 4, 1).unwrap());
    }

    #[test]
    fn record_time_parses_offsets_and_refuses_bare_dates() {
        let a: RecordTime = "2024-04-03T09:00:00+09:00".parse().unwrap();
        let b: RecordTime = "2024-04-03T00:00:00Z".parse().unwrap();
        assert_eq!(a, b);
        assert!("2024-04-03".parse::<RecordTime>().is_err());
    }

    #[test]
    fn add_years_handles_leap_day() {
        let d = Day::from_ymd(1952, 2, 29).unwrap();
        assert_eq!(d.add_years(75), Day::from_ymd(2027, 3, 1).unwrap());
    }
}
