//! Interface docs (contract §10): the JSON Schemas in `docs/schemas/` and the
//! AsyncAPI document `docs/asyncapi.yaml`.
//!
//! The schemas are generated here from the Rust types with schemars: property
//! names, required sets, types and enumerations come from the request DTOs of
//! this module's parent (`wire`), the domain types, the event payloads and the
//! views. The limits of request fields (lengths, patterns, list sizes, page
//! sizes) come from the field types that declare them (`super::fields`),
//! which the parser checks with; nothing is added by property name. Output
//! schemas (views, events, the CloudEvent) carry no input limits: they
//! describe stored records, which must stay readable whatever the wire's
//! limits become. Every uuid gets the pattern of its one accepted form
//! ([`uuid_patterns`]). The replies
//! are the types of `super::replies`, which the server builds. The
//! CloudEvent is built with `json!` in `cpor-log/src/envelope.rs`; it is
//! mirrored here by a documentation struct and checked: `to_cloud_event`
//! outputs (and `error_reply`'s, and the paged replies `pages::fill` makes)
//! are validated against their schemas.
//!
//! `schemas_are_up_to_date` fails when a committed file differs from what the
//! types give; `UPDATE_SCHEMAS=1 cargo test -p cpor-nats schema` rewrites
//! them. The other tests check the schemas against the parser (every body it
//! accepts is valid, every shape it refuses is invalid), the replies and events
//! the code builds against their schemas, and the AsyncAPI document against the
//! subjects the parser takes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::TimeZone;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use cpor_domain::event::{self as events, Event, EventData};
use cpor_domain::limits::MPN_ID_MAX_CHARS;
use cpor_domain::types::PoeDocument;
use cpor_domain::types::{Activity, CaseStatus, SolutionArea};
use cpor_domain::view::{CaseView, ClaimView, CommentView};
use cpor_log::envelope::{seal, to_cloud_event, EventMeta};

use super::replies::*;
use super::*;

const UPDATE_HINT: &str =
    "run `UPDATE_SCHEMAS=1 cargo test -p cpor-nats schema` and commit docs/schemas/";
const GENERATED_COMMENT: &str =
    "Generated from the Rust types by crates/cpor-nats/src/wire/schema_docs.rs; do not edit by hand: run `UPDATE_SCHEMAS=1 cargo test -p cpor-nats schema`.";

const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const HASH_PATTERN: &str = "^[0-9a-f]{64}$";

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn schemas_dir() -> PathBuf {
    docs_dir().join("schemas")
}

// ---------------------------------------------------------------------------
// Documentation types for the shapes that are not replies (the replies are
// `super::replies`).
// ---------------------------------------------------------------------------

/// `{prefix}.qry.health` takes any body (or none); this is what to send.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct HealthRequest {
    actor: Option<ActorDto>,
}

/// A signed checkpoint (docs/audit.md).
#[derive(JsonSchema)]
#[allow(dead_code)]
#[schemars(rename = "Checkpoint")]
struct CheckpointDoc {
    /// The `hash` of the event at `position`: lowercase hex SHA-256.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    hash: String,
    /// The log position checkpointed.
    #[schemars(range(min = 1))]
    position: u64,
    /// Ed25519 signature of the RFC 8785 JSON of `{hash, position, time}`:
    /// 128 lowercase hex characters.
    #[schemars(regex(pattern = r"^[0-9a-f]{128}$"))]
    signature: String,
    /// When it was signed (RFC 3339, UTC).
    time: Timestamp,
}

/// A CloudEvents 1.0 structured JSON event, as the service stores,
/// publishes on `{prefix}.evt.{aggregate}.{id}.{event}`, exports and returns
/// in `claim.history` (contract §5 and §9).
#[derive(JsonSchema)]
#[allow(dead_code)]
struct CloudEvent {
    specversion: String,
    /// Stable across republishing; also the `Nats-Msg-Id` header.
    id: Uuid,
    source: String,
    /// `cpor.{aggregate}.{event}`, whatever the subject prefix.
    #[serde(rename = "type")]
    kind: String,
    /// The aggregate's id: a claim, case, tenant or subscription uuid, or a partner id.
    subject: String,
    /// When the event was written (RFC 3339, UTC).
    time: Timestamp,
    datacontenttype: String,
    /// `urn:cpor:event:{aggregate}.{event}:v{n}`: the data's schema version.
    dataschema: String,
    /// The event's fields, always with `actor`.
    data: Map<String, Value>,
    /// The global log position, gapless from 1.
    position: u64,
    /// The aggregate's version, gapless from 1.
    streamversion: u64,
    /// The id of the command that caused the event.
    causationid: Uuid,
    /// The command's `correlation_id`, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlationid: Option<String>,
    /// W3C Trace Context `traceparent` (`00-{32 hex trace id}-{16 hex span
    /// id}-{2 hex flags}`) of the span that handled the command, when the
    /// request carried a valid `traceparent` header: the CloudEvents
    /// distributed-tracing extension. Events written before it, and events
    /// of requests without one, have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"))]
    traceparent: Option<String>,
    /// Lowercase hex SHA-256 of the previous event's hash and this event
    /// without `hash` in RFC 8785 canonical JSON (contract §9).
    hash: String,
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

fn deserialize_schema<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

fn serialize_schema<T: JsonSchema>() -> Value {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// One request subject: its address after `{prefix}.`, with parameters in
/// braces, and the schema of its body.
struct RequestDoc {
    subject: &'static str,
    summary: &'static str,
    schema: fn() -> Value,
}

/// Every documented request subject (after `{prefix}.`, parameters in
/// braces): the metrics' subject names are checked against it.
pub(crate) fn request_subjects() -> Vec<&'static str> {
    request_docs().into_iter().map(|doc| doc.subject).collect()
}

/// Every request subject the service answers. The DTO of each is the one
/// `parse_command` / `parse_query` decodes it with.
fn request_docs() -> Vec<RequestDoc> {
    vec![
        RequestDoc {
            subject: "cmd.ref.tenant",
            summary: "Upsert a customer tenant and its domains (actor type system).",
            schema: deserialize_schema::<RefTenantDto>,
        },
        RequestDoc {
            subject: "cmd.ref.subscription",
            summary: "Upsert a subscription of a tenant (actor type system).",
            schema: deserialize_schema::<RefSubscriptionDto>,
        },
        RequestDoc {
            subject: "cmd.ref.partner",
            summary: "Upsert a partner and its MPN ids (actor type system).",
            schema: deserialize_schema::<RefPartnerDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.submit",
            summary: "Submit a claim (partner actor whose partner_id is the subject's).",
            schema: deserialize_schema::<SubmitDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.comment",
            summary: "Comment on one of the partner's claims, in any status.",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.submit_poe",
            summary: "Add proof of execution (answers a PoE request); open statuses and approved.",
            schema: deserialize_schema::<SubmitPoeDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.withdraw",
            summary: "Withdraw an open claim.",
            schema: deserialize_schema::<OptionalReasonDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.dispute",
            summary: "Dispute a rejected claim within 30 days of its rejection.",
            schema: deserialize_schema::<DisputeDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.disassociate",
            summary: "End an approved claim (reason required).",
            schema: deserialize_schema::<ReasonDto>,
        },
        RequestDoc {
            subject: "cmd.review.start",
            summary: "Start reviewing an open claim (reviewer actor).",
            schema: deserialize_schema::<ClaimOnlyDto>,
        },
        RequestDoc {
            subject: "cmd.review.comment",
            summary: "Comment on a claim as a reviewer, in any status.",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.review.request_poe",
            summary: "Ask the partner for proof of execution (five business days to answer).",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.review.approve",
            summary: "Approve a submitted or under-review claim.",
            schema: deserialize_schema::<OptionalTextDto>,
        },
        RequestDoc {
            subject: "cmd.review.reject",
            summary: "Reject an open claim with a reason code.",
            schema: deserialize_schema::<RejectDto>,
        },
        RequestDoc {
            subject: "cmd.customer.{tenant_id}.decline",
            summary: "The customer declines a claim on its tenant (customer actor of that tenant).",
            schema: deserialize_schema::<OptionalReasonDto>,
        },
        RequestDoc {
            subject: "qry.claim.get",
            summary: "A claim's view and a page of its comments.",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.claim.history",
            summary: "A page of a claim's events, in order.",
            schema: deserialize_schema::<ClaimHistoryDto>,
        },
        RequestDoc {
            subject: "qry.claims.list",
            summary: "A page of claims in submission order, filtered.",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claim.get",
            summary: "One of the partner's claims: view and a page of comments (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claim.history",
            summary: "A page of the events of one of the partner's claims, in order (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ClaimHistoryDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claims.list",
            summary: "A page of the partner's claims, filtered (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.customer.{tenant_id}.claim.get",
            summary: "A claim on the customer's tenant: view and a page of comments (customer actor of that tenant; contract v1.1).",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.customer.{tenant_id}.claims.list",
            summary: "A page of the claims on the customer's tenant, filtered (customer actor of that tenant; contract v1.1).",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.arbitration.get",
            summary: "An arbitration case (reviewer actor).",
            schema: deserialize_schema::<CaseGetDto>,
        },
        RequestDoc {
            subject: "qry.arbitration.list",
            summary: "A page of arbitration cases in the order they opened (reviewer actor).",
            schema: deserialize_schema::<CaseListDto>,
        },
        RequestDoc {
            subject: "qry.health",
            summary: "Log and publication positions; any actor or none (the body is not read).",
            schema: deserialize_schema::<HealthRequest>,
        },
        RequestDoc {
            subject: "admin.clock",
            summary: "Set the manual clock (system actor); never backwards.",
            schema: deserialize_schema::<ClockDto>,
        },
    ]
}

/// `cmd.partner.{partner_id}.submit` → `requests/cmd.partner.submit.json`.
fn request_file(subject: &str) -> String {
    format!("requests/{}.json", without_parameters(subject))
}

/// Scoped queries reply as their unscoped forms do (contract v1.1 §4).
fn reply_file(subject: &str) -> String {
    match subject {
        s if s.starts_with("cmd.") => "replies/command.json".to_string(),
        s => {
            let unscoped = s
                .strip_prefix("qry.partner.{partner_id}.")
                .or_else(|| s.strip_prefix("qry.customer.{tenant_id}."))
                .map(|rest| format!("qry.{rest}"));
            format!("replies/{}.json", unscoped.as_deref().unwrap_or(s))
        }
    }
}

fn without_parameters(subject: &str) -> String {
    subject
        .split('.')
        .filter(|part| !part.starts_with('{'))
        .collect::<Vec<_>>()
        .join(".")
}

/// The sample of every event, with the payload schema of its variant: the
/// exhaustive match makes a new event fail to compile here until it is
/// documented.
fn event_samples() -> Vec<(EventData, Value)> {
    let t = |d: u32, h: u32| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let claim = Uuid::parse_str("6749b280-715c-47c6-acdd-21b0eaff3070").unwrap();
    let other = Uuid::parse_str("0f8e4d8c-7a51-4f55-9a3e-5a1c31b0c5e2").unwrap();
    let case = Uuid::parse_str("3b1f8f1e-2a6c-5c4e-9d7b-8e2f1a0c4d6b").unwrap();
    let tenant = Uuid::parse_str("5cc7f541-f9ba-4761-a888-039121ca9485").unwrap();
    let subscription = Uuid::parse_str("9a2c1e47-63d0-4b8e-a5f1-2c7d9e0b4a13").unwrap();
    let poe = || {
        vec![PoeDocument {
            name: "statement-of-work.pdf".into(),
            uri: "https://files.contoso.example/sow.pdf".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        }]
    };
    let all = vec![
        EventData::TenantUpserted(events::TenantUpserted {
            tenant_id: tenant,
            domains: vec!["contoso.onmicrosoft.com".into(), "contoso.com".into()],
        }),
        EventData::SubscriptionUpserted(cpor_domain::command::SubscriptionRecord {
            subscription_id: subscription,
            tenant_id: tenant,
            product: "dynamics_365_sales".into(),
            solution_area: SolutionArea::BusinessApplications,
            is_dynamics: true,
            channel: Channel::VolumeLicensing,
            state: SubscriptionState::Active,
        }),
        EventData::PartnerUpserted(events::PartnerUpserted {
            partner_id: "P-100".into(),
            mpns: vec![Mpn {
                mpn_id: "4412001".into(),
                incentive_enrolled: true,
            }],
        }),
        EventData::ClaimSubmitted(events::ClaimSubmitted {
            claim_id: claim,
            partner_id: "P-100".into(),
            mpn_id: "4412001".into(),
            tenant_id: tenant,
            domain: "contoso.onmicrosoft.com".into(),
            solution_area: SolutionArea::BusinessApplications,
            activity: Activity::Usage,
            product: "dynamics_365_sales".into(),
            subscription_ids: vec![subscription],
            incentive_eligible: true,
            proof_of_execution: poe(),
            note: Some("Deployment finished in November.".into()),
            review_due_at: t(3, 0),
        }),
        EventData::ReviewStarted(events::ClaimRef { claim_id: claim }),
        EventData::CommentAdded(events::CommentAdded {
            claim_id: claim,
            text: "Please attach the signed statement of work.".into(),
            system: false,
        }),
        EventData::PoeRequested(events::PoeRequested {
            claim_id: claim,
            text: "We need the signed statement of work.".into(),
            partner_response_due_at: t(4, 0),
        }),
        EventData::PoeSubmitted(events::PoeSubmitted {
            claim_id: claim,
            proof_of_execution: poe(),
            text: Some("Attached.".into()),
            review_due_at: Some(t(5, 0)),
        }),
        EventData::Approved(events::Approved {
            claim_id: claim,
            text: None,
        }),
        EventData::Rejected(events::Rejected {
            claim_id: claim,
            reason: "NO_PROOF".into(),
            text: Some("The documents do not show the deployment.".into()),
        }),
        EventData::Withdrawn(events::Withdrawn {
            claim_id: claim,
            reason: Some("Filed by mistake.".into()),
        }),
        EventData::Disputed(events::Disputed {
            claim_id: claim,
            text: "The deployment is documented in the attached report.".into(),
            proof_of_execution: poe(),
            review_due_at: t(10, 0),
        }),
        EventData::AssociationEnded(events::AssociationEnded {
            claim_id: claim,
            reason: "DISASSOCIATED".into(),
            text: Some("The engagement ended.".into()),
        }),
        EventData::ReviewDeadlineMissed(events::ReviewDeadlineMissed {
            claim_id: claim,
            review_due_at: t(3, 0),
        }),
        EventData::PartnerResponseMissed(events::PartnerResponseMissed {
            claim_id: claim,
            partner_response_due_at: t(4, 0),
        }),
        EventData::ArbitrationOpened(events::ArbitrationOpened {
            case_id: case,
            tenant_id: tenant,
            product: "dynamics_365_sales".into(),
            activity: Activity::Usage,
            claim_ids: vec![other, claim],
            incumbent_claim_id: Some(other),
        }),
        EventData::ArbitrationClaimJoined(events::ArbitrationClaimJoined {
            case_id: case,
            claim_id: claim,
        }),
        EventData::ArbitrationResolved(events::ArbitrationResolved {
            case_id: case,
            winner_claim_id: claim,
        }),
        EventData::ArbitrationClosed(events::ArbitrationClosed { case_id: case }),
    ];
    all.into_iter()
        .map(|data| {
            let schema = match &data {
                EventData::TenantUpserted(_) => serialize_schema::<events::TenantUpserted>(),
                EventData::SubscriptionUpserted(_) => {
                    serialize_schema::<cpor_domain::command::SubscriptionRecord>()
                }
                EventData::PartnerUpserted(_) => serialize_schema::<events::PartnerUpserted>(),
                EventData::ClaimSubmitted(_) => serialize_schema::<events::ClaimSubmitted>(),
                EventData::ReviewStarted(_) => serialize_schema::<events::ClaimRef>(),
                EventData::CommentAdded(_) => serialize_schema::<events::CommentAdded>(),
                EventData::PoeRequested(_) => serialize_schema::<events::PoeRequested>(),
                EventData::PoeSubmitted(_) => serialize_schema::<events::PoeSubmitted>(),
                EventData::Approved(_) => serialize_schema::<events::Approved>(),
                EventData::Rejected(_) => serialize_schema::<events::Rejected>(),
                EventData::Withdrawn(_) => serialize_schema::<events::Withdrawn>(),
                EventData::Disputed(_) => serialize_schema::<events::Disputed>(),
                EventData::AssociationEnded(_) => serialize_schema::<events::AssociationEnded>(),
                EventData::ReviewDeadlineMissed(_) => {
                    serialize_schema::<events::ReviewDeadlineMissed>()
                }
                EventData::PartnerResponseMissed(_) => {
                    serialize_schema::<events::PartnerResponseMissed>()
                }
                EventData::ArbitrationOpened(_) => serialize_schema::<events::ArbitrationOpened>(),
                EventData::ArbitrationClaimJoined(_) => {
                    serialize_schema::<events::ArbitrationClaimJoined>()
                }
                EventData::ArbitrationResolved(_) => {
                    serialize_schema::<events::ArbitrationResolved>()
                }
                EventData::ArbitrationClosed(_) => serialize_schema::<events::ArbitrationClosed>(),
            };
            (data, schema)
        })
        .collect()
}

/// `claim.submitted`: the event's aggregate and name.
fn event_key(data: &EventData) -> String {
    format!("{}.{}", data.aggregate_kind().as_str(), data.name())
}

/// Every schema file, by path under `docs/schemas/`.
fn generate() -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();

    for doc in request_docs() {
        let mut schema = (doc.schema)();
        uuid_patterns(&mut schema);
        if doc.subject == "cmd.partner.{partner_id}.submit" {
            // Contract §1: a microsoft_365 claim takes no subscription_id.
            schema["allOf"] = json!([{
                "if": {
                    "properties": {"solution_area": {"const": "microsoft_365"}},
                    "required": ["solution_area"]
                },
                "then": {"properties": {"subscription_id": {"type": "null"}}}
            }]);
        }
        finish(
            &mut schema,
            &format!("{{prefix}}.{} request", doc.subject),
            doc.summary,
        );
        files.insert(request_file(doc.subject), schema);
    }

    let cloud_event = cloud_event_schema();
    let replies: Vec<(&str, &str, Value)> = vec![
        (
            "replies/command.json",
            "Reply to an accepted command (every {prefix}.cmd.* subject).",
            serialize_schema::<CommandAccepted>(),
        ),
        (
            "replies/error.json",
            "Reply to any refused request, command or query (nothing was written).",
            serialize_schema::<ErrorReply>(),
        ),
        (
            "replies/qry.claim.get.json",
            "Reply to {prefix}.qry.claim.get.",
            serialize_schema::<ClaimGetReply>(),
        ),
        (
            "replies/qry.claim.history.json",
            "Reply to {prefix}.qry.claim.history.",
            {
                let mut schema = serialize_schema::<ClaimHistoryReply>();
                schema["properties"]["events"]["items"] = json!({"$ref": "#/$defs/CloudEvent"});
                embed(&mut schema, "CloudEvent", cloud_event.clone());
                schema
            },
        ),
        (
            "replies/qry.claims.list.json",
            "Reply to {prefix}.qry.claims.list.",
            serialize_schema::<ClaimsListReply>(),
        ),
        (
            "replies/qry.arbitration.get.json",
            "Reply to {prefix}.qry.arbitration.get.",
            serialize_schema::<CaseGetReply>(),
        ),
        (
            "replies/qry.arbitration.list.json",
            "Reply to {prefix}.qry.arbitration.list.",
            serialize_schema::<CaseListReply>(),
        ),
        (
            "replies/qry.health.json",
            "Reply to {prefix}.qry.health.",
            serialize_schema::<HealthReply>(),
        ),
        (
            "replies/admin.clock.json",
            "Reply to {prefix}.admin.clock, sent after the deadlines the new time passes are written.",
            serialize_schema::<ClockReply>(),
        ),
    ];
    for (file, description, mut schema) in replies {
        uuid_patterns(&mut schema);
        let title = file
            .trim_start_matches("replies/")
            .trim_end_matches(".json");
        finish(&mut schema, &format!("{title} reply"), description);
        files.insert(file.to_string(), schema);
    }

    let views: Vec<(&str, &str, &str, Value)> = vec![
        (
            "claim-view.json",
            "ClaimView",
            "A claim's current state (contract §4); also the payload of {prefix}.status.claim.{partner_id}.{claim_id}.",
            serialize_schema::<ClaimView>(),
        ),
        (
            "checkpoint.json",
            "Checkpoint",
            "A signed checkpoint of the log (issue 10, docs/audit.md), published on {prefix}.checkpoint (stream {PREFIX}_CHECKPOINTS) and exported by `cpor export --checkpoints`: `signature` is the lowercase hex Ed25519 signature (RFC 8032) of the RFC 8785 JSON of {hash, position, time}.",
            serialize_schema::<CheckpointDoc>(),
        ),
        (
            "case-view.json",
            "CaseView",
            "An arbitration case (contract §4).",
            serialize_schema::<CaseView>(),
        ),
        (
            "comment.json",
            "Comment",
            "One entry of a claim's conversation in claim.get: comments and the texts of PoE requests, PoE answers and disputes.",
            serialize_schema::<CommentView>(),
        ),
    ];
    for (file, title, description, mut schema) in views {
        uuid_patterns(&mut schema);
        finish(&mut schema, title, description);
        files.insert(file.to_string(), schema);
    }

    let mut envelope = cloud_event;
    finish(
        &mut envelope,
        "CloudEvent",
        "An event as stored, published on {prefix}.evt.{aggregate}.{id}.{event}, exported and returned by claim.history (contract §5, §9). `data` is checked by the schema of its `type`.",
    );
    files.insert("cloudevent.json".to_string(), envelope);

    for (data, schema) in event_samples() {
        let key = event_key(&data);
        let mut schema = event_data_schema(schema);
        finish(
            &mut schema,
            &format!("data of cpor.{key}"),
            &format!(
                "The `data` of a CloudEvent of type cpor.{key} (schema version {}): the event's fields and the actor who caused it.",
                data.schema_version()
            ),
        );
        files.insert(format!("events/{key}.json"), schema);
    }
    files
}

/// The payload's schema with `actor` added, as `to_cloud_event` writes it.
fn event_data_schema(mut schema: Value) -> Value {
    let actor = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Actor>()
        .to_value();
    schema["properties"]["actor"] = json!({"$ref": "#/$defs/Actor"});
    schema["required"]
        .as_array_mut()
        .expect("event payloads have required fields")
        .push(json!("actor"));
    embed(&mut schema, "Actor", actor);
    uuid_patterns(&mut schema);
    schema
}

fn cloud_event_schema() -> Value {
    let mut schema = serialize_schema::<CloudEvent>();
    let samples = event_samples();
    let types: Vec<String> = samples
        .iter()
        .map(|(data, _)| format!("cpor.{}", event_key(data)))
        .collect();
    {
        let props = schema["properties"].as_object_mut().unwrap();
        props["specversion"] = json!({"const": "1.0"});
        props["source"] = json!({"const": cpor_log::envelope::EVENT_SOURCE});
        props["type"]["enum"] = json!(types);
        props["datacontenttype"] = json!({"const": "application/json"});
        props["dataschema"]["pattern"] =
            json!("^urn:cpor:event:(claim|arbitration|tenant|subscription|partner)\\.[a-z_]+:v[1-9][0-9]*$");
        props["subject"]["minLength"] = json!(1);
        props["position"]["minimum"] = json!(1);
        props["streamversion"]["minimum"] = json!(1);
        props["hash"]["pattern"] = json!(HASH_PATTERN);
        props["correlationid"]["maxLength"] = json!(CORRELATION_ID_MAX_CHARS);
        props["data"]["required"] = json!(["actor"]);
        props["data"]["properties"] = json!({"actor": {"$ref": "#/$defs/Actor"}});
    }
    let mut rules = Vec::new();
    for (data, payload) in samples {
        let key = event_key(&data);
        embed(&mut schema, &key, event_data_schema(payload));
        rules.push(json!({
            "if": {"properties": {"type": {"const": format!("cpor.{key}")}}, "required": ["type"]},
            "then": {"properties": {"data": {"$ref": format!("#/$defs/{key}")}}}
        }));
    }
    schema["allOf"] = json!(rules);
    uuid_patterns(&mut schema);
    schema
}

/// Moves `schema` under `target`'s `$defs` as `name`, with its own `$defs`.
fn embed(target: &mut Value, name: &str, mut schema: Value) {
    let inner = schema
        .as_object_mut()
        .expect("schemas are objects")
        .remove("$defs")
        .unwrap_or_else(|| json!({}));
    let object = schema.as_object_mut().unwrap();
    object.remove("$schema");
    object.remove("$comment");
    object.remove("title");
    let defs = target
        .as_object_mut()
        .expect("schemas are objects")
        .entry("$defs")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .unwrap();
    for (key, value) in inner
        .as_object()
        .unwrap()
        .iter()
        .chain([(&name.to_string(), &schema)])
    {
        if let Some(existing) = defs.get(key) {
            assert_eq!(existing, value, "two different schemas named {key}");
        }
        defs.insert(key.clone(), value.clone());
    }
}

fn finish(schema: &mut Value, title: &str, description: &str) {
    let object = schema.as_object_mut().expect("schemas are objects");
    object.insert("title".into(), json!(title));
    object.insert("description".into(), json!(description));
    object.insert("$comment".into(), json!(GENERATED_COMMENT));
}

/// Gives every uuid (`"format": "uuid"`) the pattern of the one form the
/// service reads and writes, the hyphenated RFC 4122 string
/// ([`cpor_domain::types::rfc4122`]): JSON Schema's `uuid` format alone also
/// admits forms the parser refuses, and not every validator checks formats.
fn uuid_patterns(schema: &mut Value) {
    match schema {
        Value::Object(object) => {
            if object.get("format").and_then(Value::as_str) == Some("uuid") {
                object.insert("pattern".into(), json!(UUID_PATTERN));
            }
            object.values_mut().for_each(uuid_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(uuid_patterns),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn schemas_are_up_to_date() {
    let files = generate();
    let dir = schemas_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v != "0" && !v.is_empty());
    let on_disk = existing_files(&dir);
    let mut problems = Vec::new();
    for (path, schema) in &files {
        let full = dir.join(path);
        let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
        let current = std::fs::read_to_string(&full).ok();
        let same = current
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .is_some_and(|c| &c == schema);
        if same {
            continue;
        }
        if update {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
        } else if current.is_none() {
            problems.push(format!("docs/schemas/{path} is missing"));
        } else {
            problems.push(format!("docs/schemas/{path} differs from the Rust types"));
        }
    }
    for path in on_disk.difference(&files.keys().cloned().collect()) {
        if update {
            std::fs::remove_file(dir.join(path)).unwrap();
        } else {
            problems.push(format!(
                "docs/schemas/{path} is not generated from any type"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{UPDATE_HINT}",
        problems.join("\n")
    );
}

fn existing_files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

// ---------------------------------------------------------------------------
// Validation helpers
// ---------------------------------------------------------------------------

/// Serves `file:///docs/…` from the repository's `docs/` folder, so that
/// the AsyncAPI document's `./schemas/…` references resolve offline.
struct DocsRetriever;

impl jsonschema::Retrieve for DocsRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let relative = uri
            .as_str()
            .strip_prefix("file:///docs/")
            .ok_or_else(|| format!("{} is outside docs/", uri.as_str()))?;
        let text = std::fs::read_to_string(docs_dir().join(relative))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_base_uri("file:///docs/asyncapi.yaml")
        .with_retriever(DocsRetriever)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn schema_file(path: &str) -> Value {
    let full = schemas_dir().join(path);
    let text = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{}: {e}; {UPDATE_HINT}", full.display()));
    serde_json::from_str(&text).unwrap()
}

/// The schemas of one node: follows local `$ref`s and combinators.
fn branches<'a>(root: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    out.push(schema);
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if let Some(target) = reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
            branches(root, target, out);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            branches(root, sub, out);
        }
    }
    if let Some(then) = object.get("then") {
        branches(root, then, out);
    }
}

/// The JSON paths in `value` that no schema of its node names as a
/// property: output schemas leave `additionalProperties` open for
/// consumers, so this is how the tests catch a field the code writes and the
/// docs do not show.
fn undocumented(root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut nodes = Vec::new();
    branches(root, schema, &mut nodes);
    match value {
        Value::Object(object) => {
            let mut properties: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
            for node in &nodes {
                for (name, sub) in node
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    properties.entry(name).or_default().push(sub);
                }
            }
            let mut out = Vec::new();
            for (key, child) in object {
                let child_path = format!("{path}/{key}");
                match properties.get(key.as_str()) {
                    None => out.push(child_path),
                    Some(subs) => {
                        let best = subs
                            .iter()
                            .map(|sub| undocumented(root, sub, child, &child_path))
                            .min_by_key(Vec::len)
                            .unwrap_or_default();
                        out.extend(best);
                    }
                }
            }
            out
        }
        Value::Array(items) => {
            let item_schemas: Vec<&Value> = nodes.iter().filter_map(|n| n.get("items")).collect();
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}/{i}");
                let best = item_schemas
                    .iter()
                    .map(|sub| undocumented(root, sub, item, &item_path))
                    .min_by_key(Vec::len)
                    .unwrap_or_default();
                out.extend(best);
            }
            out
        }
        _ => Vec::new(),
    }
}

/// Checks that `instance` is valid against the schema file and that every
/// key in it is documented there.
fn assert_matches(file: &str, instance: &Value) {
    let schema = schema_file(file);
    let found = errors(&validator(&schema), instance);
    assert!(
        found.is_empty(),
        "{instance} is not valid against {file}:\n{}",
        found.join("\n")
    );
    let extra = undocumented(&schema, &schema, instance, "");
    assert!(
        extra.is_empty(),
        "{file} does not document {extra:?} of {instance}"
    );
}

// ---------------------------------------------------------------------------
// Examples of every request
// ---------------------------------------------------------------------------

const TENANT: &str = "5cc7f541-f9ba-4761-a888-039121ca9485";
const CLAIM: &str = "6749b280-715c-47c6-acdd-21b0eaff3070";
const CASE: &str = "3b1f8f1e-2a6c-5c4e-9d7b-8e2f1a0c4d6b";
const COMMAND: &str = "a4223133-2780-4dac-8864-1a0c00c2cb64";
const SUBSCRIPTION: &str = "9a2c1e47-63d0-4b8e-a5f1-2c7d9e0b4a13";

fn partner_actor() -> Value {
    json!({"type": "partner", "partner_id": "P-100", "user": "alice@contoso.com", "roles": ["incentives_admin"]})
}

fn reviewer_actor() -> Value {
    json!({"type": "reviewer", "id": "rev-7"})
}

fn system_actor() -> Value {
    json!({"type": "system", "id": "crm-sync"})
}

fn customer_actor() -> Value {
    json!({"type": "customer", "tenant_id": TENANT, "user": "it@contoso.com"})
}

fn poe_documents(n: usize) -> Value {
    (0..n)
        .map(|i| {
            json!({"name": format!("evidence-{i}.pdf"), "uri": format!("https://files.contoso.example/{i}.pdf"),
                   "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})
        })
        .collect()
}

/// The subject a template stands for in the examples.
fn concrete(subject: &str) -> String {
    subject
        .replace("{partner_id}", "P-100")
        .replace("{tenant_id}", TENANT)
}

/// A body with every field the subject takes, and one with only the
/// required ones; both valid.
fn full_and_minimal(subject: &str) -> (Value, Value) {
    let (actor, required, optional) = match subject {
        "cmd.ref.tenant" => (
            system_actor(),
            json!({"tenant_id": TENANT, "domains": ["contoso.onmicrosoft.com", "contoso.com"]}),
            json!({}),
        ),
        "cmd.ref.subscription" => (
            system_actor(),
            json!({"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "product": "dynamics_365_sales",
                   "solution_area": "business_applications", "is_dynamics": true, "channel": "volume_licensing",
                   "state": "active"}),
            json!({}),
        ),
        "cmd.ref.partner" => (
            system_actor(),
            json!({"partner_id": "P-100", "mpns": [{"mpn_id": "4412001", "incentive_enrolled": true}]}),
            json!({}),
        ),
        "cmd.partner.{partner_id}.submit" => (
            partner_actor(),
            json!({"tenant_id": TENANT, "domain": "contoso.onmicrosoft.com", "solution_area": "business_applications",
                   "activity": "usage", "product": "dynamics_365_sales", "mpn_id": "4412001"}),
            json!({"claim_id": CLAIM, "subscription_id": SUBSCRIPTION, "proof_of_execution": poe_documents(1),
                   "note": "Deployment finished in November."}),
        ),
        "cmd.partner.{partner_id}.comment" => (
            partner_actor(),
            json!({"claim_id": CLAIM, "text": "The statement of work is attached."}),
            json!({"expected_version": 3}),
        ),
        "cmd.partner.{partner_id}.submit_poe" => (
            partner_actor(),
            json!({"claim_id": CLAIM, "proof_of_execution": poe_documents(2)}),
            json!({"text": "Signed statement of work.", "expected_version": 4}),
        ),
        "cmd.partner.{partner_id}.withdraw" => (
            partner_actor(),
            json!({"claim_id": CLAIM}),
            json!({"reason": "Filed by mistake.", "expected_version": 2}),
        ),
        "cmd.partner.{partner_id}.dispute" => (
            partner_actor(),
            json!({"claim_id": CLAIM, "text": "The deployment report shows our work."}),
            json!({"proof_of_execution": poe_documents(1), "expected_version": 5}),
        ),
        "cmd.partner.{partner_id}.disassociate" => (
            partner_actor(),
            json!({"claim_id": CLAIM, "reason": "Our engagement with the customer ended."}),
            json!({"expected_version": 6}),
        ),
        "cmd.review.start" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"expected_version": 1}),
        ),
        "cmd.review.comment" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM, "text": "Looking at it this week."}),
            json!({"expected_version": 2}),
        ),
        "cmd.review.request_poe" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM, "text": "Please attach the signed statement of work."}),
            json!({"expected_version": 2}),
        ),
        "cmd.review.approve" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"text": "Proof of execution checked.", "expected_version": 2}),
        ),
        "cmd.review.reject" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM, "reason": "NO_PROOF"}),
            json!({"text": "The documents do not show the deployment.", "expected_version": 2}),
        ),
        "cmd.customer.{tenant_id}.decline" => (
            customer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"reason": "We do not work with this partner.", "expected_version": 3}),
        ),
        "qry.claim.get" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "dashboard-7", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.claim.history" => (
            reviewer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "dashboard-7", "limit": 50, "after": "3"}),
        ),
        "qry.claims.list" => (
            reviewer_actor(),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "under_review", "overdue": false,
                   "in_arbitration": true, "limit": 50, "after": "42", "correlation_id": "dashboard-7"}),
        ),
        "qry.partner.{partner_id}.claim.get" => (
            partner_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "partner-portal-3", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.partner.{partner_id}.claim.history" => (
            partner_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "partner-portal-3", "limit": 50, "after": "3"}),
        ),
        "qry.partner.{partner_id}.claims.list" => (
            partner_actor(),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "approved", "overdue": false,
                   "in_arbitration": false, "limit": 50, "after": "42", "correlation_id": "partner-portal-3"}),
        ),
        "qry.customer.{tenant_id}.claim.get" => (
            customer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "customer-gateway-1", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.customer.{tenant_id}.claims.list" => (
            customer_actor(),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "approved", "overdue": false,
                   "in_arbitration": false, "limit": 50, "after": "42", "correlation_id": "customer-gateway-1"}),
        ),
        "qry.arbitration.get" => (
            reviewer_actor(),
            json!({"case_id": CASE}),
            json!({"correlation_id": "dashboard-7"}),
        ),
        "qry.arbitration.list" => (
            reviewer_actor(),
            json!({}),
            json!({"status": "open", "correlation_id": "dashboard-7", "limit": 50, "after": "42"}),
        ),
        "qry.health" => return (json!({"actor": reviewer_actor()}), json!({})),
        "admin.clock" => (
            json!({"type": "system", "id": "test"}),
            json!({"now": "2026-11-25T09:00:00Z"}),
            json!({}),
        ),
        other => panic!("no example for {other}"),
    };
    let mut minimal = required;
    minimal["actor"] = actor;
    if subject.starts_with("cmd.") {
        minimal["command_id"] = json!(COMMAND);
    }
    let mut full = minimal.clone();
    for (key, value) in optional.as_object().unwrap() {
        full[key] = value.clone();
    }
    if subject.starts_with("cmd.") {
        full["correlation_id"] = json!("crm-batch-2026-11-25");
    }
    (full, minimal)
}

fn request_doc(subject: &str) -> Option<RequestDoc> {
    request_docs()
        .into_iter()
        .find(|doc| template_matches(doc.subject, subject))
}

fn template_matches(template: &str, subject: &str) -> bool {
    let t: Vec<&str> = template.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    t.len() == s.len() && t.iter().zip(&s).all(|(t, s)| t.starts_with('{') || t == s)
}

/// Whether the parser refuses `body` for its shape (`INVALID_JSON`,
/// `INVALID_COMMAND`), as opposed to accepting it or refusing it for who
/// sends it.
fn shape_refused(subject: &str, body: &Value) -> Option<String> {
    match parse(subject, body.to_string().as_bytes()) {
        Err(r) if matches!(r.code, ErrorCode::InvalidCommand | ErrorCode::InvalidJson) => {
            Some(r.message)
        }
        _ => None,
    }
}

/// The parser and the schema agree on `body`; returns whether it is valid.
fn assert_agree(subject: &str, body: &Value) -> bool {
    let doc = request_doc(subject).unwrap_or_else(|| panic!("no schema for {subject}"));
    let file = request_file(doc.subject);
    let errors = errors(&validator(&schema_file(&file)), body);
    let refused = shape_refused(subject, body);
    match (&refused, errors.is_empty()) {
        (None, true) | (Some(_), false) => {}
        (None, false) => panic!(
            "{subject}: the parser accepts {body}\nbut {file} refuses it:\n{}",
            errors.join("\n")
        ),
        (Some(message), true) => {
            panic!("{subject}: the parser refuses {body} ({message})\nbut {file} accepts it")
        }
    }
    refused.is_none()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    for (path, schema) in generate() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{path}"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("docs/schemas/{path} is not a valid JSON Schema: {e}");
        }
        validator(&schema);
    }
}

#[test]
fn request_schemas_agree_with_the_parser_field_by_field() {
    for doc in request_docs() {
        let subject = concrete(doc.subject);
        let file = request_file(doc.subject);
        let schema = schema_file(&file);
        let properties: BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let (full, minimal) = full_and_minimal(doc.subject);
        assert_eq!(
            full.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            properties,
            "{file}: the full example must use every property"
        );
        assert_eq!(
            minimal
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            required,
            "{file}: the minimal example must use exactly the required properties"
        );
        for body in [&full, &minimal] {
            assert!(
                assert_agree(&subject, body),
                "{subject}: {body} must be accepted"
            );
        }
        if doc.subject == "qry.health" {
            continue; // the service does not read the body at all
        }
        // Each required field is required by the parser too.
        for name in &required {
            let mut body = minimal.clone();
            body.as_object_mut().unwrap().remove(*name);
            assert!(!assert_agree(&subject, &body), "{subject} without {name}");
        }
        // A value of the wrong type, in every field.
        for name in &properties {
            let mut body = full.clone();
            body[name.as_str()] = json!({"unexpected": [1]});
            assert!(
                !assert_agree(&subject, &body),
                "{subject} with an object as {name}"
            );
        }
        // An unknown field.
        let mut body = full.clone();
        body["colour"] = json!("blue");
        assert!(
            !assert_agree(&subject, &body),
            "{subject} with an unknown field"
        );
        let mut body = full.clone();
        body["actor"]["colour"] = json!("blue");
        assert!(
            !assert_agree(&subject, &body),
            "{subject} with an unknown actor field"
        );
    }
}

#[test]
fn request_schemas_carry_the_parser_limits() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |path: &'static str, value: Value| -> Edit {
        Box::new(move |body: &mut Value| {
            *body.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value.clone()
        })
    };
    let add = |key: &'static str, value: Value| -> Edit {
        Box::new(move |body: &mut Value| body[key] = value.clone())
    };
    let text = |n: usize| json!("é".repeat(n));
    let cases: Vec<(&str, Edit, bool)> = vec![
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", text(TEXT_MAX_CHARS)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", json!("")),
            false,
        ),
        ("cmd.review.request_poe", set("/text", json!("")), false),
        ("cmd.review.approve", set("/text", json!("")), true),
        (
            "cmd.review.approve",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/note", text(TEXT_MAX_CHARS)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/note", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", json!([])),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution/0/sha256", json!("abc")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution/0/name", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set(
                "/proof_of_execution/0/uri",
                json!("u".repeat(URI_MAX_CHARS + 1)),
            ),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            Box::new(|body: &mut Value| body["proof_of_execution"][0]["colour"] = json!("blue")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/mpn_id", json!("4".repeat(MPN_ID_MAX_CHARS + 1))),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/domain", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/product", json!("p".repeat(NAME_MAX_CHARS + 1))),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/activity", json!("presale")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/solution_area", json!("dynamics")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/claim_id", json!("not-a-uuid")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/command_id", json!("42")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/subscription_id", json!("not a uuid, checked later")),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/solution_area", json!("microsoft_365")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            Box::new(|body: &mut Value| {
                body["solution_area"] = json!("microsoft_365");
                body["subscription_id"] = Value::Null;
            }),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/roles", json!(["incentives_admin", ""])),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/roles", json!(["any_role_string"])),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/type", json!("robot")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            add(
                "correlation_id",
                json!("c".repeat(CORRELATION_ID_MAX_CHARS)),
            ),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            add(
                "correlation_id",
                json!("c".repeat(CORRELATION_ID_MAX_CHARS + 1)),
            ),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit_poe",
            set("/proof_of_execution", json!([])),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit_poe",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.withdraw",
            set("/reason", json!("")),
            true,
        ),
        (
            "cmd.partner.{partner_id}.withdraw",
            set("/reason", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.disassociate",
            set("/reason", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.disassociate",
            set("/expected_version", json!(-1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.dispute",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("no proof")),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("A".repeat(64))),
            true,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("A".repeat(65))),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("1ST_REASON")),
            false,
        ),
        ("cmd.ref.partner", set("/partner_id", json!("P 100")), false),
        (
            "cmd.ref.partner",
            set("/partner_id", json!("p".repeat(64))),
            true,
        ),
        (
            "cmd.ref.partner",
            set("/partner_id", json!("p".repeat(65))),
            false,
        ),
        ("cmd.ref.partner", set("/mpns/0/mpn_id", json!("")), false),
        ("cmd.ref.tenant", set("/domains", json!([])), false),
        (
            "cmd.ref.tenant",
            set(
                "/domains",
                json!(vec!["contoso.com"; DOMAINS_PER_TENANT_MAX + 1]),
            ),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/channel", json!("retail")),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/state", json!("suspended")),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/subscription_id", json!("not-a-uuid")),
            false,
        ),
        (
            "cmd.customer.{tenant_id}.decline",
            set("/reason", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        ("qry.claims.list", set("/limit", json!(0)), false),
        (
            "qry.claims.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX)),
            true,
        ),
        (
            "qry.claims.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.claims.list", set("/status", json!("bogus")), false),
        ("qry.claim.history", set("/limit", json!(0)), false),
        (
            "qry.claim.history",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.claim.get", set("/comments_limit", json!(1)), true),
        (
            "qry.claim.get",
            set("/comments_limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.arbitration.list", set("/limit", json!(0)), false),
        (
            "qry.arbitration.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX)),
            true,
        ),
        (
            "qry.claims.list",
            set("/partner_id", json!("not an id")),
            false,
        ),
        (
            "qry.arbitration.list",
            set("/status", json!("pending")),
            false,
        ),
        (
            "qry.arbitration.list",
            set("/status", json!("closed")),
            true,
        ),
        ("admin.clock", set("/now", json!("yesterday")), false),
        (
            "admin.clock",
            set("/now", json!("2026-11-25T10:00:00+01:00")),
            true,
        ),
    ];
    for (subject, edit, valid) in cases {
        let (mut body, _) = full_and_minimal(subject);
        edit(&mut body);
        assert_eq!(
            assert_agree(&concrete(subject), &body),
            valid,
            "{subject}: {body}"
        );
    }
}

/// The scenario files' request bodies (after binding their `$variables`
/// to uuids): each one the parser accepts is valid, each one it refuses for
/// shape is invalid.
#[test]
fn scenario_bodies_and_schemas_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let scenario: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            collect_sends(&scenario, &mut steps);
        }
    }
    let mut names = BTreeMap::new();
    let (mut valid, mut invalid, mut unknown) = (0, 0, 0);
    for step in steps {
        let subject = bind(&step["send"], &mut names)
            .as_str()
            .unwrap()
            .to_string();
        let mut body = bind(&step["body"], &mut names);
        if subject.starts_with("cmd.") && body.get("command_id").is_none() {
            body["command_id"] = json!(Uuid::new_v4());
        }
        if request_doc(&subject).is_none() {
            let refused = shape_refused(&subject, &body).unwrap_or_default();
            assert!(
                refused.starts_with("unknown "),
                "{subject} is taken by the parser but has no schema"
            );
            unknown += 1;
        } else if assert_agree(&subject, &body) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 20 && invalid > 3 && unknown > 0,
        "{valid} valid, {invalid} invalid, {unknown} unknown"
    );
}

fn collect_sends(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(object) if object.contains_key("send") && object.contains_key("body") => {
            out.push(value.clone())
        }
        Value::Object(object) => object.values().for_each(|v| collect_sends(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_sends(v, out)),
        _ => {}
    }
}

/// `"$name"`, `"$uuid:name"` and `"$new"`, whole or inside strings, become
/// uuids (every scenario variable is one).
fn bind(value: &Value, names: &mut BTreeMap<String, String>) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                let tail = &rest[at + 1..];
                let tail = tail.strip_prefix("uuid:").unwrap_or(tail);
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                let id = if name == "new" {
                    Uuid::new_v4().to_string()
                } else {
                    names
                        .entry(name.to_string())
                        .or_insert_with(|| Uuid::new_v4().to_string())
                        .clone()
                };
                out.push_str(&id);
                rest = &tail[end..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| bind(v, names)).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), bind(v, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The scenarios' expected replies name only documented fields.
#[test]
fn scenario_replies_name_only_documented_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let scenario: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut steps = Vec::new();
        collect_expects(&scenario, &mut steps);
        for (kind, expect) in steps {
            let file = match kind.as_str() {
                "status" => "claim-view.json".to_string(),
                _ if expect["ok"] == json!(false) => "replies/error.json".to_string(),
                subject => match request_doc(subject) {
                    Some(doc) => reply_file(doc.subject),
                    None => continue,
                },
            };
            let schema = schema_file(&file);
            let extra = undocumented(&schema, &schema, &expect, "");
            assert!(
                extra.is_empty(),
                "{}: {file} does not document {extra:?}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");
}

fn collect_expects(value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(object) if object.contains_key("expect") => {
            let kind = match (object.get("send"), object.get("status")) {
                (Some(Value::String(send)), _) => concrete_scenario_subject(send),
                (_, Some(_)) => "status".to_string(),
                _ => return,
            };
            out.push((kind, object["expect"].clone()));
        }
        Value::Object(object) => object.values().for_each(|v| collect_expects(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_expects(v, out)),
        _ => {}
    }
}

fn concrete_scenario_subject(send: &str) -> String {
    bind(&json!(send), &mut BTreeMap::new())
        .as_str()
        .unwrap()
        .to_string()
}

/// What the code builds (`error_reply`, `to_cloud_event` + `seal`, the
/// views) is valid against the schemas and has no undocumented field.
#[test]
fn replies_events_and_views_the_code_builds_match_their_schemas() {
    // Every error code, through `error_reply`.
    let codes = schema_file("replies/error.json")["$defs"]["ErrorCode"]["enum"].clone();
    let codes: Vec<ErrorCode> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.first(), Some(&ErrorCode::PayloadTooLarge));
    for code in &codes {
        assert_matches("replies/error.json", &error_reply(&Rejection::new(*code)));
    }
    let mut conflict = Rejection::new(ErrorCode::VersionConflict);
    conflict.current_version = Some(7);
    assert_matches("replies/error.json", &error_reply(&conflict));
    let several = Rejection::from_reasons(vec![
        ErrorCode::SubscriptionNotActive,
        ErrorCode::SubscriptionIsCsp,
    ]);
    assert_matches("replies/error.json", &error_reply(&several));
    // Refusals straight from the parser.
    for (subject, body) in [
        ("cmd.partner.P-100.submit", "[1]"),
        ("qry.claims.list", "{\"actor\": 1}"),
    ] {
        assert_matches(
            "replies/error.json",
            &error_reply(&parse(subject, body.as_bytes()).unwrap_err()),
        );
    }

    // Every event, as stored and published.
    let cloud_events = sample_cloud_events();
    assert_eq!(cloud_events.len(), 19);
    for (key, cloud_event) in &cloud_events {
        assert_matches("cloudevent.json", cloud_event);
        assert_matches(&format!("events/{key}.json"), &cloud_event["data"]);
        // The envelope dispatches `data` on `type`: another event's data fails.
        let mut wrong = cloud_event.clone();
        wrong["data"] = json!({"actor": system_actor()});
        assert!(
            !validator(&schema_file("cloudevent.json")).is_valid(&wrong),
            "{key} without its fields"
        );
        let decoded = cpor_log::envelope::decode_value(cloud_event.clone()).unwrap();
        assert_eq!(event_key(&decoded.event.data), *key);
    }
    let events: Vec<Value> = cloud_events.iter().map(|(_, e)| e.clone()).collect();
    assert_matches(
        "replies/qry.claim.history.json",
        &json!({"ok": true, "events": events}),
    );

    // Views.
    let claim = serde_json::to_value(sample_claim_view()).unwrap();
    assert_matches("claim-view.json", &claim);
    let case = serde_json::to_value(sample_case_view()).unwrap();
    assert_matches("case-view.json", &case);
    let mut comments = Vec::new();
    for (_, cloud_event) in &cloud_events {
        let decoded = cpor_log::envelope::decode_value(cloud_event.clone()).unwrap();
        if let Some((_, comment)) = CommentView::of(&decoded.event, decoded.time) {
            comments.push(serde_json::to_value(comment).unwrap());
        }
    }
    assert!(comments.len() >= 3);
    for comment in &comments {
        assert_matches("comment.json", comment);
    }
    assert_matches(
        "replies/qry.claim.get.json",
        &json!({"ok": true, "claim": claim, "comments": comments}),
    );
    assert_matches(
        "replies/qry.claims.list.json",
        &json!({"ok": true, "claims": [claim], "next": "17"}),
    );
    assert_matches(
        "replies/qry.claims.list.json",
        &json!({"ok": true, "claims": [], "next": null}),
    );
    assert_matches(
        "replies/qry.arbitration.get.json",
        &json!({"ok": true, "case": case}),
    );
    assert_matches(
        "replies/qry.arbitration.list.json",
        &json!({"ok": true, "cases": [case]}),
    );
}

fn sample_time(day: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, day, 9, 0, 0)
        .unwrap()
}

fn sample_claim_view() -> ClaimView {
    let at = sample_time;
    ClaimView {
        claim_id: Uuid::parse_str(CLAIM).unwrap(),
        partner_id: "P-100".into(),
        mpn_id: "4412001".into(),
        tenant_id: Uuid::parse_str(TENANT).unwrap(),
        solution_area: SolutionArea::BusinessApplications,
        activity: Activity::Usage,
        product: "dynamics_365_sales".into(),
        subscription_ids: vec![Uuid::parse_str(SUBSCRIPTION).unwrap()],
        status: ClaimStatus::Rejected,
        reason: Some("LOST_ARBITRATION".into()),
        incentive_eligible: true,
        disputed: false,
        overdue: true,
        arbitration_case_id: Some(Uuid::parse_str(CASE).unwrap()),
        submitted_at: at(25),
        review_due_at: Some(at(30)),
        partner_response_due_at: None,
        decided_at: Some(at(27)),
        version: 5,
        updated_at: at(27),
    }
}

fn sample_case_view() -> CaseView {
    let at = sample_time;
    CaseView {
        case_id: Uuid::parse_str(CASE).unwrap(),
        tenant_id: Uuid::parse_str(TENANT).unwrap(),
        product: "dynamics_365_sales".into(),
        activity: Activity::Usage,
        status: CaseStatus::Closed,
        claim_ids: vec![Uuid::parse_str(CLAIM).unwrap(), Uuid::new_v4()],
        incumbent_claim_id: None,
        winner_claim_id: Some(Uuid::parse_str(CLAIM).unwrap()),
        opened_at: at(25),
        closed_at: Some(at(27)),
    }
}

/// Every event sample as the log stores it: a sealed CloudEvent.
fn sample_cloud_events() -> Vec<(String, Value)> {
    let mut previous = String::new();
    let mut out = Vec::new();
    for (i, (data, _)) in event_samples().into_iter().enumerate() {
        let key = event_key(&data);
        let actor = match key.as_str() {
            "tenant.upserted" | "subscription.upserted" | "partner.upserted" => Actor::System {
                id: "crm-sync".into(),
            },
            "claim.review_started"
            | "claim.poe_requested"
            | "claim.approved"
            | "claim.rejected" => Actor::Reviewer { id: "rev-7".into() },
            "claim.association_ended" => Actor::Customer {
                tenant_id: Uuid::parse_str(TENANT).unwrap(),
                user: Some("it@contoso.com".into()),
            },
            k if k.starts_with("claim.") && !k.ends_with("_missed") => Actor::Partner {
                partner_id: "P-100".into(),
                user: Some("alice@contoso.com".into()),
                roles: vec!["incentives_admin".into()],
            },
            _ => Actor::service(),
        };
        let position = i as u64 + 1;
        let meta = EventMeta {
            event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()),
            time: chrono::Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
                + chrono::Duration::minutes(i as i64),
            position,
            stream_version: position,
            causation_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("command {key}").as_bytes()),
            correlation_id: (i % 2 == 0).then(|| "crm-batch-2026-11-25".to_string()),
            traceparent: None,
        };
        let cloud_event = to_cloud_event(&Event { actor, data }, &meta);
        let (bytes, hash) = seal(cloud_event, &previous).unwrap();
        previous = hash;
        out.push((key, serde_json::from_slice(&bytes).unwrap()));
    }
    out
}

// ---------------------------------------------------------------------------
// AsyncAPI
// ---------------------------------------------------------------------------

fn asyncapi() -> Value {
    let path = docs_dir().join("asyncapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("docs/asyncapi.yaml does not parse: {e}"))
}

/// Follows a `#/…` reference inside the AsyncAPI document.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => {
            let target = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved $ref #{pointer}"));
            resolve(document, target)
        }
        None => value,
    }
}

/// The schema files a message's payload refers to.
fn payload_files(payload: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_refs(payload, &mut |r| {
        if let Some(file) = r.strip_prefix("./schemas/") {
            out.insert(file.split('#').next().unwrap().to_string());
        }
    });
    out
}

fn collect_refs(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => f(reference),
                    _ => collect_refs(child, f),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, f)),
        _ => {}
    }
}

/// Whether the parser knows the subject (it may still refuse the body).
fn parser_knows(subject: &str) -> bool {
    match parse(subject, b"{}") {
        Ok(_) => true,
        Err(r) => !r.message.starts_with("unknown "),
    }
}

#[test]
fn asyncapi_has_a_channel_for_every_subject() {
    let document = asyncapi();
    assert_eq!(document["asyncapi"], "3.0.0");
    let channels = document["channels"].as_object().expect("channels");
    let by_address: BTreeMap<&str, &Value> = channels
        .values()
        .filter_map(|c| Some((c.get("address")?.as_str()?, c)))
        .collect();
    let operations: Vec<&Value> = document["operations"]
        .as_object()
        .expect("operations")
        .values()
        .collect();
    let documented: BTreeSet<String> = request_docs()
        .iter()
        .map(|d| d.subject.to_string())
        .collect();

    for doc in request_docs() {
        assert!(
            parser_knows(&concrete(doc.subject)),
            "the parser does not take {}",
            doc.subject
        );
        let address = format!("{{prefix}}.{}", doc.subject);
        let channel = by_address
            .get(address.as_str())
            .unwrap_or_else(|| panic!("no channel for {address}"));
        for parameter in address.split('.').filter(|p| p.starts_with('{')) {
            let name = parameter.trim_matches(|c| c == '{' || c == '}');
            assert!(
                channel["parameters"].get(name).is_some(),
                "{address}: parameter {name} is not described"
            );
        }
        let messages: Vec<&Value> = channel["messages"]
            .as_object()
            .expect("messages")
            .values()
            .map(|m| resolve(&document, m))
            .collect();
        let files: BTreeSet<String> = messages
            .iter()
            .flat_map(|m| payload_files(&m["payload"]))
            .collect();
        assert_eq!(
            files,
            BTreeSet::from([request_file(doc.subject)]),
            "{address}: request payload"
        );
        // A receive operation on it that replies with its reply and the error reply.
        let operation = operations
            .iter()
            .find(|op| resolve(&document, &op["channel"]).get("address") == Some(&json!(address)))
            .unwrap_or_else(|| panic!("no operation on {address}"));
        assert_eq!(operation["action"], "receive", "{address}");
        let replies: BTreeSet<String> = operation["reply"]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{address}: the operation has no reply messages"))
            .iter()
            .flat_map(|m| payload_files(&resolve(&document, m)["payload"]))
            .collect();
        let expected = BTreeSet::from([reply_file(doc.subject), "replies/error.json".to_string()]);
        assert_eq!(replies, expected, "{address}: reply payloads");
    }

    // Every request channel is a subject the parser takes, and documented.
    for address in by_address.keys() {
        let tail = address
            .strip_prefix("{prefix}.")
            .unwrap_or_else(|| panic!("{address} lacks {{prefix}}"));
        if ["cmd.", "qry.", "admin."]
            .iter()
            .any(|p| tail.starts_with(p))
        {
            assert!(
                documented.contains(tail),
                "{address} has a channel but no request schema"
            );
        }
    }

    // No subject the parser takes is left out: probe likely names.
    let mut names: BTreeSet<String> = documented
        .iter()
        .map(|s| s.rsplit('.').next().unwrap().to_string())
        .collect();
    names.extend(
        [
            "get",
            "list",
            "history",
            "status",
            "update",
            "delete",
            "cancel",
            "claim",
            "claims",
            "case",
            "arbitration",
        ]
        .map(String::from),
    );
    for family in [
        "cmd.ref.",
        "cmd.partner.P-100.",
        "cmd.review.",
        "cmd.customer.5cc7f541-f9ba-4761-a888-039121ca9485.",
        "cmd.",
        "qry.",
        "qry.claim.",
        "qry.claims.",
        "qry.arbitration.",
        "qry.partner.P-100.",
        "qry.partner.P-100.claim.",
        "qry.partner.P-100.claims.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.claim.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.claims.",
        "admin.",
    ] {
        for name in &names {
            let subject = format!("{family}{name}");
            if parser_knows(&subject) {
                assert!(
                    request_doc(&subject).is_some(),
                    "the parser takes {subject}, which has no channel"
                );
            }
        }
    }

    // The published channels.
    let events = by_address
        .get("{prefix}.evt.{aggregate}.{id}.{event}")
        .expect("the events channel");
    let event_files: BTreeSet<String> = events["messages"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| payload_files(&resolve(&document, m)["payload"]))
        .collect();
    assert!(event_files.contains("cloudevent.json"));
    for (data, _) in event_samples() {
        let file = format!("events/{}.json", event_key(&data));
        assert!(
            event_files.contains(&file),
            "no message on the events channel uses {file}"
        );
    }
    let status = by_address
        .get("{prefix}.status.claim.{partner_id}.{claim_id}")
        .expect("the status channel");
    let status_files: BTreeSet<String> = status["messages"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| payload_files(&resolve(&document, m)["payload"]))
        .collect();
    assert_eq!(
        status_files,
        BTreeSet::from(["claim-view.json".to_string()])
    );
    for address in [
        "{prefix}.evt.{aggregate}.{id}.{event}",
        "{prefix}.status.claim.{partner_id}.{claim_id}",
    ] {
        let channel = by_address[address];
        assert!(
            operations
                .iter()
                .any(|op| resolve(&document, &op["channel"]) == channel && op["action"] == "send"),
            "no send operation on {address}"
        );
    }
}

#[test]
fn asyncapi_references_resolve() {
    let document = asyncapi();
    let mut references = Vec::new();
    collect_refs(&document, &mut |r| references.push(r.to_string()));
    assert!(references.len() > 50);
    let used: BTreeSet<String> = references
        .iter()
        .filter_map(|r| r.strip_prefix("./schemas/"))
        .map(|r| r.split('#').next().unwrap().to_string())
        .collect();
    for reference in &references {
        if let Some(pointer) = reference.strip_prefix('#') {
            assert!(
                document.pointer(pointer).is_some(),
                "unresolved $ref {reference}"
            );
        } else {
            let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
            let path = docs_dir().join(file);
            assert!(
                file.starts_with("./schemas/") && path.is_file(),
                "$ref {reference}: no such file docs/{file}"
            );
            if !fragment.is_empty() {
                let target: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                assert!(
                    target.pointer(fragment).is_some(),
                    "unresolved $ref {reference}"
                );
            }
        }
    }
    // Every schema file is reachable from the document.
    for file in generate().keys() {
        assert!(
            used.contains(file),
            "docs/asyncapi.yaml does not refer to schemas/{file}"
        );
    }
}

#[test]
fn asyncapi_examples_are_valid() {
    let document = asyncapi();
    let messages = document["components"]["messages"]
        .as_object()
        .expect("components.messages");
    let mut checked = 0;
    for (name, message) in messages {
        let examples = message["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("message {name} has no examples"));
        assert!(!examples.is_empty(), "message {name} has no examples");
        let payload = resolve(&document, &message["payload"]);
        let validator = validator(payload);
        for example in examples {
            let instance = &example["payload"];
            let found = errors(&validator, instance);
            assert!(
                found.is_empty(),
                "message {name}: example {} is invalid:\n{}",
                example["name"],
                found.join("\n")
            );
            // The payload's own schema, or the first of `allOf` (the
            // CloudEvent envelope, which checks `data` by `type`).
            let primary = payload
                .get("$ref")
                .or_else(|| payload.pointer("/allOf/0/$ref"));
            let file = primary
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("./schemas/"));
            let file =
                file.unwrap_or_else(|| panic!("message {name}: the payload names no schema file"));
            let schema = schema_file(file);
            let extra = undocumented(&schema, &schema, instance, "");
            assert!(
                extra.is_empty(),
                "message {name}: {file} does not document {extra:?}"
            );
            checked += 1;
        }
    }
    // Request examples are ones the parser accepts.
    for (address, channel) in document["channels"].as_object().unwrap() {
        let Some(tail) = channel["address"]
            .as_str()
            .and_then(|a| a.strip_prefix("{prefix}."))
        else {
            continue;
        };
        let Some(doc) = request_doc(tail) else {
            continue;
        };
        for message in channel["messages"].as_object().unwrap().values() {
            for example in resolve(&document, message)["examples"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let subject = concrete(doc.subject);
                let parsed = parse(&subject, example["payload"].to_string().as_bytes());
                assert!(
                    parsed.is_ok(),
                    "{address}: example {} is refused: {:?}",
                    example["name"],
                    parsed.err()
                );
            }
        }
    }
    assert!(checked > 40, "{checked} examples");
}

/// The paged replies `pages::fill` builds, whole and cut short by size,
/// match their schemas, and a cut page names its cursor.
#[test]
fn paged_replies_match_their_schemas() {
    use crate::server::pages::{fill, LISTINGS};
    let claim = serde_json::to_value(sample_claim_view()).unwrap();
    let comment = json!({"at": "2026-11-25T09:00:00Z", "author": partner_actor(),
                         "text": "x".repeat(500), "system": false});
    let case = serde_json::to_value(sample_case_view()).unwrap();
    let event = sample_cloud_events().remove(0).1;
    for (query, listing) in LISTINGS {
        let (frame, item) = match query {
            "claim.get" => (json!({"ok": true, "claim": claim}), comment.clone()),
            "claim.history" => (json!({"ok": true}), event.clone()),
            "claims.list" => (json!({"ok": true}), claim.clone()),
            _ => (json!({"ok": true}), case.clone()),
        };
        let items: Vec<(u64, Value)> = (1..=20).map(|i| (i, item.clone())).collect();
        let one = serde_json::to_vec(&item).unwrap().len();
        let file = format!("replies/qry.{query}.json");
        for (max, cut) in [
            (1 << 20, false),
            (frame.to_string().len() + 60 + one * 5, true),
        ] {
            let page = cpor_log::Page {
                items: items.clone(),
                next: None,
            };
            let reply = fill(frame.clone(), listing, page, max).unwrap();
            assert!(serde_json::to_vec(&reply).unwrap().len() <= max, "{query}");
            assert_matches(&file, &reply);
            let kept = reply[listing.items].as_array().unwrap().len();
            assert_eq!(kept < 20, cut, "{query}: {kept} items within {max} bytes");
            if cut {
                assert_eq!(reply[listing.next], json!(kept.to_string()), "{query}");
            }
        }
    }
}
