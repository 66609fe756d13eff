//! The one way every part of `cpor` connects to NATS.
//!
//! [`ConnectOptions`] is plain data (paths, names, secrets) the binary fills
//! from its flags; [`connect`] turns it into a [`Nats`] connection. Which
//! credentials a deployment uses, and the subjects each role may use, are in
//! `deploy/README.md` and `deploy/nats/`.
//!
//! Start-up: the first attempt fails fast when the server refuses the
//! credentials or the TLS handshake fails (a configuration error no retry
//! can fix). When the server is merely not there yet, async-nats' own
//! initial-connect retry (`retry_on_initial_connect`, with its backoff)
//! takes over, for as long as [`ConnectOptions::wait`] allows; a refusal
//! met while retrying still ends the wait at once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

/// How long one TCP/TLS/handshake attempt may take.
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a long wait for the server is logged.
pub const CONNECT_WAIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// An nkey seed file longer than this is not a seed file.
pub const NKEY_SEED_FILE_MAX_BYTES: u64 = 4_096;

/// How to reach and authenticate to NATS. Every field but `url` is optional;
/// the authentication fields may be combined only as the server expects
/// (a creds file or an nkey, or user and password, or a token).
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Server URL(s), comma separated: `nats://host:4222`, `tls://host:4222`.
    pub url: String,
    /// The client name the server shows in its monitoring (`cpor serve`).
    pub name: String,
    /// A `.creds` file (user JWT and nkey seed, decentralized auth / nsc).
    pub credentials_file: Option<PathBuf>,
    /// A file holding one nkey seed (`SU…`), for nkey users in a server config.
    pub nkey_seed_file: Option<PathBuf>,
    /// User name and password.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Token authentication.
    pub token: Option<String>,
    /// PEM file of the CA(s) that signed the server's certificate; implies TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and its key, for servers that verify clients.
    pub tls_client_cert_file: Option<PathBuf>,
    pub tls_client_key_file: Option<PathBuf>,
    /// The prefix of this client's reply subjects instead of `_INBOX`
    /// (partners are allowed only `_INBOX_{partner_id}.>`).
    pub inbox_prefix: Option<String>,
    /// How long to wait for a server that does not answer yet; `None`: for
    /// ever (the service, under a supervisor).
    pub wait: Option<Duration>,
}

impl std::fmt::Debug for ConnectOptions {
    /// Secrets are not shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("credentials_file", &self.credentials_file)
            .field("nkey_seed_file", &self.nkey_seed_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("tls_ca_file", &self.tls_ca_file)
            .field("tls_client_cert_file", &self.tls_client_cert_file)
            .field("tls_client_key_file", &self.tls_client_key_file)
            .field("inbox_prefix", &self.inbox_prefix)
            .field("wait", &self.wait)
            .finish()
    }
}

/// Why [`connect`] (or an operation on a [`Nats`] connection) failed.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The options contradict each other or name unreadable files.
    #[error("NATS connection options: {0}")]
    Options(String),
    /// The server refused us: credentials, permissions or TLS. Retrying
    /// cannot help; the configuration must change.
    #[error("NATS at {url} refused the connection: {reason} (check --nats-creds/--nats-nkey/--nats-user and CPOR_NATS_PASSWORD/--nats-token, and the TLS flags)")]
    Refused { url: String, reason: String },
    /// Nothing answered within [`ConnectOptions::wait`].
    #[error("cannot reach NATS at {url} (waited {:.1} s): {reason}", waited.as_secs_f64())]
    Unreachable {
        url: String,
        waited: Duration,
        reason: String,
    },
    /// A request, stream read or other operation failed (`detail`: the
    /// client's error and its sources, in one line).
    #[error("{what}: {detail}")]
    Operation { what: String, detail: String },
    /// A request got no reply in time.
    #[error("no reply on `{subject}` within {timeout:?}")]
    RequestTimedOut { subject: String, timeout: Duration },
}

fn operation(what: impl Into<String>) -> impl FnOnce(async_nats::Error) -> NatsError {
    let what = what.into();
    move |source| NatsError::Operation {
        what,
        detail: describe(&*source),
    }
}

/// A live connection: the client, and JetStream on it.
#[derive(Clone)]
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
}

/// Connects as `options` say; see the module documentation for how it
/// waits and when it gives up.
pub async fn connect(options: &ConnectOptions) -> Result<Nats, NatsError> {
    let url = options.url.clone();
    // First attempt: a refusal is final.
    let first = build(options, None).await?.connect(url.as_str()).await;
    let reason = match first {
        Ok(client) => return Ok(Nats::new(client)),
        Err(error) if is_refusal(error.kind()) => {
            return Err(NatsError::Refused {
                url,
                reason: describe(&error),
            })
        }
        Err(error) if is_tls_handshake_failure(&error) => {
            return Err(NatsError::Refused {
                url,
                reason: format!("TLS handshake failed: {}", describe(&error)),
            })
        }
        Err(error) => describe(&error),
    };
    if options.wait == Some(Duration::ZERO) {
        return Err(NatsError::Unreachable {
            url,
            waited: Duration::ZERO,
            reason,
        });
    }
    tracing::warn!(%url, error = %reason, "cannot reach NATS; retrying");
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let client = build(options, Some(events_tx))
        .await?
        .retry_on_initial_connect()
        .connect(url.as_str())
        .await
        .map_err(|error| NatsError::Options(describe(&error)))?;
    wait_until_connected(client, &mut events, options, reason).await
}

/// Waits for async-nats' own retries to connect `client`, logging every
/// `CONNECT_WAIT_LOG_EVERY`, until `options.wait` runs out (never without
/// one). A refusal on the way is final.
async fn wait_until_connected(
    client: async_nats::Client,
    events: &mut mpsc::UnboundedReceiver<async_nats::Event>,
    options: &ConnectOptions,
    reason: String,
) -> Result<Nats, NatsError> {
    let url = options.url.clone();
    let started = tokio::time::Instant::now();
    let mut last_error = reason;
    loop {
        let remaining = options.wait.map(|w| w.saturating_sub(started.elapsed()));
        let timeout = remaining
            .unwrap_or(CONNECT_WAIT_LOG_EVERY)
            .min(CONNECT_WAIT_LOG_EVERY);
        match tokio::time::timeout(timeout, events.recv()).await {
            Ok(Some(async_nats::Event::Connected)) => return Ok(Nats::new(client)),
            Ok(Some(async_nats::Event::ServerError(
                async_nats::ServerError::AuthorizationViolation,
            ))) => {
                return Err(NatsError::Refused {
                    url,
                    reason: "authorization violation".into(),
                })
            }
            Ok(Some(async_nats::Event::ClientError(async_nats::ClientError::Other(text)))) => {
                if REFUSALS.iter().any(|kind| text == kind.to_string()) {
                    return Err(NatsError::Refused { url, reason: text });
                }
                // Keep the detail of the first error when this is its kind.
                if !last_error.starts_with(&text) {
                    last_error = text;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(NatsError::Unreachable {
                    url,
                    waited: started.elapsed(),
                    reason: "the client closed".into(),
                })
            }
            Err(_) => {
                if remaining.is_some_and(|r| r <= timeout) {
                    return Err(NatsError::Unreachable {
                        url,
                        waited: started.elapsed(),
                        reason: last_error,
                    });
                }
                tracing::warn!(%url, waited = ?started.elapsed(), error = %last_error, "still waiting for NATS");
            }
        }
    }
}

/// Connection errors no retry can fix.
const REFUSALS: [async_nats::ConnectErrorKind; 3] = [
    async_nats::ConnectErrorKind::AuthorizationViolation,
    async_nats::ConnectErrorKind::Authentication,
    async_nats::ConnectErrorKind::Tls,
];

fn is_refusal(kind: async_nats::ConnectErrorKind) -> bool {
    REFUSALS.contains(&kind)
}

/// A TLS handshake that failed (the server's certificate is not trusted,
/// or one side does not speak TLS): async-nats reports it as an IO error
/// whose source is an `InvalidData` IO error from rustls. Retrying cannot
/// help.
fn is_tls_handshake_failure(error: &async_nats::ConnectError) -> bool {
    use std::error::Error as _;
    error.kind() == async_nats::ConnectErrorKind::Io
        && error
            .source()
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
}

/// An async-nats error in one line. Its `Display` already appends the
/// source (e.g. the TLS or IO reason); a part repeated right after itself
/// ("no responders: no responders") is shown once.
fn describe(error: &dyn std::error::Error) -> String {
    let text = error.to_string();
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

/// The async-nats options for `options`; with `events`, connection events
/// are also sent there.
async fn build(
    options: &ConnectOptions,
    events: Option<mpsc::UnboundedSender<async_nats::Event>>,
) -> Result<async_nats::ConnectOptions, NatsError> {
    check_combination(options)?;
    let mut nats = async_nats::ConnectOptions::new()
        .name(if options.name.is_empty() {
            "cpor"
        } else {
            &options.name
        })
        .connection_timeout(CONNECT_ATTEMPT_TIMEOUT)
        .max_reconnects(None)
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                log_event(&event);
                if let Some(events) = events {
                    let _ = events.send(event);
                }
            }
        });
    nats = with_credentials(nats, options).await?;
    nats = with_tls(nats, options)?;
    if let Some(prefix) = &options.inbox_prefix {
        if prefix.is_empty() || prefix.contains(['*', '>', ' ']) || prefix.ends_with('.') {
            return Err(NatsError::Options(format!(
                "inbox prefix {prefix:?}: a subject without wildcards, spaces or a trailing dot"
            )));
        }
        nats = nats.custom_inbox_prefix(prefix);
    }
    Ok(nats)
}

/// At most one authentication method; a password only with a user; a
/// client certificate only with its key.
fn check_combination(options: &ConnectOptions) -> Result<(), NatsError> {
    let methods = [
        options.credentials_file.is_some(),
        options.nkey_seed_file.is_some(),
        options.user.is_some(),
        options.token.is_some(),
    ];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(NatsError::Options(
            "give one of a creds file, an nkey seed file, a user (with its password), a token"
                .into(),
        ));
    }
    if options.password.is_some() && options.user.is_none() {
        return Err(NatsError::Options("a password needs a user".into()));
    }
    if options.tls_client_cert_file.is_some() != options.tls_client_key_file.is_some() {
        return Err(NatsError::Options(
            "a TLS client certificate and its key go together".into(),
        ));
    }
    Ok(())
}

/// Logs a connection event; a permission the deployment's NATS user lacks
/// is an error, since the server drops the message.
fn log_event(event: &async_nats::Event) {
    match event {
        async_nats::Event::Disconnected => {
            ::metrics::counter!(crate::metrics::NATS_DISCONNECTS_TOTAL).increment(1);
            tracing::warn!("NATS disconnected; reconnecting")
        }
        async_nats::Event::Connected => tracing::info!("NATS connected"),
        // A permission the deployment's NATS user lacks: the
        // server drops the message, so say so loudly.
        async_nats::Event::ServerError(async_nats::ServerError::Other(text))
            if text.to_lowercase().contains("permissions violation") =>
        {
            tracing::error!(error = %text, "the NATS server refused a publish or subscription: check this user's permissions (deploy/nats/accounts.conf)")
        }
        other => tracing::info!(event = %other, "NATS event"),
    }
}

async fn with_credentials(
    mut nats: async_nats::ConnectOptions,
    options: &ConnectOptions,
) -> Result<async_nats::ConnectOptions, NatsError> {
    if let Some(path) = &options.credentials_file {
        readable(path, "creds file")?;
        nats = nats
            .credentials_file(path)
            .await
            .map_err(|e| NatsError::Options(format!("creds file {}: {e}", path.display())))?;
    }
    if let Some(path) = &options.nkey_seed_file {
        nats = nats.nkey(read_nkey_seed(path)?);
    }
    if let Some(user) = &options.user {
        let password = options.password.clone().unwrap_or_default();
        nats = nats.user_and_password(user.clone(), password);
    }
    if let Some(token) = &options.token {
        nats = nats.token(token.clone());
    }
    Ok(nats)
}

fn with_tls(
    mut nats: async_nats::ConnectOptions,
    options: &ConnectOptions,
) -> Result<async_nats::ConnectOptions, NatsError> {
    if let Some(path) = &options.tls_ca_file {
        readable(path, "TLS CA file")?;
        nats = nats.add_root_certificates(path.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&options.tls_client_cert_file, &options.tls_client_key_file) {
        readable(cert, "TLS client certificate")?;
        readable(key, "TLS client key")?;
        nats = nats
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(nats)
}

fn readable(path: &Path, what: &str) -> Result<(), NatsError> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| NatsError::Options(format!("{what} {}: {e}", path.display())))
}

/// The seed in an nkey seed file: the first line starting with `S` (a seed,
/// e.g. `SUAM…`), ignoring blank lines and `#`/`//` comments.
fn read_nkey_seed(path: &Path) -> Result<String, NatsError> {
    let error =
        |why: String| NatsError::Options(format!("nkey seed file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| error(e.to_string()))?;
    if meta.len() > NKEY_SEED_FILE_MAX_BYTES {
        return Err(error(format!(
            "longer than {NKEY_SEED_FILE_MAX_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    text.lines()
        .map(str::trim)
        .find(|line| line.starts_with('S') && !line.contains(' '))
        .map(str::to_string)
        .ok_or_else(|| error("no seed (a line starting with S)".into()))
}

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first message the stream holds.
    Start,
    /// The message with this stream sequence (or the next one there).
    Sequence(u64),
    /// The last message of each subject (the current value of every key
    /// of a last-value stream), then new ones.
    LastPerSubject,
}

/// A stream's extent, as [`Nats::stream_state`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub messages: u64,
}

/// One message read from a stream.
#[derive(Debug, Clone)]
pub struct StreamMessage {
    pub sequence: u64,
    pub subject: String,
    pub payload: Bytes,
    /// The `Nats-Msg-Id` header, when the publisher set one.
    pub message_id: Option<String>,
}

/// Messages of a stream in order (an ordered consumer: recreated by the
/// client when it misses one).
pub struct StreamMessages {
    stream: String,
    messages: jetstream::consumer::pull::Ordered,
}

impl StreamMessages {
    /// The next message; `None` when the read ended.
    pub async fn next(&mut self) -> Option<Result<StreamMessage, NatsError>> {
        let message = match self.messages.next().await? {
            Ok(message) => message,
            Err(error) => {
                return Some(Err(operation(format!(
                    "reading the stream {}",
                    self.stream
                ))(error.into())))
            }
        };
        let sequence = match message.info() {
            Ok(info) => info.stream_sequence,
            Err(error) => {
                return Some(Err(operation(format!(
                    "a message of {} without JetStream metadata",
                    self.stream
                ))(error)))
            }
        };
        let message_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
            .map(|v| v.as_str().to_string());
        Some(Ok(StreamMessage {
            sequence,
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
            message_id,
        }))
    }
}

impl Nats {
    fn new(client: async_nats::Client) -> Nats {
        let jetstream = jetstream::new(client.clone());
        Nats { client, jetstream }
    }

    /// The client, for the crate's own server, relay and lease.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// JetStream on this connection, for the crate's own relay and lease.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Whether the client is connected to a server right now (`false`
    /// while it reconnects): the admin listener's readiness.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends one request and returns the reply's payload.
    pub async fn request(
        &self,
        subject: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Bytes, NatsError> {
        let reply = tokio::time::timeout(
            timeout,
            self.client.request(subject.to_string(), payload.into()),
        )
        .await
        .map_err(|_| NatsError::RequestTimedOut {
            subject: subject.to_string(),
            timeout,
        })?
        .map_err(|e| operation(format!("request on `{subject}`"))(e.into()))?;
        Ok(reply.payload)
    }

    /// Sends everything buffered.
    pub async fn flush(&self) -> Result<(), NatsError> {
        self.client
            .flush()
            .await
            .map_err(|e| operation("flushing the NATS connection")(e.into()))
    }

    /// The first and last sequence and message count of a stream.
    pub async fn stream_state(&self, stream: &str) -> Result<StreamState, NatsError> {
        let mut handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|e| operation(format!("no JetStream stream {stream}"))(e.into()))?;
        let state = handle
            .info()
            .await
            .map_err(|e| operation(format!("reading the state of {stream}"))(e.into()))?
            .state
            .clone();
        Ok(StreamState {
            first_sequence: state.first_sequence,
            last_sequence: state.last_sequence,
            messages: state.messages,
        })
    }

    /// Whether `stream` exists (`false` when the server answers "stream not
    /// found"; any other failure is an error).
    pub async fn stream_exists(&self, stream: &str) -> Result<bool, NatsError> {
        use jetstream::context::GetStreamErrorKind;
        match self.jetstream.get_stream(stream).await {
            Ok(_) => Ok(true),
            Err(error) => match error.kind() {
                GetStreamErrorKind::JetStream(inner)
                    if inner.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Ok(false)
                }
                _ => Err(operation(format!(
                    "looking up the JetStream stream {stream}"
                ))(error.into())),
            },
        }
    }

    /// The payload of the message with `sequence` in `stream`.
    pub async fn stream_message(&self, stream: &str, sequence: u64) -> Result<Bytes, NatsError> {
        let handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|e| operation(format!("no JetStream stream {stream}"))(e.into()))?;
        let message = handle
            .get_raw_message(sequence)
            .await
            .map_err(|e| operation(format!("message {sequence} of {stream}"))(e.into()))?;
        Ok(message.payload)
    }

    /// Reads `stream` in order from `from`, only subjects matching `filter`
    /// when given, then follows new messages, with an ordered consumer
    /// (ephemeral; `description` shows in the server's consumer list).
    pub async fn read_stream(
        &self,
        stream: &str,
        from: ReadFrom,
        filter: Option<String>,
        description: &str,
    ) -> Result<StreamMessages, NatsError> {
        let handle = self
            .jetstream
            .get_stream(stream)
            .await
            .map_err(|e| operation(format!("no JetStream stream {stream}"))(e.into()))?;
        let deliver_policy = match from {
            ReadFrom::Start | ReadFrom::Sequence(0 | 1) => jetstream::consumer::DeliverPolicy::All,
            ReadFrom::Sequence(start_sequence) => {
                jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence }
            }
            ReadFrom::LastPerSubject => jetstream::consumer::DeliverPolicy::LastPerSubject,
        };
        let consumer = handle
            .create_consumer(jetstream::consumer::pull::OrderedConfig {
                deliver_policy,
                filter_subject: filter.unwrap_or_default(),
                description: Some(description.to_string()),
                ..Default::default()
            })
            .await
            .map_err(|e| operation(format!("creating a consumer on {stream}"))(e.into()))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| operation(format!("reading the stream {stream}"))(e.into()))?;
        Ok(StreamMessages {
            stream: stream.to_string(),
            messages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ConnectOptions {
        ConnectOptions {
            url: "nats://127.0.0.1:1".into(),
            wait: Some(Duration::ZERO),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn contradicting_options_are_refused_before_connecting() {
        let cases = [
            ConnectOptions {
                user: Some("u".into()),
                token: Some("t".into()),
                ..options()
            },
            ConnectOptions {
                password: Some("p".into()),
                ..options()
            },
            ConnectOptions {
                tls_client_cert_file: Some("cert.pem".into()),
                ..options()
            },
            ConnectOptions {
                nkey_seed_file: Some("/nonexistent/seed".into()),
                ..options()
            },
            ConnectOptions {
                inbox_prefix: Some("_INBOX.>".into()),
                ..options()
            },
        ];
        for case in cases {
            let error = connect(&case).await.err().expect("refused");
            assert!(matches!(error, NatsError::Options(_)), "{case:?}: {error}");
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_after_the_wait() {
        let error = connect(&options()).await.err().expect("unreachable");
        assert!(matches!(error, NatsError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    }

    #[test]
    fn the_debug_form_hides_secrets() {
        let shown = format!(
            "{:?}",
            ConnectOptions {
                user: Some("svc".into()),
                password: Some("hunter2".into()),
                token: Some("s3cret".into()),
                ..options()
            }
        );
        assert!(shown.contains("svc"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
    }

    #[test]
    fn nkey_seed_files_may_hold_comments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seed.nk");
        std::fs::write(
            &path,
            "# partner P-100\n\nSUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY\n",
        )
        .unwrap();
        assert_eq!(
            read_nkey_seed(&path).unwrap(),
            "SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY"
        );
        std::fs::write(&path, "nothing here\n").unwrap();
        assert!(read_nkey_seed(&path).is_err());
    }
}
