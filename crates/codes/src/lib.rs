//! zhifu's codes: the EMVCo merchant-presented mode (MPM) QR codec.
//!
//! # Overview
//! A merchant-presented payload is a string of data objects, each a two-digit ID, a two-digit
//! length and a value: `000201` (payload format `01`) first, `6304` and a CRC last. Some
//! values are templates of sub-objects in the same form.
//!
//! - [`Payload`]: the typed model. Its values are types that only hold valid values
//!   ([`DataObjectId`], [`Text`], [`Amount`], [`CurrencyCode`], …), so a payload is checked
//!   where it is parsed, not everywhere it is used.
//! - [`decode`] (strict, the default) and [`decode_lenient`]: text to [`Payload`]. Errors are
//!   [`DecodeError`]s with a stable [`ErrorCode`] and the character where the problem starts.
//!   Lenient mode forgives the [`Quirk`]s of real-world generators and reports them; strict
//!   mode is lenient mode that then refuses what it forgave, so a payload that both reject
//!   gets the same code from both.
//! - [`encode`]: [`Payload`] to text, in canonical order, with the CRC.
//! - [`fields`]: the raw field tree of a payload, for the CLI.
//! - [`ZhifuAccount`]: zhifu's own template, and aggregated codes that carry several networks'
//!   accounts ([`Payload::add_zhifu`], [`Payload::accounts_for`]).
//!
//! **Architecture invariant:** this crate does no I/O and has no dependencies. Every loop is
//! bounded (a payload has at most 512 characters, an object at most 99) and no input makes it
//! panic: the property tests feed it arbitrary and mutated payloads.
//!
//! # Decisions where EMV leaves room
//! - **Order.** EMV pins 00 first and 63 last; its own specimen payload puts 64 before 54. So
//!   strict mode accepts any order in between, and the warning quirk `IDS_OUT_OF_ORDER` says
//!   that re-encoding will reorder it. The decoded model is sorted by ID either way.
//! - **Strict = lenient, then refuse what was forgiven.** A quirk's strict error is reported
//!   only when nothing worse is wrong, so both modes give the same code for real problems.
//! - **00 and 63.** A first object other than 00 is `FORMAT_NOT_FIRST`, also when 00 is
//!   missing altogether; a missing or non-final 63 is `CRC_NOT_LAST`. `MISSING_FIELD` covers
//!   the other mandatory objects.
//! - **Values** are never empty (length `00` is `BAD_LENGTH`) and never hold control
//!   characters. Any other Unicode is accepted, Chinese names in 59 included.
//! - **Templates** (26–51, 80–99) must have a GUID in 00; GUIDs compare ignoring ASCII case.
//!   Sub-IDs without a name of their own (62's 00 and 10–99, 64's 03–99) are kept raw.
//!
//! **Characters.** EMV counts lengths in characters. Here a character is a Unicode scalar
//! value (a Rust `char`), not a byte, a UTF-16 unit or a grapheme; the CRC covers UTF-8 bytes.
//! EMV's own specimen payload (`…0104最佳运输…6304A13A`) decodes this way.
//!
//! ```
//! use zhifu_codes::*;
//!
//! let mut payload = Payload::new(
//!     MerchantCategoryCode::parse("5812").unwrap(),
//!     CurrencyCode::parse("156").unwrap(),
//!     CountryCode::parse("CN").unwrap(),
//!     MerchantName::parse("Noodle Bar").unwrap(),
//!     MerchantCity::parse("Shanghai").unwrap(),
//! );
//! let account = ZhifuAccount {
//!     guid: Guid::parse(ZHIFU_GUID).unwrap(),
//!     target: Target::Merchant(TargetId::parse("10023").unwrap()),
//!     order_reference: None,
//! };
//! payload.add_zhifu(&account).unwrap();
//! payload.add_network(DataObjectId::new(15).unwrap(), Value::parse("6230001").unwrap()).unwrap();
//!
//! let text = encode(&payload).unwrap();
//! assert!(text.starts_with("00020101021115076230001"));
//! let decoded = decode(&text).unwrap();
//! assert_eq!(decoded.zhifu_accounts(ZHIFU_GUID).unwrap(), vec![account]);
//! ```

mod crc;
mod decode;
mod encode;
mod error;
mod fields;
mod model;
mod read;
mod tlv;
mod value;
mod zhifu;

pub use crc::crc16;
pub use decode::{Lenient, Mode, PAYLOAD_CHARS_MAX, decode, decode_lenient};
pub use encode::encode;
pub use error::{DecodeError, ErrorCode, ModelError, Quirk, ValueError};
pub use fields::{Field, FieldValue, Fields, fields};
pub use model::{
    AdditionalData, Entry, Initiation, LanguageTemplate, MerchantAccount, PAYLOAD_FORMAT_INDICATOR,
    Payload, Template, Tip, UnreservedTemplate,
};
pub use value::{
    Amount, ConsumerDataRequest, CountryCode, CurrencyCode, DataObjectId, Guid, Label,
    LanguageCode, MerchantCategoryCode, MerchantCity, MerchantName, Percentage, PostalCode, Text,
    Value,
};
pub use zhifu::{OrderReference, Target, TargetId, ZHIFU_GUID, ZhifuAccount};

#[cfg(test)]
mod tests;
