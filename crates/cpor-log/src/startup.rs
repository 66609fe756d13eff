//! The start-up checks: what [`crate::Log::open`] (and the writer's reopen
//! after a failed write) runs before anything is served, and what
//! `cpor verify --data-dir` runs on its private copy of the data dir to say
//! what a start would do. One function, [`run`], so they cannot drift.
//!
//! In order:
//! 1. Reconcile the head record with the last event ([`reconcile_head`]):
//!    whatever lies past the shorter of the two was never durable as a
//!    whole, so never acknowledged nor published, and is cut.
//! 2. Check the tail: the newest [`TAIL_CHECK_EVENTS`] hashes chain and the
//!    head hash record is the last event's ([`check_tail`]).
//! 3. Refuse a log that ends before what was published from it
//!    ([`check_published`]): that needs a person (`cpor repair`).
//! 4. Fold the log into the decision state (gapless positions): from the
//!    newest usable state snapshot on ([`crate::snapshot::load`]), or the
//!    whole log when there is none; [`run_from_log`] always folds it all
//!    and reads no snapshot (`cpor verify --data-dir`).

use std::collections::HashSet;

use serde_json::Value;
use uuid::Uuid;

use cpor_domain::state::State;

use crate::keys::{self, KeyKind};
use crate::segment;
use crate::{
    causation_of, repair_projections, u64_at, CommandRecord, Head, LogError, LogReader,
    TAIL_CHECK_EVENTS,
};

/// The meta record of the relay's progress: the last position published
/// to the events stream (written by `cpor-nats`'s relay).
pub const META_PUBLISHED_POSITION: &str = "published_position";

/// What the start-up checks found and did: the head and state to serve
/// from, and what was changed to get there (empty when nothing was).
pub struct Startup {
    pub head: Head,
    pub state: State,
    /// What start-up changed, one sentence each (e.g. the cut of an
    /// unacknowledged tail), for the service's log and `cpor verify`.
    pub actions: Vec<String>,
    /// The position of the state snapshot the fold started from, `None`
    /// when it folded the whole log.
    pub snapshot: Option<u64>,
    /// Events folded (after the snapshot, if any).
    pub folded: u64,
}

impl Startup {
    pub fn into_parts(self) -> (Head, State) {
        (self.head, self.state)
    }
}

/// Runs the start-up checks on `reader` (which they may change: see the
/// module docs), folding from the newest usable state snapshot. Errors:
/// [`LogError::Corrupt`] for damage, [`LogError::NeedsRepair`] naming the
/// step for what needs a person.
pub fn run(reader: &LogReader) -> Result<Startup, LogError> {
    run_folding(reader, true)
}

/// [`run`], folding the whole log: reads no state snapshot, so what it
/// proves rests on the log alone (`cpor verify --data-dir`).
pub fn run_from_log(reader: &LogReader) -> Result<Startup, LogError> {
    run_folding(reader, false)
}

fn run_folding(reader: &LogReader, use_snapshots: bool) -> Result<Startup, LogError> {
    let mut actions = Vec::new();
    if let Some(cut) = reconcile_head(reader)? {
        actions.push(cut);
    }
    let head = check_tail(reader)?;
    check_published(reader, &head)?;
    if reader.catch_up_derived(&head)? {
        actions.push("rewrote the stream index and the projections, behind the log".into());
    }
    let restored = if use_snapshots {
        crate::snapshot::load(reader, &head)?
    } else {
        None
    };
    let snapshot = restored.as_ref().map(|(position, _)| *position);
    let (after, start) = restored.unwrap_or_default();
    let (state, folded) = reader.fold_onto(start, after, None)?;
    Ok(Startup {
        head,
        state,
        actions,
        snapshot,
        folded,
    })
}

/// Refuses a log that ends before the position the relay recorded as
/// published: events subscribers have seen are not in it (sled lost
/// flushed writes, or the data dir was restored from an older copy).
pub fn check_published(reader: &LogReader, head: &Head) -> Result<(), LogError> {
    let published = reader.get_meta_u64(META_PUBLISHED_POSITION)?.unwrap_or(0);
    if published <= head.position {
        return Ok(());
    }
    Err(LogError::NeedsRepair(format!(
        "the log ends at position {} but events up to position {published} were published \
         from it: subscribers have seen events this log no longer has (lost writes, or a data \
         dir restored from an older copy). To serve from this log as it is, stop here and run \
         `cpor repair --data-dir DIR --accept-log-end`, then `cpor repair-stream --prefix \
         PREFIX` so the events stream is rebuilt from the log; subscribers must drop what they \
         saw after position {}",
        head.position, head.position
    )))
}

/// Brings the head record and the events back into agreement after an
/// unclean stop left them apart (issue 11 case 3: on a full disk, sled
/// kept events of batches answered `UNAVAILABLE` without their head
/// record, or the head record without its events). The head record and
/// a batch's events are written in one atomic batch, so whatever lies
/// past the shorter of the two belongs to a batch that was never made
/// durable as a whole, hence never acknowledged nor published: it is
/// cut, with every trace of it (stream index entries, the command
/// records of its commands), and the projections are rewritten from
/// the log. Returns what was cut, `None` when they agreed. Writes only
/// when they disagree.
pub fn reconcile_head(reader: &LogReader) -> Result<Option<String>, LogError> {
    let last = reader.last_position()?;
    let recorded = u64_at(&reader.log()?, &keys::head("head_position"))?.unwrap_or(0);
    if recorded == last {
        return Ok(None);
    }
    let keep = whole_batches_end(reader, recorded.min(last))?;
    let (batch, cut_events, cut_records) = cut_after(reader, keep)?;
    reader.log()?.apply_batch(batch)?;
    reader.flush_blocking()?;
    repair_projections(reader, |_| {})?;
    reader.flush_blocking()?;
    let what = format!(
        "the head record said position {recorded} but the last event was at {last}: \
         cut the unacknowledged tail after position {keep} ({cut_events} events, \
         {cut_records} command records) and rewrote the projections"
    );
    tracing::warn!("{what}");
    Ok(Some(what))
}

/// `keep`, or less if the command of the event at `keep` has events the
/// log does not all hold (its record lists more): its batch is cut whole.
fn whole_batches_end(reader: &LogReader, keep: u64) -> Result<u64, LogError> {
    if keep == 0 {
        return Ok(0);
    }
    let last_kept = reader
        .event_bytes(keep)?
        .ok_or_else(|| LogError::Corrupt(format!("position {keep} is missing")))?;
    let Some(id) = causation_of(&last_kept) else {
        return Ok(keep);
    };
    let listed = reader
        .command_record(&id)
        .ok()
        .flatten()
        .map(|r| r.reply.events.len());
    let mut first = keep;
    while first > 1
        && reader
            .event_bytes(first - 1)?
            .and_then(|b| causation_of(&b))
            .is_some_and(|c| c == id)
    {
        first -= 1;
    }
    let held = (keep - first + 1) as usize;
    Ok(if listed.is_some_and(|listed| listed > held) {
        first - 1
    } else {
        keep
    })
}

/// The batch that cuts everything after `keep`: events, the command
/// records of commands without kept events, stream index entries, and a
/// head record at `keep`. Returns it with the counts of events and
/// records cut.
fn cut_after(reader: &LogReader, keep: u64) -> Result<(sled::Batch, u64, u64), LogError> {
    let mut batch = sled::Batch::default();
    let mut cut_events = 0u64;
    let mut cut_commands = HashSet::new();
    let mut kept_commands = HashSet::new();
    for entry in reader.events_from(1) {
        let (position, bytes) = entry?;
        let commands = if position > keep {
            cut_events += 1;
            &mut cut_commands
        } else {
            &mut kept_commands
        };
        if let Some(id) = causation_of(&bytes) {
            commands.insert(id);
        }
    }
    segment::cut_after(&reader.log()?, &mut batch, keep)?;
    let cut_records = cut_command_records(reader, &mut batch, &cut_commands, &kept_commands)?;
    // The stream index is derived: rewritten with the projections.
    let hash = if keep == 0 {
        String::new()
    } else {
        reader.decoded_at(keep)?.hash
    };
    batch.insert(keys::head("head_position"), &keep.to_be_bytes());
    batch.insert(keys::head("head_hash"), hash.as_bytes());
    Ok((batch, cut_events, cut_records))
}

/// Adds to `batch` the removal of every command record whose events are
/// not kept: its batch was not durable (the events were cut, or lost with
/// the head record ahead). Returns how many.
fn cut_command_records(
    reader: &LogReader,
    batch: &mut sled::Batch,
    cut_commands: &HashSet<Uuid>,
    kept_commands: &HashSet<Uuid>,
) -> Result<u64, LogError> {
    let mut cut = HashSet::new();
    for entry in reader.log()?.scan_prefix(keys::prefix(KeyKind::Command)) {
        let (key, value) = entry?;
        let Some(id) = Uuid::from_slice(&key[1..]).ok() else {
            continue;
        };
        let record = CommandRecord::from_bytes(&value, &id).ok();
        let wrote_events = record.as_ref().is_some_and(|r| !r.reply.events.is_empty());
        if cut_commands.contains(&id) || (wrote_events && !kept_commands.contains(&id)) {
            if let Some(record) = record {
                batch.remove(keys::command_expiry(&record.recorded_at, &id));
            }
            batch.remove(key);
            cut.insert(id);
        }
    }
    // The batch expiry entries lose the cut commands: left there, an entry
    // would later expire the record of the same command id decided anew
    // (a retry of a cut command), before its retention.
    if !cut.is_empty() {
        let entries = keys::prefix(KeyKind::CommandBatchExpiry);
        for entry in reader.log()?.scan_prefix(entries) {
            let (key, ids) = entry?;
            let kept: Vec<u8> = ids
                .chunks_exact(16)
                .filter(|id| Uuid::from_slice(id).is_ok_and(|id| !cut.contains(&id)))
                .flatten()
                .copied()
                .collect();
            if kept.is_empty() {
                batch.remove(key);
            } else if kept.len() != ids.len() {
                batch.insert(key, kept);
            }
        }
    }
    Ok(cut.len() as u64)
}

/// Start-up check of the newest part of the log: the head record agrees
/// with the last event, and the last [`TAIL_CHECK_EVENTS`] events chain.
pub fn check_tail(reader: &LogReader) -> Result<Head, LogError> {
    let last = reader.last_position()?;
    let tree = reader.log()?;
    let recorded = u64_at(&tree, &keys::head("head_position"))?.unwrap_or(0);
    if recorded != last {
        return Err(LogError::Corrupt(format!(
            "head record says position {recorded} but the last event is at {last}"
        )));
    }
    if last == 0 {
        return Ok(Head::default());
    }
    let from = last.saturating_sub(TAIL_CHECK_EVENTS).max(1);
    let mut previous_hash = if from == 1 {
        String::new()
    } else {
        reader.decoded_at(from - 1)?.hash
    };
    for entry in reader.events_from(from) {
        let (position, bytes) = entry?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| LogError::Corrupt(format!("position {position} is not JSON: {e}")))?;
        let stored = value
            .get("hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let expected = cpor_jcs::event_hash(&previous_hash, &value)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        if stored != expected {
            return Err(LogError::Corrupt(format!(
                "hash mismatch at position {position}"
            )));
        }
        previous_hash = stored;
    }
    let recorded_hash = tree
        .get(keys::head("head_hash"))?
        .map(|v| String::from_utf8_lossy(&v).to_string())
        .unwrap_or_default();
    if recorded_hash != previous_hash {
        return Err(LogError::Corrupt(
            "head hash record differs from the last event's hash".into(),
        ));
    }
    Ok(Head {
        position: last,
        hash: previous_hash,
    })
}

/// `cpor repair --accept-log-end`: after the start-up reconciliation,
/// moves the recorded published position back to the log's end, so the
/// service starts from this log as it is (see [`check_published`]).
/// Returns the positions (published before, log end), `None` when the
/// log was not behind.
pub fn accept_log_end(reader: &LogReader) -> Result<Option<(u64, u64)>, LogError> {
    reconcile_head(reader)?;
    let head = check_tail(reader)?;
    let published = reader.get_meta_u64(META_PUBLISHED_POSITION)?.unwrap_or(0);
    if published <= head.position {
        return Ok(None);
    }
    reader.put_meta_u64(META_PUBLISHED_POSITION, head.position)?;
    reader.flush_blocking()?;
    Ok(Some((published, head.position)))
}
