//! Contract §1 (solution areas, activities, eligibility) and §3 `submit`:
//! every error code a submit can produce, `reasons` in precedence order,
//! warnings, and what an accepted claim covers.

use super::harness::*;
use crate::command::{Command, SubmitClaim};
use crate::error::ErrorCode::{self, *};
use crate::event::{ClaimSubmitted, Event, EventData};
use crate::types::{Activity, Channel, ClaimStatus, DeadlineKind, SolutionArea, SubscriptionState};

/// The standard reference data plus subscriptions for the rules the
/// standard fixture does not reach.
fn extra_subscriptions() -> Vec<Event> {
    use Channel::*;
    use SubscriptionState::*;
    let subs = [
        // A disabled Dynamics subscription.
        (
            "s_disabled",
            "dynamics_365_project_operations",
            true,
            VolumeLicensing,
            Disabled,
        ),
        // CSP and expired at once (the contract's reply example).
        (
            "s_csp_expired",
            "dynamics_365_supply_chain",
            true,
            Csp,
            Expired,
        ),
        // A product with three subscriptions of which two pass.
        (
            "s_com_a",
            "dynamics_365_commerce",
            true,
            VolumeLicensing,
            Active,
        ),
        ("s_com_b", "dynamics_365_commerce", true, Csp, Active),
        ("s_com_c", "dynamics_365_commerce", true, WebDirect, InGrace),
        // A product with three subscriptions of which none passes.
        ("s_guides_csp", "dynamics_365_guides", true, Csp, Active),
        (
            "s_guides_pending",
            "dynamics_365_guides",
            true,
            VolumeLicensing,
            PendingProvisioning,
        ),
        (
            "s_guides_nd",
            "dynamics_365_guides",
            false,
            WebDirect,
            Expired,
        ),
        // Microsoft 365 products in each situation.
        (
            "s_e3_pending",
            "microsoft_365_e3",
            false,
            Csp,
            PendingProvisioning,
        ),
        (
            "s_f3_expired",
            "microsoft_365_f3",
            false,
            WebDirect,
            Expired,
        ),
        (
            "s_bp_disabled",
            "microsoft_365_business_premium",
            false,
            VolumeLicensing,
            Disabled,
        ),
        (
            "s_apps_pending",
            "microsoft_365_apps",
            false,
            Csp,
            PendingProvisioning,
        ),
        ("s_apps_expired", "microsoft_365_apps", false, Csp, Expired),
        (
            "s_f1_expired",
            "microsoft_365_f1",
            false,
            VolumeLicensing,
            Expired,
        ),
        ("s_f1_grace", "microsoft_365_f1", false, WebDirect, InGrace),
    ];
    subs.into_iter()
        .map(|(name, product, dynamics, channel, state)| {
            subscription_upserted(subscription(name, "t1", product, dynamics, channel, state))
        })
        .collect()
}

fn given() -> Given {
    Given::standard().and_events(extra_subscriptions())
}

/// A claim of P-100 on `product` with the given changes applied.
fn claim_on(product: &str) -> SubmitClaim {
    SubmitClaim {
        product: product.to_string(),
        ..sales_claim("c1", "P-100")
    }
}

fn with_subscription(product: &str, subscription: &str) -> SubmitClaim {
    SubmitClaim {
        subscription_id: Some(uid(subscription).to_string()),
        ..claim_on(product)
    }
}

fn m365(product: &str) -> SubmitClaim {
    SubmitClaim {
        solution_area: SolutionArea::Microsoft365,
        ..claim_on(product)
    }
}

#[test]
fn an_accepted_claim_records_everything_the_reply_and_the_views_need() {
    let then = Given::standard()
        .when(
            partner("P-100"),
            Command::Submit(sales_claim("c1", "P-100")),
        )
        .then_data(&[EventData::ClaimSubmitted(ClaimSubmitted {
            claim_id: uid("c1"),
            partner_id: "P-100".to_string(),
            mpn_id: "4412001".to_string(),
            tenant_id: uid("t1"),
            domain: "contoso.com".to_string(),
            solution_area: SolutionArea::BusinessApplications,
            activity: Activity::Usage,
            product: "dynamics_365_sales".to_string(),
            subscription_ids: vec![uid("s_sales")],
            incentive_eligible: true,
            proof_of_execution: poe("sow.pdf"),
            note: None,
            review_due_at: time("2026-12-03T00:00:00Z"),
        })])
        .then_actors(&[partner("P-100")])
        .then_warnings(&[]);
    assert_eq!(then.decision().claim_id, Some(uid("c1")));
    let world = then.applied();
    let claim = world.claim(uid("c1"));
    assert_eq!(claim.status, ClaimStatus::Submitted);
    assert_eq!(claim.version, 1);
    assert_eq!(claim.submitted_at, time(T0));
    assert!(!claim.disputed && !claim.overdue);
    assert_eq!(claim.arbitration_case_id(), None);
    assert_eq!(
        world.state.deadlines.iter().copied().collect::<Vec<_>>(),
        [(
            time("2026-12-03T00:00:00Z"),
            uid("c1"),
            DeadlineKind::Review
        )]
    );
}

/// Contract §6: submitted Wednesday 2026-11-25 at any time → due
/// 2026-12-03T00:00:00Z.
#[test]
fn the_review_deadline_is_five_business_days_after_the_submission_day() {
    for at in [
        "2026-11-25T00:00:00Z",
        "2026-11-25T09:00:00Z",
        "2026-11-25T23:59:59Z",
    ] {
        let then = Given::from(World::standard_at(at)).when(
            partner("P-100"),
            Command::Submit(sales_claim("c1", "P-100")),
        );
        let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
            panic!("not a submission")
        };
        assert_eq!(
            submitted.review_due_at,
            time("2026-12-03T00:00:00Z"),
            "submitted at {at}"
        );
    }
}

#[test]
fn the_note_is_kept() {
    let then = Given::standard().when(
        partner("P-100"),
        Command::Submit(SubmitClaim {
            note: Some("Deployed in Q3".to_string()),
            ..sales_claim("c1", "P-100")
        }),
    );
    let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
        panic!("not a submission")
    };
    assert_eq!(submitted.note.as_deref(), Some("Deployed in Q3"));
}

/// Every submit error code of the contract's table, alone and combined.
#[test]
fn each_broken_rule_is_a_reason_in_precedence_order() {
    let cases: Vec<(&str, &str, SubmitClaim, &[ErrorCode])> = vec![
        (
            // An unknown tenant has no subscription of the product either.
            "unknown tenant",
            "P-100",
            SubmitClaim {
                tenant_id: uid("t9"),
                ..claim_on("dynamics_365_sales")
            },
            &[TenantUnknown, ProductNotOnTenant],
        ),
        (
            "unknown tenant with a subscription of another tenant",
            "P-100",
            SubmitClaim {
                tenant_id: uid("t9"),
                ..with_subscription("dynamics_365_sales", "s_sales")
            },
            &[TenantUnknown, ProductNotOnTenant],
        ),
        (
            "a domain of another tenant",
            "P-100",
            SubmitClaim {
                domain: "fabrikam.onmicrosoft.com".to_string(),
                ..claim_on("dynamics_365_sales")
            },
            &[DomainTenantMismatch],
        ),
        (
            "a domain nobody registered",
            "P-100",
            SubmitClaim {
                domain: "contoso.org".to_string(),
                ..claim_on("dynamics_365_sales")
            },
            &[DomainTenantMismatch],
        ),
        (
            "microsoft_365 presales",
            "P-100",
            SubmitClaim {
                activity: Activity::Presales,
                ..m365("microsoft_365_e5")
            },
            &[ActivityNotAllowed],
        ),
        (
            "microsoft_365 revenue association",
            "P-100",
            SubmitClaim {
                activity: Activity::RevenueAssociation,
                ..m365("microsoft_365_e5")
            },
            &[ActivityNotAllowed],
        ),
        (
            "unknown partner",
            "P-999",
            claim_on("dynamics_365_sales"),
            &[PartnerUnknown],
        ),
        (
            "another partner's MPN",
            "P-100",
            SubmitClaim {
                mpn_id: "5500001".to_string(),
                ..claim_on("dynamics_365_sales")
            },
            &[MpnNotOwned],
        ),
        (
            "not a uuid",
            "P-100",
            SubmitClaim {
                subscription_id: Some("ORD-2026-0042".to_string()),
                ..claim_on("dynamics_365_sales")
            },
            &[NotASubscriptionId],
        ),
        (
            "an empty subscription id",
            "P-100",
            SubmitClaim {
                subscription_id: Some(String::new()),
                ..claim_on("dynamics_365_sales")
            },
            &[NotASubscriptionId],
        ),
        (
            "a uuid never seen",
            "P-100",
            with_subscription("dynamics_365_sales", "s_never_seen"),
            &[SubscriptionUnknown],
        ),
        (
            "no subscription of the product on the tenant",
            "P-100",
            claim_on("dynamics_365_human_resources"),
            &[ProductNotOnTenant],
        ),
        (
            "a subscription of another tenant",
            "P-100",
            with_subscription("dynamics_365_sales", "s_t2_sales"),
            &[ProductNotOnTenant],
        ),
        (
            "a subscription of another product",
            "P-100",
            with_subscription("dynamics_365_sales", "s_cs_grace"),
            &[ProductNotOnTenant],
        ),
        (
            "a non-Dynamics product",
            "P-100",
            claim_on("power_bi_pro"),
            &[SubscriptionNotDynamics],
        ),
        (
            "a non-Dynamics subscription",
            "P-100",
            with_subscription("power_bi_pro", "s_powerbi"),
            &[SubscriptionNotDynamics],
        ),
        (
            "a CSP product",
            "P-100",
            claim_on("dynamics_365_finance"),
            &[SubscriptionIsCsp],
        ),
        (
            "a CSP subscription",
            "P-100",
            with_subscription("dynamics_365_finance", "s_csp"),
            &[SubscriptionIsCsp],
        ),
        (
            "a subscription pending provisioning",
            "P-100",
            with_subscription("dynamics_365_field_service", "s_pending"),
            &[SubscriptionNotProvisioned],
        ),
        (
            "a product only pending provisioning",
            "P-100",
            claim_on("dynamics_365_field_service"),
            &[SubscriptionNotProvisioned],
        ),
        (
            "an expired subscription",
            "P-100",
            with_subscription("dynamics_365_marketing", "s_expired"),
            &[SubscriptionNotActive],
        ),
        (
            "a disabled subscription",
            "P-100",
            with_subscription("dynamics_365_project_operations", "s_disabled"),
            &[SubscriptionNotActive],
        ),
        (
            "CSP and expired (the contract's example)",
            "P-100",
            with_subscription("dynamics_365_supply_chain", "s_csp_expired"),
            &[SubscriptionIsCsp, SubscriptionNotActive],
        ),
        (
            "by product, no subscription passes: the reasons of all of them",
            "P-100",
            claim_on("dynamics_365_guides"),
            &[
                SubscriptionNotDynamics,
                SubscriptionIsCsp,
                SubscriptionNotProvisioned,
                SubscriptionNotActive,
            ],
        ),
        (
            // Contract §1: one given is INVALID_COMMAND.
            "microsoft_365 with a subscription_id",
            "P-100",
            SubmitClaim {
                subscription_id: Some(uid("s_m365").to_string()),
                ..m365("microsoft_365_e5")
            },
            &[InvalidCommand],
        ),
        (
            "microsoft_365, no subscription of the product",
            "P-100",
            m365("microsoft_365_e1"),
            &[ProductNotOnTenant],
        ),
        (
            "microsoft_365, only pending",
            "P-100",
            m365("microsoft_365_e3"),
            &[SubscriptionNotProvisioned],
        ),
        (
            "microsoft_365, only expired",
            "P-100",
            m365("microsoft_365_f3"),
            &[SubscriptionNotActive],
        ),
        (
            "microsoft_365, only disabled",
            "P-100",
            m365("microsoft_365_business_premium"),
            &[SubscriptionNotActive],
        ),
        (
            "microsoft_365, pending and expired",
            "P-100",
            m365("microsoft_365_apps"),
            &[SubscriptionNotProvisioned, SubscriptionNotActive],
        ),
        (
            // Contract §1 ties each rule to a solution area: a microsoft_365
            // claim rests on the tenant's Microsoft 365 subscriptions of the
            // product. Naming a Dynamics product there must not skip the
            // Dynamics checks (here: CSP), so the tenant has no Microsoft 365
            // subscription of it: PRODUCT_NOT_ON_TENANT.
            "microsoft_365 claim on a CSP Dynamics product",
            "P-100",
            m365("dynamics_365_finance"),
            &[ProductNotOnTenant],
        ),
        (
            "microsoft_365 claim on an active Dynamics product",
            "P-100",
            m365("dynamics_365_sales"),
            &[ProductNotOnTenant],
        ),
        (
            "business_applications claim on a Microsoft 365 product",
            "P-100",
            claim_on("microsoft_365_e5"),
            &[SubscriptionNotDynamics, SubscriptionIsCsp],
        ),
        (
            "unknown tenant, bad activity and unknown partner at once",
            "P-999",
            SubmitClaim {
                tenant_id: uid("t9"),
                activity: Activity::Presales,
                ..m365("microsoft_365_e5")
            },
            &[
                TenantUnknown,
                ActivityNotAllowed,
                PartnerUnknown,
                ProductNotOnTenant,
            ],
        ),
        (
            "wrong domain, foreign MPN and a CSP subscription at once",
            "P-100",
            SubmitClaim {
                domain: "fabrikam.onmicrosoft.com".to_string(),
                mpn_id: "6600001".to_string(),
                ..with_subscription("dynamics_365_finance", "s_csp")
            },
            &[DomainTenantMismatch, MpnNotOwned, SubscriptionIsCsp],
        ),
    ];
    for (what, partner_id, submit, reasons) in cases {
        let then = given().when(partner(partner_id), Command::Submit(submit));
        let rejection = then.rejection();
        assert_eq!(rejection.reasons, reasons, "{what}");
        assert_eq!(rejection.code, reasons[0], "{what}");
        assert_eq!(rejection.message, reasons[0].default_message(), "{what}");
    }
}

/// Accepted variations, with what the claim covers.
#[test]
fn accepted_submissions_cover_the_passing_subscriptions() {
    let cases: Vec<(&str, SubmitClaim, Vec<&str>)> = vec![
        (
            "by product",
            claim_on("dynamics_365_sales"),
            vec!["s_sales"],
        ),
        (
            "by subscription",
            with_subscription("dynamics_365_sales", "s_sales"),
            vec!["s_sales"],
        ),
        (
            "by subscription, upper-case uuid with blanks around",
            SubmitClaim {
                subscription_id: Some(format!(" {} ", uid("s_sales").to_string().to_uppercase())),
                ..claim_on("dynamics_365_sales")
            },
            vec!["s_sales"],
        ),
        (
            "in grace, web direct",
            claim_on("dynamics_365_customer_service"),
            vec!["s_cs_grace"],
        ),
        (
            "domain in another case",
            SubmitClaim {
                domain: "CONTOSO.onmicrosoft.COM".to_string(),
                ..claim_on("dynamics_365_sales")
            },
            vec!["s_sales"],
        ),
        (
            "presales",
            SubmitClaim {
                activity: Activity::Presales,
                ..claim_on("dynamics_365_sales")
            },
            vec!["s_sales"],
        ),
        // Of s_com_a (active), s_com_b (CSP) and s_com_c (in grace) the claim
        // covers a and c, sorted ascending.
        (
            "by product, some pass",
            claim_on("dynamics_365_commerce"),
            vec!["s_com_a", "s_com_c"],
        ),
        (
            "microsoft_365 on a live CSP subscription",
            m365("microsoft_365_e5"),
            vec![],
        ),
        (
            "microsoft_365 with one expired and one in grace",
            m365("microsoft_365_f1"),
            vec![],
        ),
    ];
    for (what, submit, covered) in cases {
        let then = given().when(partner("P-100"), Command::Submit(submit));
        let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
            panic!("{what}: not a submission")
        };
        let mut expected: Vec<_> = covered.iter().map(|s| uid(s)).collect();
        expected.sort();
        assert_eq!(submitted.subscription_ids, expected, "{what}");
        then.applied();
    }
}

#[test]
fn eligibility_needs_an_enrolled_mpn_and_never_comes_with_revenue_association() {
    let cases = [
        (
            "enrolled MPN, usage",
            "4412001",
            Activity::Usage,
            true,
            &[][..],
        ),
        (
            "enrolled MPN, presales",
            "4412001",
            Activity::Presales,
            true,
            &[][..],
        ),
        (
            "not enrolled MPN",
            "4412002",
            Activity::Usage,
            false,
            &["MPN_NOT_ENROLLED"][..],
        ),
        (
            "revenue association",
            "4412001",
            Activity::RevenueAssociation,
            false,
            &[][..],
        ),
        (
            "revenue association, not enrolled",
            "4412002",
            Activity::RevenueAssociation,
            false,
            &["MPN_NOT_ENROLLED"][..],
        ),
    ];
    for (what, mpn, activity, eligible, warnings) in cases {
        let then = Given::standard()
            .when(
                partner("P-100"),
                Command::Submit(SubmitClaim {
                    mpn_id: mpn.to_string(),
                    activity,
                    ..sales_claim("c1", "P-100")
                }),
            )
            .then_events(&["claim.submitted"])
            .then_warnings(warnings);
        let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
            panic!("not a submission")
        };
        assert_eq!(submitted.incentive_eligible, eligible, "{what}");
        assert_eq!(
            then.applied().claim(uid("c1")).incentive_eligible,
            eligible,
            "{what}"
        );
    }
}

#[test]
fn a_claim_id_already_used_is_claim_exists_whoever_used_it() {
    for (owner, submitter) in [("P-100", "P-100"), ("P-200", "P-100")] {
        Given::standard()
            .history(|w| {
                w.sales(owner, "c1");
            })
            .when(
                partner(submitter),
                Command::Submit(SubmitClaim {
                    activity: Activity::Presales,
                    ..sales_claim("c1", submitter)
                }),
            )
            .then_error(ClaimExists);
    }
}

/// SUBSCRIPTION_ALREADY_CLAIMED: the same partner has a claim in an open
/// status or approved on the key; a rejected, withdrawn or ended one does
/// not count.
#[test]
fn one_partner_holds_a_key_once_while_its_claim_is_open_or_approved() {
    use ClaimStatus::*;
    let cases = [
        (Submitted, false),
        (UnderReview, false),
        (PartnerActionRequired, false),
        (Approved, false),
        (Rejected, true),
        (Withdrawn, true),
        (Ended, true),
    ];
    for (earlier, accepted) in cases {
        let then = Given::standard()
            .history(|w| {
                w.sales_in("P-100", "c0", earlier);
            })
            .when(
                partner("P-100"),
                Command::Submit(sales_claim("c1", "P-100")),
            );
        if accepted {
            then.then_events(&["claim.submitted"]).applied();
        } else {
            then.then_reasons(&[SubscriptionAlreadyClaimed]);
        }
    }
}

#[test]
fn already_claimed_is_listed_with_the_other_broken_rules() {
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c0");
        })
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                mpn_id: "0000000".to_string(),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_reasons(&[MpnNotOwned, SubscriptionAlreadyClaimed]);
}

#[test]
fn the_key_is_tenant_product_and_activity() {
    // Same tenant and product, another activity: another key.
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c0");
        })
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                activity: Activity::Presales,
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_events(&["claim.submitted"]);
    // Same product on another tenant: another key.
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c0");
        })
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                tenant_id: uid("t2"),
                domain: "fabrikam.onmicrosoft.com".to_string(),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_events(&["claim.submitted"]);
}

#[test]
fn a_microsoft_365_claim_covers_no_subscription_ids() {
    let world = Given::standard()
        .when(partner("P-100"), Command::Submit(m365_claim("c1", "P-100")))
        .then_events(&["claim.submitted"])
        .then_warnings(&[])
        .applied();
    let claim = world.claim(uid("c1"));
    assert!(claim.subscription_ids.is_empty());
    assert!(claim.incentive_eligible);
}

/// Issue 11 case 1: a claim without `subscription_id` covers every usable
/// subscription of its product; beyond `SUBSCRIPTIONS_PER_CLAIM_MAX` (a
/// state from a log written before the limit on subscriptions per tenant
/// and product) the event would be too large to publish, so the submit must
/// name one.
/// Exactly the limit is accepted, one more is `INVALID_COMMAND` naming
/// `subscription_id` (listed with the other broken rules), and naming one
/// of them is accepted.
#[test]
fn a_claim_covers_at_most_the_named_number_of_subscriptions() {
    use crate::limits::SUBSCRIPTIONS_PER_CLAIM_MAX as COVERED_SUBSCRIPTIONS_MAX;
    let many = |n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| {
                subscription_upserted(subscription(
                    &format!("s_many_{i}"),
                    "t1",
                    "dynamics_365_field_service",
                    true,
                    Channel::VolumeLicensing,
                    SubscriptionState::Active,
                ))
            })
            .collect()
    };
    let at_limit = Given::standard().and_events(many(COVERED_SUBSCRIPTIONS_MAX));
    let then = at_limit.when(
        partner("P-100"),
        Command::Submit(claim_on("dynamics_365_field_service")),
    );
    let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
        panic!("not a submission")
    };
    assert_eq!(submitted.subscription_ids.len(), COVERED_SUBSCRIPTIONS_MAX);

    let over = || Given::standard().and_events(many(COVERED_SUBSCRIPTIONS_MAX + 1));
    let then = over().when(
        partner("P-100"),
        Command::Submit(claim_on("dynamics_365_field_service")),
    );
    let rejection = then.rejection();
    assert_eq!(rejection.code, InvalidCommand);
    assert!(
        rejection.message.starts_with("subscription_id:")
            && rejection
                .message
                .contains(&COVERED_SUBSCRIPTIONS_MAX.to_string()),
        "{}",
        rejection.message
    );
    // With another broken rule, both are listed.
    let then = over().when(
        partner("P-100"),
        Command::Submit(SubmitClaim {
            mpn_id: "9999999".to_string(),
            ..claim_on("dynamics_365_field_service")
        }),
    );
    assert_eq!(then.rejection().reasons, vec![InvalidCommand, MpnNotOwned]);
    let then = over().when(
        partner("P-100"),
        Command::Submit(with_subscription("dynamics_365_field_service", "s_many_7")),
    );
    let EventData::ClaimSubmitted(submitted) = &then.events()[0].data else {
        panic!("not a submission")
    };
    assert_eq!(submitted.subscription_ids, vec![uid("s_many_7")]);
}
