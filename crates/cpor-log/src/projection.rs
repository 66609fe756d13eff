//! Projections: read models kept beside the events, in the same batch.
//!
//! The live writer and the rebuild go through the same [`ProjectionWriter`],
//! so a rebuild from the log alone produces byte-identical entries; the
//! `rebuild` audit tool checks exactly that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use uuid::Uuid;

use cpor_domain::event::{Event, EventData};
use cpor_domain::state::State;
use cpor_domain::types::{DeadlineKind, Timestamp};
use cpor_domain::view::{CaseView, ClaimView, CommentView};

use crate::keys::{self, KeyKind, PROJECTION_KINDS};
use crate::{envelope, LogError, LogReader};

/// Events folded per batch while rebuilding: bounds the memory of one batch.
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
            let bytes = serde_json::to_vec(&comment).expect("comments serialize");
            batch.insert(keys::comment(&claim_id, position), bytes);
        }
    }

    /// Writes the final views of everything the batch touched.
    pub(crate) fn finish(&mut self, batch: &mut sled::Batch, state: &State) {
        for (claim_id, old_deadlines) in std::mem::take(&mut self.touched_claims) {
            let Some(claim) = state.claims.get(&claim_id) else {
                continue;
            };
            let view = serde_json::to_vec(&ClaimView::of(claim)).expect("views serialize");
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
            let view = serde_json::to_vec(&CaseView::of(case)).expect("views serialize");
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
    /// Every projection entry that differs, is missing or is extra.
    pub difference_count: u64,
    /// The first [`REBUILD_DIFFERENCES_LISTED`] differences, described.
    pub differences: Vec<String>,
}

/// Recomputes every projection from the log alone into a fresh store at
/// `scratch_dir` (which must not exist or be empty), then compares it with
/// the stored projections, entry by entry.
pub fn rebuild_projections(
    reader: &LogReader,
    scratch_dir: &Path,
    mut progress: impl FnMut(u64),
) -> Result<RebuildReport, LogError> {
    let scratch = LogReader::open(scratch_dir)?;
    let mut state = State::new();
    let mut writer = ProjectionWriter::default();
    let mut batch = sled::Batch::default();
    let mut in_batch = 0usize;
    let mut report = RebuildReport::default();
    for entry in reader.events_from(1) {
        let (position, bytes) = entry?;
        let decoded = envelope::decode(&bytes)?;
        writer.before(&state, &decoded.event);
        state
            .evolve(&decoded.event, decoded.time)
            .map_err(|e| LogError::Corrupt(format!("position {position}: {e}")))?;
        writer.after(&mut batch, &decoded.event, position, decoded.time);
        report.events += 1;
        in_batch += 1;
        if in_batch == REBUILD_BATCH_EVENTS {
            writer.finish(&mut batch, &state);
            scratch.tree.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
            progress(report.events);
        }
    }
    writer.finish(&mut batch, &state);
    scratch.tree.apply_batch(batch)?;
    progress(report.events);
    report.claims = state.claims.len() as u64;
    report.cases = state.cases.len() as u64;
    for kind in PROJECTION_KINDS {
        compare_kind(&reader.tree, &scratch.tree, kind, &mut report)?;
    }
    Ok(report)
}

fn compare_kind(
    stored: &sled::Tree,
    rebuilt: &sled::Tree,
    kind: KeyKind,
    report: &mut RebuildReport,
) -> Result<(), LogError> {
    let prefix = keys::prefix(kind);
    let mut left = stored.scan_prefix(prefix).peekable();
    let mut right = rebuilt.scan_prefix(prefix).peekable();
    let note = |report: &mut RebuildReport, text: String| {
        report.difference_count += 1;
        if report.differences.len() < REBUILD_DIFFERENCES_LISTED {
            report.differences.push(text);
        }
    };
    loop {
        let l = left.peek().map(|r| {
            r.as_ref()
                .map(|(k, v)| (k.clone(), v.clone()))
                .map_err(|e| e.clone())
        });
        let r = right.peek().map(|r| {
            r.as_ref()
                .map(|(k, v)| (k.clone(), v.clone()))
                .map_err(|e| e.clone())
        });
        match (l, r) {
            (None, None) => return Ok(()),
            (Some(l), None) => {
                let (k, _) = l?;
                note(
                    report,
                    format!("{kind:?} {}: stored but not rebuilt", hex(&k)),
                );
                left.next();
            }
            (None, Some(r)) => {
                let (k, _) = r?;
                note(
                    report,
                    format!("{kind:?} {}: rebuilt but missing from the store", hex(&k)),
                );
                right.next();
            }
            (Some(l), Some(r)) => {
                let ((lk, lv), (rk, rv)) = (l?, r?);
                match lk.cmp(&rk) {
                    std::cmp::Ordering::Less => {
                        note(
                            report,
                            format!("{kind:?} {}: stored but not rebuilt", hex(&lk)),
                        );
                        left.next();
                    }
                    std::cmp::Ordering::Greater => {
                        note(
                            report,
                            format!("{kind:?} {}: rebuilt but missing from the store", hex(&rk)),
                        );
                        right.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if lv != rv {
                            note(
                                report,
                                format!(
                                    "{kind:?} {}: stored {} != rebuilt {}",
                                    hex(&lk),
                                    String::from_utf8_lossy(&lv),
                                    String::from_utf8_lossy(&rv)
                                ),
                            );
                        }
                        left.next();
                        right.next();
                    }
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
