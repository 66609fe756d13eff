//! The tools for people, as a first user meets them: `cpor watch` started
//! before the service, its `--json` and partner column; `cpor request`
//! errors that say their cause once.

use cpor_testkit::actors;
use cpor_testkit::fixtures::wire::{self as fixtures, MPN_ID, PARTNER_ID};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::support::jetstream::delete_streams;
use crate::support::service::cpor_command;
use crate::support::{request, unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a watcher may take to print what the test waits for.
const WATCH_TIMEOUT: Duration = Duration::from_secs(20);

/// `cpor ARGS` ([`cpor_command`]) with stdout and stderr piped.
fn cpor(args: &[&str]) -> Child {
    cpor_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cpor")
}

/// The next line of `lines` within [`WATCH_TIMEOUT`].
async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Lines<R>, what: &str) -> String {
    tokio::time::timeout(WATCH_TIMEOUT, lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no line from {what} within {WATCH_TIMEOUT:?}"))
        .expect("read a line")
        .unwrap_or_else(|| panic!("{what} closed its output"))
}

/// Reference data and one submitted claim of partner P-100; its id.
async fn submit_one_claim(client: &async_nats::Client, prefix: &str) -> String {
    let system = actors::wire::system("test-sync");
    let tenant = uuid::Uuid::new_v4();
    let subscription = uuid::Uuid::new_v4();
    let claim = uuid::Uuid::new_v4().to_string();
    let commands = [
        (
            "cmd.ref.tenant",
            fixtures::tenant(&system, tenant, &["contoso.com"]),
        ),
        (
            "cmd.ref.subscription",
            fixtures::subscription(&system, tenant, subscription),
        ),
        (
            "cmd.ref.partner",
            fixtures::partner(&system, PARTNER_ID, MPN_ID),
        ),
        (
            "cmd.partner.P-100.submit",
            json!({"actor": actors::wire::partner(PARTNER_ID, "a@p.example"),
                   "claim_id": claim, "tenant_id": tenant, "domain": "contoso.com",
                   "solution_area": "business_applications", "activity": "usage",
                   "product": "dynamics_365_sales", "mpn_id": "4412001",
                   "subscription_id": subscription}),
        ),
    ];
    for (subject, mut body) in commands {
        body["command_id"] = json!(uuid::Uuid::new_v4());
        let reply = request(client, &format!("{prefix}.{subject}"), body.to_string()).await;
        assert_eq!(reply["ok"], true, "{subject}: {reply}");
    }
    claim
}

/// Reads lines until one holds `needle`; the line.
async fn line_with(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str, what: &str) -> String {
    loop {
        let line = next_line(lines, what).await;
        if line.contains(needle) {
            return line;
        }
    }
}

/// A dashboard may start before the service: `cpor watch` says it waits
/// for the stream, then shows the views once the service publishes them,
/// with `--json` one view per line and in the table a partner column.
#[tokio::test(flavor = "multi_thread")]
async fn watch_started_before_the_service_waits_for_its_streams() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut json_watch = cpor(&[
        "watch",
        "--json",
        "--nats-url",
        nats.url(),
        "--prefix",
        &prefix,
    ]);
    let mut stderr = BufReader::new(json_watch.stderr.take().expect("stderr")).lines();
    let said = next_line(&mut stderr, "cpor watch's stderr").await;
    assert!(
        said.contains("waiting") && said.contains(&format!("{}_STATUS", prefix.to_uppercase())),
        "cpor watch should say it waits for the stream: {said}"
    );
    // Still waiting a while later, not exited.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        json_watch.try_wait().expect("try_wait").is_none(),
        "cpor watch exited while waiting for the stream"
    );

    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let claim = submit_one_claim(&client, &prefix).await;

    let mut stdout = BufReader::new(json_watch.stdout.take().expect("stdout")).lines();
    let line = line_with(&mut stdout, &claim, "cpor watch --json").await;
    let view: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!("cpor watch --json printed a line that is not JSON ({e}): {line}")
    });
    assert_eq!(view["claim_id"], claim.as_str(), "{view}");
    assert_eq!(view["partner_id"], "P-100", "{view}");
    assert_eq!(view["status"], "submitted", "{view}");

    // The table, started after the claim: a header with a partner column,
    // then the claim's row naming its partner.
    let mut table = cpor(&["watch", "--nats-url", nats.url(), "--prefix", &prefix]);
    let mut rows = BufReader::new(table.stdout.take().expect("stdout")).lines();
    let header = next_line(&mut rows, "cpor watch").await;
    assert!(
        header.contains("PARTNER") && header.contains("STATUS"),
        "{header}"
    );
    let row = line_with(&mut rows, &claim, "cpor watch").await;
    assert!(row.contains("P-100") && row.contains("submitted"), "{row}");

    let _ = json_watch.kill().await;
    let _ = table.kill().await;
    service.terminate().await;
    delete_streams(&async_nats::jetstream::new(client), &prefix).await;
}

/// A client error names its cause once ("no responders", not "no
/// responders: no responders: no responders"), exit 2.
#[tokio::test(flavor = "multi_thread")]
async fn request_errors_say_their_cause_once() {
    let nats = NatsServer::shared_or_own();
    let nobody = unique_prefix();
    let output = cpor(&[
        "request",
        "--nats-url",
        nats.url(),
        "--prefix",
        &nobody,
        "qry.health",
    ])
    .wait_with_output()
    .await
    .expect("run cpor request");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("no responders").count(), 1, "{stderr}");
}

/// `cpor replay --as-of now` (and with no `--as-of`, the same) replays to
/// the wall clock.
#[tokio::test(flavor = "multi_thread")]
async fn replay_as_of_now() {
    let dir = tempfile::tempdir().expect("temp dir");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, b"").expect("write an empty export");
    let input = empty.to_str().expect("UTF-8 temp path");
    for args in [
        vec!["replay", "--input", input, "--as-of", "now", "--json"],
        vec!["replay", "--input", input, "--json"],
    ] {
        let before = chrono::Utc::now();
        let output = cpor(&args)
            .wait_with_output()
            .await
            .expect("run cpor replay");
        let after = chrono::Utc::now();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
        let as_of: chrono::DateTime<chrono::Utc> = report["as_of"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: as_of is no time: {report}"));
        assert!(
            before <= as_of && as_of <= after,
            "{args:?}: as_of {as_of} is not now"
        );
    }
}

/// `cpor request` and `cpor watch` whose reader went away (`| head -0`)
/// end without a panic: a closed pipe is not an error of theirs. So do the
/// audit tools on the stopped service's data dir (`cpor rebuild | head -1`
/// panicked in `println!` before they printed through `outln!`).
#[tokio::test(flavor = "multi_thread")]
async fn tools_end_quietly_on_a_closed_stdout() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let runs: [&[&str]; 2] = [
        &[
            "request",
            "--nats-url",
            nats.url(),
            "--prefix",
            &prefix,
            "qry.health",
        ],
        &["watch", "--nats-url", nats.url(), "--prefix", &prefix],
    ];
    for args in runs {
        ends_quietly_on_a_closed_stdout(args).await;
    }
    service.terminate().await;
    let data = service.data_dir().to_str().expect("UTF-8 path").to_string();
    for tool in ["rebuild", "verify", "replay"] {
        ends_quietly_on_a_closed_stdout(&[tool, "--data-dir", &data]).await;
    }
}

async fn ends_quietly_on_a_closed_stdout(args: &[&str]) {
    let mut child = cpor(args);
    // Close the read end before the tool prints anything.
    drop(child.stdout.take());
    let output = tokio::time::timeout(WATCH_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not end on a closed stdout"))
        .expect("run cpor");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
}
