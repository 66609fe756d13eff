//! Contract §3, §4 and v1.1 §8a: who may do what, on which subject, and
//! which claims they see — all decided by [`crate::access::authorize`].
//!
//! ```text
//! on(Scope::Partner("P-100"))           // the subject's scope
//!     .by(partner("P-100"))             // the body's actor
//!     .when(Action::ReadClaim)
//!     .then_sees(Visibility::Partner("P-100"));
//! ```

use super::harness::*;
use crate::access::{authorize, may_see, Action, Scope, Visibility};
use crate::command::Command;
use crate::error::{ErrorCode, Rejection};
use crate::types::{Actor, DeadlineKind};

struct On(Scope);
struct By(Scope, Actor);
struct Outcome(Result<Visibility, Rejection>, String);

/// Given a request on a subject of `scope`…
fn on(scope: Scope) -> On {
    On(scope)
}

impl On {
    /// …whose body names `actor`…
    fn by(self, actor: Actor) -> By {
        By(self.0, actor)
    }
}

impl By {
    /// …when it asks for `action`.
    fn when(self, action: Action<'_>) -> Outcome {
        let what = format!("{:?} by {:?} on {:?}", action, self.1, self.0);
        Outcome(authorize(&self.0, &self.1, action), what)
    }
}

impl Outcome {
    fn then_sees(self, expected: Visibility) {
        match self.0 {
            Ok(visibility) => assert_eq!(visibility, expected, "{}", self.1),
            Err(rejection) => panic!("{}: refused: {rejection:?}", self.1),
        }
    }

    /// Refused with `FORBIDDEN` and a message containing `fragment`.
    fn then_forbidden(self, fragment: &str) {
        match self.0 {
            Ok(visibility) => panic!("{}: allowed, sees {visibility:?}", self.1),
            Err(rejection) => {
                assert_eq!(rejection.code, ErrorCode::Forbidden, "{}", self.1);
                assert_eq!(rejection.reasons, [ErrorCode::Forbidden], "{}", self.1);
                assert!(
                    rejection.message.contains(fragment),
                    "{}: {:?} does not say {fragment:?}",
                    self.1,
                    rejection.message
                );
            }
        }
    }
}

fn partner_scope(id: &str) -> Scope {
    Scope::Partner(id.to_string())
}

fn sees_partner(id: &str) -> Visibility {
    Visibility::Partner(id.to_string())
}

fn list(partner_id: Option<&'static str>, tenant: Option<&str>) -> Action<'static> {
    Action::ListClaims {
        partner_id,
        tenant_id: tenant.map(uid),
    }
}

#[test]
fn a_partner_reads_its_own_claims_on_its_scoped_subjects() {
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(Action::ReadClaim)
        .then_sees(sees_partner("P-100"));
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(list(None, None))
        .then_sees(sees_partner("P-100"));
    // Naming itself, or narrowing to a tenant, stays within its claims.
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(list(Some("P-100"), Some("t1")))
        .then_sees(sees_partner("P-100"));
}

#[test]
fn a_partner_scoped_subject_refuses_everything_beyond_that_partner() {
    // A filter naming another partner.
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(list(Some("P-200"), None))
        .then_forbidden("only its own claims");
    // Another partner's subject.
    on(partner_scope("P-200"))
        .by(partner("P-100"))
        .when(Action::ReadClaim)
        .then_forbidden("The subject is for partner P-200 but the actor is partner P-100.");
    // Any other actor type.
    for actor in [reviewer(), customer("t1"), system()] {
        on(partner_scope("P-100"))
            .by(actor)
            .when(list(None, None))
            .then_forbidden("This subject takes a partner actor");
    }
    // A partner user whose roles grant nothing.
    on(partner_scope("P-100"))
        .by(partner_with_roles("P-100", &["sales_agent"]))
        .when(Action::ReadClaim)
        .then_forbidden(
            "needs one of the partner roles global_admin, billing_admin, incentives_admin in \
             actor.roles to see claims",
        );
    // Arbitration cases are not a partner's.
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(Action::ReadCases)
        .then_forbidden("for reviewers");
}

#[test]
fn a_customer_reads_its_tenants_claims_on_its_scoped_subjects() {
    on(Scope::Customer(uid("t1")))
        .by(customer("t1"))
        .when(Action::ReadClaim)
        .then_sees(Visibility::Tenant(uid("t1")));
    // A partner filter narrows within the tenant.
    on(Scope::Customer(uid("t1")))
        .by(customer("t1"))
        .when(list(Some("P-200"), Some("t1")))
        .then_sees(Visibility::Tenant(uid("t1")));
    on(Scope::Customer(uid("t1")))
        .by(customer("t1"))
        .when(list(None, Some("t2")))
        .then_forbidden("only its own tenant's claims");
    on(Scope::Customer(uid("t1")))
        .by(customer("t2"))
        .when(Action::ReadClaim)
        .then_forbidden("The subject's tenant is not the customer's tenant.");
    for actor in [partner("P-100"), reviewer(), system()] {
        on(Scope::Customer(uid("t1")))
            .by(actor)
            .when(Action::ReadClaim)
            .then_forbidden("This subject takes a customer actor");
    }
}

#[test]
fn the_unscoped_subjects_give_each_actor_what_its_actor_may_see() {
    on(Scope::Console)
        .by(reviewer())
        .when(list(Some("P-200"), None))
        .then_sees(Visibility::Every);
    on(Scope::Console)
        .by(system())
        .when(Action::ReadClaim)
        .then_sees(Visibility::Every);
    on(Scope::Console)
        .by(partner("P-100"))
        .when(list(None, None))
        .then_sees(sees_partner("P-100"));
    on(Scope::Console)
        .by(partner("P-100"))
        .when(list(Some("P-200"), None))
        .then_forbidden("only its own claims");
    on(Scope::Console)
        .by(customer("t1"))
        .when(Action::ReadClaim)
        .then_sees(Visibility::Tenant(uid("t1")));
    on(Scope::Console)
        .by(reviewer())
        .when(Action::ReadCases)
        .then_sees(Visibility::Every);
    for actor in [partner("P-100"), customer("t1")] {
        on(Scope::Console)
            .by(actor)
            .when(Action::ReadCases)
            .then_forbidden("Arbitration cases are for reviewers.");
    }
}

#[test]
fn commands_need_the_actor_of_their_subject() {
    let submit = Command::Submit(sales_claim("c1", "P-100"));
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(Action::Command(&submit))
        .then_sees(sees_partner("P-100"));
    on(partner_scope("P-200"))
        .by(partner("P-100"))
        .when(Action::Command(&submit))
        .then_forbidden("The subject is for partner P-200");
    on(partner_scope("P-100"))
        .by(partner_with_roles("P-100", &[]))
        .when(Action::Command(&submit))
        .then_forbidden(
            "global_admin, billing_admin, incentives_admin in actor.roles to work on claims",
        );
    let approve = cmd::approve(uid("c1"));
    on(Scope::Review)
        .by(reviewer())
        .when(Action::Command(&approve))
        .then_sees(Visibility::Every);
    on(Scope::Review)
        .by(partner("P-100"))
        .when(Action::Command(&approve))
        .then_forbidden("This subject takes a reviewer actor, not a partner.");
    // Right subject family, wrong command for the actor type.
    on(partner_scope("P-100"))
        .by(partner("P-100"))
        .when(Action::Command(&approve))
        .then_forbidden("A partner actor may not send this command.");
    let decline = cmd::decline(uid("c1"));
    on(Scope::Customer(uid("t1")))
        .by(customer("t1"))
        .when(Action::Command(&decline))
        .then_sees(Visibility::Tenant(uid("t1")));
    on(Scope::Customer(uid("t2")))
        .by(customer("t1"))
        .when(Action::Command(&decline))
        .then_forbidden("tenant");
    on(Scope::System)
        .by(system())
        .when(Action::SetClock)
        .then_sees(Visibility::Every);
    on(Scope::System)
        .by(reviewer())
        .when(Action::SetClock)
        .then_forbidden("This subject takes a system actor");
    on(Scope::Console)
        .by(reviewer())
        .when(Action::SetClock)
        .then_forbidden("The clock takes a system actor.");
}

/// Over every scope, actor and action: whatever is allowed sees exactly what
/// its actor may see, and a scoped subject allows only the actor of that
/// scope. So no subject ever grants more than its scope.
#[test]
fn no_subject_grants_beyond_its_scope() {
    let scopes = [
        partner_scope("P-100"),
        partner_scope("P-200"),
        Scope::Customer(uid("t1")),
        Scope::Customer(uid("t2")),
        Scope::Review,
        Scope::System,
        Scope::Console,
    ];
    let actors = [
        partner("P-100"),
        partner("P-200"),
        partner_with_roles("P-100", &["sales_agent"]),
        customer("t1"),
        customer("t2"),
        reviewer(),
        system(),
    ];
    let commands = [
        Command::Submit(sales_claim("c1", "P-100")),
        cmd::comment(uid("c1")),
        cmd::approve(uid("c1")),
        cmd::decline(uid("c1")),
        cmd::deadline(uid("c1"), DeadlineKind::Review, time(T0)),
    ];
    let mut actions: Vec<Action<'_>> = commands.iter().map(Action::Command).collect();
    actions.extend([
        Action::ReadClaim,
        list(None, None),
        list(Some("P-100"), None),
        list(None, Some("t1")),
        Action::ReadCases,
        Action::SetClock,
    ]);
    let mut allowed = 0;
    for scope in &scopes {
        for actor in &actors {
            for action in &actions {
                let Ok(visibility) = authorize(scope, actor, *action) else {
                    continue;
                };
                allowed += 1;
                assert_eq!(visibility, Visibility::of_actor(actor));
                assert!(
                    *scope == Scope::Console || *scope == Scope::of_actor(actor),
                    "{action:?} by {actor:?} allowed on {scope:?}"
                );
                if let Action::ListClaims {
                    partner_id,
                    tenant_id,
                } = action
                {
                    match &visibility {
                        Visibility::Partner(own) => {
                            assert!(partner_id.is_none_or(|p| p == own))
                        }
                        Visibility::Tenant(own) => assert!(tenant_id.is_none_or(|t| t == *own)),
                        Visibility::Every => {}
                    }
                }
            }
        }
    }
    assert!(allowed > 40, "{allowed}");
}

#[test]
fn partners_see_their_claims_customers_their_tenants_reviewers_all() {
    let mut world = World::standard();
    let c1 = world.sales("P-100", "c1");
    let claim = world.claim(c1).clone();
    assert!(may_see(&partner("P-100"), &claim));
    assert!(!may_see(&partner("P-200"), &claim));
    assert!(may_see(&customer("t1"), &claim));
    assert!(!may_see(&customer("t2"), &claim));
    assert!(may_see(&reviewer(), &claim));
    assert!(may_see(&system(), &claim));
    // The same rule, as the queries ask it of a stored view.
    let view = crate::view::ClaimView::of(&claim);
    for actor in [
        partner("P-100"),
        partner("P-200"),
        customer("t1"),
        customer("t2"),
        reviewer(),
        system(),
    ] {
        assert_eq!(
            Visibility::of_actor(&actor).sees_view(&view),
            may_see(&actor, &claim),
            "{actor:?}"
        );
    }
    assert!(sees_partner("P-100").sees("P-100", claim.tenant_id));
    assert!(!sees_partner("P-100").sees("P-200", claim.tenant_id));
    assert!(Visibility::Tenant(uid("t1")).sees("P-200", uid("t1")));
    assert!(!Visibility::Tenant(uid("t1")).sees("P-100", uid("t2")));
    // And what acting on another's claim looks like: CLAIM_NOT_FOUND.
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .when(partner("P-200"), cmd::withdraw(uid("c1")))
        .then_error(ErrorCode::ClaimNotFound);
}
