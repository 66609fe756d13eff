//! The streams the relay writes: creating them, checking on them while it
//! runs, and the operator's repair.

use async_nats::jetstream::{self, stream};

use super::{
    checkpoint_subject, checkpoints_stream_name, status_stream_subjects, stream_names, Relay,
    EVENTS_DUPLICATE_WINDOW,
};

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
/// its next publish or check ([`RELAY_STREAM_CHECK_EVERY`](super::RELAY_STREAM_CHECK_EVERY)), recreates it
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

impl Relay {
    /// Checks that both streams exist and were not emptied behind the
    /// relay's back. A deleted stream is recreated; an events stream that
    /// lost every message is refilled from the log (returns `Some(0)`: the
    /// position to publish after); a status stream that holds fewer
    /// messages than before gets every claim's status again.
    pub(super) async fn check_streams(
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
}

/// Message counts of the streams at the last check.
#[derive(Default)]
pub(super) struct StreamWatch {
    /// Messages in the events stream: fewer than before means it was
    /// purged (or deleted and recreated) and must be refilled from the log.
    events_messages: u64,
    /// The same for the status stream.
    status_messages: u64,
    /// The relayed position when the status stream was last refilled
    /// while empty (a log without claims has no statuses).
    empty_status_refilled_at: u64,
}
