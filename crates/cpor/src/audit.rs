//! Audit tools (contract §9). Being written: see issue 4.
use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {}
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {}
#[derive(Args, Debug)]
pub(crate) struct HistoryArgs {}
#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {}
#[derive(Args, Debug)]
pub(crate) struct RebuildArgs {}

pub(crate) fn export(_: ExportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
pub(crate) fn verify(_: VerifyArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
pub(crate) fn history(_: HistoryArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
pub(crate) fn replay(_: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
pub(crate) fn rebuild(_: RebuildArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not available yet")
}
