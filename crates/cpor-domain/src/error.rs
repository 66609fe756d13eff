//! Refusals: why a command writes nothing.
//!
//! The variants of [`ErrorCode`] are declared in the contract's precedence
//! order (§3, "Error codes, in precedence order"), so sorting a list of codes
//! gives the order of the `reasons` list and its first element is the `code`.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    PayloadTooLarge,
    InvalidJson,
    InvalidCommand,
    Forbidden,
    IdempotencyConflict,
    ClaimNotFound,
    ClaimExists,
    VersionConflict,
    InvalidTransition,
    DisputeWindowClosed,
    TenantUnknown,
    DomainTenantMismatch,
    ActivityNotAllowed,
    PartnerUnknown,
    MpnNotOwned,
    NotASubscriptionId,
    SubscriptionUnknown,
    ProductNotOnTenant,
    SubscriptionNotDynamics,
    SubscriptionIsCsp,
    SubscriptionNotProvisioned,
    SubscriptionNotActive,
    SubscriptionAlreadyClaimed,
    ClockNotManual,
    Unavailable,
}

impl ErrorCode {
    /// The wire code (`"CLAIM_NOT_FOUND"`), as serde spells it.
    pub fn as_str(self) -> &'static str {
        crate::types::wire_name(&self)
    }

    /// A sentence a partner (or an integrator) understands, saying what to do.
    pub fn default_message(self) -> &'static str {
        match self {
            ErrorCode::PayloadTooLarge => "The request is larger than 64 KiB; send less data.",
            ErrorCode::InvalidJson => "The request is not a JSON object.",
            ErrorCode::InvalidCommand => "The request is not a valid command.",
            ErrorCode::Forbidden => "You are not allowed to do this: check your roles and the partner or tenant you act for.",
            ErrorCode::IdempotencyConflict => "This command id was already used for a different request; use a new command id.",
            ErrorCode::ClaimNotFound => "No such claim, or it is not one of yours.",
            ErrorCode::ClaimExists => "A claim with this id already exists.",
            ErrorCode::VersionConflict => "The claim changed since you last read it; read it again and retry.",
            ErrorCode::InvalidTransition => "This action is not possible in the claim's current status.",
            ErrorCode::DisputeWindowClosed => "A rejected claim can be disputed only within 30 days of its rejection.",
            ErrorCode::TenantUnknown => "We do not know this customer tenant ID; check it with the customer.",
            ErrorCode::DomainTenantMismatch => "The customer domain you entered does not belong to this tenant ID; get the right details from the customer.",
            ErrorCode::ActivityNotAllowed => "This activity cannot be claimed for this solution area.",
            ErrorCode::PartnerUnknown => "Your partner account is not registered yet.",
            ErrorCode::MpnNotOwned => "This MPN ID is not one of your organization's MPN IDs.",
            ErrorCode::NotASubscriptionId => "The value entered is not a subscription ID.",
            ErrorCode::SubscriptionUnknown => "We do not know this subscription ID; check it with the customer.",
            ErrorCode::ProductNotOnTenant => "The customer's tenant has no subscription of this product.",
            ErrorCode::SubscriptionNotDynamics => "This subscription is not a Dynamics 365 subscription.",
            ErrorCode::SubscriptionIsCsp => "This subscription was bought through the Cloud Solution Provider (CSP) program and cannot be claimed here.",
            ErrorCode::SubscriptionNotProvisioned => "The customer has not finished provisioning this subscription yet; try again once it is active.",
            ErrorCode::SubscriptionNotActive => "This subscription is no longer active.",
            ErrorCode::SubscriptionAlreadyClaimed => "You already have an open or approved claim for this customer, product and activity.",
            ErrorCode::ClockNotManual => "The service was not started with a manual clock.",
            ErrorCode::Unavailable => "The service cannot record this now; retry later with the same command id.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command. Nothing was written.
///
/// Handling: every code is final for this exact command except `UNAVAILABLE`
/// (retry with the same command id) and `VERSION_CONFLICT` (read, then retry
/// with a new command id).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    /// The first of `reasons`.
    pub code: ErrorCode,
    pub message: String,
    /// Every rule the command breaks, in precedence order, without repeats.
    pub reasons: Vec<ErrorCode>,
    /// Set with `VERSION_CONFLICT`.
    pub current_version: Option<u64>,
}

impl Rejection {
    pub fn new(code: ErrorCode) -> Rejection {
        Rejection {
            code,
            message: code.default_message().to_string(),
            reasons: vec![code],
            current_version: None,
        }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Rejection {
        Rejection {
            message: message.into(),
            ..Rejection::new(code)
        }
    }

    /// Several broken rules at once; the message is the first one's.
    /// Panics on an empty list: a refusal always has a reason.
    pub fn from_reasons(mut reasons: Vec<ErrorCode>) -> Rejection {
        assert!(!reasons.is_empty(), "a rejection needs at least one reason");
        reasons.sort();
        reasons.dedup();
        let code = reasons[0];
        Rejection {
            code,
            message: code.default_message().to_string(),
            reasons,
            current_version: None,
        }
    }
}
