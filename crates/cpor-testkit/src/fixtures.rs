//! Times, command envelopes and reference data the tests build on.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use cpor_domain::command::{Command, CommandEnvelope, SubscriptionRecord};
use cpor_domain::types::{Actor, Channel, SolutionArea, SubscriptionState};

/// An RFC 3339 time as UTC.
///
/// # Panics
///
/// When `text` is not RFC 3339: a test's own constant is wrong.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text:?} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// `command` from `actor` with a fresh command id, no correlation id and no
/// expected version.
pub fn envelope(actor: Actor, command: Command) -> CommandEnvelope {
    CommandEnvelope {
        command_id: Uuid::new_v4(),
        actor,
        correlation_id: None,
        traceparent: None,
        expected_version: None,
        command,
    }
}

/// An active Dynamics 365 Sales subscription (volume licensing, business
/// applications) of `tenant`: eligible for a claim.
pub fn subscription(tenant: Uuid, subscription_id: Uuid) -> SubscriptionRecord {
    SubscriptionRecord {
        subscription_id,
        tenant_id: tenant,
        product: "dynamics_365_sales".into(),
        solution_area: SolutionArea::BusinessApplications,
        is_dynamics: true,
        channel: Channel::VolumeLicensing,
        state: SubscriptionState::Active,
    }
}
