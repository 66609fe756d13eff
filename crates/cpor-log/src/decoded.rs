//! Decoding the log on every core: the replays (start-up's fold, `cpor
//! rebuild`, the projections' repair) spend most of their time
//! decompressing segments and turning canonical JSON back into events, and
//! a fold can only use one thread. So a reader thread takes the stored
//! segments from sled, still compressed, in chunks of about
//! [`DECODE_CHUNK_EVENTS`] events, and deals them round-robin to decoder
//! threads, which decompress and decode them; the caller takes the decoded
//! chunks back in the same round-robin order, which is log order, and
//! folds them.
//!
//! Every queue is bounded ([`DECODE_CHUNKS_QUEUED`] chunks per decoder
//! in and out), so memory does not depend on the log's size, and dropping
//! the iterator stops and joins the threads.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::segment::{self, Segment};
use crate::{envelope, keys, DecodedEvent, LogError, LogReader};

/// Events per chunk handed to a decoder thread (whole segments: a chunk
/// closes at the first segment that reaches it).
pub const DECODE_CHUNK_EVENTS: usize = 512;
/// Chunks that wait for (and after) each decoder thread.
pub const DECODE_CHUNKS_QUEUED: usize = 2;
/// Decoder threads at most (fewer on a machine with fewer cores).
pub const DECODE_THREADS_MAX: usize = 4;

type Item = Result<(u64, DecodedEvent), LogError>;
/// Stored segments (key, value), still compressed.
type RawChunk = Vec<Result<(sled::IVec, sled::IVec), LogError>>;

/// The log's events from a position on, decoded, in log order: see the
/// module doc. Yields `(position, event)`; an error ends the iteration.
pub struct DecodedEvents {
    /// Each decoder's output, visited round-robin.
    outputs: Vec<Receiver<Vec<Item>>>,
    next_output: usize,
    current: std::vec::IntoIter<Item>,
    threads: Vec<JoinHandle<()>>,
}

impl LogReader {
    /// The events from `position` on, decoded on threads of their own
    /// ([`DecodedEvents`]); the same as decoding [`LogReader::events_from`]
    /// one by one, in the same order.
    pub fn decoded_from(&self, position: u64) -> DecodedEvents {
        let decoders = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, DECODE_THREADS_MAX);
        let mut inputs = Vec::with_capacity(decoders);
        let mut outputs = Vec::with_capacity(decoders);
        let mut threads = Vec::with_capacity(decoders + 1);
        for index in 0..decoders {
            let (input, chunks) = sync_channel::<RawChunk>(DECODE_CHUNKS_QUEUED);
            let (decoded, output) = sync_channel::<Vec<Item>>(DECODE_CHUNKS_QUEUED);
            inputs.push(input);
            outputs.push(output);
            let from = position.max(1);
            threads.push(spawn(format!("cpor-decode-{index}"), move || {
                decode_chunks(&chunks, &decoded, from);
            }));
        }
        let reader = self.clone();
        threads.push(spawn("cpor-log-read".into(), move || {
            read_chunks(&reader, position, &inputs);
        }));
        DecodedEvents {
            outputs,
            next_output: 0,
            current: Vec::new().into_iter(),
            threads,
        }
    }
}

fn spawn(name: String, body: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name)
        .spawn(body)
        .expect("the OS starts a thread")
}

/// The reader thread: stored segments in chunks, dealt round-robin. Stops
/// at the end of the log, or when a decoder has gone (the caller dropped
/// the iterator).
fn read_chunks(reader: &LogReader, position: u64, inputs: &[SyncSender<RawChunk>]) {
    let mut segments = match stored_segments(reader, position.max(1)) {
        Ok(segments) => segments.peekable(),
        Err(error) => {
            let _ = inputs[0].send(vec![Err(error)]);
            return;
        }
    };
    for input in inputs.iter().cycle() {
        if segments.peek().is_none() {
            return;
        }
        let mut chunk = RawChunk::new();
        let mut events = 0;
        while events < DECODE_CHUNK_EVENTS {
            let Some(entry) = segments.next() else {
                break;
            };
            let entry = entry.map_err(LogError::from);
            match &entry {
                Ok((_, value)) => events += segment::count_of(value).unwrap_or(1) as usize,
                Err(_) => events = DECODE_CHUNK_EVENTS,
            }
            chunk.push(entry);
        }
        if input.send(chunk).is_err() {
            return;
        }
    }
}

/// The stored segments from the one holding `from` on, as
/// [`LogReader::events_from`] reads them.
fn stored_segments(
    reader: &LogReader,
    from: u64,
) -> Result<impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>, LogError> {
    let tree = reader.log()?;
    let start = match segment::containing(&tree, from)? {
        Some((key, _)) => key.to_vec(),
        None => keys::segment(from),
    };
    Ok(tree.range(start..segment::all().end))
}

/// A decoder thread: decompresses and decodes each chunk it is given, in
/// order, leaving out the events before `from`.
fn decode_chunks(chunks: &Receiver<RawChunk>, decoded: &SyncSender<Vec<Item>>, from: u64) {
    for chunk in chunks {
        let mut events = Vec::with_capacity(DECODE_CHUNK_EVENTS + DECODE_CHUNK_EVENTS / 2);
        for entry in chunk {
            match entry.and_then(|(key, value)| Segment::decode(&key, &value)) {
                Ok(segment) => events.extend(
                    segment
                        .events_from(from)
                        .map(|(position, bytes)| Ok((position, envelope::decode(bytes)?))),
                ),
                Err(error) => events.push(Err(error)),
            }
        }
        if decoded.send(events).is_err() {
            return;
        }
    }
}

impl Iterator for DecodedEvents {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            // Chunk k went to decoder k mod n, so the next chunk, if there
            // is one, comes from the next decoder; a decoder that hung up
            // has no more, and then no later chunk exists.
            let output = self.outputs.get(self.next_output)?;
            match output.recv() {
                Ok(chunk) => {
                    self.current = chunk.into_iter();
                    self.next_output = (self.next_output + 1) % self.outputs.len();
                }
                Err(_) => {
                    self.outputs.clear();
                    return None;
                }
            }
        }
    }
}

impl Drop for DecodedEvents {
    fn drop(&mut self) {
        // Hanging up makes every thread's next send fail, so each ends.
        self.outputs.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
