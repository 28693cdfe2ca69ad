//! The numbers that identify a person: phone, resident ID number, bank card. Each is a newtype
//! that can only be made by parsing, so holding one means it is valid; none of them shows its
//! number in `Debug` or in an error, so a log line cannot leak one by accident. The full value
//! is reachable only through `reveal`, for the code that encrypts or forwards it.

use std::fmt;

/// Why a number was refused. The messages name the rule, never the number.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IdentityError {
    PhoneInvalid,
    IdNumberFormat,
    IdNumberBirthDate,
    IdNumberCheckDigit,
    CardNumberFormat,
    CardNumberChecksum,
}

impl IdentityError {
    /// Stable codes for APIs and logs.
    pub fn code(self) -> &'static str {
        match self {
            IdentityError::PhoneInvalid => "PHONE_INVALID",
            IdentityError::IdNumberFormat => "ID_NUMBER_FORMAT",
            IdentityError::IdNumberBirthDate => "ID_NUMBER_BIRTH_DATE",
            IdentityError::IdNumberCheckDigit => "ID_NUMBER_CHECK_DIGIT",
            IdentityError::CardNumberFormat => "CARD_NUMBER_FORMAT",
            IdentityError::CardNumberChecksum => "CARD_NUMBER_CHECKSUM",
        }
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdentityError::PhoneInvalid => {
                "a mainland mobile number has 11 digits and starts with 13 to 19 (+86 optional)"
            }
            IdentityError::IdNumberFormat => {
                "a resident ID number has 17 digits and a final digit or X"
            }
            IdentityError::IdNumberBirthDate => "the ID number's birth date is not a real date",
            IdentityError::IdNumberCheckDigit => {
                "the ID number's check digit does not match (GB 11643-1999)"
            }
            IdentityError::CardNumberFormat => "a bank card number has 12 to 19 digits",
            IdentityError::CardNumberChecksum => "the card number fails its check digit (Luhn)",
        })
    }
}

impl std::error::Error for IdentityError {}

/// A mainland mobile number, stored as its 11 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Accepts `13812345678`, `+8613812345678` and `+86 138 1234 5678`.
    pub fn parse(text: &str) -> Result<Phone, IdentityError> {
        let compact: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix("+86").unwrap_or(&compact);
        let bytes = digits.as_bytes();
        let valid = bytes.len() == 11
            && bytes.iter().all(u8::is_ascii_digit)
            && bytes[0] == b'1'
            && (b'3'..=b'9').contains(&bytes[1]);
        if !valid {
            return Err(IdentityError::PhoneInvalid);
        }
        Ok(Phone(digits.to_owned()))
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// `138****5678`: what a person may be shown of someone else's phone.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

/// A resident identity card number (GB 11643-1999): 6 digits of region, 8 of birth date, 3 of
/// sequence and a check digit (0–9 or X). Stored with an upper-case X.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdNumber(String);

/// Weights of the first 17 digits; the weighted sum mod 11 picks the check character.
const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK_CHARACTERS: [u8; 11] = *b"10X98765432";

impl IdNumber {
    pub fn parse(text: &str) -> Result<IdNumber, IdentityError> {
        let normalized = text.trim().to_ascii_uppercase();
        let bytes = normalized.as_bytes();
        let format_ok = bytes.len() == 18
            && bytes[..17].iter().all(u8::is_ascii_digit)
            && (bytes[17].is_ascii_digit() || bytes[17] == b'X')
            && bytes[0] != b'0';
        if !format_ok {
            return Err(IdentityError::IdNumberFormat);
        }
        let (year, month, day) = (
            digits_value(&bytes[6..10]),
            digits_value(&bytes[10..12]),
            digits_value(&bytes[12..14]),
        );
        if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) {
            return Err(IdentityError::IdNumberBirthDate);
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(IdentityError::IdNumberBirthDate);
        }
        if bytes[17] != id_check_character(&bytes[..17]) {
            return Err(IdentityError::IdNumberCheckDigit);
        }
        Ok(IdNumber(normalized))
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Year, month and day of birth.
    pub fn birth_date(&self) -> (u32, u32, u32) {
        let bytes = self.0.as_bytes();
        (
            digits_value(&bytes[6..10]),
            digits_value(&bytes[10..12]),
            digits_value(&bytes[12..14]),
        )
    }

    /// `1****************X`: first and last character only.
    pub fn masked(&self) -> String {
        format!("{}{}{}", &self.0[..1], "*".repeat(16), &self.0[17..])
    }
}

impl fmt::Debug for IdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdNumber({})", self.masked())
    }
}

/// The check character of the first 17 digits (which must be ASCII digits).
fn id_check_character(digits: &[u8]) -> u8 {
    assert_eq!(digits.len(), 17);
    let sum: u32 = digits
        .iter()
        .zip(ID_WEIGHTS)
        .map(|(digit, weight)| u32::from(digit - b'0') * weight)
        .sum();
    ID_CHECK_CHARACTERS[(sum % 11) as usize]
}

fn digits_value(digits: &[u8]) -> u32 {
    digits
        .iter()
        .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A bank card number (PAN): 12 to 19 digits passing the Luhn check. Spaces are dropped.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CardNumber(String);

impl CardNumber {
    pub fn parse(text: &str) -> Result<CardNumber, IdentityError> {
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdentityError::CardNumberFormat);
        }
        if !luhn_valid(digits.as_bytes()) {
            return Err(IdentityError::CardNumberChecksum);
        }
        Ok(CardNumber(digits))
    }

    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The only part of a card number that is ever shown or logged.
    pub fn last_four(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardNumber(**** {})", self.last_four())
    }
}

/// Luhn: from the right, every second digit doubled (minus 9 above 9); the sum ends in 0.
fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, digit)| {
            let value = u32::from(digit - b'0');
            match position % 2 {
                0 => value,
                _ if value * 2 > 9 => value * 2 - 9,
                _ => value * 2,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Test and demo helpers: the check character for 17 digits, the Luhn digit for a prefix.
pub mod make {
    /// Completes 17 digits into a valid ID number.
    pub fn id_number(first_17: &str) -> String {
        assert!(first_17.len() == 17 && first_17.bytes().all(|b| b.is_ascii_digit()));
        let check = super::id_check_character(first_17.as_bytes());
        format!("{first_17}{}", check as char)
    }

    /// Completes a digit prefix into a card number that passes Luhn.
    pub fn card_number(prefix: &str) -> String {
        assert!(prefix.bytes().all(|b| b.is_ascii_digit()));
        (0..10u8)
            .map(|d| format!("{prefix}{d}"))
            .find(|candidate| super::luhn_valid(candidate.as_bytes()))
            .expect("one of ten check digits completes any prefix")
    }
}
