//! The engine's writer loop without NATS and without tokio: authorize,
//! idempotency lookup, decide, append, record, commit, flush — the same
//! public calls `cpor-engine` makes, so the raw-log figure is the ceiling of
//! the writer itself and a generated log is what the service would write.

use std::collections::BTreeSet;
use std::path::Path;

use uuid::Uuid;

use cpor_domain::access::authorize_envelope;
use cpor_domain::calendar::Calendar;
use cpor_domain::command::CommandEnvelope;
use cpor_domain::decide::{decide, Context};
use cpor_domain::state::State;
use cpor_domain::types::{DeadlineKind, Timestamp};
use cpor_log::{Appender, Log, LogError};

/// What one command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: this many events written.
    Accepted(usize),
    /// Refused (nothing written), with the error code.
    Refused(&'static str),
}

pub struct Writer {
    log: Log,
    state: State,
    calendar: Calendar,
    /// Deadlines that decided nothing (as in the engine: never retried).
    skipped_deadlines: BTreeSet<(Timestamp, Uuid, DeadlineKind)>,
}

impl Writer {
    /// Opens (or creates) the log in `dir` and folds its state.
    pub fn open(dir: &Path) -> Result<Writer, LogError> {
        let (log, state) = Log::open(dir)?;
        Ok(Writer {
            log,
            state,
            calendar: Calendar::default(),
            skipped_deadlines: BTreeSet::new(),
        })
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where new ids come from (random unless set; the generator seeds them).
    pub fn set_id_source(&mut self, ids: cpor_log::IdSource) {
        self.log.set_id_source(ids);
    }

    pub fn begin(&self) -> Appender {
        self.log.begin()
    }

    /// One command, as the engine's writer does it. `lookup` checks the
    /// idempotency record in the store first (the engine always does; a
    /// generator whose command ids are fresh may skip it).
    pub fn command(
        &mut self,
        appender: &mut Appender,
        envelope: &CommandEnvelope,
        fingerprint: &str,
        now: Timestamp,
        lookup: bool,
    ) -> Result<Outcome, LogError> {
        if let Err(rejection) = authorize_envelope(envelope) {
            return Ok(Outcome::Refused(rejection.code.as_str()));
        }
        if lookup
            && self
                .log
                .reader()
                .command_record(&envelope.command_id)?
                .is_some()
        {
            return Ok(Outcome::Refused("DUPLICATE"));
        }
        let ctx = Context {
            now,
            calendar: &self.calendar,
        };
        let decision = match decide(&self.state, envelope, &ctx) {
            Ok(decision) => decision,
            Err(rejection) => return Ok(Outcome::Refused(rejection.code.as_str())),
        };
        let events = decision.events.len();
        cpor_engine::append_decision(
            &mut self.state,
            appender,
            envelope,
            decision,
            now,
            fingerprint,
        )?;
        Ok(Outcome::Accepted(events))
    }

    /// Fires every watched deadline due by `now` (at most `max`), as the
    /// engine's scheduler does. Returns the events written.
    pub fn fire_deadlines(
        &mut self,
        appender: &mut Appender,
        now: Timestamp,
        max: usize,
    ) -> Result<u64, LogError> {
        cpor_engine::fire_due_deadlines(
            &mut self.state,
            appender,
            &self.calendar,
            &mut self.skipped_deadlines,
            now,
            max,
        )
    }

    /// Writes the batch (not yet durable).
    pub fn commit(&mut self, appender: Appender) -> Result<u64, LogError> {
        Ok(self.log.commit(appender, &self.state)?.position)
    }

    /// Makes everything written durable (one flush, as per group commit).
    pub fn flush(&self) -> Result<(), LogError> {
        self.log.reader().flush_blocking()
    }
}
