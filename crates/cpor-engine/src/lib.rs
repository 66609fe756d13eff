//! The engine: the one place where decisions meet storage and time.
//!
//! A single writer, on its own OS thread ([`WRITER_THREAD`]), owns the
//! decision [`State`] and the [`Log`]. Requests reach it through a bounded
//! queue; it takes as many as are waiting (up to [`WRITER_BATCH_MAX`]),
//! decides each against the state as left by the ones before, and writes
//! all their events, command records and the head in one atomic `log`
//! batch: its only synchronous write. The batch's projections and replies
//! then go to the projector thread ([`PROJECTOR_THREAD`], the `projector`
//! module), which applies the projections in order and hands the batch to
//! the flusher task, which makes every batch waiting durable with one flush
//! and only then answers their requests, while the writer already decides
//! the next batch. This is group commit, pipelined: one flush pays for many
//! commands, the disk and the CPUs work at the same time, and nothing is
//! acknowledged before it is on disk and visible to queries.
//!
//! Time enters here and nowhere else. The writer reads its [`Clock`] once per
//! batch and hands the instant to `decide`. Deadlines are watched in the
//! state's ordered set of due times; when the clock passes one, the writer
//! decides a `DeadlineElapsed` command like any other, so what a deadline did
//! is in the log, and a replay needs no clock.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use cpor_domain::access::authorize_envelope;
use cpor_domain::calendar::Calendar;
use cpor_domain::command::{Command, CommandEnvelope};
use cpor_domain::decide::{decide, Context};
use cpor_domain::error::{ErrorCode, Rejection};
use cpor_domain::event::AggregateId;
use cpor_domain::state::State;
use cpor_domain::types::{Actor, DeadlineKind, Timestamp};
use cpor_log::snapshot::{self, Snapshotter};
use cpor_log::{CommandRecord, Log, LogError, LogReader};

/// An accepted command's reply fields, as stored for idempotent repeats.
pub use cpor_log::Accepted;
pub mod metrics;

/// Requests waiting for the writer. When full, callers wait: backpressure
/// instead of unbounded memory.
pub const WRITER_QUEUE_MAX: usize = 4_096;
/// Commands decided and written per group commit (one flush).
pub const WRITER_BATCH_MAX: usize = 512;
/// Deadlines fired per group commit; more wait for the next batch.
pub const DEADLINES_PER_BATCH_MAX: usize = 256;

/// The largest event (sealed CloudEvent bytes) a command may write until
/// the publisher says what it can send ([`Engine::set_event_bytes_max`]):
/// what fits NATS's default `max_payload` (1 MiB) with 1 KiB left for the
/// publish headers.
pub const EVENT_BYTES_MAX_DEFAULT: usize = 1_048_576 - 1_024;

/// Free space the data dir's filesystem must keep for the writer to write
/// a batch. Below it every request is answered `UNAVAILABLE` (saying the
/// disk is full) and nothing is written, rather than letting sled meet
/// `ENOSPC` (which it survives, but only by a reopen of the data dir: see
/// the `recovery` module); writing resumes by itself once space is back.
/// sled grows its file by 512 KiB segments and writes snapshots beside it:
/// 16 MiB covers many batches of the largest commands. Set per service with
/// [`Options::disk_free_min_bytes`].
pub const DISK_FREE_MIN_BYTES: u64 = 16 * 1024 * 1024;

/// How often an idle writer with due deadlines looks at the free space
/// again while the disk is full.
const DISK_FULL_RECHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

const META_MANUAL_CLOCK_MS: &str = "manual_clock_ms";

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Log(#[from] LogError),
    /// The writer's thread or its timer runtime could not be created (the
    /// OS refused a thread: limits reached).
    #[error("cannot start the writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Why the writer stopped for good while serving: the process must exit
/// (with [`Fatal::EXIT_CODE`]) rather than go on. Returned by
/// [`WriterThread::stopped`]; the binary turns it into its exit code, a
/// library never exits the process itself.
#[derive(Debug, thiserror::Error)]
pub enum Fatal {
    /// After a failed write, the reopened data dir ends before the last
    /// position already acknowledged (and perhaps published): sled lost
    /// flushed writes. Serving on would contradict what clients were told;
    /// a restart refuses too and names the repair (`cpor verify --data-dir`
    /// says what is missing).
    #[error(
        "the reopened log ends at position {head}, before position {acknowledged} which was \
         acknowledged; exiting (a restart refuses too: run `cpor verify --data-dir` to see \
         what is missing)"
    )]
    LogBehindAcknowledged { head: u64, acknowledged: u64 },
    /// A thread of the engine panicked: an invariant of this code broke
    /// (an `assert!`), and a program that is wrong stops rather than go on
    /// writing.
    #[error("the engine's {thread} thread stopped on a bug: {message}")]
    Panicked {
        thread: &'static str,
        message: String,
    },
}

impl Fatal {
    /// The process's exit code for a fatal error: 70, `EX_SOFTWARE` of
    /// BSD's sysexits.h ("an internal software error"), which supervisors
    /// restart (deploy/README.md, systemd).
    pub const EXIT_CODE: u8 = 70;
}

/// The name of the writer's thread (`ps -T`, `/proc/PID/task/*/comm`, the
/// benchmark's per-thread CPU figures).
pub const WRITER_THREAD: &str = "cpor-writer";

/// A handle on the engine's event size bound (see
/// [`Engine::set_event_bytes_max`]) that does not keep the writer running.
#[derive(Clone, Debug)]
pub struct EventBytesMax(Arc<AtomicUsize>);

impl EventBytesMax {
    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }
}

/// Where the writer takes the time from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// The machine's clock (never allowed to go backwards in the log).
    Wall,
    /// Only `admin.clock` requests move time (tests, demos).
    Manual,
}

pub struct Options {
    pub data_dir: PathBuf,
    pub calendar: Calendar,
    pub clock: ClockMode,
    /// Where wall and monotonic time come from ([`SystemTime`] in service).
    pub time_source: Arc<dyn TimeSource>,
    /// Operator override: take the wall clock's first reading as it is,
    /// however far past the log's last event (see [`CLOCK_GAP_AT_START_MAX`]).
    pub accept_clock_jump: bool,
    /// Free bytes the data dir's filesystem must keep for a batch to be
    /// written ([`DISK_FREE_MIN_BYTES`] unless set; 0 lets sled meet a real
    /// `ENOSPC`, which tests do).
    pub disk_free_min_bytes: u64,
    /// How long a command id is remembered (its record kept) after the
    /// command was decided: a repeat within it gets the first reply, a
    /// repeat after it is decided anew. At least [`COMMAND_RETENTION_MIN`]
    /// (contract §5); [`COMMAND_RETENTION_DEFAULT`] unless set.
    pub command_retention: std::time::Duration,
}

/// The contract's floor for remembering command ids (§5: at least 7 days).
pub const COMMAND_RETENTION_MIN: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);
/// How long command ids are remembered unless configured: the contract's
/// 7 days plus one, so a client retrying on the seventh day by its own
/// clock is still inside it.
pub const COMMAND_RETENTION_DEFAULT: std::time::Duration =
    std::time::Duration::from_secs(8 * 24 * 3600);
/// Expired command records removed per group commit at most (the rest go
/// with the next batches), so a backlog after a long stop never makes one
/// batch large.
pub const COMMAND_EXPIRY_PER_BATCH_MAX: usize = 1_024;

impl Options {
    /// The data dir and calendar with a clock mode, the machine's clocks and
    /// no override.
    pub fn new(data_dir: PathBuf, calendar: Calendar, clock: ClockMode) -> Options {
        Options {
            data_dir,
            calendar,
            clock,
            time_source: Arc::new(SystemTime::new()),
            accept_clock_jump: false,
            disk_free_min_bytes: DISK_FREE_MIN_BYTES,
            command_retention: COMMAND_RETENTION_DEFAULT,
        }
    }
}

/// How far the wall clock may run ahead of the monotonic clock between two
/// readings of a running service. A step beyond it is taken for a wrong
/// clock (a host set two years ahead; an NTP step after a bad sync): the
/// writer writes nothing (requests get `UNAVAILABLE` saying why, deadlines
/// do not fire) and logs an error until the wall clock is back within the
/// bound. NTP's own step threshold is 128 ms, so ten minutes leaves room for
/// any honest correction.
pub const CLOCK_JUMP_MAX: std::time::Duration = std::time::Duration::from_secs(10 * 60);
/// At start there is no monotonic reading to compare with: the wall clock
/// may then be at most this far past the log's last event. A service idle
/// or stopped for longer starts only with the operator's override
/// (`cpor serve --accept-clock-jump`).
pub const CLOCK_GAP_AT_START_MAX: std::time::Duration =
    std::time::Duration::from_secs(30 * 24 * 3600);

/// The clocks the writer reads: wall time for what it records, monotonic
/// time to tell the passing of time from a step of the wall clock.
pub trait TimeSource: Send + Sync {
    /// The wall clock (UTC).
    fn wall(&self) -> Timestamp;
    /// A monotonic reading: time since an arbitrary fixed start.
    fn monotonic(&self) -> std::time::Duration;
}

/// The machine's clocks: `Utc::now` and `std::time::Instant`.
pub struct SystemTime {
    start: std::time::Instant,
}

impl SystemTime {
    pub fn new() -> SystemTime {
        SystemTime {
            start: std::time::Instant::now(),
        }
    }
}

impl Default for SystemTime {
    fn default() -> SystemTime {
        SystemTime::new()
    }
}

impl TimeSource for SystemTime {
    fn wall(&self) -> Timestamp {
        chrono::Utc::now()
    }

    fn monotonic(&self) -> std::time::Duration {
        self.start.elapsed()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Accepted { accepted: Accepted, duplicate: bool },
    Rejected(Rejection),
}

/// What an [`Engine`] handle sends the writer.
enum Request {
    Command {
        /// Boxed: commands are large and the queue holds many requests.
        envelope: Box<CommandEnvelope>,
        fingerprint: String,
        reply: oneshot::Sender<Outcome>,
        /// When it was queued: its wait is measured (`metrics::QUEUE_WAIT_SECONDS`).
        queued_at: std::time::Instant,
    },
    SetClock {
        now: Timestamp,
        reply: oneshot::Sender<Result<(), Rejection>>,
    },
}

/// Positions visible to health checks and the relay.
#[derive(Debug, Default)]
pub struct Positions {
    /// The durable position: the last position whose batch is written and
    /// flushed, hence every reply resting on it may be (or was) sent. The
    /// one source of truth for it: the flusher alone advances it (never
    /// back), `qry.health` and the admin gauges read it
    /// ([`Positions::log_position`]), the relay waits on it
    /// ([`Positions::subscribe_log`]) and reads no event past it, and the
    /// writer's reopen after a failed write checks the data dir still holds
    /// it.
    log: watch::Sender<u64>,
    /// Last position up to which every event is in the events stream as
    /// the log's own bytes (set by the relay). It stops before an event
    /// whose stream copy is someone else's message or that JetStream
    /// refused, however far the relay goes on.
    pub published: AtomicU64,
    /// Last position the relay has handled: published, or reported as
    /// forged or unpublishable.
    pub relayed: AtomicU64,
    /// Events whose id someone else's message holds in the events stream
    /// (an ack said `duplicate` and the stored bytes differ), and the first.
    pub forged_events: AtomicU64,
    pub first_forged_position: AtomicU64,
    /// Events JetStream refused for good (too large, any permanent error),
    /// and the first: reported and skipped so publishing never stalls.
    pub unpublishable_events: AtomicU64,
    pub first_unpublishable_position: AtomicU64,
    /// Messages in the events stream that are not this log's events (junk,
    /// forgeries), seen when resuming.
    pub foreign_messages: AtomicU64,
}

impl Positions {
    /// The durable position (see the field's docs): everything up to it is
    /// on disk and may be acknowledged and published.
    pub fn log_position(&self) -> u64 {
        *self.log.borrow()
    }

    /// Wakes whenever the durable position advances; holds its last value.
    pub fn subscribe_log(&self) -> watch::Receiver<u64> {
        self.log.subscribe()
    }

    /// Advances the durable position to `position` (never back).
    fn advance_log(&self, position: u64) {
        self.log.send_if_modified(|current| {
            let advanced = position > *current;
            *current = (*current).max(position);
            advanced
        });
    }
}

/// A handle to the running engine. Cheap to clone; when every handle is
/// dropped the writer finishes what is queued and stops.
#[derive(Clone)]
pub struct Engine {
    /// The writer's queue (bounded by [`WRITER_QUEUE_MAX`]): a flood waits
    /// here instead of growing memory.
    requests: mpsc::Sender<Request>,
    /// Lock-free reads of the log and projections, for queries (which never
    /// wait for the writer).
    reader: LogReader,
    /// Log, published and relayed positions, shared with the flusher and
    /// the relay, for `qry.health`.
    positions: Arc<Positions>,
    /// Wall or manual: `admin.clock` is refused unless manual.
    clock: ClockMode,
    /// Shared with the writer: the largest event a command may write.
    event_bytes_max: Arc<AtomicUsize>,
}

impl Engine {
    /// Opens the log, rebuilds the decision state from it and starts the
    /// writer on its thread ([`WRITER_THREAD`]) and the flusher on the
    /// current tokio runtime (so it must be called inside one). Returns the
    /// handle and the writer's thread, which stops once every handle is
    /// dropped and what was queued is durable and answered.
    pub fn start(options: Options) -> Result<(Engine, WriterThread), Error> {
        let (log, state) = Log::open(&options.data_dir)?;
        let reader = log.reader().clone();
        let head = log.head().position;
        let positions = Arc::new(Positions::default());
        positions.advance_log(head);
        let clock = start_clock(&options, &reader)?;
        tracing::info!(position = head, claims = state.claims.len(), "log opened");
        // Due deadlines as of the last event.
        metrics::record_state(&state, last_event_time(&reader)?);
        let event_bytes_max = Arc::new(AtomicUsize::new(EVENT_BYTES_MAX_DEFAULT));
        let (tx, rx) = mpsc::channel(WRITER_QUEUE_MAX);
        let (staged_tx, staged_rx) = mpsc::channel(FLUSH_QUEUE_MAX);
        let (flush_tx, flush_rx) = mpsc::channel(FLUSH_QUEUE_MAX);
        let failed_epoch = Arc::new(AtomicU64::new(0));
        let projector =
            projector::spawn(staged_rx, flush_tx, failed_epoch.clone()).map_err(Error::Thread)?;
        let flusher_task = tokio::spawn(flusher(
            reader.clone(),
            flush_rx,
            positions.clone(),
            failed_epoch.clone(),
        ));
        let writer = Writer {
            log,
            state,
            calendar: options.calendar,
            clock,
            requests: rx,
            staged: staged_tx,
            projector: Some(projector),
            skipped_deadlines: BTreeSet::new(),
            event_bytes_max: event_bytes_max.clone(),
            disk_was_full: false,
            state_gauges_at: std::time::Instant::now(),
            state_gauges_stale: false,
            disk_free_min_bytes: options.disk_free_min_bytes,
            store: recovery::StoreHealth::new(failed_epoch, positions.clone()),
            command_retention: command_retention(options.command_retention),
            snapshots: Some(Snapshotter::new(&reader, snapshot::SNAPSHOT_EVERY_EVENTS)),
        };
        let thread = WriterThread::spawn(writer, flusher_task)?;
        Ok((
            Engine {
                requests: tx,
                reader,
                positions,
                clock: options.clock,
                event_bytes_max,
            },
            thread,
        ))
    }

    /// Decides and durably records one command. `fingerprint` identifies the
    /// request body, to tell a retry (same body) from a reused command id.
    pub async fn execute(&self, envelope: CommandEnvelope, fingerprint: String) -> Outcome {
        let (reply, answer) = oneshot::channel();
        let request = Request::Command {
            envelope: Box::new(envelope),
            fingerprint,
            reply,
            queued_at: std::time::Instant::now(),
        };
        if self.requests.send(request).await.is_err() {
            return Outcome::Rejected(Rejection::new(ErrorCode::Unavailable));
        }
        answer
            .await
            .unwrap_or_else(|_| Outcome::Rejected(Rejection::new(ErrorCode::Unavailable)))
    }

    /// Moves the manual clock; deadlines it passes are written first.
    pub async fn set_clock(&self, now: Timestamp) -> Result<(), Rejection> {
        if self.clock != ClockMode::Manual {
            return Err(Rejection::new(ErrorCode::ClockNotManual));
        }
        let (reply, answer) = oneshot::channel();
        if self
            .requests
            .send(Request::SetClock { now, reply })
            .await
            .is_err()
        {
            return Err(Rejection::new(ErrorCode::Unavailable));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Rejection::new(ErrorCode::Unavailable)))
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Bounds the size of every event a command writes from now on (bytes
    /// of the sealed CloudEvent): a command that would write a larger one
    /// is refused `PAYLOAD_TOO_LARGE` and writes nothing, so that every
    /// accepted event can be published. The publisher sets it from what its
    /// server accepts; [`EVENT_BYTES_MAX_DEFAULT`] until then.
    pub fn set_event_bytes_max(&self, bytes: usize) {
        self.event_bytes_max_handle().set(bytes);
    }

    /// The same bound as a handle that does not keep the writer running.
    pub fn event_bytes_max_handle(&self) -> EventBytesMax {
        EventBytesMax(self.event_bytes_max.clone())
    }

    pub fn positions(&self) -> &Arc<Positions> {
        &self.positions
    }

    /// Wakes whenever a batch is durable; holds the last durable position
    /// ([`Positions::subscribe_log`]).
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.positions.subscribe_log()
    }
}

/// The writer's clock as configured: the manual clock resumes where the
/// log's meta left it; the wall clock is guarded from the last event on.
fn start_clock(options: &Options, reader: &LogReader) -> Result<Clock, LogError> {
    Ok(match options.clock {
        ClockMode::Manual => Clock::Manual {
            now: reader
                .get_meta_u64(META_MANUAL_CLOCK_MS)?
                .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64)),
        },
        ClockMode::Wall => Clock::Wall(WallClock {
            source: options.time_source.clone(),
            floor: last_event_time(reader)?,
            reference: None,
            accept_jump: options.accept_clock_jump,
            fault: None,
            behind: false,
        }),
    })
}

/// The writer's thread, for waiting until it stops.
///
/// The writer is CPU-bound and runs long synchronous stretches (deciding
/// and applying a whole batch): on a runtime worker it would stall every
/// request task queued behind it. So it has a named OS thread of its own
/// ([`WRITER_THREAD`]), which drives its few awaits (the request queue, its
/// timers, the flusher's queue) on a current-thread tokio runtime of its
/// own: it depends on no runtime's blocking pool, and a runtime shutting
/// down elsewhere cannot stop it half-way.
pub struct WriterThread {
    /// The writer's result, sent as its thread ends.
    done: oneshot::Receiver<Result<(), Fatal>>,
    thread: std::thread::JoinHandle<()>,
}

impl WriterThread {
    fn spawn(writer: Writer, flusher: tokio::task::JoinHandle<()>) -> Result<WriterThread, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(Error::Thread)?;
        let (done_tx, done) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(WRITER_THREAD.to_string())
            .spawn(move || {
                let result = runtime.block_on(writer.run(flusher));
                let _ = done_tx.send(result);
            })
            .map_err(Error::Thread)?;
        Ok(WriterThread { done, thread })
    }

    /// Waits until the writer has stopped: after every [`Engine`] handle is
    /// dropped, with everything queued answered and durable (`Ok`), or on a
    /// [`Fatal`] error, after which the process must exit
    /// ([`Fatal::EXIT_CODE`]). A panic of the thread is
    /// [`Fatal::Panicked`].
    pub async fn stopped(self) -> Result<(), Fatal> {
        match self.done.await {
            Ok(result) => {
                // The thread sent its result as its last act.
                let _ = self.thread.join();
                result
            }
            // Dropped unsent: the thread unwound from a panic.
            Err(_) => {
                let panic = tokio::task::spawn_blocking(move || self.thread.join())
                    .await
                    .ok()
                    .and_then(Result::err);
                Err(Fatal::Panicked {
                    thread: WRITER_THREAD,
                    message: panic
                        .as_deref()
                        .map_or_else(|| "unknown panic".to_string(), panic_message),
                })
            }
        }
    }

    /// Whether the thread has ended (stopped, failed or panicked).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// The text of a panic's payload (`panic!` with a literal or a format).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// The configured retention of command records, checked against the
/// contract's floor (a caller's bug if below it).
fn command_retention(retention: std::time::Duration) -> chrono::Duration {
    assert!(
        retention >= COMMAND_RETENTION_MIN,
        "command retention below the contract's 7 days"
    );
    chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX)
}

fn last_event_time(reader: &LogReader) -> Result<Option<Timestamp>, LogError> {
    let last = reader.last_position()?;
    if last == 0 {
        return Ok(None);
    }
    match reader.event_bytes(last)? {
        Some(bytes) => Ok(Some(cpor_log::envelope::decode(&bytes)?.time)),
        None => Ok(None),
    }
}

enum Clock {
    /// Wall time, guarded (see [`WallClock`]).
    Wall(WallClock),
    /// `None` until the first `admin.clock` request, which may then set any
    /// time; until then the machine's time is used.
    Manual { now: Option<Timestamp> },
}

/// The wall clock as the writer may use it: never before the last event
/// written (a step back must not reorder the log's times: it is warned
/// about and the time stays put until the clock catches up), and never
/// ahead of the monotonic clock by more than [`CLOCK_JUMP_MAX`] since the
/// last reading ([`CLOCK_GAP_AT_START_MAX`] past the last event at start).
struct WallClock {
    /// Wall and monotonic readings (the machine's, or a test's by hand).
    source: Arc<dyn TimeSource>,
    /// The last time handed out (at start: the last event's).
    floor: Option<Timestamp>,
    /// The last time handed out and the monotonic reading then.
    reference: Option<(Timestamp, std::time::Duration)>,
    /// The operator's override, for the first reading only.
    accept_jump: bool,
    /// Set while the wall clock is too far ahead: the refusal's message.
    fault: Option<String>,
    /// Set while the wall clock is behind the floor (warned once).
    behind: bool,
}

impl WallClock {
    fn now(&mut self) -> Result<Timestamp, Rejection> {
        let wall = self.source.wall();
        let monotonic = self.source.monotonic();
        let (limit, since) = match (self.reference, self.floor) {
            (Some((time, at)), _) => (
                time + chrono::Duration::from_std(monotonic.saturating_sub(at) + CLOCK_JUMP_MAX)
                    .unwrap_or(chrono::Duration::MAX),
                "the monotonic clock since the last reading",
            ),
            (None, Some(last_event)) => (
                last_event
                    + chrono::Duration::from_std(CLOCK_GAP_AT_START_MAX)
                        .unwrap_or(chrono::Duration::MAX),
                "the log's last event",
            ),
            (None, None) => (wall, "nothing"),
        };
        if wall > limit && !self.accept_jump {
            let message = format!(
                "the service's wall clock ({wall}) is {} ahead of what {since} allows \
                 ({limit}); nothing is written until the clock is right (or the service \
                 is restarted with --accept-clock-jump); retry later with the same command id",
                humanize(wall - limit)
            );
            if self.fault.is_none() {
                tracing::error!(%wall, %limit, "wall clock jumped ahead: refusing to write");
            }
            self.fault = Some(message.clone());
            return Err(Rejection::with_message(ErrorCode::Unavailable, message));
        }
        if self.fault.take().is_some() {
            tracing::warn!(%wall, "wall clock is back within bounds: writing again");
        }
        if self.accept_jump && wall > limit {
            tracing::warn!(%wall, %limit, "wall clock far ahead of the log, accepted by --accept-clock-jump");
        }
        self.accept_jump = false;
        let now = match self.floor {
            Some(floor) if wall < floor => {
                if !self.behind {
                    tracing::warn!(%wall, %floor, behind = %humanize(floor - wall),
                        "wall clock went backwards; keeping the last time until it catches up");
                }
                self.behind = true;
                floor
            }
            _ => {
                self.behind = false;
                wall
            }
        };
        self.floor = Some(now);
        self.reference = Some((now, monotonic));
        Ok(now)
    }

    /// The time now as the monotonic clock tells since the last reading (the
    /// wall clock before the first): what deadlines are scheduled on.
    fn monotonic_now(&self) -> Timestamp {
        match self.reference {
            Some((time, at)) => {
                time + chrono::Duration::from_std(self.source.monotonic().saturating_sub(at))
                    .unwrap_or(chrono::Duration::MAX)
            }
            None => self.source.wall(),
        }
    }
}

fn humanize(duration: chrono::Duration) -> String {
    let seconds = duration.num_seconds();
    match seconds {
        s if s >= 2 * 86_400 => format!("{} days", s / 86_400),
        s if s >= 7_200 => format!("{} hours", s / 3_600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} s"),
    }
}

impl Clock {
    fn now(&mut self) -> Result<Timestamp, Rejection> {
        match self {
            Clock::Wall(wall) => wall.now(),
            Clock::Manual { now } => Ok(now.unwrap_or_else(chrono::Utc::now)),
        }
    }
}

/// The reply owed to a request once its batch is durable.
enum Pending {
    Command(oneshot::Sender<Outcome>, Outcome),
    Clock(
        oneshot::Sender<Result<(), Rejection>>,
        Result<(), Rejection>,
    ),
}

impl Pending {
    /// The reply slot of a request, owed its refusal.
    fn of_request(request: Request) -> Pending {
        match request {
            Request::Command { reply, .. } => Pending::Command(
                reply,
                Outcome::Rejected(Rejection::new(ErrorCode::Unavailable)),
            ),
            Request::SetClock { reply, .. } => {
                Pending::Clock(reply, Err(Rejection::new(ErrorCode::Unavailable)))
            }
        }
    }

    /// The same reply slot, owed `refusal` instead.
    fn refused(self, refusal: Rejection) -> Pending {
        match self {
            Pending::Command(reply, _) => Pending::Command(reply, Outcome::Rejected(refusal)),
            Pending::Clock(reply, _) => Pending::Clock(reply, Err(refusal)),
        }
    }

    fn send(self) {
        match self {
            Pending::Command(reply, outcome) => {
                let _ = reply.send(outcome);
            }
            Pending::Clock(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }

    /// Answers `refusal` (an `UNAVAILABLE`) instead of the outcome.
    fn fail(self, refusal: &Rejection) {
        match self {
            Pending::Command(reply, _) => {
                let _ = reply.send(Outcome::Rejected(refusal.clone()));
            }
            Pending::Clock(reply, _) => {
                let _ = reply.send(Err(refusal.clone()));
            }
        }
    }
}

/// A batch written to sled (applied) whose replies wait for a flush.
struct AppliedBatch {
    /// The store's epoch the batch was written in (see
    /// [`recovery::StoreHealth`]): a batch of an epoch whose write failed is
    /// never acknowledged.
    epoch: u64,
    /// The log's head after the batch.
    position: u64,
    /// The replies held back until the flush makes the batch durable.
    pending: Vec<Pending>,
}

/// Batches applied but not yet flushed, at most: bounds the replies held
/// back and lets the writer decide the next batches while the disk syncs the
/// previous ones (CPU and I/O overlap instead of alternating). Measured: 4
/// gave 7.9–8.3k commands/s at 64 clients, 32 gives 8.9–9.4k (one flush
/// covers more batches).
pub const FLUSH_QUEUE_MAX: usize = 32;

/// The flusher: takes every applied batch waiting, makes them durable with
/// one flush, then announces the position and sends their replies. A flush
/// that fails answers its batches `UNAVAILABLE`, and every batch of the same
/// store epoch after them: after a failed sync the OS may have dropped the
/// dirty pages, so nothing written since the last good flush can be trusted
/// ("fsyncgate"), and sled 0.34 fails every later operation anyway. The
/// writer then reopens the data dir (the `recovery` module).
async fn flusher(
    reader: LogReader,
    mut batches: mpsc::Receiver<AppliedBatch>,
    positions: Arc<Positions>,
    failed_epoch: Arc<AtomicU64>,
) {
    let mut ready = Vec::with_capacity(FLUSH_QUEUE_MAX);
    while batches.recv_many(&mut ready, FLUSH_QUEUE_MAX).await > 0 {
        let failed = failed_epoch.load(Ordering::SeqCst);
        for batch in ready.extract_if(.., |b| b.epoch <= failed) {
            let refusal = recovery::write_failed(&"an earlier write failed");
            batch.pending.into_iter().for_each(|p| p.fail(&refusal));
        }
        if ready.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        // sled's flush and the syncs that make it durable block for a disk
        // round trip or two: off the async workers.
        let flushing = reader.clone();
        let flushed = tokio::task::spawn_blocking(move || flushing.flush_blocking())
            .await
            .unwrap_or_else(|join| {
                Err(cpor_log::LogError::Storage(format!(
                    "the flush task failed: {join}"
                )))
            });
        ::metrics::histogram!(metrics::FLUSH_SECONDS).record(started.elapsed());
        if let Err(error) = flushed {
            ::metrics::counter!(metrics::WRITE_ERRORS_TOTAL, "stage" => "flush").increment(1);
            tracing::error!(%error, "flushing the log failed; answering UNAVAILABLE and reopening the data dir");
            let epoch = ready.iter().map(|b| b.epoch).max().unwrap_or(0);
            failed_epoch.fetch_max(epoch, Ordering::SeqCst);
            let refusal = recovery::write_failed(&error);
            for batch in ready.drain(..) {
                batch.pending.into_iter().for_each(|p| p.fail(&refusal));
            }
            continue;
        }
        let position = ready.last().map_or(0, |b| b.position);
        // Announced before the replies go: a reply's position is never
        // ahead of what `qry.health` and the relay see as durable.
        positions.advance_log(position);
        for batch in ready.drain(..) {
            batch.pending.into_iter().for_each(Pending::send);
        }
    }
}

/// The single writer: the only task that decides and appends, so decisions
/// see every earlier one without locks (the log's order is the order of
/// decisions).
struct Writer {
    /// The log, owned: appends and commits go through here only.
    log: Log,
    /// The decision state folded from every event so far (claims, indexes,
    /// deadlines); `decide` reads it, appended events evolve it.
    state: State,
    /// Business days for every deadline (`--config`'s `[calendar]`).
    calendar: Calendar,
    /// Where `now` comes from: read once per request and handed to `decide`.
    clock: Clock,
    /// Requests from every [`Engine`] handle; closed when all are dropped,
    /// which ends the writer after what is queued.
    requests: mpsc::Receiver<Request>,
    /// Written batches on their way to the projector, then the flusher
    /// (bounded: at most [`FLUSH_QUEUE_MAX`] batches wait for each).
    staged: mpsc::Sender<projector::Staged>,
    /// The projector's thread (`None` once joined).
    projector: Option<std::thread::JoinHandle<()>>,
    /// Deadlines whose command decided nothing (should not happen; kept so
    /// that a bug cannot spin the scheduler).
    skipped_deadlines: BTreeSet<(Timestamp, Uuid, DeadlineKind)>,
    /// See [`Engine::set_event_bytes_max`].
    event_bytes_max: Arc<AtomicUsize>,
    /// Whether the last batch found the disk full (to log once).
    disk_was_full: bool,
    /// When the state gauges were last recounted (at most every
    /// [`metrics::STATE_GAUGES_EVERY`]).
    state_gauges_at: std::time::Instant,
    /// A write changed the state since the last count, which was too
    /// recent to repeat: the writer wakes to recount once the interval is
    /// over, so the gauges do not keep a stale count while no command comes.
    state_gauges_stale: bool,
    /// See [`Options::disk_free_min_bytes`].
    disk_free_min_bytes: u64,
    /// The store's epoch and whether it must be reopened.
    store: recovery::StoreHealth,
    /// See [`Options::command_retention`].
    command_retention: chrono::Duration,
    /// Decision-state snapshots, every [`snapshot::SNAPSHOT_EVERY_EVENTS`]
    /// and at a graceful stop (`None` once the writer stops).
    snapshots: Option<Snapshotter>,
}

impl Writer {
    /// The writer's loop, until every [`Engine`] handle is dropped (`Ok`)
    /// or a [`Fatal`] error. Either way the flusher finishes first: every
    /// batch handed to it is flushed and answered (or refused, after a
    /// failed write) before this returns.
    async fn run(mut self, flusher: tokio::task::JoinHandle<()>) -> Result<(), Fatal> {
        let mut batch = Vec::with_capacity(WRITER_BATCH_MAX);
        let result = loop {
            let sleep = self.until_next_deadline();
            let recount = self.until_state_gauges_due();
            tokio::select! {
                received = self.requests.recv_many(&mut batch, WRITER_BATCH_MAX) => {
                    if received == 0 {
                        break Ok(()); // every handle dropped: shutdown
                    }
                }
                _ = tokio::time::sleep(sleep), if !sleep.is_zero() || self.is_wall_clock() => {}
                _ = tokio::time::sleep(recount.unwrap_or_default()), if recount.is_some() => {
                    self.record_state_gauges();
                    continue;
                }
            }
            if let Err(fatal) = self.process(std::mem::take(&mut batch)).await {
                break Err(fatal);
            }
            self.record_state_gauges();
        };
        let position = self.log.head().position;
        let projector = self.projector.take();
        let (snapshots, last_snapshot) = self.last_snapshot(&result);
        // Closes the queues: requests still queued are answered
        // `UNAVAILABLE` (their reply slots dropped); the projector hands
        // on what it has and ends, then the flusher.
        drop(self);
        let _ = flusher.await;
        if let Some(projector) = projector {
            let _ = projector.join();
        }
        // After the flusher: the events it stands on are on disk first.
        if let Some(snapshots) = snapshots {
            snapshots.finish(last_snapshot);
        }
        match &result {
            Ok(()) => tracing::info!(position, "writer stopped"),
            Err(fatal) => tracing::error!(%fatal, "writer stopped"),
        }
        result
    }

    /// The snapshotter and, after a graceful stop with the state at the
    /// head (no failed write), the state encoded for its last snapshot.
    fn last_snapshot(
        &mut self,
        result: &Result<(), Fatal>,
    ) -> (Option<Snapshotter>, Option<snapshot::Encoded>) {
        let encoded = match result {
            Ok(()) if !self.store.is_closed() => snapshot::encode(&self.state, self.log.head())
                .inspect_err(
                    |error| tracing::error!(%error, "cannot encode the last state snapshot"),
                )
                .ok(),
            _ => None,
        };
        (self.snapshots.take(), encoded)
    }

    /// Recounts the state gauges when the last count is older than
    /// [`metrics::STATE_GAUGES_EVERY`].
    fn record_state_gauges(&mut self) {
        if self.state_gauges_at.elapsed() < metrics::STATE_GAUGES_EVERY {
            self.state_gauges_stale = true;
            return;
        }
        self.state_gauges_stale = false;
        self.state_gauges_at = std::time::Instant::now();
        metrics::record_state(&self.state, self.clock.now().ok());
    }

    /// How long until a stale count may be redone; `None` when the gauges
    /// are current.
    fn until_state_gauges_due(&self) -> Option<std::time::Duration> {
        self.state_gauges_stale
            .then(|| metrics::STATE_GAUGES_EVERY.saturating_sub(self.state_gauges_at.elapsed()))
    }

    fn is_wall_clock(&self) -> bool {
        matches!(self.clock, Clock::Wall(_))
    }

    /// How long the writer may sleep before a deadline is due. With a manual
    /// clock only `admin.clock` moves time, so it sleeps "forever".
    fn until_next_deadline(&mut self) -> std::time::Duration {
        const IDLE: std::time::Duration = std::time::Duration::from_secs(3600);
        if self.store.is_closed() {
            // Wake to reopen the data dir, also with no request coming.
            return recovery::REOPEN_RETRY_EVERY;
        }
        if !self.is_wall_clock() {
            return IDLE;
        }
        let Clock::Wall(wall) = &self.clock else {
            return IDLE;
        };
        match self.next_due() {
            None => IDLE,
            Some((due, _, _)) => {
                // Monotonic: a step of the wall clock does not make a
                // deadline due early (and a refused jump is retried).
                let now = wall.monotonic_now();
                (due - now)
                    .to_std()
                    .unwrap_or(std::time::Duration::from_millis(1))
                    .min(IDLE)
            }
        }
    }

    fn next_due(&self) -> Option<(Timestamp, Uuid, DeadlineKind)> {
        self.state
            .deadlines
            .iter()
            .find(|d| !self.skipped_deadlines.contains(d))
            .copied()
    }

    /// Decides, writes and hands to the flusher one batch of requests (an
    /// empty one: a timer woke the writer). `Err` only for a [`Fatal`]
    /// error found reopening the data dir.
    async fn process(&mut self, requests: Vec<Request>) -> Result<(), Fatal> {
        if !self.store_is_open().await? {
            let refusal = self.store.closed_refusal();
            // Nothing is in flight that these replies could rest on.
            for request in requests {
                Pending::of_request(request).fail(&refusal);
            }
            if self.requests.is_empty() {
                // A timer wake: do not spin while the store stays closed.
                tokio::time::sleep(recovery::REOPEN_RETRY_EVERY.min(DISK_FULL_RECHECK_EVERY)).await;
            }
            return Ok(());
        }
        if !requests.is_empty() {
            ::metrics::histogram!(metrics::BATCH_REQUESTS).record(requests.len() as f64);
        }
        if let Some(refusal) = self.disk_full() {
            ::metrics::counter!(metrics::DISK_FULL_REFUSALS_TOTAL).increment(requests.len() as u64);
            let pending: Vec<Pending> = requests
                .into_iter()
                .map(|request| Pending::of_request(request).refused(refusal.clone()))
                .collect();
            if pending.is_empty() {
                // A timer wake (a deadline is due): do not spin on it.
                tokio::time::sleep(DISK_FULL_RECHECK_EVERY).await;
            }
            // Behind the batches in flight, like any other reply.
            return self.hand_off(self.log.head().position, None, pending).await;
        }
        let mut appender = self.log.begin();
        let (pending, failed) = self.decide_all(&mut appender, requests);
        self.write(appender, pending, failed).await
    }

    /// Hands a batch (its projection, if it wrote anything, and its
    /// replies) to the projector, which hands it to the flusher. Waits
    /// while [`FLUSH_QUEUE_MAX`] batches are queued (backpressure).
    /// [`Fatal::Panicked`] when the projector's thread is gone.
    async fn hand_off(
        &mut self,
        position: u64,
        projection: Option<cpor_log::Projection>,
        pending: Vec<Pending>,
    ) -> Result<(), Fatal> {
        let batch = projector::Staged {
            epoch: self.store.epoch(),
            position,
            projection,
            pending,
        };
        if self.staged.send(batch).await.is_ok() {
            return Ok(());
        }
        // Only a panic ends the projector while the writer runs.
        let message = match self.projector.take().map(std::thread::JoinHandle::join) {
            Some(Err(panic)) => panic_message(panic.as_ref()),
            _ => "it ended".to_string(),
        };
        Err(Fatal::Panicked {
            thread: projector::PROJECTOR_THREAD,
            message,
        })
    }

    /// Decides every request of a batch into `appender`: the replies owed
    /// once it is durable, and whether a decided event failed to apply.
    fn decide_all(
        &mut self,
        appender: &mut cpor_log::Appender,
        requests: Vec<Request>,
    ) -> (Vec<Pending>, bool) {
        let mut pending = Vec::with_capacity(requests.len());
        // Commands accepted earlier in this batch, for idempotency before
        // their records reach the store.
        let mut in_batch: HashMap<Uuid, (String, Accepted)> = HashMap::new();
        let mut failed = false;
        for request in requests {
            match request {
                Request::Command {
                    envelope,
                    fingerprint,
                    reply,
                    queued_at,
                } => {
                    ::metrics::histogram!(metrics::QUEUE_WAIT_SECONDS).record(queued_at.elapsed());
                    // Read per command: a clock request earlier in the batch may have moved it.
                    let now = match self.clock.now() {
                        Ok(now) => now,
                        Err(refusal) => {
                            pending.push(Pending::Command(reply, Outcome::Rejected(refusal)));
                            continue;
                        }
                    };
                    let started = std::time::Instant::now();
                    let outcome =
                        self.command(appender, &mut in_batch, *envelope, fingerprint, now);
                    ::metrics::histogram!(metrics::DECIDE_SECONDS).record(started.elapsed());
                    failed |= outcome.is_err();
                    let outcome = outcome.unwrap_or_else(|_| {
                        Outcome::Rejected(Rejection::new(ErrorCode::Unavailable))
                    });
                    pending.push(Pending::Command(reply, outcome));
                }
                Request::SetClock { now: to, reply } => {
                    let result = self.set_clock(appender, to, &mut failed);
                    pending.push(Pending::Clock(reply, result));
                }
            }
        }
        // A clock that jumped fires no deadline (its refusal is logged).
        if let (true, Ok(now)) = (self.is_wall_clock(), self.clock.now()) {
            failed |= self
                .fire_deadlines(appender, now, DEADLINES_PER_BATCH_MAX)
                .is_err();
        }
        if !failed {
            failed |= self.expire_commands(appender).is_err();
        }
        (pending, failed)
    }

    /// Moves the manual clock to `to` and fires the deadlines it passes.
    fn set_clock(
        &mut self,
        appender: &mut cpor_log::Appender,
        to: Timestamp,
        failed: &mut bool,
    ) -> Result<(), Rejection> {
        let writable = self.calendar.check_writable_now(to);
        let result = match &mut self.clock {
            Clock::Manual { .. } if writable.is_err() => writable,
            Clock::Manual { now: current } if current.is_none_or(|c| to >= c) => {
                *current = Some(to);
                // Two's complement: times before 1970 round-trip
                // through the u64 record (read back `as i64`).
                appender.set_meta_u64(META_MANUAL_CLOCK_MS, to.timestamp_millis() as u64);
                Ok(())
            }
            Clock::Manual { .. } => Err(Rejection::with_message(
                ErrorCode::InvalidCommand,
                "now: the clock never goes backwards",
            )),
            Clock::Wall(_) => Err(Rejection::new(ErrorCode::ClockNotManual)),
        };
        if result.is_ok() && self.fire_deadlines(appender, to, usize::MAX).is_err() {
            *failed = true;
        }
        result
    }

    /// Removes the records of commands decided longer than the retention
    /// ago (at most [`COMMAND_EXPIRY_PER_BATCH_MAX`]), in this batch. A
    /// refused clock reading expires nothing.
    fn expire_commands(&mut self, appender: &mut cpor_log::Appender) -> Result<(), LogError> {
        let Ok(now) = self.clock.now() else {
            return Ok(());
        };
        let Some(before) = now.checked_sub_signed(self.command_retention) else {
            return Ok(());
        };
        let reader = self.log.reader().clone();
        appender.expire_commands(&reader, &before, COMMAND_EXPIRY_PER_BATCH_MAX)?;
        Ok(())
    }

    /// Writes the decided batch's log share and hands its projection and
    /// replies on; a batch that cannot be written is answered
    /// `UNAVAILABLE`. `Err` only when the projector is gone.
    async fn write(
        &mut self,
        appender: cpor_log::Appender,
        pending: Vec<Pending>,
        failed: bool,
    ) -> Result<(), Fatal> {
        if failed {
            // A decided event did not apply (or a read failed): nothing was
            // written, but the state may be ahead of the store.
            tracing::error!("a decided event did not apply; answering UNAVAILABLE and reloading the state from the log");
            let refusal = Rejection::new(ErrorCode::Unavailable);
            pending.into_iter().for_each(|p| p.fail(&refusal));
            self.reload();
            return Ok(());
        }
        if appender.is_empty() {
            // Only refusals and duplicates: nothing to write, but their
            // replies may rest on batches not yet durable, so they queue
            // behind them like any other.
            return self.hand_off(self.log.head().position, None, pending).await;
        }
        let started = std::time::Instant::now();
        let committed = self.log.commit_log(appender, &self.state);
        ::metrics::histogram!(metrics::COMMIT_SECONDS).record(started.elapsed());
        match committed {
            Ok((head, projection)) => {
                let handed = self
                    .hand_off(head.position, Some(projection), pending)
                    .await;
                // The state is the fold of `head` here (the batch applied).
                if let Some(snapshots) = &mut self.snapshots {
                    snapshots.after_commit(&self.state, &head);
                }
                handed
            }
            Err(error) => {
                ::metrics::counter!(metrics::WRITE_ERRORS_TOTAL, "stage" => "apply").increment(1);
                tracing::error!(%error, "could not write the batch; answering UNAVAILABLE and reopening the data dir");
                self.store.failed();
                let refusal = recovery::write_failed(&error);
                pending.into_iter().for_each(|p| p.fail(&refusal));
                Ok(())
            }
        }
    }

    /// The refusal owed while the data dir's disk has less than
    /// [`DISK_FREE_MIN_BYTES`] free (logged once per episode).
    fn disk_full(&mut self) -> Option<Rejection> {
        let free = match self.log.reader().available_space() {
            Ok(free) => free,
            Err(error) => {
                tracing::warn!(%error, "cannot read the free disk space; writing anyway");
                return None;
            }
        };
        if free >= self.disk_free_min_bytes {
            if self.disk_was_full {
                tracing::warn!(free, "disk space is back: writing again");
                self.disk_was_full = false;
            }
            return None;
        }
        if !self.disk_was_full {
            tracing::error!(
                free,
                reserve = self.disk_free_min_bytes,
                "the data dir's disk is full: answering UNAVAILABLE until space is freed"
            );
            self.disk_was_full = true;
        }
        Some(Rejection::with_message(
            ErrorCode::Unavailable,
            format!(
                "the service's disk is full ({free} bytes free, {} needed); \
                 nothing was written; retry later with the same command id",
                self.disk_free_min_bytes
            ),
        ))
    }

    /// After a failed write the in-memory state may be ahead of the store:
    /// fold it again from what is really there.
    fn reload(&mut self) {
        match self.log.reload() {
            Ok(state) => self.state = state,
            Err(error) => {
                // Without a trustworthy state the writer must not decide
                // anything: the store is reopened (start-up checks included).
                tracing::error!(%error, "cannot reload the state from the log; reopening the data dir");
                self.store.failed();
            }
        }
    }

    /// One command: idempotency, permission, decision, append.
    /// `Err` means the batch cannot be written (state diverged).
    fn command(
        &mut self,
        appender: &mut cpor_log::Appender,
        in_batch: &mut HashMap<Uuid, (String, Accepted)>,
        envelope: CommandEnvelope,
        fingerprint: String,
        now: Timestamp,
    ) -> Result<Outcome, LogError> {
        if let Err(rejection) = authorize_envelope(&envelope) {
            return Ok(Outcome::Rejected(rejection));
        }
        let earlier = match in_batch.get(&envelope.command_id) {
            Some((print, accepted)) => Some((print.clone(), accepted.clone())),
            None => self
                .log
                .reader()
                .command_record(&envelope.command_id)?
                .map(|r| (r.fingerprint, r.reply)),
        };
        if let Some((print, accepted)) = earlier {
            if print != fingerprint {
                return Ok(Outcome::Rejected(Rejection::new(
                    ErrorCode::IdempotencyConflict,
                )));
            }
            return Ok(Outcome::Accepted {
                accepted,
                duplicate: true,
            });
        }
        let ctx = Context {
            now,
            calendar: &self.calendar,
        };
        let decision = match decide(&self.state, &envelope, &ctx) {
            Ok(decision) => decision,
            Err(rejection) => return Ok(Outcome::Rejected(rejection)),
        };
        let limit = self.event_bytes_max.load(Ordering::Relaxed);
        if let Some(rejection) = oversized_event(&decision, &envelope, now, limit)? {
            return Ok(Outcome::Rejected(rejection));
        }
        let accepted = append_decision(
            &mut self.state,
            appender,
            &envelope,
            decision,
            now,
            &fingerprint,
        )?;
        in_batch.insert(envelope.command_id, (fingerprint, accepted.clone()));
        Ok(Outcome::Accepted {
            accepted,
            duplicate: false,
        })
    }

    /// Decides `DeadlineElapsed` for every watched deadline due by `now`,
    /// earliest first, up to `max`.
    fn fire_deadlines(
        &mut self,
        appender: &mut cpor_log::Appender,
        now: Timestamp,
        max: usize,
    ) -> Result<(), LogError> {
        fire_due_deadlines(
            &mut self.state,
            appender,
            &self.calendar,
            &mut self.skipped_deadlines,
            now,
            max,
        )
        .map(|_| ())
    }
}

/// The refusal of a decision with an event larger than `limit` bytes once
/// sealed (see [`Engine::set_event_bytes_max`]), naming both sizes.
///
/// An event whose [`sealed_len_bound`] is within `limit` is not measured
/// exactly: building and canonicalizing its CloudEvent once more cost as
/// much as appending it (a fifth of the writer's CPU, docs/performance.md).
fn oversized_event(
    decision: &cpor_domain::decide::Decision,
    envelope: &CommandEnvelope,
    now: Timestamp,
    limit: usize,
) -> Result<Option<Rejection>, LogError> {
    for event in &decision.events {
        if sealed_len_bound(event, envelope) <= limit {
            continue;
        }
        let meta = cpor_log::EventMeta {
            // Same length as the real id; the widths are what count.
            event_id: envelope.command_id,
            time: now,
            position: 0,
            stream_version: 0,
            causation_id: envelope.command_id,
            correlation_id: envelope.correlation_id.clone(),
            traceparent: envelope.traceparent.clone(),
        };
        let bytes = cpor_log::envelope::sealed_len_max(event, &meta)?;
        if bytes > limit {
            return Ok(Some(Rejection::with_message(
                ErrorCode::PayloadTooLarge,
                format!(
                    "the {} event this command would write is {bytes} bytes, more than the \
                     {limit} bytes the service can publish; send less data (fewer or shorter \
                     proof-of-execution documents, a shorter note or text)",
                    event.data.name()
                ),
            )));
        }
    }
    Ok(None)
}

/// The fixed part of a sealed event, at most: every attribute's name and
/// punctuation, the values of fixed width (`specversion`, `id`, `source`,
/// `type`, `time`, `datacontenttype`, `dataschema`, `position`,
/// `streamversion`, `causationid`, `hash`) and `data`'s `actor` member
/// name. About 450 bytes; twice that for room.
const SEALED_FIXED_BYTES_MAX: usize = 1_024;

/// An upper bound of `event`'s size once sealed (stored, published), from
/// its parts' compact JSON lengths, without building it: the sealed form is
/// RFC 8785 JSON of the same members, whose escapes are at most 6 bytes
/// (`\u001f`) for a character `serde_json` writes in at least 1, and whose
/// integers (the domain has no floats) take at most one digit more. Hence
/// 6 × the variable parts' compact lengths plus [`SEALED_FIXED_BYTES_MAX`].
fn sealed_len_bound(event: &cpor_domain::event::Event, envelope: &CommandEnvelope) -> usize {
    let variable = event.data.json_len()
        + cpor_domain::event::compact_json_len(&event.actor)
        + event.data.aggregate().id.len()
        + envelope.correlation_id.as_ref().map_or(0, String::len)
        + envelope.traceparent.as_ref().map_or(0, String::len);
    SEALED_FIXED_BYTES_MAX + 6 * variable
}

/// Writes an accepted decision into the batch: folds and appends its events
/// (each with its position, stream version and hash), and records the
/// command with its reply for idempotent repeats. Returns the reply fields.
/// Shared by the engine's writer and the benchmark's raw-log writer, so the
/// two measure and write the same thing.
pub fn append_decision(
    state: &mut State,
    appender: &mut cpor_log::Appender,
    envelope: &CommandEnvelope,
    decision: cpor_domain::decide::Decision,
    now: Timestamp,
    fingerprint: &str,
) -> Result<Accepted, LogError> {
    let mut types = Vec::with_capacity(decision.events.len());
    for event in decision.events.iter() {
        types.push(format!(
            "{}.{}.{}",
            cpor_log::envelope::EVENT_TYPE_PREFIX,
            event.data.aggregate_kind().as_str(),
            event.data.name()
        ));
        appender.append(
            state,
            event,
            now,
            envelope.command_id,
            envelope.correlation_id.as_deref(),
            envelope.traceparent.as_deref(),
        )?;
    }
    let main_aggregate: Option<AggregateId> = decision.events.first().map(|e| e.data.aggregate());
    let version = match (&decision.claim_id, &main_aggregate) {
        (Some(claim_id), _) => state.claims.get(claim_id).map_or(0, |c| c.version),
        (None, Some(aggregate)) => state.version_of(aggregate),
        (None, None) => 0,
    };
    let accepted = Accepted {
        claim_id: decision.claim_id,
        version,
        events: types,
        warnings: decision.warnings,
    };
    let record = CommandRecord {
        fingerprint: fingerprint.to_string(),
        recorded_at: now,
        reply: accepted.clone(),
    };
    appender.record_command(&envelope.command_id, &record);
    Ok(accepted)
}

/// The scheduler's step: decides `DeadlineElapsed` for every watched
/// deadline due by `now`, earliest first, up to `max`, and appends the
/// events. A deadline whose command decides nothing (it should not happen)
/// goes into `skipped` so that a bug cannot spin the scheduler. Returns the
/// number of events written. Shared with the benchmark's log generator.
pub fn fire_due_deadlines(
    state: &mut State,
    appender: &mut cpor_log::Appender,
    calendar: &Calendar,
    skipped: &mut BTreeSet<(Timestamp, Uuid, DeadlineKind)>,
    now: Timestamp,
    max: usize,
) -> Result<u64, LogError> {
    let mut fired = 0;
    let mut written = 0;
    while fired < max {
        let next = state
            .deadlines
            .iter()
            .find(|d| !skipped.contains(d))
            .copied();
        let Some((due, claim_id, kind)) = next else {
            break;
        };
        if due > now {
            break;
        }
        fired += 1;
        let envelope = CommandEnvelope {
            // Random, stored as the events' `causationid`: it used to be
            // derived from (claim, kind, due), which any client can compute
            // (issue 10). The deadline still fires once: firing removes it
            // from the state in the batch that writes its events.
            command_id: appender.new_command_id(),
            actor: Actor::System {
                id: "cpor-scheduler".to_string(),
            },
            correlation_id: None,
            traceparent: None,
            expected_version: None,
            command: Command::DeadlineElapsed {
                claim_id,
                kind,
                due_at: due,
            },
        };
        let ctx = Context { now, calendar };
        let events = match decide(state, &envelope, &ctx) {
            Ok(decision) => decision.events,
            Err(rejection) => {
                tracing::warn!(%claim_id, ?kind, %rejection, "deadline command refused");
                Vec::new()
            }
        };
        if events.is_empty() {
            tracing::warn!(%claim_id, ?kind, %due, "deadline decided nothing; skipping it");
            skipped.insert((due, claim_id, kind));
            continue;
        }
        for event in events.iter() {
            appender.append(state, event, now, envelope.command_id, None, None)?;
            written += 1;
        }
        ::metrics::counter!(metrics::DEADLINES_FIRED_TOTAL, "kind" => kind.as_str()).increment(1);
    }
    Ok(written)
}

mod projector;
mod recovery;

pub use projector::PROJECTOR_THREAD;

#[cfg(test)]
mod tests;
