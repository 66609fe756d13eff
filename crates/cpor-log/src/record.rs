//! Command records: what an accepted command leaves for a repeat of it
//! (contract §5, idempotency), in a compact typed encoding.
//!
//! Stored as postcard (varints, no field names). Two forms, told apart by
//! the first byte, and both read by every build of layout 4:
//!
//! - **tagged** (written since issue 8 target 5): the byte [`TAG_CODED`]
//!   (2), then postcard of `StoredCoded`: each event type as a one-byte
//!   code from [`EVENT_TYPES`] (0: the text follows in `other_types`, for a
//!   type the table does not know). About 60 bytes for a submit.
//! - **untagged** (the first layout 4 form, and what the migration from
//!   layouts 1 to 3 wrote): postcard of `Stored`, the event types as text
//!   (about 20 bytes each). It starts with the varint of the
//!   `StoredFingerprint` variant, 0 or 1, so it never starts with 2.
//!
//! Layout 1 stored JSON `{"fingerprint":..,"reply":{..}}` and no time; the
//! migration converts them ([`CommandRecord::from_v1_json`]).

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

/// The untagged stored form (postcard), read only: records written before
/// [`TAG_CODED`]. Field order is the format.
#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: StoredFingerprint,
    /// Milliseconds since the Unix epoch.
    recorded_at_ms: i64,
    reply: Accepted,
}

/// The first byte of a record in the tagged form. The untagged form
/// starts with a `StoredFingerprint` variant (0 or 1).
const TAG_CODED: u8 = 2;

/// The CloudEvents `type`s a command record stores as one-byte codes: code
/// `i + 1` is `EVENT_TYPES[i]`. The codes are the stored format: append
/// only, never reorder or reuse. A type missing here (a future event) is
/// stored as text under code 0, so adding an event needs no change here to
/// be correct, only to be compact.
pub(crate) const EVENT_TYPES: [&str; 19] = [
    "cpor.tenant.upserted",
    "cpor.subscription.upserted",
    "cpor.partner.upserted",
    "cpor.claim.submitted",
    "cpor.claim.review_started",
    "cpor.claim.comment_added",
    "cpor.claim.poe_requested",
    "cpor.claim.poe_submitted",
    "cpor.claim.approved",
    "cpor.claim.rejected",
    "cpor.claim.withdrawn",
    "cpor.claim.disputed",
    "cpor.claim.association_ended",
    "cpor.claim.review_deadline_missed",
    "cpor.claim.partner_response_missed",
    "cpor.arbitration.opened",
    "cpor.arbitration.claim_joined",
    "cpor.arbitration.resolved",
    "cpor.arbitration.closed",
];

/// The code stored for a text event type in `other_types`.
const CODE_TEXT: u8 = 0;

/// The tagged stored form (postcard, after the byte [`TAG_CODED`]). Field
/// order is the format: append only.
#[derive(Serialize, Deserialize)]
struct StoredCoded {
    fingerprint: StoredFingerprint,
    /// Milliseconds since the Unix epoch.
    recorded_at_ms: i64,
    claim_id: Option<Uuid>,
    version: u64,
    /// One code per event, in order: `i + 1` for [`EVENT_TYPES`]`[i]`,
    /// [`CODE_TEXT`] for the next of `other_types`.
    event_codes: Vec<u8>,
    /// The types under [`CODE_TEXT`], in order (almost always empty).
    other_types: Vec<String>,
    warnings: Vec<String>,
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
    /// The stored bytes, in the tagged form: [`TAG_CODED`], then postcard
    /// of `StoredCoded`.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let fingerprint = match sha256_bytes(&self.fingerprint) {
            Some(bytes) => StoredFingerprint::Sha256(bytes),
            None => StoredFingerprint::Text(self.fingerprint.clone()),
        };
        let mut event_codes = Vec::with_capacity(self.reply.events.len());
        let mut other_types = Vec::new();
        for event_type in &self.reply.events {
            match EVENT_TYPES.iter().position(|known| known == event_type) {
                Some(i) => event_codes.push(i as u8 + 1),
                None => {
                    event_codes.push(CODE_TEXT);
                    other_types.push(event_type.clone());
                }
            }
        }
        let stored = StoredCoded {
            fingerprint,
            recorded_at_ms: self.recorded_at.timestamp_millis(),
            claim_id: self.reply.claim_id,
            version: self.reply.version,
            event_codes,
            other_types,
            warnings: self.reply.warnings.clone(),
        };
        postcard::to_extend(&stored, vec![TAG_CODED]).expect("command records serialize")
    }

    /// Decodes stored bytes of either form (see the module's docs);
    /// [`LogError::Corrupt`] names the command.
    pub(crate) fn from_bytes(bytes: &[u8], command_id: &Uuid) -> Result<CommandRecord, LogError> {
        let corrupt =
            |what: String| LogError::Corrupt(format!("command record {command_id}: {what}"));
        let (fingerprint, recorded_at_ms, reply) = match bytes.split_first() {
            Some((&TAG_CODED, rest)) => {
                let stored: StoredCoded =
                    postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))?;
                let mut others = stored.other_types.into_iter();
                let events = stored
                    .event_codes
                    .iter()
                    .map(|&code| match code {
                        CODE_TEXT => others
                            .next()
                            .ok_or_else(|| corrupt("an event type code without its text".into())),
                        code => EVENT_TYPES
                            .get(usize::from(code) - 1)
                            .map(|known| known.to_string())
                            .ok_or_else(|| corrupt(format!("unknown event type code {code}"))),
                    })
                    .collect::<Result<Vec<String>, LogError>>()?;
                let reply = Accepted {
                    claim_id: stored.claim_id,
                    version: stored.version,
                    events,
                    warnings: stored.warnings,
                };
                (stored.fingerprint, stored.recorded_at_ms, reply)
            }
            _ => {
                let stored: Stored =
                    postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
                (stored.fingerprint, stored.recorded_at_ms, stored.reply)
            }
        };
        let fingerprint = match fingerprint {
            StoredFingerprint::Sha256(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            StoredFingerprint::Text(text) => text,
        };
        let recorded_at = chrono::DateTime::from_timestamp_millis(recorded_at_ms)
            .ok_or_else(|| corrupt("time out of range".into()))?;
        Ok(CommandRecord {
            fingerprint,
            recorded_at,
            reply,
        })
    }

    /// The untagged form that layout 4 wrote first (and the migration from
    /// layouts 1 to 3 wrote), for tests of data dirs written before the
    /// tagged form.
    #[cfg(test)]
    pub(crate) fn to_untagged_bytes(&self) -> Vec<u8> {
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
    fn known_event_types_are_stored_as_one_byte_codes_and_others_as_text() {
        let id = Uuid::from_u128(1);
        let mut r = record(&"ab".repeat(32));
        r.reply.events = vec![
            "cpor.claim.submitted".into(),
            "cpor.claim.future_event".into(),
            "cpor.arbitration.opened".into(),
            "cpor.arbitration.claim_joined".into(),
            "cpor.other.thing".into(),
        ];
        let bytes = r.to_bytes();
        assert_eq!(bytes[0], TAG_CODED);
        assert_eq!(
            CommandRecord::from_bytes(&bytes, &id).unwrap(),
            r,
            "order kept"
        );
        // A submit's record: tag, fingerprint (1 + 32), time (6), claim id
        // (1 + 1 + 16), version, one code, two empty lists, and the warning.
        r.reply.events = vec!["cpor.claim.submitted".into()];
        r.reply.warnings.clear();
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), 1 + 33 + 6 + 18 + 1 + 2 + 1 + 1, "{bytes:?}");
        // The untagged form: no tag, no code, no empty list, but the text
        // (1 + 20 bytes).
        assert_eq!(r.to_untagged_bytes().len(), bytes.len() - 3 + 21);
    }

    #[test]
    fn the_code_table_names_the_domains_events() {
        use cpor_domain::event::{AggregateKind, EventData};
        for (i, event_type) in EVENT_TYPES.iter().enumerate() {
            let mut parts = event_type.splitn(3, '.');
            assert_eq!(parts.next(), Some(crate::envelope::EVENT_TYPE_PREFIX));
            let kind = AggregateKind::parse(parts.next().unwrap()).unwrap();
            let name = parts.next().unwrap();
            assert!(
                EventData::current_version(kind, name).is_some(),
                "{event_type}"
            );
            assert!(!EVENT_TYPES[..i].contains(event_type), "{event_type} twice");
        }
    }

    /// Records written before the tagged form (every layout 4 data dir of
    /// before issue 8 target 5, and what `migrate` wrote for layouts 1 to
    /// 3) still decode, to the same record.
    #[test]
    fn an_untagged_record_still_decodes() {
        let id = Uuid::from_u128(1);
        let mut r = record(&"ab".repeat(32));
        r.reply.events = vec!["cpor.claim.submitted".into(), "cpor.x.y".into()];
        // The untagged form, byte by byte (postcard): fingerprint variant 0
        // and its 32 bytes, the time as a zigzag varint, Some(claim id) as
        // 16 length-prefixed bytes, version, the types as text, warnings.
        let mut old = vec![0u8];
        old.extend([0xab; 32]);
        old.extend(postcard::to_allocvec(&1_767_600_000_123i64).unwrap());
        old.extend([1, 16]);
        old.extend(Uuid::from_u128(7).as_bytes());
        old.extend([3, 2, 20]);
        old.extend(b"cpor.claim.submitted");
        old.extend([8]);
        old.extend(b"cpor.x.y");
        old.extend([1, 16]);
        old.extend(b"MPN_NOT_ENROLLED");
        assert_eq!(r.to_untagged_bytes(), old);
        assert_eq!(CommandRecord::from_bytes(&old, &id).unwrap(), r);
        let text = record("f1");
        let old = text.to_untagged_bytes();
        assert_eq!(old[0], 1, "the text fingerprint variant");
        assert_eq!(CommandRecord::from_bytes(&old, &id).unwrap(), text);
    }

    #[test]
    fn a_tagged_record_with_a_bad_code_is_corrupt() {
        let id = Uuid::from_u128(1);
        let mut r = record(&"ab".repeat(32));
        r.reply.events = vec!["cpor.claim.submitted".into()];
        r.reply.warnings.clear();
        let mut bytes = r.to_bytes();
        let code_at = bytes.len() - 3;
        assert_eq!(bytes[code_at], 4, "cpor.claim.submitted's code");
        bytes[code_at] = EVENT_TYPES.len() as u8 + 1;
        assert!(CommandRecord::from_bytes(&bytes, &id).is_err());
        bytes[code_at] = CODE_TEXT;
        assert!(CommandRecord::from_bytes(&bytes, &id).is_err(), "no text");
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
