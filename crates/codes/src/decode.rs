//! Strict and lenient decoding: text to [`Payload`].
//!
//! Four steps, each stopping at the first problem:
//! 1. `prepare`: the input as a whole (empty, over 512 characters, trailing whitespace);
//! 2. `scan_root`: the root objects' syntax left to right, 00 first, duplicate IDs, 63 last;
//! 3. `check_crc`;
//! 4. `read::payload`: each object's meaning left to right, templates included, then what is
//!    missing.
//!
//! The CRC is checked before any value: a mismatch means the bytes are not what the merchant
//! printed, and a complaint about a value would then mislead.
//!
//! **Strict is lenient, then refuses what it forgave.** A quirk met in strict mode does not
//! stop the decode: its error is kept and returned at the end, unless a real problem comes
//! first. So a payload that both modes reject gets the same code in both, and a strict error
//! names a quirk only when the payload has nothing worse.
//!
//! **Order.** EMV pins 00 first and 63 last and lets the rest come in any order (its own
//! specimen payload puts 64 before 54), so strict mode accepts any order. Out-of-order IDs are
//! still reported as the warning quirk `IDS_OUT_OF_ORDER`, because re-encoding sorts them.
//!
//! **Lengths in UTF-8 bytes.** A payload that fails with character lengths and is not ASCII is
//! read again with byte lengths. If that succeeds, lenient mode reports `UTF8_BYTE_LENGTHS`;
//! strict mode keeps the first error and adds a hint to its message.

use crate::crc::crc16;
use crate::error::{DecodeError, ErrorCode, Quirk};
use crate::model::Payload;
use crate::read;
use crate::tlv::{OBJECTS_MAX, Object, Scanner, Units};

/// The longest payload EMV allows, in characters.
pub const PAYLOAD_CHARS_MAX: usize = 512;

const CRC_ID: u8 = 63;

/// How forgiving a decode is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mode {
    /// EMV as written. The default.
    Strict,
    /// Also accepts the quirks of real-world generators ([`Quirk`]) and reports them.
    Lenient,
}

/// A payload decoded in lenient mode, with what was forgiven.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Lenient {
    pub payload: Payload,
    /// Each quirk once, in [`Quirk::ALL`] order; empty for a clean payload.
    pub quirks: Vec<Quirk>,
}

/// Decodes a payload strictly: any deviation from EMV is an error.
pub fn decode(input: &str) -> Result<Payload, DecodeError> {
    decode_in(input, Mode::Strict).map(|decoded| decoded.payload)
}

/// Decodes a payload, forgiving the quirks seen in the wild (see [`Quirk`]). A CRC that does
/// not match is still an error.
pub fn decode_lenient(input: &str) -> Result<Lenient, DecodeError> {
    let decoded = decode_in(input, Mode::Lenient)?;
    Ok(Lenient {
        payload: decoded.payload,
        quirks: decoded.quirks,
    })
}

/// A decoded payload with the objects it was read from.
pub(crate) struct Decoded<'a> {
    pub(crate) payload: Payload,
    /// The root objects in payload order, 63 last.
    pub(crate) objects: Vec<Object<'a>>,
    pub(crate) units: Units,
    /// In strict mode only warnings.
    pub(crate) quirks: Vec<Quirk>,
}

pub(crate) fn decode_in(input: &str, mode: Mode) -> Result<Decoded<'_>, DecodeError> {
    let error = match decode_with(input, mode, Units::Chars) {
        Ok(decoded) => return Ok(decoded),
        Err(error) => error,
    };
    // Lengths can only differ on non-ASCII text, trailing whitespace apart.
    let whole_input = matches!(error.code, ErrorCode::Empty | ErrorCode::TooLong);
    if whole_input || input.trim_end().is_ascii() {
        return Err(error);
    }
    // Strict mode reads byte lengths leniently too, only to say why it fails.
    match (mode, decode_with(input, Mode::Lenient, Units::Utf8Bytes)) {
        (Mode::Lenient, Ok(mut decoded)) => {
            decoded.quirks.push(Quirk::Utf8ByteLengths);
            decoded.quirks.sort();
            Ok(decoded)
        }
        (Mode::Strict, Ok(_)) => {
            let hint = "; the lengths count UTF-8 bytes, which lenient mode accepts";
            Err(DecodeError {
                message: error.message + hint,
                ..error
            })
        }
        (_, Err(_)) => Err(error),
    }
}

fn decode_with(input: &str, mode: Mode, units: Units) -> Result<Decoded<'_>, DecodeError> {
    let mut quirks = Quirks {
        mode,
        seen: 0,
        refused: None,
    };
    let text = prepare(input, &mut quirks)?;
    let objects = scan_root(text, units, &mut quirks)?;
    if let Some(crc) = objects.last() {
        check_crc(text, crc, &mut quirks)?;
    }
    let payload = read::payload(&objects, units, &mut quirks)?;
    if let Some(error) = quirks.refused {
        return Err(error);
    }
    Ok(Decoded {
        payload,
        objects,
        units,
        quirks: quirks.to_vec(),
    })
}

/// The quirks met so far, and what to do about them.
pub(crate) struct Quirks {
    mode: Mode,
    /// One bit per quirk, by its index in `Quirk::ALL`.
    seen: u8,
    /// In strict mode, the error of the first quirk met: the decode fails with it at the end.
    refused: Option<DecodeError>,
}

impl Quirks {
    /// Notes `quirk` and goes on; strict mode also keeps `error` for the end.
    pub(crate) fn forgive(&mut self, quirk: Quirk, error: impl FnOnce() -> DecodeError) {
        self.note(quirk);
        if self.mode == Mode::Strict && self.refused.is_none() {
            self.refused = Some(error());
        }
    }

    /// Notes a warning, in both modes.
    pub(crate) fn note(&mut self, quirk: Quirk) {
        self.seen |= 1 << quirk as u8;
    }

    fn to_vec(&self) -> Vec<Quirk> {
        Quirk::ALL
            .iter()
            .copied()
            .filter(|&quirk| self.seen & (1 << quirk as u8) != 0)
            .collect()
    }
}

fn prepare<'a>(input: &'a str, quirks: &mut Quirks) -> Result<&'a str, DecodeError> {
    let text = input.trim_end();
    if text.is_empty() {
        let message = if input.is_empty() {
            "the payload is empty"
        } else {
            "only whitespace"
        };
        return Err(DecodeError::new(ErrorCode::Empty, 0, message));
    }
    // A character takes at most four bytes, so this bounds the count on hostile input.
    let chars = if text.len() > PAYLOAD_CHARS_MAX * 4 {
        usize::MAX
    } else {
        text.chars().count()
    };
    if chars > PAYLOAD_CHARS_MAX {
        let message = format!("the payload is over {PAYLOAD_CHARS_MAX} characters");
        return Err(DecodeError::new(
            ErrorCode::TooLong,
            PAYLOAD_CHARS_MAX,
            message,
        ));
    }
    if text.len() < input.len() {
        quirks.forgive(Quirk::TrailingWhitespace, || {
            let message = "whitespace after the CRC (63), which must end the payload; \
                           lenient mode ignores it";
            DecodeError::new(ErrorCode::CrcNotLast, chars, message)
        });
    }
    Ok(text)
}

/// The root objects in payload order, ending with the CRC object.
fn scan_root<'a>(
    text: &'a str,
    units: Units,
    quirks: &mut Quirks,
) -> Result<Vec<Object<'a>>, DecodeError> {
    let mut scanner = Scanner::new(text, 0, units);
    let mut objects = Vec::with_capacity(24);
    let mut seen = SeenIds::default();
    for _ in 0..OBJECTS_MAX {
        let Some(object) = scanner.next_object() else {
            break;
        };
        let object = object?;
        if objects.is_empty() && object.id != 0 {
            let message = format!(
                "the payload must start with the payload format indicator (00), not {:02}",
                object.id
            );
            return Err(DecodeError::new(
                ErrorCode::FormatNotFirst,
                object.position,
                message,
            ));
        }
        if object.id == CRC_ID {
            objects.push(object);
            return crc_is_last(&scanner).map(|()| objects);
        }
        // A second 00 is a duplicate: the first object is 00.
        seen.check(&object, quirks)?;
        objects.push(object);
    }
    let message = "the payload does not end with a CRC object (63)";
    Err(DecodeError::new(
        ErrorCode::CrcNotLast,
        scanner.position(),
        message,
    ))
}

fn crc_is_last(scanner: &Scanner<'_>) -> Result<(), DecodeError> {
    if scanner.rest().is_empty() {
        return Ok(());
    }
    let message = "the CRC (63) must be the last object, but more follows";
    Err(DecodeError::new(
        ErrorCode::CrcNotLast,
        scanner.position(),
        message,
    ))
}

/// The IDs met so far in one scan (root or template): duplicates are errors, a descent is the
/// warning `IDS_OUT_OF_ORDER`.
#[derive(Default)]
pub(crate) struct SeenIds {
    ids: u128,
    last: Option<u8>,
}

impl SeenIds {
    pub(crate) fn check(
        &mut self,
        object: &Object,
        quirks: &mut Quirks,
    ) -> Result<(), DecodeError> {
        let bit = 1u128 << object.id;
        if self.ids & bit != 0 {
            let message = format!("ID {:02} appears twice", object.id);
            return Err(DecodeError::new(
                ErrorCode::DuplicateId,
                object.position,
                message,
            ));
        }
        self.ids |= bit;
        if self.last.is_some_and(|last| last > object.id) {
            quirks.note(Quirk::IdsOutOfOrder);
        }
        self.last = Some(object.id);
        Ok(())
    }
}

fn check_crc(text: &str, crc: &Object, quirks: &mut Quirks) -> Result<(), DecodeError> {
    let found = crc.value;
    let bad = |message: String| DecodeError::new(ErrorCode::BadCrc, crc.value_position, message);
    let hex = found.len() == 4 && found.bytes().all(|byte| byte.is_ascii_hexdigit());
    let Some(found_value) = hex.then(|| u16::from_str_radix(found, 16).ok()).flatten() else {
        return Err(bad(format!(
            "the CRC must be 4 hex digits, found {found:?}"
        )));
    };
    let covered = text.as_bytes().get(..crc.value_offset).unwrap_or_default();
    let computed = crc16(covered);
    if found_value != computed {
        return Err(bad(format!(
            "the CRC is {found} but the payload's is {computed:04X}"
        )));
    }
    if found.bytes().any(|byte| byte.is_ascii_lowercase()) {
        quirks.forgive(Quirk::LowercaseCrc, || {
            bad(format!(
                "the CRC must be uppercase hex, found {found}; lenient mode accepts it"
            ))
        });
    }
    Ok(())
}

/// The sub-objects of a template, in order: syntax errors become `BAD_TEMPLATE`, duplicates
/// `DUPLICATE_ID`. An iterator rather than a `Vec`, because a decode reads several templates
/// and allocations are a good part of its time.
pub(crate) fn sub_objects<'a, 'q>(
    template: &Object<'a>,
    units: Units,
    quirks: &'q mut Quirks,
) -> SubObjects<'a, 'q> {
    SubObjects {
        template_id: template.id,
        scanner: Scanner::new(template.value, template.value_position, units),
        seen: SeenIds::default(),
        quirks,
        objects_left: OBJECTS_MAX,
    }
}

pub(crate) struct SubObjects<'a, 'q> {
    template_id: u8,
    scanner: Scanner<'a>,
    seen: SeenIds,
    quirks: &'q mut Quirks,
    objects_left: usize,
}

impl<'a> Iterator for SubObjects<'a, '_> {
    type Item = Result<Object<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.objects_left = self.objects_left.checked_sub(1)?;
        let object = match self.scanner.next_object()? {
            Ok(object) => object,
            Err(error) => {
                // No object after a syntax error can be trusted: stop here.
                self.objects_left = 0;
                let message = format!("in template {:02}: {}", self.template_id, error.message);
                return Some(Err(DecodeError::new(
                    ErrorCode::BadTemplate,
                    error.position,
                    message,
                )));
            }
        };
        Some(self.seen.check(&object, self.quirks).map(|()| object))
    }
}
