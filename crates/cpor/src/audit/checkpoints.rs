//! `cpor verify --public-key`: the chain against the service's signed
//! checkpoints (issue 10, docs/audit.md). Every checkpoint's signature is
//! checked first; then each event at a checkpoint's position must carry the
//! signed hash. A rewrite that re-chains every later hash (possible for
//! anyone: the chain is an unkeyed SHA-256) fails at the first signed
//! checkpoint past the edit; events after the last checkpoint are covered
//! by the unkeyed chain only, and the summary says how many.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use anyhow::Context;
use serde_json::{json, Value};

use cpor_log::checkpoint::{parse_public_key, Checkpoint};

use super::source::{self, EventSource};
use super::verify::Failure;

/// Signed hashes by position, and what matched so far.
pub(crate) struct Trust {
    signed: BTreeMap<u64, Checkpoint>,
    matched: u64,
    last_matched: Option<u64>,
}

impl Trust {
    /// Reads the public key and the checkpoints (from `file`, else from
    /// the data dir source) and checks every signature. `Ok(Err(what))` is
    /// a verification failure (exit 1); `Err` a usage or IO error (exit 2).
    pub(crate) fn load(
        key_file: &Path,
        file: Option<&Path>,
        source: &EventSource,
    ) -> anyhow::Result<Result<Trust, String>> {
        let text = std::fs::read_to_string(key_file)
            .with_context(|| format!("cannot read the public key {}", key_file.display()))?;
        let key =
            parse_public_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", key_file.display()))?;
        let mut checkpoints = Vec::new();
        match (file, source.log_reader()) {
            (Some(file), _) => {
                let reader = std::io::BufReader::new(
                    std::fs::File::open(file)
                        .with_context(|| format!("cannot open {}", file.display()))?,
                );
                for (index, line) in reader.lines().enumerate() {
                    let line = line.with_context(|| format!("cannot read {}", file.display()))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match Checkpoint::from_bytes(line.as_bytes()) {
                        Ok(c) => checkpoints.push(c),
                        Err(e) => {
                            return Ok(Err(format!("{} line {}: {e}", file.display(), index + 1)))
                        }
                    }
                }
            }
            (None, Some(reader)) => {
                for checkpoint in reader.checkpoints() {
                    checkpoints.push(checkpoint.context("cannot read a stored checkpoint")?);
                }
            }
            (None, _) => anyhow::bail!(
                "--public-key needs the signed checkpoints: --checkpoints FILE (`cpor export --data-dir DIR --checkpoints FILE` writes them)"
            ),
        }
        let mut signed = BTreeMap::new();
        for checkpoint in checkpoints {
            if let Err(e) = checkpoint.verify(&key) {
                return Ok(Err(format!(
                    "the checkpoint of position {} (signed at {}): {e}",
                    checkpoint.position, checkpoint.time
                )));
            }
            signed.insert(checkpoint.position, checkpoint);
        }
        Ok(Ok(Trust {
            signed,
            matched: 0,
            last_matched: None,
        }))
    }

    /// Checks one event (already verified by the chain) against the
    /// checkpoint of its position, if any.
    pub(crate) fn check(&mut self, bytes: &[u8], line: Option<u64>) -> Result<(), Failure> {
        let Some(position) = source::event_position(bytes) else {
            return Ok(());
        };
        let Some(checkpoint) = self.signed.get(&position) else {
            return Ok(());
        };
        let hash = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("hash").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        if hash != checkpoint.hash {
            return Err(Failure {
                position: Some(position),
                line,
                what: format!(
                    "the hash {hash} is not the one the service signed for this position at {} ({}): \
                     the log was rewritten at or before this position{}",
                    checkpoint.time,
                    checkpoint.hash,
                    match self.last_matched {
                        Some(p) => format!(", after the checkpoint of position {p}, which matched"),
                        None => String::new(),
                    }
                ),
            });
        }
        self.matched += 1;
        self.last_matched = Some(position);
        Ok(())
    }

    fn uncovered(&self, last_position: Option<u64>) -> u64 {
        match (last_position, self.last_matched) {
            (Some(last), Some(matched)) => last - matched,
            (Some(last), None) => last,
            _ => 0,
        }
    }

    /// The summary line.
    pub(crate) fn render(&self, last_position: Option<u64>) -> String {
        let uncovered = self.uncovered(last_position);
        match self.last_matched {
            Some(p) => format!(
                "signed:     {} checkpoint(s) match, the last at position {p}; {uncovered} event(s) after it are covered only by the unkeyed chain",
                self.matched
            ),
            None => format!(
                "signed:     no signed checkpoint falls within these events; all {uncovered} are covered only by the unkeyed chain"
            ),
        }
    }

    pub(crate) fn to_json(&self, last_position: Option<u64>) -> Value {
        json!({
            "matched": self.matched,
            "last_signed_position": self.last_matched,
            "events_after_last_checkpoint": self.uncovered(last_position),
        })
    }
}
