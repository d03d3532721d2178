//! Line and document totals for quotes and invoices, computed here and only here: clients send
//! quantities, prices, discounts and a tax rate, never totals. Amounts are rounded to cents half away
//! from zero (commercial rounding) per line, and document totals are sums of rounded lines, so a
//! document always adds up exactly as printed.

use rust_decimal::{Decimal, RoundingStrategy};

use crate::{Error, Result};

/// One priced line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub quantity: Decimal,
    pub unit_price: Decimal,
    /// Percent off this line, 0..=100.
    pub discount_pct: Decimal,
}

/// A line's amounts: before discount and after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineAmounts {
    pub gross: Decimal,
    pub net: Decimal,
}

/// A document's totals. Always `total = subtotal - discount_total + tax_total`, all non-negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub subtotal: Decimal,
    pub discount_total: Decimal,
    pub tax_total: Decimal,
    pub total: Decimal,
}

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

fn cents(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn too_large() -> Error {
    Error::invalid("amounts are too large")
}

/// Checks a percentage field (discount, tax): 0..=100.
pub fn check_pct(field: &str, pct: Decimal) -> Result<()> {
    if pct < Decimal::ZERO || pct > HUNDRED {
        return Err(Error::invalid(format!("{field} must be between 0 and 100")));
    }
    Ok(())
}

impl Line {
    /// Validates and prices the line.
    pub fn amounts(&self) -> Result<LineAmounts> {
        if self.quantity <= Decimal::ZERO {
            return Err(Error::invalid("quantity must be greater than 0"));
        }
        if self.unit_price < Decimal::ZERO {
            return Err(Error::invalid("unit_price must not be negative"));
        }
        check_pct("discount_pct", self.discount_pct)?;
        let gross = cents(self.quantity.checked_mul(self.unit_price).ok_or_else(too_large)?);
        let kept = (HUNDRED - self.discount_pct) / HUNDRED;
        let net = cents(gross.checked_mul(kept).ok_or_else(too_large)?);
        Ok(LineAmounts { gross, net })
    }
}

/// Totals of a document from its priced lines and a tax rate (percent of the discounted sum).
pub fn totals(lines: &[LineAmounts], tax_pct: Decimal) -> Result<Totals> {
    check_pct("tax_pct", tax_pct)?;
    let mut subtotal = Decimal::ZERO;
    let mut net = Decimal::ZERO;
    for l in lines {
        subtotal = subtotal.checked_add(l.gross).ok_or_else(too_large)?;
        net = net.checked_add(l.net).ok_or_else(too_large)?;
    }
    let tax_total = cents(net.checked_mul(tax_pct).ok_or_else(too_large)? / HUNDRED);
    let discount_total = subtotal - net;
    Ok(Totals { subtotal, discount_total, tax_total, total: net + tax_total })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn a_quote_adds_up_as_printed() {
        let a = Line { quantity: dec("3"), unit_price: dec("19.99"), discount_pct: dec("10") }.amounts().ok();
        let b = Line { quantity: dec("1.5"), unit_price: dec("100"), discount_pct: dec("0") }.amounts().ok();
        assert_eq!(a, Some(LineAmounts { gross: dec("59.97"), net: dec("53.97") }));
        assert_eq!(b, Some(LineAmounts { gross: dec("150.00"), net: dec("150.00") }));
        let t = totals(&[a.unwrap_or_default(), b.unwrap_or_default()], dec("8.25")).ok();
        assert_eq!(
            t,
            Some(Totals {
                subtotal: dec("209.97"),
                discount_total: dec("6.00"),
                tax_total: dec("16.83"),
                total: dec("220.80")
            })
        );
    }

    #[test]
    fn refuses_nonsense_lines() {
        let bad = |q, p, d| Line { quantity: q, unit_price: p, discount_pct: d }.amounts().is_err();
        assert!(bad(dec("0"), dec("1"), dec("0")));
        assert!(bad(dec("1"), dec("-1"), dec("0")));
        assert!(bad(dec("1"), dec("1"), dec("101")));
        assert!(bad(Decimal::MAX, Decimal::MAX, dec("0")));
        assert!(totals(&[], dec("-1")).is_err());
    }

    impl Default for LineAmounts {
        fn default() -> Self {
            LineAmounts { gross: Decimal::ZERO, net: Decimal::ZERO }
        }
    }

    fn money() -> impl Strategy<Value = Decimal> {
        (0i64..1_000_000_000).prop_map(|c| Decimal::new(c, 2))
    }

    proptest! {
        #[test]
        fn totals_are_consistent(
            lines in proptest::collection::vec((1i64..100_000, money(), 0i64..=10_000), 0..20),
            tax in 0i64..=10_000,
        ) {
            let priced: Vec<LineAmounts> = lines
                .iter()
                .map(|(q, p, d)| Line { quantity: Decimal::new(*q, 2), unit_price: *p, discount_pct: Decimal::new(*d, 2) }.amounts())
                .collect::<Result<_>>()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            for l in &priced {
                prop_assert!(l.net <= l.gross && l.net >= Decimal::ZERO);
                prop_assert_eq!(l.gross.scale().min(2), l.gross.scale());
            }
            let t = totals(&priced, Decimal::new(tax, 2)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(t.total, t.subtotal - t.discount_total + t.tax_total);
            prop_assert!(t.discount_total >= Decimal::ZERO && t.tax_total >= Decimal::ZERO);
        }
    }
}
