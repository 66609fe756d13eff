//! Contract §1 and §3 `dispute`: a rejected claim may be disputed within 30
//! days of its rejection, whatever the reason.

use chrono::Duration;

use super::harness::*;
use crate::error::ErrorCode::*;
use crate::event::{Disputed, EventData};
use crate::types::{ClaimStatus, DeadlineKind};

const REJECTED_AT: &str = "2026-11-26T10:00:00Z";

fn rejected_c1() -> World {
    let mut w = World::standard();
    w.sales("P-100", "c1");
    w.at(REJECTED_AT);
    w.review(cmd::reject(uid("c1")));
    w
}

#[test]
fn a_dispute_within_the_window_resubmits_the_claim() {
    let world = Given::from(rejected_c1())
        .at("2026-12-07T15:00:00Z") // Monday
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .then_data(&[EventData::Disputed(Disputed {
            claim_id: uid("c1"),
            text: "We did the deployment; see the statement of work.".to_string(),
            proof_of_execution: Vec::new(),
            review_due_at: time("2026-12-15T00:00:00Z"),
        })])
        .then_actors(&[partner("P-100")])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Submitted);
    assert!(claim.disputed);
    assert_eq!((claim.reason(), claim.decided_at), (None, None));
    assert_eq!(claim.review_due_at, Some(time("2026-12-15T00:00:00Z")));
    assert!(!claim.overdue);
    assert_eq!(
        world.state.deadlines.iter().copied().collect::<Vec<_>>(),
        [(
            time("2026-12-15T00:00:00Z"),
            uid("c1"),
            DeadlineKind::Review
        )]
    );
    // The disputed claim is reviewed like a new one.
    Given::from(world)
        .when(reviewer(), cmd::approve(uid("c1")))
        .then_events(&["claim.review_started", "claim.approved"]);
}

/// "Within 30 days": 30 days to the second after the rejection is still in.
#[test]
fn the_window_is_thirty_days_from_the_rejection() {
    let rejected_at = time(REJECTED_AT);
    let cases = [
        (Duration::zero(), true),
        (Duration::days(29), true),
        (Duration::days(30), true),
        (Duration::days(30) + Duration::seconds(1), false),
        (Duration::days(45), false),
    ];
    for (after, accepted) in cases {
        let mut world = rejected_c1();
        world.set_now(rejected_at + after);
        let then = Given::from(world).when(partner("P-100"), cmd::dispute(uid("c1")));
        if accepted {
            then.then_events(&["claim.disputed"]);
        } else {
            then.then_reasons(&[DisputeWindowClosed]);
        }
    }
}

#[test]
fn any_rejection_reason_can_be_disputed() {
    let histories: Vec<(&str, Step)> = vec![
        (
            "reviewer's reason",
            Box::new(|w| {
                w.sales_in("P-100", "c1", ClaimStatus::Rejected);
            }),
        ),
        (
            "LOST_ARBITRATION",
            Box::new(|w| {
                w.sales("P-100", "c1");
                w.sales("P-200", "c2");
                w.review(cmd::approve(uid("c2")));
            }),
        ),
        (
            "CUSTOMER_DECLINED",
            Box::new(|w| {
                w.sales("P-100", "c1");
                w.exec(customer("t1"), cmd::decline(uid("c1")));
            }),
        ),
        (
            "NO_PARTNER_RESPONSE",
            Box::new(|w| {
                w.sales_in("P-100", "c1", ClaimStatus::PartnerActionRequired);
                w.at("2026-12-03T00:00:00Z");
                w.fire_due();
            }),
        ),
    ];
    for (reason, build) in histories {
        let world = Given::standard()
            .history(|w| build(w))
            .when(partner("P-100"), cmd::dispute(uid("c1")))
            .applied();
        let claim = world.claim(uid("c1"));
        assert_eq!(
            (claim.status, claim.disputed),
            (ClaimStatus::Submitted, true),
            "{reason}"
        );
    }
}

#[test]
fn the_window_counts_from_the_latest_rejection() {
    let mut w = rejected_c1();
    w.advance(Duration::days(20));
    w.by("P-100", cmd::dispute(uid("c1")));
    w.advance(Duration::days(20));
    w.review(cmd::reject(uid("c1")));
    // 40 days after the first rejection, 0 after the second.
    w.advance(Duration::days(25));
    Given::from(w)
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .then_events(&["claim.disputed"]);
}

#[test]
fn only_a_rejected_claim_can_be_disputed_whatever_the_time() {
    for status in [
        ClaimStatus::Withdrawn,
        ClaimStatus::Ended,
        ClaimStatus::Approved,
        ClaimStatus::Submitted,
    ] {
        Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", status);
                w.advance(Duration::days(45));
            })
            .when(partner("P-100"), cmd::dispute(uid("c1")))
            .then_reasons(&[InvalidTransition]);
    }
}
