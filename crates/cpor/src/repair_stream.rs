//! `cpor repair-stream`: rebuilds a service's JetStream copy from its log
//! when someone else wrote into it (a forgery the relay alarmed about,
//! junk, deleted messages). See [`cpor_nats::relay::repair_streams`].

use std::process::ExitCode;

use clap::Args;

use crate::nats_flags::{NatsArgs, TOOL_CONNECT_WAIT};

#[derive(Args, Debug)]
pub(crate) struct RepairStreamArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[arg(long, env = "CPOR_PREFIX", default_value = "cpor")]
    prefix: String,
}

pub(crate) fn repair_stream(args: RepairStreamArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let nats = cpor_nats::connect(
            &args
                .nats
                .options("cpor repair-stream", Some(TOOL_CONNECT_WAIT))?,
        )
        .await?;
        let repair = cpor_nats::relay::repair_streams(&nats, &args.prefix)
            .await
            .map_err(|e| anyhow::anyhow!("repairing the streams of prefix {}: {e}", args.prefix))?;
        let (events, status) = cpor_nats::relay::stream_names(&args.prefix);
        outln!(
            "deleted {events} ({} messages) and purged {status} ({} messages): \
             the running service recreates them from its log within seconds \
             (watch `qry.health`: published_position reaches log_position, trail.intact is true); \
             a stopped one does it at its next start",
            repair.events_dropped,
            repair.statuses_purged
        )?;
        nats.flush().await?;
        Ok(ExitCode::SUCCESS)
    })
}
