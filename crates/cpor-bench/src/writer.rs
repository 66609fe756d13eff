//! The engine's writer loop without NATS and without tokio: authorize,
//! idempotency lookup, decide, append, record, commit, flush — the same
//! public calls `cpor-engine` makes, so the raw-log figure is the ceiling of
//! the writer itself and a generated log is what the service would write.

use std::collections::BTreeSet;
use std::path::Path;

use uuid::Uuid;

use cpor_domain::calendar::Calendar;
use cpor_domain::command::{Command, CommandEnvelope};
use cpor_domain::decide::{authorize, decide, Context};
use cpor_domain::state::State;
use cpor_domain::types::{Actor, DeadlineKind, Timestamp};
use cpor_engine::Accepted;
use cpor_log::{Appender, CommandRecord, Log, LogError};

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
        if let Err(rejection) = authorize(envelope) {
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
        let mut types = Vec::with_capacity(decision.events.len());
        for (index, event) in decision.events.iter().enumerate() {
            types.push(format!(
                "{}.{}.{}",
                cpor_log::envelope::EVENT_TYPE_PREFIX,
                event.data.aggregate_kind().as_str(),
                event.data.name()
            ));
            appender.append(
                &mut self.state,
                event,
                now,
                envelope.command_id,
                envelope.correlation_id.as_deref(),
                index as u32,
            )?;
        }
        let version = match (&decision.claim_id, decision.events.first()) {
            (Some(claim_id), _) => self.state.claims.get(claim_id).map_or(0, |c| c.version),
            (None, Some(event)) => self.state.version_of(&event.data.aggregate()),
            (None, None) => 0,
        };
        let accepted = Accepted {
            claim_id: decision.claim_id,
            version,
            events: types,
            warnings: decision.warnings,
        };
        let record = CommandRecord {
            fingerprint: fingerprint.to_string(),
            reply: serde_json::to_value(&accepted).expect("replies serialize"),
        };
        appender.record_command(&envelope.command_id, &record);
        Ok(Outcome::Accepted(decision.events.len()))
    }

    /// Fires every watched deadline due by `now` (at most `max`), as the
    /// engine's scheduler does. Returns the events written.
    pub fn fire_deadlines(
        &mut self,
        appender: &mut Appender,
        now: Timestamp,
        max: usize,
    ) -> Result<u64, LogError> {
        let mut fired = 0;
        let mut written = 0;
        while fired < max {
            let next = self
                .state
                .deadlines
                .iter()
                .find(|d| !self.skipped_deadlines.contains(d))
                .copied();
            let Some((due, claim_id, kind)) = next else {
                break;
            };
            if due > now {
                break;
            }
            fired += 1;
            let envelope = CommandEnvelope {
                command_id: cpor_engine::deadline_command_id(claim_id, kind, due),
                actor: Actor::System {
                    id: "cpor-scheduler".to_string(),
                },
                correlation_id: None,
                expected_version: None,
                command: Command::DeadlineElapsed {
                    claim_id,
                    kind,
                    due_at: due,
                },
            };
            let ctx = Context {
                now,
                calendar: &self.calendar,
            };
            let events = decide(&self.state, &envelope, &ctx)
                .map(|d| d.events)
                .unwrap_or_default();
            if events.is_empty() {
                self.skipped_deadlines.insert((due, claim_id, kind));
                continue;
            }
            for (index, event) in events.iter().enumerate() {
                appender.append(
                    &mut self.state,
                    event,
                    now,
                    envelope.command_id,
                    None,
                    index as u32,
                )?;
                written += 1;
            }
        }
        Ok(written)
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
