//! Contract §1 "Two deadlines" and §6: what the service writes when a
//! deadline passes, when it writes nothing, and which deadlines the
//! scheduler watches (`State.deadlines`, `Claim::watched_deadlines`) after
//! every step.

use chrono::Duration;

use super::harness::*;
use crate::calendar::Calendar;
use crate::event::{EventData, PartnerResponseMissed, Rejected, ReviewDeadlineMissed};
use crate::types::{Actor, ClaimStatus, DeadlineKind, Timestamp};

const DUE: &str = "2026-12-03T00:00:00Z";

fn review_missed(claim: &str) -> Then {
    Given::standard()
        .history(|w| {
            w.sales("P-100", claim);
        })
        .at(DUE)
        .when(
            scheduler(),
            cmd::deadline(uid(claim), DeadlineKind::Review, time(DUE)),
        )
}

#[test]
fn a_missed_review_deadline_makes_the_claim_overdue_and_keeps_it_open() {
    let world = review_missed("c1")
        .then_data(&[EventData::ReviewDeadlineMissed(ReviewDeadlineMissed {
            claim_id: uid("c1"),
            review_due_at: time(DUE),
        })])
        .then_actors(&[scheduler()])
        .applied();
    let claim = world.claim(uid("c1"));
    assert!(claim.overdue);
    assert_eq!(
        claim.review_due_at,
        Some(time(DUE)),
        "review_due_at stays set once missed"
    );
    assert_eq!(claim.status, ClaimStatus::Submitted, "the claim stays open");
    assert_eq!(claim.version, 2);
    assert_eq!(
        claim.watched_deadlines().count(),
        0,
        "a missed deadline is no longer watched"
    );
    assert!(world.state.deadlines.is_empty());
}

#[test]
fn the_next_reviewer_action_meets_a_missed_deadline_late() {
    for command in [
        cmd::comment(uid("c1")),
        cmd::start(uid("c1")),
        cmd::request_poe(uid("c1")),
    ] {
        let world = Given::from(review_missed("c1").applied())
            .at("2026-12-04T09:00:00Z")
            .when(reviewer(), command)
            .applied();
        let claim = world.claim(uid("c1"));
        assert!(!claim.overdue);
        assert_eq!(claim.review_due_at, None);
        assert_ne!(claim.status, ClaimStatus::Submitted);
    }
}

#[test]
fn a_deadline_that_has_not_passed_writes_nothing() {
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .at("2026-12-02T23:59:59Z")
        .when(
            scheduler(),
            cmd::deadline(uid("c1"), DeadlineKind::Review, time(DUE)),
        )
        .then_no_events();
}

#[test]
fn a_deadline_that_was_met_replaced_or_already_fired_writes_nothing() {
    let cases: Vec<(&str, Step, DeadlineKind, &str)> = vec![
        (
            "review met by start",
            Box::new(|w| {
                w.review(cmd::start(uid("c1")));
            }),
            DeadlineKind::Review,
            DUE,
        ),
        (
            "review already missed",
            Box::new(|w| {
                w.at(DUE);
                w.exec(
                    scheduler(),
                    cmd::deadline(uid("c1"), DeadlineKind::Review, time(DUE)),
                );
            }),
            DeadlineKind::Review,
            DUE,
        ),
        (
            "another due time than the claim's",
            Box::new(|_| {}),
            DeadlineKind::Review,
            "2026-12-01T00:00:00Z",
        ),
        (
            "no PoE was requested",
            Box::new(|_| {}),
            DeadlineKind::PartnerResponse,
            DUE,
        ),
        (
            "PoE answered",
            Box::new(|w| {
                w.review(cmd::request_poe(uid("c1")));
                w.by("P-100", cmd::submit_poe(uid("c1")));
            }),
            DeadlineKind::PartnerResponse,
            DUE,
        ),
        (
            "withdrawn",
            Box::new(|w| {
                w.by("P-100", cmd::withdraw(uid("c1")));
            }),
            DeadlineKind::Review,
            DUE,
        ),
        (
            "approved",
            Box::new(|w| {
                w.review(cmd::approve(uid("c1")));
            }),
            DeadlineKind::Review,
            DUE,
        ),
    ];
    for (what, build, kind, due) in cases {
        let then = Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
                build(w);
            })
            .at("2026-12-10T00:00:00Z")
            .when(scheduler(), cmd::deadline(uid("c1"), kind, time(due)));
        assert!(
            then.events().is_empty(),
            "{what}: {:?}",
            names(then.events())
        );
    }
}

#[test]
fn an_unanswered_poe_request_rejects_the_claim() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::PartnerActionRequired);
        })
        .at(DUE)
        .when(
            scheduler(),
            cmd::deadline(uid("c1"), DeadlineKind::PartnerResponse, time(DUE)),
        )
        .then_data(&[
            EventData::PartnerResponseMissed(PartnerResponseMissed {
                claim_id: uid("c1"),
                partner_response_due_at: time(DUE),
            }),
            EventData::Rejected(Rejected {
                claim_id: uid("c1"),
                reason: "NO_PARTNER_RESPONSE".to_string(),
                text: None,
            }),
        ])
        .then_actors(&[scheduler(), Actor::service()])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Rejected);
    assert_eq!(claim.reason(), Some("NO_PARTNER_RESPONSE"));
    assert_eq!(claim.decided_at, Some(time(DUE)));
    assert!(world.state.deadlines.is_empty());
}

#[test]
fn an_approved_incumbent_that_does_not_answer_stays_approved() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.sales("P-200", "c2");
            w.review(cmd::request_poe(uid("c1")));
        })
        .at(DUE)
        .when(
            scheduler(),
            cmd::deadline(uid("c1"), DeadlineKind::PartnerResponse, time(DUE)),
        )
        .then_events(&["claim.partner_response_missed"])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Approved);
    assert_eq!(claim.partner_response_due_at(), None);
    assert_eq!(claim.watched_deadlines().count(), 0);
}

/// The scheduler's index after each step of a claim's life (contract §1:
/// a review deadline runs from submission and from a PoE answer; a PoE
/// request starts the partner's; reviewer actions meet the review one).
#[test]
fn the_watched_deadlines_follow_every_step() {
    let c1 = uid("c1");
    let mut w = World::standard();
    let watched = |w: &World| -> Vec<(Timestamp, DeadlineKind)> {
        let all: Vec<_> = w.state.deadlines.iter().map(|(t, _, k)| (*t, *k)).collect();
        let of_claim: Vec<_> = w
            .claim(c1)
            .watched_deadlines()
            .map(|(t, _, k)| (t, k))
            .collect();
        assert_eq!(all, of_claim);
        all
    };

    w.sales("P-100", "c1");
    assert_eq!(watched(&w), [(time(DUE), DeadlineKind::Review)]);

    w.at("2026-11-26T09:00:00Z");
    w.review(cmd::start(c1));
    assert_eq!(watched(&w), []);

    w.review(cmd::request_poe(c1));
    assert_eq!(
        watched(&w),
        [(time("2026-12-04T00:00:00Z"), DeadlineKind::PartnerResponse)]
    );

    w.at("2026-11-30T12:00:00Z");
    w.by("P-100", cmd::submit_poe(c1));
    assert_eq!(
        watched(&w),
        [(time("2026-12-08T00:00:00Z"), DeadlineKind::Review)]
    );

    // The answer's review deadline can be missed too.
    w.at("2026-12-08T00:00:00Z");
    assert_eq!(w.fire_due(), ["claim.review_deadline_missed"]);
    assert!(w.claim(c1).overdue);
    assert_eq!(watched(&w), []);

    w.review(cmd::comment(c1));
    assert!(!w.claim(c1).overdue);
    assert_eq!(watched(&w), []);

    w.review(cmd::approve(c1));
    assert_eq!(watched(&w), []);
}

#[test]
fn the_scheduler_fires_what_is_due_in_due_order() {
    let mut w = World::standard();
    w.sales("P-100", "c1"); // review due 2026-12-03
    w.at("2026-11-26T09:00:00Z");
    w.sales("P-200", "c2"); // review due 2026-12-04, and a case opens
    w.review(cmd::start(uid("c2")));
    w.review(cmd::request_poe(uid("c2"))); // response due 2026-12-04
    assert_eq!(w.state.next_deadline().map(|d| d.0), Some(time(DUE)));

    w.advance(Duration::days(6)); // 2026-12-02: nothing due yet
    assert!(w.fire_due().is_empty());
    w.at("2026-12-04T00:00:00Z");
    assert_eq!(
        w.fire_due(),
        [
            "claim.review_deadline_missed",
            "claim.partner_response_missed",
            "claim.rejected",
            "arbitration.closed"
        ]
    );
    assert_eq!(w.status(uid("c1")), ClaimStatus::Submitted);
    assert_eq!(w.status(uid("c2")), ClaimStatus::Rejected);
    assert!(w.state.deadlines.is_empty());
    assert_eq!(w.replay(), w.state);
}

#[test]
fn deadlines_use_the_configured_calendar() {
    // Thursday 2026-11-26 is a holiday: Fri 27, Mon 30, Tue 1, Wed 2, Thu 3.
    let mut w = World::empty();
    w.calendar = Calendar::new(
        "UTC",
        &["sat".to_string(), "sun".to_string()],
        &["2026-11-26".to_string()],
    )
    .unwrap();
    w.apply(&standard_events());
    w.sales("P-100", "c1");
    assert_eq!(
        w.claim(uid("c1")).review_due_at,
        Some(time("2026-12-04T00:00:00Z"))
    );

    // Paris: the deadline ends at local midnight, 23:00 UTC in winter.
    let mut w = World::empty();
    w.calendar =
        Calendar::new("Europe/Paris", &["sat".to_string(), "sun".to_string()], &[]).unwrap();
    w.apply(&standard_events());
    w.sales("P-100", "c1");
    assert_eq!(
        w.claim(uid("c1")).review_due_at,
        Some(time("2026-12-02T23:00:00Z"))
    );
}

#[test]
fn a_dispute_starts_a_new_review_deadline() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
        })
        .at("2026-11-30T12:00:00Z")
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .applied();
    assert_eq!(
        world.state.deadlines.iter().copied().collect::<Vec<_>>(),
        [(
            time("2026-12-08T00:00:00Z"),
            uid("c1"),
            DeadlineKind::Review
        )]
    );
}
