//! An estimate of the decision state's heap size, to tell how much of a
//! service's RSS is the state (which grows with every claim) and how much is
//! the store's cache. The exact figure, counted by the allocator, is
//! `tests/state_memory.rs`'s; this one needs no special allocator, so the
//! generator and `inspect-memory` can print it.
//!
//! B-tree maps are counted at [`BTREE_FILL`] of their node capacity (random
//! uuid keys fill nodes about that well); each allocation pays malloc's
//! 8-byte header, rounded up to 16 bytes. Interned texts
//! ([`cpor_domain::state::Names`]) are counted once.

use std::mem::size_of;

use uuid::Uuid;

use cpor_domain::state::{
    Case, Claim, ClaimExtra, KeyEntry, KeyRef, Name, State, CLAIMS_PER_CHUNK,
};
use cpor_domain::types::{DeadlineKind, Timestamp};

/// How full B-tree nodes are on average.
pub const BTREE_FILL: f64 = 0.7;

/// Bytes malloc hands out for a request of `bytes`.
fn chunk(bytes: usize) -> usize {
    if bytes == 0 {
        0
    } else {
        (bytes + 8).div_ceil(16).max(2) * 16
    }
}

fn string(s: &str) -> usize {
    chunk(s.len())
}

fn btree_entries<K, V>(len: usize) -> usize {
    ((len * (size_of::<K>() + size_of::<V>())) as f64 / BTREE_FILL) as usize
}

fn claim_heap(claim: &Claim) -> usize {
    let spilled = if claim.subscription_ids.spilled() {
        chunk(claim.subscription_ids.capacity() * size_of::<Uuid>())
    } else {
        0
    };
    let extra = if claim.has_extra() {
        chunk(size_of::<ClaimExtra>())
    } else {
        0
    };
    spilled + extra
}

fn case_heap(case: &Case) -> usize {
    chunk(case.claim_ids.capacity() * size_of::<Uuid>())
}

/// The estimated heap bytes of `state`.
pub fn state_heap_bytes(state: &State) -> usize {
    let chunks = state.claims.len().div_ceil(CLAIMS_PER_CHUNK);
    let claims: usize = chunks * chunk(CLAIMS_PER_CHUNK * size_of::<Claim>())
        + btree_entries::<Uuid, u32>(state.claims.len())
        + state.claims.values().map(claim_heap).sum::<usize>();
    let cases: usize = btree_entries::<Uuid, Case>(state.cases.len())
        + state.cases.values().map(case_heap).sum::<usize>();
    let keys = btree_entries::<KeyEntry, ()>(state.keys.len())
        + btree_entries::<KeyRef, Uuid>(state.open_cases.len());
    let deadlines = btree_entries::<(Timestamp, Uuid, DeadlineKind), ()>(state.deadlines.len());
    let subscriptions: usize =
        btree_entries::<Uuid, cpor_domain::state::SubscriptionEntry>(state.subscriptions.len())
            + state
                .subscriptions
                .values()
                .map(|s| string(&s.record.product))
                .sum::<usize>()
            + btree_entries::<(Uuid, Name, Uuid), ()>(state.subscriptions_by_product.len());
    let tenants: usize =
        btree_entries::<Uuid, cpor_domain::state::TenantRecord>(state.tenants.len())
            + state
                .tenants
                .values()
                .map(|t| {
                    chunk(t.domains.capacity() * size_of::<String>())
                        + t.domains.iter().map(|d| string(d)).sum::<usize>()
                })
                .sum::<usize>();
    // Each interned text: a set entry, the Arc (two counts and a String)
    // and the text.
    let names = btree_entries::<Name, ()>(state.names.len())
        + state.names.len() * (chunk(16 + size_of::<String>()) + chunk(16));
    claims + cases + keys + deadlines + subscriptions + tenants + names
}
