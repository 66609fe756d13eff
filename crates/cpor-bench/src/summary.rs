//! The report's issue-8 sections: the pinned runs with each thread's CPU,
//! the data growth curve, and the summary of every target beside the
//! ceiling or reference measured in the same run.

use crate::report::{
    ceiling_cells, ceiling_header, cpu_cells, cpu_header, fmt_int, GrowthFigures, LevelFigures,
    Report, SATURATED_THREAD_CORES, TARGET_CLAIMS, TARGET_COLD_START_S, TARGET_CPU_US_PER_CMD,
    TARGET_DISK_RATIO, TARGET_GENERATE_EVENTS_PER_S, TARGET_GROWTH_RATIO, TARGET_RATIO_VS_ECHO,
    TARGET_RAW_BATCH, TARGET_RAW_EVENTS_PER_S, TARGET_REBUILD_EVENTS_PER_S,
    TARGET_RSS_1M_CLAIMS_MIB, TARGET_SERVICE_P99_MS, TARGET_VERIFY_EVENTS_PER_S,
};

/// Threads listed per pinned run (the busiest).
pub const THREADS_SHOWN_MAX: usize = 8;

/// One line of the targets summary.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetRow {
    pub what: String,
    pub value: String,
    /// The target, with the ceiling or reference it is held against.
    pub target: String,
    /// `None`: not a target, or not measured in this run.
    pub met: Option<bool>,
}

fn row(what: impl Into<String>, value: String, target: String, met: Option<bool>) -> TargetRow {
    TargetRow {
        what: what.into(),
        value,
        target,
        met,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl Report {
    /// The growth point with the most claims, and whether it reached the
    /// targets' 1M claims.
    pub fn largest_growth(&self) -> Option<(&GrowthFigures, bool)> {
        let largest = self.growth.iter().max_by_key(|g| g.claims)?;
        Some((largest, largest.claims >= TARGET_CLAIMS))
    }

    /// The empty point of the growth curve.
    pub fn empty_growth(&self) -> Option<&GrowthFigures> {
        self.growth.iter().find(|g| g.claims_target == 0)
    }

    /// The busiest thread of the top level (the pinned run with the most
    /// cores, else the unpinned level).
    pub fn busiest_thread(&self) -> Option<(usize, String, f64, f64)> {
        let level = self
            .pinned
            .iter()
            .max_by_key(|l| l.cores)
            .cloned()
            .unwrap_or_else(|| self.top_level());
        let t = level.threads.first()?;
        Some((level.cores, t.name.clone(), t.cores, t.share))
    }

    /// Every issue-8 target, in the order.
    pub fn target_rows(&self) -> Vec<TargetRow> {
        let mut rows = self.end_to_end_rows();
        rows.extend(self.growth_rows());
        rows.extend(self.storage_rows());
        rows
    }

    fn end_to_end_rows(&self) -> Vec<TargetRow> {
        let top = self.top_level();
        let c = top.clients;
        let mut rows = vec![
            row(
                format!("end to end / echo ({c} clients)"),
                format!("{:.1}%", 100.0 * self.ratio_vs_echo()),
                format!(
                    ">= {:.0}% (echo {} rps, service {})",
                    100.0 * TARGET_RATIO_VS_ECHO,
                    fmt_int(top.echo_rps),
                    fmt_int(top.cmds_per_s)
                ),
                Some(self.ratio_vs_echo() >= TARGET_RATIO_VS_ECHO),
            ),
            row(
                format!("end to end / echo-js ({c} clients)"),
                format!("{:.1}%", 100.0 * top.cmds_per_s / top.echo_js_rps.max(1e-9)),
                format!("- (echo-js {} rps)", fmt_int(top.echo_js_rps)),
                None,
            ),
            row(
                format!("p99 ({c} clients)"),
                format!("{:.2} ms", top.p99_ms),
                format!(
                    "<= {TARGET_SERVICE_P99_MS} ms (echo p99 {:.2} ms)",
                    top.echo_p99_ms
                ),
                Some(top.p99_ms <= TARGET_SERVICE_P99_MS),
            ),
            row(
                format!("service CPU per command ({c} clients)"),
                format!("{:.0} us", top.service_cpu_us_per_cmd),
                format!("<= {TARGET_CPU_US_PER_CMD} us"),
                Some(top.service_cpu_us_per_cmd <= TARGET_CPU_US_PER_CMD),
            ),
        ];
        if let Some((cores, name, used, share)) = self.busiest_thread() {
            let pinned = match cores {
                0 => "not pinned".to_string(),
                n => format!("{n} cores"),
            };
            rows.push(row(
                format!("busiest service thread ({c} clients, {pinned})"),
                format!("{used:.2} cores"),
                format!(
                    "< {SATURATED_THREAD_CORES} ({name}, {:.0}% of the service)",
                    100.0 * share
                ),
                Some(used < SATURATED_THREAD_CORES),
            ));
        }
        let raw = self.raw.iter().find(|r| r.batch == TARGET_RAW_BATCH);
        if let Some(raw) = raw {
            rows.push(row(
                format!("raw log, {TARGET_RAW_BATCH} commands per flush"),
                format!("{} events/s", fmt_int(raw.events_per_s())),
                format!(">= {} events/s", fmt_int(TARGET_RAW_EVENTS_PER_S)),
                Some(raw.events_per_s() >= TARGET_RAW_EVENTS_PER_S),
            ));
        }
        rows
    }

    /// Rows about the largest growth point: met or not only when it holds
    /// the targets' 1M claims, else the figure at the size measured.
    fn growth_rows(&self) -> Vec<TargetRow> {
        let (Some((big, full)), Some(empty)) = (self.largest_growth(), self.empty_growth()) else {
            return Vec::new();
        };
        let at = if full {
            String::new()
        } else {
            format!(" (only {} claims measured)", big.claims)
        };
        let judged = |ok: bool| if full { Some(ok) } else { None };
        let ratio = big.load.cmds_per_s / empty.load.cmds_per_s.max(1e-9);
        vec![
            row(
                format!("{} claims stored / empty, cmds/s", big.claims),
                format!("{:.1}%", 100.0 * ratio),
                format!(
                    ">= {:.0}% (empty {}, stored {}){at}",
                    100.0 * TARGET_GROWTH_RATIO,
                    fmt_int(empty.load.cmds_per_s),
                    fmt_int(big.load.cmds_per_s)
                ),
                judged(ratio >= TARGET_GROWTH_RATIO),
            ),
            row(
                format!("RSS serving {} claims, listed and read", big.claims),
                format!("{:.0} MiB", big.rss_served_mib),
                format!("<= {TARGET_RSS_1M_CLAIMS_MIB} MiB{at}"),
                judged(big.rss_served_mib <= TARGET_RSS_1M_CLAIMS_MIB),
            ),
            row(
                format!("cold start to first query, {} claims", big.claims),
                format!("{:.2} s", big.first_query_s),
                format!("<= {TARGET_COLD_START_S} s{at}"),
                judged(big.first_query_s <= TARGET_COLD_START_S),
            ),
        ]
    }

    /// Disk, audit tools and generator on the largest generated log (these
    /// are rates and ratios: judged at any size).
    fn storage_rows(&self) -> Vec<TargetRow> {
        let Some((big, _)) = self.largest_growth().filter(|(g, _)| g.events > 0) else {
            return Vec::new();
        };
        let rate = |tool: &crate::report::ToolRun| match &tool.0 {
            Ok(_) => format!("{} events/s", fmt_int(big.tool_events_per_s(tool))),
            Err(e) => format!("failed: {e}"),
        };
        let n = big.events;
        vec![
            row(
                format!("disk / canonical export ({n} events)"),
                format!("{:.2}x", big.disk_ratio()),
                format!(
                    "<= {TARGET_DISK_RATIO}x ({:.0} MiB / {:.0} MiB, {:.0} B/event)",
                    mib(big.disk_bytes),
                    mib(big.export_bytes),
                    big.disk_bytes_per_event()
                ),
                Some(big.disk_ratio() <= TARGET_DISK_RATIO),
            ),
            row(
                "cpor rebuild",
                rate(&big.rebuild_s),
                format!(">= {} events/s", fmt_int(TARGET_REBUILD_EVENTS_PER_S)),
                Some(big.tool_events_per_s(&big.rebuild_s) >= TARGET_REBUILD_EVENTS_PER_S),
            ),
            row(
                "cpor verify --data-dir",
                rate(&big.verify_s),
                format!(">= {} events/s", fmt_int(TARGET_VERIFY_EVENTS_PER_S)),
                Some(big.tool_events_per_s(&big.verify_s) >= TARGET_VERIFY_EVENTS_PER_S),
            ),
            row(
                "cpor-bench generate",
                format!("{} events/s", fmt_int(big.generate_events_per_s())),
                format!(">= {} events/s", fmt_int(TARGET_GENERATE_EVENTS_PER_S)),
                Some(big.generate_events_per_s() >= TARGET_GENERATE_EVENTS_PER_S),
            ),
        ]
    }

    /// The top level with the service pinned, and its busiest threads.
    pub(crate) fn pinned_section(&self, out: &mut String) {
        if self.pinned.is_empty() {
            return;
        }
        out.push_str(
            "\nPinned (taskset: cpor serve on CPUs 0..N; echo ceilings measured beside each run)\n",
        );
        out.push_str(&format!(
            "  {:>5} {:>7} {} {:>8} {}\n",
            "cores",
            "clients",
            ceiling_header(),
            "p99 ms",
            cpu_header(),
        ));
        for l in &self.pinned {
            out.push_str(&format!(
                "  {:>5} {:>7} {} {:>8.2} {}\n",
                l.cores,
                l.clients,
                ceiling_cells(l),
                l.p99_ms,
                cpu_cells(l),
            ));
        }
        for l in &self.pinned {
            out.push_str(&threads_line(l));
        }
    }

    /// The growth curve, one row per point.
    pub(crate) fn growth_section(&self, out: &mut String) {
        if self.growth.is_empty() {
            return;
        }
        out.push_str("\nData growth (a generated log of N claims served, loaded, listed and read; 64 clients)\n");
        out.push_str(&format!(
            "  {:>9} {:>9} {:>9} {:>6} {:>8} {:>9} {:>9} {:>9} {:>7} {:>8} {:>8} {:>8}\n",
            "claims",
            "events",
            "cmds/s",
            "/empty",
            "p99 ms",
            "RSS MiB",
            "disk MiB",
            "B/event",
            "/export",
            "1st q s",
            "listed",
            "list s"
        ));
        let empty = self.empty_growth().map_or(0.0, |g| g.load.cmds_per_s);
        for g in &self.growth {
            out.push_str(&format!(
                "  {:>9} {:>9} {:>9} {:>5.0}% {:>8.2} {:>9.0} {:>9.0} {:>9.0} {:>6.2}x {:>8.2} {:>8} {:>8.2}\n",
                g.claims,
                g.events,
                fmt_int(g.load.cmds_per_s),
                100.0 * g.load.cmds_per_s / empty.max(1e-9),
                g.load.p99_ms,
                g.rss_served_mib,
                mib(g.disk_bytes.max(g.disk_after_stop_bytes * u64::from(g.events == 0))),
                g.disk_bytes_per_event(),
                g.disk_ratio(),
                g.first_query_s,
                g.listed,
                g.list_s,
            ));
        }
        out.push_str(
            "  (RSS after listing every claim and reading some one by one; disk after generating and a clean \
             stop, the empty point after the service's stop; /export = disk / bytes of `cpor export`)\n",
        );
    }
}

/// "cores N: name 0.93 cores (57%), …" for a level's busiest threads.
fn threads_line(level: &LevelFigures) -> String {
    let shown: Vec<String> = level
        .threads
        .iter()
        .take(THREADS_SHOWN_MAX)
        .map(|t| format!("{} {:.2} ({:.0}%)", t.name, t.cores, 100.0 * t.share))
        .collect();
    format!(
        "  threads at {} cores (CPU in cores, share of the service): {}\n",
        level.cores,
        shown.join(", ")
    )
}
