//! Unit tests of the codec, one behaviour each; property tests (round trips, no panic on any
//! input); and the corpus of real-world payloads in `tests/data/corpus.tsv`.
//!
//! Test payloads are written with placeholders (see [`render`]): `$0` marks the character an
//! error must point at, `{CRC}` stands for the correct CRC of what precedes it.

use proptest::prelude::*;

use crate::encode::encode_in;
use crate::tlv::Units;
use crate::*;

/// The mandatory objects of a small static code, in pieces: `HEAD ZHIFU MIDDLE TAIL`.
const HEAD: &str = "000201010211";
/// zhifu's template in 26, paying merchant 10023.
const ZHIFU: &str = "26220008cn.zhifu0106M10023";
/// MCC 5812, currency 156.
const MIDDLE: &str = "520458125303156";
const TAIL: &str = "5802CN5910Noodle Bar6008Shanghai";

/// EMV's specimen payload (EMV QRCPS MPM, also in many implementations' tests): dynamic, two
/// templates, a tip prompt, additional data, Chinese in the language template, 91 unreserved.
/// Its objects are not in ascending order (64 comes before 54).
const EMVCO_SPECIMEN: &str = "00020101021229300012D156000000000510A93FO3230Q31280012D1560000000\
    1030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.\
    7253031565502016233030412340603***0708A60086670902ME91320016A011223344998877070812345678630\
    4A13A";

/// Brazil's central bank PIX example (Manual de Padrões para Iniciação do Pix).
const PIX_EXAMPLE: &str = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-42665544000052\
    04000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";

/// Expands a test payload: `{HEAD}`, `{ZHIFU}`, `{MIDDLE}`, `{TAIL}` become those constants
/// (`{BODY}` all four); `$0` is removed and its character offset returned; `{CRC}` becomes
/// the CRC of everything before it, `{crc}` the same in lowercase, `{BAD}` a wrong one.
fn render(spec: &str) -> (String, Option<usize>) {
    let spec = spec
        .replace("{BODY}", "{HEAD}{ZHIFU}{MIDDLE}{TAIL}")
        .replace("{HEAD}", HEAD)
        .replace("{ZHIFU}", ZHIFU)
        .replace("{MIDDLE}", MIDDLE)
        .replace("{TAIL}", TAIL);
    let mut out = String::new();
    let mut marker = None;
    let mut rest = spec.as_str();
    while let Some(start) = rest.find(['$', '{']) {
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let crc = crc16(out.as_bytes());
        let (replacement, skip) = match rest.get(..5).unwrap_or(rest) {
            "{CRC}" => (format!("{crc:04X}"), 5),
            "{crc}" => (format!("{crc:04x}"), 5),
            "{BAD}" => (format!("{:04X}", crc ^ 1), 5),
            _ if rest.starts_with("$0") => {
                marker = Some(out.chars().count());
                (String::new(), 2)
            }
            _ => (rest[..1].to_owned(), 1),
        };
        out.push_str(&replacement);
        rest = &rest[skip..];
    }
    out.push_str(rest);
    (out, marker)
}

fn small_code() -> String {
    render("{BODY}6304{CRC}").0
}

fn summary(result: &Result<impl Sized, DecodeError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(error) => format!("{}@{}", error.code, error.position),
    }
}

/// Expects both modes to fail with `code` at the `$0` marker.
fn check_error(code: &str, spec: &str) {
    let (input, position) = render(spec);
    let expected = format!("{code}@{}", position.expect("the spec has a $0 marker"));
    assert_eq!(summary(&decode(&input)), expected, "strict, {input:?}");
    assert_eq!(
        summary(&decode_lenient(&input)),
        expected,
        "lenient, {input:?}"
    );
}

/// Expects strict mode to fail with `code` at `$0` (`None`: to accept), and lenient mode to
/// accept with exactly `quirks`; returns what lenient mode decoded.
fn check_quirks(code: Option<&str>, spec: &str, quirks: &[&str]) -> Payload {
    let (input, position) = render(spec);
    let strict = match (code, position) {
        (Some(code), Some(position)) => format!("{code}@{position}"),
        (Some(code), None) => code.to_owned(),
        (None, _) => "ok".to_owned(),
    };
    let got = summary(&decode(&input));
    let got = if position.is_none() {
        got.split('@').next().unwrap_or("").to_owned()
    } else {
        got
    };
    assert_eq!(got, strict, "strict, {input:?}");
    let lenient = decode_lenient(&input).unwrap_or_else(|error| panic!("{input:?}: {error}"));
    let names: Vec<&str> = lenient.quirks.iter().map(|quirk| quirk.as_str()).collect();
    assert_eq!(names, quirks, "lenient, {input:?}");
    lenient.payload
}

// ---------------------------------------------------------------------------------------------
// CRC

#[test]
fn crc_known_vectors() {
    assert_eq!(crc16(b"123456789"), 0x29B1);
    assert_eq!(crc16(b""), 0xFFFF);
    assert_eq!(
        crc16(EMVCO_SPECIMEN.trim_end_matches("A13A").as_bytes()),
        0xA13A
    );
    assert_eq!(
        crc16(PIX_EXAMPLE.trim_end_matches("1D3D").as_bytes()),
        0x1D3D
    );
    // A PromptPay sample (tanat44/useful-script): its CRC is right, but it has no name or city.
    let promptpay =
        "00020101021129370016A000000677010111011300669245317755802TH54076000.00530376463049B3B";
    assert_eq!(decode(promptpay).unwrap_err().code, ErrorCode::MissingField);
}

proptest! {
    #[test]
    fn crc_table_matches_the_bitwise_definition(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        prop_assert_eq!(crc16(&bytes), crate::crc::crc16_bitwise(&bytes));
    }
}

// ---------------------------------------------------------------------------------------------
// Real payloads

#[test]
fn emvco_specimen_decodes_with_character_lengths() {
    let payload = decode(EMVCO_SPECIMEN).unwrap();
    assert_eq!(payload.initiation, Some(Initiation::Dynamic));
    let guids: Vec<&str> = payload
        .merchant_accounts
        .iter()
        .filter_map(|account| account.template().map(|template| template.guid.as_str()))
        .collect();
    assert_eq!(guids, ["D15600000000", "D15600000001"]);
    assert_eq!(payload.amount.as_ref().map(Amount::as_str), Some("23.72"));
    assert_eq!(payload.tip, Some(Tip::Prompt));
    assert_eq!(payload.merchant_name.as_str(), "BEST TRANSPORT");
    let data = payload.additional_data.as_ref().unwrap();
    assert_eq!(data.store_label.as_ref().map(Label::as_str), Some("1234"));
    assert_eq!(data.customer_label.as_ref().map(Label::as_str), Some("***"));
    assert_eq!(
        data.terminal_label.as_ref().map(Label::as_str),
        Some("A6008667")
    );
    assert_eq!(
        data.consumer_data_request.as_ref().map(|r| r.as_str()),
        Some("ME")
    );
    let language = payload.language.as_ref().unwrap();
    assert_eq!(language.merchant_name.as_str(), "最佳运输");
    assert_eq!(
        language.merchant_city.as_ref().map(MerchantCity::as_str),
        Some("北京")
    );
    assert_eq!(payload.unreserved[0].id.get(), 91);
    assert_eq!(
        payload.unreserved[0].template.get(7).map(Value::as_str),
        Some("12345678")
    );
}

#[test]
fn emvco_specimen_is_out_of_order_and_reencodes_canonically() {
    let lenient = decode_lenient(EMVCO_SPECIMEN).unwrap();
    assert_eq!(lenient.quirks, [Quirk::IdsOutOfOrder]);
    let canonical = encode(&lenient.payload).unwrap();
    assert!(
        canonical.contains("520441115303156540523.725502015802CN"),
        "{canonical}"
    );
    assert_eq!(decode(&canonical).unwrap(), lenient.payload);
    assert_eq!(decode_lenient(&canonical).unwrap().quirks, []);
}

#[test]
fn pix_example_decodes_and_reencodes_to_the_same_bytes() {
    let payload = decode(PIX_EXAMPLE).unwrap();
    let (id, template) = payload.accounts_for("BR.GOV.BCB.PIX").next().unwrap();
    assert_eq!(id.get(), 26);
    assert_eq!(
        template.get(1).unwrap().as_str(),
        "123e4567-e12b-12d1-a456-426655440000"
    );
    assert_eq!(payload.merchant_name.as_str(), "Fulano de Tal");
    assert_eq!(
        payload
            .additional_data
            .unwrap()
            .reference_label
            .unwrap()
            .as_str(),
        "***"
    );
    assert_eq!(encode(&decode(PIX_EXAMPLE).unwrap()).unwrap(), PIX_EXAMPLE);
}

// ---------------------------------------------------------------------------------------------
// Errors: each code, with the character it points at.

/// `(code, payload)`: every error code with the character it points at (`$0`).
const ERROR_CASES: &[(&str, &str)] = &[
    ("EMPTY", "$0"),
    ("EMPTY", "$0 \r\n"),
    ("BAD_ID", "000201$0xy020011"),
    ("BAD_ID", "000201$0x"),
    ("BAD_LENGTH", "00020101$01x11"),
    ("BAD_LENGTH", "00020101$00011"),
    ("TRUNCATED", "000201$05920Noodle Bar"),
    ("TRUNCATED", "000201$059"),
    ("TRUNCATED", "000201$05"),
    ("DUPLICATE_ID", "{BODY}$05802CN6304{CRC}"),
    (
        "DUPLICATE_ID",
        "{HEAD}$0000201{ZHIFU}{MIDDLE}{TAIL}6304{CRC}",
    ),
    ("DUPLICATE_ID", "{BODY}62140503abc$00503def6304{CRC}"),
    (
        "FORMAT_NOT_FIRST",
        "$0010211000201{ZHIFU}{MIDDLE}{TAIL}6304{CRC}",
    ),
    ("FORMAT_NOT_FIRST", "$0010211{ZHIFU}{MIDDLE}{TAIL}6304{CRC}"),
    ("FORMAT_NOT_FIRST", "$063041D3D"),
    ("CRC_NOT_LAST", "{BODY}$0"),
    ("CRC_NOT_LAST", "{BODY}6304{CRC}$05802CN"),
    ("BAD_CRC", "{BODY}6304$0{BAD}"),
    ("BAD_CRC", "{BODY}6304$0XYZW"),
    ("BAD_CRC", "{BODY}6303$0ABC"),
    ("MISSING_FIELD", "{HEAD}$0{MIDDLE}{TAIL}6304{CRC}"),
    ("MISSING_FIELD", "{HEAD}{ZHIFU}$05303156{TAIL}6304{CRC}"),
    (
        "MISSING_FIELD",
        "{HEAD}{ZHIFU}{MIDDLE}5802CN5910Noodle Bar$06304{CRC}",
    ),
    ("BAD_FIELD", "0002$003010211{ZHIFU}{MIDDLE}{TAIL}6304{CRC}"),
    ("BAD_FIELD", "0002010102$013{ZHIFU}{MIDDLE}{TAIL}6304{CRC}"),
    ("BAD_FIELD", "{HEAD}{ZHIFU}5204$058A25303156{TAIL}6304{CRC}"),
    ("BAD_FIELD", "{HEAD}{ZHIFU}520458125303$0CNY{TAIL}6304{CRC}"),
    ("BAD_FIELD", "{BODY}5404$00.006304{CRC}"),
    ("BAD_FIELD", "{BODY}5405$01,0006304{CRC}"),
    (
        "BAD_FIELD",
        "{HEAD}{ZHIFU}{MIDDLE}5802$0C15910Noodle Bar6008Shanghai6304{CRC}",
    ),
    (
        "BAD_FIELD",
        "{HEAD}{ZHIFU}{MIDDLE}5802CN5926$0ABCDEFGHIJKLMNOPQRSTUVWXYZ6304{CRC}",
    ),
    ("BAD_FIELD", "{BODY}5502$0026304{CRC}"),
    ("BAD_FIELD", "{BODY}5603$01.56304{CRC}"),
    ("BAD_FIELD", "{BODY}5502015603$01.56304{CRC}"),
    ("BAD_FIELD", "{BODY}5502035703$01006304{CRC}"),
    ("BAD_FIELD", "{BODY}5502$0046304{CRC}"),
    ("BAD_FIELD", "{BODY}62050901$0X6304{CRC}"),
    ("BAD_FIELD", "{HEAD}2610$00106M10023{MIDDLE}{TAIL}6304{CRC}"),
    ("BAD_FIELD", "{BODY}6406$00002ZH6304{CRC}"),
    ("BAD_TEMPLATE", "{BODY}6205$0ABCDE6304{CRC}"),
    ("BAD_TEMPLATE", "{BODY}6207$00520abc6304{CRC}"),
    (
        "BAD_TEMPLATE",
        "{HEAD}2609$00009cn.zh{MIDDLE}{TAIL}6304{CRC}",
    ),
];

#[test]
fn every_error_is_reported_with_its_code_and_position() {
    for (code, spec) in ERROR_CASES {
        check_error(code, spec);
    }
    check_error("TOO_LONG", &format!("{}$0{}", "0".repeat(512), "0"));
}

#[test]
fn every_error_code_has_a_case() {
    for code in ErrorCode::ALL
        .iter()
        .filter(|&&code| code != ErrorCode::TooLong)
    {
        let tested = ERROR_CASES.iter().any(|(name, _)| *name == code.as_str());
        assert!(tested, "{code} has no case");
    }
}

#[test]
fn errors_explain_themselves() {
    let error = decode(&render("{BODY}6304{BAD}").0).unwrap_err();
    assert_eq!(
        error.to_string(),
        "BAD_CRC at character 89: the CRC is 6100 but the payload's is 6101"
    );
    let input = render("{HEAD}{ZHIFU}{MIDDLE}5802CN5926ABCDEFGHIJKLMNOPQRSTUVWXYZ6304{CRC}").0;
    let error = decode(&input).unwrap_err();
    assert_eq!(
        error.message,
        "object 59: merchant name is longer than 25 characters"
    );
}

#[test]
fn the_crc_is_checked_before_any_value() {
    // 53 is invalid, and the CRC is wrong: the CRC wins, since the bytes cannot be trusted.
    let input = render("{HEAD}{ZHIFU}520458125303CNY{TAIL}6304{BAD}").0;
    assert_eq!(decode(&input).unwrap_err().code, ErrorCode::BadCrc);
}

// ---------------------------------------------------------------------------------------------
// Quirks: lenient mode forgives each one (and says so), strict mode does not.

#[test]
fn payload_format_02() {
    let spec = "0002$002010211{ZHIFU}{MIDDLE}{TAIL}6304{CRC}";
    let payload = check_quirks(Some("BAD_FIELD"), spec, &["PAYLOAD_FORMAT_02"]);
    assert_eq!(payload, decode(&small_code()).unwrap());
}

#[test]
fn lowercase_crc() {
    let spec = EMVCO_SPECIMEN.replace("6304A13A", "6304$0a13a");
    let payload = check_quirks(
        Some("BAD_CRC"),
        &spec,
        &["LOWERCASE_CRC", "IDS_OUT_OF_ORDER"],
    );
    assert_eq!(payload, decode(EMVCO_SPECIMEN).unwrap());
    // Lenient mode still rejects a wrong CRC, whatever its case.
    check_error("BAD_CRC", &EMVCO_SPECIMEN.replace("6304A13A", "6304$0a13b"));
}

#[test]
fn trailing_whitespace() {
    let spec = "{BODY}6304{CRC}$0 \r\n";
    let payload = check_quirks(Some("CRC_NOT_LAST"), spec, &["TRAILING_WHITESPACE"]);
    assert_eq!(payload, decode(&small_code()).unwrap());
}

#[test]
fn ids_out_of_order_is_a_warning() {
    let spec = "{HEAD}{ZHIFU}{TAIL}{MIDDLE}62140703abc0503def6304{CRC}";
    let payload = check_quirks(None, spec, &["IDS_OUT_OF_ORDER"]);
    let input = render(spec).0;
    assert_eq!(
        fields(&input, Mode::Strict).unwrap().quirks,
        [Quirk::IdsOutOfOrder]
    );
    let data = payload.additional_data.unwrap();
    assert_eq!(data.reference_label.unwrap().as_str(), "def");
    assert_eq!(data.terminal_label.unwrap().as_str(), "abc");
}

#[test]
fn utf8_byte_lengths() {
    let name = MerchantName::parse("老王面馆").unwrap();
    let city = MerchantCity::parse("上海").unwrap();
    let mut model = decode(&small_code()).unwrap();
    model.merchant_name = name;
    model.merchant_city = city;
    let bytes = encode_in(&model, Units::Utf8Bytes).unwrap();
    assert!(bytes.contains("5912老王面馆6006上海"), "{bytes}");
    let error = decode(&bytes).unwrap_err();
    assert!(error.message.ends_with("lenient mode accepts"), "{error}");
    let payload = check_quirks(Some(error.code.as_str()), &bytes, &["UTF8_BYTE_LENGTHS"]);
    assert_eq!(payload, model);
    // The same model with character lengths, as EMV says.
    assert!(encode(&model).unwrap().contains("5904老王面馆6002上海"));
}

#[test]
fn quirks_combine_and_come_in_a_fixed_order() {
    let spec = "000202010211{ZHIFU}{TAIL}{MIDDLE}6304{crc}\n";
    let (input, _) = render(spec);
    assert!(
        input.ends_with("6304c58e\n"),
        "a CRC with letters, to write them in lowercase"
    );
    let lenient = decode_lenient(&input).unwrap();
    let names: Vec<&str> = lenient.quirks.iter().map(|quirk| quirk.as_str()).collect();
    assert_eq!(
        names,
        [
            "PAYLOAD_FORMAT_02",
            "LOWERCASE_CRC",
            "IDS_OUT_OF_ORDER",
            "TRAILING_WHITESPACE"
        ]
    );
}

/// Strict mode reports a quirk only when nothing worse is wrong, so a payload that both
/// modes reject gets the same code in both.
#[test]
fn strict_reports_real_problems_before_quirks() {
    let no_city = "000202010211{ZHIFU}{MIDDLE}5802CN5910Noodle Bar$06304{CRC}";
    check_error("MISSING_FIELD", no_city);
    check_error("BAD_ID", "$0xyz\n");
    let (input, _) = render("{BODY}6304{CRC}\n");
    assert_eq!(summary(&decode(&input)), "CRC_NOT_LAST@93");
    // An ideographic space is whitespace too, and no sign of UTF-8 byte lengths.
    let error = decode(&format!("{}\u{3000}", small_code())).unwrap_err();
    assert!(!error.message.contains("UTF-8"), "{error}");
}

#[test]
fn only_ids_out_of_order_is_a_warning() {
    let warnings: Vec<Quirk> = Quirk::ALL
        .iter()
        .copied()
        .filter(|q| q.is_warning())
        .collect();
    assert_eq!(warnings, [Quirk::IdsOutOfOrder]);
    assert_eq!(Quirk::parse("LOWERCASE_CRC"), Some(Quirk::LowercaseCrc));
    assert_eq!(ErrorCode::parse("BAD_CRC"), Some(ErrorCode::BadCrc));
}

// ---------------------------------------------------------------------------------------------
// Values

#[test]
fn amounts_parse_as_emv_writes_them() {
    for valid in [
        "1",
        "100",
        "100.",
        "99.5",
        "0.01",
        "1234567890.12",
        "0000000000001",
    ] {
        assert!(Amount::parse(valid).is_ok(), "{valid}");
    }
    for invalid in [
        "",
        "0",
        "0.00",
        ".5",
        "1.2.3",
        "1,000",
        "-1",
        "+1",
        "1e3",
        "12345678901234",
    ] {
        assert!(Amount::parse(invalid).is_err(), "{invalid:?}");
    }
}

#[test]
fn amounts_convert_to_and_from_minor_units() {
    let minor = |text: &str, exponent: u8| Amount::parse(text).unwrap().minor_units(exponent);
    assert_eq!(minor("12.34", 2), Some(1234));
    assert_eq!(minor("12.3", 2), Some(1230));
    assert_eq!(minor("100.", 2), Some(10_000));
    assert_eq!(minor("12.340", 2), Some(1234));
    assert_eq!(minor("12", 0), Some(12));
    assert_eq!(minor("12.5", 0), None);
    assert_eq!(minor("12.345", 2), None);
    assert_eq!(minor("9999999999999", 2), Some(999_999_999_999_900));
    assert_eq!(minor("9999999999999", 19), None);
    let text = |amount_minor: u64, exponent: u8| {
        Amount::from_minor_units(amount_minor, exponent).map(|amount| amount.as_str().to_owned())
    };
    assert_eq!(text(1234, 2).unwrap(), "12.34");
    assert_eq!(text(5, 2).unwrap(), "0.05");
    assert_eq!(text(100, 0).unwrap(), "100");
    assert_eq!(text(5, 3).unwrap(), "0.005");
    assert!(text(0, 2).is_err());
    assert!(text(u64::MAX, 2).is_err(), "over 13 characters");
}

#[test]
fn other_values() {
    assert!(Percentage::parse("3.5").is_ok() && Percentage::parse("99.99").is_ok());
    assert!(Percentage::parse("100").is_err() && Percentage::parse("0").is_err());
    assert!(ConsumerDataRequest::parse("AME").is_ok() && ConsumerDataRequest::parse("E").is_ok());
    for invalid in ["", "AA", "X", "AMEM", "a"] {
        assert!(ConsumerDataRequest::parse(invalid).is_err(), "{invalid:?}");
    }
    assert_eq!(
        MerchantName::parse("老王面馆老王面馆老王面馆老王面馆老王面馆老王面馆老").map(|_| ()),
        Ok(())
    );
    assert_eq!(
        MerchantName::parse(&"x".repeat(26)),
        Err(ValueError::TooLong { chars_max: 25 })
    );
    assert_eq!(
        MerchantName::parse("Bar\n"),
        Err(ValueError::ControlCharacter)
    );
    assert_eq!(MerchantName::parse(""), Err(ValueError::Empty));
    assert_eq!(DataObjectId::parse("05").map(DataObjectId::get), Some(5));
    for invalid in ["5", "1a", "100", "", "٠٥"] {
        assert_eq!(DataObjectId::parse(invalid), None, "{invalid:?}");
    }
    assert_eq!(DataObjectId::new(7).unwrap().to_string(), "07");
    assert_eq!(DataObjectId::new(100), None);
    assert!(CountryCode::parse("CN").is_ok() && CountryCode::parse("C1").is_err());
    assert!(CurrencyCode::parse("156").is_ok() && CurrencyCode::parse("15").is_err());
}

// ---------------------------------------------------------------------------------------------
// Encoding

fn noodle_bar() -> Payload {
    Payload::new(
        MerchantCategoryCode::parse("5812").unwrap(),
        CurrencyCode::parse("156").unwrap(),
        CountryCode::parse("CN").unwrap(),
        MerchantName::parse("Noodle Bar").unwrap(),
        MerchantCity::parse("Shanghai").unwrap(),
    )
}

fn zhifu_account(target: Target, order_reference: Option<&str>) -> ZhifuAccount {
    ZhifuAccount {
        guid: Guid::parse(ZHIFU_GUID).unwrap(),
        target,
        order_reference: order_reference.map(|reference| OrderReference::parse(reference).unwrap()),
    }
}

fn merchant(id: &str) -> Target {
    Target::Merchant(TargetId::parse(id).unwrap())
}

#[test]
fn encode_writes_canonical_order_and_the_crc() {
    let mut payload = noodle_bar();
    payload
        .add_zhifu(&zhifu_account(merchant("10023"), None))
        .unwrap();
    assert_eq!(encode(&payload).unwrap(), small_code());
    assert_eq!(small_code(), format!("{HEAD}{ZHIFU}{MIDDLE}{TAIL}63046101"));

    payload.initiation = Some(Initiation::Dynamic);
    payload.amount = Some(Amount::parse("23.50").unwrap());
    payload.tip = Some(Tip::PercentageFee(Percentage::parse("3").unwrap()));
    payload.additional_data = Some(AdditionalData {
        bill_number: Some(Label::parse("B-7").unwrap()),
        terminal_label: Some(Label::parse("T1").unwrap()),
        other: vec![Entry {
            id: DataObjectId::new(50).unwrap(),
            value: Value::parse("x").unwrap(),
        }],
        ..AdditionalData::default()
    });
    let expected = format!(
        "000201010212{ZHIFU}{MIDDLE}540523.50550203570135802CN5910Noodle Bar6008Shanghai\
         62180103B-70702T15001x6304{{CRC}}"
    );
    assert_eq!(encode(&payload).unwrap(), render(&expected).0);
}

#[test]
fn encode_rejects_models_that_do_not_fit() {
    let path = |payload: &Payload| encode(payload).unwrap_err().path;
    let mut payload = noodle_bar();
    assert_eq!(path(&payload), "02-51", "no merchant account");

    let value = |text: &str| Value::parse(text).unwrap();
    let id = |id: u8| DataObjectId::new(id).unwrap();
    let mut template = Template::new(Guid::parse(ZHIFU_GUID).unwrap());
    template.entries = (1..=5)
        .map(|n| Entry {
            id: id(n),
            value: value(&"x".repeat(20)),
        })
        .collect();
    payload.merchant_accounts = vec![MerchantAccount::Template {
        id: id(26),
        template,
    }];
    assert_eq!(path(&payload), "26", "a template over 99 characters");

    let network = |n: u8| MerchantAccount::Network {
        id: id(n),
        value: value("1"),
    };
    payload.merchant_accounts = vec![network(15), network(15)];
    assert_eq!(path(&payload), "15", "an ID twice");
    payload.merchant_accounts = vec![network(30)];
    assert_eq!(path(&payload), "30", "a network value in a template ID");

    payload.merchant_accounts = vec![network(15)];
    payload.rfu = vec![Entry {
        id: id(80),
        value: value("1"),
    }];
    assert_eq!(path(&payload), "80", "RFU outside 65-79");
    payload.rfu.clear();
    payload.additional_data = Some(AdditionalData::default());
    assert_eq!(path(&payload), "62", "empty additional data");
    let other = vec![Entry {
        id: id(5),
        value: value("1"),
    }];
    payload.additional_data = Some(AdditionalData {
        other,
        ..AdditionalData::default()
    });
    assert_eq!(path(&payload), "62.05", "a raw copy of a named sub-ID");
    payload.additional_data = None;

    let big = Template {
        guid: Guid::parse(&"g".repeat(32)).unwrap(),
        entries: vec![Entry {
            id: id(1),
            value: value(&"v".repeat(50)),
        }],
    };
    payload.unreserved = (80..=85)
        .map(|n| UnreservedTemplate {
            id: id(n),
            template: big.clone(),
        })
        .collect();
    assert_eq!(path(&payload), "", "a payload over 512 characters");
}

#[test]
fn encoding_counts_characters() {
    let mut payload = noodle_bar();
    payload
        .add_network(
            DataObjectId::new(15).unwrap(),
            Value::parse("6230001").unwrap(),
        )
        .unwrap();
    payload.merchant_name = MerchantName::parse("老王面馆").unwrap();
    let text = encode(&payload).unwrap();
    assert!(text.contains("5904老王面馆"), "{text}");
    assert_eq!(decode(&text).unwrap(), payload);
}

// ---------------------------------------------------------------------------------------------
// zhifu's template and aggregated codes

#[test]
fn zhifu_template_layout() {
    let account = zhifu_account(
        Target::Person(TargetId::parse("88").unwrap()),
        Some("ORD-1"),
    );
    let template = account.template();
    assert_eq!(template.guid.as_str(), "cn.zhifu");
    assert_eq!(template.get(1).map(Value::as_str), Some("P88"));
    assert_eq!(template.get(2).map(Value::as_str), Some("ORD-1"));
    assert_eq!(ZhifuAccount::from_template(&template), Ok(account));

    let mut payload = noodle_bar();
    payload.initiation = Some(Initiation::Dynamic);
    payload
        .add_zhifu(&zhifu_account(merchant("10023"), Some("ORD-1")))
        .unwrap();
    assert!(
        encode(&payload)
            .unwrap()
            .contains("26310008cn.zhifu0106M100230205ORD-1")
    );
}

#[test]
fn zhifu_template_errors() {
    let mut template = Template::new(Guid::parse(ZHIFU_GUID).unwrap());
    assert!(ZhifuAccount::from_template(&template).is_err(), "no target");
    for bad in ["X123", "M", "P"] {
        template.entries = vec![Entry {
            id: DataObjectId::new(1).unwrap(),
            value: Value::parse(bad).unwrap(),
        }];
        assert!(ZhifuAccount::from_template(&template).is_err(), "{bad}");
    }
    let mut payload = noodle_bar();
    payload.add_template(template).unwrap();
    assert_eq!(payload.zhifu_accounts(ZHIFU_GUID).unwrap_err().path, "26");
}

/// An aggregated code (一码通): zhifu, another institution running zhifu, a third network's
/// template and UnionPay's primitive 15. Each wallet finds the part it understands.
#[test]
fn aggregated_code() {
    let mut payload = noodle_bar();
    let ours = zhifu_account(merchant("10023"), None);
    let theirs = ZhifuAccount {
        guid: Guid::parse("hk.example.pay").unwrap(),
        ..zhifu_account(merchant("7"), None)
    };
    let mut other = Template::new(Guid::parse("A000000677010111").unwrap());
    other.entries.push(Entry {
        id: DataObjectId::new(1).unwrap(),
        value: Value::parse("0066812223333").unwrap(),
    });
    assert_eq!(payload.add_zhifu(&ours).unwrap().get(), 26);
    assert_eq!(payload.add_zhifu(&theirs).unwrap().get(), 27);
    assert_eq!(payload.add_template(other).unwrap().get(), 28);
    let unionpay = DataObjectId::new(15).unwrap();
    payload
        .add_network(unionpay, Value::parse("6230001").unwrap())
        .unwrap();

    let decoded = decode(&encode(&payload).unwrap()).unwrap();
    assert_eq!(decoded, payload);
    assert_eq!(decoded.zhifu_accounts("CN.ZHIFU").unwrap(), [ours]);
    assert_eq!(decoded.zhifu_accounts("hk.example.pay").unwrap(), [theirs]);
    assert_eq!(decoded.zhifu_accounts("com.unknown").unwrap(), []);
    let ids: Vec<u8> = decoded
        .accounts_for("a000000677010111")
        .map(|(id, _)| id.get())
        .collect();
    assert_eq!(ids, [28]);
    assert!(matches!(
        decoded.account(unionpay),
        Some(MerchantAccount::Network { .. })
    ));
}

#[test]
fn account_slots_are_limited() {
    let mut payload = noodle_bar();
    let template = || Template::new(Guid::parse("x").unwrap());
    for expected in 26..=51 {
        assert_eq!(payload.add_template(template()).unwrap().get(), expected);
    }
    assert!(payload.add_template(template()).is_err());
    let id = |n: u8| DataObjectId::new(n).unwrap();
    assert!(
        payload
            .add_network(id(26), Value::parse("1").unwrap())
            .is_err()
    );
    payload
        .add_network(id(2), Value::parse("1").unwrap())
        .unwrap();
    assert!(
        payload
            .add_network(id(2), Value::parse("1").unwrap())
            .is_err()
    );
    assert_eq!(
        payload.merchant_accounts[0].id().get(),
        2,
        "kept in ID order"
    );
}

// ---------------------------------------------------------------------------------------------
// The raw field tree

#[test]
fn fields_of_the_emvco_specimen() {
    let tree = fields(EMVCO_SPECIMEN, Mode::Strict).unwrap();
    assert_eq!(tree.quirks, [Quirk::IdsOutOfOrder]);
    let ids: Vec<&str> = tree.fields.iter().map(|field| field.id.as_str()).collect();
    let expected = [
        "00", "01", "29", "31", "52", "58", "59", "60", "64", "54", "53", "55", "62", "91", "63",
    ];
    assert_eq!(ids, expected);
    let text = |value: &str| FieldValue::Text(value.to_owned());
    let template = |pairs: &[(&str, &str)]| {
        FieldValue::Template(
            pairs
                .iter()
                .map(|(id, value)| (id.to_string(), value.to_string()))
                .collect(),
        )
    };
    assert_eq!(tree.fields[0].value, text("01"));
    assert_eq!(
        tree.fields[8].value,
        template(&[("00", "ZH"), ("01", "最佳运输"), ("02", "北京")])
    );
    assert_eq!(tree.fields[9].value, text("23.72"));
    assert_eq!(tree.fields[14].value, text("A13A"));
    assert_eq!(
        fields("00", Mode::Lenient).unwrap_err(),
        decode("00").unwrap_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Properties

fn text(chars_max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9 .*é老王面馆北京-]{{1,{chars_max}}}"))
        .unwrap_or_else(|error| panic!("{error}"))
}

fn value(chars_max: usize) -> impl Strategy<Value = Value> {
    text(chars_max).prop_map(|text| Value::parse(&text).unwrap())
}

fn entries(
    ids: std::ops::RangeInclusive<u8>,
    count_max: usize,
) -> impl Strategy<Value = Vec<Entry>> {
    prop::collection::btree_map(ids, value(8), 0..=count_max).prop_map(|map| {
        map.into_iter()
            .map(|(id, value)| Entry {
                id: DataObjectId::new(id).unwrap(),
                value,
            })
            .collect()
    })
}

fn template() -> impl Strategy<Value = Template> {
    ("[a-zA-Z0-9.]{1,16}", entries(1..=99, 3)).prop_map(|(guid, entries)| Template {
        guid: Guid::parse(&guid).unwrap(),
        entries,
    })
}

fn accounts() -> impl Strategy<Value = Vec<MerchantAccount>> {
    prop::collection::btree_map(2u8..=51, (value(20), template()), 1..=3).prop_map(|map| {
        map.into_iter()
            .map(|(id, (value, template))| {
                let id = DataObjectId::new(id).unwrap();
                if id.get() <= 25 {
                    MerchantAccount::Network { id, value }
                } else {
                    MerchantAccount::Template { id, template }
                }
            })
            .collect()
    })
}

fn amount() -> impl Strategy<Value = Amount> {
    "[1-9][0-9]{0,6}(\\.[0-9]{0,2})?".prop_map(|text| Amount::parse(&text).unwrap())
}

fn tip() -> impl Strategy<Value = Tip> {
    prop_oneof![
        Just(Tip::Prompt),
        amount().prop_map(Tip::FixedFee),
        "[1-9](\\.[0-9])?".prop_map(|text| Tip::PercentageFee(Percentage::parse(&text).unwrap())),
    ]
}

fn additional_data() -> impl Strategy<Value = AdditionalData> {
    let label = || prop::option::of(text(6).prop_map(|text| Label::parse(&text).unwrap()));
    let request = prop::option::of(
        prop_oneof!["A", "ME", "AME"].prop_map(|text| ConsumerDataRequest::parse(&text).unwrap()),
    );
    (prop::array::uniform8(label()), request, entries(10..=99, 2))
        .prop_map(|(labels, consumer_data_request, other)| {
            let [
                bill_number,
                mobile_number,
                store_label,
                loyalty_number,
                reference_label,
                customer_label,
                terminal_label,
                purpose,
            ] = labels;
            AdditionalData {
                bill_number,
                mobile_number,
                store_label,
                loyalty_number,
                reference_label,
                customer_label,
                terminal_label,
                purpose,
                consumer_data_request,
                other,
            }
        })
        .prop_filter("62 has at least one sub-object", |data| {
            data.labels().iter().any(|(_, label)| label.is_some())
                || data.consumer_data_request.is_some()
                || !data.other.is_empty()
        })
}

fn language() -> impl Strategy<Value = LanguageTemplate> {
    (
        "[a-z]{2}",
        text(25),
        prop::option::of(text(15)),
        entries(3..=99, 2),
    )
        .prop_map(|(language, name, city, other)| LanguageTemplate {
            language: LanguageCode::parse(&language).unwrap(),
            merchant_name: MerchantName::parse(&name).unwrap(),
            merchant_city: city.map(|city| MerchantCity::parse(&city).unwrap()),
            other,
        })
}

fn unreserved() -> impl Strategy<Value = Vec<UnreservedTemplate>> {
    prop::collection::btree_map(80u8..=99, template(), 0..=2).prop_map(|map| {
        map.into_iter()
            .map(|(id, template)| UnreservedTemplate {
                id: DataObjectId::new(id).unwrap(),
                template,
            })
            .collect()
    })
}

/// Valid models. Some are too long to encode (over 512 characters, or a template over 99):
/// the properties skip those.
fn payload() -> impl Strategy<Value = Payload> {
    let initiation = prop::option::of(prop_oneof![
        Just(Initiation::Static),
        Just(Initiation::Dynamic)
    ]);
    let head = (
        initiation,
        accounts(),
        "[0-9]{4}",
        "[0-9]{3}",
        prop::option::of(amount()),
        prop::option::of(tip()),
    );
    let names = (
        "[A-Za-z]{2}",
        text(25),
        text(15),
        prop::option::of(text(10)),
    );
    let tail = (
        prop::option::of(additional_data()),
        prop::option::of(language()),
        entries(65..=79, 2),
        unreserved(),
    );
    (head, names, tail).prop_map(|(head, names, tail)| {
        let (initiation, merchant_accounts, mcc, currency, amount, tip) = head;
        let (country, name, city, postal_code) = names;
        let (additional_data, language, rfu, unreserved) = tail;
        Payload {
            initiation,
            merchant_accounts,
            merchant_category: MerchantCategoryCode::parse(&mcc).unwrap(),
            currency: CurrencyCode::parse(&currency).unwrap(),
            amount,
            tip,
            country: CountryCode::parse(&country).unwrap(),
            merchant_name: MerchantName::parse(&name).unwrap(),
            merchant_city: MerchantCity::parse(&city).unwrap(),
            postal_code: postal_code.map(|code| PostalCode::parse(&code).unwrap()),
            additional_data,
            language,
            rfu,
            unreserved,
        }
    })
}

/// A change to a payload: `(where, what, character)`.
type Mutation = (usize, u8, char);

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for &(index, kind, c) in mutations {
        let index = index % (chars.len() + 1);
        match kind % 4 {
            0 if index < chars.len() => chars[index] = c,
            1 if index < chars.len() => {
                chars.remove(index);
            }
            2 => chars.insert(index, c),
            _ => chars.truncate(index),
        }
    }
    chars.into_iter().collect()
}

/// Decodes in every way and, for what decodes, encodes again: none of it may panic.
fn exercise(input: &str) {
    let strict = decode(input).ok();
    let lenient = decode_lenient(input).ok().map(|lenient| lenient.payload);
    for payload in strict.iter().chain(lenient.iter()) {
        let _ = encode(payload);
    }
    let _ = fields(input, Mode::Strict);
    let _ = fields(input, Mode::Lenient);
}

proptest! {
    #[test]
    fn encode_then_decode_is_the_identity(payload in payload()) {
        let text = encode(&payload);
        prop_assume!(text.is_ok());
        let text = text.unwrap();
        prop_assert_eq!(decode(&text), Ok(payload.clone()));
        let lenient = decode_lenient(&text).unwrap();
        prop_assert_eq!(lenient.quirks, []);
        // Decode then encode gives the same bytes.
        prop_assert_eq!(encode(&lenient.payload).unwrap(), text);
    }

    #[test]
    fn lenient_reads_utf8_byte_lengths(payload in payload()) {
        let bytes = encode_in(&payload, Units::Utf8Bytes);
        prop_assume!(bytes.is_ok());
        let bytes = bytes.unwrap();
        let lenient = decode_lenient(&bytes).unwrap();
        prop_assert_eq!(&lenient.payload, &payload);
        let expected: &[Quirk] = if bytes.is_ascii() { &[] } else { &[Quirk::Utf8ByteLengths] };
        prop_assert_eq!(lenient.quirks, expected);
        prop_assert_eq!(decode(&bytes).is_ok(), bytes.is_ascii());
    }

    #[test]
    fn a_changed_character_is_always_caught(
        payload in payload(),
        index in any::<usize>(),
        c in "[ -~]",
    ) {
        // CRC-16 catches every burst of up to 16 bits, so any one ASCII character replaced by
        // another is caught, wherever it is.
        let text = encode(&payload);
        prop_assume!(text.is_ok());
        let mut chars: Vec<char> = text.unwrap().chars().collect();
        let ascii: Vec<usize> = (0..chars.len()).filter(|&i| chars[i].is_ascii()).collect();
        let at = ascii[index % ascii.len()];
        let c = c.chars().next().unwrap();
        prop_assume!(chars[at] != c);
        chars[at] = c;
        let changed: String = chars.into_iter().collect();
        prop_assert!(decode(&changed).is_err(), "{changed}");
    }

    #[test]
    fn mutated_payloads_never_panic(
        payload in payload(),
        mutations in prop::collection::vec((any::<usize>(), any::<u8>(), any::<char>()), 1..4),
    ) {
        let text = encode(&payload);
        prop_assume!(text.is_ok());
        exercise(&mutate(&text.unwrap(), &mutations));
    }

    #[test]
    fn arbitrary_strings_never_panic(input in any::<String>()) {
        exercise(&input);
    }

    #[test]
    fn tlv_like_strings_never_panic(
        input in "([0-9]{4}[0-9A-Za-z 老.]{0,12}){0,12}(6304[0-9A-Fa-f]{4})?",
    ) {
        exercise(&input);
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus

/// What both modes make of a payload, for the corpus report.
fn outcome(payload: &str) -> String {
    let lenient = match decode_lenient(payload) {
        Ok(lenient) => {
            let names: Vec<&str> = lenient.quirks.iter().map(|quirk| quirk.as_str()).collect();
            format!("ok [{}]", names.join("+"))
        }
        Err(error) => format!("{} ({error})", error.code),
    };
    let strict = match decode(payload) {
        Ok(_) => "ok".to_owned(),
        Err(error) => error.code.to_string(),
    };
    format!("strict {strict}, lenient {lenient}")
}

/// Whether a payload does what its `expect` column says. See the corpus's header.
fn meets(expect: &str, payload: &str) -> bool {
    let strict = decode(payload);
    let lenient = decode_lenient(payload);
    if expect == "valid" {
        let Ok(decoded) = strict else { return false };
        // Valid and in canonical order: encoding gives back the very same bytes.
        let same = encode(&decoded).is_ok_and(|text| text == payload);
        return same && lenient.is_ok_and(|lenient| lenient.quirks.is_empty());
    }
    if let Some(code) = expect.strip_prefix("error:") {
        let code_of =
            |result: Result<(), DecodeError>| result.err().map(|error| error.code.as_str());
        return code_of(strict.map(|_| ())) == Some(code)
            && code_of(lenient.map(|_| ())) == Some(code);
    }
    let Some(quirks) = expect.strip_prefix("lenient:") else {
        return false;
    };
    let expected: Vec<&str> = quirks.split('+').collect();
    let Ok(lenient) = lenient else { return false };
    let names: Vec<&str> = lenient.quirks.iter().map(|quirk| quirk.as_str()).collect();
    let strict_accepts = lenient.quirks.iter().all(|quirk| quirk.is_warning());
    // What lenient mode read encodes to a payload strict mode reads back the same.
    let reencoded =
        encode(&lenient.payload).is_ok_and(|text| decode(&text) == Ok(lenient.payload.clone()));
    names == expected && strict.is_ok() == strict_accepts && reencoded
}

#[test]
fn corpus() {
    // Read at run time, so that a missing file means no rows rather than a build failure.
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus.tsv");
    let corpus = std::fs::read_to_string(path).unwrap_or_default();
    let mut rows = 0;
    let mut mismatches = Vec::new();
    for (index, line) in corpus.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        rows += 1;
        let columns: Vec<&str> = line.split('\t').collect();
        let [scheme, expect, payload, origin] = columns[..] else {
            mismatches.push(format!(
                "line {}: {} columns, expected 4",
                index + 1,
                columns.len()
            ));
            continue;
        };
        if !meets(expect, payload) {
            let got = outcome(payload);
            mismatches.push(format!(
                "line {}: {scheme} ({origin}): expected {expect}, got {got}",
                index + 1
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {rows} corpus rows do not match:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Interop: an independent implementation reads what zhifu encodes

/// SplitMix64: a seeded generator, so that the interop payloads are the same on every run.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn interop_value(text: &str) -> Value {
    Value::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

fn interop_entry(id: u8, text: &str) -> Entry {
    Entry {
        id: DataObjectId::new(id).unwrap(),
        value: interop_value(text),
    }
}

fn interop_template(guid: &str, entries: &[(u8, &str)]) -> Template {
    Template {
        guid: Guid::parse(guid).unwrap(),
        entries: entries
            .iter()
            .map(|&(id, text)| interop_entry(id, text))
            .collect(),
    }
}

/// Payload `index` of the interop set: its layout of merchant accounts goes round six kinds
/// (zhifu alone, zhifu with UnionPay, aggregated codes of three networks, another
/// institution's zhifu template), everything else is drawn from `rng`. Only characters of
/// the Basic Multilingual Plane: promptparse counts UTF-16 units (see the interop README).
fn interop_payload(index: usize, rng: &mut Seeded) -> Payload {
    const PLACES: [(&str, &str, &str); 5] = [
        ("156", "CN", "Shanghai"),
        ("156", "CN", "BEIJING"),
        ("764", "TH", "Bangkok"),
        ("986", "BR", "Sao Paulo"),
        ("344", "HK", "Hong Kong"),
    ];
    const NAMES: [&str; 6] = [
        "Noodle Bar",
        "BEST TRANSPORT",
        "O'Brien & Sons",
        "Cafe \"Dragon\" 7",
        "老王面馆",
        "Mr. Wang's Dumplings",
    ];
    let (currency, country, city) = rng.pick(&PLACES);
    let mut payload = Payload::new(
        MerchantCategoryCode::parse(rng.pick(&["5812", "5411", "4111", "5999", "7011"])).unwrap(),
        CurrencyCode::parse(currency).unwrap(),
        CountryCode::parse(country).unwrap(),
        MerchantName::parse(rng.pick(&NAMES)).unwrap(),
        MerchantCity::parse(city).unwrap(),
    );
    payload.initiation = rng.pick(&[Some(Initiation::Static), Some(Initiation::Dynamic), None]);
    let dynamic = payload.initiation == Some(Initiation::Dynamic);

    let target = if rng.chance(70) {
        Target::Merchant(TargetId::parse(rng.pick(&["10023", "7", "M-880021", "商户42"])).unwrap())
    } else {
        Target::Person(TargetId::parse(rng.pick(&["88", "p.1234567890", "王小明"])).unwrap())
    };
    let order_reference = dynamic.then(|| {
        let reference = format!("ORD-{:08}", rng.next() % 100_000_000);
        OrderReference::parse(&reference).unwrap()
    });
    let mut zhifu = ZhifuAccount {
        guid: Guid::parse(ZHIFU_GUID).unwrap(),
        target,
        order_reference,
    };
    let promptpay = interop_template("A000000677010111", &[(1, "0066812345678")]);
    let pix = interop_template(
        "br.gov.bcb.pix",
        &[(1, "123e4567-e12b-12d1-a456-426655440000")],
    );
    let unionpay = interop_value("6230001234567890");
    let id = |id: u8| DataObjectId::new(id).unwrap();
    match index % 6 {
        0 => {
            payload.add_zhifu(&zhifu).unwrap();
        }
        1 => {
            payload.add_zhifu(&zhifu).unwrap();
            payload.add_network(id(15), unionpay).unwrap();
        }
        2 => {
            // Aggregated: UnionPay in 15, then two templates.
            payload.add_network(id(15), unionpay).unwrap();
            payload.add_template(promptpay).unwrap();
            payload.add_zhifu(&zhifu).unwrap();
        }
        3 => {
            // Aggregated, zhifu first: three templates.
            payload.add_zhifu(&zhifu).unwrap();
            payload.add_template(pix).unwrap();
            payload.add_template(promptpay).unwrap();
        }
        4 => {
            // Another institution running zhifu, in a slot other than the first.
            zhifu.guid = Guid::parse("CN.Example-Bank").unwrap();
            payload.merchant_accounts.push(MerchantAccount::Template {
                id: id(30),
                template: zhifu.template(),
            });
            payload
                .add_network(id(4), interop_value("5413330089020011"))
                .unwrap();
        }
        _ => {
            payload.add_template(pix).unwrap();
            payload.add_zhifu(&zhifu).unwrap();
        }
    }

    if dynamic || rng.chance(40) {
        let amount = rng.pick(&[
            "1",
            "23.50",
            "0.01",
            "100.",
            "99999.99",
            "1234567890.12",
            "8.8",
        ]);
        payload.amount = Some(Amount::parse(amount).unwrap());
    }
    payload.tip = match rng.below(5) {
        0 => Some(Tip::Prompt),
        1 => Some(Tip::FixedFee(
            Amount::parse(rng.pick(&["2.00", "0.5", "10"])).unwrap(),
        )),
        2 => Some(Tip::PercentageFee(
            Percentage::parse(rng.pick(&["3.5", "10", "99.99", "0.5"])).unwrap(),
        )),
        _ => None,
    };
    if rng.chance(30) {
        payload.postal_code = Some(PostalCode::parse(rng.pick(&["200000", "100-0001"])).unwrap());
    }
    if rng.chance(80) {
        payload.additional_data = Some(interop_additional_data(rng));
    }
    if rng.chance(60) {
        let names = [
            "最佳运输",
            "老王面馆",
            "北京烤鸭店",
            "茶餐厅",
            "Café Zürich",
        ];
        payload.language = Some(LanguageTemplate {
            language: LanguageCode::parse(rng.pick(&["ZH", "zh", "TH"])).unwrap(),
            merchant_name: MerchantName::parse(rng.pick(&names)).unwrap(),
            merchant_city: rng
                .chance(70)
                .then(|| MerchantCity::parse(rng.pick(&["北京", "上海", "广州市"])).unwrap()),
            other: if rng.chance(25) {
                vec![interop_entry(3, "备注")]
            } else {
                Vec::new()
            },
        });
    }
    if rng.chance(20) {
        payload.rfu = vec![interop_entry(65, "RFU 65")];
    }
    if rng.chance(30) {
        payload.unreserved = vec![UnreservedTemplate {
            id: id(rng.pick(&[80, 91, 99])),
            template: interop_template("A011223344998877", &[(7, "12345678"), (12, "签名")]),
        }];
    }
    payload
}

/// 62 with two to five of its sub-IDs, some of them Chinese, sometimes 09 and raw ones.
fn interop_additional_data(rng: &mut Seeded) -> AdditionalData {
    const LABELS: [&str; 8] = [
        "INV-2026-0001",
        "+8613800138000",
        "Store 12",
        "***",
        "REF7781",
        "顾客42",
        "T1",
        "午餐 lunch",
    ];
    let mut data = AdditionalData::default();
    let count = 2 + rng.below(3);
    for _ in 0..count {
        let id = 1 + rng.below(8) as u8;
        let label = Label::parse(LABELS[usize::from(id) - 1]).unwrap();
        *data.label_mut(id).unwrap() = Some(label);
    }
    if rng.chance(40) {
        let request = rng.pick(&["A", "ME", "AME", "EMA"]);
        data.consumer_data_request = Some(ConsumerDataRequest::parse(request).unwrap());
    }
    if rng.chance(30) {
        // A payment system's template in 50, kept raw, and an RFU sub-ID.
        data.other = vec![
            interop_entry(10, "x"),
            interop_entry(50, "0008cn.zhifu0102v1"),
        ];
    }
    data
}

/// How many payloads the seeded generator makes for the interop test.
const INTEROP_GENERATED: usize = 48;

/// The interop payloads: the seeded ones (first), then the corpus's payloads whose field tree
/// does not depend on a quirk (valid ones, and the quirks that change no object: 00 = `02`, a
/// lowercase CRC, IDs out of order), without characters outside the Basic Multilingual Plane.
fn interop_payloads() -> Vec<(String, Mode)> {
    let mut rng = Seeded(0x7A68_6966_7521);
    let mut payloads = Vec::new();
    for index in 0..INTEROP_GENERATED {
        let payload = interop_payload(index, &mut rng);
        let text = encode(&payload).unwrap_or_else(|error| panic!("payload {index}: {error}"));
        assert_eq!(decode(&text), Ok(payload), "payload {index} round trip");
        payloads.push((text, Mode::Strict));
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/corpus.tsv");
    let corpus = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let tree_neutral = [
        Quirk::PayloadFormat02,
        Quirk::LowercaseCrc,
        Quirk::IdsOutOfOrder,
    ];
    for line in corpus.lines().filter(|line| !line.starts_with('#')) {
        let Some(payload) = line.split('\t').nth(2) else {
            continue;
        };
        if payload.chars().any(|c| u32::from(c) > 0xFFFF) {
            continue;
        }
        if decode(payload).is_ok() {
            payloads.push((payload.to_owned(), Mode::Strict));
        } else if decode_lenient(payload).is_ok_and(|lenient| {
            lenient
                .quirks
                .iter()
                .all(|quirk| tree_neutral.contains(quirk))
        }) {
            payloads.push((payload.to_owned(), Mode::Lenient));
        }
    }
    payloads
}

/// Runs `tests/interop/parse.mjs` (promptparse) on `payloads`, one output line each.
fn promptparse(payloads: &[&str], strict: bool) -> Vec<String> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/parse.mjs");
    let mut command = Command::new("node");
    command.arg(script);
    if strict {
        command.arg("--strict");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run node ({error}): the interop test needs Node.js 18 or later")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input: String = payloads
        .iter()
        .map(|payload| format!("{payload}\n"))
        .collect();
    // Written from another thread, so that neither side can fill a pipe and wait forever.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{script} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), payloads.len(), "one line per payload");
    lines
}

/// zhifu's field tree in parse.mjs's JSON shape and key order: the line parse.mjs prints for
/// a payload it reads the same way.
fn interop_line(fields: &Fields) -> String {
    let string = |text: &str| serde_json::to_string(text).unwrap();
    let object = |members: Vec<String>| format!("{{{}}}", members.join(","));
    let members = fields.fields.iter().map(|field| {
        let value = match &field.value {
            FieldValue::Text(text) => string(text),
            FieldValue::Template(subs) => object(
                subs.iter()
                    .map(|(id, text)| format!("{}:{}", string(id), string(text)))
                    .collect(),
            ),
        };
        format!("{}:{value}", string(&field.id))
    });
    format!(r#"{{"ok":true,"fields":{}}}"#, object(members.collect()))
}

#[test]
#[cfg_attr(
    not(zhifu_node_interop),
    ignore = "SKIPPED: promptparse is not installed: run npm ci --prefix crates/codes/tests/interop"
)]
fn promptparse_reads_what_zhifu_encodes_as_zhifu_does() {
    let payloads = interop_payloads();
    let generated = payloads
        .iter()
        .take(INTEROP_GENERATED)
        .map(|(text, _)| text.as_str());
    // The seeded set has what the test claims to cover.
    let covered = |what: &str, test: &dyn Fn(&Payload) -> bool| {
        let count = generated
            .clone()
            .filter(|text| test(&decode(text).unwrap()))
            .count();
        assert!(count >= 3, "only {count} payloads with {what}");
    };
    covered("a static code", &|p| {
        p.initiation == Some(Initiation::Static)
    });
    covered("a dynamic code", &|p| {
        p.initiation == Some(Initiation::Dynamic)
    });
    covered("no 01", &|p| p.initiation.is_none());
    covered("zhifu's template", &|p| {
        !p.zhifu_accounts(ZHIFU_GUID).unwrap().is_empty()
    });
    covered("another institution's", &|p| {
        p.accounts_for("cn.example-bank").count() == 1
    });
    covered("three networks", &|p| p.merchant_accounts.len() == 3);
    covered("an amount", &|p| p.amount.is_some());
    covered("a tip prompt", &|p| p.tip == Some(Tip::Prompt));
    covered("a fixed fee", &|p| matches!(p.tip, Some(Tip::FixedFee(_))));
    covered("a percentage fee", &|p| {
        matches!(p.tip, Some(Tip::PercentageFee(_)))
    });
    covered("62 of 3 or more", &|p| {
        p.additional_data.as_ref().is_some_and(|data| {
            let labels = data
                .labels()
                .iter()
                .filter(|(_, label)| label.is_some())
                .count();
            labels + usize::from(data.consumer_data_request.is_some()) + data.other.len() >= 3
        })
    });
    covered("Chinese in 64", &|p| {
        p.language
            .as_ref()
            .is_some_and(|language| !language.merchant_name.as_str().is_ascii())
    });
    covered("80-99", &|p| !p.unreserved.is_empty());

    let texts: Vec<&str> = payloads.iter().map(|(text, _)| text.as_str()).collect();
    let read = promptparse(&texts, false);
    // With --strict promptparse also checks the CRC, but over UTF-16 units cut to 8 bits:
    // right for ASCII only.
    let ascii: Vec<&str> = texts
        .iter()
        .copied()
        .filter(|text| text.is_ascii())
        .collect();
    let read_strict = promptparse(&ascii, true);
    let mut strict_lines = read_strict.iter();

    let mut mismatches = Vec::new();
    for ((text, mode), line) in payloads.iter().zip(&read) {
        let fields = fields(text, *mode).unwrap_or_else(|error| panic!("{text}: {error}"));
        let expected = interop_line(&fields);
        let mut check = |what: &str, line: &str| {
            if line == expected {
                return;
            }
            // The same tree in another key order or escaping is still a mismatch, but say so.
            let tree = |json: &str| serde_json::from_str::<serde_json::Value>(json).ok();
            let same_tree = tree(line).is_some() && tree(line) == tree(&expected);
            mismatches.push(format!(
                "{text}\n  {what:>11}: {line}\n        zhifu: {expected}\n  \
                 the same tree in another key order or escaping: {same_tree}"
            ));
        };
        check("promptparse", line);
        if text.is_ascii() {
            check("--strict", strict_lines.next().unwrap());
        }
    }
    assert!(
        mismatches.is_empty(),
        "promptparse and zhifu disagree on {} of {} payloads:\n{}",
        mismatches.len(),
        payloads.len(),
        mismatches.join("\n")
    );
    assert!(payloads.len() >= 70, "{} payloads", payloads.len());
}
