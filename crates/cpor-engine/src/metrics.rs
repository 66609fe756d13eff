//! What the engine measures, through the `metrics` facade (IO-free: the
//! binary installs a recorder — Prometheus — and without one every call is
//! a no-op, as in the benchmark's raw-log writer and the unit tests).
//!
//! Names follow the Prometheus conventions: `cpor_` prefix, base units
//! (seconds, bytes), `_total` for counters. [`describe`] gives each its
//! help text; `README.md` ("Operating it") lists them.

use std::time::Duration;

use cpor_domain::state::State;
use cpor_domain::types::{CaseStatus, ClaimStatus, DeadlineKind, Timestamp};

/// Histogram: how long a command waited in the writer's queue (seconds).
pub const QUEUE_WAIT_SECONDS: &str = "cpor_command_queue_wait_seconds";
/// Histogram: how long deciding one command took, idempotency and
/// permission checks included (seconds).
pub const DECIDE_SECONDS: &str = "cpor_command_decide_seconds";
/// Histogram: how long applying one group-commit batch's `log` share
/// (events, command records, head) to sled took, on the writer (seconds).
pub const COMMIT_SECONDS: &str = "cpor_log_commit_seconds";
/// Histogram: how long applying one batch's derived trees (stream index,
/// projections, meta) took, on the projector (seconds).
pub const PROJECT_SECONDS: &str = "cpor_projection_apply_seconds";
/// Histogram: how long one flush (fsync) of the log took (seconds).
pub const FLUSH_SECONDS: &str = "cpor_log_flush_seconds";
/// Histogram: requests (commands and clock moves) per group-commit batch.
pub const BATCH_REQUESTS: &str = "cpor_writer_batch_requests";
/// Counter: batches that could not be written (`stage="apply"`), projected
/// (`stage="project"`) or flushed (`stage="flush"`); either way the
/// requests are answered `UNAVAILABLE` and the writer reopens the data dir.
pub const WRITE_ERRORS_TOTAL: &str = "cpor_log_write_errors_total";
/// Counter: requests refused `UNAVAILABLE` because the data dir's disk had
/// less than [`crate::DISK_FREE_MIN_BYTES`] free.
pub const DISK_FULL_REFUSALS_TOTAL: &str = "cpor_disk_full_refusals_total";
/// Counter: deadlines fired by the scheduler, by `kind` (`review`: a review
/// SLA breach; `partner_response`).
pub const DEADLINES_FIRED_TOTAL: &str = "cpor_deadlines_fired_total";
/// Gauge: deadlines the scheduler watches.
pub const DEADLINES_SCHEDULED: &str = "cpor_deadlines_scheduled";
/// Gauge: watched deadlines already due (not yet fired: the scheduler is
/// behind, or the clock was refused).
pub const DEADLINES_DUE: &str = "cpor_deadlines_due";
/// Gauge: claims by `status` (contract §1 statuses).
pub const CLAIMS: &str = "cpor_claims";
/// Gauge: open claims whose review deadline passed (`overdue: true`).
pub const CLAIMS_OVERDUE: &str = "cpor_claims_overdue";
/// Gauge: open arbitration cases.
pub const ARBITRATION_CASES_OPEN: &str = "cpor_arbitration_cases_open";

/// Every claim status, as the domain declares them once, so that a status
/// with no claims reads 0 rather than disappearing from the scrape.
const CLAIM_STATUSES: &[ClaimStatus] = <ClaimStatus as strum::VariantArray>::VARIANTS;

/// How often at most the writer recounts the state gauges (claims by
/// status, overdue, cases, deadlines): a full pass over the claims, kept
/// off the hot path.
pub const STATE_GAUGES_EVERY: Duration = Duration::from_secs(5);

/// Registers the help text and unit of every engine metric, and creates
/// the counters' series at 0 so that `rate()` and alerts see them from the
/// first scrape, before anything happened.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_histogram!(
        QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "Time a command waited in the writer's queue."
    );
    describe_histogram!(
        DECIDE_SECONDS,
        Unit::Seconds,
        "Time to decide one command (idempotency, permission, decide)."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time to apply one group-commit batch's events, command records and head to the log."
    );
    describe_histogram!(
        PROJECT_SECONDS,
        Unit::Seconds,
        "Time to apply one batch's stream index, projections and meta values."
    );
    describe_histogram!(
        FLUSH_SECONDS,
        Unit::Seconds,
        "Time of one log flush (fsync) covering one or more batches."
    );
    describe_histogram!(
        BATCH_REQUESTS,
        Unit::Count,
        "Requests per group-commit batch."
    );
    describe_counter!(
        WRITE_ERRORS_TOTAL,
        Unit::Count,
        "Batches the log could not apply, project or flush, by stage."
    );
    describe_counter!(
        DISK_FULL_REFUSALS_TOTAL,
        Unit::Count,
        "Requests refused because the data dir's disk is full."
    );
    describe_counter!(
        DEADLINES_FIRED_TOTAL,
        Unit::Count,
        "Deadlines fired by the scheduler, by kind."
    );
    describe_gauge!(
        DEADLINES_SCHEDULED,
        Unit::Count,
        "Deadlines the scheduler watches."
    );
    describe_gauge!(
        DEADLINES_DUE,
        Unit::Count,
        "Watched deadlines already due and not yet fired."
    );
    describe_gauge!(CLAIMS, Unit::Count, "Claims by status.");
    describe_gauge!(
        CLAIMS_OVERDUE,
        Unit::Count,
        "Open claims past their review deadline."
    );
    describe_gauge!(
        ARBITRATION_CASES_OPEN,
        Unit::Count,
        "Open arbitration cases."
    );
    start_counters();
}

/// Creates the counters' series at 0.
fn start_counters() {
    for stage in ["apply", "project", "flush"] {
        metrics::counter!(WRITE_ERRORS_TOTAL, "stage" => stage).absolute(0);
    }
    metrics::counter!(DISK_FULL_REFUSALS_TOTAL).absolute(0);
    for kind in [DeadlineKind::Review, DeadlineKind::PartnerResponse] {
        metrics::counter!(DEADLINES_FIRED_TOTAL, "kind" => kind.as_str()).absolute(0);
    }
}

/// Sets the state gauges from `state` as of `now` (`None`: the clock is
/// refused, deadlines due are not counted). One pass over the claims.
pub(crate) fn record_state(state: &State, now: Option<Timestamp>) {
    let mut by_status = vec![0u64; CLAIM_STATUSES.len()];
    let mut overdue = 0u64;
    for claim in state.claims.values() {
        if let Some(i) = CLAIM_STATUSES.iter().position(|s| *s == claim.status) {
            by_status[i] += 1;
        }
        if claim.overdue && claim.status.is_open() {
            overdue += 1;
        }
    }
    for (status, count) in CLAIM_STATUSES.iter().zip(by_status) {
        metrics::gauge!(CLAIMS, "status" => status.as_str()).set(count as f64);
    }
    metrics::gauge!(CLAIMS_OVERDUE).set(overdue as f64);
    let open_cases = state
        .cases
        .values()
        .filter(|c| c.status == CaseStatus::Open)
        .count();
    metrics::gauge!(ARBITRATION_CASES_OPEN).set(open_cases as f64);
    metrics::gauge!(DEADLINES_SCHEDULED).set(state.deadlines.len() as f64);
    let due = match now {
        Some(now) => Some(
            state
                .deadlines
                .iter()
                .take_while(|(at, _, _)| *at <= now)
                .count(),
        ),
        None if state.deadlines.is_empty() => Some(0),
        None => None,
    };
    if let Some(due) = due {
        metrics::gauge!(DEADLINES_DUE).set(due as f64);
    }
}
