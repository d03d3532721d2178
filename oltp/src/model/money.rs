//! Money: a decimal amount in an ISO 4217 currency. Amounts never mix currencies implicitly; a
//! conversion needs a rate (see the `currency_rates` table).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// An ISO 4217 alphabetic code: three upper-case ASCII letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    pub const USD: Currency = Currency(*b"USD");
    pub const EUR: Currency = Currency(*b"EUR");
    pub const GBP: Currency = Currency(*b"GBP");

    pub fn parse(code: &str) -> Result<Self> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency([*a, *b, *c])),
            _ => Err(Error::invalid(format!("currency must be an ISO 4217 code like USD, got {code:?}"))),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_owned()
    }
}

/// A non-negative amount with two decimal places in one currency (the schema's `numeric(18,2)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    /// Largest amount `numeric(18,2)` holds.
    pub const MAX: Decimal = Decimal::from_parts(2_808_348_671, 232_830_643, 0, false, 2); // 9_999_999_999_999_999.99

    pub fn new(amount: Decimal, currency: Currency) -> Result<Self> {
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(Error::invalid("amount must not be negative"));
        }
        if amount.scale() > 2 && amount != amount.round_dp(2) {
            return Err(Error::invalid("amount has more than two decimal places"));
        }
        if amount > Self::MAX {
            return Err(Error::invalid("amount is too large"));
        }
        Ok(Money { amount: amount.round_dp(2), currency })
    }

    /// Converts with `rate` (1 unit of self.currency = rate units of `to`), rounding half-even to cents.
    pub fn convert(&self, to: Currency, rate: Decimal) -> Result<Money> {
        if rate <= Decimal::ZERO {
            return Err(Error::invalid("exchange rate must be positive"));
        }
        let amount =
            (self.amount * rate).round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointNearestEven);
        Money::new(amount, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    #[test]
    fn max_is_numeric_18_2() {
        assert_eq!(Money::MAX, Decimal::from_str("9999999999999999.99").unwrap_or_default());
    }

    #[test]
    fn rejects_bad_currency_and_amounts() {
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("US").is_err());
        assert!(Currency::parse("ÜSD").is_err());
        assert!(Money::new(Decimal::from(-1), Currency::USD).is_err());
        assert!(Money::new(Decimal::from_str("1.005").unwrap_or_default(), Currency::USD).is_err());
        assert!(Money::new(Decimal::from_str("1.50").unwrap_or_default(), Currency::USD).is_ok());
    }

    proptest! {
        #[test]
        fn currency_roundtrips(code in "[A-Z]{3}") {
            let c = Currency::parse(&code).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(c.as_str(), code.as_str());
            let json = serde_json::to_string(&c).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back: Currency = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, c);
        }

        #[test]
        fn conversion_roundtrip_is_within_a_cent_per_unit(cents in 0i64..1_000_000_000, rate_milli in 1i64..10_000) {
            let m = Money::new(Decimal::new(cents, 2), Currency::USD).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let rate = Decimal::new(rate_milli, 3);
            let there = m.convert(Currency::EUR, rate).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(there.currency, Currency::EUR);
            let expected = m.amount * rate;
            prop_assert!((there.amount - expected).abs() <= Decimal::new(5, 3));
        }
    }
}
