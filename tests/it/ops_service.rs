//! The NATS services protocol (ADR-32; issue 12 item 2): the real binary
//! registers as `cpor`, answers raw `$SRV.PING`/`$SRV.INFO`/`$SRV.STATS`
//! requests, and a refusal keeps the contract's JSON body while carrying the
//! protocol's `Nats-Service-Error` headers.
//!
//! Other tests' services share the NATS server and the name `cpor`, so every
//! discovery request here collects all answers for a while and picks this
//! test's instance by its `prefix` metadata.

use cpor_testkit::actors::wire::partner_admin as partner;
use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::{unique_prefix, NatsServer, Service, ServiceOptions};

/// How long a discovery request collects answers from every instance.
const DISCOVERY_WINDOW: Duration = Duration::from_millis(1_500);

/// Sends `subject` with a reply inbox and returns every JSON answer that
/// arrives within [`DISCOVERY_WINDOW`].
async fn discover(client: &async_nats::Client, subject: &str) -> Vec<Value> {
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.unwrap();
    client
        .publish_with_reply(subject.to_string(), inbox, "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut found = Vec::new();
    let deadline = tokio::time::Instant::now() + DISCOVERY_WINDOW;
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, answers.next()).await {
        let answer: Value = serde_json::from_slice(&message.payload)
            .unwrap_or_else(|e| panic!("{subject} answered non-JSON ({e}): {message:?}"));
        found.push(answer);
    }
    found
}

/// The answer of the instance serving `prefix`, among `answers`.
fn ours(answers: &[Value], prefix: &str, subject: &str) -> Value {
    answers
        .iter()
        .find(|a| a["metadata"]["prefix"] == prefix)
        .unwrap_or_else(|| {
            panic!("no answer to {subject} from the instance for {prefix}: {answers:?}")
        })
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn srv_ping_info_and_stats_describe_the_service() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let service = Service::start(ServiceOptions::new(nats.url(), &prefix)).await;
    let client = service.client();

    let info = ours(
        &discover(client, "$SRV.INFO.cpor").await,
        &prefix,
        "$SRV.INFO.cpor",
    );
    assert_eq!(info["type"], "io.nats.micro.v1.info_response", "{info}");
    assert_eq!(info["name"], "cpor", "{info}");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert_eq!(info["metadata"]["contract"], "1.1", "{info}");
    assert!(
        info["description"]
            .as_str()
            .is_some_and(|d| d.contains("CPOR")),
        "{info}"
    );
    let endpoints: BTreeSet<(String, String, String)> = info["endpoints"]
        .as_array()
        .unwrap_or_else(|| panic!("{info}"))
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_else(|| panic!("{e}")).to_string();
            (text("name"), text("subject"), text("queue_group"))
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("admin", "admin.>"),
        ("commands", "cmd.>"),
        ("queries", "qry.>"),
    ]
    .into_iter()
    .map(|(name, tail)| (name.into(), format!("{prefix}.{tail}"), prefix.clone()))
    .collect();
    assert_eq!(endpoints, expected, "{info}");

    // PING on the bare verb reaches every service; ours is among them, with
    // the same id as its INFO.
    let pong = ours(&discover(client, "$SRV.PING").await, &prefix, "$SRV.PING");
    assert_eq!(pong["type"], "io.nats.micro.v1.ping_response", "{pong}");
    assert_eq!(pong["name"], "cpor", "{pong}");
    assert_eq!(pong["id"], info["id"], "{pong} vs {info}");
    let pong = ours(
        &discover(client, "$SRV.PING.cpor").await,
        &prefix,
        "$SRV.PING.cpor",
    );
    assert_eq!(pong["id"], info["id"], "{pong} vs {info}");

    // One answered and one refused query: STATS for this instance's id
    // counts both on the queries endpoint, the refusal as an error.
    service.health().await.expect("health answers");
    let refused = crate::support::request(
        client,
        &service.subject("qry.partner.P-100.claim.get"),
        json!({"actor": partner("P-100"), "claim_id": uuid::Uuid::new_v4()}).to_string(),
    )
    .await;
    assert_eq!(refused["error"]["code"], "CLAIM_NOT_FOUND", "{refused}");
    let id = info["id"].as_str().unwrap();
    let stats_subject = format!("$SRV.STATS.cpor.{id}");
    let stats = discover(client, &stats_subject).await;
    assert_eq!(
        stats.len(),
        1,
        "{stats_subject} reaches one instance: {stats:?}"
    );
    let stats = &stats[0];
    assert_eq!(stats["type"], "io.nats.micro.v1.stats_response", "{stats}");
    let queries = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "queries")
        .unwrap_or_else(|| panic!("{stats}"));
    assert!(queries["num_requests"].as_u64() >= Some(2), "{stats}");
    assert!(queries["num_errors"].as_u64() >= Some(1), "{stats}");
    assert_eq!(queries["last_error"], "404:CLAIM_NOT_FOUND", "{stats}");
}

/// A request/reply that keeps the reply's headers.
async fn request_with_headers(
    client: &async_nats::Client,
    subject: String,
    body: impl Into<Vec<u8>>,
) -> (Value, Option<async_nats::HeaderMap>) {
    let body: Vec<u8> = body.into();
    let reply = tokio::time::timeout(
        crate::support::nats::REQUEST_TIMEOUT,
        client.request(subject.clone(), body.into()),
    )
    .await
    .unwrap_or_else(|_| panic!("{subject}: no reply"))
    .unwrap_or_else(|e| panic!("{subject}: {e}"));
    let json = serde_json::from_slice(&reply.payload).unwrap_or_else(|e| {
        panic!(
            "{subject}: the reply is not JSON ({e}): {:?}",
            String::from_utf8_lossy(&reply.payload)
        )
    });
    (json, reply.headers)
}

fn header(headers: &Option<async_nats::HeaderMap>, name: &str) -> Option<String> {
    headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_keep_the_contract_body_and_add_service_error_headers() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let service = Service::start(ServiceOptions::new(nats.url(), &prefix)).await;
    let client = service.client();

    // Refused before the writer (not JSON) and by the writer (no such claim).
    let cases = [
        (
            "cmd.partner.P-100.withdraw",
            "not json".to_string(),
            "INVALID_JSON",
            "400",
        ),
        (
            "cmd.partner.P-100.withdraw",
            json!({
                "command_id": uuid::Uuid::new_v4(),
                "actor": partner("P-100"),
                "claim_id": uuid::Uuid::new_v4(),
            })
            .to_string(),
            "CLAIM_NOT_FOUND",
            "404",
        ),
        ("cmd.nosuch", "{}".to_string(), "INVALID_COMMAND", "400"),
    ];
    for (tail, body, code, status) in cases {
        let (reply, headers) = request_with_headers(client, service.subject(tail), body).await;
        assert_eq!(reply["ok"], false, "{tail}: {reply}");
        assert_eq!(reply["error"]["code"], code, "{tail}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{tail}: {reply}");
        assert_eq!(
            header(&headers, "Nats-Service-Error").as_deref(),
            Some(code),
            "{tail}: {headers:?}"
        );
        assert_eq!(
            header(&headers, "Nats-Service-Error-Code").as_deref(),
            Some(status),
            "{tail}: {headers:?}"
        );
    }

    // An answer that is no refusal carries no error header.
    let (reply, headers) = request_with_headers(client, service.subject("qry.health"), "{}").await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(header(&headers, "Nats-Service-Error"), None, "{headers:?}");
}
