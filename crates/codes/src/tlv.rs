//! The TLV scanner: splits a payload, or a template's value, into data objects of a two-digit
//! ID, a two-digit length and a value. It checks the syntax only; what IDs mean is for
//! `decode` and `read`.
//!
//! Positions are character offsets from the start of the whole payload, also inside a
//! template, so that every error points at the right character.

use crate::error::{DecodeError, ErrorCode};

/// How a length counts its value. EMV counts characters; some generators count UTF-8 bytes.
/// The two agree on ASCII.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Units {
    Chars,
    Utf8Bytes,
}

impl Units {
    /// The length of `value` in these units.
    pub(crate) fn count(self, value: &str) -> usize {
        match self {
            Units::Chars => value.chars().count(),
            Units::Utf8Bytes => value.len(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Units::Chars => "characters",
            Units::Utf8Bytes => "bytes",
        }
    }
}

/// The most objects one scan reads. Every object takes at least five characters (a header of
/// four digits, a value of one or more) and a payload at most 512, so 103 would do.
pub(crate) const OBJECTS_MAX: usize = 128;

/// One data object as found in the text.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Object<'a> {
    pub(crate) id: u8,
    /// Of the ID's first digit.
    pub(crate) position: usize,
    pub(crate) value: &'a str,
    pub(crate) value_position: usize,
    /// The byte offset of the value in the scanned text: the CRC covers the bytes before it.
    pub(crate) value_offset: usize,
}

pub(crate) struct Scanner<'a> {
    text: &'a str,
    /// Bytes into `text`, always on a character boundary.
    offset: usize,
    /// Characters from the start of the payload.
    position: usize,
    units: Units,
    /// An ASCII text lets a character count be a byte count, the common fast path.
    ascii: bool,
}

impl<'a> Scanner<'a> {
    /// Scans `text`, whose first character is at `position` in the payload.
    pub(crate) fn new(text: &'a str, position: usize, units: Units) -> Scanner<'a> {
        Scanner {
            text,
            offset: 0,
            position,
            units,
            ascii: text.is_ascii(),
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.position
    }

    /// What has not been scanned yet.
    pub(crate) fn rest(&self) -> &'a str {
        self.text.get(self.offset..).unwrap_or("")
    }

    /// The next object, `None` at the end of the text.
    pub(crate) fn next_object(&mut self) -> Option<Result<Object<'a>, DecodeError>> {
        if self.offset >= self.text.len() {
            return None;
        }
        Some(self.read_object())
    }

    fn read_object(&mut self) -> Result<Object<'a>, DecodeError> {
        let position = self.position;
        let id = self.header_digits(0, ErrorCode::BadId, "an ID")?;
        let length = self.header_digits(2, ErrorCode::BadLength, "a length")?;
        if length == 0 {
            let message = format!("object {id:02} has length 00, but a value is never empty");
            return Err(DecodeError::new(
                ErrorCode::BadLength,
                position + 2,
                message,
            ));
        }
        let value_offset = self.offset + 4;
        let (value, value_chars) = self.take_value(value_offset, id, usize::from(length))?;
        self.offset = value_offset + value.len();
        self.position = position + 4 + value_chars;
        Ok(Object {
            id,
            position,
            value,
            value_position: position + 4,
            value_offset,
        })
    }

    /// The two digits at `at` bytes into the current object's header.
    fn header_digits(&self, at: usize, code: ErrorCode, what: &str) -> Result<u8, DecodeError> {
        let start = self.offset + at;
        let rest = self.text.as_bytes().get(start..).unwrap_or_default();
        match rest {
            [tens, ones, ..] if tens.is_ascii_digit() && ones.is_ascii_digit() => {
                Ok((tens - b'0') * 10 + (ones - b'0'))
            }
            _ if rest.len() < 2 && rest.iter().all(u8::is_ascii_digit) => {
                let message = "the payload ends inside an object's header";
                Err(DecodeError::new(
                    ErrorCode::Truncated,
                    self.position,
                    message,
                ))
            }
            _ => {
                let found: String = self
                    .text
                    .get(start..)
                    .unwrap_or("")
                    .chars()
                    .take(2)
                    .collect();
                let message = format!("expected {what} of two digits, found {found:?}");
                Err(DecodeError::new(code, self.position + at, message))
            }
        }
    }

    /// The value of `length` units at byte `start`, and its length in characters.
    fn take_value(
        &self,
        start: usize,
        id: u8,
        length: usize,
    ) -> Result<(&'a str, usize), DecodeError> {
        let rest = self.text.get(start..).unwrap_or("");
        let taken = match self.units {
            Units::Chars if self.ascii => rest.get(..length).map(|value| (value, length)),
            Units::Chars => take_chars(rest, length).map(|value| (value, length)),
            Units::Utf8Bytes => match rest.get(..length) {
                Some(value) => Some((value, value.chars().count())),
                None if length <= rest.len() => {
                    let message =
                        format!("length {length} of object {id:02} ends inside a character");
                    return Err(DecodeError::new(
                        ErrorCode::BadLength,
                        self.position + 2,
                        message,
                    ));
                }
                None => None,
            },
        };
        taken.ok_or_else(|| {
            let (units, left) = (self.units.name(), self.units.count(rest));
            let message = format!("object {id:02} has {length} {units} but only {left} remain");
            DecodeError::new(ErrorCode::Truncated, self.position, message)
        })
    }
}

/// The first `count` characters of `text`, if it has that many.
fn take_chars(text: &str, count: usize) -> Option<&str> {
    let mut chars = text.chars();
    let mut end = 0;
    for _ in 0..count {
        end += chars.next()?.len_utf8();
    }
    text.get(..end)
}
