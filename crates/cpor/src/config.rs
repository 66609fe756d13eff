//! `cpor serve` settings: flags and environment (clap), the TOML file, and
//! their validation into typed values with messages that say what to fix.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use cpor_domain::calendar::Calendar;
use cpor_nats::ConnectOptions;

use crate::nats_flags::NatsArgs;

#[derive(Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// The NATS server to serve on, and how to authenticate to it.
    #[command(flatten)]
    pub(crate) nats: NatsArgs,
    /// Where the log lives (sled); one service per data dir.
    #[arg(long, env = "CPOR_DATA_DIR", default_value = "./data")]
    pub(crate) data_dir: PathBuf,
    /// Subject prefix; streams are named after it, upper-cased.
    #[arg(long, env = "CPOR_PREFIX", default_value = "cpor")]
    pub(crate) prefix: String,
    /// TOML configuration file (business calendar).
    #[arg(long, env = "CPOR_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Take time only from `{prefix}.admin.clock` requests (tests, demos).
    /// A plain flag; from the environment `CPOR_MANUAL_CLOCK=1` (also
    /// true/yes/on; 0/false/no/off turn it off).
    #[arg(long, env = "CPOR_MANUAL_CLOCK", action = clap::ArgAction::SetTrue, value_parser = parse_flag)]
    pub(crate) manual_clock: bool,
    /// Accept the wall clock at start however far it is past the log's last
    /// event (more than 30 days is otherwise refused as a clock error).
    #[arg(long, env = "CPOR_ACCEPT_CLOCK_JUMP", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "1", default_value = "0")]
    pub(crate) accept_clock_jump: bool,
    /// Free bytes the data dir's filesystem must keep: below it commands
    /// are answered UNAVAILABLE (disk full) and nothing is written, until
    /// space is freed. 0 leaves only a real ENOSPC, which the service also
    /// survives (it reopens the data dir), at the cost of sled's retries.
    #[arg(long, env = "CPOR_DISK_FREE_MIN_BYTES", default_value_t = cpor_engine::DISK_FREE_MIN_BYTES)]
    pub(crate) disk_free_min_bytes: u64,
    /// Ed25519 key that signs checkpoints (64 hex characters of a seed).
    /// Default: `checkpoint-signing.key` in the data dir, generated on the
    /// first start; a given file must exist.
    #[arg(long, env = "CPOR_SIGNING_KEY", value_name = "FILE")]
    pub(crate) signing_key: Option<PathBuf>,
    /// Remember command ids (their first reply) this many days after the
    /// command: a repeat within it is answered `duplicate`, a later one is
    /// decided anew. The contract asks for at least 7 (§5).
    #[arg(long, env = "CPOR_COMMAND_RETENTION_DAYS", default_value_t = cpor_engine::COMMAND_RETENTION_DEFAULT.as_secs() / 86_400, value_parser = clap::value_parser!(u64).range(7..=36_500))]
    pub(crate) command_retention_days: u64,
    /// Sign a checkpoint at least every N relayed events.
    #[arg(long, env = "CPOR_CHECKPOINT_EVERY_EVENTS", default_value_t = cpor_nats::relay::CHECKPOINT_EVERY_EVENTS, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) checkpoint_every_events: u64,
    /// Sign a checkpoint at least every T seconds when events were relayed.
    #[arg(long, env = "CPOR_CHECKPOINT_EVERY_SECONDS", default_value_t = cpor_nats::relay::CHECKPOINT_EVERY.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) checkpoint_every_seconds: u64,
    /// Address of the admin HTTP listener (/healthz, /readyz, /metrics);
    /// `''` turns it off. Port 0 picks a free port (logged at start).
    #[arg(long, env = "CPOR_HTTP_ADDR", value_name = "HOST:PORT", default_value = crate::admin::HTTP_ADDR_DEFAULT)]
    pub(crate) http_addr: String,
}

/// How log lines on stderr look (`--log-format`, every subcommand).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// One line of text per event, span fields in front (the older name
    /// `human` still works).
    #[value(alias = "human")]
    Text,
    /// One JSON object per line, with the current span and its parents'
    /// fields (`command_id`, `correlation_id` and others), for log collectors.
    Json,
}

/// `CPOR_MANUAL_CLOCK=1` (also true/yes/on); `0`/false/no/off/empty.
fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("expected 1 or 0, got {other:?}")),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    calendar: Option<CalendarConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarConfig {
    #[serde(default = "default_time_zone")]
    time_zone: String,
    #[serde(default = "default_weekend")]
    weekend: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

fn default_time_zone() -> String {
    "UTC".to_string()
}

fn default_weekend() -> Vec<String> {
    vec!["sat".to_string(), "sun".to_string()]
}

/// Validated settings.
pub(crate) struct Settings {
    /// Waits for the server for ever (a supervisor restarts a failed service).
    pub(crate) nats: ConnectOptions,
    pub(crate) data_dir: PathBuf,
    pub(crate) prefix: String,
    pub(crate) calendar: Calendar,
    pub(crate) manual_clock: bool,
    pub(crate) accept_clock_jump: bool,
    /// See [`ServeArgs::disk_free_min_bytes`].
    pub(crate) disk_free_min_bytes: u64,
    pub(crate) signing_key: Option<PathBuf>,
    pub(crate) checkpoint_every_events: u64,
    pub(crate) checkpoint_every: std::time::Duration,
    pub(crate) command_retention: std::time::Duration,
    /// The admin listener's address; `None`: off (and no metrics recorded).
    pub(crate) http_addr: Option<std::net::SocketAddr>,
}

impl ServeArgs {
    pub(crate) fn validate(self) -> anyhow::Result<Settings> {
        if !cpor_nats::wire::is_valid_prefix(&self.prefix) {
            bail!(
                "bad prefix {:?}: use 1 to 32 lowercase letters, digits or underscores, starting with a letter (^[a-z][a-z0-9_]{{0,31}}$)",
                self.prefix
            );
        }
        let http_addr = match self.http_addr.trim() {
            "" => None,
            text => Some(text.parse().map_err(|_| {
                anyhow::anyhow!(
                    "bad --http-addr {text:?}: give an IP address and port, e.g. 127.0.0.1:9464 or 0.0.0.0:9464, or '' to turn the listener off"
                )
            })?),
        };
        let calendar = match &self.config {
            None => Calendar::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                let file: FileConfig = toml::from_str(&text)
                    .with_context(|| format!("bad config file {}", path.display()))?;
                match file.calendar {
                    None => Calendar::default(),
                    Some(c) => Calendar::new(&c.time_zone, &c.weekend, &c.holidays)
                        .with_context(|| format!("bad [calendar] in {}", path.display()))?,
                }
            }
        };
        Ok(Settings {
            nats: self.nats.options("cpor serve", None)?,
            data_dir: self.data_dir,
            prefix: self.prefix,
            calendar,
            manual_clock: self.manual_clock,
            accept_clock_jump: self.accept_clock_jump,
            disk_free_min_bytes: self.disk_free_min_bytes,
            signing_key: self.signing_key,
            checkpoint_every_events: self.checkpoint_every_events,
            checkpoint_every: std::time::Duration::from_secs(self.checkpoint_every_seconds),
            command_retention: std::time::Duration::from_secs(self.command_retention_days * 86_400),
            http_addr,
        })
    }
}
