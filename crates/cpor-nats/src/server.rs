//! Request/reply over NATS: every command, query and admin subject.
//!
//! One subscription per subject family, with wildcards, so an unknown name
//! gets `INVALID_COMMAND` instead of "no responders". Each request is handled
//! in its own task (decoding and validation run concurrently); a semaphore of
//! [`IN_FLIGHT_MAX`] permits bounds the work in progress. Commands then queue
//! for the engine's single writer; queries read the projections directly and
//! never wait for writes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tracing::Instrument;

use cpor_domain::access::Visibility;
use cpor_domain::error::{ErrorCode, Rejection};
use cpor_domain::event::{AggregateId, AggregateKind};
use cpor_engine::{Engine, Outcome};

use crate::wire::{self, error_reply, Query, Request};

/// Requests being handled at once; the next one waits for a permit (the
/// NATS client buffers meanwhile, then drops as a slow consumer).
pub const IN_FLIGHT_MAX: usize = 1_024;
/// How long shutdown waits for NATS to confirm the unsubscribe (and so for
/// the requests it delivered before) when it stops taking requests.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Events returned by `claim.history`.
pub const HISTORY_EVENTS_MAX: usize = 1_000;

#[derive(Clone)]
pub struct Server {
    client: async_nats::Client,
    engine: Engine,
    prefix: String,
}

impl Server {
    pub fn new(client: async_nats::Client, engine: Engine, prefix: String) -> Server {
        Server {
            client,
            engine,
            prefix,
        }
    }

    /// Serves until `shutdown` resolves, then stops taking requests and
    /// waits for those in flight to be answered.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), async_nats::Error> {
        let mut subscriptions = futures::stream::select_all([
            self.client
                .subscribe(format!("{}.cmd.>", self.prefix))
                .await?,
            self.client
                .subscribe(format!("{}.qry.>", self.prefix))
                .await?,
            self.client
                .subscribe(format!("{}.admin.>", self.prefix))
                .await?,
        ]);
        self.client.flush().await?;
        tracing::info!(prefix = %self.prefix, "taking requests");
        let permits = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
        tokio::pin!(shutdown);
        loop {
            let message = tokio::select! {
                _ = &mut shutdown => break,
                message = subscriptions.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closes");
            let server = self.clone();
            tokio::spawn(async move {
                server.handle(message).await;
                drop(permit);
            });
        }
        // Stop intake first: unsubscribe, and answer the requests NATS had
        // delivered before the unsubscribe took effect (dropping them would
        // leave their senders waiting for a timeout). Bounded, in case NATS
        // is unreachable and never confirms.
        let drain = async {
            for subscription in subscriptions.iter_mut() {
                let _ = subscription.drain().await;
            }
            while let Some(message) = subscriptions.next().await {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore never closes");
                let server = self.clone();
                tokio::spawn(async move {
                    server.handle(message).await;
                    drop(permit);
                });
            }
        };
        // One budget for the unsubscribe and the final flush: with NATS
        // gone neither completes (the client waits for a reconnection), and
        // shutdown must not wait for NATS to come back.
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if !connected {
            drop(drain);
            tracing::warn!("NATS is unreachable: not waiting to unsubscribe; requests it still holds are dropped");
        } else if tokio::time::timeout_at(deadline, drain).await.is_err() {
            tracing::warn!(
                ?DRAIN_TIMEOUT,
                "unsubscribing took too long; requests still queued are dropped"
            );
        }
        drop(subscriptions);
        // Then let in-flight requests finish.
        let _ = permits.acquire_many(IN_FLIGHT_MAX as u32).await;
        if connected
            && tokio::time::timeout_at(deadline, self.client.flush())
                .await
                .is_err()
        {
            tracing::warn!("NATS did not confirm the last replies were sent (unreachable?)");
        }
        tracing::info!("stopped taking requests; in-flight requests answered");
        Ok(())
    }

    async fn handle(&self, message: async_nats::Message) {
        let Some(reply_to) = message.reply.clone() else {
            return; // a publish without reply subject: nobody to answer
        };
        let tail = message
            .subject
            .as_str()
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or_default()
            .to_string();
        let reply = self.answer(&tail, &message.payload).await;
        let bytes = serde_json::to_vec(&reply).expect("replies serialize");
        if let Err(error) = self.client.publish(reply_to, bytes.into()).await {
            tracing::warn!(%error, "could not send a reply");
        }
    }

    async fn answer(&self, tail: &str, payload: &[u8]) -> Value {
        let request = match wire::parse(tail, payload) {
            Ok(request) => request,
            Err(rejection) => return error_reply(&rejection),
        };
        match request {
            Request::Health => {
                let positions = self.engine.positions();
                json!({
                    "ok": true,
                    "log_position": positions.log.load(Ordering::SeqCst),
                    "published_position": positions.published.load(Ordering::SeqCst),
                    "relayed_position": positions.relayed.load(Ordering::SeqCst),
                    "trail": trail_health(positions),
                })
            }
            Request::Clock { now } => match self.engine.set_clock(now).await {
                Ok(()) => json!({"ok": true, "now": cpor_domain::view::format_time(&now)}),
                Err(rejection) => error_reply(&rejection),
            },
            Request::Command {
                envelope,
                fingerprint,
            } => {
                let span = tracing::info_span!("command", command_id = %envelope.command_id, subject = tail);
                let outcome = self
                    .engine
                    .execute(envelope, fingerprint)
                    .instrument(span.clone())
                    .await;
                if let Outcome::Rejected(rejection) = &outcome {
                    span.in_scope(|| tracing::debug!(code = %rejection.code, "refused"));
                }
                match outcome {
                    Outcome::Accepted {
                        accepted,
                        duplicate,
                    } => json!({
                        "ok": true,
                        "claim_id": accepted.claim_id,
                        "version": accepted.version,
                        "events": accepted.events,
                        "warnings": accepted.warnings,
                        "duplicate": duplicate,
                    }),
                    Outcome::Rejected(rejection) => error_reply(&rejection),
                }
            }
            Request::Query(query) => match self.query(query) {
                Ok(reply) => reply,
                Err(rejection) => error_reply(&rejection),
            },
        }
    }

    fn query(&self, query: Query) -> Result<Value, Rejection> {
        let reader = self.engine.reader();
        let unavailable = |error: cpor_log::LogError| {
            tracing::error!(%error, "query failed");
            Rejection::new(ErrorCode::Unavailable)
        };
        match query {
            Query::ClaimGet {
                visibility,
                claim_id,
            } => {
                let view = visible_view(reader, &visibility, &claim_id)?;
                let comments = reader.comments(&claim_id).map_err(unavailable)?;
                Ok(json!({"ok": true, "claim": view, "comments": comments}))
            }
            Query::ClaimHistory {
                visibility,
                claim_id,
            } => {
                visible_view(reader, &visibility, &claim_id)?;
                let aggregate = AggregateId {
                    kind: AggregateKind::Claim,
                    id: claim_id.to_string(),
                };
                let positions = reader.stream_positions(&aggregate).map_err(unavailable)?;
                let mut events = Vec::with_capacity(positions.len().min(HISTORY_EVENTS_MAX));
                for position in positions.into_iter().take(HISTORY_EVENTS_MAX) {
                    if let Some(bytes) = reader.event_bytes(position).map_err(unavailable)? {
                        let event: Value = serde_json::from_slice(&bytes)
                            .map_err(|e| unavailable(cpor_log::LogError::Corrupt(e.to_string())))?;
                        events.push(event);
                    }
                }
                Ok(json!({"ok": true, "events": events}))
            }
            Query::ClaimsList {
                filter,
                limit,
                after,
            } => {
                let page = reader
                    .list_claims(&filter, after, limit)
                    .map_err(unavailable)?;
                Ok(json!({"ok": true, "claims": page.claims, "next": page.next}))
            }
            Query::CaseGet { case_id } => match reader.case_view(&case_id).map_err(unavailable)? {
                Some(case) => Ok(json!({"ok": true, "case": case})),
                None => Err(Rejection::with_message(
                    ErrorCode::InvalidCommand,
                    "case_id: no such arbitration case",
                )),
            },
            Query::CaseList { status } => {
                let cases = reader.list_cases(status.as_deref()).map_err(unavailable)?;
                Ok(json!({"ok": true, "cases": cases}))
            }
        }
    }
}

/// The stored view of a claim within `visibility` (decided by
/// [`cpor_domain::access::authorize`]), or `CLAIM_NOT_FOUND`.
fn visible_view(
    reader: &cpor_log::LogReader,
    visibility: &Visibility,
    claim_id: &uuid::Uuid,
) -> Result<Value, Rejection> {
    reader
        .visible_claim_view(claim_id, visibility)
        .map_err(|_| Rejection::new(ErrorCode::Unavailable))?
        .ok_or_else(|| Rejection::new(ErrorCode::ClaimNotFound))
}

/// The relay's findings about the stream copy of the log (issue 10), for
/// `qry.health`: a zero position means none.
fn trail_health(positions: &cpor_engine::Positions) -> Value {
    let first = |p: &std::sync::atomic::AtomicU64| match p.load(Ordering::SeqCst) {
        0 => Value::Null,
        p => json!(p),
    };
    let forged = positions.forged_events.load(Ordering::SeqCst);
    let unpublishable = positions.unpublishable_events.load(Ordering::SeqCst);
    json!({
        "intact": forged == 0 && unpublishable == 0,
        "forged_events": forged,
        "first_forged_position": first(&positions.first_forged_position),
        "unpublishable_events": unpublishable,
        "first_unpublishable_position": first(&positions.first_unpublishable_position),
        "foreign_messages": positions.foreign_messages.load(Ordering::SeqCst),
    })
}
