//! `zhifu qr`: EMV merchant-presented payloads and their QR images from the command line.
//!
//! - `decode PAYLOAD [--lenient]`: the payload's fields.
//! - `encode`: a fields object on stdin to a payload with its CRC.
//! - `render PAYLOAD --png FILE --svg FILE`: the code as an image (either or both).
//! - `scan IMAGE`: the codes in a PNG or JPEG photo, each decoded.
//!
//! Every subcommand prints exactly one JSON object on stdout, and exits with 0 when it did
//! what was asked and 1 when it did not (2 for a command line clap rejects). Failures are
//! `{"error":{"code","message"}}` with a stable code; when the failure is an invalid payload,
//! `{"valid":false,"crc_ok":…,"error":{"code","message","position"}}` with the codec's code,
//! `crc_ok` false exactly when the code is `BAD_CRC`.
//!
//! Fields are an object of root IDs in payload order: a template (26–51, 62, 64, 80–99) is an
//! object of its sub-IDs, every other value a string. `encode` reads the same shape, either
//! bare or as the `fields` of a `decode` output (so `zhifu qr decode … | zhifu qr encode`
//! round trips); it writes IDs in ascending order and computes 63 itself, ignoring any 63
//! given.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use zhifu_codes::{DecodeError, ErrorCode, Field, FieldValue, Mode};
use zhifu_qr_image::{
    ErrorCorrection, MODULE_PX_MAX, MODULE_PX_MIN, RenderError, RenderOptions, ScanError,
    ScanLimits,
};

/// `encode` reads at most this much of stdin: a payload is at most 512 characters, so even
/// pretty-printed JSON of one is far smaller.
const STDIN_BYTES_MAX: u64 = 64 * 1024;
/// An EMV value's length is two digits.
const VALUE_CHARS_MAX: usize = 99;

#[derive(clap::Subcommand)]
pub enum Qr {
    /// Decode a payload: prints its fields, or the error and where it is (exit 1).
    Decode {
        payload: String,
        /// Forgive real-world generators' quirks (and list them) instead of refusing them.
        #[arg(long)]
        lenient: bool,
    },
    /// Encode the fields object on stdin (as `decode` prints it, or just its `fields`) into a
    /// payload with its CRC, checked by a strict decode.
    Encode,
    /// Render a payload that decodes (strictly, unless --lenient) as a QR image.
    Render(RenderArgs),
    /// Find the QR codes in a PNG or JPEG image and decode each.
    Scan {
        image: PathBuf,
        /// Decode the codes found in lenient mode.
        #[arg(long)]
        lenient: bool,
    },
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("output").required(true).multiple(true))]
pub struct RenderArgs {
    payload: String,
    /// Write the code as a PNG to this file.
    #[arg(long, group = "output")]
    png: Option<PathBuf>,
    /// Write the code as an SVG document to this file.
    #[arg(long, group = "output")]
    svg: Option<PathBuf>,
    /// Pixels (PNG) or user units (SVG) per module.
    #[arg(long, default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(i64::from(MODULE_PX_MIN)..=i64::from(MODULE_PX_MAX)))]
    module_px: u32,
    #[arg(long, value_enum, default_value_t = Level::M)]
    error_correction: Level,
    /// Render a payload that only a lenient decode accepts.
    #[arg(long)]
    lenient: bool,
}

/// Error-correction levels by their QR names: about 7, 15, 25 and 30 % of the code may be
/// damaged.
#[derive(clap::ValueEnum, Clone, Copy)]
enum Level {
    L,
    M,
    Q,
    H,
}

/// What a subcommand prints, and whether it succeeded.
struct Outcome {
    json: String,
    success: bool,
}

pub fn run(command: Qr) -> anyhow::Result<()> {
    let outcome = match command {
        Qr::Decode { payload, lenient } => decode(&payload, mode(lenient)),
        Qr::Encode => encode(),
        Qr::Render(args) => render(&args),
        Qr::Scan { image, lenient } => scan(&image, mode(lenient)),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", outcome.json)?;
    stdout.flush()?;
    if !outcome.success {
        // The JSON on stdout says what went wrong; the exit code only has to say that it did.
        std::process::exit(1);
    }
    Ok(())
}

fn mode(lenient: bool) -> Mode {
    if lenient { Mode::Lenient } else { Mode::Strict }
}

fn decode(payload: &str, mode: Mode) -> Outcome {
    let report = DecodeReport::of(payload, mode);
    let success = report.is_valid();
    Outcome {
        json: to_json(&report),
        success,
    }
}

fn encode() -> Outcome {
    let fields = match read_stdin_json().and_then(|input| fields_from_json(&input)) {
        Ok(fields) => fields,
        Err(failure) => return failure.into(),
    };
    let payload = payload_from(&fields);
    let report = DecodeReport::of(&payload, Mode::Strict);
    if report.is_valid() {
        return ok(&json!({ "payload": payload }));
    }
    // The error's position is in the payload built, so the payload comes along.
    Outcome {
        json: to_json(&CodeReport { report, payload }),
        success: false,
    }
}

fn render(args: &RenderArgs) -> Outcome {
    let report = DecodeReport::of(&args.payload, mode(args.lenient));
    if !report.is_valid() {
        return Outcome {
            json: to_json(&report),
            success: false,
        };
    }
    let options = RenderOptions {
        module_px: args.module_px,
        error_correction: error_correction(args.error_correction),
    };
    match render_files(args, options) {
        Ok(written) => ok(&Rendered { written }),
        Err(failure) => failure.into(),
    }
}

fn render_files(args: &RenderArgs, options: RenderOptions) -> Result<Vec<Written>, Failure> {
    let mut written = Vec::new();
    if let Some(file) = &args.png {
        let png = zhifu_qr_image::render_png(&args.payload, options)?;
        written.push(write_file(file, "png", &png)?);
    }
    if let Some(file) = &args.svg {
        let svg = zhifu_qr_image::render_svg(&args.payload, options)?;
        written.push(write_file(file, "svg", svg.as_bytes())?);
    }
    Ok(written)
}

/// What `render` prints.
#[derive(Serialize)]
struct Rendered {
    written: Vec<Written>,
}

/// A file `render` wrote.
#[derive(Serialize)]
struct Written {
    file: String,
    format: &'static str,
    bytes: usize,
}

fn error_correction(level: Level) -> ErrorCorrection {
    match level {
        Level::L => ErrorCorrection::Low,
        Level::M => ErrorCorrection::Medium,
        Level::Q => ErrorCorrection::Quartile,
        Level::H => ErrorCorrection::High,
    }
}

fn write_file(file: &Path, format: &'static str, bytes: &[u8]) -> Result<Written, Failure> {
    std::fs::write(file, bytes).map_err(|error| {
        Failure::new(
            "FILE_UNWRITABLE",
            format!("cannot write {}: {error}", file.display()),
        )
    })?;
    Ok(Written {
        file: file.display().to_string(),
        format,
        bytes: bytes.len(),
    })
}

fn scan(image: &Path, mode: Mode) -> Outcome {
    let limits = ScanLimits::default();
    let codes = read_image(image, limits)
        .and_then(|bytes| zhifu_qr_image::scan(&bytes, limits).map_err(Failure::from));
    match codes {
        Ok(codes) => {
            let codes = codes
                .into_iter()
                .map(|payload| CodeReport {
                    report: DecodeReport::of(&payload, mode),
                    payload,
                })
                .collect();
            ok(&Scanned { codes })
        }
        Err(failure) => failure.into(),
    }
}

/// The file's bytes, refused by size before it is read: an upload limit holds for files too.
fn read_image(image: &Path, limits: ScanLimits) -> Result<Vec<u8>, Failure> {
    let unreadable = |error: std::io::Error| {
        Failure::new(
            "FILE_UNREADABLE",
            format!("cannot read {}: {error}", image.display()),
        )
    };
    let file = std::fs::File::open(image).map_err(unreadable)?;
    let bytes = file.metadata().map_err(unreadable)?.len();
    if bytes > limits.bytes_max as u64 {
        return Err(ScanError::ImageTooLarge {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            bytes_max: limits.bytes_max,
        }
        .into());
    }
    // The bound also holds for a file that grows while it is read, or a pipe.
    let mut image_bytes = Vec::new();
    file.take(limits.bytes_max as u64 + 1)
        .read_to_end(&mut image_bytes)
        .map_err(unreadable)?;
    Ok(image_bytes)
}

fn read_stdin_json() -> Result<Value, Failure> {
    let mut input = Vec::new();
    std::io::stdin()
        .take(STDIN_BYTES_MAX + 1)
        .read_to_end(&mut input)
        .map_err(|error| Failure::new("INPUT_UNREADABLE", format!("cannot read stdin: {error}")))?;
    if input.len() as u64 > STDIN_BYTES_MAX {
        return Err(Failure::new(
            "INPUT_TOO_LARGE",
            format!("stdin has more than {STDIN_BYTES_MAX} bytes"),
        ));
    }
    serde_json::from_slice(&input)
        .map_err(|error| Failure::new("INPUT_NOT_JSON", format!("stdin is not JSON: {error}")))
}

/// A root object: an ID, then a string or (for a template) its sub-objects.
type EncodeField = (u8, EncodeValue);

enum EncodeValue {
    Text(String),
    Template(Vec<(u8, String)>),
}

/// The fields to encode, sorted by ID, 63 left out.
fn fields_from_json(input: &Value) -> Result<Vec<EncodeField>, Failure> {
    let Some(object) = input.as_object() else {
        return Err(bad_fields("stdin is not a JSON object"));
    };
    let fields = match object.get("fields") {
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(bad_fields("\"fields\" is not an object")),
        None => object,
    };
    let mut encode_fields = Vec::new();
    for (key, value) in fields {
        let id = object_id(key)?;
        if id == 63 {
            continue;
        }
        encode_fields.push((id, encode_value(id, key, value)?));
    }
    encode_fields.sort_by_key(|(id, _)| *id);
    Ok(encode_fields)
}

fn encode_value(id: u8, key: &str, value: &Value) -> Result<EncodeValue, Failure> {
    match (is_template(id), value) {
        (false, Value::String(text)) => Ok(EncodeValue::Text(checked_value(key, text)?)),
        (true, Value::Object(subs)) => Ok(EncodeValue::Template(template_from_json(key, subs)?)),
        (false, _) => Err(bad_fields(format!("field {key} must be a string"))),
        (true, _) => Err(bad_fields(format!(
            "field {key} is a template: it must be an object of its sub-IDs"
        ))),
    }
}

fn template_from_json(key: &str, subs: &Map<String, Value>) -> Result<Vec<(u8, String)>, Failure> {
    let mut template = Vec::new();
    for (sub_key, value) in subs {
        let path = format!("{key}.{sub_key}");
        let sub_id =
            object_id(sub_key).map_err(|_| bad_fields(format!("{path} is not a two-digit ID")))?;
        let Value::String(text) = value else {
            return Err(bad_fields(format!("field {path} must be a string")));
        };
        template.push((sub_id, checked_value(&path, text)?));
    }
    template.sort_by_key(|(sub_id, _)| *sub_id);
    Ok(template)
}

fn object_id(key: &str) -> Result<u8, Failure> {
    match key.as_bytes() {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => Ok((tens - b'0') * 10 + (ones - b'0')),
        _ => Err(bad_fields(format!("\"{key}\" is not a two-digit ID"))),
    }
}

/// A value whose length fits in two digits; everything else about it is the decode's to check.
fn checked_value(path: &str, text: &str) -> Result<String, Failure> {
    if text.chars().nth(VALUE_CHARS_MAX).is_some() {
        return Err(bad_fields(format!(
            "field {path} is longer than {VALUE_CHARS_MAX} characters"
        )));
    }
    Ok(text.to_owned())
}

fn is_template(id: u8) -> bool {
    matches!(id, 26..=51 | 62 | 64 | 80..=99)
}

fn bad_fields(message: impl Into<String>) -> Failure {
    Failure::new("BAD_FIELDS", message)
}

/// The payload of `fields` with its CRC. A template longer than 99 characters gets a length
/// that is not two digits, which the strict decode then refuses with its position.
fn payload_from(fields: &[EncodeField]) -> String {
    let mut payload = String::new();
    for (id, value) in fields {
        let value = match value {
            EncodeValue::Text(text) => text.clone(),
            EncodeValue::Template(subs) => subs
                .iter()
                .map(|(sub_id, text)| tlv(*sub_id, text))
                .collect(),
        };
        payload.push_str(&tlv(*id, &value));
    }
    // The CRC covers everything before it, its own ID and length included.
    payload.push_str("6304");
    let crc = zhifu_codes::crc16(payload.as_bytes());
    payload.push_str(&format!("{crc:04X}"));
    payload
}

fn tlv(id: u8, value: &str) -> String {
    format!("{id:02}{:02}{value}", value.chars().count())
}

/// A payload's decode, as `decode` prints it and `scan` prints it for each code.
#[derive(Serialize)]
#[serde(untagged)]
enum DecodeReport {
    Valid {
        valid: bool,
        crc_ok: bool,
        quirks: Vec<&'static str>,
        fields: FieldsJson,
    },
    Invalid {
        valid: bool,
        crc_ok: bool,
        error: Value,
    },
}

impl DecodeReport {
    fn of(payload: &str, mode: Mode) -> DecodeReport {
        match zhifu_codes::fields(payload, mode) {
            Ok(fields) => DecodeReport::Valid {
                valid: true,
                crc_ok: true,
                quirks: fields.quirks.iter().map(|quirk| quirk.as_str()).collect(),
                fields: FieldsJson(fields.fields),
            },
            Err(error) => DecodeReport::Invalid {
                valid: false,
                crc_ok: error.code != ErrorCode::BadCrc,
                error: decode_error_json(&error),
            },
        }
    }

    fn is_valid(&self) -> bool {
        matches!(self, DecodeReport::Valid { .. })
    }
}

fn decode_error_json(error: &DecodeError) -> Value {
    json!({
        "code": error.code.as_str(),
        "message": error.message,
        "position": error.position,
    })
}

/// What `scan` prints. Serialised directly, not through `serde_json::Value`, whose maps would
/// sort the fields.
#[derive(Serialize)]
struct Scanned {
    codes: Vec<CodeReport>,
}

/// A payload and its decode: a code `scan` found, or the payload `encode` built and could not
/// decode.
#[derive(Serialize)]
struct CodeReport {
    payload: String,
    #[serde(flatten)]
    report: DecodeReport,
}

/// Fields as a JSON object in payload order. Serialised by hand because serde_json's maps sort
/// their keys unless its `preserve_order` feature is on, and that feature would change the
/// key order of every JSON document the workspace writes.
struct FieldsJson(Vec<Field>);

impl Serialize for FieldsJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for field in &self.0 {
            match &field.value {
                FieldValue::Text(text) => map.serialize_entry(&field.id, text)?,
                FieldValue::Template(subs) => map.serialize_entry(&field.id, &SubsJson(subs))?,
            }
        }
        map.end()
    }
}

struct SubsJson<'a>(&'a [(String, String)]);

impl Serialize for SubsJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (sub_id, text) in self.0 {
            map.serialize_entry(sub_id, text)?;
        }
        map.end()
    }
}

/// A failure that is not an invalid payload: bad input, a file, an image.
struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(code: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<RenderError> for Failure {
    fn from(error: RenderError) -> Failure {
        Failure::new(error.as_str(), error.to_string())
    }
}

impl From<ScanError> for Failure {
    fn from(error: ScanError) -> Failure {
        Failure::new(error.as_str(), error.to_string())
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Outcome {
        Outcome {
            json: to_json(&json!({
                "error": { "code": failure.code, "message": failure.message },
            })),
            success: false,
        }
    }
}

fn ok(value: &impl Serialize) -> Outcome {
    Outcome {
        json: to_json(value),
        success: true,
    }
}

fn to_json(value: &impl Serialize) -> String {
    // Strings, numbers and maps with string keys: nothing here can fail to serialise.
    serde_json::to_string(value).expect("JSON of plain data")
}
