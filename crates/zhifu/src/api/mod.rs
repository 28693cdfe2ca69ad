//! The JSON API, version 1.

pub mod codes;
pub mod error;
pub mod funding;
pub mod operator;
pub mod people;
pub mod red_packets;
pub mod time;
pub mod transfers;
pub mod wallet;
