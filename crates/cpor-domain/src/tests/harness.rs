//! The given/when/then harness (cqrs-es style) the domain tests are written in.
//!
//! ```text
//! Given::standard()                       // the reference data of _fixtures.json
//!     .history(|w| { w.sales("P-100", "c1"); })   // commands run through decide + evolve
//!     .at("2026-11-26T10:00:00Z")
//!     .when(reviewer(), cmd::approve(uid("c1")))
//!     .then_events(&["claim.review_started", "claim.approved"]);
//! ```
//!
//! A [`World`] is a state, a manual clock and the log of every event applied
//! with the instant it was written. Every batch it applies is checked against
//! the invariants of [`invariant_violations`], so each test that builds a
//! history also checks that the history keeps the contract's invariants.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::access::authorize_envelope;
use crate::calendar::Calendar;
use crate::command::{Command, CommandEnvelope, SubmitClaim, SubscriptionRecord};
use crate::decide::{decide, Context, Decision};
use crate::error::{ErrorCode, Rejection};
use crate::event::{Event, EventData, PartnerUpserted, TenantUpserted};
use crate::state::{Claim, State};
use crate::types::{
    Activity, Actor, CaseStatus, Channel, ClaimKey, ClaimStatus, DeadlineKind, Mpn, PoeDocument,
    SolutionArea, SubscriptionState, Timestamp,
};

/// The instant the standard fixture sets the clock to: Wednesday.
pub(crate) const T0: &str = "2026-11-25T09:00:00Z";

pub(crate) fn time(text: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("bad test time {text:?}: {e}"))
        .with_timezone(&Utc)
}

/// A stable uuid per fixture name, like `$uuid:t1` in the scenarios.
pub(crate) fn uid(name: &str) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("cpor-test:{name}").as_bytes())
}

// ---------------------------------------------------------------- actors

pub(crate) fn partner(partner_id: &str) -> Actor {
    partner_with_roles(partner_id, &["incentives_admin"])
}

pub(crate) fn partner_with_roles(partner_id: &str, roles: &[&str]) -> Actor {
    Actor::Partner {
        partner_id: partner_id.to_string(),
        user: Some(format!("user@{}.example", partner_id.to_lowercase())),
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

pub(crate) fn reviewer() -> Actor {
    Actor::Reviewer {
        id: "rev-1".to_string(),
    }
}

pub(crate) fn customer(tenant: &str) -> Actor {
    Actor::Customer {
        tenant_id: uid(tenant),
        user: Some("it@contoso.com".to_string()),
    }
}

pub(crate) fn system() -> Actor {
    Actor::System {
        id: "test-sync".to_string(),
    }
}

/// The actor the service's deadline scheduler sends `DeadlineElapsed` with.
pub(crate) fn scheduler() -> Actor {
    Actor::System {
        id: "scheduler".to_string(),
    }
}

// ------------------------------------------------------- reference data

pub(crate) fn tenant_upserted(tenant: &str, domains: &[&str]) -> Event {
    Event {
        actor: system(),
        data: EventData::TenantUpserted(TenantUpserted {
            tenant_id: uid(tenant),
            domains: domains.iter().map(|d| d.to_string()).collect(),
        }),
    }
}

pub(crate) fn subscription(
    name: &str,
    tenant: &str,
    product: &str,
    is_dynamics: bool,
    channel: Channel,
    state: SubscriptionState,
) -> SubscriptionRecord {
    let solution_area = if product.starts_with("microsoft_365") {
        SolutionArea::Microsoft365
    } else {
        SolutionArea::BusinessApplications
    };
    SubscriptionRecord {
        subscription_id: uid(name),
        tenant_id: uid(tenant),
        product: product.to_string(),
        solution_area,
        is_dynamics,
        channel,
        state,
    }
}

pub(crate) fn subscription_upserted(record: SubscriptionRecord) -> Event {
    Event {
        actor: system(),
        data: EventData::SubscriptionUpserted(record),
    }
}

pub(crate) fn partner_upserted(partner_id: &str, mpns: &[(&str, bool)]) -> Event {
    Event {
        actor: system(),
        data: EventData::PartnerUpserted(PartnerUpserted {
            partner_id: partner_id.to_string(),
            mpns: mpns
                .iter()
                .map(|(mpn_id, incentive_enrolled)| Mpn {
                    mpn_id: mpn_id.to_string(),
                    incentive_enrolled: *incentive_enrolled,
                })
                .collect(),
        }),
    }
}

/// The reference data of `_fixtures.json` ("standard"), as events.
pub(crate) fn standard_events() -> Vec<Event> {
    use Channel::*;
    use SubscriptionState::*;
    let subs = [
        (
            "s_sales",
            "t1",
            "dynamics_365_sales",
            true,
            VolumeLicensing,
            Active,
        ),
        (
            "s_cs_grace",
            "t1",
            "dynamics_365_customer_service",
            true,
            WebDirect,
            InGrace,
        ),
        ("s_csp", "t1", "dynamics_365_finance", true, Csp, Active),
        (
            "s_pending",
            "t1",
            "dynamics_365_field_service",
            true,
            VolumeLicensing,
            PendingProvisioning,
        ),
        (
            "s_expired",
            "t1",
            "dynamics_365_marketing",
            true,
            VolumeLicensing,
            Expired,
        ),
        ("s_powerbi", "t1", "power_bi_pro", false, WebDirect, Active),
        ("s_m365", "t1", "microsoft_365_e5", false, Csp, Active),
        (
            "s_t2_sales",
            "t2",
            "dynamics_365_sales",
            true,
            VolumeLicensing,
            Active,
        ),
    ];
    let mut events = vec![
        tenant_upserted("t1", &["contoso.onmicrosoft.com", "contoso.com"]),
        tenant_upserted("t2", &["fabrikam.onmicrosoft.com"]),
    ];
    events.extend(
        subs.into_iter()
            .map(|(name, tenant, product, dynamics, channel, state)| {
                subscription_upserted(subscription(
                    name, tenant, product, dynamics, channel, state,
                ))
            }),
    );
    events.push(partner_upserted(
        "P-100",
        &[("4412001", true), ("4412002", false)],
    ));
    events.push(partner_upserted("P-200", &[("5500001", true)]));
    events.push(partner_upserted("P-300", &[("6600001", true)]));
    events
}

// ------------------------------------------------------------- commands

/// Each test partner's enrolled MPN.
pub(crate) fn mpn_of(partner_id: &str) -> &'static str {
    match partner_id {
        "P-100" => "4412001",
        "P-200" => "5500001",
        "P-300" => "6600001",
        _ => "9999999",
    }
}

/// A usage claim on tenant t1's Dynamics 365 Sales (subscription s_sales),
/// by product (no `subscription_id`), from the partner's enrolled MPN.
pub(crate) fn sales_claim(claim: &str, partner_id: &str) -> SubmitClaim {
    SubmitClaim {
        claim_id: uid(claim),
        tenant_id: uid("t1"),
        domain: "contoso.com".to_string(),
        solution_area: SolutionArea::BusinessApplications,
        activity: Activity::Usage,
        product: "dynamics_365_sales".to_string(),
        subscription_id: None,
        mpn_id: mpn_of(partner_id).to_string(),
        proof_of_execution: poe("sow.pdf"),
        note: None,
    }
}

/// A usage claim on tenant t1's Microsoft 365 E5 (subscription s_m365, CSP).
pub(crate) fn m365_claim(claim: &str, partner_id: &str) -> SubmitClaim {
    SubmitClaim {
        solution_area: SolutionArea::Microsoft365,
        product: "microsoft_365_e5".to_string(),
        ..sales_claim(claim, partner_id)
    }
}

pub(crate) fn poe(name: &str) -> Vec<PoeDocument> {
    vec![PoeDocument {
        name: name.to_string(),
        uri: format!("https://files.example/{name}"),
        sha256: "0".repeat(64),
    }]
}

/// Short constructors for the commands about an existing claim.
pub(crate) mod cmd {
    use super::*;

    pub(crate) fn comment(claim_id: Uuid) -> Command {
        Command::Comment {
            claim_id,
            text: "A question about this claim.".to_string(),
        }
    }
    pub(crate) fn submit_poe(claim_id: Uuid) -> Command {
        Command::SubmitPoe {
            claim_id,
            proof_of_execution: poe("signed-ack.pdf"),
            text: Some("Here is the signed acknowledgement.".to_string()),
        }
    }
    pub(crate) fn withdraw(claim_id: Uuid) -> Command {
        Command::Withdraw {
            claim_id,
            reason: Some("Entered by mistake".to_string()),
        }
    }
    pub(crate) fn dispute(claim_id: Uuid) -> Command {
        Command::Dispute {
            claim_id,
            text: "We did the deployment; see the statement of work.".to_string(),
            proof_of_execution: Vec::new(),
        }
    }
    pub(crate) fn disassociate(claim_id: Uuid) -> Command {
        Command::Disassociate {
            claim_id,
            reason: "Engagement over".to_string(),
        }
    }
    pub(crate) fn start(claim_id: Uuid) -> Command {
        Command::StartReview { claim_id }
    }
    pub(crate) fn request_poe(claim_id: Uuid) -> Command {
        Command::RequestPoe {
            claim_id,
            text: "Please send a customer-signed acknowledgement.".to_string(),
        }
    }
    pub(crate) fn approve(claim_id: Uuid) -> Command {
        Command::Approve {
            claim_id,
            text: None,
        }
    }
    pub(crate) fn reject(claim_id: Uuid) -> Command {
        Command::Reject {
            claim_id,
            reason: "INSUFFICIENT_POE".to_string(),
            text: None,
        }
    }
    pub(crate) fn decline(claim_id: Uuid) -> Command {
        Command::CustomerDecline {
            claim_id,
            reason: Some("We do not work with this partner".to_string()),
        }
    }
    pub(crate) fn deadline(claim_id: Uuid, kind: DeadlineKind, due_at: Timestamp) -> Command {
        Command::DeadlineElapsed {
            claim_id,
            kind,
            due_at,
        }
    }
}

/// `aggregate.name` of each event, e.g. `claim.submitted`.
pub(crate) fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}.{}", e.data.aggregate_kind().as_str(), e.data.name()))
        .collect()
}

// ---------------------------------------------------------------- world

/// State, clock and log: the domain as the engine drives it.
#[derive(Debug, Clone)]
pub(crate) struct World {
    pub(crate) state: State,
    pub(crate) now: Timestamp,
    pub(crate) calendar: Calendar,
    /// Every event applied, with the instant it was written.
    pub(crate) log: Vec<(Event, Timestamp)>,
    commands_sent: u64,
}

impl World {
    pub(crate) fn empty() -> World {
        World {
            state: State::new(),
            now: time(T0),
            calendar: Calendar::default(),
            log: Vec::new(),
            commands_sent: 0,
        }
    }

    /// The reference data of `_fixtures.json`, clock at [`T0`].
    pub(crate) fn standard() -> World {
        World::standard_at(T0)
    }

    /// The reference data, written at `text`.
    pub(crate) fn standard_at(text: &str) -> World {
        let mut world = World::empty();
        world.now = time(text);
        world.apply(&standard_events());
        world
    }

    pub(crate) fn at(&mut self, text: &str) {
        self.set_now(time(text));
    }

    pub(crate) fn set_now(&mut self, now: Timestamp) {
        assert!(now >= self.now, "the clock never goes backwards");
        self.now = now;
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.set_now(self.now + by);
    }

    /// An envelope with a command id derived from the number of commands
    /// this world has built: stable across runs, unique within a world.
    pub(crate) fn envelope(
        &mut self,
        actor: Actor,
        command: Command,
        expected_version: Option<u64>,
    ) -> CommandEnvelope {
        self.commands_sent += 1;
        CommandEnvelope {
            command_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &self.commands_sent.to_be_bytes()),
            actor,
            correlation_id: None,
            traceparent: None,
            expected_version,
            command,
        }
    }

    /// What the engine does before writing: authorize, then decide.
    pub(crate) fn decide(&self, envelope: &CommandEnvelope) -> Result<Decision, Rejection> {
        authorize_envelope(envelope)?;
        let ctx = Context {
            now: self.now,
            calendar: &self.calendar,
        };
        decide(&self.state, envelope, &ctx)
    }

    /// Folds events written now, checking that each aggregate's version
    /// goes up by one per event and that the state keeps its invariants.
    #[track_caller]
    pub(crate) fn apply(&mut self, events: &[Event]) {
        for event in events {
            let aggregate = event.data.aggregate();
            let before = self.state.version_of(&aggregate);
            let version = self
                .state
                .evolve(event, self.now)
                .unwrap_or_else(|e| panic!("evolve refused {event:?}: {e}"));
            assert_eq!(
                version,
                before + 1,
                "version of {aggregate:?} after {event:?}"
            );
            assert_eq!(self.state.version_of(&aggregate), version);
            self.log.push((event.clone(), self.now));
        }
        let violations = invariant_violations(&self.state);
        assert!(violations.is_empty(), "invariants broken: {violations:#?}");
    }

    /// Decides and, when accepted, applies.
    pub(crate) fn try_exec(
        &mut self,
        actor: Actor,
        command: Command,
    ) -> Result<Decision, Rejection> {
        let envelope = self.envelope(actor, command, None);
        let decision = self.decide(&envelope)?;
        self.apply(&decision.events);
        Ok(decision)
    }

    /// A history step: must be accepted.
    #[track_caller]
    pub(crate) fn exec(&mut self, actor: Actor, command: Command) -> Decision {
        let shown = format!("{actor:?} {command:?}");
        self.try_exec(actor, command)
            .unwrap_or_else(|r| panic!("history step refused: {shown}: {r:?}"))
    }

    #[track_caller]
    pub(crate) fn submit_as(&mut self, partner_id: &str, submit: SubmitClaim) -> Uuid {
        let claim_id = submit.claim_id;
        self.exec(partner(partner_id), Command::Submit(submit));
        claim_id
    }

    /// `partner_id` claims t1's Dynamics 365 Sales for usage as `claim`.
    #[track_caller]
    pub(crate) fn sales(&mut self, partner_id: &str, claim: &str) -> Uuid {
        self.submit_as(partner_id, sales_claim(claim, partner_id))
    }

    #[track_caller]
    pub(crate) fn review(&mut self, command: Command) -> Decision {
        self.exec(reviewer(), command)
    }

    #[track_caller]
    pub(crate) fn by(&mut self, partner_id: &str, command: Command) -> Decision {
        self.exec(partner(partner_id), command)
    }

    #[track_caller]
    pub(crate) fn claim(&self, claim_id: Uuid) -> &Claim {
        self.state
            .claims
            .get(&claim_id)
            .unwrap_or_else(|| panic!("no claim {claim_id}"))
    }

    pub(crate) fn status(&self, claim_id: Uuid) -> ClaimStatus {
        self.claim(claim_id).status
    }

    /// Submits a sales claim and drives it to `status` by the shortest path.
    #[track_caller]
    pub(crate) fn sales_in(&mut self, partner_id: &str, claim: &str, status: ClaimStatus) -> Uuid {
        let claim_id = self.sales(partner_id, claim);
        self.drive(partner_id, claim_id, status);
        claim_id
    }

    #[track_caller]
    pub(crate) fn drive(&mut self, partner_id: &str, claim_id: Uuid, status: ClaimStatus) {
        match status {
            ClaimStatus::Submitted => {}
            ClaimStatus::UnderReview => {
                self.review(cmd::start(claim_id));
            }
            ClaimStatus::PartnerActionRequired => {
                self.review(cmd::request_poe(claim_id));
            }
            ClaimStatus::Approved => {
                self.review(cmd::approve(claim_id));
            }
            ClaimStatus::Rejected => {
                self.review(cmd::reject(claim_id));
            }
            ClaimStatus::Withdrawn => {
                self.by(partner_id, cmd::withdraw(claim_id));
            }
            ClaimStatus::Ended => {
                self.review(cmd::approve(claim_id));
                self.by(partner_id, cmd::disassociate(claim_id));
            }
        }
        assert_eq!(self.status(claim_id), status);
    }

    /// What the scheduler does when the clock moves: fire every watched
    /// deadline that is due, earliest first. Returns the events written.
    #[track_caller]
    pub(crate) fn fire_due(&mut self) -> Vec<String> {
        let mut written = Vec::new();
        while let Some((due_at, claim_id, kind)) = self.state.next_deadline() {
            if due_at > self.now {
                break;
            }
            let decision = self.exec(scheduler(), cmd::deadline(claim_id, kind, due_at));
            written.extend(names(&decision.events));
            assert!(
                !self.state.deadlines.contains(&(due_at, claim_id, kind)),
                "a fired deadline stops being watched"
            );
        }
        written
    }

    /// The state folded from this world's log alone.
    pub(crate) fn replay(&self) -> State {
        let mut state = State::new();
        for (event, at) in &self.log {
            state
                .evolve(event, *at)
                .unwrap_or_else(|e| panic!("replay refused {event:?}: {e}"));
        }
        state
    }

    /// The names of the events written on one claim, in order.
    pub(crate) fn history_of(&self, claim_id: Uuid) -> Vec<String> {
        let events: Vec<Event> = self
            .log
            .iter()
            .filter(|(e, _)| e.data.claim_id() == Some(claim_id))
            .map(|(e, _)| e.clone())
            .collect();
        names(&events)
    }
}

/// A history step kept in a table of cases.
pub(crate) type Step = Box<dyn Fn(&mut World)>;

// ------------------------------------------------------- given/when/then

pub(crate) struct Given {
    world: World,
}

impl Given {
    /// An empty state with these events applied at [`T0`].
    pub(crate) fn events(events: Vec<Event>) -> Given {
        let mut world = World::empty();
        world.apply(&events);
        Given { world }
    }

    /// The reference data of `_fixtures.json`.
    pub(crate) fn standard() -> Given {
        Given {
            world: World::standard(),
        }
    }

    /// More events, applied as they are (at the current time).
    pub(crate) fn and_events(mut self, events: Vec<Event>) -> Given {
        self.world.apply(&events);
        self
    }

    /// A history built with commands; each step must be accepted.
    pub(crate) fn history(mut self, build: impl FnOnce(&mut World)) -> Given {
        build(&mut self.world);
        self
    }

    pub(crate) fn at(mut self, text: &str) -> Given {
        self.world.at(text);
        self
    }

    pub(crate) fn when(self, actor: Actor, command: Command) -> Then {
        self.when_versioned(actor, command, None)
    }

    pub(crate) fn when_versioned(
        mut self,
        actor: Actor,
        command: Command,
        expected_version: Option<u64>,
    ) -> Then {
        let envelope = self.world.envelope(actor, command, expected_version);
        let state_before = self.world.state.clone();
        let result = self.world.decide(&envelope);
        assert_eq!(
            self.world.state, state_before,
            "deciding never changes the state"
        );
        Then {
            world: self.world,
            envelope,
            result,
        }
    }
}

impl From<World> for Given {
    /// Goes on from a world a test has already built.
    fn from(world: World) -> Given {
        Given { world }
    }
}

pub(crate) struct Then {
    world: World,
    envelope: CommandEnvelope,
    result: Result<Decision, Rejection>,
}

impl Then {
    #[track_caller]
    pub(crate) fn decision(&self) -> &Decision {
        match &self.result {
            Ok(decision) => decision,
            Err(rejection) => panic!(
                "expected acceptance of {:?}, got {rejection:?}",
                self.envelope
            ),
        }
    }

    #[track_caller]
    pub(crate) fn rejection(&self) -> &Rejection {
        match &self.result {
            Ok(decision) => panic!(
                "expected a refusal of {:?}, got events {:?}",
                self.envelope,
                names(&decision.events)
            ),
            Err(rejection) => {
                assert_well_formed(rejection);
                rejection
            }
        }
    }

    #[track_caller]
    pub(crate) fn events(&self) -> &[Event] {
        &self.decision().events
    }

    /// The event names, as `aggregate.name`, in order.
    #[track_caller]
    pub(crate) fn then_events(self, expected: &[&str]) -> Then {
        assert_eq!(
            names(self.events()),
            expected,
            "events of {:?}",
            self.envelope.command
        );
        self
    }

    /// Full equality of every event's data, in order.
    #[track_caller]
    pub(crate) fn then_data(self, expected: &[EventData]) -> Then {
        let data: Vec<&EventData> = self.events().iter().map(|e| &e.data).collect();
        let expected: Vec<&EventData> = expected.iter().collect();
        assert_eq!(data, expected);
        self
    }

    /// Who each event is written by.
    #[track_caller]
    pub(crate) fn then_actors(self, expected: &[Actor]) -> Then {
        let actors: Vec<&Actor> = self.events().iter().map(|e| &e.actor).collect();
        let expected: Vec<&Actor> = expected.iter().collect();
        assert_eq!(actors, expected);
        self
    }

    #[track_caller]
    pub(crate) fn then_no_events(self) -> Then {
        self.then_events(&[])
    }

    #[track_caller]
    pub(crate) fn then_warnings(self, expected: &[&str]) -> Then {
        assert_eq!(self.decision().warnings, expected);
        self
    }

    /// The reply's `code`.
    #[track_caller]
    pub(crate) fn then_error(self, code: ErrorCode) -> Then {
        assert_eq!(
            self.rejection().code,
            code,
            "code of {:?}",
            self.envelope.command
        );
        self
    }

    /// The reply's `reasons`: every broken rule in precedence order.
    #[track_caller]
    pub(crate) fn then_reasons(self, expected: &[ErrorCode]) -> Then {
        assert_eq!(
            self.rejection().reasons,
            expected,
            "reasons of {:?}",
            self.envelope.command
        );
        self
    }

    /// Applies the accepted events and hands the world over for checks of
    /// the resulting state.
    #[track_caller]
    pub(crate) fn applied(mut self) -> World {
        let events = self.decision().events.clone();
        self.world.apply(&events);
        self.world
    }

    pub(crate) fn result(&self) -> &Result<Decision, Rejection> {
        &self.result
    }

    /// The world as it was when the command was decided.
    pub(crate) fn world(&self) -> &World {
        &self.world
    }
}

/// `code` is the first reason; reasons are in precedence order, unique.
#[track_caller]
pub(crate) fn assert_well_formed(rejection: &Rejection) {
    assert!(!rejection.reasons.is_empty(), "a refusal names its reasons");
    assert_eq!(
        rejection.code, rejection.reasons[0],
        "code is the first reason"
    );
    let mut sorted = rejection.reasons.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted, rejection.reasons,
        "reasons in precedence order, without repeats"
    );
    assert!(!rejection.message.is_empty(), "a refusal says why in words");
    assert_eq!(
        rejection.current_version.is_some(),
        rejection.code == ErrorCode::VersionConflict,
        "current_version comes with VERSION_CONFLICT only"
    );
}

// ------------------------------------------------------------ invariants

/// Everything that must hold of any state the domain can reach, written from
/// the contract rather than from the code. Empty when all is well.
pub(crate) fn invariant_violations(state: &State) -> Vec<String> {
    let mut found = Vec::new();
    let mut fail = |text: String| found.push(text);

    // The scheduler's index is exactly the claims' watched deadlines.
    let watched: BTreeSet<(Timestamp, Uuid, DeadlineKind)> = state
        .claims
        .values()
        .flat_map(Claim::watched_deadlines)
        .collect();
    if watched != state.deadlines {
        fail(format!(
            "deadline index {:?} != watched {:?}",
            state.deadlines, watched
        ));
    }

    for claim in state.claims.values() {
        let id = claim.claim_id;
        let status = claim.status;
        // Review deadline: runs while the claim waits for a reviewer, that is
        // in `submitted` (always) or `under_review` (after a PoE answer),
        // and stays visible once missed.
        if claim.review_due_at.is_some()
            && !matches!(status, ClaimStatus::Submitted | ClaimStatus::UnderReview)
        {
            fail(format!("{id}: review_due_at set in {status:?}"));
        }
        if status == ClaimStatus::Submitted && claim.review_due_at.is_none() {
            fail(format!("{id}: submitted without a review deadline"));
        }
        if claim.overdue && claim.review_due_at.is_none() {
            fail(format!("{id}: overdue without review_due_at"));
        }
        let review_watched = claim
            .watched_deadlines()
            .any(|(_, _, kind)| kind == DeadlineKind::Review);
        if review_watched != (claim.review_due_at.is_some() && !claim.overdue) {
            fail(format!("{id}: review deadline watched = {review_watched}"));
        }
        // Partner response: while a PoE request is unanswered, which is
        // always the case in `partner_action_required` and may be the case
        // for an approved incumbent.
        if claim.partner_response_due_at().is_some()
            && !matches!(
                status,
                ClaimStatus::PartnerActionRequired | ClaimStatus::Approved
            )
        {
            fail(format!("{id}: partner_response_due_at set in {status:?}"));
        }
        if status == ClaimStatus::PartnerActionRequired && claim.partner_response_due_at().is_none()
        {
            fail(format!("{id}: partner action required without a due date"));
        }
        let response_watched = claim
            .watched_deadlines()
            .any(|(_, _, kind)| kind == DeadlineKind::PartnerResponse);
        if response_watched != claim.partner_response_due_at().is_some() {
            fail(format!(
                "{id}: partner response watched = {response_watched}"
            ));
        }
        // Decisions.
        match status {
            s if s.is_open() => {
                if claim.decided_at.is_some() || claim.reason().is_some() {
                    fail(format!("{id}: open claim carries a decision"));
                }
            }
            ClaimStatus::Approved | ClaimStatus::Withdrawn => {
                if claim.decided_at.is_none() || claim.reason().is_some() {
                    fail(format!("{id}: {status:?} needs decided_at and no reason"));
                }
            }
            _ => {
                if claim.decided_at.is_none() || claim.reason().is_none() {
                    fail(format!("{id}: {status:?} needs decided_at and a reason"));
                }
            }
        }
        if status == ClaimStatus::Rejected && claim.rejected_at().is_none() {
            fail(format!("{id}: rejected without rejected_at"));
        }
        if !claim.subscription_ids.windows(2).all(|w| w[0] < w[1]) {
            fail(format!("{id}: subscription_ids not sorted"));
        }
        if claim.solution_area == SolutionArea::Microsoft365 && !claim.subscription_ids.is_empty() {
            fail(format!("{id}: a Microsoft 365 claim lists subscriptions"));
        }
        if !state.claims_on_key(&claim.key()).any(|c| c.claim_id == id) {
            fail(format!("{id}: missing from its key"));
        }
        if state.claims.by_seq(claim.seq) != Some(claim) {
            fail(format!("{id}: not at its seq {}", claim.seq));
        }
    }
    if state.keys.len() != state.claims.len() {
        fail(format!(
            "{} key entries for {} claims",
            state.keys.len(),
            state.claims.len()
        ));
    }

    // Every key that has claims or an open case.
    let keys: BTreeSet<ClaimKey> = state
        .claims
        .values()
        .map(Claim::key)
        .chain(
            state
                .open_cases
                .keys()
                .map(|(tenant_id, product, activity)| ClaimKey {
                    tenant_id: *tenant_id,
                    product: product.to_string(),
                    activity: *activity,
                }),
        )
        .collect();
    for key in &keys {
        let open_case = state.open_case_of(key);
        let claims: Vec<&Claim> = state.claims_on_key(key).collect();
        if !claims.windows(2).all(|w| w[0].seq < w[1].seq) {
            fail(format!("{key:?}: claims not in submission order"));
        }
        let approved = claims
            .iter()
            .filter(|c| c.status == ClaimStatus::Approved)
            .count();
        if approved > 1 {
            fail(format!("{key:?}: {approved} approved claims"));
        }
        let contenders: Vec<&&Claim> = claims.iter().filter(|c| c.is_contender()).collect();
        let partners: BTreeSet<&str> = contenders.iter().map(|c| c.partner_id.as_str()).collect();
        if partners.len() != contenders.len() {
            fail(format!("{key:?}: a partner competes with itself"));
        }
        // A key is in arbitration exactly when two partners contend for it.
        match open_case.and_then(|id| state.cases.get(&id)) {
            Some(case) => {
                if case.status != CaseStatus::Open || !key_of_case_is(case, key) {
                    fail(format!(
                        "{key:?}: open_case {} is not an open case of the key",
                        case.case_id
                    ));
                }
                if contenders.len() < 2 {
                    fail(format!(
                        "{key:?}: open case with {} contenders",
                        contenders.len()
                    ));
                }
                for c in &contenders {
                    if !case.claim_ids.contains(&c.claim_id)
                        || c.arbitration_case_id() != Some(case.case_id)
                    {
                        fail(format!(
                            "{key:?}: contender {} outside the open case",
                            c.claim_id
                        ));
                    }
                }
            }
            None => {
                if open_case.is_some() {
                    fail(format!("{key:?}: open_case names no case"));
                }
                if contenders.len() > 1 {
                    fail(format!(
                        "{key:?}: {} contenders and no open case",
                        contenders.len()
                    ));
                }
            }
        }
    }

    let mut open_cases_by_key: BTreeMap<ClaimKey, usize> = BTreeMap::new();
    for case in state.cases.values() {
        let key = case.key();
        let unique: BTreeSet<&Uuid> = case.claim_ids.iter().collect();
        if unique.len() != case.claim_ids.len() {
            fail(format!("case {}: a claim listed twice", case.case_id));
        }
        match case.status {
            CaseStatus::Open => {
                *open_cases_by_key.entry(key.clone()).or_default() += 1;
                if state.open_case_of(&key) != Some(case.case_id) {
                    fail(format!(
                        "case {}: open but not its key's open case",
                        case.case_id
                    ));
                }
                if case.closed_at.is_some() || case.winner_claim_id.is_some() {
                    fail(format!("case {}: open with an outcome", case.case_id));
                }
            }
            CaseStatus::Closed => {
                if case.closed_at.is_none() {
                    fail(format!("case {}: closed without closed_at", case.case_id));
                }
                if let Some(winner) = case.winner_claim_id {
                    if !case.claim_ids.contains(&winner) {
                        fail(format!(
                            "case {}: the winner is not a contender",
                            case.case_id
                        ));
                    }
                }
            }
        }
    }
    for (key, n) in open_cases_by_key {
        if n > 1 {
            fail(format!("{key:?}: {n} open cases"));
        }
    }
    if state.claim_count != state.claims.len() as u64
        || state.case_count != state.cases.len() as u64
    {
        fail("claim or case counters out of step".to_string());
    }
    found
}

fn key_of_case_is(case: &crate::state::Case, key: &ClaimKey) -> bool {
    case.tenant_id == key.tenant_id && case.product == key.product && case.activity == key.activity
}
