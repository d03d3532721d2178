//! The simulated clock: instants are Unix milliseconds ([`Ms`]); the simulation ends at `as_of`
//! 00:00 UTC and never looks at the wall clock. Also the fiscal calendar (quarters that start in the
//! tenant's `fiscal_year_start_month`) and business-hours placement of activities.

use chrono::{Datelike, Months, NaiveDate, Weekday};
use rand::Rng;

/// Unix milliseconds on the simulated clock.
pub(crate) type Ms = i64;

pub(crate) const MINUTE: Ms = 60_000;
pub(crate) const HOUR: Ms = 60 * MINUTE;
pub(crate) const DAY: Ms = 24 * HOUR;
pub(crate) const WEEK: Ms = 7 * DAY;
pub(crate) const YEAR: Ms = 365 * DAY;

/// Midnight UTC of `d`.
pub(crate) fn ms_of(d: NaiveDate) -> Ms {
    d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis()).unwrap_or(0)
}

/// The UTC date of an instant.
pub(crate) fn date_of(t: Ms) -> NaiveDate {
    chrono::DateTime::from_timestamp_millis(t).map(|d| d.date_naive()).unwrap_or_default()
}

pub(crate) fn add_months(d: NaiveDate, months: i32) -> NaiveDate {
    let r = if months >= 0 {
        d.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        d.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    r.unwrap_or(d)
}

/// First day of the month of `d`.
pub(crate) fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// Sales region; decides the business hours and the currency of the region's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Region {
    Na,
    Emea,
    Apac,
    Latam,
}

impl Region {
    pub fn code(self) -> &'static str {
        match self {
            Region::Na => "NA",
            Region::Emea => "EMEA",
            Region::Apac => "APAC",
            Region::Latam => "LATAM",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// UTC hour at which the region's working day starts.
    fn day_start_utc_hour(self) -> i64 {
        match self {
            Region::Na => 13,
            Region::Emea => 7,
            Region::Apac => 0,
            Region::Latam => 11,
        }
    }

    pub fn timezone(self) -> &'static str {
        match self {
            Region::Na => "America/New_York",
            Region::Emea => "Europe/London",
            Region::Apac => "Asia/Singapore",
            Region::Latam => "America/Sao_Paulo",
        }
    }
}

/// Moves `t` to business hours of `region` on the same or a nearby weekday, keeping it roughly in
/// place (within a day or two); a small share of activity stays on weekends.
pub(crate) fn business_time(rng: &mut impl Rng, t: Ms, region: Region) -> Ms {
    let mut day = t.div_euclid(DAY);
    let weekday = date_of(day * DAY).weekday();
    if matches!(weekday, Weekday::Sat | Weekday::Sun) && rng.random_bool(0.92) {
        day += if weekday == Weekday::Sat { -1 } else { 1 };
    }
    let start = region.day_start_utc_hour() * HOUR;
    day * DAY + start + rng.random_range(0..9 * HOUR + 30 * MINUTE)
}

/// A tenant's fiscal calendar.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FiscalCalendar {
    /// 1..=12
    pub start_month: u32,
    /// FY named by the calendar year in which it ends (else: in which it starts).
    pub named_by_end: bool,
}

/// One fiscal quarter; `index` is monotonic across years (for ordering and lookups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FiscalQuarter {
    pub index: i32,
    pub fiscal_year: i32,
    pub quarter: u32,
    pub start: NaiveDate,
    /// Last day of the quarter (inclusive).
    pub end: NaiveDate,
}

impl FiscalCalendar {
    /// The quarter containing `d`.
    pub fn quarter_of(&self, d: NaiveDate) -> FiscalQuarter {
        let months_since = (d.year() * 12 + d.month0() as i32) - self.start_month as i32 + 1;
        self.quarter_by_index(months_since.div_euclid(3))
    }

    /// The quarter with the given monotonic index (index = months since year 0 start / 3).
    pub fn quarter_by_index(&self, index: i32) -> FiscalQuarter {
        let first_month = index * 3 + self.start_month as i32 - 1; // months since year 0, 0-based
        let (year, month0) = (first_month.div_euclid(12), first_month.rem_euclid(12));
        let start = NaiveDate::from_ymd_opt(year, month0 as u32 + 1, 1).unwrap_or_default();
        let end = add_months(start, 3).pred_opt().unwrap_or(start);
        let fy_start_year = if month0 as u32 + 1 >= self.start_month { year } else { year - 1 };
        let quarter = ((month0 + 12 - (self.start_month as i32 - 1)).rem_euclid(12) / 3 + 1) as u32;
        let fiscal_year = if self.named_by_end && self.start_month != 1 { fy_start_year + 1 } else { fy_start_year };
        FiscalQuarter { index, fiscal_year, quarter, start, end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    #[test]
    fn calendar_quarters() {
        let cal = FiscalCalendar { start_month: 1, named_by_end: false };
        let q = cal.quarter_of(ymd(2026, 5, 17));
        assert_eq!((q.fiscal_year, q.quarter, q.start, q.end), (2026, 2, ymd(2026, 4, 1), ymd(2026, 6, 30)));
    }

    #[test]
    fn february_start_named_by_end() {
        let cal = FiscalCalendar { start_month: 2, named_by_end: true };
        let q = cal.quarter_of(ymd(2026, 1, 15)); // last quarter of FY2026 (Feb 2025 – Jan 2026)
        assert_eq!((q.fiscal_year, q.quarter, q.start, q.end), (2026, 4, ymd(2025, 11, 1), ymd(2026, 1, 31)));
        let q = cal.quarter_of(ymd(2026, 2, 1));
        assert_eq!((q.fiscal_year, q.quarter), (2027, 1));
        let next = cal.quarter_by_index(q.index + 1);
        assert_eq!((next.quarter, next.start), (2, ymd(2026, 5, 1)));
    }

    #[test]
    fn july_start_named_by_start() {
        let cal = FiscalCalendar { start_month: 7, named_by_end: false };
        let q = cal.quarter_of(ymd(2026, 3, 31));
        assert_eq!((q.fiscal_year, q.quarter, q.end), (2025, 3, ymd(2026, 3, 31)));
    }

    #[test]
    fn dates_roundtrip() {
        let d = ymd(2026, 10, 1);
        assert_eq!(date_of(ms_of(d) + DAY - 1), d);
        assert_eq!(month_start(ymd(2026, 2, 28)), ymd(2026, 2, 1));
    }
}
