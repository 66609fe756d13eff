//! The refusals every command about an existing claim shares:
//! `CLAIM_NOT_FOUND`, `VERSION_CONFLICT` and `INVALID_TRANSITION` (contract
//! §3, the "allowed in" columns), and their precedence.

use super::harness::*;
use crate::command::Command;
use crate::error::ErrorCode::*;
use crate::types::{Actor, ClaimStatus, DeadlineKind};

/// Every command about an existing claim, with the actor that may send it
/// for P-100's claim on tenant t1.
fn claim_commands(c: uuid::Uuid) -> Vec<(&'static str, Actor, Command)> {
    vec![
        ("partner comment", partner("P-100"), cmd::comment(c)),
        ("submit_poe", partner("P-100"), cmd::submit_poe(c)),
        ("withdraw", partner("P-100"), cmd::withdraw(c)),
        ("dispute", partner("P-100"), cmd::dispute(c)),
        ("disassociate", partner("P-100"), cmd::disassociate(c)),
        ("start", reviewer(), cmd::start(c)),
        ("reviewer comment", reviewer(), cmd::comment(c)),
        ("request_poe", reviewer(), cmd::request_poe(c)),
        ("approve", reviewer(), cmd::approve(c)),
        ("reject", reviewer(), cmd::reject(c)),
        ("decline", customer("t1"), cmd::decline(c)),
    ]
}

/// The contract's "allowed in" column of each command, written out.
fn allowed_in(command: &str, status: ClaimStatus) -> bool {
    use ClaimStatus::*;
    let open = status.is_open();
    match command {
        "partner comment" | "reviewer comment" => true,
        "submit_poe" => open || status == Approved,
        "withdraw" | "start" | "reject" => open,
        "dispute" => status == Rejected,
        "disassociate" => status == Approved,
        // `approved` only for the incumbent of an open case; a lone approved
        // claim is not one.
        "request_poe" | "approve" => matches!(status, Submitted | UnderReview),
        "decline" => open || status == Approved,
        other => panic!("unknown command {other}"),
    }
}

const STATUSES: [ClaimStatus; 7] = [
    ClaimStatus::Submitted,
    ClaimStatus::UnderReview,
    ClaimStatus::PartnerActionRequired,
    ClaimStatus::Approved,
    ClaimStatus::Rejected,
    ClaimStatus::Withdrawn,
    ClaimStatus::Ended,
];

#[test]
fn every_command_in_every_status_is_allowed_or_invalid_transition() {
    let mut allowed_count = 0;
    for status in STATUSES {
        for (name, actor, command) in claim_commands(uid("c1")) {
            let then = Given::standard()
                .history(|w| {
                    w.sales_in("P-100", "c1", status);
                })
                .when(actor, command);
            if allowed_in(name, status) {
                allowed_count += 1;
                assert!(
                    !then.events().is_empty(),
                    "{name} in {status:?} writes something"
                );
                then.applied();
            } else {
                let rejection = then.rejection();
                assert_eq!(
                    rejection.reasons,
                    [InvalidTransition],
                    "{name} in {status:?}"
                );
                assert!(
                    rejection
                        .message
                        .contains(&status.as_str().replace('_', " ")),
                    "the message names the status: {}",
                    rejection.message
                );
            }
        }
    }
    // 7 statuses × 11 commands; the contract allows 37 of the 77 pairs.
    assert_eq!(allowed_count, 37);
}

#[test]
fn unknown_claims_and_claims_the_actor_may_not_see_are_not_found() {
    let c1 = uid("c1");
    let nope = uid("nope");
    let mut cases: Vec<(String, Actor, Command)> = Vec::new();
    for (name, actor, command) in claim_commands(nope) {
        cases.push((format!("{name} on an unknown claim"), actor, command));
    }
    for (name, actor, command) in claim_commands(c1) {
        match actor {
            Actor::Partner { .. } => cases.push((
                format!("{name} on another partner's claim"),
                partner("P-200"),
                command,
            )),
            Actor::Customer { .. } => cases.push((
                format!("{name} by a customer of another tenant"),
                customer("t2"),
                command,
            )),
            _ => {}
        }
    }
    cases.push((
        "a deadline of an unknown claim".to_string(),
        scheduler(),
        cmd::deadline(nope, DeadlineKind::Review, time(T0)),
    ));
    assert_eq!(cases.len(), 11 + 6 + 1);
    for (what, actor, command) in cases {
        let then = Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
            })
            .when(actor, command);
        assert_eq!(then.rejection().reasons, [ClaimNotFound], "{what}");
    }
}

#[test]
fn a_stale_expected_version_is_a_conflict_that_gives_the_current_version() {
    for (name, actor, command) in claim_commands(uid("c1")) {
        // c1 is at version 2: submitted, then a partner comment.
        let given = || {
            Given::standard().history(|w| {
                w.sales("P-100", "c1");
                w.by("P-100", cmd::comment(uid("c1")));
            })
        };
        let then = given().when_versioned(actor.clone(), command.clone(), Some(1));
        let rejection = then.rejection();
        assert_eq!(rejection.reasons, [VersionConflict], "{name}");
        assert_eq!(rejection.current_version, Some(2), "{name}");
        assert!(rejection.message.contains('2'), "{}", rejection.message);
        // The right version passes this check (the command may still fail
        // for its own reasons, never for the version).
        if let Err(rejection) = given().when_versioned(actor, command, Some(2)).result() {
            assert_ne!(rejection.code, VersionConflict, "{name}");
        }
    }
}

#[test]
fn not_found_comes_before_version_conflict_before_invalid_transition() {
    let given = || {
        Given::standard().history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Withdrawn);
        })
    };
    given()
        .when_versioned(partner("P-200"), cmd::withdraw(uid("c1")), Some(9))
        .then_reasons(&[ClaimNotFound]);
    given()
        .when_versioned(reviewer(), cmd::approve(uid("c1")), Some(9))
        .then_reasons(&[VersionConflict]);
    given()
        .when_versioned(reviewer(), cmd::approve(uid("c1")), Some(2))
        .then_reasons(&[InvalidTransition]);
}

#[test]
fn reviewers_and_the_tenants_customers_see_every_claim_of_theirs() {
    // The same claim, three audiences that may see it.
    for (actor, command) in [
        (reviewer(), cmd::comment(uid("c1"))),
        (customer("t1"), cmd::decline(uid("c1"))),
        (
            partner_with_roles("P-100", &["global_admin"]),
            cmd::comment(uid("c1")),
        ),
    ] {
        Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
            })
            .when(actor, command)
            .applied();
    }
}
