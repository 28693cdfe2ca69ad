//! The image path on arbitrary bytes: `scan` must refuse or read every upload without
//! panicking, within its limits, and return at most its bound of distinct codes.
//!
//! rqrr has a known assertion that some pictures trip (rqrr issue #54); `scan` catches it and
//! treats it as "no code". libfuzzer-sys installs a panic hook that aborts even on a panic
//! that is caught, so the target puts back a quiet hook: a panic that escapes `scan` still
//! reaches libfuzzer-sys's own `catch_unwind` and is reported as a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;
use zhifu_qr_image::{CODES_MAX, ScanLimits, scan};

static QUIET_HOOK: Once = Once::new();

/// Small enough that every input runs fast; a real upload's limits are larger.
const LIMITS: ScanLimits = ScanLimits {
    bytes_max: 1 << 20,
    pixels_max: 4_000_000,
};

fuzz_target!(|data: &[u8]| {
    QUIET_HOOK.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match scan(data, LIMITS) {
        Ok(codes) => {
            assert!(!codes.is_empty(), "a success finds at least one code");
            assert!(codes.len() <= CODES_MAX, "at most CODES_MAX codes");
            let mut unique = codes.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), codes.len(), "codes are distinct");
        }
        Err(error) => assert!(!error.as_str().is_empty()),
    }
});
