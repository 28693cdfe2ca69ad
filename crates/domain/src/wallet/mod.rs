//! The consumer wallet's rules (SPEC §3).

pub mod chart;
pub mod fees;
pub mod funding;
pub mod identity;
pub mod limits;
pub mod p2p;
pub mod people;
pub mod pin;
pub mod reconcile;
pub mod red_packet;
pub mod red_packets;

#[cfg(test)]
mod tests;
