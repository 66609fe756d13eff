//! The NATS connection flags every subcommand that talks to NATS shares
//! (`serve`, `request`, `watch`, and the audit tools reading a stream), and
//! their translation into `cpor_nats::ConnectOptions`.
//!
//! Secrets stay out of the process list: the password comes only from
//! `CPOR_NATS_PASSWORD`, and the token is best given as `CPOR_NATS_TOKEN`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use cpor_nats::ConnectOptions;

/// Environment variable of the NATS URL.
pub(crate) const NATS_URL_ENV: &str = "CPOR_NATS_URL";
/// The NATS URL when none is given.
pub(crate) const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Environment variable holding the password of `--nats-user`.
pub(crate) const NATS_PASSWORD_ENV: &str = "CPOR_NATS_PASSWORD";
/// How long the tools (not `serve`) wait for a NATS server that does not
/// answer: not at all, a person sees the error at once.
pub(crate) const TOOL_CONNECT_WAIT: Duration = Duration::ZERO;

/// How to authenticate to NATS and protect the connection (all optional).
#[derive(Args, Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NatsAuthArgs {
    /// NATS credentials file (user JWT + nkey seed, as `nsc` writes it).
    #[arg(long, env = "CPOR_NATS_CREDS", value_name = "FILE")]
    pub(crate) nats_creds: Option<PathBuf>,
    /// File holding an nkey seed (`SU…`) of an nkey user.
    #[arg(long, env = "CPOR_NATS_NKEY", value_name = "FILE")]
    pub(crate) nats_nkey: Option<PathBuf>,
    /// NATS user name; the password is read from CPOR_NATS_PASSWORD.
    #[arg(long, env = "CPOR_NATS_USER", value_name = "USER")]
    pub(crate) nats_user: Option<String>,
    /// NATS token (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "CPOR_NATS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) nats_token: Option<String>,
    /// PEM file of the CA that signed the server's certificate (turns TLS on).
    #[arg(long, env = "CPOR_NATS_TLS_CA", value_name = "FILE")]
    pub(crate) nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (with --nats-tls-key).
    #[arg(
        long,
        env = "CPOR_NATS_TLS_CERT",
        value_name = "FILE",
        requires = "nats_tls_key"
    )]
    pub(crate) nats_tls_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(
        long,
        env = "CPOR_NATS_TLS_KEY",
        value_name = "FILE",
        requires = "nats_tls_cert"
    )]
    pub(crate) nats_tls_key: Option<PathBuf>,
    /// Reply subjects start with this instead of `_INBOX` (a partner's user
    /// may subscribe only to `_INBOX_{partner_id}.>`).
    #[arg(long, env = "CPOR_NATS_INBOX_PREFIX", value_name = "PREFIX")]
    pub(crate) nats_inbox_prefix: Option<String>,
}

/// The URL and the authentication, for subcommands that always use NATS.
#[derive(Args, Debug, Clone)]
pub(crate) struct NatsArgs {
    /// NATS server URL(s), comma separated (`tls://…` for TLS).
    #[arg(long, env = NATS_URL_ENV, default_value = DEFAULT_NATS_URL, value_name = "URL")]
    pub(crate) nats_url: String,
    #[command(flatten)]
    pub(crate) auth: NatsAuthArgs,
}

impl NatsArgs {
    pub(crate) fn options(
        &self,
        name: &str,
        wait: Option<Duration>,
    ) -> anyhow::Result<ConnectOptions> {
        self.auth.options(&self.nats_url, name, wait)
    }
}

impl NatsAuthArgs {
    /// The connection options for `url`, as client `name`, waiting `wait`
    /// for a server that does not answer yet (`None`: for ever).
    pub(crate) fn options(
        &self,
        url: &str,
        name: &str,
        wait: Option<Duration>,
    ) -> anyhow::Result<ConnectOptions> {
        let password = match &self.nats_user {
            None => None,
            Some(user) => match std::env::var(NATS_PASSWORD_ENV) {
                Ok(password) if !password.is_empty() => Some(password),
                _ => bail!("--nats-user {user} needs its password in {NATS_PASSWORD_ENV}"),
            },
        };
        Ok(ConnectOptions {
            url: url.to_string(),
            name: name.to_string(),
            credentials_file: self.nats_creds.clone(),
            nkey_seed_file: self.nats_nkey.clone(),
            user: self.nats_user.clone(),
            password,
            token: self.nats_token.clone().filter(|t| !t.is_empty()),
            tls_ca_file: self.nats_tls_ca.clone(),
            tls_client_cert_file: self.nats_tls_cert.clone(),
            tls_client_key_file: self.nats_tls_key.clone(),
            inbox_prefix: self.nats_inbox_prefix.clone(),
            wait,
        })
    }
}
