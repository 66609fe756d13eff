//! What the benchmark reads from /proc: a process's CPU time and memory,
//! and the machine it runs on.

use std::path::Path;
use std::time::Duration;

/// CPU time and memory of one process at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kib: u64,
}

/// Reads /proc/PID/stat and /proc/PID/status; `None` when the process is gone.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after the last ')'. utime and stime are fields 14 and 15,
    // that is the 12th and 13th after the name.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcSample {
        cpu_ticks: utime + stime,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

fn status_kib(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux when unknown).
pub fn clock_ticks_per_s() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// CPU used between two samples, in cores (1.0 = one core busy the whole time).
pub fn cores_used(before: ProcSample, after: ProcSample, wall: Duration, ticks_per_s: u64) -> f64 {
    let cpu_s = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_s as f64;
    cpu_s / wall.as_secs_f64().max(1e-9)
}

/// CPU seconds between two samples.
pub fn cpu_seconds(before: ProcSample, after: ProcSample, ticks_per_s: u64) -> f64 {
    after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks_per_s as f64
}

/// The machine, as /proc describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Machine {
    pub cores: u64,
    pub memory_mib: u64,
    pub cpu_model: String,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u64;
    let cores = if cores == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
    } else {
        cores
    };
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = status_kib(&meminfo, "MemTotal:").unwrap_or(0) / 1024;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    Machine {
        cores,
        memory_mib,
        cpu_model,
        kernel,
    }
}

/// `git rev-parse HEAD` in `dir`, or "unknown".
pub fn git_revision(dir: &Path) -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Bytes under `dir`, recursively (a data dir's size on disk).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// CPU time of one thread of a process at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSample {
    /// The kernel's thread id (the `task` directory's name).
    pub tid: u32,
    /// The thread's name (`comm`, at most 15 bytes: tokio workers are
    /// `tokio-runtime-w`, sled's are `sled-io`, …).
    pub name: String,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// utime + stime (clock ticks) and the name from a `stat` file's text
/// (`/proc/PID/stat` or `/proc/PID/task/TID/stat`, proc(5)).
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    // The name (field 2) is in parentheses and may hold spaces and ')':
    // it runs from the first '(' to the last ')'.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Every thread of `pid` (from /proc/PID/task/*/stat); empty when the
/// process is gone. Threads that exit while being read are left out.
pub fn thread_samples(pid: u32) -> Vec<ThreadSample> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut threads: Vec<ThreadSample> = entries
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let (name, cpu_ticks) = stat_ticks(&stat)?;
            Some(ThreadSample {
                tid,
                name,
                cpu_ticks,
            })
        })
        .collect();
    threads.sort_by_key(|t| t.tid);
    threads
}

/// One thread's share of what a process used between two samples.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadShare {
    pub tid: u32,
    pub name: String,
    /// CPU used by this thread in the interval, in cores (1.0 = one core
    /// busy the whole time: a saturated thread).
    pub cores: f64,
    /// Its share of the whole process's CPU in the interval (0..=1).
    pub share: f64,
}

/// Per-thread CPU between two [`thread_samples`] of one process, busiest
/// first. A thread born in the interval counts from zero; one that died is
/// left out (its time is in neither sample's thread list).
pub fn thread_shares(
    before: &[ThreadSample],
    after: &[ThreadSample],
    wall: Duration,
    ticks_per_s: u64,
) -> Vec<ThreadShare> {
    let used: Vec<(u32, String, u64)> = after
        .iter()
        .map(|a| {
            let start = before
                .iter()
                .find(|b| b.tid == a.tid)
                .map_or(0, |b| b.cpu_ticks);
            (a.tid, a.name.clone(), a.cpu_ticks.saturating_sub(start))
        })
        .collect();
    let total = used.iter().map(|u| u.2).sum::<u64>().max(1) as f64;
    let seconds = wall.as_secs_f64().max(1e-9);
    let mut shares: Vec<ThreadShare> = used
        .into_iter()
        .map(|(tid, name, ticks)| ThreadShare {
            tid,
            name,
            cores: ticks as f64 / ticks_per_s as f64 / seconds,
            share: ticks as f64 / total,
        })
        .collect();
    shares.sort_by(|a, b| b.cores.total_cmp(&a.cores));
    shares
}

/// `taskset` (util-linux) on PATH, to pin a process to CPUs; `None` when
/// it is not installed.
pub fn find_taskset() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("taskset"))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_may_hold_spaces_and_parentheses() {
        let stat = "42 (sled (io) 1) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0";
        assert_eq!(stat_ticks(stat), Some(("sled (io) 1".to_string(), 280)));
    }

    #[test]
    fn shares_are_of_the_interval_busiest_first() {
        let t = |tid, ticks| ThreadSample {
            tid,
            name: format!("t{tid}"),
            cpu_ticks: ticks,
        };
        let before = [t(1, 100), t(2, 50)];
        let after = [t(1, 150), t(2, 200), t(3, 50)];
        let shares = thread_shares(&before, &after, Duration::from_secs(2), 100);
        let got: Vec<(u32, f64)> = shares.iter().map(|s| (s.tid, s.cores)).collect();
        assert_eq!(got, vec![(2, 0.75), (1, 0.25), (3, 0.25)]);
        assert!((shares[0].share - 0.6).abs() < 1e-9);
    }
}
