//! The figures of one run: the table printed at the end, and the JSON
//! written with `--json` (the headline keys at the top level, details below).

use serde_json::{json, Value};

use crate::procfs::{Machine, ThreadShare};

/// Top-level keys of the JSON report, each a positive number after a
/// successful run (the smoke test checks every one).
pub const REPORT_KEYS: [&str; 28] = [
    "echo_ceiling_rps",
    "echo_js_ceiling_rps",
    "ratio_service_vs_echo_js",
    "service_cpu_us_per_cmd",
    "verify_events_per_s",
    "disk_ratio",
    "disk_bytes_per_event",
    "growth_ratio",
    "raw_log_appends_per_s",
    "raw_log_batch1_appends_per_s",
    "raw_log_events_per_s",
    "service_cmds_per_s",
    "service_p50_ms",
    "service_p99_ms",
    "service_p999_ms",
    "service_cpu_cores",
    "service_rss_mib",
    "relay_publish_ms",
    "ratio_service_vs_echo",
    "ratio_service_vs_raw_log",
    "rebuild_events_per_s",
    "replay_events",
    "replay_claims",
    "cold_start_s",
    "replay_rss_mib",
    "rss_1m_claims_mib",
    "generate_events_per_s",
    "duration_s",
];

/// Targets on the reference machine (issue 8). Benchmarks never fail a
/// build; the table says which are met, and which were not measured.
pub const TARGET_RATIO_VS_ECHO: f64 = 0.30;
pub const TARGET_SERVICE_P99_MS: f64 = 10.0;
pub const TARGET_CPU_US_PER_CMD: f64 = 40.0;
/// With 1M claims stored, end to end vs the empty store.
pub const TARGET_GROWTH_RATIO: f64 = 0.80;
/// The claims of the growth and memory targets.
pub const TARGET_CLAIMS: u64 = 1_000_000;
/// The raw log at this many commands per flush…
pub const TARGET_RAW_BATCH: usize = 64;
/// …writes at least this many events per second.
pub const TARGET_RAW_EVENTS_PER_S: f64 = 100_000.0;
pub const TARGET_DISK_RATIO: f64 = 1.5;
pub const TARGET_RSS_1M_CLAIMS_MIB: f64 = 512.0;
pub const TARGET_REBUILD_EVENTS_PER_S: f64 = 1_000_000.0;
pub const TARGET_VERIFY_EVENTS_PER_S: f64 = 500_000.0;
pub const TARGET_COLD_START_S: f64 = 5.0;
pub const TARGET_GENERATE_EVENTS_PER_S: f64 = 100_000.0;
/// A thread busier than this (in cores) is taken as saturated.
pub const SATURATED_THREAD_CORES: f64 = 0.9;

/// Raw log appends at one batch size.
#[derive(Debug, Clone, Default)]
pub struct RawFigures {
    /// Commands per flush (group commit size).
    pub batch: usize,
    /// Commands that reached the writer (accepted or refused by decide).
    pub commands: u64,
    pub events: u64,
    pub seconds: f64,
    /// Group commits made durable (one `flush` each).
    pub flushes: u64,
    /// Of `seconds`, the time spent waiting in those flushes.
    pub flush_seconds: f64,
    /// The disk's ceiling, measured in the same directory just before:
    /// appends made durable per second (a 16 KiB write and `fdatasync`,
    /// one after the other), see [`crate::run::disk_syncs_per_s`].
    pub disk_syncs_per_s: f64,
}

impl RawFigures {
    /// The events/s this disk allows at this batch size if nothing but the
    /// flushes took time: events per flush × the disk's durable appends
    /// per second. sled 0.34 makes at least one such append per flush
    /// (`pwrite` + `sync_file_range` of its buffer, often a second one for
    /// a 24-byte header), so the writer cannot pass it.
    pub fn sync_ceiling_events_per_s(&self) -> f64 {
        self.events as f64 / self.flushes.max(1) as f64 * self.disk_syncs_per_s
    }

    /// The share of the wall time spent waiting for flushes.
    pub fn flush_share(&self) -> f64 {
        self.flush_seconds / self.seconds.max(1e-9)
    }

    pub fn per_s(&self) -> f64 {
        self.commands as f64 / self.seconds.max(1e-9)
    }

    pub fn events_per_s(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

/// One concurrency level: the echo ceiling and the service, same load.
#[derive(Debug, Clone, Default)]
pub struct LevelFigures {
    pub clients: usize,
    pub echo_rps: f64,
    pub echo_p50_ms: f64,
    pub echo_p99_ms: f64,
    pub commands: u64,
    pub cmds_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Replies that were the refusals the mix asked for.
    pub refused: u64,
    /// Replies other than the mix expected (should be 0).
    pub unexpected: u64,
    /// Requests without a reply.
    pub failed: u64,
    pub examples: Vec<String>,
    /// Events the level wrote to the log.
    pub events: u64,
    /// From the last reply until JetStream had everything.
    pub relay_publish_ms: f64,
    pub service_cpu_cores: f64,
    pub service_cpu_us_per_cmd: f64,
    pub nats_cpu_cores: f64,
    pub bench_cpu_cores: f64,
    pub service_rss_mib: f64,
    pub service_peak_rss_mib: f64,
    /// The second ceiling: the echo responder that makes two JetStream
    /// publishes per request (`cpor-bench echo-js`), same load.
    pub echo_js_rps: f64,
    pub echo_js_p99_ms: f64,
    /// CPUs the service was pinned to (`taskset`), 0 when not pinned.
    pub cores: usize,
    /// Each service thread's CPU in the level, busiest first.
    pub threads: Vec<ThreadShare>,
}

/// A tool's run: its wall time in seconds, or why it failed (not run: 0 s).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun(pub Result<f64, String>);

impl Default for ToolRun {
    fn default() -> ToolRun {
        ToolRun(Ok(0.0))
    }
}

/// One point of the data growth curve: a generated log of `claims_target`
/// claims, the audit tools on it, then a service started on it, loaded,
/// its claims listed and read, and stopped.
#[derive(Debug, Clone, Default)]
pub struct GrowthFigures {
    pub claims_target: u64,
    /// The generated log (before the service ran).
    pub events: u64,
    pub claims: u64,
    pub cases: u64,
    pub generate_s: f64,
    /// Estimated heap bytes of the generated log's decision state.
    pub state_bytes: u64,
    /// Data dir bytes after the generator's flush and close (a clean stop).
    pub disk_bytes: u64,
    /// Bytes of `cpor export` of the generated log (the canonical events).
    pub export_bytes: u64,
    /// `cpor export`, `cpor verify --data-dir`, `cpor rebuild` on the
    /// generated log: seconds, or the error.
    pub export_s: ToolRun,
    pub verify_s: ToolRun,
    pub rebuild_s: ToolRun,
    /// From `cpor serve`'s start to the first answered `qry.claims.list`.
    pub first_query_s: f64,
    /// From the first answered query until the relay had published the
    /// whole generated log to the (empty) JetStream streams.
    pub relay_catch_up_s: f64,
    pub rss_started_mib: f64,
    /// The load at the top concurrency level, on top of the stored claims.
    pub load: LevelFigures,
    /// Claims listed (`qry.claims.list`, every page) and the time it took.
    pub listed: u64,
    pub list_s: f64,
    /// Claims read one by one (`qry.claim.get`) and the time it took.
    pub read: u64,
    pub read_s: f64,
    /// RSS after listing and reading claims (the memory target's figure).
    pub rss_served_mib: f64,
    pub peak_rss_mib: f64,
    /// Data dir bytes after the service's clean stop (SIGTERM).
    pub disk_after_stop_bytes: u64,
    pub clean_exit: bool,
}

impl GrowthFigures {
    /// Data dir bytes per canonical event byte (issue 8 target: ≤ 1.5).
    pub fn disk_ratio(&self) -> f64 {
        self.disk_bytes as f64 / self.export_bytes.max(1) as f64
    }

    pub fn disk_bytes_per_event(&self) -> f64 {
        self.disk_bytes as f64 / self.events.max(1) as f64
    }

    pub fn generate_events_per_s(&self) -> f64 {
        self.events as f64 / self.generate_s.max(1e-9)
    }

    /// Events per second of a tool's run, 0 when it failed.
    pub fn tool_events_per_s(&self, tool: &ToolRun) -> f64 {
        tool.0
            .as_ref()
            .map_or(0.0, |s| self.events as f64 / s.max(1e-9))
    }
}

/// The replay part: a generated log, its rebuild and a cold start on it.
#[derive(Debug, Clone, Default)]
pub struct ReplayFigures {
    pub events: u64,
    pub claims: u64,
    pub cases: u64,
    pub generate_s: f64,
    pub data_dir_mib: f64,
    pub rebuild_s: f64,
    pub rebuild_differences: u64,
    pub cold_start_s: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
    /// RSS of the idle service on an empty log, for the per-claim slope.
    pub idle_rss_mib: f64,
    /// Estimated heap bytes of the decision state with this log's claims.
    pub state_bytes: u64,
    /// Audit tools timed on the generated log (`--audit-tools`): name,
    /// seconds or the error.
    pub audit_tools: Vec<(String, Result<f64, String>)>,
}

impl ReplayFigures {
    pub fn rebuild_events_per_s(&self) -> f64 {
        self.events as f64 / self.rebuild_s.max(1e-9)
    }

    pub fn generate_events_per_s(&self) -> f64 {
        self.events as f64 / self.generate_s.max(1e-9)
    }

    /// RSS above the idle service, per claim (bytes).
    pub fn rss_bytes_per_claim(&self) -> f64 {
        ((self.rss_mib - self.idle_rss_mib).max(0.0) * 1024.0 * 1024.0)
            / (self.claims.max(1) as f64)
    }

    /// Estimated decision state per claim (bytes).
    pub fn state_bytes_per_claim(&self) -> f64 {
        self.state_bytes as f64 / self.claims.max(1) as f64
    }

    /// The service's RSS with 1M claims, at least: the RSS measured with
    /// this log's claims plus the decision state of the claims missing to
    /// 1M. A lower bound: the store's cache, also in the RSS, may grow too
    /// (sled's default cache holds up to 1 GiB).
    pub fn projected_rss_1m_claims_mib(&self) -> f64 {
        let missing = 1_000_000u64.saturating_sub(self.claims) as f64;
        self.rss_mib + missing * self.state_bytes_per_claim() / (1024.0 * 1024.0)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub mode: String,
    pub seed: u64,
    pub git_revision: String,
    pub machine: Machine,
    pub cpor_bin: String,
    pub cpor_build: String,
    pub started_at: String,
    pub duration_s: f64,
    pub reference_commands: u64,
    pub reference_per_s: f64,
    pub raw: Vec<RawFigures>,
    pub levels: Vec<LevelFigures>,
    /// The top level again with the service pinned to 1, 2, … CPUs.
    pub pinned: Vec<LevelFigures>,
    /// The data growth curve, smallest first.
    pub growth: Vec<GrowthFigures>,
    pub replay: ReplayFigures,
    pub service_clean_exit: bool,
    pub warnings: Vec<String>,
}

impl Report {
    /// The level with the most clients (the headline one).
    pub fn top_level(&self) -> LevelFigures {
        self.levels
            .iter()
            .max_by_key(|l| l.clients)
            .cloned()
            .unwrap_or_default()
    }

    /// Raw log figures at the largest batch (the engine's group commit).
    pub fn raw_group(&self) -> RawFigures {
        self.raw
            .iter()
            .max_by_key(|r| r.batch)
            .cloned()
            .unwrap_or_default()
    }

    pub fn raw_single(&self) -> RawFigures {
        self.raw
            .iter()
            .find(|r| r.batch == 1)
            .cloned()
            .unwrap_or_default()
    }

    pub fn ratio_vs_echo(&self) -> f64 {
        let top = self.top_level();
        top.cmds_per_s / top.echo_rps.max(1e-9)
    }

    /// Commands/s with the largest growth point's claims stored, over the
    /// empty point's (0 without a curve).
    pub fn growth_ratio(&self) -> f64 {
        match (self.largest_growth(), self.empty_growth()) {
            (Some((big, _)), Some(empty)) => big.load.cmds_per_s / empty.load.cmds_per_s.max(1e-9),
            _ => 0.0,
        }
    }

    pub fn ratio_vs_raw_log(&self) -> f64 {
        self.top_level().cmds_per_s / self.raw_group().per_s().max(1e-9)
    }

    pub fn to_json(&self) -> Value {
        let top = self.top_level();
        let raw_group = self.raw_group();
        let replay = &self.replay;
        json!({
            "echo_ceiling_rps": round(top.echo_rps),
            "raw_log_appends_per_s": round(raw_group.per_s()),
            "raw_log_batch1_appends_per_s": round(self.raw_single().per_s()),
            "raw_log_events_per_s": round(raw_group.events_per_s()),
            "service_cmds_per_s": round(top.cmds_per_s),
            "service_p50_ms": round3(top.p50_ms),
            "service_p99_ms": round3(top.p99_ms),
            "service_p999_ms": round3(top.p999_ms),
            "service_cpu_cores": round3(top.service_cpu_cores),
            "service_rss_mib": round3(top.service_rss_mib),
            "relay_publish_ms": round3(top.relay_publish_ms),
            "ratio_service_vs_echo": round3(self.ratio_vs_echo()),
            "ratio_service_vs_raw_log": round3(self.ratio_vs_raw_log()),
            "rebuild_events_per_s": round(replay.rebuild_events_per_s()),
            "replay_events": replay.events,
            "replay_claims": replay.claims,
            "cold_start_s": round3(replay.cold_start_s),
            "replay_rss_mib": round3(replay.rss_mib),
            "rss_1m_claims_mib": round3(replay.projected_rss_1m_claims_mib()),
            "generate_events_per_s": round(replay.generate_events_per_s()),
            "duration_s": round3(self.duration_s),
            "echo_js_ceiling_rps": round(top.echo_js_rps),
            "ratio_service_vs_echo_js": round3(top.cmds_per_s / top.echo_js_rps.max(1e-9)),
            "service_cpu_us_per_cmd": round3(top.service_cpu_us_per_cmd),
            "verify_events_per_s": round(self.largest_growth().map_or(0.0, |(g, _)| g.tool_events_per_s(&g.verify_s))),
            "disk_ratio": round3(self.largest_growth().map_or(0.0, |(g, _)| g.disk_ratio())),
            "disk_bytes_per_event": round(self.largest_growth().map_or(0.0, |(g, _)| g.disk_bytes_per_event())),
            "growth_ratio": round3(self.growth_ratio()),
            "pinned": self.pinned.iter().map(LevelFigures::to_json).collect::<Vec<_>>(),
            "growth": self.growth.iter().map(GrowthFigures::to_json).collect::<Vec<_>>(),
            "mode": self.mode,
            "seed": self.seed,
            "git_revision": self.git_revision,
            "started_at": self.started_at,
            "cpor_bin": self.cpor_bin,
            "cpor_build": self.cpor_build,
            "machine": {
                "cores": self.machine.cores,
                "memory_mib": self.machine.memory_mib,
                "cpu_model": self.machine.cpu_model,
                "kernel": self.machine.kernel,
            },
            "reference_data": {"commands": self.reference_commands, "per_s": round(self.reference_per_s)},
            "raw_log": self.raw.iter().map(|r| json!({
                "batch": r.batch,
                "commands": r.commands,
                "events": r.events,
                "seconds": round3(r.seconds),
                "appends_per_s": round(r.per_s()),
                "events_per_s": round(r.events_per_s()),
                "flushes": r.flushes,
                "flush_share": round3(r.flush_share()),
                "disk_syncs_per_s": round(r.disk_syncs_per_s),
                "sync_ceiling_events_per_s": round(r.sync_ceiling_events_per_s()),
            })).collect::<Vec<_>>(),
            "levels": self.levels.iter().map(LevelFigures::to_json).collect::<Vec<_>>(),
            "replay": replay.to_json(),
            "unexpected_replies": self.levels.iter().map(|l| l.unexpected + l.failed).sum::<u64>(),
            "service_clean_exit": self.service_clean_exit,
            "warnings": self.warnings,
        })
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "cpor-bench ({} mode), git {}, {} cores, {} MiB, {}\ncpor binary: {} ({})\n\n",
            self.mode,
            short(&self.git_revision),
            m.cores,
            m.memory_mib,
            m.cpu_model,
            self.cpor_bin,
            self.cpor_build
        ));
        self.raw_section(&mut out);
        self.end_to_end_section(&mut out);
        self.pinned_section(&mut out);
        self.growth_section(&mut out);
        self.replay_section(&mut out);
        self.targets_section(&mut out);
        if !self.warnings.is_empty() {
            out.push_str("\nWarnings\n");
            for w in &self.warnings {
                out.push_str(&format!("  - {w}\n"));
            }
        }
        out.push_str(&format!("\nRun took {:.1} s.\n", self.duration_s));
        out
    }

    fn raw_section(&self, out: &mut String) {
        out.push_str("Raw log (the writer alone: decide + append + commit + flush, no NATS; best of two rounds)\n");
        out.push_str(&format!(
            "  {:>14} {:>10} {:>10} {:>14} {:>14} {:>9} {:>18}\n",
            "cmds/flush",
            "commands",
            "events",
            "commands/s",
            "events/s",
            "in flush",
            "disk ceiling ev/s"
        ));
        for r in &self.raw {
            out.push_str(&format!(
                "  {:>14} {:>10} {:>10} {:>14} {:>14} {:>8.0}% {:>18}\n",
                r.batch,
                r.commands,
                r.events,
                fmt_int(r.per_s()),
                fmt_int(r.events_per_s()),
                100.0 * r.flush_share(),
                fmt_int(r.sync_ceiling_events_per_s())
            ));
        }
        out.push_str(
            "  (disk ceiling: events per flush × durable 16 KiB appends/s of this disk, measured in the same directory just before)\n",
        );
    }

    fn end_to_end_section(&self, out: &mut String) {
        let top = self.top_level();
        out.push_str("\nEnd to end over NATS (closed-loop clients; echo = trivial responder, echo-js = responder making 2 JetStream publishes per request; same load, best of before/after)\n");
        out.push_str(&format!(
            "  {:>7} {} {:>8} {:>8} {:>8} {:>9} {} {:>8} {:>6}\n",
            "clients",
            ceiling_header(),
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "relay ms",
            cpu_header(),
            "RSS MiB",
            "bad"
        ));
        for l in &self.levels {
            out.push_str(&format!(
                "  {:>7} {} {:>8.2} {:>8.2} {:>8.2} {:>9.0} {} {:>8.1} {:>6}\n",
                l.clients,
                ceiling_cells(l),
                l.p50_ms,
                l.p99_ms,
                l.p999_ms,
                l.relay_publish_ms,
                cpu_cells(l),
                l.service_rss_mib,
                l.unexpected + l.failed
            ));
        }
        out.push_str(&format!(
            "  (cpu = cpor serve's CPU in % of one core; nats-server used {:.0}%, the clients {:.0}% at {} clients)\n",
            100.0 * top.nats_cpu_cores,
            100.0 * top.bench_cpu_cores,
            top.clients
        ));
    }

    fn replay_section(&self, out: &mut String) {
        let replay = &self.replay;
        out.push_str(&format!(
            "\nReplay ({} events, {} claims, {} cases, {:.0} MiB on disk; generated at {} events/s)\n",
            replay.events,
            replay.claims,
            replay.cases,
            replay.data_dir_mib,
            fmt_int(replay.generate_events_per_s())
        ));
        out.push_str(&format!(
            "  cpor rebuild (all projections): {:.2} s = {} events/s ({} failed runs)\n",
            replay.rebuild_s,
            fmt_int(replay.rebuild_events_per_s()),
            replay.rebuild_differences
        ));
        out.push_str(&format!(
            "  cold start of cpor serve until qry.claims.list answers: {:.2} s\n",
            replay.cold_start_s
        ));
        out.push_str(&format!(
            "  RSS: {:.0} MiB serving {} claims after listing and reading (peak {:.0} MiB; idle service {:.0} MiB; {:.0} bytes/claim above idle)\n",
            replay.rss_mib,
            replay.claims,
            replay.peak_rss_mib,
            replay.idle_rss_mib,
            replay.rss_bytes_per_claim(),
        ));
        out.push_str(&format!(
            "  decision state: about {:.0} bytes/claim -> at least {:.0} MiB RSS with 1M claims (+ sled cache, up to 1 GiB)\n",
            replay.state_bytes_per_claim(),
            replay.projected_rss_1m_claims_mib()
        ));
        for (tool, result) in &replay.audit_tools {
            match result {
                Ok(s) => out.push_str(&format!("  cpor {tool}: {s:.2} s\n")),
                Err(e) => out.push_str(&format!("  cpor {tool}: {e}\n")),
            }
        }
    }

    fn targets_section(&self, out: &mut String) {
        out.push_str("\nTargets (issue 8), each beside its ceiling or reference from this run\n");
        for row in self.target_rows() {
            let verdict = match row.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "",
            };
            let line = format!(
                "  {:<44} {:>18}   {:<34} {verdict}",
                row.what, row.value, row.target
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
}

impl LevelFigures {
    fn to_json(&self) -> Value {
        let l = self;
        json!({
                    "clients": l.clients,
                    "echo_rps": round(l.echo_rps),
                    "echo_p50_ms": round3(l.echo_p50_ms),
                    "echo_p99_ms": round3(l.echo_p99_ms),
                    "commands": l.commands,
                    "cmds_per_s": round(l.cmds_per_s),
                    "ratio_vs_echo": round3(l.cmds_per_s / l.echo_rps.max(1e-9)),
                    "p50_ms": round3(l.p50_ms),
                    "p99_ms": round3(l.p99_ms),
                    "p999_ms": round3(l.p999_ms),
                    "max_ms": round3(l.max_ms),
                    "refused": l.refused,
                    "unexpected": l.unexpected,
                    "failed": l.failed,
                    "examples": l.examples,
                    "events": l.events,
                    "relay_publish_ms": round3(l.relay_publish_ms),
                    "service_cpu_cores": round3(l.service_cpu_cores),
                    "service_cpu_us_per_cmd": round3(l.service_cpu_us_per_cmd),
                    "nats_cpu_cores": round3(l.nats_cpu_cores),
                    "bench_cpu_cores": round3(l.bench_cpu_cores),
                    "service_rss_mib": round3(l.service_rss_mib),
                    "service_peak_rss_mib": round3(l.service_peak_rss_mib),
                    "echo_js_rps": round(l.echo_js_rps),
                    "echo_js_p99_ms": round3(l.echo_js_p99_ms),
                    "ratio_vs_echo_js": round3(l.cmds_per_s / l.echo_js_rps.max(1e-9)),
                    "cores": l.cores,
                    "threads": l.threads.iter().map(|t| json!({
                        "tid": t.tid, "name": t.name, "cores": round3(t.cores), "share": round3(t.share),
                    })).collect::<Vec<_>>(),
        })
    }
}

impl GrowthFigures {
    fn to_json(&self) -> Value {
        let g = self;
        let tool = |r: &ToolRun| match &r.0 {
            Ok(s) => json!({"seconds": round3(*s), "events_per_s": round(g.tool_events_per_s(r))}),
            Err(e) => json!({"error": e}),
        };
        json!({
            "claims_target": g.claims_target,
            "events": g.events,
            "claims": g.claims,
            "cases": g.cases,
            "generate_s": round3(g.generate_s),
            "generate_events_per_s": round(g.generate_events_per_s()),
            "disk_bytes": g.disk_bytes,
            "export_bytes": g.export_bytes,
            "disk_ratio": round3(g.disk_ratio()),
            "disk_bytes_per_event": round(g.disk_bytes_per_event()),
            "export": tool(&g.export_s),
            "verify": tool(&g.verify_s),
            "rebuild": tool(&g.rebuild_s),
            "first_query_s": round3(g.first_query_s),
            "relay_catch_up_s": round3(g.relay_catch_up_s),
            "rss_started_mib": round3(g.rss_started_mib),
            "load": g.load.to_json(),
            "listed": g.listed,
            "list_s": round3(g.list_s),
            "read": g.read,
            "read_s": round3(g.read_s),
            "rss_served_mib": round3(g.rss_served_mib),
            "peak_rss_mib": round3(g.peak_rss_mib),
            "disk_after_stop_bytes": g.disk_after_stop_bytes,
            "clean_exit": g.clean_exit,
        })
    }
}

impl ReplayFigures {
    fn to_json(&self) -> Value {
        let replay = self;
        json!({
                    "events": replay.events,
                    "claims": replay.claims,
                    "cases": replay.cases,
                    "generate_s": round3(replay.generate_s),
                    "data_dir_mib": round3(replay.data_dir_mib),
                    "rebuild_s": round3(replay.rebuild_s),
                    "rebuild_differences": replay.rebuild_differences,
                    "cold_start_s": round3(replay.cold_start_s),
                    "rss_mib": round3(replay.rss_mib),
                    "peak_rss_mib": round3(replay.peak_rss_mib),
                    "idle_rss_mib": round3(replay.idle_rss_mib),
                    "rss_bytes_per_claim": round(replay.rss_bytes_per_claim()),
                    "state_bytes_per_claim": round(replay.state_bytes_per_claim()),
                    "projected_rss_1m_claims_mib": round3(replay.projected_rss_1m_claims_mib()),
                    "audit_tools": replay.audit_tools.iter().map(|(name, r)| match r {
                        Ok(s) => json!({"tool": name, "seconds": round3(*s)}),
                        Err(e) => json!({"tool": name, "error": e}),
                    }).collect::<Vec<_>>(),
        })
    }
}

/// The headers of the columns every table of levels shares: the two
/// ceilings, the service's rate and its ratio to each (see [`ceiling_cells`]).
pub(crate) fn ceiling_header() -> String {
    format!(
        "{:>10} {:>10} {:>10} {:>7} {:>8}",
        "echo rps", "echo-js", "cmds/s", "/echo", "/echo-js"
    )
}

/// One level's cells under [`ceiling_header`].
pub(crate) fn ceiling_cells(l: &LevelFigures) -> String {
    format!(
        "{:>10} {:>10} {:>10} {:>6.0}% {:>7.0}%",
        fmt_int(l.echo_rps),
        fmt_int(l.echo_js_rps),
        fmt_int(l.cmds_per_s),
        100.0 * l.cmds_per_s / l.echo_rps.max(1e-9),
        100.0 * l.cmds_per_s / l.echo_js_rps.max(1e-9),
    )
}

/// The headers of the service's CPU columns: share of one core, and
/// microseconds per command (see [`cpu_cells`]).
pub(crate) fn cpu_header() -> String {
    format!("{:>7} {:>8}", "cpu", "us/cmd")
}

/// One level's cells under [`cpu_header`].
pub(crate) fn cpu_cells(l: &LevelFigures) -> String {
    format!(
        "{:>6.0}% {:>8.0}",
        100.0 * l.service_cpu_cores,
        l.service_cpu_us_per_cmd
    )
}

fn round(x: f64) -> f64 {
    x.round()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn short(rev: &str) -> &str {
    &rev[..rev.len().min(12)]
}

/// 12345.6 → "12,346".
pub fn fmt_int(x: f64) -> String {
    let n = x.round().max(0.0) as u64;
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|g| std::str::from_utf8(g).expect("ASCII digits"))
        .collect();
    groups.join(",")
}
