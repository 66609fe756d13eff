//! The processes a benchmark run starts and owns: its nats-server, its
//! `cpor serve`, its echo responder. Each is killed when dropped, so a
//! failed run leaves nothing behind.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

/// How long nats-server may take to accept connections.
pub const NATS_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a child may take to exit after SIGTERM before it is killed.
pub const TERM_TIMEOUT: Duration = Duration::from_secs(20);
/// Health polling: interval, and the wait for one reply.
pub const HEALTH_POLL_EVERY: Duration = Duration::from_millis(10);
pub const HEALTH_REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// The nats-server to start: the tests' choice ([`cpor_testkit::nats`]:
/// `$CPOR_NATS_SERVER_BIN`, set by `scripts/ensure-nats`, else the newest
/// in the workspace's `.tools/`, else `nats-server` on PATH, else
/// /usr/sbin/nats-server).
pub fn find_nats_server() -> anyhow::Result<PathBuf> {
    match cpor_testkit::nats::find_nats_server_bin() {
        Some(bin) => Ok(bin),
        None => bail!(
            "nats-server not found ($CPOR_NATS_SERVER_BIN, .tools/, PATH, /usr/sbin): \
             run through scripts/ensure-nats, or apt-get install nats-server"
        ),
    }
}

/// A child process, killed when dropped.
pub struct Owned {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Owned {
    fn spawn(name: &str, mut command: Command, log: PathBuf) -> anyhow::Result<Owned> {
        let out = File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().with_context(|| format!("start {name}"))?;
        Ok(Owned {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails when the process has exited (with the tail of its log).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = &mut self.child {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited ({status}); its log ends with:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
        }
        Ok(())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, wait up to [`TERM_TIMEOUT`], then SIGKILL. Returns whether
    /// it exited with status 0 by itself.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + TERM_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGKILL at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The run's own nats-server: JetStream, a temp store, a free port.
pub struct NatsServer {
    pub process: Owned,
    pub url: String,
}

impl NatsServer {
    pub fn start(bin: &Path, dir: &Path) -> anyhow::Result<NatsServer> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let port = cpor_testkit::net::free_port();
        let mut command = Command::new(bin);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.join("jetstream"));
        let mut process = Owned::spawn("nats-server", command, dir.join("nats-server.log"))?;
        let deadline = Instant::now() + NATS_START_TIMEOUT;
        loop {
            process.check_alive()?;
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "nats-server did not accept connections in {NATS_START_TIMEOUT:?}:\n{}",
                    process.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(NatsServer {
            process,
            url: format!("nats://127.0.0.1:{port}"),
        })
    }
}

/// Starts `cpor serve` on `data_dir` with its own prefix (wall clock, the
/// default calendar). Its output goes to `log`.
pub fn start_service(
    bin: &Path,
    nats_url: &str,
    data_dir: &Path,
    prefix: &str,
    log: PathBuf,
) -> anyhow::Result<Owned> {
    let mut command = Command::new(bin);
    command
        .arg("serve")
        .args(["--nats-url", nats_url, "--prefix", prefix, "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "warn,async_nats=error")
        // Measured as deployed, metrics recorded; on a free port.
        .env("CPOR_HTTP_ADDR", "127.0.0.1:0");
    for var in ["CPOR_CONFIG", "CPOR_MANUAL_CLOCK", "CPOR_LOG_FORMAT"] {
        command.env_remove(var);
    }
    Owned::spawn("cpor serve", command, log)
}

/// Starts one of this executable's echo responders: `cpor-bench echo`
/// (`subcommand` "echo", the plain ceiling) or `cpor-bench echo-js` (two
/// JetStream publishes per request).
pub fn start_echo(
    exe: &Path,
    subcommand: &str,
    nats_url: &str,
    subject: &str,
    log: PathBuf,
) -> anyhow::Result<Owned> {
    let mut command = Command::new(exe);
    command.args([subcommand, "--nats-url", nats_url, "--subject", subject]);
    Owned::spawn(&format!("{subcommand} responder"), command, log)
}

/// Pins every thread of process `pid` (and the threads it starts later) to
/// CPUs `0..cores` with `taskset -a -p -c` (util-linux, sched_setaffinity(2)).
///
/// Errors: `taskset` is missing (`apt-get install util-linux`), or fails.
pub fn pin(pid: u32, cores: usize) -> anyhow::Result<()> {
    let taskset = crate::procfs::find_taskset()
        .context("taskset is not on PATH (apt-get install util-linux)")?;
    let cpus = format!("0-{}", cores.max(1) - 1);
    let output = Command::new(taskset)
        .args(["-a", "-p", "-c", &cpus, &pid.to_string()])
        .output()
        .context("run taskset")?;
    if !output.status.success() {
        bail!(
            "taskset -a -p -c {cpus} {pid} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// `(log_position, published_position)` from `{prefix}.qry.health`, or
/// `None` when nothing answers in time.
pub async fn health(client: &async_nats::Client, prefix: &str) -> Option<(u64, u64)> {
    let request = client.request(
        format!("{prefix}.qry.health"),
        bytes::Bytes::from_static(b"{}"),
    );
    let reply = tokio::time::timeout(HEALTH_REPLY_TIMEOUT, request)
        .await
        .ok()?
        .ok()?;
    let value: Value = serde_json::from_slice(&reply.payload).ok()?;
    Some((
        value.get("log_position")?.as_u64()?,
        value.get("published_position")?.as_u64()?,
    ))
}

/// Polls health until it answers; the time it took.
pub async fn wait_healthy(
    client: &async_nats::Client,
    prefix: &str,
    service: &mut Owned,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if health(client, prefix).await.is_some() {
            return Ok(started.elapsed());
        }
        service.check_alive()?;
        if started.elapsed() > timeout {
            bail!(
                "cpor serve did not answer {prefix}.qry.health in {timeout:?}:\n{}",
                service.log_tail(20)
            );
        }
        tokio::time::sleep(HEALTH_POLL_EVERY).await;
    }
}

/// Polls health until everything logged is published; the time it took
/// and the position reached.
pub async fn wait_published(
    client: &async_nats::Client,
    prefix: &str,
    timeout: Duration,
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    loop {
        if let Some((log, published)) = health(client, prefix).await {
            if published >= log {
                return Ok((started.elapsed(), log));
            }
        }
        if started.elapsed() > timeout {
            bail!("the relay did not publish everything in {timeout:?}");
        }
        tokio::time::sleep(HEALTH_POLL_EVERY).await;
    }
}
