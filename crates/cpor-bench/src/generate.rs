//! The log generator: a realistic data dir of any size, written straight
//! through `cpor-log` (decide + append + commit in batches, one flush at the
//! end), for the replay benchmark and for timing the audit tools on it.
//!
//! The commands are the benchmark's mix ([`crate::workload`]) from
//! [`GENERATE_LANES`] interleaved lifecycles, on a synthetic clock that
//! advances [`GENERATE_SECONDS_PER_COMMAND`] per command, so abandoned claims
//! miss their deadlines and the scheduler's events are in the log as the
//! service would write them. The same seed gives the same log, byte for
//! byte.
//!
//! Two threads: a producer builds the requests and parses them with the
//! service's own parser (`wire::parse`: the same envelopes and idempotency
//! fingerprints the service would store), and hands them over in chunks of
//! [`GENERATE_STEP_COMMANDS`]; the calling thread decides, appends and
//! commits. The order of the commands does not depend on the threads, so
//! neither does the log. (Profile of the single-threaded generator, perf:
//! building, serializing and parsing the requests took ~19 % of its CPU,
//! `Log::commit` ~39 % and sled's own threads ~16 %.)

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::TimeZone;

use cpor_domain::command::CommandEnvelope;
use cpor_domain::types::Timestamp;
use cpor_log::LogError;
use cpor_nats::wire::{self, Request};

use crate::workload::Stream;
use crate::writer::{Outcome, Writer};

/// Commands between two runs of the deadline scheduler (its cadence on the
/// synthetic clock: 1,000 × 15 s, about 4 hours).
pub const GENERATE_STEP_COMMANDS: usize = 1_000;
/// Scheduler steps per atomic batch (one `commit` each): 8,000 commands.
/// A claim's view, listing and deadline entries are written once per batch
/// that touches it, so larger batches write fewer of them; the events and
/// their order do not depend on it (the deadlines fire per step).
pub const GENERATE_STEPS_PER_COMMIT: usize = 8;
/// Parsed chunks the producer thread may hold ready (bounded memory).
const GENERATE_CHUNKS_AHEAD: usize = 4;
/// Lifecycles in progress at once (the "clients" of the generated history).
pub const GENERATE_LANES: usize = 256;
/// Synthetic time between two commands.
pub const GENERATE_SECONDS_PER_COMMAND: i64 = 15;
/// Deadlines fired per batch at most (the engine's per-batch bound).
pub const GENERATE_DEADLINES_PER_BATCH: usize = cpor_engine::DEADLINES_PER_BATCH_MAX;

/// When the generated history starts: a Monday morning.
pub fn generate_start() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .expect("a valid start time")
}

/// What a generated log holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GeneratedLog {
    /// Events written (the last position).
    pub events: u64,
    pub claims: u64,
    pub cases: u64,
    pub tenants: u64,
    pub subscriptions: u64,
    pub partners: u64,
    /// Commands decided (accepted and refused).
    pub commands: u64,
    /// Commands refused (they write nothing).
    pub refused: u64,
    /// Events written by the deadline scheduler.
    pub deadline_events: u64,
    /// Estimated heap bytes of the decision state folded from this log
    /// (see [`crate::memory`]).
    pub state_bytes: u64,
    /// Time of the last event.
    pub last_time: Option<Timestamp>,
    pub elapsed: Duration,
}

/// When a generated log stops: at the end of the scheduler step
/// ([`GENERATE_STEP_COMMANDS`]) that reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// At least this many events (the last position).
    Events(u64),
    /// At least this many claims in the state.
    Claims(u64),
}

/// What to generate: how much, from which seed, from which time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerateSpec {
    pub target: Target,
    /// Workload seed: the same seed gives the same log, byte for byte.
    pub seed: u64,
    /// Time of the first command ([`generate_start`] by default). A log a
    /// benchmark serves starts at [`growth_start`] so that its history ends
    /// after the wall clock: the service then keeps the last event's time
    /// (its clock never runs backwards) and no backlog of deadlines fires.
    pub start: Timestamp,
}

impl GenerateSpec {
    /// At least `events` events from [`generate_start`].
    pub fn events(events: u64, seed: u64) -> GenerateSpec {
        GenerateSpec {
            target: Target::Events(events),
            seed,
            start: generate_start(),
        }
    }
}

/// The start of the logs the benchmark serves (the growth curve): a Monday
/// morning far enough ahead that 1M claims (15 s per command, ~6.5M
/// commands: three years) end after the wall clock for decades.
pub fn growth_start() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2100, 1, 4, 8, 0, 0)
        .single()
        .expect("a valid start time")
}

/// Writes a log of at least `target_events` events (it stops at the end of
/// the scheduler step that reaches it) into `dir`, which must be empty or absent.
///
/// # Panics
/// When the log cannot be written; see [`try_generate_log`].
pub fn generate_log(dir: &Path, target_events: u64, seed: u64) -> GeneratedLog {
    try_generate_log(dir, target_events, seed, |_| {})
        .unwrap_or_else(|e| panic!("cannot generate a log in {}: {e}", dir.display()))
}

/// [`generate_log`], reporting progress (events so far) after each batch.
pub fn try_generate_log(
    dir: &Path,
    target_events: u64,
    seed: u64,
    progress: impl FnMut(u64),
) -> Result<GeneratedLog, LogError> {
    try_generate(dir, GenerateSpec::events(target_events, seed), progress)
}

/// Whether a generated log has reached its target.
fn reached(target: Target, writer: &Writer) -> bool {
    match target {
        Target::Events(events) => writer.log().head().position >= events,
        Target::Claims(claims) => writer.state().claims.len() as u64 >= claims,
    }
}

/// One request of the stream after the service's parser: a command to
/// decide, or a request the parser refused (it writes nothing).
enum Parsed {
    Command(Box<CommandEnvelope>, String),
    Refused,
}

/// Builds and parses the stream's requests, [`GENERATE_STEP_COMMANDS`] per
/// chunk, until the receiver hangs up.
fn produce(seed: u64, chunks: std::sync::mpsc::SyncSender<Vec<Parsed>>) {
    let mut stream = Stream::new(seed, GENERATE_LANES);
    loop {
        let chunk: Vec<Parsed> = stream
            .by_ref()
            .take(GENERATE_STEP_COMMANDS)
            .map(|req| match wire::parse(&req.tail, &req.payload()) {
                Ok(Request::Command {
                    envelope,
                    fingerprint,
                }) => Parsed::Command(Box::new(envelope), fingerprint),
                Ok(_) => unreachable!("the workload sends only commands"),
                Err(_) => Parsed::Refused,
            })
            .collect();
        if chunks.send(chunk).is_err() {
            return;
        }
    }
}

/// Writes the log `spec` describes into `dir` (empty or absent), reporting
/// progress (events so far) after each batch of [`GENERATE_STEPS_PER_COMMIT`]
/// × [`GENERATE_STEP_COMMANDS`] commands.
///
/// Errors: `dir` already holds a log; the log cannot be written.
pub fn try_generate(
    dir: &Path,
    spec: GenerateSpec,
    mut progress: impl FnMut(u64),
) -> Result<GeneratedLog, LogError> {
    let started = Instant::now();
    let mut writer = Writer::open(dir)?;
    if writer.log().head().position != 0 {
        return Err(LogError::Storage(format!(
            "{} already holds a log (position {}); generate into an empty dir",
            dir.display(),
            writer.log().head().position
        )));
    }
    // A generated log is reproducible byte for byte, ids included.
    writer.set_id_source(cpor_log::IdSource::Seeded(spec.seed));
    let mut out = GeneratedLog::default();
    let mut now = spec.start;
    std::thread::scope(|scope| -> Result<(), LogError> {
        let (sender, chunks) = std::sync::mpsc::sync_channel(GENERATE_CHUNKS_AHEAD);
        scope.spawn(move || produce(spec.seed, sender));
        while !reached(spec.target, &writer) {
            let mut appender = writer.begin();
            for _ in 0..GENERATE_STEPS_PER_COMMIT {
                let chunk = chunks.recv().expect("the producer runs until we hang up");
                now = generate_step(&mut writer, &mut appender, chunk, now, &mut out)?;
                out.deadline_events +=
                    writer.fire_deadlines(&mut appender, now, GENERATE_DEADLINES_PER_BATCH)?;
                if reached_in(spec.target, &writer, &appender) {
                    break;
                }
            }
            let position = writer.commit(appender)?;
            progress(position);
        }
        // Dropping the receiver ends the producer; the scope joins it.
        drop(chunks);
        Ok(())
    })?;
    writer.flush()?;
    // What a service's graceful stop leaves: a state snapshot at the head.
    let snapshot = cpor_log::snapshot::encode(writer.state(), writer.log().head())?;
    cpor_log::snapshot::write(dir, &snapshot)?;
    let state = writer.state();
    out.events = writer.log().head().position;
    out.claims = state.claims.len() as u64;
    out.cases = state.cases.len() as u64;
    out.tenants = state.tenants.len() as u64;
    out.subscriptions = state.subscriptions.len() as u64;
    out.partners = state.partners.len() as u64;
    out.state_bytes = crate::memory::state_heap_bytes(state) as u64;
    out.last_time = Some(now);
    out.elapsed = started.elapsed();
    Ok(out)
}

/// Whether the target is reached with the batch in progress: a log stops
/// at the end of the scheduler step that reaches it, as it did when every
/// step was a commit of its own.
fn reached_in(target: Target, writer: &Writer, appender: &cpor_log::Appender) -> bool {
    match target {
        Target::Events(events) => appender.head().position >= events,
        Target::Claims(_) => reached(target, writer),
    }
}

/// Decides one chunk of parsed commands into the appender, the synthetic
/// clock advancing per command; returns the time reached.
fn generate_step(
    writer: &mut Writer,
    appender: &mut cpor_log::Appender,
    chunk: Vec<Parsed>,
    mut now: Timestamp,
    out: &mut GeneratedLog,
) -> Result<Timestamp, LogError> {
    let step = chrono::Duration::seconds(GENERATE_SECONDS_PER_COMMAND);
    for parsed in chunk {
        now += step;
        out.commands += 1;
        match parsed {
            Parsed::Command(envelope, fingerprint) => {
                if let Outcome::Refused(_) =
                    writer.command(appender, &envelope, &fingerprint, now, false)?
                {
                    out.refused += 1;
                }
            }
            Parsed::Refused => out.refused += 1,
        }
    }
    Ok(now)
}
