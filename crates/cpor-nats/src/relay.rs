//! The relay: publishes the log to JetStream, in log order, after the fact.
//!
//! The log is the source of truth; JetStream is a copy for subscribers. The
//! relay reads durable events from its last acknowledged position, publishes
//! a window of them with `Nats-Msg-Id` = event id (so a republish after a
//! crash is dropped by the stream's duplicate window), awaits every ack, then
//! publishes the current ClaimView of each claim the window touched to the
//! last-value status stream, and only then advances its position.
//!
//! On start it resumes after the last event already in the stream (checked
//! to be this log's event at that position), so a crash between a publish
//! and the position write leaves neither a gap nor a duplicate, and a stream
//! that lost its tail gets it again.
//!
//! The module is split by what each part decides:
//!
//! - `run.rs`: the loop — when to publish, wait, retry, check, sign;
//! - `resume.rs`: where a start resumes, and when it must refuse;
//! - `window.rs`: publishing one window of events and judging their acks;
//! - `statuses.rs`: publishing the claim statuses a window touched;
//! - `streams.rs`: creating, checking and repairing the streams;
//! - `checkpoint.rs`: when to sign a checkpoint, and publishing it;
//! - `migrate.rs`: the v1.0 → v1.1 status-subject migration.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::watch;

use cpor_engine::Positions;
use cpor_log::LogReader;

mod checkpoint;
mod migrate;
mod resume;
mod run;
mod statuses;
mod streams;
mod window;

pub use migrate::StatusMigration;
pub use streams::{ensure_streams, repair_streams, StreamRepair};

/// Events published per window (acks awaited together).
pub const RELAY_WINDOW_EVENTS: usize = 512;
/// Retry delay bounds while JetStream is unreachable.
pub const RELAY_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The events stream's duplicate window: a republish within it is dropped.
pub const EVENTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How often the relay checks that its streams exist and were not emptied
/// (a deleted stream is recreated, an emptied one refilled from the log).
pub const RELAY_STREAM_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How many messages from the end of the events stream a start looks
/// through for the last of this log's events, past foreign ones.
pub const RESUME_SCAN_MESSAGES: u64 = 1_000;
/// How many times in a row JetStream may refuse one event with a server
/// error not known to be about the server's resources before the event is
/// reported unpublishable and skipped (a relay never stalls at one
/// position). Over-`max_payload` and over-`max_msg_size` events are
/// skipped at once; unreachable or full servers are retried without end.
pub const RELAY_EVENT_ATTEMPTS_MAX: u32 = 5;

/// Default checkpoint interval in events: a signed checkpoint at least
/// every this many relayed events (issue 10; `--checkpoint-every-events`).
pub const CHECKPOINT_EVERY_EVENTS: u64 = 1_000;
/// Default checkpoint interval in time: a signed checkpoint of the last
/// relayed event at least this often when anything new was relayed
/// (`--checkpoint-every-seconds`).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

const META_PUBLISHED_POSITION: &str = "published_position";

/// When and with what the relay signs checkpoints.
pub struct CheckpointPolicy {
    /// The Ed25519 key that signs (the data dir's, or `--signing-key`).
    pub signer: cpor_log::checkpoint::CheckpointSigner,
    /// At least every this many events ([`CHECKPOINT_EVERY_EVENTS`]).
    pub every_events: u64,
    /// At least this often when something new was relayed ([`CHECKPOINT_EVERY`]).
    pub every: Duration,
}

/// The checkpoints stream's name: `{PREFIX}_CHECKPOINTS`.
pub fn checkpoints_stream_name(prefix: &str) -> String {
    format!("{}_CHECKPOINTS", prefix.to_uppercase())
}

/// The subject checkpoints are published on: `{prefix}.checkpoint`.
pub fn checkpoint_subject(prefix: &str) -> String {
    format!("{prefix}.checkpoint")
}

/// Stream names derive from the prefix (contract §8).
pub fn stream_names(prefix: &str) -> (String, String) {
    let upper = prefix.to_uppercase();
    (format!("{upper}_EVENTS"), format!("{upper}_STATUS"))
}

/// The status stream's subjects: every status subject of the prefix,
/// `{prefix}.status.claim.{partner_id}.{claim_id}` (contract v1.1 §5).
pub fn status_stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.status.>")]
}

/// The subject a claim's status is published on (contract v1.1 §5): the
/// owner is in the subject so that a partner's dashboard can be allowed
/// exactly `{prefix}.status.claim.{partner_id}.>`.
pub fn status_subject(prefix: &str, partner_id: &str, claim_id: &str) -> String {
    format!("{prefix}.status.claim.{partner_id}.{claim_id}")
}

/// The relay: copies the log, after the fact, into JetStream (events, claim
/// statuses, signed checkpoints). It owns nothing the service needs to
/// answer requests: if it stalls, commands still commit and it catches up.
pub struct Relay {
    /// The JetStream context it publishes through (with `Nats-Msg-Id`, so
    /// a republish after a crash is deduplicated by the stream).
    pub js: jetstream::Context,
    /// Reads the stored events (their exact bytes) and claim views to
    /// publish; the relay never writes the log but for its published
    /// position in meta.
    pub reader: LogReader,
    /// Where it reports `published_position`, `relayed_position` and the
    /// trail counters that `qry.health` shows.
    pub positions: Arc<Positions>,
    /// The durable head announced by the flusher: the relay reads no event
    /// past it (nothing is published before the log flush).
    pub committed: watch::Receiver<u64>,
    /// The subject prefix: events go to `{prefix}.evt.…`, statuses to
    /// `{prefix}.status.claim.…`, streams are `{PREFIX}_EVENTS` and so on.
    pub prefix: String,
    /// Signed checkpoints; `None` signs none.
    pub checkpoints: Option<CheckpointPolicy>,
}

/// Why the relay refuses to start ([`Relay::resume_position`],
/// [`Relay::migrate_status_subjects`]): the stream and the log tell two
/// histories, or NATS failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the events stream {stream} holds position {position} with hash {stream_hash}, but this log has {log_hash} there: the stream belongs to another log (another data dir used this prefix); use another --prefix or delete the stream")]
    ForeignStream {
        /// The events stream's name, `{PREFIX}_EVENTS`.
        stream: String,
        /// The position its first message claims to hold.
        position: u64,
        /// That message's `hash`.
        stream_hash: String,
        /// This log's hash at that position (`nothing` if the log is shorter).
        log_hash: String,
    },
    #[error("the events stream {stream} is ahead of this log (stream at position {stream_position}, log at {log_position}): the data dir is not the one that wrote the stream, or it lost writes; refusing to serve so history is not split")]
    StreamAhead {
        /// The events stream's name, `{PREFIX}_EVENTS`.
        stream: String,
        /// The stream's last sequence.
        stream_position: u64,
        /// This log's last position.
        log_position: u64,
    },
    /// Issue 11 case 3: the stream goes on where the log ends.
    #[error("the events stream {stream} holds position {position}, which chains onto this log's last event (position {log_position}) and is covered by a checkpoint this service signed, but the log does not have it: the log lost acknowledged events or the data dir was restored from an older copy; refusing to serve so history is not split. To serve from this log as it is, stop here and run `cpor repair-stream --prefix {prefix}` (the stream is rebuilt from the log; subscribers must drop what they saw after position {log_position}), then start again")]
    LogBehindStream {
        /// The events stream's name, `{PREFIX}_EVENTS`.
        stream: String,
        /// The subject prefix, for the repair command in the message.
        prefix: String,
        /// The position the stream has and the log lacks (`log_position + 1`).
        position: u64,
        /// This log's last position.
        log_position: u64,
    },
    /// NATS or JetStream failed, or the log could not be read (its error
    /// boxed as an `async_nats::Error`).
    #[error(transparent)]
    Nats(#[from] async_nats::Error),
}

/// A log read error where a [`RelayError`] is due.
fn log_error(error: cpor_log::LogError) -> RelayError {
    RelayError::Nats(error.into())
}
