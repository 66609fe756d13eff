//! Making a flushed store durable against a power cut, not only against the
//! death of the process.
//!
//! sled 0.34's `flush` writes its buffers and calls `sync_file_range(2)`
//! on them (`iobuf.rs`), which, in its man page's words, "does not flush
//! disk write caches and thus does not provide any data integrity on
//! systems with volatile disk write caches", and does not write the file's
//! metadata (its size grows with every new log segment). Page images over
//! a quarter of a 512 KiB log segment go to files under `blobs/`, written
//! without any sync. sled's own `fsync` comes from its background flusher,
//! every `flush_every_ms` (500 ms). Known upstream: spacejam/sled#1452
//! ("Data is not written durably", open) and #1351.
//!
//! A `kill -9` loses nothing either way (the kernel's page cache survives
//! the process), but an acknowledged command could be lost to a power cut
//! or a host crash within that half second. So after sled's flush the log
//! makes the flushed bytes durable itself ([`DurableSync::sync`]): every
//! blob file not yet synced, then the `blobs` directory (their names), then
//! `fdatasync` of `db` (its data, the size that covers it, and a cache
//! flush on filesystems mounted with barriers, ext4's and XFS's default).

use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::LogError;

/// The files of one open sled store that a flush must make durable.
pub(crate) struct DurableSync {
    /// sled's single data file, `DIR/db`, opened read-only: `fdatasync` on
    /// any descriptor of a file syncs the file.
    db: File,
    /// `DIR/blobs`.
    blobs: PathBuf,
    /// Blob files synced already (the names last seen): only new ones are
    /// synced again. sled removes blobs its pages no longer point at, so
    /// the set is replaced by each listing, never grows beyond the dir.
    synced_blobs: Mutex<HashSet<OsString>>,
}

fn io(what: &str, path: &Path, error: std::io::Error) -> LogError {
    LogError::Storage(format!("cannot {what} {}: {error}", path.display()))
}

impl DurableSync {
    /// Opens the store's files in `dir` (after sled opened it, so they
    /// exist) and syncs the directory once: sled made `db`, `conf` and
    /// `blobs` without syncing their names.
    ///
    /// Errors: [`LogError::Storage`] when a file cannot be opened or synced.
    pub(crate) fn open(dir: &Path) -> Result<DurableSync, LogError> {
        let db_path = dir.join("db");
        let db = File::open(&db_path).map_err(|e| io("open", &db_path, e))?;
        sync_dir(dir)?;
        let sync = DurableSync {
            db,
            blobs: dir.join("blobs"),
            synced_blobs: Mutex::new(HashSet::new()),
        };
        sync.sync()?;
        Ok(sync)
    }

    /// Makes what sled has flushed durable: new blob files, the `blobs`
    /// directory when it has new names, then `fdatasync` of `db`. Call it
    /// after sled's `flush` returned and before acknowledging anything.
    ///
    /// Errors: [`LogError::Storage`] when a sync fails (the caller treats
    /// it as a failed flush: nothing since the last good one is durable).
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        self.sync_blobs()?;
        self.db
            .sync_data()
            .map_err(|e| io("fdatasync", &self.blobs.with_file_name("db"), e))
    }

    /// The blob names synced so far (tests).
    #[cfg(test)]
    pub(crate) fn synced_blobs(&self) -> std::sync::MutexGuard<'_, HashSet<OsString>> {
        self.synced_blobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sync_blobs(&self) -> Result<(), LogError> {
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            // sled makes the directory at open; none means no blob yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("list", &self.blobs, e)),
        };
        let mut seen = HashSet::with_capacity(synced.len());
        let mut new = false;
        for entry in entries {
            let entry = entry.map_err(|e| io("list", &self.blobs, e))?;
            let name = entry.file_name();
            if !synced.contains(&name) {
                let path = entry.path();
                match File::open(&path) {
                    Ok(file) => file.sync_all().map_err(|e| io("fsync", &path, e))?,
                    // Removed by sled's blob collection since the listing.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("open", &path, e)),
                }
                new = true;
            }
            seen.insert(name);
        }
        if new {
            sync_dir(&self.blobs)?;
        }
        *synced = seen;
        Ok(())
    }
}

/// `fsync` of a directory: makes the names in it durable.
fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync", dir, e))
}
