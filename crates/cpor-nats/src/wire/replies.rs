//! The replies the service sends (contract §3 and §4), as types: the
//! server builds them and `schema` generates their JSON Schemas from
//! the same types, so a field cannot be added to one and not the other.
//! Views and events are stored as JSON in the log and travel as `Value`,
//! documented with the domain type they are (`#[schemars(with = …)]`).

use std::borrow::Cow;

use schemars::{JsonSchema, SchemaGenerator};
use serde::{Serialize, Serializer};
use serde_json::Value;
use uuid::Uuid;

use cpor_domain::error::ErrorCode;
use cpor_domain::types::Timestamp;
use cpor_domain::view::{CaseView, ClaimView, CommentView};

/// Declares a unit type that serializes as one boolean, and whose schema
/// is that constant.
macro_rules! boolean_constant {
    ($(#[$doc:meta])* $name:ident = $value:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bool($value)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({"type": "boolean", "const": $value})
            }
        }
    };
}

boolean_constant!(
    /// `true`, always.
    True = true
);
boolean_constant!(
    /// `false`, always.
    False = false
);

/// A command was accepted (or was a duplicate of an accepted one).
#[derive(Serialize, JsonSchema)]
pub struct CommandAccepted {
    pub ok: True,
    /// The claim the command was about; null for reference data.
    pub claim_id: Option<Uuid>,
    /// The claim's version after the command (for reference data, the record's version).
    pub version: u64,
    /// The CloudEvents types of every event the command wrote, in order.
    pub events: Vec<String>,
    /// Warning codes, e.g. `MPN_NOT_ENROLLED`.
    pub warnings: Vec<String>,
    /// True when this is the first reply sent again for a repeated command.
    pub duplicate: bool,
}

/// A refused request: nothing was written.
#[derive(Serialize, JsonSchema)]
pub struct ErrorReply {
    pub ok: False,
    pub error: ErrorBody,
}

#[derive(Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The first of `reasons`.
    pub code: ErrorCode,
    /// A sentence a partner understands; for `INVALID_COMMAND` it names the field.
    pub message: String,
    /// Every rule the request breaks, in the contract's precedence order.
    #[schemars(length(min = 1))]
    pub reasons: Vec<ErrorCode>,
    /// The claim's version, with `VERSION_CONFLICT` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
}

#[derive(Serialize, JsonSchema)]
pub struct ClaimGetReply {
    pub ok: True,
    #[schemars(with = "ClaimView")]
    pub claim: Value,
    /// The claim's conversation, oldest first: a page of it, at most
    /// `comments_limit` comments and as many as fit the NATS server's
    /// `max_payload`.
    #[schemars(with = "Vec<CommentView>")]
    pub comments: Vec<Value>,
    /// Present only when comments are left: pass it as `comments_after` for
    /// the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments_next: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ClaimHistoryReply {
    pub ok: True,
    /// The claim's events (CloudEvents) in log order: a page of them, at
    /// most `limit` and as many as fit the NATS server's `max_payload`.
    pub events: Vec<Value>,
    /// Present only when events are left: pass it as `after` for the next
    /// page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct ClaimsListReply {
    pub ok: True,
    /// Claims in submission order: at most `limit`, and as many as fit the
    /// NATS server's `max_payload`.
    #[schemars(with = "Vec<ClaimView>")]
    pub claims: Vec<Value>,
    /// The cursor to pass as `after` for the next page; null on the last page.
    pub next: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct CaseGetReply {
    pub ok: True,
    #[schemars(with = "CaseView")]
    pub case: Value,
}

#[derive(Serialize, JsonSchema)]
pub struct CaseListReply {
    pub ok: True,
    /// Cases in the order they opened: a page of them, at most `limit` and
    /// as many as fit the NATS server's `max_payload`.
    #[schemars(with = "Vec<CaseView>")]
    pub cases: Vec<Value>,
    /// Present only when cases are left: pass it as `after` for the next
    /// page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Serialize, JsonSchema)]
pub struct HealthReply {
    pub ok: True,
    /// The last position written to the log.
    pub log_position: u64,
    /// The last position up to which every event is in the events stream
    /// as the log's own bytes; it stops before a forged or unpublishable one.
    pub published_position: u64,
    /// The last position the relay has handled (published or reported).
    pub relayed_position: u64,
    /// What the relay found wrong with the stream copy of the log.
    pub trail: TrailHealth,
}

#[derive(Serialize, JsonSchema)]
pub struct TrailHealth {
    /// No forged and no unpublishable event.
    pub intact: bool,
    /// Events whose id someone else's message holds in the events stream.
    pub forged_events: u64,
    pub first_forged_position: Option<u64>,
    /// Events JetStream refused for good (skipped, kept in the log).
    pub unpublishable_events: u64,
    pub first_unpublishable_position: Option<u64>,
    /// Messages in the events stream that are not this log's events, seen
    /// when the relay resumed.
    pub foreign_messages: u64,
}

#[derive(Serialize, JsonSchema)]
pub struct ClockReply {
    pub ok: True,
    /// The service's time after the request (RFC 3339, UTC).
    #[schemars(with = "Timestamp")]
    pub now: String,
}
