//! The JSON API, version 1.

pub mod error;
pub mod funding;
pub mod people;
pub mod time;
pub mod transfers;
pub mod wallet;
