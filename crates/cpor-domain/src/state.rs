//! State: the fold of every event so far. `evolve` only folds; every business
//! rule lives in [`crate::decide`].

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::command::SubscriptionRecord;
use crate::event::{
    AggregateId, AggregateKind, ArbitrationOpened, ClaimSubmitted, Event, EventData,
    PartnerUpserted, TenantUpserted,
};
use crate::types::{
    Activity, ActorKind, CaseStatus, ClaimKey, ClaimStatus, DeadlineKind, Mpn, SolutionArea,
    Timestamp,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRecord {
    /// The tenant's domains as comparison keys ([`crate::dns::domain_key`]:
    /// A-labels, lowercase, no trailing dot); the event keeps the spelling
    /// upstream sent.
    pub domains: Vec<String>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerRecord {
    pub mpns: Vec<Mpn>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEntry {
    pub record: SubscriptionRecord,
    pub version: u64,
}

/// One claim as the workflow sees it. Field meanings follow the contract's
/// ClaimView (§4); `seq` is the submission order used for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub claim_id: Uuid,
    pub seq: u64,
    pub partner_id: String,
    pub mpn_id: String,
    pub tenant_id: Uuid,
    pub domain: String,
    pub solution_area: SolutionArea,
    pub activity: Activity,
    pub product: String,
    pub subscription_ids: Vec<Uuid>,
    pub status: ClaimStatus,
    pub reason: Option<String>,
    pub incentive_eligible: bool,
    pub disputed: bool,
    pub overdue: bool,
    pub arbitration_case_id: Option<Uuid>,
    pub submitted_at: Timestamp,
    pub review_due_at: Option<Timestamp>,
    pub partner_response_due_at: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
    /// When the claim was last rejected: the dispute window counts from here.
    pub rejected_at: Option<Timestamp>,
    pub version: u64,
    pub updated_at: Timestamp,
}

impl Claim {
    pub fn key(&self) -> ClaimKey {
        ClaimKey {
            tenant_id: self.tenant_id,
            product: self.product.clone(),
            activity: self.activity,
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
            .partner_response_due_at
            .map(|due| (due, self.claim_id, DeadlineKind::PartnerResponse));
        review.into_iter().chain(response)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    pub case_id: Uuid,
    pub seq: u64,
    pub tenant_id: Uuid,
    pub product: String,
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

/// Everything ever claimed on one (tenant, product, activity) key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEntry {
    /// Claims on this key in submission order.
    pub claim_ids: Vec<Uuid>,
    pub open_case: Option<Uuid>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub tenants: BTreeMap<Uuid, TenantRecord>,
    pub subscriptions: BTreeMap<Uuid, SubscriptionEntry>,
    /// Subscription ids by (tenant, product): a submit looks up "every
    /// subscription of that product on that tenant" without scanning all.
    pub subscriptions_by_product: BTreeMap<(Uuid, String), BTreeSet<Uuid>>,
    pub partners: BTreeMap<String, PartnerRecord>,
    pub claims: BTreeMap<Uuid, Claim>,
    pub cases: BTreeMap<Uuid, Case>,
    pub keys: BTreeMap<ClaimKey, KeyEntry>,
    /// Due times the scheduler watches, earliest first (mini-redis style
    /// expiry set). Derived from claims; kept here so finding the next due
    /// deadline never scans all claims.
    pub deadlines: BTreeSet<(Timestamp, Uuid, DeadlineKind)>,
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
                self.claim_mut(e.claim_id)?.arbitration_case_id = Some(e.case_id);
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
            let old_key = (old.record.tenant_id, old.record.product.clone());
            if let Some(ids) = self.subscriptions_by_product.get_mut(&old_key) {
                ids.remove(&e.subscription_id);
                if ids.is_empty() {
                    self.subscriptions_by_product.remove(&old_key);
                }
            }
        }
        self.subscriptions_by_product
            .entry((e.tenant_id, e.product.clone()))
            .or_default()
            .insert(e.subscription_id);
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
        let mut subscription_ids = e.subscription_ids.clone();
        subscription_ids.sort();
        let claim = Claim {
            claim_id: e.claim_id,
            seq: self.claim_count,
            partner_id: e.partner_id.clone(),
            mpn_id: e.mpn_id.clone(),
            tenant_id: e.tenant_id,
            domain: e.domain.clone(),
            solution_area: e.solution_area,
            activity: e.activity,
            product: e.product.clone(),
            subscription_ids,
            status: ClaimStatus::Submitted,
            reason: None,
            incentive_eligible: e.incentive_eligible,
            disputed: false,
            overdue: false,
            arbitration_case_id: None,
            submitted_at: at,
            review_due_at: Some(e.review_due_at),
            partner_response_due_at: None,
            decided_at: None,
            rejected_at: None,
            version: 1,
            updated_at: at,
        };
        self.deadlines.extend(claim.watched_deadlines());
        self.keys
            .entry(claim.key())
            .or_default()
            .claim_ids
            .push(claim.claim_id);
        self.claims.insert(claim.claim_id, claim);
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
            self.claim_mut(*claim_id)?.arbitration_case_id = Some(e.case_id);
        }
        self.case_count += 1;
        let key = ClaimKey {
            tenant_id: e.tenant_id,
            product: e.product.clone(),
            activity: e.activity,
        };
        self.keys.entry(key).or_default().open_case = Some(e.case_id);
        self.cases.insert(
            e.case_id,
            Case {
                case_id: e.case_id,
                seq: self.case_count,
                tenant_id: e.tenant_id,
                product: e.product.clone(),
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
                c.partner_response_due_at = Some(e.partner_response_due_at);
            }),
            EventData::PoeSubmitted(e) => self.update_claim(e.claim_id, at, |c| {
                c.partner_response_due_at = None;
                if c.status == ClaimStatus::PartnerActionRequired {
                    c.status = ClaimStatus::UnderReview;
                }
                if let Some(due) = e.review_due_at {
                    c.review_due_at = Some(due);
                    c.overdue = false;
                }
            }),
            EventData::Approved(e) => self.update_claim(e.claim_id, at, |c| {
                close_claim(c, ClaimStatus::Approved, None, at);
            }),
            EventData::Rejected(e) => self.update_claim(e.claim_id, at, |c| {
                close_claim(c, ClaimStatus::Rejected, Some(e.reason.clone()), at);
                c.rejected_at = Some(at);
            }),
            EventData::Withdrawn(e) => self.update_claim(e.claim_id, at, |c| {
                close_claim(c, ClaimStatus::Withdrawn, None, at);
            }),
            EventData::Disputed(e) => self.update_claim(e.claim_id, at, |c| {
                c.status = ClaimStatus::Submitted;
                c.disputed = true;
                c.reason = None;
                c.decided_at = None;
                c.review_due_at = Some(e.review_due_at);
                c.overdue = false;
            }),
            EventData::AssociationEnded(e) => self.update_claim(e.claim_id, at, |c| {
                close_claim(c, ClaimStatus::Ended, Some(e.reason.clone()), at);
            }),
            EventData::ReviewDeadlineMissed(e) => self.update_claim(e.claim_id, at, |c| {
                c.overdue = true;
            }),
            EventData::PartnerResponseMissed(e) => self.update_claim(e.claim_id, at, |c| {
                c.partner_response_due_at = None;
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
        let key = ClaimKey {
            tenant_id: case.tenant_id,
            product: case.product.clone(),
            activity: case.activity,
        };
        if let Some(entry) = self.keys.get_mut(&key) {
            if entry.open_case == Some(case_id) {
                entry.open_case = None;
            }
        }
        Ok(version)
    }

    /// The subscriptions of one product on one tenant, in id order.
    pub fn subscriptions_of(
        &self,
        tenant_id: Uuid,
        product: &str,
    ) -> impl Iterator<Item = &SubscriptionRecord> {
        self.subscriptions_by_product
            .get(&(tenant_id, product.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.subscriptions.get(id))
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

fn close_claim(claim: &mut Claim, status: ClaimStatus, reason: Option<String>, at: Timestamp) {
    claim.status = status;
    claim.reason = reason;
    claim.decided_at = Some(at);
    claim.review_due_at = None;
    claim.partner_response_due_at = None;
    claim.overdue = false;
}
