//! Key layout of the one sled tree that holds the log and its projections.
//!
//! Every key starts with a [`KeyKind`] byte, so one ordered tree holds many
//! tables and a single `apply_batch` writes all of them atomically. Integers
//! are big-endian so that byte order is numeric order. Retired kind bytes
//! stay reserved: never reuse a number, old data dirs may hold it.

use cpor_domain::event::AggregateKind;
use cpor_domain::types::{DeadlineKind, Timestamp};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum KeyKind {
    /// position → CloudEvent (canonical JSON with `hash`).
    Event = 0x01,
    /// aggregate kind, id, 0x00, version → position.
    Stream = 0x02,
    /// command id → command record (fingerprint and first reply).
    Command = 0x03,
    /// name → value: head, published position, clock, instance id.
    Meta = 0x04,
    /// position → signed checkpoint (canonical JSON).
    Checkpoint = 0x05,
    /// claim id → ClaimView JSON.
    ClaimView = 0x10,
    /// claim id, position → CommentView JSON.
    Comment = 0x11,
    /// case id → CaseView JSON.
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

pub(crate) fn event(position: u64) -> Vec<u8> {
    with(KeyKind::Event, &[&position.to_be_bytes()])
}

pub(crate) fn checkpoint(position: u64) -> Vec<u8> {
    with(KeyKind::Checkpoint, &[&position.to_be_bytes()])
}

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

/// Prefix of one aggregate's stream entries. Ids never contain 0x00
/// (uuids and `^[A-Za-z0-9_-]{1,64}$`), so the separator is unambiguous.
pub(crate) fn stream_prefix(kind: AggregateKind, id: &str) -> Vec<u8> {
    with(
        KeyKind::Stream,
        &[&[aggregate_byte(kind)], id.as_bytes(), &[0]],
    )
}

pub(crate) fn stream(kind: AggregateKind, id: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(kind, id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

pub(crate) fn command(command_id: &Uuid) -> Vec<u8> {
    with(KeyKind::Command, &[command_id.as_bytes()])
}

pub(crate) fn meta(name: &str) -> Vec<u8> {
    with(KeyKind::Meta, &[name.as_bytes()])
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
