//! Decision-state snapshots: the [`State`] at a log position, with that
//! position's hash, in a file of the data dir, so a start folds only the
//! events after it instead of the whole log.
//!
//! A snapshot is a cache of the log, never a source of truth: start-up
//! ([`crate::startup::run`]) uses the newest one whose position is at or
//! before the head and whose hash is the log's hash at that position (the
//! hash chain commits to every event up to there, so the state is the
//! fold of exactly those events), and folds the rest. Any other file
//! (damaged, of another format, ahead of the log after a cut, or for a
//! position whose event hash differs) is removed with a warning and the
//! next older one is tried, down to the full fold. `cpor verify` and
//! `cpor rebuild` never read them.
//!
//! Files: `DATA_DIR/state-snapshots/state-{position:020}.snap`, written to
//! a `.tmp` file, synced, renamed into place, then the directory synced:
//! a crash leaves either the whole new file or none, plus maybe a `.tmp`
//! that the next start removes. Not in sled: sled 0.34 rewrites a large
//! value with every page it lives on (write amplification), and a
//! snapshot is written whole and read whole. The newest
//! [`SNAPSHOTS_KEPT`] are kept.
//!
//! Layout of a file: [`MAGIC`], the format ([`FORMAT`], u32 LE), the
//! CRC-32 of the body (u32 LE), the body's length (u64 LE), then the body:
//! postcard frames, first the position, hash and [`ImageHead`], then the
//! claims in chunks ([`cpor_domain::image`]).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use cpor_domain::image::{ClaimImage, ImageHead, Restorer};
use cpor_domain::state::State;

use crate::{Head, LogError, LogReader};

/// Events between two snapshots the service writes while it runs
/// ([`Snapshotter`]). A start folds at most about this many events after
/// the newest snapshot (the fold runs at ~150k events/s, so ≈ 2 s at
/// most); each snapshot costs the writer one encoding of the state
/// (measured in docs/performance.md).
pub const SNAPSHOT_EVERY_EVENTS: u64 = 250_000;
/// Snapshot files kept: the newest and the one before (if the newest is
/// found damaged, a start uses the older one rather than fold it all).
pub const SNAPSHOTS_KEPT: usize = 2;
/// The directory, inside the data dir, that holds the snapshot files.
pub const SNAPSHOT_DIR: &str = "state-snapshots";
/// The first bytes of a snapshot file.
pub const MAGIC: &[u8; 8] = b"CPORSNAP";
/// The encoding of the body; a file of another format is ignored.
pub const FORMAT: u32 = 1;
/// Magic, format, CRC-32, body length.
const HEADER_BYTES: usize = 8 + 4 + 4 + 8;

/// The first frame of the body.
#[derive(Serialize, Deserialize)]
struct Preamble {
    position: u64,
    hash: String,
    head: ImageHead,
}

/// A state encoded for a snapshot file, not yet written.
pub struct Encoded {
    position: u64,
    bytes: Vec<u8>,
}

impl Encoded {
    /// The log position the state is the fold of.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The file's size, in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The file's bytes ([`decode`] reads them back).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Encodes `state`, the fold of the log up to `head` (the caller's
/// guarantee: a state ahead of or behind its head would be restored as
/// the fold of that head). Errors: [`LogError::Encode`] (a bug).
pub fn encode(state: &State, head: &Head) -> Result<Encoded, LogError> {
    let encode_error = |e: postcard::Error| LogError::Encode(format!("state snapshot: {e}"));
    let image = state.image();
    let preamble = Preamble {
        position: head.position,
        hash: head.hash.clone(),
        head: image.head(),
    };
    let mut bytes = vec![0u8; HEADER_BYTES];
    bytes = postcard::to_extend(&preamble, bytes).map_err(encode_error)?;
    for chunk in image.claim_chunks() {
        bytes = postcard::to_extend(&chunk, bytes).map_err(encode_error)?;
    }
    let body_len = (bytes.len() - HEADER_BYTES) as u64;
    let crc = crc32fast::hash(&bytes[HEADER_BYTES..]);
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..12].copy_from_slice(&FORMAT.to_le_bytes());
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
    bytes[16..24].copy_from_slice(&body_len.to_le_bytes());
    Ok(Encoded {
        position: head.position,
        bytes,
    })
}

/// Decodes a snapshot file's bytes into (position, hash, state). Errors:
/// what is wrong with them, in words.
pub fn decode(bytes: &[u8]) -> Result<(u64, String, State), String> {
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err("not a state snapshot (no magic)".into());
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let format = word(8);
    if format != FORMAT {
        return Err(format!(
            "snapshot format {format}, this release reads {FORMAT}"
        ));
    }
    let body_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let body = &bytes[HEADER_BYTES..];
    if body.len() as u64 != body_len {
        return Err(format!(
            "truncated: {} body bytes of {body_len}",
            body.len()
        ));
    }
    if crc32fast::hash(body) != word(12) {
        return Err("checksum mismatch".into());
    }
    let (preamble, mut rest) =
        postcard::take_from_bytes::<Preamble>(body).map_err(|e| e.to_string())?;
    let mut restorer = Restorer::new(preamble.head).map_err(|e| e.to_string())?;
    while restorer.claims_missing() > 0 {
        let (chunk, after) =
            postcard::take_from_bytes::<Vec<ClaimImage>>(rest).map_err(|e| e.to_string())?;
        restorer.push_chunk(chunk).map_err(|e| e.to_string())?;
        rest = after;
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last claim", rest.len()));
    }
    let state = restorer.finish().map_err(|e| e.to_string())?;
    Ok((preamble.position, preamble.hash, state))
}

/// The snapshot directory of the data dir `dir`.
pub fn snapshot_dir(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_DIR)
}

fn file_name(position: u64) -> String {
    format!("state-{position:020}.snap")
}

/// The snapshot files of the data dir `dir`, newest (highest position)
/// first. Other files are not listed.
pub fn list(dir: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(snapshot_dir(dir)) else {
        return Vec::new();
    };
    let mut found: Vec<(u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let position = name
                .to_str()?
                .strip_prefix("state-")?
                .strip_suffix(".snap")?
                .parse()
                .ok()?;
            Some((position, entry.path()))
        })
        .collect();
    found.sort_by_key(|(position, _)| std::cmp::Reverse(*position));
    found
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> LogError {
    LogError::Storage(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `snapshot` into the data dir `dir` atomically (temp file,
/// fsync, rename, fsync of the directory), then removes all but the
/// newest [`SNAPSHOTS_KEPT`]. Returns the file's path. Errors:
/// [`LogError::Storage`] naming the file.
pub fn write(dir: &Path, snapshot: &Encoded) -> Result<PathBuf, LogError> {
    use std::io::Write;
    let folder = snapshot_dir(dir);
    std::fs::create_dir_all(&folder).map_err(|e| io_error("create", &folder, e))?;
    let path = folder.join(file_name(snapshot.position));
    let temp = path.with_extension("snap.tmp");
    let mut file = std::fs::File::create(&temp).map_err(|e| io_error("create", &temp, e))?;
    file.write_all(&snapshot.bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("write", &temp, e))?;
    drop(file);
    std::fs::rename(&temp, &path).map_err(|e| io_error("rename", &temp, e))?;
    std::fs::File::open(&folder)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("sync", &folder, e))?;
    for (_, old) in list(dir).into_iter().skip(SNAPSHOTS_KEPT) {
        remove(&old);
    }
    Ok(path)
}

fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "cannot remove a state snapshot");
    }
}

/// Removes the `.tmp` files a stop between a snapshot's write and its
/// rename left in the data dir `dir`: unfinished by construction.
fn remove_unfinished(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(snapshot_dir(dir)) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            tracing::warn!(path = %entry.path().display(), "removing an unfinished state snapshot");
            remove(&entry.path());
        }
    }
}

/// The newest usable snapshot of `reader`'s data dir for a log at `head`:
/// (position, state), `None` when there is none (see the module docs for
/// what is usable; the others are removed with a warning). Errors: only
/// the log's own ([`LogReader::decoded_at`]) reading a snapshot's
/// position.
pub fn load(reader: &LogReader, head: &Head) -> Result<Option<(u64, State)>, LogError> {
    let dir = reader.dir();
    remove_unfinished(dir);
    for (position, path) in list(dir) {
        let started = Instant::now();
        match check(reader, head, position, &path)? {
            Ok(state) => {
                tracing::info!(
                    position,
                    claims = state.claims.len(),
                    seconds = started.elapsed().as_secs_f64(),
                    "restored the decision state from a snapshot"
                );
                return Ok(Some((position, state)));
            }
            Err(why) => {
                tracing::warn!(path = %path.display(), %why, "ignoring and removing a state snapshot");
                remove(&path);
            }
        }
    }
    Ok(None)
}

/// Reads and checks one snapshot file: `Ok(Err(why))` when it is not
/// usable for a log at `head`.
fn check(
    reader: &LogReader,
    head: &Head,
    position: u64,
    path: &Path,
) -> Result<Result<State, String>, LogError> {
    if position > head.position {
        return Ok(Err(format!(
            "it is of position {position}, after the log's head {}",
            head.position
        )));
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => return Ok(Err(format!("cannot read it: {e}"))),
    };
    let (at, hash, state) = match decode(&bytes) {
        Ok(decoded) => decoded,
        Err(why) => return Ok(Err(why)),
    };
    drop(bytes);
    if at != position {
        return Ok(Err(format!(
            "its name says position {position}, its content {at}"
        )));
    }
    let logged = if position == 0 {
        String::new()
    } else {
        reader.decoded_at(position)?.hash
    };
    if logged != hash {
        return Ok(Err(format!(
            "its hash differs from the log's at position {position}"
        )));
    }
    Ok(Ok(state))
}

/// Takes the service's snapshots while it runs: every
/// [`SNAPSHOT_EVERY_EVENTS`] (or the given count) the writer encodes its
/// state (on its own thread, so the state needs no copy nor lock) and a
/// thread of its own (`cpor-snapshot`) writes the file. A snapshot may be
/// written before its position is flushed: if a crash loses that tail,
/// the next start finds the snapshot ahead of the log, or its hash
/// different, and ignores it.
pub struct Snapshotter {
    dir: PathBuf,
    every: u64,
    /// The position of the newest snapshot taken (or found at start).
    last: u64,
    /// The write in progress, if any.
    writing: Option<std::thread::JoinHandle<()>>,
}

/// The snapshot writer's thread name.
pub const SNAPSHOT_THREAD: &str = "cpor-snapshot";

impl Snapshotter {
    /// Snapshots of `reader`'s data dir, one every `every` events after
    /// the newest already there.
    pub fn new(reader: &LogReader, every: u64) -> Snapshotter {
        let dir = reader.dir().to_path_buf();
        let last = list(&dir).first().map_or(0, |(position, _)| *position);
        Snapshotter {
            dir,
            every: every.max(1),
            last,
            writing: None,
        }
    }

    /// After a committed batch, with `state` the fold of the log up to
    /// `head`: when `every` events passed since the last snapshot and no
    /// write is in progress, encodes the state here and writes it on the
    /// snapshot thread. Returns the encoded bytes' size when it took one.
    /// Never fails the caller: errors are logged (snapshots are a cache).
    pub fn after_commit(&mut self, state: &State, head: &Head) -> Option<usize> {
        if head.position < self.last.saturating_add(self.every) {
            return None;
        }
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return None;
        }
        let started = Instant::now();
        let encoded = match encode(state, head) {
            Ok(encoded) => encoded,
            Err(error) => {
                tracing::error!(%error, "cannot encode a state snapshot");
                self.last = head.position;
                return None;
            }
        };
        let bytes = encoded.len();
        tracing::info!(
            position = head.position,
            bytes,
            encode_seconds = started.elapsed().as_secs_f64(),
            "taking a state snapshot"
        );
        self.last = head.position;
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name(SNAPSHOT_THREAD.into())
            .spawn(move || write_logged(&dir, &encoded));
        match spawned {
            Ok(handle) => self.writing = Some(handle),
            Err(error) => tracing::error!(%error, "cannot start the snapshot thread"),
        }
        Some(bytes)
    }

    /// Waits for a write in progress, then writes `encoded` on this
    /// thread (a graceful stop's last snapshot). Errors are logged.
    pub fn finish(mut self, encoded: Option<Encoded>) {
        if let Some(writing) = self.writing.take() {
            let _ = writing.join();
        }
        if let Some(encoded) = encoded {
            if encoded.position() > self.last {
                write_logged(&self.dir, &encoded);
            }
        }
    }
}

/// What [`take`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub path: PathBuf,
    /// The log position the snapshot is the fold of (the head).
    pub position: u64,
    /// The file's size, in bytes.
    pub bytes: u64,
}

/// `cpor snapshot`: opens the data dir `dir` of a stopped service (an
/// older layout is upgraded, as `cpor serve` does), runs the start-up
/// checks folding the whole log (no snapshot trusted) and writes a
/// snapshot at the head. Errors: [`LogError::Locked`] while a service
/// holds the data dir; the start-up checks' refusals.
pub fn take(dir: &Path) -> Result<Taken, LogError> {
    let reader = LogReader::open(dir)?;
    let started = crate::startup::run_from_log(&reader)?;
    reader.flush_blocking()?;
    let encoded = encode(&started.state, &started.head)?;
    let path = write(dir, &encoded)?;
    Ok(Taken {
        path,
        position: encoded.position(),
        bytes: encoded.len() as u64,
    })
}

fn write_logged(dir: &Path, encoded: &Encoded) {
    let started = Instant::now();
    match write(dir, encoded) {
        Ok(path) => tracing::info!(
            path = %path.display(),
            position = encoded.position(),
            bytes = encoded.len(),
            seconds = started.elapsed().as_secs_f64(),
            "state snapshot written"
        ),
        Err(error) => tracing::warn!(%error, "cannot write a state snapshot"),
    }
}

#[cfg(test)]
mod tests;
