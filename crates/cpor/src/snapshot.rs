//! `cpor snapshot --data-dir DIR`: a state snapshot of a stopped service's
//! data dir (`cpor_log::snapshot::take`), so its next start folds only the
//! events after it. The service writes them by itself too (every
//! `SNAPSHOT_EVERY_EVENTS` events and at a graceful stop); this is for a
//! data dir that has none (one written by an older release).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub(crate) struct SnapshotArgs {
    /// The data dir of a stopped service; the snapshot goes into its
    /// `state-snapshots` directory.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

pub(crate) fn snapshot(args: SnapshotArgs) -> anyhow::Result<ExitCode> {
    if !args.data_dir.join("db").is_file() {
        anyhow::bail!("{} is not a data dir (no db file)", args.data_dir.display());
    }
    let started = std::time::Instant::now();
    let taken = cpor_log::snapshot::take(&args.data_dir)
        .with_context(|| format!("cannot snapshot {}", args.data_dir.display()))?;
    outln!(
        "wrote {} ({} bytes): the decision state at position {}, folded from the log in {:.1} s",
        taken.path.display(),
        taken.bytes,
        taken.position,
        started.elapsed().as_secs_f64()
    )?;
    Ok(ExitCode::SUCCESS)
}
