//! zhifu's QR images: a payload to a picture of its code, and a photo back to payloads.
//!
//! # Overview
//! - [`render_png`] and [`render_svg`]: a payload (at most [`PAYLOAD_CHARS_MAX`] characters) to
//!   a black-on-white code with a [`QUIET_ZONE_MODULES`]-module quiet zone, sized and protected
//!   by [`RenderOptions`] (8 px modules and [`ErrorCorrection::Medium`] by default).
//! - [`scan`]: PNG or JPEG bytes, an untrusted upload, to the text of the codes in it, within
//!   [`ScanLimits`] (10 MiB, 24 megapixels by default). It reads dark-on-light and
//!   light-on-dark codes, blurred, JPEG-compressed and washed-out photos, and codes that fill
//!   only part of a large photo.
//! - [`RenderError`] and [`ScanError`]: what went wrong, with a stable code in `as_str`.
//!
//! **Architecture invariant:** this crate does no I/O (bytes in, bytes out) and knows nothing
//! of EMV: it renders and finds any text. Whether a text is a valid payload is
//! `zhifu-codes`'s business.

mod render;
mod scan;

pub use render::{
    ErrorCorrection, MODULE_PX_MAX, MODULE_PX_MIN, PAYLOAD_CHARS_MAX, QUIET_ZONE_MODULES,
    RenderError, RenderOptions, render_png, render_svg,
};
pub use scan::{CODES_MAX, SIDE_PX_MAX, ScanError, ScanLimits, scan};

#[cfg(test)]
mod tests;
