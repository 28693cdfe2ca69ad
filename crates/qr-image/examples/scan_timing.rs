//! How long rendering and scanning take, on synthetic photos. Run it optimised:
//!
//! ```text
//! cargo run --release -p zhifu-qr-image --example scan_timing
//! ```
//!
//! It prints one JSON line of medians in milliseconds: rendering a payload to PNG and to SVG,
//! scanning a 1280×800 (1-megapixel) photo with a code at 5 px a module, as JPEG and as PNG,
//! scanning the same photo without a code (the slowest case: both polarities are searched),
//! scanning a 24-megapixel JPEG without a code (the most an upload may cost), and refusing a
//! PNG whose header claims 50 megapixels.

use std::io::Cursor;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use image::{GrayImage, ImageFormat, Luma, imageops};
use zhifu_qr_image::{RenderOptions, ScanLimits, render_png, render_svg, scan};

const PAYLOAD: &str = "00020101021126220008cn.zhifu0106M10023520458125303156540523.505802CN\
                       5910Noodle Bar6008Shanghai6304DCCD";

fn main() {
    let render_png_ms = median_ms(50, || {
        render_png(PAYLOAD, RenderOptions::default()).unwrap();
    });
    let render_svg_ms = median_ms(50, || {
        render_svg(PAYLOAD, RenderOptions::default()).unwrap();
    });

    let code = code_luma(5);
    let with_code = photo(1280, 800, Some(&code));
    let without_code = photo(1280, 800, None);
    let scan_1mp_jpeg_ms = scan_ms(&jpeg(&with_code), true);
    let scan_1mp_png_ms = scan_ms(&png(&with_code), true);
    let scan_1mp_no_code_ms = scan_ms(&jpeg(&without_code), false);
    let scan_24mp_no_code_ms = scan_ms(&jpeg(&photo(6000, 4000, None)), false);
    let refuse_50mp_ms = median_ms(50, || {
        let error = scan(&png_claiming(10_000, 5_000), ScanLimits::default()).unwrap_err();
        assert_eq!(error.as_str(), "IMAGE_TOO_MANY_PIXELS");
    });

    println!(
        "{{\"render_png_ms\":{render_png_ms:.3},\"render_svg_ms\":{render_svg_ms:.3},\
         \"scan_1mp_jpeg_ms\":{scan_1mp_jpeg_ms:.2},\"scan_1mp_png_ms\":{scan_1mp_png_ms:.2},\
         \"scan_1mp_no_code_ms\":{scan_1mp_no_code_ms:.2},\
         \"scan_24mp_no_code_ms\":{scan_24mp_no_code_ms:.1},\"refuse_50mp_ms\":{refuse_50mp_ms:.4}}}"
    );
}

fn scan_ms(image_bytes: &[u8], has_code: bool) -> f64 {
    median_ms(15, || {
        let result = scan(image_bytes, ScanLimits::default());
        assert_eq!(result.is_ok(), has_code, "{result:?}");
        if let Ok(codes) = result {
            assert_eq!(codes, vec![PAYLOAD.to_owned()]);
        }
    })
}

fn median_ms(runs: usize, mut run: impl FnMut()) -> f64 {
    let mut times_ms: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times_ms.sort_by(f64::total_cmp);
    times_ms[runs / 2]
}

fn code_luma(module_px: u32) -> GrayImage {
    let options = RenderOptions {
        module_px,
        ..RenderOptions::default()
    };
    let png = render_png(PAYLOAD, options).unwrap();
    image::load_from_memory(&png).unwrap().into_luma8()
}

/// A grey photo with uneven light and noise, and the code in ink on paper near the middle.
fn photo(width: u32, height: u32, code: Option<&GrayImage>) -> GrayImage {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 41) as i32 - 20
    };
    let mut canvas = GrayImage::from_fn(width, height, |x, y| {
        let light = 70 + (x * 60 / width) as i32 + (y * 40 / height) as i32;
        Luma([(light + noise()).clamp(0, 255) as u8])
    });
    if let Some(code) = code {
        let (left, top) = (width / 2, height / 3);
        for (x, y, pixel) in code.enumerate_pixels() {
            let ink = if pixel[0] < 128 { 45 } else { 205 };
            let value = (ink + noise()).clamp(0, 255) as u8;
            canvas.put_pixel(left + x, top + y, Luma([value]));
        }
    }
    imageops::blur(&canvas, 0.8)
}

fn jpeg(luma: &GrayImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(luma)
        .unwrap();
    bytes
}

fn png(luma: &GrayImage) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    luma.write_to(&mut bytes, ImageFormat::Png).unwrap();
    bytes.into_inner()
}

/// A 1×1 PNG whose header claims `width` × `height`, with the header's CRC fixed.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = png(&GrayImage::new(1, 1));
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in &bytes[12..29] {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    bytes[29..33].copy_from_slice(&(!crc).to_be_bytes());
    bytes
}
