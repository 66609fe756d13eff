//! Projections: read models kept beside the events, in the same batch.
//! Claim, case and comment views are stored in the compact typed form of
//! `stored` (postcard, store layout 3); the indexes are keys only.
//!
//! The live writer and the rebuild go through the same [`ProjectionWriter`],
//! so a rebuild from the log alone produces byte-identical entries; the
//! `rebuild` audit tool checks exactly that.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use cpor_domain::event::{Event, EventData};
use cpor_domain::state::State;
use cpor_domain::types::{DeadlineKind, Timestamp};
use cpor_domain::view::{CaseView, ClaimView, CommentView};

use crate::keys::{self, KeyKind};
use crate::{stored, LogError, LogReader};

/// Events folded between two progress reports while rebuilding.
pub const REBUILD_BATCH_EVENTS: usize = 10_000;
/// Differences listed in a rebuild report (all are counted).
pub const REBUILD_DIFFERENCES_LISTED: usize = 20;

type DeadlineEntry = (Timestamp, Uuid, DeadlineKind);

#[derive(Default)]
pub(crate) struct ProjectionWriter {
    /// Claims touched by the batch, with the deadlines they had before it.
    touched_claims: BTreeMap<Uuid, Vec<DeadlineEntry>>,
    touched_cases: BTreeSet<Uuid>,
    /// Claims and cases the batch created: their order and index entries
    /// never change, so they are written once, not at every touch (each
    /// sled insert copies a leaf node: writes are the dominant cost).
    created_claims: BTreeSet<Uuid>,
    created_cases: BTreeSet<Uuid>,
}

/// The claims whose view an event changes.
fn claims_affected(event: &EventData) -> Vec<Uuid> {
    match event {
        EventData::ArbitrationOpened(e) => e.claim_ids.clone(),
        EventData::ArbitrationClaimJoined(e) => vec![e.claim_id],
        other => other.claim_id().into_iter().collect(),
    }
}

fn case_affected(event: &EventData) -> Option<Uuid> {
    match event {
        EventData::ArbitrationOpened(e) => Some(e.case_id),
        EventData::ArbitrationClaimJoined(e) => Some(e.case_id),
        EventData::ArbitrationResolved(e) => Some(e.case_id),
        EventData::ArbitrationClosed(e) => Some(e.case_id),
        _ => None,
    }
}

impl ProjectionWriter {
    /// Called before the event is folded into `state`.
    pub(crate) fn before(&mut self, state: &State, event: &Event) {
        for claim_id in claims_affected(&event.data) {
            self.touched_claims.entry(claim_id).or_insert_with(|| {
                state
                    .claims
                    .get(&claim_id)
                    .map(|c| c.watched_deadlines().collect())
                    .unwrap_or_default()
            });
        }
        if let Some(case_id) = case_affected(&event.data) {
            self.touched_cases.insert(case_id);
        }
        match &event.data {
            EventData::ClaimSubmitted(e) => {
                self.created_claims.insert(e.claim_id);
            }
            EventData::ArbitrationOpened(e) => {
                self.created_cases.insert(e.case_id);
            }
            _ => {}
        }
    }

    /// Called after the event is folded: per-event projections (comments).
    pub(crate) fn after(
        &mut self,
        batch: &mut sled::Batch,
        event: &Event,
        position: u64,
        time: Timestamp,
    ) {
        if let Some((claim_id, comment)) = CommentView::of(event, time) {
            batch.insert(
                keys::comment(&claim_id, position),
                stored::encode_comment(&comment),
            );
        }
    }

    /// Writes the final views of everything the batch touched.
    pub(crate) fn finish(&mut self, batch: &mut sled::Batch, state: &State) {
        for (claim_id, old_deadlines) in std::mem::take(&mut self.touched_claims) {
            let Some(claim) = state.claims.get(&claim_id) else {
                continue;
            };
            let view = stored::encode_claim(&ClaimView::of(claim));
            batch.insert(keys::claim_view(&claim_id), view);
            if self.created_claims.remove(&claim_id) {
                batch.insert(keys::claim_order(claim.seq), claim_id.as_bytes());
                batch.insert(
                    keys::partner_claims(&claim.partner_id, claim.seq),
                    claim_id.as_bytes(),
                );
                batch.insert(
                    keys::tenant_claims(&claim.tenant_id, claim.seq),
                    claim_id.as_bytes(),
                );
            }
            let new_deadlines: Vec<DeadlineEntry> = claim.watched_deadlines().collect();
            for (due, id, kind) in &old_deadlines {
                if !new_deadlines.contains(&(*due, *id, *kind)) {
                    batch.remove(keys::deadline(due, id, *kind));
                }
            }
            for (due, id, kind) in &new_deadlines {
                if !old_deadlines.contains(&(*due, *id, *kind)) {
                    batch.insert(keys::deadline(due, id, *kind), &[]);
                }
            }
        }
        for case_id in std::mem::take(&mut self.touched_cases) {
            let Some(case) = state.cases.get(&case_id) else {
                continue;
            };
            let view = stored::encode_case(&CaseView::of(case));
            batch.insert(keys::case_view(&case_id), view);
            if self.created_cases.remove(&case_id) {
                batch.insert(keys::case_order(case.seq), case_id.as_bytes());
            }
        }
    }
}

/// What `rebuild` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub events: u64,
    pub claims: u64,
    pub cases: u64,
    /// Projection entries compared.
    pub entries: u64,
    /// Every projection entry that differs, is missing or is extra.
    pub difference_count: u64,
    /// The first [`REBUILD_DIFFERENCES_LISTED`] differences, described.
    pub differences: Vec<String>,
}

impl RebuildReport {
    /// Adds the differences and entries another part of the comparison
    /// found, after this one's.
    fn absorb(&mut self, part: RebuildReport) {
        self.entries += part.entries;
        self.difference_count += part.difference_count;
        let room = REBUILD_DIFFERENCES_LISTED.saturating_sub(self.differences.len());
        self.differences
            .extend(part.differences.into_iter().take(room));
    }

    fn note(&mut self, text: String) {
        self.difference_count += 1;
        if self.differences.len() < REBUILD_DIFFERENCES_LISTED {
            self.differences.push(text);
        }
    }
}

/// Recomputes every projection from the log alone and compares it, entry
/// by entry and byte for byte, with the stored projections.
///
/// The recomputation goes through the same code the writer uses (the view
/// and index encoders), folding the log once, decoded on every core
/// ([`LogReader::decoded_from`]). Nothing is written: each kind of entry
/// is compared in one ordered merge of the stored entries (a scan in key
/// order) with the recomputed ones generated or sorted into the same
/// order, so memory holds the fold state, one kind's small index keys and
/// a 57-byte digest per comment, never a second copy of the store. The
/// three comparisons (comments, views, indexes) run on threads of their
/// own; their differences are listed in that order. `progress` is called
/// with the number of events folded so far, every
/// [`REBUILD_BATCH_EVENTS`].
pub fn rebuild_projections(
    reader: &LogReader,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, LogError> {
    let mut report = RebuildReport::default();
    let (state, comments, stream) = fold_recomputing_comments(reader, &mut progress, &mut report)?;
    let (by_comments, by_views, by_indexes) = std::thread::scope(|scope| {
        let comments = scope.spawn(|| {
            let mut report = RebuildReport::default();
            compare_comments(reader, comments, &mut report).map(|()| report)
        });
        let views = scope.spawn(|| {
            let mut report = RebuildReport::default();
            compare_views(reader, &state, &mut report).map(|()| report)
        });
        let mut by_indexes = RebuildReport::default();
        let indexes = compare_indexes(reader, &state, &mut by_indexes)
            .and_then(|()| compare_stream_index(reader, &stream, &mut by_indexes))
            .map(|()| by_indexes);
        (
            comments.join().expect("the comparison does not panic"),
            views.join().expect("the comparison does not panic"),
            indexes,
        )
    });
    for part in [by_comments?, by_views?, by_indexes?] {
        report.absorb(part);
    }
    Ok(report)
}

/// A recomputed comment as the comparison keeps it: its key and the
/// SHA-256 of its stored form. Comments are the one projection made per
/// event, so their values are not kept: a stored value is equal when its
/// digest is (a collision of SHA-256 is not a practical concern), and the
/// rare difference is described by recomputing the comment from its event.
struct RebuiltComment {
    key: Vec<u8>,
    digest: [u8; 32],
}

/// An order-independent digest of a set of stream index entries: their
/// count and the lane-wise wrapping sum of each entry's SHA-256 (over the
/// key's length, the key and the value). Two sets with equal digests are
/// equal unless SHA-256 collides or someone crafted entries to cancel out
/// (they could as well rewrite the log: the hash chain and signed
/// checkpoints are what stop that). It lets `rebuild` check the whole
/// stream index (one entry per event: 6M at 1M claims) in constant memory,
/// without sorting the recomputed entries into the tree's key order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamDigest {
    entries: u64,
    sum: [u64; 4],
}

impl StreamDigest {
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update((key.len() as u64).to_be_bytes());
        hasher.update(key);
        hasher.update(value);
        let digest: [u8; 32] = hasher.finalize().into();
        for (lane, chunk) in self.sum.iter_mut().zip(digest.chunks_exact(8)) {
            let word = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            *lane = lane.wrapping_add(word);
        }
        self.entries += 1;
    }
}

/// The stored stream index (every entry but the marker) against the
/// digest of the entries recomputed from the log: a difference is reported
/// as one (the tree is not listed entry by entry; `rebuild --repair`
/// rewrites it from the log).
fn compare_stream_index(
    reader: &LogReader,
    recomputed: &StreamDigest,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    let mut stored = StreamDigest::default();
    for entry in reader.stream()?.iter() {
        let (key, value) = entry?;
        if key.as_ref() != keys::DERIVED_THROUGH {
            stored.add(&key, &value);
        }
    }
    report.entries += stored.entries;
    if stored != *recomputed {
        report.note(format!(
            "stream index: {} entries stored, {} recomputed from the log, and their contents differ",
            stored.entries, recomputed.entries
        ));
    }
    Ok(())
}

/// Folds the whole log into a fresh state and recomputes every comment
/// (comments are per event, not per state), in key order, and the digest
/// of the stream index.
fn fold_recomputing_comments(
    reader: &LogReader,
    progress: &mut impl FnMut(u64),
    report: &mut RebuildReport,
) -> Result<(State, Vec<RebuiltComment>, StreamDigest), LogError> {
    let mut state = State::new();
    let mut comments = Vec::new();
    let mut stream = StreamDigest::default();
    for entry in reader.decoded_from(1) {
        let (position, decoded) = entry?;
        let aggregate = decoded.event.data.aggregate();
        let version = state
            .evolve(&decoded.event, decoded.time)
            .map_err(|e| LogError::Corrupt(format!("position {position}: {e}")))?;
        stream.add(
            &keys::stream(aggregate.kind, &aggregate.id, version),
            &position.to_be_bytes(),
        );
        if let Some((claim_id, comment)) = CommentView::of(&decoded.event, decoded.time) {
            comments.push(RebuiltComment {
                key: keys::comment(&claim_id, position),
                digest: Sha256::digest(stored::encode_comment(&comment)).into(),
            });
        }
        report.events += 1;
        if report.events.is_multiple_of(REBUILD_BATCH_EVENTS as u64) {
            progress(report.events);
        }
    }
    progress(report.events);
    report.claims = state.claims.len() as u64;
    report.cases = state.cases.len() as u64;
    comments.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok((state, comments, stream))
}

/// The stored comments against the recomputed ones.
fn compare_comments(
    reader: &LogReader,
    comments: Vec<RebuiltComment>,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    let recomputed = comments
        .into_iter()
        .map(|comment| (comment.key, Rebuilt::Digest(comment.digest)));
    compare_kind(reader, KeyKind::Comment, recomputed, report)
}

/// Claim and case views against a recomputation from the folded state.
fn compare_views(
    reader: &LogReader,
    state: &State,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    // Views: the state's maps iterate in id order, which is key order.
    let claim_views = state.claims.values().map(|claim| {
        let view = stored::encode_claim(&ClaimView::of(claim));
        (keys::claim_view(&claim.claim_id), Rebuilt::Bytes(view))
    });
    compare_kind(reader, KeyKind::ClaimView, claim_views, report)?;
    let case_views = state.cases.values().map(|case| {
        let view = stored::encode_case(&CaseView::of(case));
        (keys::case_view(&case.case_id), Rebuilt::Bytes(view))
    });
    compare_kind(reader, KeyKind::CaseView, case_views, report)?;

    Ok(())
}

/// The order, partner, tenant and deadline indexes against a recomputation.
fn compare_indexes(
    reader: &LogReader,
    state: &State,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    // Indexes: small entries, generated then sorted into key order.
    let sorted = |mut entries: Vec<(Vec<u8>, Vec<u8>)>| {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
            .into_iter()
            .map(|(key, value)| (key, Rebuilt::Bytes(value)))
    };
    let claim_order = state
        .claims
        .values()
        .map(|c| (keys::claim_order(c.seq), c.claim_id.as_bytes().to_vec()))
        .collect();
    compare_kind(reader, KeyKind::ClaimOrder, sorted(claim_order), report)?;
    let case_order = state
        .cases
        .values()
        .map(|c| (keys::case_order(c.seq), c.case_id.as_bytes().to_vec()))
        .collect();
    compare_kind(reader, KeyKind::CaseOrder, sorted(case_order), report)?;
    let partner_claims = state
        .claims
        .values()
        .map(|c| {
            (
                keys::partner_claims(&c.partner_id, c.seq),
                c.claim_id.as_bytes().to_vec(),
            )
        })
        .collect();
    compare_kind(
        reader,
        KeyKind::PartnerClaims,
        sorted(partner_claims),
        report,
    )?;
    let tenant_claims = state
        .claims
        .values()
        .map(|c| {
            (
                keys::tenant_claims(&c.tenant_id, c.seq),
                c.claim_id.as_bytes().to_vec(),
            )
        })
        .collect();
    compare_kind(reader, KeyKind::TenantClaims, sorted(tenant_claims), report)?;
    let deadlines = state
        .claims
        .values()
        .flat_map(|c| c.watched_deadlines())
        .map(|(due, id, kind)| (keys::deadline(&due, &id, kind), Vec::new()))
        .collect();
    compare_kind(reader, KeyKind::Deadline, sorted(deadlines), report)?;
    Ok(())
}

/// A recomputed value, as the comparison holds it.
enum Rebuilt {
    /// The stored form itself.
    Bytes(Vec<u8>),
    /// The SHA-256 of a comment's stored form (see [`RebuiltComment`]).
    Digest([u8; 32]),
}

impl Rebuilt {
    /// Whether `stored` is this value, byte for byte.
    fn is(&self, stored: &[u8]) -> bool {
        match self {
            Rebuilt::Bytes(bytes) => bytes.as_slice() == stored,
            Rebuilt::Digest(digest) => Sha256::digest(stored).as_slice() == digest,
        }
    }

    /// The value, for a difference's description: a comment is
    /// recomputed from the event at the position its key ends with.
    fn describe(&self, reader: &LogReader, kind: KeyKind, key: &[u8]) -> String {
        match self {
            Rebuilt::Bytes(bytes) => stored::describe(kind, bytes),
            Rebuilt::Digest(_) => keys::trailing_u64(key)
                .and_then(|position| reader.decoded_at(position).ok())
                .and_then(|decoded| CommentView::of(&decoded.event, decoded.time))
                .map_or_else(
                    || "(a comment its event no longer gives)".to_string(),
                    |(_, comment)| stored::describe(kind, &stored::encode_comment(&comment)),
                ),
        }
    }
}

/// Merges the stored entries of one kind with the recomputed ones (both in
/// key order) and notes every difference.
fn compare_kind(
    reader: &LogReader,
    kind: KeyKind,
    recomputed: impl Iterator<Item = (Vec<u8>, Rebuilt)>,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    let mut left = reader.views()?.scan_prefix(keys::prefix(kind)).peekable();
    let mut right = recomputed.peekable();
    loop {
        let stored_key = match left.peek() {
            Some(Ok((key, _))) => Some(key.clone()),
            Some(Err(e)) => return Err(LogError::from(e.clone())),
            None => None,
        };
        let order = match (&stored_key, right.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(stored_key), Some((key, _))) => stored_key.as_ref().cmp(key.as_slice()),
        };
        match order {
            std::cmp::Ordering::Less => {
                let key = stored_key.expect("a stored entry");
                report.note(format!("{kind:?} {}: stored but not rebuilt", hex(&key)));
                left.next();
            }
            std::cmp::Ordering::Greater => {
                let (key, _) = right.next().expect("a rebuilt entry");
                report.note(format!(
                    "{kind:?} {}: rebuilt but missing from the store",
                    hex(&key)
                ));
            }
            std::cmp::Ordering::Equal => {
                report.entries += 1;
                let (_, stored_value) = left.next().expect("peeked")?;
                let (key, value) = right.next().expect("peeked");
                if !value.is(&stored_value) {
                    report.note(format!(
                        "{kind:?} {}: stored {} != rebuilt {}",
                        hex(&key),
                        stored::describe(kind, &stored_value),
                        value.describe(reader, kind, &key)
                    ));
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Projection entries written per batch while repairing.
pub const REPAIR_BATCH_ENTRIES: usize = 10_000;

/// The recovery path for damaged projections: deletes every stored
/// projection entry and stream index entry and writes them again from the
/// log alone, through the same code the writer uses, then flushes. The
/// events are not touched.
/// If it is interrupted, run it again before serving from the data dir.
pub fn repair_projections(
    reader: &LogReader,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, LogError> {
    clear_derived(reader)?;
    let mut state = State::new();
    let mut writer = ProjectionWriter::default();
    let mut views = sled::Batch::default();
    let mut stream = sled::Batch::default();
    let mut report = RebuildReport::default();
    let mut last = 0;
    for entry in reader.decoded_from(1) {
        let (position, decoded) = entry?;
        last = position;
        writer.before(&state, &decoded.event);
        let version = state
            .evolve(&decoded.event, decoded.time)
            .map_err(|e| LogError::Corrupt(format!("position {position}: {e}")))?;
        let aggregate = decoded.event.data.aggregate();
        stream.insert(
            keys::stream(aggregate.kind, &aggregate.id, version),
            &position.to_be_bytes(),
        );
        writer.after(&mut views, &decoded.event, position, decoded.time);
        report.events += 1;
        if report.events.is_multiple_of(REBUILD_BATCH_EVENTS as u64) {
            writer.finish(&mut views, &state);
            reader.views()?.apply_batch(std::mem::take(&mut views))?;
            reader.stream()?.apply_batch(std::mem::take(&mut stream))?;
            progress(report.events);
        }
    }
    writer.finish(&mut views, &state);
    // The markers last: an interrupted repair leaves them at 0, so the
    // next start repairs again.
    let through = last.to_be_bytes();
    views.insert(keys::DERIVED_THROUGH, &through);
    stream.insert(keys::DERIVED_THROUGH, &through);
    reader.views()?.apply_batch(views)?;
    reader.stream()?.apply_batch(stream)?;
    reader.flush_blocking()?;
    progress(report.events);
    report.claims = state.claims.len() as u64;
    report.cases = state.cases.len() as u64;
    Ok(report)
}

/// Empties the derived trees (stream index, projections), markers first.
fn clear_derived(reader: &LogReader) -> Result<(), LogError> {
    for tree in [&reader.views()?, &reader.stream()?] {
        tree.remove(keys::DERIVED_THROUGH)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for entry in tree.iter() {
            batch.remove(entry?.0);
            in_batch += 1;
            if in_batch == REPAIR_BATCH_ENTRIES {
                tree.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        tree.apply_batch(batch)?;
    }
    Ok(())
}
