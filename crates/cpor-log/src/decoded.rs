//! Decoding the log on every core: the replays (start-up's fold, `cpor
//! rebuild`, the projections' repair) spend most of their time turning
//! canonical JSON back into events, and a fold can only use one thread.
//! So a reader thread takes the stored bytes from sled in chunks of
//! [`DECODE_CHUNK_EVENTS`] and deals them round-robin to decoder threads;
//! the caller takes the decoded chunks back in the same round-robin order,
//! which is log order, and folds them.
//!
//! Every queue is bounded ([`DECODE_CHUNKS_QUEUED`] chunks per decoder
//! in and out), so memory does not depend on the log's size, and dropping
//! the iterator stops and joins the threads.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::{envelope, DecodedEvent, LogError, LogReader};

/// Events per chunk handed to a decoder thread.
pub const DECODE_CHUNK_EVENTS: usize = 512;
/// Chunks that wait for (and after) each decoder thread.
pub const DECODE_CHUNKS_QUEUED: usize = 2;
/// Decoder threads at most (fewer on a machine with fewer cores).
pub const DECODE_THREADS_MAX: usize = 4;

type Item = Result<(u64, DecodedEvent), LogError>;
type RawChunk = Vec<Result<(u64, Vec<u8>), LogError>>;

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
            threads.push(spawn(format!("cpor-decode-{index}"), move || {
                decode_chunks(&chunks, &decoded);
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

/// The reader thread: stored bytes in chunks, dealt round-robin. Stops at
/// the end of the log, or when a decoder has gone (the caller dropped the
/// iterator).
fn read_chunks(reader: &LogReader, position: u64, inputs: &[SyncSender<RawChunk>]) {
    let mut events = reader.events_from(position).peekable();
    for input in inputs.iter().cycle() {
        if events.peek().is_none() {
            return;
        }
        let chunk: RawChunk = events.by_ref().take(DECODE_CHUNK_EVENTS).collect();
        if input.send(chunk).is_err() {
            return;
        }
    }
}

/// A decoder thread: decodes each chunk it is given, in order.
fn decode_chunks(chunks: &Receiver<RawChunk>, decoded: &SyncSender<Vec<Item>>) {
    for chunk in chunks {
        let events = chunk
            .into_iter()
            .map(|entry| {
                let (position, bytes) = entry?;
                Ok((position, envelope::decode(&bytes)?))
            })
            .collect();
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
