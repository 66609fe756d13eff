//! Command records: what an accepted command leaves for a repeat of it
//! (contract §5, idempotency), in a compact typed encoding.
//!
//! Stored as postcard (varints, no field names): about 100 bytes for a
//! submit instead of about 300 as JSON. Layout 1 stored JSON
//! `{"fingerprint":..,"reply":{..}}` and no time; the migration converts
//! them ([`CommandRecord::from_v1_json`]).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cpor_domain::types::Timestamp;

use crate::LogError;

/// The fields of an accepted command's reply (contract §5), as stored for
/// idempotent repeats: a repeat gets them back with `duplicate: true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The claim the command created or acted on (claim commands).
    pub claim_id: Option<Uuid>,
    /// The aggregate's version after the command.
    pub version: u64,
    /// The CloudEvents `type` of each event written, in order.
    pub events: Vec<String>,
    /// Non-blocking findings (e.g. `MPN_NOT_ENROLLED`).
    pub warnings: Vec<String>,
}

/// What an accepted command leaves for a repeat of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// `sha256(subject tail ‖ "\n" ‖ RFC 8785 body)` in lowercase hex: a
    /// repeat with another fingerprint is `IDEMPOTENCY_CONFLICT`.
    pub fingerprint: String,
    /// When the command was decided (the writer's clock): the record
    /// expires a retention period after it (contract §5 asks ≥ 7 days).
    pub recorded_at: Timestamp,
    /// The first reply.
    pub reply: Accepted,
}

/// The fingerprint as stored: 32 bytes for the SHA-256 hex the wire layer
/// makes, the text otherwise (never expected; kept exact).
#[derive(Serialize, Deserialize)]
enum StoredFingerprint {
    Sha256([u8; 32]),
    Text(String),
}

/// The stored form (postcard). Field order is the format: append only.
#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: StoredFingerprint,
    /// Milliseconds since the Unix epoch.
    recorded_at_ms: i64,
    reply: Accepted,
}

fn sha256_bytes(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl CommandRecord {
    /// The stored bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let fingerprint = match sha256_bytes(&self.fingerprint) {
            Some(bytes) => StoredFingerprint::Sha256(bytes),
            None => StoredFingerprint::Text(self.fingerprint.clone()),
        };
        let stored = Stored {
            fingerprint,
            recorded_at_ms: self.recorded_at.timestamp_millis(),
            reply: self.reply.clone(),
        };
        postcard::to_allocvec(&stored).expect("command records serialize")
    }

    /// Decodes stored bytes; [`LogError::Corrupt`] names the command.
    pub(crate) fn from_bytes(bytes: &[u8], command_id: &Uuid) -> Result<CommandRecord, LogError> {
        let corrupt =
            |what: String| LogError::Corrupt(format!("command record {command_id}: {what}"));
        let stored: Stored = postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
        let fingerprint = match stored.fingerprint {
            StoredFingerprint::Sha256(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            StoredFingerprint::Text(text) => text,
        };
        let recorded_at = chrono::DateTime::from_timestamp_millis(stored.recorded_at_ms)
            .ok_or_else(|| corrupt("time out of range".into()))?;
        Ok(CommandRecord {
            fingerprint,
            recorded_at,
            reply: stored.reply,
        })
    }

    /// A layout 1 record (JSON `{"fingerprint":..,"reply":{..}}`), given the
    /// time to count its retention from (layout 1 kept none).
    pub(crate) fn from_v1_json(
        bytes: &[u8],
        command_id: &Uuid,
        recorded_at: Timestamp,
    ) -> Result<CommandRecord, LogError> {
        #[derive(Deserialize)]
        struct V1 {
            fingerprint: String,
            reply: Accepted,
        }
        let v1: V1 = serde_json::from_slice(bytes)
            .map_err(|e| LogError::Corrupt(format!("command record {command_id}: {e}")))?;
        Ok(CommandRecord {
            fingerprint: v1.fingerprint,
            recorded_at,
            reply: v1.reply,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fingerprint: &str) -> CommandRecord {
        CommandRecord {
            fingerprint: fingerprint.to_string(),
            recorded_at: chrono::DateTime::from_timestamp_millis(1_767_600_000_123).unwrap(),
            reply: Accepted {
                claim_id: Some(Uuid::from_u128(7)),
                version: 3,
                events: vec!["cpor.claim.ClaimSubmitted".into()],
                warnings: vec!["MPN_NOT_ENROLLED".into()],
            },
        }
    }

    #[test]
    fn records_round_trip_compactly() {
        let id = Uuid::from_u128(1);
        for print in ["ab".repeat(32), "AB".repeat(32), "f1".into(), String::new()] {
            let r = record(&print);
            let bytes = r.to_bytes();
            assert_eq!(CommandRecord::from_bytes(&bytes, &id).unwrap(), r);
        }
        let bytes = record(&"ab".repeat(32)).to_bytes();
        assert!(bytes.len() < 110, "{} bytes", bytes.len());
        assert!(CommandRecord::from_bytes(&bytes[..10], &id).is_err());
    }

    #[test]
    fn a_layout_1_record_converts() {
        let id = Uuid::from_u128(1);
        let json = br#"{"fingerprint":"f1","reply":{"claim_id":null,"version":1,"events":["cpor.tenant.TenantUpserted"],"warnings":[]}}"#;
        let at = chrono::DateTime::from_timestamp_millis(5).unwrap();
        let r = CommandRecord::from_v1_json(json, &id, at).unwrap();
        assert_eq!(r.fingerprint, "f1");
        assert_eq!(r.reply.version, 1);
        assert_eq!(r.recorded_at, at);
    }
}
