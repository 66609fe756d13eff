//! Signed checkpoints (issue 10, docs/audit.md): when the relay signs one
//! and how it is published.

use async_nats::jetstream;

use super::{checkpoint_subject, Relay};

impl Relay {
    /// Signs, stores and publishes a checkpoint of `relayed` when the
    /// policy says it is time (or `now`, at shutdown), if it is past the
    /// last one. A failed publish is logged: the checkpoint is stored and
    /// the next one is published anyway.
    pub(super) async fn maybe_checkpoint(&self, signed: &mut Signed, relayed: u64, now: bool) {
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
        let Some(hash) = self.stored_hash(relayed).ok().flatten() else {
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
}

/// The last signed checkpoint.
pub(super) struct Signed {
    /// The relayed position it covers (the next one is due
    /// [`CheckpointPolicy::every_events`](super::CheckpointPolicy::every_events) later).
    position: u64,
    /// When it was signed (the next one is due [`CheckpointPolicy::every`](super::CheckpointPolicy::every)
    /// later, if anything new was relayed).
    at: tokio::time::Instant,
}

impl Signed {
    /// The last checkpoint the log stores (position 0 if none), taken as
    /// signed now: the interval in time starts at the relay's start.
    pub(super) fn last_stored(reader: &cpor_log::LogReader) -> Signed {
        Signed {
            position: reader
                .checkpoints()
                .filter_map(Result::ok)
                .last()
                .map_or(0, |c| c.position),
            at: tokio::time::Instant::now(),
        }
    }
}
