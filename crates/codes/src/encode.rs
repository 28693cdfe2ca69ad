//! Encoding: [`Payload`] to text, in canonical order (00 first, then ascending IDs, 63 last,
//! sub-objects ascending too), with the CRC computed over everything up to and including
//! `6304`.
//!
//! Each value's type already holds only valid values, so what can still go wrong is how they
//! fit together: an ID outside its range, an ID used twice, a template over 99 characters,
//! no merchant account, a payload over 512 characters. Each is a [`ModelError`], never a
//! panic.
//!
//! Lengths count characters, as EMV does, also for non-ASCII values; the CRC covers the UTF-8
//! bytes. A Chinese name of four characters has length `04` and adds twelve bytes to the CRC.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::ops::RangeInclusive;

use crate::crc::crc16;
use crate::decode::PAYLOAD_CHARS_MAX;
use crate::error::ModelError;
use crate::model::{
    AdditionalData, Entry, LanguageTemplate, MerchantAccount, PAYLOAD_FORMAT_INDICATOR, Payload,
    Template, Tip,
};
use crate::tlv::Units;

/// One object to write: its ID and value.
type Pending<'a> = (u8, Cow<'a, str>);

/// The most characters a value may have: its length is two digits.
const VALUE_CHARS_MAX: usize = 99;
/// `6304` and four hex digits.
const CRC_OBJECT_CHARS: usize = 8;

/// Encodes a payload with lengths in characters, as EMV says.
pub fn encode(payload: &Payload) -> Result<String, ModelError> {
    encode_in(payload, Units::Chars)
}

/// Encodes with lengths in `units`. Byte lengths exist only to test lenient decoding.
pub(crate) fn encode_in(payload: &Payload, units: Units) -> Result<String, ModelError> {
    let objects = root_objects(payload, units)?;
    let mut text = write_sorted(objects, units, None)?;
    let chars = text.chars().count() + CRC_OBJECT_CHARS;
    if chars > PAYLOAD_CHARS_MAX {
        let message = format!("the payload would be {chars} characters, over {PAYLOAD_CHARS_MAX}");
        return Err(ModelError::new("", message));
    }
    text.push_str("6304");
    let crc = crc16(text.as_bytes());
    // Writing to a String cannot fail.
    let _ = write!(text, "{crc:04X}");
    Ok(text)
}

fn root_objects(payload: &Payload, units: Units) -> Result<Vec<Pending<'_>>, ModelError> {
    let mut objects: Vec<Pending<'_>> = Vec::with_capacity(24);
    objects.push((0, PAYLOAD_FORMAT_INDICATOR.into()));
    if let Some(initiation) = payload.initiation {
        objects.push((1, initiation.as_str().into()));
    }
    if payload.merchant_accounts.is_empty() {
        return Err(ModelError::new(
            "02-51",
            "at least one merchant account is mandatory",
        ));
    }
    for account in &payload.merchant_accounts {
        objects.push(account_object(account, units)?);
    }
    objects.push((52, payload.merchant_category.as_str().into()));
    objects.push((53, payload.currency.as_str().into()));
    if let Some(amount) = &payload.amount {
        objects.push((54, amount.as_str().into()));
    }
    tip_objects(payload.tip.as_ref(), &mut objects);
    objects.push((58, payload.country.as_str().into()));
    objects.push((59, payload.merchant_name.as_str().into()));
    objects.push((60, payload.merchant_city.as_str().into()));
    if let Some(postal_code) = &payload.postal_code {
        objects.push((61, postal_code.as_str().into()));
    }
    if let Some(data) = &payload.additional_data {
        objects.push((62, additional_data(data, units)?.into()));
    }
    if let Some(language) = &payload.language {
        objects.push((64, language_template(language, units)?.into()));
    }
    for entry in &payload.rfu {
        objects.push(entry_in(entry, 65..=79, None)?);
    }
    for unreserved in &payload.unreserved {
        let id = checked_id(unreserved.id.get(), 80..=99, None)?;
        objects.push((id, template(&unreserved.template, id, units)?.into()));
    }
    Ok(objects)
}

fn account_object(account: &MerchantAccount, units: Units) -> Result<Pending<'_>, ModelError> {
    match account {
        MerchantAccount::Network { id, value } => {
            Ok((checked_id(id.get(), 2..=25, None)?, value.as_str().into()))
        }
        MerchantAccount::Template {
            id,
            template: inner,
        } => {
            let id = checked_id(id.get(), 26..=51, None)?;
            Ok((id, template(inner, id, units)?.into()))
        }
    }
}

fn tip_objects<'a>(tip: Option<&'a Tip>, objects: &mut Vec<Pending<'a>>) {
    match tip {
        None => {}
        Some(Tip::Prompt) => objects.push((55, "01".into())),
        Some(Tip::FixedFee(fee)) => {
            objects.push((55, "02".into()));
            objects.push((56, fee.as_str().into()));
        }
        Some(Tip::PercentageFee(fee)) => {
            objects.push((55, "03".into()));
            objects.push((57, fee.as_str().into()));
        }
    }
}

/// The value of a template of 26–51 or 80–99.
fn template(template: &Template, id: u8, units: Units) -> Result<String, ModelError> {
    let mut objects: Vec<Pending<'_>> = vec![(0, template.guid.as_str().into())];
    for entry in &template.entries {
        objects.push(entry_in(entry, 1..=99, Some(id))?);
    }
    write_sorted(objects, units, Some(id))
}

fn additional_data(data: &AdditionalData, units: Units) -> Result<String, ModelError> {
    let mut objects: Vec<Pending<'_>> = Vec::new();
    for (id, label) in data.labels() {
        if let Some(label) = label {
            objects.push((id, label.as_str().into()));
        }
    }
    if let Some(request) = &data.consumer_data_request {
        objects.push((9, request.as_str().into()));
    }
    for entry in &data.other {
        // 01–09 have their own fields: a raw copy would decode into those.
        if (1..=9).contains(&entry.id.get()) {
            return Err(ModelError::new(
                format!("62.{}", entry.id),
                "01-09 have their own fields",
            ));
        }
        objects.push(entry_in(entry, 0..=99, Some(62))?);
    }
    if objects.is_empty() {
        return Err(ModelError::new(
            "62",
            "the additional data template is empty",
        ));
    }
    write_sorted(objects, units, Some(62))
}

fn language_template(language: &LanguageTemplate, units: Units) -> Result<String, ModelError> {
    let mut objects: Vec<Pending<'_>> = vec![
        (0, language.language.as_str().into()),
        (1, language.merchant_name.as_str().into()),
    ];
    if let Some(city) = &language.merchant_city {
        objects.push((2, city.as_str().into()));
    }
    for entry in &language.other {
        objects.push(entry_in(entry, 3..=99, Some(64))?);
    }
    write_sorted(objects, units, Some(64))
}

fn entry_in(
    entry: &Entry,
    ids: RangeInclusive<u8>,
    parent: Option<u8>,
) -> Result<Pending<'_>, ModelError> {
    Ok((
        checked_id(entry.id.get(), ids, parent)?,
        entry.value.as_str().into(),
    ))
}

fn checked_id(id: u8, ids: RangeInclusive<u8>, parent: Option<u8>) -> Result<u8, ModelError> {
    if ids.contains(&id) {
        return Ok(id);
    }
    let message = format!("ID {id:02} is outside {:02}-{:02}", ids.start(), ids.end());
    Err(ModelError::new(path(parent, id), message))
}

fn path(parent: Option<u8>, id: u8) -> String {
    match parent {
        Some(parent) => format!("{parent:02}.{id:02}"),
        None => format!("{id:02}"),
    }
}

/// Writes objects in ascending ID order; an ID given twice, or a value that does not fit a
/// two-digit length, is an error. A template's value is checked by its parent's call.
fn write_sorted(
    mut objects: Vec<Pending<'_>>,
    units: Units,
    parent: Option<u8>,
) -> Result<String, ModelError> {
    objects.sort_by_key(|(id, _)| *id);
    let capacity = if parent.is_some() {
        VALUE_CHARS_MAX
    } else {
        PAYLOAD_CHARS_MAX
    };
    let mut text = String::with_capacity(capacity);
    let mut previous = None;
    for (id, value) in &objects {
        if previous == Some(*id) {
            return Err(ModelError::new(path(parent, *id), "this ID is given twice"));
        }
        previous = Some(*id);
        let length = units.count(value);
        if length > VALUE_CHARS_MAX {
            let message = format!("the value is {length} long, over {VALUE_CHARS_MAX}");
            return Err(ModelError::new(path(parent, *id), message));
        }
        let _ = write!(text, "{id:02}{length:02}{value}");
    }
    Ok(text)
}
