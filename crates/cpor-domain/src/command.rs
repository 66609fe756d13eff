//! Commands: what someone asks the service to do.
//!
//! Commands arrive already parsed and shape-checked (field types, lengths,
//! enumerations) by the wire layer; the domain checks everything that depends
//! on state. Values the domain must not invent (a new claim's id, the time)
//! are in the command or the [`crate::Context`], never produced here.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::types::{
    Activity, Actor, Channel, DeadlineKind, Mpn, PoeDocument, SolutionArea, SubscriptionState,
    Timestamp,
};

/// A command with the metadata every command carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    /// The idempotency key.
    pub command_id: Uuid,
    pub actor: Actor,
    pub correlation_id: Option<String>,
    /// The W3C Trace Context `traceparent` (`00-{trace-id}-{span-id}-{flags}`)
    /// of the span that handled the command, when the request carried a
    /// valid one: written on its events (CloudEvents distributed-tracing
    /// extension) so that consumers join the caller's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Optimistic concurrency on commands about an existing claim.
    pub expected_version: Option<u64>,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    UpsertTenant {
        tenant_id: Uuid,
        domains: Vec<String>,
    },
    UpsertSubscription(SubscriptionRecord),
    UpsertPartner {
        partner_id: String,
        mpns: Vec<Mpn>,
    },
    Submit(SubmitClaim),
    /// Partner or reviewer comment; the actor says which.
    Comment {
        claim_id: Uuid,
        text: String,
    },
    SubmitPoe {
        claim_id: Uuid,
        proof_of_execution: Vec<PoeDocument>,
        text: Option<String>,
    },
    Withdraw {
        claim_id: Uuid,
        reason: Option<String>,
    },
    Dispute {
        claim_id: Uuid,
        text: String,
        proof_of_execution: Vec<PoeDocument>,
    },
    Disassociate {
        claim_id: Uuid,
        reason: String,
    },
    StartReview {
        claim_id: Uuid,
    },
    RequestPoe {
        claim_id: Uuid,
        text: String,
    },
    Approve {
        claim_id: Uuid,
        text: Option<String>,
    },
    Reject {
        claim_id: Uuid,
        reason: String,
        text: Option<String>,
    },
    CustomerDecline {
        claim_id: Uuid,
        reason: Option<String>,
    },
    /// Written by the service's scheduler when time passes a deadline. It is a
    /// command like any other so that the log, not the clock, says what
    /// happened: a replay reads the same `*_missed` events.
    DeadlineElapsed {
        claim_id: Uuid,
        kind: DeadlineKind,
        due_at: Timestamp,
    },
}

impl Command {
    /// The claim this command is about, for commands about an existing claim.
    pub fn existing_claim_id(&self) -> Option<Uuid> {
        match self {
            Command::Comment { claim_id, .. }
            | Command::SubmitPoe { claim_id, .. }
            | Command::Withdraw { claim_id, .. }
            | Command::Dispute { claim_id, .. }
            | Command::Disassociate { claim_id, .. }
            | Command::StartReview { claim_id }
            | Command::RequestPoe { claim_id, .. }
            | Command::Approve { claim_id, .. }
            | Command::Reject { claim_id, .. }
            | Command::CustomerDecline { claim_id, .. }
            | Command::DeadlineElapsed { claim_id, .. } => Some(*claim_id),
            Command::UpsertTenant { .. }
            | Command::UpsertSubscription(_)
            | Command::UpsertPartner { .. }
            | Command::Submit(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SubscriptionRecord {
    pub subscription_id: Uuid,
    pub tenant_id: Uuid,
    pub product: String,
    pub solution_area: SolutionArea,
    pub is_dynamics: bool,
    pub channel: Channel,
    pub state: SubscriptionState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitClaim {
    /// Given by the partner or assigned by the service before deciding.
    pub claim_id: Uuid,
    pub tenant_id: Uuid,
    pub domain: String,
    pub solution_area: SolutionArea,
    pub activity: Activity,
    pub product: String,
    /// Free text on the wire: "not a uuid" is a business error
    /// (`NOT_A_SUBSCRIPTION_ID`), not a malformed command.
    pub subscription_id: Option<String>,
    pub mpn_id: String,
    pub proof_of_execution: Vec<PoeDocument>,
    pub note: Option<String>,
}
