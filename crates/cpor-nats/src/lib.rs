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
