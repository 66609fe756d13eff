//! Contract §3, actors: which actor type may send which command, and which
//! partner roles count. `authorize` is stateless, so these tests need no
//! history.

use super::harness::*;
use crate::access::authorize_envelope as authorize;
use crate::command::{Command, CommandEnvelope};
use crate::error::ErrorCode;
use crate::types::{Actor, ActorKind, DeadlineKind, Mpn};

/// Every command, named as the contract's subjects name them, with the
/// actor kinds the contract lets send it.
fn every_command() -> Vec<(&'static str, Command, &'static [ActorKind])> {
    use ActorKind::*;
    let c = uid("c1");
    vec![
        (
            "ref.tenant",
            Command::UpsertTenant {
                tenant_id: uid("t1"),
                domains: vec!["contoso.com".to_string()],
            },
            &[System],
        ),
        (
            "ref.subscription",
            Command::UpsertSubscription(subscription(
                "s_sales",
                "t1",
                "dynamics_365_sales",
                true,
                crate::types::Channel::VolumeLicensing,
                crate::types::SubscriptionState::Active,
            )),
            &[System],
        ),
        (
            "ref.partner",
            Command::UpsertPartner {
                partner_id: "P-100".to_string(),
                mpns: vec![Mpn {
                    mpn_id: "4412001".to_string(),
                    incentive_enrolled: true,
                }],
            },
            &[System],
        ),
        (
            "partner.submit",
            Command::Submit(sales_claim("c1", "P-100")),
            &[Partner],
        ),
        (
            "partner.comment / review.comment",
            cmd::comment(c),
            &[Partner, Reviewer],
        ),
        ("partner.submit_poe", cmd::submit_poe(c), &[Partner]),
        ("partner.withdraw", cmd::withdraw(c), &[Partner]),
        ("partner.dispute", cmd::dispute(c), &[Partner]),
        ("partner.disassociate", cmd::disassociate(c), &[Partner]),
        ("review.start", cmd::start(c), &[Reviewer]),
        ("review.request_poe", cmd::request_poe(c), &[Reviewer]),
        ("review.approve", cmd::approve(c), &[Reviewer]),
        ("review.reject", cmd::reject(c), &[Reviewer]),
        ("customer.decline", cmd::decline(c), &[Customer]),
        (
            "deadline (the scheduler)",
            cmd::deadline(c, DeadlineKind::Review, time(T0)),
            &[System],
        ),
    ]
}

/// Actors, and the kind each one acts as: `None` for a partner user whose
/// roles grant nothing.
fn every_actor() -> Vec<(&'static str, Actor, Option<ActorKind>)> {
    use ActorKind::*;
    vec![
        (
            "partner incentives_admin",
            partner_with_roles("P-100", &["incentives_admin"]),
            Some(Partner),
        ),
        (
            "partner global_admin",
            partner_with_roles("P-100", &["global_admin"]),
            Some(Partner),
        ),
        (
            "partner billing_admin",
            partner_with_roles("P-100", &["billing_admin"]),
            Some(Partner),
        ),
        (
            "partner with an extra unknown role",
            partner_with_roles("P-100", &["sales_agent", "billing_admin"]),
            Some(Partner),
        ),
        (
            "partner without roles",
            partner_with_roles("P-100", &[]),
            None,
        ),
        (
            "partner sales_agent",
            partner_with_roles("P-100", &["sales_agent"]),
            None,
        ),
        // Role strings are compared as the contract spells them: another
        // spelling is "another role string" and grants nothing.
        (
            "partner Incentives_Admin",
            partner_with_roles("P-100", &["Incentives_Admin"]),
            None,
        ),
        ("reviewer", reviewer(), Some(Reviewer)),
        ("customer", customer("t1"), Some(Customer)),
        ("system", system(), Some(System)),
    ]
}

#[test]
fn every_command_is_allowed_exactly_to_its_actor_types() {
    let mut checked = 0;
    for (command_name, command, allowed) in every_command() {
        for (actor_name, actor, acts_as) in every_actor() {
            let envelope = CommandEnvelope {
                command_id: uid("cmd"),
                actor,
                correlation_id: None,
                traceparent: None,
                expected_version: None,
                command: command.clone(),
            };
            let expected_ok = acts_as.is_some_and(|kind| allowed.contains(&kind));
            match authorize(&envelope) {
                Ok(()) => assert!(expected_ok, "{actor_name} may not send {command_name}"),
                Err(rejection) => {
                    assert!(
                        !expected_ok,
                        "{actor_name} may send {command_name}: {rejection:?}"
                    );
                    assert_well_formed(&rejection);
                    assert_eq!(
                        rejection.reasons,
                        [ErrorCode::Forbidden],
                        "{actor_name} / {command_name}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 15 * 10);
}

#[test]
fn a_partner_without_an_allowed_role_is_told_which_roles_work() {
    Given::standard()
        .when(
            partner_with_roles("P-100", &["sales_agent"]),
            Command::Submit(sales_claim("c1", "P-100")),
        )
        .then_error(ErrorCode::Forbidden)
        .then_reasons(&[ErrorCode::Forbidden]);
    let envelope = CommandEnvelope {
        command_id: uid("cmd"),
        actor: partner_with_roles("P-100", &[]),
        correlation_id: None,
        traceparent: None,
        expected_version: None,
        command: cmd::withdraw(uid("c1")),
    };
    let rejection = authorize(&envelope).unwrap_err();
    // By their wire values, as the actor must send them.
    for role in ["global_admin", "billing_admin", "incentives_admin"] {
        assert!(
            rejection.message.contains(role),
            "{role}: {}",
            rejection.message
        );
    }
}

/// FORBIDDEN comes before any state-dependent code: a partner without a
/// role is refused even on a claim that does not exist.
#[test]
fn forbidden_comes_before_claim_not_found() {
    Given::standard()
        .when(partner_with_roles("P-100", &[]), cmd::withdraw(uid("nope")))
        .then_reasons(&[ErrorCode::Forbidden]);
    Given::standard()
        .when(customer("t1"), cmd::approve(uid("nope")))
        .then_reasons(&[ErrorCode::Forbidden]);
}
