//! Events: facts the service has recorded. Past tense, never refused.
//!
//! Each event belongs to one aggregate (a claim, an arbitration case or a
//! reference record) and carries everything [`crate::State::evolve`] needs, so
//! folding events never consults a clock, a calendar or reference data: the
//! deadlines a decision computed are written into the event.
//!
//! Events are versioned. The log stores each event with its schema version;
//! [`EventData::decode`] upcasts older versions before deserializing, so the
//! log never has to be rewritten when an event gains a field.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::command::SubscriptionRecord;
use crate::types::{Activity, Actor, Mpn, PoeDocument, SolutionArea, Timestamp};

/// An event as decided: who caused it and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub actor: Actor,
    pub data: EventData,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AggregateKind {
    Claim,
    Arbitration,
    Tenant,
    Subscription,
    Partner,
}

impl AggregateKind {
    pub const ALL: [AggregateKind; 5] = [
        AggregateKind::Claim,
        AggregateKind::Arbitration,
        AggregateKind::Tenant,
        AggregateKind::Subscription,
        AggregateKind::Partner,
    ];

    /// The name used in subjects and CloudEvents types.
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateKind::Claim => "claim",
            AggregateKind::Arbitration => "arbitration",
            AggregateKind::Tenant => "tenant",
            AggregateKind::Subscription => "subscription",
            AggregateKind::Partner => "partner",
        }
    }

    pub fn parse(name: &str) -> Option<AggregateKind> {
        AggregateKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// Identifies one aggregate instance: kind and id as written in subjects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateId {
    pub kind: AggregateKind,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TenantUpserted {
    pub tenant_id: Uuid,
    pub domains: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PartnerUpserted {
    pub partner_id: String,
    pub mpns: Vec<Mpn>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClaimSubmitted {
    pub claim_id: Uuid,
    pub partner_id: String,
    pub mpn_id: String,
    pub tenant_id: Uuid,
    pub domain: String,
    pub solution_area: SolutionArea,
    pub activity: Activity,
    pub product: String,
    pub subscription_ids: Vec<Uuid>,
    pub incentive_eligible: bool,
    pub proof_of_execution: Vec<PoeDocument>,
    /// Added in schema version 2; version 1 records upcast to `null`.
    pub note: Option<String>,
    pub review_due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClaimRef {
    pub claim_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentAdded {
    pub claim_id: Uuid,
    pub text: String,
    /// Written by the service (arbitration notices), not by a person.
    pub system: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoeRequested {
    pub claim_id: Uuid,
    pub text: String,
    pub partner_response_due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PoeSubmitted {
    pub claim_id: Uuid,
    pub proof_of_execution: Vec<PoeDocument>,
    pub text: Option<String>,
    /// Set when the answer returns the claim to `under_review` and so starts
    /// a new review deadline.
    pub review_due_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Approved {
    pub claim_id: Uuid,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Rejected {
    pub claim_id: Uuid,
    pub reason: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Withdrawn {
    pub claim_id: Uuid,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Disputed {
    pub claim_id: Uuid,
    pub text: String,
    pub proof_of_execution: Vec<PoeDocument>,
    pub review_due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AssociationEnded {
    pub claim_id: Uuid,
    pub reason: String,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReviewDeadlineMissed {
    pub claim_id: Uuid,
    pub review_due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PartnerResponseMissed {
    pub claim_id: Uuid,
    pub partner_response_due_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArbitrationOpened {
    pub case_id: Uuid,
    pub tenant_id: Uuid,
    pub product: String,
    pub activity: Activity,
    /// The contenders the case starts with, in the order they entered it.
    pub claim_ids: Vec<Uuid>,
    pub incumbent_claim_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArbitrationClaimJoined {
    pub case_id: Uuid,
    pub claim_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArbitrationResolved {
    pub case_id: Uuid,
    pub winner_claim_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArbitrationClosed {
    pub case_id: Uuid,
}

/// The length in bytes of `value`'s compact JSON as `serde_json` writes
/// it, counted without building it (no allocation).
///
/// # Panics
/// When `value` does not serialize to JSON (a map with non-string keys):
/// the domain's plain data always does.
pub fn compact_json_len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = ByteCounter(0);
    serde_json::to_writer(&mut counter, value).expect("plain data serializes to JSON");
    counter.0
}

/// An `io::Write` that keeps only the number of bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Generates the closed list of events with their names, aggregates and
/// current schema versions, so the three can never drift apart.
macro_rules! events {
    ($( $variant:ident($payload:ty) => $kind:ident, $name:literal, version $version:literal, |$p:ident| $id:expr; )*) => {
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $( $variant($payload), )*
        }

        impl EventData {
            /// The event's name within its aggregate, e.g. `submitted`.
            pub fn name(&self) -> &'static str {
                match self { $( EventData::$variant(_) => $name, )* }
            }

            pub fn aggregate_kind(&self) -> AggregateKind {
                match self { $( EventData::$variant(_) => AggregateKind::$kind, )* }
            }

            pub fn aggregate(&self) -> AggregateId {
                match self {
                    $( EventData::$variant($p) => AggregateId { kind: AggregateKind::$kind, id: $id }, )*
                }
            }

            /// The schema version this build writes.
            pub fn schema_version(&self) -> u32 {
                match self { $( EventData::$variant(_) => $version, )* }
            }

            /// The event's fields as a JSON object (without `actor`).
            pub fn to_value(&self) -> Value {
                let value = match self {
                    $( EventData::$variant(p) => serde_json::to_value(p), )*
                };
                value.expect("event payloads are plain data and always serialize")
            }

            /// The length in bytes of the payload's compact JSON (the
            /// members [`EventData::to_value`] gives, as `serde_json`
            /// writes them), counted without building it.
            pub fn json_len(&self) -> usize {
                match self {
                    $( EventData::$variant(p) => compact_json_len(p), )*
                }
            }

            /// Decodes a stored payload of any known schema version.
            pub fn decode(kind: AggregateKind, name: &str, version: u32, value: Value) -> Result<EventData, DecodeError> {
                let value = upcast(kind, name, version, value)?;
                $(
                    if kind == AggregateKind::$kind && name == $name {
                        return serde_json::from_value::<$payload>(value)
                            .map(EventData::$variant)
                            .map_err(|e| DecodeError::Payload { name: format!("{}.{}", kind.as_str(), name), reason: e.to_string() });
                    }
                )*
                Err(DecodeError::UnknownType(format!("{}.{}", kind.as_str(), name)))
            }

            /// Decodes a payload from JSON text. The hot path of replays:
            /// a payload already at the current version is deserialized
            /// straight from the text (other fields, such as `actor`, are
            /// skipped); an older one goes through [`EventData::decode`]'s
            /// upcasters.
            pub fn decode_str(kind: AggregateKind, name: &str, version: u32, text: &str) -> Result<EventData, DecodeError> {
                let payload_error = |e: serde_json::Error| DecodeError::Payload { name: format!("{}.{}", kind.as_str(), name), reason: e.to_string() };
                $(
                    if kind == AggregateKind::$kind && name == $name && version == $version {
                        return serde_json::from_str::<$payload>(text).map(EventData::$variant).map_err(payload_error);
                    }
                )*
                let value: Value = serde_json::from_str(text).map_err(payload_error)?;
                EventData::decode(kind, name, version, value)
            }

            /// Deserializes a payload written at its current schema
            /// version straight from `deserializer`, in one pass: the
            /// replays' hot path, for a deserializer that already stands
            /// on the payload inside a larger document (other members,
            /// such as `actor`, are the deserializer's to skip or take).
            /// `None` when `(kind, name, version)` is not a known event at
            /// its current version (the deserializer is then dropped
            /// unused): older versions need [`EventData::decode`]'s
            /// upcasters.
            pub fn deserialize_current<'de, D: serde::Deserializer<'de>>(
                kind: AggregateKind,
                name: &str,
                version: u32,
                deserializer: D,
            ) -> Option<Result<EventData, D::Error>> {
                $(
                    if kind == AggregateKind::$kind && name == $name && version == $version {
                        return Some(<$payload as Deserialize>::deserialize(deserializer).map(EventData::$variant));
                    }
                )*
                None
            }

            /// Current schema version of a named event, if it exists.
            pub fn current_version(kind: AggregateKind, name: &str) -> Option<u32> {
                $( if kind == AggregateKind::$kind && name == $name { return Some($version); } )*
                None
            }
        }
    };
}

events! {
    TenantUpserted(TenantUpserted) => Tenant, "upserted", version 1, |p| p.tenant_id.to_string();
    SubscriptionUpserted(SubscriptionRecord) => Subscription, "upserted", version 1, |p| p.subscription_id.to_string();
    PartnerUpserted(PartnerUpserted) => Partner, "upserted", version 1, |p| p.partner_id.clone();
    ClaimSubmitted(ClaimSubmitted) => Claim, "submitted", version 2, |p| p.claim_id.to_string();
    ReviewStarted(ClaimRef) => Claim, "review_started", version 1, |p| p.claim_id.to_string();
    CommentAdded(CommentAdded) => Claim, "comment_added", version 1, |p| p.claim_id.to_string();
    PoeRequested(PoeRequested) => Claim, "poe_requested", version 1, |p| p.claim_id.to_string();
    PoeSubmitted(PoeSubmitted) => Claim, "poe_submitted", version 1, |p| p.claim_id.to_string();
    Approved(Approved) => Claim, "approved", version 1, |p| p.claim_id.to_string();
    Rejected(Rejected) => Claim, "rejected", version 1, |p| p.claim_id.to_string();
    Withdrawn(Withdrawn) => Claim, "withdrawn", version 1, |p| p.claim_id.to_string();
    Disputed(Disputed) => Claim, "disputed", version 1, |p| p.claim_id.to_string();
    AssociationEnded(AssociationEnded) => Claim, "association_ended", version 1, |p| p.claim_id.to_string();
    ReviewDeadlineMissed(ReviewDeadlineMissed) => Claim, "review_deadline_missed", version 1, |p| p.claim_id.to_string();
    PartnerResponseMissed(PartnerResponseMissed) => Claim, "partner_response_missed", version 1, |p| p.claim_id.to_string();
    ArbitrationOpened(ArbitrationOpened) => Arbitration, "opened", version 1, |p| p.case_id.to_string();
    ArbitrationClaimJoined(ArbitrationClaimJoined) => Arbitration, "claim_joined", version 1, |p| p.case_id.to_string();
    ArbitrationResolved(ArbitrationResolved) => Arbitration, "resolved", version 1, |p| p.case_id.to_string();
    ArbitrationClosed(ArbitrationClosed) => Arbitration, "closed", version 1, |p| p.case_id.to_string();
}

impl EventData {
    /// The claim an event is about, for claim events.
    pub fn claim_id(&self) -> Option<Uuid> {
        if self.aggregate_kind() != AggregateKind::Claim {
            return None;
        }
        self.aggregate().id.parse().ok()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0}")]
    UnknownType(String),
    #[error("event {name} has schema version {version}, newer than this build knows ({known})")]
    FutureVersion {
        name: String,
        version: u32,
        known: u32,
    },
    #[error("event {name} payload does not decode: {reason}")]
    Payload { name: String, reason: String },
}

/// Upcasters: bring an old payload to the current schema, one version at a
/// time. Each step is a pure function of the JSON, so old records are read
/// as they were written and never rewritten.
fn upcast(
    kind: AggregateKind,
    name: &str,
    version: u32,
    mut value: Value,
) -> Result<Value, DecodeError> {
    let full_name = format!("{}.{}", kind.as_str(), name);
    let current = EventData::current_version(kind, name)
        .ok_or_else(|| DecodeError::UnknownType(full_name.clone()))?;
    if version > current {
        return Err(DecodeError::FutureVersion {
            name: full_name,
            version,
            known: current,
        });
    }
    let mut at = version;
    while at < current {
        // One arm per (event, from-version) step; more arms come with more versions.
        #[allow(clippy::single_match)]
        match (kind, name, at) {
            // claim.submitted v1 → v2: the optional `note` was added.
            (AggregateKind::Claim, "submitted", 1) => {
                if let Value::Object(map) = &mut value {
                    map.entry("note").or_insert(Value::Null);
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(value)
}
