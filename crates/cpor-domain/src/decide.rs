//! Decisions: state + command + injected time → events, or a refusal.
//!
//! `decide` never mutates state and never reads a clock; everything it needs
//! that is not in the state comes in the [`Context`]. The events it returns
//! are written atomically, in order, by the caller, and then folded with
//! [`State::evolve`]. When a command touches several aggregates (arbitration),
//! the decision spells out every consequence as its own event.

use uuid::Uuid;

use crate::access::may_see;
use crate::calendar::Calendar;
use crate::command::{Command, CommandEnvelope, SubmitClaim, SubscriptionRecord};
use crate::error::{ErrorCode, Rejection};
use crate::event::*;
use crate::limits::SUBSCRIPTIONS_PER_CLAIM_MAX;
use crate::state::{Claim, Name, State, SubscriptionIds};
use crate::types::{
    reason, Actor, ActorKind, Channel, ClaimKey, ClaimStatus, DeadlineKind, SolutionArea,
    SubscriptionState, Timestamp,
};

/// A rejected claim may be disputed within this many days of its rejection.
pub const DISPUTE_WINDOW_DAYS: i64 = 30;

/// Inputs a decision needs besides state: the time (injected) and the
/// business calendar (configuration).
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub now: Timestamp,
    pub calendar: &'a Calendar,
}

/// What an accepted command produces.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub events: Vec<Event>,
    /// The claim the reply names (`claim_id`), for claim commands.
    pub claim_id: Option<Uuid>,
    /// Non-blocking findings for the reply, e.g. `MPN_NOT_ENROLLED`.
    pub warnings: Vec<String>,
}

/// The system comment each contender gets when it enters arbitration.
pub const ARBITRATION_NOTICE: &str = "Another partner claims the same customer and product. \
This claim is now in arbitration: reviewers will compare the proofs of execution, \
may ask for more, and the review may take longer than five business days.";

/// Decides one command. Assumes [`crate::access::authorize_envelope`] passed.
pub fn decide(
    state: &State,
    envelope: &CommandEnvelope,
    ctx: &Context<'_>,
) -> Result<Decision, Rejection> {
    let actor = &envelope.actor;
    let event = |data: EventData| Event {
        actor: actor.clone(),
        data,
    };
    match &envelope.command {
        Command::UpsertTenant { tenant_id, domains } => Ok(Decision {
            events: vec![event(EventData::TenantUpserted(TenantUpserted {
                tenant_id: *tenant_id,
                domains: domains.clone(),
            }))],
            ..Decision::default()
        }),
        Command::UpsertPartner { partner_id, mpns } => Ok(Decision {
            events: vec![event(EventData::PartnerUpserted(PartnerUpserted {
                partner_id: partner_id.clone(),
                mpns: mpns.clone(),
            }))],
            ..Decision::default()
        }),
        Command::UpsertSubscription(record) => {
            check_subscription_limit(state, record)?;
            Ok(Decision {
                events: upsert_subscription(state, actor, record),
                ..Decision::default()
            })
        }
        Command::Submit(submit) => submit_claim(state, envelope, submit, ctx),
        command => {
            let claim_id = command
                .existing_claim_id()
                .expect("every other command is about an existing claim");
            let claim = visible_claim(state, actor, claim_id)?;
            if let Some(expected) = envelope.expected_version {
                if expected != claim.version {
                    return Err(Rejection {
                        current_version: Some(claim.version),
                        ..Rejection::with_message(
                            ErrorCode::VersionConflict,
                            format!(
                                "The claim is at version {}, not {expected}; read it again and retry.",
                                claim.version
                            ),
                        )
                    });
                }
            }
            let events = decide_on_claim(state, envelope, claim, ctx)?;
            Ok(Decision {
                events,
                claim_id: Some(claim_id),
                warnings: Vec::new(),
            })
        }
    }
}

/// The claim if it exists and the actor may see it; `CLAIM_NOT_FOUND`
/// otherwise, so that other partners' claims are indistinguishable from
/// claims that do not exist.
pub fn visible_claim<'s>(
    state: &'s State,
    actor: &Actor,
    claim_id: Uuid,
) -> Result<&'s Claim, Rejection> {
    let claim = state.claims.get(&claim_id).filter(|c| may_see(actor, c));
    claim.ok_or_else(|| Rejection::new(ErrorCode::ClaimNotFound))
}

fn invalid_transition(claim: &Claim, action: &str) -> Rejection {
    Rejection::with_message(
        ErrorCode::InvalidTransition,
        format!(
            "A claim that is {} cannot be {action}.",
            claim.status.as_str().replace('_', " ")
        ),
    )
}

/// A command about an existing claim, with what deciding it needs. Each
/// command family decides in a function of its own: reviewer actions,
/// partner actions, the customer's decline, deadlines.
struct OnClaim<'a> {
    state: &'a State,
    envelope: &'a CommandEnvelope,
    claim: &'a Claim,
    ctx: &'a Context<'a>,
}

impl OnClaim<'_> {
    /// An event by the command's actor.
    fn event(&self, data: EventData) -> Event {
        Event {
            actor: self.envelope.actor.clone(),
            data,
        }
    }

    /// A reviewer's first action on a submitted claim starts the review;
    /// the contract wants `review_started` written before the action's own
    /// event.
    fn review_started(&self, events: &mut Vec<Event>) {
        if self.claim.status == ClaimStatus::Submitted {
            events.push(self.event(EventData::ReviewStarted(ClaimRef {
                claim_id: self.claim.claim_id,
            })));
        }
    }
}

fn decide_on_claim(
    state: &State,
    envelope: &CommandEnvelope,
    claim: &Claim,
    ctx: &Context<'_>,
) -> Result<Vec<Event>, Rejection> {
    let d = OnClaim {
        state,
        envelope,
        claim,
        ctx,
    };
    match &envelope.command {
        Command::Comment { .. }
        | Command::StartReview { .. }
        | Command::RequestPoe { .. }
        | Command::Approve { .. }
        | Command::Reject { .. } => decide_conversation_and_review(&d),
        Command::SubmitPoe { .. }
        | Command::Withdraw { .. }
        | Command::Dispute { .. }
        | Command::Disassociate { .. } => decide_partner_action(&d),
        Command::CustomerDecline { reason, .. } => decide_customer_decline(&d, reason.as_ref()),
        Command::DeadlineElapsed { kind, due_at, .. } => Ok(decide_deadline(&d, *kind, *due_at)),
        Command::UpsertTenant { .. }
        | Command::UpsertSubscription(_)
        | Command::UpsertPartner { .. }
        | Command::Submit(_) => unreachable!("not a command about an existing claim"),
    }
}

/// Comments (by anyone who may see the claim) and the reviewer's actions.
fn decide_conversation_and_review(d: &OnClaim<'_>) -> Result<Vec<Event>, Rejection> {
    let (state, claim, ctx) = (d.state, d.claim, d.ctx);
    let claim_id = claim.claim_id;
    let is_reviewer = d.envelope.actor.kind() == ActorKind::Reviewer;
    let mut events = Vec::new();
    match &d.envelope.command {
        Command::Comment { text, .. } => {
            if is_reviewer {
                d.review_started(&mut events);
            }
            events.push(d.event(EventData::CommentAdded(CommentAdded {
                claim_id,
                text: text.clone(),
                system: false,
            })));
        }
        Command::StartReview { .. } => {
            if !claim.status.is_open() {
                return Err(invalid_transition(claim, "put under review"));
            }
            // Always written: on a claim already under review it still marks
            // the reviewer's action that meets a running review deadline.
            events.push(d.event(EventData::ReviewStarted(ClaimRef { claim_id })));
        }
        Command::RequestPoe { text, .. } => {
            if !poe_may_be_requested(state, claim) {
                return Err(invalid_transition(claim, "asked for proof of execution"));
            }
            d.review_started(&mut events);
            events.push(d.event(EventData::PoeRequested(PoeRequested {
                claim_id,
                text: text.clone(),
                partner_response_due_at: ctx.calendar.deadline_after(ctx.now),
            })));
        }
        Command::Approve { text, .. } => {
            if !matches!(
                claim.status,
                ClaimStatus::Submitted | ClaimStatus::UnderReview
            ) {
                return Err(invalid_transition(claim, "approved"));
            }
            d.review_started(&mut events);
            events.push(d.event(EventData::Approved(Approved {
                claim_id,
                text: text.clone(),
            })));
            events.extend(approval_consequences(state, claim));
        }
        Command::Reject { reason, text, .. } => {
            if !claim.status.is_open() {
                return Err(invalid_transition(claim, "rejected"));
            }
            d.review_started(&mut events);
            events.push(d.event(EventData::Rejected(Rejected {
                claim_id,
                reason: reason.clone(),
                text: text.clone(),
            })));
            events.extend(cases_closing(state, &[claim_id]));
        }
        _ => unreachable!("not a reviewer command"),
    }
    Ok(events)
}

/// What a partner does to its own claim after submitting it.
fn decide_partner_action(d: &OnClaim<'_>) -> Result<Vec<Event>, Rejection> {
    let (state, claim, ctx) = (d.state, d.claim, d.ctx);
    let claim_id = claim.claim_id;
    let mut events = Vec::new();
    match &d.envelope.command {
        Command::SubmitPoe {
            proof_of_execution,
            text,
            ..
        } => {
            if !(claim.status.is_open() || claim.status == ClaimStatus::Approved) {
                return Err(invalid_transition(claim, "given more proof of execution"));
            }
            let review_due_at = (claim.status == ClaimStatus::PartnerActionRequired)
                .then(|| ctx.calendar.deadline_after(ctx.now));
            events.push(d.event(EventData::PoeSubmitted(PoeSubmitted {
                claim_id,
                proof_of_execution: proof_of_execution.clone(),
                text: text.clone(),
                review_due_at,
            })));
        }
        Command::Withdraw { reason, .. } => {
            if !claim.status.is_open() {
                return Err(invalid_transition(claim, "withdrawn"));
            }
            events.push(d.event(EventData::Withdrawn(Withdrawn {
                claim_id,
                reason: reason.clone(),
            })));
            events.extend(cases_closing(state, &[claim_id]));
        }
        Command::Dispute {
            text,
            proof_of_execution,
            ..
        } => {
            check_dispute(state, claim, ctx.now)?;
            events.push(d.event(EventData::Disputed(Disputed {
                claim_id,
                text: text.clone(),
                proof_of_execution: proof_of_execution.clone(),
                review_due_at: ctx.calendar.deadline_after(ctx.now),
            })));
            events.extend(competition(state, claim, d.envelope.command_id));
        }
        Command::Disassociate { reason, .. } => {
            if claim.status != ClaimStatus::Approved {
                return Err(invalid_transition(claim, "disassociated"));
            }
            events.push(d.event(EventData::AssociationEnded(AssociationEnded {
                claim_id,
                reason: reason::DISASSOCIATED.to_string(),
                text: Some(reason.clone()),
            })));
            events.extend(cases_closing(state, &[claim_id]));
        }
        _ => unreachable!("not a partner command about a claim"),
    }
    Ok(events)
}

/// Contract §3: the customer declines; an open claim is rejected, an
/// approved one ends, both with reason `CUSTOMER_DECLINED`.
fn decide_customer_decline(
    d: &OnClaim<'_>,
    reason: Option<&String>,
) -> Result<Vec<Event>, Rejection> {
    let (state, claim) = (d.state, d.claim);
    let claim_id = claim.claim_id;
    let mut events = Vec::new();
    let data = if claim.status.is_open() {
        EventData::Rejected(Rejected {
            claim_id,
            reason: reason::CUSTOMER_DECLINED.to_string(),
            text: reason.cloned(),
        })
    } else if claim.status == ClaimStatus::Approved {
        EventData::AssociationEnded(AssociationEnded {
            claim_id,
            reason: reason::CUSTOMER_DECLINED.to_string(),
            text: reason.cloned(),
        })
    } else {
        return Err(invalid_transition(claim, "declined"));
    };
    events.push(d.event(data));
    events.extend(cases_closing(state, &[claim_id]));
    Ok(events)
}

/// A deadline firing. One that no longer matches the claim (met, replaced,
/// or already fired) decides nothing: firing is idempotent by construction.
fn decide_deadline(d: &OnClaim<'_>, kind: DeadlineKind, due_at: Timestamp) -> Vec<Event> {
    let (state, claim, ctx) = (d.state, d.claim, d.ctx);
    let claim_id = claim.claim_id;
    let mut events = Vec::new();
    if ctx.now < due_at {
        return events;
    }
    match kind {
        DeadlineKind::Review => {
            if claim.status.is_open() && claim.review_due_at == Some(due_at) && !claim.overdue {
                events.push(
                    d.event(EventData::ReviewDeadlineMissed(ReviewDeadlineMissed {
                        claim_id,
                        review_due_at: due_at,
                    })),
                );
            }
        }
        DeadlineKind::PartnerResponse => {
            if claim.partner_response_due_at() == Some(due_at) {
                events.push(
                    d.event(EventData::PartnerResponseMissed(PartnerResponseMissed {
                        claim_id,
                        partner_response_due_at: due_at,
                    })),
                );
                if claim.status == ClaimStatus::PartnerActionRequired {
                    events.push(Event {
                        actor: Actor::service(),
                        data: EventData::Rejected(Rejected {
                            claim_id,
                            reason: reason::NO_PARTNER_RESPONSE.to_string(),
                            text: None,
                        }),
                    });
                    events.extend(cases_closing(state, &[claim_id]));
                }
            }
        }
    }
    events
}

/// Contract §3, `request_poe`: allowed in `submitted` and `under_review`,
/// and on an approved claim that is the incumbent of an open case.
fn poe_may_be_requested(state: &State, claim: &Claim) -> bool {
    let incumbent_of_open_case = claim.status == ClaimStatus::Approved
        && claim
            .arbitration_case_id()
            .and_then(|id| state.cases.get(&id))
            .is_some_and(|case| {
                case.status == crate::types::CaseStatus::Open
                    && case.incumbent_claim_id == Some(claim.claim_id)
            });
    matches!(
        claim.status,
        ClaimStatus::Submitted | ClaimStatus::UnderReview
    ) || incumbent_of_open_case
}

/// Contract §3, `dispute`: a rejected claim, within `DISPUTE_WINDOW_DAYS`
/// of its rejection, whose partner does not hold the key again meanwhile.
fn check_dispute(state: &State, claim: &Claim, now: Timestamp) -> Result<(), Rejection> {
    if claim.status != ClaimStatus::Rejected {
        return Err(invalid_transition(claim, "disputed"));
    }
    let rejected_at = claim
        .rejected_at()
        .or(claim.decided_at)
        .unwrap_or(claim.updated_at);
    if now - rejected_at > chrono::Duration::days(DISPUTE_WINDOW_DAYS) {
        return Err(Rejection::new(ErrorCode::DisputeWindowClosed));
    }
    if partner_holds_key(state, &claim.partner_id, &claim.key(), Some(claim.claim_id)) {
        return Err(Rejection::new(ErrorCode::SubscriptionAlreadyClaimed));
    }
    Ok(())
}

/// Does this partner already hold the key with an open or approved claim
/// (other than `except`)?
fn partner_holds_key(
    state: &State,
    partner_id: &str,
    key: &ClaimKey,
    except: Option<Uuid>,
) -> bool {
    state
        .claims_on_key(key)
        .any(|c| Some(c.claim_id) != except && c.partner_id == partner_id && c.is_contender())
}

/// The checks of a submission against reference data (tenant and domain,
/// activity, partner and MPN), each failing one adding its code. Also
/// whether the MPN is enrolled, when it is the partner's.
fn reference_checks(
    state: &State,
    submit: &SubmitClaim,
    partner_id: &str,
) -> (Vec<ErrorCode>, Option<bool>) {
    let mut reasons = Vec::new();
    match state.tenants.get(&submit.tenant_id) {
        None => reasons.push(ErrorCode::TenantUnknown),
        Some(tenant) => {
            // Compared as DNS names (UTS 46, case-insensitive, root dot ignored).
            let domain = crate::dns::domain_key_lenient(&submit.domain);
            if !tenant.domains.contains(&domain) {
                reasons.push(ErrorCode::DomainTenantMismatch);
            }
        }
    }
    if !submit.solution_area.allows(submit.activity) {
        reasons.push(ErrorCode::ActivityNotAllowed);
    }
    let mut mpn_enrolled = None;
    match state.partners.get(partner_id) {
        None => reasons.push(ErrorCode::PartnerUnknown),
        Some(partner) => match partner.mpns.iter().find(|m| m.mpn_id == submit.mpn_id) {
            None => reasons.push(ErrorCode::MpnNotOwned),
            Some(mpn) => mpn_enrolled = Some(mpn.incentive_enrolled),
        },
    }
    (reasons, mpn_enrolled)
}

/// The subscriptions a submission covers (contract §3, `subscription_id`),
/// adding the codes of the checks that fail to `reasons`; with the message
/// to give when a claim would cover more than one claim may.
fn covered_subscriptions(
    state: &State,
    submit: &SubmitClaim,
    reasons: &mut Vec<ErrorCode>,
) -> (Vec<Uuid>, Option<String>) {
    let mut message = None;
    let subscription_ids = match subscription_checks(state, submit) {
        // Only a log written before the limit on subscriptions per tenant
        // and product gets here; the event must stay publishable.
        Ok(ids) if ids.len() > SUBSCRIPTIONS_PER_CLAIM_MAX => {
            reasons.push(ErrorCode::InvalidCommand);
            message = Some(format!(
                "subscription_id: the tenant has {} usable subscriptions of this product, \
                 more than one claim may cover ({SUBSCRIPTIONS_PER_CLAIM_MAX}); \
                 name the subscription you worked on",
                ids.len()
            ));
            Vec::new()
        }
        Ok(ids) => ids,
        Err(found) => {
            reasons.extend(found);
            Vec::new()
        }
    };
    (subscription_ids, message)
}

/// The claim a submission creates, before any event is folded: what the
/// competition check compares with the key's other claims.
fn claim_as_submitted(
    state: &State,
    submit: &SubmitClaim,
    partner_id: String,
    now: Timestamp,
) -> Claim {
    Claim {
        claim_id: submit.claim_id,
        tenant_id: submit.tenant_id,
        seq: state.claim_count + 1,
        version: 1,
        partner_id: Name::new(&partner_id),
        mpn_id: Name::new(&submit.mpn_id),
        product: Name::new(&submit.product),
        subscription_ids: SubscriptionIds::new(),
        solution_area: submit.solution_area,
        activity: submit.activity,
        status: ClaimStatus::Submitted,
        incentive_eligible: false,
        disputed: false,
        overdue: false,
        submitted_at: now,
        updated_at: now,
        review_due_at: None,
        decided_at: None,
        extra: None,
    }
}

fn submit_claim(
    state: &State,
    envelope: &CommandEnvelope,
    submit: &SubmitClaim,
    ctx: &Context<'_>,
) -> Result<Decision, Rejection> {
    let partner_id = envelope
        .actor
        .partner_with_allowed_role()
        .expect("authorize lets only partners with a role submit")
        .to_string();
    if state.claims.contains_key(&submit.claim_id) {
        return Err(Rejection::new(ErrorCode::ClaimExists));
    }
    let (mut reasons, mpn_enrolled) = reference_checks(state, submit, &partner_id);
    let (subscription_ids, message) = covered_subscriptions(state, submit, &mut reasons);
    let key = ClaimKey {
        tenant_id: submit.tenant_id,
        product: submit.product.clone(),
        activity: submit.activity,
    };
    if partner_holds_key(state, &partner_id, &key, None) {
        reasons.push(ErrorCode::SubscriptionAlreadyClaimed);
    }
    if !reasons.is_empty() {
        let mut rejection = Rejection::from_reasons(reasons);
        if let Some(message) = message.filter(|_| rejection.code == ErrorCode::InvalidCommand) {
            rejection.message = message;
        }
        return Err(rejection);
    }

    let enrolled = mpn_enrolled.unwrap_or(false);
    let mut warnings = Vec::new();
    if !enrolled {
        warnings.push("MPN_NOT_ENROLLED".to_string());
    }
    let submitted = EventData::ClaimSubmitted(ClaimSubmitted {
        claim_id: submit.claim_id,
        partner_id: partner_id.clone(),
        mpn_id: submit.mpn_id.clone(),
        tenant_id: submit.tenant_id,
        domain: submit.domain.clone(),
        solution_area: submit.solution_area,
        activity: submit.activity,
        product: submit.product.clone(),
        subscription_ids,
        // Revenue association is for revenue recognition only, never incentives.
        incentive_eligible: enrolled
            && submit.activity != crate::types::Activity::RevenueAssociation,
        proof_of_execution: submit.proof_of_execution.clone(),
        note: submit.note.clone(),
        review_due_at: ctx.calendar.deadline_after(ctx.now),
    });
    let mut events = vec![Event {
        actor: envelope.actor.clone(),
        data: submitted,
    }];
    // The competition check looks at the claim as it will be once written.
    let new_claim = claim_as_submitted(state, submit, partner_id, ctx.now);
    events.extend(competition(state, &new_claim, envelope.command_id));
    Ok(Decision {
        events,
        claim_id: Some(submit.claim_id),
        warnings,
    })
}

/// The subscription rules of a submit: the covered subscription ids, or every
/// reason none can be covered.
fn subscription_checks(state: &State, submit: &SubmitClaim) -> Result<Vec<Uuid>, Vec<ErrorCode>> {
    let of_product_on_tenant = || {
        state
            .subscriptions_of(submit.tenant_id, &submit.product)
            .collect::<Vec<_>>()
    };
    match submit.solution_area {
        SolutionArea::Microsoft365 => {
            if submit.subscription_id.is_some() {
                return Err(vec![ErrorCode::InvalidCommand]);
            }
            microsoft_365_checks(of_product_on_tenant())
        }
        SolutionArea::BusinessApplications => match &submit.subscription_id {
            Some(text) => {
                let Some(id) = crate::types::parse_uuid(text.trim()) else {
                    return Err(vec![ErrorCode::NotASubscriptionId]);
                };
                let Some(entry) = state.subscriptions.get(&id) else {
                    return Err(vec![ErrorCode::SubscriptionUnknown]);
                };
                let reasons = dynamics_subscription_reasons(&entry.record, submit);
                if reasons.is_empty() {
                    Ok(vec![id])
                } else {
                    Err(reasons)
                }
            }
            None => dynamics_checks_of_all(of_product_on_tenant(), submit),
        },
    }
}

/// Contract §1, `microsoft_365`: the tenant must have a subscription of the
/// product, any channel, active or in grace; the claim covers none by id.
fn microsoft_365_checks(mut subs: Vec<&SubscriptionRecord>) -> Result<Vec<Uuid>, Vec<ErrorCode>> {
    // Only the tenant's Microsoft 365 subscriptions back such a claim:
    // naming a Dynamics product here must not skip the Dynamics rules.
    subs.retain(|s| s.solution_area == SolutionArea::Microsoft365);
    if subs.is_empty() {
        return Err(vec![ErrorCode::ProductNotOnTenant]);
    }
    if subs.iter().any(|s| s.state.is_live()) {
        return Ok(Vec::new());
    }
    let mut reasons = Vec::new();
    if subs
        .iter()
        .any(|s| s.state == SubscriptionState::PendingProvisioning)
    {
        reasons.push(ErrorCode::SubscriptionNotProvisioned);
    }
    if subs.iter().any(|s| {
        matches!(
            s.state,
            SubscriptionState::Expired | SubscriptionState::Disabled
        )
    }) {
        reasons.push(ErrorCode::SubscriptionNotActive);
    }
    Err(reasons)
}

/// Contract §3, `subscription_id` absent: every subscription of the product
/// on the tenant is checked; the claim covers those that pass every check,
/// and when none passes, the reasons of all of them are given.
fn dynamics_checks_of_all(
    subs: Vec<&SubscriptionRecord>,
    submit: &SubmitClaim,
) -> Result<Vec<Uuid>, Vec<ErrorCode>> {
    if subs.is_empty() {
        return Err(vec![ErrorCode::ProductNotOnTenant]);
    }
    let mut covered = Vec::new();
    let mut reasons = Vec::new();
    for sub in subs {
        let found = dynamics_subscription_reasons(sub, submit);
        if found.is_empty() {
            covered.push(sub.subscription_id);
        }
        reasons.extend(found);
    }
    if covered.is_empty() {
        Err(reasons)
    } else {
        covered.sort();
        Ok(covered)
    }
}

/// Why one subscription cannot back a Business Applications claim.
fn dynamics_subscription_reasons(sub: &SubscriptionRecord, submit: &SubmitClaim) -> Vec<ErrorCode> {
    if sub.tenant_id != submit.tenant_id || sub.product != submit.product {
        return vec![ErrorCode::ProductNotOnTenant];
    }
    let mut reasons = Vec::new();
    if !sub.is_dynamics {
        reasons.push(ErrorCode::SubscriptionNotDynamics);
    }
    if sub.channel == Channel::Csp {
        reasons.push(ErrorCode::SubscriptionIsCsp);
    }
    match sub.state {
        SubscriptionState::PendingProvisioning => {
            reasons.push(ErrorCode::SubscriptionNotProvisioned)
        }
        SubscriptionState::Expired | SubscriptionState::Disabled => {
            reasons.push(ErrorCode::SubscriptionNotActive)
        }
        SubscriptionState::Active | SubscriptionState::InGrace => {}
    }
    reasons
}

/// A claim entering the competition (a submit or a dispute): opens a case
/// over every contender of its key, or joins the open one, and tells each
/// claim that enters in a system comment.
fn competition(state: &State, claim: &Claim, command_id: Uuid) -> Vec<Event> {
    let service = |data: EventData| Event {
        actor: Actor::service(),
        data,
    };
    let key = claim.key();
    let others: Vec<&Claim> = state
        .claims_on_key(&key)
        .filter(|c| {
            c.claim_id != claim.claim_id && c.partner_id != claim.partner_id && c.is_contender()
        })
        .collect();
    if others.is_empty() {
        return Vec::new();
    }
    let notice = |claim_id: Uuid| {
        service(EventData::CommentAdded(CommentAdded {
            claim_id,
            text: ARBITRATION_NOTICE.to_string(),
            system: true,
        }))
    };
    if let Some(case_id) = state.open_case_of(&key) {
        return vec![
            service(EventData::ArbitrationClaimJoined(ArbitrationClaimJoined {
                case_id,
                claim_id: claim.claim_id,
            })),
            notice(claim.claim_id),
        ];
    }
    // A fresh case id derived from the command that opens it: deterministic
    // (a replay of the same decision gives the same id) and unique (one
    // command opens at most one case).
    let case_id = Uuid::new_v5(&command_id, claim.claim_id.as_bytes());
    let mut claim_ids: Vec<Uuid> = others.iter().map(|c| c.claim_id).collect();
    claim_ids.push(claim.claim_id);
    let incumbent_claim_id = others
        .iter()
        .find(|c| c.status == ClaimStatus::Approved)
        .map(|c| c.claim_id);
    let mut events = vec![service(EventData::ArbitrationOpened(ArbitrationOpened {
        case_id,
        tenant_id: key.tenant_id,
        product: key.product.clone(),
        activity: key.activity,
        claim_ids: claim_ids.clone(),
        incumbent_claim_id,
    }))];
    events.extend(claim_ids.into_iter().map(notice));
    events
}

/// Approving one contender decides the competition: every other open claim
/// on the key loses, the incumbent is superseded, the case is resolved.
fn approval_consequences(state: &State, winner: &Claim) -> Vec<Event> {
    let service = |data: EventData| Event {
        actor: Actor::service(),
        data,
    };
    let mut events = Vec::new();
    let key = winner.key();
    let open_case = state.open_case_of(&key);
    // Every other contender on the key, in the case or not: there is one
    // partner of record per key, so no other approved claim may survive.
    for other in state.claims_on_key(&key) {
        if other.claim_id == winner.claim_id || !other.is_contender() {
            continue;
        }
        let in_case = open_case.is_some() && other.arbitration_case_id() == open_case;
        if other.status == ClaimStatus::Approved {
            events.push(service(EventData::AssociationEnded(AssociationEnded {
                claim_id: other.claim_id,
                reason: reason::SUPERSEDED.to_string(),
                text: None,
            })));
        } else if in_case {
            events.push(service(EventData::Rejected(Rejected {
                claim_id: other.claim_id,
                reason: reason::LOST_ARBITRATION.to_string(),
                text: None,
            })));
        }
    }
    if let Some(case_id) = open_case {
        events.push(service(EventData::ArbitrationResolved(
            ArbitrationResolved {
                case_id,
                winner_claim_id: winner.claim_id,
            },
        )));
    }
    events
}

/// When claims leave their cases (rejected, withdrawn, ended) and fewer
/// than two contenders remain in a case, it closes without a winner.
fn cases_closing(state: &State, leaving: &[Uuid]) -> Vec<Event> {
    let mut case_ids: Vec<Uuid> = leaving
        .iter()
        .filter_map(|id| state.claims.get(id))
        .filter_map(Claim::arbitration_case_id)
        .collect();
    case_ids.dedup();
    let mut events = Vec::new();
    for case_id in case_ids {
        let Some(case) = state.cases.get(&case_id) else {
            continue;
        };
        if case.status != crate::types::CaseStatus::Open {
            continue;
        }
        let remaining = state
            .contenders(case)
            .into_iter()
            .filter(|id| !leaving.contains(id))
            .count();
        let already = events.iter().any(
            |e: &Event| matches!(&e.data, EventData::ArbitrationClosed(c) if c.case_id == case_id),
        );
        if remaining < 2 && !already {
            events.push(Event {
                actor: Actor::service(),
                data: EventData::ArbitrationClosed(ArbitrationClosed { case_id }),
            });
        }
    }
    events
}

/// A subscription upsert, and the ends of approved associations it causes:
/// an approved claim ends when none of its subscriptions (for Microsoft 365:
/// none of the tenant's subscriptions of its product) is active or in grace.
/// A tenant holds at most [`SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX`]
/// subscriptions of one product: an upsert that would add one more is
/// refused (an update of one it holds is not).
///
/// [`SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX`]: crate::limits::SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX
fn check_subscription_limit(state: &State, record: &SubscriptionRecord) -> Result<(), Rejection> {
    use crate::limits::SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX as MAX;
    let (mut count, mut already) = (0, false);
    for id in state.subscription_ids_of(record.tenant_id, &record.product) {
        count += 1;
        already |= id == record.subscription_id;
    }
    if already || count < MAX {
        return Ok(());
    }
    Err(Rejection::with_message(
        ErrorCode::InvalidCommand,
        format!(
            "subscription_id: tenant {} already has {count} subscriptions of product {}, \
             the most one tenant may hold of one product ({MAX})",
            record.tenant_id, record.product
        ),
    ))
}

fn upsert_subscription(state: &State, actor: &Actor, record: &SubscriptionRecord) -> Vec<Event> {
    let mut events = vec![Event {
        actor: actor.clone(),
        data: EventData::SubscriptionUpserted(record.clone()),
    }];
    if record.state.is_live() {
        return events;
    }
    let live = |id: &Uuid| -> bool {
        if *id == record.subscription_id {
            return record.state.is_live();
        }
        state
            .subscriptions
            .get(id)
            .is_some_and(|s| s.record.state.is_live())
    };
    let mut ending = Vec::new();
    for activity in crate::types::Activity::ALL {
        let key = ClaimKey {
            tenant_id: record.tenant_id,
            product: record.product.clone(),
            activity,
        };
        for claim in state.claims_on_key(&key) {
            if claim.status != ClaimStatus::Approved {
                continue;
            }
            let still_backed = match claim.solution_area {
                SolutionArea::BusinessApplications => {
                    if !claim.subscription_ids.contains(&record.subscription_id) {
                        continue;
                    }
                    claim.subscription_ids.iter().any(live)
                }
                SolutionArea::Microsoft365 => state
                    .subscriptions_of(claim.tenant_id, &claim.product)
                    .filter(|s| s.solution_area == SolutionArea::Microsoft365)
                    .map(|s| s.subscription_id)
                    .any(|id| live(&id)),
            };
            if !still_backed {
                ending.push(claim.claim_id);
            }
        }
    }
    for claim_id in &ending {
        events.push(Event {
            actor: Actor::service(),
            data: EventData::AssociationEnded(AssociationEnded {
                claim_id: *claim_id,
                reason: reason::SUBSCRIPTION_ENDED.to_string(),
                text: None,
            }),
        });
    }
    events.extend(cases_closing(state, &ending));
    events
}
