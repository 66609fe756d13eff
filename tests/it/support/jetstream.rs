//! Reading what a service published back from JetStream.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, Consumer, DeliverPolicy};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use async_nats::jetstream::Context;
use futures::StreamExt;
use serde_json::Value;

use super::{events_stream, status_stream};

/// Every message of `stream` on subjects matching `filter`, in stream order,
/// as they are now: an ephemeral pull consumer (deliver all, no acks) read
/// until the server says nothing is pending. Payloads that are not JSON come
/// back as `{"$invalid_json": "<text>"}`.
pub(crate) async fn read_all(
    js: &Context,
    stream: &str,
    filter: &str,
) -> Result<Vec<Value>, String> {
    let stream_handle = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    let consumer: Consumer<pull::Config> = stream_handle
        .create_consumer(pull::Config {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("consumer on {stream} for {filter}: {e}"))?;
    let name = consumer.cached_info().name.clone();
    let result = drain(&consumer, consumer.cached_info().num_pending).await;
    let _ = stream_handle.delete_consumer(&name).await;
    result.map_err(|e| format!("reading {filter} from {stream}: {e}"))
}

async fn drain(consumer: &Consumer<pull::Config>, mut pending: u64) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    while pending > 0 {
        let mut batch = consumer
            .batch()
            .max_messages(pending.min(1000) as usize)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let before = out.len();
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(|e| e.to_string())?;
            pending = msg.info().map_err(|e| e.to_string())?.pending;
            out.push(parse(&msg.payload));
            if pending == 0 {
                break;
            }
        }
        if out.len() == before {
            return Err(format!(
                "{pending} message(s) pending but none delivered within 2 s"
            ));
        }
    }
    Ok(out)
}

fn parse(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| serde_json::json!({"$invalid_json": String::from_utf8_lossy(payload)}))
}

/// The CloudEvents `type`s published on `{prefix}.evt.{aggregate}.{id}.>` in
/// `{PREFIX}_EVENTS`, in order (`<no type: …>` for a message without one).
pub(crate) async fn event_types(
    js: &Context,
    prefix: &str,
    aggregate: &str,
    id: &str,
) -> Result<Vec<String>, String> {
    let events = read_all(
        js,
        &events_stream(prefix),
        &format!("{prefix}.evt.{aggregate}.{id}.>"),
    )
    .await?;
    Ok(events
        .iter()
        .map(|e| match e.get("type").and_then(Value::as_str) {
            Some(t) => t.to_string(),
            None => format!("<no type: {e}>"),
        })
        .collect())
}

/// The last message on `subject` in `stream` (`None` when there is none).
pub(crate) async fn last_on_subject(
    js: &Context,
    stream: &str,
    subject: &str,
) -> Result<Option<Value>, String> {
    let stream_handle = js
        .get_stream(stream)
        .await
        .map_err(|e| format!("stream {stream}: {e}"))?;
    match stream_handle.get_last_raw_message_by_subject(subject).await {
        Ok(msg) => Ok(Some(parse(&msg.payload))),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(format!("last message on {subject} in {stream}: {e}")),
    }
}

/// The last ClaimView published on `{prefix}.status.claim.{partner_id}.{claim_id}`
/// for any partner id (contract v1.1 §5): the subject
/// [`status_subject_any_partner`].
pub(crate) async fn last_status(
    js: &Context,
    prefix: &str,
    claim_id: &str,
) -> Result<Option<Value>, String> {
    last_on_subject(
        js,
        &status_stream(prefix),
        &status_subject_any_partner(prefix, claim_id),
    )
    .await
}

/// `{prefix}.status.claim.*.{claim_id}`: a claim's status subject whoever owns it.
pub(crate) fn status_subject_any_partner(prefix: &str, claim_id: &str) -> String {
    format!("{prefix}.status.claim.*.{claim_id}")
}

/// Deletes every stream of a prefix (`{PREFIX}_EVENTS`, `{PREFIX}_STATUS` and
/// any other `{PREFIX}_…` the service made): cleanup after a test on the
/// shared server. Errors are ignored.
pub(crate) async fn delete_streams(js: &Context, prefix: &str) {
    let start = format!("{}_", prefix.to_uppercase());
    let mut names = vec![events_stream(prefix), status_stream(prefix)];
    let mut listed = js.stream_names();
    while let Some(Ok(name)) = listed.next().await {
        if name.starts_with(&start) && !names.contains(&name) {
            names.push(name);
        }
    }
    for stream in names {
        let _ = js.delete_stream(&stream).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::{unique_prefix, NatsServer};
    use async_nats::jetstream::stream;
    use serde_json::json;

    /// Streams shaped like a service's: events per aggregate, last status per claim.
    #[tokio::test(flavor = "multi_thread")]
    async fn reads_events_and_last_status() {
        let nats = NatsServer::shared_or_own();
        let client = nats.connect().await;
        let js = async_nats::jetstream::new(client);
        let p = unique_prefix();

        // No stream yet: an error, not an empty list.
        assert!(event_types(&js, &p, "claim", "c1").await.is_err());

        js.create_stream(stream::Config {
            name: events_stream(&p),
            subjects: vec![format!("{p}.evt.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        js.create_stream(stream::Config {
            name: status_stream(&p),
            subjects: vec![format!("{p}.status.>")],
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .unwrap();

        assert_eq!(
            event_types(&js, &p, "claim", "c1").await.unwrap(),
            Vec::<String>::new()
        );
        for (agg, id, ev) in [
            ("claim", "c1", "submitted"),
            ("claim", "c2", "submitted"),
            ("claim", "c1", "review_started"),
            ("arbitration", "c1", "opened"),
            ("claim", "c1", "approved"),
        ] {
            let body = json!({"type": format!("cpor.{agg}.{ev}"), "subject": id});
            js.publish(format!("{p}.evt.{agg}.{id}.{ev}"), body.to_string().into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        js.publish(format!("{p}.evt.claim.c3.submitted"), "not json".into())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(
            event_types(&js, &p, "claim", "c1").await.unwrap(),
            [
                "cpor.claim.submitted",
                "cpor.claim.review_started",
                "cpor.claim.approved"
            ]
        );
        assert_eq!(
            event_types(&js, &p, "arbitration", "c1").await.unwrap(),
            ["cpor.arbitration.opened"]
        );
        let c3 = event_types(&js, &p, "claim", "c3").await.unwrap();
        assert!(c3[0].starts_with("<no type:"), "{c3:?}");

        // More than one batch.
        for i in 0..1500 {
            js.publish(
                format!("{p}.evt.claim.big.e{i}"),
                json!({"type": i.to_string()}).to_string().into(),
            )
            .await
            .unwrap();
        }
        js.publish(
            format!("{p}.evt.claim.big.last"),
            json!({"type": "last"}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let big = event_types(&js, &p, "claim", "big").await.unwrap();
        assert_eq!(big.len(), 1501);
        assert_eq!(big[1499], "1499");
        assert_eq!(big[1500], "last");

        assert_eq!(last_status(&js, &p, "c1").await.unwrap(), None);
        // The old (v1.0) form is not the claim's status.
        js.publish(
            format!("{p}.status.claim.c1"),
            json!({"claim_id": "c1", "version": 9}).to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        assert_eq!(last_status(&js, &p, "c1").await.unwrap(), None);
        for v in 1..=3 {
            js.publish(
                format!("{p}.status.claim.P-1.c1"),
                json!({"claim_id": "c1", "version": v}).to_string().into(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        assert_eq!(
            last_status(&js, &p, "c1").await.unwrap(),
            Some(json!({"claim_id": "c1", "version": 3}))
        );

        js.create_stream(stream::Config {
            name: format!("{}_LEASE", p.to_uppercase()),
            subjects: vec![format!("{p}.lease")],
            ..Default::default()
        })
        .await
        .unwrap();
        delete_streams(&js, &p).await;
        assert!(js
            .get_stream(format!("{}_LEASE", p.to_uppercase()))
            .await
            .is_err());
        assert!(js.get_stream(events_stream(&p)).await.is_err());
        assert!(js.get_stream(status_stream(&p)).await.is_err());
    }
}
