//! The projector: applies each batch's derived trees (stream index,
//! projections, meta values) off the writer's thread, then hands the batch
//! to the flusher.
//!
//! The writer's synchronous write is the `log` batch alone (events,
//! command records, head: [`cpor_log::Log::commit_log`]); the batch's
//! [`Projection`] comes here, on a channel bounded by
//! [`FLUSH_QUEUE_MAX`](crate::FLUSH_QUEUE_MAX), while the writer decides
//! the next batch. Three stages, one order:
//!
//! ```text
//! writer ──log batch──► projector ──derived batches──► flusher ──flush──► replies
//!  (cpor-writer)         (cpor-projector)               (tokio task)       durable position
//! ```
//!
//! Every batch, written or not (refusals and duplicates rest on earlier
//! batches), passes through both stages in commit order, so the flusher
//! flushes a batch only after its projection is applied: a reply, and the
//! durable position the relay and `qry.health` read, imply that the
//! batch's events, its projections and its meta values are on disk, and a
//! query sent after the reply sees the command (read-your-writes; queries
//! read sled directly). A stop between the log batch and its projection is
//! what the derived trees' markers are for: start-up rewrites them.
//!
//! A projection that cannot be applied fails its store epoch like a failed
//! write or flush (`recovery`): the flusher answers the epoch's batches
//! `UNAVAILABLE` and the writer reopens the data dir. Batches of a failed
//! epoch are not applied, and a [`Projection`] only ever writes to the
//! store its log batch went to, never to one reopened since.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use cpor_log::Projection;

use crate::{metrics, AppliedBatch, Pending};

/// The name of the projector's thread.
pub const PROJECTOR_THREAD: &str = "cpor-projector";

/// A batch on its way from the writer to the flusher.
pub(crate) struct Staged {
    /// The store epoch it was written in (see `recovery::StoreHealth`).
    pub(crate) epoch: u64,
    /// The log's head after the batch.
    pub(crate) position: u64,
    /// Its derived trees' share; `None` when the batch wrote nothing.
    pub(crate) projection: Option<Projection>,
    /// The replies held back until the batch is projected and durable.
    pub(crate) pending: Vec<Pending>,
}

/// Starts the projector's thread: it ends when the writer drops its
/// sender, after handing every batch on to the flusher.
pub(crate) fn spawn(
    staged: mpsc::Receiver<Staged>,
    flushes: mpsc::Sender<AppliedBatch>,
    failed_epoch: Arc<AtomicU64>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(PROJECTOR_THREAD.to_string())
        .spawn(move || run(staged, flushes, failed_epoch))
}

fn run(
    mut staged: mpsc::Receiver<Staged>,
    flushes: mpsc::Sender<AppliedBatch>,
    failed_epoch: Arc<AtomicU64>,
) {
    while let Some(batch) = staged.blocking_recv() {
        let Staged {
            epoch,
            position,
            projection,
            pending,
        } = batch;
        if let Some(projection) = projection {
            // A batch of a failed epoch is refused by the flusher; its
            // projection is left to the reopen's start-up checks.
            if epoch > failed_epoch.load(Ordering::SeqCst) {
                apply(projection, epoch, &failed_epoch);
            }
        }
        let applied = AppliedBatch {
            epoch,
            position,
            pending,
        };
        if flushes.blocking_send(applied).is_err() {
            break; // the flusher is gone: the runtime is shutting down
        }
    }
}

/// Applies one projection; a failure fails its epoch.
fn apply(projection: Projection, epoch: u64, failed_epoch: &AtomicU64) {
    let started = std::time::Instant::now();
    let applied = projection.apply();
    ::metrics::histogram!(metrics::PROJECT_SECONDS).record(started.elapsed());
    if let Err(error) = applied {
        ::metrics::counter!(metrics::WRITE_ERRORS_TOTAL, "stage" => "project").increment(1);
        tracing::error!(%error, "could not apply a batch's projections; answering UNAVAILABLE and reopening the data dir");
        failed_epoch.fetch_max(epoch, Ordering::SeqCst);
    }
}
