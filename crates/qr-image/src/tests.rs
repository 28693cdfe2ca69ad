//! Rendered codes scan back; photos of them, degraded the ways phone photos are, scan too; and
//! uploads that would cost too much, or are not images, are refused cheaply with their code.
//!
//! The photos are synthetic and deterministic: a rendered code, blurred, compressed, inverted,
//! washed out, or pasted small into a large grey canvas with sensor-like noise.

use std::io::Cursor;
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, ImageFormat, Luma, imageops};
use zhifu_codes::{
    Amount, CountryCode, CurrencyCode, Guid, MerchantCategoryCode, MerchantCity, MerchantName,
    Payload, Target, TargetId, ZHIFU_GUID, ZhifuAccount,
};

use crate::*;

/// A real zhifu merchant payload, as the codec encodes it.
fn emv_payload(merchant_name: &str) -> String {
    let mut payload = Payload::new(
        MerchantCategoryCode::parse("5812").unwrap(),
        CurrencyCode::parse("156").unwrap(),
        CountryCode::parse("CN").unwrap(),
        MerchantName::parse(merchant_name).unwrap(),
        MerchantCity::parse("Shanghai").unwrap(),
    );
    payload.amount = Some(Amount::parse("23.50").unwrap());
    let account = ZhifuAccount {
        guid: Guid::parse(ZHIFU_GUID).unwrap(),
        target: Target::Merchant(TargetId::parse("10023").unwrap()),
        order_reference: None,
    };
    payload.add_zhifu(&account).unwrap();
    zhifu_codes::encode(&payload).unwrap()
}

fn code_luma(payload: &str, module_px: u32) -> GrayImage {
    let options = RenderOptions {
        module_px,
        ..RenderOptions::default()
    };
    let png = render_png(payload, options).unwrap();
    image::load_from_memory(&png).unwrap().into_luma8()
}

fn png(luma: &GrayImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    luma.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

fn jpeg(luma: &GrayImage, quality: u8) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .encode_image(luma)
        .unwrap();
    bytes
}

fn scan_default(image_bytes: &[u8]) -> Result<Vec<String>, ScanError> {
    scan(image_bytes, ScanLimits::default())
}

/// xorshift64: reproducible noise without a dependency.
struct Noise(u64);

impl Noise {
    /// A value in `-amplitude..=amplitude`.
    fn next(&mut self, amplitude: i32) -> i32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % (2 * amplitude as u64 + 1)) as i32 - amplitude
    }
}

/// A grey "photo" with uneven light and noise, and `code` printed into it at `(x, y)` as ink
/// that is never quite black on paper that is never quite white.
fn photo(width: u32, height: u32, codes: &[(&GrayImage, u32, u32)]) -> GrayImage {
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    let mut canvas = GrayImage::from_fn(width, height, |x, y| {
        let light = 70 + (x * 60 / width) as i32 + (y * 40 / height) as i32;
        Luma([(light + noise.next(20)).clamp(0, 255) as u8])
    });
    for &(code, left, top) in codes {
        for (x, y, pixel) in code.enumerate_pixels() {
            let ink = if pixel[0] < 128 { 45 } else { 205 };
            let value = (ink + noise.next(20)).clamp(0, 255) as u8;
            canvas.put_pixel(left + x, top + y, Luma([value]));
        }
    }
    // A phone camera's optics: nothing is perfectly sharp.
    imageops::blur(&canvas, 0.8)
}

#[test]
fn a_rendered_png_scans_back_to_its_payload() {
    let payload = emv_payload("Noodle Bar");
    let png = render_png(&payload, RenderOptions::default()).unwrap();
    let luma = image::load_from_memory(&png).unwrap().into_luma8();
    // 8 px modules and a 4-module quiet zone on each side.
    assert_eq!(luma.width() % 8, 0);
    let modules = luma.width() / 8;
    assert!((21..=177 + 8).contains(&modules));
    assert!(
        luma.rows()
            .take(4 * 8)
            .flatten()
            .all(|pixel| pixel[0] == 255)
    );
    assert_eq!(scan_default(&png).unwrap(), vec![payload]);
}

#[test]
fn every_error_correction_level_and_chinese_names_scan_back() {
    let payload = emv_payload("最佳运输");
    for error_correction in [
        ErrorCorrection::Low,
        ErrorCorrection::Medium,
        ErrorCorrection::Quartile,
        ErrorCorrection::High,
    ] {
        let options = RenderOptions {
            module_px: 4,
            error_correction,
        };
        let png = render_png(&payload, options).unwrap();
        assert_eq!(scan_default(&png).unwrap(), vec![payload.clone()]);
    }
}

#[test]
fn higher_error_correction_makes_a_larger_code() {
    let payload = emv_payload("Noodle Bar");
    let width = |error_correction| {
        let options = RenderOptions {
            module_px: 1,
            error_correction,
        };
        let png = render_png(&payload, options).unwrap();
        image::load_from_memory(&png).unwrap().width()
    };
    assert!(width(ErrorCorrection::Low) < width(ErrorCorrection::High));
}

#[test]
fn svg_is_a_document_with_one_square_per_dark_module() {
    let payload = emv_payload("Noodle Bar");
    let options = RenderOptions {
        module_px: 1,
        ..RenderOptions::default()
    };
    let svg = render_svg(&payload, options).unwrap();
    let luma = code_luma(&payload, 1);
    let side = luma.width();

    assert!(svg.starts_with("<?xml"));
    assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
    assert!(svg.trim_end().ends_with("</svg>"));
    // The PNG at 1 px a module has one black pixel per dark module; the path one square each.
    let dark_modules = luma.pixels().filter(|pixel| pixel[0] == 0).count();
    assert_eq!(svg.matches('M').count(), dark_modules);
}

#[test]
fn render_refuses_what_it_cannot_draw() {
    let check = |payload: &str, module_px: u32, error_correction, code: &str| {
        let options = RenderOptions {
            module_px,
            error_correction,
        };
        let png_error = render_png(payload, options).unwrap_err();
        let svg_error = render_svg(payload, options).unwrap_err();
        assert_eq!((png_error.as_str(), svg_error.as_str()), (code, code));
    };
    let medium = ErrorCorrection::Medium;
    check("", 8, medium, "PAYLOAD_EMPTY");
    check(&"0".repeat(513), 8, medium, "PAYLOAD_TOO_LONG");
    // 512 characters of three UTF-8 bytes each do not fit version 40 at level H.
    check(
        &"运".repeat(512),
        8,
        ErrorCorrection::High,
        "PAYLOAD_TOO_LONG",
    );
    check("000201", 0, medium, "MODULE_PX_OUT_OF_RANGE");
    check(
        "000201",
        MODULE_PX_MAX + 1,
        medium,
        "MODULE_PX_OUT_OF_RANGE",
    );

    // The limits are inclusive.
    assert!(render_png(&"0".repeat(512), RenderOptions::default()).is_ok());
    let largest = RenderOptions {
        module_px: MODULE_PX_MAX,
        ..RenderOptions::default()
    };
    assert!(render_svg("000201", largest).is_ok());
}

#[test]
fn a_blurred_code_scans() {
    let payload = emv_payload("Noodle Bar");
    let blurred = imageops::blur(&code_luma(&payload, 8), 2.0);
    assert_eq!(scan_default(&png(&blurred)).unwrap(), vec![payload]);
}

#[test]
fn a_code_in_a_jpeg_of_quality_20_scans() {
    let payload = emv_payload("Noodle Bar");
    let jpeg = jpeg(&code_luma(&payload, 6), 20);
    assert_eq!(scan_default(&jpeg).unwrap(), vec![payload]);
}

#[test]
fn a_small_code_in_a_large_noisy_photo_scans() {
    let payload = emv_payload("Noodle Bar");
    let code = code_luma(&payload, 5);
    let photo = photo(1600, 1200, &[(&code, 900, 500)]);
    assert_eq!(scan_default(&png(&photo)).unwrap(), vec![payload.clone()]);
    // The same photo as a phone would save it.
    assert_eq!(scan_default(&jpeg(&photo, 80)).unwrap(), vec![payload]);
}

#[test]
fn a_photo_larger_than_the_search_size_is_shrunk_and_scans() {
    let payload = emv_payload("Noodle Bar");
    // 2,400 px wide: shrunk to 1,600, the 9 px modules become 6 px.
    let code = code_luma(&payload, 9);
    let photo = photo(2400, 1800, &[(&code, 300, 900)]);
    assert_eq!(scan_default(&jpeg(&photo, 85)).unwrap(), vec![payload]);
}

#[test]
fn an_inverted_code_scans() {
    let payload = emv_payload("Noodle Bar");
    let mut code = code_luma(&payload, 6);
    imageops::invert(&mut code);
    assert_eq!(scan_default(&png(&code)).unwrap(), vec![payload]);
}

#[test]
fn a_washed_out_code_scans() {
    // Ink at 215 on paper at 235: under the 5 % that rqrr needs to call a pixel dark.
    let payload = emv_payload("Noodle Bar");
    let mut code = code_luma(&payload, 6);
    for pixel in code.pixels_mut() {
        pixel[0] = if pixel[0] < 128 { 215 } else { 235 };
    }
    assert_eq!(scan_default(&png(&code)).unwrap(), vec![payload]);
}

#[test]
fn several_codes_come_back_once_each() {
    let first = emv_payload("Noodle Bar");
    let second = emv_payload("Tea House");
    let (first_code, second_code) = (code_luma(&first, 5), code_luma(&second, 5));
    // Staggered: rqrr groups finder patterns by geometry, and codes lined up in rows and
    // columns can pair one code's patterns with another's.
    let codes = [
        (&first_code, 40, 60),
        (&second_code, 500, 330),
        (&first_code, 900, 20),
    ];
    let mut found = scan_default(&png(&photo(1400, 900, &codes))).unwrap();
    let mut expected = vec![first, second];
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn an_image_without_a_code_is_no_code_found() {
    let empty = photo(800, 600, &[]);
    let error = scan_default(&png(&empty)).unwrap_err();
    assert_eq!(error.as_str(), "NO_CODE_FOUND");
}

/// A real PNG whose header claims `width` × `height`: the pixel data is a 1×1 image's, so
/// only a reader that trusts the header before decoding gets far enough to be refused.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(&GrayImage::new(1, 1));
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height, then the chunk's CRC
    // over its type and 13 data bytes.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_50_megapixel_png_is_refused_from_its_header() {
    let start = Instant::now();
    let error = scan_default(&png_claiming(10_000, 5_000)).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(
        error,
        ScanError::ImageTooManyPixels {
            width: 10_000,
            height: 5_000,
            pixels_max: 24_000_000,
        }
    );
    assert_eq!(error.as_str(), "IMAGE_TOO_MANY_PIXELS");
    assert!(elapsed < Duration::from_millis(100), "took {elapsed:?}");
    // The header check is the only thing that refused it: under the limit, the lie is found
    // while decoding.
    let small_lie = scan_default(&png_claiming(100, 100)).unwrap_err();
    assert_eq!(small_lie.as_str(), "IMAGE_UNREADABLE");
}

#[test]
fn a_jpeg_over_the_pixel_limit_is_refused() {
    let jpeg = jpeg(&photo(1600, 1200, &[]), 80);
    let limits = ScanLimits {
        pixels_max: 1_000_000,
        ..ScanLimits::default()
    };
    let error = scan(&jpeg, limits).unwrap_err();
    assert_eq!(error.as_str(), "IMAGE_TOO_MANY_PIXELS");
}

#[test]
fn bytes_over_the_limit_are_refused_before_reading() {
    let png = png(&code_luma("000201", 4));
    let limits = ScanLimits {
        bytes_max: png.len() - 1,
        ..ScanLimits::default()
    };
    assert_eq!(
        scan(&png, limits).unwrap_err(),
        ScanError::ImageTooLarge {
            bytes: png.len(),
            bytes_max: png.len() - 1,
        }
    );
    assert!(scan(&png, ScanLimits::default()).is_ok());
}

#[test]
fn what_is_not_a_png_or_a_jpeg_is_unreadable() {
    let mut noise = Noise(7);
    let random: Vec<u8> = (0..4096).map(|_| noise.next(127) as u8).collect();
    let png = png(&code_luma("000201", 4));
    let truncated_png = &png[..png.len() / 2];
    let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".as_slice();
    for bytes in [&random[..], b"", b"hello", truncated_png, gif] {
        let error = scan_default(bytes).unwrap_err();
        assert_eq!(error.as_str(), "IMAGE_UNREADABLE", "{error}");
    }
}
