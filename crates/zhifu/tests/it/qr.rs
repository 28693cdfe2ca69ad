//! `zhifu qr` as a user runs it: one JSON object on stdout, exit 0 when it did what was asked,
//! 1 when it did not (with a stable error code), 2 for a command line clap refuses.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// A zhifu merchant code for 23.50 yuan at the Noodle Bar, as the codec encodes it.
const PAYLOAD: &str = "00020101021126220008cn.zhifu0106M10023520458125303156540523.505802CN\
                       5910Noodle Bar6008Shanghai6304DCCD";

/// An 8×8 white greyscale PNG: an image without a code.
const WHITE_8X8_PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x08\x00\x00\x00\x08\x08\
    \x00\x00\x00\x00\xe1\x64\xe1\x57\x00\x00\x00\x0eIDAT\x78\xda\x63\xf8\x0f\x05\x0c\x94\x31\x00\
    \xf7\xc0\x3f\xc1\xaf\x5c\x0f\xcd\x00\x00\x00\x00IEND\xae\x42\x60\x82";

struct Run {
    exit_code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert_eq!(self.stdout.lines().count(), 1, "one line: {}", self.stdout);
        serde_json::from_str(&self.stdout).expect("JSON on stdout")
    }
}

fn zhifu_qr(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_zhifu"))
        .arg("qr")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start zhifu qr");
    let mut child_stdin = child.stdin.take().expect("piped");
    // A process that stops reading early closes the pipe: that is its answer, not an error.
    let _ = child_stdin.write_all(stdin);
    drop(child_stdin);
    let output = child.wait_with_output().expect("zhifu qr ends");
    Run {
        exit_code: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// `payload` without its CRC value, with the right one.
fn with_crc(payload_before_crc: &str) -> String {
    let body = format!("{payload_before_crc}6304");
    format!("{body}{:04X}", zhifu_codes::crc16(body.as_bytes()))
}

#[test]
fn decode_prints_the_fields_of_a_valid_payload() {
    let run = zhifu_qr(&["decode", PAYLOAD], b"");
    assert_eq!(run.exit_code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        concat!(
            r#"{"valid":true,"crc_ok":true,"quirks":[],"fields":{"00":"01","01":"11","#,
            r#""26":{"00":"cn.zhifu","01":"M10023"},"52":"5812","53":"156","54":"23.50","#,
            r#""58":"CN","59":"Noodle Bar","60":"Shanghai","63":"DCCD"}}"#,
            "\n"
        )
    );
}

#[test]
fn decode_keeps_the_payload_order_and_names_the_warning() {
    // Name and city before the country: EMV allows it, re-encoding would reorder it.
    let payload = with_crc(
        "00020101021126220008cn.zhifu0106M100235204581253031565904李记面馆6008Shanghai5802CN",
    );
    let run = zhifu_qr(&["decode", &payload], b"");
    assert_eq!(run.exit_code, 0, "{}", run.stdout);
    let decoded = run.json();
    assert_eq!(decoded["quirks"], json!(["IDS_OUT_OF_ORDER"]));
    assert_eq!(decoded["fields"]["59"], "李记面馆");
    // serde_json's maps sort their keys when read back, so the order is checked in the text.
    let fields = &run.stdout[run.stdout.find("\"fields\"").unwrap()..];
    let at = |id: &str| fields.find(&format!("\"{id}\":")).unwrap();
    assert!(at("53") < at("59") && at("59") < at("60") && at("60") < at("58"));
    assert!(at("58") < at("63"));
}

#[test]
fn a_bad_crc_is_refused_with_its_code_and_position() {
    let bad = PAYLOAD.replace("6304DCCD", "6304DCCE");
    let run = zhifu_qr(&["decode", &bad], b"");
    assert_eq!(run.exit_code, 1);
    let error = run.json();
    assert_eq!(
        (&error["valid"], &error["crc_ok"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(error["error"]["code"], "BAD_CRC");
    // The CRC's value starts after "6304".
    assert_eq!(error["error"]["position"], PAYLOAD.len() - 4);
    assert!(error["error"]["message"].as_str().unwrap().contains("DCCD"));
    assert!(error.get("fields").is_none());

    // Any other error leaves crc_ok true.
    let truncated = zhifu_qr(&["decode", "0002010102"], b"").json();
    assert_eq!(
        (&truncated["crc_ok"], &truncated["error"]["code"]),
        (&json!(true), &json!("TRUNCATED"))
    );
}

#[test]
fn lenient_mode_forgives_quirks_and_lists_them() {
    let quirky = format!("{}\n", PAYLOAD.replace("6304DCCD", "6304dccd"));
    let strict = zhifu_qr(&["decode", &quirky], b"");
    assert_eq!(strict.exit_code, 1);
    assert_eq!(strict.json()["error"]["code"], "CRC_NOT_LAST");

    let lenient = zhifu_qr(&["decode", "--lenient", &quirky], b"");
    assert_eq!(lenient.exit_code, 0, "{}", lenient.stdout);
    let decoded = lenient.json();
    assert_eq!(decoded["valid"], true);
    assert_eq!(
        decoded["quirks"],
        json!(["LOWERCASE_CRC", "TRAILING_WHITESPACE"])
    );
    assert_eq!(decoded["fields"]["63"], "dccd");
}

#[test]
fn encode_round_trips_what_decode_prints() {
    let decoded = zhifu_qr(&["decode", PAYLOAD], b"");
    let encoded = zhifu_qr(&["encode"], decoded.stdout.as_bytes());
    assert_eq!(encoded.exit_code, 0, "{}", encoded.stdout);
    assert_eq!(encoded.json(), json!({ "payload": PAYLOAD }));

    // The bare fields, in any order and without 63, give the same payload.
    let bare = json!({
        "60": "Shanghai", "59": "Noodle Bar", "58": "CN", "54": "23.50", "53": "156",
        "52": "5812", "26": { "01": "M10023", "00": "cn.zhifu" }, "01": "11", "00": "01",
    });
    let encoded = zhifu_qr(&["encode"], bare.to_string().as_bytes());
    assert_eq!(encoded.json(), json!({ "payload": PAYLOAD }));
}

#[test]
fn encode_refuses_what_is_not_a_valid_payload() {
    let check = |stdin: &str, code: &str| {
        let run = zhifu_qr(&["encode"], stdin.as_bytes());
        assert_eq!(run.exit_code, 1, "{stdin}: {}", run.stdout);
        let output = run.json();
        let actual = output["error"]["code"]
            .as_str()
            .unwrap_or("none")
            .to_owned();
        assert_eq!(actual, code, "{stdin}: {output}");
        output
    };
    check("", "INPUT_NOT_JSON");
    check("{\"00\":", "INPUT_NOT_JSON");
    check("[1,2]", "BAD_FIELDS");
    check(r#"{"fields":"000201"}"#, "BAD_FIELDS");
    check(r#"{"0":"01"}"#, "BAD_FIELDS");
    check(r#"{"59":{"00":"x"}}"#, "BAD_FIELDS");
    check(r#"{"26":"0008cn.zhifu"}"#, "BAD_FIELDS");
    check(r#"{"26":{"0":"cn.zhifu"}}"#, "BAD_FIELDS");
    check(&format!(r#"{{"59":"{}"}}"#, "x".repeat(100)), "BAD_FIELDS");
    // Well-formed, but not a payload: the strict decode's error, with the payload it is in.
    let missing = check(r#"{"00":"01"}"#, "MISSING_FIELD");
    assert_eq!(missing["valid"], false);
    assert_eq!(missing["payload"], "0002016304AAE6");
    // Over the stdin cap, however it goes on.
    let huge = format!("{{\"59\":\"{}\"}}", " ".repeat(70_000));
    check(&huge, "INPUT_TOO_LARGE");
}

#[test]
fn a_rendered_png_scans_back() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("code.png");
    let svg = dir.path().join("code.svg");
    let (png_arg, svg_arg) = (png.to_str().unwrap(), svg.to_str().unwrap());
    let rendered = zhifu_qr(
        &["render", PAYLOAD, "--png", png_arg, "--svg", svg_arg],
        b"",
    );
    assert_eq!(rendered.exit_code, 0, "{}", rendered.stdout);
    let written = rendered.json()["written"].clone();
    assert_eq!(written[0]["format"], "png");
    assert_eq!(written[0]["file"], png_arg);
    assert_eq!(written[1]["format"], "svg");
    let png_bytes = std::fs::read(&png).unwrap();
    assert_eq!(written[0]["bytes"], png_bytes.len());
    assert!(png_bytes.starts_with(b"\x89PNG"));
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));

    let scanned = zhifu_qr(&["scan", png_arg], b"");
    assert_eq!(scanned.exit_code, 0, "{}", scanned.stdout);
    let decoded = zhifu_qr(&["decode", PAYLOAD], b"").stdout;
    // The code's report is the payload, then exactly what `decode` prints.
    assert_eq!(
        scanned.stdout,
        format!(
            "{{\"codes\":[{{\"payload\":\"{PAYLOAD}\",{}]}}\n",
            &decoded.trim_end()[1..]
        )
    );
}

#[test]
fn render_needs_a_valid_payload_and_an_output() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("code.png");
    let png_arg = png.to_str().unwrap();

    let bad_crc = PAYLOAD.replace("6304DCCD", "6304DCCE");
    let refused = zhifu_qr(&["render", &bad_crc, "--png", png_arg], b"");
    assert_eq!(refused.exit_code, 1);
    assert_eq!(refused.json()["error"]["code"], "BAD_CRC");
    assert!(!png.exists());

    // A quirk lenient mode forgives renders with --lenient, as it is.
    let lowercase = PAYLOAD.replace("6304DCCD", "6304dccd");
    let strict = zhifu_qr(&["render", &lowercase, "--png", png_arg], b"");
    assert_eq!(strict.exit_code, 1);
    let lenient = zhifu_qr(&["render", "--lenient", &lowercase, "--png", png_arg], b"");
    assert_eq!(lenient.exit_code, 0, "{}", lenient.stdout);
    let scanned = zhifu_qr(&["scan", "--lenient", png_arg], b"").json();
    assert_eq!(scanned["codes"][0]["payload"], lowercase);
    assert_eq!(scanned["codes"][0]["quirks"], json!(["LOWERCASE_CRC"]));

    let unwritable = dir.path().join("no/such/dir/code.png");
    let run = zhifu_qr(
        &["render", PAYLOAD, "--png", unwritable.to_str().unwrap()],
        b"",
    );
    assert_eq!(run.exit_code, 1);
    assert_eq!(run.json()["error"]["code"], "FILE_UNWRITABLE");

    // Clap refuses these before anything runs.
    for args in [
        &["render", PAYLOAD][..],
        &["render", PAYLOAD, "--png", png_arg, "--module-px", "0"],
        &[
            "render",
            PAYLOAD,
            "--png",
            png_arg,
            "--error-correction",
            "x",
        ],
        &["decode"],
        &["scan"],
    ] {
        let run = zhifu_qr(args, b"");
        assert_eq!(run.exit_code, 2, "{args:?}");
        assert!(
            run.stdout.is_empty() && run.stderr.starts_with("error:"),
            "{args:?}"
        );
    }
}

#[test]
fn scan_refuses_what_is_not_an_image_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let check = |file: &std::path::Path, code: &str| {
        let run = zhifu_qr(&["scan", file.to_str().unwrap()], b"");
        assert_eq!(run.exit_code, 1, "{}", run.stdout);
        assert_eq!(run.json()["error"]["code"], code, "{}", run.stdout);
    };
    let text = dir.path().join("note.png");
    std::fs::write(&text, "not an image").unwrap();
    check(&text, "IMAGE_UNREADABLE");
    check(&dir.path().join("missing.png"), "FILE_UNREADABLE");
    check(dir.path(), "FILE_UNREADABLE");

    let blank = dir.path().join("blank.png");
    std::fs::write(&blank, WHITE_8X8_PNG).unwrap();
    check(&blank, "NO_CODE_FOUND");

    // Over the upload limit: refused by size, unread.
    let large = dir.path().join("large.jpg");
    let file = std::fs::File::create(&large).unwrap();
    file.set_len(10 * 1024 * 1024 + 1).unwrap();
    check(&large, "IMAGE_TOO_LARGE");
}
