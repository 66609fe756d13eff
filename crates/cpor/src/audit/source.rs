//! Where the audit tools read events from, in one place: a stopped
//! service's data dir, a running service's JetStream stream, or an export
//! file. Every source yields the stored canonical CloudEvent bytes in log
//! order, so the same log read either way is byte-identical.

use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use cpor_log::{LogError, LogReader};
use cpor_nats::connection::{ReadFrom, StreamMessage, StreamMessages};
use cpor_nats::relay::stream_names;

use super::progress;
use crate::nats_flags::{NatsAuthArgs, NATS_URL_ENV, TOOL_CONNECT_WAIT};
/// How long a stream read may wait for the next message before giving up.
const STREAM_STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a waiting stream read looks at the interrupt flag.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// Lines longer than this are not events of this service (an event is at
/// most a few hundred KiB); reading stops there so memory stays bounded.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// The two sources every tool reads: flags shared by all of them.
#[derive(Args, Debug, Clone)]
pub(crate) struct SourceArgs {
    /// Read the log of a stopped service from its data dir (sled locks the
    /// data dir of a running one: read its stream with --nats-url instead).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Read a running service's events from JetStream (stream `{PREFIX}_EVENTS`).
    #[arg(long, env = NATS_URL_ENV, value_name = "URL")]
    pub(crate) nats_url: Option<String>,
    /// The service's subject prefix; its stream is `{PREFIX}_EVENTS` upper-cased.
    #[arg(
        long,
        env = "CPOR_PREFIX",
        default_value = "cpor",
        value_name = "PREFIX"
    )]
    pub(crate) prefix: String,
    /// How to authenticate to NATS (with --nats-url).
    #[command(flatten)]
    pub(crate) nats: NatsAuthArgs,
}

/// One source, chosen from the flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SourceSpec {
    DataDir(PathBuf),
    Stream {
        nats_url: String,
        prefix: String,
        auth: Box<NatsAuthArgs>,
    },
    /// A file of CloudEvents JSON lines; `-` is stdin.
    File(PathBuf),
}

impl SourceArgs {
    /// Exactly one source: `--input` (where the tool takes one), `--data-dir`
    /// or `--nats-url`. A NATS URL that only comes from `CPOR_NATS_URL` in
    /// the environment gives way to an explicit `--data-dir` or `--input`.
    pub(crate) fn resolve(
        &self,
        input: Option<&Path>,
        takes_input: bool,
    ) -> anyhow::Result<SourceSpec> {
        let from_env = std::env::var(NATS_URL_ENV).ok().filter(|v| !v.is_empty());
        let nats_explicit = self.nats_url.is_some() && self.nats_url != from_env;
        let mut given = Vec::new();
        if let Some(path) = input {
            given.push(("--input", SourceSpec::File(path.to_path_buf())));
        }
        if let Some(dir) = &self.data_dir {
            given.push(("--data-dir", SourceSpec::DataDir(dir.clone())));
        }
        let stream = self.nats_url.as_ref().map(|url| SourceSpec::Stream {
            nats_url: url.clone(),
            prefix: self.prefix.clone(),
            auth: Box::new(self.nats.clone()),
        });
        if nats_explicit {
            given.push(("--nats-url", stream.clone().expect("nats_url is set")));
        }
        match given.len() {
            0 => match stream {
                Some(stream) => {
                    check_prefix(&self.prefix)?;
                    Ok(stream)
                }
                None => bail!(
                    "give one source: --data-dir DIR (a stopped service's data dir) or --nats-url URL [--prefix P] (a running service's JetStream stream){}",
                    if takes_input { ", or --input FILE (an export; - for stdin)" } else { "" }
                ),
            },
            1 => {
                let (_, spec) = given.pop().expect("one source");
                if matches!(spec, SourceSpec::Stream { .. }) {
                    check_prefix(&self.prefix)?;
                }
                Ok(spec)
            }
            _ => {
                let names: Vec<&str> = given.iter().map(|(name, _)| *name).collect();
                bail!("give only one source, not {}", names.join(" and "))
            }
        }
    }
}

/// Contract §8: `^[a-z][a-z0-9_]{0,31}$`.
fn check_prefix(prefix: &str) -> anyhow::Result<()> {
    if !cpor_nats::wire::is_valid_prefix(prefix) {
        bail!("--prefix {prefix:?} is not a service prefix (^[a-z][a-z0-9_]{{0,31}}$)");
    }
    Ok(())
}

/// One stored event as a source yields it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw<'a> {
    /// The canonical CloudEvent bytes (for a file: the line without `\n`).
    pub(crate) bytes: &'a [u8],
    /// The position the source filed it under: the data dir's key, or the
    /// `position` read from a stream message (`None` when unreadable, and
    /// for files, whose lines the caller parses).
    pub(crate) position: Option<u64>,
    /// 1-based line number, for files.
    pub(crate) line: Option<u64>,
    /// A stream message that must fail a verification whatever its content:
    /// a second, different message for a position already read, or a
    /// `Nats-Msg-Id` that is not the event's id.
    pub(crate) conflict: Option<&'a str>,
}

/// A source of events in log order.
pub(crate) enum EventSource {
    DataDir {
        reader: LogReader,
        from: u64,
        dir: PathBuf,
    },
    Stream(Box<StreamSource>),
    File {
        reader: Box<dyn BufRead>,
        name: String,
    },
}

impl EventSource {
    /// Opens a source; `from` is the first position wanted (sources that
    /// can seek start there, the others start earlier and the caller skips).
    pub(crate) fn open(spec: &SourceSpec, from: u64) -> anyhow::Result<EventSource> {
        match spec {
            SourceSpec::DataDir(dir) => Ok(EventSource::DataDir {
                reader: open_data_dir(dir)?,
                from: from.max(1),
                dir: dir.clone(),
            }),
            SourceSpec::Stream {
                nats_url,
                prefix,
                auth,
            } => Ok(EventSource::Stream(Box::new(StreamSource::open(
                nats_url, prefix, auth, from,
            )?))),
            SourceSpec::File(path) if path.as_os_str() == "-" => Ok(EventSource::File {
                reader: Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())),
                name: "stdin".into(),
            }),
            SourceSpec::File(path) => {
                let file = std::fs::File::open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok(EventSource::File {
                    reader: Box::new(BufReader::with_capacity(1 << 16, file)),
                    name: path.display().to_string(),
                })
            }
        }
    }

    /// What is read, for messages: `data dir ./data`, `stream CPOR_EVENTS at nats://…`.
    pub(crate) fn describe(&self) -> String {
        match self {
            EventSource::DataDir { dir, .. } => format!("data dir {}", dir.display()),
            EventSource::Stream(s) => format!("stream {} at {}", s.stream_name, s.url),
            EventSource::File { name, .. } => name.clone(),
        }
    }

    /// [`EventSource::for_each`], but a stream's conflicting messages (see
    /// [`Raw::conflict`]) are passed on instead of being left out.
    pub(crate) fn for_each_checked(
        &mut self,
        f: impl FnMut(Raw<'_>) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()> {
        match self {
            EventSource::Stream(stream) => stream.for_each(f),
            other => other.for_each(f),
        }
    }

    /// The data dir's reader, when that is the source.
    pub(crate) fn log_reader(&self) -> Option<&LogReader> {
        match self {
            EventSource::DataDir { reader, .. } => Some(reader),
            _ => None,
        }
    }

    /// Ends the source in a process about to exit: a data dir's private
    /// copy is removed without closing sled's store
    /// ([`LogReader::close_copy_at_exit`]); anything else is dropped.
    pub(crate) fn close_at_exit(self) {
        match self {
            EventSource::DataDir { reader, .. } => reader.close_copy_at_exit(),
            other => drop(other),
        }
    }

    /// Messages of a stream that were not events (counted, skipped).
    pub(crate) fn foreign_messages(&self) -> Option<u64> {
        match self {
            EventSource::Stream(s) => Some(s.foreign),
            _ => None,
        }
    }

    /// How many events the source expects to yield, when it knows.
    pub(crate) fn expected(&self) -> Option<u64> {
        match self {
            EventSource::DataDir { reader, from, .. } => reader
                .last_position()
                .ok()
                .map(|last| (last + 1).saturating_sub(*from)),
            EventSource::Stream(s) => Some(s.expected()),
            EventSource::File { .. } => None,
        }
    }

    /// Calls `f` with every event in log order until it breaks or the
    /// source ends (a stream ends at its last message when it was opened).
    /// Checks for Ctrl-C between events.
    pub(crate) fn for_each(
        &mut self,
        mut f: impl FnMut(Raw<'_>) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()> {
        match self {
            EventSource::DataDir { reader, from, .. } => {
                for entry in reader.events_from(*from) {
                    progress::check()?;
                    let (position, bytes) = entry.context("cannot read the data dir")?;
                    let raw = Raw {
                        bytes: &bytes,
                        position: Some(position),
                        line: None,
                        conflict: None,
                    };
                    if f(raw)?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
            // Only `verify` sees conflicts (see `for_each_checked`): the
            // other tools read the first message of each position and say so.
            EventSource::Stream(stream) => stream.for_each(|raw| match raw.conflict {
                Some(conflict) => {
                    eprintln!("cpor: WARNING: {conflict}; the first message of the position is used (`cpor verify` fails on this)");
                    Ok(ControlFlow::Continue(()))
                }
                None => f(raw),
            }),
            EventSource::File { reader, name } => {
                let mut buf = Vec::with_capacity(4096);
                let mut line = 0u64;
                loop {
                    progress::check()?;
                    buf.clear();
                    let read = (&mut *reader)
                        .take(MAX_LINE_BYTES)
                        .read_until(b'\n', &mut buf)
                        .with_context(|| format!("cannot read {name}"))?;
                    if read == 0 {
                        return Ok(());
                    }
                    line += 1;
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let raw = Raw {
                        bytes: &buf,
                        position: None,
                        line: Some(line),
                        conflict: None,
                    };
                    if f(raw)?.is_break() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Opens a data dir of a stopped service, without creating one: a mistyped
/// path must not read as an empty log.
pub(crate) fn open_data_dir(dir: &Path) -> anyhow::Result<LogReader> {
    open_data_dir_as(dir, false)
}

/// [`open_data_dir`], or the data dir itself when `in_place` (for
/// `rebuild --repair`, which writes the projections back).
pub(crate) fn open_data_dir_as(dir: &Path, in_place: bool) -> anyhow::Result<LogReader> {
    if !dir.is_dir() {
        bail!("no data dir at {}", dir.display());
    }
    if !dir.join("conf").exists() && !dir.join("db").exists() {
        bail!(
            "{} is not a cpor data dir (no sled store in it)",
            dir.display()
        );
    }
    // A private copy: the data dir may be read-only, and stays byte for byte
    // as it was (sled 0.34 writes into any store it opens).
    let opened = if in_place {
        LogReader::open_with_cache(dir, cpor_log::SLED_CACHE_BYTES_SCAN)
    } else {
        LogReader::open_copy(dir, cpor_log::SLED_CACHE_BYTES_SCAN)
    };
    match opened {
        Ok(reader) => Ok(reader),
        Err(LogError::Locked(_)) => bail!(
            "the data dir {} is locked: a running `cpor serve` holds it (sled allows one process per data dir). \
             Stop the service first, or read the running service's events from JetStream with \
             --nats-url URL --prefix PREFIX instead of --data-dir",
            dir.display()
        ),
        Err(error) => Err(error).with_context(|| format!("cannot open the data dir {}", dir.display())),
    }
}

/// A running service's `{PREFIX}_EVENTS` stream, read with an ordered
/// consumer up to the last message it held when opened.
pub(crate) struct StreamSource {
    runtime: tokio::runtime::Runtime,
    url: String,
    stream_name: String,
    messages: Option<StreamMessages>,
    start_sequence: u64,
    last_sequence: u64,
    /// The connection, to read an earlier message again by its sequence.
    nats: Option<cpor_nats::Nats>,
    /// Messages that are not events (junk), skipped and counted.
    foreign: u64,
}

impl StreamSource {
    fn open(
        url: &str,
        prefix: &str,
        auth: &NatsAuthArgs,
        from: u64,
    ) -> anyhow::Result<StreamSource> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let (stream_name, _) = stream_names(prefix);
        let (messages, start_sequence, last_sequence, nats) = runtime.block_on(async {
            let nats = cpor_nats::connect(&auth.options(url, "cpor audit", Some(TOOL_CONNECT_WAIT))?).await?;
            let state = nats.stream_state(&stream_name).await.with_context(|| {
                format!("no JetStream stream {stream_name} at {url}: is a service running (or has one run) with prefix {prefix}?")
            })?;
            // Snapshot: read up to the last message there now, while the service goes on.
            let last = state.last_sequence;
            if last == 0 || state.messages == 0 {
                return Ok::<_, anyhow::Error>((None, 1, 0, None));
            }
            // Positions and sequences agree unless something else wrote to the
            // stream; seek only when the message at `from` confirms it.
            let mut start = state.first_sequence.max(1);
            if from > start && from <= last {
                if let Ok(payload) = nats.stream_message(&stream_name, from).await {
                    if event_position(&payload) == Some(from) {
                        start = from;
                    }
                }
            }
            if start > last {
                return Ok((None, start, last, None));
            }
            let messages = nats
                .read_stream(&stream_name, ReadFrom::Sequence(start), None, "cpor audit read")
                .await?;
            Ok((Some(messages), start, last, Some(nats)))
        })?;
        Ok(StreamSource {
            runtime,
            url: url.to_string(),
            stream_name,
            messages,
            start_sequence,
            last_sequence,
            nats,
            foreign: 0,
        })
    }

    fn expected(&self) -> u64 {
        (self.last_sequence + 1).saturating_sub(self.start_sequence)
    }

    fn for_each(
        &mut self,
        mut f: impl FnMut(Raw<'_>) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<()> {
        let Some(mut messages) = self.messages.take() else {
            return Ok(());
        };
        // A republish the stream's duplicate window did not catch carries a
        // position already read. It is compared with the first message of
        // that position: the same bytes are a harmless duplicate, different
        // ones a conflict the caller is told about (never skipped).
        let mut seen = Seen::default();
        loop {
            let message = self.next_message(&mut messages)?;
            let sequence = message.sequence;
            if let Some(position) = event_position(&message.payload) {
                let repeated = seen.repeats(position);
                let mut conflict = self.id_conflict(&message);
                if repeated && conflict.is_none() {
                    conflict = self.compare_with_first(&seen, position, &message);
                    if conflict.is_none() {
                        seen.duplicates += 1;
                    }
                }
                if conflict.is_some() || !repeated {
                    if !repeated {
                        seen.record(position, sequence);
                    }
                    let raw = Raw {
                        bytes: &message.payload,
                        position: Some(position),
                        line: None,
                        conflict: conflict.as_deref(),
                    };
                    if f(raw)?.is_break() {
                        break;
                    }
                }
            } else {
                self.note_foreign(&message);
            }
            if sequence >= self.last_sequence {
                break;
            }
        }
        if seen.duplicates > 0 {
            eprintln!(
                "cpor: note: skipped {} republished duplicate message(s) in {} (the log holds each position once)",
                seen.duplicates, self.stream_name
            );
        }
        Ok(())
    }

    /// The next message, polling in steps of `STREAM_POLL` so an interrupt
    /// is noticed; an error when the stream ends early or stalls for
    /// `STREAM_STALL_TIMEOUT`.
    fn next_message(&self, messages: &mut StreamMessages) -> anyhow::Result<StreamMessage> {
        let started = Instant::now();
        let message = loop {
            progress::check()?;
            match self
                .runtime
                .block_on(async { tokio::time::timeout(STREAM_POLL, messages.next()).await })
            {
                Ok(next) => break next,
                Err(_) if started.elapsed() >= STREAM_STALL_TIMEOUT => bail!(
                    "the stream {} stopped delivering: no message for {} s before sequence {}",
                    self.stream_name,
                    started.elapsed().as_secs(),
                    self.last_sequence
                ),
                Err(_) => {}
            }
        };
        match message {
            None => bail!(
                "the stream {} ended before sequence {}",
                self.stream_name,
                self.last_sequence
            ),
            Some(Err(error)) => bail!("reading the stream {}: {error}", self.stream_name),
            Some(Ok(message)) => Ok(message),
        }
    }

    /// A message that is not an event: counted and noted, then skipped.
    fn note_foreign(&mut self, message: &StreamMessage) {
        self.foreign += 1;
        eprintln!(
            "cpor: note: {} sequence {} is not an event ({} bytes on {}): a foreign message, skipped",
            self.stream_name,
            message.sequence,
            message.payload.len(),
            message.subject
        );
    }

    /// A conflict when the message's `Nats-Msg-Id` is not its event's id.
    fn id_conflict(&self, message: &StreamMessage) -> Option<String> {
        let event_id = event_id(&message.payload);
        if message.message_id.is_some() && message.message_id == event_id {
            return None;
        }
        Some(format!(
            "{} sequence {}: its Nats-Msg-Id {} is not its event id {} (the service publishes every event under its own id: someone else wrote this message)",
            self.stream_name,
            message.sequence,
            message.message_id.as_deref().unwrap_or("(none)"),
            event_id.as_deref().unwrap_or("(none)")
        ))
    }

    /// A message repeating `position`, compared with that position's first
    /// message, read back by its sequence: `None` when the bytes are the
    /// same (a harmless duplicate), else the conflict.
    fn compare_with_first(
        &self,
        seen: &Seen,
        position: u64,
        message: &StreamMessage,
    ) -> Option<String> {
        let earlier = match (seen.first_sequence(position), &self.nats) {
            (Some(first), Some(nats)) => self
                .runtime
                .block_on(nats.stream_message(&self.stream_name, first))
                .ok()
                .map(|payload| (first, payload)),
            _ => None,
        };
        let sequence = message.sequence;
        match earlier {
            Some((_, payload)) if payload[..] == message.payload[..] => None,
            Some((first, _)) => Some(format!(
                "two different messages for position {position} in {}: sequences {first} and {sequence}",
                self.stream_name
            )),
            None => Some(format!(
                "{} sequence {sequence} repeats position {position}, whose first message cannot be read back to compare",
                self.stream_name
            )),
        }
    }
}

/// The positions a stream read has passed, to tell a republished duplicate
/// from a new event and find a position's first message again.
#[derive(Default)]
struct Seen {
    /// The highest position read; 0 before the first.
    last_position: u64,
    /// Republished duplicates skipped, for the closing note.
    duplicates: u64,
    /// The position whose first message is `sequences[0]`.
    base: u64,
    /// The stream sequence of each position's first message, from `base`
    /// on (a read covers one run of positions, so a vector indexed from
    /// `base` is enough).
    sequences: Vec<u64>,
}

impl Seen {
    /// Whether `position` was read already.
    fn repeats(&self, position: u64) -> bool {
        self.last_position != 0 && position <= self.last_position
    }

    /// The sequence of `position`'s first message, when it was recorded.
    fn first_sequence(&self, position: u64) -> Option<u64> {
        position
            .checked_sub(self.base)
            .and_then(|i| self.sequences.get(i as usize).copied())
    }

    /// A new position, first seen at `sequence`. A gap (a position
    /// missing) is the verifier's to report; it only stops the index.
    fn record(&mut self, position: u64, sequence: u64) {
        debug_assert!(!self.repeats(position), "positions are recorded once");
        if self.sequences.is_empty() {
            self.base = position;
        }
        if position >= self.base && position - self.base == self.sequences.len() as u64 {
            self.sequences.push(sequence);
        }
        self.last_position = position;
    }
}

/// The `position` attribute of a CloudEvent, read without the rest.
pub(crate) fn event_position(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Head {
        position: u64,
    }
    serde_json::from_slice::<Head>(bytes)
        .ok()
        .map(|h| h.position)
}

/// The `id` attribute of a CloudEvent, read without the rest.
pub(crate) fn event_id(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        id: String,
    }
    serde_json::from_slice::<Head>(bytes).ok().map(|h| h.id)
}

/// The `time` attribute of a CloudEvent, read without the rest.
pub(crate) fn event_time(bytes: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
    #[derive(serde::Deserialize)]
    struct Head {
        time: String,
    }
    let head: Head = serde_json::from_slice(bytes).ok()?;
    chrono::DateTime::parse_from_rfc3339(&head.time)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(data_dir: Option<&str>, nats_url: Option<&str>) -> SourceArgs {
        SourceArgs {
            data_dir: data_dir.map(PathBuf::from),
            nats_url: nats_url.map(str::to_string),
            prefix: "cpor".into(),
            nats: NatsAuthArgs::default(),
        }
    }

    #[test]
    fn exactly_one_source() {
        // The test process's environment may carry CPOR_NATS_URL; use a value
        // that cannot be it.
        let url = "nats://127.0.0.9:4999";
        assert_eq!(
            args(Some("d"), None).resolve(None, false).unwrap(),
            SourceSpec::DataDir("d".into())
        );
        assert_eq!(
            args(None, Some(url)).resolve(None, false).unwrap(),
            SourceSpec::Stream {
                nats_url: url.into(),
                prefix: "cpor".into(),
                auth: Box::default(),
            }
        );
        assert_eq!(
            args(None, None)
                .resolve(Some(Path::new("-")), true)
                .unwrap(),
            SourceSpec::File("-".into())
        );
        let both = args(Some("d"), Some(url))
            .resolve(None, false)
            .unwrap_err()
            .to_string();
        assert!(both.contains("only one source"), "{both}");
        let three = args(Some("d"), None)
            .resolve(Some(Path::new("f")), true)
            .unwrap_err()
            .to_string();
        assert!(three.contains("--input and --data-dir"), "{three}");
        if std::env::var_os(NATS_URL_ENV).is_none() {
            let none = args(None, None)
                .resolve(None, false)
                .unwrap_err()
                .to_string();
            assert!(none.contains("give one source"), "{none}");
        }
        let mut bad = args(None, Some(url));
        bad.prefix = "Bad-Prefix".into();
        assert!(bad.resolve(None, false).is_err());
    }

    #[test]
    fn reads_position_and_time_alone() {
        let bytes = br#"{"data":{"x":[1,2]},"position":42,"time":"2026-11-25T09:00:00Z","type":"cpor.claim.submitted"}"#;
        assert_eq!(event_position(bytes), Some(42));
        assert_eq!(
            event_time(bytes).unwrap().to_rfc3339(),
            "2026-11-25T09:00:00+00:00"
        );
        assert_eq!(event_position(b"{not json"), None);
    }

    #[test]
    fn a_missing_data_dir_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let error = open_data_dir(&missing).err().expect("an error").to_string();
        assert!(error.contains("no data dir"), "{error}");
        assert!(!missing.exists());
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let error = open_data_dir(&empty).err().expect("an error").to_string();
        assert!(error.contains("not a cpor data dir"), "{error}");
    }
}
