//! Business-day calendar for the five-business-day deadlines (contract §6).
//!
//! A deadline of `n` business days that starts at instant `T` ends at 24:00
//! local time of the `n`-th business day after `T`'s local calendar day. In
//! other words, with `D` the local date of `T` in the calendar's time zone:
//! walk forward from `D + 1`, counting days that are neither a weekend day nor
//! a holiday, until the `n`-th one, `B`; the deadline is the instant local day
//! `B + 1` begins, as UTC.
//!
//! Where local midnight of `B + 1` does not exist (a daylight-saving gap at
//! midnight, as in America/Santiago or America/Havana), the day begins at the
//! first valid instant after the gap; where it exists twice (a fall-back onto
//! midnight), the earliest of the two counts. A local date the zone skipped
//! altogether (`Pacific/Apia`, 2011-12-30) has no hours and is no business day.
//!
//! The calendar (time zone, weekend days, holiday dates) is configuration
//! (contract §8, `[calendar]`); the default is UTC, Saturday/Sunday, no
//! holidays. Everything here is pure: no clock, no IO.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Weekday,
};
use chrono_tz::Tz;

use crate::error::{ErrorCode, Rejection};
use crate::types::Timestamp;

/// The named limit on how many days a deadline computation may scan.
///
/// Ten years of days. A weekend never holds all seven days and the holiday list
/// is finite, so a scan for a handful of business days ends long before this;
/// it bounds the loop against a huge `n` or a holiday list that blocks out
/// years.
pub const CALENDAR_SCAN_DAYS_MAX: u32 = 3660;

/// The business days a claim review, a dispute review or a proof-of-execution
/// answer gets (contract §6).
pub const REVIEW_BUSINESS_DAYS: u32 = 5;

/// The weekend day names the configuration accepts (case-insensitively), in
/// `Weekday::num_days_from_monday` order.
const WEEKDAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Bound on the distance between a local wall-clock time and the UTC instant
/// it denotes. Real offsets stay well inside ±16 h; the gap search only needs
/// some bound.
const OFFSET_BOUND_SECS: i64 = 24 * 60 * 60;

/// Why a `[calendar]` configuration was refused. Each message names the bad
/// value and says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("unknown time zone {0:?}: use an IANA name such as Europe/Paris")]
    UnknownTimeZone(String),
    #[error("unknown weekend day {0:?}: use mon, tue, wed, thu, fri, sat, sun")]
    UnknownWeekendDay(String),
    #[error("weekend cannot hold all seven days")]
    WeekendAllDays,
    #[error("bad holiday date {0:?}: use YYYY-MM-DD")]
    BadHolidayDate(String),
}

/// Weekend days as a set of weekdays, Monday first.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Weekend([bool; 7]);

impl Weekend {
    fn contains(self, day: Weekday) -> bool {
        self.0[day.num_days_from_monday() as usize]
    }
}

impl fmt::Debug for Weekend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                WEEKDAY_NAMES
                    .iter()
                    .zip(self.0)
                    .filter(|(_, on)| *on)
                    .map(|(name, _)| name),
            )
            .finish()
    }
}

/// A business-day calendar: a time zone, the weekend days and the holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    time_zone: Tz,
    weekend: Weekend,
    holidays: BTreeSet<NaiveDate>,
}

impl Default for Calendar {
    /// UTC, Saturday/Sunday weekend, no holidays (contract §6).
    fn default() -> Self {
        let mut weekend = [false; 7];
        weekend[Weekday::Sat.num_days_from_monday() as usize] = true;
        weekend[Weekday::Sun.num_days_from_monday() as usize] = true;
        Calendar {
            time_zone: Tz::UTC,
            weekend: Weekend(weekend),
            holidays: BTreeSet::new(),
        }
    }
}

impl Calendar {
    /// Builds a calendar from the `[calendar]` configuration values.
    ///
    /// `time_zone` is an IANA name (`"Europe/Paris"`, `"UTC"`); `weekend`
    /// holds day names `mon` … `sun` in any case, possibly none, never all
    /// seven; `holidays` holds `YYYY-MM-DD` dates. Duplicates are harmless.
    /// The first bad value found (time zone, then weekend, then holidays) is
    /// reported.
    pub fn new(
        time_zone: &str,
        weekend: &[String],
        holidays: &[String],
    ) -> Result<Calendar, CalendarError> {
        let tz: Tz = time_zone
            .parse()
            .map_err(|_| CalendarError::UnknownTimeZone(time_zone.to_owned()))?;

        let mut days = [false; 7];
        for name in weekend {
            let index = WEEKDAY_NAMES
                .iter()
                .position(|known| known.eq_ignore_ascii_case(name))
                .ok_or_else(|| CalendarError::UnknownWeekendDay(name.clone()))?;
            days[index] = true;
        }
        if days.iter().all(|&on| on) {
            return Err(CalendarError::WeekendAllDays);
        }

        let holidays = holidays
            .iter()
            .map(|text| {
                parse_iso_date(text).ok_or_else(|| CalendarError::BadHolidayDate(text.clone()))
            })
            .collect::<Result<BTreeSet<_>, _>>()?;

        Ok(Calendar {
            time_zone: tz,
            weekend: Weekend(days),
            holidays,
        })
    }

    /// The IANA name of the calendar's time zone, e.g. `"Europe/Paris"`.
    pub fn time_zone_name(&self) -> &str {
        self.time_zone.name()
    }

    /// The weekend days, Monday first.
    pub fn weekend(&self) -> Vec<Weekday> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .filter(|&day| self.weekend.contains(day))
        .collect()
    }

    /// The holiday dates, in order.
    pub fn holidays(&self) -> &BTreeSet<NaiveDate> {
        &self.holidays
    }

    /// A day is a business day when it is neither a weekend day nor a
    /// holiday, and it has local hours at all: a date the time zone skipped
    /// (Samoa's Friday 2011-12-30 in `Pacific/Apia`, Kiribati's 1994-12-31 in
    /// `Pacific/Kiritimati`, when they moved across the date line) never
    /// existed there, so nobody could work on it.
    pub fn is_business_day(&self, day: NaiveDate) -> bool {
        !self.weekend.contains(day.weekday())
            && !self.holidays.contains(&day)
            && self.has_local_hours(day)
    }

    /// Whether local day `day` lasts any time at all: it begins before the
    /// next one does. A day the zone skipped entirely begins (at the end of
    /// the gap) at the same instant as the day after it.
    fn has_local_hours(&self, day: NaiveDate) -> bool {
        match day.succ_opt() {
            Some(next) => self.start_of_local_day(day) < self.start_of_local_day(next),
            None => true,
        }
    }

    /// End (24:00 local, i.e. the instant the next local day starts) of the
    /// `n`-th business day after `t`'s local calendar day. `n >= 1`; `n == 0`
    /// gives the end of `t`'s own local day.
    ///
    /// The scan looks at no more than [`CALENDAR_SCAN_DAYS_MAX`] days: should
    /// the `n`-th business day lie further out, the last day scanned stands in
    /// for it. Past the last representable date the answer saturates at
    /// `DateTime::<Utc>::MAX_UTC`. The function never panics.
    pub fn business_days_after(&self, t: Timestamp, n: u32) -> Timestamp {
        // `first` is D + 1: the first day that may count.
        let utc = t.naive_utc();
        let offset = self.time_zone.offset_from_utc_datetime(&utc).fix();
        let first = match utc.checked_add_offset(offset) {
            Some(local) => local.date().succ_opt(),
            // T's local day lies before the first representable date, so the
            // day after it is that first date.
            None if offset.local_minus_utc() < 0 => Some(NaiveDate::MIN),
            None => None,
        };
        let Some(mut day) = first else {
            return Timestamp::MAX_UTC;
        };
        if n == 0 {
            return self.start_of_local_day(day);
        }

        let mut counted = 0u32;
        let mut scanned = 1u32;
        loop {
            if self.is_business_day(day) {
                counted += 1;
            }
            if counted == n || scanned >= CALENDAR_SCAN_DAYS_MAX {
                break;
            }
            match day.succ_opt() {
                Some(next) => day = next,
                None => return Timestamp::MAX_UTC,
            }
            scanned += 1;
        }

        match day.succ_opt() {
            Some(after) => self.start_of_local_day(after),
            None => Timestamp::MAX_UTC,
        }
    }

    /// Whether the service may take `now` as the time of a write: `now` and
    /// every deadline a command at `now` can start (five business days)
    /// must be valid RFC 3339 times, years 0000–9999, no leap
    /// second (issue 11 case 9). A refusal is `INVALID_COMMAND` naming
    /// `now`, which is how `admin.clock` reports it.
    pub fn check_writable_now(&self, now: Timestamp) -> Result<(), Rejection> {
        let refuse = |why: String| Err(Rejection::with_message(ErrorCode::InvalidCommand, why));
        if !is_writable_time(now) {
            return refuse(format!(
                "now: {now:?} cannot be written as RFC 3339: the service writes years 0000 to 9999 in UTC, without leap seconds"
            ));
        }
        if !is_writable_time(self.deadline_after(now)) {
            return refuse(format!(
                "now: deadlines started at {now:?} would fall after the end of year 9999, which RFC 3339 cannot write"
            ));
        }
        Ok(())
    }

    /// The five-business-day deadline that starts at `t` (contract §6):
    /// `business_days_after(t, REVIEW_BUSINESS_DAYS)`.
    pub fn deadline_after(&self, t: Timestamp) -> Timestamp {
        self.business_days_after(t, REVIEW_BUSINESS_DAYS)
    }

    /// The instant local day `day` begins: local midnight as UTC; the earliest
    /// one when midnight happens twice; the first valid instant after the gap
    /// when midnight is skipped.
    fn start_of_local_day(&self, day: NaiveDate) -> Timestamp {
        let midnight = day.and_time(NaiveTime::MIN);
        match self.time_zone.from_local_datetime(&midnight) {
            LocalResult::Single(at) => at.to_utc(),
            LocalResult::Ambiguous(a, b) => a.min(b).to_utc(),
            LocalResult::None => self
                .first_instant_at_or_after(midnight)
                .unwrap_or(Timestamp::MAX_UTC),
        }
    }

    /// The first UTC instant (whole second) whose local wall-clock time is at
    /// or after `local`. Used when `local` falls in a gap, where that instant is
    /// the transition ending the gap. `None` only at the edge of the
    /// representable range.
    fn first_instant_at_or_after(&self, local: NaiveDateTime) -> Option<Timestamp> {
        let target = local.and_utc().timestamp();
        let wall_clock = |secs: i64| -> Option<i64> {
            let at = DateTime::from_timestamp(secs, 0)?.naive_utc();
            let offset = self.time_zone.offset_from_utc_datetime(&at).fix();
            Some(secs + i64::from(offset.local_minus_utc()))
        };
        // Invariant: wall_clock(lo) < target <= wall_clock(hi).
        let mut lo = target - OFFSET_BOUND_SECS;
        let mut hi = target + OFFSET_BOUND_SECS;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if wall_clock(mid)? >= target {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        DateTime::from_timestamp(hi, 0)
    }
}

/// Whether `t` is an instant the service writes: RFC 3339 (`full-date` has
/// a four-digit year) in UTC, years 0000–9999, and not a leap second, which
/// chrono would write as `:60` and most RFC 3339 parsers refuse.
pub fn is_writable_time(t: Timestamp) -> bool {
    (0..=9999).contains(&t.year()) && t.nanosecond() < 1_000_000_000
}

/// Parses exactly `YYYY-MM-DD` (four-digit year, zero-padded month and day)
/// into a real calendar date.
fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        });
    if !shape_ok {
        return None;
    }
    // All ten bytes are ASCII, so these slices fall on char boundaries.
    let year = text[0..4].parse().ok()?;
    let month = text[5..7].parse().ok()?;
    let day = text[8..10].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, Utc};

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn ts(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text)
            .unwrap_or_else(|e| panic!("bad test timestamp {text:?}: {e}"))
            .to_utc()
    }

    fn date(text: &str) -> NaiveDate {
        parse_iso_date(text).unwrap_or_else(|| panic!("bad test date {text:?}"))
    }

    fn calendar(row: &str, tz: &str, weekend: &[&str], holidays: &[&str]) -> Calendar {
        Calendar::new(tz, &strings(weekend), &strings(holidays))
            .unwrap_or_else(|e| panic!("row {row:?}: calendar refused: {e}"))
    }

    const SAT_SUN: &[&str] = &["sat", "sun"];

    /// (description, time zone, weekend, holidays, T, expected deadline).
    /// Every expected value is worked out by hand in the description or the
    /// comment above the row: the business days counted are listed as (1)…(5).
    /// DST transition times were checked against `zdump -v`.
    type Row = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        &'static str,
    );

    #[rustfmt::skip]
    const DEADLINE_ROWS: &[Row] = &[
        // --- Contract §6 example, UTC, Sat/Sun, no holidays. ---
        // Wed 2026-11-25: Thu 26 (1), Fri 27 (2), Mon 30 (3), Tue Dec 1 (4),
        // Wed Dec 2 (5) -> end of Wed Dec 2 = 2026-12-03T00:00Z.
        ("contract: Wednesday mid-day", "UTC", SAT_SUN, &[],
         "2026-11-25T09:30:00Z", "2026-12-03T00:00:00Z"),
        ("contract: Wednesday first instant", "UTC", SAT_SUN, &[],
         "2026-11-25T00:00:00Z", "2026-12-03T00:00:00Z"),
        ("contract: Wednesday last second", "UTC", SAT_SUN, &[],
         "2026-11-25T23:59:59Z", "2026-12-03T00:00:00Z"),
        ("contract: Wednesday last nanosecond", "UTC", SAT_SUN, &[],
         "2026-11-25T23:59:59.999999999Z", "2026-12-03T00:00:00Z"),
        // The next day's first instant already starts from Thursday:
        // Fri 27 (1), Mon 30 (2), Tue 1 (3), Wed 2 (4), Thu 3 (5) -> Dec 4.
        ("Thursday first instant", "UTC", SAT_SUN, &[],
         "2026-11-26T00:00:00Z", "2026-12-04T00:00:00Z"),
        // PoE answer Mon 2026-11-30: Tue 1 (1), Wed 2 (2), Thu 3 (3), Fri 4 (4),
        // Mon 7 (5) -> 2026-12-08T00:00Z.
        ("contract: PoE answer on Monday", "UTC", SAT_SUN, &[],
         "2026-11-30T12:00:00Z", "2026-12-08T00:00:00Z"),

        // --- Weekend starts. ---
        // Fri 27: Mon 30 (1), Tue 1 (2), Wed 2 (3), Thu 3 (4), Fri 4 (5).
        ("Friday start", "UTC", SAT_SUN, &[],
         "2026-11-27T10:00:00Z", "2026-12-05T00:00:00Z"),
        // Sat 28 and Sun 29: same five days Mon 30 .. Fri Dec 4.
        ("Saturday start", "UTC", SAT_SUN, &[],
         "2026-11-28T10:00:00Z", "2026-12-05T00:00:00Z"),
        ("Sunday start", "UTC", SAT_SUN, &[],
         "2026-11-29T23:59:59Z", "2026-12-05T00:00:00Z"),
        // Empty weekend, Wed 25: Thu 26 (1), Fri 27 (2), Sat 28 (3), Sun 29 (4),
        // Mon 30 (5) -> 2026-12-01T00:00Z.
        ("empty weekend", "UTC", &[], &[],
         "2026-11-25T12:00:00Z", "2026-12-01T00:00:00Z"),

        // --- Holidays. ---
        // Holiday Thu 26: Fri 27 (1), Mon 30 (2), Tue 1 (3), Wed 2 (4), Thu 3 (5).
        ("holiday inside the window", "UTC", SAT_SUN, &["2026-11-26"],
         "2026-11-25T12:00:00Z", "2026-12-04T00:00:00Z"),
        // Holiday Sat 28 is a weekend day anyway: same as the contract example.
        ("holiday on a weekend day", "UTC", SAT_SUN, &["2026-11-28"],
         "2026-11-25T12:00:00Z", "2026-12-03T00:00:00Z"),
        // Holiday on the would-be fifth day Wed Dec 2: Thu 26 (1), Fri 27 (2),
        // Mon 30 (3), Tue 1 (4), Thu 3 (5) -> Dec 4.
        ("holiday on the would-be last day", "UTC", SAT_SUN, &["2026-12-02"],
         "2026-11-25T12:00:00Z", "2026-12-04T00:00:00Z"),
        // Holiday on T's own day Thu 26 changes nothing: T's day never counts.
        // Fri 27 (1), Mon 30 (2), Tue 1 (3), Wed 2 (4), Thu 3 (5).
        ("holiday on T's own day", "UTC", SAT_SUN, &["2026-11-26"],
         "2026-11-26T08:00:00Z", "2026-12-04T00:00:00Z"),
        // Holidays outside the window change nothing.
        ("holidays outside the window", "UTC", SAT_SUN, &["2026-11-25", "2026-12-03"],
         "2026-11-25T12:00:00Z", "2026-12-03T00:00:00Z"),
        // Christmas / new year, holidays listed out of order with a duplicate.
        // Tue 2026-12-22: Wed 23 (1), Thu 24 hol, Fri 25 hol, Sat 26, Sun 27,
        // Mon 28 (2), Tue 29 (3), Wed 30 (4), Thu 31 hol, Fri Jan 1 hol, Sat 2,
        // Sun 3, Mon Jan 4 (5) -> 2027-01-05T00:00Z.
        ("consecutive holidays across the year end", "UTC", SAT_SUN,
         &["2027-01-01", "2026-12-24", "2026-12-25", "2026-12-31", "2026-12-25"],
         "2026-12-22T16:00:00Z", "2027-01-05T00:00:00Z"),
        // Paris, holidays of the contract §8 example. T = 22:30Z = 23:30 CET on
        // Wed Dec 23: Thu 24 (1), Fri 25 hol, Mon 28 (2), Tue 29 (3), Wed 30 (4),
        // Thu 31 (5) -> 2027-01-01 00:00 CET = 2026-12-31T23:00Z.
        ("Paris year end, deadline UTC still in the old year", "Europe/Paris", SAT_SUN,
         &["2026-12-25", "2027-01-01"],
         "2026-12-23T22:30:00Z", "2026-12-31T23:00:00Z"),
        // T = 23:30Z = 00:30 CET Thu Dec 24: Fri 25 hol, Mon 28 (1), Tue 29 (2),
        // Wed 30 (3), Thu 31 (4), Fri Jan 1 hol, Mon Jan 4 (5)
        // -> Tue Jan 5 00:00 CET = 2027-01-04T23:00Z.
        ("Paris year end, T already the next local day", "Europe/Paris", SAT_SUN,
         &["2026-12-25", "2027-01-01"],
         "2026-12-23T23:30:00Z", "2027-01-04T23:00:00Z"),

        // --- Friday/Saturday weekend, Asia/Riyadh (+03, no DST). ---
        // Thu 26 11:00 local: Fri 27, Sat 28 weekend, Sun 29 (1), Mon 30 (2),
        // Tue 1 (3), Wed 2 (4), Thu 3 (5) -> Fri Dec 4 00:00 +03 = Dec 3 21:00Z.
        ("Fri/Sat weekend, Thursday start", "Asia/Riyadh", &["fri", "sat"], &[],
         "2026-11-26T08:00:00Z", "2026-12-03T21:00:00Z"),
        // Sun 29 09:00 local: Mon 30 (1), Tue 1 (2), Wed 2 (3), Thu 3 (4),
        // Fri 4, Sat 5 weekend, Sun 6 (5) -> Mon Dec 7 00:00 +03 = Dec 6 21:00Z.
        ("Fri/Sat weekend, Sunday start", "Asia/Riyadh", &["fri", "sat"], &[],
         "2026-11-29T06:00:00Z", "2026-12-06T21:00:00Z"),
        // Same as the Thursday row, weekend names in mixed case; Sat/Sun are
        // business days here: Wed 25 10:00 local -> Thu 26 (1), Sun 29 (2),
        // Mon 30 (3), Tue 1 (4), Wed 2 (5) -> Thu Dec 3 00:00 +03 = Dec 2 21:00Z.
        ("Fri/Sat weekend, names in upper/mixed case", "Asia/Riyadh", &["FRI", "Sat"], &[],
         "2026-11-25T07:00:00Z", "2026-12-02T21:00:00Z"),

        // --- Europe/Paris DST. ---
        // Spring forward Sun 2027-03-28 02:00 CET -> 03:00 CEST.
        // Mon 22 13:00 CET: Tue 23 (1), Wed 24 (2), Thu 25 (3), Fri 26 (4),
        // Mon 29 (5) -> Tue Mar 30 00:00 CEST (+02) = Mar 29 22:00Z.
        ("Paris spring forward inside the window", "Europe/Paris", SAT_SUN, &[],
         "2027-03-22T12:00:00Z", "2027-03-29T22:00:00Z"),
        // Sat 27 23:30Z = Sun 28 00:30 CET (before the 02:00 switch), so D = Sun 28:
        // Mon 29 (1) .. Fri Apr 2 (5) -> Sat Apr 3 00:00 CEST = Apr 2 22:00Z.
        ("Paris spring forward, T already Sunday local", "Europe/Paris", SAT_SUN, &[],
         "2027-03-27T23:30:00Z", "2027-04-02T22:00:00Z"),
        // Fall back Sun 2026-10-25 03:00 CEST -> 02:00 CET.
        // Wed 21 12:00 CEST: Thu 22 (1), Fri 23 (2), Mon 26 (3), Tue 27 (4),
        // Wed 28 (5) -> Thu Oct 29 00:00 CET (+01) = Oct 28 23:00Z.
        ("Paris fall back inside the window", "Europe/Paris", SAT_SUN, &[],
         "2026-10-21T10:00:00Z", "2026-10-28T23:00:00Z"),
        // Sat 24 22:30Z = Sun 25 00:30 CEST, so D = Sun 25: Mon 26 (1) .. Fri 30 (5)
        // -> Sat Oct 31 00:00 CET = Oct 30 23:00Z.
        ("Paris fall back, T already Sunday local", "Europe/Paris", SAT_SUN, &[],
         "2026-10-24T22:30:00Z", "2026-10-30T23:00:00Z"),

        // --- Local day differs from the UTC day. ---
        // Auckland, NZDT +13 in November. Wed 25 11:30Z = Thu 26 00:30 local:
        // Fri 27 (1), Mon 30 (2), Tue 1 (3), Wed 2 (4), Thu 3 (5)
        // -> Fri Dec 4 00:00 +13 = Dec 3 11:00Z.
        ("Auckland: late UTC Wednesday is local Thursday", "Pacific/Auckland", SAT_SUN, &[],
         "2026-11-25T11:30:00Z", "2026-12-03T11:00:00Z"),
        // Wed 25 10:59:59Z = Wed 25 23:59:59 local: Thu 26 (1) .. Wed 2 (5)
        // -> Thu Dec 3 00:00 +13 = Dec 2 11:00Z.
        ("Auckland: last second of local Wednesday", "Pacific/Auckland", SAT_SUN, &[],
         "2026-11-25T10:59:59Z", "2026-12-02T11:00:00Z"),
        // Tokyo +09. Thu 26 15:00Z = Fri 27 00:00 local: Mon 30 (1), Tue 1 (2),
        // Wed 2 (3), Thu 3 (4), Fri 4 (5) -> Sat Dec 5 00:00 +09 = Dec 4 15:00Z.
        ("Tokyo: UTC Thursday 15:00 is local Friday midnight", "Asia/Tokyo", SAT_SUN, &[],
         "2026-11-26T15:00:00Z", "2026-12-04T15:00:00Z"),
        // Thu 26 14:59:59Z = Thu 26 23:59:59 local: Fri 27 (1), Mon 30 (2),
        // Tue 1 (3), Wed 2 (4), Thu 3 (5) -> Fri Dec 4 00:00 +09 = Dec 3 15:00Z.
        ("Tokyo: last second of local Thursday", "Asia/Tokyo", SAT_SUN, &[],
         "2026-11-26T14:59:59Z", "2026-12-03T15:00:00Z"),
        // Los Angeles, PST -08 after Nov 1. Thu 26 05:00Z = Wed 25 21:00 local:
        // Thu 26 (1) .. Wed Dec 2 (5) -> Thu Dec 3 00:00 -08 = Dec 3 08:00Z.
        ("Los Angeles: early UTC Thursday is local Wednesday", "America/Los_Angeles", SAT_SUN, &[],
         "2026-11-26T05:00:00Z", "2026-12-03T08:00:00Z"),
        // Sat 28 03:00Z = Fri 27 19:00 local: Mon 30 (1) .. Fri Dec 4 (5)
        // -> Sat Dec 5 00:00 -08 = Dec 5 08:00Z.
        ("Los Angeles: early UTC Saturday is local Friday", "America/Los_Angeles", SAT_SUN, &[],
         "2026-11-28T03:00:00Z", "2026-12-05T08:00:00Z"),
        // Across the Nov 1 fall back (PDT -07 -> PST -08). Mon Oct 26 11:00 PDT:
        // Tue 27 (1), Wed 28 (2), Thu 29 (3), Fri 30 (4), Mon Nov 2 (5)
        // -> Tue Nov 3 00:00 PST = Nov 3 08:00Z.
        ("Los Angeles fall back inside the window", "America/Los_Angeles", SAT_SUN, &[],
         "2026-10-26T18:00:00Z", "2026-11-03T08:00:00Z"),

        // --- Transitions at local midnight (weekend Sunday only, so the
        //     Saturday before the transition can be day 5). ---
        // Santiago spring forward: Sat 2026-09-05 23:59:59 -04 (03:59:59Z) is
        // followed by Sun 01:00 -03 (04:00Z); Sun 00:00 never happens.
        // Mon Aug 31 11:00 -04: Tue 1 (1), Wed 2 (2), Thu 3 (3), Fri 4 (4),
        // Sat 5 (5) -> Sunday begins at 01:00 -03 = 2026-09-06T04:00Z.
        ("Santiago: midnight gap, day begins after the gap", "America/Santiago", &["sun"], &[],
         "2026-08-31T15:00:00Z", "2026-09-06T04:00:00Z"),
        // Santiago fall back: Sat 2026-04-04 23:59:59 -03 (02:59:59Z) is followed
        // by Sat 23:00 -04 (03:00Z); Sunday begins at 00:00 -04 = 04:00Z.
        // Mon Mar 30 12:00 -03: Tue 31 (1), Wed 1 (2), Thu 2 (3), Fri 3 (4),
        // Sat 4 (5) -> 2026-04-05T04:00Z (not 03:00Z, T's offset).
        ("Santiago: fall back onto Saturday 23:00", "America/Santiago", &["sun"], &[],
         "2026-03-30T15:00:00Z", "2026-04-05T04:00:00Z"),
        // Havana fall back: Sun 2026-11-01 00:59:59 CDT (04:59:59Z) is followed by
        // 00:00 CST (05:00Z); Sunday 00:00 happens at 04:00Z and at 05:00Z, the
        // earliest counts. Mon Oct 26 08:00 CDT: Tue 27 (1), Wed 28 (2),
        // Thu 29 (3), Fri 30 (4), Sat 31 (5) -> 2026-11-01T04:00Z.
        ("Havana: ambiguous midnight, earliest counts", "America/Havana", &["sun"], &[],
         "2026-10-26T12:00:00Z", "2026-11-01T04:00:00Z"),
        // Havana spring forward: Sat 2027-03-13 23:59:59 CST (04:59:59Z) is
        // followed by Sun 01:00 CDT (05:00Z). Mon Mar 8 10:00 CST: Tue 9 (1),
        // Wed 10 (2), Thu 11 (3), Fri 12 (4), Sat 13 (5) -> 2027-03-14T05:00Z.
        ("Havana: midnight gap, day begins after the gap", "America/Havana", &["sun"], &[],
         "2027-03-08T15:00:00Z", "2027-03-14T05:00:00Z"),

        // --- Days that never existed (issue 11 case 13). ---
        // Samoa moved across the date line: Thu 2011-12-29 23:59:59 -10
        // (09:59:59Z Dec 30) was followed by Sat 2011-12-31 00:00 +14; Friday
        // Dec 30 has no local hours and is no business day.
        // Thu 29 12:00 -10 (22:00Z): Fri 30 never was, Sat 31, Sun 1 weekend,
        // Mon 2 (1), Tue 3 (2), Wed 4 (3), Thu 5 (4), Fri 6 (5)
        // -> Sat Jan 7 00:00 +14 = 2012-01-06T10:00Z.
        ("Apia: skipped Friday is no business day, Thursday start", "Pacific/Apia", SAT_SUN, &[],
         "2011-12-29T22:00:00Z", "2012-01-06T10:00:00Z"),
        // Wed 28 12:00 -10: Thu 29 (1), Fri 30 never was, Mon 2 (2), Tue 3 (3),
        // Wed 4 (4), Thu 5 (5) -> Fri Jan 6 00:00 +14 = 2012-01-05T10:00Z.
        ("Apia: skipped Friday is no business day, Wednesday start", "Pacific/Apia", SAT_SUN, &[],
         "2011-12-28T22:00:00Z", "2012-01-05T10:00:00Z"),
        // Fri 23 12:00 -10: Mon 26 (1), Tue 27 (2), Wed 28 (3), Thu 29 (4),
        // Fri 30 never was, Mon 2 (5) -> Tue Jan 3 00:00 +14 = 2012-01-02T10:00Z.
        ("Apia: the window spans the skipped day", "Pacific/Apia", SAT_SUN, &[],
         "2011-12-23T22:00:00Z", "2012-01-02T10:00:00Z"),
        // Kiribati's Line Islands: Fri 1994-12-30 23:59:59 -10 was followed by
        // Sun 1995-01-01 00:00 +14; Saturday Dec 31 never was. Weekend Sunday
        // only, so Saturday would otherwise count. Fri 30 12:00 -10 (22:00Z):
        // Sat 31 never was, Sun 1 weekend, Mon 2 (1), Tue 3 (2), Wed 4 (3),
        // Thu 5 (4), Fri 6 (5) -> Sat Jan 7 00:00 +14 = 1995-01-06T10:00Z.
        ("Kiritimati: skipped Saturday is no business day", "Pacific/Kiritimati", &["sun"], &[],
         "1994-12-30T22:00:00Z", "1995-01-06T10:00:00Z"),
    ];

    #[test]
    fn deadline_after_table() {
        for &(row, tz, weekend, holidays, t, expected) in DEADLINE_ROWS {
            let cal = calendar(row, tz, weekend, holidays);
            let got = cal.deadline_after(ts(t));
            assert_eq!(got, ts(expected), "row {row:?}: deadline_after({t})");
            let via_n = cal.business_days_after(ts(t), REVIEW_BUSINESS_DAYS);
            assert_eq!(via_n, got, "row {row:?}: business_days_after(t, 5)");
        }
    }

    /// (description, time zone, weekend, holidays, T, n, expected).
    type RowN = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        u32,
        &'static str,
    );

    #[rustfmt::skip]
    const BUSINESS_DAYS_ROWS: &[RowN] = &[
        // Wed 25 -> Thu 26 (1) -> 2026-11-27T00:00Z.
        ("n = 1 from Wednesday", "UTC", SAT_SUN, &[],
         "2026-11-25T12:00:00Z", 1, "2026-11-27T00:00:00Z"),
        // Fri 27 -> Mon 30 (1) -> 2026-12-01T00:00Z.
        ("n = 1 from Friday", "UTC", SAT_SUN, &[],
         "2026-11-27T12:00:00Z", 1, "2026-12-01T00:00:00Z"),
        // Wed 25: Thu 26 (1), Fri 27 (2), Mon 30 (3), Tue 1 (4), Wed 2 (5),
        // Thu 3 (6), Fri 4 (7), Mon 7 (8), Tue 8 (9), Wed 9 (10) -> Dec 10.
        ("n = 10 from Wednesday", "UTC", SAT_SUN, &[],
         "2026-11-25T12:00:00Z", 10, "2026-12-10T00:00:00Z"),
        // n = 0: end of T's own local day, business day or not.
        ("n = 0 on a Wednesday", "UTC", SAT_SUN, &[],
         "2026-11-25T12:00:00Z", 0, "2026-11-26T00:00:00Z"),
        ("n = 0 on a Saturday", "UTC", SAT_SUN, &[],
         "2026-11-28T12:00:00Z", 0, "2026-11-29T00:00:00Z"),
        // 23:30Z Wed = 00:30 CET Thu 26 -> end of Thu 26 = Fri 27 00:00 CET = 26 23:00Z.
        ("n = 0 in Paris, T already the next local day", "Europe/Paris", SAT_SUN, &[],
         "2026-11-25T23:30:00Z", 0, "2026-11-26T23:00:00Z"),
        // The scan stops after CALENDAR_SCAN_DAYS_MAX = 3660 days: D = 2026-11-25,
        // D + 3660 = 2036-12-02 (ten years 2026-11-25 -> 2036-11-25 are 3650 days
        // plus the leap days of 2028, 2032, 2036 = 3653; plus 7 days), so the
        // answer is the start of 2036-12-03.
        ("n too large: scan capped", "UTC", SAT_SUN, &[],
         "2026-11-25T12:00:00Z", u32::MAX, "2036-12-03T00:00:00Z"),
        // 10 000 business days need ~14 000 calendar days: capped the same way.
        ("n = 10000: scan capped", "UTC", SAT_SUN, &[],
         "2026-11-25T12:00:00Z", 10_000, "2036-12-03T00:00:00Z"),
    ];

    #[test]
    fn business_days_after_table() {
        for &(row, tz, weekend, holidays, t, n, expected) in BUSINESS_DAYS_ROWS {
            let cal = calendar(row, tz, weekend, holidays);
            let got = cal.business_days_after(ts(t), n);
            assert_eq!(
                got,
                ts(expected),
                "row {row:?}: business_days_after({t}, {n})"
            );
        }
    }

    /// (description, time zone, weekend, holidays, expected error, message).
    type ErrorRow = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        CalendarError,
        &'static str,
    );

    #[rustfmt::skip]
    fn error_rows() -> Vec<ErrorRow> {
        use CalendarError::*;
        let s = |text: &str| text.to_string();
        vec![
            ("misspelt time zone", "Europe/Pariss", SAT_SUN, &[],
             UnknownTimeZone(s("Europe/Pariss")),
             "unknown time zone \"Europe/Pariss\": use an IANA name such as Europe/Paris"),
            ("empty time zone", "", SAT_SUN, &[],
             UnknownTimeZone(s("")),
             "unknown time zone \"\": use an IANA name such as Europe/Paris"),
            ("time zone in the wrong case", "europe/paris", SAT_SUN, &[],
             UnknownTimeZone(s("europe/paris")),
             "unknown time zone \"europe/paris\": use an IANA name such as Europe/Paris"),
            ("time zone as an offset", "+02:00", SAT_SUN, &[],
             UnknownTimeZone(s("+02:00")),
             "unknown time zone \"+02:00\": use an IANA name such as Europe/Paris"),
            ("time zone checked before weekend", "Mars/Olympus", &["saturday"], &[],
             UnknownTimeZone(s("Mars/Olympus")),
             "unknown time zone \"Mars/Olympus\": use an IANA name such as Europe/Paris"),
            ("full weekday name", "UTC", &["saturday"], &[],
             UnknownWeekendDay(s("saturday")),
             "unknown weekend day \"saturday\": use mon, tue, wed, thu, fri, sat, sun"),
            ("empty weekday name", "UTC", &["sat", ""], &[],
             UnknownWeekendDay(s("")),
             "unknown weekend day \"\": use mon, tue, wed, thu, fri, sat, sun"),
            ("weekday with spaces", "UTC", &[" sat"], &[],
             UnknownWeekendDay(s(" sat")),
             "unknown weekend day \" sat\": use mon, tue, wed, thu, fri, sat, sun"),
            ("weekday as a number", "UTC", &["6"], &[],
             UnknownWeekendDay(s("6")),
             "unknown weekend day \"6\": use mon, tue, wed, thu, fri, sat, sun"),
            ("all seven weekend days", "UTC",
             &["mon", "TUE", "wed", "thu", "fri", "sat", "sun", "sat"], &[],
             WeekendAllDays, "weekend cannot hold all seven days"),
            ("weekend checked before holidays", "UTC", &["sunday"], &["2026-13-01"],
             UnknownWeekendDay(s("sunday")),
             "unknown weekend day \"sunday\": use mon, tue, wed, thu, fri, sat, sun"),
            ("month 13", "UTC", SAT_SUN, &["2026-12-25", "2026-13-01"],
             BadHolidayDate(s("2026-13-01")),
             "bad holiday date \"2026-13-01\": use YYYY-MM-DD"),
            ("February 30", "UTC", SAT_SUN, &["2026-02-30"],
             BadHolidayDate(s("2026-02-30")),
             "bad holiday date \"2026-02-30\": use YYYY-MM-DD"),
            ("February 29 of a common year", "UTC", SAT_SUN, &["2027-02-29"],
             BadHolidayDate(s("2027-02-29")),
             "bad holiday date \"2027-02-29\": use YYYY-MM-DD"),
            ("month not zero-padded", "UTC", SAT_SUN, &["2026-1-01"],
             BadHolidayDate(s("2026-1-01")),
             "bad holiday date \"2026-1-01\": use YYYY-MM-DD"),
            ("two-digit year", "UTC", SAT_SUN, &["26-12-25"],
             BadHolidayDate(s("26-12-25")),
             "bad holiday date \"26-12-25\": use YYYY-MM-DD"),
            ("slashes", "UTC", SAT_SUN, &["2026/12/25"],
             BadHolidayDate(s("2026/12/25")),
             "bad holiday date \"2026/12/25\": use YYYY-MM-DD"),
            ("day-first order", "UTC", SAT_SUN, &["25-12-2026"],
             BadHolidayDate(s("25-12-2026")),
             "bad holiday date \"25-12-2026\": use YYYY-MM-DD"),
            ("date with a time", "UTC", SAT_SUN, &["2026-12-25T00:00:00"],
             BadHolidayDate(s("2026-12-25T00:00:00")),
             "bad holiday date \"2026-12-25T00:00:00\": use YYYY-MM-DD"),
            ("leading space", "UTC", SAT_SUN, &[" 2026-12-25"],
             BadHolidayDate(s(" 2026-12-25")),
             "bad holiday date \" 2026-12-25\": use YYYY-MM-DD"),
            ("empty date", "UTC", SAT_SUN, &[""],
             BadHolidayDate(s("")),
             "bad holiday date \"\": use YYYY-MM-DD"),
            ("day zero", "UTC", SAT_SUN, &["2026-12-00"],
             BadHolidayDate(s("2026-12-00")),
             "bad holiday date \"2026-12-00\": use YYYY-MM-DD"),
            ("full-width digits", "UTC", SAT_SUN, &["２０２６-12-25"],
             BadHolidayDate(s("２０２６-12-25")),
             "bad holiday date \"２０２６-12-25\": use YYYY-MM-DD"),
        ]
    }

    #[test]
    fn new_rejects_bad_configuration() {
        for (row, tz, weekend, holidays, expected, message) in error_rows() {
            let got = Calendar::new(tz, &strings(weekend), &strings(holidays));
            assert_eq!(
                got.as_ref().err(),
                Some(&expected),
                "row {row:?}: error value"
            );
            assert_eq!(expected.to_string(), message, "row {row:?}: error message");
        }
    }

    /// (description, time zone, weekend, holidays): all accepted.
    #[rustfmt::skip]
    const ACCEPTED_ROWS: &[(&str, &str, &[&str], &[&str])] = &[
        ("contract §8 example", "Europe/Paris", SAT_SUN, &["2026-12-25", "2027-01-01"]),
        ("empty weekend", "UTC", &[], &[]),
        ("six weekend days", "UTC", &["mon", "tue", "wed", "thu", "fri", "sat"], &[]),
        ("duplicates and mixed case", "Asia/Riyadh", &["fri", "FRI", "Sat", "sAt"],
         &["2026-12-25", "2026-12-25"]),
        ("leap day", "UTC", SAT_SUN, &["2028-02-29"]),
        ("link name", "US/Pacific", SAT_SUN, &[]),
    ];

    #[test]
    fn new_accepts_good_configuration() {
        for &(row, tz, weekend, holidays) in ACCEPTED_ROWS {
            let cal = calendar(row, tz, weekend, holidays);
            assert_eq!(cal.time_zone_name(), tz, "row {row:?}: time zone name");
        }
    }

    #[test]
    fn default_is_utc_saturday_sunday_no_holidays() {
        let cal = Calendar::default();
        assert_eq!(cal, calendar("default", "UTC", SAT_SUN, &[]));
        assert_eq!(cal.time_zone_name(), "UTC");
        assert_eq!(cal.weekend(), vec![Weekday::Sat, Weekday::Sun]);
        assert!(cal.holidays().is_empty());
        // Contract §6 example through the default calendar.
        assert_eq!(
            cal.deadline_after(ts("2026-11-25T17:45:00Z")),
            ts("2026-12-03T00:00:00Z")
        );
    }

    #[test]
    fn accessors_report_configuration() {
        let cal = calendar(
            "accessors",
            "Asia/Riyadh",
            &["SAT", "fri"],
            &["2027-01-01", "2026-12-25"],
        );
        assert_eq!(cal.time_zone_name(), "Asia/Riyadh");
        assert_eq!(cal.weekend(), vec![Weekday::Fri, Weekday::Sat]);
        let holidays: Vec<NaiveDate> = cal.holidays().iter().copied().collect();
        assert_eq!(holidays, vec![date("2026-12-25"), date("2027-01-01")]);
        assert!(format!("{cal:?}").contains("[\"fri\", \"sat\"]"), "{cal:?}");
    }

    /// (description, weekend, holidays, date, is business day). UTC throughout.
    type DayRow = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static str,
        bool,
    );

    #[rustfmt::skip]
    const BUSINESS_DAY_ROWS: &[DayRow] = &[
        ("plain Wednesday", SAT_SUN, &[], "2026-11-25", true),
        ("plain Friday", SAT_SUN, &[], "2026-11-27", true),
        ("Saturday", SAT_SUN, &[], "2026-11-28", false),
        ("Sunday", SAT_SUN, &[], "2026-11-29", false),
        ("Monday", SAT_SUN, &[], "2026-11-30", true),
        ("Christmas Friday as holiday", SAT_SUN, &["2026-12-25"], "2026-12-25", false),
        ("day after a holiday", SAT_SUN, &["2026-12-25"], "2026-12-28", true),
        ("holiday on a Saturday", SAT_SUN, &["2026-11-28"], "2026-11-28", false),
        ("Friday under Fri/Sat weekend", &["fri", "sat"], &[], "2026-11-27", false),
        ("Sunday under Fri/Sat weekend", &["fri", "sat"], &[], "2026-11-29", true),
        ("Saturday with empty weekend", &[], &[], "2026-11-28", true),
        ("leap day, Tuesday", SAT_SUN, &[], "2028-02-29", true),
        ("leap day as holiday", SAT_SUN, &["2028-02-29"], "2028-02-29", false),
    ];

    #[test]
    fn is_business_day_table() {
        for &(row, weekend, holidays, day, expected) in BUSINESS_DAY_ROWS {
            let cal = calendar(row, "UTC", weekend, holidays);
            assert_eq!(
                cal.is_business_day(date(day)),
                expected,
                "row {row:?}: {day}"
            );
        }
    }

    /// (time zone, weekend, date, is business day): days a zone skipped.
    #[rustfmt::skip]
    const SKIPPED_DAY_ROWS: &[(&str, &[&str], &str, bool)] = &[
        ("Pacific/Apia", SAT_SUN, "2011-12-29", true),
        ("Pacific/Apia", SAT_SUN, "2011-12-30", false),
        ("Pacific/Apia", &[], "2011-12-30", false),
        ("Pacific/Apia", &[], "2011-12-31", true),
        ("Pacific/Apia", SAT_SUN, "2012-01-02", true),
        ("Pacific/Kiritimati", &["sun"], "1994-12-30", true),
        ("Pacific/Kiritimati", &["sun"], "1994-12-31", false),
        ("Pacific/Kiritimati", &["sun"], "1995-01-02", true),
        // A midnight gap of one hour leaves the day 23 hours: a business day.
        ("America/Santiago", &["sun"], "2026-09-05", true),
        ("America/Havana", &["sun"], "2027-03-13", true),
    ];

    #[test]
    fn a_day_the_zone_skipped_is_not_a_business_day() {
        for &(tz, weekend, day, expected) in SKIPPED_DAY_ROWS {
            let cal = calendar(tz, tz, weekend, &[]);
            assert_eq!(cal.is_business_day(date(day)), expected, "{tz} {day}");
        }
    }

    /// Issue 11 case 9: what the service writes is RFC 3339, years
    /// 0000–9999, no leap second; a `now` whose deadline falls after 9999 is
    /// refused too.
    #[test]
    fn only_times_rfc_3339_can_write_are_writable() {
        let cal = Calendar::default();
        let leap = ts("2027-01-01T00:05:60Z");
        assert!(
            leap.nanosecond() >= 1_000_000_000,
            "chrono parses :60 as a leap second"
        );
        for (text, ok) in [
            ("2026-11-25T09:00:00Z", true),
            ("0000-01-01T00:00:00Z", true),
            ("9999-12-20T00:00:00Z", true),
            ("2027-01-01T00:05:60Z", false),
            ("2016-12-31T23:59:60Z", false),
            // Year -1 and 10000 in UTC.
            ("0000-01-01T00:00:00+01:00", false),
            ("9999-12-31T23:00:00-05:00", false),
            // Writable itself, but five business days later is year 10000.
            ("9999-12-30T00:00:00Z", false),
            ("9999-12-24T00:00:00Z", false),
        ] {
            let got = cal.check_writable_now(ts(text));
            assert_eq!(got.is_ok(), ok, "{text}: {got:?}");
            if let Err(rejection) = got {
                assert_eq!(rejection.code, ErrorCode::InvalidCommand);
                assert!(
                    rejection.message.starts_with("now:"),
                    "{}",
                    rejection.message
                );
            }
        }
        // Fri 9999-12-24: Mon 27 .. Fri 31 (5) -> 10000-01-01: refused above;
        // Thu 9999-12-23: Fri 24, Mon 27 .. Thu 30 (5) -> 9999-12-31: fine.
        assert!(cal.check_writable_now(ts("9999-12-23T12:00:00Z")).is_ok());
    }

    /// The ends of the representable range saturate instead of panicking.
    #[test]
    fn range_edges_do_not_panic() {
        for tz in [
            "UTC",
            "Asia/Tokyo",
            "America/Los_Angeles",
            "Pacific/Kiritimati",
        ] {
            let cal = calendar(tz, tz, SAT_SUN, &[]);
            assert_eq!(
                cal.deadline_after(Timestamp::MAX_UTC),
                Timestamp::MAX_UTC,
                "{tz}"
            );
            assert_eq!(
                cal.business_days_after(Timestamp::MAX_UTC, 0),
                Timestamp::MAX_UTC,
                "{tz}"
            );
            // Five business days with a two-day weekend span at most nine
            // calendar days after T's local day.
            let t = Timestamp::MIN_UTC;
            let got = cal.deadline_after(t);
            assert!(got > t && got <= t + TimeDelta::days(10), "{tz}: {got:?}");
            let near_max = Timestamp::MAX_UTC - TimeDelta::days(3);
            assert_eq!(cal.deadline_after(near_max), Timestamp::MAX_UTC, "{tz}");
        }
    }

    /// Invariants over every time zone chrono-tz knows, for every day of
    /// 2026-2027 at a few UTC hours: the deadline is after T, begins a local
    /// day (local midnight, or the end of a gap), the local day before it is a
    /// business day, and exactly five business days lie between T's local day
    /// and that day. Catches DST handling the hand-made rows above miss.
    #[test]
    fn invariants_hold_in_every_zone() {
        let weekends: [&[&str]; 2] = [SAT_SUN, &["fri", "sat"]];
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for (i, &tz) in chrono_tz::TZ_VARIANTS.iter().enumerate() {
            let weekend = weekends[i % 2];
            let cal = calendar(tz.name(), tz.name(), weekend, &["2026-12-25", "2027-01-01"]);
            for day in (0..730).step_by(3) {
                for hour in [1, 11, 22] {
                    let t = start + TimeDelta::days(day) + TimeDelta::hours(hour);
                    let got = cal.deadline_after(t);
                    let ctx = format!("{} T={t:?} deadline={got:?}", tz.name());
                    assert!(got > t, "{ctx}: not after T");

                    let local_t = t.with_timezone(&tz).date_naive();
                    let before = (got - TimeDelta::seconds(1)).with_timezone(&tz);
                    let at = got.with_timezone(&tz);
                    let last_day = before.date_naive();
                    assert!(
                        at.date_naive() > last_day,
                        "{ctx}: deadline does not start a day"
                    );
                    assert!(
                        at.time() == NaiveTime::MIN || before.offset() != at.offset(),
                        "{ctx}: deadline is neither local midnight nor the end of a gap"
                    );
                    assert!(
                        cal.is_business_day(last_day),
                        "{ctx}: last day not a business day"
                    );
                    let counted = local_t
                        .iter_days()
                        .skip(1)
                        .take_while(|d| *d <= last_day)
                        .filter(|d| cal.is_business_day(*d))
                        .count();
                    assert_eq!(counted, 5, "{ctx}: business days counted");
                }
            }
        }
    }
}
