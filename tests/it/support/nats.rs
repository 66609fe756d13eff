//! The NATS server the tests run against, and request/reply helpers.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Where the shared server is unless `CPOR_TEST_NATS_URL` says otherwise.
pub(crate) const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";
/// Environment variable naming the shared server.
pub(crate) const NATS_URL_ENV: &str = "CPOR_TEST_NATS_URL";
/// Timeout of one request/reply.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A nats-server with JetStream: either the shared one, or one this test
/// started itself (stopped when dropped).
pub(crate) struct NatsServer {
    url: String,
    own: Option<OwnServer>,
}

struct OwnServer {
    port: u16,
    binary: PathBuf,
    /// More arguments after the standard ones (e.g. `-c nats.conf`).
    extra_args: Vec<String>,
    /// Environment of the server (values a config file refers to as `$VAR`).
    env: Vec<(String, String)>,
    /// Holds the JetStream store (`store/`) and the server log.
    dir: TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// The shared server: `CPOR_TEST_NATS_URL`, default
    /// `nats://127.0.0.1:4222`. Panics when nothing answers there.
    pub(crate) fn shared() -> Self {
        let url = shared_url();
        if !answers(&url) {
            panic!(
                "no NATS server answers at {url} (set {NATS_URL_ENV} or start one: \
                 `nats-server -js`; `scripts/test` does it for you)"
            );
        }
        NatsServer { url, own: None }
    }

    /// The shared server when one answers; when `CPOR_TEST_NATS_URL` is not
    /// set and nothing answers on the default address, a server of our own.
    pub(crate) fn shared_or_own() -> Self {
        let url = shared_url();
        if answers(&url) {
            return NatsServer { url, own: None };
        }
        if std::env::var_os(NATS_URL_ENV).is_some() {
            panic!("no NATS server answers at {url} (from {NATS_URL_ENV})");
        }
        eprintln!("note: no NATS server at {url}; starting one for this test");
        Self::start_own()
    }

    /// Starts `nats-server -a 127.0.0.1 -p <free port> -js -sd <tempdir>` and
    /// waits until it accepts connections.
    pub(crate) fn start_own() -> Self {
        Self::start_own_with(&[], &[])
    }

    /// Like [`Self::start_own`], with more arguments and environment
    /// variables. With `-c FILE` the file must enable JetStream itself (its
    /// store dir, e.g. [`Self::dir`]`/store`); its `listen` is overridden.
    pub(crate) fn start_own_with(extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut own = OwnServer {
            port,
            binary: nats_server_bin(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir: tempfile::Builder::new()
                .prefix("cpor-nats-")
                .tempdir()
                .expect("create a temp dir for nats-server"),
            child: None,
        };
        own.spawn();
        NatsServer {
            url: format!("nats://127.0.0.1:{port}"),
            own: Some(own),
        }
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// True when this test started the server (so it may stop it).
    pub(crate) fn is_own(&self) -> bool {
        self.own.is_some()
    }

    /// The port the server listens on.
    pub(crate) fn port(&self) -> u16 {
        self.own.as_ref().map_or_else(
            || socket_addr(&self.url).map_or(4222, |a| a.port()),
            |o| o.port,
        )
    }

    /// A temp dir of an own server's, for files it reads (config, certificates).
    pub(crate) fn dir(&self) -> Option<&Path> {
        self.own.as_ref().map(|o| o.dir.path())
    }

    /// The JetStream store directory of an own server.
    pub(crate) fn store_dir(&self) -> Option<PathBuf> {
        self.own.as_ref().map(|o| o.dir.path().join("store"))
    }

    /// Stops an own server (SIGTERM, SIGKILL after 10 s). Panics for the
    /// shared one.
    pub(crate) fn stop(&mut self) {
        self.own_mut("stop").stop();
    }

    /// Kills an own server with SIGKILL. Panics for the shared one.
    pub(crate) fn kill(&mut self) {
        let own = self.own_mut("kill");
        if let Some(mut child) = own.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped own server again, same port and store dir.
    pub(crate) fn start(&mut self) {
        let own = self.own_mut("start");
        assert!(own.child.is_none(), "nats-server is already running");
        own.spawn();
    }

    /// Stops and starts an own server: same port, same store dir.
    pub(crate) fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// A client connection to this server.
    pub(crate) async fn connect(&self) -> async_nats::Client {
        connect(&self.url).await
    }

    /// The last lines of an own server's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        match &self.own {
            Some(own) => tail(&own.log_path(), lines),
            None => String::from("(shared server: no log)"),
        }
    }

    fn own_mut(&mut self, what: &str) -> &mut OwnServer {
        match &mut self.own {
            Some(own) => own,
            None => panic!("cannot {what} the shared NATS server; use NatsServer::start_own()"),
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(own) = &mut self.own {
            if let Some(mut child) = own.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            if std::thread::panicking() {
                eprintln!(
                    "--- nats-server log tail ({}) ---\n{}",
                    own.log_path().display(),
                    tail(&own.log_path(), 30)
                );
            }
        }
    }
}

impl OwnServer {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    fn spawn(&mut self) {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the nats-server log");
        let store = self.dir.path().join("store");
        let mut command = Command::new(&self.binary);
        command.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        // A config file (`-c`) sets up JetStream itself (nats-server refuses
        // a store dir given twice); otherwise JetStream in the temp dir.
        if !self.extra_args.iter().any(|a| a == "-c") {
            command.args(["-js", "-sd"]).arg(&store);
        }
        let child = command
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.binary.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "nats-server exited with {status} before accepting connections:\n{}",
                    tail(&self.log_path(), 30)
                );
            }
            if greets(&format!("127.0.0.1:{}", self.port)) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "nats-server on port {} did not accept connections within 15 s:\n{}",
                    self.port,
                    tail(&self.log_path(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        send_signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Sends a signal (`TERM`, `KILL`, `INT`, …) with the `kill` command (the
/// workspace forbids `unsafe`, so no `libc::kill`).
pub(crate) fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill -{signal} {pid}`: {e}"));
    assert!(status.success(), "`kill -{signal} {pid}` failed: {status}");
}

/// The oldest nats-server the project supports (deploy/README.md).
pub(crate) const NATS_SERVER_MIN_VERSION: (u64, u64, u64) = (2, 10, 0);

/// The URL of the shared server: `CPOR_TEST_NATS_URL` when set (what
/// `scripts/ensure-nats` exports); else the default address when a server
/// of at least [`NATS_SERVER_MIN_VERSION`] answers there; else, when the one
/// there is older (Debian's 2.9) and a current binary is at hand, a server
/// this test process starts once and shares (stopped when the process exits,
/// see [`start_process_server`]), so that plain `cargo test` runs against
/// the same server version as `scripts/test`.
pub(crate) fn shared_url() -> String {
    if let Some(url) = std::env::var(NATS_URL_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return url;
    }
    static PROCESS_SERVER: OnceLock<String> = OnceLock::new();
    PROCESS_SERVER
        .get_or_init(|| {
            let default = DEFAULT_NATS_URL.to_string();
            let Some(running) = server_version("127.0.0.1:4222") else {
                return default; // nothing there: callers decide
            };
            if running >= NATS_SERVER_MIN_VERSION {
                return default;
            }
            let bin = nats_server_bin();
            match binary_version(&bin) {
                Some(v) if v >= NATS_SERVER_MIN_VERSION => {
                    let url = start_process_server(&bin);
                    eprintln!(
                        "note: the server on 127.0.0.1:4222 is nats-server {running:?}, older than \
                         {NATS_SERVER_MIN_VERSION:?}; the tests use nats-server {v:?} at {url}"
                    );
                    url
                }
                _ => default,
            }
        })
        .clone()
}

/// Starts `bin` with JetStream on a free port under a watchdog shell that
/// stops it and removes its store when this test process exits (statics
/// are never dropped); returns its URL once it greets.
fn start_process_server(bin: &Path) -> String {
    const WATCHDOG: &str = r#"
"$1" -a 127.0.0.1 -p "$2" -js -sd "$3/store" >"$3/nats-server.log" 2>&1 &
server=$!
parent=$PPID
while kill -0 "$parent" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$3"
"#;
    let port = free_port();
    let dir = tempfile::Builder::new()
        .prefix("cpor-nats-shared-")
        .tempdir()
        .expect("create a temp dir for nats-server")
        .keep();
    // Not waited for: it outlives every test and ends with the process
    // (init reaps it).
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", WATCHDOG, "sh"])
        .arg(bin)
        .arg(port.to_string())
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the nats-server watchdog");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !greets(&format!("127.0.0.1:{port}")) {
        assert!(
            Instant::now() < deadline,
            "nats-server on port {port} did not start:\n{}",
            tail(&dir.join("nats-server.log"), 30)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("nats://127.0.0.1:{port}")
}

/// `2.9.10` → (2, 9, 10).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text.trim().split('.').map(|p| p.parse::<u64>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The version a nats-server binary reports (`nats-server: v2.9.10`).
fn binary_version(bin: &Path) -> Option<(u64, u64, u64)> {
    let output = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    parse_version(text.trim().rsplit('v').next()?)
}

/// The version in the INFO greeting of the server at host:port.
fn server_version(host_port: &str) -> Option<(u64, u64, u64)> {
    let addr = host_port.to_socket_addrs().ok()?.next()?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    let info: Value = serde_json::from_str(line.strip_prefix("INFO ")?.trim()).ok()?;
    parse_version(info["version"].as_str()?)
}

/// True when a TCP connection to the URL's first host:port succeeds.
pub(crate) fn answers(url: &str) -> bool {
    match socket_addr(url) {
        Some(addr) => TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok(),
        None => false,
    }
}

/// True when a NATS server at host:port sends its `INFO` greeting.
fn greets(host_port: &str) -> bool {
    let Some(addr) = host_port.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO")
}

/// `nats://user:pw@host:port,nats://…` → the first host:port (port 4222 by default).
fn socket_addr(url: &str) -> Option<SocketAddr> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_string()
    } else {
        format!("{host_port}:4222")
    };
    host_port.to_socket_addrs().ok()?.next()
}

// Which nats-server to start and a free port are declared once, in the
// test kit.
pub(crate) use cpor_testkit::nats::nats_server_bin;
pub(crate) use cpor_testkit::net::free_port;

/// How a test client authenticates to a secured server.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClientAuth {
    pub(crate) user: Option<(String, String)>,
    /// The CA of the server's certificate (turns TLS on).
    pub(crate) tls_ca: Option<PathBuf>,
    /// The client's reply subject prefix instead of `_INBOX`.
    pub(crate) inbox_prefix: Option<String>,
}

impl ClientAuth {
    pub(crate) fn user(user: &str, password: &str) -> Self {
        ClientAuth {
            user: Some((user.to_string(), password.to_string())),
            ..Default::default()
        }
    }

    pub(crate) fn tls_ca(mut self, ca: impl Into<PathBuf>) -> Self {
        self.tls_ca = Some(ca.into());
        self
    }

    pub(crate) fn inbox_prefix(mut self, prefix: &str) -> Self {
        self.inbox_prefix = Some(prefix.to_string());
        self
    }
}

/// Connects with `auth`; the server's errors (permission violations) are
/// sent to `events` when given.
pub(crate) async fn connect_as(
    url: &str,
    auth: &ClientAuth,
    events: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .event_callback(move |event| {
            let events = events.clone();
            async move {
                if let Some(events) = events {
                    let _ = events.send(event.to_string());
                }
            }
        });
    if let Some((user, password)) = &auth.user {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(ca) = &auth.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some(prefix) = &auth.inbox_prefix {
        options = options.custom_inbox_prefix(prefix);
    }
    options
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to NATS at {url}: {e}"))
}

/// Connects to a NATS server, panicking with the URL on failure.
pub(crate) async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to NATS at {url}: {e}"))
}

/// Whether a service on `client` with `prefix` answers `qry.health`
/// within `within` (each try waits 2 s at most, tries 200 ms apart), as
/// after NATS came back. Panics when it answers, but not `ok: true`.
pub(crate) async fn answers_within(
    client: &async_nats::Client,
    prefix: &str,
    within: Duration,
) -> bool {
    let started = Instant::now();
    loop {
        let health = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(format!("{prefix}.qry.health"), "{}".into()),
        )
        .await;
        if let Ok(Ok(reply)) = health {
            let health: Value = serde_json::from_slice(&reply.payload).expect("health is JSON");
            assert_eq!(health["ok"], true, "{health}");
            return true;
        }
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Request/reply: sends `payload` to `subject`, waits up to 10 s, parses the
/// reply as JSON. Panics on timeout, no responders or a non-JSON reply.
pub(crate) async fn request(
    client: &async_nats::Client,
    subject: &str,
    payload: impl Into<Vec<u8>>,
) -> Value {
    try_request(client, subject, payload)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`request`], returning the failure as a message instead.
pub(crate) async fn try_request(
    client: &async_nats::Client,
    subject: &str,
    payload: impl Into<Vec<u8>>,
) -> Result<Value, String> {
    let payload: Vec<u8> = payload.into();
    let reply = tokio::time::timeout(
        REQUEST_TIMEOUT,
        client.request(subject.to_string(), payload.into()),
    )
    .await
    .map_err(|_| format!("request to `{subject}`: no reply within {REQUEST_TIMEOUT:?}"))?
    .map_err(|e| format!("request to `{subject}` failed: {e}"))?;
    serde_json::from_slice(&reply.payload).map_err(|e| {
        format!(
            "reply to `{subject}` is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&reply.payload)
        )
    })
}

/// The last `lines` lines of a text file (empty when it does not exist).
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(file) = File::open(path) else {
        return format!("({} does not exist)", path.display());
    };
    let all: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn parses_versions() {
        assert_eq!(parse_version("2.9.10"), Some((2, 9, 10)));
        assert_eq!(parse_version("2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("2.10"), Some((2, 10, 0)));
        assert_eq!(parse_version("x"), None);
        assert!(parse_version("2.9.10").unwrap() < NATS_SERVER_MIN_VERSION);
        assert!(parse_version("2.15.1").unwrap() >= NATS_SERVER_MIN_VERSION);
        if let Some(v) = binary_version(&nats_server_bin()) {
            assert!(v.0 >= 2, "{v:?}");
        }
    }

    #[test]
    fn parses_urls() {
        assert_eq!(
            socket_addr("nats://127.0.0.1:4222"),
            Some("127.0.0.1:4222".parse().unwrap())
        );
        assert_eq!(
            socket_addr("nats://u:p@127.0.0.1:5000,nats://127.0.0.1:5001"),
            Some("127.0.0.1:5000".parse().unwrap())
        );
        assert_eq!(
            socket_addr("127.0.0.1"),
            Some("127.0.0.1:4222".parse().unwrap())
        );
    }

    /// An own server starts, answers requests, keeps its JetStream data over
    /// a restart on the same port, and is gone when dropped.
    #[tokio::test(flavor = "multi_thread")]
    async fn own_server_start_request_restart() {
        let mut server = NatsServer::start_own();
        assert!(server.is_own());
        let url = server.url().to_string();
        let client = server.connect().await;

        let mut sub = client.subscribe("echo").await.unwrap();
        let responder_client = client.clone();
        let responder = tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                if let Some(reply) = msg.reply {
                    let body = serde_json::json!({"ok": true, "got": String::from_utf8_lossy(&msg.payload)});
                    responder_client
                        .publish(reply, body.to_string().into())
                        .await
                        .unwrap();
                }
            }
        });
        let reply = request(&client, "echo", "hi").await;
        assert_eq!(reply, serde_json::json!({"ok": true, "got": "hi"}));
        let err = try_request(&client, "nobody.listens", "{}")
            .await
            .unwrap_err();
        assert!(err.contains("nobody.listens"), "{err}");
        responder.abort();

        let js = async_nats::jetstream::new(client.clone());
        js.create_stream(async_nats::jetstream::stream::Config {
            name: "KEEP".into(),
            subjects: vec!["keep.>".into()],
            ..Default::default()
        })
        .await
        .unwrap();
        js.publish("keep.a", "1".into())
            .await
            .unwrap()
            .await
            .unwrap();

        server.restart();
        assert_eq!(server.url(), url);
        let client = server.connect().await;
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream("KEEP").await.unwrap();
        let msg = stream
            .get_last_raw_message_by_subject("keep.a")
            .await
            .unwrap();
        assert_eq!(&msg.payload[..], b"1");

        drop(server);
        assert!(!answers(&url), "nats-server still answers after drop");
    }
}
