//! Money as integer minor units with an ISO 4217 currency.
//!
//! Text such as `"12.34"` is parsed and formatted here and nowhere else: the rest of zhifu only
//! ever sees integers. There are no floats on any path.

use std::fmt;

/// An ISO 4217 currency that zhifu knows, with its minor-unit exponent.
///
/// Stored as an index into [`CURRENCIES`], so an account carries one byte for it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency(u8);

/// `(alphabetic code, numeric code, exponent)`. Extend by appending: the index is not stored,
/// only the alphabetic code is.
const CURRENCIES: &[(&str, u16, u8)] = &[
    ("CNY", 156, 2),
    ("HKD", 344, 2),
    ("MOP", 446, 2),
    ("TWD", 901, 2),
    ("USD", 840, 2),
    ("EUR", 978, 2),
    ("GBP", 826, 2),
    ("JPY", 392, 0),
    ("KRW", 410, 0),
    ("SGD", 702, 2),
    ("THB", 764, 2),
    ("MYR", 458, 2),
    ("IDR", 360, 2),
    ("PHP", 608, 2),
    ("VND", 704, 0),
    ("KHR", 116, 2),
    ("BRL", 986, 2),
    ("AUD", 36, 2),
    ("CAD", 124, 2),
    ("CHF", 756, 2),
    ("BHD", 48, 3),
    ("KWD", 414, 3),
];

impl Currency {
    pub const CNY: Currency = Currency(0);
    pub const JPY: Currency = Currency(7);

    /// Parses an uppercase ISO 4217 alphabetic code such as `"CNY"`.
    pub fn parse(code: &str) -> Result<Currency, MoneyError> {
        CURRENCIES
            .iter()
            .position(|(alpha, _, _)| *alpha == code)
            .map(|index| Currency(index as u8))
            .ok_or(MoneyError::CurrencyUnknown)
    }

    /// Looks a currency up by its ISO 4217 numeric code (EMV tag 53 carries this one).
    pub fn from_numeric(numeric: u16) -> Result<Currency, MoneyError> {
        CURRENCIES
            .iter()
            .position(|(_, n, _)| *n == numeric)
            .map(|index| Currency(index as u8))
            .ok_or(MoneyError::CurrencyUnknown)
    }

    pub fn code(self) -> &'static str {
        CURRENCIES[usize::from(self.0)].0
    }

    pub fn numeric(self) -> u16 {
        CURRENCIES[usize::from(self.0)].1
    }

    /// Digits after the decimal point: 2 for CNY (fen), 0 for JPY.
    pub fn exponent(self) -> u8 {
        CURRENCIES[usize::from(self.0)].2
    }

    pub fn all() -> impl Iterator<Item = Currency> {
        (0..CURRENCIES.len()).map(|index| Currency(index as u8))
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A signed amount in minor units of one currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Money {
    pub amount_minor: i64,
    pub currency: Currency,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MoneyError {
    CurrencyUnknown,
    /// Not of the form `-?digits(.digits)?`.
    Malformed,
    /// More fraction digits than the currency has (`1.234` CNY, `1.5` JPY).
    TooManyDecimals,
    /// The value does not fit in 64-bit minor units.
    Overflow,
}

impl MoneyError {
    /// The stable code of this error: part of the API, never renamed.
    pub fn code(self) -> &'static str {
        match self {
            MoneyError::CurrencyUnknown => "CURRENCY_UNKNOWN",
            MoneyError::Malformed => "AMOUNT_MALFORMED",
            MoneyError::TooManyDecimals => "AMOUNT_TOO_MANY_DECIMALS",
            MoneyError::Overflow => "AMOUNT_OVERFLOW",
        }
    }
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            MoneyError::CurrencyUnknown => "unknown currency code",
            MoneyError::Malformed => "amount must look like 12.34",
            MoneyError::TooManyDecimals => "amount has more decimals than the currency allows",
            MoneyError::Overflow => "amount is too large",
        };
        f.write_str(message)
    }
}

impl std::error::Error for MoneyError {}

/// The longest text accepted: bounds the work done on hostile input.
const MONEY_TEXT_LEN_MAX: usize = 40;

impl Money {
    pub fn new(amount_minor: i64, currency: Currency) -> Money {
        Money {
            amount_minor,
            currency,
        }
    }

    /// Parses decimal text in major units: `"12.34"` CNY is 1234 fen. A sign, if any, is a
    /// leading `-`; no `+`, spaces, exponents or thousands separators.
    pub fn parse(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        if text.is_empty() || text.len() > MONEY_TEXT_LEN_MAX {
            return Err(MoneyError::Malformed);
        }
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(MoneyError::Malformed),
            None => (unsigned, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(MoneyError::Malformed);
        }
        let exponent = usize::from(currency.exponent());
        if fraction.len() > exponent {
            return Err(MoneyError::TooManyDecimals);
        }
        // Accumulate negatively so that i64::MIN itself is representable.
        let mut minor: i64 = 0;
        let padding = exponent - fraction.len();
        let digits = whole
            .bytes()
            .chain(fraction.bytes())
            .chain(std::iter::repeat_n(b'0', padding));
        for digit in digits {
            minor = minor
                .checked_mul(10)
                .and_then(|m| m.checked_sub(i64::from(digit - b'0')))
                .ok_or(MoneyError::Overflow)?;
        }
        let amount_minor = if negative {
            minor
        } else {
            minor.checked_neg().ok_or(MoneyError::Overflow)?
        };
        Ok(Money {
            amount_minor,
            currency,
        })
    }

    /// Adds two amounts of one currency; `None` on overflow or on a currency mismatch.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        if self.currency != other.currency {
            return None;
        }
        let amount_minor = self.amount_minor.checked_add(other.amount_minor)?;
        Some(Money {
            amount_minor,
            currency: self.currency,
        })
    }
}

impl fmt::Display for Money {
    /// Formats in major units with exactly the currency's number of decimals: `12.30`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = u32::from(self.currency.exponent());
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let magnitude = self.amount_minor.unsigned_abs();
        if exponent == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let scale = 10u64.pow(exponent);
        let width = exponent as usize;
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / scale,
            magnitude % scale
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_at_the_edges() {
        let cny = Currency::CNY;
        assert_eq!(Money::parse("12.34", cny).unwrap().amount_minor, 1234);
        assert_eq!(Money::parse("12.3", cny).unwrap().amount_minor, 1230);
        assert_eq!(Money::parse("0.01", cny).unwrap().amount_minor, 1);
        assert_eq!(Money::parse("-0.10", cny).unwrap().amount_minor, -10);
        assert_eq!(
            Money::parse("1000", Currency::JPY).unwrap().amount_minor,
            1000
        );
        assert_eq!(
            Money::parse("1.5", Currency::JPY),
            Err(MoneyError::TooManyDecimals)
        );
        assert_eq!(Money::parse("1.234", cny), Err(MoneyError::TooManyDecimals));
        for bad in [
            "", "-", ".5", "5.", "1,000", "+1", " 1", "1e3", "0x10", "１",
        ] {
            assert_eq!(
                Money::parse(bad, cny),
                Err(MoneyError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            Money::parse("92233720368547758.07", cny)
                .unwrap()
                .amount_minor,
            i64::MAX
        );
        assert_eq!(
            Money::parse("-92233720368547758.08", cny)
                .unwrap()
                .amount_minor,
            i64::MIN
        );
        assert_eq!(
            Money::parse("92233720368547758.08", cny),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Money::new(1230, cny).to_string(), "12.30");
        assert_eq!(Money::new(-5, cny).to_string(), "-0.05");
        assert_eq!(
            Money::new(i64::MIN, cny).to_string(),
            "-92233720368547758.08"
        );
        assert_eq!(Money::new(7, Currency::JPY).to_string(), "7");
        assert_eq!(Currency::parse("CNY").unwrap().numeric(), 156);
        assert_eq!(Currency::from_numeric(392).unwrap(), Currency::JPY);
        assert_eq!(Currency::parse("cny"), Err(MoneyError::CurrencyUnknown));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(amount_minor in any::<i64>(), index in 0..CURRENCIES.len()) {
            let currency = Currency(index as u8);
            let money = Money::new(amount_minor, currency);
            prop_assert_eq!(Money::parse(&money.to_string(), currency), Ok(money));
        }
    }
}
