//! Helpers shared by every end-to-end test.
//!
//! - [`cpor_bin`]: where the `cpor` executable under test is.
//! - [`NatsServer`]: the shared nats-server, or one of the test's own.
//! - [`Service`]: a running `cpor serve` (start, health, SIGTERM/SIGKILL, restart).
//! - [`request`] / [`try_request`]: request/reply with JSON and a timeout.
//! - [`unique_prefix`], [`events_stream`], [`status_stream`]: naming.
//! - [`matcher`], [`vars`], [`scenario`]: the scenario step language of
//!   `tests/scenarios/README.md`, usable by any test.
//! - [`jetstream`]: reading the published events and statuses back.

// Each test module uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod jetstream;
pub(crate) mod matcher;
pub(crate) mod nats;
pub(crate) mod scenario;
pub(crate) mod service;
pub(crate) mod vars;

#[allow(unused_imports)] // re-exported for tests to come
pub(crate) use nats::{request, try_request, NatsServer};
#[allow(unused_imports)]
pub(crate) use service::{cpor_bin, Service, ServiceOptions};

/// A fresh service prefix, unique per call: `t` + 12 random lowercase
/// hex characters, so it matches `^[a-z][a-z0-9_]{0,31}$`.
pub(crate) fn unique_prefix() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("t{}", &random[..12])
}

/// Asserts that a finished process (a tool, a `cpor` command) succeeded;
/// the failure message names `what` and shows its stdout and stderr.
pub(crate) fn assert_success(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The JetStream stream a service with this prefix publishes its events to.
pub(crate) fn events_stream(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_uppercase())
}

/// The JetStream stream a service with this prefix publishes claim statuses to.
pub(crate) fn status_stream(prefix: &str) -> String {
    format!("{}_STATUS", prefix.to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_valid_and_unique() {
        let a = unique_prefix();
        let b = unique_prefix();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert_eq!(p.len(), 13);
            let mut chars = p.chars();
            assert!(chars.next().unwrap().is_ascii_lowercase());
            assert!(chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
        assert_eq!(events_stream("t1"), "T1_EVENTS");
        assert_eq!(status_stream("cpor"), "CPOR_STATUS");
    }
}
