//! Identity and permissions (issue 9): the service and the tools connect
//! with credentials and TLS; on a server configured like `deploy/nats/`,
//! every role can do what it may and nothing more.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::nats::ClientAuth;
use crate::support::{cpor_bin, request, unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a `cpor` run that must end may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `CPOR_*` variables a test's environment must not leak into a run.
const CPOR_ENV: [&str; 14] = [
    "CPOR_NATS_URL",
    "CPOR_DATA_DIR",
    "CPOR_PREFIX",
    "CPOR_CONFIG",
    "CPOR_MANUAL_CLOCK",
    "CPOR_NATS_CREDS",
    "CPOR_NATS_NKEY",
    "CPOR_NATS_USER",
    "CPOR_NATS_PASSWORD",
    "CPOR_NATS_TOKEN",
    "CPOR_NATS_TLS_CA",
    "CPOR_NATS_TLS_CERT",
    "CPOR_NATS_TLS_KEY",
    "CPOR_NATS_INBOX_PREFIX",
];

/// Runs `cpor ARGS` with `env` to its exit: exit code, stdout, stderr.
async fn run_cpor(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(cpor_bin());
    command
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in CPOR_ENV {
        command.env_remove(var);
    }
    command.envs(env.iter().copied());
    let child = command.spawn().expect("start cpor");
    match tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => {
            let output = output.expect("wait for cpor");
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stdout).into_owned(),
                String::from_utf8_lossy(&output.stderr).into_owned(),
            )
        }
        Err(_) => panic!("cpor {args:?} did not exit within {RUN_TIMEOUT:?}"),
    }
}

fn system() -> Value {
    json!({"type": "system", "id": "identity-test"})
}

/// `cpor serve` and `cpor request` authenticate with `--nats-user` and the
/// password in `CPOR_NATS_PASSWORD`; a wrong password ends `serve` at once
/// with exit 2 and a message naming the refusal, instead of retrying for
/// ever; no password at all is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn serve_and_tools_use_user_and_password_and_wrong_ones_exit_2() {
    let nats = NatsServer::start_own_with(&["--user", "svc", "--pass", "s3cret-pw"], &[]);
    let prefix = unique_prefix();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let data_dir = data_dir.to_str().unwrap();

    let (code, _, stderr) = run_cpor(
        &[
            "serve",
            "--nats-url",
            nats.url(),
            "--prefix",
            &prefix,
            "--data-dir",
            data_dir,
            "--nats-user",
            "svc",
        ],
        &[("CPOR_NATS_PASSWORD", "wrong")],
    )
    .await;
    assert_eq!(code, Some(2), "wrong password: {stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("authorization violation"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cpor(
        &[
            "serve",
            "--nats-url",
            nats.url(),
            "--prefix",
            &prefix,
            "--data-dir",
            data_dir,
            "--nats-user",
            "svc",
        ],
        &[],
    )
    .await;
    assert_eq!(code, Some(2), "no password: {stderr}");
    assert!(stderr.contains("CPOR_NATS_PASSWORD"), "{stderr}");

    let mut opts = ServiceOptions::new(nats.url(), &prefix).manual_clock(true);
    opts.extra_args = vec!["--nats-user".into(), "svc".into()];
    opts.env = vec![("CPOR_NATS_PASSWORD".into(), "s3cret-pw".into())];
    opts.helper_auth = Some(ClientAuth::user("svc", "s3cret-pw"));
    let mut service = Service::start(opts).await;
    let reply = request(
        service.client(),
        &service.subject("admin.clock"),
        json!({"actor": system(), "now": "2026-11-25T09:00:00Z"}).to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");

    let (code, stdout, stderr) = run_cpor(
        &[
            "request",
            "--nats-url",
            nats.url(),
            "--prefix",
            &prefix,
            "--nats-user",
            "svc",
            "qry.health",
        ],
        &[("CPOR_NATS_PASSWORD", "s3cret-pw")],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("log_position"), "{stdout}");
    let (code, _, stderr) = run_cpor(
        &[
            "verify",
            "--nats-url",
            nats.url(),
            "--prefix",
            &prefix,
            "--nats-user",
            "svc",
        ],
        &[("CPOR_NATS_PASSWORD", "wrong")],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("authorization violation"), "{stderr}");
    service.terminate().await;
}

/// `cpor serve` started before its NATS server waits for it (async-nats'
/// initial-connect retry) and serves once it is up.
#[tokio::test(flavor = "multi_thread")]
async fn serve_waits_for_a_nats_server_that_is_not_up_yet() {
    let mut nats = NatsServer::start_own();
    tokio::task::block_in_place(|| nats.stop());
    let prefix = unique_prefix();
    let data = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(data.path().join("cpor.log")).unwrap();
    let mut command = tokio::process::Command::new(cpor_bin());
    command
        .args(["serve", "--nats-url", nats.url(), "--prefix", &prefix])
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    for var in CPOR_ENV {
        command.env_remove(var);
    }
    let mut child = command.spawn().expect("start cpor serve");
    let log_text = || std::fs::read_to_string(data.path().join("cpor.log")).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "cpor serve gave up while NATS was down:\n{}",
        log_text()
    );
    assert!(log_text().contains("cannot reach NATS"), "{}", log_text());

    tokio::task::block_in_place(|| nats.start());
    let client = nats.connect().await;
    let started = std::time::Instant::now();
    loop {
        let health = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(format!("{prefix}.qry.health"), "{}".into()),
        )
        .await;
        if let Ok(Ok(reply)) = health {
            let health: Value = serde_json::from_slice(&reply.payload).unwrap();
            assert_eq!(health["ok"], true, "{health}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "cpor serve does not answer 20 s after NATS came up:\n{}",
            log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crate::support::nats::send_signal(child.id().unwrap(), "TERM");
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}:\n{}", log_text());
}
