//! Signed checkpoints (issue 10): every so often the service signs
//! `{position, hash, time}` of its log with an Ed25519 key that never
//! leaves the data dir (or the file it is given), stores the checkpoint
//! here and publishes it. Whoever holds the public key can then check that
//! an export or a stream copy is the service's own up to the last
//! checkpoint: rewriting an event and re-chaining every later hash (which
//! anyone can do: the chain is an unkeyed SHA-256) no longer verifies.
//!
//! Format (docs/audit.md): one JSON object, RFC 8785 canonical,
//! `{"hash":H,"position":P,"signature":S,"time":T}` where `S` is the
//! lowercase hex Ed25519 signature (RFC 8032) of the canonical JSON of
//! `{"hash":H,"position":P,"time":T}` (UTF-8), `H` the event's `hash` at
//! position `P`, `T` RFC 3339 UTC. The public key is 32 bytes, written as
//! 64 lowercase hex characters.

use std::path::Path;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::LogError;

/// The signing key's file name in the data dir when none is given.
pub const SIGNING_KEY_FILE: &str = "checkpoint-signing.key";

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub hash: String,
    pub position: u64,
    /// Lowercase hex Ed25519 signature of [`Checkpoint::signed_bytes`].
    pub signature: String,
    pub time: String,
}

impl Checkpoint {
    /// What is signed: `{"hash":…,"position":…,"time":…}`, canonical.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.hash, self.position, &self.time)
    }

    /// The canonical JSON of the whole checkpoint (what is stored,
    /// published and exported).
    pub fn to_bytes(&self) -> Vec<u8> {
        let value = serde_json::json!({
            "hash": self.hash, "position": self.position,
            "signature": self.signature, "time": self.time,
        });
        cpor_jcs::canonical_json(&value)
            .expect("checkpoints are plain JSON")
            .into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Checkpoint, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a checkpoint: {e}"))
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), String> {
        let bytes = hex_decode(&self.signature)
            .filter(|b| b.len() == 64)
            .ok_or("the signature is not 128 hex characters")?;
        let signature = ed25519_dalek::Signature::from_slice(&bytes).map_err(|e| e.to_string())?;
        key.verify(&self.signed_bytes(), &signature)
            .map_err(|_| "the signature does not verify with this public key".to_string())
    }
}

fn signed_bytes(hash: &str, position: u64, time: &str) -> Vec<u8> {
    let value = serde_json::json!({"hash": hash, "position": position, "time": time});
    cpor_jcs::canonical_json(&value)
        .expect("checkpoints are plain JSON")
        .into_bytes()
}

/// The service's checkpoint signer.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl CheckpointSigner {
    /// Loads the key from `file` (64 hex characters of an Ed25519 seed,
    /// whitespace around ignored), generating one there (mode 0600) from
    /// the OS CSPRNG if `generate` and the file does not exist.
    ///
    /// Errors: unreadable or malformed file, or it is missing and
    /// `generate` is false.
    pub fn load(file: &Path, generate: bool) -> Result<CheckpointSigner, LogError> {
        let storage = |what: String| LogError::Storage(what);
        match std::fs::read_to_string(file) {
            Ok(text) => {
                let seed: [u8; 32] = hex_decode(text.trim())
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        storage(format!(
                            "{} is not a signing key (64 hex characters of an Ed25519 seed)",
                            file.display()
                        ))
                    })?;
                Ok(CheckpointSigner {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && generate => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| storage(format!("no randomness for a signing key: {e}")))?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut out = options
                    .open(file)
                    .map_err(|e| storage(format!("cannot create {}: {e}", file.display())))?;
                std::io::Write::write_all(&mut out, format!("{}\n", hex(&seed)).as_bytes())
                    .and_then(|_| out.sync_all())
                    .map_err(|e| storage(format!("cannot write {}: {e}", file.display())))?;
                Ok(CheckpointSigner {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) => Err(storage(format!("cannot read {}: {e}", file.display()))),
        }
    }

    /// The public key, 64 lowercase hex characters.
    pub fn public_key_hex(&self) -> String {
        hex(self.key.verifying_key().as_bytes())
    }

    pub fn sign(&self, position: u64, hash: &str, time: &str) -> Checkpoint {
        let signature = self.key.sign(&signed_bytes(hash, position, time));
        Checkpoint {
            hash: hash.to_string(),
            position,
            signature: hex(&signature.to_bytes()),
            time: time.to_string(),
        }
    }
}

/// Reads a public key: 64 hex characters (whitespace around ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex_decode(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or("a public key is 64 hex characters")?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

pub use ed25519_dalek::VerifyingKey as PublicKey;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

impl crate::LogReader {
    /// Stores a checkpoint (outside the writer's batches; flushed by the
    /// next flush).
    pub fn put_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), LogError> {
        self.checkpoint_tree()?.insert(
            crate::keys::checkpoint(checkpoint.position),
            checkpoint.to_bytes(),
        )?;
        Ok(())
    }

    /// Every stored checkpoint, in position order.
    pub fn checkpoints(&self) -> impl Iterator<Item = Result<Checkpoint, LogError>> + '_ {
        let (scan, closed) = match self.checkpoint_tree() {
            Ok(tree) => (Some(tree.iter()), None),
            Err(error) => (None, Some(Err(error))),
        };
        closed
            .into_iter()
            .chain(scan.into_iter().flatten().map(|entry| {
                let (_, value) = entry?;
                Checkpoint::from_bytes(&value).map_err(LogError::Corrupt)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_signs_and_verifies_and_an_edit_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(SIGNING_KEY_FILE);
        let signer = CheckpointSigner::load(&file, true).unwrap();
        let again = CheckpointSigner::load(&file, false).unwrap();
        assert_eq!(
            signer.public_key_hex(),
            again.public_key_hex(),
            "the key is kept"
        );
        let key = parse_public_key(&signer.public_key_hex()).unwrap();
        let checkpoint = signer.sign(7, &"ab".repeat(32), "2026-11-25T09:00:00Z");
        checkpoint.verify(&key).unwrap();
        let round = Checkpoint::from_bytes(&checkpoint.to_bytes()).unwrap();
        assert_eq!(round, checkpoint);
        let mut edited = checkpoint.clone();
        edited.hash = "cd".repeat(32);
        assert!(edited.verify(&key).is_err());
        let other = CheckpointSigner::load(&dir.path().join("other"), true).unwrap();
        let other_key = parse_public_key(&other.public_key_hex()).unwrap();
        assert!(checkpoint.verify(&other_key).is_err());
        assert!(CheckpointSigner::load(&dir.path().join("missing"), false).is_err());
    }
}
