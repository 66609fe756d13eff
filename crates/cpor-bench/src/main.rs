//! `cpor-bench`: run the benchmarks, or generate a log.
//!
//! ```text
//! cargo run --release -p cpor-bench -- [--quick | --smoke] [--json FILE]
//!     [--cores 1,2] [--growth 0,10000,100000,1000000]
//! cargo run --release -p cpor-bench -- generate --data-dir DIR (--events N | --claims N)
//!     [--seed S] [--start RFC3339]
//! cargo run --release -p cpor-bench -- raw-log [--commands N] [--batch 64] [--seed S]
//! ```

/// jemalloc, as `cpor` (see its `main.rs` for why): the generator, the raw
/// log and the in-process ceilings allocate as the service does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use cpor_bench::run::{self, Mode, Options, DEFAULT_SEED};

#[derive(Parser)]
#[command(
    name = "cpor-bench",
    about = "Benchmarks of the CPOR claim service against ceilings measured in the same run",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Smaller counts: finishes within a minute.
    #[arg(long, conflicts_with = "smoke")]
    quick: bool,
    /// Tiny counts, a few seconds (the test that keeps the harness working).
    #[arg(long)]
    smoke: bool,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Workload seed (same seed, same requests).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// The `cpor` binary (default: $CPOR_BIN, else `cpor` beside this executable).
    #[arg(long, value_name = "PATH")]
    cpor_bin: Option<PathBuf>,
    /// The nats-server binary (default: on PATH, else /usr/sbin/nats-server).
    #[arg(long, value_name = "PATH")]
    nats_server: Option<PathBuf>,
    /// Do not run `cargo build --release -p cpor` first.
    #[arg(long)]
    no_build: bool,
    /// CPUs to pin `cpor serve` to (taskset), one run of the top level
    /// each: `--cores 1,2` (the default outside --smoke).
    #[arg(long, value_name = "N,…", value_delimiter = ',')]
    cores: Option<Vec<usize>>,
    /// Claims stored at each point of the growth curve (0 = empty):
    /// `--growth 0,10000,100000,1000000` (the full mode's default).
    #[arg(long, value_name = "CLAIMS,…", value_delimiter = ',')]
    growth: Option<Vec<u64>>,
    /// Keep the temp dir (data dirs and process logs) after the run.
    #[arg(long)]
    keep: bool,
}

#[derive(Subcommand)]
enum Sub {
    /// Write a realistic log of at least N events into an empty data dir.
    Generate {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Stop at the scheduler step (1,000 commands) that reaches N events.
        #[arg(
            long,
            value_name = "N",
            required_unless_present = "claims",
            conflicts_with = "claims"
        )]
        events: Option<u64>,
        /// Stop at the scheduler step (1,000 commands) that reaches N claims.
        #[arg(long, value_name = "N")]
        claims: Option<u64>,
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
        /// Time of the first command (RFC 3339; default 2026-01-05T08:00:00Z,
        /// 15 s per command from there). A log to serve with the wall clock
        /// should end after it: e.g. 2100-01-04T08:00:00Z, as the growth
        /// curve's logs.
        #[arg(long, value_name = "RFC3339")]
        start: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The raw log alone (the writer without NATS, on a fresh log in a
    /// temporary directory): commands/s and events/s at one group-commit
    /// size (issue 8's target: >= 100k events/s at 64 commands per flush),
    /// with the CPU time the process spent.
    RawLog {
        /// Commands of the mix (after the untimed reference data).
        #[arg(long, default_value_t = 100_000)]
        commands: usize,
        /// Commands per commit and flush.
        #[arg(long, default_value_t = cpor_bench::report::TARGET_RAW_BATCH)]
        batch: usize,
        #[arg(long, default_value_t = DEFAULT_SEED)]
        seed: u64,
    },
    /// Where the memory of an opened log goes: RSS after `Log::open` (decision
    /// state plus sled's cache), after dropping the store (state alone), and
    /// the state's estimated heap size.
    #[command(hide = true)]
    InspectMemory {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Where a data dir's bytes go (issue 8 target 5): live entries by tree
    /// and kind of record, beside the files and the events' canonical bytes.
    /// Opens the store: run it on a stopped service's data dir.
    #[command(hide = true)]
    StoreSpace {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Cold start and memory of `cpor serve` on a copy of an existing data
    /// dir: time to the first answered query, RSS after listing and
    /// reading claims; two starts in a row (the second from the state
    /// snapshot the first stop wrote).
    #[command(hide = true)]
    ColdStart {
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The `cpor` binary to measure (default: beside this executable).
        #[arg(long, value_name = "PATH")]
        cpor_bin: Option<PathBuf>,
        /// Claims read one by one after the listing.
        #[arg(long, default_value_t = 10_000)]
        reads: usize,
    },
    /// A trivial request/reply responder (the echo ceiling); runs until killed.
    #[command(hide = true)]
    Echo {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        subject: String,
    },
    /// The echo responder that makes two JetStream publishes per request
    /// (the second ceiling); runs until killed.
    #[command(hide = true)]
    EchoJs {
        #[arg(long)]
        nats_url: String,
        #[arg(long)]
        subject: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Sub::Generate {
            data_dir,
            events,
            claims,
            seed,
            start,
        }) => {
            let target = match (events, claims) {
                (_, Some(claims)) => cpor_bench::Target::Claims(claims),
                (events, None) => cpor_bench::Target::Events(events.unwrap_or(0)),
            };
            let spec = cpor_bench::GenerateSpec {
                target,
                seed,
                start: start.unwrap_or_else(cpor_bench::generate::generate_start),
            };
            generate(&data_dir, spec)
        }
        Some(Sub::Echo { nats_url, subject }) => echo(&nats_url, &subject, false),
        Some(Sub::EchoJs { nats_url, subject }) => echo(&nats_url, &subject, true),
        Some(Sub::InspectMemory { data_dir }) => inspect_memory(&data_dir),
        Some(Sub::StoreSpace { data_dir }) => store_space(&data_dir),
        Some(Sub::RawLog {
            commands,
            batch,
            seed,
        }) => raw_log(commands, batch, seed),
        Some(Sub::ColdStart {
            data_dir,
            cpor_bin,
            reads,
        }) => cold_start(&data_dir, cpor_bin, reads),
        None => bench(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cpor-bench: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn generate(dir: &Path, spec: cpor_bench::GenerateSpec) -> anyhow::Result<()> {
    // Progress every tenth of the target (claims are about a sixth of the events).
    let step = match spec.target {
        cpor_bench::Target::Events(n) => n / 10,
        cpor_bench::Target::Claims(n) => n * 6 / 10,
    }
    .max(1);
    let mut next = step;
    let generated = cpor_bench::try_generate(dir, spec, |position| {
        if position >= next {
            eprintln!("cpor-bench: {position} events");
            next += step;
        }
    })
    .with_context(|| format!("generate a log in {}", dir.display()))?;
    println!(
        "{} events, {} claims, {} arbitration cases, {} tenants, {} subscriptions, {} partners; \
         {} commands ({} refused), {} deadline events; last event at {}; {:.1} s ({:.0} events/s)",
        generated.events,
        generated.claims,
        generated.cases,
        generated.tenants,
        generated.subscriptions,
        generated.partners,
        generated.commands,
        generated.refused,
        generated.deadline_events,
        generated
            .last_time
            .map(|t| t.to_rfc3339())
            .unwrap_or_default(),
        generated.elapsed.as_secs_f64(),
        generated.events as f64 / generated.elapsed.as_secs_f64().max(1e-9)
    );
    Ok(())
}

fn raw_log(commands: usize, batch: usize, seed: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let ticks = || {
        cpor_bench::procfs::sample(std::process::id())
            .unwrap_or_default()
            .cpu_ticks
    };
    let before = ticks();
    let figures = run::raw_log(&dir.path().join("raw"), seed, commands, batch)?;
    // Clock ticks are 1/100 s on Linux; the whole process (sled's threads
    // too), reference data and open included.
    let cpu_s = ticks().saturating_sub(before) as f64 / 100.0;
    println!(
        "raw log, {batch} commands per flush: {} commands, {} events in {:.2} s: \
         {:.0} commands/s, {:.0} events/s; process CPU {cpu_s:.2} s; \
         {} flushes, {:.0} % of the time waiting in them; \
         disk ceiling {:.0} events/s ({:.0} durable 16 KiB appends/s, same directory)",
        figures.commands,
        figures.events,
        figures.seconds,
        figures.per_s(),
        figures.events_per_s(),
        figures.flushes,
        100.0 * figures.flush_share(),
        figures.sync_ceiling_events_per_s(),
        figures.disk_syncs_per_s,
    );
    Ok(())
}

fn store_space(dir: &Path) -> anyhow::Result<()> {
    let reader =
        cpor_log::LogReader::open(dir).with_context(|| format!("open {}", dir.display()))?;
    let space = reader.space()?;
    let per_event = |bytes: u64| bytes as f64 / space.events.max(1) as f64;
    // What `cpor export` writes: each canonical event and a newline.
    let export = space.event_bytes + space.events;
    println!(
        "{:<24} {:>12} {:>14} {:>14} {:>10}",
        "tree/kind", "entries", "key bytes", "value bytes", "B/event"
    );
    for kind in &space.kinds {
        println!(
            "{:<24} {:>12} {:>14} {:>14} {:>10.1}",
            kind.name,
            kind.entries,
            kind.key_bytes,
            kind.value_bytes,
            per_event(kind.key_bytes + kind.value_bytes)
        );
    }
    let live = space.live_bytes();
    println!(
        "events {}: canonical export {export} B ({:.0} B/event); live entries {live} B ({:.2}× the export); \
         files {} B ({:.0} B/event, {:.2}× the export, {:.2}× the live entries)",
        space.events,
        per_event(export),
        live as f64 / export.max(1) as f64,
        space.file_bytes,
        per_event(space.file_bytes),
        space.file_bytes as f64 / export.max(1) as f64,
        space.file_bytes as f64 / live.max(1) as f64,
    );
    Ok(())
}

fn inspect_memory(dir: &Path) -> anyhow::Result<()> {
    let rss = || {
        cpor_bench::procfs::sample(std::process::id())
            .unwrap_or_default()
            .rss_kib as f64
            / 1024.0
    };
    let before = rss();
    let store_only = {
        let _reader =
            cpor_log::LogReader::open(dir).with_context(|| format!("open {}", dir.display()))?;
        rss()
    };
    let started = std::time::Instant::now();
    let (log, state) =
        cpor_log::Log::open(dir).with_context(|| format!("open {}", dir.display()))?;
    let open_s = started.elapsed().as_secs_f64();
    let opened = rss();
    let head = log.head().clone();
    drop(log);
    let state_only = rss();
    let estimate = cpor_bench::memory::state_heap_bytes(&state) as f64 / (1024.0 * 1024.0);
    let claims = state.claims.len().max(1) as f64;
    println!(
        "claims {}: open {open_s:.2} s; RSS {before:.0} MiB before, {store_only:.0} MiB with the store open \
         (not folded), {opened:.0} MiB opened and folded, {state_only:.0} MiB with the store closed again; \
         state estimated at {estimate:.0} MiB ({:.0} bytes/claim)",
        state.claims.len(),
        estimate * 1024.0 * 1024.0 / claims
    );
    // What a state snapshot costs: the writer's encoding, a start's decoding.
    let started = std::time::Instant::now();
    let encoded = cpor_log::snapshot::encode(&state, &head)?;
    let encode_s = started.elapsed().as_secs_f64();
    drop(state);
    let started = std::time::Instant::now();
    let (_, _, decoded) =
        cpor_log::snapshot::decode(encoded.bytes()).map_err(|e| anyhow::anyhow!(e))?;
    println!(
        "snapshot at position {}: {} bytes ({:.0} bytes/claim), encoded in {encode_s:.3} s, \
         decoded in {:.3} s",
        head.position,
        encoded.len(),
        encoded.len() as f64 / claims,
        started.elapsed().as_secs_f64()
    );
    drop(decoded);
    Ok(())
}

fn cold_start(dir: &Path, cpor_bin: Option<PathBuf>, reads: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("path of this executable")?;
    let bin = match cpor_bin {
        Some(bin) => bin,
        None => exe.with_file_name(format!("cpor{}", std::env::consts::EXE_SUFFIX)),
    };
    let work = tempfile::Builder::new()
        .prefix("cpor-coldstart-")
        .tempdir()?;
    let nats = cpor_bench::processes::find_nats_server()?;
    let starts = cpor_bench::coldstart::cold_starts(&bin, &nats, dir, work.path(), reads)?;
    for (round, s) in starts.iter().enumerate() {
        println!(
            "start {round}: first query after {:.2} s ({:.2} s CPU), RSS {:.0} MiB then, {:.0} MiB \
             published, {:.0} MiB after listing {} and reading {} claims (peak {:.0} MiB); clean exit {}",
            s.first_query_s,
            s.cpu_to_first_query_s,
            s.rss_first_query_mib,
            s.rss_published_mib,
            s.rss_served_mib,
            s.listed,
            s.read,
            s.peak_rss_mib,
            s.clean_exit
        );
    }
    Ok(())
}

fn echo(url: &str, subject: &str, jetstream: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if jetstream {
        runtime.block_on(cpor_bench::load::echo_js_responder(url, subject))
    } else {
        runtime.block_on(cpor_bench::load::echo_responder(url, subject))
    }
}

/// The workspace root (this crate is `crates/cpor-bench`).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The `cpor` binary and how it came to be: `--cpor-bin`, `$CPOR_BIN`,
/// else beside this executable (same target profile). From a release build
/// it is rebuilt first (a no-op when up to date) so the figures are of the
/// current code.
fn cpor_bin(cli: &Cli, mode: Mode, exe: &Path) -> anyhow::Result<(PathBuf, String)> {
    if let Some(bin) = cli.cpor_bin.clone().or_else(|| {
        std::env::var_os("CPOR_BIN")
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }) {
        if !bin.is_file() {
            bail!("the cpor binary {} does not exist", bin.display());
        }
        return Ok((bin, "given".to_string()));
    }
    let mut profile_dir = exe
        .parent()
        .context("the executable has a parent dir")?
        .to_path_buf();
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir.pop();
    }
    let bin = profile_dir.join(format!("cpor{}", std::env::consts::EXE_SUFFIX));
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut build = "as found (not rebuilt)".to_string();
    if release && !cli.no_build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        eprintln!("cpor-bench: cargo build --release -p cpor");
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "cpor"])
            .current_dir(workspace())
            .status();
        if status.is_ok_and(|s| s.success()) {
            build = "rebuilt from the work tree".to_string();
        } else {
            eprintln!("cpor-bench: could not build cpor; using the binary as it is");
            build =
                "STALE: the build of the work tree failed; an older binary was used".to_string();
        }
    }
    if !bin.is_file() {
        bail!(
            "no cpor binary at {}: build it first (cargo build --release -p cpor) or pass --cpor-bin",
            bin.display()
        );
    }
    if !release && mode != Mode::Smoke {
        eprintln!(
            "cpor-bench: warning: {} is not a release build; its figures mean little",
            bin.display()
        );
    }
    Ok((bin, build))
}

fn bench(cli: &Cli) -> anyhow::Result<()> {
    let mode = if cli.smoke {
        Mode::Smoke
    } else if cli.quick {
        Mode::Quick
    } else {
        Mode::Full
    };
    let exe = std::env::current_exe().context("path of this executable")?;
    let (cpor_bin, cpor_build) = cpor_bin(cli, mode, &exe)?;
    let options = Options {
        mode,
        seed: cli.seed,
        cpor_bin,
        cpor_build,
        nats_server: match &cli.nats_server {
            Some(p) => p.clone(),
            None => cpor_bench::processes::find_nats_server()?,
        },
        bench_exe: exe,
        cores: cli.cores.clone(),
        growth: cli.growth.clone(),
        keep: cli.keep,
        workspace: workspace(),
    };
    let report = run::run(&options)?;
    println!("{}", report.table());
    if let Some(path) = &cli.json {
        let text = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        eprintln!("cpor-bench: figures written to {}", path.display());
    }
    Ok(())
}
