//! Monthly series: amounts dated by day summed into calendar months, with empty months as zeros (a
//! month without a booking booked nothing — it is not missing).

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};

use crate::error::{Error, Result};

/// Consecutive calendar months starting at `start` (the first day of a month).
#[derive(Debug, Clone, PartialEq)]
pub struct Monthly {
    pub start: NaiveDate,
    pub values: Vec<f64>,
}

impl Monthly {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The first day of the `i`-th month of the series (`i` may run past its end).
    pub fn month(&self, i: usize) -> NaiveDate {
        self.start + Months::new(i as u32)
    }

    /// The first day of the month after the last one: where a forecast starts.
    pub fn end(&self) -> NaiveDate {
        self.month(self.values.len())
    }

    /// The series without its last `h` months (the training side of a holdout split).
    pub fn head(&self, h: usize) -> Monthly {
        let keep = self.values.len().saturating_sub(h);
        Monthly { start: self.start, values: self.values[..keep].to_vec() }
    }
}

/// The first day of `d`'s month.
pub fn month_of(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

/// Sums `(day, amount)` into the months from `from`'s month up to (not including) `until`'s month;
/// months without amounts are 0, amounts outside the range and non-finite amounts are dropped.
/// `from = None` starts at the month of the earliest amount (an empty series when there is none).
pub fn resample(points: &[(NaiveDate, f64)], from: Option<NaiveDate>, until: NaiveDate) -> Result<Monthly> {
    let until = month_of(until);
    let first = match from {
        Some(f) => month_of(f),
        None => match points.iter().filter(|(d, v)| v.is_finite() && month_of(*d) < until).map(|(d, _)| *d).min() {
            Some(d) => month_of(d),
            None => return Ok(Monthly { start: until, values: Vec::new() }),
        },
    };
    if first > until {
        return Err(Error::Invalid(format!("a series from {first} cannot end before {until}")));
    }
    let months = months_between(first, until);
    let mut sums: BTreeMap<usize, f64> = BTreeMap::new();
    for (d, v) in points {
        let m = month_of(*d);
        if v.is_finite() && m >= first && m < until {
            *sums.entry(months_between(first, m)).or_default() += v;
        }
    }
    let values = (0..months).map(|i| sums.get(&i).copied().unwrap_or(0.0)).collect();
    Ok(Monthly { start: first, values })
}

/// Whole months from `a` to `b` (both first days of months, `a <= b`).
pub fn months_between(a: NaiveDate, b: NaiveDate) -> usize {
    let n = (b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32;
    n.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("a date")
    }

    #[test]
    fn empty_months_are_zero_and_days_fall_into_their_month() {
        let points = [(d(2025, 11, 30), 5.0), (d(2025, 11, 1), 1.0), (d(2026, 2, 14), 7.0), (d(2026, 2, 28), 1.5)];
        let s = resample(&points, None, d(2026, 4, 10)).expect("series");
        assert_eq!(s.start, d(2025, 11, 1));
        // Nov, Dec, Jan, Feb, Mar — April is the (incomplete) forecast month, left out.
        assert_eq!(s.values, vec![6.0, 0.0, 0.0, 8.5, 0.0]);
        assert_eq!(s.end(), d(2026, 4, 1));
        assert_eq!(s.month(2), d(2026, 1, 1));
    }

    #[test]
    fn a_fixed_start_pads_leading_months_and_drops_what_lies_outside() {
        let points = [(d(2025, 12, 3), 2.0), (d(2026, 3, 1), 9.0), (d(2025, 1, 1), 4.0), (d(2026, 1, 5), f64::NAN)];
        let s = resample(&points, Some(d(2025, 10, 20)), d(2026, 3, 1)).expect("series");
        assert_eq!((s.start, s.values.clone()), (d(2025, 10, 1), vec![0.0, 0.0, 2.0, 0.0, 0.0]));
        assert_eq!(s.head(2).values, vec![0.0, 0.0, 2.0]);
        assert_eq!(s.head(9).values, Vec::<f64>::new());
    }

    #[test]
    fn no_points_give_an_empty_series_and_a_reversed_range_is_refused() {
        let s = resample(&[], None, d(2026, 3, 1)).expect("series");
        assert!(s.is_empty());
        assert!(resample(&[], Some(d(2026, 5, 1)), d(2026, 3, 1)).is_err());
        assert_eq!(months_between(d(2024, 11, 1), d(2026, 2, 1)), 15);
    }
}
