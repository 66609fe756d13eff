//! The operations surface (issue 12): the admin listener's probes and
//! `/metrics` on a running `cpor serve`, checked with the real tools an
//! operator uses (`promtool` from Debian's `prometheus` package;
//! `scripts/ensure-ops-tools` installs what is missing). A test whose tool
//! cannot be found says so and checks nothing else it cannot.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::support::nats::free_port;
use crate::support::{assert_success, request, unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a probe may take to change its answer after NATS went or came.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// One HTTP exchange with the admin listener, at most.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

/// An operator tool: on `PATH`, else where `scripts/ensure-ops-tools` puts
/// it (`.tools/ops-venv/bin`). `None` (and the reason printed) when absent.
pub(crate) fn tool(name: &str) -> Option<PathBuf> {
    let venv = root().join(".tools/ops-venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([venv, PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .or_else(|| {
            println!(
                "SKIPPED part: {name} is not installed (scripts/ensure-ops-tools installs it)"
            );
            None
        })
}

/// `GET path` on `addr` (HTTP/1.1, `Connection: close`): status and body.
pub(crate) async fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {path} on {addr}: no answer in {HTTP_TIMEOUT:?}"))??;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    // axum answers small bodies with Content-Length; a chunked body would
    // carry chunk sizes, which the checks below would notice.
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    Ok((status, body.to_string()))
}

/// A service on `nats` whose admin listener is on a port of its own: the
/// service and the listener's address (`127.0.0.1:PORT`).
pub(crate) async fn service_with_admin(nats: &NatsServer) -> (Service, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut options = ServiceOptions::new(nats.url(), &unique_prefix()).manual_clock(true);
    options.env.push(("CPOR_HTTP_ADDR".into(), addr.clone()));
    (Service::start(options).await, addr)
}

/// The value of the sample `series` (name and labels exactly as rendered,
/// e.g. `cpor_requests_total{subject="qry.health",code="OK"}`).
pub(crate) fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// The metric names a scrape declares (`# TYPE name kind`).
pub(crate) fn metric_names(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The metric names README.md's "Operating it" section lists (in
/// backticks, labels left out).
fn readme_metric_names() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## Operating it\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README.md has an \"Operating it\" section");
    section
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|code| code.split('{').next().unwrap_or_default())
        .filter(|name| {
            (name.starts_with("cpor_") || name.starts_with("process_"))
                && !name.ends_with('_')
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

/// Some traffic: reference data accepted, one body refused `INVALID_JSON`,
/// one unknown subject, a health query.
pub(crate) async fn traffic(service: &Service) {
    let client = service.client();
    let tenant = Uuid::new_v4();
    let body = json!({"command_id": Uuid::new_v4(), "actor": {"type": "system", "id": "ops-test"},
                      "tenant_id": tenant, "domains": ["ops-test.example.com"]});
    let reply = request(client, &service.subject("cmd.ref.tenant"), body.to_string()).await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    let reply = request(client, &service.subject("cmd.ref.tenant"), "{not json").await;
    assert_eq!(reply["error"]["code"], json!("INVALID_JSON"), "{reply}");
    let reply = request(client, &service.subject("cmd.nonsense.P-1.x"), "{}").await;
    assert_eq!(reply["error"]["code"], json!("INVALID_COMMAND"), "{reply}");
    service.health().await.expect("health");
}

/// Scrapes until the relay published everything the log holds.
async fn scrape_published(addr: &str) -> String {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let (status, scrape) = http_get(addr, "/metrics").await.expect("scrape");
        assert_eq!(status, 200, "{scrape}");
        let log = sample(&scrape, "cpor_log_position").unwrap_or(0.0);
        if log > 0.0 && sample(&scrape, "cpor_relay_lag_events") == Some(0.0) {
            return scrape;
        }
        assert!(
            Instant::now() < deadline,
            "the relay did not catch up:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/healthz` and `/readyz` answer 200 on a ready service; `/metrics`
/// passes `promtool check metrics` and counts what happened: requests by
/// subject and code, the log and published positions, events published.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_pass_promtool_and_count_what_happened() {
    let nats = NatsServer::shared_or_own();
    let (service, addr) = service_with_admin(&nats).await;
    assert_eq!(
        http_get(&addr, "/healthz").await.unwrap(),
        (200, "ok\n".into())
    );
    let (status, body) = http_get(&addr, "/readyz").await.unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    traffic(&service).await;
    let scrape = scrape_published(&addr).await;

    let count =
        |series: &str| sample(&scrape, series).unwrap_or_else(|| panic!("no {series}:\n{scrape}"));
    assert_eq!(
        count(r#"cpor_requests_total{subject="cmd.ref.tenant",code="OK"}"#),
        1.0
    );
    assert_eq!(
        count(r#"cpor_requests_total{subject="cmd.ref.tenant",code="INVALID_JSON"}"#),
        1.0
    );
    assert_eq!(
        count(r#"cpor_requests_total{subject="other",code="INVALID_COMMAND"}"#),
        1.0
    );
    let health = service.health().await.unwrap();
    assert_eq!(
        count("cpor_log_position"),
        health["log_position"].as_f64().unwrap()
    );
    assert_eq!(count("cpor_published_position"), count("cpor_log_position"));
    assert_eq!(
        count("cpor_events_published_total"),
        count("cpor_log_position")
    );
    assert_eq!(count("cpor_relay_foreign_acks_total"), 0.0);
    assert_eq!(count("cpor_lease_held"), 1.0);
    assert_eq!(count("cpor_ready"), 1.0);
    assert_eq!(count(r#"cpor_claims{status="submitted"}"#), 0.0);
    assert_eq!(count(r#"cpor_build_info{version="0.1.0"}"#), 1.0);
    assert!(count("cpor_data_dir_bytes") > 0.0);
    assert!(count("cpor_writer_batch_requests_count") >= 1.0, "{scrape}");
    assert!(
        count("cpor_command_decide_seconds_count") >= 1.0,
        "{scrape}"
    );
    assert!(count("cpor_log_flush_seconds_count") >= 1.0, "{scrape}");

    assert_eq!(
        metric_names(&scrape),
        readme_metric_names(),
        "README.md's \"Operating it\" lists other metrics than /metrics exports"
    );

    let Some(promtool) = tool("promtool") else {
        return;
    };
    let output = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(scrape.as_bytes())?;
            child.wait_with_output()
        })
        .expect("run promtool");
    assert_success("promtool check metrics", &output);
}

/// Polls `/readyz` until its status is `want`; the last body.
async fn readyz_until(addr: &str, want: u16) -> Value {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    loop {
        let (status, body) = http_get(addr, "/readyz").await.expect("readyz");
        if status == want {
            return serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        }
        assert!(Instant::now() < deadline, "/readyz still {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// NATS going away makes the service unready (503, saying why) while it
/// stays alive (`/healthz` 200); NATS back makes it ready again.
#[tokio::test(flavor = "multi_thread")]
async fn readiness_follows_the_nats_connection() {
    let mut nats = NatsServer::start_own();
    let (mut service, addr) = service_with_admin(&nats).await;
    readyz_until(&addr, 200).await;

    tokio::task::block_in_place(|| nats.stop());
    let body = readyz_until(&addr, 503).await;
    assert_eq!(body["ready"], json!(false), "{body}");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("NATS is not connected"), "{body}");
    assert_eq!(http_get(&addr, "/healthz").await.unwrap().0, 200);
    let (_, scrape) = http_get(&addr, "/metrics").await.unwrap();
    assert_eq!(sample(&scrape, "cpor_ready"), Some(0.0), "{scrape}");
    assert_eq!(
        sample(&scrape, "cpor_nats_connected"),
        Some(0.0),
        "{scrape}"
    );

    tokio::task::block_in_place(|| nats.start());
    assert_eq!(readyz_until(&addr, 200).await, json!({"ready": true}));
    let (_, scrape) = http_get(&addr, "/metrics").await.unwrap();
    assert!(
        sample(&scrape, "cpor_nats_disconnects_total").unwrap() >= 1.0,
        "{scrape}"
    );
    service.terminate().await;
}

/// The state gauges catch up by themselves: a claim submitted right after
/// the last count (which the writer repeats at most every 5 s) shows in
/// `cpor_claims` within that interval, with no further command to wake the
/// writer.
#[tokio::test(flavor = "multi_thread")]
async fn state_gauges_catch_up_without_another_command() {
    let nats = NatsServer::shared_or_own();
    let (service, addr) = service_with_admin(&nats).await;
    crate::trail::populate(service.client(), service.prefix(), 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, scrape) = http_get(&addr, "/metrics").await.expect("scrape");
        if sample(&scrape, r#"cpor_claims{status="submitted"}"#) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cpor_claims still misses the submitted claim:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
