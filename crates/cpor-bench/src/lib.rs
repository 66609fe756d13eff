//! Benchmarks of the CPOR claim service (issue 5), each figure beside a
//! ceiling measured in the same run so that ratios hold on a noisy machine,
//! and the log generator the audit tools are timed with.
//!
//! - [`workload`]: the realistic command mix, as JSON requests.
//! - [`writer`]: the engine's writer loop without NATS (raw log ceiling).
//! - [`generate`]: [`generate_log`], a realistic data dir of any size.
//! - [`load`]: closed-loop clients over NATS, and the two echo responders
//!   (plain, and with two JetStream publishes per request).
//! - [`processes`]: the run's own nats-server and `cpor serve`.
//! - [`memory`]: an estimate of the decision state's heap size.
//! - [`procfs`]: CPU and RSS from /proc, the machine, the git revision.
//! - [`growth`]: the data growth curve (stored claims vs throughput,
//!   latency, memory, disk, audit tools, cold start).
//! - [`run`]: the harness; [`report`]: the table and the JSON.

// The report's `json!` literal is deep.
#![recursion_limit = "256"]

pub mod coldstart;
pub mod generate;
pub mod growth;
pub mod load;
pub mod memory;
pub mod processes;
pub mod procfs;
pub mod report;
pub mod run;
pub mod summary;
pub mod workload;
pub mod writer;

pub use generate::{
    generate_log, try_generate, try_generate_log, GenerateSpec, GeneratedLog, Target,
};
pub use report::{Report, REPORT_KEYS};
pub use run::{Mode, Options};
