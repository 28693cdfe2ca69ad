//! `zhifu`: the command line. This crate is the only one that knows about the terminal, JSON
//! and (later) HTTP; everything it runs lives in the library crates.

mod bench_ledger;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "zhifu", version, about = "An open mobile-payment platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure a part of zhifu; every benchmark ends with one JSON line.
    #[command(subcommand)]
    Bench(Bench),
}

#[derive(Subcommand)]
enum Bench {
    /// The ledger engine against a naive one-transaction-per-transfer ledger.
    Ledger(bench_ledger::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bench(Bench::Ledger(args)) => bench_ledger::run(args),
    }
}
