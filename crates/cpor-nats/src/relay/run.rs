//! The relay's loop: when to publish a window, wait, retry, check the
//! streams and sign a checkpoint; and the positions it reports and stores.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::checkpoint::Signed;
use super::streams::StreamWatch;
use super::window::{Trail, WindowError};
use super::{
    Relay, META_PUBLISHED_POSITION, RELAY_BACKOFF_MAX, RELAY_BACKOFF_MIN, RELAY_STREAM_CHECK_EVERY,
};

impl Relay {
    /// Runs until `stop` is set and everything durable is published,
    /// starting after `published` (see [`Relay::resume_position`]).
    ///
    /// Never stalls at one position: an event JetStream refuses for good
    /// (over `max_payload`, a permanent API error, or the same server error
    /// [`RELAY_EVENT_ATTEMPTS_MAX`](super::RELAY_EVENT_ATTEMPTS_MAX) times)
    /// is reported, counted in health and skipped; a forged copy of an
    /// event in the stream raises an alarm and publishing goes on. Only an
    /// unreachable JetStream is retried without end. Every
    /// [`RELAY_STREAM_CHECK_EVERY`] it checks both streams: a deleted one is
    /// recreated, an emptied one refilled.
    pub async fn run(mut self, published: u64, mut stop: watch::Receiver<bool>) {
        self.complete_statuses(published).await;
        let mut run = Progress {
            relayed: published,
            trail: Trail::default(),
            backoff: RELAY_BACKOFF_MIN,
            watch: StreamWatch::default(),
            next_check: Instant::now(),
            signed: Signed::last_stored(&self.reader),
        };
        self.advance(&run.trail, run.relayed);
        loop {
            self.maybe_checkpoint(&mut run.signed, run.relayed, false)
                .await;
            if Instant::now() >= run.next_check {
                self.scheduled_check(&mut run).await;
            }
            let durable = *self.committed.borrow_and_update();
            if run.relayed >= durable {
                if *stop.borrow() {
                    break;
                }
                self.wait_for_work(&mut stop, run.next_check).await;
                continue;
            }
            let window = self
                .publish_window(run.relayed, durable, &mut run.trail)
                .await;
            self.after_window(&mut run, window).await;
        }
        self.maybe_checkpoint(&mut run.signed, run.relayed, true)
            .await;
        tracing::info!(published = run.relayed, "relay drained");
    }

    /// The events up to `published` are in the stream, but a crash may
    /// have come between their acks and their claims' statuses (the stored
    /// position advances only after both): publishes those statuses again,
    /// retrying until JetStream takes them, then stores `published`.
    async fn complete_statuses(&self, published: u64) {
        let stored = self.stored_position();
        if stored >= published {
            return;
        }
        tracing::info!(
            stored,
            published,
            "republishing the statuses of the claims of the last published events"
        );
        let mut backoff = RELAY_BACKOFF_MIN;
        while let Err(error) = self.republish_statuses(stored, published).await {
            tracing::warn!(%error, ?backoff, "republishing claim statuses failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = next_backoff(backoff);
        }
        self.store_position(published);
    }

    /// The check every [`RELAY_STREAM_CHECK_EVERY`]: schedules the next
    /// one, and if the events stream must be refilled from the log, starts
    /// over from that position with a clean trail.
    async fn scheduled_check(&self, run: &mut Progress) {
        run.next_check = Instant::now() + RELAY_STREAM_CHECK_EVERY;
        match self.check_streams(&mut run.watch, run.relayed).await {
            Ok(Some(refill_from)) => {
                run.relayed = refill_from;
                run.trail = Trail::default();
                self.advance(&run.trail, run.relayed);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "cannot check the JetStream streams"),
        }
    }

    /// Sleeps until the flusher announces a new durable head, `stop`
    /// changes, or the next stream check is due.
    async fn wait_for_work(&mut self, stop: &mut watch::Receiver<bool>, next_check: Instant) {
        tokio::select! {
            _ = self.committed.changed() => {}
            _ = stop.changed() => {}
            _ = tokio::time::sleep_until(next_check) => {}
        }
    }

    /// Acts on a window's outcome: a published window advances and stores
    /// the position (and may sign); a missing stream makes the next stream
    /// check due now; any other failure waits out the backoff and doubles it.
    async fn after_window(&self, run: &mut Progress, window: Result<u64, WindowError>) {
        match window {
            Ok(last) => {
                run.relayed = last;
                run.backoff = RELAY_BACKOFF_MIN;
                self.advance(&run.trail, run.relayed);
                self.store_position(run.relayed);
                self.maybe_checkpoint(&mut run.signed, run.relayed, false)
                    .await;
            }
            Err(WindowError::StreamMissing) => {
                tracing::error!(
                    "a JetStream stream of the service is gone: recreating it and refilling it from the log"
                );
                run.next_check = Instant::now();
            }
            Err(WindowError::Nats(error)) => {
                ::metrics::counter!(crate::metrics::RELAY_ERRORS_TOTAL).increment(1);
                tracing::warn!(%error, position = run.relayed + 1, backoff = ?run.backoff, "publishing to JetStream failed; retrying");
                tokio::time::sleep(run.backoff).await;
                run.backoff = next_backoff(run.backoff);
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

    /// Stores `relayed` as the published position (meta), for the next
    /// start: a failure is logged (the stream, not this, decides where a
    /// start resumes; see [`Relay::resume_position`]).
    fn store_position(&self, relayed: u64) {
        if let Err(error) = self.reader.put_meta_u64(META_PUBLISHED_POSITION, relayed) {
            tracing::warn!(%error, "cannot store the published position");
        }
    }

    /// The published position stored after the last complete window.
    pub(super) fn stored_position(&self) -> u64 {
        self.reader
            .get_meta_u64(META_PUBLISHED_POSITION)
            .ok()
            .flatten()
            .unwrap_or(0)
    }
}

/// What the run loop carries from one turn to the next.
struct Progress {
    /// The last position handled: published, or given up on as forged or
    /// unpublishable (the trail says which). The next window starts after it.
    relayed: u64,
    /// What went wrong with the stream copy since the last refill: health's
    /// published position stops before its first bad position.
    trail: Trail,
    /// The wait before retrying a failed window: doubles from
    /// [`RELAY_BACKOFF_MIN`] up to [`RELAY_BACKOFF_MAX`], back to the
    /// minimum after a window is published.
    backoff: Duration,
    /// The streams' message counts at the last check, to notice a purge.
    watch: StreamWatch,
    /// When the streams are checked next (made due at once when a window
    /// finds a stream gone).
    next_check: Instant,
    /// The last signed checkpoint, to tell when the next one is due.
    signed: Signed,
}

/// The backoff after `backoff`: doubled, at most [`RELAY_BACKOFF_MAX`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(RELAY_BACKOFF_MAX)
}
