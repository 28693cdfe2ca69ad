//! `zhifu`: the command line and the HTTP server. This crate is the only one that knows about
//! the terminal, HTTP, JSON and HTML; everything it runs lives in the library crates.

mod api;
mod bench_api;
mod bench_ledger;
mod bench_pay;
mod demo;
mod openapi;
mod qr_cli;
mod serve;
mod web;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zhifu", version, about = "An open mobile-payment platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the API and the web pages, on the embedded SQLite store by default.
    Serve(serve::Args),
    /// Measure a part of zhifu; every benchmark ends with one JSON line.
    #[command(subcommand)]
    Bench(Bench),
    /// EMV QR payloads and images: decode, encode, render, scan. One JSON object on stdout.
    #[command(subcommand)]
    Qr(qr_cli::Qr),
}

#[derive(Subcommand)]
enum Bench {
    /// The ledger engine against a naive one-transaction-per-transfer ledger.
    Ledger(bench_ledger::Args),
    /// Wallet-to-wallet payments over HTTP against a trivial endpoint's rate (the ceiling).
    Api(bench_api::Args),
    /// Pay-code orders to one merchant through the signed merchant API, against the ceiling.
    Pay(bench_pay::Args),
}

fn main() -> anyhow::Result<()> {
    // The one TLS crypto provider in the binary (ring): rustls cannot choose by itself, and
    // the HTTP client refuses to build, even for plain http, until one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Bench(Bench::Ledger(args)) => bench_ledger::run(args),
        Command::Bench(Bench::Api(args)) => bench_api::run(args),
        Command::Bench(Bench::Pay(args)) => bench_pay::run(args),
        Command::Qr(command) => qr_cli::run(command),
    }
}
