//! `cpor`: the CPOR claim service and its audit tools.
//!
//! Thin glue: arguments are parsed (clap), validated into typed settings
//! (`config`), and handed to the library crates. `anyhow` lives here only.

/// `println!` that returns the write's `io::Result` instead of panicking
/// on a closed pipe: `cpor rebuild | head -1` then ends quietly, since
/// `main` treats `BrokenPipe` as success. Every subcommand prints through
/// it (a tidy test bans `println!` in this crate).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!`'s counterpart of [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod admin;
mod audit;
mod client;
mod config;
mod keys;
mod nats_flags;
mod repair;
mod repair_stream;
mod serve;
mod snapshot;
mod telemetry;

/// The process's allocator: jemalloc, not glibc's malloc. glibc's
/// `malloc`/`free` were about a fifth of the CPU samples in every profile
/// of this service (the writer's batches, sled's pages, events decoded on
/// one thread and freed on another during a replay), and its per-thread
/// arenas kept freed memory resident. In alternating rounds against glibc
/// and mimalloc (docs/performance.md, "Global allocator") jemalloc took the
/// least CPU per command and per replayed event and kept the least RSS
/// serving 100k claims. It is chosen here, in the binaries, never in a
/// library: a library's tests keep their own (`cpor-bench`'s memory test
/// counts allocations with `stats_alloc`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use config::LogFormat;

#[derive(Parser)]
#[command(
    name = "cpor",
    version,
    about = "CPOR claim service: claims, reviews and arbitration, event-sourced"
)]
struct Cli {
    /// Log lines on stderr: `text` or `json` (one object per line). Which
    /// lines: `RUST_LOG` (default `info` for `serve`, `warn` for the tools).
    #[arg(
        long,
        global = true,
        env = "CPOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
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
    /// Upgrade a stopped service's data dir to this release's store layout
    /// (`cpor serve` does the same at its first start).
    Migrate(audit::MigrateArgs),
    /// Write a snapshot of the decision state of a stopped service's data
    /// dir, folded from its log, so the next start folds only what follows.
    Snapshot(snapshot::SnapshotArgs),
    /// Send one request to a running service and print the reply.
    Request(client::RequestArgs),
    /// Follow claim statuses (or events) from JetStream, like a dashboard.
    Watch(client::WatchArgs),
    /// The start-up repairs that need a person (`cpor serve` and
    /// `cpor verify --data-dir` name the step): `--accept-log-end`.
    Repair(repair::RepairArgs),
    /// Rebuild a service's JetStream copy from its log (after someone else
    /// wrote into it): deletes the events stream and purges the status one.
    RepairStream(repair_stream::RepairStreamArgs),
    /// The checkpoint signing key: `cpor keys show` prints its public key.
    Keys(keys::KeysArgs),
    /// Print a shell completion script: `cpor completions bash >
    /// /etc/bash_completion.d/cpor` (also zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout, or write one page per
    /// subcommand into a directory.
    Man {
        /// Write `cpor.1`, `cpor-serve.1`, … into this directory instead.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let serve = matches!(cli.command, Commands::Serve(_));
    let default_filter = match serve {
        true => telemetry::SERVE_FILTER,
        false => telemetry::TOOL_FILTER,
    };
    let _telemetry = match telemetry::init(cli.log_format, default_filter, serve) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("cpor: {}", error_text(&error));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Commands::Serve(args) => serve::main(args),
        Commands::Export(args) => audit::export(args),
        Commands::Verify(args) => audit::verify(args),
        Commands::History(args) => audit::history(args),
        Commands::Replay(args) => audit::replay(args),
        Commands::Rebuild(args) => audit::rebuild(args),
        Commands::Migrate(args) => audit::migrate(args),
        Commands::Snapshot(args) => snapshot::snapshot(args),
        Commands::Request(args) => client::request(args),
        Commands::Watch(args) => client::watch(args),
        Commands::Repair(args) => repair::repair(args),
        Commands::RepairStream(args) => repair_stream::repair_stream(args),
        Commands::Keys(args) => keys::keys(args),
        Commands::Completions { shell } => completions(shell),
        Commands::Man { out_dir } => man(out_dir),
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
            eprintln!("cpor: {}", error_text(&error));
            // The engine stopped on what a restart may not fix by itself
            // (acknowledged writes missing, a bug): its own code, for
            // supervisors and operators (deploy/README.md).
            if error.downcast_ref::<cpor_engine::Fatal>().is_some() {
                return ExitCode::from(cpor_engine::Fatal::EXIT_CODE);
            }
            ExitCode::from(2)
        }
    }
}

/// `cpor completions SHELL`: the script, generated from [`Cli`] itself.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    // Into a buffer first: the generator panics on a write error, and a
    // closed pipe (`cpor completions bash | head`) is no failure.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cpor", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// `cpor man [--out-dir DIR]`: the man page of `cpor` on stdout, or one
/// page per (sub)command written into `DIR`.
fn man(out_dir: Option<std::path::PathBuf>) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let command = Cli::command();
    match out_dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout().lock())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, &dir)
                .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `error` and its causes, `: `-separated, each said once. Some library
/// errors (async-nats') print their source in their own text as well as
/// returning it as their source, which `{:#}` would repeat: "no responders:
/// no responders: no responders".
fn error_text(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let mut text = cause.to_string();
        if let Some(source) = cause.source().map(ToString::to_string) {
            if text != source {
                if let Some(own) = text.strip_suffix(&source) {
                    text = own.trim_end_matches([':', ' ']).to_string();
                }
            }
        }
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::error_text;

    /// An error that, like async-nats', prints its source in its own text.
    #[derive(Debug)]
    struct Wrapping(std::io::Error);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IO error: {}", self.0)
        }
    }

    impl std::error::Error for Wrapping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = anyhow::Error::new(Wrapping(io)).context("cannot reach NATS");
        assert_eq!(
            format!("{error:#}"),
            "cannot reach NATS: IO error: refused: refused"
        );
        assert_eq!(error_text(&error), "cannot reach NATS: IO error: refused");

        let repeated = std::io::Error::other("no responders");
        let error = anyhow::Error::new(repeated)
            .context("no responders")
            .context("request failed");
        assert_eq!(error_text(&error), "request failed: no responders");

        let plain = anyhow::anyhow!("bad").context("outer");
        assert_eq!(error_text(&plain), "outer: bad");
    }
}
