//! What the decision state costs per claim, counted by the allocator.
//!
//! The service keeps [`State`] in memory (the writer folds the log into it
//! at start), so its bytes per claim decide the RSS of a large store (issue
//! 8, target 6: ≤ 512 MiB serving 1M claims, sled's cache included). This
//! test folds the benchmark's own mix ([`cpor_bench::workload::Stream`]:
//! approved, competing through arbitration, rejected, withdrawn, abandoned
//! claims, comments, refused commands) exactly as `cpor-bench generate`
//! decides it (same seed, same 15 s per command, deadlines fired as the
//! scheduler does), but into a bare `State` with no log, and then measures
//! the heap the state owns: the live bytes a counting global allocator sees
//! disappear when the state is dropped. Each part is dropped on its own
//! first, so the figure comes with its breakdown.
//!
//! The bytes are what the program asked for; glibc adds about 8–16 bytes to
//! each allocation (header and rounding), which is why the allocations are
//! counted and reported too.
//!
//! `CPOR_STATE_MEMORY_CLAIMS` sets the claims (5,000 by default, about half
//! a minute in a debug build); the figure in docs/performance.md is of
//! 100,000 in a release build:
//!
//! ```sh
//! CPOR_STATE_MEMORY_CLAIMS=100000 cargo test --release -p cpor-bench --test state_memory -- --nocapture
//! ```

use std::alloc::System;

use chrono::TimeZone;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

use cpor_bench::workload::Stream;
use cpor_domain::access::authorize_envelope;
use cpor_domain::calendar::Calendar;
use cpor_domain::command::{Command, CommandEnvelope};
use cpor_domain::decide::{decide, Context};
use cpor_domain::state::State;
use cpor_domain::types::{Actor, Timestamp};
use cpor_nats::wire::{self, Request};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The most the state may cost per claim of the mix, in requested bytes
/// (before glibc's per-allocation overhead). Issue 8 wants the state well
/// under 300 bytes per claim so that 1M claims leave room for sled's cache
/// in 512 MiB.
const BYTES_PER_CLAIM_MAX: u64 = 450;

/// Synthetic time between two commands: `cpor-bench generate`'s.
const SECONDS_PER_COMMAND: i64 = cpor_bench::generate::GENERATE_SECONDS_PER_COMMAND;

/// Live heap (bytes, allocations) right now, from the counting allocator.
fn live() -> (i64, i64) {
    let stats = GLOBAL.stats();
    let bytes = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
        + stats.bytes_reallocated as i64;
    let allocations = stats.allocations as i64 - stats.deallocations as i64;
    (bytes, allocations)
}

/// Decides and folds one command the way the engine's writer does
/// (authorize, decide, evolve each event); a refusal changes nothing.
fn run(state: &mut State, calendar: &Calendar, envelope: &CommandEnvelope, now: Timestamp) {
    if authorize_envelope(envelope).is_err() {
        return;
    }
    let ctx = Context { now, calendar };
    if let Ok(decision) = decide(state, envelope, &ctx) {
        for event in &decision.events {
            state.evolve(event, now).expect("decided events fold");
        }
    }
}

/// Fires every deadline due by `now`, as the scheduler does.
fn fire_deadlines(state: &mut State, calendar: &Calendar, now: Timestamp, fired: &mut u64) {
    while let Some((due, claim_id, kind)) = state.next_deadline() {
        if due > now {
            break;
        }
        *fired += 1;
        let envelope = CommandEnvelope {
            command_id: uuid::Uuid::from_u64_pair(0xdead, *fired),
            actor: Actor::System {
                id: "cpor-scheduler".to_string(),
            },
            correlation_id: None,
            traceparent: None,
            expected_version: None,
            command: Command::DeadlineElapsed {
                claim_id,
                kind,
                due_at: due,
            },
        };
        let before = state.deadlines.len();
        run(state, calendar, &envelope, now);
        assert!(
            state.deadlines.len() < before,
            "a due deadline fires once and leaves the set"
        );
    }
}

/// The benchmark's mix folded until the state holds `claims` claims.
fn fold_workload(claims: usize) -> State {
    let calendar = Calendar::default();
    let mut stream = Stream::new(1, cpor_bench::generate::GENERATE_LANES);
    let mut state = State::new();
    let mut now = chrono::Utc
        .with_ymd_and_hms(2026, 1, 5, 8, 0, 0)
        .single()
        .expect("a valid start time");
    let mut fired = 0;
    let mut commands = 0u64;
    while state.claims.len() < claims {
        let req = stream.next().expect("the stream is endless");
        now += chrono::Duration::seconds(SECONDS_PER_COMMAND);
        commands += 1;
        if let Ok(Request::Command { envelope, .. }) = wire::parse(&req.tail, &req.payload()) {
            run(&mut state, &calendar, &envelope, now);
        }
        // The generator fires deadlines once per batch of 1,000 commands.
        if commands.is_multiple_of(1_000) {
            fire_deadlines(&mut state, &calendar, now, &mut fired);
        }
    }
    state
}

/// Heap bytes and allocations freed by dropping `part`.
fn drop_cost<T>(part: T) -> (i64, i64) {
    let before = live();
    drop(part);
    let after = live();
    (before.0 - after.0, before.1 - after.1)
}

#[test]
fn the_decision_state_costs_less_than_the_budget_per_claim() {
    let claims: usize = std::env::var("CPOR_STATE_MEMORY_CLAIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let mut state = fold_workload(claims);
    let (claims, cases, open) = (
        state.claims.len(),
        state.cases.len(),
        state.claims.values().filter(|c| c.status.is_open()).count(),
    );
    let total_before = live();
    // An array, not a Vec: the measurement itself must not allocate.
    let parts = [
        ("claims", drop_cost(std::mem::take(&mut state.claims))),
        ("cases", drop_cost(std::mem::take(&mut state.cases))),
        ("keys", drop_cost(std::mem::take(&mut state.keys))),
        (
            "open_cases",
            drop_cost(std::mem::take(&mut state.open_cases)),
        ),
        ("deadlines", drop_cost(std::mem::take(&mut state.deadlines))),
        ("tenants", drop_cost(std::mem::take(&mut state.tenants))),
        (
            "subscriptions",
            drop_cost(std::mem::take(&mut state.subscriptions)),
        ),
        (
            "subscriptions_by_product",
            drop_cost(std::mem::take(&mut state.subscriptions_by_product)),
        ),
        ("partners", drop_cost(std::mem::take(&mut state.partners))),
        // Last: the texts the parts above shared are freed with the table.
        ("names", drop_cost(std::mem::take(&mut state.names))),
        ("rest", drop_cost(state)),
    ];
    let total_after = live();
    let (bytes, allocations) = (
        total_before.0 - total_after.0,
        total_before.1 - total_after.1,
    );
    let per_claim = |n: i64| n as f64 / claims as f64;
    println!(
        "decision state of {claims} claims ({open} open, {cases} cases): {bytes} bytes in \
         {allocations} allocations, {:.0} bytes and {:.2} allocations per claim",
        per_claim(bytes),
        per_claim(allocations)
    );
    for (name, (bytes, allocations)) in &parts {
        println!(
            "  {name:<26} {:>8.1} bytes/claim {:>6.2} allocations/claim",
            per_claim(*bytes),
            per_claim(*allocations)
        );
    }
    assert_eq!(
        parts.iter().map(|(_, (b, _))| b).sum::<i64>(),
        bytes,
        "the parts add up to the whole"
    );
    assert!(
        claims > 0 && cases > 0 && open > 0,
        "the mix has claims, cases and open claims"
    );
    assert!(
        per_claim(bytes) <= BYTES_PER_CLAIM_MAX as f64,
        "the decision state costs {:.0} bytes per claim, more than {BYTES_PER_CLAIM_MAX}",
        per_claim(bytes)
    );
}
