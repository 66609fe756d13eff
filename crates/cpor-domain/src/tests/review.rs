//! Reviewer actions (contract §3): `review_started` comes first on a
//! submitted claim; PoE requests and answers, including the approved
//! incumbent of an open case.

use super::harness::*;
use crate::error::ErrorCode::*;
use crate::event::{ClaimRef, CommentAdded, EventData, PoeRequested, PoeSubmitted};
use crate::types::{ClaimStatus, DeadlineKind};

/// Each reviewer action and the events it writes itself.
fn reviewer_actions() -> Vec<(
    &'static str,
    crate::command::Command,
    &'static [&'static str],
)> {
    let c = uid("c1");
    vec![
        ("start", cmd::start(c), &[]),
        ("comment", cmd::comment(c), &["claim.comment_added"]),
        ("request_poe", cmd::request_poe(c), &["claim.poe_requested"]),
        ("approve", cmd::approve(c), &["claim.approved"]),
        ("reject", cmd::reject(c), &["claim.rejected"]),
    ]
}

#[test]
fn a_reviewer_action_on_a_submitted_claim_writes_review_started_first() {
    for (name, command, own) in reviewer_actions() {
        let mut expected = vec!["claim.review_started"];
        expected.extend_from_slice(own);
        let world = Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
            })
            .at("2026-11-26T10:00:00Z")
            .when(reviewer(), command)
            .then_events(&expected)
            .applied();
        let claim = world.claim(uid("c1"));
        assert_ne!(claim.status, ClaimStatus::Submitted, "{name}");
        assert_eq!(
            claim.review_due_at, None,
            "{name} meets the review deadline"
        );
        assert!(!claim.overdue);
        assert!(
            !world
                .state
                .deadlines
                .iter()
                .any(|(_, _, kind)| *kind == DeadlineKind::Review),
            "{name}: no review deadline watched"
        );
    }
}

#[test]
fn on_a_claim_under_review_only_the_actions_own_event_is_written() {
    for (name, command, own) in reviewer_actions() {
        // `start` on a claim under review writes review_started again: its
        // own event, which also meets a review deadline running after a PoE
        // answer.
        let expected: &[&str] = if name == "start" {
            &["claim.review_started"]
        } else {
            own
        };
        Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
            })
            .when(reviewer(), command)
            .then_events(expected)
            .applied();
    }
}

#[test]
fn start_moves_submitted_to_under_review() {
    let world = Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .when(reviewer(), cmd::start(uid("c1")))
        .then_data(&[EventData::ReviewStarted(ClaimRef {
            claim_id: uid("c1"),
        })])
        .then_actors(&[reviewer()])
        .applied();
    assert_eq!(world.status(uid("c1")), ClaimStatus::UnderReview);
    assert_eq!(world.claim(uid("c1")).version, 2);
}

#[test]
fn partner_actions_are_not_reviews() {
    for command in [cmd::comment(uid("c1")), cmd::submit_poe(uid("c1"))] {
        let world = Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
            })
            .when(partner("P-100"), command)
            .applied();
        let claim = world.claim(uid("c1"));
        assert_eq!(claim.status, ClaimStatus::Submitted);
        assert_eq!(
            claim.review_due_at,
            Some(time("2026-12-03T00:00:00Z")),
            "the deadline still runs"
        );
        assert!(!world
            .history_of(uid("c1"))
            .contains(&"claim.review_started".to_string()));
    }
}

#[test]
fn a_partner_comment_is_recorded_as_written() {
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .when(partner("P-100"), cmd::comment(uid("c1")))
        .then_data(&[EventData::CommentAdded(CommentAdded {
            claim_id: uid("c1"),
            text: "A question about this claim.".to_string(),
            system: false,
        })])
        .then_actors(&[partner("P-100")]);
}

#[test]
fn request_poe_gives_the_partner_five_business_days() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
        })
        .at("2026-11-27T16:00:00Z") // Friday
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_data(&[EventData::PoeRequested(PoeRequested {
            claim_id: uid("c1"),
            text: "Please send a customer-signed acknowledgement.".to_string(),
            // Mon 30, Tue 1, Wed 2, Thu 3, Fri 4 → end of Friday 2026-12-04.
            partner_response_due_at: time("2026-12-05T00:00:00Z"),
        })])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::PartnerActionRequired);
    assert_eq!(
        claim.partner_response_due_at(),
        Some(time("2026-12-05T00:00:00Z"))
    );
    assert_eq!(
        claim.review_due_at, None,
        "the request met the review deadline"
    );
    assert_eq!(
        world.state.deadlines.iter().copied().collect::<Vec<_>>(),
        [(
            time("2026-12-05T00:00:00Z"),
            uid("c1"),
            DeadlineKind::PartnerResponse
        )]
    );
}

/// Contract §6 via the brief: a PoE answer at 2026-11-30T12:00Z returns the
/// claim to under_review with a review deadline of 2026-12-08T00:00Z.
#[test]
fn a_poe_answer_returns_the_claim_to_review_with_a_new_deadline() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::PartnerActionRequired);
        })
        .at("2026-11-30T12:00:00Z")
        .when(partner("P-100"), cmd::submit_poe(uid("c1")))
        .then_data(&[EventData::PoeSubmitted(PoeSubmitted {
            claim_id: uid("c1"),
            proof_of_execution: poe("signed-ack.pdf"),
            text: Some("Here is the signed acknowledgement.".to_string()),
            review_due_at: Some(time("2026-12-08T00:00:00Z")),
        })])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::UnderReview);
    assert_eq!(claim.review_due_at, Some(time("2026-12-08T00:00:00Z")));
    assert_eq!(claim.partner_response_due_at(), None);
    assert_eq!(
        world.state.deadlines.iter().copied().collect::<Vec<_>>(),
        [(
            time("2026-12-08T00:00:00Z"),
            uid("c1"),
            DeadlineKind::Review
        )]
    );
}

#[test]
fn more_poe_on_an_open_claim_that_was_not_asked_for_starts_no_deadline() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
        })
        .at("2026-11-30T12:00:00Z")
        .when(partner("P-100"), cmd::submit_poe(uid("c1")))
        .then_events(&["claim.poe_submitted"])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::UnderReview);
    assert_eq!(claim.review_due_at, None);
    assert!(world.state.deadlines.is_empty());
}

#[test]
fn poe_added_to_an_approved_claim_starts_no_deadline() {
    let then = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .when(partner("P-100"), cmd::submit_poe(uid("c1")));
    let EventData::PoeSubmitted(submitted) = &then.events()[0].data else {
        panic!("not a PoE")
    };
    assert_eq!(submitted.review_due_at, None);
    let world = then.applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Approved);
    assert_eq!(
        (claim.review_due_at, claim.partner_response_due_at()),
        (None, None)
    );
    assert!(world.state.deadlines.is_empty());
}

/// P-100's approved claim c1 is the incumbent of the case P-200's c2 opens.
fn incumbent_in_open_case() -> Given {
    Given::standard().history(|w| {
        w.sales_in("P-100", "c1", ClaimStatus::Approved);
        w.sales("P-200", "c2");
    })
}

#[test]
fn the_approved_incumbent_of_an_open_case_can_be_asked_for_poe() {
    let world = incumbent_in_open_case()
        .at("2026-11-26T09:00:00Z")
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_events(&["claim.poe_requested"])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(
        claim.status,
        ClaimStatus::Approved,
        "the incumbent stays approved"
    );
    assert_eq!(
        claim.partner_response_due_at(),
        Some(time("2026-12-04T00:00:00Z"))
    );
    assert!(world.state.deadlines.contains(&(
        time("2026-12-04T00:00:00Z"),
        uid("c1"),
        DeadlineKind::PartnerResponse
    )));

    // It answers with submit_poe, staying approved, with no review deadline.
    let world = Given::from(world)
        .when(partner("P-100"), cmd::submit_poe(uid("c1")))
        .then_events(&["claim.poe_submitted"])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Approved);
    assert_eq!(
        (claim.review_due_at, claim.partner_response_due_at()),
        (None, None)
    );
}

#[test]
fn an_approved_claim_outside_an_open_case_cannot_be_asked_for_poe() {
    // Never in a case.
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_reasons(&[InvalidTransition]);
    // The incumbent of a case that has closed (the challenger withdrew).
    incumbent_in_open_case()
        .history(|w| {
            w.by("P-200", cmd::withdraw(uid("c2")));
        })
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_reasons(&[InvalidTransition]);
    // The winner of a resolved case.
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
            w.sales("P-200", "c2");
            w.review(cmd::approve(uid("c2")));
        })
        .when(reviewer(), cmd::request_poe(uid("c2")))
        .then_reasons(&[InvalidTransition]);
}

#[test]
fn the_claim_in_partner_action_required_cannot_be_asked_again() {
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::PartnerActionRequired);
        })
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_reasons(&[InvalidTransition]);
}

#[test]
fn a_reviewer_comment_on_a_closed_claim_is_only_a_comment() {
    for status in [
        ClaimStatus::Approved,
        ClaimStatus::Rejected,
        ClaimStatus::Withdrawn,
        ClaimStatus::Ended,
    ] {
        let world = Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", status);
            })
            .when(reviewer(), cmd::comment(uid("c1")))
            .then_events(&["claim.comment_added"])
            .then_actors(&[reviewer()])
            .applied();
        assert_eq!(world.status(uid("c1")), status);
    }
}

#[test]
fn approve_and_reject_record_the_reviewers_words() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
        })
        .at("2026-11-27T10:00:00Z")
        .when(
            reviewer(),
            crate::command::Command::Reject {
                claim_id: uid("c1"),
                reason: "WRONG_ACTIVITY".to_string(),
                text: Some("This is presales work.".to_string()),
            },
        )
        .then_data(&[EventData::Rejected(crate::event::Rejected {
            claim_id: uid("c1"),
            reason: "WRONG_ACTIVITY".to_string(),
            text: Some("This is presales work.".to_string()),
        })])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.reason(), Some("WRONG_ACTIVITY"));
    assert_eq!(claim.decided_at, Some(time("2026-11-27T10:00:00Z")));

    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
        })
        .when(
            reviewer(),
            crate::command::Command::Approve {
                claim_id: uid("c1"),
                text: Some("Thanks".to_string()),
            },
        )
        .then_data(&[EventData::Approved(crate::event::Approved {
            claim_id: uid("c1"),
            text: Some("Thanks".to_string()),
        })])
        .then_actors(&[reviewer()])
        .applied();
    assert_eq!(world.claim(uid("c1")).reason(), None);
}
