//! `cpor-bench cold-start --data-dir DIR`: the cold start and memory of
//! `cpor serve` on an existing data dir (issue 8, targets 6 and 7), without
//! the growth curve's generation and load. On a private copy of the data
//! dir, the service is started [`COLD_STARTS`] times in a row, each time
//! timed to its first answered `qry.claims.list`, then (once the relay has
//! published the whole log) every claim is listed and `reads` of them read
//! with `qry.claim.get`, its RSS sampled at each step, and it is stopped
//! with SIGTERM. The first start folds the whole log (the copy's state
//! snapshots are removed first: a data dir written by a release without
//! them); the later ones start from the snapshot the previous stop wrote (a
//! release without snapshots folds the whole log every time, so running it
//! with `--cpor-bin` of that release gives the before figures).

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::growth::{list_claims, wait_first_query, QUERY_ACTOR};
use crate::processes::{self, NatsServer, Owned};
use crate::procfs;

/// Starts measured on one copy of the data dir.
pub const COLD_STARTS: usize = 2;

/// One start's figures.
#[derive(Debug, Clone, Default)]
pub struct ColdStart {
    /// From spawning `cpor serve` to its first answered query, seconds.
    pub first_query_s: f64,
    /// RSS at the first answered query, MiB.
    pub rss_first_query_mib: f64,
    /// RSS once the relay published the whole log, MiB.
    pub rss_published_mib: f64,
    /// Claims listed, and the seconds it took.
    pub listed: usize,
    pub list_s: f64,
    /// Claims read one by one.
    pub read: usize,
    /// RSS after listing and reading (target 6's figure), MiB.
    pub rss_served_mib: f64,
    /// Peak RSS (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// The service's CPU time from its start to the first query, seconds.
    pub cpu_to_first_query_s: f64,
    /// Whether SIGTERM stopped it with status 0.
    pub clean_exit: bool,
}

fn mib(service: &Owned) -> (f64, f64) {
    procfs::sample(service.pid()).map_or((0.0, 0.0), |s| {
        (s.rss_kib as f64 / 1024.0, s.hwm_kib as f64 / 1024.0)
    })
}

/// Copies `data` into `work` and measures [`COLD_STARTS`] starts of
/// `cpor_bin` on the copy. Errors: a process that does not start or
/// answer, a refused query.
pub fn cold_starts(
    cpor_bin: &Path,
    nats_bin: &Path,
    data: &Path,
    work: &Path,
    reads: usize,
) -> anyhow::Result<Vec<ColdStart>> {
    let copy = work.join("data");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(data)
        .arg(&copy)
        .status()
        .context("cp -r the data dir")?;
    if !status.success() {
        bail!("cp -r {} {} failed", data.display(), copy.display());
    }
    let _ = std::fs::remove_dir_all(cpor_log::snapshot::snapshot_dir(&copy));
    let nats = NatsServer::start(nats_bin, &work.join("nats"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let mut starts = Vec::new();
    for round in 0..COLD_STARTS {
        let log = work.join(format!("cpor-{round}.log"));
        let figures = runtime.block_on(one_start(cpor_bin, &nats, &copy, log, reads))?;
        eprintln!("cpor-bench: start {round}: {figures:?}");
        starts.push(figures);
    }
    Ok(starts)
}

async fn one_start(
    cpor_bin: &Path,
    nats: &NatsServer,
    data: &Path,
    log: std::path::PathBuf,
    reads: usize,
) -> anyhow::Result<ColdStart> {
    let prefix = "coldstart";
    let control = async_nats::connect(&nats.url).await?;
    let started = Instant::now();
    let mut service = processes::start_service(cpor_bin, &nats.url, data, prefix, log)?;
    wait_first_query(&control, prefix, &mut service).await?;
    let mut figures = ColdStart {
        first_query_s: started.elapsed().as_secs_f64(),
        ..ColdStart::default()
    };
    let sample = procfs::sample(service.pid()).unwrap_or_default();
    figures.rss_first_query_mib = sample.rss_kib as f64 / 1024.0;
    figures.cpu_to_first_query_s = sample.cpu_ticks as f64 / procfs::clock_ticks_per_s() as f64;
    processes::wait_published(&control, prefix, crate::growth::RELAY_CATCH_UP_TIMEOUT).await?;
    figures.rss_published_mib = mib(&service).0;
    let listing = Instant::now();
    let ids = list_claims(&control, prefix).await?;
    figures.list_s = listing.elapsed().as_secs_f64();
    figures.listed = ids.len();
    let step = (ids.len() / reads.max(1)).max(1);
    for id in ids.iter().step_by(step).take(reads) {
        let body = format!(r#"{{"actor":{QUERY_ACTOR},"claim_id":"{id}"}}"#);
        let reply = control
            .request(format!("{prefix}.qry.claim.get"), body.into())
            .await
            .map_err(|e| anyhow::anyhow!("qry.claim.get: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&reply.payload)?;
        if value["ok"] != true {
            bail!(
                "qry.claim.get {id}: {}",
                String::from_utf8_lossy(&reply.payload)
            );
        }
        figures.read += 1;
    }
    (figures.rss_served_mib, figures.peak_rss_mib) = mib(&service);
    figures.clean_exit = service.terminate();
    Ok(figures)
}
