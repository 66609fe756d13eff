//! `cpor`: the CPOR claim service and its audit tools.
//!
//! Thin glue: arguments are parsed (clap), validated into typed settings
//! (`config`), and handed to the library crates. `anyhow` lives here only.

mod audit;
mod client;
mod config;
mod nats_flags;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cpor",
    version,
    about = "CPOR claim service: claims, reviews and arbitration, event-sourced"
)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Run the service: commands and queries over NATS, events to JetStream.
    Serve(config::ServeArgs),
    /// Write the events as CloudEvents JSON lines, in log order.
    Export(audit::ExportArgs),
    /// Check positions, versions and the hash chain of a log or an export.
    Verify(audit::VerifyArgs),
    /// One claim's events and its view, as of a time.
    History(audit::HistoryArgs),
    /// The state of all claims and cases as of a time, from the log alone.
    Replay(audit::ReplayArgs),
    /// Recompute every projection from the log and compare with the stored ones.
    Rebuild(audit::RebuildArgs),
    /// Send one request to a running service and print the reply.
    Request(client::RequestArgs),
    /// Follow claim statuses (or events) from JetStream, like a dashboard.
    Watch(client::WatchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Commands::Serve(args) => serve::main(args),
        Commands::Export(args) => audit::export(args),
        Commands::Verify(args) => audit::verify(args),
        Commands::History(args) => audit::history(args),
        Commands::Replay(args) => audit::replay(args),
        Commands::Rebuild(args) => audit::rebuild(args),
        Commands::Request(args) => client::request(args),
        Commands::Watch(args) => client::watch(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            // A closed pipe (`cpor export | head`) is not a failure.
            if error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("cpor: {error:#}");
            ExitCode::from(2)
        }
    }
}
