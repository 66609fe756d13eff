//! State: the fold of every event so far. `evolve` only folds; every business
//! rule lives in [`crate::decide`].
//!
//! The service keeps the state in memory for as long as it runs, one
//! [`Claim`] per claim ever submitted, so its layout is chosen for bytes per
//! claim (measured by `crates/cpor-bench/tests/state_memory.rs`; issue 8
//! wants 1M claims served in 512 MiB):
//!
//! - claims live in submission order in fixed-size chunks ([`Claims`]), with
//!   one id → position index: no map node per claim, no copy of the claim
//!   when the store grows;
//! - texts that many claims repeat (partner and MPN ids, products, reason
//!   codes) are [`Name`]s interned in [`State::names`]: 8 bytes each;
//! - what only some claims have (a case, a partner response deadline, a
//!   rejection and its reason) sits behind one optional box;
//! - the indexes are flat ordered sets of small tuples, not maps of vectors
//!   (a `BTreeSet` allocates a whole node even for one entry).
//!
//! Nothing here changes what is decided or written: the events and their
//! JSON carry the full data; the state keeps what `decide` and the read
//! models ([`crate::view`]) need.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Index;

use smallvec::SmallVec;
use uuid::Uuid;

use crate::command::SubscriptionRecord;
use crate::event::{
    AggregateId, AggregateKind, ArbitrationOpened, ClaimSubmitted, Event, EventData,
    PartnerUpserted, TenantUpserted,
};
pub use crate::name::{Name, Names};
use crate::types::{
    Activity, ActorKind, CaseStatus, ClaimKey, ClaimStatus, DeadlineKind, Mpn, SolutionArea,
    Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantRecord {
    /// The tenant's domains as comparison keys ([`crate::dns::domain_key`]:
    /// A-labels, lowercase, no trailing dot); the event keeps the spelling
    /// upstream sent.
    pub domains: Vec<String>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartnerRecord {
    pub mpns: Vec<Mpn>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionEntry {
    pub record: SubscriptionRecord,
    pub version: u64,
}

/// The subscriptions a claim covers: one or none almost always, so one is
/// kept inline (no heap chunk); more spill to the heap.
pub type SubscriptionIds = SmallVec<[Uuid; 1]>;

/// One claim as the workflow sees it. Field meanings follow the contract's
/// ClaimView (§4); `seq` is the submission order used for listings (1 for
/// the first claim). The fields few claims have are behind accessors
/// ([`Claim::arbitration_case_id`], [`Claim::partner_response_due_at`],
/// [`Claim::rejected_at`], [`Claim::reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub claim_id: Uuid,
    pub tenant_id: Uuid,
    pub seq: u64,
    pub version: u64,
    pub partner_id: Name,
    pub mpn_id: Name,
    pub product: Name,
    pub subscription_ids: SubscriptionIds,
    pub solution_area: SolutionArea,
    pub activity: Activity,
    pub status: ClaimStatus,
    pub incentive_eligible: bool,
    pub disputed: bool,
    pub overdue: bool,
    pub submitted_at: Timestamp,
    pub updated_at: Timestamp,
    pub review_due_at: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
    /// The rare fields; `None` when all of them are (see [`ClaimExtra`]).
    pub(crate) extra: Option<Box<ClaimExtra>>,
}

/// The fields of a claim that most claims never set, boxed together: 8
/// bytes on every claim instead of 56, and a box on the few (claims in
/// arbitration, waiting for proof of execution, rejected or ended). Never
/// all-`None` inside a claim: [`Claim::tidy`] drops such a box, so equal
/// claims compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimExtra {
    pub(crate) arbitration_case_id: Option<Uuid>,
    pub(crate) partner_response_due_at: Option<Timestamp>,
    /// When the claim was last rejected: the dispute window counts from here.
    pub(crate) rejected_at: Option<Timestamp>,
    pub(crate) reason: Option<Name>,
}

impl Claim {
    pub fn key(&self) -> ClaimKey {
        ClaimKey {
            tenant_id: self.tenant_id,
            product: self.product.to_string(),
            activity: self.activity,
        }
    }

    /// The arbitration case the claim entered last, if any.
    pub fn arbitration_case_id(&self) -> Option<Uuid> {
        self.extra.as_ref().and_then(|e| e.arbitration_case_id)
    }

    /// The running partner response deadline (after `request_poe`).
    pub fn partner_response_due_at(&self) -> Option<Timestamp> {
        self.extra.as_ref().and_then(|e| e.partner_response_due_at)
    }

    /// When the claim was last rejected: the dispute window counts from here.
    pub fn rejected_at(&self) -> Option<Timestamp> {
        self.extra.as_ref().and_then(|e| e.rejected_at)
    }

    /// The reason code of a rejected or ended claim.
    pub fn reason(&self) -> Option<&str> {
        self.extra
            .as_ref()
            .and_then(|e| e.reason.as_ref())
            .map(Name::as_str)
    }

    /// The rare fields to change; [`Claim::tidy`] afterwards.
    fn extra_mut(&mut self) -> &mut ClaimExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Whether the claim has any of the rare fields, and so a [`ClaimExtra`]
    /// box on the heap.
    pub fn has_extra(&self) -> bool {
        self.extra.is_some()
    }

    /// Drops an all-`None` box, keeping one representation per claim.
    fn tidy(&mut self) {
        if self.extra.as_deref() == Some(&ClaimExtra::default()) {
            self.extra = None;
        }
    }

    /// A contender in arbitration: open, or approved (the incumbent).
    pub fn is_contender(&self) -> bool {
        self.status.is_contender()
    }

    /// The deadlines the scheduler must watch for this claim. A missed review
    /// deadline stays visible (`review_due_at`) but is no longer watched.
    pub fn watched_deadlines(&self) -> impl Iterator<Item = (Timestamp, Uuid, DeadlineKind)> {
        let review = match (self.review_due_at, self.overdue) {
            (Some(due), false) => Some((due, self.claim_id, DeadlineKind::Review)),
            _ => None,
        };
        let response = self
            .partner_response_due_at()
            .map(|due| (due, self.claim_id, DeadlineKind::PartnerResponse));
        review.into_iter().chain(response)
    }
}

/// Claims stored per chunk of this many, in submission order: a chunk is
/// allocated whole (about 170 KiB) and never moves, so growing the store
/// neither copies the claims nor holds twice their memory for a moment.
pub const CLAIMS_PER_CHUNK: usize = 1024;

/// Every claim, by id and in submission order. Claim `seq` n is the n-th
/// claim submitted; it sits at position n − 1 of the chunks, and the index
/// maps each id to that position. Reads like the `BTreeMap<Uuid, Claim>`
/// it replaces: [`Claims::values`] and [`Claims::iter`] go in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    chunks: Vec<Vec<Claim>>,
    /// Claim id → position (`seq` − 1), in id order.
    index: BTreeMap<Uuid, u32>,
}

impl Claims {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains_key(&self, claim_id: &Uuid) -> bool {
        self.index.contains_key(claim_id)
    }

    pub fn get(&self, claim_id: &Uuid) -> Option<&Claim> {
        self.index.get(claim_id).map(|&at| self.at(at))
    }

    /// The claim submitted `seq`-th (1 for the first).
    pub fn by_seq(&self, seq: u64) -> Option<&Claim> {
        let at = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.chunks
            .get(at / CLAIMS_PER_CHUNK)?
            .get(at % CLAIMS_PER_CHUNK)
    }

    /// Every claim, in id order.
    pub fn values(&self) -> impl Iterator<Item = &Claim> + '_ {
        self.index.values().map(|&at| self.at(at))
    }

    /// Every claim with its id, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Claim)> + '_ {
        self.index.iter().map(|(id, &at)| (id, self.at(at)))
    }

    /// Every claim, in submission order.
    pub fn in_submission_order(&self) -> impl Iterator<Item = &Claim> + '_ {
        self.chunks.iter().flatten()
    }

    /// The claims in submission order, one chunk of up to
    /// [`CLAIMS_PER_CHUNK`] at a time.
    pub fn chunks(&self) -> impl Iterator<Item = &[Claim]> + '_ {
        self.chunks.iter().map(Vec::as_slice)
    }

    /// Claims from chunks in submission order (each full but the last,
    /// `seq` already set), with the id index built in one sorted pass
    /// (packed B-tree nodes). `None` when two claims share an id.
    pub(crate) fn from_chunks(chunks: Vec<Vec<Claim>>) -> Option<Claims> {
        let index: BTreeMap<Uuid, u32> = chunks
            .iter()
            .flatten()
            .enumerate()
            .map(|(at, claim)| (claim.claim_id, at as u32))
            .collect();
        let total: usize = chunks.iter().map(Vec::len).sum();
        (index.len() == total).then_some(Claims { chunks, index })
    }

    fn at(&self, at: u32) -> &Claim {
        let at = at as usize;
        &self.chunks[at / CLAIMS_PER_CHUNK][at % CLAIMS_PER_CHUNK]
    }

    fn get_mut(&mut self, claim_id: &Uuid) -> Option<&mut Claim> {
        let at = *self.index.get(claim_id)? as usize;
        Some(&mut self.chunks[at / CLAIMS_PER_CHUNK][at % CLAIMS_PER_CHUNK])
    }

    /// Adds the next claim; its `seq` must be the count so far plus one.
    fn push(&mut self, claim: Claim) {
        let at = self.index.len();
        assert_eq!(claim.seq, at as u64 + 1, "claims are added in seq order");
        let position = u32::try_from(at).expect("fewer than 4,294,967,295 claims");
        if self
            .chunks
            .last()
            .is_none_or(|c| c.len() == CLAIMS_PER_CHUNK)
        {
            self.chunks.push(Vec::with_capacity(CLAIMS_PER_CHUNK));
        }
        self.index.insert(claim.claim_id, position);
        self.chunks
            .last_mut()
            .expect("a chunk with room was just ensured")
            .push(claim);
    }
}

impl Index<&Uuid> for Claims {
    type Output = Claim;

    /// # Panics
    /// When no claim has that id (like `BTreeMap`'s index).
    fn index(&self, claim_id: &Uuid) -> &Claim {
        self.get(claim_id)
            .unwrap_or_else(|| panic!("no claim {claim_id}"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub case_id: Uuid,
    pub seq: u64,
    pub tenant_id: Uuid,
    pub product: Name,
    pub activity: Activity,
    pub status: CaseStatus,
    /// In the order the claims entered the case.
    pub claim_ids: Vec<Uuid>,
    pub incumbent_claim_id: Option<Uuid>,
    pub winner_claim_id: Option<Uuid>,
    pub opened_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    pub version: u64,
}

impl Case {
    /// The key the case decides.
    pub fn key(&self) -> ClaimKey {
        ClaimKey {
            tenant_id: self.tenant_id,
            product: self.product.to_string(),
            activity: self.activity,
        }
    }
}

/// A claim key with its product interned: (tenant, product, activity).
pub type KeyRef = (Uuid, Name, Activity);

/// An entry of [`State::keys`]: (tenant, product, activity, position of
/// the claim in [`Claims`]). Flat, so it is 32 bytes.
pub type KeyEntry = (Uuid, Name, Activity, u32);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub tenants: BTreeMap<Uuid, TenantRecord>,
    pub subscriptions: BTreeMap<Uuid, SubscriptionEntry>,
    /// Subscription ids by (tenant, product): a submit looks up "every
    /// subscription of that product on that tenant" without scanning all.
    /// Entries (tenant, product, subscription id); read it through
    /// [`State::subscriptions_of`].
    pub subscriptions_by_product: BTreeSet<(Uuid, Name, Uuid)>,
    pub partners: BTreeMap<String, PartnerRecord>,
    pub claims: Claims,
    pub cases: BTreeMap<Uuid, Case>,
    /// Every claim by its key (tenant, product, activity), in submission
    /// order: entries (key, position in [`Claims`]). Read it through
    /// [`State::claims_on_key`].
    pub keys: BTreeSet<KeyEntry>,
    /// The open arbitration case of each key that has one. Read it through
    /// [`State::open_case_of`].
    pub open_cases: BTreeMap<KeyRef, Uuid>,
    /// Due times the scheduler watches, earliest first (mini-redis style
    /// expiry set). Derived from claims; kept here so finding the next due
    /// deadline never scans all claims.
    pub deadlines: BTreeSet<(Timestamp, Uuid, DeadlineKind)>,
    /// The texts claims and cases share ([`Name`]).
    pub names: Names,
    pub claim_count: u64,
    pub case_count: u64,
}

/// The log holds an event that does not fit the state: a corrupt or
/// reordered log. Folding stops; the caller names the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvolveError {
    #[error("{0} does not exist")]
    MissingAggregate(String),
    #[error("{0} already exists")]
    DuplicateAggregate(String),
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    /// The current version of an aggregate (0 when it has no events yet).
    pub fn version_of(&self, aggregate: &AggregateId) -> u64 {
        let parsed = aggregate.id.parse::<Uuid>().ok();
        match aggregate.kind {
            AggregateKind::Claim => parsed
                .and_then(|id| self.claims.get(&id))
                .map_or(0, |c| c.version),
            AggregateKind::Arbitration => parsed
                .and_then(|id| self.cases.get(&id))
                .map_or(0, |c| c.version),
            AggregateKind::Tenant => parsed
                .and_then(|id| self.tenants.get(&id))
                .map_or(0, |t| t.version),
            AggregateKind::Subscription => parsed
                .and_then(|id| self.subscriptions.get(&id))
                .map_or(0, |s| s.version),
            AggregateKind::Partner => self.partners.get(&aggregate.id).map_or(0, |p| p.version),
        }
    }

    /// Folds one event written at `at`; returns the aggregate's new version.
    ///
    /// # Errors
    ///
    /// [`EvolveError`] when the event does not fit the state (a second
    /// creation of an aggregate, or a change to one that does not exist):
    /// the log and the state disagree, which is a bug or a damaged log.
    pub fn evolve(&mut self, event: &Event, at: Timestamp) -> Result<u64, EvolveError> {
        match &event.data {
            EventData::TenantUpserted(e) => Ok(self.apply_tenant_upserted(e)),
            EventData::SubscriptionUpserted(e) => Ok(self.apply_subscription_upserted(e)),
            EventData::PartnerUpserted(e) => Ok(self.apply_partner_upserted(e)),
            EventData::ClaimSubmitted(e) => self.apply_claim_submitted(e, at),
            EventData::ArbitrationOpened(e) => self.apply_arbitration_opened(e, at),
            EventData::ArbitrationClaimJoined(e) => {
                let claim = self.claim_mut(e.claim_id)?;
                claim.extra_mut().arbitration_case_id = Some(e.case_id);
                let case = self.case_mut(e.case_id)?;
                if !case.claim_ids.contains(&e.claim_id) {
                    case.claim_ids.push(e.claim_id);
                }
                case.version += 1;
                Ok(case.version)
            }
            EventData::ArbitrationResolved(e) => {
                self.close_case(e.case_id, Some(e.winner_claim_id), at)
            }
            EventData::ArbitrationClosed(e) => self.close_case(e.case_id, None, at),
            _ => self.apply_claim_change(event, at),
        }
    }

    fn apply_tenant_upserted(&mut self, e: &TenantUpserted) -> u64 {
        let entry = self.tenants.entry(e.tenant_id).or_insert(TenantRecord {
            domains: Vec::new(),
            version: 0,
        });
        entry.domains = e
            .domains
            .iter()
            .map(|d| crate::dns::domain_key_lenient(d))
            .collect();
        entry.version += 1;
        entry.version
    }

    fn apply_subscription_upserted(&mut self, e: &SubscriptionRecord) -> u64 {
        let version = self
            .subscriptions
            .get(&e.subscription_id)
            .map_or(0, |s| s.version)
            + 1;
        if let Some(old) = self.subscriptions.get(&e.subscription_id) {
            if let Some(product) = self.names.get(&old.record.product) {
                let entry = (old.record.tenant_id, product.clone(), e.subscription_id);
                self.subscriptions_by_product.remove(&entry);
            }
        }
        let product = self.names.intern(&e.product);
        self.subscriptions_by_product
            .insert((e.tenant_id, product, e.subscription_id));
        self.subscriptions.insert(
            e.subscription_id,
            SubscriptionEntry {
                record: e.clone(),
                version,
            },
        );
        version
    }

    fn apply_partner_upserted(&mut self, e: &PartnerUpserted) -> u64 {
        let entry = self
            .partners
            .entry(e.partner_id.clone())
            .or_insert(PartnerRecord {
                mpns: Vec::new(),
                version: 0,
            });
        entry.mpns = e.mpns.clone();
        entry.version += 1;
        entry.version
    }

    fn apply_claim_submitted(
        &mut self,
        e: &ClaimSubmitted,
        at: Timestamp,
    ) -> Result<u64, EvolveError> {
        if self.claims.contains_key(&e.claim_id) {
            return Err(EvolveError::DuplicateAggregate(format!(
                "claim {}",
                e.claim_id
            )));
        }
        self.claim_count += 1;
        let mut subscription_ids: SubscriptionIds = e.subscription_ids.iter().copied().collect();
        subscription_ids.sort();
        let claim = Claim {
            claim_id: e.claim_id,
            tenant_id: e.tenant_id,
            seq: self.claim_count,
            version: 1,
            partner_id: self.names.intern(&e.partner_id),
            mpn_id: self.names.intern(&e.mpn_id),
            product: self.names.intern(&e.product),
            subscription_ids,
            solution_area: e.solution_area,
            activity: e.activity,
            status: ClaimStatus::Submitted,
            incentive_eligible: e.incentive_eligible,
            disputed: false,
            overdue: false,
            submitted_at: at,
            updated_at: at,
            review_due_at: Some(e.review_due_at),
            decided_at: None,
            extra: None,
        };
        self.deadlines.extend(claim.watched_deadlines());
        let position = u32::try_from(self.claims.len()).expect("fewer than 4,294,967,295 claims");
        self.keys.insert((
            claim.tenant_id,
            claim.product.clone(),
            claim.activity,
            position,
        ));
        self.claims.push(claim);
        Ok(1)
    }

    fn apply_arbitration_opened(
        &mut self,
        e: &ArbitrationOpened,
        at: Timestamp,
    ) -> Result<u64, EvolveError> {
        if self.cases.contains_key(&e.case_id) {
            return Err(EvolveError::DuplicateAggregate(format!(
                "case {}",
                e.case_id
            )));
        }
        for claim_id in &e.claim_ids {
            self.claim_mut(*claim_id)?.extra_mut().arbitration_case_id = Some(e.case_id);
        }
        self.case_count += 1;
        let product = self.names.intern(&e.product);
        self.open_cases
            .insert((e.tenant_id, product.clone(), e.activity), e.case_id);
        self.cases.insert(
            e.case_id,
            Case {
                case_id: e.case_id,
                seq: self.case_count,
                tenant_id: e.tenant_id,
                product,
                activity: e.activity,
                status: CaseStatus::Open,
                claim_ids: e.claim_ids.clone(),
                incumbent_claim_id: e.incumbent_claim_id,
                winner_claim_id: None,
                opened_at: at,
                closed_at: None,
                version: 1,
            },
        );
        Ok(1)
    }

    /// The events that change one existing claim's view (every claim event
    /// but `submitted`).
    fn apply_claim_change(&mut self, event: &Event, at: Timestamp) -> Result<u64, EvolveError> {
        let reviewer = event.actor.kind() == ActorKind::Reviewer;
        match &event.data {
            EventData::ReviewStarted(e) => self.update_claim(e.claim_id, at, |c| {
                if c.status == ClaimStatus::Submitted {
                    c.status = ClaimStatus::UnderReview;
                }
                meet_review_deadline(c);
            }),
            EventData::CommentAdded(e) => self.update_claim(e.claim_id, at, |c| {
                if reviewer {
                    meet_review_deadline(c);
                }
            }),
            EventData::PoeRequested(e) => self.update_claim(e.claim_id, at, |c| {
                meet_review_deadline(c);
                if c.status.is_open() {
                    c.status = ClaimStatus::PartnerActionRequired;
                }
                c.extra_mut().partner_response_due_at = Some(e.partner_response_due_at);
            }),
            EventData::PoeSubmitted(e) => self.update_claim(e.claim_id, at, |c| {
                c.extra_mut().partner_response_due_at = None;
                if c.status == ClaimStatus::PartnerActionRequired {
                    c.status = ClaimStatus::UnderReview;
                }
                if let Some(due) = e.review_due_at {
                    c.review_due_at = Some(due);
                    c.overdue = false;
                }
            }),
            EventData::Approved(e) => self.close(e.claim_id, at, ClaimStatus::Approved, None),
            EventData::Rejected(e) => {
                self.close(e.claim_id, at, ClaimStatus::Rejected, Some(&e.reason))
            }
            EventData::Withdrawn(e) => self.close(e.claim_id, at, ClaimStatus::Withdrawn, None),
            EventData::Disputed(e) => self.update_claim(e.claim_id, at, |c| {
                c.status = ClaimStatus::Submitted;
                c.disputed = true;
                c.extra_mut().reason = None;
                c.decided_at = None;
                c.review_due_at = Some(e.review_due_at);
                c.overdue = false;
            }),
            EventData::AssociationEnded(e) => {
                self.close(e.claim_id, at, ClaimStatus::Ended, Some(&e.reason))
            }
            EventData::ReviewDeadlineMissed(e) => self.update_claim(e.claim_id, at, |c| {
                c.overdue = true;
            }),
            EventData::PartnerResponseMissed(e) => self.update_claim(e.claim_id, at, |c| {
                c.extra_mut().partner_response_due_at = None;
            }),
            EventData::TenantUpserted(_)
            | EventData::SubscriptionUpserted(_)
            | EventData::PartnerUpserted(_)
            | EventData::ClaimSubmitted(_)
            | EventData::ArbitrationOpened(_)
            | EventData::ArbitrationClaimJoined(_)
            | EventData::ArbitrationResolved(_)
            | EventData::ArbitrationClosed(_) => {
                unreachable!("evolve folds {:?} itself", event.data)
            }
        }
    }

    /// A claim decided (approved, rejected, withdrawn or ended), with the
    /// reason code of a rejection or an end; a rejection also starts the
    /// dispute window.
    fn close(
        &mut self,
        claim_id: Uuid,
        at: Timestamp,
        status: ClaimStatus,
        reason: Option<&str>,
    ) -> Result<u64, EvolveError> {
        let reason = reason.map(|r| self.names.intern(r));
        self.update_claim(claim_id, at, |c| {
            close_claim(c, status, reason, at);
            if status == ClaimStatus::Rejected {
                c.extra_mut().rejected_at = Some(at);
            }
        })
    }

    /// A claim to change. The caller changes only fields it owns: a change
    /// that moves the claim's deadlines goes through [`State::update_claim`].
    fn claim_mut(&mut self, claim_id: Uuid) -> Result<&mut Claim, EvolveError> {
        self.claims
            .get_mut(&claim_id)
            .ok_or_else(|| EvolveError::MissingAggregate(format!("claim {claim_id}")))
    }

    fn case_mut(&mut self, case_id: Uuid) -> Result<&mut Case, EvolveError> {
        self.cases
            .get_mut(&case_id)
            .ok_or_else(|| EvolveError::MissingAggregate(format!("case {case_id}")))
    }

    /// Applies a change to one claim, keeping the deadline set in step.
    fn update_claim(
        &mut self,
        claim_id: Uuid,
        at: Timestamp,
        change: impl FnOnce(&mut Claim),
    ) -> Result<u64, EvolveError> {
        let claim = self
            .claims
            .get_mut(&claim_id)
            .ok_or_else(|| EvolveError::MissingAggregate(format!("claim {claim_id}")))?;
        for entry in claim.watched_deadlines() {
            self.deadlines.remove(&entry);
        }
        change(claim);
        claim.tidy();
        claim.version += 1;
        claim.updated_at = at;
        self.deadlines.extend(claim.watched_deadlines());
        Ok(claim.version)
    }

    fn close_case(
        &mut self,
        case_id: Uuid,
        winner: Option<Uuid>,
        at: Timestamp,
    ) -> Result<u64, EvolveError> {
        let case = self.case_mut(case_id)?;
        case.status = CaseStatus::Closed;
        case.winner_claim_id = winner;
        case.closed_at = Some(at);
        case.version += 1;
        let version = case.version;
        let key = (case.tenant_id, case.product.clone(), case.activity);
        if self.open_cases.get(&key) == Some(&case_id) {
            self.open_cases.remove(&key);
        }
        Ok(version)
    }

    /// The interned form of a key, if the state ever saw its product (a
    /// product it never saw has no claims, cases or subscriptions).
    fn key_ref(&self, key: &ClaimKey) -> Option<KeyRef> {
        let product = self.names.get(&key.product)?;
        Some((key.tenant_id, product.clone(), key.activity))
    }

    /// Every claim on one key (tenant, product, activity), in submission
    /// order.
    pub fn claims_on_key(&self, key: &ClaimKey) -> impl Iterator<Item = &Claim> + '_ {
        self.key_ref(key)
            .into_iter()
            .flat_map(move |(tenant, product, activity)| {
                let from = (tenant, product.clone(), activity, 0);
                let to = (tenant, product, activity, u32::MAX);
                self.keys.range(from..=to)
            })
            .map(|&(_, _, _, at)| self.claims.at(at))
    }

    /// The open arbitration case of a key, if any.
    pub fn open_case_of(&self, key: &ClaimKey) -> Option<Uuid> {
        self.open_cases.get(&self.key_ref(key)?).copied()
    }

    /// The ids of the subscriptions of one product on one tenant, in id
    /// order.
    pub fn subscription_ids_of(
        &self,
        tenant_id: Uuid,
        product: &str,
    ) -> impl Iterator<Item = Uuid> + '_ {
        self.names
            .get(product)
            .into_iter()
            .flat_map(move |product| {
                let from = (tenant_id, product.clone(), Uuid::nil());
                let to = (tenant_id, product.clone(), Uuid::max());
                self.subscriptions_by_product.range(from..=to)
            })
            .map(|&(_, _, id)| id)
    }

    /// The subscriptions of one product on one tenant, in id order.
    pub fn subscriptions_of(
        &self,
        tenant_id: Uuid,
        product: &str,
    ) -> impl Iterator<Item = &SubscriptionRecord> {
        self.subscription_ids_of(tenant_id, product)
            .filter_map(|id| self.subscriptions.get(&id))
            .map(|s| &s.record)
    }

    /// The next deadline the scheduler should fire, if any.
    pub fn next_deadline(&self) -> Option<(Timestamp, Uuid, DeadlineKind)> {
        self.deadlines.first().copied()
    }

    /// The arbitration contenders of an open case, in case order.
    pub fn contenders(&self, case: &Case) -> Vec<Uuid> {
        case.claim_ids
            .iter()
            .copied()
            .filter(|id| self.claims.get(id).is_some_and(Claim::is_contender))
            .collect()
    }
}

/// A reviewer action meets the running review deadline, late or not.
fn meet_review_deadline(claim: &mut Claim) {
    claim.review_due_at = None;
    claim.overdue = false;
}

fn close_claim(claim: &mut Claim, status: ClaimStatus, reason: Option<Name>, at: Timestamp) {
    claim.status = status;
    claim.extra_mut().reason = reason;
    claim.decided_at = Some(at);
    claim.review_due_at = None;
    claim.extra_mut().partner_response_due_at = None;
    claim.overdue = false;
}
