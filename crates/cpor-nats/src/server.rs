//! Request/reply over NATS: every command, query and admin subject.
//!
//! The service registers with the NATS services protocol (ADR-32, async-nats'
//! `service` API) as [`SERVICE_NAME`], so `$SRV.PING|INFO|STATS` (and `nats
//! micro ls|info|stats`) find it, with one endpoint per subject family
//! ([`ENDPOINTS`]), each a wildcard, so an unknown name gets
//! `INVALID_COMMAND` instead of "no responders". Reply bodies are the
//! contract's, unchanged; a refusal also carries the protocol's
//! `Nats-Service-Error` headers ([`service_error`]).
//!
//! Each request is handled in its own task (decoding and validation run
//! concurrently), inside a span named after its family (`command`, `query`,
//! `admin`) that carries its subject and `correlation_id`; a semaphore of
//! [`IN_FLIGHT_MAX`] permits bounds the work in progress. Commands then queue
//! for the engine's single writer; queries read the projections directly and
//! never wait for writes.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::service::endpoint::Endpoint;
use async_nats::service::{self, ServiceExt};
use futures::stream::SelectAll;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

use cpor_domain::error::ErrorCode;
use cpor_engine::{Engine, Outcome};

use crate::wire::{self, error_reply, replies, Request};

pub mod pages;

/// Requests being handled at once; the next one waits for a permit (the
/// NATS client buffers meanwhile, then drops as a slow consumer).
pub const IN_FLIGHT_MAX: usize = 1_024;
/// How long shutdown waits for NATS to confirm the unsubscribe (and so for
/// the requests it delivered before) when it stops taking requests.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Events in one `claim.history` reply when the request names no `limit`
/// (a page: `next` resumes; docs/interface.md, "Paging").
pub const HISTORY_EVENTS_MAX: usize = 1_000;

/// The name every instance registers under in the NATS services protocol
/// (`$SRV.PING.cpor`, `nats micro info cpor`); instances for different
/// prefixes tell themselves apart by their `prefix` metadata.
pub const SERVICE_NAME: &str = "cpor";
/// The version the services protocol reports: the crate's (SemVer).
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// What `$SRV.INFO` says the service is.
pub const SERVICE_DESCRIPTION: &str =
    "CPOR claim service: Claimed Partner of Record claims over NATS request/reply (wire contract v1.1)";
/// The wire contract version, in the service's metadata.
pub const CONTRACT_VERSION: &str = "1.1";
/// The services-protocol endpoints: (name, subject below `{prefix}.`), one
/// per subject family of the contract (§4).
pub const ENDPOINTS: [(&str, &str); 3] = [
    ("commands", "cmd.>"),
    ("queries", "qry.>"),
    ("admin", "admin.>"),
];

/// The request/reply side of `cpor serve`. Cheap to clone: one clone per
/// request task.
#[derive(Clone)]
pub struct Server {
    /// The connection requests arrive on and replies leave by; also the one
    /// the services protocol's `$SRV` subscriptions use.
    client: async_nats::Client,
    /// The handle to the single writer (commands) and the log's readers
    /// (queries, positions for `qry.health`).
    engine: Engine,
    /// The subject prefix this instance owns (it holds the prefix lease):
    /// the first token(s) of every subject it serves, and its queue group.
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
    ///
    /// # Errors
    /// When the service cannot register or subscribe (NATS unreachable, or
    /// the user lacks the permission to subscribe).
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), async_nats::Error> {
        let (service, mut endpoints) = self.register().await?;
        self.client.flush().await?;
        tracing::info!(prefix = %self.prefix, service = SERVICE_NAME, "taking requests");
        let permits = Arc::new(Semaphore::new(IN_FLIGHT_MAX));
        tokio::pin!(shutdown);
        loop {
            let request = tokio::select! {
                _ = &mut shutdown => break,
                request = endpoints.next() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            self.spawn_handler(&permits, request).await;
        }
        self.stop(service, endpoints, permits).await;
        Ok(())
    }

    /// Registers with the services protocol and adds the [`ENDPOINTS`],
    /// all in queue group `{prefix}`. (One instance serves a prefix, by the
    /// lease; the queue group only keeps a stray second subscriber from
    /// answering the same request twice.)
    async fn register(&self) -> Result<(service::Service, SelectAll<Endpoint>), async_nats::Error> {
        let metadata = HashMap::from([
            ("prefix".to_string(), self.prefix.clone()),
            ("contract".to_string(), CONTRACT_VERSION.to_string()),
        ]);
        let service = self
            .client
            .service_builder()
            .description(SERVICE_DESCRIPTION)
            .queue_group(&self.prefix)
            .metadata(metadata)
            .start(SERVICE_NAME, SERVICE_VERSION)
            .await?;
        let mut endpoints = Vec::with_capacity(ENDPOINTS.len());
        for (name, subject) in ENDPOINTS {
            let endpoint = service
                .endpoint_builder()
                .name(name)
                .add(format!("{}.{subject}", self.prefix))
                .await?;
            endpoints.push(endpoint);
        }
        Ok((service, futures::stream::select_all(endpoints)))
    }

    /// Handles `request` in a task of its own once a permit is free.
    async fn spawn_handler(&self, permits: &Arc<Semaphore>, request: service::Request) {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        let server = self.clone();
        tokio::spawn(async move {
            server.handle(request).await;
            drop(permit);
        });
    }

    /// Stops intake, answers what NATS already delivered, waits for the
    /// requests in flight, then leaves the services protocol.
    async fn stop(
        &self,
        service: service::Service,
        mut endpoints: SelectAll<Endpoint>,
        permits: Arc<Semaphore>,
    ) {
        // Stop intake first: unsubscribe, and answer the requests NATS had
        // delivered before the unsubscribe took effect (dropping them would
        // leave their senders waiting for a timeout). Bounded, in case NATS
        // is unreachable and never confirms.
        let drain = async {
            for endpoint in endpoints.iter_mut() {
                let _ = endpoint.drain().await;
            }
            while let Some(request) = endpoints.next().await {
                self.spawn_handler(&permits, request).await;
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
        drop(endpoints);
        // Then let in-flight requests finish.
        let _ = permits.acquire_many(IN_FLIGHT_MAX as u32).await;
        if let Err(error) = service.stop().await {
            tracing::debug!(%error, "leaving the services protocol");
        }
        if connected
            && tokio::time::timeout_at(deadline, self.client.flush())
                .await
                .is_err()
        {
            tracing::warn!("NATS did not confirm the last replies were sent (unreachable?)");
        }
        tracing::info!("stopped taking requests; in-flight requests answered");
    }

    /// Answers one request, inside its span; a refusal's reply also
    /// carries the services protocol's error headers.
    async fn handle(&self, request: service::Request) {
        if request.message.reply.is_none() {
            return; // a publish without reply subject: nobody to answer
        }
        let tail = request
            .message
            .subject
            .as_str()
            .strip_prefix(&self.prefix)
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or_default()
            .to_string();
        let span = request_span(&tail);
        let traceparent = crate::trace::adopt_parent(request.message.headers.as_ref(), &span);
        if let Some(trace_id) = traceparent.as_deref().and_then(crate::trace::trace_id) {
            span.record("trace_id", trace_id);
        }
        let started = std::time::Instant::now();
        let reply = self
            .answer(&tail, &request.message.payload, traceparent)
            .instrument(span.clone())
            .await;
        let reply = pages::bounded(reply, pages::reply_bytes_max(&self.client));
        crate::metrics::record_request(&tail, &reply, started.elapsed());
        let bytes = serde_json::to_vec(&reply).expect("replies serialize");
        let sent = match service_error(&reply) {
            None => {
                span.record("code", "ok");
                request.respond(Ok(bytes.into())).await
            }
            Some(error) => {
                span.record("code", error.status.as_str());
                span.in_scope(|| tracing::debug!(code = %error.status, "refused"));
                request
                    .respond_error_with_body(error, bytes.into(), async_nats::HeaderMap::new())
                    .await
            }
        };
        if let Err(error) = sent {
            span.in_scope(|| tracing::warn!(%error, "could not send a reply"));
        }
    }

    /// The reply to one request; `traceparent` goes on a command's events.
    async fn answer(&self, tail: &str, payload: &[u8], traceparent: Option<String>) -> Value {
        let request = match wire::parse(tail, payload) {
            Ok(request) => request,
            Err(rejection) => return error_reply(&rejection),
        };
        match request {
            Request::Health => reply(&health(self.engine.positions())),
            Request::Clock { now } => match self.engine.set_clock(now).await {
                Ok(()) => reply(&replies::ClockReply {
                    ok: replies::True,
                    now: cpor_domain::view::format_time(&now),
                }),
                Err(rejection) => error_reply(&rejection),
            },
            Request::Command {
                mut envelope,
                fingerprint,
            } => {
                envelope.traceparent = traceparent;
                tracing::Span::current()
                    .record("command_id", tracing::field::display(envelope.command_id));
                let outcome = self.engine.execute(envelope, fingerprint).await;
                match outcome {
                    Outcome::Accepted {
                        accepted,
                        duplicate,
                    } => reply(&replies::CommandAccepted {
                        ok: replies::True,
                        claim_id: accepted.claim_id,
                        version: accepted.version,
                        events: accepted.events,
                        warnings: accepted.warnings,
                        duplicate,
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
}

/// A typed reply as the JSON the server sends.
fn reply(reply: &impl serde::Serialize) -> Value {
    serde_json::to_value(reply).expect("replies serialize")
}

/// `qry.health`: the log's positions and the relay's findings about the
/// stream copy of the log (issue 10); a zero position means none.
fn health(positions: &cpor_engine::Positions) -> replies::HealthReply {
    let load = |p: &std::sync::atomic::AtomicU64| p.load(Ordering::SeqCst);
    let first = |p| Some(load(p)).filter(|&p| p != 0);
    let forged = load(&positions.forged_events);
    let unpublishable = load(&positions.unpublishable_events);
    replies::HealthReply {
        ok: replies::True,
        log_position: positions.log_position(),
        published_position: load(&positions.published),
        relayed_position: load(&positions.relayed),
        trail: replies::TrailHealth {
            intact: forged == 0 && unpublishable == 0,
            forged_events: forged,
            first_forged_position: first(&positions.first_forged_position),
            unpublishable_events: unpublishable,
            first_unpublishable_position: first(&positions.first_unpublishable_position),
            foreign_messages: load(&positions.foreign_messages),
        },
    }
}

/// The span of one request, named after its subject family. `trace_id` is
/// the W3C trace the request's `traceparent` header names, `correlation_id`
/// is recorded by [`wire::parse`] once the body is read, `command_id` when a
/// command is handed to the writer, `code` (`ok` or the contract's error
/// code) when the reply is sent.
fn request_span(tail: &str) -> tracing::Span {
    use tracing::field::Empty;
    match tail.split('.').next() {
        Some("cmd") => tracing::info_span!(
            "command",
            subject = tail,
            correlation_id = Empty,
            trace_id = Empty,
            command_id = Empty,
            code = Empty
        ),
        Some("qry") => tracing::info_span!(
            "query",
            subject = tail,
            correlation_id = Empty,
            trace_id = Empty,
            code = Empty
        ),
        _ => tracing::info_span!(
            "admin",
            subject = tail,
            correlation_id = Empty,
            trace_id = Empty,
            code = Empty
        ),
    }
}

/// The services-protocol error of a reply, `None` unless it is a refusal
/// (`{"ok": false, "error": {"code": …}}`, contract §3): the
/// `Nats-Service-Error` header is the contract's error code, the
/// `Nats-Service-Error-Code` header its HTTP-like status
/// ([`service_error_code`]).
pub fn service_error(reply: &Value) -> Option<service::error::Error> {
    if reply.get("ok") != Some(&Value::Bool(false)) {
        return None;
    }
    let code: ErrorCode = serde_json::from_value(reply["error"]["code"].clone())
        .expect("a refusal carries one of the contract's error codes");
    Some(service::error::Error {
        status: code.as_str().to_string(),
        code: service_error_code(code),
    })
}

/// The number the services protocol's `Nats-Service-Error-Code` header
/// carries for a contract error code: HTTP's status codes (RFC 9110 §15),
/// as NATS services conventionally use them. The contract's own code stays
/// the authority (in the body and in `Nats-Service-Error`); this groups
/// them for tools such as `nats micro stats`.
pub fn service_error_code(code: ErrorCode) -> usize {
    use ErrorCode::*;
    match code {
        PayloadTooLarge => 413,
        InvalidJson | InvalidCommand => 400,
        Forbidden => 403,
        ClaimNotFound => 404,
        IdempotencyConflict
        | ClaimExists
        | VersionConflict
        | InvalidTransition
        | SubscriptionAlreadyClaimed
        | ClockNotManual => 409,
        DisputeWindowClosed
        | TenantUnknown
        | DomainTenantMismatch
        | ActivityNotAllowed
        | PartnerUnknown
        | MpnNotOwned
        | NotASubscriptionId
        | SubscriptionUnknown
        | ProductNotOnTenant
        | SubscriptionNotDynamics
        | SubscriptionIsCsp
        | SubscriptionNotProvisioned
        | SubscriptionNotActive => 422,
        Unavailable => 503,
    }
}
