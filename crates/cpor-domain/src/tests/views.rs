//! Contract §4: ClaimView and CaseView field sets and time format; the
//! conversation a claim's comments show.

use std::collections::BTreeSet;

use serde_json::json;

use super::harness::*;
use crate::types::{Actor, ClaimStatus};
use crate::view::{format_time, in_open_case, CaseView, ClaimView, CommentView};

fn keys(value: &serde_json::Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn a_fresh_claims_view_has_exactly_the_contracts_fields() {
    let mut world = World::standard();
    world.sales("P-100", "c1");
    let view = serde_json::to_value(ClaimView::of(world.claim(uid("c1")))).unwrap();
    let contract: BTreeSet<&str> = [
        "claim_id",
        "partner_id",
        "mpn_id",
        "tenant_id",
        "solution_area",
        "activity",
        "product",
        "subscription_ids",
        "status",
        "reason",
        "incentive_eligible",
        "disputed",
        "overdue",
        "arbitration_case_id",
        "submitted_at",
        "review_due_at",
        "partner_response_due_at",
        "decided_at",
        "version",
        "updated_at",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys(&view), contract);
    assert_eq!(
        view,
        json!({
            "claim_id": uid("c1"),
            "partner_id": "P-100",
            "mpn_id": "4412001",
            "tenant_id": uid("t1"),
            "solution_area": "business_applications",
            "activity": "usage",
            "product": "dynamics_365_sales",
            "subscription_ids": [uid("s_sales")],
            "status": "submitted",
            "reason": null,
            "incentive_eligible": true,
            "disputed": false,
            "overdue": false,
            "arbitration_case_id": null,
            "submitted_at": "2026-11-25T09:00:00Z",
            "review_due_at": "2026-12-03T00:00:00Z",
            "partner_response_due_at": null,
            "decided_at": null,
            "version": 1,
            "updated_at": "2026-11-25T09:00:00Z"
        })
    );
}

#[test]
fn a_decided_claims_view_shows_the_decision() {
    let mut world = World::standard();
    world.sales("P-100", "c1");
    world.at("2026-11-26T10:30:00Z");
    world.review(cmd::reject(uid("c1")));
    let view = serde_json::to_value(ClaimView::of(world.claim(uid("c1")))).unwrap();
    assert_eq!(view["status"], "rejected");
    assert_eq!(view["reason"], "INSUFFICIENT_POE");
    assert_eq!(view["decided_at"], "2026-11-26T10:30:00Z");
    assert_eq!(view["review_due_at"], serde_json::Value::Null);
    assert_eq!(view["version"], 3, "review_started and rejected");
    assert_eq!(view["updated_at"], "2026-11-26T10:30:00Z");
}

#[test]
fn views_read_back_what_they_write() {
    let mut world = World::standard();
    world.sales("P-100", "c1");
    world.sales("P-200", "c2");
    let view = ClaimView::of(world.claim(uid("c1")));
    let back: ClaimView = serde_json::from_value(serde_json::to_value(&view).unwrap()).unwrap();
    assert_eq!(back, view);

    let case = world.state.cases.values().next().unwrap();
    let case_view = serde_json::to_value(CaseView::of(case)).unwrap();
    let contract: BTreeSet<&str> = [
        "case_id",
        "tenant_id",
        "product",
        "activity",
        "status",
        "claim_ids",
        "incumbent_claim_id",
        "winner_claim_id",
        "opened_at",
        "closed_at",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys(&case_view), contract);
    assert_eq!(case_view["status"], "open");
    assert_eq!(case_view["claim_ids"], json!([uid("c1"), uid("c2")]));
    assert_eq!(case_view["opened_at"], "2026-11-25T09:00:00Z");
    assert_eq!(case_view["closed_at"], serde_json::Value::Null);
    let back: CaseView = serde_json::from_value(case_view).unwrap();
    assert_eq!(back, CaseView::of(case));
}

#[test]
fn times_are_rfc3339_in_utc_with_z() {
    assert_eq!(
        format_time(&time("2026-11-25T14:03:00+01:00")),
        "2026-11-25T13:03:00Z"
    );
    assert_eq!(
        format_time(&time("2026-11-25T14:03:00.250Z")),
        "2026-11-25T14:03:00.250Z"
    );
}

#[test]
fn the_conversation_holds_comments_requests_answers_and_disputes() {
    let mut world = World::standard();
    world.sales("P-100", "c1");
    world.sales("P-200", "c2"); // a system notice on c1
    world.review(cmd::request_poe(uid("c1")));
    world.by("P-100", cmd::submit_poe(uid("c1")));
    world.by(
        "P-100",
        crate::command::Command::SubmitPoe {
            claim_id: uid("c1"),
            proof_of_execution: poe("more.pdf"),
            text: None,
        },
    );
    world.review(cmd::reject(uid("c1")));
    world.by("P-100", cmd::dispute(uid("c1")));
    let conversation: Vec<(Actor, bool)> = world
        .log
        .iter()
        .filter_map(|(event, at)| CommentView::of(event, *at))
        .filter(|(claim_id, _)| *claim_id == uid("c1"))
        .map(|(_, comment)| (comment.author, comment.system))
        .collect();
    assert_eq!(
        conversation,
        [
            (Actor::service(), true),
            (reviewer(), false),
            // The PoE answer with a text; the one without adds nothing.
            (partner("P-100"), false),
            // The dispute's justification.
            (partner("P-100"), false),
            // c2 is still open: the dispute opens a new case, with a notice.
            (Actor::service(), true),
        ]
    );
    let dispute = world
        .log
        .iter()
        .find(|(event, _)| event.data.name() == "disputed")
        .map(|(event, _)| event)
        .unwrap();
    let json = serde_json::to_value(CommentView::of(dispute, time(T0)).unwrap().1).unwrap();
    assert_eq!(json["at"], "2026-11-25T09:00:00Z");
    assert_eq!(
        json["author"],
        json!({"type": "partner", "partner_id": "P-100", "user": "user@p-100.example", "roles": ["incentives_admin"]})
    );
}

#[test]
fn statuses_parse_from_their_names_and_in_arbitration_means_an_open_case() {
    for status in [
        ClaimStatus::Submitted,
        ClaimStatus::UnderReview,
        ClaimStatus::PartnerActionRequired,
        ClaimStatus::Approved,
        ClaimStatus::Rejected,
        ClaimStatus::Withdrawn,
        ClaimStatus::Ended,
    ] {
        assert_eq!(ClaimStatus::parse(status.as_str()), Some(status));
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
    }
    assert_eq!(ClaimStatus::parse("open"), None);

    let mut world = World::standard();
    world.sales("P-100", "c1");
    world.sales("P-200", "c2");
    let case_of = |w: &World, c: &str| {
        w.claim(uid(c))
            .arbitration_case_id()
            .and_then(|id| w.state.cases.get(&id).cloned())
    };
    assert!(in_open_case(
        world.claim(uid("c1")),
        case_of(&world, "c1").as_ref()
    ));
    world.by("P-200", cmd::withdraw(uid("c2")));
    assert!(
        !in_open_case(world.claim(uid("c1")), case_of(&world, "c1").as_ref()),
        "the case closed"
    );
    assert!(!in_open_case(
        world.claim(uid("c2")),
        case_of(&world, "c2").as_ref()
    ));
}

#[test]
fn wire_names_are_serdes_names() {
    use crate::error::ErrorCode;
    use crate::types::{ClaimStatus, DeadlineKind};
    use strum::VariantArray;
    for status in ClaimStatus::VARIANTS {
        let serde = serde_json::to_value(status).unwrap();
        assert_eq!(serde, status.as_str());
        assert_eq!(ClaimStatus::parse(status.as_str()), Some(*status));
    }
    assert_eq!(
        ClaimStatus::VARIANTS.len(),
        7,
        "contract §1 lists seven statuses"
    );
    assert_eq!(ClaimStatus::parse("open"), None);
    assert_eq!(ErrorCode::ClaimNotFound.as_str(), "CLAIM_NOT_FOUND");
    assert_eq!(DeadlineKind::PartnerResponse.as_str(), "partner_response");
}

/// Given claims in and out of arbitration cases, open and closed;
/// when the listings ask `in_arbitration` of the stored read models
/// (`ClaimView::in_open_case` with the view of the claim's case);
/// then they get what the state's rule (`in_open_case`) says, claim by
/// claim: the approved incumbent counts, a withdrawn claim and the claims
/// of a closed case do not.
#[test]
fn in_arbitration_asked_of_the_views_is_the_states_rule() {
    use crate::types::CaseStatus;
    let mut world = World::standard();
    let c1 = world.sales_in("P-100", "c1", ClaimStatus::Approved);
    let c3 = world.submit_as("P-100", m365_claim("c3", "P-100"));
    // Each claim: the state's answer, and the views' answer.
    let answers = |w: &World, claim_id| {
        let claim = w.claim(claim_id);
        let case = claim.arbitration_case_id().map(|id| &w.state.cases[&id]);
        let by_state = in_open_case(claim, case);
        let by_views = ClaimView::of(claim).in_open_case(case.map(CaseView::of).as_ref());
        (by_state, by_views)
    };
    assert_eq!(answers(&world, c1), (false, false), "no case yet");

    // The incumbent is challenged; a second key gets a case that closes.
    let c2 = world.sales("P-200", "c2");
    let c4 = world.submit_as("P-200", m365_claim("c4", "P-200"));
    world.by("P-200", cmd::withdraw(c4));
    let case_of = |w: &World, id| w.state.cases[&w.claim(id).arbitration_case_id().unwrap()].status;
    assert_eq!(case_of(&world, c1), CaseStatus::Open);
    assert_eq!(case_of(&world, c3), CaseStatus::Closed);
    for (claim_id, expected) in [(c1, true), (c2, true), (c3, false), (c4, false)] {
        assert_eq!(
            answers(&world, claim_id),
            (expected, expected),
            "{}",
            world.claim(claim_id).status.as_str()
        );
    }
}

/// Given the wire names of case statuses (`arbitration.list`'s filter);
/// when parsed; then each gives its status back, and nothing else parses.
#[test]
fn case_statuses_parse_from_their_wire_names() {
    use crate::types::CaseStatus;
    for status in [CaseStatus::Open, CaseStatus::Closed] {
        assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        assert_eq!(CaseStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(CaseStatus::parse("resolved"), None);
    assert_eq!(CaseStatus::parse("Open"), None);
}
