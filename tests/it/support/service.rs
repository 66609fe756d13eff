//! A `cpor serve` process under test.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use super::nats::{connect, connect_as, send_signal, tail, try_request, ClientAuth};

/// How long a service may take to answer `qry.health` after it starts.
pub(crate) const HEALTH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a service may take to exit after SIGTERM.
pub(crate) const TERM_TIMEOUT: Duration = Duration::from_secs(20);

/// The `cpor` executable under test: `CPOR_BIN` when set, else `cpor` in the
/// target profile dir of the running test executable
/// (`target/debug/deps/it-…` → `target/debug/cpor`).
pub(crate) fn cpor_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("CPOR_BIN").filter(|s| !s.is_empty()) {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "CPOR_BIN={} does not exist; build it first: cargo build -p cpor",
            bin.display()
        );
        return bin;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let deps = exe.parent().expect("test executable has a parent dir");
    // target/debug/deps/it-xxxx → target/debug; tolerate running from target/debug itself.
    let profile_dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    let bin = profile_dir.join(format!("cpor{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the cpor binary is missing at {}; build it first: cargo build -p cpor \
         (or point CPOR_BIN at it)",
        bin.display()
    );
    bin
}

/// How long a `cpor` run that must end by itself may take.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a `cpor` run left when it ended.
#[derive(Debug)]
pub(crate) struct Exited {
    /// The exit code (`None`: ended by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// `cpor ARGS` as the tests run it: plain text (`NO_COLOR`), its admin
/// listener on a free port (many services run at once), none of the
/// developer's `CPOR_*` variables (so the test's flags say everything), no
/// stdin, killed when dropped. The caller says where its output goes.
pub(crate) fn cpor_command<S: AsRef<std::ffi::OsStr>>(
    args: impl IntoIterator<Item = S>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(cpor_bin());
    command
        .args(args)
        .env("NO_COLOR", "1")
        .env("CPOR_HTTP_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for var in cpor_testkit::env::CPOR_ENV {
        command.env_remove(var);
    }
    command
}

/// Runs `cpor ARGS` to its exit, with `env` and none of the developer's
/// `CPOR_*` variables, plain text (`NO_COLOR`), no stdin.
///
/// # Panics
///
/// When it does not exit within [`RUN_TIMEOUT`] (it is killed).
pub(crate) async fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> Exited {
    let mut command = cpor_command(args);
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(env.iter().copied());
    let child = command.spawn().expect("start cpor");
    match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("wait for cpor");
            Exited {
                code: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        }
        Err(_) => panic!("cpor {args:?} did not exit within {RUN_TIMEOUT:?}"),
    }
}

/// How to start a service.
#[derive(Clone, Debug)]
pub(crate) struct ServiceOptions {
    /// The executable; [`cpor_bin`] when `None`.
    pub(crate) bin: Option<PathBuf>,
    pub(crate) nats_url: String,
    pub(crate) prefix: String,
    pub(crate) manual_clock: bool,
    /// A `--config` TOML file.
    pub(crate) config: Option<PathBuf>,
    /// The data dir; a fresh temp dir when `None`.
    pub(crate) data_dir: Option<PathBuf>,
    /// More arguments after the standard ones.
    pub(crate) extra_args: Vec<String>,
    /// More environment variables.
    pub(crate) env: Vec<(String, String)>,
    /// How the helper's own client (health checks, [`Service::client`])
    /// authenticates; plain when `None`.
    pub(crate) helper_auth: Option<ClientAuth>,
}

impl ServiceOptions {
    pub(crate) fn new(nats_url: &str, prefix: &str) -> Self {
        ServiceOptions {
            bin: None,
            nats_url: nats_url.to_string(),
            prefix: prefix.to_string(),
            manual_clock: false,
            config: None,
            data_dir: None,
            extra_args: Vec::new(),
            env: Vec::new(),
            helper_auth: None,
        }
    }

    pub(crate) fn manual_clock(mut self, on: bool) -> Self {
        self.manual_clock = on;
        self
    }

    pub(crate) fn config(mut self, path: impl Into<PathBuf>) -> Self {
        self.config = Some(path.into());
        self
    }

    pub(crate) fn data_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(path.into());
        self
    }
}

/// A running `cpor serve`. Its stdout and stderr go to `cpor.log` in its
/// temp dir (appended over restarts); the tail is printed when a test panics
/// while it is alive. Killed when dropped.
pub(crate) struct Service {
    opts: ServiceOptions,
    bin: PathBuf,
    dir: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    client: async_nats::Client,
    starts: u32,
    tail_shown: bool,
}

impl Service {
    /// Starts `cpor serve --nats-url … --data-dir … --prefix … [--manual-clock]`
    /// and waits until it answers `qry.health` (20 s).
    pub(crate) async fn start(opts: ServiceOptions) -> Service {
        let bin = opts.bin.clone().unwrap_or_else(cpor_bin);
        let dir = tempfile::Builder::new()
            .prefix(&format!("cpor-{}-", opts.prefix))
            .tempdir()
            .expect("create a temp dir for the service");
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let log_path = dir.path().join("cpor.log");
        let client = match &opts.helper_auth {
            None => connect(&opts.nats_url).await,
            Some(auth) => connect_as(&opts.nats_url, auth, None)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        };
        let mut service = Service {
            opts,
            bin,
            dir,
            data_dir,
            log_path,
            child: None,
            client,
            starts: 0,
            tail_shown: false,
        };
        service.spawn();
        service.wait_healthy().await;
        service
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.opts.prefix
    }

    pub(crate) fn nats_url(&self) -> &str {
        &self.opts.nats_url
    }

    pub(crate) fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The service's temp dir (data dir and log), for extra files such as a config.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The client the service helper uses (connected to the same server).
    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The last `lines` lines of the service's output.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path, lines)
    }

    /// Like [`Self::log_tail`], and the Drop handler will not print it again.
    pub(crate) fn take_log_tail(&mut self, lines: usize) -> String {
        self.tail_shown = true;
        self.log_tail(lines)
    }

    /// `{prefix}.qry.health` with body `{}`.
    pub(crate) async fn health(&self) -> Result<Value, String> {
        try_request(&self.client, &self.subject("qry.health"), "{}").await
    }

    /// `{prefix}.` + `rest`.
    pub(crate) fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.opts.prefix)
    }

    /// Waits until `qry.health` replies `{"ok":true,…}` (20 s); panics with
    /// the log tail when it does not or when the process exits.
    pub(crate) async fn wait_healthy(&mut self) {
        if let Err(e) = self.try_wait_healthy().await {
            let tail = self.take_log_tail(60);
            panic!(
                "{e}\n--- cpor log tail ({}) ---\n{tail}",
                self.log_path.display()
            );
        }
    }

    pub(crate) async fn try_wait_healthy(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        let mut last;
        loop {
            if let Some(status) = self.exited()? {
                return Err(format!(
                    "cpor serve exited with {status} before it was healthy"
                ));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining.min(Duration::from_secs(2)),
                self.client.request(self.subject("qry.health"), "{}".into()),
            )
            .await;
            match attempt {
                Ok(Ok(msg)) => match serde_json::from_slice::<Value>(&msg.payload) {
                    Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => return Ok(()),
                    Ok(v) => last = format!("health replied {v}"),
                    Err(e) => last = format!("health replied non-JSON ({e})"),
                },
                Ok(Err(e)) => last = format!("health request failed: {e}"),
                Err(_) => last = String::from("health request timed out"),
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "cpor serve (prefix {}) not healthy within {HEALTH_TIMEOUT:?}: {last}",
                    self.opts.prefix
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then asserts the process exits with status 0 within 20 s.
    pub(crate) async fn terminate(&mut self) {
        if let Err(e) = self.try_terminate().await {
            let tail = self.take_log_tail(60);
            panic!(
                "{e}\n--- cpor log tail ({}) ---\n{tail}",
                self.log_path.display()
            );
        }
    }

    /// Like [`Self::terminate`], returning the failure as a message.
    pub(crate) async fn try_terminate(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Err("cpor serve is not running".into());
        };
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "cpor serve had already exited with {status} before SIGTERM"
            ));
        }
        send_signal(child.id(), "TERM");
        let deadline = Instant::now() + TERM_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => {
                    return Err(format!(
                        "cpor serve exited with {status} after SIGTERM, not 0"
                    ))
                }
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "cpor serve did not exit within {TERM_TIMEOUT:?} after SIGTERM (killed it)"
                    ));
                }
                Err(e) => return Err(format!("waiting for cpor serve: {e}")),
            }
        }
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Waits up to `timeout` for the service to exit by itself: its exit
    /// status, or `None` if it still runs (it is left running).
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the service again (same data dir, NATS and prefix) after it
    /// was stopped, and waits for health.
    pub(crate) async fn start_again(&mut self) {
        assert!(self.child.is_none(), "cpor serve is still running");
        self.spawn();
        self.wait_healthy().await;
    }

    /// Like [`Self::start_again`], returning the failure as a message.
    pub(crate) async fn try_start_again(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Err("cpor serve is still running".into());
        }
        self.spawn();
        self.try_wait_healthy().await
    }

    /// SIGTERM (must exit 0), then start again on the same data dir.
    pub(crate) async fn restart_term(&mut self) {
        self.terminate().await;
        self.start_again().await;
    }

    /// SIGKILL, then start again on the same data dir.
    pub(crate) async fn restart_kill(&mut self) {
        self.kill().await;
        self.start_again().await;
    }

    /// The exit status when the process has exited.
    fn exited(&mut self) -> Result<Option<ExitStatus>, String> {
        match &mut self.child {
            Some(child) => child.try_wait().map_err(|e| e.to_string()),
            None => Err("cpor serve is not running".into()),
        }
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open the service log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--nats-url")
            .arg(&self.opts.nats_url)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--prefix")
            .arg(&self.opts.prefix);
        if self.opts.manual_clock {
            cmd.arg("--manual-clock");
        }
        if let Some(config) = &self.opts.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(&self.opts.extra_args);
        // Plain text in the log file.
        cmd.env("NO_COLOR", "1");
        // Many services run at once: each admin listener on a free port
        // (a test that scrapes it names one in `env`).
        cmd.env("CPOR_HTTP_ADDR", "127.0.0.1:0");
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        // The test's own environment must not change what the flags say.
        for var in cpor_testkit::env::CPOR_ENV {
            if !self.opts.env.iter().any(|(k, _)| k == var) {
                cmd.env_remove(var);
            }
        }
        let _ = writeln!(
            log,
            "=== test runner: start #{} of {:?} ===",
            self.starts, cmd
        );
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.bin.display()));
        self.child = Some(child);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // Keep the data dir and log for a look after the failure.
            self.dir.disable_cleanup(true);
            if !self.tail_shown {
                eprintln!(
                    "--- cpor log tail ({}) ---\n{}",
                    self.log_path.display(),
                    self.log_tail(60)
                );
            }
            eprintln!("(kept {} for inspection)", self.dir.path().display());
        }
    }
}

/// A `{"actor":{"type":"system","id":"test"},"now":…}` body for `admin.clock`.
pub(crate) fn clock_body(now: &Value) -> Value {
    json!({"actor": {"type": "system", "id": "test"}, "now": now})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::{unique_prefix, NatsServer};

    /// A stand-in for `cpor serve` in bash speaking the NATS protocol: answers
    /// `{prefix}.qry.health`, records each start in `DATA_DIR/starts`, exits
    /// with `$FAKE_TERM_EXIT` (default 0) on SIGTERM.
    const FAKE_CPOR: &str = r#"#!/usr/bin/env bash
set -u
while [ $# -gt 0 ]; do
  case "$1" in
    --nats-url) url=$2; shift 2;;
    --data-dir) data=$2; shift 2;;
    --prefix) prefix=$2; shift 2;;
    *) shift;;
  esac
done
mkdir -p "$data" && echo start >> "$data/starts"
hp=${url#nats://}
exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}"
read -r info <&3
trap 'echo "fake cpor: SIGTERM"; exit "${FAKE_TERM_EXIT:-0}"' TERM
printf 'CONNECT {"verbose":false,"pedantic":false}\r\nSUB %s.qry.health 1\r\nPING\r\n' "$prefix" >&3
echo "fake cpor: serving $prefix"
while true; do
  read -r line <&3 || continue
  line=${line%$'\r'}
  case "$line" in
    PING) printf 'PONG\r\n' >&3;;
    MSG*)
      set -- $line
      read -r payload <&3
      body='{"ok":true,"log_position":0,"published_position":0}'
      printf 'PUB %s %d\r\n%s\r\n' "$4" "${#body}" "$body" >&3;;
  esac
done
"#;

    fn fake_bin(dir: &Path) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("fake-cpor");
        std::fs::write(&path, FAKE_CPOR).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn starts(service: &Service) -> usize {
        std::fs::read_to_string(service.data_dir().join("starts"))
            .unwrap_or_default()
            .lines()
            .count()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_health_terminate_kill_restart() {
        let nats = NatsServer::shared_or_own();
        let bins = tempfile::tempdir().unwrap();
        let mut opts = ServiceOptions::new(nats.url(), &unique_prefix()).manual_clock(true);
        opts.bin = Some(fake_bin(bins.path()));
        let mut service = Service::start(opts).await;
        assert_eq!(starts(&service), 1);
        let health = service.health().await.unwrap();
        assert_eq!(health["ok"], true);

        service.restart_term().await;
        assert_eq!(starts(&service), 2);
        service.restart_kill().await;
        assert_eq!(starts(&service), 3);
        assert!(service.health().await.is_ok());

        service.terminate().await;
        assert!(
            service.health().await.is_err(),
            "still answering after SIGTERM"
        );
        let log = service.log_tail(100);
        assert!(log.contains("start #3"), "{log}");
        assert!(log.contains("--manual-clock"), "{log}");
        assert!(log.contains("fake cpor: SIGTERM"), "{log}");
        assert!(
            service.try_terminate().await.is_err(),
            "not running any more"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn terminate_reports_a_nonzero_exit() {
        let nats = NatsServer::shared_or_own();
        let bins = tempfile::tempdir().unwrap();
        let mut opts = ServiceOptions::new(nats.url(), &unique_prefix());
        opts.bin = Some(fake_bin(bins.path()));
        opts.env.push(("FAKE_TERM_EXIT".into(), "3".into()));
        let mut service = Service::start(opts).await;
        let err = service.try_terminate().await.unwrap_err();
        assert!(err.contains("exit status: 3"), "{err}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_service_that_exits_early_is_reported() {
        let nats = NatsServer::shared_or_own();
        let bins = tempfile::tempdir().unwrap();
        let bin = bins.path().join("fails");
        std::fs::write(&bin, "#!/bin/sh\necho 'boom: bad flag' >&2\nexit 2\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut opts = ServiceOptions::new(nats.url(), &unique_prefix());
        opts.bin = Some(bin);
        let handle = tokio::spawn(Service::start(opts));
        let Err(err) = handle.await else {
            panic!("start must panic")
        };
        let message = err.into_panic();
        let message = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains("exited with exit status: 2"), "{message}");
        assert!(message.contains("boom: bad flag"), "{message}");
    }

    #[test]
    fn cpor_bin_says_how_to_build_it() {
        // Only the error path: setting env vars would race other tests.
        if std::env::var_os("CPOR_BIN").is_none() {
            let result = std::panic::catch_unwind(cpor_bin);
            if let Err(e) = result {
                let m = e.downcast_ref::<String>().cloned().unwrap_or_default();
                assert!(m.contains("cargo build -p cpor"), "{m}");
                assert!(
                    m.contains("target/debug/cpor") || m.contains("/cpor"),
                    "{m}"
                );
            }
        }
    }
}
