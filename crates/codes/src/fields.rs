//! The raw field tree of a payload, for tools that show what a code holds (the CLI prints it
//! as JSON): every root object in payload order, 00 and 63 included, with the templates (26–51,
//! 62, 64, 80–99) split into their sub-objects. Values are exactly as in the payload.

use crate::decode::{Mode, decode_in};
use crate::error::{DecodeError, Quirk};
use crate::model::is_template;
use crate::tlv::{OBJECTS_MAX, Object, Scanner, Units};

/// One root object.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Field {
    /// Two digits: `"59"`.
    pub id: String,
    pub value: FieldValue,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub enum FieldValue {
    Text(String),
    /// `(sub-ID, value)` in payload order.
    Template(Vec<(String, String)>),
}

/// The fields of a valid payload and the quirks met reading it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Fields {
    pub fields: Vec<Field>,
    /// In strict mode, only warnings ([`Quirk::is_warning`]).
    pub quirks: Vec<Quirk>,
}

/// Decodes `input` in `mode`, exactly as [`decode`](crate::decode) or
/// [`decode_lenient`](crate::decode_lenient) do, and returns its raw fields. An invalid
/// payload gives the same error as those.
pub fn fields(input: &str, mode: Mode) -> Result<Fields, DecodeError> {
    let decoded = decode_in(input, mode)?;
    let fields = decoded
        .objects
        .iter()
        .map(|object| field(object, decoded.units))
        .collect();
    Ok(Fields {
        fields,
        quirks: decoded.quirks,
    })
}

fn field(object: &Object<'_>, units: Units) -> Field {
    let id = format!("{:02}", object.id);
    if !is_template(object.id) {
        return Field {
            id,
            value: FieldValue::Text(object.value.to_owned()),
        };
    }
    // The decode has already checked this template's syntax: the scan cannot fail here.
    let mut scanner = Scanner::new(object.value, object.value_position, units);
    let mut subs = Vec::new();
    for _ in 0..OBJECTS_MAX {
        let Some(Ok(sub)) = scanner.next_object() else {
            break;
        };
        subs.push((format!("{:02}", sub.id), sub.value.to_owned()));
    }
    Field {
        id,
        value: FieldValue::Template(subs),
    }
}
