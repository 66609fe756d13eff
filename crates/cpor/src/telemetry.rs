//! Logs for every subcommand: one `--log-format` (`text` or `json`,
//! `CPOR_LOG_FORMAT`) and one filter (`RUST_LOG`, `tracing-subscriber`'s
//! `EnvFilter` syntax), set up once in `main` before the subcommand runs.
//!
//! Logs go to stderr; a subcommand's output (an export, a report, a reply)
//! goes to stdout, so the two never mix. Without `RUST_LOG`, `serve` logs
//! at `info` ([`SERVE_FILTER`]) and the one-shot tools only warnings and
//! errors ([`TOOL_FILTER`]), so their stderr carries only what went wrong.

use crate::config::LogFormat;

/// The default filter of `cpor serve`: what it does at `info`, async-nats'
/// own chatter only from `warn`.
pub(crate) const SERVE_FILTER: &str = "info,async_nats=warn";
/// The default filter of every other subcommand.
pub(crate) const TOOL_FILTER: &str = "warn";

/// Installs the global subscriber: `RUST_LOG` when set (and valid), else
/// `default_filter`, in `format`, on stderr.
pub(crate) fn init(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_on_stderr())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Colours only for a person at a terminal: stderr is a terminal and
/// `NO_COLOR` is unset or empty (<https://no-color.org>). Log files and
/// journald get plain text.
fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
