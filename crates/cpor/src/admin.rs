//! The admin listener of `cpor serve`: a small HTTP server (axum) for
//! probes and scrapes, separate from the NATS request/reply contract.
//!
//! - `GET /healthz`: 200 `ok` while the process runs (Kubernetes liveness).
//! - `GET /readyz`: 200 `{"ready":true}` only when the log is open, NATS is
//!   connected, the prefix lease is held, the relay is less than
//!   [`READY_RELAY_LAG_MAX`] events behind the log and the service is not
//!   shutting down; otherwise 503 `{"ready":false,"reasons":[…]}`, one
//!   sentence per unmet condition (Kubernetes readiness).
//! - `GET /metrics`: the Prometheus text format (version 0.0.4), rendered
//!   by `metrics-exporter-prometheus` from what the libraries record
//!   through the `metrics` facade, plus gauges read at scrape time here
//!   (positions, data dir size, connection, lease, readiness, build).
//!
//! `--http-addr` (default [`HTTP_ADDR_DEFAULT`], loopback only) moves it;
//! `--http-addr ''` turns it off, and with it the metrics recorder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use cpor_engine::Positions;
use cpor_log::LogReader;

/// Where the admin listener listens unless `--http-addr` says otherwise:
/// loopback, the port Prometheus' exporter list suggests for a new exporter.
pub(crate) const HTTP_ADDR_DEFAULT: &str = "127.0.0.1:9464";
/// Events the relay may be behind the log (durable but not yet handled)
/// and the service still be ready: about 20 relay windows, a few seconds of
/// publishing at full load. More means publishing is stuck or far behind.
pub(crate) const READY_RELAY_LAG_MAX: u64 = 10_000;
/// How often the recorder's upkeep runs (drains histogram buffers).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// Files counted for `cpor_data_dir_bytes`, at most (sled keeps a handful;
/// the bound keeps a scrape cheap whatever else is put in the data dir).
const DATA_DIR_FILES_MAX: usize = 10_000;
/// Histogram buckets for durations, in seconds: 50 µs to 10 s.
const SECONDS_BUCKETS: [f64; 16] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Histogram buckets for requests per batch: powers of two up to
/// `WRITER_BATCH_MAX`.
const BATCH_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Gauges set at scrape time (names: Prometheus conventions, see README
/// "Operating it").
const LOG_POSITION: &str = "cpor_log_position";
const PUBLISHED_POSITION: &str = "cpor_published_position";
const RELAYED_POSITION: &str = "cpor_relayed_position";
const RELAY_LAG_EVENTS: &str = "cpor_relay_lag_events";
const RELAY_FORGED_EVENTS: &str = "cpor_relay_forged_events";
const RELAY_UNPUBLISHABLE_EVENTS: &str = "cpor_relay_unpublishable_events";
const EVENTS_STREAM_FOREIGN_MESSAGES: &str = "cpor_events_stream_foreign_messages";
const DATA_DIR_BYTES: &str = "cpor_data_dir_bytes";
const DATA_DIR_FREE_BYTES: &str = "cpor_data_dir_free_bytes";
const NATS_CONNECTED: &str = "cpor_nats_connected";
const LEASE_HELD: &str = "cpor_lease_held";
const READY: &str = "cpor_ready";
const BUILD_INFO: &str = "cpor_build_info";
/// The standard process metric (Prometheus client libraries' name): a
/// change means a restart.
const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";

/// Installs the Prometheus recorder as the `metrics` facade's global
/// recorder (before the engine starts, so that nothing recorded is lost)
/// and registers every metric's help text. Returns the handle `/metrics`
/// renders from.
pub(crate) fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(cpor_engine::metrics::BATCH_REQUESTS.into()),
                &BATCH_BUCKETS,
            )
        })
        .context("bad histogram buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    cpor_engine::metrics::describe();
    cpor_nats::metrics::describe();
    describe();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(PROCESS_START_TIME_SECONDS).set(started.as_secs_f64());
    Ok(handle)
}

fn describe() {
    use metrics::{describe_gauge, Unit};
    describe_gauge!(
        LOG_POSITION,
        Unit::Count,
        "Last position written to the log and flushed."
    );
    describe_gauge!(
        PUBLISHED_POSITION,
        Unit::Count,
        "Last position up to which every event is in the events stream."
    );
    describe_gauge!(
        RELAYED_POSITION,
        Unit::Count,
        "Last position the relay has handled."
    );
    describe_gauge!(
        RELAY_LAG_EVENTS,
        Unit::Count,
        "Events durable in the log but not yet published (log minus published position)."
    );
    describe_gauge!(
        RELAY_FORGED_EVENTS,
        Unit::Count,
        "Events whose id someone else's message holds in the events stream."
    );
    describe_gauge!(
        RELAY_UNPUBLISHABLE_EVENTS,
        Unit::Count,
        "Events JetStream refused for good."
    );
    describe_gauge!(
        EVENTS_STREAM_FOREIGN_MESSAGES,
        Unit::Count,
        "Messages in the events stream that are not this log's events."
    );
    describe_gauge!(
        DATA_DIR_BYTES,
        Unit::Bytes,
        "Bytes of the files in the data dir."
    );
    describe_gauge!(
        DATA_DIR_FREE_BYTES,
        Unit::Bytes,
        "Bytes free for the service on the data dir's filesystem."
    );
    describe_gauge!(NATS_CONNECTED, Unit::Count, "1 while connected to NATS.");
    describe_gauge!(
        LEASE_HELD,
        Unit::Count,
        "1 while this instance holds the prefix lease."
    );
    describe_gauge!(READY, Unit::Count, "1 while /readyz answers 200.");
    describe_gauge!(
        BUILD_INFO,
        Unit::Count,
        "Always 1; the version label says which build runs."
    );
    describe_gauge!(
        PROCESS_START_TIME_SECONDS,
        Unit::Seconds,
        "Start time of the process since the Unix epoch."
    );
}

/// What the probes and gauges read, filled in as the start-up goes on.
pub(crate) struct Status {
    /// The data dir, for its size.
    data_dir: PathBuf,
    /// Set once the log is open: its positions and a reader (free space).
    log: OnceLock<(Arc<Positions>, LogReader)>,
    /// Set once connected: the connection's state for readiness.
    nats: OnceLock<cpor_nats::Nats>,
    /// Whether this instance holds the prefix lease now.
    lease_held: AtomicBool,
    /// Set when shutdown begins: not ready any more.
    stopping: AtomicBool,
}

impl Status {
    pub(crate) fn new(data_dir: PathBuf) -> Arc<Status> {
        Arc::new(Status {
            data_dir,
            log: OnceLock::new(),
            nats: OnceLock::new(),
            lease_held: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        })
    }

    pub(crate) fn log_opened(&self, positions: Arc<Positions>, reader: LogReader) {
        let _ = self.log.set((positions, reader));
    }

    pub(crate) fn connected(&self, nats: cpor_nats::Nats) {
        let _ = self.nats.set(nats);
    }

    pub(crate) fn set_lease_held(&self, held: bool) {
        self.lease_held.store(held, Ordering::SeqCst);
    }

    pub(crate) fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    fn nats_connected(&self) -> bool {
        self.nats.get().is_some_and(cpor_nats::Nats::is_connected)
    }

    /// Why the service is not ready: empty when it is.
    fn unready_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.stopping.load(Ordering::SeqCst) {
            reasons.push("shutting down".to_string());
        }
        match self.log.get() {
            None => reasons.push("the log is not open yet".to_string()),
            Some((positions, _)) => {
                let log = positions.log_position();
                let lag = log.saturating_sub(positions.relayed.load(Ordering::SeqCst));
                if lag > READY_RELAY_LAG_MAX {
                    reasons.push(format!(
                        "the relay is {lag} events behind the log (more than READY_RELAY_LAG_MAX = {READY_RELAY_LAG_MAX})"
                    ));
                }
            }
        }
        if !self.nats_connected() {
            reasons.push("NATS is not connected".to_string());
        }
        if !self.lease_held.load(Ordering::SeqCst) {
            reasons.push("the prefix lease is not held".to_string());
        }
        reasons
    }

    /// Sets the gauges read at scrape time.
    fn record_gauges(&self, ready: bool) {
        if let Some((positions, reader)) = self.log.get() {
            let load = |p: &std::sync::atomic::AtomicU64| p.load(Ordering::SeqCst) as f64;
            let (log, published) = (positions.log_position() as f64, load(&positions.published));
            metrics::gauge!(LOG_POSITION).set(log);
            metrics::gauge!(PUBLISHED_POSITION).set(published);
            metrics::gauge!(RELAYED_POSITION).set(load(&positions.relayed));
            metrics::gauge!(RELAY_LAG_EVENTS).set((log - published).max(0.0));
            metrics::gauge!(RELAY_FORGED_EVENTS).set(load(&positions.forged_events));
            metrics::gauge!(RELAY_UNPUBLISHABLE_EVENTS).set(load(&positions.unpublishable_events));
            metrics::gauge!(EVENTS_STREAM_FOREIGN_MESSAGES).set(load(&positions.foreign_messages));
            if let Ok(free) = reader.available_space() {
                metrics::gauge!(DATA_DIR_FREE_BYTES).set(free as f64);
            }
        }
        metrics::gauge!(DATA_DIR_BYTES).set(dir_bytes(&self.data_dir) as f64);
        metrics::gauge!(NATS_CONNECTED).set(f64::from(u8::from(self.nats_connected())));
        let lease = self.lease_held.load(Ordering::SeqCst);
        metrics::gauge!(LEASE_HELD).set(f64::from(u8::from(lease)));
        metrics::gauge!(READY).set(f64::from(u8::from(ready)));
    }
}

/// Bytes of the regular files under `dir` (at most [`DATA_DIR_FILES_MAX`]
/// files; what cannot be read counts 0).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > DATA_DIR_FILES_MAX {
                return total;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) if meta.is_file() => total += meta.len(),
                _ => {}
            }
        }
    }
    total
}

/// The listener's shared state.
#[derive(Clone)]
struct Admin {
    /// Renders what the `metrics` facade recorded (`/metrics`).
    handle: PrometheusHandle,
    /// What the probes answer from and the scrape-time gauges read.
    status: Arc<Status>,
}

/// Binds `addr` (an error names the address and the flag to change) and
/// serves the admin routes on it in a task of its own; also runs the
/// recorder's upkeep. Returns the address bound (port 0 picks one).
pub(crate) async fn start(
    addr: SocketAddr,
    handle: PrometheusHandle,
    status: Arc<Status>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for /healthz, /readyz and /metrics (--http-addr; '' turns it off)")
    })?;
    let bound = listener
        .local_addr()
        .context("the admin listener's address")?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(Admin { handle, status });
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the admin listener stopped");
        }
    });
    tracing::info!(addr = %bound, "admin listener: /healthz, /readyz, /metrics");
    Ok(bound)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(admin): State<Admin>) -> impl IntoResponse {
    let reasons = admin.status.unready_reasons();
    let (code, body) = if reasons.is_empty() {
        (StatusCode::OK, serde_json::json!({"ready": true}))
    } else {
        let body = serde_json::json!({"ready": false, "reasons": reasons});
        (StatusCode::SERVICE_UNAVAILABLE, body)
    };
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

async fn render_metrics(State(admin): State<Admin>) -> impl IntoResponse {
    let ready = admin.status.unready_reasons().is_empty();
    admin.status.record_gauges(ready);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.handle.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_bytes_count_files_in_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 10]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 5]).unwrap();
        assert_eq!(dir_bytes(dir.path()), 15);
        assert_eq!(dir_bytes(&dir.path().join("missing")), 0);
    }

    #[test]
    fn a_fresh_status_is_not_ready_and_says_why() {
        let status = Status::new(PathBuf::from("/nonexistent"));
        let reasons = status.unready_reasons();
        assert_eq!(
            reasons,
            [
                "the log is not open yet",
                "NATS is not connected",
                "the prefix lease is not held"
            ]
        );
        status.stopping();
        assert_eq!(status.unready_reasons()[0], "shutting down");
    }
}
