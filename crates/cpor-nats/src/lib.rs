//! The CPOR wire contract over NATS.
//!
//! Architecture invariant: the only crate that names async-nats, and the
//! only one that knows the request and reply DTOs.
//!
//! - `wire`: subjects and bodies → domain commands and queries; replies.
//! - `server`: the request/reply subscriptions and their handlers.
//! - `relay`: the log → JetStream publisher (events and status streams).
//! - `lease`: one instance per prefix.
//! - `metrics`: request, relay and connection metrics (the `metrics` facade).
//! - `connection`: the one `connect` every part of `cpor` uses (plain
//!   options: URL, credentials, TLS, inbox prefix), and the stream reads
//!   the tools need, so that no async-nats type is named outside this crate.

pub mod connection;
pub mod lease;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod trace;
pub mod wire;

pub use connection::{connect, ConnectOptions, Nats, NatsError};
/// Bytes a publish of an event takes besides the event itself, at most (the
/// headers: `Nats-Msg-Id` and the protocol line), reserved out of the
/// server's `max_payload`, which counts headers and payload together.
pub const PUBLISH_HEADERS_BYTES_MAX: usize = 1_024;

/// The largest event (sealed CloudEvent bytes) the relay can publish through
/// `client`'s server: its `max_payload` (read at connect and at every
/// reconnect) less [`PUBLISH_HEADERS_BYTES_MAX`].
pub fn event_bytes_max(client: &async_nats::Client) -> usize {
    client
        .server_info()
        .max_payload
        .saturating_sub(PUBLISH_HEADERS_BYTES_MAX)
}

/// The oldest nats-server release the service supports (deploy/README.md):
/// JetStream durability fixes came in 2.10–2.12.3, and Debian 12's 2.9.10
/// is older.
pub const SERVER_VERSION_MIN: semver::Version = semver::Version::new(2, 10, 0);

/// Why the connected server is not one the service supports, when it is
/// not: its reported version (the `version` of the server's INFO, e.g.
/// `2.9.10`) is older than [`SERVER_VERSION_MIN`], or is not a version.
/// `None` for a supported server. A warning for the operator, not a
/// refusal: the service still works on an older server, with weaker
/// durability.
pub fn unsupported_server(client: &async_nats::Client) -> Option<String> {
    unsupported_server_version(&client.server_info().version)
}

/// [`unsupported_server`] for a version string.
pub fn unsupported_server_version(version: &str) -> Option<String> {
    match semver::Version::parse(version) {
        Ok(v) if v >= SERVER_VERSION_MIN => None,
        // A release candidate of the minimum counts as the minimum.
        Ok(v) if (v.major, v.minor, v.patch) >= (2, 10, 0) => None,
        Ok(_) => Some(format!(
            "nats-server {version} is older than {SERVER_VERSION_MIN}, the oldest supported (deploy/README.md): upgrade it"
        )),
        Err(_) => Some(format!(
            "the NATS server reports version {version:?}, which is not a version: supported are {SERVER_VERSION_MIN} and newer (deploy/README.md)"
        )),
    }
}

#[cfg(test)]
mod server_version_tests {
    use super::unsupported_server_version as check;

    #[test]
    fn versions_from_2_10_are_supported_older_ones_warned() {
        assert_eq!(check("2.15.1"), None);
        assert_eq!(check("2.10.0"), None);
        assert_eq!(check("2.10.0-RC.1"), None);
        assert_eq!(check("3.0.0"), None);
        let old = check("2.9.10").expect("2.9.10 is too old");
        assert!(old.contains("2.9.10") && old.contains("2.10.0"), "{old}");
        assert!(check("2.9.25").is_some());
        assert!(check("nonsense").is_some());
    }
}
