//! A payload to a QR image: PNG bytes or an SVG document, black on white, with EC level M and
//! 8 px modules unless told otherwise, and always the 4-module quiet zone ISO 18004 asks for
//! (scanners lose codes printed without it).

use std::io::Cursor;

use image::{ImageFormat, Luma};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode, QrResult};

/// The longest payload rendered, in characters: EMV's own maximum.
pub const PAYLOAD_CHARS_MAX: usize = 512;
/// The light border around every code, in modules.
pub const QUIET_ZONE_MODULES: u32 = 4;
/// 1 px modules are for print pipelines that scale up; a phone needs about 3 px per module.
pub const MODULE_PX_MIN: u32 = 1;
/// At 16 px, the largest code (version 40, 177 modules and the quiet zone) is 2,960 px wide,
/// an 8.8-megapixel image: larger sizes are a job for the SVG.
pub const MODULE_PX_MAX: u32 = 16;

/// How much of a code can be damaged before it stops reading. Higher levels make larger codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum ErrorCorrection {
    /// About 7 % of the code.
    Low,
    /// About 15 %: the usual choice for screens and clean prints.
    #[default]
    Medium,
    /// About 25 %.
    Quartile,
    /// About 30 %: for stickers that get scratched, or a logo over the middle.
    High,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RenderOptions {
    /// The side of one module in pixels (PNG) or user units (SVG).
    pub module_px: u32,
    pub error_correction: ErrorCorrection,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            module_px: 8,
            error_correction: ErrorCorrection::Medium,
        }
    }
}

/// Why a payload was not rendered.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the payload is empty")]
    PayloadEmpty,
    #[error("the payload is longer than {chars_max} characters")]
    PayloadTooLong { chars_max: usize },
    /// Only possible with multi-byte characters and high error correction.
    #[error("the payload does not fit in the largest QR code at this error-correction level")]
    PayloadTooLongForCode,
    #[error("a module of {module_px} px is outside {MODULE_PX_MIN}..={MODULE_PX_MAX}")]
    ModulePxOutOfRange { module_px: u32 },
}

impl RenderError {
    /// The stable code: programs match on this, never on the message.
    pub fn as_str(&self) -> &'static str {
        match self {
            RenderError::PayloadEmpty => "PAYLOAD_EMPTY",
            RenderError::PayloadTooLong { .. } | RenderError::PayloadTooLongForCode => {
                "PAYLOAD_TOO_LONG"
            }
            RenderError::ModulePxOutOfRange { .. } => "MODULE_PX_OUT_OF_RANGE",
        }
    }
}

/// The code as a greyscale PNG: 0 for dark modules, 255 for light ones.
pub fn render_png(payload: &str, options: RenderOptions) -> Result<Vec<u8>, RenderError> {
    let code = qr_code(payload, options)?;
    let image = code
        .render::<Luma<u8>>()
        .quiet_zone(true)
        .module_dimensions(options.module_px, options.module_px)
        .build();
    let mut png = Cursor::new(Vec::new());
    // Writing a valid in-memory image to a Vec has no way to fail.
    image
        .write_to(&mut png, ImageFormat::Png)
        .expect("PNG encoding into memory");
    Ok(png.into_inner())
}

/// The code as a standalone SVG document: one light rectangle and one path of dark modules,
/// with `shape-rendering="crispEdges"` so that browsers do not blur module edges.
pub fn render_svg(payload: &str, options: RenderOptions) -> Result<String, RenderError> {
    let code = qr_code(payload, options)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(options.module_px, options.module_px)
        .build())
}

/// The modules of `payload`'s code, after checking the limits.
fn qr_code(payload: &str, options: RenderOptions) -> Result<QrCode, RenderError> {
    if payload.is_empty() {
        return Err(RenderError::PayloadEmpty);
    }
    // Count characters only as far as the limit: the input may be huge.
    if payload.chars().nth(PAYLOAD_CHARS_MAX).is_some() {
        return Err(RenderError::PayloadTooLong {
            chars_max: PAYLOAD_CHARS_MAX,
        });
    }
    if !(MODULE_PX_MIN..=MODULE_PX_MAX).contains(&options.module_px) {
        return Err(RenderError::ModulePxOutOfRange {
            module_px: options.module_px,
        });
    }
    let code: QrResult<QrCode> =
        QrCode::with_error_correction_level(payload.as_bytes(), ec_level(options.error_correction));
    // Byte mode takes any bytes, so the only failure left is size.
    code.map_err(|_| RenderError::PayloadTooLongForCode)
}

fn ec_level(error_correction: ErrorCorrection) -> EcLevel {
    match error_correction {
        ErrorCorrection::Low => EcLevel::L,
        ErrorCorrection::Medium => EcLevel::M,
        ErrorCorrection::Quartile => EcLevel::Q,
        ErrorCorrection::High => EcLevel::H,
    }
}
