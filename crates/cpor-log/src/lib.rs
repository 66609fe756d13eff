//! The durable event log of the CPOR claim service, on sled 0.34.
//!
//! One sled tree per kind of record (`keys`, store layout 4): `log` holds
//! the events (CloudEvents with their hash chain, a group commit's in one
//! compressed segment: `segment`), the idempotency records of accepted
//! commands and the head; `stream` the per-aggregate index;
//! `views` every projection the queries read; `meta` and `checkpoints` the
//! rest. A group commit's events, records and head go into one
//! `sled::Batch` on `log`, applied atomically ([`Log::commit_log`]); the
//! derived trees follow, each with a marker of the position it reflects,
//! applied by whoever holds the batch's [`Projection`] (the engine's
//! projector thread). The caller then awaits [`LogReader::flush`] before
//! acknowledging anything.
//!
//! Architecture invariant: this is the only crate that names sled.
//!
//! Layout:
//! - `keys`: the trees and their key spaces (big-endian integers).
//! - `segment`: the events of a group commit in one compressed value.
//! - `record`: command records (postcard) and their expiry.
//! - `migrate`: upgrading an older store layout in place.
//! - `envelope`: the CloudEvent form, sealing into the hash chain, decoding.
//! - `decoded`: decoding the log for a replay, on every core.
//! - `projection`: the read models written beside the events.
//! - `stored`: the read models' compact stored form (postcard).
//! - `query`: the typed reads the queries make of them.
//! - `startup`: the start-up checks (also run by `cpor verify --data-dir`).
//! - `snapshot`: decision-state snapshots, files beside the store.
//! - this file: opening, appending, reading.
//!
//! RFC 8785 canonical JSON and the contract's `hash` live in the leaf crate
//! `cpor-jcs`, shared with the wire layer's idempotency fingerprints.

pub mod checkpoint;
mod decoded;
mod durable;
pub mod envelope;
mod keys;
mod migrate;
mod projection;
mod query;
mod record;
mod segment;
pub mod snapshot;
mod space;
pub mod startup;
mod stored;

use std::path::Path;

use serde::Deserialize;
use uuid::Uuid;

use cpor_domain::event::{AggregateId, Event};
use cpor_domain::state::State;
use cpor_domain::types::Timestamp;

pub use decoded::{DecodedEvents, DECODE_CHUNKS_QUEUED, DECODE_CHUNK_EVENTS, DECODE_THREADS_MAX};
pub use envelope::{DecodedEvent, EventMeta};
pub use migrate::{migrate, MigrateReport, LAYOUT_VERSION};
pub use projection::{
    rebuild_projections, repair_projections, RebuildReport, REBUILD_BATCH_EVENTS,
    REBUILD_DIFFERENCES_LISTED, REPAIR_BATCH_ENTRIES,
};
pub use query::{
    ClaimFilter, Page, CASES_LIST_MAX, COMMENTS_MAX, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX,
    LIST_SCAN_MAX,
};
pub use record::{Accepted, CommandRecord};
pub use space::{KindSpace, StoreSpace};

use keys::KeyKind;

/// sled's page cache. Its default (1 GiB) was most of the service's memory
/// (1.4 GiB RSS with 177k claims); reads of recent data stay hot with less.
pub const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// The page cache of a one-off reader of a whole log (audit tools, bench).
pub const SLED_CACHE_BYTES_SCAN: u64 = 1024 * 1024 * 1024;

/// How many of the newest events start-up re-hashes to check the tail of
/// the chain (sled's hazards: an unclean stop may damage the newest writes).
pub const TAIL_CHECK_EVENTS: u64 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another process has this data dir open (sled holds an exclusive lock).
    #[error("the data dir {0} is in use by another process (a running `cpor serve`?); stop it or read its JetStream stream instead")]
    Locked(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("the log is damaged: {0}")]
    Corrupt(String),
    /// Start-up found what only a person can decide; the message names the
    /// `cpor repair` step (see [`startup`]).
    #[error("{0}")]
    NeedsRepair(String),
    /// The store is closed while the writer reopens the data dir after a
    /// failed write (a full disk); it comes back by itself.
    #[error(
        "the data dir is being reopened after a failed write (is the disk full?); retry later"
    )]
    Closed,
    #[error("cannot encode event: {0}")]
    Encode(String),
}

impl From<sled::Error> for LogError {
    fn from(e: sled::Error) -> LogError {
        LogError::Storage(e.to_string())
    }
}

/// The tip of the chain: the last position written and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub position: u64,
    pub hash: String,
}

/// Read access to the log and projections. Cheap to clone; reads never wait
/// on the writer (sled readers are lock-free).
#[derive(Clone)]
pub struct LogReader {
    /// The open sled store, shared by every clone; `None` while it is
    /// closed for a reopen (see [`LogReader::close`]). sled 0.34 keeps the
    /// first IO error of its background writes (a full disk: `ENOSPC`) and
    /// returns it from every later operation until the `Db` is dropped and
    /// opened again, so after a failed write the writer closes it and opens
    /// the data dir anew (issue 11 case 3).
    store: std::sync::Arc<std::sync::RwLock<Option<Store>>>,
    /// The directory sled keeps its files in.
    dir: std::sync::Arc<std::path::PathBuf>,
    /// sled's page cache, in bytes, for a reopen.
    cache_bytes: u64,
    /// The private copy a [`LogReader::open_copy`] reader reads, removed
    /// when the last clone is dropped.
    _copy: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// One open sled store: the `Db` (for flushes) and the tree that holds
/// everything. Clones are handles on the same store.
#[derive(Clone)]
struct Store {
    db: sled::Db,
    /// Makes sled's flushes durable against a power cut (`durable`).
    durable: std::sync::Arc<durable::DurableSync>,
    /// Events, command records and the head: the synchronous write
    /// (`keys::TREE_LOG`).
    log: sled::Tree,
    /// The stream index, derived from the events (`keys::TREE_STREAM`).
    stream: sled::Tree,
    /// The projections, derived from the events (`keys::TREE_VIEWS`).
    views: sled::Tree,
    /// Operational values (`keys::TREE_META`).
    meta: sled::Tree,
    /// Signed checkpoints (`keys::TREE_CHECKPOINTS`).
    checkpoints: sled::Tree,
}

/// The single writer. Owns the head of the chain.
pub struct Log {
    reader: LogReader,
    head: Head,
    ids: IdSource,
}

/// Where the ids the log makes up come from: event ids (the events
/// stream's `Nats-Msg-Id`) and the scheduler's command ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdSource {
    /// Random UUID v4 from the OS CSPRNG, stored with the event: nobody can
    /// compute an id before the event exists (issue 10). The service's.
    #[default]
    Random,
    /// UUID v5 of a seed and the position: byte-reproducible logs for the
    /// benchmark's generator. Guessable: never for a service.
    Seeded(u64),
}

/// The namespace of [`IdSource::Seeded`] ids.
const SEEDED_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6d2a_61c4_3f1e_4b8e_9a57_c0de_5eed_1d5a);

pub(crate) fn u64_at(tree: &sled::Tree, key: &[u8]) -> Result<Option<u64>, LogError> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes))
}

impl Log {
    /// Opens (or creates) the data dir, checks the tail of the chain, and
    /// folds the whole log into the decision state.
    pub fn open(dir: &Path) -> Result<(Log, State), LogError> {
        let reader = LogReader::open(dir)?;
        let (head, state) = startup::run(&reader)?.into_parts();
        Ok((
            Log {
                reader,
                head,
                ids: IdSource::Random,
            },
            state,
        ))
    }

    /// Closes the store after a failed write (see [`LogReader::close`]):
    /// sled keeps the error, and after a failed sync nothing in memory can
    /// be trusted ("fsyncgate"), so nothing is written until
    /// [`Log::reopen`] has read the data dir afresh.
    pub fn close(&self) {
        self.reader.close();
    }

    /// Opens the data dir again after [`Log::close`] and runs the start-up
    /// checks, exactly as a fresh start does: returns the state folded from
    /// what is on disk. On error the store stays closed (retry later).
    pub fn reopen(&mut self) -> Result<State, LogError> {
        self.reader.reopen()?;
        match startup::run(&self.reader).map(startup::Startup::into_parts) {
            Ok((head, state)) => {
                self.head = head;
                Ok(state)
            }
            Err(error) => {
                self.reader.close();
                Err(error)
            }
        }
    }

    /// Chooses where new ids come from (random unless set).
    pub fn set_id_source(&mut self, ids: IdSource) {
        self.ids = ids;
    }

    pub fn reader(&self) -> &LogReader {
        &self.reader
    }

    /// Re-reads head and state from the store, after a failed write left
    /// the in-memory state ahead of it: from the newest usable state
    /// snapshot on, as a start does ([`snapshot::load`]).
    pub fn reload(&mut self) -> Result<State, LogError> {
        self.head = startup::check_tail(&self.reader)?;
        let (after, state) = snapshot::load(&self.reader, &self.head)?.unwrap_or_default();
        Ok(self.reader.fold_onto(state, after, None)?.0)
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Starts a batch of commands to write atomically.
    pub fn begin(&self) -> Appender {
        Appender {
            batch: sled::Batch::default(),
            segment: segment::SegmentBuilder::default(),
            base: self.head.position,
            stream: sled::Batch::default(),
            views: sled::Batch::default(),
            meta: sled::Batch::default(),
            meta_dirty: false,
            head: self.head.clone(),
            projection: projection::ProjectionWriter::default(),
            dirty: false,
            ids: self.ids,
            recorded: Vec::new(),
            recorded_last: None,
        }
    }

    /// Writes the batch (not yet durable: await [`LogReader::flush`]):
    /// [`Log::commit_log`] then [`Projection::apply`], on this thread. For
    /// one-off writers (the benchmark's generator, tests); the engine
    /// applies the projection on a thread of its own.
    pub fn commit(&mut self, appender: Appender, state: &State) -> Result<Head, LogError> {
        let (head, projection) = self.commit_log(appender, state)?;
        projection.apply()?;
        Ok(head)
    }

    /// Writes the batch's `log` share (events, command records, head) in
    /// one atomic `apply_batch`, not yet durable (await
    /// [`LogReader::flush`]), and returns the new head and the derived
    /// trees' share, which the caller applies next, in commit order
    /// ([`Projection::apply`]). On error nothing of the batch is applied,
    /// but `state` has been evolved by the batch: the caller must reload it
    /// from the log.
    ///
    /// A stop between the log batch and its projection leaves a derived
    /// tree behind the head, which start-up sees by its marker and
    /// rewrites from the log.
    pub fn commit_log(
        &mut self,
        mut appender: Appender,
        state: &State,
    ) -> Result<(Head, Projection), LogError> {
        // Invariant (a bug if broken, so it stops the writer rather than
        // write): a batch extends the head it began from. Two appenders in
        // flight, or one committed twice, would fork the hash chain and
        // reuse positions.
        assert_eq!(
            appender.base, self.head.position,
            "a batch commits onto the head it began from"
        );
        appender.projection.finish(&mut appender.views, state);
        appender.close_segment()?;
        appender.close_expiry();
        let through = appender.head.position.to_be_bytes();
        appender.batch.insert(keys::head("head_position"), &through);
        appender
            .batch
            .insert(keys::head("head_hash"), appender.head.hash.as_bytes());
        appender.stream.insert(keys::DERIVED_THROUGH, &through);
        appender.views.insert(keys::DERIVED_THROUGH, &through);
        // The trees are taken before the write: the projection goes to the
        // store this batch went to, never to one reopened since.
        let store = self.reader.store()?;
        store.log.apply_batch(appender.batch)?;
        self.head = appender.head;
        let projection = Projection {
            store,
            position: self.head.position,
            stream: appender.stream,
            views: appender.views,
            meta: appender.meta_dirty.then_some(appender.meta),
        };
        Ok((self.head.clone(), projection))
    }
}

/// The derived trees' share of a committed batch: its stream index entries
/// and projections (each with its `DERIVED_THROUGH` marker) and its meta
/// values (the manual clock), from [`Log::commit_log`]. Apply them in commit
/// order; until then queries do not see the batch (the engine answers a
/// command only once its projection is applied and flushed).
#[must_use = "a batch's projection must be applied (or its store reopened)"]
pub struct Projection {
    /// The store the batch's log share went to.
    store: Store,
    /// The head after the batch.
    position: u64,
    stream: sled::Batch,
    views: sled::Batch,
    /// `None` when the batch set no meta value (most batches).
    meta: Option<sled::Batch>,
}

impl Projection {
    /// The log position this projection brings the derived trees to.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Applies the stream index, projections and meta values (three atomic
    /// `apply_batch`es, in that order; not yet durable). Errors: sled's
    /// ([`LogError::Storage`]), after which the store must be reopened.
    pub fn apply(self) -> Result<(), LogError> {
        self.store.stream.apply_batch(self.stream)?;
        self.store.views.apply_batch(self.views)?;
        if let Some(meta) = self.meta {
            self.store.meta.apply_batch(meta)?;
        }
        Ok(())
    }
}

/// Accumulates the events and records of one group commit.
pub struct Appender {
    /// The `log` tree's batch: segments, command records, head.
    batch: sled::Batch,
    /// The batch's events not yet in a segment of `batch`.
    segment: segment::SegmentBuilder,
    /// The log's head position when the batch began: the batch's events
    /// follow it, so [`Log::commit`] checks the log is still there.
    base: u64,
    /// The `stream` tree's batch.
    stream: sled::Batch,
    /// The `views` tree's batch (projections).
    views: sled::Batch,
    /// The `meta` tree's batch.
    meta: sled::Batch,
    /// Whether `meta` holds anything (most batches set no meta value, and
    /// an empty `apply_batch` still writes to sled's log).
    meta_dirty: bool,
    head: Head,
    projection: projection::ProjectionWriter,
    /// Whether anything was added: an empty batch is not written.
    dirty: bool,
    ids: IdSource,
    /// The ids of the commands recorded in this batch, 16 bytes each, in
    /// the order recorded: written as one [`KeyKind::CommandBatchExpiry`]
    /// entry at the commit.
    recorded: Vec<u8>,
    /// The latest time a command of this batch was recorded at: the
    /// batch's expiry entry's time, so that no record of the batch expires
    /// before its retention (the earlier ones a little after).
    recorded_last: Option<Timestamp>,
}

impl Appender {
    pub fn is_empty(&self) -> bool {
        !self.dirty
    }

    /// A new id for a command the service makes up itself (a deadline
    /// firing), drawn like event ids: random for the service.
    pub fn new_command_id(&self) -> Uuid {
        self.new_id("command")
    }

    fn new_id(&self, purpose: &str) -> Uuid {
        match self.ids {
            IdSource::Random => Uuid::new_v4(),
            IdSource::Seeded(seed) => {
                let name = format!("{seed}:{}:{purpose}", self.head.position + 1);
                Uuid::new_v5(&SEEDED_ID_NAMESPACE, name.as_bytes())
            }
        }
    }

    /// Folds one event into `state` and adds it to the batch: position,
    /// stream version, hash chain, stream index, projections.
    pub fn append(
        &mut self,
        state: &mut State,
        event: &Event,
        time: Timestamp,
        causation_id: Uuid,
        correlation_id: Option<&str>,
        traceparent: Option<&str>,
    ) -> Result<u64, LogError> {
        let aggregate: AggregateId = event.data.aggregate();
        self.dirty = true;
        self.projection.before(state, event);
        let previous_version = state.version_of(&aggregate);
        let stream_version = state
            .evolve(event, time)
            .map_err(|e| LogError::Corrupt(format!("decided event does not apply: {e}")))?;
        // Invariant: a stream's versions are 1, 2, 3, … with no gap and no
        // repeat (contract §9: the stream index key is the version, and
        // expected_version checks rest on it). `evolve` owns the count; a
        // broken one is a bug that would overwrite or skip an index entry,
        // so it stops here, before anything is written.
        assert_eq!(
            stream_version,
            previous_version + 1,
            "{aggregate:?}: stream version follows the previous one"
        );
        let position = self.head.position + 1;
        let meta = EventMeta {
            // Random at write time (OS CSPRNG) and stored with the event: an
            // id nobody can compute before the event exists, so nobody can
            // take its `Nats-Msg-Id` in the events stream ahead of the relay
            // (issue 10). A republish reads the stored id back.
            event_id: self.new_id("event"),
            time,
            position,
            stream_version,
            causation_id,
            correlation_id: correlation_id.map(str::to_string),
            traceparent: traceparent.map(str::to_string),
        };
        let cloud_event = envelope::to_cloud_event(event, &meta);
        let (bytes, hash) = envelope::seal(cloud_event, &self.head.hash)?;
        if self.segment.is_full_for(bytes.len()) {
            self.close_segment()?;
        }
        self.segment.push(position, &bytes);
        self.stream.insert(
            keys::stream(aggregate.kind, &aggregate.id, stream_version),
            &position.to_be_bytes(),
        );
        self.projection
            .after(&mut self.views, event, position, time);
        self.head = Head { position, hash };
        Ok(position)
    }

    /// Compresses the segment being filled into the batch.
    fn close_segment(&mut self) -> Result<(), LogError> {
        if let Some((key, value)) = self.segment.take()? {
            self.batch.insert(key, value);
        }
        Ok(())
    }

    /// Writes the batch's expiry entry: its latest recorded time and its
    /// first command → every command it recorded.
    fn close_expiry(&mut self) {
        let ids = std::mem::take(&mut self.recorded);
        if let Some(last) = self.recorded_last.take() {
            let first = Uuid::from_slice(&ids[..16]).expect("16 bytes per command id");
            self.batch
                .insert(keys::command_batch_expiry(&last, &first), ids);
        }
    }

    /// Records an accepted command (for idempotent repeats) in the same
    /// atomic batch as its events; the commit adds it to the batch's
    /// expiry entry ([`KeyKind::CommandBatchExpiry`]).
    pub fn record_command(&mut self, command_id: &Uuid, record: &CommandRecord) {
        self.dirty = true;
        self.batch
            .insert(keys::command(command_id), record.to_bytes());
        self.recorded.extend_from_slice(command_id.as_bytes());
        self.recorded_last = self.recorded_last.max(Some(record.recorded_at));
    }

    /// Removes, in this batch, the records of commands recorded before
    /// `before` (at most `max`, oldest first): a repeat of such a command
    /// is then decided anew. The contract asks to remember command ids at
    /// least 7 days (§5); the engine passes its clock minus its retention.
    /// Returns how many were removed.
    ///
    /// A group commit's records expire together, once its latest recorded
    /// time is before `before` (its commands were decided within the
    /// moment a group commit takes, so the earlier ones are kept that much
    /// longer).
    ///
    /// Reads the per-command expiry entries of data dirs written before
    /// issue 8 target 5 first (they are older than any batch entry), then
    /// the per-batch ones. A batch entry that holds more commands than the
    /// bound leaves is cut: its first ones expire, the rest stay under the
    /// same key for a later batch. Errors: sled's, or
    /// [`LogError::Corrupt`] for an expiry entry of the wrong shape.
    pub fn expire_commands(
        &mut self,
        reader: &LogReader,
        before: &Timestamp,
        max: usize,
    ) -> Result<usize, LogError> {
        let log = reader.log()?;
        let mut removed = 0;
        let start = keys::prefix(KeyKind::CommandExpiry).to_vec();
        let end = keys::command_expiry_until(KeyKind::CommandExpiry, before);
        for entry in log.range(start..end).take(max) {
            let (key, _) = entry?;
            let id = key
                .get(key.len().saturating_sub(16)..)
                .and_then(|b| Uuid::from_slice(b).ok())
                .ok_or_else(|| LogError::Corrupt("bad command expiry key".into()))?;
            self.batch.remove(key);
            self.batch.remove(keys::command(&id));
            removed += 1;
        }
        let start = keys::prefix(KeyKind::CommandBatchExpiry).to_vec();
        let end = keys::command_expiry_until(KeyKind::CommandBatchExpiry, before);
        let mut entries = log.range(start..end);
        while removed < max {
            let Some(entry) = entries.next() else {
                break;
            };
            let (key, ids) = entry?;
            if ids.is_empty() || ids.len() % 16 != 0 {
                return Err(LogError::Corrupt(format!(
                    "command expiry entry of {} bytes",
                    ids.len()
                )));
            }
            let take = (ids.len() / 16).min(max - removed);
            for id in ids[..16 * take].chunks_exact(16) {
                let id = Uuid::from_slice(id).expect("16 bytes");
                self.batch.remove(keys::command(&id));
            }
            if 16 * take == ids.len() {
                self.batch.remove(key);
            } else {
                self.batch.insert(key, &ids[16 * take..]);
            }
            removed += take;
        }
        if removed > 0 {
            self.dirty = true;
        }
        Ok(removed)
    }

    /// Stores a small operational value, written with the batch.
    pub fn set_meta_u64(&mut self, name: &str, value: u64) {
        self.dirty = true;
        self.meta_dirty = true;
        self.meta.insert(name.as_bytes(), &value.to_be_bytes());
    }

    pub fn head(&self) -> &Head {
        &self.head
    }
}

/// Copies the files and directories under `from` into `to` (which exists).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_name() == snapshot::SNAPSHOT_DIR {
            // The audit tools fold the log alone: no snapshot is trusted.
            continue;
        }
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            // A copy of a read-only file is read-only; sled opens it to write.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}

/// How long opening a store waits for its lock before answering
/// [`LogError::Locked`]. sled 0.34's background threads hold the `db` file
/// (and its lock) a moment after the last handle of a store is dropped, so
/// an in-process reopen (the writer's after a failed write, tests) can
/// find its own store still locked; another process holding it is refused
/// after this wait.
pub const STORE_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens sled's store in `dir` (created if missing), after removing the
/// snapshot files a crash left unfinished; waits up to
/// [`STORE_LOCK_WAIT`] for the store's lock.
fn open_store(dir: &Path, cache_bytes: u64) -> Result<Store, LogError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| LogError::Storage(format!("cannot create {}: {e}", dir.display())))?;
    remove_unfinished_snapshots(dir)?;
    let waited_since = std::time::Instant::now();
    loop {
        match open_sled(dir, cache_bytes) {
            Err(LogError::Locked(_)) if waited_since.elapsed() < STORE_LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result,
        }
    }
}

/// One attempt of [`open_store`].
fn open_sled(dir: &Path, cache_bytes: u64) -> Result<Store, LogError> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_bytes)
        .open()
        .map_err(|e| match &e {
            sled::Error::Io(io)
                if io.to_string().contains("lock")
                    || io.kind() == std::io::ErrorKind::WouldBlock =>
            {
                LogError::Locked(dir.display().to_string())
            }
            _ => LogError::from(e),
        })?;
    Ok(Store {
        log: db.open_tree(keys::TREE_LOG)?,
        stream: db.open_tree(keys::TREE_STREAM)?,
        views: db.open_tree(keys::TREE_VIEWS)?,
        meta: db.open_tree(keys::TREE_META)?,
        checkpoints: db.open_tree(keys::TREE_CHECKPOINTS)?,
        durable: std::sync::Arc::new(durable::DurableSync::open(dir)?),
        db,
    })
}

/// Removes the snapshot files sled 0.34 left unfinished in `dir`.
///
/// sled writes a snapshot (a recovery shortcut; the log segments hold the
/// data) to `snap.{lsn}.generating`, syncs it, then renames it to
/// `snap.{lsn}`. A crash or a full disk in between leaves the `.generating`
/// file, possibly empty, and sled 0.34 reads the newest `snap.*` file of
/// either kind at open: an empty one made the data dir unstartable ("Read
/// corrupted data at file offset None", issue 11 case 3). Such a file is
/// incomplete by construction or not yet in use, so it is removed; sled
/// then starts from the previous snapshot and the log segments.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), LogError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LogError::Storage(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let path = entry.path();
            let bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            tracing::warn!(path = %path.display(), bytes, "removing an unfinished sled snapshot");
            std::fs::remove_file(&path)
                .map_err(|e| LogError::Storage(format!("cannot remove {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

impl LogReader {
    pub fn open(dir: &Path) -> Result<LogReader, LogError> {
        LogReader::open_with_cache(dir, SLED_CACHE_BYTES)
    }

    /// Opens with a given page cache: a one-off reader of a whole log (the
    /// audit tools) gains from a larger one than the service keeps.
    ///
    /// A data dir of an older store layout is upgraded in place first
    /// (see [`migrate`]).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<LogReader, LogError> {
        let reader = LogReader::open_unmigrated(dir, cache_bytes)?;
        migrate::upgrade_if_needed(&reader)?;
        Ok(reader)
    }

    fn open_unmigrated(dir: &Path, cache_bytes: u64) -> Result<LogReader, LogError> {
        Ok(LogReader {
            store: std::sync::Arc::new(std::sync::RwLock::new(Some(open_store(dir, cache_bytes)?))),
            dir: std::sync::Arc::new(dir.to_path_buf()),
            cache_bytes,
            _copy: None,
        })
    }

    /// The open store, or [`LogError::Closed`] while it is being reopened.
    fn store(&self) -> Result<Store, LogError> {
        self.store
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or(LogError::Closed)
    }

    /// The sled store itself (tree names, dropping a tree: the migration).
    pub(crate) fn db(&self) -> Result<sled::Db, LogError> {
        Ok(self.store()?.db)
    }

    /// Events, command records and the head.
    pub(crate) fn log(&self) -> Result<sled::Tree, LogError> {
        Ok(self.store()?.log)
    }

    /// The stream index.
    pub(crate) fn stream(&self) -> Result<sled::Tree, LogError> {
        Ok(self.store()?.stream)
    }

    /// The projections.
    pub(crate) fn views(&self) -> Result<sled::Tree, LogError> {
        Ok(self.store()?.views)
    }

    /// Operational values.
    pub(crate) fn meta(&self) -> Result<sled::Tree, LogError> {
        Ok(self.store()?.meta)
    }

    /// Signed checkpoints.
    pub(crate) fn checkpoint_tree(&self) -> Result<sled::Tree, LogError> {
        Ok(self.store()?.checkpoints)
    }

    /// Closes the store for every clone of this reader: reads and writes
    /// answer [`LogError::Closed`] until [`LogReader::reopen`]. sled's files
    /// are released when the last operation still holding the old store
    /// ends (sled locks its `db` file, so a reopen waits for that).
    pub fn close(&self) {
        let old = self
            .store
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(old);
    }

    /// Opens the data dir again for every clone of this reader, after a
    /// [`LogReader::close`]. [`LogError::Locked`] while an operation still
    /// holds the old store: retry. The caller runs the start-up checks
    /// ([`Log::reopen`] does).
    pub fn reopen(&self) -> Result<(), LogError> {
        let mut slot = self
            .store
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(slot.is_none(), "reopen of a store that is open");
        *slot = Some(open_store(&self.dir, self.cache_bytes)?);
        Ok(())
    }

    /// Opens a private copy of the data dir `dir` and leaves `dir` itself
    /// byte for byte as it was, so an auditor can read a read-only mount or
    /// an archived copy (issue 11 case 15).
    ///
    /// sled 0.34 has no read-only mode: opening a store takes a write lock
    /// on its `db` file, may recover and rewrite segments, and writes
    /// snapshots. So the tools copy the data dir into a temporary directory
    /// (under `$TMPDIR`, which needs room for the data dir's size; on
    /// filesystems with reflinks, such as XFS and Btrfs, the copy shares the
    /// blocks) and open the copy. While copying, a shared lock on `dir/db`
    /// keeps a `cpor serve` from starting on it; a data dir a running
    /// service holds is [`LogError::Locked`], as with [`LogReader::open`].
    /// Nothing is written into `dir`, and the copy is removed when the
    /// reader (and its last clone) is dropped.
    pub fn open_copy(dir: &Path, cache_bytes: u64) -> Result<LogReader, LogError> {
        let io = |what: &str, e: std::io::Error| LogError::Storage(format!("{what}: {e}"));
        let db_file = std::fs::File::open(dir.join("db"))
            .map_err(|e| io(&format!("cannot open {}", dir.join("db").display()), e))?;
        match db_file.try_lock_shared() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked(dir.display().to_string()))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io(&format!("cannot lock {}", dir.join("db").display()), e))
            }
        }
        let copy = tempfile::Builder::new()
            .prefix("cpor-audit-")
            .tempdir()
            .map_err(|e| io("cannot create a temporary directory for the copy", e))?;
        copy_tree(dir, copy.path()).map_err(|e| {
            io(
                &format!(
                    "cannot copy {} to {} (set TMPDIR to a directory with room for it)",
                    dir.display(),
                    copy.path().display()
                ),
                e,
            )
        })?;
        drop(db_file);
        let mut reader = LogReader::open_with_cache(copy.path(), cache_bytes)?;
        reader._copy = Some(std::sync::Arc::new(copy));
        Ok(reader)
    }

    /// Ends a reader of a private copy ([`LogReader::open_copy`]) in a
    /// process about to exit: the copy's files are removed now and sled's
    /// store is left open instead of closed. Closing it walks sled's whole
    /// page table and frees every cached page (about 7 % of a `cpor
    /// rebuild`'s CPU at 20,000 claims), and flushes into files about to be
    /// removed; the exit frees the memory at once. A reader of the data dir
    /// itself, or one whose clones are still alive, is dropped as usual
    /// (its close flushes, and the last clone removes a copy).
    pub fn close_copy_at_exit(self) {
        let LogReader { store, _copy, .. } = self;
        match _copy.map(std::sync::Arc::try_unwrap) {
            Some(Ok(copy)) => {
                // Only sled's handles stay: its files are unlinked, its
                // background threads end with the process.
                std::mem::forget(store);
                if let Err(error) = copy.close() {
                    tracing::warn!(%error, "cannot remove the private copy of the data dir");
                }
            }
            Some(Err(shared)) => drop((store, shared)),
            None => drop(store),
        }
    }

    /// The data dir (sled's files, and the state snapshots beside them).
    pub fn dir(&self) -> &Path {
        self.dir.as_path()
    }

    /// Bytes free for this process on the data dir's filesystem (statvfs
    /// `f_bavail`): the writer refuses to write below a reserve rather than
    /// let sled meet a full disk.
    pub fn available_space(&self) -> Result<u64, LogError> {
        fs2::available_space(self.dir.as_path()).map_err(|e| {
            LogError::Storage(format!(
                "cannot read the free space of {}: {e}",
                self.dir.display()
            ))
        })
    }

    /// Makes every write so far durable, against a power cut too: sled's
    /// flush, then [`durable::DurableSync::sync`] (sled 0.34's flush alone
    /// does not flush the disk's write cache nor the file's size). Nothing
    /// is acknowledged or published before this returns. Blocking (one or
    /// two disk syncs): call it from a thread that may block
    /// (`spawn_blocking` in async code).
    pub fn flush_blocking(&self) -> Result<(), LogError> {
        let store = self.store()?;
        store.db.flush()?;
        store.durable.sync()
    }

    /// The last event written, per the data itself (not the meta record):
    /// the last segment's first position and count (nothing decompressed).
    pub fn last_position(&self) -> Result<u64, LogError> {
        match self.log()?.range(segment::all()).next_back() {
            None => Ok(0),
            Some(entry) => {
                let (key, value) = entry?;
                segment::last_of(&key, &value)
            }
        }
    }

    pub(crate) fn decoded_at(&self, position: u64) -> Result<DecodedEvent, LogError> {
        let bytes = self
            .event_bytes(position)?
            .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
        envelope::decode(&bytes)
    }

    /// The canonical CloudEvent at `position`, `None` past the end: the
    /// segment holding it (a reverse range from the position), decompressed.
    /// To read many events in order, use [`LogReader::events_from`], which
    /// decompresses each segment once.
    pub fn event_bytes(&self, position: u64) -> Result<Option<Vec<u8>>, LogError> {
        let Some((key, value)) = segment::containing(&self.log()?, position)? else {
            return Ok(None);
        };
        Ok(segment::Segment::decode(&key, &value)?
            .get(position)
            .map(<[u8]>::to_vec))
    }

    /// Streams stored events from `position` on, in log order, as
    /// (position, canonical CloudEvent bytes): segment by segment, each
    /// decompressed once. Memory use does not depend on the log's size.
    pub fn events_from(
        &self,
        position: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), LogError>> + '_ {
        let from = position.max(1);
        let segments = self.log().and_then(|tree| {
            let start = match segment::containing(&tree, from)? {
                Some((key, _)) => key.to_vec(),
                None => keys::segment(from),
            };
            Ok(tree.range(start..segment::all().end))
        });
        let (segments, closed) = match segments {
            Ok(range) => (Some(range), None),
            Err(error) => (None, Some(Err(error))),
        };
        closed.into_iter().chain(
            segments
                .into_iter()
                .flatten()
                .flat_map(move |entry| segment_events(entry, from)),
        )
    }

    /// Folds the log into a fresh state, up to `as_of` (event time) if given.
    /// Checks that positions are gapless as it goes.
    pub fn fold_state(&self, as_of: Option<Timestamp>) -> Result<State, LogError> {
        Ok(self.fold_onto(State::new(), 0, as_of)?.0)
    }

    /// Folds the events after position `after` into `state` (the fold of
    /// the log up to `after`), up to `as_of` (event time) if given; checks
    /// that positions are gapless. Returns the state and how many events
    /// it folded. The events are decoded on threads of their own
    /// ([`LogReader::decoded_from`]).
    pub fn fold_onto(
        &self,
        mut state: State,
        after: u64,
        as_of: Option<Timestamp>,
    ) -> Result<(State, u64), LogError> {
        let mut folded = 0;
        for (expected, entry) in (after + 1..).zip(self.decoded_from(after + 1)) {
            let (position, decoded) = entry?;
            if position != expected {
                return Err(LogError::Corrupt(format!(
                    "gap: expected position {expected}, found {position}"
                )));
            }
            if as_of.is_some_and(|t| decoded.time > t) {
                break;
            }
            state
                .evolve(&decoded.event, decoded.time)
                .map_err(|e| LogError::Corrupt(format!("position {position}: {e}")))?;
            folded += 1;
        }
        Ok((state, folded))
    }

    /// The idempotency record of an accepted command.
    pub fn command_record(&self, command_id: &Uuid) -> Result<Option<CommandRecord>, LogError> {
        match self.log()?.get(keys::command(command_id))? {
            None => Ok(None),
            Some(bytes) => CommandRecord::from_bytes(&bytes, command_id).map(Some),
        }
    }

    /// Positions of one aggregate's events, in version order.
    pub fn stream_positions(&self, aggregate: &AggregateId) -> Result<Vec<u64>, LogError> {
        let prefix = keys::stream_prefix(aggregate.kind, &aggregate.id);
        self.stream()?
            .scan_prefix(prefix)
            .map(|entry| {
                let (_, value) = entry?;
                <[u8; 8]>::try_from(value.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| LogError::Corrupt("bad stream entry".into()))
            })
            .collect()
    }

    pub fn get_meta_u64(&self, name: &str) -> Result<Option<u64>, LogError> {
        u64_at(&self.meta()?, name.as_bytes())
    }

    /// Operational values outside the batch path (the relay's progress).
    pub fn put_meta_u64(&self, name: &str, value: u64) -> Result<(), LogError> {
        self.meta()?.insert(name, &value.to_be_bytes())?;
        Ok(())
    }

    pub fn get_meta_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.meta()?.get(name)?.map(|v| v.to_vec()))
    }

    pub fn put_meta_bytes(&self, name: &str, value: &[u8]) -> Result<(), LogError> {
        self.meta()?.insert(name, value)?;
        Ok(())
    }

    /// Command records stored (the idempotency memory's size).
    pub fn command_records(&self) -> Result<usize, LogError> {
        Ok(self
            .log()?
            .scan_prefix(keys::prefix(KeyKind::Command))
            .count())
    }

    /// The position a derived tree reflects (its marker), 0 when it has none.
    fn derived_through(tree: &sled::Tree) -> Result<u64, LogError> {
        Ok(u64_at(tree, keys::DERIVED_THROUGH)?.unwrap_or(0))
    }

    /// Rebuilds the stream index and the projections from the log when
    /// their markers are not at `head` (a stop between the log batch and
    /// theirs, see [`Log::commit`]). Returns whether it rebuilt.
    pub fn catch_up_derived(&self, head: &Head) -> Result<bool, LogError> {
        let stream = LogReader::derived_through(&self.stream()?)?;
        let views = LogReader::derived_through(&self.views()?)?;
        if stream == head.position && views == head.position {
            return Ok(false);
        }
        tracing::warn!(
            head = head.position,
            stream,
            views,
            "the stream index or the projections are not at the head; rewriting them from the log"
        );
        repair_projections(self, |_| {})?;
        Ok(true)
    }
}

/// The events of one stored segment from `from` on (its whole decoding as
/// one result when it fails).
fn segment_events(
    entry: sled::Result<(sled::IVec, sled::IVec)>,
    from: u64,
) -> Vec<Result<(u64, Vec<u8>), LogError>> {
    let decoded = entry
        .map_err(LogError::from)
        .and_then(|(key, value)| segment::Segment::decode(&key, &value));
    match decoded {
        Ok(segment) => segment
            .events_from(from)
            .map(|(position, bytes)| Ok((position, bytes.to_vec())))
            .collect(),
        Err(error) => vec![Err(error)],
    }
}

/// The `causationid` of a stored event (the command that wrote it).
pub(crate) fn causation_of(bytes: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Causation {
        causationid: Uuid,
    }
    serde_json::from_slice::<Causation>(bytes)
        .ok()
        .map(|c| c.causationid)
}

#[cfg(test)]
mod tests;
