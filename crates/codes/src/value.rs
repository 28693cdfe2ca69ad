//! Values as types that can only hold valid values: parse, don't validate. The decoder parses
//! each object's value into one of these, so a [`Payload`](crate::Payload) built from them
//! only needs its cross-field rules checked when it is encoded.
//!
//! Lengths are counted in characters (Unicode scalar values), as EMV counts them.

use std::fmt;

use crate::error::ValueError;

/// The ID of a data object, at the root or inside a template: two decimal digits, `00`–`99`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DataObjectId(u8);

impl DataObjectId {
    pub const fn new(id: u8) -> Option<DataObjectId> {
        if id <= 99 {
            Some(DataObjectId(id))
        } else {
            None
        }
    }

    /// Parses exactly two ASCII digits.
    pub fn parse(text: &str) -> Option<DataObjectId> {
        match text.as_bytes() {
            [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
                Some(DataObjectId((tens - b'0') * 10 + (ones - b'0')))
            }
            _ => None,
        }
    }

    /// From an ID known to be at most 99 (read as two digits, or a constant).
    pub(crate) fn known(id: u8) -> DataObjectId {
        debug_assert!(id <= 99, "a scanned ID has two digits");
        DataObjectId(id)
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

impl fmt::Display for DataObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

/// Text of 1 to `CHARS_MAX` characters without control characters.
///
/// Any other Unicode is accepted: EMV restricts most root values to its common character set,
/// but Chinese and Thai merchant names in 59 are common in the wild, and the language template
/// (64) exists to carry them.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Text<const CHARS_MAX: usize>(String);

/// Any value a data object can hold: up to 99 characters.
pub type Value = Text<99>;
/// A template's globally unique identifier (sub-ID 00): an AID, a UUID or a reverse domain.
pub type Guid = Text<32>;
pub type MerchantName = Text<25>;
pub type MerchantCity = Text<15>;
pub type PostalCode = Text<10>;
/// The labels of the additional data template (62, sub-IDs 01–08). `***` asks the wallet to
/// prompt the payer for the value.
pub type Label = Text<25>;

impl<const CHARS_MAX: usize> Text<CHARS_MAX> {
    pub fn parse(text: &str) -> Result<Self, ValueError> {
        check_text(text, CHARS_MAX)?;
        Ok(Text(text.to_owned()))
    }

    /// From text the caller knows is valid (a value built from other valid values).
    pub(crate) fn trusted(text: String) -> Self {
        debug_assert!(check_text(&text, CHARS_MAX).is_ok(), "{text:?} is valid");
        Text(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_text(text: &str, chars_max: usize) -> Result<(), ValueError> {
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    // A character takes at most four bytes: the byte test bounds the count on hostile input.
    if text.len() > chars_max * 4 || text.chars().count() > chars_max {
        return Err(ValueError::TooLong { chars_max });
    }
    if text.chars().any(char::is_control) {
        return Err(ValueError::ControlCharacter);
    }
    Ok(())
}

impl<const CHARS_MAX: usize> fmt::Display for Text<CHARS_MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const CHARS_MAX: usize> AsRef<str> for Text<CHARS_MAX> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

const DECIMAL: &str = "a decimal above zero such as 12.34: digits and at most one '.'";

/// A transaction amount (54) or fixed convenience fee (56): up to 13 characters of digits
/// with at most one `.`, above zero. `"100"`, `"100."` and `"99.5"` are all valid.
///
/// It is kept as text so that a decoded payload encodes to the same bytes; [`minor_units`]
/// gives the integer the ledger works with.
///
/// [`minor_units`]: Amount::minor_units
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Amount(String);

impl Amount {
    pub const CHARS_MAX: usize = 13;

    pub fn parse(text: &str) -> Result<Amount, ValueError> {
        check_decimal(text, Amount::CHARS_MAX)?;
        Ok(Amount(text.to_owned()))
    }

    /// Formats `amount_minor` with `exponent` decimals: `(1234, 2)` gives `"12.34"`.
    pub fn from_minor_units(amount_minor: u64, exponent: u8) -> Result<Amount, ValueError> {
        let scale = scale(exponent).ok_or(ValueError::Malformed { expected: DECIMAL })?;
        let (major, minor) = (amount_minor / scale, amount_minor % scale);
        let text = if exponent == 0 {
            major.to_string()
        } else {
            format!("{major}.{minor:0width$}", width = usize::from(exponent))
        };
        Amount::parse(&text)
    }

    /// The amount in minor units of a currency with `exponent` decimals: `"12.3"` with
    /// exponent 2 is 1230. `None` when the amount has more significant decimals than the
    /// currency (`"12.345"` in CNY), or does not fit in a `u64`. Trailing zero decimals
    /// beyond the exponent are accepted (`"12.340"` is 1234).
    pub fn minor_units(&self, exponent: u8) -> Option<u64> {
        let (major, decimals) = self.0.split_once('.').unwrap_or((&self.0, ""));
        let exponent = usize::from(exponent);
        if decimals.trim_end_matches('0').len() > exponent {
            return None;
        }
        let scale = scale(u8::try_from(exponent).ok()?)?;
        let mut minor = 0u64;
        let mut unit = scale;
        for digit in decimals.bytes().take(exponent) {
            unit /= 10;
            minor += u64::from(digit - b'0') * unit;
        }
        major
            .parse::<u64>()
            .ok()?
            .checked_mul(scale)?
            .checked_add(minor)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn scale(exponent: u8) -> Option<u64> {
    10u64.checked_pow(u32::from(exponent))
}

/// A convenience fee percentage (57): up to 5 characters, above 0 and below 100 (`"3.5"`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Percentage(String);

impl Percentage {
    pub const CHARS_MAX: usize = 5;

    pub fn parse(text: &str) -> Result<Percentage, ValueError> {
        check_decimal(text, Percentage::CHARS_MAX)?;
        let whole = text.split_once('.').map_or(text, |(whole, _)| whole);
        if whole.parse::<u32>().map_or(true, |whole| whole >= 100) {
            return Err(ValueError::Malformed {
                expected: "a percentage below 100",
            });
        }
        Ok(Percentage(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_decimal(text: &str, chars_max: usize) -> Result<(), ValueError> {
    if text.is_empty() {
        return Err(ValueError::Empty);
    }
    if text.chars().count() > chars_max {
        return Err(ValueError::TooLong { chars_max });
    }
    let (major, decimals) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    // EMV: digits, one optional '.' that may end the amount ("100."), never zero.
    let well_formed = !major.is_empty() && digits(major) && digits(decimals);
    if !well_formed || text.bytes().all(|byte| byte == b'0' || byte == b'.') {
        return Err(ValueError::Malformed { expected: DECIMAL });
    }
    Ok(())
}

/// A fixed-length code: `$len` ASCII bytes that satisfy `$class`.
macro_rules! fixed_code {
    ($(#[$meta:meta])* $name:ident, $len:literal, $class:ident, $expected:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, Debug)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, ValueError> {
                if text.len() == $len && text.bytes().all(|byte| byte.$class()) {
                    Ok($name(text.to_owned()))
                } else {
                    Err(ValueError::Malformed { expected: $expected })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fixed_code!(
    /// The merchant category code (52), ISO 18245: four digits.
    MerchantCategoryCode, 4, is_ascii_digit, "4 digits (ISO 18245)"
);
fixed_code!(
    /// The transaction currency (53), ISO 4217 numeric: three digits, `156` for CNY.
    CurrencyCode, 3, is_ascii_digit, "3 digits (ISO 4217 numeric)"
);
fixed_code!(
    /// The merchant's country (58), ISO 3166-1 alpha-2: two letters, kept in the case given.
    CountryCode, 2, is_ascii_alphabetic, "2 letters (ISO 3166-1 alpha-2)"
);
fixed_code!(
    /// The alternate language (64, sub-ID 00), ISO 639-1: two letters.
    LanguageCode, 2, is_ascii_alphabetic, "2 letters (ISO 639-1)"
);

/// What the merchant asks the payer's wallet to provide (62, sub-ID 09): one to three of the
/// letters `A` (address), `M` (mobile number), `E` (email), each at most once.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ConsumerDataRequest(String);

impl ConsumerDataRequest {
    pub fn parse(text: &str) -> Result<ConsumerDataRequest, ValueError> {
        const EXPECTED: &str = "1 to 3 of the letters A, M, E, each at most once";
        let bytes = text.as_bytes();
        let malformed = ValueError::Malformed { expected: EXPECTED };
        if bytes.is_empty() || bytes.len() > 3 {
            return Err(malformed);
        }
        let letters_ok = bytes.iter().all(|byte| b"AME".contains(byte));
        let unique = (0..bytes.len()).all(|i| !bytes[i + 1..].contains(&bytes[i]));
        if !letters_ok || !unique {
            return Err(malformed);
        }
        Ok(ConsumerDataRequest(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
