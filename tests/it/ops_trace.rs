//! W3C Trace Context through the service (issue 12 item 3): a command sent
//! with a `traceparent` header yields a published event whose CloudEvents
//! `traceparent` extension and NATS `traceparent` header name the same
//! trace; a request without one (or with an invalid one) yields events
//! without it, and is not refused.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::support::jetstream::delete_streams;
use crate::support::{events_stream, unique_prefix, NatsServer, Service, ServiceOptions};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// Upserts a tenant (one event) with `traceparent` as the request's header.
async fn upsert_tenant(service: &Service, traceparent: Option<&str>) -> Value {
    let body = json!({
        "command_id": uuid::Uuid::new_v4(),
        "actor": {"type": "system", "id": "trace-test"},
        "tenant_id": uuid::Uuid::new_v4(),
        "domains": ["contoso.com"],
    });
    let mut headers = async_nats::HeaderMap::new();
    if let Some(traceparent) = traceparent {
        headers.insert("traceparent", traceparent);
    }
    let reply = service
        .client()
        .request_with_headers(
            service.subject("cmd.ref.tenant"),
            headers,
            body.to_string().into(),
        )
        .await
        .expect("a reply");
    let reply: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    reply
}

/// The `n` first messages of the events stream: (CloudEvent, traceparent header).
async fn published(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    n: usize,
) -> Vec<(Value, Option<String>)> {
    let stream = js.get_stream(events_stream(prefix)).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        let message = tokio::time::timeout(Duration::from_secs(20), messages.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events published in 20 s", out.len()))
            .unwrap()
            .unwrap();
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get("traceparent"))
            .map(|v| v.as_str().to_string());
        out.push((serde_json::from_slice(&message.payload).unwrap(), header));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_trace_reaches_the_published_event() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let service = Service::start(ServiceOptions::new(nats.url(), &prefix)).await;
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    upsert_tenant(&service, Some(&caller)).await;
    upsert_tenant(&service, None).await;
    // Invalid (upper-case hex): ignored as W3C says, not refused.
    upsert_tenant(&service, Some(&caller.to_uppercase())).await;

    let js = async_nats::jetstream::new(service.client().clone());
    let events = published(&js, &prefix, 3).await;
    let (traced, header) = &events[0];
    let attribute = traced["traceparent"]
        .as_str()
        .unwrap_or_else(|| panic!("no traceparent attribute: {traced}"));
    let parts: Vec<&str> = attribute.split('-').collect();
    assert_eq!(parts.len(), 4, "{attribute}");
    assert_eq!(parts[0], "00", "{attribute}");
    assert_eq!(
        parts[1], TRACE_ID,
        "the event is not in the caller's trace: {attribute}"
    );
    // The service's own span, a child of the caller's: same trace, its own
    // span id, sampled as the caller asked.
    assert_ne!(parts[2], CALLER_SPAN_ID, "{attribute}");
    assert_eq!(parts[2].len(), 16, "{attribute}");
    assert_eq!(parts[3], "01", "{attribute}");
    assert_eq!(
        header.as_deref(),
        Some(attribute),
        "the NATS header differs from the attribute"
    );

    for (event, header) in &events[1..] {
        assert!(event.get("traceparent").is_none(), "{event}");
        assert_eq!(header, &None, "{event}");
    }
    delete_streams(&js, &prefix).await;
}
