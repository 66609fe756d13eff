//! The figures of one run: the table printed at the end, and the JSON
//! written with `--json` (the headline keys at the top level, details below).

use serde_json::{json, Value};

use crate::procfs::Machine;

/// Top-level keys of the JSON report, each a positive number after a
/// successful run (the smoke test checks every one).
pub const REPORT_KEYS: [&str; 21] = [
    "echo_ceiling_rps",
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

/// Targets on the reference machine (issue 5). Benchmarks never fail a
/// build; the table says which are met.
pub const TARGET_SERVICE_CMDS_PER_S: f64 = 15_000.0;
pub const TARGET_SERVICE_P99_MS: f64 = 20.0;
pub const TARGET_RATIO_VS_ECHO: f64 = 0.30;
pub const TARGET_REBUILD_EVENTS_PER_S: f64 = 1_000_000.0;
pub const TARGET_RSS_1M_CLAIMS_MIB: f64 = 512.0;

/// Raw log appends at one batch size.
#[derive(Debug, Clone, Default)]
pub struct RawFigures {
    /// Commands per flush (group commit size).
    pub batch: usize,
    /// Commands that reached the writer (accepted or refused by decide).
    pub commands: u64,
    pub events: u64,
    pub seconds: f64,
}

impl RawFigures {
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
            "  {:>14} {:>10} {:>10} {:>14} {:>14}\n",
            "cmds/flush", "commands", "events", "commands/s", "events/s"
        ));
        for r in &self.raw {
            out.push_str(&format!(
                "  {:>14} {:>10} {:>10} {:>14} {:>14}\n",
                r.batch,
                r.commands,
                r.events,
                fmt_int(r.per_s()),
                fmt_int(r.events_per_s())
            ));
        }
    }

    fn end_to_end_section(&self, out: &mut String) {
        let top = self.top_level();
        out.push_str("\nEnd to end over NATS (closed-loop clients; echo = trivial responder, same load, best of before/after)\n");
        out.push_str(&format!(
            "  {:>7} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8} {:>6}\n",
            "clients",
            "echo rps",
            "cmds/s",
            "/echo",
            "p50 ms",
            "p99 ms",
            "p999 ms",
            "relay ms",
            "cpu",
            "us/cmd",
            "RSS MiB",
            "bad"
        ));
        for l in &self.levels {
            out.push_str(&format!(
                "  {:>7} {:>10} {:>10} {:>6.0}% {:>8.2} {:>8.2} {:>8.2} {:>9.0} {:>6.0}% {:>8.0} {:>8.1} {:>6}\n",
                l.clients,
                fmt_int(l.echo_rps),
                fmt_int(l.cmds_per_s),
                100.0 * l.cmds_per_s / l.echo_rps.max(1e-9),
                l.p50_ms,
                l.p99_ms,
                l.p999_ms,
                l.relay_publish_ms,
                100.0 * l.service_cpu_cores,
                l.service_cpu_us_per_cmd,
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
            "  rebuild of all projections: {:.2} s = {} events/s ({} differences)\n",
            replay.rebuild_s,
            fmt_int(replay.rebuild_events_per_s()),
            replay.rebuild_differences
        ));
        out.push_str(&format!(
            "  cold start of cpor serve until qry.health answers: {:.2} s\n",
            replay.cold_start_s
        ));
        out.push_str(&format!(
            "  RSS: {:.0} MiB with {} claims (peak {:.0} MiB; idle service {:.0} MiB; {:.0} bytes/claim above idle)\n",
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
        let top = self.top_level();
        let replay = &self.replay;
        out.push_str("\nRatios and targets\n");
        let check = |ok: bool| if ok { "met" } else { "NOT met" };
        let rows = [
            (
                format!("end to end at {} clients", top.clients),
                format!("{} cmds/s", fmt_int(top.cmds_per_s)),
                format!(">= {} cmds/s", fmt_int(TARGET_SERVICE_CMDS_PER_S)),
                top.cmds_per_s >= TARGET_SERVICE_CMDS_PER_S,
            ),
            (
                format!("p99 at {} clients", top.clients),
                format!("{:.2} ms", top.p99_ms),
                format!("<= {TARGET_SERVICE_P99_MS} ms"),
                top.p99_ms <= TARGET_SERVICE_P99_MS,
            ),
            (
                "end to end / echo ceiling".to_string(),
                format!("{:.1}%", 100.0 * self.ratio_vs_echo()),
                format!(">= {:.0}%", 100.0 * TARGET_RATIO_VS_ECHO),
                self.ratio_vs_echo() >= TARGET_RATIO_VS_ECHO,
            ),
            (
                "end to end / raw log".to_string(),
                format!("{:.1}%", 100.0 * self.ratio_vs_raw_log()),
                "-".to_string(),
                true,
            ),
            (
                "rebuild".to_string(),
                format!("{} events/s", fmt_int(replay.rebuild_events_per_s())),
                format!(">= {} events/s", fmt_int(TARGET_REBUILD_EVENTS_PER_S)),
                replay.rebuild_events_per_s() >= TARGET_REBUILD_EVENTS_PER_S,
            ),
            (
                "RSS with 1M claims (lower bound)".to_string(),
                format!("{:.0} MiB", replay.projected_rss_1m_claims_mib()),
                format!("<= {TARGET_RSS_1M_CLAIMS_MIB} MiB"),
                replay.projected_rss_1m_claims_mib() <= TARGET_RSS_1M_CLAIMS_MIB,
            ),
        ];
        for (what, value, target, ok) in rows {
            let verdict = if target == "-" { "" } else { check(ok) };
            out.push_str(&format!(
                "  {what:<32} {value:>18}   {target:<22} {verdict}\n"
            ));
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
