//! One window of events: publishing them in log order, judging every ack
//! (a republish, a forgery, an event JetStream refuses for good), and what
//! the relay remembers of what went wrong.

use std::collections::BTreeSet;

use async_nats::jetstream;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};

use super::{stream_names, Relay, RELAY_EVENT_ATTEMPTS_MAX, RELAY_WINDOW_EVENTS};
use crate::trace::TRACEPARENT_HEADER;

impl Relay {
    /// Publishes events after `from` (at most a window, never past
    /// `durable`), checks every ack, then publishes the status of the
    /// claims they touched. Returns the last position handled.
    pub(super) async fn publish_window(
        &self,
        from: u64,
        durable: u64,
        trail: &mut Trail,
    ) -> Result<u64, WindowError> {
        let mut acks = Vec::with_capacity(RELAY_WINDOW_EVENTS);
        let mut claims = ClaimVersions::new();
        let mut last = from;
        for entry in self.reader.events_from(from + 1).take(RELAY_WINDOW_EVENTS) {
            let (position, bytes) = entry.map_err(|e| WindowError::Nats(e.into()))?;
            if position > durable {
                break;
            }
            let head: EventHead<'_> =
                serde_json::from_slice(&bytes).map_err(|e| WindowError::Nats(e.into()))?;
            let Some((aggregate, name)) = head.aggregate_and_name() else {
                trail.unpublishable(position, "its type is not cpor.{aggregate}.{name}");
                last = position;
                continue;
            };
            head.note_claim(&mut claims);
            let subject = format!("{}.evt.{aggregate}.{}.{name}", self.prefix, head.subject);
            let mut publish = jetstream::message::PublishMessage::build()
                .payload(bytes.clone().into())
                .message_id(head.id);
            if let Some(traceparent) = head.traceparent {
                publish = publish.header(TRACEPARENT_HEADER, traceparent);
            }
            match self.js.send_publish(subject, publish).await {
                Ok(ack) => acks.push((position, bytes, ack)),
                Err(error) if error.kind() == PublishErrorKind::MaxPayloadExceeded => {
                    trail.unpublishable(position, &error.to_string());
                }
                Err(error) => return Err(classify(error)),
            }
            last = position;
        }
        for (position, bytes, ack) in acks {
            match ack.await {
                Ok(ack) if ack.duplicate => {
                    self.check_duplicate(position, &bytes, &ack, trail).await?
                }
                Ok(_) => ::metrics::counter!(crate::metrics::EVENTS_PUBLISHED_TOTAL).increment(1),
                Err(error) => match permanent(&error) {
                    Some(reason) => trail.unpublishable(position, &reason),
                    None if error.kind() == PublishErrorKind::Other && !resources(&error) => {
                        // A server error that is not known to be permanent:
                        // retried, but not for ever at one position.
                        if trail.failed_attempt(position) >= RELAY_EVENT_ATTEMPTS_MAX {
                            trail.unpublishable(position, &error.to_string());
                        } else {
                            return Err(WindowError::Nats(error.into()));
                        }
                    }
                    None => return Err(classify(error)),
                },
            }
        }
        self.publish_statuses(claims)
            .await
            .map_err(WindowError::from_status)?;
        Ok(last)
    }

    /// A `duplicate` ack: the stream already holds a message with this
    /// event's id. If it is this log's event (a republish) all is well;
    /// otherwise someone else wrote under the id: alarm, and the position
    /// never counts as published.
    async fn check_duplicate(
        &self,
        position: u64,
        bytes: &[u8],
        ack: &jetstream::publish::PublishAck,
        trail: &mut Trail,
    ) -> Result<(), WindowError> {
        let (events_name, _) = stream_names(&self.prefix);
        let stored = match self.js.get_stream(&events_name).await {
            Ok(stream) => stream.get_raw_message(ack.sequence).await.ok(),
            Err(error) => return Err(WindowError::Nats(error.into())),
        };
        match stored {
            Some(message) if message.payload[..] == *bytes => {
                ::metrics::counter!(crate::metrics::RELAY_DUPLICATE_ACKS_TOTAL).increment(1);
            }
            Some(message) => {
                ::metrics::counter!(crate::metrics::RELAY_FOREIGN_ACKS_TOTAL).increment(1);
                trail.forged(position, ack.sequence, &message.payload)
            }
            None => {
                ::metrics::counter!(crate::metrics::RELAY_FOREIGN_ACKS_TOTAL).increment(1);
                trail.forged(position, ack.sequence, b"(no longer in the stream)")
            }
        }
        Ok(())
    }
}

/// What the relay found wrong with the stream copy of events, kept while it
/// runs (the alarms are in the log output and in health).
#[derive(Default)]
pub(super) struct Trail {
    /// Positions whose id someone else's message holds in the stream.
    pub(super) forged: BTreeSet<u64>,
    /// Positions JetStream refused for good.
    pub(super) unpublishable: BTreeSet<u64>,
    /// The position of the last failed attempt, and how many in a row.
    attempts: Option<(u64, u32)>,
}

impl Trail {
    /// The first position not published (forged or unpublishable), if any.
    pub(super) fn first_bad(&self) -> Option<u64> {
        match (self.forged.first(), self.unpublishable.first()) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }

    fn forged(&mut self, position: u64, sequence: u64, stored: &[u8]) {
        if self.forged.insert(position) {
            tracing::error!(
                position,
                sequence,
                stored = %String::from_utf8_lossy(&stored[..stored.len().min(120)]),
                "ALARM: the events stream holds someone else's message under the id of this log's event at this position \
                 (a forgery, or a message published ahead of the relay); the event is not counted as published; \
                 `cpor stream repair` rebuilds the stream from the log"
            );
        }
    }

    fn unpublishable(&mut self, position: u64, reason: &str) {
        if self.unpublishable.insert(position) {
            tracing::error!(
                position,
                reason,
                "JetStream refused this event for good: it is skipped and not counted as published (the log keeps it; export and verify read it from the data dir)"
            );
        }
    }

    /// Counts a failed attempt at `position`; returns the attempts in a row.
    fn failed_attempt(&mut self, position: u64) -> u32 {
        let attempts = match self.attempts {
            Some((at, n)) if at == position => n + 1,
            _ => 1,
        };
        self.attempts = Some((position, attempts));
        attempts
    }
}

/// Why a window was not published.
#[derive(Debug)]
pub(super) enum WindowError {
    /// A stream is gone (deleted): recreate and refill.
    StreamMissing,
    /// Retry later (JetStream unreachable, full, or a log read error).
    Nats(async_nats::Error),
}

impl WindowError {
    fn from_status(error: async_nats::Error) -> WindowError {
        match error.downcast_ref::<PublishError>() {
            Some(e) if e.kind() == PublishErrorKind::StreamNotFound => WindowError::StreamMissing,
            _ => WindowError::Nats(error),
        }
    }
}

/// A publish error that is not about one event.
fn classify(error: PublishError) -> WindowError {
    if error.kind() == PublishErrorKind::StreamNotFound {
        WindowError::StreamMissing
    } else {
        WindowError::Nats(error.into())
    }
}

/// Why an event can never be published, when the error says so: over the
/// connection's `max_payload`, or over the stream's `max_msg_size`.
fn permanent(error: &PublishError) -> Option<String> {
    if error.kind() == PublishErrorKind::MaxPayloadExceeded {
        return Some(error.to_string());
    }
    let api = std::error::Error::source(error)?.downcast_ref::<jetstream::Error>()?;
    (api.error_code() == jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM)
        .then(|| api.to_string())
}

/// Whether a server error is about the server's resources (retried
/// without end) rather than about the event.
fn resources(error: &PublishError) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<jetstream::Error>())
        .is_some_and(|api| {
            [
                jetstream::ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
                jetstream::ErrorCode::INSUFFICIENT_RESOURCES,
                jetstream::ErrorCode::MEMORY_RESOURCES_EXCEEDED,
                jetstream::ErrorCode::STORAGE_RESOURCES_EXCEEDED,
                jetstream::ErrorCode::STREAM_STORE_FAILED,
            ]
            .contains(&api.error_code())
        })
}

/// Claim id → the highest stream version of its events in a window.
pub(super) type ClaimVersions = std::collections::BTreeMap<String, u64>;

/// The few CloudEvent fields the relay needs to route an event, borrowed.
#[derive(serde::Deserialize)]
pub(super) struct EventHead<'a> {
    /// The event id: the message's `Nats-Msg-Id`, so the stream's
    /// duplicate window drops a republish.
    id: &'a str,
    /// `cpor.{aggregate}.{name}`: the subject's middle and end.
    #[serde(rename = "type")]
    type_name: &'a str,
    /// The aggregate's id (a claim's id for claim events).
    subject: &'a str,
    /// The aggregate's version after this event: a claim's status is
    /// published only once its view is no further than this.
    streamversion: u64,
    /// The CloudEvents distributed-tracing extension, repeated as the
    /// message's `traceparent` header for NATS-aware tracing.
    #[serde(default)]
    traceparent: Option<&'a str>,
}

impl EventHead<'_> {
    /// `(aggregate, name)` from `cpor.{aggregate}.{name}`; `None` for a
    /// type of another shape.
    fn aggregate_and_name(&self) -> Option<(&str, &str)> {
        let mut parts = self.type_name.splitn(3, '.');
        let _ = parts.next()?;
        Some((parts.next()?, parts.next()?))
    }

    /// Records a claim event's stream version.
    pub(super) fn note_claim(&self, claims: &mut ClaimVersions) {
        if self.type_name.split('.').nth(1) == Some("claim") {
            let version = claims.entry(self.subject.to_string()).or_default();
            *version = (*version).max(self.streamversion);
        }
    }
}
