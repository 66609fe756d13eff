//! `cpor keys show`: the public key of the checkpoint signing key, for
//! `cpor verify --public-key` and the independent verifier.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use cpor_log::checkpoint::{CheckpointSigner, SIGNING_KEY_FILE};

#[derive(Args, Debug)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    action: KeysAction,
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Print the public key (64 hex characters) of the signing key.
    Show {
        /// The service's data dir (its `checkpoint-signing.key`).
        #[arg(
            long,
            env = "CPOR_DATA_DIR",
            default_value = "./data",
            conflicts_with = "signing_key"
        )]
        data_dir: PathBuf,
        /// The signing key file given to `cpor serve --signing-key`.
        #[arg(long, env = "CPOR_SIGNING_KEY", value_name = "FILE")]
        signing_key: Option<PathBuf>,
    },
}

pub(crate) fn keys(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        KeysAction::Show {
            data_dir,
            signing_key,
        } => {
            let file = signing_key.unwrap_or_else(|| data_dir.join(SIGNING_KEY_FILE));
            let signer = CheckpointSigner::load(&file, false).with_context(|| {
                format!(
                    "no signing key at {} (`cpor serve` generates one on its first start)",
                    file.display()
                )
            })?;
            outln!("{}", signer.public_key_hex())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
