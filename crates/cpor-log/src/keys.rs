//! Key layout of the store (layout 4): one sled tree per kind of record.
//!
//! | tree | keys | values | written |
//! |---|---|---|---|
//! | [`TREE_LOG`] | kind byte ([`KeyKind::Segment`] then its first position, [`KeyKind::Command`] then the command id, [`KeyKind::CommandBatchExpiry`] then time and first command id, [`KeyKind::CommandExpiry`] then time and id (before issue 8 target 5), [`KeyKind::Meta`] then the head's name) | a segment of events (`segment`: the canonical CloudEvents of a group commit, compressed) / compact command record / the batch's command ids (16 bytes each) / empty / head | one atomic batch per group commit: the synchronous write |
//! | [`TREE_STREAM`] | aggregate byte, id (16 bytes for uuid ids, text and 0x00 for partner ids), version | position | after the log batch; derived |
//! | [`TREE_VIEWS`] | kind byte (0x10..0x17) then the key | projections (views in `stored`'s postcard form, indexes as ids) | after the log batch; derived |
//! | [`TREE_META`] | name | operational values (published position, clock, instance id, layout) | outside the batch path |
//! | [`TREE_CHECKPOINTS`] | position | signed checkpoint | by the checkpointer |
//!
//! Layouts 1 to 3 kept one entry per event ([`KeyKind::Event`], position
//! → canonical CloudEvent); `migrate` moves them into segments.
//!
//! The events, the command records and the head share one tree because
//! sled applies a `Batch` atomically only within one tree: a command's
//! events and its idempotency record must commit together. The derived
//! trees carry a marker ([`DERIVED_THROUGH`]) with the position they reflect,
//! written in the same batch as their entries; start-up rebuilds a derived
//! tree whose marker is not the head.
//!
//! Integers are big-endian so that byte order is numeric order. Retired
//! kind bytes stay reserved: never reuse a number, old data dirs may hold
//! it (layout 1 kept every kind in one tree, `cpor`: see `migrate`).

use cpor_domain::event::AggregateKind;
use cpor_domain::types::{DeadlineKind, Timestamp};
use uuid::Uuid;

/// Events, command records, their expiry index and the head.
pub(crate) const TREE_LOG: &str = "log";
/// The per-aggregate stream index.
pub(crate) const TREE_STREAM: &str = "stream";
/// The projections the queries read.
pub(crate) const TREE_VIEWS: &str = "views";
/// Operational values.
pub(crate) const TREE_META: &str = "meta";
/// Signed checkpoints.
pub(crate) const TREE_CHECKPOINTS: &str = "checkpoints";
/// Layout 1's single tree (migrated, then dropped).
pub(crate) const TREE_V1: &str = "cpor";

/// The key of a derived tree's marker: the log position the tree reflects
/// (8 bytes big-endian). No other key in those trees starts with 0x00.
pub(crate) const DERIVED_THROUGH: &[u8] = &[0x00];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum KeyKind {
    /// Layouts 1 to 3 only: position → CloudEvent (canonical JSON with
    /// `hash`), one entry per event (now in segments, [`KeyKind::Segment`]).
    Event = 0x01,
    /// Layout 1 only: the stream index (now the `stream` tree).
    Stream = 0x02,
    /// command id → command record (fingerprint, time, first reply). Tree `log`.
    Command = 0x03,
    /// Tree `log`: the head (`head_position`, `head_hash`). Layout 1: every
    /// meta value (now the `meta` tree).
    Meta = 0x04,
    /// Layout 1 only: position → signed checkpoint (now `checkpoints`).
    Checkpoint = 0x05,
    /// recorded time (ms), command id → empty: which command records expire
    /// first, one entry per command. Tree `log`. Written until issue 8
    /// target 5 (and by the migration of layout 1's records); still read
    /// and removed by `expire_commands`, so such entries drain within the
    /// retention.
    CommandExpiry = 0x06,
    /// first position → segment: the events of (part of) a group commit,
    /// compressed (`segment`). Tree `log`, layout 4.
    Segment = 0x07,
    /// the latest recorded time (ms) of a group commit's commands, the
    /// first command id → the ids (16 bytes each) of the commands it
    /// recorded: which command records expire first, one entry per group
    /// commit instead of one per command. Tree `log`.
    CommandBatchExpiry = 0x08,
    /// claim id → ClaimView (`stored`; JSON up to layout 2). Tree `views`.
    ClaimView = 0x10,
    /// claim id, position → CommentView (`stored`; JSON up to layout 2).
    Comment = 0x11,
    /// case id → CaseView (`stored`; JSON up to layout 2).
    CaseView = 0x12,
    /// claim seq → claim id (submission order).
    ClaimOrder = 0x13,
    /// case seq → case id (opening order).
    CaseOrder = 0x14,
    /// due time (ms), claim id, kind → empty: the scheduler's index.
    Deadline = 0x15,
    /// partner id, 0x00, claim seq → claim id.
    PartnerClaims = 0x16,
    /// tenant id, claim seq → claim id.
    TenantClaims = 0x17,
}

pub(crate) fn prefix(kind: KeyKind) -> [u8; 1] {
    [kind as u8]
}

pub(crate) fn with(kind: KeyKind, parts: &[&[u8]]) -> Vec<u8> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut key = Vec::with_capacity(len);
    key.push(kind as u8);
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// Layouts 1 to 3: an event's own entry (tests write such stores).
#[cfg(test)]
pub(crate) fn event(position: u64) -> Vec<u8> {
    with(KeyKind::Event, &[&position.to_be_bytes()])
}

/// A segment's key: the position of its first event.
pub(crate) fn segment(first: u64) -> Vec<u8> {
    with(KeyKind::Segment, &[&first.to_be_bytes()])
}

pub(crate) fn checkpoint(position: u64) -> [u8; 8] {
    position.to_be_bytes()
}

/// The position in an event key (layouts 1 to 3) or a segment key (its
/// first event's).
pub(crate) fn position_of_event_key(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

fn aggregate_byte(kind: AggregateKind) -> u8 {
    match kind {
        AggregateKind::Claim => 1,
        AggregateKind::Arbitration => 2,
        AggregateKind::Tenant => 3,
        AggregateKind::Subscription => 4,
        AggregateKind::Partner => 5,
    }
}

/// Prefix of one aggregate's stream entries in the `stream` tree: the
/// aggregate byte, then the id: 16 bytes when it is a uuid in its
/// hyphenated form (claims, cases, tenants, subscriptions), else its text
/// and a 0x00 (partner ids: `^[A-Za-z0-9_-]{1,64}$`, never 0x00, so the
/// separator is unambiguous).
pub(crate) fn stream_prefix(kind: AggregateKind, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 16 + 8);
    key.push(aggregate_byte(kind));
    match Uuid::parse_str(id) {
        Ok(uuid) if kind != AggregateKind::Partner && uuid.hyphenated().to_string() == id => {
            key.extend_from_slice(uuid.as_bytes())
        }
        _ => {
            key.extend_from_slice(id.as_bytes());
            key.push(0);
        }
    }
    key
}

pub(crate) fn stream(kind: AggregateKind, id: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(kind, id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// Layout 1's stream key (kind byte, aggregate byte, id text, 0x00,
/// version) → layout 2's, for the migration.
pub(crate) fn stream_from_v1(key: &[u8]) -> Option<Vec<u8>> {
    let kind = match *key.get(1)? {
        1 => AggregateKind::Claim,
        2 => AggregateKind::Arbitration,
        3 => AggregateKind::Tenant,
        4 => AggregateKind::Subscription,
        5 => AggregateKind::Partner,
        _ => return None,
    };
    let rest = key.get(2..)?;
    let split = rest.len().checked_sub(9)?;
    if rest[split] != 0 {
        return None;
    }
    let id = std::str::from_utf8(&rest[..split]).ok()?;
    let version = u64::from_be_bytes(rest[split + 1..].try_into().ok()?);
    Some(stream(kind, id, version))
}

pub(crate) fn command(command_id: &Uuid) -> Vec<u8> {
    with(KeyKind::Command, &[command_id.as_bytes()])
}

/// A head record's key in the `log` tree (`head_position`, `head_hash`).
pub(crate) fn head(name: &str) -> Vec<u8> {
    with(KeyKind::Meta, &[name.as_bytes()])
}

/// A command record's expiry entry: when it was recorded, then its id.
pub(crate) fn command_expiry(recorded_at: &Timestamp, command_id: &Uuid) -> Vec<u8> {
    with(
        KeyKind::CommandExpiry,
        &[&sortable_millis(recorded_at), command_id.as_bytes()],
    )
}

/// The first expiry key of `kind` ([`KeyKind::CommandExpiry`] or
/// [`KeyKind::CommandBatchExpiry`]) at or after `time`: records recorded
/// before it sort before this key.
pub(crate) fn command_expiry_until(kind: KeyKind, time: &Timestamp) -> Vec<u8> {
    with(kind, &[&sortable_millis(time)])
}

/// A group commit's expiry entry: the latest time it recorded a command at
/// (whole milliseconds), then its first command.
pub(crate) fn command_batch_expiry(recorded_at: &Timestamp, first_command_id: &Uuid) -> Vec<u8> {
    with(
        KeyKind::CommandBatchExpiry,
        &[&sortable_millis(recorded_at), first_command_id.as_bytes()],
    )
}

pub(crate) fn claim_view(claim_id: &Uuid) -> Vec<u8> {
    with(KeyKind::ClaimView, &[claim_id.as_bytes()])
}

pub(crate) fn comments_prefix(claim_id: &Uuid) -> Vec<u8> {
    with(KeyKind::Comment, &[claim_id.as_bytes()])
}

pub(crate) fn comment(claim_id: &Uuid, position: u64) -> Vec<u8> {
    with(
        KeyKind::Comment,
        &[claim_id.as_bytes(), &position.to_be_bytes()],
    )
}

pub(crate) fn case_view(case_id: &Uuid) -> Vec<u8> {
    with(KeyKind::CaseView, &[case_id.as_bytes()])
}

pub(crate) fn claim_order(seq: u64) -> Vec<u8> {
    with(KeyKind::ClaimOrder, &[&seq.to_be_bytes()])
}

pub(crate) fn case_order(seq: u64) -> Vec<u8> {
    with(KeyKind::CaseOrder, &[&seq.to_be_bytes()])
}

/// Millisecond timestamps shifted so that byte order is time order even
/// for instants before 1970.
fn sortable_millis(t: &Timestamp) -> [u8; 8] {
    ((t.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn deadline(due: &Timestamp, claim_id: &Uuid, kind: DeadlineKind) -> Vec<u8> {
    let kind_byte = match kind {
        DeadlineKind::Review => 1u8,
        DeadlineKind::PartnerResponse => 2u8,
    };
    with(
        KeyKind::Deadline,
        &[&sortable_millis(due), claim_id.as_bytes(), &[kind_byte]],
    )
}

pub(crate) fn partner_claims_prefix(partner_id: &str) -> Vec<u8> {
    with(KeyKind::PartnerClaims, &[partner_id.as_bytes(), &[0]])
}

pub(crate) fn partner_claims(partner_id: &str, seq: u64) -> Vec<u8> {
    let mut key = partner_claims_prefix(partner_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn tenant_claims_prefix(tenant_id: &Uuid) -> Vec<u8> {
    with(KeyKind::TenantClaims, &[tenant_id.as_bytes()])
}

pub(crate) fn tenant_claims(tenant_id: &Uuid, seq: u64) -> Vec<u8> {
    let mut key = tenant_claims_prefix(tenant_id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The smallest key greater than every key starting with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// The trailing big-endian u64 of a key (a seq or a position).
pub(crate) fn trailing_u64(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key[start..].try_into().ok()?))
}
