//! Who may do what: the one place that decides permission and visibility
//! for every command and query (contract §3, §4 and v1.1 §8a).
//!
//! The identity model (§8a): the subject is the capability, the NATS user
//! is the identity. A deployment lets each NATS user publish only on the
//! subjects of its role; the subject carries the caller's [`Scope`] (a
//! partner id, a tenant id, the reviewer or system family), and the body's
//! actor — an assertion — must agree with it. The wire layer maps the
//! subject to a [`Scope`] and the request to an [`Action`], and calls
//! [`authorize`]; the engine and `decide` ask the same function (through
//! [`authorize_envelope`] and [`may_see`]) for commands that come with no
//! subject and for the claim a command is about.
//!
//! Refusals: `FORBIDDEN` for a wrong actor type, a scope the actor does not
//! match, a partner user without an allowed role, a list filter naming
//! another partner or tenant. A claim outside the actor's [`Visibility`] is
//! not refused here: its callers answer `CLAIM_NOT_FOUND`, so other
//! partners' claims look like claims that do not exist.

use uuid::Uuid;

use crate::command::{Command, CommandEnvelope};
use crate::error::{ErrorCode, Rejection};
use crate::state::Claim;
use crate::types::{Actor, ActorKind, PARTNER_ROLES_ALLOWED};
use crate::view::ClaimView;

/// The scope a request's subject carries (contract §3, §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `{prefix}.cmd.partner.{partner_id}.…`, `{prefix}.qry.partner.{partner_id}.…`:
    /// a partner actor with this partner id.
    Partner(String),
    /// `{prefix}.cmd.customer.{tenant_id}.…`, `{prefix}.qry.customer.{tenant_id}.…`:
    /// a customer actor of this tenant.
    Customer(Uuid),
    /// `{prefix}.cmd.review.…`: a reviewer actor.
    Review,
    /// `{prefix}.cmd.ref.…`, `{prefix}.admin.…`: a system actor.
    System,
    /// The unscoped `{prefix}.qry.…` subjects, for reviewer and system
    /// consoles and for callers a deployment trusts: any actor type, seeing
    /// what its actor may see.
    Console,
}

impl Scope {
    /// The scope of the actor's own subject: what a command is judged in
    /// when it comes with no subject (the scheduler's deadlines) or is
    /// checked again by the engine.
    pub fn of_actor(actor: &Actor) -> Scope {
        match actor {
            Actor::Partner { partner_id, .. } => Scope::Partner(partner_id.clone()),
            Actor::Customer { tenant_id, .. } => Scope::Customer(*tenant_id),
            Actor::Reviewer { .. } => Scope::Review,
            Actor::System { .. } => Scope::System,
        }
    }
}

/// What a request asks to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action<'a> {
    /// A command (contract §2, §3).
    Command(&'a Command),
    /// `claim.get` or `claim.history` of one claim.
    ReadClaim,
    /// `claims.list`, with the body's optional `partner_id` and `tenant_id` filters.
    ListClaims {
        partner_id: Option<&'a str>,
        tenant_id: Option<Uuid>,
    },
    /// `arbitration.get`, `arbitration.list`.
    ReadCases,
    /// `admin.clock`.
    SetClock,
}

/// The claims an authorized actor may see and act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Every claim: reviewers and systems.
    Every,
    /// The claims of this partner.
    Partner(String),
    /// The claims on this tenant.
    Tenant(Uuid),
}

impl Visibility {
    /// Partners see their own claims, customers their tenant's, reviewers
    /// and systems every claim (contract §3 "acts only on its own claims",
    /// §4 "a partner sees only its own claims").
    pub fn of_actor(actor: &Actor) -> Visibility {
        match actor {
            Actor::Partner { partner_id, .. } => Visibility::Partner(partner_id.clone()),
            Actor::Customer { tenant_id, .. } => Visibility::Tenant(*tenant_id),
            Actor::Reviewer { .. } | Actor::System { .. } => Visibility::Every,
        }
    }

    /// Whether a claim of `partner_id` on `tenant_id` is visible.
    pub fn sees(&self, partner_id: &str, tenant_id: Uuid) -> bool {
        match self {
            Visibility::Every => true,
            Visibility::Partner(own) => own == partner_id,
            Visibility::Tenant(own) => *own == tenant_id,
        }
    }

    /// [`Visibility::sees`] of a stored read model: what `claim.get` and
    /// `claim.history` ask before answering (a claim outside it is
    /// `CLAIM_NOT_FOUND`), the rule [`may_see`] applies to the state's
    /// claim for commands.
    pub fn sees_view(&self, view: &ClaimView) -> bool {
        self.sees(&view.partner_id, view.tenant_id)
    }
}

fn forbidden(message: impl Into<String>) -> Rejection {
    Rejection::with_message(ErrorCode::Forbidden, message)
}

fn kind_name(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Partner => "partner",
        ActorKind::Reviewer => "reviewer",
        ActorKind::Customer => "customer",
        ActorKind::System => "system",
    }
}

/// Decides whether `actor`, calling on a subject of `scope`, may do
/// `action`; on success, which claims it sees.
///
/// In order: the actor agrees with the scope (type, then partner or
/// tenant), a partner user holds an allowed role, the action is one its
/// actor type may do, and a list filter stays within what it sees.
///
/// # Errors
///
/// `FORBIDDEN`, with a message that says what to change.
pub fn authorize(
    scope: &Scope,
    actor: &Actor,
    action: Action<'_>,
) -> Result<Visibility, Rejection> {
    check_scope(scope, actor)?;
    let kind = actor.kind();
    let partner_ok = actor.partner_with_allowed_role().is_some();
    if kind == ActorKind::Partner && !partner_ok {
        let what = match action {
            Action::Command(_) => "work on",
            _ => "see",
        };
        // The roles by their wire values, as the actor must send them.
        return Err(forbidden(format!(
            "Your user needs one of the partner roles {} in actor.roles to {what} claims.",
            PARTNER_ROLES_ALLOWED.join(", ")
        )));
    }
    let allowed = allowed_kinds(action);
    if !allowed.contains(&kind) {
        let message = match action {
            Action::Command(_) => format!("A {} actor may not send this command.", kind_name(kind)),
            Action::ReadCases => "Arbitration cases are for reviewers.".to_string(),
            Action::SetClock => "The clock takes a system actor.".to_string(),
            Action::ReadClaim | Action::ListClaims { .. } => {
                format!("A {} actor may not read claims.", kind_name(kind))
            }
        };
        return Err(forbidden(message));
    }
    let visibility = Visibility::of_actor(actor);
    if let Action::ListClaims {
        partner_id,
        tenant_id,
    } = action
    {
        match &visibility {
            Visibility::Partner(own) if partner_id.is_some_and(|p| p != own) => {
                return Err(forbidden("A partner can list only its own claims."));
            }
            Visibility::Tenant(own) if tenant_id.is_some_and(|t| t != *own) => {
                return Err(forbidden(
                    "A customer can list only its own tenant's claims.",
                ));
            }
            _ => {}
        }
    }
    Ok(visibility)
}

/// The permission table: the actor kinds that may take `action` (contract
/// v1.1 §8a). One match over every command and query, so the whole table
/// reads on one screen.
fn allowed_kinds(action: Action<'_>) -> &'static [ActorKind] {
    use ActorKind::*;
    match action {
        Action::Command(command) => match command {
            Command::UpsertTenant { .. }
            | Command::UpsertSubscription(_)
            | Command::UpsertPartner { .. }
            | Command::DeadlineElapsed { .. } => &[System],
            Command::Submit(_)
            | Command::SubmitPoe { .. }
            | Command::Withdraw { .. }
            | Command::Dispute { .. }
            | Command::Disassociate { .. } => &[Partner],
            Command::Comment { .. } => &[Partner, Reviewer],
            Command::StartReview { .. }
            | Command::RequestPoe { .. }
            | Command::Approve { .. }
            | Command::Reject { .. } => &[Reviewer],
            Command::CustomerDecline { .. } => &[Customer],
        },
        Action::ReadClaim | Action::ListClaims { .. } => &[Partner, Customer, Reviewer, System],
        Action::ReadCases => &[Reviewer, System],
        Action::SetClock => &[System],
    }
}

/// The actor agrees with the subject's scope.
fn check_scope(scope: &Scope, actor: &Actor) -> Result<(), Rejection> {
    match (scope, actor) {
        (Scope::Console, _)
        | (Scope::Review, Actor::Reviewer { .. })
        | (Scope::System, Actor::System { .. }) => Ok(()),
        (Scope::Partner(subject_partner), Actor::Partner { partner_id, .. }) => {
            if subject_partner == partner_id {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "The subject is for partner {subject_partner} but the actor is partner {partner_id}."
                )))
            }
        }
        (Scope::Customer(subject_tenant), Actor::Customer { tenant_id, .. }) => {
            if subject_tenant == tenant_id {
                Ok(())
            } else {
                Err(forbidden(
                    "The subject's tenant is not the customer's tenant.",
                ))
            }
        }
        (scope, actor) => {
            let wanted = match scope {
                Scope::Partner(_) => "partner",
                Scope::Customer(_) => "customer",
                Scope::Review => "reviewer",
                Scope::System | Scope::Console => "system",
            };
            Err(forbidden(format!(
                "This subject takes a {wanted} actor, not a {}.",
                kind_name(actor.kind())
            )))
        }
    }
}

/// [`authorize`] for a command in its actor's own scope: what the engine
/// checks for every command it executes, including those that come with no
/// subject (the scheduler's deadlines). Stateless, so done before
/// idempotency (contract precedence: `FORBIDDEN` before
/// `IDEMPOTENCY_CONFLICT`).
pub fn authorize_envelope(envelope: &CommandEnvelope) -> Result<(), Rejection> {
    let actor = &envelope.actor;
    authorize(
        &Scope::of_actor(actor),
        actor,
        Action::Command(&envelope.command),
    )
    .map(drop)
}

/// Whether `actor` may see (and so act on) `claim`: [`Visibility::of_actor`].
pub fn may_see(actor: &Actor, claim: &Claim) -> bool {
    Visibility::of_actor(actor).sees(&claim.partner_id, claim.tenant_id)
}
