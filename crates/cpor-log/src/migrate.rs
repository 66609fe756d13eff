//! Upgrading a data dir in place from an older store layout, one step per
//! layout, each made durable with its marker before the next begins.
//!
//! - **1 → 2.** Layout 1 (releases up to December 2026) kept every kind of
//!   record in one sled tree, `cpor`, with JSON command records. Layout 2
//!   (`keys`) has one tree per kind of record and compact command records.
//!   Every entry is copied into the new trees (events, their keys and bytes
//!   unchanged, so the hash chain and every export stay byte-identical;
//!   layout 1's JSON views are left behind, the next step writes them),
//!   the marker is set to 2 and flushed, and only then is the old tree
//!   dropped. Until the marker is durable the old tree is intact and the
//!   new trees are cleared and filled again at the next open; after it,
//!   the old tree is only dropped (again, if a stop came between).
//! - **2 → 3.** Layout 2 stored the claim, case and comment views as
//!   JSON; layout 3 stores them typed and compact (`stored`). The views
//!   (and the stream index) are derived from the log alone, so they are
//!   rewritten from it ([`repair_projections`]: cleared, markers first,
//!   then refolded and flushed); the marker is set to 3 after that. A stop
//!   in between leaves the marker at 2, and the next open rewrites again.
//! - **3 → 4.** Layouts 1 to 3 kept one `log` entry per event; layout 4
//!   keeps them in compressed segments (`segment`). The events are moved
//!   oldest first, [`MIGRATE_BATCH_ENTRIES`] per atomic `apply_batch` on
//!   `log` that both writes their segments and removes their old entries:
//!   after a stop, every event is in exactly one of the two forms, the
//!   segments first, and the next open moves the rest. The bytes of each
//!   event are unchanged (so the hash chain and every export are). When all
//!   are moved and flushed, the marker is set to 4. This step runs before
//!   the views of a layout 2 store are rewritten (they are read from the
//!   segments), and after layout 1's copy.
//!
//! A marker newer than [`LAYOUT_VERSION`] refuses the open: an older
//! release cannot read what a newer one wrote.

use std::path::Path;

use cpor_domain::types::Timestamp;
use uuid::Uuid;

use crate::keys::{self, KeyKind};
use crate::record::CommandRecord;
use crate::segment::SegmentBuilder;
use crate::{envelope, repair_projections, LogError, LogReader};

/// The store layout this release writes (`keys`, `stored`).
pub const LAYOUT_VERSION: u64 = 4;
/// The last layout with one `log` entry per event ([`upgrade_segments`]).
const LAYOUT_EVENT_ENTRIES: u64 = 3;
/// The layout whose views were JSON: the last one [`upgrade_views`] upgrades.
const LAYOUT_JSON_VIEWS: u64 = 2;
/// The `meta` entry holding the layout version.
const META_LAYOUT: &str = "layout_version";
/// Entries copied per `apply_batch` while migrating.
const MIGRATE_BATCH_ENTRIES: usize = 10_000;

/// What an upgrade copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// The layout the data dir had.
    pub from_layout: u64,
    pub events: u64,
    pub command_records: u64,
    /// Stream index, meta and checkpoint entries copied from layout 1.
    pub other_entries: u64,
    /// Events refolded to rewrite the views (and the stream index) in
    /// layout 3's form: every event, when the data dir had layout 1 or 2.
    pub views_rewritten_from_events: u64,
    /// Events moved from one entry each into segments (layout 4): every
    /// event, when the data dir had layout 1, 2 or 3.
    pub events_into_segments: u64,
}

impl MigrateReport {
    /// This step's report followed by a later step's: the first layout,
    /// the counts of both.
    fn then(self, later: MigrateReport) -> MigrateReport {
        MigrateReport {
            from_layout: self.from_layout,
            events: self.events + later.events,
            command_records: self.command_records + later.command_records,
            other_entries: self.other_entries + later.other_entries,
            views_rewritten_from_events: self.views_rewritten_from_events
                + later.views_rewritten_from_events,
            events_into_segments: self.events_into_segments + later.events_into_segments,
        }
    }
}

/// Upgrades the data dir `dir` to [`LAYOUT_VERSION`] if it has an older
/// layout (`cpor migrate`; `cpor serve` and the tools do the same when they
/// open it). `None` when there was nothing to do.
///
/// # Errors
/// [`LogError::Locked`] when a running service holds it; [`LogError::Corrupt`]
/// for an entry layout 1 cannot hold, or a layout newer than this release's.
pub fn migrate(dir: &Path) -> Result<Option<MigrateReport>, LogError> {
    let reader = LogReader::open_unmigrated(dir, crate::SLED_CACHE_BYTES_SCAN)?;
    upgrade_if_needed(&reader)
}

/// Brings an opened store to [`LAYOUT_VERSION`]; see [`migrate`].
pub(crate) fn upgrade_if_needed(reader: &LogReader) -> Result<Option<MigrateReport>, LogError> {
    let layout = reader.get_meta_u64(META_LAYOUT)?;
    if layout.is_some_and(|v| v > LAYOUT_VERSION) {
        return Err(LogError::Corrupt(format!(
            "the data dir has store layout {}, newer than this release's {LAYOUT_VERSION}: \
             run the release that wrote it",
            layout.unwrap_or_default()
        )));
    }
    let from_v1 = upgrade_v1(reader, layout)?;
    let layout = reader.get_meta_u64(META_LAYOUT)?;
    let segments = upgrade_segments(reader, layout)?;
    let layout = reader.get_meta_u64(META_LAYOUT)?;
    let views = upgrade_views(reader, layout)?;
    Ok([from_v1, segments, views]
        .into_iter()
        .flatten()
        .reduce(MigrateReport::then))
}

/// Step 3 → 4 (see the module docs): moves every event kept in an entry of
/// its own into segments, then sets the marker to 4 if it was 3 (a layout
/// 2 store keeps its marker for the views step). `None` when there was
/// nothing to do.
fn upgrade_segments(
    reader: &LogReader,
    layout: Option<u64>,
) -> Result<Option<MigrateReport>, LogError> {
    if layout == Some(LAYOUT_VERSION) {
        return Ok(None);
    }
    let log = reader.log()?;
    let old = keys::prefix(KeyKind::Event);
    if layout.is_none() && log.scan_prefix(old).next().is_none() {
        // A new store (the views step gives it its marker).
        return Ok(None);
    }
    let mut moved = 0u64;
    loop {
        let expected = reader.last_position()? + 1;
        let (batch, events) = segments_of_next_entries(&log, expected)?;
        if events == 0 {
            break;
        }
        log.apply_batch(batch)?;
        moved += events;
    }
    reader.flush_blocking()?;
    let from_layout = layout.unwrap_or(LAYOUT_JSON_VIEWS);
    if from_layout == LAYOUT_EVENT_ENTRIES {
        reader.put_meta_u64(META_LAYOUT, LAYOUT_VERSION)?;
        reader.flush_blocking()?;
    }
    tracing::info!(
        events = moved,
        "store layout {from_layout}: moved the events into segments"
    );
    Ok(Some(MigrateReport {
        from_layout,
        events_into_segments: moved,
        ..MigrateReport::default()
    }))
}

/// The batch that moves the next [`MIGRATE_BATCH_ENTRIES`] events kept in
/// entries of their own, the first at `expected`, into segments (and
/// removes those entries); with how many it moves.
fn segments_of_next_entries(
    log: &sled::Tree,
    expected: u64,
) -> Result<(sled::Batch, u64), LogError> {
    let mut batch = sled::Batch::default();
    let mut segment = SegmentBuilder::default();
    let mut position = expected;
    let entries = log
        .scan_prefix(keys::prefix(KeyKind::Event))
        .take(MIGRATE_BATCH_ENTRIES);
    for entry in entries {
        let (key, value) = entry?;
        if keys::position_of_event_key(&key) != Some(position) {
            return Err(LogError::Corrupt(format!(
                "moving the events into segments: expected position {position}, found key {key:02x?}"
            )));
        }
        if segment.is_full_for(value.len()) {
            if let Some((key, value)) = segment.take()? {
                batch.insert(key, value);
            }
        }
        segment.push(position, &value);
        batch.remove(key);
        position += 1;
    }
    if let Some((key, value)) = segment.take()? {
        batch.insert(key, value);
    }
    Ok((batch, position - expected))
}

/// Step 2 → 3: rewrites the views of a layout 2 store (JSON) in layout 3's
/// form (still this release's), from the log, then sets the marker to
/// [`LAYOUT_VERSION`] (its events are in segments by then). A store without a marker and
/// without events is new: it only gets the marker.
fn upgrade_views(
    reader: &LogReader,
    layout: Option<u64>,
) -> Result<Option<MigrateReport>, LogError> {
    if layout == Some(LAYOUT_VERSION) {
        return Ok(None);
    }
    if layout.is_none() && reader.last_position()? == 0 && reader.views()?.is_empty() {
        reader.put_meta_u64(META_LAYOUT, LAYOUT_VERSION)?;
        return Ok(None);
    }
    let from_layout = layout.unwrap_or(LAYOUT_JSON_VIEWS);
    tracing::info!(
        "store layout {from_layout}: rewriting the views from the log in layout {LAYOUT_VERSION}'s form"
    );
    let rebuilt = repair_projections(reader, |_| {})?;
    reader.put_meta_u64(META_LAYOUT, LAYOUT_VERSION)?;
    reader.flush_blocking()?;
    tracing::info!(
        events = rebuilt.events,
        claims = rebuilt.claims,
        cases = rebuilt.cases,
        "upgraded the data dir to store layout {LAYOUT_VERSION}"
    );
    Ok(Some(MigrateReport {
        from_layout,
        views_rewritten_from_events: rebuilt.events,
        ..MigrateReport::default()
    }))
}

/// Step 1 → 2 (see the module docs); `None` when the store has no layout
/// 1 tree, or only its drop was left.
fn upgrade_v1(reader: &LogReader, layout: Option<u64>) -> Result<Option<MigrateReport>, LogError> {
    let db = reader.db()?;
    let has_v1 = db
        .tree_names()
        .iter()
        .any(|name| name.as_ref() == keys::TREE_V1.as_bytes());
    if !has_v1 {
        return Ok(None);
    }
    let v1 = db.open_tree(keys::TREE_V1)?;
    let report = if layout.is_some_and(|l| l >= 2) || v1.is_empty() {
        // Copied before a stop (or nothing to copy): only the drop is left.
        None
    } else {
        let report = copy_v1(reader, &v1)?;
        reader.put_meta_u64(META_LAYOUT, 2)?;
        reader.flush_blocking()?;
        tracing::info!(?report, "upgraded the data dir to store layout 2");
        Some(report)
    };
    drop(v1);
    db.drop_tree(keys::TREE_V1)?;
    if layout.is_none() {
        // An empty layout 1 tree: nothing was copied, nothing to rewrite
        // but the (empty) views.
        reader.put_meta_u64(META_LAYOUT, 2)?;
    }
    reader.flush_blocking()?;
    Ok(report)
}

/// The batches of one migration step, one per target tree.
#[derive(Default)]
struct Batches {
    log: sled::Batch,
    stream: sled::Batch,
    views: sled::Batch,
    meta: sled::Batch,
    checkpoints: sled::Batch,
    entries: usize,
}

impl Batches {
    fn apply(&mut self, reader: &LogReader) -> Result<(), LogError> {
        let batches = std::mem::take(self);
        reader.log()?.apply_batch(batches.log)?;
        reader.stream()?.apply_batch(batches.stream)?;
        reader.views()?.apply_batch(batches.views)?;
        reader.meta()?.apply_batch(batches.meta)?;
        reader.checkpoint_tree()?.apply_batch(batches.checkpoints)?;
        Ok(())
    }
}

/// Copies every layout 1 entry into the layout 2 trees (cleared first: an
/// earlier copy may have stopped half-way).
fn copy_v1(reader: &LogReader, v1: &sled::Tree) -> Result<MigrateReport, LogError> {
    for tree in [
        reader.log()?,
        reader.stream()?,
        reader.views()?,
        reader.meta()?,
        reader.checkpoint_tree()?,
    ] {
        tree.clear()?;
    }
    let recorded_at = last_event_time(v1)?;
    let mut report = MigrateReport {
        from_layout: 1,
        ..MigrateReport::default()
    };
    let mut batches = Batches::default();
    for entry in v1.iter() {
        let (key, value) = entry?;
        route_v1_entry(&key, &value, recorded_at, &mut batches, &mut report)?;
        batches.entries += 1;
        if batches.entries == MIGRATE_BATCH_ENTRIES {
            batches.apply(reader)?;
        }
    }
    // The stream index reflects the head layout 1 recorded; start-up checks
    // it against the events like any other. The views are not copied (the
    // step to layout 3 writes them from the log): their marker says they
    // reflect nothing yet.
    let head = v1
        .get(keys::head("head_position"))?
        .map(|v| v.to_vec())
        .unwrap_or_else(|| 0u64.to_be_bytes().to_vec());
    batches.stream.insert(keys::DERIVED_THROUGH, head);
    batches
        .views
        .insert(keys::DERIVED_THROUGH, &0u64.to_be_bytes());
    batches.apply(reader)?;
    let copied = reader
        .log()?
        .scan_prefix(keys::prefix(KeyKind::Event))
        .count() as u64;
    if copied != report.events {
        return Err(LogError::Corrupt(format!(
            "migration copied {copied} events of {}",
            report.events
        )));
    }
    Ok(report)
}

/// Routes one layout 1 entry to its layout 2 tree and form.
fn route_v1_entry(
    key: &[u8],
    value: &[u8],
    recorded_at: Timestamp,
    batches: &mut Batches,
    report: &mut MigrateReport,
) -> Result<(), LogError> {
    let bad = || LogError::Corrupt(format!("layout 1 entry with an unknown key {key:02x?}"));
    let kind = *key.first().ok_or_else(bad)?;
    match kind {
        k if k == KeyKind::Event as u8 => {
            batches.log.insert(key, value);
            report.events += 1;
        }
        k if k == KeyKind::Stream as u8 => {
            let key = keys::stream_from_v1(key).ok_or_else(bad)?;
            batches.stream.insert(key, value);
            report.other_entries += 1;
        }
        k if k == KeyKind::Command as u8 => {
            let id = Uuid::from_slice(&key[1..]).map_err(|_| bad())?;
            let record = CommandRecord::from_v1_json(value, &id, recorded_at)?;
            batches.log.insert(key, record.to_bytes());
            batches
                .log
                .insert(keys::command_expiry(&record.recorded_at, &id), &[]);
            report.command_records += 1;
        }
        k if k == KeyKind::Meta as u8 => {
            let name = &key[1..];
            if name == b"head_position" || name == b"head_hash" {
                batches.log.insert(key, value);
            } else {
                batches.meta.insert(name, value);
            }
            report.other_entries += 1;
        }
        k if k == KeyKind::Checkpoint as u8 => {
            batches.checkpoints.insert(&key[1..], value);
            report.other_entries += 1;
        }
        // Layout 1's views (JSON): derived, rewritten from the log in
        // layout 3's form by the next step, not copied.
        0x10..=0x17 => {}
        _ => return Err(bad()),
    }
    Ok(())
}

/// The time command records migrated from layout 1 (which kept none) count
/// their retention from: the last event's, so none expires earlier than it
/// would have had its time been kept.
fn last_event_time(v1: &sled::Tree) -> Result<Timestamp, LogError> {
    let events = keys::prefix(KeyKind::Event);
    match v1.scan_prefix(events).next_back() {
        Some(entry) => Ok(envelope::decode(&entry?.1)?.time),
        None => Ok(Timestamp::UNIX_EPOCH),
    }
}
