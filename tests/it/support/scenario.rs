//! The scenario step language of `tests/scenarios/README.md`: parsing and
//! running steps against a service.
//!
//! Steps: `use`, `clock`, `send` (`body` | `raw`, `expect`, `capture`),
//! `events` (`types`), `status` (`expect`), `restart` (`term` | `kill`).
//! Keys starting with `_` are comments and ignored; any other unknown key is
//! an error, so a typo cannot silently weaken a scenario.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::jetstream::{event_types, last_status, status_subject_any_partner};
use super::matcher::matches;
use super::nats::try_request;
use super::service::{clock_body, Service};
use super::vars::{get_path, Vars};

/// How long `events` and `status` steps wait for what they expect.
pub(crate) const STEP_WAIT: Duration = Duration::from_secs(5);
/// How deep `use` may nest.
const MAX_USE_DEPTH: usize = 8;

/// One scenario file: `{"name": …, "steps": [...]}`.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    pub(crate) steps: Vec<Step>,
}

/// The fixtures of `_fixtures.json`: name → steps (keys starting with `_`
/// are comments).
#[derive(Debug, Clone, Default)]
pub(crate) struct Fixtures {
    pub(crate) sets: BTreeMap<String, Vec<Step>>,
}

/// What `restart` does to the running service before starting it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartKind {
    /// SIGTERM; the service must exit 0.
    Term,
    /// SIGKILL.
    Kill,
}

/// One step, still with its variables unresolved.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Use(String),
    Clock(Value),
    Send {
        subject: String,
        payload: Payload,
        expect: Option<Value>,
        capture: Vec<(String, String)>,
    },
    Events {
        target: String,
        types: Vec<Value>,
    },
    Status {
        claim: String,
        expect: Value,
    },
    Restart(RestartKind),
}

/// What a `send` step sends.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// `body`: JSON, variables substituted; absent means `{}`.
    Body(Value),
    /// `raw`: these bytes, as they are (no substitution).
    Raw(String),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Use(name) => write!(f, "use {name:?}"),
            Step::Clock(now) => write!(f, "clock {now}"),
            Step::Send { subject, .. } => write!(f, "send {subject:?}"),
            Step::Events { target, .. } => write!(f, "events {target:?}"),
            Step::Status { claim, .. } => write!(f, "status {claim:?}"),
            Step::Restart(RestartKind::Term) => write!(f, "restart \"term\""),
            Step::Restart(RestartKind::Kill) => write!(f, "restart \"kill\""),
        }
    }
}

const STEP_KINDS: [&str; 6] = ["use", "clock", "send", "events", "status", "restart"];

/// Parses one step object.
pub(crate) fn parse_step(value: &Value) -> Result<Step, String> {
    let obj = value
        .as_object()
        .ok_or_else(|| format!("a step must be an object, got {value}"))?;
    let kinds: Vec<&str> = STEP_KINDS
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let kind = match kinds.as_slice() {
        [k] => *k,
        [] => return Err(format!("step has none of the keys {STEP_KINDS:?}: {value}")),
        _ => {
            return Err(format!(
                "step has more than one of the keys {kinds:?}: {value}"
            ))
        }
    };
    let allowed: &[&str] = match kind {
        "send" => &["send", "body", "raw", "expect", "capture"],
        "events" => &["events", "types"],
        "status" => &["status", "expect"],
        other => &[other][..],
    };
    let allowed = allowed.to_vec();
    if let Some(extra) = obj
        .keys()
        .find(|k| !k.starts_with('_') && !allowed.contains(&k.as_str()))
    {
        return Err(format!(
            "`{kind}` step has an unknown key `{extra}`: {value}"
        ));
    }
    let string = |key: &str| -> Result<String, String> {
        obj[key]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("`{key}` must be a string: {value}"))
    };
    Ok(match kind {
        "use" => Step::Use(string("use")?),
        "clock" => {
            if !obj["clock"].is_string() {
                return Err(format!("`clock` must be a string: {value}"));
            }
            Step::Clock(obj["clock"].clone())
        }
        "send" => {
            let payload = match (obj.get("body"), obj.get("raw")) {
                (Some(_), Some(_)) => {
                    return Err(format!("`send` has both `body` and `raw`: {value}"))
                }
                (Some(body), None) => Payload::Body(body.clone()),
                (None, Some(Value::String(raw))) => Payload::Raw(raw.clone()),
                (None, Some(_)) => return Err(format!("`raw` must be a string: {value}")),
                (None, None) => Payload::Body(json!({})),
            };
            let capture = match obj.get("capture") {
                None => Vec::new(),
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(var, path)| match path.as_str() {
                        Some(p) if !p.is_empty() => Ok((var.clone(), p.to_string())),
                        _ => Err(format!(
                            "`capture.{var}` must be a dot path string: {value}"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("`capture` must be an object: {value}")),
            };
            Step::Send {
                subject: string("send")?,
                payload,
                expect: obj.get("expect").cloned(),
                capture,
            }
        }
        "events" => {
            let target = string("events")?;
            if !target.contains('/') {
                return Err(format!("`events` must be \"aggregate/id\": {value}"));
            }
            let types = obj
                .get("types")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("`events` step needs a `types` list: {value}"))?
                .clone();
            Step::Events { target, types }
        }
        "status" => Step::Status {
            claim: string("status")?,
            expect: obj
                .get("expect")
                .cloned()
                .ok_or_else(|| format!("`status` step needs `expect`: {value}"))?,
        },
        "restart" => match obj["restart"].as_str() {
            Some("term") => Step::Restart(RestartKind::Term),
            Some("kill") => Step::Restart(RestartKind::Kill),
            _ => return Err(format!("`restart` must be \"term\" or \"kill\": {value}")),
        },
        _ => unreachable!(),
    })
}

fn parse_steps(values: &Value, what: &str) -> Result<Vec<Step>, String> {
    values
        .as_array()
        .ok_or_else(|| format!("{what} must be a list of steps"))?
        .iter()
        .enumerate()
        .map(|(i, v)| parse_step(v).map_err(|e| format!("{what}, step {i}: {e}")))
        .collect()
}

impl Scenario {
    pub(crate) fn parse(value: &Value) -> Result<Scenario, String> {
        let obj = value.as_object().ok_or("a scenario must be an object")?;
        if let Some(extra) = obj
            .keys()
            .find(|k| !k.starts_with('_') && *k != "name" && *k != "steps")
        {
            return Err(format!("unknown scenario key `{extra}`"));
        }
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a scenario needs a string `name`")?
            .to_string();
        let steps = parse_steps(
            obj.get("steps").ok_or("a scenario needs `steps`")?,
            "`steps`",
        )?;
        Ok(Scenario { name, steps })
    }

    pub(crate) fn load(path: &Path) -> Result<Scenario, String> {
        Self::parse(&read_json(path)?).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Every `use` names a fixture that exists (recursively, bounded).
    pub(crate) fn check_fixtures(&self, fixtures: &Fixtures) -> Result<(), String> {
        fn check(steps: &[Step], fixtures: &Fixtures, depth: usize) -> Result<(), String> {
            for step in steps {
                if let Step::Use(name) = step {
                    if depth >= MAX_USE_DEPTH {
                        return Err(format!("`use` nests deeper than {MAX_USE_DEPTH}"));
                    }
                    let inner = fixtures
                        .sets
                        .get(name)
                        .ok_or_else(|| format!("no fixture named {name:?}"))?;
                    check(inner, fixtures, depth + 1)?;
                }
            }
            Ok(())
        }
        check(&self.steps, fixtures, 0).map_err(|e| format!("scenario `{}`: {e}", self.name))
    }
}

impl Fixtures {
    pub(crate) fn parse(value: &Value) -> Result<Fixtures, String> {
        let obj = value.as_object().ok_or("fixtures must be an object")?;
        let mut sets = BTreeMap::new();
        for (name, steps) in obj.iter().filter(|(k, _)| !k.starts_with('_')) {
            sets.insert(
                name.clone(),
                parse_steps(steps, &format!("fixture {name:?}"))?,
            );
        }
        Ok(Fixtures { sets })
    }

    pub(crate) fn load(path: &Path) -> Result<Fixtures, String> {
        Self::parse(&read_json(path)?).map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))
}

/// Runs steps against one service. `service` is needed only by `restart`;
/// without it a `restart` step fails.
pub(crate) struct Runner<'a> {
    scenario: String,
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    prefix: String,
    fixtures: &'a Fixtures,
    service: Option<&'a mut Service>,
    pub(crate) vars: Vars,
    pub(crate) wait: Duration,
}

/// Where a step is: `step 3 (send "…")`, or inside a fixture
/// `step 0 (use "standard") > fixture step 4 (send "…")`.
type Location = Vec<String>;

impl<'a> Runner<'a> {
    pub(crate) fn new(
        scenario: &str,
        client: &async_nats::Client,
        prefix: &str,
        fixtures: &'a Fixtures,
    ) -> Self {
        Runner {
            scenario: scenario.to_string(),
            client: client.clone(),
            js: async_nats::jetstream::new(client.clone()),
            prefix: prefix.to_string(),
            fixtures,
            service: None,
            vars: Vars::new(),
            wait: STEP_WAIT,
        }
    }

    pub(crate) fn with_service(mut self, service: &'a mut Service) -> Self {
        self.service = Some(service);
        self
    }

    /// Runs the steps in order; the first failure names the scenario and the
    /// step and shows expected vs actual.
    pub(crate) async fn run(&mut self, steps: &[Step]) -> Result<(), String> {
        self.run_at(steps, &Vec::new(), 0).await
    }

    async fn run_at(
        &mut self,
        steps: &[Step],
        outer: &Location,
        depth: usize,
    ) -> Result<(), String> {
        for (i, step) in steps.iter().enumerate() {
            let mut location = outer.clone();
            let label = if outer.is_empty() {
                "step"
            } else {
                "fixture step"
            };
            location.push(format!("{label} {i} ({step})"));
            if let Step::Use(name) = step {
                let inner = self.fixtures.sets.get(name).ok_or_else(|| {
                    self.failure(&location, &format!("no fixture named {name:?}"))
                })?;
                if depth >= MAX_USE_DEPTH {
                    return Err(self.failure(&location, "`use` nests too deep"));
                }
                Box::pin(self.run_at(inner, &location, depth + 1)).await?;
                continue;
            }
            self.run_step(step)
                .await
                .map_err(|e| self.failure(&location, &e))?;
        }
        Ok(())
    }

    fn failure(&self, location: &Location, message: &str) -> String {
        let vars = serde_json::to_string(self.vars.all()).unwrap_or_default();
        format!(
            "scenario `{}`, {}:\n{message}\n(prefix {}, variables {vars})",
            self.scenario,
            location.join(" > "),
            self.prefix
        )
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    async fn run_step(&mut self, step: &Step) -> Result<(), String> {
        match step {
            Step::Use(_) => unreachable!("handled by run_at"),
            Step::Clock(now) => {
                let now = self.vars.substitute(now)?;
                let body = clock_body(&now);
                let reply =
                    try_request(&self.client, &self.subject("admin.clock"), body.to_string())
                        .await?;
                check(&json!({"ok": true}), &reply, &body)
            }
            Step::Send {
                subject,
                payload,
                expect,
                capture,
            } => {
                let subject = self.vars.substitute_str(subject)?;
                let (bytes, sent) = match payload {
                    Payload::Raw(raw) => (raw.clone().into_bytes(), Value::String(raw.clone())),
                    Payload::Body(body) => {
                        let mut body = self.vars.substitute(body)?;
                        if subject.starts_with("cmd.") {
                            if let Value::Object(map) = &mut body {
                                map.entry("command_id").or_insert_with(|| {
                                    Value::String(uuid::Uuid::new_v4().to_string())
                                });
                            }
                        }
                        (body.to_string().into_bytes(), body)
                    }
                };
                let reply = try_request(&self.client, &self.subject(&subject), bytes).await?;
                if let Some(expect) = expect {
                    let expect = self.vars.substitute(expect)?;
                    check(&expect, &reply, &sent)?;
                }
                for (var, path) in capture {
                    let value = get_path(&reply, path).ok_or_else(|| {
                        format!(
                            "capture `{var}`: the reply has no `{path}`\nreply: {}",
                            pretty(&reply)
                        )
                    })?;
                    self.vars.set(var, value.clone());
                }
                Ok(())
            }
            Step::Events { target, types } => {
                let target = self.vars.substitute_str(target)?;
                let (aggregate, id) = target
                    .split_once('/')
                    .ok_or_else(|| format!("`events` target {target:?} is not aggregate/id"))?;
                check_token("aggregate", aggregate)?;
                check_token("id", id)?;
                let expected = self.vars.substitute(&Value::Array(types.clone()))?;
                let (js, prefix) = (self.js.clone(), self.prefix.clone());
                self.eventually(|| {
                    let (js, prefix, expected) = (js.clone(), prefix.clone(), expected.clone());
                    let (aggregate, id) = (aggregate.to_string(), id.to_string());
                    async move {
                        let actual = event_types(&js, &prefix, &aggregate, &id).await?;
                        let actual = json!(actual);
                        if actual == expected {
                            Ok(())
                        } else {
                            Err(format!(
                                "the event types on {prefix}.evt.{aggregate}.{id}.> differ\n\
                                 expected: {}\nactual:   {}",
                                pretty(&expected),
                                pretty(&actual)
                            ))
                        }
                    }
                })
                .await
            }
            Step::Status { claim, expect } => {
                let claim = self.vars.substitute_str(claim)?;
                check_token("claim id", &claim)?;
                let expect = self.vars.substitute(expect)?;
                let (js, prefix) = (self.js.clone(), self.prefix.clone());
                self.eventually(|| {
                    let (js, prefix) = (js.clone(), prefix.clone());
                    let (claim, expect) = (claim.clone(), expect.clone());
                    async move {
                        let subject = status_subject_any_partner(&prefix, &claim);
                        match last_status(&js, &prefix, &claim).await? {
                            None => Err(format!(
                                "no message on {subject}\nexpected: {}",
                                pretty(&expect)
                            )),
                            Some(actual) => matches(&expect, &actual).map_err(|why| {
                                format!(
                                    "the last status on {subject} does not match: {why}\n\
                                     expected: {}\nactual:   {}",
                                    pretty(&expect),
                                    pretty(&actual)
                                )
                            }),
                        }
                    }
                })
                .await
            }
            Step::Restart(kind) => {
                let service = self
                    .service
                    .as_deref_mut()
                    .ok_or("`restart` needs a service the runner controls")?;
                match kind {
                    RestartKind::Term => service.try_terminate().await?,
                    RestartKind::Kill => service.kill().await,
                }
                service.try_start_again().await
            }
        }
    }

    /// Retries `attempt` until it succeeds or `self.wait` passes. Each try
    /// first waits until the service has published everything it logged
    /// (`published_position == log_position` in `qry.health`), so a stale
    /// view is never compared.
    async fn eventually<F, Fut>(&self, attempt: F) -> Result<(), String>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        let deadline = Instant::now() + self.wait;
        loop {
            let result = match self.published().await {
                Ok(()) => attempt().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("after {:?}: {e}", self.wait))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Ok when health shows everything logged is published.
    async fn published(&self) -> Result<(), String> {
        let health = try_request(&self.client, &self.subject("qry.health"), "{}").await?;
        let log = health.get("log_position").and_then(Value::as_u64);
        let published = health.get("published_position").and_then(Value::as_u64);
        match (log, published) {
            (Some(l), Some(p)) if l == p => Ok(()),
            (Some(_), Some(_)) => Err(format!(
                "the service has not published everything it logged yet: health {health}"
            )),
            _ => Err(format!(
                "health lacks integer log_position/published_position: {health}"
            )),
        }
    }
}

/// `expect` against a reply, with both (and what was sent) in the message.
fn check(expect: &Value, reply: &Value, sent: &Value) -> Result<(), String> {
    matches(expect, reply).map_err(|why| {
        format!(
            "the reply does not match: {why}\nexpected: {}\nactual:   {}\nsent:     {}",
            pretty(expect),
            pretty(reply),
            pretty(sent)
        )
    })
}

/// A subject token must not be empty nor contain `.`, `*`, `>` or whitespace.
fn check_token(what: &str, token: &str) -> Result<(), String> {
    if token.is_empty()
        || token
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    {
        return Err(format!("{what} {token:?} cannot be a subject token"));
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::{events_stream, status_stream, unique_prefix, NatsServer};
    use async_nats::jetstream::stream;
    use futures::StreamExt;
    use std::sync::{Arc, Mutex};

    #[test]
    fn parses_steps() {
        let s = parse_step(&json!({"send": "cmd.x", "body": {"a": 1}, "expect": {"ok": true}, "capture": {"c": "claim_id"}})).unwrap();
        assert!(
            matches!(s, Step::Send { ref capture, .. } if capture == &[("c".to_string(), "claim_id".to_string())])
        );
        assert!(matches!(
            parse_step(&json!({"send": "x", "raw": "zz"})).unwrap(),
            Step::Send {
                payload: Payload::Raw(_),
                ..
            }
        ));
        assert!(matches!(
            parse_step(&json!({"restart": "kill"})).unwrap(),
            Step::Restart(RestartKind::Kill)
        ));
        assert!(parse_step(&json!({"restart": "stop"})).is_err());
        assert!(parse_step(&json!({"send": "x", "body": {}, "raw": "y"})).is_err());
        assert!(parse_step(&json!({"send": "x", "expct": {}})).is_err());
        assert!(parse_step(&json!({"send": "x", "_note": "fine"})).is_ok());
        assert!(parse_step(&json!({"status": "$c1"})).is_err());
        assert!(parse_step(&json!({"events": "c1", "types": []})).is_err());
        assert!(parse_step(&json!({"events": "claim/$c1"})).is_err());
        assert!(parse_step(&json!({"frobnicate": 1})).is_err());
        assert!(parse_step(&json!({"use": "a", "clock": "b"})).is_err());
        assert!(parse_step(&json!([1])).is_err());
    }

    /// A stand-in for `cpor serve`, just enough to drive the runner through
    /// every step kind on a real NATS server.
    async fn fake_service(client: async_nats::Client, prefix: String) -> Arc<Mutex<Vec<Value>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let js = async_nats::jetstream::new(client.clone());
        js.create_stream(stream::Config {
            name: events_stream(&prefix),
            subjects: vec![format!("{prefix}.evt.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        js.create_stream(stream::Config {
            name: status_stream(&prefix),
            subjects: vec![format!("{prefix}.status.>")],
            max_messages_per_subject: 1,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut sub = client.subscribe(format!("{prefix}.>")).await.unwrap();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            let mut position = 0u64;
            while let Some(msg) = sub.next().await {
                let Some(reply_to) = msg.reply.clone() else {
                    continue;
                };
                let rest = msg.subject.as_str()[prefix.len() + 1..].to_string();
                let body: Value = match serde_json::from_slice(&msg.payload) {
                    Ok(v) => v,
                    Err(_) => {
                        let r = json!({"ok": false, "error": {"code": "INVALID_JSON"}});
                        client
                            .publish(reply_to, r.to_string().into())
                            .await
                            .unwrap();
                        continue;
                    }
                };
                seen2
                    .lock()
                    .unwrap()
                    .push(json!({"subject": rest, "body": body}));
                let reply = match rest.as_str() {
                    "qry.health" => {
                        json!({"ok": true, "log_position": position, "published_position": position})
                    }
                    "admin.clock" => json!({"ok": true}),
                    "cmd.partner.P-1.submit" => {
                        let id = body["claim_id"].as_str().unwrap().to_string();
                        position += 1;
                        js.publish(
                            format!("{prefix}.evt.claim.{id}.submitted"),
                            json!({"type": "cpor.claim.submitted"}).to_string().into(),
                        )
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                        js.publish(
                            format!("{prefix}.status.claim.P-1.{id}"),
                            json!({"claim_id": id, "status": "submitted", "review_due_at": "2026-12-03T00:00:00Z", "decided_at": null, "version": 1}).to_string().into(),
                        )
                        .await.unwrap().await.unwrap();
                        json!({"ok": true, "claim_id": id, "version": 1, "nested": {"n": [id]}})
                    }
                    _ => json!({"ok": false, "error": {"code": "INVALID_COMMAND"}}),
                };
                client
                    .publish(reply_to, reply.to_string().into())
                    .await
                    .unwrap();
            }
        });
        seen
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn runs_every_step_kind_against_a_fake_service() {
        let nats = NatsServer::shared_or_own();
        let client = nats.connect().await;
        let prefix = unique_prefix();
        let seen = fake_service(client.clone(), prefix.clone()).await;

        let fixtures = Fixtures::parse(&json!({
            "_doc": "x",
            "base": [{"clock": "2026-11-25T09:00:00Z"}],
            "outer": [{"use": "base"}, {"send": "qry.health", "body": {}, "expect": {"ok": true}}]
        }))
        .unwrap();
        let scenario = Scenario::parse(&json!({
            "name": "fake",
            "steps": [
                {"use": "outer"},
                {"send": "cmd.partner.P-1.submit", "body": {"claim_id": "$uuid:c1", "tenant_id": "$uuid:t1"},
                 "expect": {"ok": true, "claim_id": "$c1", "version": 1, "warnings": "$null"},
                 "capture": {"c1b": "claim_id", "n0": "nested.n.0"}},
                {"send": "cmd.partner.P-1.submit", "raw": "not json", "expect": {"ok": false, "error": {"code": "INVALID_JSON"}}},
                {"status": "$c1b", "expect": {"status": "submitted", "review_due_at": "2026-12-03T01:00:00+01:00", "decided_at": null, "claim_id": "$n0"}},
                {"events": "claim/$c1", "types": ["cpor.claim.submitted"]}
            ]
        }))
        .unwrap();
        scenario.check_fixtures(&fixtures).unwrap();
        let mut runner = Runner::new(&scenario.name, &client, &prefix, &fixtures);
        runner.run(&scenario.steps).await.unwrap();
        let c1 = runner.vars.get("c1").unwrap().clone();
        assert_eq!(runner.vars.get("c1b"), Some(&c1));

        let seen = seen.lock().unwrap().clone();
        let clock = &seen[0];
        assert_eq!(clock["subject"], "admin.clock");
        assert_eq!(
            clock["body"],
            json!({"actor": {"type": "system", "id": "test"}, "now": "2026-11-25T09:00:00Z"})
        );
        let submit = seen
            .iter()
            .find(|m| m["subject"] == "cmd.partner.P-1.submit")
            .unwrap();
        assert_eq!(submit["body"]["claim_id"], c1);
        assert!(uuid::Uuid::parse_str(submit["body"]["command_id"].as_str().unwrap()).is_ok());
        let health = seen.iter().find(|m| m["subject"] == "qry.health").unwrap();
        assert!(
            health["body"].get("command_id").is_none(),
            "no command_id outside cmd."
        );

        // Failures name the scenario and the step and show both sides.
        let mut fast = Runner::new("fake", &client, &prefix, &fixtures);
        fast.wait = Duration::from_millis(300);
        fast.vars.set("c1", c1.clone());
        let steps = vec![
            parse_step(&json!({"use": "outer"})).unwrap(),
            parse_step(&json!({"events": "claim/$c1", "types": ["cpor.claim.submitted", "cpor.claim.approved"]})).unwrap(),
        ];
        let err = fast.run(&steps).await.unwrap_err();
        assert!(
            err.contains("scenario `fake`, step 1 (events \"claim/$c1\")"),
            "{err}"
        );
        assert!(err.contains("cpor.claim.approved"), "{err}");

        let steps =
            vec![parse_step(&json!({"status": "$c1", "expect": {"status": "approved"}})).unwrap()];
        let err = fast.run(&steps).await.unwrap_err();
        assert!(
            err.contains("$.status: expected \"approved\", got \"submitted\""),
            "{err}"
        );

        let fixtures_bad =
            Fixtures::parse(&json!({"outer": [{"send": "qry.nope", "expect": {"ok": true}}]}))
                .unwrap();
        let mut r = Runner::new("fake", &client, &prefix, &fixtures_bad);
        let err = r
            .run(&[parse_step(&json!({"use": "outer"})).unwrap()])
            .await
            .unwrap_err();
        assert!(
            err.contains("step 0 (use \"outer\") > fixture step 0 (send \"qry.nope\")"),
            "{err}"
        );
        assert!(err.contains("INVALID_COMMAND"), "{err}");

        let err = r
            .run(&[parse_step(&json!({"restart": "term"})).unwrap()])
            .await
            .unwrap_err();
        assert!(err.contains("needs a service"), "{err}");

        let js = async_nats::jetstream::new(client.clone());
        crate::support::jetstream::delete_streams(&js, &prefix).await;
    }
}
