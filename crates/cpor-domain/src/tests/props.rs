//! Property tests: random sequences of commands, valid and invalid, from
//! random actors, on random claims, with a clock that jumps and a scheduler
//! that fires what is due. After every step:
//!
//! - a refusal is well formed and changes nothing;
//! - every status change of every claim follows the contract's diagram, and
//!   is made by the event that names it;
//! - the state keeps [`invariant_violations`]'s invariants (at most one
//!   approved claim per key, deadlines exactly as the contract says, a key is
//!   in arbitration iff two partners contend for it, ...);
//! - deciding is deterministic;
//!
//! and at the end, folding the log from scratch gives the live state.

use chrono::Duration;
use proptest::prelude::*;
use uuid::Uuid;

use super::harness::*;
use crate::command::{Command, CommandEnvelope, SubmitClaim};
use crate::event::Event;
use crate::state::State;
use crate::types::{
    Activity, Actor, Channel, ClaimStatus, DeadlineKind, SolutionArea, SubscriptionState,
};

const PARTNERS: [&str; 4] = ["P-100", "P-200", "P-300", "P-999"];
const ROLES: [&[&str]; 5] = [
    &["incentives_admin"],
    &["global_admin"],
    &["billing_admin"],
    &[],
    &["sales_agent"],
];
/// Products a claim may name; the sales key is the busy one.
const PRODUCTS: [&str; 8] = [
    "dynamics_365_sales",
    "dynamics_365_sales",
    "dynamics_365_sales",
    "dynamics_365_customer_service",
    "microsoft_365_e5",
    "dynamics_365_finance",
    "dynamics_365_field_service",
    "dynamics_365_human_resources",
];
/// Subscriptions an upstream upsert may change: (name, product, channel).
const SUBSCRIPTIONS: [(&str, &str, Channel); 4] = [
    ("s_sales", "dynamics_365_sales", Channel::VolumeLicensing),
    ("s_sales_2", "dynamics_365_sales", Channel::WebDirect),
    (
        "s_cs_grace",
        "dynamics_365_customer_service",
        Channel::WebDirect,
    ),
    ("s_m365", "microsoft_365_e5", Channel::Csp),
];
const STATES: [SubscriptionState; 5] = [
    SubscriptionState::Active,
    SubscriptionState::InGrace,
    SubscriptionState::PendingProvisioning,
    SubscriptionState::Expired,
    SubscriptionState::Disabled,
];

#[derive(Debug, Clone)]
enum Op {
    Submit {
        partner: usize,
        /// `None`: a fresh claim id; `Some(i)`: one already used.
        reuse: Option<usize>,
        product: usize,
        activity: usize,
        /// 0: the partner's enrolled MPN, 1: P-100's unenrolled one, 2: not owned.
        mpn: usize,
        by_subscription: bool,
    },
    Partner {
        /// `None`: the claim's own partner.
        partner: Option<usize>,
        roles: usize,
        claim: usize,
        action: usize,
        version: Option<i64>,
    },
    Review {
        claim: usize,
        action: usize,
        version: Option<i64>,
    },
    Customer {
        tenant: usize,
        claim: usize,
    },
    Subscription {
        subscription: usize,
        state: usize,
    },
    /// The clock moves on and the scheduler fires what is due.
    Advance {
        hours: i64,
    },
    /// A deadline command that may be early, late or for a due time the
    /// claim does not have.
    Deadline {
        claim: usize,
        review: bool,
        days: i64,
    },
}

fn version_offset() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![6 => Just(None), 2 => Just(Some(0)), 1 => (-2i64..3).prop_map(Some)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (
            0..PARTNERS.len(),
            prop::option::weighted(0.1, 0..8usize),
            0..PRODUCTS.len(),
            prop_oneof![3 => Just(0usize), 1 => Just(1), 1 => Just(2)],
            prop_oneof![6 => Just(0usize), 1 => Just(1), 1 => Just(2)],
            any::<bool>(),
        )
            .prop_map(|(partner, reuse, product, activity, mpn, by_subscription)| Op::Submit {
                partner,
                reuse,
                product,
                activity,
                mpn,
                by_subscription,
            }),
        5 => (prop::option::weighted(0.25, 0..PARTNERS.len()), prop_oneof![8 => Just(0usize), 1 => 0..ROLES.len()], 0..16usize, 0..5usize, version_offset())
            .prop_map(|(partner, roles, claim, action, version)| Op::Partner { partner, roles, claim, action, version }),
        7 => (0..16usize, 0..5usize, version_offset())
            .prop_map(|(claim, action, version)| Op::Review { claim, action, version }),
        1 => (0..2usize, 0..16usize).prop_map(|(tenant, claim)| Op::Customer { tenant, claim }),
        1 => (0..SUBSCRIPTIONS.len(), 0..STATES.len())
            .prop_map(|(subscription, state)| Op::Subscription { subscription, state }),
        3 => prop_oneof![4 => 0i64..48, 3 => 0i64..240, 1 => Just(31 * 24)].prop_map(|hours| Op::Advance { hours }),
        1 => (0..16usize, any::<bool>(), -3i64..4).prop_map(|(claim, review, days)| Op::Deadline { claim, review, days }),
    ]
}

/// Claims in submission order; an index past the end is an unknown id.
fn pick(state: &State, index: usize) -> Uuid {
    let mut claims: Vec<_> = state.claims.values().collect();
    claims.sort_by_key(|c| c.seq);
    let n = claims.len() + 1;
    claims
        .get(index % n)
        .map_or(uid("no-such-claim"), |c| c.claim_id)
}

/// The command an op stands for, or `None` when it only moves the clock.
fn command_of(world: &World, op: &Op, fresh: &mut u64) -> Option<(Actor, Command, Option<u64>)> {
    let state = &world.state;
    let versioned = |claim_id: Uuid, offset: Option<i64>| -> Option<u64> {
        let current = state.claims.get(&claim_id).map_or(1, |c| c.version) as i64;
        offset.map(|o| (current + o).max(0) as u64)
    };
    match op {
        Op::Submit {
            partner: p,
            reuse,
            product,
            activity,
            mpn,
            by_subscription,
        } => {
            let partner_id = PARTNERS[*p];
            let product = PRODUCTS[*product];
            let claim_id = match reuse {
                Some(i) if !state.claims.is_empty() => pick(state, *i % state.claims.len()),
                _ => {
                    *fresh += 1;
                    uid(&format!("claim-{fresh}"))
                }
            };
            let solution_area = if product.starts_with("microsoft_365") {
                SolutionArea::Microsoft365
            } else {
                SolutionArea::BusinessApplications
            };
            let subscription_id = (*by_subscription
                && solution_area == SolutionArea::BusinessApplications)
                .then(|| {
                    SUBSCRIPTIONS
                        .iter()
                        .find(|s| s.1 == product)
                        .map_or("s_powerbi", |s| s.0)
                })
                .map(|name| uid(name).to_string());
            let submit = SubmitClaim {
                claim_id,
                solution_area,
                activity: [
                    Activity::Usage,
                    Activity::Presales,
                    Activity::RevenueAssociation,
                ][*activity],
                product: product.to_string(),
                subscription_id,
                mpn_id: ["", "4412002", "0000000"][*mpn].to_string(),
                ..sales_claim("unused", partner_id)
            };
            let submit = if submit.mpn_id.is_empty() {
                SubmitClaim {
                    mpn_id: mpn_of(partner_id).to_string(),
                    ..submit
                }
            } else {
                submit
            };
            Some((partner(partner_id), Command::Submit(submit), None))
        }
        Op::Partner {
            partner: p,
            roles,
            claim,
            action,
            version,
        } => {
            let claim_id = pick(state, *claim);
            let partner_id = match p {
                Some(p) => PARTNERS[*p],
                None => state
                    .claims
                    .get(&claim_id)
                    .map_or("P-100", |c| c.partner_id.as_str()),
            };
            let command = match action {
                0 => cmd::comment(claim_id),
                1 => cmd::submit_poe(claim_id),
                2 => cmd::withdraw(claim_id),
                3 => cmd::dispute(claim_id),
                _ => cmd::disassociate(claim_id),
            };
            Some((
                partner_with_roles(partner_id, ROLES[*roles]),
                command,
                versioned(claim_id, *version),
            ))
        }
        Op::Review {
            claim,
            action,
            version,
        } => {
            let claim_id = pick(state, *claim);
            let command = match action {
                0 => cmd::start(claim_id),
                1 => cmd::comment(claim_id),
                2 => cmd::request_poe(claim_id),
                3 => cmd::approve(claim_id),
                _ => cmd::reject(claim_id),
            };
            Some((reviewer(), command, versioned(claim_id, *version)))
        }
        Op::Customer { tenant, claim } => Some((
            customer(["t1", "t2"][*tenant]),
            cmd::decline(pick(state, *claim)),
            None,
        )),
        Op::Subscription {
            subscription: s,
            state: st,
        } => {
            let (name, product, channel) = SUBSCRIPTIONS[*s];
            let dynamics = !product.starts_with("microsoft_365");
            Some((
                system(),
                Command::UpsertSubscription(subscription(
                    name,
                    "t1",
                    product,
                    dynamics,
                    channel,
                    STATES[*st],
                )),
                None,
            ))
        }
        Op::Advance { .. } => None,
        Op::Deadline {
            claim,
            review,
            days,
        } => {
            let claim_id = pick(state, *claim);
            let kind = if *review {
                DeadlineKind::Review
            } else {
                DeadlineKind::PartnerResponse
            };
            let known = state.claims.get(&claim_id).and_then(|c| match kind {
                DeadlineKind::Review => c.review_due_at,
                DeadlineKind::PartnerResponse => c.partner_response_due_at(),
            });
            let due_at = known.unwrap_or(world.now) + Duration::days(*days);
            Some((scheduler(), cmd::deadline(claim_id, kind, due_at), None))
        }
    }
}

/// The contract's status diagram, one event at a time.
fn transition_allowed(before: Option<ClaimStatus>, after: ClaimStatus) -> bool {
    use ClaimStatus::*;
    match (before, after) {
        (None, Submitted) => true,
        (None, _) => false,
        (Some(b), a) if b == a => true,
        (Some(Submitted), UnderReview) => true,
        (Some(UnderReview), PartnerActionRequired | Approved) => true,
        (Some(PartnerActionRequired), UnderReview) => true,
        (Some(b), Rejected | Withdrawn) => b.is_open(),
        (Some(Approved), Ended) => true,
        (Some(Rejected), Submitted) => true,
        _ => false,
    }
}

/// The status an event names, for events that change a claim's status.
fn status_named_by(name: &str) -> Option<ClaimStatus> {
    match name {
        "submitted" | "disputed" => Some(ClaimStatus::Submitted),
        "approved" => Some(ClaimStatus::Approved),
        "rejected" => Some(ClaimStatus::Rejected),
        "withdrawn" => Some(ClaimStatus::Withdrawn),
        "association_ended" => Some(ClaimStatus::Ended),
        _ => None,
    }
}

/// Decides one envelope and, when accepted, checks each event's effect on
/// its claim before applying the batch to the world.
fn step(world: &mut World, envelope: &CommandEnvelope) -> Result<Vec<Event>, TestCaseError> {
    let before = world.state.clone();
    let result = world.decide(envelope);
    prop_assert_eq!(
        &world.decide(envelope),
        &result,
        "deciding is deterministic"
    );
    prop_assert_eq!(&world.state, &before);
    let decision = match result {
        Err(rejection) => {
            assert_well_formed(&rejection);
            return Ok(Vec::new());
        }
        Ok(decision) => decision,
    };
    if let Some(claim_id) = envelope.command.existing_claim_id() {
        prop_assert_eq!(decision.claim_id, Some(claim_id));
    }
    if !matches!(envelope.command, Command::Submit(_)) {
        prop_assert!(decision.warnings.is_empty());
    }
    let mut scratch = world.state.clone();
    for event in &decision.events {
        let claim_id = event.data.claim_id();
        let status_before = claim_id
            .and_then(|id| scratch.claims.get(&id))
            .map(|c| c.status);
        scratch
            .evolve(event, world.now)
            .map_err(|e| TestCaseError::fail(format!("evolve refused {event:?}: {e}")))?;
        if let Some(claim_id) = claim_id {
            let after = scratch.claims[&claim_id].status;
            prop_assert!(
                transition_allowed(status_before, after),
                "{:?} -> {:?} by {}",
                status_before,
                after,
                event.data.name()
            );
            match status_named_by(event.data.name()) {
                Some(named) => prop_assert_eq!(after, named),
                None => prop_assert!(
                    status_before == Some(after)
                        || matches!(
                            (event.data.name(), after),
                            ("review_started" | "poe_submitted", ClaimStatus::UnderReview)
                                | ("poe_requested", ClaimStatus::PartnerActionRequired)
                        ),
                    "{} moved {:?} to {:?}",
                    event.data.name(),
                    status_before,
                    after
                ),
            }
        }
    }
    // World::apply checks versions and the invariants after the batch.
    world.apply(&decision.events);
    Ok(decision.events)
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut world = World::standard();
    let mut fresh = 0;
    for op in ops {
        if let Op::Advance { hours } = op {
            world.advance(Duration::hours(*hours));
            // The scheduler fires every due deadline, earliest first.
            while let Some((due_at, claim_id, kind)) = world.state.next_deadline() {
                if due_at > world.now {
                    break;
                }
                let envelope =
                    world.envelope(scheduler(), cmd::deadline(claim_id, kind, due_at), None);
                let events = step(&mut world, &envelope)?;
                prop_assert!(
                    !events.is_empty(),
                    "a watched deadline that is due writes something"
                );
                prop_assert!(!world.state.deadlines.contains(&(due_at, claim_id, kind)));
            }
            continue;
        }
        let Some((actor, command, expected_version)) = command_of(&world, op, &mut fresh) else {
            continue;
        };
        let envelope = world.envelope(actor, command, expected_version);
        step(&mut world, &envelope)?;
    }
    prop_assert_eq!(
        world.replay(),
        world.state.clone(),
        "replaying the log gives the live state"
    );
    Ok(())
}

// 256 cases by default; `PROPTEST_CASES=20000` for a longer hunt.
proptest! {
    #[test]
    fn random_histories_keep_the_contracts_invariants(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops)?;
    }
}

/// The generator reaches every status and both kinds of case outcome; a
/// property test whose inputs never get there proves little.
#[test]
fn the_generator_reaches_every_status_and_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut statuses = std::collections::BTreeSet::new();
    let mut events = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let ops = prop::collection::vec(op(), 40..80)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let mut world = World::standard();
        let mut fresh = 0;
        for op in &ops {
            if let Op::Advance { hours } = op {
                world.advance(Duration::hours(*hours));
                for name in world.fire_due() {
                    events.insert(name);
                }
                continue;
            }
            if let Some((actor, command, version)) = command_of(&world, op, &mut fresh) {
                let envelope = world.envelope(actor, command, version);
                if let Ok(decision) = world.decide(&envelope) {
                    events.extend(names(&decision.events));
                    world.apply(&decision.events);
                }
            }
        }
        statuses.extend(
            world
                .log
                .iter()
                .filter_map(|(e, _)| e.data.claim_id())
                .filter_map(|id| world.state.claims.get(&id).map(|c| c.status)),
        );
    }
    assert_eq!(statuses.len(), 7, "statuses reached: {statuses:?}");
    for name in [
        "arbitration.opened",
        "arbitration.claim_joined",
        "arbitration.resolved",
        "arbitration.closed",
        "claim.review_deadline_missed",
        "claim.partner_response_missed",
        "claim.disputed",
        "claim.association_ended",
    ] {
        assert!(
            events.contains(name),
            "{name} never happens; reached: {events:?}"
        );
    }
}
