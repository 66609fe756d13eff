//! The harness: raw log, then echo ceiling and service side by side at each
//! concurrency level, then replay; every figure beside its ceiling from the
//! same run.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use cpor_nats::wire::{self, Request};

use crate::load::{self, LoadResult, Prepared};
use crate::processes::{self, NatsServer, Owned};
use crate::procfs::{self, ProcSample};
use crate::report::{GrowthFigures, LevelFigures, RawFigures, ReplayFigures, Report};
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
    /// Claims stored before each point of the growth curve.
    pub growth_claims: Vec<u64>,
    /// Claims read one by one (`qry.claim.get`) at each growth point.
    pub claim_reads: usize,
    /// CPUs the service is pinned to for the pinned runs of the top level.
    pub cores: Vec<usize>,
}

/// Concurrency levels (issue 5: 1, 16 and 64 clients).
pub const LEVEL_CLIENTS: [usize; 3] = [1, 16, 64];

pub const SMOKE_LEVEL_COMMANDS: [usize; 3] = [40, 160, 384];
pub const SMOKE_LEVEL_TIME_CAP: Duration = Duration::from_secs(20);
pub const SMOKE_RAW_COMMANDS: usize = 600;
pub const SMOKE_RAW_SINGLE_COMMANDS: usize = 60;

pub const QUICK_LEVEL_COMMANDS: [usize; 3] = [400, 4_000, 12_000];
pub const QUICK_LEVEL_TIME_CAP: Duration = Duration::from_secs(6);
pub const QUICK_RAW_COMMANDS: usize = 12_000;
pub const QUICK_RAW_SINGLE_COMMANDS: usize = 300;

pub const FULL_LEVEL_COMMANDS: [usize; 3] = [3_000, 30_000, 100_000];
pub const FULL_LEVEL_TIME_CAP: Duration = Duration::from_secs(45);
pub const FULL_RAW_COMMANDS: usize = 60_000;
pub const FULL_RAW_SINGLE_COMMANDS: usize = 2_000;

/// The growth curve's points (claims stored; 0 = an empty data dir).
pub const SMOKE_GROWTH_CLAIMS: [u64; 2] = [0, 300];
pub const QUICK_GROWTH_CLAIMS: [u64; 3] = [0, 2_000, 10_000];
pub const FULL_GROWTH_CLAIMS: [u64; 4] = [0, 10_000, 100_000, 1_000_000];
pub const SMOKE_CLAIM_READS: usize = 200;
pub const QUICK_CLAIM_READS: usize = 2_000;
pub const FULL_CLAIM_READS: usize = 10_000;
/// CPUs of the pinned runs (issue 8: 1 and 2 cores).
pub const PINNED_CORES: [usize; 2] = [1, 2];
/// The echo responder with two JetStream publishes per request.
pub const ECHO_JS_SUBJECT: &str = "benchechojs.request";

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
pub const ECHO_SUBJECT: &str = "benchecho.request";
/// Waits.
pub const SERVICE_START_TIMEOUT: Duration = Duration::from_secs(60);
pub const RELAY_PUBLISH_TIMEOUT: Duration = Duration::from_secs(300);
pub const ECHO_START_TIMEOUT: Duration = Duration::from_secs(15);
/// `--audit-tools`: the longest one tool may run.
pub const AUDIT_TOOL_TIMEOUT: Duration = Duration::from_secs(3_600);
/// The default workload seed.
pub const DEFAULT_SEED: u64 = 20_261_125;

impl Sizes {
    pub fn of(mode: Mode) -> Sizes {
        let (commands, cap, raw, single) = match mode {
            Mode::Smoke => (
                SMOKE_LEVEL_COMMANDS,
                SMOKE_LEVEL_TIME_CAP,
                SMOKE_RAW_COMMANDS,
                SMOKE_RAW_SINGLE_COMMANDS,
            ),
            Mode::Quick => (
                QUICK_LEVEL_COMMANDS,
                QUICK_LEVEL_TIME_CAP,
                QUICK_RAW_COMMANDS,
                QUICK_RAW_SINGLE_COMMANDS,
            ),
            Mode::Full => (
                FULL_LEVEL_COMMANDS,
                FULL_LEVEL_TIME_CAP,
                FULL_RAW_COMMANDS,
                FULL_RAW_SINGLE_COMMANDS,
            ),
        };
        let (growth_claims, claim_reads, cores) = match mode {
            Mode::Smoke => (SMOKE_GROWTH_CLAIMS.to_vec(), SMOKE_CLAIM_READS, vec![1]),
            Mode::Quick => (
                QUICK_GROWTH_CLAIMS.to_vec(),
                QUICK_CLAIM_READS,
                PINNED_CORES.to_vec(),
            ),
            Mode::Full => (
                FULL_GROWTH_CLAIMS.to_vec(),
                FULL_CLAIM_READS,
                PINNED_CORES.to_vec(),
            ),
        };
        Sizes {
            levels: LEVEL_CLIENTS.iter().copied().zip(commands).collect(),
            level_time_cap: cap,
            raw_commands: raw,
            raw_single_commands: single,
            growth_claims,
            claim_reads,
            cores,
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
    /// Keep the temp dir (data dirs, logs) for inspection.
    pub keep: bool,
    /// The workspace, for `git rev-parse`.
    pub workspace: PathBuf,
    /// How the `cpor` binary came to be (rebuilt, build failed, given).
    pub cpor_build: String,
    /// `--cores`: CPUs of the pinned runs instead of the mode's.
    pub cores: Option<Vec<usize>>,
    /// `--growth`: the growth curve's points instead of the mode's.
    pub growth: Option<Vec<u64>>,
}

fn say(text: impl AsRef<str>) {
    eprintln!("cpor-bench: {}", text.as_ref());
}

/// Runs everything and returns the figures.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut sizes = Sizes::of(options.mode);
    if let Some(cores) = &options.cores {
        sizes.cores = cores.clone();
    }
    if let Some(growth) = &options.growth {
        sizes.growth_claims = growth.clone();
    }
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

    report.growth = crate::growth::growth(options, &sizes, &nats, &dir, &runtime)?;
    report.replay = replay_figures(&report.growth);
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

/// The replay figures: those of the largest point of the growth curve.
fn replay_figures(curve: &[GrowthFigures]) -> ReplayFigures {
    let Some(largest) = curve.iter().max_by_key(|g| g.claims) else {
        return ReplayFigures::default();
    };
    let seconds = |tool: &crate::report::ToolRun| tool.0.clone().unwrap_or(0.0);
    ReplayFigures {
        events: largest.events,
        claims: largest.claims,
        cases: largest.cases,
        generate_s: largest.generate_s,
        state_bytes: largest.state_bytes,
        data_dir_mib: largest.disk_bytes as f64 / (1024.0 * 1024.0),
        rebuild_s: seconds(&largest.rebuild_s),
        // `cpor rebuild` exits non-zero on any difference.
        rebuild_differences: u64::from(largest.rebuild_s.0.is_err()),
        cold_start_s: largest.first_query_s,
        rss_mib: largest.rss_served_mib,
        peak_rss_mib: largest.peak_rss_mib,
        audit_tools: vec![
            ("export".to_string(), largest.export_s.0.clone()),
            ("verify".to_string(), largest.verify_s.0.clone()),
            ("rebuild".to_string(), largest.rebuild_s.0.clone()),
        ],
        ..ReplayFigures::default()
    }
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
    let disk_syncs_per_s = disk_syncs_per_s(dir)?;

    let mut flushes = 0;
    let mut flush_seconds = 0.0;
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
        let flush_started = Instant::now();
        writer.flush()?;
        flush_seconds += flush_started.elapsed().as_secs_f64();
        flushes += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(RawFigures {
        batch,
        commands: mix.len() as u64,
        events: writer.log().head().position - before,
        seconds,
        flushes,
        flush_seconds,
        disk_syncs_per_s,
    })
}

/// Durable appends the disk under `dir` makes per second: [`DISK_PROBE_APPENDS`]
/// writes of 16 KiB (a group commit's buffer is of that order), each
/// followed by `fdatasync`, one after the other, in a scratch file that is
/// removed after. The ceiling the raw log is held against: a writer that
/// waits for each flush cannot make more group commits per second.
///
/// Errors: the scratch file cannot be written or synced.
pub fn disk_syncs_per_s(dir: &Path) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("disk-probe");
    let mut file = std::fs::File::create(&path).context("create the disk probe file")?;
    let block = vec![0x5a_u8; 16 * 1024];
    let started = Instant::now();
    for _ in 0..DISK_PROBE_APPENDS {
        file.write_all(&block).context("write the disk probe")?;
        file.sync_data().context("fdatasync the disk probe")?;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).context("remove the disk probe file")?;
    Ok(DISK_PROBE_APPENDS as f64 / seconds.max(1e-9))
}

/// Appends [`disk_syncs_per_s`] times: enough to average out a slow one,
/// well under a second on an SSD.
pub const DISK_PROBE_APPENDS: usize = 200;

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

async fn wait_echo(
    client: &async_nats::Client,
    subject: &'static str,
    echo: &mut Owned,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let request = client.request(subject, bytes::Bytes::from_static(b"{}"));
        if let Ok(Ok(_)) = tokio::time::timeout(processes::HEALTH_REPLY_TIMEOUT, request).await {
            return Ok(());
        }
        echo.check_alive()?;
        if started.elapsed() > ECHO_START_TIMEOUT {
            bail!("the {subject} responder did not answer in {ECHO_START_TIMEOUT:?}");
        }
        tokio::time::sleep(processes::HEALTH_POLL_EVERY).await;
    }
}

/// What every load level shares: the clients' connections, a control
/// connection, the nats-server, the time cap, the clock tick rate.
pub struct Bench<'a> {
    pub connections: &'a [async_nats::Client],
    pub control: &'a async_nats::Client,
    pub nats: &'a NatsServer,
    pub time_cap: Duration,
    pub ticks: u64,
}

/// The two ceiling responders of a run.
struct Echoes {
    plain: Owned,
    js: Owned,
}

impl Echoes {
    async fn start(options: &Options, nats: &NatsServer, dir: &Path) -> anyhow::Result<Echoes> {
        let exe = &options.bench_exe;
        let plain =
            processes::start_echo(exe, "echo", &nats.url, ECHO_SUBJECT, dir.join("echo.log"))?;
        let js = processes::start_echo(
            exe,
            "echo-js",
            &nats.url,
            ECHO_JS_SUBJECT,
            dir.join("echo-js.log"),
        )?;
        let mut echoes = Echoes { plain, js };
        let control = async_nats::connect(&nats.url).await?;
        wait_echo(&control, ECHO_SUBJECT, &mut echoes.plain).await?;
        wait_echo(&control, ECHO_JS_SUBJECT, &mut echoes.js).await?;
        Ok(echoes)
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        self.plain.check_alive()?;
        self.js.check_alive()
    }
}

/// A planned level: its clients, and each client's script.
pub type PlannedLevel = (usize, Vec<Vec<Prepared>>);

/// Plans `levels` (clients, commands) with disjoint keys: the reference
/// data they need, and each level's scripts addressed to `prefix`.
pub fn plan_levels(
    planner: &mut Planner,
    prefix: &str,
    levels: &[(usize, usize)],
) -> (Vec<Req>, Vec<PlannedLevel>) {
    let mut reference = planner.partners();
    let mut planned = Vec::new();
    for &(clients, commands) in levels {
        let (level_reference, scripts) = plan_clients(planner, clients, commands.div_ceil(clients));
        reference.extend(level_reference);
        let prepared: Vec<Vec<Prepared>> = scripts
            .iter()
            .map(|s| s.iter().map(|r| Prepared::new(prefix, r)).collect())
            .collect();
        planned.push((clients, prepared));
    }
    (reference, planned)
}

/// Echo ceilings and service at each level, then the top level again with
/// the service pinned to each of `sizes.cores`. Returns the idle RSS.
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
    let mut echoes = Echoes::start(options, nats, dir).await?;
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
    let idle = procfs::sample(service.pid()).unwrap_or_default();

    // Plan everything up front (disjoint keys per level), so no level pays
    // for building requests while it is timed.
    let top = sizes.levels[sizes.levels.len() - 1];
    let mut all = sizes.levels.clone();
    all.extend(sizes.cores.iter().map(|_| top));
    let mut planner = Planner::new(options.seed ^ 0x5EED);
    let (reference, mut levels) = plan_levels(&mut planner, SERVICE_PREFIX, &all);
    let pinned = levels.split_off(sizes.levels.len());
    let connections = load::connect(&nats.url, LEVEL_CLIENTS[2]).await?;
    let bench = Bench {
        connections: &connections,
        control: &control,
        nats,
        time_cap: sizes.level_time_cap,
        ticks,
    };
    let loaded = load_reference(&bench, SERVICE_PREFIX, &reference).await?;
    (report.reference_commands, report.reference_per_s) = loaded;
    for (clients, scripts) in levels {
        let figures = run_level(&bench, &mut service, &mut echoes, (clients, scripts), 0).await?;
        report.levels.push(figures);
    }
    for (&cores, (clients, scripts)) in sizes.cores.iter().zip(pinned) {
        processes::pin(service.pid(), cores)?;
        let figures =
            run_level(&bench, &mut service, &mut echoes, (clients, scripts), cores).await?;
        report.pinned.push(figures);
    }
    report.service_clean_exit = service.terminate();
    Ok(mib(idle.rss_kib))
}

/// Loads reference data (partners, tenants, subscriptions) into the
/// service on `prefix` and waits until it is published. Returns the
/// commands sent and their rate.
pub async fn load_reference(
    bench: &Bench<'_>,
    prefix: &str,
    reference: &[Req],
) -> anyhow::Result<(u64, f64)> {
    let reference_scripts = split_round_robin(
        reference.iter().map(|r| Prepared::new(prefix, r)).collect(),
        REFERENCE_CLIENTS,
    );
    let loaded = load::run(
        bench.connections,
        reference_scripts,
        REFERENCE_TIME_CAP,
        true,
    )
    .await;
    if loaded.unexpected + loaded.failed > 0 {
        bail!(
            "reference data refused: {} unexpected, {} failed, e.g. {:?}",
            loaded.unexpected,
            loaded.failed,
            loaded.examples
        );
    }
    processes::wait_published(bench.control, prefix, RELAY_PUBLISH_TIMEOUT).await?;
    say(format!(
        "reference data: {} commands at {}/s",
        loaded.completed,
        crate::report::fmt_int(loaded.per_second())
    ));
    Ok((loaded.completed, loaded.per_second()))
}

/// The better of two runs of a ceiling (more requests per second).
fn best(a: LoadResult, b: LoadResult) -> LoadResult {
    if b.per_second() > a.per_second() {
        b
    } else {
        a
    }
}

/// One load level: both echo ceilings before and after (the better of the
/// two counts each), the service between. `cores`: what it is pinned to
/// (0: not pinned).
async fn run_level(
    bench: &Bench<'_>,
    service: &mut Owned,
    echoes: &mut Echoes,
    (clients, scripts): (usize, Vec<Vec<Prepared>>),
    cores: usize,
) -> anyhow::Result<LevelFigures> {
    let (cap, connections) = (bench.time_cap, bench.connections);
    let plain_scripts = retarget(&scripts, ECHO_SUBJECT);
    let js_scripts = retarget(&scripts, ECHO_JS_SUBJECT);
    let plain = load::run(connections, plain_scripts.clone(), cap, false).await;
    let js = load::run(connections, js_scripts.clone(), cap, false).await;
    echoes.check_alive()?;
    let mut figures = measure_service(bench, service, SERVICE_PREFIX, scripts).await?;
    let plain = best(
        plain,
        load::run(connections, plain_scripts, cap, false).await,
    );
    let js = best(js, load::run(connections, js_scripts, cap, false).await);
    echoes.check_alive()?;
    figures.cores = cores;
    figures.echo_rps = plain.per_second();
    figures.echo_p50_ms = plain.latency_ms(0.50);
    figures.echo_p99_ms = plain.latency_ms(0.99);
    figures.echo_js_rps = js.per_second();
    figures.echo_js_p99_ms = js.latency_ms(0.99);
    let pinned = match cores {
        0 => String::new(),
        n => format!(" (service pinned to {n} cores)"),
    };
    say(format!(
        "{clients} clients{pinned}: echo {}/s, echo-js {}/s, service {} cmds/s, p99 {:.2} ms, \
         {:.0} us CPU/cmd, relay +{:.0} ms, {} unexpected",
        crate::report::fmt_int(figures.echo_rps),
        crate::report::fmt_int(figures.echo_js_rps),
        crate::report::fmt_int(figures.cmds_per_s),
        figures.p99_ms,
        figures.service_cpu_us_per_cmd,
        figures.relay_publish_ms,
        figures.unexpected + figures.failed
    ));
    Ok(figures)
}

/// The service alone under `scripts` (one closed-loop client each): its
/// throughput and latency, CPU (per process and per thread), memory, and
/// how long the relay then took to publish everything.
pub async fn measure_service(
    bench: &Bench<'_>,
    service: &mut Owned,
    prefix: &str,
    scripts: Vec<Vec<Prepared>>,
) -> anyhow::Result<LevelFigures> {
    let clients = scripts.len();
    let position_before = processes::health(bench.control, prefix)
        .await
        .map_or(0, |h| h.0);
    let before = samples(service.pid(), bench.nats.process.pid());
    let threads_before = procfs::thread_samples(service.pid());
    let result = load::run(bench.connections, scripts, bench.time_cap, true).await;
    let after = samples(service.pid(), bench.nats.process.pid());
    let threads_after = procfs::thread_samples(service.pid());
    service.check_alive()?;
    let (publish, position_after) =
        processes::wait_published(bench.control, prefix, RELAY_PUBLISH_TIMEOUT).await?;
    let (wall, ticks) = (result.elapsed, bench.ticks);
    Ok(LevelFigures {
        clients,
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
        threads: procfs::thread_shares(&threads_before, &threads_after, wall, ticks),
        ..LevelFigures::default()
    })
}

/// The same requests sent to another subject (an echo responder).
fn retarget(scripts: &[Vec<Prepared>], subject: &str) -> Vec<Vec<Prepared>> {
    scripts
        .iter()
        .map(|s| {
            s.iter()
                .map(|p| Prepared {
                    subject: subject.to_string(),
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

/// Runs `cpor TOOL --data-dir DIR EXTRA…`, output discarded; its wall time.
pub fn time_tool(bin: &Path, tool: &str, data: &Path, extra: &[String]) -> Result<f64, String> {
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
