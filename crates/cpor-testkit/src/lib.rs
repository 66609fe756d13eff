//! Test helpers declared once for every test above the domain: the log's,
//! the engine's, the end-to-end tests in `tests/it` and the benchmark's
//! smoke test. A dev-dependency only (`publish = false`; a tidy test keeps
//! it out of `[dependencies]`), but of the benchmark harness `cpor-bench`
//! (itself unpublished), which starts nats-server as the tests do.
//!
//! - [`actors`]: the actors the tests act as, typed ([`cpor_domain`]) and
//!   in their wire form ([`actors::wire`], contract §2 `actor`).
//! - [`env`]: the `CPOR_*` variables a `cpor` child must not inherit.
//! - [`fixtures`]: times, command envelopes, reference data.
//! - [`net`]: a free TCP port.
//! - [`nats`]: which nats-server executable a test starts
//!   (`CPOR_NATS_SERVER_BIN`).
//!
//! The domain's own tests keep their harness (`cpor-domain/src/tests`):
//! this crate depends on `cpor-domain`, and a dev-dependency back onto it
//! would give the domain's tests a second, incompatible copy of its types.

pub mod actors;
pub mod env;
pub mod fixtures;
pub mod nats;
pub mod net;
