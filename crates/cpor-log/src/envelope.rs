//! The stored form of an event: a CloudEvents 1.0 structured JSON object,
//! exactly as published and exported (contract §5 and §9).
//!
//! The log stores the event's RFC 8785 canonical JSON, `hash` included. So
//! the bytes an auditor exports are the bytes the service hashed, and anyone
//! can recompute the chain without the service.

use serde_json::{Map, Value};
use uuid::Uuid;

use cpor_domain::event::{AggregateKind, Event, EventData};
use cpor_domain::types::{Actor, Timestamp};
use cpor_domain::view::format_time;

use crate::LogError;
use cpor_jcs::{event_hash, write_canonical_json};

mod one_pass;
#[cfg(test)]
mod tests;

/// The CloudEvents `source` of every event this service writes.
pub const EVENT_SOURCE: &str = "/cpor";
/// Every CloudEvents `type` is `cpor.{aggregate}.{event}`, whatever the
/// subject prefix: the type names the kind of fact, not the deployment.
pub const EVENT_TYPE_PREFIX: &str = "cpor";

/// Where an event comes from, besides its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    pub event_id: Uuid,
    pub time: Timestamp,
    pub position: u64,
    pub stream_version: u64,
    pub causation_id: Uuid,
    pub correlation_id: Option<String>,
    /// The command's W3C `traceparent`, when it had one: the CloudEvents
    /// distributed-tracing extension attribute of the same name.
    pub traceparent: Option<String>,
}

/// `urn:cpor:event:claim.submitted:v2`: names the schema version the data
/// was written with, which drives upcasting on read.
pub fn data_schema(kind: AggregateKind, name: &str, version: u32) -> String {
    format!("urn:cpor:event:{}.{}:v{}", kind.as_str(), name, version)
}

fn parse_data_schema(schema: &str) -> Option<u32> {
    schema.rsplit_once(":v")?.1.parse().ok()
}

/// Builds the CloudEvent object (without `hash`).
pub fn to_cloud_event(event: &Event, meta: &EventMeta) -> Value {
    let aggregate = event.data.aggregate();
    let mut data = match event.data.to_value() {
        Value::Object(map) => map,
        _ => unreachable!("event payloads are structs"),
    };
    data.insert(
        "actor".to_string(),
        serde_json::to_value(&event.actor).expect("actors serialize"),
    );
    let mut ce = Map::new();
    ce.insert("specversion".into(), "1.0".into());
    ce.insert("id".into(), meta.event_id.to_string().into());
    ce.insert("source".into(), EVENT_SOURCE.into());
    ce.insert(
        "type".into(),
        format!(
            "{EVENT_TYPE_PREFIX}.{}.{}",
            aggregate.kind.as_str(),
            event.data.name()
        )
        .into(),
    );
    ce.insert("subject".into(), aggregate.id.into());
    ce.insert("time".into(), format_time(&meta.time).into());
    ce.insert("datacontenttype".into(), "application/json".into());
    ce.insert(
        "dataschema".into(),
        data_schema(
            aggregate.kind,
            event.data.name(),
            event.data.schema_version(),
        )
        .into(),
    );
    ce.insert("data".into(), Value::Object(data));
    ce.insert("position".into(), meta.position.into());
    ce.insert("streamversion".into(), meta.stream_version.into());
    ce.insert("causationid".into(), meta.causation_id.to_string().into());
    if let Some(correlation) = &meta.correlation_id {
        ce.insert("correlationid".into(), correlation.clone().into());
    }
    if let Some(traceparent) = &meta.traceparent {
        ce.insert("traceparent".into(), traceparent.clone().into());
    }
    Value::Object(ce)
}

/// What [`seal`] adds to the canonical form: `,"hash":"` + 64 hex digits + `"`.
const HASH_MEMBER_BYTES: usize = 75;

/// The size, in bytes, an event will have once sealed (as stored, exported
/// and published), at most: exact but for `position` and `streamversion`,
/// counted at their widest. For refusing an event too large to publish
/// before it is appended.
pub fn sealed_len_max(event: &Event, meta: &EventMeta) -> Result<usize, LogError> {
    let widest = EventMeta {
        position: u64::MAX,
        stream_version: u64::MAX,
        ..meta.clone()
    };
    let mut out = String::with_capacity(1024);
    write_canonical_json(&to_cloud_event(event, &widest), &mut out)
        .map_err(|e| LogError::Encode(e.to_string()))?;
    Ok(out.len() + HASH_MEMBER_BYTES)
}

/// Seals a CloudEvent into the chain: computes its `hash` from the previous
/// one, adds it, and returns the canonical bytes to store and the new hash.
pub fn seal(mut cloud_event: Value, previous_hash: &str) -> Result<(Vec<u8>, String), LogError> {
    let hash =
        event_hash(previous_hash, &cloud_event).map_err(|e| LogError::Encode(e.to_string()))?;
    if let Value::Object(map) = &mut cloud_event {
        map.insert("hash".into(), hash.clone().into());
    }
    let mut out = String::with_capacity(1024);
    write_canonical_json(&cloud_event, &mut out).map_err(|e| LogError::Encode(e.to_string()))?;
    Ok((out.into_bytes(), hash))
}

/// A stored event read back: its envelope fields and the decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    pub position: u64,
    pub stream_version: u64,
    pub time: Timestamp,
    pub hash: String,
    pub event: Event,
    pub kind: AggregateKind,
    pub aggregate_id: String,
    pub type_name: String,
}

/// The envelope fields a reader needs, borrowed from the bytes; `data` is
/// kept as raw JSON text and decoded once, straight into its payload type.
#[derive(serde::Deserialize)]
struct RawEnvelope<'a> {
    #[serde(rename = "type", borrow)]
    type_name: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    subject: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    time: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    dataschema: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    position: u64,
    streamversion: u64,
    #[serde(default, borrow)]
    hash: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct ActorOnly {
    actor: Actor,
}

/// Decodes stored or exported CloudEvent bytes, upcasting old schemas.
///
/// An event as this service stores it (canonical, at its current schema
/// version) is decoded in one pass ([`one_pass`]); anything else, and every
/// error, by the general path, which gives the same event for what both
/// decode.
pub fn decode(bytes: &[u8]) -> Result<DecodedEvent, LogError> {
    match one_pass::decode(bytes) {
        Some(decoded) => Ok(decoded),
        None => decode_general(bytes),
    }
}

/// The general decoder: the envelope with `data` kept as raw text, then the
/// actor and the payload from that text (older schemas through the
/// domain's upcasters); a text that is not even the envelope's shape goes
/// through a `serde_json::Value`, which words what is wrong.
pub(crate) fn decode_general(bytes: &[u8]) -> Result<DecodedEvent, LogError> {
    let raw: RawEnvelope<'_> = match serde_json::from_slice(bytes) {
        Ok(raw) => raw,
        // Not the shape we write: let the slow path say what is wrong.
        Err(_) => {
            let value: Value = serde_json::from_slice(bytes)
                .map_err(|e| LogError::Corrupt(format!("not JSON: {e}")))?;
            return decode_value(value);
        }
    };
    let bad = |what: &str| LogError::Corrupt(format!("event at position {} {what}", raw.position));
    let time = chrono::DateTime::parse_from_rfc3339(&raw.time)
        .map_err(|_| bad("has no valid time"))?
        .with_timezone(&chrono::Utc);
    let mut parts = raw.type_name.splitn(3, '.');
    let (_, kind, name) = (parts.next(), parts.next(), parts.next());
    let kind = kind
        .and_then(AggregateKind::parse)
        .ok_or_else(|| bad("has an unknown type"))?;
    let name = name.ok_or_else(|| bad("has an unknown type"))?;
    let version = raw
        .dataschema
        .as_deref()
        .and_then(parse_data_schema)
        .unwrap_or(1);
    let text = raw.data.get();
    let actor = serde_json::from_str::<ActorOnly>(text)
        .map_err(|_| bad("has no valid data.actor"))?
        .actor;
    let data = EventData::decode_str(kind, name, version, text)
        .map_err(|e| LogError::Corrupt(format!("at position {}: {e}", raw.position)))?;
    Ok(DecodedEvent {
        position: raw.position,
        stream_version: raw.streamversion,
        time,
        hash: raw.hash.map(|h| h.into_owned()).unwrap_or_default(),
        event: Event { actor, data },
        kind,
        aggregate_id: raw.subject.into_owned(),
        type_name: raw.type_name.into_owned(),
    })
}

pub fn decode_value(value: Value) -> Result<DecodedEvent, LogError> {
    let bad = |what: &str| LogError::Corrupt(format!("event {what}"));
    let Value::Object(mut ce) = value else {
        return Err(bad("is not an object"));
    };
    let position = ce
        .get("position")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("has no position"))?;
    let stream_version = ce
        .get("streamversion")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("has no streamversion"))?;
    let hash = ce
        .get("hash")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let time = ce
        .get("time")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .ok_or_else(|| bad("has no valid time"))?
        .with_timezone(&chrono::Utc);
    let type_name = ce
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has no type"))?
        .to_string();
    let mut parts = type_name.splitn(3, '.');
    let (_, kind, name) = (parts.next(), parts.next(), parts.next());
    let kind = kind
        .and_then(AggregateKind::parse)
        .ok_or_else(|| bad("has an unknown type"))?;
    let name = name.ok_or_else(|| bad("has an unknown type"))?.to_string();
    let version = ce
        .get("dataschema")
        .and_then(Value::as_str)
        .and_then(parse_data_schema)
        .unwrap_or(1);
    let aggregate_id = ce
        .get("subject")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("has no subject"))?
        .to_string();
    let Some(Value::Object(mut data)) = ce.remove("data") else {
        return Err(bad("has no data object"));
    };
    let actor: Actor = data
        .remove("actor")
        .and_then(|a| serde_json::from_value(a).ok())
        .ok_or_else(|| bad("has no valid data.actor"))?;
    let data = EventData::decode(kind, &name, version, Value::Object(data))
        .map_err(|e| LogError::Corrupt(format!("at position {position}: {e}")))?;
    Ok(DecodedEvent {
        position,
        stream_version,
        time,
        hash,
        event: Event { actor, data },
        kind,
        aggregate_id,
        type_name,
    })
}
