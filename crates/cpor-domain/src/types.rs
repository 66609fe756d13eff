//! Plain data types shared by commands, events and state.
//!
//! Enumerations take exactly the values the wire contract lists; their serde
//! names are the contract's spelling, so a value outside the list fails to
//! decode and the wire layer answers `INVALID_COMMAND`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Instants are UTC; the calendar converts to local days where it matters.
pub type Timestamp = DateTime<Utc>;

/// Parses an id as the contract writes it (§ "IDs written `uuid` are RFC
/// 4122 strings"): the hyphenated form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`,
/// hex digits in any case. The other spellings the `uuid` crate also takes
/// (`{…}`, `urn:uuid:…`, 32 digits without hyphens) are `None`. The id is
/// stored and written back in lowercase, RFC 4122's output form.
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    if text.len() == 36 {
        Uuid::try_parse(text).ok()
    } else {
        None
    }
}

/// Serde adapters for ids in request bodies: only [`parse_uuid`]'s form.
pub mod rfc4122 {
    use serde::{de, Deserialize, Deserializer};
    use uuid::Uuid;

    const EXPECTED: &str =
        "a uuid written xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (RFC 4122, hex digits)";

    fn parse<E: de::Error>(text: &str) -> Result<Uuid, E> {
        super::parse_uuid(text)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &EXPECTED))
    }

    /// `#[serde(deserialize_with = "rfc4122::deserialize")]` on a `Uuid`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        parse(&text)
    }

    /// The customer actor's `tenant_id`. The actor is an internally tagged
    /// enum, whose decoding loses the path inside it, so the error names
    /// the field itself.
    pub fn actor_tenant_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        super::parse_uuid(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "tenant_id: invalid value {text:?}, expected {EXPECTED}"
            ))
        })
    }

    /// `#[serde(default, deserialize_with = "rfc4122::option")]` on an
    /// `Option<Uuid>`.
    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Uuid>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| parse(&text)).transpose()
    }
}

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
#[serde(rename_all = "snake_case")]
pub enum SolutionArea {
    BusinessApplications,
    #[serde(rename = "microsoft_365")]
    Microsoft365,
}

impl SolutionArea {
    /// Contract §1: Business Applications allows all three activities,
    /// Microsoft 365 only usage.
    pub fn allows(self, activity: Activity) -> bool {
        match self {
            SolutionArea::BusinessApplications => true,
            SolutionArea::Microsoft365 => activity == Activity::Usage,
        }
    }
}

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
#[serde(rename_all = "snake_case")]
pub enum Activity {
    Presales,
    Usage,
    RevenueAssociation,
}

impl Activity {
    pub const ALL: [Activity; 3] = [
        Activity::Presales,
        Activity::Usage,
        Activity::RevenueAssociation,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    VolumeLicensing,
    WebDirect,
    Csp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    PendingProvisioning,
    Active,
    InGrace,
    Expired,
    Disabled,
}

impl SubscriptionState {
    /// "Active or in grace": the only states a claim may rest on.
    pub fn is_live(self) -> bool {
        matches!(self, SubscriptionState::Active | SubscriptionState::InGrace)
    }
}

/// Who sends a command. The wire form is `{"type": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    Partner {
        partner_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        #[serde(default)]
        roles: Vec<String>,
    },
    Reviewer {
        id: String,
    },
    Customer {
        #[serde(deserialize_with = "rfc4122::actor_tenant_id")]
        tenant_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    System {
        id: String,
    },
}

/// Partner roles that may act on claims (contract §3); any other role string
/// is accepted on the wire and grants nothing.
pub const PARTNER_ROLES_ALLOWED: [&str; 3] = ["global_admin", "billing_admin", "incentives_admin"];

impl Actor {
    /// The actor the service itself writes rule-driven events with
    /// (deadlines, arbitration outcomes, subscription ends).
    pub fn service() -> Actor {
        Actor::System {
            id: "cpor".to_string(),
        }
    }

    pub fn kind(&self) -> ActorKind {
        match self {
            Actor::Partner { .. } => ActorKind::Partner,
            Actor::Reviewer { .. } => ActorKind::Reviewer,
            Actor::Customer { .. } => ActorKind::Customer,
            Actor::System { .. } => ActorKind::System,
        }
    }

    /// A partner actor holding at least one role that grants claim work.
    pub fn partner_with_allowed_role(&self) -> Option<&str> {
        match self {
            Actor::Partner {
                partner_id, roles, ..
            } if roles
                .iter()
                .any(|role| PARTNER_ROLES_ALLOWED.contains(&role.as_str())) =>
            {
                Some(partner_id)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    Partner,
    Reviewer,
    Customer,
    System,
}

/// One proof-of-execution document: a reference, never the file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoeDocument {
    pub name: String,
    pub uri: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mpn {
    pub mpn_id: String,
    pub incentive_enrolled: bool,
}

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
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    Submitted,
    UnderReview,
    PartnerActionRequired,
    Approved,
    Rejected,
    Withdrawn,
    Ended,
}

impl ClaimStatus {
    /// Contract §1: "Open statuses: submitted, under_review, partner_action_required".
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ClaimStatus::Submitted | ClaimStatus::UnderReview | ClaimStatus::PartnerActionRequired
        )
    }

    /// Whether a claim in this status still competes for partner of
    /// record: an open claim, or the approved one (contract §1, "Competing
    /// claims": the approved incumbent "counts as a contender"). [`crate::state::Claim::is_contender`] and the listings'
    /// `in_arbitration` ([`crate::view::ClaimView::in_open_case`]) ask this.
    pub fn is_contender(self) -> bool {
        self.is_open() || self == ClaimStatus::Approved
    }

    /// The wire name (`"under_review"`), as serde spells it: the one
    /// spelling of a status.
    pub fn as_str(self) -> &'static str {
        wire_name(&self)
    }

    /// The status with that wire name, if any.
    pub fn parse(text: &str) -> Option<ClaimStatus> {
        <ClaimStatus as strum::VariantArray>::VARIANTS
            .iter()
            .copied()
            .find(|s| s.as_str() == text)
    }
}

/// The name serde gives a unit variant of a wire enum (its `rename_all`
/// applied), so that names are declared once, on the enum.
pub(crate) fn wire_name<T: Serialize>(value: &T) -> &'static str {
    serde_variant::to_variant_name(value).expect("wire enums are unit variants")
}

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
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Closed,
}

impl CaseStatus {
    /// The wire name (`"open"`, `"closed"`), as serde spells it.
    pub fn as_str(self) -> &'static str {
        wire_name(&self)
    }

    /// The status with that wire name (`arbitration.list`'s `status`
    /// filter), if any.
    pub fn parse(text: &str) -> Option<CaseStatus> {
        [CaseStatus::Open, CaseStatus::Closed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The two clocks a claim can be on (contract §1, "Two deadlines").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    Review,
    PartnerResponse,
}

impl DeadlineKind {
    /// `"review"` or `"partner_response"`, as serde spells it.
    pub fn as_str(self) -> &'static str {
        wire_name(&self)
    }
}

/// The arbitration key: one partner of record per customer, product and activity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ClaimKey {
    pub tenant_id: Uuid,
    pub product: String,
    pub activity: Activity,
}

/// Reason codes the service itself writes.
pub mod reason {
    pub const LOST_ARBITRATION: &str = "LOST_ARBITRATION";
    pub const SUPERSEDED: &str = "SUPERSEDED";
    pub const DISASSOCIATED: &str = "DISASSOCIATED";
    pub const CUSTOMER_DECLINED: &str = "CUSTOMER_DECLINED";
    pub const SUBSCRIPTION_ENDED: &str = "SUBSCRIPTION_ENDED";
    pub const NO_PARTNER_RESPONSE: &str = "NO_PARTNER_RESPONSE";
}
