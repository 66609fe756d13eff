//! The decision state as plain data: what the log's snapshots encode
//! (`cpor-log`'s `snapshot` module picks the bytes and the file; nothing
//! here does IO).
//!
//! An image holds what the fold produced and cannot be recomputed from
//! the rest; the indexes that are functions of the claims and
//! subscriptions ([`State::keys`], [`State::deadlines`],
//! [`State::subscriptions_by_product`]) are rebuilt on restore, sorted,
//! so B-trees are bulk-built (packed nodes) rather than grown by one
//! insert per claim. Interned texts ([`Names`]) are written once, and
//! claims and cases refer to them by index, so a restored state shares
//! them exactly as a folded one does.
//!
//! Claims come in chunks of [`CLAIMS_PER_CHUNK`] ([`Image::claim_chunks`],
//! [`Restorer::push_chunk`]), so neither side holds a second copy of
//! every claim at once. Restoring then folding the events after the
//! image's position gives a state equal (`==`) to folding the whole log
//! (`crates/cpor-log`'s snapshot tests check it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::{
    Case, Claim, ClaimExtra, Claims, KeyEntry, Name, PartnerRecord, State, SubscriptionEntry,
    TenantRecord, CLAIMS_PER_CHUNK,
};
use crate::types::{Activity, CaseStatus, ClaimStatus, SolutionArea, Timestamp};

/// A timestamp as (seconds, nanoseconds) since the Unix epoch: exact, and
/// a few bytes in a varint encoding (chrono's serde form is RFC 3339 text).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Stamp(i64, u32);

impl From<Timestamp> for Stamp {
    fn from(t: Timestamp) -> Stamp {
        Stamp(t.timestamp(), t.timestamp_subsec_nanos())
    }
}

impl Stamp {
    fn time(self) -> Result<Timestamp, ImageError> {
        DateTime::<Utc>::from_timestamp(self.0, self.1)
            .ok_or_else(|| ImageError(format!("timestamp {}.{} out of range", self.0, self.1)))
    }
}

/// Restoring found an image that does not describe a state (a damaged or
/// foreign snapshot that still decoded): the caller folds the log instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the state image is inconsistent: {0}")]
pub struct ImageError(String);

/// Everything of a [`State`] but its claims, with texts as indexes into
/// `names`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageHead {
    names: Vec<String>,
    tenants: Vec<(Uuid, TenantRecord)>,
    subscriptions: Vec<(Uuid, SubscriptionEntry)>,
    partners: Vec<(String, PartnerRecord)>,
    cases: Vec<CaseImage>,
    /// (tenant, product, activity, case).
    open_cases: Vec<(Uuid, u32, Activity, Uuid)>,
    claim_count: u64,
    case_count: u64,
}

impl ImageHead {
    /// How many claims the image's chunks hold.
    pub fn claims(&self) -> u64 {
        self.claim_count
    }
}

/// One claim; its `seq` is its place in the chunks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClaimImage {
    claim_id: Uuid,
    tenant_id: Uuid,
    version: u64,
    partner_id: u32,
    mpn_id: u32,
    product: u32,
    subscription_ids: Vec<Uuid>,
    solution_area: SolutionArea,
    activity: Activity,
    status: ClaimStatus,
    incentive_eligible: bool,
    disputed: bool,
    overdue: bool,
    submitted_at: Stamp,
    updated_at: Stamp,
    review_due_at: Option<Stamp>,
    decided_at: Option<Stamp>,
    extra: Option<ExtraImage>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExtraImage {
    arbitration_case_id: Option<Uuid>,
    partner_response_due_at: Option<Stamp>,
    rejected_at: Option<Stamp>,
    reason: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CaseImage {
    case_id: Uuid,
    seq: u64,
    tenant_id: Uuid,
    product: u32,
    activity: Activity,
    status: CaseStatus,
    claim_ids: Vec<Uuid>,
    incumbent_claim_id: Option<Uuid>,
    winner_claim_id: Option<Uuid>,
    opened_at: Stamp,
    closed_at: Option<Stamp>,
    version: u64,
}

/// A state being imaged: [`Image::head`] then [`Image::claim_chunks`].
pub struct Image<'a> {
    state: &'a State,
    /// Each interned text's index in [`ImageHead`]'s `names`.
    names: HashMap<&'a str, u32>,
}

impl State {
    /// Starts an image of this state (see the module docs).
    pub fn image(&self) -> Image<'_> {
        let names = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i as u32))
            .collect();
        Image { state: self, names }
    }
}

impl<'a> Image<'a> {
    fn name(&self, name: &Name) -> u32 {
        // Every name of the state is interned in its table (the fold
        // interns each text it keeps).
        self.names[name.as_str()]
    }

    /// Everything but the claims.
    pub fn head(&self) -> ImageHead {
        let s = self.state;
        ImageHead {
            names: s.names.iter().map(|n| n.as_str().to_string()).collect(),
            tenants: s.tenants.iter().map(|(k, v)| (*k, v.clone())).collect(),
            subscriptions: s
                .subscriptions
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            partners: s
                .partners
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            cases: s.cases.values().map(|c| self.case(c)).collect(),
            open_cases: s
                .open_cases
                .iter()
                .map(|((tenant, product, activity), case)| {
                    (*tenant, self.name(product), *activity, *case)
                })
                .collect(),
            claim_count: s.claim_count,
            case_count: s.case_count,
        }
    }

    /// The claims in submission order, [`CLAIMS_PER_CHUNK`] at a time.
    pub fn claim_chunks(&self) -> impl Iterator<Item = Vec<ClaimImage>> + '_ {
        self.state
            .claims
            .chunks()
            .map(|chunk| chunk.iter().map(|c| self.claim(c)).collect())
    }

    fn claim(&self, c: &Claim) -> ClaimImage {
        ClaimImage {
            claim_id: c.claim_id,
            tenant_id: c.tenant_id,
            version: c.version,
            partner_id: self.name(&c.partner_id),
            mpn_id: self.name(&c.mpn_id),
            product: self.name(&c.product),
            subscription_ids: c.subscription_ids.to_vec(),
            solution_area: c.solution_area,
            activity: c.activity,
            status: c.status,
            incentive_eligible: c.incentive_eligible,
            disputed: c.disputed,
            overdue: c.overdue,
            submitted_at: c.submitted_at.into(),
            updated_at: c.updated_at.into(),
            review_due_at: c.review_due_at.map(Stamp::from),
            decided_at: c.decided_at.map(Stamp::from),
            extra: c.extra.as_deref().map(|e| ExtraImage {
                arbitration_case_id: e.arbitration_case_id,
                partner_response_due_at: e.partner_response_due_at.map(Stamp::from),
                rejected_at: e.rejected_at.map(Stamp::from),
                reason: e.reason.as_ref().map(|r| self.name(r)),
            }),
        }
    }

    fn case(&self, c: &Case) -> CaseImage {
        CaseImage {
            case_id: c.case_id,
            seq: c.seq,
            tenant_id: c.tenant_id,
            product: self.name(&c.product),
            activity: c.activity,
            status: c.status,
            claim_ids: c.claim_ids.clone(),
            incumbent_claim_id: c.incumbent_claim_id,
            winner_claim_id: c.winner_claim_id,
            opened_at: c.opened_at.into(),
            closed_at: c.closed_at.map(Stamp::from),
            version: c.version,
        }
    }
}

/// A state being restored from an image: [`Restorer::new`] with its head,
/// [`Restorer::push_chunk`] until [`Restorer::claims_missing`] is 0, then
/// [`Restorer::finish`].
pub struct Restorer {
    state: State,
    /// The interned names, by their index in the image.
    names: Vec<Name>,
    claim_count: u64,
    /// Claims so far, in submission order.
    claims: Vec<Vec<Claim>>,
    restored: u64,
}

impl Restorer {
    /// Errors: [`ImageError`] for an index past the names or a bad time.
    pub fn new(head: ImageHead) -> Result<Restorer, ImageError> {
        let mut state = State::new();
        let names: Vec<Name> = head.names.iter().map(|n| state.names.intern(n)).collect();
        let name = |i: u32| name_at(&names, i);
        state.tenants = head.tenants.into_iter().collect();
        state.subscriptions = head.subscriptions.into_iter().collect();
        state.partners = head.partners.into_iter().collect();
        for c in head.cases {
            let case = Case {
                case_id: c.case_id,
                seq: c.seq,
                tenant_id: c.tenant_id,
                product: name(c.product)?,
                activity: c.activity,
                status: c.status,
                claim_ids: c.claim_ids,
                incumbent_claim_id: c.incumbent_claim_id,
                winner_claim_id: c.winner_claim_id,
                opened_at: c.opened_at.time()?,
                closed_at: c.closed_at.map(Stamp::time).transpose()?,
                version: c.version,
            };
            state.cases.insert(case.case_id, case);
        }
        state.open_cases = head
            .open_cases
            .into_iter()
            .map(|(tenant, product, activity, case)| Ok(((tenant, name(product)?, activity), case)))
            .collect::<Result<_, ImageError>>()?;
        state.case_count = head.case_count;
        if state.cases.len() as u64 != head.case_count {
            return Err(ImageError(format!(
                "{} cases for a count of {}",
                state.cases.len(),
                head.case_count
            )));
        }
        Ok(Restorer {
            state,
            names,
            claim_count: head.claim_count,
            claims: Vec::new(),
            restored: 0,
        })
    }

    /// Claims the head announced that no chunk brought yet.
    pub fn claims_missing(&self) -> u64 {
        self.claim_count.saturating_sub(self.restored)
    }

    /// Adds the next chunk of claims. Errors: [`ImageError`] for more
    /// claims than the head announced, a bad name index or time.
    pub fn push_chunk(&mut self, chunk: Vec<ClaimImage>) -> Result<(), ImageError> {
        if chunk.len() as u64 > self.claims_missing() {
            return Err(ImageError("more claims than the image announced".into()));
        }
        for image in chunk {
            self.restored += 1;
            let claim = self.claim(image, self.restored)?;
            if self
                .claims
                .last()
                .is_none_or(|c| c.len() == CLAIMS_PER_CHUNK)
            {
                self.claims.push(Vec::with_capacity(CLAIMS_PER_CHUNK));
            }
            if let Some(last) = self.claims.last_mut() {
                last.push(claim);
            }
        }
        Ok(())
    }

    fn claim(&self, c: ClaimImage, seq: u64) -> Result<Claim, ImageError> {
        let name = |i: u32| name_at(&self.names, i);
        let extra = match c.extra {
            None => None,
            Some(e) => Some(Box::new(ClaimExtra {
                arbitration_case_id: e.arbitration_case_id,
                partner_response_due_at: e.partner_response_due_at.map(Stamp::time).transpose()?,
                rejected_at: e.rejected_at.map(Stamp::time).transpose()?,
                reason: e.reason.map(name).transpose()?,
            })),
        };
        Ok(Claim {
            claim_id: c.claim_id,
            tenant_id: c.tenant_id,
            seq,
            version: c.version,
            partner_id: name(c.partner_id)?,
            mpn_id: name(c.mpn_id)?,
            product: name(c.product)?,
            subscription_ids: c.subscription_ids.into_iter().collect(),
            solution_area: c.solution_area,
            activity: c.activity,
            status: c.status,
            incentive_eligible: c.incentive_eligible,
            disputed: c.disputed,
            overdue: c.overdue,
            submitted_at: c.submitted_at.time()?,
            updated_at: c.updated_at.time()?,
            review_due_at: c.review_due_at.map(Stamp::time).transpose()?,
            decided_at: c.decided_at.map(Stamp::time).transpose()?,
            extra,
        })
    }

    /// The state, with its derived indexes rebuilt. Errors:
    /// [`ImageError`] when chunks are missing or two claims share an id.
    pub fn finish(self) -> Result<State, ImageError> {
        if self.claims_missing() > 0 {
            return Err(ImageError(format!(
                "{} claims missing",
                self.claims_missing()
            )));
        }
        let mut state = self.state;
        state.claim_count = self.claim_count;
        state.claims = Claims::from_chunks(self.claims)
            .ok_or_else(|| ImageError("two claims share an id".into()))?;
        let mut keys: Vec<KeyEntry> = Vec::with_capacity(state.claims.len());
        let mut deadlines = Vec::new();
        for (at, claim) in state.claims.in_submission_order().enumerate() {
            keys.push((
                claim.tenant_id,
                claim.product.clone(),
                claim.activity,
                at as u32,
            ));
            deadlines.extend(claim.watched_deadlines());
        }
        state.keys = keys.into_iter().collect();
        state.deadlines = deadlines.into_iter().collect();
        let mut by_product = Vec::with_capacity(state.subscriptions.len());
        for (id, entry) in &state.subscriptions {
            let product = state.names.intern(&entry.record.product);
            by_product.push((entry.record.tenant_id, product, *id));
        }
        state.subscriptions_by_product = by_product.into_iter().collect();
        Ok(state)
    }
}

fn name_at(names: &[Name], i: u32) -> Result<Name, ImageError> {
    names
        .get(i as usize)
        .cloned()
        .ok_or_else(|| ImageError(format!("name index {i} past the {} names", names.len())))
}
