//! Client load: tokio tasks as clients, each sending its script as
//! request/reply in a closed loop (the next request once the reply is in).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::Barrier;

use crate::workload::{Expect, Req};

/// NATS connections the clients share (client `i` uses connection
/// `i % CLIENT_CONNECTIONS_MAX`), as a fleet of upstream systems would have.
pub const CLIENT_CONNECTIONS_MAX: usize = 16;
/// One request's reply timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Unexpected replies quoted in the report.
pub const EXAMPLES_MAX: usize = 5;

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub subject: String,
    pub payload: Bytes,
    pub expect: Expect,
}

impl Prepared {
    pub fn new(prefix: &str, req: &Req) -> Prepared {
        Prepared {
            subject: format!("{prefix}.{}", req.tail),
            payload: req.payload().into(),
            expect: req.expect,
        }
    }
}

/// What a load run measured.
#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    pub clients: usize,
    /// Replies received.
    pub completed: u64,
    /// Replies that were refusals, as the script expected.
    pub refused: u64,
    /// Replies other than expected (ok where a refusal was expected, or
    /// another error code).
    pub unexpected: u64,
    /// Requests without a reply in [`REQUEST_TIMEOUT`] (or failed to send).
    pub failed: u64,
    /// From the common start to the last client's last reply.
    pub elapsed: Duration,
    /// Per-request latency, microseconds, sorted ascending.
    pub latencies_us: Vec<u32>,
    pub examples: Vec<String>,
}

impl LoadResult {
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency at quantile `q` (0..=1), milliseconds; nearest rank.
    pub fn latency_ms(&self, q: f64) -> f64 {
        percentile_us(&self.latencies_us, q) as f64 / 1000.0
    }
}

/// Nearest-rank percentile of a sorted slice (0 when empty).
pub fn percentile_us(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[derive(Deserialize)]
struct ReplyHead {
    ok: bool,
    #[serde(default)]
    error: Option<ErrorHead>,
}

#[derive(Deserialize)]
struct ErrorHead {
    code: String,
}

/// Opens the connections a run of `clients` clients uses.
pub async fn connect(url: &str, clients: usize) -> anyhow::Result<Vec<async_nats::Client>> {
    let mut connections = Vec::new();
    for i in 0..clients.clamp(1, CLIENT_CONNECTIONS_MAX) {
        let client = async_nats::ConnectOptions::new()
            .name(format!("cpor-bench client {i}"))
            .connect(url)
            .await?;
        connections.push(client);
    }
    Ok(connections)
}

struct ClientResult {
    completed: u64,
    refused: u64,
    unexpected: u64,
    failed: u64,
    latencies_us: Vec<u32>,
    examples: Vec<String>,
}

/// One closed-loop client: sends its script's requests one after the
/// other until the script ends or `time_cap` passes.
async fn run_client(
    client: &async_nats::Client,
    script: Vec<Prepared>,
    time_cap: Duration,
    check: bool,
) -> ClientResult {
    let mut out = ClientResult {
        completed: 0,
        refused: 0,
        unexpected: 0,
        failed: 0,
        latencies_us: Vec::with_capacity(script.len()),
        examples: Vec::new(),
    };
    let stop_at = Instant::now() + time_cap;
    for request in script {
        if Instant::now() >= stop_at {
            break;
        }
        let sent = Instant::now();
        let reply = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.request(request.subject.clone(), request.payload.clone()),
        )
        .await;
        let latency = sent.elapsed();
        let message = match reply {
            Ok(Ok(message)) => message,
            Ok(Err(error)) => {
                out.failed += 1;
                out.example(|| format!("{}: {error}", request.subject));
                continue;
            }
            Err(_) => {
                out.failed += 1;
                out.example(|| format!("{}: no reply in {REQUEST_TIMEOUT:?}", request.subject));
                continue;
            }
        };
        out.completed += 1;
        out.latencies_us
            .push(latency.as_micros().min(u32::MAX as u128) as u32);
        if check {
            out.check_reply(&request, &message.payload);
        }
    }
    out
}

impl ClientResult {
    /// Keeps an example of what went wrong, up to `EXAMPLES_MAX`.
    fn example(&mut self, text: impl FnOnce() -> String) {
        if self.examples.len() < EXAMPLES_MAX {
            self.examples.push(text());
        }
    }

    /// Counts a reply as refused as expected, or unexpected.
    fn check_reply(&mut self, request: &Prepared, payload: &[u8]) {
        let head: Option<ReplyHead> = serde_json::from_slice(payload).ok();
        let got = head.map(|h| (h.ok, h.error.map(|e| e.code)));
        let as_expected = match (&request.expect, &got) {
            (Expect::Ok, Some((true, _))) => true,
            (Expect::Error(code), Some((false, Some(got)))) => {
                self.refused += 1;
                code == got
            }
            _ => false,
        };
        if !as_expected {
            self.unexpected += 1;
            self.example(|| {
                format!(
                    "{} expected {:?}, got {}",
                    request.subject,
                    request.expect,
                    String::from_utf8_lossy(payload)
                )
            });
        }
    }
}

/// Runs one client per script, all starting together; each stops at the end
/// of its script or when `time_cap` has passed. With `check`, replies are
/// compared with what the script expects.
pub async fn run(
    connections: &[async_nats::Client],
    scripts: Vec<Vec<Prepared>>,
    time_cap: Duration,
    check: bool,
) -> LoadResult {
    let clients = scripts.len();
    let barrier = Arc::new(Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for (i, script) in scripts.into_iter().enumerate() {
        let client = connections[i % connections.len()].clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            run_client(&client, script, time_cap, check).await
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut result = LoadResult {
        clients,
        ..LoadResult::default()
    };
    for task in tasks {
        let Ok(out) = task.await else {
            result.failed += 1;
            continue;
        };
        result.completed += out.completed;
        result.refused += out.refused;
        result.unexpected += out.unexpected;
        result.failed += out.failed;
        result.latencies_us.extend(out.latencies_us);
        for example in out.examples {
            if result.examples.len() < EXAMPLES_MAX {
                result.examples.push(example);
            }
        }
    }
    result.elapsed = started.elapsed();
    result.latencies_us.sort_unstable();
    result
}

/// The echo responders' reply: the size of a real command reply.
const ECHO_REPLY: &[u8] = br#"{"ok":true,"claim_id":"0b6f2a56-4c1e-4f8e-9a3d-2f6d1c9e7a10","version":1,"events":["cpor.claim.submitted"],"warnings":[],"duplicate":false}"#;

/// The echo responder: answers every request on `subject` with a fixed
/// reply the size of a real command reply. Runs until the process is killed.
pub async fn echo_responder(url: &str, subject: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    let client = async_nats::ConnectOptions::new()
        .name("cpor-bench echo")
        .connect(url)
        .await?;
    let mut subscription = client.subscribe(subject.to_string()).await?;
    client.flush().await?;
    let reply = Bytes::from_static(ECHO_REPLY);
    while let Some(message) = subscription.next().await {
        if let Some(reply_to) = message.reply {
            client.publish(reply_to, reply.clone()).await?;
        }
    }
    Ok(())
}

/// Requests the JetStream echo responder works on at once (each is a task
/// awaiting its two acks); further requests wait in the subscription.
pub const JS_ECHO_IN_FLIGHT_MAX: usize = 4_096;
/// The JetStream echo responder's streams: `{JS_ECHO_STREAM}_EVENTS` on
/// `{subject}.evt.>` (every message kept) and `{JS_ECHO_STREAM}_STATUS` on
/// `{subject}.status.>` (the last message per subject), file storage, as the
/// service's own streams (`cpor_nats::relay::ensure_streams`).
pub const JS_ECHO_STREAM: &str = "BENCHECHO";

/// The second ceiling: a responder that, per request, publishes the request
/// body to a JetStream events stream and to a last-value status stream,
/// awaits both acks, then replies — what the service must do at least per
/// accepted command (one event and one status), without the log. Requests
/// are handled concurrently (up to [`JS_ECHO_IN_FLIGHT_MAX`]). Runs until
/// the process is killed.
pub async fn echo_js_responder(url: &str, subject: &str) -> anyhow::Result<()> {
    use async_nats::jetstream::stream;
    use futures::StreamExt;
    let client = async_nats::ConnectOptions::new()
        .name("cpor-bench echo-js")
        .connect(url)
        .await?;
    let js = async_nats::jetstream::new(client.clone());
    for (kind, per_subject) in [("EVENTS", 0), ("STATUS", 1)] {
        let subjects = vec![format!("{subject}.{}.>", kind.to_lowercase())];
        js.get_or_create_stream(stream::Config {
            name: format!("{JS_ECHO_STREAM}_{kind}"),
            subjects,
            storage: stream::StorageType::File,
            max_messages_per_subject: per_subject,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("create the {kind} stream: {e}"))?;
    }
    let mut subscription = client.subscribe(subject.to_string()).await?;
    client.flush().await?;
    let permits = Arc::new(tokio::sync::Semaphore::new(JS_ECHO_IN_FLIGHT_MAX));
    let mut sequence: u64 = 0;
    while let Some(message) = subscription.next().await {
        let Some(reply_to) = message.reply else {
            continue;
        };
        sequence += 1;
        let permit = permits.clone().acquire_owned().await?;
        let (client, js, subject) = (client.clone(), js.clone(), subject.to_string());
        tokio::spawn(async move {
            let _permit = permit;
            let body = message.payload;
            let published = async {
                let event = js
                    .publish(format!("{subject}.events.{sequence}"), body.clone())
                    .await?;
                let status = js
                    .publish(format!("{subject}.status.{}", sequence % 100_000), body)
                    .await?;
                event.await?;
                status.await?;
                anyhow::Ok(())
            };
            // A failed publish gets no reply: the client counts it failed.
            if published.await.is_ok() {
                let _ = client
                    .publish(reply_to, Bytes::from_static(ECHO_REPLY))
                    .await;
            }
        });
    }
    Ok(())
}
