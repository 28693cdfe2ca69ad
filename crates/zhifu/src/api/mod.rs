//! The JSON API, version 1.

pub mod error;
pub mod people;
pub mod time;
pub mod wallet;
