//! Codes from an uploaded photo: PNG or JPEG bytes in, the text of every QR code found out.
//!
//! Uploads are untrusted, so the limits come first and cost little: the byte count before
//! anything is parsed, then width × height from the header alone, before a pixel buffer is
//! allocated. A 50-megapixel photo or a file that is not an image is refused in microseconds.
//!
//! Then the photo is made easy for rqrr, a port of quirc, and cheap to search:
//! 1. To luma, then shrunk so that its longer side is at most [`SIDE_PX_MAX`]: phone photos
//!    are 12 megapixels and more, and a code that fills a fair part of one still has several
//!    pixels per module at 1,600 px. rqrr's time grows with the pixel count.
//! 2. Contrast stretched if it is washed out (a grey code on a bright screen, a faded print):
//!    rqrr calls a pixel dark when it is 5 % darker than its row's running average, which ink
//!    at 215 on paper at 235 is not. Only then, because the stretch also amplifies noise in
//!    the dark parts of an ordinary photo, and more noise makes rqrr's search slower.
//! 3. Searched as it is, then inverted if nothing was found: rqrr only sees dark-on-light
//!    codes, and some apps and printed stickers are light on dark.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use image::{GrayImage, ImageError, ImageFormat, ImageReader, Limits};
use rqrr::PreparedImage;

/// The most codes returned from one image.
pub const CODES_MAX: usize = 8;
/// The longer side of the image searched, in pixels; larger images are shrunk first.
pub const SIDE_PX_MAX: u32 = 1600;
/// Candidate codes decoded per attempt. Noise can look like many finder patterns, and each
/// decode costs a sampling and an error correction.
const GRIDS_MAX: usize = 32;
/// The darkest and lightest percent of pixels are ignored when measuring the contrast, so a few
/// specks of glare or shadow do not decide it.
const STRETCH_CLIP_PERCENT: u64 = 1;
/// An image whose levels (without the clipped specks) span less than this is washed out.
const STRETCH_RANGE_MIN: u8 = 128;

/// What an upload may cost.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ScanLimits {
    pub bytes_max: usize,
    /// Width × height.
    pub pixels_max: u64,
}

impl Default for ScanLimits {
    /// 10 MiB and 24 megapixels: a full-resolution photo from a recent phone passes.
    fn default() -> Self {
        ScanLimits {
            bytes_max: 10 * 1024 * 1024,
            pixels_max: 24_000_000,
        }
    }
}

/// Why no code came out of an image.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the image has {bytes} bytes, more than {bytes_max}")]
    ImageTooLarge { bytes: usize, bytes_max: usize },
    #[error("the image is {width}×{height} pixels, more than {pixels_max} pixels")]
    ImageTooManyPixels {
        width: u32,
        height: u32,
        pixels_max: u64,
    },
    #[error("the image cannot be read: {reason}")]
    ImageUnreadable { reason: String },
    #[error("no QR code was found in the image")]
    NoCodeFound,
}

impl ScanError {
    /// The stable code: programs match on this, never on the message.
    pub fn as_str(&self) -> &'static str {
        match self {
            ScanError::ImageTooLarge { .. } => "IMAGE_TOO_LARGE",
            ScanError::ImageTooManyPixels { .. } => "IMAGE_TOO_MANY_PIXELS",
            ScanError::ImageUnreadable { .. } => "IMAGE_UNREADABLE",
            ScanError::NoCodeFound => "NO_CODE_FOUND",
        }
    }
}

/// The text of each QR code in a PNG or JPEG image: distinct, at most [`CODES_MAX`], in the
/// order rqrr found them. A code whose bytes are not UTF-8 comes back with U+FFFD in place of
/// the bad bytes, so that the caller can say what it is rather than "no code". Codes lined up
/// exactly in a row or a column can hide each other: rqrr may group one code's finder patterns
/// with another's.
pub fn scan(image_bytes: &[u8], limits: ScanLimits) -> Result<Vec<String>, ScanError> {
    let luma = read_luma(image_bytes, limits)?;
    let luma = stretch_contrast(shrink(luma));
    for polarity in [Polarity::DarkOnLight, Polarity::LightOnDark] {
        let codes = codes_in(&luma, polarity);
        if !codes.is_empty() {
            return Ok(codes);
        }
    }
    Err(ScanError::NoCodeFound)
}

/// The image in luma, after the limits.
fn read_luma(image_bytes: &[u8], limits: ScanLimits) -> Result<GrayImage, ScanError> {
    if image_bytes.len() > limits.bytes_max {
        return Err(ScanError::ImageTooLarge {
            bytes: image_bytes.len(),
            bytes_max: limits.bytes_max,
        });
    }
    let format = image_format(image_bytes)?;
    // The header only: no pixel buffer exists before the pixel count is checked.
    let (width, height) = ImageReader::with_format(Cursor::new(image_bytes), format)
        .into_dimensions()
        .map_err(|error| unreadable(&error))?;
    let too_many_pixels = ScanError::ImageTooManyPixels {
        width,
        height,
        pixels_max: limits.pixels_max,
    };
    if u64::from(width) * u64::from(height) > limits.pixels_max {
        return Err(too_many_pixels);
    }
    let mut reader = ImageReader::with_format(Cursor::new(image_bytes), format);
    reader.limits(decoder_limits(limits));
    match reader.decode() {
        Ok(image) => Ok(image.into_luma8()),
        Err(ImageError::Limits(_)) => Err(too_many_pixels),
        Err(error) => Err(unreadable(&error)),
    }
}

/// PNG or JPEG, from the magic bytes: never from a file name or a content type.
fn image_format(image_bytes: &[u8]) -> Result<ImageFormat, ScanError> {
    match image::guess_format(image_bytes) {
        Ok(format @ (ImageFormat::Png | ImageFormat::Jpeg)) => Ok(format),
        _ => Err(ScanError::ImageUnreadable {
            reason: "not a PNG or JPEG image".into(),
        }),
    }
}

/// The decoder's own limits, a second line of defence should a header understate the image:
/// the largest allowed image at 8 bytes a pixel (16-bit RGBA).
fn decoder_limits(limits: ScanLimits) -> Limits {
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.pixels_max.saturating_mul(8));
    decoder_limits
}

fn unreadable(error: &dyn std::error::Error) -> ScanError {
    ScanError::ImageUnreadable {
        reason: error.to_string(),
    }
}

/// At most [`SIDE_PX_MAX`] on the longer side, by averaging: the fast path, and averaging also
/// smooths sensor noise and JPEG artefacts.
fn shrink(luma: GrayImage) -> GrayImage {
    let (width, height) = luma.dimensions();
    let side_px = width.max(height);
    if side_px <= SIDE_PX_MAX {
        return luma;
    }
    let scale = |px: u32| (u64::from(px) * u64::from(SIDE_PX_MAX) / u64::from(side_px)).max(1);
    // Both are at most SIDE_PX_MAX, so they fit.
    let (width_new, height_new) = (scale(width) as u32, scale(height) as u32);
    image::imageops::thumbnail(&luma, width_new, height_new)
}

/// If the image is washed out, maps its darkest [`STRETCH_CLIP_PERCENT`] of pixels to 0 and
/// the lightest to 255, linearly in between.
fn stretch_contrast(mut luma: GrayImage) -> GrayImage {
    let mut histogram = [0u64; 256];
    for &pixel in luma.as_raw() {
        histogram[usize::from(pixel)] += 1;
    }
    let clip_pixels = luma.as_raw().len() as u64 * STRETCH_CLIP_PERCENT / 100;
    let dark = percentile_level(histogram.iter(), clip_pixels);
    let light = 255 - percentile_level(histogram.iter().rev(), clip_pixels);
    // A flat image has nothing to stretch (and nothing to find).
    if light <= dark || light - dark >= STRETCH_RANGE_MIN {
        return luma;
    }
    let range = u32::from(light - dark);
    let mut levels = [0u8; 256];
    for (level, stretched) in levels.iter_mut().enumerate() {
        let offset = (level as u32).clamp(u32::from(dark), u32::from(light)) - u32::from(dark);
        *stretched = (offset * 255 / range) as u8;
    }
    for pixel in luma.iter_mut() {
        *pixel = levels[usize::from(*pixel)];
    }
    luma
}

/// The first level (counted along `histogram`) past `clip_pixels` pixels.
fn percentile_level<'a>(histogram: impl Iterator<Item = &'a u64>, clip_pixels: u64) -> u8 {
    let mut seen_pixels = 0;
    for (level, &count) in histogram.enumerate() {
        seen_pixels += count;
        if seen_pixels > clip_pixels {
            return level as u8;
        }
    }
    255
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Polarity {
    DarkOnLight,
    LightOnDark,
}

/// The distinct codes rqrr reads in `luma`.
fn codes_in(luma: &GrayImage, polarity: Polarity) -> Vec<String> {
    // rqrr 0.11 still has assertions that some photos trip inside `detect_grids` (rqrr issue
    // 54, an overflowing perspective): for an upload that means "no code here", not a crash.
    catch_unwind(AssertUnwindSafe(|| codes_in_unguarded(luma, polarity))).unwrap_or_default()
}

fn codes_in_unguarded(luma: &GrayImage, polarity: Polarity) -> Vec<String> {
    let (width, height) = (luma.width() as usize, luma.height() as usize);
    let pixels = luma.as_raw();
    let mut prepared = PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        let pixel = pixels[y * width + x];
        match polarity {
            Polarity::DarkOnLight => pixel,
            Polarity::LightOnDark => 255 - pixel,
        }
    });
    let mut codes: Vec<String> = Vec::new();
    for grid in prepared.detect_grids().iter().take(GRIDS_MAX) {
        let mut content = Vec::new();
        if grid.decode_to(&mut content).is_err() {
            continue;
        }
        let content = String::from_utf8_lossy(&content).into_owned();
        if !codes.contains(&content) {
            codes.push(content);
        }
        if codes.len() == CODES_MAX {
            break;
        }
    }
    codes
}
