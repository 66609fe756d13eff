//! Where a start resumes publishing, and when it must refuse to start
//! because the stream and the log tell two histories (issue 11).

use std::sync::atomic::Ordering;

use async_nats::jetstream;
use serde_json::Value;

use super::{
    checkpoint_subject, checkpoints_stream_name, log_error, stream_names, Relay, RelayError,
    RESUME_SCAN_MESSAGES,
};

impl Relay {
    /// Where publishing resumes: after the last of this log's events the
    /// events stream holds. The stream, not a stored counter, is what
    /// subscribers see: if it lost messages (JetStream acknowledges before
    /// it syncs) or was deleted, the missing tail is published again.
    ///
    /// Nothing an outsider publishes can stop a start: from the stream's
    /// end back (at most [`RESUME_SCAN_MESSAGES`] messages), every message
    /// that is not this log's event at its position byte for byte (junk,
    /// a forgery) is reported with its sequence, counted in health and
    /// skipped. The start is refused only when the stream is another log's
    /// copy: no message of this log near its end, and its *first* message
    /// a well-formed event this log does not hold (an outsider cannot
    /// change the first message of a stream the service has written).
    pub async fn resume_position(&self) -> Result<u64, RelayError> {
        let stored = self.stored_position();
        let log_position = self.reader.last_position().map_err(log_error)?;
        let (events_name, _) = stream_names(&self.prefix);
        let mut stream = self
            .js
            .get_stream(&events_name)
            .await
            .map_err(|e| RelayError::Nats(e.into()))?;
        let state = stream
            .info()
            .await
            .map_err(|e| RelayError::Nats(e.into()))?
            .state
            .clone();
        if state.messages == 0 {
            if stored > 0 {
                tracing::warn!(stored, "the events stream is empty but {stored} events were published before: republishing the whole log");
            }
            return Ok(0);
        }
        let events = EventsStream {
            name: events_name,
            stream,
            first_sequence: state.first_sequence.max(1),
            last_sequence: state.last_sequence,
        };
        if let Some(position) = self.last_of_ours(&events, log_position).await? {
            if position < stored {
                tracing::warn!(
                    stream_position = position,
                    stored,
                    "the events stream lost acknowledged messages (JetStream not synced to disk?): republishing them"
                );
            }
            return Ok(position);
        }
        self.refuse_another_logs_stream(&events, log_position)
            .await?;
        let resume = stored.min(log_position);
        tracing::warn!(
            resume,
            "no event of this log among the last {RESUME_SCAN_MESSAGES} messages of the events stream: resuming after the stored published position"
        );
        Ok(resume)
    }

    /// The position of the last of this log's events among the last
    /// [`RESUME_SCAN_MESSAGES`] sequences of the stream (deleted ones
    /// count), `None` if there is none. Every other message on the way is
    /// reported and skipped, unless it is the log's lost continuation:
    /// then the start is refused ([`RelayError::LogBehindStream`]).
    async fn last_of_ours(
        &self,
        events: &EventsStream,
        log_position: u64,
    ) -> Result<Option<u64>, RelayError> {
        let scan = usize::try_from(RESUME_SCAN_MESSAGES).unwrap_or(usize::MAX);
        let sequences = (events.first_sequence..=events.last_sequence).rev();
        for sequence in sequences.take(scan) {
            let Ok(message) = events.stream.get_raw_message(sequence).await else {
                continue; // deleted
            };
            match self.judge(&message.payload, log_position).await? {
                Judged::Ours(position) => return Ok(Some(position)),
                Judged::LostContinuation => {
                    return Err(RelayError::LogBehindStream {
                        stream: events.name.clone(),
                        prefix: self.prefix.clone(),
                        position: log_position + 1,
                        log_position,
                    })
                }
                Judged::Foreign => self.report_foreign(&events.name, sequence, &message.payload),
            }
        }
        Ok(None)
    }

    /// What a message of the events stream is to this log.
    async fn judge(&self, payload: &[u8], log_position: u64) -> Result<Judged, RelayError> {
        if let Some(position) = self.is_ours(payload).map_err(log_error)? {
            return Ok(Judged::Ours(position));
        }
        // The log's own lost continuation, proven by this service's
        // signature: an outsider can forge an event that chains (it is
        // then foreign), not a checkpoint.
        if self
            .continues_log(payload, log_position)
            .map_err(log_error)?
            && self.signed_past(log_position).await
        {
            return Ok(Judged::LostContinuation);
        }
        Ok(Judged::Foreign)
    }

    /// Counts a message that is not this log's event in health
    /// (`foreign_messages`) and reports it with its sequence.
    fn report_foreign(&self, stream: &str, sequence: u64, payload: &[u8]) {
        self.positions
            .foreign_messages
            .fetch_add(1, Ordering::SeqCst);
        tracing::error!(
            stream = %stream,
            sequence,
            bytes = payload.len(),
            start = %String::from_utf8_lossy(&payload[..payload.len().min(80)]),
            "the events stream holds a message that is not this log's event (written by someone else): skipped; `cpor stream repair` removes it"
        );
    }

    /// No event of this log near the stream's end: whose stream is it? If
    /// its first message is a well-formed event this log does not hold,
    /// another log's ([`RelayError::ForeignStream`], or
    /// [`RelayError::StreamAhead`] when it is past this log's end). An
    /// outsider cannot change the first message of a stream the service
    /// has written; anything else (junk first, or ours) lets the start go on.
    async fn refuse_another_logs_stream(
        &self,
        events: &EventsStream,
        log_position: u64,
    ) -> Result<(), RelayError> {
        let Ok(first) = events.stream.get_raw_message(events.first_sequence).await else {
            return Ok(());
        };
        let Ok(head) = serde_json::from_slice::<Value>(&first.payload) else {
            return Ok(());
        };
        let position = head.get("position").and_then(Value::as_u64);
        let stream_hash = head.get("hash").and_then(Value::as_str);
        let (Some(position), Some(stream_hash)) = (position, stream_hash) else {
            return Ok(());
        };
        if self.is_ours(&first.payload).map_err(log_error)?.is_some() {
            return Ok(());
        }
        if position > log_position {
            return Err(RelayError::StreamAhead {
                stream: events.name.clone(),
                stream_position: events.last_sequence,
                log_position,
            });
        }
        let log_hash = self
            .stored_hash(position)
            .map_err(log_error)?
            .unwrap_or_else(|| "nothing".into());
        Err(RelayError::ForeignStream {
            stream: events.name.clone(),
            position,
            stream_hash: stream_hash.to_string(),
            log_hash,
        })
    }

    /// Whether this service signed a checkpoint past `log_position`: the
    /// last message on the checkpoints subject is a checkpoint whose
    /// position is beyond it and whose Ed25519 signature verifies with
    /// this data dir's key (docs/audit.md). That is what makes a stream
    /// message continuing the log evidence that the log lost events; a
    /// message an outsider publishes is never enough to refuse a start.
    /// `false` when checkpoints are off or the stream cannot be read.
    async fn signed_past(&self, log_position: u64) -> bool {
        let Some(policy) = &self.checkpoints else {
            return false;
        };
        let Ok(key) = cpor_log::checkpoint::parse_public_key(&policy.signer.public_key_hex())
        else {
            return false;
        };
        let Ok(stream) = self
            .js
            .get_stream(checkpoints_stream_name(&self.prefix))
            .await
        else {
            return false;
        };
        let Ok(message) = stream
            .get_last_raw_message_by_subject(&checkpoint_subject(&self.prefix))
            .await
        else {
            return false;
        };
        cpor_log::checkpoint::Checkpoint::from_bytes(&message.payload)
            .is_ok_and(|c| c.position > log_position && c.verify(&key).is_ok())
    }

    /// Whether `payload` is an event at `log_position + 1` whose hash
    /// chains onto this log's last event: the log's own continuation,
    /// which the log no longer has — or a forgery by anyone who may publish
    /// to the events stream: [`Relay::signed_past`] tells them apart.
    fn continues_log(&self, payload: &[u8], log_position: u64) -> Result<bool, cpor_log::LogError> {
        // Every log's first event chains onto the empty log: an empty log
        // facing a stream is another log's stream (`StreamAhead`).
        if log_position == 0 {
            return Ok(false);
        }
        let Ok(value) = serde_json::from_slice::<Value>(payload) else {
            return Ok(false);
        };
        if value.get("position").and_then(Value::as_u64) != Some(log_position + 1) {
            return Ok(false);
        }
        let previous = self.stored_hash(log_position)?.unwrap_or_default();
        let stored = value.get("hash").and_then(Value::as_str);
        Ok(cpor_jcs::event_hash(&previous, &value).is_ok_and(|hash| Some(hash.as_str()) == stored))
    }

    /// `Some(position)` if `payload` is this log's event at its position,
    /// byte for byte.
    fn is_ours(&self, payload: &[u8]) -> Result<Option<u64>, cpor_log::LogError> {
        #[derive(serde::Deserialize)]
        struct Position {
            position: u64,
        }
        let Ok(Position { position }) = serde_json::from_slice::<Position>(payload) else {
            return Ok(None);
        };
        let ours = self.reader.event_bytes(position)?;
        Ok(ours.filter(|bytes| bytes[..] == *payload).map(|_| position))
    }

    /// The `hash` of this log's event at `position`; `None` if the log has
    /// no event there (or one without a hash).
    pub(super) fn stored_hash(&self, position: u64) -> Result<Option<String>, cpor_log::LogError> {
        Ok(self
            .reader
            .event_bytes(position)?
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string)))
    }
}

/// The events stream as a start found it.
struct EventsStream {
    /// Its name, `{PREFIX}_EVENTS`.
    name: String,
    /// The stream, to read messages by sequence.
    stream: jetstream::stream::Stream,
    /// Its first sequence (at least 1).
    first_sequence: u64,
    /// Its last sequence.
    last_sequence: u64,
}

/// What a message of the events stream is, to a start.
enum Judged {
    /// This log's event at this position, byte for byte: resume after it.
    Ours(u64),
    /// The event after this log's last, chaining onto it, and covered by a
    /// checkpoint this service signed: the log lost it.
    LostContinuation,
    /// Anything else (junk, a forgery): reported and skipped.
    Foreign,
}
