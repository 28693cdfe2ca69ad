//! The consumer wallet's rules (SPEC §3).

pub mod chart;
pub mod fees;
pub mod funding;
pub(crate) mod hot;
pub mod identity;
pub mod limits;
pub mod p2p;
pub mod pay_codes;
pub mod people;
pub mod pin;
pub mod receive_codes;
pub mod reconcile;
pub mod red_packet;
pub mod red_packets;

#[cfg(test)]
mod tests;
