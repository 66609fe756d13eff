//! The relay: publishes the log to JetStream, in log order, after the fact.
//!
//! The log is the source of truth; JetStream is a copy for subscribers. The
//! relay reads durable events from its last acknowledged position, publishes
//! a window of them with `Nats-Msg-Id` = event id (so a republish after a
//! crash is dropped by the stream's duplicate window), awaits every ack, then
//! publishes the current ClaimView of each claim the window touched to the
//! last-value status stream, and only then advances its position.
//!
//! On start it resumes after the last event already in the stream (checked
//! to be this log's event at that position), so a crash between a publish
//! and the position write leaves neither a gap nor a duplicate, and a stream
//! that lost its tail gets it again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde_json::Value;
use tokio::sync::watch;

use cpor_engine::Positions;
use cpor_log::LogReader;

mod migrate;
pub use migrate::StatusMigration;

/// Events published per window (acks awaited together).
pub const RELAY_WINDOW_EVENTS: usize = 512;
/// Retry delay bounds while JetStream is unreachable.
pub const RELAY_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The events stream's duplicate window: a republish within it is dropped.
pub const EVENTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

const META_PUBLISHED_POSITION: &str = "published_position";

/// Stream names derive from the prefix (contract §8).
pub fn stream_names(prefix: &str) -> (String, String) {
    let upper = prefix.to_uppercase();
    (format!("{upper}_EVENTS"), format!("{upper}_STATUS"))
}

/// The status stream's subjects: every status subject of the prefix,
/// `{prefix}.status.claim.{partner_id}.{claim_id}` (contract v1.1 §5).
pub fn status_stream_subjects(prefix: &str) -> Vec<String> {
    vec![format!("{prefix}.status.>")]
}

/// The subject a claim's status is published on (contract v1.1 §5): the
/// owner is in the subject so that a partner's dashboard can be allowed
/// exactly `{prefix}.status.claim.{partner_id}.>`.
pub fn status_subject(prefix: &str, partner_id: &str, claim_id: &str) -> String {
    format!("{prefix}.status.claim.{partner_id}.{claim_id}")
}

/// Creates the two streams if absent. Settings are in code and in
/// `deploy/README.md`: file storage; events kept without limit (they are the
/// audit trail's live copy); status keeps one message per claim.
pub async fn ensure_streams(
    js: &jetstream::Context,
    prefix: &str,
) -> Result<(stream::Stream, stream::Stream), async_nats::Error> {
    let (events_name, status_name) = stream_names(prefix);
    let events = js
        .get_or_create_stream(stream::Config {
            name: events_name,
            description: Some("CPOR claim service events (CloudEvents), in log order".into()),
            subjects: vec![format!("{prefix}.evt.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            duplicate_window: EVENTS_DUPLICATE_WINDOW,
            ..Default::default()
        })
        .await?;
    let status = js
        .get_or_create_stream(stream::Config {
            name: status_name,
            description: Some("CPOR claim status: the last ClaimView per claim".into()),
            subjects: status_stream_subjects(prefix),
            storage: stream::StorageType::File,
            max_messages_per_subject: 1,
            allow_direct: true,
            ..Default::default()
        })
        .await?;
    Ok((events, status))
}

pub struct Relay {
    pub js: jetstream::Context,
    pub reader: LogReader,
    pub positions: Arc<Positions>,
    pub committed: watch::Receiver<u64>,
    pub prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("the events stream {stream} holds position {position} with hash {stream_hash}, but this log has {log_hash} there: the stream belongs to another log (another data dir used this prefix); use another --prefix or delete the stream")]
    ForeignStream {
        stream: String,
        position: u64,
        stream_hash: String,
        log_hash: String,
    },
    #[error("the events stream {stream} is ahead of this log (stream at position {stream_position}, log at {log_position}): the data dir is not the one that wrote the stream, or it lost writes; refusing to serve so history is not split")]
    StreamAhead {
        stream: String,
        stream_position: u64,
        log_position: u64,
    },
    #[error(transparent)]
    Nats(#[from] async_nats::Error),
}

impl Relay {
    /// Runs until `stop` is set and everything durable is published,
    /// starting after `published` (see [`Relay::resume_position`]).
    pub async fn run(mut self, published: u64, mut stop: watch::Receiver<bool>) {
        let mut backoff = RELAY_BACKOFF_MIN;
        let mut published = published;
        // The events up to `published` are in the stream, but a crash may
        // have come between their acks and their claims' statuses (the
        // stored position advances only after both): publish those again.
        let stored = self.stored_position();
        if stored < published {
            tracing::info!(
                stored,
                published,
                "republishing the statuses of the claims of the last published events"
            );
            while let Err(error) = self.republish_statuses(stored, published).await {
                tracing::warn!(%error, ?backoff, "republishing claim statuses failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RELAY_BACKOFF_MAX);
            }
            if let Err(error) = self.reader.put_meta_u64(META_PUBLISHED_POSITION, published) {
                tracing::warn!(%error, "cannot store the published position");
            }
        }
        backoff = RELAY_BACKOFF_MIN;
        self.positions.published.store(published, Ordering::SeqCst);
        loop {
            let durable = *self.committed.borrow_and_update();
            if published >= durable {
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    _ = self.committed.changed() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            match self.publish_window(published, durable).await {
                Ok(last) => {
                    published = last;
                    backoff = RELAY_BACKOFF_MIN;
                    self.positions.published.store(published, Ordering::SeqCst);
                    if let Err(error) = self.reader.put_meta_u64(META_PUBLISHED_POSITION, published)
                    {
                        tracing::warn!(%error, "cannot store the published position");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, position = published + 1, ?backoff, "publishing to JetStream failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RELAY_BACKOFF_MAX);
                }
            }
        }
        tracing::info!(published, "relay drained");
    }

    /// Where publishing resumes: after the last event the events stream
    /// holds. The stream, not a stored counter, is what subscribers see: if
    /// it lost messages (JetStream acknowledges before it syncs) or was
    /// deleted, the missing tail is published again. Checks that the stream's
    /// last event is this log's event at that position, byte for byte, so a
    /// stream written by another log is never silently continued.
    pub async fn resume_position(&self) -> Result<u64, RelayError> {
        let stored = self
            .reader
            .get_meta_u64(META_PUBLISHED_POSITION)
            .map_err(|e| RelayError::Nats(e.into()))?
            .unwrap_or(0);
        let log_position = self
            .reader
            .last_position()
            .map_err(|e| RelayError::Nats(e.into()))?;
        let (events_name, _) = stream_names(&self.prefix);
        let mut stream = self
            .js
            .get_stream(&events_name)
            .await
            .map_err(|e| RelayError::Nats(e.into()))?;
        let last_sequence = stream
            .info()
            .await
            .map_err(|e| RelayError::Nats(e.into()))?
            .state
            .last_sequence;
        if last_sequence == 0 {
            if stored > 0 {
                tracing::warn!(stored, "the events stream is empty but {stored} events were published before: republishing the whole log");
            }
            return Ok(0);
        }
        let message = stream
            .get_raw_message(last_sequence)
            .await
            .map_err(|e| RelayError::Nats(e.into()))?;
        let head: Value =
            serde_json::from_slice(&message.payload).map_err(|e| RelayError::Nats(e.into()))?;
        let position = head.get("position").and_then(Value::as_u64).unwrap_or(0);
        let stream_hash = head
            .get("hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if position > log_position {
            return Err(RelayError::StreamAhead {
                stream: events_name,
                stream_position: position,
                log_position,
            });
        }
        let ours = self
            .reader
            .event_bytes(position)
            .map_err(|e| RelayError::Nats(e.into()))?
            .map(|bytes| bytes.to_vec());
        if ours.as_deref() != Some(&message.payload[..]) {
            let log_hash = ours
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| "nothing".into());
            return Err(RelayError::ForeignStream {
                stream: events_name,
                position,
                stream_hash,
                log_hash,
            });
        }
        if position < stored {
            tracing::warn!(
                stream_position = position,
                stored,
                "the events stream lost acknowledged messages (JetStream not synced to disk?): republishing them"
            );
        }
        Ok(position)
    }

    /// Publishes events after `from` (at most a window, never past
    /// `durable`), then the status of the claims they touched.
    async fn publish_window(&self, from: u64, durable: u64) -> Result<u64, async_nats::Error> {
        let mut acks = Vec::with_capacity(RELAY_WINDOW_EVENTS);
        let mut claims = ClaimVersions::new();
        let mut last = from;
        for entry in self.reader.events_from(from + 1).take(RELAY_WINDOW_EVENTS) {
            let (position, bytes) = entry?;
            if position > durable {
                break;
            }
            let head: EventHead<'_> = serde_json::from_slice(&bytes)?;
            let (aggregate, name) = head
                .aggregate_and_name()
                .ok_or("event type is not cpor.{aggregate}.{name}")?;
            head.note_claim(&mut claims);
            let subject = format!("{}.evt.{aggregate}.{}.{name}", self.prefix, head.subject);
            let publish = jetstream::message::PublishMessage::build()
                .payload(bytes.clone().into())
                .message_id(head.id);
            acks.push(self.js.send_publish(subject, publish).await?);
            last = position;
        }
        for ack in acks {
            ack.await?;
        }
        self.publish_statuses(claims).await?;
        Ok(last)
    }

    /// The published position stored after the last complete window.
    fn stored_position(&self) -> u64 {
        self.reader
            .get_meta_u64(META_PUBLISHED_POSITION)
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Publishes the current status of every claim that the events after
    /// `from` up to `to` touched, a window of events at a time.
    async fn republish_statuses(&self, from: u64, to: u64) -> Result<(), async_nats::Error> {
        let mut from = from;
        while from < to {
            let mut claims = ClaimVersions::new();
            let mut last = to;
            for entry in self.reader.events_from(from + 1).take(RELAY_WINDOW_EVENTS) {
                let (position, bytes) = entry?;
                if position > to {
                    break;
                }
                let head: EventHead<'_> = serde_json::from_slice(&bytes)?;
                head.note_claim(&mut claims);
                last = position;
            }
            self.publish_statuses(claims).await?;
            from = last;
        }
        Ok(())
    }

    /// Publishes the current ClaimView of each claim and awaits the acks.
    ///
    /// The stored view may already include a batch the writer has applied
    /// but not yet flushed. Publishing it would publish an unflushed write,
    /// so a view whose version is ahead of the claim's last published event
    /// is skipped here: that later event is published in a later window,
    /// and the view with it. (Every change to a claim's view is a claim
    /// event; arbitration outcomes come with one on each claim.)
    async fn publish_statuses(&self, claims: ClaimVersions) -> Result<(), async_nats::Error> {
        let mut status_acks = Vec::with_capacity(claims.len());
        for (claim_id, published_version) in claims {
            let Ok(id) = claim_id.parse::<uuid::Uuid>() else {
                continue;
            };
            let Some(view) = self.reader.claim_view(&id)? else {
                continue;
            };
            let view_version = view.get("version").and_then(Value::as_u64).unwrap_or(0);
            if view_version > published_version {
                continue;
            }
            let Some(partner_id) = view.get("partner_id").and_then(Value::as_str) else {
                continue;
            };
            let subject = status_subject(&self.prefix, partner_id, &claim_id);
            let payload = serde_json::to_vec(&view)?;
            status_acks.push(self.js.publish(subject, payload.into()).await?);
        }
        for ack in status_acks {
            ack.await?;
        }
        Ok(())
    }
}

/// Claim id → the highest stream version of its events in a window.
type ClaimVersions = std::collections::BTreeMap<String, u64>;

/// The few CloudEvent fields the relay needs to route an event, borrowed.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    subject: &'a str,
    streamversion: u64,
}

impl EventHead<'_> {
    fn aggregate_and_name(&self) -> Option<(&str, &str)> {
        let mut parts = self.type_name.splitn(3, '.');
        let _ = parts.next()?;
        Some((parts.next()?, parts.next()?))
    }

    /// Records a claim event's stream version.
    fn note_claim(&self, claims: &mut ClaimVersions) {
        if self.type_name.split('.').nth(1) == Some("claim") {
            let version = claims.entry(self.subject.to_string()).or_default();
            *version = (*version).max(self.streamversion);
        }
    }
}
