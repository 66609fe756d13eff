//! Migration of a status stream written under contract v1.0.
//!
//! v1.0 published a claim's status on `{prefix}.status.claim.{claim_id}`;
//! v1.1 (§5) publishes it on `{prefix}.status.claim.{partner_id}.{claim_id}`.
//! A `{PREFIX}_STATUS` stream kept from a v1.0 service holds the old form.
//! On start, before the relay publishes anything, the service:
//!
//! 1. sets the stream's subjects to [`status_stream_subjects`] if they
//!    differ (a stream made by hand or by an older deployment);
//! 2. if any message is on an old-form subject, republishes the status of
//!    every claim under the new form, from the log (the source of truth,
//!    never from the old payloads, which anyone could have written on an
//!    unsecured server), up to the published position, with the relay's
//!    usual rule that a view never goes out ahead of its claim's published
//!    events;
//! 3. and only then purges the old-form subjects, so a dashboard that reads
//!    the stream meanwhile finds every claim under one form or the other.
//!
//! A crash anywhere in between leaves old-form messages, so the next start
//! migrates again; republishing a status is idempotent (last value per
//! subject).

use futures::TryStreamExt;

use super::{status_stream_subjects, stream_names, Relay, RelayError};

/// What [`Relay::migrate_status_subjects`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusMigration {
    /// The stream's subjects were changed to the v1.1 ones.
    pub subjects_changed: bool,
    /// Old-form (`{prefix}.status.claim.{claim_id}`) messages purged after
    /// every claim's status was republished under the new form.
    pub old_form_purged: u64,
}

impl Relay {
    /// Migrates `{PREFIX}_STATUS` from v1.0 status subjects to v1.1 (module
    /// docs). `published` is the position the relay resumes after
    /// ([`Relay::resume_position`]); call it before [`Relay::run`].
    ///
    /// Errors: NATS errors (stream missing, no permission to update it,
    /// JetStream unavailable), log read errors.
    pub async fn migrate_status_subjects(
        &self,
        published: u64,
    ) -> Result<StatusMigration, RelayError> {
        let nats = |e: async_nats::Error| RelayError::Nats(e);
        let (_, status_name) = stream_names(&self.prefix);
        let mut stream = self
            .js
            .get_stream(&status_name)
            .await
            .map_err(|e| nats(e.into()))?;
        let mut migration = StatusMigration::default();

        let wanted = status_stream_subjects(&self.prefix);
        let config = stream
            .info()
            .await
            .map_err(|e| nats(e.into()))?
            .config
            .clone();
        if config.subjects != wanted {
            tracing::info!(
                stream = %status_name,
                from = ?config.subjects,
                to = ?wanted,
                "changing the status stream's subjects (contract v1.1)"
            );
            let mut config = config;
            config.subjects = wanted;
            self.js
                .update_stream(config)
                .await
                .map_err(|e| nats(e.into()))?;
            migration.subjects_changed = true;
        }

        let old_form = format!("{}.status.claim.*", self.prefix);
        let mut subjects = stream
            .info_with_subjects(&old_form)
            .await
            .map_err(|e| nats(e.into()))?;
        if subjects
            .try_next()
            .await
            .map_err(|e| nats(e.into()))?
            .is_none()
        {
            return Ok(migration);
        }
        tracing::info!(
            stream = %status_name,
            published,
            "the status stream holds v1.0 subjects ({old_form}): republishing every claim's status as {}.status.claim.{{partner_id}}.{{claim_id}}",
            self.prefix
        );
        self.republish_statuses(0, published).await.map_err(nats)?;
        migration.old_form_purged = stream
            .purge()
            .filter(&old_form)
            .await
            .map_err(|e| nats(e.into()))?
            .purged;
        tracing::info!(
            purged = migration.old_form_purged,
            "status stream migrated: old-form subjects purged"
        );
        Ok(migration)
    }
}
