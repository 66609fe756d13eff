//! One instance owns a prefix.
//!
//! Two services writing two logs for one prefix would split its history, so
//! `cpor serve` takes a lease before it serves: the last message on subject
//! `{prefix}.lease` in stream `{PREFIX}_LEASE`, which keeps one message and
//! drops it [`LEASE_TTL`] after it was written unless the holder renews it.
//! Every write is conditional on the subject's last sequence (compare and
//! swap), so two instances cannot both believe they won.
//!
//! The value is a [`LeaseRecord`] naming the data dir's instance id: a
//! restart on the same data dir (after a crash, before the lease expired)
//! may take the lease over at once, because sled's file lock already
//! guarantees that only one process has that data dir open.
//!
//! Anyone allowed to publish on `{prefix}.lease` can write there. A message
//! that is not a lease record of a `cpor` instance is reported and
//! overwritten, never obeyed: it cannot keep the service from starting nor
//! stop it. A well-formed record of another instance is obeyed (that is the
//! lease's job), so the deployment must let only the service's NATS user
//! publish on that subject (deploy/README.md).
//!
//! (A plain stream rather than a key-value bucket: the Debian nats-server
//! 2.9 answers async-nats' bucket creation in a form the client rejects.)

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a lease outlives its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews (well within the TTL).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);

/// The version tag of [`LeaseRecord`].
pub const LEASE_RECORD_FORMAT: u32 = 1;
/// A lease message longer than this is not a lease record.
pub const LEASE_RECORD_MAX_BYTES: usize = 1_024;

/// What the holder writes on `{prefix}.lease` (JSON): which instance holds
/// the prefix, and where it runs, for the operator who finds it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRecord {
    /// Always [`LEASE_RECORD_FORMAT`].
    pub cpor_lease: u32,
    /// The data dir's instance id (a UUID).
    pub instance: Uuid,
    /// The host name the holder runs on (may be empty).
    pub host: String,
    /// The holder's process id.
    pub pid: u32,
}

impl LeaseRecord {
    fn new(instance: Uuid) -> LeaseRecord {
        LeaseRecord {
            cpor_lease: LEASE_RECORD_FORMAT,
            instance,
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default(),
            pid: std::process::id(),
        }
    }

    /// Reads a lease message: a record of this format, or the bare instance
    /// id that versions before it wrote. `None` for anything else.
    pub fn parse(payload: &[u8]) -> Option<LeaseRecord> {
        if payload.len() > LEASE_RECORD_MAX_BYTES {
            return None;
        }
        if let Ok(record) = serde_json::from_slice::<LeaseRecord>(payload) {
            return (record.cpor_lease == LEASE_RECORD_FORMAT).then_some(record);
        }
        let text = std::str::from_utf8(payload).ok()?;
        // Only the hyphenated form `cpor serve` ever wrote.
        if text.len() != 36 {
            return None;
        }
        let instance = Uuid::parse_str(text).ok()?;
        Some(LeaseRecord {
            cpor_lease: LEASE_RECORD_FORMAT,
            instance,
            host: String::new(),
            pid: 0,
        })
    }

    fn describe(&self) -> String {
        if self.host.is_empty() {
            format!("instance {}", self.instance)
        } else {
            format!(
                "instance {} on host {}, pid {}",
                self.instance, self.host, self.pid
            )
        }
    }
}

/// A lease message as the operator should see it: escaped, cut short.
fn show_payload(payload: &[u8]) -> String {
    let shown: String = String::from_utf8_lossy(&payload[..payload.len().min(80)])
        .escape_debug()
        .collect();
    format!("{shown:?} ({} bytes)", payload.len())
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another cpor serve ({holder}) owns prefix {prefix} on this NATS server; stop it first, or wait {ttl:?} after it stopped, or use another --prefix")]
    Held {
        holder: String,
        prefix: String,
        ttl: Duration,
    },
    #[error("the lease for prefix {prefix} was taken by another cpor serve ({holder})")]
    Lost { prefix: String, holder: String },
    #[error("lease stream: {0}")]
    Nats(String),
}

fn nats_error(context: &str, e: impl std::fmt::Display) -> LeaseError {
    LeaseError::Nats(format!("{context}: {e}"))
}

pub struct Lease {
    js: jetstream::Context,
    stream: stream::Stream,
    subject: String,
    instance: Uuid,
    /// The record we write (JSON of [`LeaseRecord`]).
    record: bytes::Bytes,
    prefix: String,
    /// Stream sequence of our last lease message.
    sequence: u64,
}

impl Lease {
    /// Takes the prefix for `instance`; `Held` if another instance's valid
    /// record is there. A message that is not a lease record is reported
    /// and overwritten.
    pub async fn acquire(
        js: &jetstream::Context,
        prefix: &str,
        instance: Uuid,
    ) -> Result<Lease, LeaseError> {
        let subject = format!("{prefix}.lease");
        let stream = js
            .get_or_create_stream(stream::Config {
                name: format!("{}_LEASE", prefix.to_uppercase()),
                description: Some("cpor serve: which instance owns this prefix".into()),
                subjects: vec![subject.clone()],
                max_messages_per_subject: 1,
                max_age: LEASE_TTL,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error("create stream", e))?;
        let last = stream.get_last_raw_message_by_subject(&subject).await.ok();
        let expected = match &last {
            None => 0,
            Some(message) => match LeaseRecord::parse(&message.payload) {
                Some(holder) if holder.instance == instance => message.sequence,
                Some(holder) => {
                    return Err(LeaseError::Held {
                        holder: holder.describe(),
                        prefix: prefix.to_string(),
                        ttl: LEASE_TTL,
                    });
                }
                None => {
                    report_foreign(&subject, &message.payload);
                    message.sequence
                }
            },
        };
        let mut lease = Lease {
            js: js.clone(),
            stream,
            subject,
            instance,
            record: serde_json::to_vec(&LeaseRecord::new(instance))
                .expect("lease records serialize")
                .into(),
            prefix: prefix.to_string(),
            sequence: expected,
        };
        lease.write().await.map_err(|_| LeaseError::Held {
            holder: "unknown (it was taken while we tried)".into(),
            prefix: prefix.to_string(),
            ttl: LEASE_TTL,
        })?;
        Ok(lease)
    }

    /// Writes our id if the subject still ends at our last sequence.
    async fn write(&mut self) -> Result<(), LeaseError> {
        let publish = jetstream::message::PublishMessage::build()
            .payload(self.record.clone())
            .expected_last_subject_sequence(self.sequence);
        let ack = self
            .js
            .send_publish(self.subject.clone(), publish)
            .await
            .map_err(|e| nats_error("publish", e))?
            .await
            .map_err(|e| nats_error("publish ack", e))?;
        self.sequence = ack.sequence;
        Ok(())
    }

    /// Renews the lease; `Lost` if another instance wrote in between.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        match self.write().await {
            Ok(()) => Ok(()),
            Err(error) => {
                let last = self
                    .stream
                    .get_last_raw_message_by_subject(&self.subject)
                    .await
                    .ok();
                match last {
                    // Ours expired (we were cut off longer than the TTL) and
                    // nobody took it: take it again.
                    None => {
                        self.sequence = 0;
                        self.write().await
                    }
                    Some(message) => match LeaseRecord::parse(&message.payload) {
                        Some(holder) if holder.instance == self.instance => {
                            self.sequence = message.sequence;
                            Err(error)
                        }
                        Some(holder) => Err(LeaseError::Lost {
                            prefix: self.prefix.clone(),
                            holder: holder.describe(),
                        }),
                        None => {
                            report_foreign(&self.subject, &message.payload);
                            self.sequence = message.sequence;
                            self.write().await
                        }
                    },
                }
            }
        }
    }

    /// Gives the prefix up at a clean shutdown, so a successor need not wait.
    pub async fn release(self) {
        if let Err(error) = self.stream.delete_message(self.sequence).await {
            tracing::warn!(%error, "could not release the lease; it expires by itself");
        }
    }
}

/// A message on the lease subject that no `cpor serve` wrote: said loudly,
/// then overwritten (someone can publish where only the service should).
fn report_foreign(subject: &str, payload: &[u8]) {
    tracing::error!(
        subject,
        payload = %show_payload(payload),
        "the lease subject holds a message that is not a cpor lease record; \
         ignoring it and keeping the lease (let only the service's NATS user publish on this subject)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lease_records_of_cpor_instances_are_read_as_leases() {
        let instance = Uuid::new_v4();
        let record = serde_json::to_vec(&LeaseRecord::new(instance)).unwrap();
        assert_eq!(
            LeaseRecord::parse(&record).map(|r| r.instance),
            Some(instance)
        );
        // What versions before the record wrote: the bare instance id.
        let bare = instance.to_string();
        assert_eq!(
            LeaseRecord::parse(bare.as_bytes()).map(|r| r.instance),
            Some(instance)
        );
        for foreign in [
            &b"attacker"[..],
            b"",
            b"\xff\xfe",
            b"{}",
            br#"{"cpor_lease":2,"instance":"9f1c8a52-3b7e-4c0e-9a55-0d3c7b1e2f40","host":"","pid":1}"#,
            br#"{"cpor_lease":1,"instance":"attacker","host":"","pid":1}"#,
            b"9f1c8a523b7e4c0e9a550d3c7b1e2f40",
        ] {
            assert_eq!(LeaseRecord::parse(foreign), None, "{foreign:?}");
        }
        let long = vec![b' '; LEASE_RECORD_MAX_BYTES + 1];
        assert_eq!(LeaseRecord::parse(&long), None);
    }
}
