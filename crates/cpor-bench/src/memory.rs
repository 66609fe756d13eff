//! An estimate of the decision state's heap size, to tell how much of a
//! service's RSS is the state (which grows with every claim) and how much is
//! the store's cache.
//!
//! B-tree maps are counted at [`BTREE_FILL`] of their node capacity (random
//! uuid keys fill nodes about that well); each allocation pays malloc's
//! 8-byte header, rounded up to 16 bytes.

use std::mem::size_of;

use uuid::Uuid;

use cpor_domain::state::{Case, Claim, KeyEntry, State};
use cpor_domain::types::{ClaimKey, DeadlineKind, Timestamp};

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
    string(&claim.partner_id)
        + string(&claim.mpn_id)
        + string(&claim.domain)
        + string(&claim.product)
        + chunk(claim.subscription_ids.capacity() * size_of::<Uuid>())
        + claim.reason.as_deref().map_or(0, string)
}

fn case_heap(case: &Case) -> usize {
    string(&case.product) + chunk(case.claim_ids.capacity() * size_of::<Uuid>())
}

/// The estimated heap bytes of `state`.
pub fn state_heap_bytes(state: &State) -> usize {
    let claims: usize = btree_entries::<Uuid, Claim>(state.claims.len())
        + state.claims.values().map(claim_heap).sum::<usize>();
    let cases: usize = btree_entries::<Uuid, Case>(state.cases.len())
        + state.cases.values().map(case_heap).sum::<usize>();
    let keys: usize = btree_entries::<ClaimKey, KeyEntry>(state.keys.len())
        + state
            .keys
            .iter()
            .map(|(k, e)| string(&k.product) + chunk(e.claim_ids.capacity() * size_of::<Uuid>()))
            .sum::<usize>();
    let deadlines = btree_entries::<(Timestamp, Uuid, DeadlineKind), ()>(state.deadlines.len());
    let subscriptions: usize =
        btree_entries::<Uuid, cpor_domain::state::SubscriptionEntry>(state.subscriptions.len())
            + state
                .subscriptions
                .values()
                .map(|s| string(&s.record.product))
                .sum::<usize>();
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
    claims + cases + keys + deadlines + subscriptions + tenants
}
