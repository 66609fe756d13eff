//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>) over NATS.
//!
//! A request may carry a `traceparent` header (and `tracestate`). Read with
//! OpenTelemetry's [`TraceContextPropagator`], a valid one becomes the
//! parent of the request's span (through `tracing-opentelemetry`, when the
//! binary installed its layer); an invalid one is ignored, as the
//! specification says (§4.3: start a new trace), and never refuses the
//! request. The command's own span context, as a `traceparent`, is then
//! written on its events (the CloudEvents distributed-tracing extension) and
//! sent by the relay as the `traceparent` header of the published message.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header (and CloudEvents attribute) name, W3C Trace Context §3.2.
pub const TRACEPARENT_HEADER: &str = "traceparent";
/// Its companion header, §3.3: read with `traceparent`, not stored.
pub const TRACESTATE_HEADER: &str = "tracestate";

/// NATS headers as the propagator reads them.
struct NatsHeaders<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        [TRACEPARENT_HEADER, TRACESTATE_HEADER]
            .into_iter()
            .filter(|key| self.0.get(*key).is_some())
            .collect()
    }
}

/// Makes the request's `traceparent` (if valid) the parent of `span`, and
/// returns the `traceparent` to write on the command's events: the span's
/// own context when the OpenTelemetry layer gives it one (same trace id, the
/// service's span id), else the caller's, normalized. `None` when the
/// request has no valid `traceparent`.
pub fn adopt_parent(
    headers: Option<&async_nats::HeaderMap>,
    span: &tracing::Span,
) -> Option<String> {
    let headers = headers?;
    let propagator = TraceContextPropagator::new();
    let parent = propagator.extract(&NatsHeaders(headers));
    if !parent.span().span_context().is_valid() {
        return None;
    }
    let callers = format_traceparent(&propagator, &parent);
    if span.set_parent(parent).is_err() {
        return callers;
    }
    let own = span.context();
    if own.span().span_context().is_valid() {
        format_traceparent(&propagator, &own).or(callers)
    } else {
        callers
    }
}

/// The `traceparent` of `context`, as the propagator writes it.
fn format_traceparent(
    propagator: &TraceContextPropagator,
    context: &opentelemetry::Context,
) -> Option<String> {
    let mut carrier = HashMap::new();
    propagator.inject_context(context, &mut carrier);
    carrier.remove(TRACEPARENT_HEADER)
}

/// The trace id of a `traceparent` (`00-{trace id}-…`), for log lines.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(traceparent: &str) -> async_nats::HeaderMap {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(TRACEPARENT_HEADER, traceparent);
        headers
    }

    #[test]
    fn a_valid_traceparent_is_adopted_and_an_invalid_one_ignored() {
        let span = tracing::Span::none();
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        // Without the OpenTelemetry layer the caller's context is kept.
        assert_eq!(
            adopt_parent(Some(&headers(valid)), &span).as_deref(),
            Some(valid)
        );
        assert_eq!(trace_id(valid), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for invalid in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "not a traceparent",
        ] {
            assert_eq!(
                adopt_parent(Some(&headers(invalid)), &span),
                None,
                "{invalid:?}"
            );
        }
        assert_eq!(adopt_parent(None, &span), None);
        assert_eq!(
            adopt_parent(Some(&async_nats::HeaderMap::new()), &span),
            None
        );
    }
}
