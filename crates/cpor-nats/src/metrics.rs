//! What the wire layer and the relay measure, through the `metrics` facade
//! (the binary installs the Prometheus recorder; without one these are
//! no-ops). Names follow the Prometheus conventions (`cpor_` prefix, base
//! units, `_total` counters); `README.md` ("Operating it") lists them.

use serde::Deserialize;
use serde_json::Value;

use cpor_domain::error::ErrorCode;

/// Counter: requests answered, by `subject` (the subject name after the
/// prefix with its partner or tenant id left out, e.g.
/// `cmd.partner.submit`; `other` for a name the service does not know, so
/// that nobody can grow the label set) and `code` (`OK`, or the contract's
/// error code, e.g. `INVALID_JSON`).
pub const REQUESTS_TOTAL: &str = "cpor_requests_total";
/// Histogram: time from receiving a request to sending its reply, by
/// `kind` (`cmd`, `qry`, `admin`, `other`), in seconds.
pub const REQUEST_SECONDS: &str = "cpor_request_duration_seconds";
/// Counter: events the relay published and JetStream acknowledged as new.
pub const EVENTS_PUBLISHED_TOTAL: &str = "cpor_events_published_total";
/// Counter: `duplicate` acks for this log's own bytes (a republish after a
/// restart, dropped by the stream's duplicate window: harmless).
pub const RELAY_DUPLICATE_ACKS_TOTAL: &str = "cpor_relay_duplicate_acks_total";
/// Counter: `duplicate` acks whose stored message is not this log's event
/// (someone else published under the event's id: an audit alarm).
pub const RELAY_FOREIGN_ACKS_TOTAL: &str = "cpor_relay_foreign_acks_total";
/// Counter: relay windows that failed and are retried (NATS unreachable,
/// JetStream errors).
pub const RELAY_ERRORS_TOTAL: &str = "cpor_relay_errors_total";
/// Counter: times the NATS connection was lost (the client reconnects).
pub const NATS_DISCONNECTS_TOTAL: &str = "cpor_nats_disconnects_total";

/// Every subject name the service answers, ids left out (see
/// [`REQUESTS_TOTAL`]); the same list as the documented request subjects
/// (`docs/interface.md`), checked by a unit test.
pub const SUBJECT_NAMES: [&str; 27] = [
    "cmd.ref.tenant",
    "cmd.ref.subscription",
    "cmd.ref.partner",
    "cmd.partner.submit",
    "cmd.partner.comment",
    "cmd.partner.submit_poe",
    "cmd.partner.withdraw",
    "cmd.partner.dispute",
    "cmd.partner.disassociate",
    "cmd.review.start",
    "cmd.review.comment",
    "cmd.review.request_poe",
    "cmd.review.approve",
    "cmd.review.reject",
    "cmd.customer.decline",
    "qry.claim.get",
    "qry.claim.history",
    "qry.claims.list",
    "qry.partner.claim.get",
    "qry.partner.claim.history",
    "qry.partner.claims.list",
    "qry.customer.claim.get",
    "qry.customer.claims.list",
    "qry.arbitration.get",
    "qry.arbitration.list",
    "qry.health",
    "admin.clock",
];

/// Registers the help text and unit of every metric of this crate, and
/// creates the unlabeled counters' series at 0 (seen from the first scrape).
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "Requests answered, by subject name and result code."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from receiving a request to sending its reply, by kind."
    );
    describe_counter!(
        EVENTS_PUBLISHED_TOTAL,
        Unit::Count,
        "Events published to the events stream and acknowledged as new."
    );
    describe_counter!(
        RELAY_DUPLICATE_ACKS_TOTAL,
        Unit::Count,
        "Duplicate acks for this log's own bytes (republishes)."
    );
    describe_counter!(
        RELAY_FOREIGN_ACKS_TOTAL,
        Unit::Count,
        "Duplicate acks whose stored message is not this log's event."
    );
    describe_counter!(
        RELAY_ERRORS_TOTAL,
        Unit::Count,
        "Relay windows that failed and are retried."
    );
    describe_counter!(
        NATS_DISCONNECTS_TOTAL,
        Unit::Count,
        "Times the NATS connection was lost."
    );
    for counter in [
        EVENTS_PUBLISHED_TOTAL,
        RELAY_DUPLICATE_ACKS_TOTAL,
        RELAY_FOREIGN_ACKS_TOTAL,
        RELAY_ERRORS_TOTAL,
        NATS_DISCONNECTS_TOTAL,
    ] {
        metrics::counter!(counter).absolute(0);
    }
}

/// The bounded subject label of `tail` (the subject after `{prefix}.`):
/// the partner or tenant id taken out, `other` for an unknown name.
pub fn subject_name(tail: &str) -> &'static str {
    // Compared token by token, without building the name (once per request).
    let mut tokens = tail.splitn(4, '.');
    let known = match (tokens.next(), tokens.next()) {
        (Some(kind @ ("cmd" | "qry")), Some(scope @ ("partner" | "customer"))) => {
            let rest = tokens.nth(1);
            SUBJECT_NAMES.iter().find(|known| {
                let mut parts = known.splitn(3, '.');
                parts.next() == Some(kind) && parts.next() == Some(scope) && parts.next() == rest
            })
        }
        _ => SUBJECT_NAMES.iter().find(|known| **known == tail),
    };
    known.copied().unwrap_or("other")
}

/// The `kind` label of a request: the first token of a known subject name.
fn kind(subject: &'static str) -> &'static str {
    match subject.split('.').next() {
        Some(kind @ ("cmd" | "qry" | "admin")) => kind,
        _ => "other",
    }
}

/// Counts one answered request and its duration. `reply` is the reply
/// body: `{"ok": true, …}` counts as `OK`, `{"ok": false, "error":
/// {"code": …}}` as its code (contract §6).
pub(crate) fn record_request(tail: &str, reply: &Value, elapsed: std::time::Duration) {
    let subject = subject_name(tail);
    // A `&'static str` label: no allocation for the label per request.
    let code = if reply.get("ok") == Some(&Value::Bool(true)) {
        "OK"
    } else {
        reply
            .pointer("/error/code")
            .and_then(|code| ErrorCode::deserialize(code).ok())
            .map_or("UNKNOWN", ErrorCode::as_str)
    };
    metrics::counter!(REQUESTS_TOTAL, "subject" => subject, "code" => code).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "kind" => kind(subject)).record(elapsed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_leave_ids_out_and_bound_the_labels() {
        assert_eq!(
            subject_name("cmd.partner.P-100.submit"),
            "cmd.partner.submit"
        );
        assert_eq!(
            subject_name("qry.customer.6f1c0c6e-0000-4000-8000-000000000001.claims.list"),
            "qry.customer.claims.list"
        );
        assert_eq!(subject_name("cmd.review.approve"), "cmd.review.approve");
        assert_eq!(subject_name("qry.health"), "qry.health");
        assert_eq!(subject_name("cmd.partner.P-100.nonsense"), "other");
        assert_eq!(
            subject_name("qry.partner.P-100.claim.get"),
            "qry.partner.claim.get"
        );
        assert_eq!(
            subject_name("cmd.customer.6f1c0c6e-0000-4000-8000-000000000001.decline"),
            "cmd.customer.decline"
        );
        // The id left out, not the name: no known subject is three tokens here.
        assert_eq!(subject_name("cmd.partner.submit"), "other");
        assert_eq!(subject_name("cmd.partner.P-100.submit.more"), "other");
        assert_eq!(subject_name("anything.at.all"), "other");
        assert_eq!(kind(subject_name("admin.clock")), "admin");
        assert_eq!(kind("other"), "other");
    }

    #[test]
    fn the_subject_names_are_the_documented_request_subjects() {
        let documented: Vec<String> = crate::wire::request_subjects()
            .into_iter()
            .map(|subject| {
                subject
                    .replace(".{partner_id}", "")
                    .replace(".{tenant_id}", "")
            })
            .collect();
        let mut names: Vec<String> = SUBJECT_NAMES.iter().map(|s| s.to_string()).collect();
        let mut documented_sorted = documented.clone();
        names.sort();
        documented_sorted.sort();
        assert_eq!(names, documented_sorted);
    }
}
