//! The end-to-end test binary: the real `cpor` executable over a real
//! nats-server. Each module is one group of tests; `support` holds the shared
//! helpers.

mod audit;
mod conformance;
mod crash;
mod demo;
mod deploy;
mod docs;
mod faults;
mod identity;
mod ops;
mod ops_cli;
mod ops_service;
mod ops_trace;
mod paging;
mod startup;
mod status_migration;
mod support;
mod tidy;
mod tidy_fn_length;
mod tools;
mod trail;
mod upgrade;
