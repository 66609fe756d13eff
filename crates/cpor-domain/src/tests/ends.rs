//! Contract §1 "Ends of an association": disassociation, a customer's
//! decline, subscriptions that end; and the cases an ending closes.

use super::harness::*;
use crate::command::{Command, SubmitClaim};
use crate::event::{AssociationEnded, EventData, Rejected};
use crate::types::{Actor, CaseStatus, Channel, ClaimStatus, SubscriptionState};

fn ended(claim: &str, reason: &str, text: Option<&str>) -> EventData {
    EventData::AssociationEnded(AssociationEnded {
        claim_id: uid(claim),
        reason: reason.to_string(),
        text: text.map(str::to_string),
    })
}

fn upsert(name: &str, product: &str, channel: Channel, state: SubscriptionState) -> Command {
    let dynamics = !product.starts_with("microsoft_365");
    Command::UpsertSubscription(subscription(name, "t1", product, dynamics, channel, state))
}

fn sales_state(state: SubscriptionState) -> Command {
    upsert(
        "s_sales",
        "dynamics_365_sales",
        Channel::VolumeLicensing,
        state,
    )
}

#[test]
fn a_partner_disassociates_an_approved_claim_with_a_reason() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .at("2026-12-01T08:00:00Z")
        .when(partner("P-100"), cmd::disassociate(uid("c1")))
        .then_data(&[ended("c1", "DISASSOCIATED", Some("Engagement over"))])
        .then_actors(&[partner("P-100")])
        .applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Ended);
    assert_eq!(claim.reason(), Some("DISASSOCIATED"));
    assert_eq!(claim.decided_at, Some(time("2026-12-01T08:00:00Z")));
}

#[test]
fn a_customer_declines_an_open_claim_by_rejecting_it() {
    for status in [
        ClaimStatus::Submitted,
        ClaimStatus::UnderReview,
        ClaimStatus::PartnerActionRequired,
    ] {
        let world = Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", status);
            })
            .when(customer("t1"), cmd::decline(uid("c1")))
            .then_data(&[EventData::Rejected(Rejected {
                claim_id: uid("c1"),
                reason: "CUSTOMER_DECLINED".to_string(),
                text: Some("We do not work with this partner".to_string()),
            })])
            .then_actors(&[customer("t1")])
            .applied();
        assert_eq!(world.status(uid("c1")), ClaimStatus::Rejected);
        assert!(world.state.deadlines.is_empty(), "{status:?}");
    }
}

#[test]
fn a_customer_declines_an_approved_claim_by_ending_it() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .when(
            customer("t1"),
            Command::CustomerDecline {
                claim_id: uid("c1"),
                reason: None,
            },
        )
        .then_data(&[ended("c1", "CUSTOMER_DECLINED", None)])
        .applied();
    assert_eq!(world.claim(uid("c1")).reason(), Some("CUSTOMER_DECLINED"));
}

#[test]
fn an_approved_claim_ends_when_its_subscription_stops_being_live() {
    for state in [
        SubscriptionState::Expired,
        SubscriptionState::Disabled,
        SubscriptionState::PendingProvisioning,
    ] {
        let world = Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", ClaimStatus::Approved);
            })
            .when(system(), sales_state(state))
            .then_events(&["subscription.upserted", "claim.association_ended"])
            .then_actors(&[system(), Actor::service()])
            .applied();
        assert_eq!(
            world.claim(uid("c1")).reason(),
            Some("SUBSCRIPTION_ENDED"),
            "{state:?}"
        );
        assert_eq!(
            world.state.subscriptions[&uid("s_sales")].record.state,
            state
        );
    }
}

#[test]
fn a_subscription_that_stays_live_or_is_not_the_claims_ends_nothing() {
    let cases: Vec<(&str, Command)> = vec![
        ("in grace", sales_state(SubscriptionState::InGrace)),
        ("active again", sales_state(SubscriptionState::Active)),
        (
            "another product's subscription",
            upsert(
                "s_cs_grace",
                "dynamics_365_customer_service",
                Channel::WebDirect,
                SubscriptionState::Expired,
            ),
        ),
        (
            "a new subscription of the product, expired",
            upsert(
                "s_sales_new",
                "dynamics_365_sales",
                Channel::VolumeLicensing,
                SubscriptionState::Expired,
            ),
        ),
    ];
    for (what, command) in cases {
        let then = Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c1", ClaimStatus::Approved);
            })
            .when(system(), command);
        assert_eq!(names(then.events()), ["subscription.upserted"], "{what}");
    }
}

#[test]
fn open_claims_do_not_end_with_their_subscription() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::UnderReview);
        })
        .when(system(), sales_state(SubscriptionState::Expired))
        .then_events(&["subscription.upserted"])
        .applied();
    assert_eq!(world.status(uid("c1")), ClaimStatus::UnderReview);
}

#[test]
fn a_claim_with_another_live_subscription_goes_on_until_the_last_one_ends() {
    let mut w = World::standard();
    w.exec(
        system(),
        upsert(
            "s_sales_2",
            "dynamics_365_sales",
            Channel::WebDirect,
            SubscriptionState::Active,
        ),
    );
    w.sales_in("P-100", "c1", ClaimStatus::Approved);
    let mut covered = vec![uid("s_sales"), uid("s_sales_2")];
    covered.sort();
    assert_eq!(w.claim(uid("c1")).subscription_ids.to_vec(), covered);

    let decision = w.exec(system(), sales_state(SubscriptionState::Expired));
    assert_eq!(names(&decision.events), ["subscription.upserted"]);
    assert_eq!(w.status(uid("c1")), ClaimStatus::Approved);

    Given::from(w)
        .when(
            system(),
            upsert(
                "s_sales_2",
                "dynamics_365_sales",
                Channel::WebDirect,
                SubscriptionState::Disabled,
            ),
        )
        .then_events(&["subscription.upserted", "claim.association_ended"]);
}

/// "New subscriptions need a new claim": a subscription added after the
/// approval does not keep the claim alive.
#[test]
fn a_subscription_added_after_the_approval_does_not_back_the_claim() {
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.exec(
                system(),
                upsert(
                    "s_sales_2",
                    "dynamics_365_sales",
                    Channel::WebDirect,
                    SubscriptionState::Active,
                ),
            );
        })
        .when(system(), sales_state(SubscriptionState::Expired))
        .then_events(&["subscription.upserted", "claim.association_ended"]);
}

#[test]
fn every_approved_claim_on_the_subscription_ends() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.submit_as(
                "P-200",
                SubmitClaim {
                    activity: crate::types::Activity::Presales,
                    ..sales_claim("c2", "P-200")
                },
            );
            w.review(cmd::approve(uid("c2")));
        })
        .when(system(), sales_state(SubscriptionState::Expired))
        .then_events(&[
            "subscription.upserted",
            "claim.association_ended",
            "claim.association_ended",
        ])
        .applied();
    assert_eq!(world.status(uid("c1")), ClaimStatus::Ended);
    assert_eq!(world.status(uid("c2")), ClaimStatus::Ended);
}

#[test]
fn a_microsoft_365_claim_ends_when_no_subscription_of_its_product_is_live() {
    let mut w = World::standard();
    w.submit_as("P-100", m365_claim("c1", "P-100"));
    w.review(cmd::approve(uid("c1")));
    w.exec(
        system(),
        upsert(
            "s_m365_b",
            "microsoft_365_e5",
            Channel::WebDirect,
            SubscriptionState::InGrace,
        ),
    );

    // s_m365 expires, s_m365_b is still in grace: the claim goes on.
    let decision = w.exec(
        system(),
        upsert(
            "s_m365",
            "microsoft_365_e5",
            Channel::Csp,
            SubscriptionState::Expired,
        ),
    );
    assert_eq!(names(&decision.events), ["subscription.upserted"]);
    assert_eq!(w.status(uid("c1")), ClaimStatus::Approved);

    // The last live one is disabled: it ends.
    Given::from(w)
        .when(
            system(),
            upsert(
                "s_m365_b",
                "microsoft_365_e5",
                Channel::WebDirect,
                SubscriptionState::Disabled,
            ),
        )
        .then_data(&[
            EventData::SubscriptionUpserted(subscription(
                "s_m365_b",
                "t1",
                "microsoft_365_e5",
                false,
                Channel::WebDirect,
                SubscriptionState::Disabled,
            )),
            ended("c1", "SUBSCRIPTION_ENDED", None),
        ]);
}

#[test]
fn an_ended_incumbent_closes_its_case_when_one_contender_remains() {
    let incumbent_and_challenger = || {
        Given::standard().history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.sales("P-200", "c2");
        })
    };
    let endings: Vec<(&str, Actor, Command, Vec<&str>)> = vec![
        (
            "subscription ended",
            system(),
            sales_state(SubscriptionState::Expired),
            vec![
                "subscription.upserted",
                "claim.association_ended",
                "arbitration.closed",
            ],
        ),
        (
            "disassociated",
            partner("P-100"),
            cmd::disassociate(uid("c1")),
            vec!["claim.association_ended", "arbitration.closed"],
        ),
        (
            "customer declined",
            customer("t1"),
            cmd::decline(uid("c1")),
            vec!["claim.association_ended", "arbitration.closed"],
        ),
    ];
    for (what, actor, command, expected) in endings {
        let world = incumbent_and_challenger()
            .when(actor, command)
            .then_events(&expected)
            .applied();
        let case_id = world.claim(uid("c2")).arbitration_case_id().unwrap();
        assert_eq!(
            world.state.cases[&case_id].status,
            CaseStatus::Closed,
            "{what}"
        );
        assert_eq!(world.status(uid("c2")), ClaimStatus::Submitted, "{what}");
    }
}

#[test]
fn an_ended_incumbent_leaves_a_case_of_two_challengers_open() {
    let world = Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
            w.sales("P-200", "c2");
            w.sales("P-300", "c3");
        })
        .when(system(), sales_state(SubscriptionState::Expired))
        .then_events(&["subscription.upserted", "claim.association_ended"])
        .applied();
    let case_id = world.claim(uid("c2")).arbitration_case_id().unwrap();
    assert_eq!(world.state.cases[&case_id].status, CaseStatus::Open);
    // The ended incumbent can no longer be asked for PoE; approving one
    // challenger rejects the other and supersedes no one.
    Given::from(world.clone())
        .when(reviewer(), cmd::request_poe(uid("c1")))
        .then_error(crate::error::ErrorCode::InvalidTransition);
    Given::from(world)
        .when(reviewer(), cmd::approve(uid("c3")))
        .then_events(&[
            "claim.review_started",
            "claim.approved",
            "claim.rejected",
            "arbitration.resolved",
        ]);
}
