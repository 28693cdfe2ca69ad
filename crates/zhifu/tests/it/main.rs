//! The `zhifu` binary as users run it: a real process, real HTTP on loopback.

mod acquiring;
mod browser;
mod codes;
mod contract;
mod funding;
mod merchant;
mod people;
mod qr;
mod red_packets;
mod serve;
mod support;
mod transfers;
mod wallet;
