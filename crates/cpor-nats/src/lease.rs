//! One instance owns a prefix.
//!
//! Two services writing two logs for one prefix would split its history, so
//! `cpor serve` takes a lease before it serves: the last message on subject
//! `{prefix}.lease` in stream `{PREFIX}_LEASE`, which keeps one message and
//! drops it [`LEASE_TTL`] after it was written unless the holder renews it.
//! Every write is conditional on the subject's last sequence (compare and
//! swap), so two instances cannot both believe they won.
//!
//! The value is the data dir's instance id: a restart on the same data dir
//! (after a crash, before the lease expired) may take the lease over at
//! once, because sled's file lock already guarantees that only one process
//! has that data dir open.
//!
//! (A plain stream rather than a key-value bucket: the Debian nats-server
//! 2.9 answers async-nats' bucket creation in a form the client rejects.)

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// How long a lease outlives its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often the holder renews (well within the TTL).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("another cpor serve (instance {holder}) owns prefix {prefix} on this NATS server; stop it first, or wait {ttl:?} after it stopped, or use another --prefix")]
    Held {
        holder: String,
        prefix: String,
        ttl: Duration,
    },
    #[error("the lease for prefix {prefix} was taken by another writer")]
    Lost { prefix: String },
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
    instance: String,
    prefix: String,
    /// Stream sequence of our last lease message.
    sequence: u64,
}

impl Lease {
    pub async fn acquire(
        js: &jetstream::Context,
        prefix: &str,
        instance: &str,
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
            Some(message) if message.payload.as_ref() != instance.as_bytes() => {
                return Err(LeaseError::Held {
                    holder: String::from_utf8_lossy(&message.payload).to_string(),
                    prefix: prefix.to_string(),
                    ttl: LEASE_TTL,
                });
            }
            Some(message) => message.sequence,
            None => 0,
        };
        let mut lease = Lease {
            js: js.clone(),
            stream,
            subject,
            instance: instance.to_string(),
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
            .payload(self.instance.clone().into())
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
                    Some(message) if message.payload.as_ref() == self.instance.as_bytes() => {
                        self.sequence = message.sequence;
                        Err(error)
                    }
                    Some(_) => Err(LeaseError::Lost {
                        prefix: self.prefix.clone(),
                    }),
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
