//! Contract §2: reference data upserts. Each is one event; an upsert
//! replaces the previous record of that id; versions count upserts.

use super::harness::*;
use crate::command::{Command, SubmitClaim};
use crate::error::ErrorCode::*;
use crate::event::{AggregateId, AggregateKind, EventData, PartnerUpserted, TenantUpserted};
use crate::types::{Channel, Mpn, SubscriptionState};

fn version(world: &World, kind: AggregateKind, id: &str) -> u64 {
    world.state.version_of(&AggregateId {
        kind,
        id: id.to_string(),
    })
}

#[test]
fn each_upsert_is_one_event_written_as_sent() {
    let record = subscription(
        "s_new",
        "t1",
        "dynamics_365_sales",
        true,
        Channel::WebDirect,
        SubscriptionState::Active,
    );
    let mpns = vec![Mpn {
        mpn_id: "7700001".to_string(),
        incentive_enrolled: false,
    }];
    let cases = [
        (
            Command::UpsertTenant {
                tenant_id: uid("t3"),
                domains: vec!["northwind.com".to_string()],
            },
            EventData::TenantUpserted(TenantUpserted {
                tenant_id: uid("t3"),
                domains: vec!["northwind.com".to_string()],
            }),
        ),
        (
            Command::UpsertSubscription(record.clone()),
            EventData::SubscriptionUpserted(record),
        ),
        (
            Command::UpsertPartner {
                partner_id: "P-400".to_string(),
                mpns: mpns.clone(),
            },
            EventData::PartnerUpserted(PartnerUpserted {
                partner_id: "P-400".to_string(),
                mpns,
            }),
        ),
    ];
    for (command, data) in cases {
        let then = Given::standard()
            .when(system(), command)
            .then_data(std::slice::from_ref(&data))
            .then_actors(&[system()])
            .then_warnings(&[]);
        assert_eq!(then.decision().claim_id, None);
        let world = then.applied();
        let aggregate = data.aggregate();
        assert_eq!(world.state.version_of(&aggregate), 1, "{aggregate:?}");
    }
}

#[test]
fn a_tenant_upsert_replaces_its_domains() {
    let mut w = World::standard();
    w.exec(
        system(),
        Command::UpsertTenant {
            tenant_id: uid("t1"),
            domains: vec!["contoso.net".to_string()],
        },
    );
    assert_eq!(
        version(&w, AggregateKind::Tenant, &uid("t1").to_string()),
        2
    );
    assert_eq!(w.state.tenants[&uid("t1")].domains, ["contoso.net"]);
    Given::from(w.clone())
        .when(
            partner("P-100"),
            Command::Submit(sales_claim("c1", "P-100")),
        )
        .then_reasons(&[DomainTenantMismatch]);
    Given::from(w)
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                domain: "contoso.net".to_string(),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_events(&["claim.submitted"]);
}

#[test]
fn a_subscription_upsert_replaces_its_record() {
    let mut w = World::standard();
    let field_service = || SubmitClaim {
        product: "dynamics_365_field_service".to_string(),
        ..sales_claim("c1", "P-100")
    };
    assert_eq!(
        w.try_exec(partner("P-100"), Command::Submit(field_service()))
            .unwrap_err()
            .reasons,
        [SubscriptionNotProvisioned]
    );
    // The customer finished provisioning.
    let provisioned = subscription(
        "s_pending",
        "t1",
        "dynamics_365_field_service",
        true,
        Channel::VolumeLicensing,
        SubscriptionState::Active,
    );
    w.exec(system(), Command::UpsertSubscription(provisioned.clone()));
    assert_eq!(w.state.subscriptions[&uid("s_pending")].record, provisioned);
    assert_eq!(
        version(
            &w,
            AggregateKind::Subscription,
            &uid("s_pending").to_string()
        ),
        2
    );
    Given::from(w)
        .when(partner("P-100"), Command::Submit(field_service()))
        .then_events(&["claim.submitted"]);
}

#[test]
fn a_partner_upsert_replaces_its_mpns() {
    let mut w = World::standard();
    for round in 0..3 {
        w.exec(
            system(),
            Command::UpsertPartner {
                partner_id: "P-100".to_string(),
                mpns: vec![Mpn {
                    mpn_id: format!("880000{round}"),
                    incentive_enrolled: true,
                }],
            },
        );
    }
    assert_eq!(version(&w, AggregateKind::Partner, "P-100"), 4);
    assert_eq!(w.state.partners["P-100"].mpns.len(), 1);
    Given::from(w.clone())
        .when(
            partner("P-100"),
            Command::Submit(sales_claim("c1", "P-100")),
        )
        .then_reasons(&[MpnNotOwned]);
    Given::from(w)
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                mpn_id: "8800002".to_string(),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_events(&["claim.submitted"])
        .then_warnings(&[]);
}

#[test]
fn without_reference_data_nothing_can_be_claimed() {
    Given::events(vec![])
        .when(
            partner("P-100"),
            Command::Submit(sales_claim("c1", "P-100")),
        )
        .then_reasons(&[TenantUnknown, PartnerUnknown, ProductNotOnTenant]);
}

#[test]
fn the_standard_fixture_holds_what_the_scenarios_expect() {
    let world = World::standard();
    assert_eq!(world.state.tenants.len(), 2);
    assert_eq!(world.state.subscriptions.len(), 8);
    assert_eq!(world.state.partners.len(), 3);
    assert!(world.state.claims.is_empty() && world.state.deadlines.is_empty());
    assert_eq!(world.log.len(), 13);
}

/// Issue 11 case 12: domains compare as DNS names, in reference data and
/// claims alike: Unicode case, NFD spellings, A-labels, one trailing dot.
#[test]
fn domains_compare_as_dns_names() {
    // (registered, claimed): each pair is one name.
    let same = [
        ("müller-bau.example", "MÜLLER-BAU.EXAMPLE"),
        ("MÜLLER-BAU.EXAMPLE", "müller-bau.example"),
        ("müller-bau.example", "xn--mller-bau-q9a.example"),
        ("xn--mller-bau-q9a.example", "Müller-Bau.example"),
        ("müller-bau.example", "mu\u{308}ller-bau.example"),
        ("mu\u{308}ller-bau.example", "MÜLLER-BAU.EXAMPLE."),
        ("contoso.com.", "contoso.com"),
        ("contoso.com", "CONTOSO.COM."),
    ];
    for (registered, claimed) in same {
        let mut w = World::standard();
        w.exec(
            system(),
            Command::UpsertTenant {
                tenant_id: uid("t1"),
                domains: vec![registered.to_string()],
            },
        );
        Given::from(w)
            .when(
                partner("P-100"),
                Command::Submit(SubmitClaim {
                    domain: claimed.to_string(),
                    ..sales_claim("c1", "P-100")
                }),
            )
            .then_events(&["claim.submitted"]);
    }
    // Different names stay different.
    for (registered, claimed) in [
        ("müller-bau.example", "muller-bau.example"),
        ("contoso.com", "contoso.com.."),
    ] {
        let mut w = World::standard();
        w.exec(
            system(),
            Command::UpsertTenant {
                tenant_id: uid("t1"),
                domains: vec![registered.to_string()],
            },
        );
        Given::from(w)
            .when(
                partner("P-100"),
                Command::Submit(SubmitClaim {
                    domain: claimed.to_string(),
                    ..sales_claim("c1", "P-100")
                }),
            )
            .then_reasons(&[DomainTenantMismatch]);
    }
}

/// Issue 11 case 11: a tenant holds at most
/// `SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX` subscriptions of one product; one
/// more is `InvalidCommand` naming `subscription_id`, an update of a held
/// one and another product are not refused.
#[test]
fn subscriptions_per_tenant_and_product_are_bounded() {
    use crate::limits::SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX as MAX;
    let record = |i: usize, product: &str| {
        subscription(
            &format!("bulk-{product}-{i}"),
            "t1",
            product,
            true,
            Channel::VolumeLicensing,
            SubscriptionState::Active,
        )
    };
    let mut w = World::standard();
    let held = w
        .state
        .subscription_ids_of(uid("t1"), "dynamics_365_sales")
        .count();
    for i in held..MAX {
        w.exec(
            system(),
            Command::UpsertSubscription(record(i, "dynamics_365_sales")),
        );
    }
    let refused = w
        .try_exec(
            system(),
            Command::UpsertSubscription(record(MAX, "dynamics_365_sales")),
        )
        .unwrap_err();
    assert_eq!(refused.code, InvalidCommand);
    assert!(
        refused.message.starts_with("subscription_id:") && refused.message.contains("250"),
        "{}",
        refused.message
    );
    // Updating one the tenant holds is fine, and so is another product.
    let mut expired = record(held, "dynamics_365_sales");
    expired.state = SubscriptionState::Expired;
    w.exec(system(), Command::UpsertSubscription(expired));
    w.exec(
        system(),
        Command::UpsertSubscription(record(0, "dynamics_365_marketing")),
    );
    // A claim covers at most that many subscriptions.
    let decision = w.exec(
        partner("P-100"),
        Command::Submit(SubmitClaim {
            subscription_id: None,
            ..sales_claim("c1", "P-100")
        }),
    );
    let EventData::ClaimSubmitted(submitted) = &decision.events[0].data else {
        panic!("not a submission: {:?}", decision.events[0]);
    };
    assert!(submitted.subscription_ids.len() <= crate::limits::SUBSCRIPTIONS_PER_CLAIM_MAX);
}

/// Issue 11 case 10: a `subscription_id` that is a uuid in another spelling
/// than RFC 4122's hyphenated form is no subscription id.
#[test]
fn a_subscription_id_in_another_uuid_spelling_is_not_a_subscription_id() {
    let id = uid("s_sales").to_string();
    for spelling in [
        format!("{{{id}}}"),
        format!("urn:uuid:{id}"),
        id.replace('-', ""),
    ] {
        Given::standard()
            .when(
                partner("P-100"),
                Command::Submit(SubmitClaim {
                    subscription_id: Some(spelling),
                    ..sales_claim("c1", "P-100")
                }),
            )
            .then_reasons(&[NotASubscriptionId]);
    }
    Given::standard()
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                subscription_id: Some(id.to_uppercase()),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_events(&["claim.submitted"]);
}
