//! Surviving a failed write (a full disk: `ENOSPC`; any IO error) without
//! leaving the process (issue 11 case 3).
//!
//! After a failed write nothing in memory can be trusted: the OS may have
//! dropped the dirty pages of a failed sync ("fsyncgate"), and sled 0.34
//! keeps the first IO error of its background writes (its "global error")
//! and returns it from every later operation until the `Db` is dropped and
//! opened again — it never recovers in place. So the writer:
//!
//! 1. answers `UNAVAILABLE` to every batch of the failed store *epoch* that
//!    is not yet durable (the flusher does, for the batches already handed
//!    to it; none is acknowledged after the failure), and to every request
//!    while the store is closed — no caller waits for a timeout;
//! 2. closes the store ([`cpor_log::Log::close`]: every reader sees
//!    [`cpor_log::LogError::Closed`], queries answer `UNAVAILABLE`, the relay
//!    retries);
//! 3. every [`REOPEN_RETRY_EVERY`], once the disk has the free space the
//!    writer needs, reopens the data dir and runs the start-up checks
//!    ([`cpor_log::Log::reopen`]: exactly what a restart runs), folds the
//!    state afresh, and starts a new epoch.
//!
//! What a reopen finds is what a restart after `kill -9` would find. A batch
//! answered `UNAVAILABLE` is either gone (cut as an unacknowledged tail by
//! the start-up checks) or, if sled made it durable as a whole before the
//! failure, kept: then it is in the log like any accepted batch, published,
//! and a retry with the same command id answers with its first reply
//! (`duplicate: true`). That is what `UNAVAILABLE` promises (contract §3:
//! "retry later with the same command_id"): the outcome is unknown, a retry
//! makes it known, and nothing is ever applied twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cpor_domain::error::{ErrorCode, Rejection};

use crate::{Fatal, Positions, Writer};

/// How often a writer with a closed store tries to reopen the data dir.
pub(crate) const REOPEN_RETRY_EVERY: Duration = Duration::from_secs(1);

/// The refusal of requests whose write failed: they may or may not be kept.
pub(crate) fn write_failed(error: &dyn std::fmt::Display) -> Rejection {
    Rejection::with_message(
        ErrorCode::Unavailable,
        format!(
            "the service could not write to its disk ({error}); the command may or may not \
             have been recorded: retry later with the same command id (a recorded command \
             answers as a duplicate)"
        ),
    )
}

/// The writer's view of its store: which epoch it writes in, and whether
/// that epoch's store failed and must be reopened.
pub(crate) struct StoreHealth {
    /// The epoch of the open store: batches carry it to the flusher.
    epoch: u64,
    /// The newest epoch with a failed write (0: none), set by the flusher
    /// (a failed flush) or the writer (a failed apply or read).
    failed_epoch: Arc<AtomicU64>,
    /// The durable position (the last one acknowledged), which a reopen
    /// must find again.
    positions: Arc<Positions>,
    /// Set while the store is closed: why, and when to try reopening.
    closed: Option<Closed>,
}

/// A closed store's reason and next reopen attempt.
struct Closed {
    /// The last reopen error, for the refusal's message.
    reason: String,
    next_attempt: Instant,
}

impl StoreHealth {
    pub(crate) fn new(failed_epoch: Arc<AtomicU64>, positions: Arc<Positions>) -> StoreHealth {
        StoreHealth {
            epoch: 1,
            failed_epoch,
            positions,
            closed: None,
        }
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Marks the current epoch failed: nothing of it not yet durable is
    /// acknowledged, and the store is reopened before the next batch.
    pub(crate) fn failed(&self) {
        self.failed_epoch.fetch_max(self.epoch, Ordering::SeqCst);
    }

    fn has_failed(&self) -> bool {
        self.failed_epoch.load(Ordering::SeqCst) >= self.epoch
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.is_some() || self.has_failed()
    }

    /// The refusal owed while the store is closed.
    pub(crate) fn closed_refusal(&self) -> Rejection {
        let reason = self
            .closed
            .as_ref()
            .map_or("a write failed", |c| c.reason.as_str());
        Rejection::with_message(
            ErrorCode::Unavailable,
            format!(
                "the service is reopening its data dir after a failed write ({reason}; is its \
                 disk full?); nothing is written until then: retry later with the same command id"
            ),
        )
    }
}

impl Writer {
    /// Whether the store is open for the next batch: after a failure,
    /// closes it and tries to reopen it (at most every
    /// [`REOPEN_RETRY_EVERY`], once the disk has room again). `Err` when
    /// the reopened data dir lost acknowledged writes (the store is then
    /// closed for good).
    pub(crate) async fn store_is_open(&mut self) -> Result<bool, Fatal> {
        if !self.store.is_closed() {
            return Ok(true);
        }
        if self.store.closed.is_none() {
            tracing::error!(
                epoch = self.store.epoch,
                "a write failed: closing the data dir's store; answering UNAVAILABLE until it is reopened"
            );
            self.log.close();
            self.store.closed = Some(Closed {
                reason: "a write failed".into(),
                next_attempt: Instant::now(),
            });
        }
        let closed = self.store.closed.as_mut().expect("closed above");
        if Instant::now() < closed.next_attempt {
            return Ok(false);
        }
        closed.next_attempt = Instant::now() + REOPEN_RETRY_EVERY;
        let reason = match self.disk_full() {
            Some(refusal) => refusal.message,
            None => match self.log.reopen() {
                Ok(state) => {
                    self.reopened(state).await?;
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot reopen the data dir yet; retrying");
                    error.to_string()
                }
            },
        };
        if let Some(closed) = self.store.closed.as_mut() {
            closed.reason = reason;
        }
        Ok(false)
    }

    /// Takes the state a reopen folded, starts a new epoch and announces
    /// the head the start-up checks kept (durable: read back from disk).
    /// A head before the durable position is [`Fatal`]: the store is
    /// closed again (queries answer `UNAVAILABLE`) and the writer stops.
    async fn reopened(&mut self, state: cpor_domain::state::State) -> Result<(), Fatal> {
        let head = self.log.head().position;
        let acknowledged = self.store.positions.log_position();
        if head < acknowledged {
            // sled lost flushed writes: serving on would contradict what
            // was acknowledged and published. A restart refuses too and
            // names the repair (`cpor verify --data-dir` says which).
            self.log.close();
            return Err(Fatal::LogBehindAcknowledged { head, acknowledged });
        }
        self.state = state;
        self.skipped_deadlines.clear();
        self.store.epoch = self.store.failed_epoch.load(Ordering::SeqCst) + 1;
        self.store.closed = None;
        tracing::warn!(
            head,
            acknowledged,
            epoch = self.store.epoch,
            "the data dir is reopened: writing again"
        );
        // Batches kept past the acknowledged position are durable and in
        // the log: the flusher announces them to the relay.
        self.hand_off(head, None, Vec::new()).await
    }
}
