//! The harness: raw log, then echo ceiling and service side by side at each
//! concurrency level, then replay; every figure beside its ceiling from the
//! same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use cpor_log::LogReader;
use cpor_nats::wire::{self, Request};

use crate::generate::try_generate_log;
use crate::load::{self, Prepared};
use crate::processes::{self, NatsServer, Owned};
use crate::procfs::{self, ProcSample};
use crate::report::{LevelFigures, RawFigures, ReplayFigures, Report};
use crate::workload::{interleave, plan_clients, Planner, Req};
use crate::writer::{Outcome, Writer};

/// How big a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Tiny counts, a few seconds: the test that keeps the harness working.
    Smoke,
    /// Under a minute.
    Quick,
    /// The real figures (under ten minutes).
    Full,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Smoke => "smoke",
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Every count a run uses.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// (clients, commands in all) per concurrency level.
    pub levels: Vec<(usize, usize)>,
    /// A level stops when this has passed, even if its scripts are not done.
    pub level_time_cap: Duration,
    /// Commands through the raw log per group-commit batch size.
    pub raw_commands: usize,
    /// Commands through the raw log at one command per flush.
    pub raw_single_commands: usize,
    /// Events in the generated log of the replay part.
    pub replay_events: u64,
}

/// Concurrency levels (issue 5: 1, 16 and 64 clients).
pub const LEVEL_CLIENTS: [usize; 3] = [1, 16, 64];

pub const SMOKE_LEVEL_COMMANDS: [usize; 3] = [40, 160, 384];
pub const SMOKE_LEVEL_TIME_CAP: Duration = Duration::from_secs(20);
pub const SMOKE_RAW_COMMANDS: usize = 600;
pub const SMOKE_RAW_SINGLE_COMMANDS: usize = 60;
pub const SMOKE_REPLAY_EVENTS: u64 = 2_000;

pub const QUICK_LEVEL_COMMANDS: [usize; 3] = [400, 4_000, 12_000];
pub const QUICK_LEVEL_TIME_CAP: Duration = Duration::from_secs(6);
pub const QUICK_RAW_COMMANDS: usize = 12_000;
pub const QUICK_RAW_SINGLE_COMMANDS: usize = 300;
pub const QUICK_REPLAY_EVENTS: u64 = 100_000;

pub const FULL_LEVEL_COMMANDS: [usize; 3] = [3_000, 30_000, 100_000];
pub const FULL_LEVEL_TIME_CAP: Duration = Duration::from_secs(45);
pub const FULL_RAW_COMMANDS: usize = 60_000;
pub const FULL_RAW_SINGLE_COMMANDS: usize = 2_000;
pub const FULL_REPLAY_EVENTS: u64 = 1_050_000;

/// Group-commit sizes of the raw log: the engine's batch bound, the batch
/// the top concurrency level can fill at most, a small batch (what the
/// service's writer was seen to form under load: a handful of commands per
/// flush), and one command per flush.
pub fn raw_batches() -> [usize; 4] {
    [
        cpor_engine::WRITER_BATCH_MAX,
        LEVEL_CLIENTS[2],
        RAW_SMALL_BATCH,
        1,
    ]
}

/// The small group-commit size of the raw log series.
pub const RAW_SMALL_BATCH: usize = 8;

/// Interleaved "clients" feeding the raw log (as many as the top level).
pub const RAW_LANES: usize = 64;
/// Clients sending the reference data before the levels.
pub const REFERENCE_CLIENTS: usize = 16;
pub const REFERENCE_TIME_CAP: Duration = Duration::from_secs(300);
/// The service's and the echo responder's subjects.
pub const SERVICE_PREFIX: &str = "bench";
pub const REPLAY_PREFIX: &str = "benchreplay";
pub const ECHO_SUBJECT: &str = "benchecho.request";
/// Waits.
pub const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(60);
pub const COLD_START_TIMEOUT: Duration = Duration::from_secs(300);
pub const RELAY_PUBLISH_TIMEOUT: Duration = Duration::from_secs(300);
pub const ECHO_START_TIMEOUT: Duration = Duration::from_secs(15);
/// After a cold start, how long to wait before reading RSS (the service
/// has just answered health; let allocations settle).
pub const REPLAY_RSS_SETTLE: Duration = Duration::from_secs(2);
/// `--audit-tools`: the longest one tool may run.
pub const AUDIT_TOOL_TIMEOUT: Duration = Duration::from_secs(180);
/// The default workload seed.
pub const DEFAULT_SEED: u64 = 20_261_125;

impl Sizes {
    pub fn of(mode: Mode) -> Sizes {
        let (commands, cap, raw, single, replay) = match mode {
            Mode::Smoke => (
                SMOKE_LEVEL_COMMANDS,
                SMOKE_LEVEL_TIME_CAP,
                SMOKE_RAW_COMMANDS,
                SMOKE_RAW_SINGLE_COMMANDS,
                SMOKE_REPLAY_EVENTS,
            ),
            Mode::Quick => (
                QUICK_LEVEL_COMMANDS,
                QUICK_LEVEL_TIME_CAP,
                QUICK_RAW_COMMANDS,
                QUICK_RAW_SINGLE_COMMANDS,
                QUICK_REPLAY_EVENTS,
            ),
            Mode::Full => (
                FULL_LEVEL_COMMANDS,
                FULL_LEVEL_TIME_CAP,
                FULL_RAW_COMMANDS,
                FULL_RAW_SINGLE_COMMANDS,
                FULL_REPLAY_EVENTS,
            ),
        };
        Sizes {
            levels: LEVEL_CLIENTS.iter().copied().zip(commands).collect(),
            level_time_cap: cap,
            raw_commands: raw,
            raw_single_commands: single,
            replay_events: replay,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub seed: u64,
    /// The `cpor` binary to run.
    pub cpor_bin: PathBuf,
    pub nats_server: PathBuf,
    /// This executable (it is also the echo responder).
    pub bench_exe: PathBuf,
    /// Time `cpor verify`, `export` and `rebuild` on the generated log.
    pub audit_tools: bool,
    /// Keep the temp dir (data dirs, logs) for inspection.
    pub keep: bool,
    /// The workspace, for `git rev-parse`.
    pub workspace: PathBuf,
    /// How the `cpor` binary came to be (rebuilt, build failed, given).
    pub cpor_build: String,
}

fn say(text: impl AsRef<str>) {
    eprintln!("cpor-bench: {}", text.as_ref());
}

/// Runs everything and returns the figures.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let sizes = Sizes::of(options.mode);
    let ticks = procfs::clock_ticks_per_s();
    let temp = tempfile::Builder::new().prefix("cpor-bench-").tempdir()?;
    let dir = temp.path().to_path_buf();
    say(format!(
        "{} run in {} with {}",
        options.mode.name(),
        dir.display(),
        options.cpor_bin.display()
    ));
    let mut report = Report {
        mode: options.mode.name().to_string(),
        seed: options.seed,
        git_revision: procfs::git_revision(&options.workspace),
        machine: procfs::machine(),
        cpor_bin: options.cpor_bin.display().to_string(),
        cpor_build: options.cpor_build.clone(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        ..Report::default()
    };

    let first_raw = raw_series(&dir, options.seed, &sizes, "before")?;
    let nats = NatsServer::start(&options.nats_server, &dir.join("nats"))?;
    say(format!("nats-server on {}", nats.url));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let idle_rss =
        runtime.block_on(end_to_end(options, &sizes, &nats, &dir, ticks, &mut report))?;

    // The raw log again, after the service levels: a ceiling is the best of
    // two measurements, so a slow moment of the machine cannot inflate a ratio.
    let second_raw = raw_series(&dir, options.seed, &sizes, "after")?;
    report.raw = first_raw
        .into_iter()
        .zip(second_raw)
        .map(|(a, b)| if b.per_s() > a.per_s() { b } else { a })
        .collect();

    report.replay = replay(options, &sizes, &nats, &dir, &runtime)?;
    report.replay.idle_rss_mib = idle_rss;

    report.warnings.extend(warnings(&report));
    drop(nats);
    if options.keep {
        let kept = temp.keep();
        say(format!("kept {}", kept.display()));
    }
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// How long `cpor verify`, `export` and `rebuild` take on the generated log.
fn time_audit_tools(
    options: &Options,
    data: &Path,
    dir: &Path,
) -> Vec<(String, Result<f64, String>)> {
    let mut timings = Vec::new();
    for (tool, extra) in [
        ("verify", vec![]),
        (
            "export",
            vec![
                "--output".to_string(),
                dir.join("export.jsonl").display().to_string(),
            ],
        ),
        ("rebuild", vec![]),
    ] {
        timings.push((
            tool.to_string(),
            time_tool(&options.cpor_bin, tool, data, &extra),
        ));
    }
    let _ = std::fs::remove_file(dir.join("export.jsonl"));
    timings
}

/// Starts a service on the generated log and times it until `qry.health`
/// answers; samples its memory once it settles.
fn cold_start(
    options: &Options,
    nats: &NatsServer,
    data: &Path,
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
    figures: &mut ReplayFigures,
) -> anyhow::Result<()> {
    runtime.block_on(async {
        let control = async_nats::connect(&nats.url).await?;
        let started = Instant::now();
        let mut service = processes::start_service(
            &options.cpor_bin,
            &nats.url,
            data,
            REPLAY_PREFIX,
            dir.join("cpor-replay.log"),
        )?;
        processes::wait_healthy(&control, REPLAY_PREFIX, &mut service, COLD_START_TIMEOUT).await?;
        figures.cold_start_s = started.elapsed().as_secs_f64();
        tokio::time::sleep(REPLAY_RSS_SETTLE).await;
        let sample = procfs::sample(service.pid()).unwrap_or_default();
        figures.rss_mib = mib(sample.rss_kib);
        figures.peak_rss_mib = mib(sample.hwm_kib);
        say(format!(
            "cold start: {:.2} s, RSS {:.0} MiB",
            figures.cold_start_s, figures.rss_mib
        ));
        // Its relay has begun publishing the whole log to JetStream; that
        // is not measured here, and the data dir is thrown away: kill it.
        service.kill();
        anyhow::Ok(())
    })?;
    Ok(())
}

/// What a reader of the figures must know: refused or lost replies, a
/// rebuild that disagreed, a service that did not stop cleanly.
fn warnings(report: &Report) -> Vec<String> {
    let mut warnings = Vec::new();
    for level in &report.levels {
        if level.unexpected + level.failed > 0 {
            warnings.push(format!(
                "{} clients: {} unexpected replies, {} without reply, e.g. {:?}",
                level.clients, level.unexpected, level.failed, level.examples
            ));
        }
    }
    if report.replay.rebuild_differences > 0 {
        warnings.push(format!(
            "rebuild found {} differences between stored and rebuilt projections",
            report.replay.rebuild_differences
        ));
    }
    if !report.service_clean_exit {
        warnings.push("cpor serve did not exit 0 after SIGTERM".to_string());
    }
    warnings
}

/// The raw log at every batch size of [`raw_batches`].
fn raw_series(
    dir: &Path,
    seed: u64,
    sizes: &Sizes,
    round: &str,
) -> anyhow::Result<Vec<RawFigures>> {
    let mut series = Vec::new();
    for batch in raw_batches() {
        let commands = match batch {
            1 => sizes.raw_single_commands,
            RAW_SMALL_BATCH => sizes.raw_commands / 4,
            _ => sizes.raw_commands,
        };
        let data = dir.join(format!("raw-{batch}-{round}"));
        let figures = raw_log(&data, seed, commands, batch)?;
        let _ = std::fs::remove_dir_all(&data);
        say(format!(
            "raw log ({round}), {batch} commands per flush: {} commands/s ({} events/s)",
            crate::report::fmt_int(figures.per_s()),
            crate::report::fmt_int(figures.events_per_s())
        ));
        series.push(figures);
    }
    Ok(series)
}

/// Parses requests as the service's wire layer does; those it refuses
/// never reach the writer and are left out.
fn parse_commands(reqs: &[Req]) -> Vec<(cpor_domain::command::CommandEnvelope, String)> {
    reqs.iter()
        .filter_map(|req| match wire::parse(&req.tail, &req.payload()) {
            Ok(Request::Command {
                envelope,
                fingerprint,
            }) => Some((envelope, fingerprint)),
            _ => None,
        })
        .collect()
}

/// The writer alone on a fresh log: the reference data first (untimed),
/// then the mix of [`RAW_LANES`] interleaved clients, `batch` commands per
/// commit and flush.
pub fn raw_log(dir: &Path, seed: u64, commands: usize, batch: usize) -> anyhow::Result<RawFigures> {
    let mut planner = Planner::new(seed);
    let mut setup = planner.partners();
    let (reference, scripts) = plan_clients(&mut planner, RAW_LANES, commands.div_ceil(RAW_LANES));
    setup.extend(reference);
    let setup = parse_commands(&setup);
    let mut mix = parse_commands(&interleave(scripts));
    mix.truncate(commands);

    let mut writer = Writer::open(dir)?;
    let mut appender = writer.begin();
    let now = chrono::Utc::now();
    for (envelope, fingerprint) in &setup {
        writer.command(&mut appender, envelope, fingerprint, now, true)?;
    }
    writer.commit(appender)?;
    writer.flush()?;
    let before = writer.log().head().position;

    let started = Instant::now();
    for chunk in mix.chunks(batch.max(1)) {
        let mut appender = writer.begin();
        let now = chrono::Utc::now();
        for (envelope, fingerprint) in chunk {
            if let Outcome::Refused("DUPLICATE") =
                writer.command(&mut appender, envelope, fingerprint, now, true)?
            {
                bail!("the raw log mix repeats a command id");
            }
        }
        writer.commit(appender)?;
        writer.flush()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RawFigures {
        batch,
        commands: mix.len() as u64,
        events: writer.log().head().position - before,
        seconds,
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Samples {
    service: ProcSample,
    nats: ProcSample,
    bench: ProcSample,
}

fn samples(service: u32, nats: u32) -> Samples {
    Samples {
        service: procfs::sample(service).unwrap_or_default(),
        nats: procfs::sample(nats).unwrap_or_default(),
        bench: procfs::sample(std::process::id()).unwrap_or_default(),
    }
}

async fn wait_echo(client: &async_nats::Client, echo: &mut Owned) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let request = client.request(ECHO_SUBJECT, bytes::Bytes::from_static(b"{}"));
        if let Ok(Ok(_)) = tokio::time::timeout(processes::HEALTH_REPLY_TIMEOUT, request).await {
            return Ok(());
        }
        echo.check_alive()?;
        if started.elapsed() > ECHO_START_TIMEOUT {
            bail!("the echo responder did not answer in {ECHO_START_TIMEOUT:?}");
        }
        tokio::time::sleep(processes::HEALTH_POLL_EVERY).await;
    }
}

/// Echo ceiling and service at each level. Returns the idle service's RSS.
async fn end_to_end(
    options: &Options,
    sizes: &Sizes,
    nats: &NatsServer,
    dir: &Path,
    ticks: u64,
    report: &mut Report,
) -> anyhow::Result<f64> {
    let mut service = processes::start_service(
        &options.cpor_bin,
        &nats.url,
        &dir.join("service-data"),
        SERVICE_PREFIX,
        dir.join("cpor-serve.log"),
    )?;
    let mut echo = processes::start_echo(
        &options.bench_exe,
        &nats.url,
        ECHO_SUBJECT,
        dir.join("echo.log"),
    )?;
    let control = async_nats::connect(&nats.url)
        .await
        .context("connect to nats-server")?;
    processes::wait_healthy(
        &control,
        SERVICE_PREFIX,
        &mut service,
        SERVICE_START_TIMEOUT,
    )
    .await?;
    wait_echo(&control, &mut echo).await?;
    let idle = procfs::sample(service.pid()).unwrap_or_default();

    // Plan everything up front (disjoint keys per level), so no level pays
    // for building requests while it is timed.
    let mut planner = Planner::new(options.seed ^ 0x5EED);
    let mut reference = planner.partners();
    let mut levels = Vec::new();
    for &(clients, commands) in &sizes.levels {
        let (level_reference, scripts) =
            plan_clients(&mut planner, clients, commands.div_ceil(clients));
        reference.extend(level_reference);
        let prepared: Vec<Vec<Prepared>> = scripts
            .iter()
            .map(|s| s.iter().map(|r| Prepared::new(SERVICE_PREFIX, r)).collect())
            .collect();
        levels.push((clients, prepared));
    }
    let connections = load::connect(&nats.url, LEVEL_CLIENTS[2]).await?;

    load_reference(&connections, &control, &reference, report).await?;
    for (clients, scripts) in levels {
        let figures = run_level(
            &connections,
            &control,
            (&mut service, &mut echo),
            nats,
            (clients, scripts),
            sizes.level_time_cap,
            ticks,
        )
        .await?;
        report.levels.push(figures);
    }
    report.service_clean_exit = service.terminate();
    echo.kill();
    Ok(mib(idle.rss_kib))
}

/// Loads the reference data (partners, tenants, subscriptions) every level
/// needs, and waits until it is published.
async fn load_reference(
    connections: &[async_nats::Client],
    control: &async_nats::Client,
    reference: &[Req],
    report: &mut Report,
) -> anyhow::Result<()> {
    let reference_scripts = split_round_robin(
        reference
            .iter()
            .map(|r| Prepared::new(SERVICE_PREFIX, r))
            .collect(),
        REFERENCE_CLIENTS,
    );
    let loaded = load::run(connections, reference_scripts, REFERENCE_TIME_CAP, true).await;
    report.reference_commands = loaded.completed;
    report.reference_per_s = loaded.per_second();
    if loaded.unexpected + loaded.failed > 0 {
        bail!(
            "reference data refused: {} unexpected, {} failed, e.g. {:?}",
            loaded.unexpected,
            loaded.failed,
            loaded.examples
        );
    }
    processes::wait_published(control, SERVICE_PREFIX, RELAY_PUBLISH_TIMEOUT).await?;
    say(format!(
        "reference data: {} commands at {}/s",
        loaded.completed,
        crate::report::fmt_int(loaded.per_second())
    ));

    Ok(())
}

/// One load level: the echo ceiling before and after, the service between,
/// with the CPU, memory and relay figures of the same interval.
async fn run_level(
    connections: &[async_nats::Client],
    control: &async_nats::Client,
    (service, echo): (&mut processes::Owned, &mut processes::Owned),
    nats: &NatsServer,
    (clients, scripts): (usize, Vec<Vec<Prepared>>),
    level_time_cap: Duration,
    ticks: u64,
) -> anyhow::Result<LevelFigures> {
    let echo_scripts = to_echo(&scripts);
    let echoed = load::run(connections, echo_scripts.clone(), level_time_cap, false).await;
    echo.check_alive()?;

    let position_before = processes::health(control, SERVICE_PREFIX)
        .await
        .map_or(0, |h| h.0);
    let before = samples(service.pid(), nats.process.pid());
    let result = load::run(connections, scripts, level_time_cap, true).await;
    let after = samples(service.pid(), nats.process.pid());
    service.check_alive()?;
    let (publish, position_after) =
        processes::wait_published(control, SERVICE_PREFIX, RELAY_PUBLISH_TIMEOUT).await?;
    // The echo ceiling again right after: the best of the two counts.
    let echoed_after = load::run(connections, echo_scripts, level_time_cap, false).await;
    echo.check_alive()?;
    let echoed = if echoed_after.per_second() > echoed.per_second() {
        echoed_after
    } else {
        echoed
    };
    let wall = result.elapsed;
    let figures = LevelFigures {
        clients,
        echo_rps: echoed.per_second(),
        echo_p50_ms: echoed.latency_ms(0.50),
        echo_p99_ms: echoed.latency_ms(0.99),
        commands: result.completed,
        cmds_per_s: result.per_second(),
        p50_ms: result.latency_ms(0.50),
        p99_ms: result.latency_ms(0.99),
        p999_ms: result.latency_ms(0.999),
        max_ms: result.latency_ms(1.0),
        refused: result.refused,
        unexpected: result.unexpected,
        failed: result.failed,
        examples: result.examples.clone(),
        events: position_after.saturating_sub(position_before),
        relay_publish_ms: publish.as_secs_f64() * 1000.0,
        service_cpu_cores: procfs::cores_used(before.service, after.service, wall, ticks),
        service_cpu_us_per_cmd: procfs::cpu_seconds(before.service, after.service, ticks) * 1e6
            / result.completed.max(1) as f64,
        nats_cpu_cores: procfs::cores_used(before.nats, after.nats, wall, ticks),
        bench_cpu_cores: procfs::cores_used(before.bench, after.bench, wall, ticks),
        service_rss_mib: mib(after.service.rss_kib),
        service_peak_rss_mib: mib(after.service.hwm_kib),
    };
    say(format!(
        "{clients} clients: echo {}/s, service {} cmds/s, p99 {:.2} ms, relay +{:.0} ms, {} unexpected",
        crate::report::fmt_int(figures.echo_rps),
        crate::report::fmt_int(figures.cmds_per_s),
        figures.p99_ms,
        figures.relay_publish_ms,
        figures.unexpected + figures.failed
    ));
    Ok(figures)
}

/// The same requests sent to the echo responder instead of the service.
fn to_echo(scripts: &[Vec<Prepared>]) -> Vec<Vec<Prepared>> {
    scripts
        .iter()
        .map(|s| {
            s.iter()
                .map(|p| Prepared {
                    subject: ECHO_SUBJECT.to_string(),
                    ..p.clone()
                })
                .collect()
        })
        .collect()
}

fn split_round_robin(items: Vec<Prepared>, parts: usize) -> Vec<Vec<Prepared>> {
    let mut out: Vec<Vec<Prepared>> = (0..parts).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        out[i % parts].push(item);
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Generates the log, rebuilds its projections, cold-starts a service on it.
fn replay(
    options: &Options,
    sizes: &Sizes,
    nats: &NatsServer,
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<ReplayFigures> {
    let data = dir.join("replay-data");
    let report_every = (sizes.replay_events / 4).max(1);
    let mut next_report = report_every;
    let generated = try_generate_log(&data, sizes.replay_events, options.seed, |position| {
        if position >= next_report {
            say(format!("generating: {position} events"));
            next_report += report_every;
        }
    })?;
    let mut figures = ReplayFigures {
        events: generated.events,
        claims: generated.claims,
        cases: generated.cases,
        generate_s: generated.elapsed.as_secs_f64(),
        data_dir_mib: procfs::dir_bytes(&data) as f64 / (1024.0 * 1024.0),
        state_bytes: generated.state_bytes,
        ..ReplayFigures::default()
    };
    say(format!(
        "generated {} events ({} claims) in {:.1} s",
        generated.events, generated.claims, figures.generate_s
    ));

    {
        let reader = LogReader::open_with_cache(&data, cpor_log::SLED_CACHE_BYTES_SCAN)?;
        let started = Instant::now();
        let rebuilt = cpor_log::rebuild_projections(&reader, |_| {})?;
        figures.rebuild_s = started.elapsed().as_secs_f64();
        figures.rebuild_differences = rebuilt.difference_count;
        say(format!(
            "rebuild: {:.2} s, {} events/s",
            figures.rebuild_s,
            crate::report::fmt_int(figures.rebuild_events_per_s())
        ));
    } // the reader holds sled's lock on the data dir: released here

    if options.audit_tools {
        figures.audit_tools = time_audit_tools(options, &data, dir);
    }
    cold_start(options, nats, &data, dir, runtime, &mut figures)?;
    Ok(figures)
}

/// Runs `cpor TOOL --data-dir DIR EXTRA…`, output discarded; its wall time.
fn time_tool(bin: &Path, tool: &str, data: &Path, extra: &[String]) -> Result<f64, String> {
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .arg(tool)
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(started.elapsed().as_secs_f64()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut err);
                }
                let first = err.lines().next().unwrap_or("").to_string();
                return Err(format!("failed ({status}): {first}"));
            }
            Ok(None) if started.elapsed() > AUDIT_TOOL_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {AUDIT_TOOL_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
