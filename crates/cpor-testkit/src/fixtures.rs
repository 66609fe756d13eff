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

/// The same reference data as request bodies (contract §4 `cmd.ref.*`), for
/// tests that send them over NATS. `actor` is the sender, a system actor
/// ([`crate::actors::wire::system`]); the caller adds a `command_id`.
pub mod wire {
    use serde_json::{json, Value};
    use uuid::Uuid;

    /// The partner most tests submit as.
    pub const PARTNER_ID: &str = "P-100";
    /// [`PARTNER_ID`]'s MPN, enrolled in the incentive.
    pub const MPN_ID: &str = "4412001";

    /// `cmd.ref.partner`: `partner_id` with one MPN, `mpn_id`, enrolled in
    /// the incentive.
    pub fn partner(actor: &Value, partner_id: &str, mpn_id: &str) -> Value {
        json!({"actor": actor, "partner_id": partner_id,
               "mpns": [{"mpn_id": mpn_id, "incentive_enrolled": true}]})
    }

    /// `cmd.ref.tenant`: `tenant`, owning `domains`.
    pub fn tenant(actor: &Value, tenant: Uuid, domains: &[&str]) -> Value {
        json!({"actor": actor, "tenant_id": tenant, "domains": domains})
    }

    /// `cmd.ref.subscription`: the wire form of [`super::subscription`], an
    /// active Dynamics 365 Sales subscription of `tenant` (volume
    /// licensing, business applications): eligible for a claim.
    pub fn subscription(actor: &Value, tenant: Uuid, subscription_id: Uuid) -> Value {
        dynamics_subscription(
            actor,
            tenant,
            subscription_id,
            "dynamics_365_sales",
            "volume_licensing",
        )
    }

    /// `cmd.ref.subscription`: an active Dynamics 365 subscription
    /// (business applications) of `tenant` to `product`, sold through
    /// `channel` (`volume_licensing`, `web_direct`, `csp`, …).
    pub fn dynamics_subscription(
        actor: &Value,
        tenant: Uuid,
        subscription_id: Uuid,
        product: &str,
        channel: &str,
    ) -> Value {
        json!({"actor": actor, "subscription_id": subscription_id, "tenant_id": tenant,
               "product": product, "solution_area": "business_applications",
               "is_dynamics": true, "channel": channel, "state": "active"})
    }
}
