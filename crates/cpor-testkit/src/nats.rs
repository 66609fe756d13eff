//! Which nats-server executable the tests start.

use std::path::{Path, PathBuf};

/// Environment variable naming the nats-server executable the tests start
/// (`scripts/ensure-nats` exports the current one it found or installed).
pub const NATS_SERVER_BIN_ENV: &str = "CPOR_NATS_SERVER_BIN";

/// The nats-server executable: `CPOR_NATS_SERVER_BIN`, else the newest one
/// `scripts/ensure-nats` installed in the workspace's `.tools/`, else
/// nats-server on PATH, else /usr/sbin/nats-server.
///
/// # Panics
///
/// When there is none: the message says how to get one.
pub fn nats_server_bin() -> PathBuf {
    find_nats_server_bin().expect(
        "nats-server not found ($CPOR_NATS_SERVER_BIN, .tools/, PATH, /usr/sbin); \
         run the tests through scripts/test, which installs one",
    )
}

/// [`nats_server_bin`] without the panic: `None` when there is none (the
/// benchmark harness says so in its own words).
pub fn find_nats_server_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(NATS_SERVER_BIN_ENV).filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    project_tools_bin()
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join("nats-server"))
                    .find(|p| p.is_file())
            })
        })
        .or_else(|| {
            let p = PathBuf::from("/usr/sbin/nats-server");
            p.is_file().then_some(p)
        })
}

/// `.tools/nats-server-VERSION/bin/nats-server` in the workspace, the
/// highest VERSION first.
fn project_tools_bin() -> Option<PathBuf> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools");
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(tools)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name.strip_prefix("nats-server-")?;
            let key: Vec<u64> = version
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let bin = entry.path().join("bin/nats-server");
            bin.is_file().then_some((key, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}
