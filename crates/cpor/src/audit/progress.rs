//! What the audit tools show while they run (a progress bar with a rate,
//! on a terminal only) and how they stop on Ctrl-C (or SIGTERM) without
//! leaving anything half-written.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Events counted before the bar is updated (keeps the hot loop cheap).
const PROGRESS_STEP: u64 = 256;
/// How long after the first Ctrl-C a tool may take to stop on its own
/// before the signal thread removes its temporary files and exits.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);
/// The exit code of a tool stopped by a signal (128 + SIGINT).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// A progress bar on stderr when stderr is a terminal; nothing otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    pending: u64,
    count: u64,
    started: Instant,
}

impl Progress {
    /// `total`: how many events are expected, when known.
    pub(crate) fn new(what: &str, total: Option<u64>) -> Progress {
        Progress::with_visibility(what, total, std::io::stderr().is_terminal())
    }

    /// Like [`Progress::new`], shown only when `visible` (and stderr is a terminal).
    pub(crate) fn with_visibility(what: &str, total: Option<u64>, visible: bool) -> Progress {
        let bar = (visible && std::io::stderr().is_terminal()).then(|| {
            let bar = match total {
                Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(
                    ProgressStyle::with_template(
                        "{msg:>10} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events ({rate}, ETA {eta})",
                    )
                    .expect("valid template")
                    .with_key("rate", rate_key),
                ),
                None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
                    ProgressStyle::with_template("{spinner} {msg} [{elapsed_precise}] {human_pos} events ({rate})")
                        .expect("valid template")
                        .with_key("rate", rate_key),
                ),
            };
            bar.set_message(what.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            pending: 0,
            count: 0,
            started: Instant::now(),
        }
    }

    /// One more event done.
    pub(crate) fn inc(&mut self) {
        self.count += 1;
        if let Some(bar) = &self.bar {
            self.pending += 1;
            if self.pending >= PROGRESS_STEP {
                bar.inc(self.pending);
                self.pending = 0;
            }
        }
    }

    /// `done` events so far (for work that reports in steps).
    pub(crate) fn set(&mut self, done: u64) {
        self.count = done;
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Removes the bar; returns how long the work took.
    pub(crate) fn finish(self) -> Duration {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        self.started.elapsed()
    }
}

/// The bar's rate: `"45123 events/s"`.
fn rate_key(state: &indicatif::ProgressState, out: &mut dyn std::fmt::Write) {
    let _ = write!(out, "{:.0} events/s", state.per_sec());
}

/// `"1234 events in 0.52 s (2373 events/s)"`.
pub(crate) fn rate(events: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 || events == 0 {
        return format!("{events} events in {seconds:.2} s");
    }
    format!(
        "{events} events in {seconds:.2} s ({:.0} events/s)",
        events as f64 / seconds
    )
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
/// Temporary files and dirs to remove when a signal stops the tool.
static CLEANUP: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A tool stopped by Ctrl-C or SIGTERM; its temporary files are gone.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Catches SIGINT and SIGTERM from now on. The first one sets a flag the
/// tools check between events ([`check`]): they stop, drop their temporary
/// output and exit 130. If a tool is busy where it cannot check (a network
/// wait, the comparison phase of `rebuild`), the signal thread removes the
/// registered temporary paths after a short grace and exits 130 itself; a
/// second signal does so at once.
pub(crate) fn install() {
    INSTALL.call_once(|| {
        let spawned = std::thread::Builder::new().name("cpor-signals".into()).spawn(|| {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
                    return;
                };
                let mut first = true;
                loop {
                    tokio::select! {
                        result = tokio::signal::ctrl_c() => { if result.is_err() { return; } }
                        _ = term.recv() => {}
                    }
                    if first {
                        first = false;
                        INTERRUPTED.store(true, Ordering::SeqCst);
                        tokio::spawn(async {
                            tokio::time::sleep(INTERRUPT_GRACE).await;
                            clean_up_and_exit();
                        });
                    } else {
                        clean_up_and_exit();
                    }
                }
            });
        });
        if let Err(error) = spawned {
            eprintln!("cpor: warning: cannot watch for Ctrl-C ({error}); an interrupted run may leave temporary files");
        }
    });
}

fn clean_up_and_exit() -> ! {
    let paths = CLEANUP
        .lock()
        .map(|paths| paths.clone())
        .unwrap_or_default();
    for path in paths {
        // A store being written to may gain files while it is removed: retry.
        for _ in 0..3 {
            let result = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            if result.is_ok() || !path.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    eprintln!("cpor: interrupted; nothing was written");
    std::process::exit(i32::from(EXIT_INTERRUPTED));
}

/// `Err(Interrupted)` once a signal asked the tool to stop.
pub(crate) fn check() -> Result<(), Interrupted> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Interrupted)
    } else {
        Ok(())
    }
}

/// Removes `path` if a signal ends the process before [`forget`] is called.
pub(crate) fn remove_on_signal(path: &Path) {
    if let Ok(mut paths) = CLEANUP.lock() {
        paths.push(path.to_path_buf());
    }
}

pub(crate) fn forget(path: &Path) {
    if let Ok(mut paths) = CLEANUP.lock() {
        paths.retain(|p| p != path);
    }
}
