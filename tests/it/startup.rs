//! Start-up of `cpor serve` as a process: SIGTERM and SIGINT stop it with
//! exit 0 in every phase before it serves (NATS unreachable, JetStream
//! missing), also when the parent started it with SIGINT ignored (a
//! background job of a shell script); a start that is refused or stopped
//! before serving leaves no data dir it created.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::jetstream::delete_streams;
use crate::support::nats::{free_port, nats_server_bin, send_signal, tail};
use crate::support::{cpor_bin, unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a start-up phase may take to answer a signal with its exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `cpor serve` may take to log that it is starting.
const STARTING_TIMEOUT: Duration = Duration::from_secs(20);

/// A `cpor serve` started by hand, stderr and stdout to `cpor.log` in `dir`.
struct Starting {
    child: Child,
    log: PathBuf,
}

impl Starting {
    /// `cpor serve --nats-url URL --data-dir DATA --prefix PREFIX`, through
    /// `sh -c` with SIGINT ignored first when `ignore_sigint`.
    fn spawn(
        dir: &Path,
        url: &str,
        data_dir: &Path,
        prefix: &str,
        ignore_sigint: bool,
    ) -> Starting {
        Starting::spawn_with(dir, url, data_dir, prefix, ignore_sigint, &[])
    }

    /// [`Starting::spawn`] with more environment variables
    /// (`NO_COLOR` is not set: the log is a file, so it must be plain).
    fn spawn_with(
        dir: &Path,
        url: &str,
        data_dir: &Path,
        prefix: &str,
        ignore_sigint: bool,
        env: &[(&str, &str)],
    ) -> Starting {
        let log = dir.join("cpor.log");
        let out = File::create(&log).expect("create the log");
        let bin = cpor_bin();
        let args = [
            "serve",
            "--nats-url",
            url,
            "--data-dir",
            data_dir.to_str().expect("UTF-8 temp path"),
            "--prefix",
            prefix,
        ];
        let mut command = if ignore_sigint {
            // What a shell does to a background job: SIGINT ignored, and the
            // disposition inherited across exec.
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg("trap '' INT; exec \"$0\" \"$@\"")
                .arg(&bin)
                .args(args);
            command
        } else {
            let mut command = Command::new(&bin);
            command.args(args);
            command
        };
        for var in cpor_testkit::env::CPOR_ENV {
            command.env_remove(var);
        }
        // Many services run at once: each admin listener on a free port.
        command.env("CPOR_HTTP_ADDR", "127.0.0.1:0");
        command.env_remove("NO_COLOR").envs(env.iter().copied());
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone the log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        Starting { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics if the process exits
    /// first or it takes longer than [`STARTING_TIMEOUT`].
    fn wait_for_log(&mut self, needle: &str) {
        let deadline = Instant::now() + STARTING_TIMEOUT;
        loop {
            if self.log_text().contains(needle) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "cpor serve exited ({status}) before logging {needle:?}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "cpor serve did not log {needle:?} within {STARTING_TIMEOUT:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `signal` and waits for the exit; panics when it takes longer
    /// than [`STOP_TIMEOUT`]. The exit status and how long it took.
    fn signal_and_wait(&mut self, signal: &str) -> (ExitStatus, Duration) {
        send_signal(self.child.id(), signal);
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for cpor serve") {
                return (status, sent.elapsed());
            }
            if sent.elapsed() > STOP_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "cpor serve did not exit within {STOP_TIMEOUT:?} of SIG{signal}:\n{}",
                    tail(&self.log, 30)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cpor serve` against `url`, waits until it is in the phase that
/// logs `phase_log` and has retried at least once, sends `signal`, and
/// checks a clean exit 0 and that the data dir it created is gone.
fn stops_cleanly_while(url: &str, phase_log: &str, signal: &str, ignore_sigint: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut serve = Starting::spawn(dir.path(), url, &data_dir, &unique_prefix(), ignore_sigint);
    serve.wait_for_log(phase_log);
    // Let it sleep in its backoff, the moment a signal used to be lost.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        serve.child.try_wait().expect("try_wait").is_none(),
        "cpor serve exited before the signal:\n{}",
        serve.log_text()
    );
    let (status, took) = serve.signal_and_wait(signal);
    let log = serve.log_text();
    assert_eq!(
        status.code(),
        Some(0),
        "SIG{signal} while {phase_log:?} (SIGINT ignored by the parent: {ignore_sigint}) \
         should exit 0, got {status}:\n{log}"
    );
    assert!(
        log.contains(&format!("SIG{signal} during start-up")),
        "the log does not say why it stopped:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that goes to a file:\n{log}"
    );
    assert!(
        !data_dir.exists(),
        "a start stopped before serving left the data dir it created: {}\n{log}",
        data_dir.display()
    );
    eprintln!("SIG{signal} while {phase_log:?}: exit 0 after {took:?}");
}

#[test]
fn sigterm_and_sigint_while_nats_is_unreachable_exit_0() {
    // Nothing listens on a free port.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let retrying = "cannot reach NATS";
    stops_cleanly_while(&url, retrying, "TERM", false);
    stops_cleanly_while(&url, retrying, "INT", false);
    stops_cleanly_while(&url, retrying, "INT", true);
}

#[test]
fn sigterm_and_sigint_while_jetstream_is_missing_exit_0() {
    // A nats-server without JetStream: the streams cannot be created.
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let log = File::create(dir.path().join("nats-server.log")).expect("create the log");
    let mut nats = Command::new(nats_server_bin())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("start nats-server");
    let url = format!("nats://127.0.0.1:{port}");
    let retrying = "cannot create the JetStream streams";
    let result = std::panic::catch_unwind(|| {
        stops_cleanly_while(&url, retrying, "TERM", false);
        stops_cleanly_while(&url, retrying, "INT", false);
    });
    let _ = nats.kill();
    let _ = nats.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A second service on a prefix another instance holds is refused (exit 2)
/// without leaving the data dir it created; a data dir that existed before
/// is kept.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_refused_by_the_lease_leaves_no_data_dir() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut first = Service::start(ServiceOptions::new(nats.url(), &prefix)).await;
    let dir = tempfile::tempdir().expect("temp dir");

    let fresh = dir.path().join("parent/data");
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).expect("create a data dir");
    for data_dir in [&fresh, &existing] {
        let mut second = Starting::spawn(dir.path(), nats.url(), data_dir, &prefix, false);
        let status = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(status) = second.child.try_wait().expect("try_wait") {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the second service was not refused:\n{}", second.log_text()));
        let log = second.log_text();
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains("owns prefix"), "{log}");
        if data_dir == &fresh {
            assert!(
                !dir.path().join("parent").exists(),
                "the refused start left the directories it created:\n{log}"
            );
        } else {
            assert!(
                existing.is_dir(),
                "the refused start removed a data dir it did not create"
            );
        }
    }

    first.terminate().await;
    delete_streams(&async_nats::jetstream::new(nats.connect().await), &prefix).await;
}

/// Colours only on a terminal, and not with `NO_COLOR`: the log of a
/// service on a pseudo-terminal (`script`) has ANSI colour codes; with
/// `NO_COLOR=1` it has none (a log file never has: checked above).
#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("nats://127.0.0.1:{}", free_port());
    let on_a_terminal = |no_color: Option<&str>| -> String {
        let data_dir = dir.path().join("data");
        let serve = format!(
            "timeout -s TERM 2 {} serve --nats-url {url} --data-dir {} --prefix {}",
            cpor_bin().display(),
            data_dir.display(),
            unique_prefix()
        );
        let mut command = Command::new("script");
        command
            .args(["-qec", &serve, "/dev/null"])
            .stdin(Stdio::null());
        command.env_remove("NO_COLOR");
        command.env("CPOR_HTTP_ADDR", "127.0.0.1:0");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let output = command.output().expect("run script (util-linux)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let coloured = on_a_terminal(None);
    assert!(coloured.contains("starting"), "{coloured}");
    assert!(
        coloured.contains('\u{1b}'),
        "no colours on a terminal:\n{coloured}"
    );
    let plain = on_a_terminal(Some("1"));
    assert!(plain.contains("starting"), "{plain}");
    assert!(
        !plain.contains('\u{1b}'),
        "colours despite NO_COLOR=1:\n{plain}"
    );
}

/// `--manual-clock` is a plain flag in `serve --help`; `CPOR_MANUAL_CLOCK=1`
/// still turns it on.
#[test]
fn manual_clock_is_a_plain_flag() {
    let output = Command::new(cpor_bin())
        .args(["serve", "--help"])
        .output()
        .expect("run cpor serve --help");
    let help = String::from_utf8_lossy(&output.stdout);
    let line = help
        .lines()
        .find(|line| line.trim_start().starts_with("--manual-clock"))
        .unwrap_or_else(|| panic!("no --manual-clock in:\n{help}"));
    assert!(
        !line.contains("[<") && !line.contains("[default:"),
        "--manual-clock shows a value: {line}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("nats://127.0.0.1:{}", free_port());
    for (value, expected) in [("1", "manual_clock=true"), ("0", "manual_clock=false")] {
        let data_dir = dir.path().join("data");
        let mut serve = Starting::spawn_with(
            dir.path(),
            &url,
            &data_dir,
            &unique_prefix(),
            false,
            &[("CPOR_MANUAL_CLOCK", value)],
        );
        serve.wait_for_log("starting");
        let log = serve.log_text();
        assert!(log.contains(expected), "CPOR_MANUAL_CLOCK={value}: {log}");
        let (status, _) = serve.signal_and_wait("TERM");
        assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    }
}

/// Against a nats-server older than the supported minimum (Debian 12's
/// 2.9.10, when this machine has it), `cpor serve` still starts but warns
/// that the server is too old, naming both versions (deploy/README.md).
#[test]
fn serve_warns_on_a_nats_server_older_than_2_10() {
    let old = Path::new("/usr/sbin/nats-server");
    let version = Command::new(old)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !version.contains("v2.9.") {
        eprintln!(
            "SKIPPED: no nats-server 2.9 at {} ({version:?})",
            old.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let store = dir.path().join("js");
    let log = File::create(dir.path().join("nats-server.log")).expect("create the log");
    let mut nats = Command::new(old)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&store)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .spawn()
        .expect("start nats-server 2.9");
    let url = format!("nats://127.0.0.1:{port}");
    let result = std::panic::catch_unwind(|| {
        let data_dir = dir.path().join("data");
        let mut serve = Starting::spawn(dir.path(), &url, &data_dir, &unique_prefix(), false);
        serve.wait_for_log("older than 2.10.0, the oldest supported");
        let log = serve.log_text();
        assert!(log.contains("2.9."), "{log}");
        let (status, _) = serve.signal_and_wait("TERM");
        assert_eq!(status.code(), Some(0), "{}", serve.log_text());
    });
    let _ = nats.kill();
    let _ = nats.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
