//! The JSON API, version 1 (`/api/v1`), and the signed merchant API (`/merchant/v1`).

pub mod bills;
pub mod codes;
pub mod error;
pub mod funding;
pub mod merchant_signing;
pub mod merchants;
pub mod notify;
pub mod operator;
pub mod orders;
pub mod people;
pub mod red_packets;
pub mod settlement;
pub mod time;
pub mod transfers;
pub mod wallet;
