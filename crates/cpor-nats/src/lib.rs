//! The CPOR wire contract over NATS.
//!
//! Architecture invariant: the only crate that names async-nats, and the
//! only one that knows the request and reply DTOs.
//!
//! - `wire`: subjects and bodies → domain commands and queries; replies.
//! - `server`: the request/reply subscriptions and their handlers.
//! - `relay`: the log → JetStream publisher (events and status streams).
//! - `lease`: one instance per prefix.

pub mod lease;
pub mod relay;
pub mod server;
pub mod wire;

pub use async_nats;
