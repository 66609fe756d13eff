//! Wire DTOs: subjects and JSON bodies in, domain commands and queries out.
//!
//! Parsing happens in two stages (ripgrep's low-args → high-args): serde
//! decodes the body into a strict DTO (unknown fields refused, every error
//! naming its field), then each field's limits are checked, in a fixed order
//! per command, through the types that declare them ([`fields`]: the same
//! types give the JSON Schemas their `maxLength`, `pattern` and so on), and
//! the subject and actor must agree. Checks run in the contract's precedence order:
//! size, JSON, shape (`INVALID_COMMAND`), permission (`FORBIDDEN`); whatever
//! needs state is the engine's.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use cpor_domain::access::{self, Action, Scope, Visibility};
use cpor_domain::command::{Command, CommandEnvelope, SubmitClaim, SubscriptionRecord};
use cpor_domain::dns::domain_key;
use cpor_domain::error::{ErrorCode, Rejection};
use cpor_domain::limits::{DOMAINS_PER_TENANT_MAX, MPNS_PER_PARTNER_MAX};
use cpor_domain::types::{
    parse_uuid, rfc4122, Activity, Actor, Channel, ClaimStatus, Mpn, SolutionArea,
    SubscriptionState, Timestamp,
};
use cpor_jcs::canonical_json;
use cpor_log::ClaimFilter;

use fields::{
    ActorDto, CorrelationId, FreeText, IntoPlain, Limited, List, MpnDto, MpnId, Name, OptionalText,
    PageLimit, PoeDocuments, ReasonCode, ShortText, SubjectId, Text,
};

/// Largest request payload (contract §3).
pub const PAYLOAD_MAX_BYTES: usize = 64 * 1024;
/// Free texts: comments, justifications, notes, reasons.
pub const TEXT_MAX_CHARS: usize = 4_000;
/// Proof-of-execution documents in one request.
pub const POE_DOCUMENTS_MAX: usize = 20;
pub const CORRELATION_ID_MAX_CHARS: usize = 128;
/// Role strings of one partner actor.
pub const ACTOR_ROLES_MAX: usize = 100;
/// Product names, domain names (as written, before the DNS-name check of
/// [`cpor_domain::dns`]), reviewer ids and other short strings.
pub const NAME_MAX_CHARS: usize = 256;
pub const URI_MAX_CHARS: usize = 2_048;

// A request lives for one message and is moved once; boxing the command
// would only add an allocation per command.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Command {
        envelope: CommandEnvelope,
        fingerprint: String,
    },
    Query(Query),
    Clock {
        now: Timestamp,
    },
    Health,
}

#[derive(Debug, Clone, PartialEq)]
/// A query the caller is allowed to make ([`access::authorize`]), with the
/// claims it may see.
pub enum Query {
    /// `CLAIM_NOT_FOUND` unless the claim is within `visibility`.
    ClaimGet {
        visibility: Visibility,
        claim_id: Uuid,
        /// The page of the claim's comments: at most this many…
        comments_limit: usize,
        /// …after the comment with this cursor (`comments_next` of a reply).
        comments_after: Option<u64>,
    },
    /// `CLAIM_NOT_FOUND` unless the claim is within `visibility`.
    ClaimHistory {
        visibility: Visibility,
        claim_id: Uuid,
        /// At most this many events…
        limit: usize,
        /// …after the event with this cursor (`next` of a reply).
        after: Option<u64>,
    },
    /// `filter` is already narrowed to what the caller sees.
    ClaimsList {
        filter: ClaimFilter,
        limit: usize,
        after: Option<u64>,
    },
    CaseGet {
        case_id: Uuid,
    },
    CaseList {
        status: Option<String>,
        /// At most this many cases…
        limit: usize,
        /// …after the case with this cursor (`next` of a reply).
        after: Option<u64>,
    },
}

fn invalid(message: impl Into<String>) -> Rejection {
    Rejection::with_message(ErrorCode::InvalidCommand, message)
}

/// Queries on `{prefix}.qry.partner.{partner_id}.…` (contract v1.1 §4).
pub const PARTNER_QUERIES: [&str; 3] = ["claim.get", "claim.history", "claims.list"];
/// Queries on `{prefix}.qry.customer.{tenant_id}.…` (contract v1.1 §4).
pub const CUSTOMER_QUERIES: [&str; 2] = ["claim.get", "claims.list"];

/// Parses one request. `tail` is the subject without `{prefix}.`.
pub fn parse(tail: &str, payload: &[u8]) -> Result<Request, Rejection> {
    if payload.len() > PAYLOAD_MAX_BYTES {
        return Err(Rejection::new(ErrorCode::PayloadTooLarge));
    }
    // Health answers anyone, with or without a body.
    if tail == "qry.health" {
        return Ok(Request::Health);
    }
    let body = parse_body(payload)?;
    let parts: Vec<&str> = tail.split('.').collect();
    match parts.as_slice() {
        ["cmd", ..] => parse_command(tail, &parts[1..], body),
        ["qry", "partner", partner_id, rest @ ..] => {
            subject_partner(partner_id)?;
            let name = rest.join(".");
            if !PARTNER_QUERIES.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "unknown query: partner.{{partner_id}}.{name}"
                )));
            }
            parse_query(Scope::Partner(partner_id.to_string()), &name, body).map(Request::Query)
        }
        ["qry", "customer", tenant_id, rest @ ..] => {
            let tenant_id = subject_tenant(tenant_id)?;
            let name = rest.join(".");
            if !CUSTOMER_QUERIES.contains(&name.as_str()) {
                return Err(invalid(format!(
                    "unknown query: customer.{{tenant_id}}.{name}"
                )));
            }
            parse_query(Scope::Customer(tenant_id), &name, body).map(Request::Query)
        }
        ["qry", rest @ ..] => {
            parse_query(Scope::Console, &rest.join("."), body).map(Request::Query)
        }
        ["admin", "clock"] => parse_clock(body),
        _ => Err(invalid(format!("unknown subject name: {tail}"))),
    }
}

/// The body as a JSON object, or `INVALID_JSON`: not JSON, not an object,
/// an object with the same key twice at any depth (RFC 8259 §4 leaves
/// duplicates' meaning open and parsers disagree on which wins, so a body
/// must not carry them), a number out of the range of an IEEE 754 double
/// (`1e400`), or nesting deeper than serde_json's 128 levels.
fn parse_body(payload: &[u8]) -> Result<Value, Rejection> {
    let not_json = |message: String| Rejection::with_message(ErrorCode::InvalidJson, message);
    let UniqueKeys(body) = serde_json::from_slice(payload)
        .map_err(|e| not_json(format!("The body is not valid JSON: {e}.")))?;
    if !body.is_object() {
        return Err(not_json("The body must be a JSON object.".into()));
    }
    Ok(body)
}

/// A JSON value decoded with every object's keys checked for repeats
/// (serde_json's own `Value` keeps the last of them silently).
struct UniqueKeys(Value);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Decodes a DTO, turning serde's error into a message naming the field.
fn decode<T: DeserializeOwned>(body: Value) -> Result<T, Rejection> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            invalid(inner)
        } else {
            invalid(format!("{path}: {inner}"))
        }
    })
}

/// `sha256(subject tail ‖ "\n" ‖ RFC 8785 body)`: the same command sent
/// again with its keys in another order is still the same command.
///
/// # Errors
///
/// `INVALID_COMMAND` for a body with no RFC 8785 form (a number with no
/// finite double): there is no fingerprint to remember it by, so it is
/// refused rather than fingerprinted some other way.
fn fingerprint(tail: &str, body: &Value) -> Result<String, Rejection> {
    let canonical = canonical_json(body).map_err(|e| invalid(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(tail.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    // Lowercase hex without a `format!` per byte (one allocation, not 33).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(2 * digest.len());
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    Ok(hex)
}

/// Contract §8: a service prefix matches `^[a-z][a-z0-9_]{0,31}$`, so it is
/// one NATS subject token and upper-cases into a stream name.
pub fn is_valid_prefix(prefix: &str) -> bool {
    fields::is_token(
        prefix,
        32,
        |b| b.is_ascii_lowercase(),
        |b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_',
    )
}

/// A partner id as subjects and bodies carry it: `^[A-Za-z0-9_-]{1,64}$`.
pub fn is_subject_id(text: &str) -> bool {
    SubjectId::matches(text)
}

/// A domain name: at most [`NAME_MAX_CHARS`] as written, and a DNS name
/// (UTS 46; see [`cpor_domain::dns`]).
fn check_domain(field: &str, domain: &Name) -> Result<(), Rejection> {
    domain.check(field)?;
    domain_key(domain.as_str())
        .map(|_| ())
        .map_err(|e| invalid(format!("{field}: {:?} {e}", domain.as_str())))
}

/// Checks a `correlation_id` and records it on the current span (the
/// request's span that the server opened, `server::request_span`), so the
/// request's log lines and trace carry it.
fn check_correlation(correlation_id: &Option<CorrelationId>) -> Result<(), Rejection> {
    correlation_id.check("correlation_id")?;
    if let Some(id) = correlation_id {
        tracing::Span::current().record("correlation_id", id.as_str());
    }
    Ok(())
}

/// Checks the actor of a query and gives its domain form.
fn query_actor(actor: ActorDto) -> Result<Actor, Rejection> {
    actor.check()?;
    Ok(actor.into())
}

/// Generates a strict DTO with the fields every command carries.
/// Ids take only the hyphenated RFC 4122 form ([`rfc4122`]); the limits of
/// the other fields are their types' ([`fields`]).
macro_rules! command_dto {
    ($name:ident { $( $(#[$meta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[derive(schemars::JsonSchema)]
        #[serde(deny_unknown_fields)]
        struct $name {
            #[serde(deserialize_with = "rfc4122::deserialize")]
            command_id: Uuid,
            actor: ActorDto,
            correlation_id: Option<CorrelationId>,
            $( $(#[$meta])* $field: $ty, )*
        }
    };
}

command_dto!(RefTenantDto {
    #[serde(deserialize_with = "rfc4122::deserialize")] tenant_id: Uuid,
    domains: List<Name, 1, DOMAINS_PER_TENANT_MAX>,
});
command_dto!(RefSubscriptionDto {
    #[serde(deserialize_with = "rfc4122::deserialize")]
    subscription_id: Uuid,
    #[serde(deserialize_with = "rfc4122::deserialize")]
    tenant_id: Uuid,
    product: Name,
    solution_area: SolutionArea,
    is_dynamics: bool,
    channel: Channel,
    state: SubscriptionState,
});
command_dto!(RefPartnerDto { partner_id: SubjectId, mpns: List<MpnDto, 0, MPNS_PER_PARTNER_MAX> });
command_dto!(SubmitDto {
    #[serde(default, deserialize_with = "rfc4122::option")] claim_id: Option<Uuid>,
    #[serde(deserialize_with = "rfc4122::deserialize")] tenant_id: Uuid,
    domain: Name,
    solution_area: SolutionArea,
    activity: Activity,
    product: Name,
    subscription_id: Option<ShortText>,
    mpn_id: MpnId,
    proof_of_execution: Option<PoeDocuments<0>>,
    note: Option<OptionalText>,
});
command_dto!(TextDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, text: FreeText, expected_version: Option<u64> });
command_dto!(OptionalTextDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, text: Option<OptionalText>, expected_version: Option<u64> });
command_dto!(ClaimOnlyDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, expected_version: Option<u64> });
command_dto!(SubmitPoeDto {
    #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid,
    proof_of_execution: PoeDocuments<1>,
    text: Option<OptionalText>,
    expected_version: Option<u64>,
});
command_dto!(OptionalReasonDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, reason: Option<OptionalText>, expected_version: Option<u64> });
command_dto!(ReasonDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, reason: FreeText, expected_version: Option<u64> });
command_dto!(DisputeDto {
    #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid,
    text: FreeText,
    proof_of_execution: Option<PoeDocuments<0>>,
    expected_version: Option<u64>,
});
command_dto!(RejectDto { #[serde(deserialize_with = "rfc4122::deserialize")] claim_id: Uuid, reason: ReasonCode, text: Option<OptionalText>, expected_version: Option<u64> });

/// Builds the envelope once the DTO passed its checks: the actor's, then
/// the correlation id's.
fn envelope(
    command_id: Uuid,
    actor: ActorDto,
    correlation_id: Option<CorrelationId>,
    expected_version: Option<u64>,
    command: Command,
) -> Result<CommandEnvelope, Rejection> {
    actor.check()?;
    check_correlation(&correlation_id)?;
    Ok(CommandEnvelope {
        command_id,
        actor: actor.into(),
        correlation_id: correlation_id.map(Text::into_string),
        traceparent: None,
        expected_version,
        command,
    })
}

/// The envelope of a command about an existing claim, from its DTO `d`
/// (whose other fields the command has already taken).
macro_rules! claim_envelope {
    ($d:ident, $command:expr) => {
        envelope(
            $d.command_id,
            $d.actor,
            $d.correlation_id,
            $d.expected_version,
            $command,
        )
    };
}

/// The partner id a subject carries, checked (`INVALID_COMMAND` otherwise).
fn subject_partner(partner_id: &str) -> Result<(), Rejection> {
    if is_subject_id(partner_id) {
        Ok(())
    } else {
        Err(invalid(
            "subject: the partner id must match ^[A-Za-z0-9_-]{1,64}$",
        ))
    }
}

/// The tenant id a subject carries (`INVALID_COMMAND` unless a uuid).
fn subject_tenant(tenant_id: &str) -> Result<Uuid, Rejection> {
    parse_uuid(tenant_id).ok_or_else(|| invalid("subject: the tenant id must be a uuid"))
}

/// Parses a command on `{prefix}.cmd.…` (`parts` after `cmd`), fingerprints
/// its body and authorizes its actor for the subject's scope.
fn parse_command(tail: &str, parts: &[&str], body: Value) -> Result<Request, Rejection> {
    let print = fingerprint(tail, &body)?;
    let (envelope, scope) = match parts {
        ["ref", "tenant"] => (ref_tenant(body)?, Scope::System),
        ["ref", "subscription"] => (ref_subscription(body)?, Scope::System),
        ["ref", "partner"] => (ref_partner(body)?, Scope::System),
        ["partner", partner_id, name] => {
            subject_partner(partner_id)?;
            (
                partner_command(name, body)?,
                Scope::Partner(partner_id.to_string()),
            )
        }
        ["review", name] => (review_command(name, body)?, Scope::Review),
        ["customer", tenant_id, "decline"] => {
            let tenant_id = subject_tenant(tenant_id)?;
            (customer_decline(body)?, Scope::Customer(tenant_id))
        }
        _ => return Err(invalid(format!("unknown subject name: {tail}"))),
    };
    access::authorize(&scope, &envelope.actor, Action::Command(&envelope.command))?;
    Ok(Request::Command {
        envelope,
        fingerprint: print,
    })
}

/// `cmd.ref.tenant`: a tenant and its 1 to [`DOMAINS_PER_TENANT_MAX`] domains.
fn ref_tenant(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: RefTenantDto = decode(body)?;
    d.domains
        .check_len(|min, max, n| format!("domains: must list {min} to {max} domains, got {n}"))?;
    for (i, domain) in d.domains.iter().enumerate() {
        check_domain(&format!("domains[{i}]"), domain)?;
    }
    let command = Command::UpsertTenant {
        tenant_id: d.tenant_id,
        domains: d
            .domains
            .into_vec()
            .into_iter()
            .map(Text::into_string)
            .collect(),
    };
    envelope(d.command_id, d.actor, d.correlation_id, None, command)
}

/// `cmd.ref.subscription`: a subscription of a tenant.
fn ref_subscription(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: RefSubscriptionDto = decode(body)?;
    d.product.check("product")?;
    let command = Command::UpsertSubscription(SubscriptionRecord {
        subscription_id: d.subscription_id,
        tenant_id: d.tenant_id,
        product: d.product.into_string(),
        solution_area: d.solution_area,
        is_dynamics: d.is_dynamics,
        channel: d.channel,
        state: d.state,
    });
    envelope(d.command_id, d.actor, d.correlation_id, None, command)
}

/// `cmd.ref.partner`: a partner and up to [`MPNS_PER_PARTNER_MAX`] MPN ids.
fn ref_partner(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: RefPartnerDto = decode(body)?;
    d.partner_id.check("partner_id")?;
    d.mpns
        .check_len(|_, max, n| format!("mpns: at most {max} MPN ids, got {n}"))?;
    for (i, mpn) in d.mpns.iter().enumerate() {
        mpn.mpn_id.check(&format!("mpns[{i}].mpn_id"))?;
    }
    let command = Command::UpsertPartner {
        partner_id: d.partner_id.into_string(),
        mpns: d.mpns.into_vec().into_iter().map(Mpn::from).collect(),
    };
    envelope(d.command_id, d.actor, d.correlation_id, None, command)
}

/// Generates the parsers of the commands about one claim that carry one
/// field besides the claim id: `name: Dto.field => Variant` decodes `Dto`,
/// checks `field` (its limits are its type's; the message names it), and
/// builds `Command::Variant { claim_id, field }`.
macro_rules! one_field_commands {
    ($($name:ident: $dto:ident.$field:ident => $variant:ident;)*) => {$(
        fn $name(body: Value) -> Result<CommandEnvelope, Rejection> {
            let d: $dto = decode(body)?;
            d.$field.check(stringify!($field))?;
            let command = Command::$variant {
                claim_id: d.claim_id,
                $field: d.$field.into_plain(),
            };
            claim_envelope!(d, command)
        }
    )*};
}

one_field_commands! {
    comment: TextDto.text => Comment;
    request_poe: TextDto.text => RequestPoe;
    withdraw: OptionalReasonDto.reason => Withdraw;
    customer_decline: OptionalReasonDto.reason => CustomerDecline;
    approve: OptionalTextDto.text => Approve;
    disassociate: ReasonDto.reason => Disassociate;
}

/// `cmd.partner.{partner_id}.{name}`, once the subject's partner is checked.
fn partner_command(name: &str, body: Value) -> Result<CommandEnvelope, Rejection> {
    match name {
        "submit" => submit(body),
        "comment" => comment(body),
        "submit_poe" => submit_poe(body),
        "withdraw" => withdraw(body),
        "dispute" => dispute(body),
        "disassociate" => disassociate(body),
        other => Err(invalid(format!("unknown partner command: {other}"))),
    }
}

/// `submit`: a new claim (contract §1).
fn submit(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: SubmitDto = decode(body)?;
    check_domain("domain", &d.domain)?;
    d.product.check("product")?;
    d.mpn_id.check("mpn_id")?;
    d.subscription_id.check("subscription_id")?;
    d.note.check("note")?;
    if d.solution_area == SolutionArea::Microsoft365 && d.subscription_id.is_some() {
        return Err(invalid(
            "subscription_id: not allowed for microsoft_365 claims (they cover the product on the tenant)",
        ));
    }
    let proof_of_execution = d.proof_of_execution.unwrap_or_default();
    proof_of_execution.check("proof_of_execution")?;
    let command = Command::Submit(SubmitClaim {
        // The service assigns an id when the partner gives none.
        claim_id: d.claim_id.unwrap_or_else(Uuid::new_v4),
        tenant_id: d.tenant_id,
        domain: d.domain.into_string(),
        solution_area: d.solution_area,
        activity: d.activity,
        product: d.product.into_string(),
        subscription_id: d.subscription_id.map(Text::into_string),
        mpn_id: d.mpn_id.into_string(),
        proof_of_execution: proof_of_execution.into_domain(),
        note: d.note.map(Text::into_string),
    });
    envelope(d.command_id, d.actor, d.correlation_id, None, command)
}

fn submit_poe(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: SubmitPoeDto = decode(body)?;
    d.proof_of_execution.check("proof_of_execution")?;
    d.text.check("text")?;
    let command = Command::SubmitPoe {
        claim_id: d.claim_id,
        proof_of_execution: d.proof_of_execution.into_domain(),
        text: d.text.map(Text::into_string),
    };
    claim_envelope!(d, command)
}

fn dispute(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: DisputeDto = decode(body)?;
    d.text.check("text")?;
    let proof_of_execution = d.proof_of_execution.unwrap_or_default();
    proof_of_execution.check("proof_of_execution")?;
    let command = Command::Dispute {
        claim_id: d.claim_id,
        text: d.text.into_string(),
        proof_of_execution: proof_of_execution.into_domain(),
    };
    claim_envelope!(d, command)
}

/// `cmd.review.{name}`.
fn review_command(name: &str, body: Value) -> Result<CommandEnvelope, Rejection> {
    match name {
        "start" => start_review(body),
        "comment" => comment(body),
        "request_poe" => request_poe(body),
        "approve" => approve(body),
        "reject" => reject(body),
        other => Err(invalid(format!("unknown review command: {other}"))),
    }
}

fn start_review(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: ClaimOnlyDto = decode(body)?;
    let command = Command::StartReview {
        claim_id: d.claim_id,
    };
    claim_envelope!(d, command)
}

fn reject(body: Value) -> Result<CommandEnvelope, Rejection> {
    let d: RejectDto = decode(body)?;
    d.reason.check("reason")?;
    d.text.check("text")?;
    let command = Command::Reject {
        claim_id: d.claim_id,
        reason: d.reason.into_string(),
        text: d.text.map(Text::into_string),
    };
    claim_envelope!(d, command)
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClockDto {
    actor: ActorDto,
    #[schemars(with = "Timestamp")]
    now: String,
}

fn parse_clock(body: Value) -> Result<Request, Rejection> {
    let d: ClockDto = decode(body)?;
    let actor = query_actor(d.actor)?;
    let now = chrono::DateTime::parse_from_rfc3339(&d.now)
        .map_err(|_| invalid("now: must be an RFC 3339 time with offset"))?
        .with_timezone(&chrono::Utc);
    if !cpor_domain::calendar::is_writable_time(now) {
        return Err(invalid(
            "now: must be a time in years 0000 to 9999 in UTC, without a leap second (:60)",
        ));
    }
    access::authorize(&Scope::System, &actor, Action::SetClock)?;
    Ok(Request::Clock { now })
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimGetDto {
    actor: ActorDto,
    /// For tracing: recorded on the query's span and log lines; queries
    /// write nothing, so it is stored nowhere.
    correlation_id: Option<CorrelationId>,
    #[serde(deserialize_with = "rfc4122::deserialize")]
    claim_id: Uuid,
    /// The most comments in the reply (1 to 1000, default 1000); a page is
    /// also cut short to fit the NATS server's `max_payload`.
    comments_limit: Option<PageLimit>,
    /// Comments after this cursor: the `comments_next` of an earlier reply.
    comments_after: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClaimHistoryDto {
    actor: ActorDto,
    /// For tracing: recorded on the query's span and log lines; queries
    /// write nothing, so it is stored nowhere.
    correlation_id: Option<CorrelationId>,
    #[serde(deserialize_with = "rfc4122::deserialize")]
    claim_id: Uuid,
    /// The most events in the reply (1 to 1000, default 1000); a page is
    /// also cut short to fit the NATS server's `max_payload`.
    limit: Option<PageLimit>,
    /// Events after this cursor: the `next` of an earlier reply.
    after: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListDto {
    actor: ActorDto,
    /// For tracing: recorded on the query's span and log lines; queries
    /// write nothing, so it is stored nowhere.
    correlation_id: Option<CorrelationId>,
    partner_id: Option<SubjectId>,
    #[serde(default, deserialize_with = "rfc4122::option")]
    tenant_id: Option<Uuid>,
    #[schemars(with = "Option<ClaimStatus>")]
    status: Option<String>,
    overdue: Option<bool>,
    in_arbitration: Option<bool>,
    limit: Option<PageLimit>,
    after: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CaseGetDto {
    actor: ActorDto,
    /// For tracing: recorded on the query's span and log lines; queries
    /// write nothing, so it is stored nowhere.
    correlation_id: Option<CorrelationId>,
    #[serde(deserialize_with = "rfc4122::deserialize")]
    case_id: Uuid,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CaseListDto {
    actor: ActorDto,
    /// For tracing: recorded on the query's span and log lines; queries
    /// write nothing, so it is stored nowhere.
    correlation_id: Option<CorrelationId>,
    #[schemars(with = "Option<cpor_domain::types::CaseStatus>")]
    status: Option<String>,
    /// The most cases in the reply (1 to 1000, default 1000); a page is
    /// also cut short to fit the NATS server's `max_payload`.
    limit: Option<PageLimit>,
    /// Cases after this cursor: the `next` of an earlier reply.
    after: Option<String>,
}

/// A page: its size (`default` when `{prefix}limit` is absent, else within
/// [`PageLimit`]'s bounds) and the cursor `{prefix}after`, one this service
/// gave (a decimal number, as a string).
fn page(
    prefix: &str,
    limit: Option<PageLimit>,
    after: &Option<String>,
    default: usize,
) -> Result<(usize, Option<u64>), Rejection> {
    let limit = PageLimit::or_default(limit, &format!("{prefix}limit"), default)?;
    let after = after
        .as_deref()
        .map(|cursor| {
            cursor
                .parse::<u64>()
                .map_err(|_| invalid(format!("{prefix}after: not a cursor this service gave")))
        })
        .transpose()?;
    Ok((limit, after))
}

/// Parses a query asked on a subject of `scope` and authorizes it.
fn parse_query(scope: Scope, name: &str, body: Value) -> Result<Query, Rejection> {
    match name {
        "claim.get" => claim_get(scope, body),
        "claim.history" => claim_history(scope, body),
        "claims.list" => claims_list(scope, body),
        "arbitration.get" => case_get(scope, body),
        "arbitration.list" => case_list(scope, body),
        other => Err(invalid(format!("unknown query: {other}"))),
    }
}

fn claim_get(scope: Scope, body: Value) -> Result<Query, Rejection> {
    let d: ClaimGetDto = decode(body)?;
    check_correlation(&d.correlation_id)?;
    let (comments_limit, comments_after) = page(
        "comments_",
        d.comments_limit,
        &d.comments_after,
        cpor_log::COMMENTS_MAX,
    )?;
    let actor = query_actor(d.actor)?;
    Ok(Query::ClaimGet {
        visibility: access::authorize(&scope, &actor, Action::ReadClaim)?,
        claim_id: d.claim_id,
        comments_limit,
        comments_after,
    })
}

fn claim_history(scope: Scope, body: Value) -> Result<Query, Rejection> {
    let d: ClaimHistoryDto = decode(body)?;
    check_correlation(&d.correlation_id)?;
    let (limit, after) = page("", d.limit, &d.after, crate::server::HISTORY_EVENTS_MAX)?;
    let actor = query_actor(d.actor)?;
    Ok(Query::ClaimHistory {
        visibility: access::authorize(&scope, &actor, Action::ReadClaim)?,
        claim_id: d.claim_id,
        limit,
        after,
    })
}

/// `claims.list`: the filter narrowed to what the caller may see.
fn claims_list(scope: Scope, body: Value) -> Result<Query, Rejection> {
    let d: ListDto = decode(body)?;
    check_correlation(&d.correlation_id)?;
    let status = match &d.status {
        None => None,
        Some(text) => Some(
            ClaimStatus::parse(text)
                .ok_or_else(|| invalid(format!("status: unknown status {text}")))?,
        ),
    };
    let (limit, after) = page("", d.limit, &d.after, cpor_log::LIST_LIMIT_DEFAULT)?;
    d.partner_id.check("partner_id")?;
    let partner_id = d.partner_id.map(SubjectId::into_string);
    let actor = query_actor(d.actor)?;
    let visibility = access::authorize(
        &scope,
        &actor,
        Action::ListClaims {
            partner_id: partner_id.as_deref(),
            tenant_id: d.tenant_id,
        },
    )?;
    let filter = ClaimFilter {
        partner_id,
        tenant_id: d.tenant_id,
        status,
        overdue: d.overdue,
        in_arbitration: d.in_arbitration,
    }
    .within(&visibility);
    Ok(Query::ClaimsList {
        filter,
        limit,
        after,
    })
}

fn case_get(scope: Scope, body: Value) -> Result<Query, Rejection> {
    let d: CaseGetDto = decode(body)?;
    check_correlation(&d.correlation_id)?;
    let actor = query_actor(d.actor)?;
    access::authorize(&scope, &actor, Action::ReadCases)?;
    Ok(Query::CaseGet { case_id: d.case_id })
}

fn case_list(scope: Scope, body: Value) -> Result<Query, Rejection> {
    let d: CaseListDto = decode(body)?;
    check_correlation(&d.correlation_id)?;
    if let Some(status) = &d.status {
        if status != "open" && status != "closed" {
            return Err(invalid("status: must be open or closed"));
        }
    }
    let (limit, after) = page("", d.limit, &d.after, cpor_log::CASES_LIST_MAX)?;
    let actor = query_actor(d.actor)?;
    access::authorize(&scope, &actor, Action::ReadCases)?;
    Ok(Query::CaseList {
        status: d.status,
        limit,
        after,
    })
}

/// The reply to a refused request (contract §3).
pub fn error_reply(rejection: &Rejection) -> Value {
    let reply = replies::ErrorReply {
        ok: replies::False,
        error: replies::ErrorBody {
            code: rejection.code,
            message: rejection.message.clone(),
            reasons: rejection.reasons.clone(),
            current_version: rejection.current_version,
        },
    };
    serde_json::to_value(reply).expect("replies serialize")
}

mod fields;
pub mod replies;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod schema;
#[cfg(test)]
pub(crate) use schema::request_subjects;
