//! Reads scanned root objects into the typed [`Payload`]. Each value is parsed into its type
//! as it comes; what depends on several objects (the mandatory ones, the tip indicator and
//! its fee) is checked once all are read.

use crate::decode::{Quirks, sub_objects};
use crate::error::{DecodeError, ErrorCode, Quirk, ValueError};
use crate::model::{
    AdditionalData, Entry, Initiation, LABEL_NAMES, LanguageTemplate, MerchantAccount,
    PAYLOAD_FORMAT_INDICATOR, Payload, Template, Tip, UnreservedTemplate, root_name,
};
use crate::tlv::{Object, Units};
use crate::value::{
    Amount, ConsumerDataRequest, CountryCode, CurrencyCode, DataObjectId, Guid, Label,
    LanguageCode, MerchantCategoryCode, MerchantCity, MerchantName, Percentage, PostalCode, Value,
};

pub(crate) fn payload(
    objects: &[Object<'_>],
    units: Units,
    quirks: &mut Quirks,
) -> Result<Payload, DecodeError> {
    let mut draft = Draft::default();
    for object in objects {
        read_object(&mut draft, object, units, quirks)?;
    }
    // The model holds what a payload means, not how its bytes were ordered: sorted by ID,
    // payloads that differ only in order decode equal (and the quirk says they differed).
    draft.accounts.sort_by_key(MerchantAccount::id);
    draft.rfu.sort_by_key(|entry| entry.id);
    draft.unreserved.sort_by_key(|template| template.id);
    draft.finish(objects)
}

/// The payload as read so far.
#[derive(Default)]
struct Draft<'o, 'a> {
    initiation: Option<Initiation>,
    accounts: Vec<MerchantAccount>,
    merchant_category: Option<MerchantCategoryCode>,
    currency: Option<CurrencyCode>,
    amount: Option<Amount>,
    tip: Option<&'o Object<'a>>,
    fixed_fee: Option<&'o Object<'a>>,
    percentage_fee: Option<&'o Object<'a>>,
    country: Option<CountryCode>,
    merchant_name: Option<MerchantName>,
    merchant_city: Option<MerchantCity>,
    postal_code: Option<PostalCode>,
    additional_data: Option<AdditionalData>,
    language: Option<LanguageTemplate>,
    rfu: Vec<Entry>,
    unreserved: Vec<UnreservedTemplate>,
}

fn read_object<'o, 'a>(
    draft: &mut Draft<'o, 'a>,
    object: &'o Object<'a>,
    units: Units,
    quirks: &mut Quirks,
) -> Result<(), DecodeError> {
    let id = DataObjectId::known(object.id);
    let name = root_name(object.id);
    match object.id {
        // The scan has made sure that 00 comes first.
        0 => payload_format(object, quirks)?,
        1 => draft.initiation = Some(value(object, name, Initiation::parse)?),
        2..=25 => {
            let value = value(object, name, Value::parse)?;
            draft.accounts.push(MerchantAccount::Network { id, value });
        }
        26..=51 => {
            let template = template(object, units, quirks)?;
            draft
                .accounts
                .push(MerchantAccount::Template { id, template });
        }
        52 => draft.merchant_category = Some(value(object, name, MerchantCategoryCode::parse)?),
        53 => draft.currency = Some(value(object, name, CurrencyCode::parse)?),
        54 => draft.amount = Some(value(object, name, Amount::parse)?),
        55 => draft.tip = Some(object),
        56 => draft.fixed_fee = Some(object),
        57 => draft.percentage_fee = Some(object),
        58 => draft.country = Some(value(object, name, CountryCode::parse)?),
        59 => draft.merchant_name = Some(value(object, name, MerchantName::parse)?),
        60 => draft.merchant_city = Some(value(object, name, MerchantCity::parse)?),
        61 => draft.postal_code = Some(value(object, name, PostalCode::parse)?),
        62 => draft.additional_data = Some(additional_data(object, units, quirks)?),
        // Checked before any value is read.
        63 => {}
        64 => draft.language = Some(language(object, units, quirks)?),
        65..=79 => draft.rfu.push(Entry {
            id,
            value: value(object, name, Value::parse)?,
        }),
        _ => {
            let template = template(object, units, quirks)?;
            draft.unreserved.push(UnreservedTemplate { id, template });
        }
    }
    Ok(())
}

/// Parses an object's value, or says which object is wrong and why.
fn value<T>(
    object: &Object<'_>,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, ValueError>,
) -> Result<T, DecodeError> {
    parse(object.value).map_err(|error| bad_field(object, format!("{name} {error}")))
}

fn bad_field(object: &Object<'_>, message: String) -> DecodeError {
    let message = format!("object {:02}: {message}", object.id);
    DecodeError::new(ErrorCode::BadField, object.value_position, message)
}

fn payload_format(object: &Object<'_>, quirks: &mut Quirks) -> Result<(), DecodeError> {
    match object.value {
        PAYLOAD_FORMAT_INDICATOR => Ok(()),
        "02" => {
            quirks.forgive(Quirk::PayloadFormat02, || {
                let message =
                    "payload format indicator must be 01, found 02; lenient mode accepts it";
                bad_field(object, message.to_owned())
            });
            Ok(())
        }
        other => Err(bad_field(
            object,
            format!("payload format indicator must be 01, found {other:?}"),
        )),
    }
}

/// A template of 26–51 or 80–99: a GUID in 00, then the network's own sub-objects.
fn template(
    object: &Object<'_>,
    units: Units,
    quirks: &mut Quirks,
) -> Result<Template, DecodeError> {
    let mut guid = None;
    let mut entries = Vec::new();
    for sub in sub_objects(object, units, quirks) {
        let sub = sub?;
        if sub.id == 0 {
            guid = Some(value(&sub, "globally unique identifier", Guid::parse)?);
        } else {
            let value = value(&sub, "template value", Value::parse)?;
            entries.push(Entry {
                id: DataObjectId::known(sub.id),
                value,
            });
        }
    }
    let Some(guid) = guid else {
        let message = format!(
            "{} has no globally unique identifier (00)",
            root_name(object.id)
        );
        return Err(bad_field(object, message));
    };
    entries.sort_by_key(|entry| entry.id);
    Ok(Template { guid, entries })
}

fn additional_data(
    object: &Object<'_>,
    units: Units,
    quirks: &mut Quirks,
) -> Result<AdditionalData, DecodeError> {
    let mut data = AdditionalData::default();
    for sub in sub_objects(object, units, quirks) {
        let sub = sub?;
        let index = usize::from(sub.id).wrapping_sub(1);
        if let (Some(name), Some(slot)) = (LABEL_NAMES.get(index), data.label_mut(sub.id)) {
            *slot = Some(value(&sub, name, Label::parse)?);
        } else if sub.id == 9 {
            let request = value(&sub, "consumer data request", ConsumerDataRequest::parse)?;
            data.consumer_data_request = Some(request);
        } else {
            let value = value(&sub, "additional data value", Value::parse)?;
            data.other.push(Entry {
                id: DataObjectId::known(sub.id),
                value,
            });
        }
    }
    data.other.sort_by_key(|entry| entry.id);
    Ok(data)
}

fn language(
    object: &Object<'_>,
    units: Units,
    quirks: &mut Quirks,
) -> Result<LanguageTemplate, DecodeError> {
    let (mut language, mut merchant_name, mut merchant_city) = (None, None, None);
    let mut other = Vec::new();
    for sub in sub_objects(object, units, quirks) {
        let sub = sub?;
        match sub.id {
            0 => language = Some(value(&sub, "language preference", LanguageCode::parse)?),
            1 => merchant_name = Some(value(&sub, "alternate merchant name", MerchantName::parse)?),
            2 => merchant_city = Some(value(&sub, "alternate merchant city", MerchantCity::parse)?),
            id => {
                let value = value(&sub, "language template value", Value::parse)?;
                other.push(Entry {
                    id: DataObjectId::known(id),
                    value,
                });
            }
        }
    }
    other.sort_by_key(|entry| entry.id);
    match (language, merchant_name) {
        (Some(language), Some(merchant_name)) => Ok(LanguageTemplate {
            language,
            merchant_name,
            merchant_city,
            other,
        }),
        _ => {
            let message = "the language template needs a language (00) and a merchant name (01)";
            Err(bad_field(object, message.to_owned()))
        }
    }
}

impl Draft<'_, '_> {
    fn finish(self, objects: &[Object<'_>]) -> Result<Payload, DecodeError> {
        let missing = |id: u8| {
            let message = format!("the {} ({id:02}) is mandatory", root_name(id));
            DecodeError::new(
                ErrorCode::MissingField,
                missing_position(objects, id),
                message,
            )
        };
        if self.accounts.is_empty() {
            let message = "at least one merchant account (02-51) is mandatory";
            return Err(DecodeError::new(
                ErrorCode::MissingField,
                missing_position(objects, 1),
                message,
            ));
        }
        let tip = tip(self.tip, self.fixed_fee, self.percentage_fee)?;
        Ok(Payload {
            initiation: self.initiation,
            merchant_accounts: self.accounts,
            merchant_category: self.merchant_category.ok_or_else(|| missing(52))?,
            currency: self.currency.ok_or_else(|| missing(53))?,
            amount: self.amount,
            tip,
            country: self.country.ok_or_else(|| missing(58))?,
            merchant_name: self.merchant_name.ok_or_else(|| missing(59))?,
            merchant_city: self.merchant_city.ok_or_else(|| missing(60))?,
            postal_code: self.postal_code,
            additional_data: self.additional_data,
            language: self.language,
            rfu: self.rfu,
            unreserved: self.unreserved,
        })
    }
}

/// Where a missing object belongs: at the first object with a higher ID (at worst the CRC).
fn missing_position(objects: &[Object<'_>], id: u8) -> usize {
    let after = objects.iter().find(|object| object.id > id);
    after.or(objects.last()).map_or(0, |object| object.position)
}

/// The tip or convenience indicator (55) and the fee it announces: 56 for `02`, 57 for `03`,
/// neither for `01`; no fee without an indicator.
fn tip(
    indicator: Option<&Object<'_>>,
    fixed: Option<&Object<'_>>,
    percentage: Option<&Object<'_>>,
) -> Result<Option<Tip>, DecodeError> {
    let Some(indicator) = indicator else {
        // Without its indicator, a fee cannot be known to apply.
        return match fixed.or(percentage) {
            Some(fee) => {
                let name = root_name(fee.id);
                let message = format!("{name} needs a tip or convenience indicator (55)");
                Err(bad_field(fee, message))
            }
            None => Ok(None),
        };
    };
    let announced = match indicator.value {
        "01" => None,
        "02" => Some(56),
        "03" => Some(57),
        other => {
            let message =
                format!("tip or convenience indicator must be 01, 02 or 03, not {other:?}");
            return Err(bad_field(indicator, message));
        }
    };
    for fee in [fixed, percentage].into_iter().flatten() {
        if Some(fee.id) != announced {
            let name = root_name(fee.id);
            let message = format!("{name} does not go with indicator {}", indicator.value);
            return Err(bad_field(fee, message));
        }
    }
    // Only the announced fee is left, if any.
    match (announced, fixed, percentage) {
        (None, ..) => Ok(Some(Tip::Prompt)),
        (Some(_), Some(fee), _) => Ok(Some(Tip::FixedFee(value(
            fee,
            root_name(56),
            Amount::parse,
        )?))),
        (Some(_), _, Some(fee)) => Ok(Some(Tip::PercentageFee(value(
            fee,
            root_name(57),
            Percentage::parse,
        )?))),
        (Some(fee_id), None, None) => {
            let message = format!(
                "indicator {} needs a {} ({fee_id})",
                indicator.value,
                root_name(fee_id)
            );
            Err(bad_field(indicator, message))
        }
    }
}
