//! `scripts/demo` as a first user runs it: it tells its story in facts
//! (refusal, statuses, reasons, partners), exits 0 (after the story with
//! `--no-wait`, and on Ctrl-C), and removes its data dir and streams unless
//! asked to keep them.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::jetstream::delete_streams;
use crate::support::nats::send_signal;
use crate::support::{cpor_bin, unique_prefix, NatsServer};

/// How long the demo may take from start to exit (no build: `CPOR_BIN`).
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `scripts/demo ARGS` on `nats` with `prefix`, using the tests' cpor
/// binary, in a process group of its own (as a terminal's foreground job).
fn demo(nats: &NatsServer, prefix: &str, args: &[&str]) -> Child {
    Command::new(root().join("scripts/demo"))
        .args(args)
        .env("CPOR_BIN", cpor_bin())
        .env("ENSURE_NATS_URL", nats.url())
        .env("CPOR_NATS_URL", nats.url())
        .env("CPOR_DEMO_PREFIX", prefix)
        .env("NO_COLOR", "1")
        // Many services run at once: each admin listener on a free port.
        .env("CPOR_HTTP_ADDR", "127.0.0.1:0")
        .env_remove("CPOR_DEMO_KEEP")
        .env_remove("CPOR_PREFIX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .expect("run scripts/demo")
}

/// The streams of `prefix` that exist on `nats`.
async fn streams_of(nats: &NatsServer, prefix: &str) -> Vec<String> {
    let js = async_nats::jetstream::new(nats.connect().await);
    let mut found = Vec::new();
    for kind in ["EVENTS", "STATUS", "LEASE"] {
        let name = format!("{}_{kind}", prefix.to_uppercase());
        if js.get_stream(&name).await.is_ok() {
            found.push(name);
        }
    }
    found
}

fn data_dir(prefix: &str) -> PathBuf {
    root().join(format!("demo-data/{prefix}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_tells_its_story_exits_0_and_cleans_up() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let output = tokio::time::timeout(
        DEMO_TIMEOUT,
        demo(&nats, &prefix, &["--no-wait"]).wait_with_output(),
    )
    .await
    .expect("the demo ends")
    .expect("wait for the demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    // The facts, not cut JSON: the refusal's message, who won, why the
    // other lost, the missed deadline.
    for fact in [
        "refused DOMAIN_TENANT_MISMATCH: The customer domain",
        "cpor.arbitration.opened",
        "cpor.arbitration.resolved",
        "partner P-100  rejected (LOST_ARBITRATION)",
        "partner P-200  approved",
        "partner P-300  submitted  overdue",
    ] {
        assert!(
            stdout.contains(fact),
            "the demo does not say {fact:?}:\n{stdout}"
        );
    }
    assert!(!data_dir(&prefix).exists(), "the demo left its data dir");
    assert_eq!(
        streams_of(&nats, &prefix).await,
        Vec::<String>::new(),
        "the demo left streams"
    );

    // Kept when asked.
    let kept = unique_prefix();
    let output = tokio::time::timeout(
        DEMO_TIMEOUT,
        demo(&nats, &kept, &["--no-wait", "--keep"]).wait_with_output(),
    )
    .await
    .expect("the demo ends")
    .expect("wait for the demo");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(data_dir(&kept).is_dir(), "--keep removed the data dir");
    assert_eq!(
        streams_of(&nats, &kept).await.len(),
        3,
        "--keep removed streams"
    );
    let _ = std::fs::remove_dir_all(data_dir(&kept));
    delete_streams(&async_nats::jetstream::new(nats.connect().await), &kept).await;
}

/// Ctrl-C (SIGINT to the demo's process group, as a terminal sends it)
/// while it serves: exit 0, the data dir and streams removed.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_stops_the_demo_with_exit_0() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut child = demo(&nats, &prefix, &[]);
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen = String::new();
    tokio::time::timeout(DEMO_TIMEOUT, async {
        while let Some(line) = stdout.next_line().await.expect("read the demo's output") {
            seen.push_str(&line);
            seen.push('\n');
            if line.starts_with("Ctrl-C stops it") {
                return;
            }
        }
        panic!("the demo ended before serving:\n{seen}");
    })
    .await
    .unwrap_or_else(|_| panic!("the demo did not reach its end of story"));
    let group = child.id().expect("the demo runs");
    send_signal(group, "INT"); // the leader…
    send_signal_group(group, "INT"); // …and, as a terminal does, its group
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the demo exits after Ctrl-C")
        .expect("wait for the demo");
    assert_eq!(status.code(), Some(0), "after Ctrl-C:\n{seen}");
    assert!(!data_dir(&prefix).exists(), "the demo left its data dir");
    assert_eq!(
        streams_of(&nats, &prefix).await,
        Vec::<String>::new(),
        "the demo left streams"
    );
}

/// `kill -SIGNAL -- -GROUP`: every process of a process group.
fn send_signal_group(group: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([format!("-{signal}"), "--".into(), format!("-{group}")])
        .status();
}
