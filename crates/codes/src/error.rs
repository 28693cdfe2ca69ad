//! What can go wrong, named with stable codes.
//!
//! - [`DecodeError`] with an [`ErrorCode`]: a payload read from the wire is not valid.
//! - [`Quirk`]: a deviation that lenient mode forgave (or, for a warning, noticed).
//! - [`ValueError`]: one value does not fit its type (a name too long, an amount of zero).
//! - [`ModelError`]: a [`Payload`](crate::Payload) cannot be encoded (IDs out of their range,
//!   a template over 99 characters, a payload over 512).
//!
//! The `as_str` names are the API: they are never renamed, and new ones are only appended.

use std::fmt;

macro_rules! stable_names {
    ($(#[$meta:meta])* $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }

            /// The value with this stable name.
            pub fn parse(name: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|value| value.as_str() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stable_names! {
    /// Why a payload was rejected. Checks run in this order and the first failure is reported:
    /// the input as a whole, the TLV syntax of the root (left to right), the CRC, then the
    /// meaning of each object (left to right), then what is missing. In strict mode the quirks
    /// that lenient mode forgives are reported after all of these, only if nothing else is
    /// wrong.
    ErrorCode {
        /// The input is empty or only whitespace.
        Empty => "EMPTY",
        /// More than 512 characters.
        TooLong => "TOO_LONG",
        /// An ID is not two decimal digits.
        BadId => "BAD_ID",
        /// A length is not two decimal digits, is `00`, or (with UTF-8 byte lengths) ends
        /// inside a character.
        BadLength => "BAD_LENGTH",
        /// An object's header or value runs past the end of the payload.
        Truncated => "TRUNCATED",
        /// An ID appears twice at the root or inside one template.
        DuplicateId => "DUPLICATE_ID",
        /// The first object is not the payload format indicator (00), also when there is no 00
    /// at all. Points at the first object.
        FormatNotFirst => "FORMAT_NOT_FIRST",
        /// The CRC (63) is missing or something follows it.
        CrcNotLast => "CRC_NOT_LAST",
        /// The CRC is not four hex digits, does not match, or (strict) is lowercase.
        BadCrc => "BAD_CRC",
        /// A mandatory object is missing: one of 02–51, 52, 53, 58, 59 or 60 (no 00 is
    /// `FORMAT_NOT_FIRST`, no 63 `CRC_NOT_LAST`). Points where the object belongs: at the first
    /// object with a higher ID.
        MissingField => "MISSING_FIELD",
        /// A value is invalid for its ID, or objects that go together do not (55 and 56/57).
        BadField => "BAD_FIELD",
        /// The TLV syntax inside a template (26–51, 62, 64, 80–99) is broken.
        BadTemplate => "BAD_TEMPLATE",
    }
}

stable_names! {
    /// A real-world deviation from EMV that lenient mode accepts and reports.
    ///
    /// All but one are errors in strict mode. [`Quirk::IdsOutOfOrder`] is a warning: EMV lets
    /// objects come in any order between 00 and 63, so strict mode accepts it too; it is
    /// reported because re-encoding such a payload changes its bytes.
    Quirk {
        /// Payload format indicator `02` instead of `01`. Strict: `BAD_FIELD`.
        PayloadFormat02 => "PAYLOAD_FORMAT_02",
        /// A correct CRC written in lowercase hex. Strict: `BAD_CRC`.
        LowercaseCrc => "LOWERCASE_CRC",
        /// Lengths count UTF-8 bytes instead of characters (seen with Thai and Chinese names).
        /// Strict: whatever the character reading runs into, usually `TRUNCATED` or `BAD_CRC`.
        Utf8ByteLengths => "UTF8_BYTE_LENGTHS",
        /// IDs not ascending, at the root or inside a template (63 last is not out of order).
        /// A warning: strict accepts it.
        IdsOutOfOrder => "IDS_OUT_OF_ORDER",
        /// Whitespace after the payload (a line break from a scanner or a copy and paste).
        /// Strict: `CRC_NOT_LAST`.
        TrailingWhitespace => "TRAILING_WHITESPACE",
    }
}

impl Quirk {
    /// Whether strict mode accepts a payload with this quirk.
    pub fn is_warning(self) -> bool {
        matches!(self, Quirk::IdsOutOfOrder)
    }
}

/// A payload that could not be decoded: what is wrong, in words, and where.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DecodeError {
    pub code: ErrorCode,
    /// A sentence for people; the code is what programs should match on.
    pub message: String,
    /// The 0-based character offset where the problem starts (inside a template for errors in
    /// one).
    pub position: usize,
}

impl DecodeError {
    pub(crate) fn new(code: ErrorCode, position: usize, message: impl Into<String>) -> Self {
        DecodeError {
            code,
            message: message.into(),
            position,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at character {}: {}",
            self.code, self.position, self.message
        )
    }
}

impl std::error::Error for DecodeError {}

/// Why one value does not fit its type. Its `Display` completes a sentence that starts with
/// the value's name: "merchant name is longer than 25 characters".
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ValueError {
    Empty,
    TooLong {
        chars_max: usize,
    },
    /// A control character (line break, tab, NUL…): never part of a printable code.
    ControlCharacter,
    /// The text does not have the expected form, described by `expected`.
    Malformed {
        expected: &'static str,
    },
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::Empty => f.write_str("is empty"),
            ValueError::TooLong { chars_max } => {
                write!(f, "is longer than {chars_max} characters")
            }
            ValueError::ControlCharacter => f.write_str("contains a control character"),
            ValueError::Malformed { expected } => write!(f, "must be {expected}"),
        }
    }
}

impl std::error::Error for ValueError {}

/// A model that cannot be encoded, or a template that is not what its reader expects.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ModelError {
    /// Where: a root ID (`"59"`), a sub-ID (`"62.05"`), or `""` for the payload as a whole.
    pub path: String,
    pub message: String,
}

impl ModelError {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ModelError {}
