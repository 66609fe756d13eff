//! Decoding a stored event in one pass over its bytes: the hot path of
//! every replay (start-up's fold, `cpor rebuild`, the projections' repair).
//!
//! The general decoder ([`super::decode_general`]) reads the envelope with
//! `data` kept as raw text, then parses that text twice more: once for
//! `data.actor`, once for the payload. Here the envelope's deserializer
//! hands `data` straight to the payload's own `Deserialize` (chosen by the
//! event's type) through [`ActorTap`], which takes the `actor` member out
//! of the map on the way, so each byte is parsed once and no
//! `serde_json::Value` is built.
//!
//! The payload type must be known when `data` is reached, but in canonical
//! order `type` and `dataschema` come after `data`. So the type is read
//! from the text's tail first ([`type_at_end`]: a canonical event ends
//! with its `type` member) and taken to be at its current schema version;
//! once the envelope is parsed, its real `type` and `dataschema` must say
//! the same. Any doubt (the tail names no known type, the event is of an
//! older schema, anything does not parse, a member is repeated, the time
//! does not read) answers `None`, and the caller takes the general path,
//! which decides and words every error as before. So [`decode`] returns
//! `Some` only for bytes the general path decodes to the very same
//! [`DecodedEvent`]; a proptest holds it to that.

use std::borrow::Cow;
use std::fmt;

use serde::de::value::{BorrowedStrDeserializer, StringDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use cpor_domain::event::{AggregateKind, Event, EventData};
use cpor_domain::types::Actor;

use super::{parse_data_schema, DecodedEvent};

/// The event of `bytes` decoded in one pass, or `None` when the general
/// path must decide (see the module doc).
pub(super) fn decode(bytes: &[u8]) -> Option<DecodedEvent> {
    let type_name = type_at_end(bytes)?;
    let (kind, name) = split_type(type_name)?;
    let version = EventData::current_version(kind, name)?;
    // One UTF-8 check of the whole text (a tight loop over ASCII) instead
    // of one per string, which is what reading from bytes would do.
    let text = std::str::from_utf8(bytes).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = EnvelopeSeed {
        payload: PayloadSeed {
            kind,
            name,
            version,
        },
    }
    .deserialize(&mut deserializer)
    .ok()?;
    deserializer.end().ok()?;
    // The guess must be what the envelope says; otherwise the payload was
    // read as the wrong type or version.
    let schema_version = envelope
        .dataschema
        .as_deref()
        .and_then(parse_data_schema)
        .unwrap_or(1);
    if envelope.type_name != type_name || schema_version != version {
        return None;
    }
    let time = chrono::DateTime::parse_from_rfc3339(&envelope.time)
        .ok()?
        .with_timezone(&chrono::Utc);
    let (actor, data) = envelope.data;
    Some(DecodedEvent {
        position: envelope.position,
        stream_version: envelope.stream_version,
        time,
        hash: envelope.hash.map(Cow::into_owned).unwrap_or_default(),
        event: Event { actor, data },
        kind,
        aggregate_id: envelope.subject.into_owned(),
        type_name: type_name.to_string(),
    })
}

/// The value of the last member of `bytes` when it is `"type":"…"`, the
/// way a canonical CloudEvent of ours ends (`type` sorts after every other
/// member we write). Only a guess: nothing before it is looked at.
fn type_at_end(bytes: &[u8]) -> Option<&str> {
    const NAME: &[u8] = b"\"type\":\"";
    let body = bytes.strip_suffix(b"\"}")?;
    let opening = body.iter().rposition(|&b| b == b'"')?;
    let value = std::str::from_utf8(&body[opening + 1..]).ok()?;
    (body[..=opening].ends_with(NAME) && !value.contains('\\')).then_some(value)
}

/// `cpor.{aggregate}.{event}` as the general path reads it: the first part
/// is not looked at, the event name is the rest after the second dot.
fn split_type(type_name: &str) -> Option<(AggregateKind, &str)> {
    let mut parts = type_name.splitn(3, '.');
    let (_, kind, name) = (parts.next(), parts.next(), parts.next());
    Some((AggregateKind::parse(kind?)?, name?))
}

/// The envelope members a reader needs, borrowed from the bytes where
/// they hold no escape.
struct Envelope<'de> {
    type_name: Cow<'de, str>,
    subject: Cow<'de, str>,
    time: Cow<'de, str>,
    dataschema: Option<Cow<'de, str>>,
    data: (Actor, EventData),
    position: u64,
    stream_version: u64,
    hash: Option<Cow<'de, str>>,
}

struct EnvelopeSeed<'g> {
    payload: PayloadSeed<'g>,
}

impl<'de> DeserializeSeed<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Envelope<'de>, D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// Sets `slot` once; a second value is an error, as serde's derive makes it.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(name));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for EnvelopeSeed<'_> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudEvent object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let mut type_name = None;
        let mut subject = None;
        let mut time = None;
        let mut dataschema: Option<Option<Text<'de>>> = None;
        let mut data = None;
        let mut position = None;
        let mut stream_version = None;
        let mut hash: Option<Option<Text<'de>>> = None;
        let mut payload = Some(self.payload);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match key.0.as_ref() {
                "type" => once(&mut type_name, map.next_value::<Text>()?.0, "type")?,
                "subject" => once(&mut subject, map.next_value::<Text>()?.0, "subject")?,
                "time" => once(&mut time, map.next_value::<Text>()?.0, "time")?,
                "dataschema" => once(&mut dataschema, map.next_value()?, "dataschema")?,
                "position" => once(&mut position, map.next_value()?, "position")?,
                "streamversion" => once(&mut stream_version, map.next_value()?, "streamversion")?,
                "hash" => once(&mut hash, map.next_value()?, "hash")?,
                "data" => {
                    let seed = payload
                        .take()
                        .ok_or_else(|| de::Error::duplicate_field("data"))?;
                    data = Some(map.next_value_seed(seed)?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = de::Error::missing_field;
        Ok(Envelope {
            type_name: type_name.ok_or_else(|| missing("type"))?,
            subject: subject.ok_or_else(|| missing("subject"))?,
            time: time.ok_or_else(|| missing("time"))?,
            dataschema: dataschema.flatten().map(|t| t.0),
            data: data.ok_or_else(|| missing("data"))?,
            position: position.ok_or_else(|| missing("position"))?,
            stream_version: stream_version.ok_or_else(|| missing("streamversion"))?,
            hash: hash.flatten().map(|t| t.0),
        })
    }
}

/// A JSON string, borrowed from the bytes when it holds no escape.
struct Text<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Text<'de>, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_string())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// The event's `data`: its actor and its payload at the current version of
/// the type the tail named.
#[derive(Clone, Copy)]
struct PayloadSeed<'g> {
    kind: AggregateKind,
    name: &'g str,
    version: u32,
}

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = (Actor, EventData);

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let mut actor = None;
        let tap = ActorTap {
            inner: deserializer,
            actor: &mut actor,
        };
        let data = EventData::deserialize_current(self.kind, self.name, self.version, tap)
            .ok_or_else(|| de::Error::custom("not an event type at its current version"))??;
        let actor = actor.ok_or_else(|| de::Error::missing_field("actor"))?;
        Ok((actor, data))
    }
}

/// A deserializer for a JSON object that takes its `actor` member into
/// `actor` and shows the payload's visitor every other member, in order,
/// as if `actor` were not there: the general path's payload parse skips
/// `actor` as an unknown field, so the payload is the same.
struct ActorTap<'t, D> {
    inner: D,
    actor: &'t mut Option<Actor>,
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ActorTap<'_, D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.inner.deserialize_map(TapVisitor {
            visitor,
            actor: self.actor,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct TapVisitor<'t, V> {
    visitor: V,
    actor: &'t mut Option<Actor>,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TapVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.visitor.expecting(f)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.visitor.visit_map(TapMap {
            map,
            actor: self.actor,
        })
    }
}

struct TapMap<'t, A> {
    map: A,
    actor: &'t mut Option<Actor>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TapMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        loop {
            let Some(Text(key)) = self.map.next_key::<Text<'de>>()? else {
                return Ok(None);
            };
            if key == "actor" {
                let actor = self.map.next_value::<Actor>()?;
                once(&mut *self.actor, actor, "actor")?;
                continue;
            }
            return match key {
                Cow::Borrowed(key) => seed.deserialize(BorrowedStrDeserializer::new(key)),
                Cow::Owned(key) => seed.deserialize(StringDeserializer::new(key)),
            }
            .map(Some);
        }
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}
