//! `cpor serve`: wiring and the shutdown choreography.
//!
//! Start: catch SIGINT/SIGTERM → open the log (checks its tail, folds the
//! state) → connect to NATS (`cpor_nats::connect`: refused credentials or
//! TLS end the start with exit 2; a server not up yet is waited for) →
//! create the streams → take the prefix lease → start the relay → take
//! requests. A signal at any point of the start stops it with exit 0 (after
//! the log open, which only reads, has finished; the lease is released if it
//! was taken). A start that never served removes the data dir again if it
//! created it, so a refused start leaves nothing behind.
//!
//! Stop (SIGTERM/SIGINT): stop taking requests → answer those in flight →
//! the writer drains its queue and exits → the relay publishes everything
//! durable → release the lease → exit 0. Losing the lease to another
//! instance: the same drain, then exit 2 (a failure, so that a supervisor
//! restarts it).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use uuid::Uuid;

use cpor_engine::{ClockMode, Engine, Options};
use cpor_nats::lease::{Lease, LEASE_RENEW_EVERY};
use cpor_nats::relay::{ensure_streams, Relay};
use cpor_nats::server::Server;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::admin::Status;
use crate::config::{ServeArgs, Settings};

/// The task that waits for the writer's thread to stop, with its result.
type WriterTask = tokio::task::JoinHandle<Result<(), cpor_engine::Fatal>>;

/// Bounds of the retry creating the streams at start-up.
const CONNECT_BACKOFF_MIN: Duration = Duration::from_millis(200);
const CONNECT_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long shutdown waits for the relay to publish what is written
/// (what it cannot publish in time is published at the next start).
const RELAY_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the last flush to NATS at shutdown may take.
const FINAL_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the NATS server's `max_payload` is read again (a reconnect may
/// land on another server of the cluster).
const SERVER_INFO_REFRESH_EVERY: Duration = Duration::from_secs(5);

pub(crate) fn main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = args.validate()?;
    // Installed before anything records (the engine counts from its start);
    // without the admin listener nothing would read it, so none.
    let recorder = match settings.http_addr {
        Some(_) => Some(crate::admin::install_recorder()?),
        None => None,
    };
    // Found before anything is opened: the directory this start creates.
    let created = first_missing_ancestor(&settings.data_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut progress = Progress::Starting;
    let result = runtime.block_on(serve(settings, recorder, &mut progress));
    // The log is closed once the runtime is gone (every handle dropped).
    drop(runtime);
    if progress == Progress::LogOpened {
        if let Some(dir) = created {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(dir = %dir.display(), "removed the data dir this start created")
                }
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot remove the data dir this start created")
                }
            }
        }
    }
    result
}

/// How far a run of `cpor serve` got: a start that opened the log but never
/// served leaves no data dir it created.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Progress {
    /// The log is not open (never was, or could not be: the data dir may be
    /// another instance's, so it is not touched).
    Starting,
    /// This process opened the log (and holds its lock); not serving yet.
    LogOpened,
    /// Requests were taken: the data dir is the service's now.
    Served,
}

/// The top-most directory of `path` that does not exist yet (`path` itself
/// when only it is missing), or `None` when `path` exists.
fn first_missing_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .take_while(|dir| !dir.exists())
        .last()
        .map(Path::to_path_buf)
}

/// SIGINT and SIGTERM, caught from the first moment of `cpor serve` on:
/// once installed, a signal is a request to stop, never the default kill,
/// and one that arrives while nothing listens (the log open) waits here to
/// be received. Installing a handler also undoes an inherited "ignore"
/// (a shell starts background jobs with SIGINT ignored).
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot catch SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }

    /// Waits for the next SIGINT or SIGTERM; its name.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }

    /// Runs one phase of the start-up unless a signal comes first (then
    /// `None`, logged with the phase's name). The phase is dropped at its
    /// next await point.
    async fn unless_stopped<T>(&mut self, phase: &str, work: impl Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            signal = self.recv() => {
                tracing::info!(phase, "{signal} during start-up: stopping");
                None
            }
            done = work => Some(done),
        }
    }
}

/// Connects to NATS, creates the streams and takes the prefix lease,
/// retrying the streams with backoff until they succeed.
async fn connect_and_lease(
    settings: &Settings,
    instance: Uuid,
) -> anyhow::Result<(cpor_nats::Nats, Lease)> {
    let nats = cpor_nats::connect(&settings.nats)
        .await
        .context("cannot connect to NATS")?;
    let js = nats.jetstream();
    let mut backoff = CONNECT_BACKOFF_MIN;
    loop {
        match ensure_streams(js, &settings.prefix).await {
            Ok(_) => break,
            Err(error) => {
                tracing::warn!(%error, ?backoff, "cannot create the JetStream streams (is JetStream enabled?); retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(CONNECT_BACKOFF_MAX);
            }
        }
    }
    let lease = Lease::acquire(js, &settings.prefix, instance).await?;
    Ok((nats, lease))
}

/// The data dir's identity, for the prefix lease: created once, kept.
fn instance_id(engine: &Engine) -> anyhow::Result<Uuid> {
    let reader = engine.reader();
    if let Some(bytes) = reader.get_meta_bytes("instance_id")? {
        let text = String::from_utf8_lossy(&bytes).to_string();
        return Uuid::parse_str(&text)
            .with_context(|| format!("the data dir's instance id {text:?} is not a UUID"));
    }
    let id = Uuid::new_v4();
    reader.put_meta_bytes("instance_id", id.to_string().as_bytes())?;
    reader.flush_blocking()?;
    Ok(id)
}

async fn serve(
    settings: Settings,
    recorder: Option<PrometheusHandle>,
    progress: &mut Progress,
) -> anyhow::Result<ExitCode> {
    let mut signals = StopSignals::install()?;
    // Probes answer from the first moment (not ready while starting); a
    // port already taken stops the start before the log is opened.
    let status = Status::new(settings.data_dir.clone());
    if let (Some(addr), Some(recorder)) = (settings.http_addr, recorder) {
        crate::admin::start(addr, recorder, status.clone()).await?;
    }
    let clock = if settings.manual_clock {
        ClockMode::Manual
    } else {
        ClockMode::Wall
    };
    let (engine, writer) = Engine::start(Options {
        accept_clock_jump: settings.accept_clock_jump,
        disk_free_min_bytes: settings.disk_free_min_bytes,
        command_retention: settings.command_retention,
        ..Options::new(settings.data_dir.clone(), settings.calendar.clone(), clock)
    })
    .with_context(|| format!("cannot open the log in {}", settings.data_dir.display()))?;
    *progress = Progress::LogOpened;
    status.log_opened(engine.positions().clone(), engine.reader().clone());
    // Whatever happens from here on, the writer is stopped before this
    // returns: `run` owns every engine handle, so once it returns the
    // writer's queue is closed and the writer finishes. A fatal error of
    // the writer while serving stops the service too (`writer_failed`).
    let (fatal_tx, writer_failed) = watch::channel(false);
    let mut writer = Some(tokio::spawn(async move {
        let stopped = writer.stopped().await;
        if stopped.is_err() {
            let _ = fatal_tx.send(true);
        }
        stopped
    }));
    let result = run(
        settings,
        engine,
        &mut writer,
        writer_failed,
        &mut signals,
        progress,
        &status,
    )
    .await;
    if let Some(writer) = writer {
        let stopped = writer.await.context("the writer's watcher task failed")?;
        // A fatal error of the writer is the process's outcome, whatever
        // else happened (`main` exits with its code).
        stopped?;
    }
    result
}

/// Everything after the log is open: NATS, lease, relay, requests. Takes
/// the only engine handle, so when this returns, the writer stops; it takes
/// the writer's join handle when it waits for it itself.
async fn run(
    settings: Settings,
    engine: Engine,
    writer: &mut Option<WriterTask>,
    writer_failed: watch::Receiver<bool>,
    signals: &mut StopSignals,
    progress: &mut Progress,
    status: &Arc<Status>,
) -> anyhow::Result<ExitCode> {
    let instance = instance_id(&engine)?;
    tracing::info!(
        data_dir = %settings.data_dir.display(),
        prefix = %settings.prefix,
        time_zone = settings.calendar.time_zone_name(),
        manual_clock = settings.manual_clock,
        instance = %instance,
        "starting"
    );
    // A signal while the lease is being taken may leave it held by this
    // instance id: a restart on this data dir takes it over at once, another
    // instance waits for it to expire.
    let Some(started) = signals
        .unless_stopped("connect", connect_and_lease(&settings, instance))
        .await
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let (nats, lease) = started?;
    status.connected(nats.clone());
    status.set_lease_held(true);
    let refresh = bound_event_sizes(&nats, &engine);
    let relay = match start_relay(&settings, &engine, &nats, signals).await {
        Ok(Some(relay)) => relay,
        outcome => {
            // Refusing to start must not keep the prefix from its owner.
            lease.release().await;
            return outcome.map(|_| ExitCode::SUCCESS);
        }
    };
    let keeper = LeaseKeeper::start(lease, status.clone());
    let shutdown = shutdown_signal(signals, keeper.lost.clone(), writer_failed, status.clone());
    *progress = Progress::Served;
    let server = Server::new(
        nats.client().clone(),
        engine.clone(),
        settings.prefix.clone(),
    );
    server
        .run(shutdown)
        .await
        .map_err(|e| anyhow::anyhow!("serving requests: {e}"))?;
    // Every request is answered; let the writer finish and stop (this waits
    // until everything queued is durable). A fatal error ends here, before
    // the relay's drain: the process exits with its code.
    drop(engine);
    if let Some(writer) = writer.take() {
        writer.await.context("the writer's watcher task failed")??;
    }
    relay.drain().await;
    refresh.abort();
    let released = keeper.release(status).await;
    // Bounded: with NATS gone a flush waits for a reconnection.
    let _ = tokio::time::timeout(FINAL_FLUSH_TIMEOUT, nats.flush()).await;
    released?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Bounds every event a command writes by what this NATS server can
/// publish (the engine refuses larger ones), and re-reads it every
/// [`SERVER_INFO_REFRESH_EVERY`], in case the client reconnected to a
/// server with another `max_payload`. Returns the refresh task.
fn bound_event_sizes(nats: &cpor_nats::Nats, engine: &Engine) -> tokio::task::JoinHandle<()> {
    if let Some(why) = cpor_nats::unsupported_server(nats.client()) {
        tracing::warn!("{why}");
    }
    engine.set_event_bytes_max(cpor_nats::event_bytes_max(nats.client()));
    tracing::info!(
        max_payload = nats.client().server_info().max_payload,
        "events are bounded by the NATS server's max_payload"
    );
    let (client, engine) = (nats.client().clone(), engine.event_bytes_max_handle());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(SERVER_INFO_REFRESH_EVERY).await;
            engine.set(cpor_nats::event_bytes_max(&client));
        }
    })
}

/// The running relay and how to stop it.
struct RunningRelay {
    task: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl RunningRelay {
    /// Asks the relay to publish everything durable and stop, waiting up
    /// to [`RELAY_DRAIN_TIMEOUT`] (the rest is published at the next start).
    async fn drain(self) {
        let _ = self.stop.send(true);
        match tokio::time::timeout(RELAY_DRAIN_TIMEOUT, self.task).await {
            Ok(_) => tracing::info!("everything written is published"),
            Err(_) => tracing::warn!(
                "relay did not drain in time; the rest is published at the next start"
            ),
        }
    }
}

/// Loads the checkpoint signer, finds where publishing resumes, migrates
/// the status stream's subjects and starts the relay. `Ok(None)`: a signal
/// came first. The caller releases the lease on anything but `Ok(Some)`.
async fn start_relay(
    settings: &Settings,
    engine: &Engine,
    nats: &cpor_nats::Nats,
    signals: &mut StopSignals,
) -> anyhow::Result<Option<RunningRelay>> {
    let signing_key = settings.signing_key.clone().unwrap_or_else(|| {
        settings
            .data_dir
            .join(cpor_log::checkpoint::SIGNING_KEY_FILE)
    });
    let signer =
        cpor_log::checkpoint::CheckpointSigner::load(&signing_key, settings.signing_key.is_none())
            .with_context(|| format!("the checkpoint signing key {}", signing_key.display()))?;
    tracing::info!(public_key = %signer.public_key_hex(), key_file = %signing_key.display(), "checkpoints are signed");
    let relay = Relay {
        js: nats.jetstream().clone(),
        reader: engine.reader().clone(),
        positions: engine.positions().clone(),
        committed: engine.committed(),
        prefix: settings.prefix.clone(),
        checkpoints: Some(cpor_nats::relay::CheckpointPolicy {
            signer,
            every_events: settings.checkpoint_every_events,
            every: settings.checkpoint_every,
        }),
    };
    let Some(resumed) = signals
        .unless_stopped("resume", relay.resume_position())
        .await
    else {
        return Ok(None);
    };
    let published = resumed.context("cannot resume publishing")?;
    relay
        .migrate_status_subjects(published)
        .await
        .context("cannot migrate the status stream")?;
    tracing::info!(published, "relay resumes");
    let (stop, relay_stop) = watch::channel(false);
    let task = tokio::spawn(relay.run(published, relay_stop));
    Ok(Some(RunningRelay { task, stop }))
}

/// Renews the prefix lease every [`LEASE_RENEW_EVERY`] until stopped or
/// lost; `lost` carries why it was lost.
struct LeaseKeeper {
    task: tokio::task::JoinHandle<Option<Lease>>,
    stop: watch::Sender<bool>,
    lost: watch::Receiver<Option<String>>,
}

impl LeaseKeeper {
    fn start(mut lease: Lease, status: Arc<Status>) -> LeaseKeeper {
        let (lost_tx, lost) = watch::channel(None::<String>);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
                    _ = stopped.changed() => return Some(lease),
                }
                match lease.renew().await {
                    Ok(()) => {}
                    Err(error @ cpor_nats::lease::LeaseError::Lost { .. }) => {
                        status.set_lease_held(false);
                        let _ = lost_tx.send(Some(error.to_string()));
                        return None;
                    }
                    Err(error) => tracing::warn!(%error, "cannot renew the prefix lease; retrying"),
                }
            }
        });
        LeaseKeeper { task, stop, lost }
    }

    /// Stops renewing and releases the lease if still held. Losing it is
    /// no clean shutdown: a supervisor must see a failure (and restart, to
    /// find the prefix held or free again), so that is an error.
    async fn release(self, status: &Status) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        if let Ok(Some(lease)) = self.task.await {
            lease.release().await;
            status.set_lease_held(false);
        }
        match self.lost.borrow().clone() {
            Some(reason) => anyhow::bail!("{reason}; stopped serving"),
            None => Ok(()),
        }
    }
}

/// Resolves when the service must stop: a signal, the lease lost, or a
/// fatal error of the writer; marks the service as stopping (not ready).
async fn shutdown_signal(
    signals: &mut StopSignals,
    mut lease_lost: watch::Receiver<Option<String>>,
    mut writer_failed: watch::Receiver<bool>,
    status: Arc<Status>,
) {
    tokio::select! {
        signal = signals.recv() => tracing::info!("{signal}: shutting down"),
        _ = lease_lost.changed() => tracing::error!("lost the prefix lease: shutting down"),
        Ok(_) = writer_failed.wait_for(|failed| *failed) => {
            tracing::error!("the writer stopped on a fatal error: shutting down");
        }
    }
    status.stopping();
}
