//! The CPOR wire contract over NATS.
//!
//! Architecture invariant: the only crate that names async-nats, and the
//! only one that knows the request and reply DTOs.
//!
//! - `wire`: subjects and bodies → domain commands and queries; replies.
//! - `server`: the request/reply subscriptions and their handlers.
//! - `relay`: the log → JetStream publisher (events and status streams).
//! - `lease`: one instance per prefix.
//! - `connection`: the one `connect` every part of `cpor` uses (plain
//!   options: URL, credentials, TLS, inbox prefix), and the stream reads
//!   the tools need, so that no async-nats type is named outside this crate.

pub mod connection;
pub mod lease;
pub mod relay;
pub mod server;
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
