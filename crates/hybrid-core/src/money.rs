//! Exact money and token accounting.
//!
//! Money is an integer count of nano-dollars (10⁻⁹ USD), so sums over many calls
//! are exact. Prices per million tokens with up to three decimals (e.g.
//! $0.075 / Mtok = 75 n$ per token) are exact too. A cost that could not be
//! priced is `None`, never zero: [`add_costs`] keeps "unknown" unknown.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

const NANOS_PER_USD: i64 = 1_000_000_000;

/// An exact amount of US dollars, held as integer nano-dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero dollars.
    pub const ZERO: Money = Money(0);

    /// From a count of nano-dollars.
    pub const fn from_nanos(nanos: i64) -> Self {
        Money(nanos)
    }

    /// The count of nano-dollars.
    pub const fn nanos(self) -> i64 {
        self.0
    }

    /// From a dollar amount, rounded to the nearest nano-dollar.
    ///
    /// Fails on NaN, infinities, and amounts beyond ±9 billion dollars.
    pub fn try_from_usd(usd: f64) -> Result<Self, CoreError> {
        if !usd.is_finite() || usd.abs() > 9.0e9 {
            return Err(CoreError::InvalidMoney(usd.to_string()));
        }
        #[allow(clippy::cast_possible_truncation)]
        let nanos = (usd * NANOS_PER_USD as f64).round() as i64;
        Ok(Money(nanos))
    }

    /// The amount in dollars, for display and JSON. Sums are done on nanos.
    #[allow(clippy::cast_precision_loss)]
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / NANOS_PER_USD as f64
    }

    /// `tokens × nano-dollars per token`, saturating instead of overflowing.
    pub fn per_token(tokens: u64, nanos_per_token: i64) -> Self {
        let t = i64::try_from(tokens).unwrap_or(i64::MAX);
        Money(t.saturating_mul(nanos_per_token))
    }

    /// Whether the amount is negative.
    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }
}

/// Dollars to [`Money`] for literals in code (`usd(10.0)`); non-finite input gives zero.
pub fn usd(amount: f64) -> Money {
    Money::try_from_usd(amount).unwrap_or(Money::ZERO)
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = abs / NANOS_PER_USD as u64;
        let frac = abs % NANOS_PER_USD as u64;
        write!(f, "{sign}${whole}.{frac:09}")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_usd())
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Money::try_from_usd(v).map_err(serde::de::Error::custom)
    }
}

/// Sum of two costs where `None` means "could not be priced" and stays so.
pub fn add_costs(a: Option<Money>, b: Option<Money>) -> Option<Money> {
    Some(a? + b?)
}

/// Tokens used by one or more model calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens billed at the full input price (excludes cache reads and writes).
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    /// Prompt tokens written to the provider's prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Usage {
    /// Every token counted, in and out.
    pub fn total(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(self, rhs: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(rhs.input_tokens),
            output_tokens: self.output_tokens.saturating_add(rhs.output_tokens),
            cache_read_tokens: self.cache_read_tokens.saturating_add(rhs.cache_read_tokens),
            cache_write_tokens: self
                .cache_write_tokens
                .saturating_add(rhs.cache_write_tokens),
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        *self = *self + rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_where_floats_drift() {
        let tenth = usd(0.1);
        let total: Money = std::iter::repeat_n(tenth, 10).sum();
        assert_eq!(total, usd(1.0));
        assert_eq!(total.to_string(), "$1.000000000");
    }

    #[test]
    fn unknown_cost_stays_unknown() {
        assert_eq!(add_costs(Some(usd(1.0)), None), None);
        assert_eq!(add_costs(Some(usd(1.0)), Some(usd(2.0))), Some(usd(3.0)));
    }

    #[test]
    fn rejects_non_finite() {
        assert!(Money::try_from_usd(f64::NAN).is_err());
        assert!(Money::try_from_usd(f64::INFINITY).is_err());
    }

    #[test]
    fn per_token_price() {
        // $2.50 per million tokens = 2500 n$ per token.
        assert_eq!(Money::per_token(1_000_000, 2_500), usd(2.5));
    }
}
