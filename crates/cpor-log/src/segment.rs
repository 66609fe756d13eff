//! Segments (store layout 4): the events of a group commit in one `log`
//! value instead of one entry per event.
//!
//! Key: [`KeyKind::Segment`] then the position of its first event (8 bytes
//! big-endian), so a reverse range from a position finds the segment that
//! holds it, and a forward range reads the log in order.
//!
//! Value: a codec byte ([`CODEC_ZSTD`]), the number of events (u32
//! big-endian), the length of the framed events before compression (u32
//! big-endian), then the framed events compressed as one zstd frame. Framed
//! events: for each, its length (u32 big-endian) then its bytes, the
//! canonical CloudEvent exactly as sealed (so the hash chain and every
//! export are unchanged). The count is outside the compression: the last
//! position is read without decompressing anything.
//!
//! A group commit's events go into as few segments as possible: a segment
//! is closed when its framed events reach [`SEGMENT_RAW_BYTES_MAX`] (a point
//! read decompresses one whole segment), and at the end of the batch. All
//! of a batch's segments are in its one atomic `apply_batch`.
//!
//! zstd level [`ZSTD_LEVEL`]: measured on the benchmark's events (800 B
//! median canonical JSON) it keeps 5.3x less at 64 events per segment and
//! 1.5x at one, where LZ4 (`lz4_flex`) keeps 2.9x and 1.15x; it costs about
//! 1.5 µs per event to compress and 0.5 µs to decompress.

use std::cell::RefCell;

use crate::keys::{self, KeyKind};
use crate::LogError;

/// The codec byte of a zstd-compressed segment.
pub(crate) const CODEC_ZSTD: u8 = 1;
/// zstd's level: its fastest regular one; higher levels gained under 3 %
/// on our events at twice the time.
const ZSTD_LEVEL: i32 = 1;
/// A segment is closed once its framed events reach this many bytes (about
/// 80 events of the benchmark's mix): big enough that zstd finds the
/// repeats between events, small enough that a point read stays cheap.
pub(crate) const SEGMENT_RAW_BYTES_MAX: usize = 64 * 1024;
/// Codec byte, event count, framed length.
const HEADER_BYTES: usize = 1 + 4 + 4;

thread_local! {
    /// zstd contexts, one per thread: a context is costly to make (it
    /// allocates its tables), cheap to reuse.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn storage(what: &str, e: std::io::Error) -> LogError {
    LogError::Storage(format!("{what} a segment: {e}"))
}

/// A `log` entry: key and value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// The events of a segment being written, framed but not yet compressed.
#[derive(Debug, Default)]
pub(crate) struct SegmentBuilder {
    /// The position of its first event (0 while empty).
    first: u64,
    count: u32,
    framed: Vec<u8>,
}

impl SegmentBuilder {
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Events added.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether adding `bytes` more would pass [`SEGMENT_RAW_BYTES_MAX`]
    /// (never for the first event: a segment holds at least one).
    pub(crate) fn is_full_for(&self, bytes: usize) -> bool {
        !self.is_empty() && self.framed.len() + 4 + bytes > SEGMENT_RAW_BYTES_MAX
    }

    /// Adds the event at `position`, which follows the last one added.
    pub(crate) fn push(&mut self, position: u64, bytes: &[u8]) {
        if self.is_empty() {
            self.first = position;
        }
        debug_assert_eq!(position, self.first + u64::from(self.count));
        self.framed
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.framed.extend_from_slice(bytes);
        self.count += 1;
    }

    /// The segment's key and value; leaves the builder empty. `None` when
    /// it holds no event.
    pub(crate) fn take(&mut self) -> Result<Option<Entry>, LogError> {
        if self.is_empty() {
            return Ok(None);
        }
        let value = encode(self.count, &self.framed)?;
        let key = keys::segment(self.first);
        self.count = 0;
        self.framed.clear();
        Ok(Some((key, value)))
    }
}

/// A segment's stored value for `count` framed events.
fn encode(count: u32, framed: &[u8]) -> Result<Vec<u8>, LogError> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| storage("cannot make", e))?,
            );
        }
        let compressor = slot.as_mut().expect("made above");
        let compressed = compressor
            .compress(framed)
            .map_err(|e| storage("cannot compress", e))?;
        let mut value = Vec::with_capacity(HEADER_BYTES + compressed.len());
        value.push(CODEC_ZSTD);
        value.extend_from_slice(&count.to_be_bytes());
        value.extend_from_slice(&(framed.len() as u32).to_be_bytes());
        value.extend_from_slice(&compressed);
        Ok(value)
    })
}

/// The first position of the segment stored under `key`.
pub(crate) fn first_of(key: &[u8]) -> Result<u64, LogError> {
    keys::position_of_event_key(key).ok_or_else(|| LogError::Corrupt("bad segment key".into()))
}

/// The number of events of a stored segment, read from its header.
pub(crate) fn count_of(value: &[u8]) -> Result<u64, LogError> {
    let header = value
        .get(..HEADER_BYTES)
        .filter(|h| h[0] == CODEC_ZSTD)
        .ok_or_else(|| LogError::Corrupt("bad segment header".into()))?;
    let count = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes"));
    Ok(u64::from(count))
}

/// The last position of the segment stored under `key` with `value`.
pub(crate) fn last_of(key: &[u8], value: &[u8]) -> Result<u64, LogError> {
    Ok(first_of(key)? + count_of(value)?.saturating_sub(1))
}

/// A stored segment, decompressed: its events by position.
pub(crate) struct Segment {
    first: u64,
    framed: Vec<u8>,
    /// Start and end of each event in `framed`.
    spans: Vec<(usize, usize)>,
}

impl Segment {
    /// Decompresses the segment stored under `key` with `value`.
    /// Errors: [`LogError::Corrupt`] for a value that is not a segment.
    pub(crate) fn decode(key: &[u8], value: &[u8]) -> Result<Segment, LogError> {
        let first = first_of(key)?;
        let count = count_of(value)? as usize;
        let raw_len = u32::from_be_bytes(value[5..9].try_into().expect("4 bytes")) as usize;
        let framed = DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot =
                    Some(zstd::bulk::Decompressor::new().map_err(|e| storage("cannot make", e))?);
            }
            let decompressor = slot.as_mut().expect("made above");
            decompressor
                .decompress(&value[HEADER_BYTES..], raw_len)
                .map_err(|e| LogError::Corrupt(format!("segment at {first}: {e}")))
        })?;
        let bad = || LogError::Corrupt(format!("segment at {first}: bad framing"));
        let mut spans = Vec::with_capacity(count);
        let mut at = 0usize;
        while at < framed.len() {
            let len = framed
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
                .ok_or_else(bad)?;
            let end = at + 4 + len;
            if end > framed.len() {
                return Err(bad());
            }
            spans.push((at + 4, end));
            at = end;
        }
        if spans.len() != count || framed.len() != raw_len {
            return Err(bad());
        }
        Ok(Segment {
            first,
            framed,
            spans,
        })
    }

    /// The canonical bytes of the event at `position`, if it holds it.
    pub(crate) fn get(&self, position: u64) -> Option<&[u8]> {
        let index = usize::try_from(position.checked_sub(self.first)?).ok()?;
        self.spans
            .get(index)
            .map(|&(start, end)| &self.framed[start..end])
    }

    /// Its events from `from` on, as (position, bytes).
    pub(crate) fn events_from(&self, from: u64) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        (self.first..)
            .zip(self.spans.iter())
            .filter(move |(position, _)| *position >= from)
            .map(|(position, &(start, end))| (position, &self.framed[start..end]))
    }

    /// A segment of this one's events before `end` (the cut of an
    /// unacknowledged tail): its key and value, `None` when none is kept.
    pub(crate) fn truncated(&self, end: u64) -> Result<Option<Entry>, LogError> {
        let mut builder = SegmentBuilder::default();
        for (position, bytes) in self.events_from(self.first) {
            if position < end {
                builder.push(position, bytes);
            }
        }
        builder.take()
    }
}

/// The key range of every segment.
pub(crate) fn all() -> std::ops::Range<Vec<u8>> {
    let prefix = keys::prefix(KeyKind::Segment);
    prefix.to_vec()..keys::prefix_end(&prefix)
}

/// The segment holding `position` in `tree`, if any: the last segment
/// starting at or before it (a reverse range), if it reaches that far.
pub(crate) fn containing(
    tree: &sled::Tree,
    position: u64,
) -> Result<Option<(sled::IVec, sled::IVec)>, LogError> {
    let start = keys::prefix(KeyKind::Segment).to_vec();
    let Some(entry) = tree.range(start..=keys::segment(position)).next_back() else {
        return Ok(None);
    };
    let (key, value) = entry?;
    Ok((last_of(&key, &value)? >= position).then_some((key, value)))
}

/// Adds to `batch` (on `tree`, the `log` tree) the cut of every event after
/// `keep`: the segment holding `keep` rewritten with its events up to it
/// (same key: the kept part starts where it did) when it holds later ones
/// too, every later segment removed.
pub(crate) fn cut_after(
    tree: &sled::Tree,
    batch: &mut sled::Batch,
    keep: u64,
) -> Result<(), LogError> {
    if let Some((key, value)) = containing(tree, keep)? {
        if last_of(&key, &value)? > keep {
            match Segment::decode(&key, &value)?.truncated(keep + 1)? {
                Some((kept_key, kept)) => batch.insert(kept_key, kept),
                None => batch.remove(key),
            }
        }
    }
    for entry in tree.range(keys::segment(keep + 1)..all().end) {
        batch.remove(entry?.0);
    }
    Ok(())
}

/// Tests: stores `bytes` as the event at `position` (which must be
/// stored), in place of what its segment held.
#[cfg(test)]
pub(crate) fn replace(tree: &sled::Tree, position: u64, bytes: &[u8]) -> Result<(), LogError> {
    let (key, value) = containing(tree, position)?.expect("the position is stored");
    let segment = Segment::decode(&key, &value)?;
    let mut builder = SegmentBuilder::default();
    for (at, event) in segment.events_from(0) {
        builder.push(at, if at == position { bytes } else { event });
    }
    let (key, value) = builder.take()?.expect("at least one event");
    tree.insert(key, value)?;
    Ok(())
}

/// Tests: removes every event after `keep` (see [`cut_after`]).
#[cfg(test)]
pub(crate) fn remove_after(tree: &sled::Tree, keep: u64) -> Result<(), LogError> {
    let mut batch = sled::Batch::default();
    cut_after(tree, &mut batch, keep)?;
    tree.apply_batch(batch)?;
    Ok(())
}
