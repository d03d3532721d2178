//! Fiscal quarters as day ranges, in a tenant's fiscal calendar (the same rule as the gold tables,
//! [`orbas_warehouse::gold::fiscal_period`]).

use chrono::{Datelike, Months, NaiveDate};
use orbas_oltp::repo::forecasts::Calendar;
use orbas_warehouse::gold::fiscal_period;

use super::series::month_of;
use crate::error::{Error, Result};

/// A fiscal quarter: its name and its days `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quarter {
    pub fiscal_year: i32,
    pub fiscal_quarter: u32,
    pub start: NaiveDate,
    /// The first day after the quarter.
    pub end: NaiveDate,
}

impl Quarter {
    /// The fiscal quarter `day` falls in.
    pub fn of(day: NaiveDate, cal: &Calendar) -> Quarter {
        let (fy, fq) = fiscal_period(day.year(), day.month(), cal.fiscal_start_month, cal.named_by_end);
        let into_quarter = (day.month() + 12 - cal.fiscal_start_month) % 3;
        let start = month_of(day) - Months::new(into_quarter);
        Quarter { fiscal_year: fy, fiscal_quarter: fq, start, end: start + Months::new(3) }
    }

    /// Fiscal quarter `quarter` (1–4) of fiscal year `year`.
    pub fn named(year: i32, quarter: u32, cal: &Calendar) -> Result<Quarter> {
        if !(1..=4).contains(&quarter) {
            return Err(Error::Invalid(format!("fiscal quarter {quarter} is not 1–4")));
        }
        let first_year = if cal.named_by_end && cal.fiscal_start_month != 1 { year - 1 } else { year };
        let year_start = NaiveDate::from_ymd_opt(first_year, cal.fiscal_start_month, 1)
            .ok_or_else(|| Error::Invalid(format!("fiscal year {year} has no start day")))?;
        Ok(Quarter::of(year_start + Months::new(3 * (quarter - 1)), cal))
    }

    /// The last day of the quarter.
    pub fn last_day(&self) -> NaiveDate {
        self.end.pred_opt().unwrap_or(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(start: u32, by_end: bool) -> Calendar {
        Calendar { currency: "USD".into(), fiscal_start_month: start, named_by_end: by_end }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    #[test]
    fn quarters_follow_the_fiscal_calendar_both_ways() {
        let q = Quarter::of(d(2026, 9, 30), &cal(1, false));
        assert_eq!((q.fiscal_year, q.fiscal_quarter, q.start, q.end), (2026, 3, d(2026, 7, 1), d(2026, 10, 1)));
        // A year starting in February, named by its end: 2026-01-15 is in FY2026 Q4 (Nov–Jan).
        let c = cal(2, true);
        let q = Quarter::of(d(2026, 1, 15), &c);
        assert_eq!((q.fiscal_year, q.fiscal_quarter, q.start, q.end), (2026, 4, d(2025, 11, 1), d(2026, 2, 1)));
        assert_eq!(Quarter::named(2026, 4, &c).expect("named"), q);
        assert_eq!(Quarter::named(2027, 1, &c).expect("named").start, d(2026, 2, 1));
        assert_eq!(q.last_day(), d(2026, 1, 31));
        assert!(Quarter::named(2026, 5, &c).is_err());
        for m in 1..=12 {
            for start in [1, 2, 4, 7, 10, 12] {
                for by_end in [false, true] {
                    let c = cal(start, by_end);
                    let q = Quarter::of(d(2025, m, 10), &c);
                    assert_eq!(Quarter::named(q.fiscal_year, q.fiscal_quarter, &c).expect("named"), q);
                    assert!(q.start <= d(2025, m, 10) && d(2025, m, 10) < q.end);
                }
            }
        }
    }
}
