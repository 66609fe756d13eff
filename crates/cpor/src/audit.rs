//! The audit tools (contract §9): take the whole history out, prove it
//! untampered without trusting the service, and answer "what did we know on
//! date X", while the service keeps running.
//!
//! Every tool reads one source (`source`): a stopped service's data dir
//! (`--data-dir`), a running service's JetStream stream (`--nats-url`,
//! `--prefix`), or for `verify`, `history` and `replay` an export file
//! (`--input`, `-` for stdin). Every tool streams: memory does not grow with
//! the log, except the fold state `history` and `replay` must hold (and the
//! per-aggregate version table of `verify`).
//!
//! Exit codes: 0 ok; 1 a verification failure, a rebuild difference, or (for
//! `history`) a claim with no events; 2 usage or IO errors; 130 interrupted.
//!
//! Export format: one event per line, in log order, each line the event's
//! stored bytes (RFC 8785 canonical JSON of the CloudEvent, `hash` included)
//! followed by `\n`. Those are the bytes the service hashed and published, so
//! exports of one log from the data dir and from the stream are identical.

mod checkpoints;
mod progress;
pub(crate) mod source;
mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufWriter, IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Value};
use uuid::Uuid;

use cpor_domain::event::{AggregateKind, EventData};
use cpor_domain::state::State;
use cpor_domain::types::{Actor, CaseStatus, ClaimStatus, Timestamp};
use cpor_domain::view::{format_time, CaseView, ClaimView};
use cpor_log::envelope::{decode, DecodedEvent};

use progress::{Interrupted, Progress, EXIT_INTERRUPTED};
use source::{EventSource, Raw, SourceArgs, SourceSpec};

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Start at this log position (an export from N on verifies on its own,
    /// taking the hash of position N on trust).
    #[arg(long, value_name = "N")]
    from_position: Option<u64>,
    /// Start at the first event written at or after this time (RFC 3339);
    /// everything after it follows, so the export stays gapless.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Write to this file (atomically: a temp file beside it, renamed at the
    /// end) instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// Also write the log's signed checkpoints to FILE, one canonical JSON
    /// object a line (docs/audit.md), for `verify --public-key`. Read from
    /// the data dir (`--data-dir` only).
    #[arg(long, value_name = "FILE")]
    checkpoints: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Verify an export file (CloudEvents JSON lines); `-` reads stdin.
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Also fail on an event whose bytes are not the RFC 8785 canonical form
    /// the service writes (by default such reformatting is reported: the
    /// hashes cover the content, not the formatting).
    #[arg(long)]
    strict: bool,
    /// Check the chain against the service's signed checkpoints with this
    /// Ed25519 public key (a file of 64 hex characters, `cpor keys show`).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// The signed checkpoints (`cpor export --checkpoints`); with
    /// --data-dir they default to the ones stored there.
    #[arg(long, value_name = "FILE", requires = "public_key")]
    checkpoints: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct HistoryArgs {
    /// The claim (uuid).
    claim_id: Uuid,
    #[command(flatten)]
    source: SourceArgs,
    /// Read an export file instead (`-` for stdin); it must start at position 1.
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,
    /// Show the claim as it stood at this time (RFC 3339, or `now`): events
    /// written after it are left out. Default: the whole log.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    as_of: Option<Timestamp>,
    /// One JSON object: `{claim_id, as_of, events: [CloudEvent…], case_events: […], claim: ClaimView|null}`.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Read an export file instead (`-` for stdin); it must start at position 1.
    #[arg(long, short = 'i', value_name = "FILE")]
    input: Option<PathBuf>,
    /// The time to replay to (RFC 3339, or `now`): every event written at
    /// or before it.
    #[arg(long, value_name = "TIME", value_parser = parse_time, default_value = NOW)]
    as_of: Timestamp,
    /// One JSON object instead of the report.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct RebuildArgs {
    /// The data dir of a stopped service.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// After reporting differences, rewrite every projection from the log
    /// (the recovery path for damaged projections; the events are not touched).
    #[arg(long)]
    repair: bool,
}

#[derive(Args)]
pub(crate) struct MigrateArgs {
    /// The data dir of a stopped service; upgraded in place.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
}

/// The word for the current time wherever a tool takes a time.
const NOW: &str = "now";

/// Times are RFC 3339 with an offset, like the events' own, or `now` (the
/// wall clock when the tool starts).
fn parse_time(text: &str) -> Result<Timestamp, String> {
    if text.trim().eq_ignore_ascii_case(NOW) {
        return Ok(chrono::Utc::now());
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{text:?} is not an RFC 3339 time such as 2026-11-25T14:03:00Z ({e})"))
}

/// Runs a tool with Ctrl-C handling: an interrupted tool exits 130.
fn run(tool: impl FnOnce() -> anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    progress::install();
    match tool() {
        Err(error) if error.downcast_ref::<Interrupted>().is_some() => {
            eprintln!("cpor: interrupted; nothing was written");
            Ok(ExitCode::from(EXIT_INTERRUPTED))
        }
        other => other,
    }
}

// ---------------------------------------------------------------- export

/// Where export writes: stdout, or a temp file renamed onto `--output` at
/// the end (so an interrupted export leaves no partial file).
enum Output {
    Stdout(BufWriter<std::io::StdoutLock<'static>>),
    File {
        writer: BufWriter<tempfile::NamedTempFile>,
        target: PathBuf,
    },
}

impl Output {
    fn create(target: Option<&Path>) -> anyhow::Result<Output> {
        let Some(target) = target else {
            return Ok(Output::Stdout(BufWriter::with_capacity(
                1 << 16,
                std::io::stdout().lock(),
            )));
        };
        let dir = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .tempfile_in(&dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        progress::remove_on_signal(temp.path());
        Ok(Output::File {
            writer: BufWriter::with_capacity(1 << 16, temp),
            target: target.to_path_buf(),
        })
    }

    fn write_event(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let writer: &mut dyn Write = match self {
            Output::Stdout(w) => w,
            Output::File { writer, .. } => writer,
        };
        writer.write_all(bytes)?;
        writer.write_all(b"\n")
    }

    /// Flushes; for a file: syncs it and renames it onto the target.
    fn finish(self) -> anyhow::Result<()> {
        match self {
            Output::Stdout(mut w) => Ok(w.flush()?),
            Output::File { writer, target } => {
                let temp = writer.into_inner().map_err(|e| e.into_error())?;
                temp.as_file().sync_all()?;
                let temp_path = temp.path().to_path_buf();
                temp.persist(&target)
                    .map_err(|e| e.error)
                    .with_context(|| format!("cannot write {}", target.display()))?;
                progress::forget(&temp_path);
                Ok(())
            }
        }
    }
}

pub(crate) fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    run(|| {
        let spec = args.source.resolve(None, false)?;
        let from = args.from_position.unwrap_or(1).max(1);
        let mut source = EventSource::open(&spec, from)?;
        let mut output = Output::create(args.output.as_deref())?;
        // No bar over events going to the same terminal.
        let bar = args.output.is_some() || !std::io::stdout().is_terminal();
        let mut progress = Progress::with_visibility("export", source.expected(), bar);
        let mut started = args.since.is_none();
        let (mut count, mut first, mut last) = (0u64, None, None);
        source.for_each(|raw| {
            progress.inc();
            let position = raw.position.or_else(|| source::event_position(raw.bytes));
            if position.is_some_and(|p| p < from) {
                return Ok(ControlFlow::Continue(()));
            }
            if !started {
                let since = args.since.expect("set when not started");
                let time = source::event_time(raw.bytes).with_context(|| {
                    format!(
                        "the event at position {} has no readable time: cannot apply --since",
                        position.map_or("?".into(), |p| p.to_string())
                    )
                })?;
                if time < since {
                    return Ok(ControlFlow::Continue(()));
                }
                started = true;
            }
            output.write_event(raw.bytes)?;
            count += 1;
            first = first.or(position);
            last = position;
            Ok(ControlFlow::Continue(()))
        })?;
        let elapsed = progress.finish();
        output.finish()?;
        if let Some(file) = &args.checkpoints {
            export_checkpoints(&source, file)?;
        }
        let range = match (first, last) {
            (Some(a), Some(b)) => format!(", positions {a}..{b}"),
            _ => String::new(),
        };
        let to = args
            .output
            .as_ref()
            .map_or("stdout".to_string(), |p| p.display().to_string());
        eprintln!(
            "exported {} from {}{range} to {to}",
            progress::rate(count, elapsed),
            source.describe()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `export --checkpoints FILE`: the data dir's signed checkpoints, one per
/// line, to `file`.
fn export_checkpoints(source: &EventSource, file: &Path) -> anyhow::Result<()> {
    let Some(reader) = source.log_reader() else {
        anyhow::bail!("--checkpoints reads them from a data dir: use --data-dir");
    };
    let mut out = Output::create(Some(file))?;
    let mut written = 0u64;
    for checkpoint in reader.checkpoints() {
        let checkpoint = checkpoint.context("cannot read a stored checkpoint")?;
        out.write_event(&checkpoint.to_bytes())?;
        written += 1;
    }
    out.finish()?;
    eprintln!(
        "exported {written} signed checkpoint(s) to {}",
        file.display()
    );
    Ok(())
}

// ---------------------------------------------------------------- verify

pub(crate) fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    run(|| {
        let spec = args.source.resolve(args.input.as_deref(), true)?;
        let mut source = EventSource::open(&spec, 1)?;
        let outcome = verify_with(&args, &spec, &mut source);
        source.close_at_exit();
        outcome
    })
}

/// `cpor verify` on the opened source.
fn verify_with(
    args: &VerifyArgs,
    spec: &SourceSpec,
    source: &mut EventSource,
) -> anyhow::Result<ExitCode> {
    let described = source.describe();
    // A data dir's start-up checks (which fold the whole log) run on a
    // thread of their own beside the chain pass: two passes over the
    // private copy, one per core.
    let startup_reader = source.log_reader().cloned();
    let (startup, pass) = std::thread::scope(|scope| {
        let startup = startup_reader.map(|reader| {
            std::thread::Builder::new()
                .name("cpor-startup-check".into())
                .spawn_scoped(scope, move || cpor_log::startup::run_from_log(&reader))
        });
        let pass = chain_pass(args, spec, source);
        let startup = startup
            .transpose()
            .map(|handle| handle.map(|h| h.join().expect("the start-up checks do not panic")));
        (startup, pass)
    });
    let Some(startup) = startup_outcome(startup?, &described, args.json) else {
        return Ok(ExitCode::from(1));
    };
    // Start-up changed the copy (cut a tail, rewrote projections) while
    // the pass read it: verify what it left, as a start would serve it.
    let changed = startup.as_ref().is_some_and(|actions| !actions.is_empty());
    let pass = if changed {
        chain_pass(args, spec, source)?
    } else {
        pass?
    };
    let trust = match pass.trust {
        Err(what) => {
            eprintln!("FAILED: {what}");
            return Ok(ExitCode::from(1));
        }
        Ok(trust) => trust,
    };
    if let Some(failure) = pass.failure {
        report_verify_failure(args.json, &described, &failure, pass.verifier.events());
        return Ok(ExitCode::from(1));
    }
    let verified = Verified {
        summary: pass.verifier.summary(),
        foreign: source.foreign_messages(),
        trust: trust.as_ref(),
        startup,
        elapsed: pass.elapsed,
    };
    if args.json {
        outln!("{}", verified.to_json())?;
    } else {
        out!("{}", verified.render(&described))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What one pass of `verify` over the events found.
struct ChainPass {
    verifier: verify::Verifier,
    /// The signed checkpoints (with `--public-key`), or why they could not
    /// be loaded.
    trust: Result<Option<checkpoints::Trust>, String>,
    /// The first failure, if any.
    failure: Option<verify::Failure>,
    elapsed: Duration,
}

/// Every event of `source` through the chain checks and, with
/// `--public-key`, the signed checkpoints.
fn chain_pass(
    args: &VerifyArgs,
    spec: &SourceSpec,
    source: &mut EventSource,
) -> anyhow::Result<ChainPass> {
    let mut progress = Progress::new("verify", source.expected());
    let mut verifier = if args.strict {
        verify::Verifier::strict()
    } else {
        verify::Verifier::new()
    };
    let mut trust = match &args.public_key {
        Some(key_file) => {
            checkpoints::Trust::load(key_file, args.checkpoints.as_deref(), source)?.map(Some)
        }
        None => Ok(None),
    };
    let mut failure = None;
    let by_data_dir = matches!(spec, SourceSpec::DataDir(_));
    if let Ok(trust) = &mut trust {
        source.for_each_checked(|raw: Raw<'_>| {
            progress.inc();
            if let Some(conflict) = raw.conflict {
                failure = Some(verify::Failure {
                    position: raw.position,
                    line: None,
                    what: conflict.to_string(),
                });
                return Ok(ControlFlow::Break(()));
            }
            match check_event(&mut verifier, trust.as_mut(), &raw, by_data_dir) {
                Ok(()) => Ok(ControlFlow::Continue(())),
                Err(f) => {
                    failure = Some(f);
                    Ok(ControlFlow::Break(()))
                }
            }
        })?;
    }
    let elapsed = progress.finish();
    Ok(ChainPass {
        verifier,
        trust,
        failure,
        elapsed,
    })
}

/// One event through the chain checks, then the signed checkpoints (with
/// `--public-key`). A stream message's position is read from the event
/// itself: only the data dir (`by_data_dir`) files events under a position
/// of its own.
fn check_event(
    verifier: &mut verify::Verifier,
    trust: Option<&mut checkpoints::Trust>,
    raw: &Raw<'_>,
    by_data_dir: bool,
) -> Result<(), verify::Failure> {
    let stored = if by_data_dir { raw.position } else { None };
    verifier.check(raw.bytes, stored, raw.line)?;
    match trust {
        Some(trust) => trust.check(raw.bytes, raw.line),
        None => Ok(()),
    }
}

/// `verify`'s report of the first failure: JSON on stdout with `--json`,
/// and always the finding on stderr (escaped: it may quote the damaged line).
fn report_verify_failure(json: bool, described: &str, failure: &verify::Failure, before: u64) {
    if json {
        // A closed stdout changes nothing: the finding goes to stderr and
        // the exit code says it failed.
        let _ = outln!(
            "{}",
            json!({"ok": false, "position": failure.position, "line": failure.line,
                   "error": failure.what, "events_verified": before})
        );
    }
    eprintln!(
        "FAILED: {described}: {}",
        terminal_safe(&failure.to_string())
    );
    eprintln!("(the {before} event(s) before it verified; nothing after it was checked)");
}

/// What a successful `verify` found, for its report.
struct Verified<'a> {
    /// The chain's summary (events, positions, streams).
    summary: verify::Summary,
    /// Messages in a stream that are not events (`None` for other sources).
    foreign: Option<u64>,
    /// The signed checkpoints matched, with `--public-key`.
    trust: Option<&'a checkpoints::Trust>,
    /// What the start-up checks would change (data dir sources only).
    startup: Option<Vec<String>>,
    /// How long the pass took, for the rate.
    elapsed: Duration,
}

impl Verified<'_> {
    fn to_json(&self) -> Value {
        let mut out = self.summary.to_json();
        if let Some(foreign) = self.foreign {
            out["foreign_messages"] = json!(foreign);
        }
        if let Some(trust) = self.trust {
            out["checkpoints"] = trust.to_json(self.summary.last_position);
        }
        if let Some(actions) = &self.startup {
            out["startup"] = json!({"would_start": true, "would_change": actions});
        }
        out
    }

    fn render(&self, described: &str) -> String {
        let mut out = self.summary.render(described);
        if let Some(trust) = self.trust {
            out.push_str(&format!("  {}\n", trust.render(self.summary.last_position)));
        }
        if let Some(actions) = &self.startup {
            out.push_str(&format!("  start-up:   {}\n", render_startup(actions)));
        }
        match self.foreign {
            Some(0) => out.push_str("  foreign:    none (every message in the stream is an event)\n"),
            Some(foreign) => out.push_str(&format!(
                "  foreign:    {foreign} message(s) in the stream are not events (skipped; the sequences are noted above)\n"
            )),
            None => {}
        }
        out.push_str(&format!(
            "  verified:   {}\n",
            progress::rate(self.summary.events, self.elapsed)
        ));
        out
    }
}

/// The outcome of the service's start-up checks (`cpor_log::startup`, the
/// very checks `cpor serve` runs, but folding the whole log: no state
/// snapshot is trusted here), run on a data dir source's private copy, so
/// the data dir itself is untouched: `Some(None)` for
/// other sources (`startup` is `None`), `Some(Some(what start-up would
/// change))`, or `None` after printing why start-up would refuse
/// (verification fails).
fn startup_outcome(
    startup: Option<Result<cpor_log::startup::Startup, cpor_log::LogError>>,
    described: &str,
    json: bool,
) -> Option<Option<Vec<String>>> {
    match startup {
        None => Some(None),
        Some(Ok(startup)) => Some(Some(startup.actions)),
        Some(Err(refusal)) => {
            if json {
                // As in `report_verify_failure`: stderr and the exit code
                // carry the finding.
                let _ = outln!(
                    "{}",
                    json!({"ok": false, "startup": {"would_start": false, "refusal": refusal.to_string()}})
                );
            }
            eprintln!("FAILED: {described}: `cpor serve` would refuse to start: {refusal}");
            None
        }
    }
}

/// What start-up would change, for people.
fn render_startup(actions: &[String]) -> String {
    if actions.is_empty() {
        return "OK (a start would change nothing)".into();
    }
    let would: Vec<String> = actions
        .iter()
        .map(|a| format!("a start would do this: {a}"))
        .collect();
    would.join("; ")
}

// ---------------------------------------------------------------- folding

/// The log folded up to a time.
struct Folded {
    state: State,
    events: u64,
    last_position: u64,
    last_time: Option<Timestamp>,
}

/// Folds a whole log from position 1, in order, stopping at the first event
/// written after `as_of`. `visit` sees every folded event with its bytes,
/// after it is folded.
fn fold(
    source: &mut EventSource,
    as_of: Option<Timestamp>,
    mut visit: impl FnMut(&State, &DecodedEvent, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Folded> {
    let mut progress = Progress::new("replay", source.expected());
    let mut folded = Folded {
        state: State::new(),
        events: 0,
        last_position: 0,
        last_time: None,
    };
    let name = source.describe();
    source.for_each(|raw| {
        progress.inc();
        let place = |position: u64| match raw.line {
            Some(line) => format!("position {position} (line {line})"),
            None => format!("position {position}"),
        };
        let expected = folded.last_position + 1;
        let decoded = decode(raw.bytes).map_err(|e| {
            anyhow::anyhow!("{name}: the event at {} does not decode: {e}; `cpor verify` tells more", place(expected))
        })?;
        if decoded.position != expected {
            if expected == 1 {
                bail!(
                    "{name} starts at position {}, not 1: replaying needs the whole log (export without --from-position/--since)",
                    decoded.position
                );
            }
            bail!(
                "{name}: expected position {expected}, found {}: the log has a gap or is out of order; `cpor verify` tells more",
                decoded.position
            );
        }
        if as_of.is_some_and(|t| decoded.time > t) {
            return Ok(ControlFlow::Break(()));
        }
        folded
            .state
            .evolve(&decoded.event, decoded.time)
            .map_err(|e| anyhow::anyhow!("{name}: the event at {} does not apply: {e}", place(expected)))?;
        folded.events += 1;
        folded.last_position = decoded.position;
        folded.last_time = Some(decoded.time);
        visit(&folded.state, &decoded, raw.bytes)?;
        Ok(ControlFlow::Continue(()))
    })?;
    progress.finish();
    Ok(folded)
}

fn short(id: &Uuid) -> String {
    id.simple().to_string()[..8].to_string()
}

fn actor_text(actor: &Actor) -> String {
    match actor {
        Actor::Partner {
            partner_id, user, ..
        } => match user {
            Some(user) => format!("partner {partner_id} ({user})"),
            None => format!("partner {partner_id}"),
        },
        Actor::Reviewer { id } => format!("reviewer {id}"),
        Actor::Customer { tenant_id, user } => match user {
            Some(user) => format!("customer {} ({user})", short(tenant_id)),
            None => format!("customer {}", short(tenant_id)),
        },
        Actor::System { id } => format!("system {id}"),
    }
}

/// The key data of an event, one line: its fields but the actor and the
/// claim id, long texts cut.
fn details(data: &Value, skip: &[&str]) -> String {
    let Some(map) = data.as_object() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (key, value) in map {
        if key == "actor" || skip.contains(&key.as_str()) {
            continue;
        }
        let text = match value {
            Value::Null => continue,
            Value::String(s) => cut(s, 48),
            Value::Array(items) if items.is_empty() => continue,
            Value::Array(items) if items.iter().all(Value::is_string) => {
                let names: Vec<String> = items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| {
                        s.parse::<Uuid>()
                            .map(|u| short(&u))
                            .unwrap_or_else(|_| cut(s, 24))
                    })
                    .collect();
                format!("[{}]", names.join(","))
            }
            Value::Array(items) => format!("{} item(s)", items.len()),
            other => cut(&other.to_string(), 48),
        };
        let text = if key.ends_with("_id") {
            text.parse::<Uuid>().map(|u| short(&u)).unwrap_or(text)
        } else {
            text
        };
        parts.push(format!("{key}={text}"));
    }
    parts.join(" ")
}

/// Text from the log made safe for a terminal (issue 11 case 14): every
/// control character (C0, DEL, C1: newlines, ANSI escape sequences, CSI) and
/// every bidirectional-formatting character (which can reorder what a
/// reader sees) is written as a visible escape, `\n`, `\r`, `\t` or
/// `\u{1b}`, and a backslash as `\\` so that an escape cannot be forged.
/// A crafted actor id or text can neither start a line of its own nor
/// colour, move or hide output. Every string from the log that the human
/// output of `history` and `replay` prints passes through here.
pub(crate) fn terminal_safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Unicode's bidirectional formatting characters (UAX #9, table 4, and the
/// Arabic letter mark): invisible, they reorder the text around them.
fn is_bidi_format(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace(['\n', '\r'], " ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let head: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

// ---------------------------------------------------------------- history

pub(crate) fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    run(|| {
        let spec = args.source.resolve(args.input.as_deref(), true)?;
        let mut source = EventSource::open(&spec, 1)?;
        let claim_id = args.claim_id;
        let subject = claim_id.to_string();
        let mut cases: BTreeSet<Uuid> = BTreeSet::new();
        // (is the claim's own event, the CloudEvent)
        let mut events: Vec<(bool, Value)> = Vec::new();
        let folded = fold(&mut source, args.as_of, |_, decoded, bytes| {
            let own = decoded.kind == AggregateKind::Claim && decoded.aggregate_id == subject;
            let case_event = decoded.kind == AggregateKind::Arbitration && {
                match &decoded.event.data {
                    EventData::ArbitrationOpened(e) if e.claim_ids.contains(&claim_id) => {
                        cases.insert(e.case_id);
                    }
                    EventData::ArbitrationClaimJoined(e) if e.claim_id == claim_id => {
                        cases.insert(e.case_id);
                    }
                    _ => {}
                }
                decoded
                    .aggregate_id
                    .parse::<Uuid>()
                    .is_ok_and(|id| cases.contains(&id))
            };
            if own || case_event {
                events.push((own, serde_json::from_slice(bytes)?));
            }
            Ok(())
        })?;
        let view = folded.state.claims.get(&claim_id).map(ClaimView::of);
        let as_of_text = args.as_of.as_ref().map(format_time);
        if args.json {
            let (own, related): (Vec<_>, Vec<_>) = events.into_iter().partition(|(own, _)| *own);
            let out = json!({
                "claim_id": claim_id,
                "as_of": as_of_text,
                "events": own.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
                "case_events": related.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
                "claim": view,
                "log_position": folded.last_position,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?)?;
        } else {
            out!(
                "{}",
                render_history(
                    &claim_id,
                    as_of_text.as_deref(),
                    &events,
                    view.as_ref(),
                    &folded
                )
            )?;
        }
        if view.is_none() {
            eprintln!(
                "cpor: claim {claim_id} has no events in {}{}",
                source.describe(),
                as_of_text
                    .map(|t| format!(" as of {t}"))
                    .unwrap_or_default()
            );
            return Ok(ExitCode::from(1));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn render_history(
    claim_id: &Uuid,
    as_of: Option<&str>,
    events: &[(bool, Value)],
    view: Option<&ClaimView>,
    folded: &Folded,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "claim {claim_id} as of {} (log read to position {})",
        as_of.unwrap_or("now"),
        folded.last_position
    );
    let _ = writeln!(out);
    write_history_table(&mut out, &history_rows(events));
    let _ = writeln!(out);
    write_view(&mut out, view);
    out
}

/// One row per event: position, time, type and stream version, actor,
/// details (the claim's own events need not repeat its id), each escaped
/// for the terminal.
fn history_rows(events: &[(bool, Value)]) -> Vec<[String; 5]> {
    events
        .iter()
        .map(|(own, e)| {
            let type_name = e["type"].as_str().unwrap_or("?");
            let type_name = type_name.strip_prefix("cpor.").unwrap_or(type_name);
            let actor = serde_json::from_value::<Actor>(e["data"]["actor"].clone())
                .map(|a| actor_text(&a))
                .unwrap_or_else(|_| "?".into());
            // The claim's own events need not repeat its id; case events show theirs.
            let detail = details(&e["data"], if *own { &["claim_id"] } else { &[] });
            [
                e["position"].to_string(),
                e["time"].as_str().unwrap_or("?").to_string(),
                format!("{type_name} v{}", e["streamversion"]),
                actor,
                detail,
            ]
            .map(|cell| terminal_safe(&cell))
        })
        .collect()
}

/// The history's rows as a table with aligned columns, or `no events`.
fn write_history_table(out: &mut String, rows: &[[String; 5]]) {
    let headers = ["POSITION", "TIME", "TYPE", "ACTOR", "DETAILS"];
    let mut widths = headers.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
        .trim_end()
        .to_string()
    };
    if rows.is_empty() {
        let _ = writeln!(out, "no events");
    } else {
        let _ = writeln!(out, "{}", line(headers));
        for row in rows {
            let _ = writeln!(
                out,
                "{}",
                line([&row[0], &row[1], &row[2], &row[3], &row[4]])
            );
        }
    }
}

/// The claim's view, one field a line, or that there is none yet.
fn write_view(out: &mut String, view: Option<&ClaimView>) {
    match view.map(serde_json::to_value) {
        Some(Ok(Value::Object(view))) => {
            let _ = writeln!(out, "view:");
            let width = view.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in &view {
                let text = match value {
                    Value::String(s) => terminal_safe(s),
                    other => terminal_safe(&other.to_string()),
                };
                let key = terminal_safe(key);
                let _ = writeln!(out, "  {key:<width$}  {text}");
            }
        }
        _ => {
            let _ = writeln!(out, "view: none (the claim did not exist yet)");
        }
    }
}

// ---------------------------------------------------------------- replay

/// Every status, in declaration order (the order of the contract's diagram).
const STATUSES: &[ClaimStatus] = <ClaimStatus as strum::VariantArray>::VARIANTS;

pub(crate) fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    run(|| {
        let spec = args.source.resolve(args.input.as_deref(), true)?;
        let mut source = EventSource::open(&spec, 1)?;
        let folded = fold(&mut source, Some(args.as_of), |_, _, _| Ok(()))?;
        let report = replay_report(&folded, args.as_of, &source.describe());
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            out!("{}", render_replay(&report))?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The replay as JSON; the text report is rendered from it.
fn replay_report(folded: &Folded, as_of: Timestamp, source: &str) -> Value {
    let state = &folded.state;
    let mut by_status: BTreeMap<&str, u64> = STATUSES.iter().map(|s| (s.as_str(), 0)).collect();
    for claim in state.claims.values() {
        *by_status.entry(claim.status.as_str()).or_default() += 1;
    }
    let by_status: serde_json::Map<String, Value> = STATUSES
        .iter()
        .map(|s| (s.as_str().to_string(), by_status[s.as_str()].into()))
        .collect();
    let open_cases = open_cases(state);
    let mut overdue: Vec<_> = state.claims.values().filter(|c| c.overdue).collect();
    overdue.sort_by_key(|c| c.seq);
    let overdue: Vec<Value> = overdue
        .into_iter()
        .map(|c| serde_json::to_value(ClaimView::of(c)).expect("views serialize"))
        .collect();
    json!({
        "as_of": format_time(&as_of),
        "source": source,
        "events": folded.events,
        "last_position": folded.last_position,
        "last_event_at": folded.last_time.as_ref().map(format_time),
        "claims": {"total": state.claims.len(), "by_status": by_status},
        "cases": {
            "total": state.cases.len(),
            "open": open_cases.len(),
            "closed": state.cases.len() - open_cases.len(),
        },
        "open_cases": open_cases,
        "overdue_claims": overdue,
        "deadlines_passed_unrecorded": unrecorded_deadlines(state, as_of),
        "reference": {
            "tenants": state.tenants.len(),
            "subscriptions": state.subscriptions.len(),
            "partners": state.partners.len(),
        },
    })
}

/// The open arbitration cases in the order they opened, each with its
/// claims (partner, status, incumbent, still contending).
fn open_cases(state: &State) -> Vec<Value> {
    let mut open_cases: Vec<_> = state
        .cases
        .values()
        .filter(|c| c.status == CaseStatus::Open)
        .collect();
    open_cases.sort_by_key(|c| c.seq);
    open_cases
        .into_iter()
        .map(|case| {
            let mut view = serde_json::to_value(CaseView::of(case)).expect("views serialize");
            let claims: Vec<Value> = case
                .claim_ids
                .iter()
                .map(|id| match state.claims.get(id) {
                    Some(c) => json!({
                        "claim_id": id, "partner_id": c.partner_id, "status": c.status.as_str(),
                        "incumbent": case.incumbent_claim_id == Some(*id), "contender": c.is_contender(),
                    }),
                    None => json!({"claim_id": id, "status": null}),
                })
                .collect();
            view["claims"] = Value::Array(claims);
            view
        })
        .collect()
}

/// Deadlines due by `as_of` that the log had not recorded as missed yet
/// (the service writes the miss when it notices: at once on a wall clock,
/// when the manual clock is moved, after a restart).
fn unrecorded_deadlines(state: &State, as_of: Timestamp) -> Vec<Value> {
    state
        .deadlines
        .iter()
        .take_while(|(due, _, _)| *due <= as_of)
        .map(|(due, claim_id, kind)| {
            json!({
                "claim_id": claim_id,
                "deadline": kind.as_str(),
                "due_at": format_time(due),
                "status": state.claims.get(claim_id).map(|c| c.status.as_str()),
            })
        })
        .collect()
}

/// A report value as text for the terminal: a string as it is, anything
/// else as JSON, escaped either way.
fn report_text(v: &Value) -> String {
    terminal_safe(
        &v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
    )
}

/// A report value that should be an id: printed as the parsed UUID (so it
/// cannot carry terminal controls), else as [`report_text`].
fn report_id(v: &Value) -> String {
    v.as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .map_or_else(|| report_text(v), |u| u.to_string())
}

/// The replay's text report, rendered from its JSON.
fn render_replay(report: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "state as of {} (from {})",
        report_text(&report["as_of"]),
        report_text(&report["source"])
    );
    let _ = writeln!(
        out,
        "  {} events folded, positions 1..{}; last event at {}",
        report["events"],
        report["last_position"],
        terminal_safe(report["last_event_at"].as_str().unwrap_or("-"))
    );
    let _ = writeln!(
        out,
        "  reference data: tenants {}, subscriptions {}, partners {}",
        report["reference"]["tenants"],
        report["reference"]["subscriptions"],
        report["reference"]["partners"]
    );
    let _ = writeln!(out);
    let _ = writeln!(out, "claims: {}", report["claims"]["total"]);
    for status in STATUSES.iter().map(|s| s.as_str()) {
        let _ = writeln!(
            out,
            "  {status:<24} {:>6}",
            report["claims"]["by_status"][status]
        );
    }
    let _ = writeln!(out);
    write_open_cases(&mut out, report);
    let _ = writeln!(out);
    write_overdue(&mut out, report);
    out
}

/// The replay's arbitration counts and each open case with its claims.
fn write_open_cases(out: &mut String, report: &Value) {
    let _ = writeln!(
        out,
        "arbitration cases: {} ({} open, {} closed)",
        report["cases"]["total"], report["cases"]["open"], report["cases"]["closed"]
    );
    for case in report["open_cases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  case {}  {} {} tenant {}  opened {}",
            report_id(&case["case_id"]),
            report_text(&case["product"]),
            report_text(&case["activity"]),
            report_id(&case["tenant_id"]),
            report_text(&case["opened_at"])
        );
        for claim in case["claims"].as_array().into_iter().flatten() {
            let mut notes = Vec::new();
            if claim["incumbent"] == true {
                notes.push("incumbent");
            }
            if claim["contender"] == false {
                notes.push("no longer contending");
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  ({})", notes.join(", "))
            };
            let _ = writeln!(
                out,
                "    claim {}  {:<10} {}{notes}",
                report_id(&claim["claim_id"]),
                report_text(&claim["partner_id"]),
                report_text(&claim["status"])
            );
        }
    }
}

/// The replay's overdue claims, and the deadlines passed but not yet
/// recorded as missed.
fn write_overdue(out: &mut String, report: &Value) {
    let overdue = report["overdue_claims"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "overdue claims (review deadline missed, recorded in the log): {}",
        overdue.len()
    );
    for claim in &overdue {
        let _ = writeln!(
            out,
            "  claim {}  {:<10} {:<24} review due {}",
            report_id(&claim["claim_id"]),
            report_text(&claim["partner_id"]),
            report_text(&claim["status"]),
            report_text(&claim["review_due_at"])
        );
    }
    let unrecorded = report["deadlines_passed_unrecorded"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !unrecorded.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "deadlines passed by then but not yet recorded as missed in the log: {}",
            unrecorded.len()
        );
        for entry in &unrecorded {
            let _ = writeln!(
                out,
                "  claim {}  {} deadline due {} ({})",
                report_id(&entry["claim_id"]),
                report_text(&entry["deadline"]),
                report_text(&entry["due_at"]),
                report_text(&entry["status"])
            );
        }
    }
}

// ---------------------------------------------------------------- rebuild

/// `cpor migrate`: upgrades the data dir in place (events, hash chain and
/// exports unchanged; see `cpor_log::migrate`).
pub(crate) fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    if !args.data_dir.join("db").is_file() {
        anyhow::bail!("{} is not a data dir (no db file)", args.data_dir.display());
    }
    let report = cpor_log::migrate(&args.data_dir)
        .with_context(|| format!("cannot upgrade {}", args.data_dir.display()))?;
    match report {
        None => outln!(
            "{} already has store layout {}: nothing to do",
            args.data_dir.display(),
            cpor_log::LAYOUT_VERSION
        )?,
        Some(r) => outln!(
            "upgraded {} from store layout {} to {}: {}",
            args.data_dir.display(),
            r.from_layout,
            cpor_log::LAYOUT_VERSION,
            migrate_steps(&r).join("; ")
        )?,
    }
    Ok(ExitCode::SUCCESS)
}

/// What each step of an upgrade did, one phrase each.
fn migrate_steps(r: &cpor_log::MigrateReport) -> Vec<String> {
    let mut steps = Vec::new();
    if r.from_layout == 1 {
        steps.push(format!(
            "{} events, {} command records, {} other entries copied",
            r.events, r.command_records, r.other_entries
        ));
    }
    if r.events_into_segments > 0 || r.from_layout < cpor_log::LAYOUT_VERSION {
        steps.push(format!(
            "{} events moved into segments (their bytes unchanged)",
            r.events_into_segments
        ));
    }
    if r.views_rewritten_from_events > 0 {
        steps.push(format!(
            "the views written anew from {} events",
            r.views_rewritten_from_events
        ));
    }
    steps
}

pub(crate) fn rebuild(args: RebuildArgs) -> anyhow::Result<ExitCode> {
    run(|| {
        // Only --repair writes, and then into the data dir itself.
        let reader = source::open_data_dir_as(&args.data_dir, args.repair)?;
        let outcome = rebuild_with(&args, &reader);
        // A private copy is thrown away without closing sled's store (a
        // walk over all its pages); the data dir itself is closed, flushed.
        reader.close_copy_at_exit();
        outcome
    })
}

/// `cpor rebuild` on the opened data dir (or its private copy).
fn rebuild_with(args: &RebuildArgs, reader: &cpor_log::LogReader) -> anyhow::Result<ExitCode> {
    let last = reader.last_position()?;
    let mut progress = Progress::new("rebuild", Some(last));
    let result = cpor_log::rebuild_projections(reader, |done| {
        progress.set(done);
    });
    let elapsed = progress.finish();
    progress::check()?;
    let report = result.with_context(|| {
        format!(
            "cannot rebuild the projections of {} from its log; `cpor verify --data-dir` tells whether the log is intact",
            args.data_dir.display()
        )
    })?;
    outln!(
        "rebuilt the projections of {} from its log: {} (claims {}, cases {})",
        args.data_dir.display(),
        progress::rate(report.events, elapsed),
        report.claims,
        report.cases
    )?;
    if report.difference_count == 0 {
        outln!("no differences: every stored projection (claim and case views, comments, listings, deadlines, stream index) matches the log")?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} difference(s) between the stored projections and the log{}:",
        report.difference_count,
        if report.difference_count > report.differences.len() as u64 {
            format!(" (the first {} listed)", report.differences.len())
        } else {
            String::new()
        }
    )?;
    for difference in &report.differences {
        outln!("  {}", terminal_safe(&difference.to_string()))?;
    }
    if !args.repair {
        outln!("run again with --repair to rewrite the projections from the log")?;
        return Ok(ExitCode::from(1));
    }
    let mut progress = Progress::new("repair", Some(last));
    let repaired = cpor_log::repair_projections(reader, |done| progress.set(done));
    progress.finish();
    progress::check()?;
    let repaired =
        repaired.context("cannot rewrite the projections; run `cpor rebuild --repair` again")?;
    let check = cpor_log::rebuild_projections(reader, |_| {})?;
    if check.difference_count != 0 {
        anyhow::bail!(
            "the projections still differ from the log after the repair: {:?}",
            check.differences
        );
    }
    outln!(
        "repaired: every projection rewritten from {} events; a second comparison finds no differences",
        repaired.events
    )?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reviewer id crafted to print a fake "approved" row and colour it.
    const FORGED: &str =
        "rev-7\n      9  2026-11-26T09:00:00Z  claim.approved v3  reviewer boss\u{1b}[32m OK\u{1b}[0m\r\u{9b}2J\u{202e}";

    fn assert_terminal_safe(out: &str) {
        for (i, line) in out.lines().enumerate() {
            assert!(
                !line.chars().any(|c| c.is_control() || is_bidi_format(c)),
                "line {i} holds a control character: {line:?}"
            );
        }
        assert!(
            !out.lines()
                .any(|l| l.trim_start().starts_with("9  2026-11-26")),
            "a forged row got a line of its own:\n{out}"
        );
    }

    /// Issue 11 case 14: control characters in actor ids and texts are
    /// escaped in `cpor history`'s human output: table cells and the view.
    #[test]
    fn history_escapes_what_the_log_holds() {
        let event = json!({
            "position": 7, "time": "2026-11-25T09:00:00Z", "type": "cpor.claim.comment_added",
            "streamversion": 2,
            "data": {"actor": {"type": "reviewer", "id": FORGED}, "text": FORGED, "reason": FORGED},
        });
        let partner = json!({
            "position": 8, "time": "2026-11-25T10:00:00Z", "type": "cpor.claim.withdrawn",
            "streamversion": 3,
            "data": {"actor": {"type": "partner", "partner_id": "P-1", "user": FORGED, "roles": []},
                     "reason": "x\u{1b}]0;title\u{7}"},
        });
        let folded = Folded {
            state: State::new(),
            events: 2,
            last_position: 8,
            last_time: None,
        };
        let out = render_history(
            &Uuid::nil(),
            None,
            &[(true, event), (true, partner)],
            None,
            &folded,
        );
        assert_terminal_safe(&out);
        assert!(out.contains("reviewer rev-7\\n"), "{out}");
        assert!(out.contains("\\u{1b}[32m"), "{out}");
        assert!(
            out.contains("\\u{9b}2J") && out.contains("\\u{202e}"),
            "{out}"
        );
        // Three lines of table: header and two rows, whatever the texts hold.
        let table: Vec<&str> = out.lines().skip(2).take_while(|l| !l.is_empty()).collect();
        assert_eq!(table.len(), 3, "{out}");
    }

    /// `cpor replay`: every string from the log (partner ids, products,
    /// statuses, times) is escaped the same way.
    #[test]
    fn replay_escapes_what_the_log_holds() {
        let case = json!({
            "case_id": Uuid::nil().to_string(), "product": FORGED, "activity": "usage",
            "tenant_id": "t\nx", "opened_at": "2026-11-25T09:00:00Z",
            "claims": [{"claim_id": "c\u{1b}[2K", "partner_id": FORGED, "status": "approved",
                        "incumbent": true, "contender": true}],
        });
        let report = json!({
            "as_of": "2026-12-01T00:00:00Z", "source": "data dir",
            "events": 3, "last_position": 3, "last_event_at": "2026-11-25T09:00:00Z\u{1b}[1A",
            "reference": {"tenants": 1, "subscriptions": 1, "partners": 1},
            "claims": {"total": 1, "by_status": {}},
            "cases": {"total": 1, "open": 1, "closed": 0},
            "open_cases": [case],
            "overdue_claims": [{"claim_id": "c1", "partner_id": FORGED, "status": "submitted",
                                "review_due_at": "2026-12-01T00:00:00Z"}],
            "deadlines_passed_unrecorded": [{"claim_id": "c2", "deadline": FORGED,
                                             "due_at": "x", "status": "y"}],
        });
        let out = render_replay(&report);
        assert_terminal_safe(&out);
        assert!(out.contains("rev-7\\n"), "{out}");
    }

    #[test]
    fn terminal_safe_keeps_plain_text_and_makes_escapes_unforgeable() {
        assert_eq!(terminal_safe("Müller-Bau — OK"), "Müller-Bau — OK");
        assert_eq!(terminal_safe("a\\nb"), "a\\\\nb");
        assert_eq!(terminal_safe("a\nb"), "a\\nb");
        assert_eq!(terminal_safe("\u{7f}\u{85}"), "\\u{7f}\\u{85}");
    }
}
