//! The decoder on arbitrary input: `decode`, `decode_lenient` and `fields` in both modes must
//! never panic, must agree with one another, and whatever decodes must encode and decode back
//! to the same model.
//!
//! Each input runs twice: as it is, and, when it ends with `6304` and four characters, with
//! those four replaced by the right CRC. Without that second run nearly every mutation of a
//! valid payload would stop at the CRC check, and the reading of values, templates, the model
//! and the round trip would hardly be fuzzed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use zhifu_codes::{
    DecodeError, ErrorCode, FieldValue, Mode, Quirk, crc16, decode, decode_lenient, encode, fields,
};

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 becomes U+FFFD: every input exercises the decoder.
    let input = String::from_utf8_lossy(data);
    check(&input);
    if let Some(fixed) = with_right_crc(&input) {
        if fixed != input {
            check(&fixed);
        }
    }
});

/// `input` with its last four characters (before trailing whitespace) replaced by the CRC of
/// what precedes them, when that ends with `6304`. Lowercase hex if the input had lowercase.
fn with_right_crc(input: &str) -> Option<String> {
    let body = input.trim_end();
    let (cut, _) = body.char_indices().rev().nth(3)?;
    let (head, found) = body.split_at(cut);
    if !head.ends_with("6304") {
        return None;
    }
    let crc = crc16(head.as_bytes());
    let crc = if found.bytes().any(|byte| byte.is_ascii_lowercase()) {
        format!("{crc:04x}")
    } else {
        format!("{crc:04X}")
    };
    Some(format!("{head}{crc}{}", &input[body.len()..]))
}

fn check(input: &str) {
    let strict = decode(input);
    let lenient = decode_lenient(input);
    let strict_fields = fields(input, Mode::Strict);
    let lenient_fields = fields(input, Mode::Lenient);
    let chars = input.chars().count();

    // `fields` decodes exactly as `decode` and `decode_lenient` do.
    assert_eq!(
        strict_fields.as_ref().err(),
        strict.as_ref().err(),
        "{input:?}"
    );
    assert_eq!(
        lenient_fields.as_ref().err(),
        lenient.as_ref().err(),
        "{input:?}"
    );
    // An error points inside the input (or just past its end).
    for error in [strict.as_ref().err(), lenient.as_ref().err()]
        .into_iter()
        .flatten()
    {
        assert!(error.position <= chars, "{input:?}: {error}");
    }

    match (&strict, &lenient) {
        (Ok(payload), Ok(lenient)) => {
            // Strict accepts: lenient reads the same model and forgave nothing, at most warned.
            assert_eq!(&lenient.payload, payload, "{input:?}");
            assert!(
                lenient.quirks.iter().all(|quirk| quirk.is_warning()),
                "{input:?}: strict accepted, lenient forgave {:?}",
                lenient.quirks
            );
            assert_eq!(strict_fields.as_ref().unwrap().quirks, lenient.quirks);
            // With nothing to warn about the payload is canonical: it encodes to itself.
            if lenient.quirks.is_empty() {
                assert_eq!(encode(payload).as_deref(), Ok(input), "not canonical");
            }
        }
        (Ok(_), Err(error)) => panic!("{input:?}: strict accepts, lenient rejects: {error}"),
        (Err(strict), Ok(lenient)) => {
            // Lenient forgave something strict refuses, and strict's code is that quirk's.
            assert!(
                consistent(strict, &lenient.quirks),
                "{input:?}: strict {strict}, lenient forgave {:?}",
                lenient.quirks
            );
        }
        (Err(strict), Err(lenient)) => {
            // Both reject: the same problem, in the same place.
            assert_eq!(
                (strict.code, strict.position),
                (lenient.code, lenient.position),
                "{input:?}: strict {strict}, lenient {lenient}"
            );
        }
    }

    if let Ok(lenient) = &lenient {
        round_trip(input, &lenient.payload);
    }
    if let Ok(tree) = &lenient_fields {
        let ids: Vec<&str> = tree.fields.iter().map(|field| field.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"00"), "{input:?}");
        assert_eq!(ids.last(), Some(&"63"), "{input:?}");
        for field in &tree.fields {
            if let FieldValue::Template(subs) = &field.value {
                assert!(
                    !subs.is_empty(),
                    "{input:?}: template {} is empty",
                    field.id
                );
            }
        }
    }
}

/// Whether strict mode's error fits the quirks lenient mode forgave (see `Quirk`'s docs): each
/// forgiven quirk has its strict code, and with UTF-8 byte lengths strict mode reports whatever
/// reading the lengths as characters runs into.
fn consistent(strict: &DecodeError, quirks: &[Quirk]) -> bool {
    let forgiven: Vec<Quirk> = quirks.iter().copied().filter(|q| !q.is_warning()).collect();
    if forgiven.is_empty() {
        return false;
    }
    if forgiven.contains(&Quirk::Utf8ByteLengths) {
        return !matches!(strict.code, ErrorCode::Empty | ErrorCode::TooLong);
    }
    forgiven.iter().any(|quirk| {
        strict.code
            == match quirk {
                Quirk::PayloadFormat02 => ErrorCode::BadField,
                Quirk::LowercaseCrc => ErrorCode::BadCrc,
                Quirk::TrailingWhitespace => ErrorCode::CrcNotLast,
                Quirk::Utf8ByteLengths | Quirk::IdsOutOfOrder => unreachable!(),
            }
    })
}

/// A decoded model always encodes, to a canonical payload that strict mode reads back as the
/// same model and that encodes to the same text again.
fn round_trip(input: &str, payload: &zhifu_codes::Payload) {
    let text = encode(payload).unwrap_or_else(|error| panic!("{input:?}: encode: {error}"));
    let again = decode_lenient(&text)
        .unwrap_or_else(|error| panic!("{input:?}: re-encoded {text:?}: {error}"));
    assert_eq!(&again.payload, payload, "{input:?} re-encoded as {text:?}");
    assert!(
        again.quirks.is_empty(),
        "{input:?}: {text:?} has {:?}",
        again.quirks
    );
    assert_eq!(decode(&text).as_ref(), Ok(payload), "{input:?}: {text:?}");
    assert_eq!(
        encode(&again.payload).as_deref(),
        Ok(text.as_str()),
        "{input:?}"
    );
}
