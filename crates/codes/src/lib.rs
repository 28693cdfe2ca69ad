//! zhifu's codes: the EMVCo merchant-presented QR codec.
