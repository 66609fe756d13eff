//! Faults and hostile input (issue 11, "stops and stalls"): each test is one
//! of the cases, run on real processes, and covers its whole kind.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream;

use crate::support::jetstream::delete_streams;
use crate::support::{cpor_bin, unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a `cpor serve` that must refuse to start may take to exit.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Runs `cpor serve ARGS` to its exit: exit code and stderr.
async fn serve_until_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut command = tokio::process::Command::new(cpor_bin());
    command
        .arg("serve")
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in [
        "CPOR_NATS_URL",
        "CPOR_DATA_DIR",
        "CPOR_PREFIX",
        "CPOR_CONFIG",
        "CPOR_MANUAL_CLOCK",
    ] {
        command.env_remove(var);
    }
    let child = command.spawn().expect("start cpor serve");
    match tokio::time::timeout(REFUSAL_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("wait for cpor serve");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => panic!("cpor serve {args:?} did not exit within {REFUSAL_TIMEOUT:?}"),
    }
}

/// Issue 11 case 7: a start refused after the writer started (here: the
/// prefix's lease is held) must stop the writer before the runtime, on every
/// error path; it sometimes panicked with "A Tokio 1.x context was found,
/// but it is being shutdown" (2 of 34 runs). Repeated, since it was a race.
#[tokio::test(flavor = "multi_thread")]
async fn refused_starts_exit_2_without_a_panic() {
    const STARTS: usize = 24;
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut owner =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let dirs = tempfile::tempdir().expect("temp dir");
    for start in 0..STARTS {
        let data_dir = dirs.path().join(format!("refused-{start}"));
        let (code, stderr) = serve_until_exit(&[
            "--nats-url",
            nats.url(),
            "--data-dir",
            path_arg(&data_dir),
            "--prefix",
            &prefix,
        ])
        .await;
        assert!(
            !stderr.contains("panicked"),
            "refused start #{start} panicked:\n{stderr}"
        );
        assert_eq!(code, Some(2), "refused start #{start}:\n{stderr}");
        assert!(stderr.contains("owns prefix"), "{stderr}");
    }
    owner.terminate().await;
    delete_streams(&jetstream::new(nats.connect().await), &prefix).await;
}
