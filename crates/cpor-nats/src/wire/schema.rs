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

mod requests;
mod samples;
#[cfg(test)]
mod tests;

pub(crate) use requests::request_subjects;
use requests::{request_docs, RequestDoc};
use samples::{event_key, event_samples};

const UPDATE_HINT: &str =
    "run `UPDATE_SCHEMAS=1 cargo test -p cpor-nats schema` and commit docs/schemas/";
const GENERATED_COMMENT: &str =
    "Generated from the Rust types by crates/cpor-nats/src/wire/schema.rs; do not edit by hand: run `UPDATE_SCHEMAS=1 cargo test -p cpor-nats schema`.";

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
