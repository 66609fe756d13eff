//! The data growth curve (issue 8): for each point, a log of N claims is
//! generated (`cpor-bench generate`'s code), timed under the audit tools
//! (`cpor export`, `cpor verify --data-dir`, `cpor rebuild`), then served:
//! `cpor serve` is started on it and timed to its first answered query, loaded
//! at the top concurrency level with claims of its own, its claims listed
//! (every page) and read one by one, its memory sampled, and it is stopped
//! with SIGTERM. Point 0 is an empty data dir through the same steps, so the
//! curve's ratios compare like with like.
//!
//! The logs start at [`growth_start`] (their history ends after the wall
//! clock): the service keeps the last event's time, so no months of
//! deadlines fire while it is measured.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::json;

use crate::generate::{growth_start, try_generate, GenerateSpec, Target};
use crate::load::{self, Prepared};
use crate::processes::{self, NatsServer, Owned};
use crate::procfs;
use crate::report::{GrowthFigures, ToolRun};
use crate::run::{self, Bench, Options, Sizes};
use crate::workload::{Expect, Planner};

/// The services of the growth curve answer on `{GROWTH_PREFIX}{claims}`:
/// each point has JetStream streams of its own.
pub const GROWTH_PREFIX: &str = "benchgrowth";
/// The load's tenants start here, far beyond any generated log's, so its
/// claims never collide with stored ones.
pub const GROWTH_FIRST_TENANT: u64 = 1_000_000_000;
/// Claims per `qry.claims.list` page (the contract's largest `limit`).
pub const LIST_PAGE_LIMIT: usize = cpor_log::LIST_LIMIT_MAX;
/// Pages listed at most (enough for 2M claims).
pub const LIST_PAGES_MAX: usize = 2_000;
/// One query's reply timeout while listing.
pub const LIST_REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fresh JetStream may take to receive a whole generated log.
pub const RELAY_CATCH_UP_TIMEOUT: Duration = Duration::from_secs(3_600);
/// How long `cpor serve` may take to answer its first query on a large log.
pub const FIRST_QUERY_TIMEOUT: Duration = Duration::from_secs(600);
/// The console the queries come from.
pub(crate) const QUERY_ACTOR: &str = r#"{"type":"reviewer","id":"rev-1"}"#;

fn say(text: impl AsRef<str>) {
    eprintln!("cpor-bench: {}", text.as_ref());
}

/// Every point of `sizes.growth_claims`, in order. Each data dir is removed
/// after its point (unless `options.keep`): a 1M-claim log takes gigabytes.
pub fn growth(
    options: &Options,
    sizes: &Sizes,
    nats: &NatsServer,
    dir: &Path,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Vec<GrowthFigures>> {
    let mut curve = Vec::new();
    for &claims in &sizes.growth_claims {
        let data = dir.join(format!("growth-{claims}"));
        let mut figures = GrowthFigures {
            claims_target: claims,
            ..GrowthFigures::default()
        };
        if claims > 0 {
            offline(options, &data, dir, &mut figures)?;
        }
        runtime.block_on(online(options, sizes, nats, (&data, dir), &mut figures))?;
        figures.disk_after_stop_bytes = procfs::dir_bytes(&data);
        if !options.keep {
            let _ = std::fs::remove_dir_all(&data);
        }
        say(summary(&figures));
        curve.push(figures);
    }
    Ok(curve)
}

fn summary(f: &GrowthFigures) -> String {
    format!(
        "growth {} claims: {} cmds/s, p99 {:.2} ms, RSS {:.0} MiB after listing and reading, \
         disk {:.0} MiB ({:.2}x the export), first query after {:.2} s",
        f.claims,
        crate::report::fmt_int(f.load.cmds_per_s),
        f.load.p99_ms,
        f.rss_served_mib,
        f.disk_bytes as f64 / (1024.0 * 1024.0),
        f.disk_ratio(),
        f.first_query_s
    )
}

/// Generates the log, measures its size and its canonical export, and
/// times the audit tools on it.
fn offline(
    options: &Options,
    data: &Path,
    dir: &Path,
    figures: &mut GrowthFigures,
) -> anyhow::Result<()> {
    let spec = GenerateSpec {
        target: Target::Claims(figures.claims_target),
        seed: options.seed,
        start: growth_start(),
    };
    let generated = try_generate(data, spec, |_| {})
        .with_context(|| format!("generate {} claims", figures.claims_target))?;
    figures.events = generated.events;
    figures.claims = generated.claims;
    figures.cases = generated.cases;
    figures.generate_s = generated.elapsed.as_secs_f64();
    figures.state_bytes = generated.state_bytes;
    figures.disk_bytes = procfs::dir_bytes(data);
    say(format!(
        "generated {} events ({} claims) in {:.1} s: {} events/s",
        generated.events,
        generated.claims,
        figures.generate_s,
        crate::report::fmt_int(figures.generate_events_per_s())
    ));
    let export = dir.join("growth-export.jsonl");
    let output = ["--output".to_string(), export.display().to_string()];
    figures.export_s = ToolRun(run::time_tool(&options.cpor_bin, "export", data, &output));
    figures.export_bytes = std::fs::metadata(&export).map_or(0, |m| m.len());
    let _ = std::fs::remove_file(&export);
    figures.verify_s = ToolRun(run::time_tool(&options.cpor_bin, "verify", data, &[]));
    figures.rebuild_s = ToolRun(run::time_tool(&options.cpor_bin, "rebuild", data, &[]));
    say(format!(
        "export {:?} s, verify {:?} s, rebuild {:?} s",
        figures.export_s.0, figures.verify_s.0, figures.rebuild_s.0
    ));
    Ok(())
}

/// Serves the data dir: first query, relay catch-up, load, listing and
/// reading, memory, clean stop.
async fn online(
    options: &Options,
    sizes: &Sizes,
    nats: &NatsServer,
    (data, dir): (&Path, &Path),
    figures: &mut GrowthFigures,
) -> anyhow::Result<()> {
    let claims = figures.claims_target;
    let prefix = format!("{GROWTH_PREFIX}{claims}");
    let control = async_nats::connect(&nats.url).await?;
    let started = Instant::now();
    let log = dir.join(format!("cpor-growth-{claims}.log"));
    let mut service = processes::start_service(&options.cpor_bin, &nats.url, data, &prefix, log)?;
    wait_first_query(&control, &prefix, &mut service).await?;
    figures.first_query_s = started.elapsed().as_secs_f64();
    let catch_up = Instant::now();
    processes::wait_published(&control, &prefix, RELAY_CATCH_UP_TIMEOUT).await?;
    figures.relay_catch_up_s = catch_up.elapsed().as_secs_f64();
    figures.rss_started_mib = rss_mib(&service);

    let connections = load::connect(&nats.url, run::LEVEL_CLIENTS[2]).await?;
    let bench = Bench {
        connections: &connections,
        control: &control,
        nats,
        time_cap: sizes.level_time_cap,
        ticks: procfs::clock_ticks_per_s(),
    };
    let top = sizes.levels[sizes.levels.len() - 1];
    let mut planner = Planner::from_tenant(options.seed ^ 0x6A0 ^ claims, GROWTH_FIRST_TENANT);
    let (reference, mut levels) = run::plan_levels(&mut planner, &prefix, &[top]);
    run::load_reference(&bench, &prefix, &reference).await?;
    let (_, scripts) = levels.remove(0);
    figures.load = run::measure_service(&bench, &mut service, &prefix, scripts).await?;

    let listing = Instant::now();
    let ids = list_claims(&control, &prefix).await?;
    figures.listed = ids.len() as u64;
    figures.list_s = listing.elapsed().as_secs_f64();
    read_claims(&bench, &prefix, &ids, sizes.claim_reads, figures).await?;
    figures.rss_served_mib = rss_mib(&service);
    figures.peak_rss_mib = procfs::sample(service.pid()).map_or(0.0, |s| s.hwm_kib as f64 / 1024.0);
    figures.clean_exit = service.terminate();
    Ok(())
}

fn rss_mib(service: &Owned) -> f64 {
    procfs::sample(service.pid()).map_or(0.0, |s| s.rss_kib as f64 / 1024.0)
}

#[derive(Deserialize)]
struct ListReply {
    ok: bool,
    #[serde(default)]
    claims: Vec<ClaimId>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ClaimId {
    claim_id: String,
}

/// One page of `qry.claims.list` (contract §4) after `after`.
async fn list_page(
    control: &async_nats::Client,
    prefix: &str,
    after: Option<&str>,
) -> anyhow::Result<ListReply> {
    let actor: serde_json::Value = serde_json::from_str(QUERY_ACTOR)?;
    let mut body = json!({"actor": actor, "limit": LIST_PAGE_LIMIT});
    if let Some(after) = after {
        body["after"] = json!(after);
    }
    let request = control.request(format!("{prefix}.qry.claims.list"), body.to_string().into());
    let reply = tokio::time::timeout(LIST_REPLY_TIMEOUT, request)
        .await
        .context("qry.claims.list: no reply in time")?
        .map_err(|e| anyhow::anyhow!("qry.claims.list: {e}"))?;
    let page: ListReply = serde_json::from_slice(&reply.payload).with_context(|| {
        format!(
            "qry.claims.list replied {}",
            String::from_utf8_lossy(&reply.payload)
        )
    })?;
    if !page.ok {
        bail!(
            "qry.claims.list refused: {}",
            String::from_utf8_lossy(&reply.payload)
        );
    }
    Ok(page)
}

/// Polls `qry.claims.list` (one claim) until the service answers it.
pub(crate) async fn wait_first_query(
    control: &async_nats::Client,
    prefix: &str,
    service: &mut Owned,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let request = control.request(
            format!("{prefix}.qry.claims.list"),
            format!(r#"{{"actor":{QUERY_ACTOR},"limit":1}}"#).into(),
        );
        if let Ok(Ok(reply)) = tokio::time::timeout(processes::HEALTH_REPLY_TIMEOUT, request).await
        {
            let ok = serde_json::from_slice::<serde_json::Value>(&reply.payload)
                .is_ok_and(|v| v["ok"] == true);
            if ok {
                return Ok(());
            }
        }
        service.check_alive()?;
        if started.elapsed() > FIRST_QUERY_TIMEOUT {
            bail!("cpor serve answered no query in {FIRST_QUERY_TIMEOUT:?}");
        }
        tokio::time::sleep(processes::HEALTH_POLL_EVERY).await;
    }
}

/// Every claim's id, page after page (at most [`LIST_PAGES_MAX`] pages).
pub(crate) async fn list_claims(
    control: &async_nats::Client,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..LIST_PAGES_MAX {
        let page = list_page(control, prefix, after.as_deref()).await?;
        ids.extend(page.claims.into_iter().map(|c| c.claim_id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(ids)
}

/// Reads `reads` of the listed claims, evenly spread, with `qry.claim.get`
/// from the top level's clients; every reply must be `ok`.
async fn read_claims(
    bench: &Bench<'_>,
    prefix: &str,
    ids: &[String],
    reads: usize,
    figures: &mut GrowthFigures,
) -> anyhow::Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let step = (ids.len() / reads.max(1)).max(1);
    let clients = run::LEVEL_CLIENTS[2];
    let mut scripts: Vec<Vec<Prepared>> = (0..clients).map(|_| Vec::new()).collect();
    for (i, id) in ids.iter().step_by(step).take(reads).enumerate() {
        scripts[i % clients].push(Prepared {
            subject: format!("{prefix}.qry.claim.get"),
            payload: format!(r#"{{"actor":{QUERY_ACTOR},"claim_id":"{id}"}}"#).into(),
            expect: Expect::Ok,
        });
    }
    scripts.retain(|s| !s.is_empty());
    let result = load::run(bench.connections, scripts, run::REFERENCE_TIME_CAP, true).await;
    if result.unexpected + result.failed > 0 {
        bail!(
            "qry.claim.get: {} unexpected, {} failed, e.g. {:?}",
            result.unexpected,
            result.failed,
            result.examples
        );
    }
    figures.read = result.completed;
    figures.read_s = result.elapsed.as_secs_f64();
    Ok(())
}
