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
