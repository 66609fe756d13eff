//! `cpor repair --data-dir DIR`: the start-up repairs that need a person.
//!
//! Start-up fixes by itself what is never a decision (an unacknowledged
//! tail is cut, an unfinished sled snapshot removed: `cpor_log::startup`).
//! What remains needs someone to accept a consequence, and `cpor serve`
//! refuses to start with a message naming the step here, as
//! `cpor verify --data-dir` does:
//!
//! - `--accept-log-end`: the log ends before what was published from it
//!   (lost writes, or a data dir restored from an older copy). Accepting
//!   serves from the log as it is: the recorded published position moves
//!   back to the log's end, and the events stream must then be rebuilt from
//!   the log (`cpor repair-stream`), which is printed as the next step.
//!
//! Damage to events themselves (a hash that does not chain) has no repair
//! here: the events are the record; restore the data dir from a backup or
//! from the JetStream copy (deploy/README.md, "sled hazards").

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct RepairArgs {
    /// The stopped service's data dir (repaired in place: copy it aside
    /// first).
    #[arg(long, env = "CPOR_DATA_DIR")]
    data_dir: PathBuf,
    /// Accept that the log ends before the position published from it, and
    /// serve from the log as it is.
    #[arg(long)]
    accept_log_end: bool,
}

pub(crate) fn repair(args: RepairArgs) -> anyhow::Result<ExitCode> {
    if !args.accept_log_end {
        anyhow::bail!(
            "name the repair to make: --accept-log-end (`cpor serve` and `cpor verify --data-dir` say which one a data dir needs)"
        );
    }
    let reader = crate::audit::source::open_data_dir_as(&args.data_dir, true)?;
    match cpor_log::startup::accept_log_end(&reader)? {
        None => outln!(
            "nothing to repair: the log in {} is not behind what was published from it",
            args.data_dir.display()
        )?,
        Some((published, end)) => outln!(
            "the published position of {} moved back from {published} to the log's end, {end}. \
             Next: `cpor repair-stream --prefix PREFIX` (with the service's NATS options) \
             rebuilds the events stream from this log; then start the service. Subscribers \
             must drop what they saw after position {end}.",
            args.data_dir.display()
        )?,
    }
    Ok(ExitCode::SUCCESS)
}
