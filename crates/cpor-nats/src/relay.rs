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

use std::collections::BTreeSet;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::{self, stream};
use serde_json::Value;
use tokio::sync::watch;

use cpor_engine::Positions;
use cpor_log::LogReader;

mod migrate;
pub use migrate::StatusMigration;

/// Events published per window (acks awaited together).
use crate::trace::TRACEPARENT_HEADER;

pub const RELAY_WINDOW_EVENTS: usize = 512;
/// Retry delay bounds while JetStream is unreachable.
pub const RELAY_BACKOFF_MIN: Duration = Duration::from_millis(100);
pub const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The events stream's duplicate window: a republish within it is dropped.
pub const EVENTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// How often the relay checks that its streams exist and were not emptied
/// (a deleted stream is recreated, an emptied one refilled from the log).
pub const RELAY_STREAM_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How many messages from the end of the events stream a start looks
/// through for the last of this log's events, past foreign ones.
pub const RESUME_SCAN_MESSAGES: u64 = 1_000;
/// How many times in a row JetStream may refuse one event with a server
/// error not known to be about the server's resources before the event is
/// reported unpublishable and skipped (a relay never stalls at one
/// position). Over-`max_payload` and over-`max_msg_size` events are
/// skipped at once; unreachable or full servers are retried without end.
pub const RELAY_EVENT_ATTEMPTS_MAX: u32 = 5;

/// Default checkpoint interval in events: a signed checkpoint at least
/// every this many relayed events (issue 10; `--checkpoint-every-events`).
pub const CHECKPOINT_EVERY_EVENTS: u64 = 1_000;
/// Default checkpoint interval in time: a signed checkpoint of the last
/// relayed event at least this often when anything new was relayed
/// (`--checkpoint-every-seconds`).
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

const META_PUBLISHED_POSITION: &str = "published_position";

/// When and with what the relay signs checkpoints.
pub struct CheckpointPolicy {
    /// The Ed25519 key that signs (the data dir's, or `--signing-key`).
    pub signer: cpor_log::checkpoint::CheckpointSigner,
    /// At least every this many events ([`CHECKPOINT_EVERY_EVENTS`]).
    pub every_events: u64,
    /// At least this often when something new was relayed ([`CHECKPOINT_EVERY`]).
    pub every: Duration,
}

/// The checkpoints stream's name: `{PREFIX}_CHECKPOINTS`.
pub fn checkpoints_stream_name(prefix: &str) -> String {
    format!("{}_CHECKPOINTS", prefix.to_uppercase())
}

/// The subject checkpoints are published on: `{prefix}.checkpoint`.
pub fn checkpoint_subject(prefix: &str) -> String {
    format!("{prefix}.checkpoint")
}

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
    js.get_or_create_stream(stream::Config {
        name: checkpoints_stream_name(prefix),
        description: Some("CPOR signed checkpoints of the log (docs/audit.md)".into()),
        subjects: vec![checkpoint_subject(prefix)],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await?;
    Ok((events, status))
}

/// What [`repair_streams`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamRepair {
    /// Messages the deleted events stream held.
    pub events_dropped: u64,
    /// Messages purged from the status stream.
    pub statuses_purged: u64,
}

/// The operator's repair of a stream copy someone else wrote into (issue 9
/// item 8, issue 10): deletes `{PREFIX}_EVENTS` and purges
/// `{PREFIX}_STATUS`. The running relay finds the events stream gone at
/// its next publish or check ([`RELAY_STREAM_CHECK_EVERY`]), recreates it
/// and republishes the whole log, then every claim's status; a stopped
/// service does the same at its next start. Deleting (not purging) the
/// events stream keeps anything from being published into it before the
/// refill starts at position 1; its consumers go with it.
///
/// Errors: NATS errors (JetStream unreachable, no permission).
pub async fn repair_streams(
    nats: &crate::Nats,
    prefix: &str,
) -> Result<StreamRepair, async_nats::Error> {
    let js = nats.jetstream();
    let (events_name, status_name) = stream_names(prefix);
    let mut repair = StreamRepair::default();
    if let Ok(mut events) = js.get_stream(&events_name).await {
        repair.events_dropped = events.info().await?.state.messages;
        js.delete_stream(&events_name).await?;
    }
    if let Ok(status) = js.get_stream(&status_name).await {
        repair.statuses_purged = status.purge().await?.purged;
    }
    Ok(repair)
}

/// The relay: copies the log, after the fact, into JetStream (events, claim
/// statuses, signed checkpoints). It owns nothing the service needs to
/// answer requests: if it stalls, commands still commit and it catches up.
pub struct Relay {
    /// The JetStream context it publishes through (with `Nats-Msg-Id`, so
    /// a republish after a crash is deduplicated by the stream).
    pub js: jetstream::Context,
    /// Reads the stored events (their exact bytes) and claim views to
    /// publish; the relay never writes the log but for its published
    /// position in meta.
    pub reader: LogReader,
    /// Where it reports `published_position`, `relayed_position` and the
    /// trail counters that `qry.health` shows.
    pub positions: Arc<Positions>,
    /// The durable head announced by the flusher: the relay reads no event
    /// past it (nothing is published before the log flush).
    pub committed: watch::Receiver<u64>,
    /// The subject prefix: events go to `{prefix}.evt.…`, statuses to
    /// `{prefix}.status.claim.…`, streams are `{PREFIX}_EVENTS` and so on.
    pub prefix: String,
    /// Signed checkpoints; `None` signs none.
    pub checkpoints: Option<CheckpointPolicy>,
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
    /// Issue 11 case 3: the stream goes on where the log ends.
    #[error("the events stream {stream} holds position {position}, which chains onto this log's last event (position {log_position}) and is covered by a checkpoint this service signed, but the log does not have it: the log lost acknowledged events or the data dir was restored from an older copy; refusing to serve so history is not split. To serve from this log as it is, stop here and run `cpor repair-stream --prefix {prefix}` (the stream is rebuilt from the log; subscribers must drop what they saw after position {log_position}), then start again")]
    LogBehindStream {
        stream: String,
        prefix: String,
        position: u64,
        log_position: u64,
    },
    #[error(transparent)]
    Nats(#[from] async_nats::Error),
}

impl Relay {
    /// Runs until `stop` is set and everything durable is published,
    /// starting after `published` (see [`Relay::resume_position`]).
    ///
    /// Never stalls at one position: an event JetStream refuses for good
    /// (over `max_payload`, a permanent API error, or the same server error
    /// [`RELAY_EVENT_ATTEMPTS_MAX`] times) is reported, counted in health
    /// and skipped; a forged copy of an event in the stream raises an alarm
    /// and publishing goes on. Only an unreachable JetStream is retried
    /// without end. Every [`RELAY_STREAM_CHECK_EVERY`] it checks both
    /// streams: a deleted one is recreated, an emptied one refilled.
    pub async fn run(mut self, published: u64, mut stop: watch::Receiver<bool>) {
        let mut backoff = RELAY_BACKOFF_MIN;
        let mut trail = Trail::default();
        let mut relayed = published;
        // The events up to `published` are in the stream, but a crash may
        // have come between their acks and their claims' statuses (the
        // stored position advances only after both): publish those again.
        let stored = self.stored_position();
        if stored < relayed {
            tracing::info!(
                stored,
                published = relayed,
                "republishing the statuses of the claims of the last published events"
            );
            while let Err(error) = self.republish_statuses(stored, relayed).await {
                tracing::warn!(%error, ?backoff, "republishing claim statuses failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RELAY_BACKOFF_MAX);
            }
            self.store_position(relayed);
        }
        backoff = RELAY_BACKOFF_MIN;
        self.advance(&trail, relayed);
        let mut watch = StreamWatch::default();
        let mut next_check = tokio::time::Instant::now();
        let mut signed = Signed {
            position: self
                .reader
                .checkpoints()
                .filter_map(Result::ok)
                .last()
                .map_or(0, |c| c.position),
            at: tokio::time::Instant::now(),
        };
        loop {
            self.maybe_checkpoint(&mut signed, relayed, false).await;
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + RELAY_STREAM_CHECK_EVERY;
                match self.check_streams(&mut watch, relayed).await {
                    Ok(Some(refill_from)) => {
                        relayed = refill_from;
                        trail = Trail::default();
                        self.advance(&trail, relayed);
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "cannot check the JetStream streams"),
                }
            }
            let durable = *self.committed.borrow_and_update();
            if relayed >= durable {
                if *stop.borrow() {
                    break;
                }
                tokio::select! {
                    _ = self.committed.changed() => {}
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep_until(next_check) => {}
                }
                continue;
            }
            match self.publish_window(relayed, durable, &mut trail).await {
                Ok(last) => {
                    relayed = last;
                    backoff = RELAY_BACKOFF_MIN;
                    self.advance(&trail, relayed);
                    self.store_position(relayed);
                    self.maybe_checkpoint(&mut signed, relayed, false).await;
                }
                Err(WindowError::StreamMissing) => {
                    tracing::error!(
                        "a JetStream stream of the service is gone: recreating it and refilling it from the log"
                    );
                    next_check = tokio::time::Instant::now();
                }
                Err(WindowError::Nats(error)) => {
                    ::metrics::counter!(crate::metrics::RELAY_ERRORS_TOTAL).increment(1);
                    tracing::warn!(%error, position = relayed + 1, ?backoff, "publishing to JetStream failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RELAY_BACKOFF_MAX);
                }
            }
        }
        self.maybe_checkpoint(&mut signed, relayed, true).await;
        tracing::info!(published = relayed, "relay drained");
    }

    /// Signs, stores and publishes a checkpoint of `relayed` when the
    /// policy says it is time (or `now`, at shutdown), if it is past the
    /// last one. A failed publish is logged: the checkpoint is stored and
    /// the next one is published anyway.
    async fn maybe_checkpoint(&self, signed: &mut Signed, relayed: u64, now: bool) {
        let Some(policy) = &self.checkpoints else {
            return;
        };
        if relayed <= signed.position {
            return;
        }
        let due = now
            || relayed - signed.position >= policy.every_events
            || signed.at.elapsed() >= policy.every;
        if !due {
            return;
        }
        let hash = match self.reader.event_bytes(relayed) {
            Ok(Some(bytes)) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string)),
            _ => None,
        };
        let Some(hash) = hash else {
            tracing::warn!(position = relayed, "cannot read the event to checkpoint");
            return;
        };
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let checkpoint = policy.signer.sign(relayed, &hash, &time);
        if let Err(error) = self.reader.put_checkpoint(&checkpoint) {
            tracing::warn!(%error, "cannot store a checkpoint");
            return;
        }
        signed.position = relayed;
        signed.at = tokio::time::Instant::now();
        let publish = jetstream::message::PublishMessage::build()
            .payload(checkpoint.to_bytes().into())
            .message_id(format!("checkpoint-{relayed}"));
        let sent = match self
            .js
            .send_publish(checkpoint_subject(&self.prefix), publish)
            .await
        {
            Ok(ack) => ack.await.map(|_| ()).map_err(async_nats::Error::from),
            Err(error) => Err(error.into()),
        };
        match sent {
            Ok(()) => tracing::debug!(position = relayed, "signed checkpoint published"),
            Err(error) => {
                tracing::warn!(%error, position = relayed, "cannot publish a signed checkpoint (it is stored)")
            }
        }
    }

    /// Sets the health positions: `relayed` is how far the relay went,
    /// `published` stops before the first forged or unpublishable event.
    fn advance(&self, trail: &Trail, relayed: u64) {
        let positions = &self.positions;
        positions.relayed.store(relayed, Ordering::SeqCst);
        let published = trail
            .first_bad()
            .map_or(relayed, |bad| relayed.min(bad - 1));
        positions.published.store(published, Ordering::SeqCst);
        positions
            .forged_events
            .store(trail.forged.len() as u64, Ordering::SeqCst);
        positions
            .first_forged_position
            .store(trail.forged.first().copied().unwrap_or(0), Ordering::SeqCst);
        positions
            .unpublishable_events
            .store(trail.unpublishable.len() as u64, Ordering::SeqCst);
        positions.first_unpublishable_position.store(
            trail.unpublishable.first().copied().unwrap_or(0),
            Ordering::SeqCst,
        );
    }

    fn store_position(&self, relayed: u64) {
        if let Err(error) = self.reader.put_meta_u64(META_PUBLISHED_POSITION, relayed) {
            tracing::warn!(%error, "cannot store the published position");
        }
    }

    /// Checks that both streams exist and were not emptied behind the
    /// relay's back. A deleted stream is recreated; an events stream that
    /// lost every message is refilled from the log (returns `Some(0)`: the
    /// position to publish after); a status stream that holds fewer
    /// messages than before gets every claim's status again.
    async fn check_streams(
        &self,
        watch: &mut StreamWatch,
        relayed: u64,
    ) -> Result<Option<u64>, async_nats::Error> {
        let (events_name, status_name) = stream_names(&self.prefix);
        let mut refill = None;
        let events_messages = match self.stream_messages(&events_name).await? {
            Some(messages) => messages,
            None => {
                tracing::error!(stream = %events_name, "the events stream is gone: recreating it and republishing the whole log");
                ensure_streams(&self.js, &self.prefix).await?;
                refill = Some(0);
                0
            }
        };
        if refill.is_none() && events_messages == 0 && relayed > 0 {
            tracing::error!(stream = %events_name, relayed, "the events stream was emptied (purged): republishing the whole log");
            refill = Some(0);
        } else if events_messages < watch.events_messages {
            tracing::error!(stream = %events_name, before = watch.events_messages, now = events_messages,
                "messages were deleted from the events stream: it is no longer a full copy of the log; `cpor stream repair` rebuilds it");
        }
        watch.events_messages = if refill.is_some() { 0 } else { events_messages };
        let status_messages = match self.stream_messages(&status_name).await? {
            Some(messages) => Some(messages),
            None => {
                tracing::error!(stream = %status_name, "the status stream is gone: recreating it");
                ensure_streams(&self.js, &self.prefix).await?;
                None
            }
        };
        let status_lost = match status_messages {
            None => true,
            Some(messages) => {
                messages < watch.status_messages
                    || (messages == 0 && relayed > watch.empty_status_refilled_at)
            }
        };
        if status_lost && refill.is_none() && relayed > 0 {
            tracing::warn!(stream = %status_name, "the status stream lacks messages (purged, deleted or new): republishing every claim's status from the log");
            self.republish_statuses(0, relayed).await?;
            watch.empty_status_refilled_at = relayed;
        }
        watch.status_messages = self
            .stream_messages(&status_name)
            .await?
            .unwrap_or_default();
        Ok(refill)
    }

    /// A stream's message count, `None` when the stream does not exist.
    async fn stream_messages(&self, name: &str) -> Result<Option<u64>, async_nats::Error> {
        match self.js.get_stream(name).await {
            Ok(mut stream) => Ok(Some(stream.info().await?.state.messages)),
            Err(error) => match error.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(api)
                    if api.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(None)
                }
                _ => Err(error.into()),
            },
        }
    }

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
        let log_error = |e: cpor_log::LogError| RelayError::Nats(e.into());
        let nats = |e: async_nats::Error| RelayError::Nats(e);
        let stored = self.stored_position();
        let log_position = self.reader.last_position().map_err(log_error)?;
        let (events_name, _) = stream_names(&self.prefix);
        let mut stream = self
            .js
            .get_stream(&events_name)
            .await
            .map_err(|e| nats(e.into()))?;
        let state = stream
            .info()
            .await
            .map_err(|e| nats(e.into()))?
            .state
            .clone();
        if state.messages == 0 {
            if stored > 0 {
                tracing::warn!(stored, "the events stream is empty but {stored} events were published before: republishing the whole log");
            }
            return Ok(0);
        }
        let first_sequence = state.first_sequence.max(1);
        let mut sequence = state.last_sequence;
        let mut scanned = 0;
        while sequence >= first_sequence && scanned < RESUME_SCAN_MESSAGES {
            scanned += 1;
            let Ok(message) = stream.get_raw_message(sequence).await else {
                sequence -= 1; // deleted
                continue;
            };
            let ours = self.is_ours(&message.payload).map_err(log_error)?;
            // The log's own lost continuation, proven by this service's
            // signature: an outsider can forge an event that chains (it
            // is then skipped as foreign below), not a checkpoint.
            let lost_continuation = ours.is_none()
                && self
                    .continues_log(&message.payload, log_position)
                    .map_err(log_error)?
                && self.signed_past(log_position).await;
            match ours {
                Some(position) => {
                    if position < stored {
                        tracing::warn!(
                            stream_position = position,
                            stored,
                            "the events stream lost acknowledged messages (JetStream not synced to disk?): republishing them"
                        );
                    }
                    return Ok(position);
                }
                None if lost_continuation => {
                    return Err(RelayError::LogBehindStream {
                        stream: events_name,
                        prefix: self.prefix.clone(),
                        position: log_position + 1,
                        log_position,
                    });
                }
                None => {
                    self.positions
                        .foreign_messages
                        .fetch_add(1, Ordering::SeqCst);
                    tracing::error!(
                        stream = %events_name,
                        sequence,
                        bytes = message.payload.len(),
                        start = %String::from_utf8_lossy(&message.payload[..message.payload.len().min(80)]),
                        "the events stream holds a message that is not this log's event (written by someone else): skipped; `cpor stream repair` removes it"
                    );
                }
            }
            sequence -= 1;
        }
        // No event of this log near the end: whose stream is it?
        if let Ok(first) = stream.get_raw_message(first_sequence).await {
            if let Ok(head) = serde_json::from_slice::<Value>(&first.payload) {
                let position = head.get("position").and_then(Value::as_u64);
                let stream_hash = head.get("hash").and_then(Value::as_str);
                if let (Some(position), Some(stream_hash)) = (position, stream_hash) {
                    if self.is_ours(&first.payload).map_err(log_error)?.is_none() {
                        if position > log_position {
                            return Err(RelayError::StreamAhead {
                                stream: events_name,
                                stream_position: state.last_sequence,
                                log_position,
                            });
                        }
                        let log_hash = self
                            .reader
                            .event_bytes(position)
                            .map_err(log_error)?
                            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                            .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string))
                            .unwrap_or_else(|| "nothing".into());
                        return Err(RelayError::ForeignStream {
                            stream: events_name,
                            position,
                            stream_hash: stream_hash.to_string(),
                            log_hash,
                        });
                    }
                }
            }
        }
        let resume = stored.min(log_position);
        tracing::warn!(
            resume,
            "no event of this log among the last {RESUME_SCAN_MESSAGES} messages of the events stream: resuming after the stored published position"
        );
        Ok(resume)
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
        let previous = match self.reader.event_bytes(log_position)? {
            Some(bytes) => serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_default(),
            None => String::new(),
        };
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

    /// Publishes events after `from` (at most a window, never past
    /// `durable`), checks every ack, then publishes the status of the
    /// claims they touched. Returns the last position handled.
    async fn publish_window(
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
            if view.version > published_version {
                continue;
            }
            let subject = status_subject(&self.prefix, &view.partner_id, &claim_id);
            // Through a `Value`: members in key order, the bytes the status
            // stream has always carried (and `qry.claim.get` answers).
            let payload = serde_json::to_vec(&serde_json::to_value(&view)?)?;
            status_acks.push(self.js.publish(subject, payload.into()).await?);
        }
        for ack in status_acks {
            ack.await?;
        }
        Ok(())
    }
}

/// What the relay found wrong with the stream copy of events, kept while it
/// runs (the alarms are in the log output and in health).
#[derive(Default)]
struct Trail {
    /// Positions whose id someone else's message holds in the stream.
    forged: BTreeSet<u64>,
    /// Positions JetStream refused for good.
    unpublishable: BTreeSet<u64>,
    /// The position of the last failed attempt, and how many in a row.
    attempts: Option<(u64, u32)>,
}

impl Trail {
    fn first_bad(&self) -> Option<u64> {
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

/// The last signed checkpoint.
struct Signed {
    /// The relayed position it covers (the next one is due
    /// [`CheckpointPolicy::every_events`] later).
    position: u64,
    /// When it was signed (the next one is due [`CheckpointPolicy::every`]
    /// later, if anything new was relayed).
    at: tokio::time::Instant,
}

/// Message counts of the streams at the last check.
#[derive(Default)]
struct StreamWatch {
    /// Messages in the events stream: fewer than before means it was
    /// purged (or deleted and recreated) and must be refilled from the log.
    events_messages: u64,
    /// The same for the status stream.
    status_messages: u64,
    /// The relayed position when the status stream was last refilled
    /// while empty (a log without claims has no statuses).
    empty_status_refilled_at: u64,
}

/// Why a window was not published.
#[derive(Debug)]
enum WindowError {
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
type ClaimVersions = std::collections::BTreeMap<String, u64>;

/// The few CloudEvent fields the relay needs to route an event, borrowed.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    type_name: &'a str,
    subject: &'a str,
    streamversion: u64,
    /// The CloudEvents distributed-tracing extension, repeated as the
    /// message's `traceparent` header for NATS-aware tracing.
    #[serde(default)]
    traceparent: Option<&'a str>,
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
