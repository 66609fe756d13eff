//! Contract §1 "Competing claims": cases open over every contender of a key,
//! later claims join, an approval resolves, too few contenders close.

use uuid::Uuid;

use super::harness::*;
use crate::command::{Command, SubmitClaim};
use crate::decide::ARBITRATION_NOTICE;
use crate::error::ErrorCode::*;
use crate::event::{
    ArbitrationClaimJoined, ArbitrationClosed, ArbitrationOpened, ArbitrationResolved,
    AssociationEnded, CommentAdded, Event, EventData, Rejected,
};
use crate::types::{Activity, Actor, CaseStatus, ClaimStatus};

fn notice(claim: &str) -> EventData {
    EventData::CommentAdded(CommentAdded {
        claim_id: uid(claim),
        text: ARBITRATION_NOTICE.to_string(),
        system: true,
    })
}

fn opened(case_id: Uuid, claims: &[&str], incumbent: Option<&str>) -> EventData {
    EventData::ArbitrationOpened(ArbitrationOpened {
        case_id,
        tenant_id: uid("t1"),
        product: "dynamics_365_sales".to_string(),
        activity: Activity::Usage,
        claim_ids: claims.iter().map(|c| uid(c)).collect(),
        incumbent_claim_id: incumbent.map(uid),
    })
}

fn case_id_in(events: &[Event]) -> Uuid {
    events
        .iter()
        .find_map(|e| match &e.data {
            EventData::ArbitrationOpened(o) => Some(o.case_id),
            EventData::ArbitrationClaimJoined(j) => Some(j.case_id),
            _ => None,
        })
        .expect("a case event")
}

fn lost(claim: &str) -> EventData {
    EventData::Rejected(Rejected {
        claim_id: uid(claim),
        reason: "LOST_ARBITRATION".to_string(),
        text: None,
    })
}

/// c1 (P-100) and c2 (P-200) compete in an open case.
fn two_contenders() -> Given {
    Given::standard().history(|w| {
        w.sales("P-100", "c1");
        w.sales("P-200", "c2");
    })
}

/// c1, c2 and c3 (P-300) compete in an open case.
fn three_contenders() -> Given {
    two_contenders().history(|w| {
        w.sales("P-300", "c3");
    })
}

fn case_of(world: &World, claim: &str) -> crate::state::Case {
    let case_id = world
        .claim(uid(claim))
        .arbitration_case_id()
        .expect("in a case");
    world.state.cases[&case_id].clone()
}

#[test]
fn a_second_partner_on_an_open_key_opens_a_case_over_both() {
    let then = Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .when(
            partner("P-200"),
            Command::Submit(sales_claim("c2", "P-200")),
        );
    let case_id = case_id_in(then.events());
    let submitted = then.events()[0].data.clone();
    let world = then
        .then_data(&[
            submitted,
            opened(case_id, &["c1", "c2"], None),
            notice("c1"),
            notice("c2"),
        ])
        .then_actors(&[
            partner("P-200"),
            Actor::service(),
            Actor::service(),
            Actor::service(),
        ])
        .applied();
    let case = &world.state.cases[&case_id];
    assert_eq!(case.status, CaseStatus::Open);
    assert_eq!(case.claim_ids, [uid("c1"), uid("c2")]);
    assert_eq!(
        (
            case.incumbent_claim_id,
            case.winner_claim_id,
            case.closed_at
        ),
        (None, None, None)
    );
    for claim in ["c1", "c2"] {
        assert_eq!(world.claim(uid(claim)).arbitration_case_id(), Some(case_id));
    }
    // The system comment counts as an event of c1: its version moves on.
    assert_eq!(world.claim(uid("c1")).version, 2);
    assert_eq!(world.claim(uid("c2")).version, 2);
}

#[test]
fn a_third_partner_joins_the_open_case_and_only_it_is_told() {
    let then = two_contenders().when(
        partner("P-300"),
        Command::Submit(sales_claim("c3", "P-300")),
    );
    let case_id = case_id_in(then.events());
    let submitted = then.events()[0].data.clone();
    let world = then
        .then_data(&[
            submitted,
            EventData::ArbitrationClaimJoined(ArbitrationClaimJoined {
                case_id,
                claim_id: uid("c3"),
            }),
            notice("c3"),
        ])
        .applied();
    assert_eq!(
        world.state.cases[&case_id].claim_ids,
        [uid("c1"), uid("c2"), uid("c3")]
    );
    assert_eq!(world.state.cases[&case_id].version, 2);
    assert_eq!(world.claim(uid("c1")).version, 2, "c1 is not told again");
}

#[test]
fn a_claim_on_a_key_held_by_an_approved_claim_opens_a_case_with_the_incumbent() {
    let then = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .when(
            partner("P-200"),
            Command::Submit(sales_claim("c2", "P-200")),
        );
    let case_id = case_id_in(then.events());
    let submitted = then.events()[0].data.clone();
    let world = then
        .then_data(&[
            submitted,
            opened(case_id, &["c1", "c2"], Some("c1")),
            notice("c1"),
            notice("c2"),
        ])
        .applied();
    assert_eq!(world.status(uid("c1")), ClaimStatus::Approved);
    assert_eq!(
        world.state.cases[&case_id].incumbent_claim_id,
        Some(uid("c1"))
    );
}

#[test]
fn approving_one_contender_rejects_the_others_and_resolves_the_case() {
    let then = three_contenders().when(reviewer(), cmd::approve(uid("c2")));
    let case_id = then.world().claim(uid("c2")).arbitration_case_id().unwrap();
    let world = then
        .then_data(&[
            EventData::ReviewStarted(crate::event::ClaimRef {
                claim_id: uid("c2"),
            }),
            EventData::Approved(crate::event::Approved {
                claim_id: uid("c2"),
                text: None,
            }),
            lost("c1"),
            lost("c3"),
            EventData::ArbitrationResolved(ArbitrationResolved {
                case_id,
                winner_claim_id: uid("c2"),
            }),
        ])
        .then_actors(&[
            reviewer(),
            reviewer(),
            Actor::service(),
            Actor::service(),
            Actor::service(),
        ])
        .applied();
    let case = &world.state.cases[&case_id];
    assert_eq!(case.status, CaseStatus::Closed);
    assert_eq!(case.winner_claim_id, Some(uid("c2")));
    assert_eq!(case.closed_at, Some(time(T0)));
    assert_eq!(world.status(uid("c1")), ClaimStatus::Rejected);
    assert_eq!(world.status(uid("c3")), ClaimStatus::Rejected);
}

#[test]
fn approving_a_challenger_supersedes_the_incumbent() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.sales("P-200", "c2");
            w.sales("P-300", "c3");
            w.review(cmd::request_poe(uid("c3")));
            w.by("P-300", cmd::submit_poe(uid("c3")));
        })
        .when(reviewer(), cmd::approve(uid("c3")))
        .then_events(&[
            "claim.approved",
            "claim.association_ended",
            "claim.rejected",
            "arbitration.resolved",
        ])
        .applied();
    let ended = &world.log[world.log.len() - 3].0;
    assert_eq!(
        ended.data,
        EventData::AssociationEnded(AssociationEnded {
            claim_id: uid("c1"),
            reason: "SUPERSEDED".to_string(),
            text: None,
        })
    );
    assert_eq!(ended.actor, Actor::service());
    assert_eq!(world.claim(uid("c1")).status, ClaimStatus::Ended);
    assert_eq!(world.claim(uid("c1")).reason(), Some("SUPERSEDED"));
    assert_eq!(world.claim(uid("c2")).reason(), Some("LOST_ARBITRATION"));
}

#[test]
fn a_contender_waiting_for_the_partner_loses_too() {
    three_contenders()
        .history(|w| {
            w.review(cmd::request_poe(uid("c1")));
        })
        .when(reviewer(), cmd::approve(uid("c3")))
        .then_events(&[
            "claim.review_started",
            "claim.approved",
            "claim.rejected",
            "claim.rejected",
            "arbitration.resolved",
        ])
        .applied();
}

#[test]
fn a_case_left_with_one_contender_closes_without_a_winner() {
    let leave: Vec<(&str, Actor, Command, Vec<&str>)> = vec![
        (
            "reviewer rejects",
            reviewer(),
            cmd::reject(uid("c2")),
            vec![
                "claim.review_started",
                "claim.rejected",
                "arbitration.closed",
            ],
        ),
        (
            "partner withdraws",
            partner("P-200"),
            cmd::withdraw(uid("c2")),
            vec!["claim.withdrawn", "arbitration.closed"],
        ),
        (
            "customer declines",
            customer("t1"),
            cmd::decline(uid("c2")),
            vec!["claim.rejected", "arbitration.closed"],
        ),
    ];
    for (what, actor, command, expected) in leave {
        let then = two_contenders().when(actor, command).then_events(&expected);
        let case_id = then.world().claim(uid("c2")).arbitration_case_id().unwrap();
        let closed = then.events().last().unwrap().clone();
        assert_eq!(
            closed.data,
            EventData::ArbitrationClosed(ArbitrationClosed { case_id }),
            "{what}"
        );
        assert_eq!(closed.actor, Actor::service());
        let world = then.applied();
        let case = &world.state.cases[&case_id];
        assert_eq!(
            (case.status, case.winner_claim_id),
            (CaseStatus::Closed, None),
            "{what}"
        );
        // The remaining claim goes on as a normal claim.
        assert_eq!(world.status(uid("c1")), ClaimStatus::Submitted);
        assert_eq!(world.state.open_cases.values().next(), None);
        // ... which can now be approved with nothing else to decide.
        Given::from(world)
            .when(reviewer(), cmd::approve(uid("c1")))
            .then_events(&["claim.review_started", "claim.approved"]);
    }
}

#[test]
fn with_three_contenders_one_rejection_does_not_close_the_case() {
    let world = three_contenders()
        .when(reviewer(), cmd::reject(uid("c3")))
        .then_events(&["claim.review_started", "claim.rejected"])
        .applied();
    let case = case_of(&world, "c1");
    assert_eq!(case.status, CaseStatus::Open);
    assert_eq!(world.state.contenders(&case), [uid("c1"), uid("c2")]);
    // The second one does.
    Given::from(world)
        .when(partner("P-200"), cmd::withdraw(uid("c2")))
        .then_events(&["claim.withdrawn", "arbitration.closed"]);
}

#[test]
fn the_incumbent_may_be_asked_for_poe_like_any_contender() {
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.sales("P-200", "c2");
            w.review(cmd::request_poe(uid("c2")));
        })
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_events(&["claim.poe_requested"])
        .applied();
}

#[test]
fn a_disputed_claim_that_lost_reenters_the_competition() {
    // c2 lost to c1; disputing it opens a new case with c1 as incumbent.
    let then = two_contenders()
        .history(|w| {
            w.review(cmd::approve(uid("c1")));
        })
        .when(partner("P-200"), cmd::dispute(uid("c2")));
    let old_case = then.world().claim(uid("c1")).arbitration_case_id().unwrap();
    let case_id = case_id_in(then.events());
    assert_ne!(case_id, old_case);
    let disputed = then.events()[0].data.clone();
    let world = then
        .then_data(&[
            disputed,
            opened(case_id, &["c1", "c2"], Some("c1")),
            notice("c1"),
            notice("c2"),
        ])
        .applied();
    assert_eq!(world.claim(uid("c2")).arbitration_case_id(), Some(case_id));
    assert_eq!(world.claim(uid("c1")).arbitration_case_id(), Some(case_id));
}

#[test]
fn a_disputed_claim_joins_the_open_case_of_its_key() {
    let then = three_contenders()
        .history(|w| {
            w.review(cmd::reject(uid("c3")));
        })
        .when(partner("P-300"), cmd::dispute(uid("c3")))
        .then_events(&[
            "claim.disputed",
            "arbitration.claim_joined",
            "claim.comment_added",
        ]);
    let case_id = case_id_in(then.events());
    let world = then.applied();
    // It was in the case already: it is listed once.
    assert_eq!(
        world.state.cases[&case_id].claim_ids,
        [uid("c1"), uid("c2"), uid("c3")]
    );
    assert_eq!(
        world.state.contenders(&world.state.cases[&case_id]).len(),
        3
    );
}

#[test]
fn a_disputed_claim_alone_on_its_key_is_not_in_arbitration() {
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
        })
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .then_events(&["claim.disputed"]);
}

#[test]
fn a_partner_never_competes_with_itself() {
    // Its own rejected claim is no contender: a new claim opens no case.
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
        })
        .when(
            partner("P-100"),
            Command::Submit(sales_claim("c2", "P-100")),
        )
        .then_events(&["claim.submitted"]);
    // Disputing while its newer claim is open would make it compete with
    // itself: that is SUBSCRIPTION_ALREADY_CLAIMED.
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
            w.sales("P-100", "c2");
        })
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .then_reasons(&[SubscriptionAlreadyClaimed]);
    // In a case with another partner, its old rejected claim stays out.
    let then = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
            w.sales("P-100", "c2");
        })
        .when(
            partner("P-200"),
            Command::Submit(sales_claim("c3", "P-200")),
        );
    let case_id = case_id_in(then.events());
    let submitted = then.events()[0].data.clone();
    then.then_data(&[
        submitted,
        opened(case_id, &["c2", "c3"], None),
        notice("c2"),
        notice("c3"),
    ]);
}

#[test]
fn claims_on_other_keys_do_not_compete() {
    let other_keys: Vec<(&str, SubmitClaim)> = vec![
        (
            "another activity",
            SubmitClaim {
                activity: Activity::Presales,
                ..sales_claim("c2", "P-200")
            },
        ),
        (
            "another product",
            SubmitClaim {
                product: "dynamics_365_customer_service".to_string(),
                ..sales_claim("c2", "P-200")
            },
        ),
        (
            "another tenant",
            SubmitClaim {
                tenant_id: uid("t2"),
                domain: "fabrikam.onmicrosoft.com".to_string(),
                ..sales_claim("c2", "P-200")
            },
        ),
    ];
    for (what, submit) in other_keys {
        let then = Given::standard()
            .history(|w| {
                w.sales("P-100", "c1");
            })
            .when(partner("P-200"), Command::Submit(submit));
        assert_eq!(names(then.events()), ["claim.submitted"], "{what}");
    }
    // Claims that are no longer contenders do not compete either.
    for status in [
        ClaimStatus::Rejected,
        ClaimStatus::Withdrawn,
        ClaimStatus::Ended,
    ] {
        Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", status);
            })
            .when(
                partner("P-200"),
                Command::Submit(sales_claim("c2", "P-200")),
            )
            .then_events(&["claim.submitted"]);
    }
}

#[test]
fn microsoft_365_claims_compete_on_their_product() {
    let then = Given::standard()
        .history(|w| {
            w.submit_as("P-100", m365_claim("c1", "P-100"));
        })
        .when(partner("P-200"), Command::Submit(m365_claim("c2", "P-200")))
        .then_events(&[
            "claim.submitted",
            "arbitration.opened",
            "claim.comment_added",
            "claim.comment_added",
        ]);
    let EventData::ArbitrationOpened(opened) = &then.events()[1].data else {
        panic!("no case")
    };
    assert_eq!(opened.product, "microsoft_365_e5");
}

#[test]
fn a_case_is_opened_once_per_key_at_a_time_and_cases_are_numbered_in_order() {
    let world = two_contenders()
        .history(|w| {
            w.by("P-200", cmd::withdraw(uid("c2")));
            w.sales("P-300", "c3");
        })
        .when(reviewer(), cmd::approve(uid("c3")))
        .applied();
    let mut cases: Vec<_> = world.state.cases.values().collect();
    cases.sort_by_key(|c| c.seq);
    assert_eq!(cases.len(), 2);
    assert_eq!(cases[0].claim_ids, [uid("c1"), uid("c2")]);
    assert_eq!(
        (cases[0].status, cases[0].winner_claim_id),
        (CaseStatus::Closed, None)
    );
    assert_eq!(cases[1].claim_ids, [uid("c1"), uid("c3")]);
    assert_eq!(cases[1].winner_claim_id, Some(uid("c3")));
    assert!(cases[0].opened_at <= cases[1].opened_at);
}

/// The contract keeps a PoE request running until it is answered or
/// missed; a case that closes meanwhile does not withdraw it. So the
/// incumbent, still approved after its challenger left, keeps its
/// `partner_response_due_at`, may still answer, and a miss writes only
/// `partner_response_missed`.
#[test]
fn a_poe_request_to_the_incumbent_outlives_its_case() {
    let mut w = World::standard();
    w.sales_in("P-100", "c1", ClaimStatus::Approved);
    w.sales("P-200", "c2");
    w.review(cmd::request_poe(uid("c1")));
    w.review(cmd::reject(uid("c2")));
    let case = case_of(&w, "c1");
    assert_eq!(case.status, CaseStatus::Closed);
    assert_eq!(
        case.winner_claim_id, None,
        "the incumbent keeps the key without a new winner"
    );
    let due = w
        .claim(uid("c1"))
        .partner_response_due_at()
        .expect("still asked");

    let mut answered = w.clone();
    answered.by("P-100", cmd::submit_poe(uid("c1")));
    assert_eq!(answered.claim(uid("c1")).partner_response_due_at(), None);

    w.set_now(due);
    assert_eq!(w.fire_due(), ["claim.partner_response_missed"]);
    assert_eq!(w.status(uid("c1")), ClaimStatus::Approved);
}
