//! Where a data dir's bytes go: the live entries of each tree, by kind of
//! record, beside the files on disk. Issue 8 target 5 holds the data dir to
//! 1.5× the canonical export; this accounting says how much of the rest is
//! live content (and of which kind) and how much is sled 0.34's own
//! overhead: page headers, fragments not yet consolidated, and segments up
//! to half garbage before its cleaner relocates them
//! (`SEGMENT_CLEANUP_THRESHOLD` = 50 in sled 0.34.7, not configurable).

use std::path::Path;

use crate::{keys, LogError, LogReader};

/// The live entries of one kind of record: one row of [`StoreSpace`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindSpace {
    /// `tree/kind`, e.g. `log/segment`, `views/claim`, `stream`.
    pub name: String,
    /// Entries (keys) of this kind.
    pub entries: u64,
    /// Their keys' bytes.
    pub key_bytes: u64,
    /// Their values' bytes, as stored (segments compressed).
    pub value_bytes: u64,
}

/// A data dir's space: live entries by kind and the files holding them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreSpace {
    /// Live entries by kind, in tree order.
    pub kinds: Vec<KindSpace>,
    /// The bytes of the events themselves, uncompressed: their canonical
    /// CloudEvents, what `cpor export` writes less one newline per event.
    pub event_bytes: u64,
    /// Events in the log.
    pub events: u64,
    /// Bytes of every file under the data dir (sled's `db`, `blobs`, `conf`,
    /// snapshots, state snapshots): what target 5 counts.
    pub file_bytes: u64,
}

impl StoreSpace {
    /// Keys plus values of every live entry.
    pub fn live_bytes(&self) -> u64 {
        self.kinds.iter().map(|k| k.key_bytes + k.value_bytes).sum()
    }
}

/// A name for the first key byte of an entry of `tree`.
fn kind_name(tree: &str, key: &[u8]) -> String {
    let kind = match (tree, key.first()) {
        (_, Some(0x00)) if tree != keys::TREE_LOG => "marker",
        (keys::TREE_LOG, Some(0x03)) => "command",
        (keys::TREE_LOG, Some(0x04)) => "head",
        (keys::TREE_LOG, Some(0x06)) => "command-expiry",
        (keys::TREE_LOG, Some(0x08)) => "command-batch-expiry",
        (keys::TREE_LOG, Some(0x07)) => "segment",
        (keys::TREE_VIEWS, Some(0x10)) => "claim",
        (keys::TREE_VIEWS, Some(0x11)) => "comment",
        (keys::TREE_VIEWS, Some(0x12)) => "case",
        (keys::TREE_VIEWS, Some(0x13)) => "claim-order",
        (keys::TREE_VIEWS, Some(0x14)) => "case-order",
        (keys::TREE_VIEWS, Some(0x15)) => "deadline",
        (keys::TREE_VIEWS, Some(0x16)) => "partner-claims",
        (keys::TREE_VIEWS, Some(0x17)) => "tenant-claims",
        (keys::TREE_STREAM, Some(1)) => "claim",
        (keys::TREE_STREAM, Some(2)) => "case",
        (keys::TREE_STREAM, Some(3)) => "tenant",
        (keys::TREE_STREAM, Some(4)) => "subscription",
        (keys::TREE_STREAM, Some(5)) => "partner",
        (keys::TREE_META | keys::TREE_CHECKPOINTS, _) => "all",
        _ => "other",
    };
    format!("{tree}/{kind}")
}

fn dir_bytes(dir: &Path) -> Result<u64, LogError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| LogError::Storage(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let meta = entry
            .metadata()
            .map_err(|e| LogError::Storage(format!("cannot stat {}: {e}", dir.display())))?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

impl LogReader {
    /// Counts every live entry of every tree by kind, and the events'
    /// uncompressed bytes (decompressing each segment once), beside the
    /// data dir's file bytes. Reads the whole store: for the benchmark and
    /// operators, never on the service's path.
    ///
    /// Errors: the store cannot be read, or a segment does not decode.
    pub fn space(&self) -> Result<StoreSpace, LogError> {
        let mut space = StoreSpace {
            file_bytes: dir_bytes(self.dir())?,
            ..StoreSpace::default()
        };
        let store = self.store()?;
        let trees = [
            (keys::TREE_LOG, &store.log),
            (keys::TREE_STREAM, &store.stream),
            (keys::TREE_VIEWS, &store.views),
            (keys::TREE_META, &store.meta),
            (keys::TREE_CHECKPOINTS, &store.checkpoints),
        ];
        for (tree, entries) in trees {
            for entry in entries.iter() {
                let (key, value) = entry?;
                let name = kind_name(tree, &key);
                if name == "log/segment" {
                    let segment = crate::segment::Segment::decode(&key, &value)?;
                    for (_, event) in segment.events_from(0) {
                        space.events += 1;
                        space.event_bytes += event.len() as u64;
                    }
                }
                let row = match space.kinds.iter_mut().find(|k| k.name == name) {
                    Some(row) => row,
                    None => {
                        space.kinds.push(KindSpace {
                            name,
                            entries: 0,
                            key_bytes: 0,
                            value_bytes: 0,
                        });
                        space.kinds.last_mut().expect("just pushed")
                    }
                };
                row.entries += 1;
                row.key_bytes += key.len() as u64;
                row.value_bytes += value.len() as u64;
            }
        }
        Ok(space)
    }
}
