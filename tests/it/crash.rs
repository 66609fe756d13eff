//! Crash, shutdown and restart, with real processes: `cpor serve` killed
//! with SIGKILL and stopped with SIGTERM under load, a nats-server that goes
//! away and comes back, the prefix lease, the data dir lock, and start-up
//! refusals of bad settings.
//!
//! What every restart must keep (contract §3, §5, §8):
//! - nothing acknowledged is lost: every command answered `ok:true` is in
//!   the log after the restart;
//! - nothing is applied twice: resending any command (acknowledged or not)
//!   with its `command_id` and body returns `ok:true`, the acknowledged ones
//!   as `duplicate:true` with the first reply's fields, and every command's
//!   events are in the log exactly once;
//! - the relay catches up: `published_position == log_position`, the events
//!   stream holds positions 1..=N in order with no duplicate event id, and
//!   every claim's last status message equals its view.
//!
//! Each service test runs its own nats-server (`NatsServer::start_own`), so
//! stopping it or loading it touches no other test; streams are deleted at
//! the end anyway.

use cpor_testkit::actors;
use cpor_testkit::fixtures::wire::{self as fixtures, MPN_ID as MPN, PARTNER_ID as PARTNER};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::watch;
use uuid::Uuid;

use crate::support::jetstream::{delete_streams, last_status, read_all};
use crate::support::nats::answers_within;
use crate::support::service::{clock_body, run_to_exit};
use crate::support::{
    events_stream, try_request, unique_prefix, NatsServer, Service, ServiceOptions,
};

/// Concurrent closed-loop clients of the load.
const CLIENTS: usize = 8;
/// How long a load client waits for one reply before calling it unknown.
const LOAD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the relay may take to publish everything after a restart.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight at once while checking claims and statuses.
const CHECK_CONCURRENCY: usize = 16;

const START_TIME: &str = "2026-11-25T09:00:00Z";

fn system_actor() -> Value {
    actors::wire::system("crash-test")
}

fn partner_actor() -> Value {
    actors::wire::partner(PARTNER, "load@p-100.example")
}

// ---------------------------------------------------------------------------
// Commands and what their senders learned
// ---------------------------------------------------------------------------

/// One command as sent: subject (after the prefix), body with its
/// `command_id`, and what it is about.
#[derive(Clone, Debug)]
struct Cmd {
    tail: String,
    body: Value,
    command_id: String,
    claim_id: Option<String>,
    /// The text of a comment command.
    comment: Option<String>,
}

impl Cmd {
    fn new(tail: &str, mut body: Value, claim_id: Option<Uuid>, comment: Option<String>) -> Cmd {
        let command_id = Uuid::new_v4().to_string();
        body["command_id"] = json!(command_id);
        Cmd {
            tail: tail.to_string(),
            body,
            command_id,
            claim_id: claim_id.map(|c| c.to_string()),
            comment,
        }
    }

    fn describe(&self) -> String {
        format!("{} (command_id {})", self.tail, self.command_id)
    }
}

/// What the sender knows about a command.
#[derive(Clone, Debug)]
enum Outcome {
    /// Answered `ok:true`: acknowledged, must survive anything.
    Acked(Value),
    /// No answer (timeout, no responders, cancelled when the service went
    /// away): it may or may not be in the log.
    Unknown(String),
    /// Answered `ok:false`: never expected from this load.
    Refused(Value),
}

#[derive(Clone, Debug)]
struct Sent {
    cmd: Cmd,
    outcome: Outcome,
}

/// The five commands of one load iteration, on a tenant of its own so that
/// no two claims compete: tenant and subscription upserts, a claim, a
/// partner comment (1 event) and a reviewer comment (`review_started` +
/// `comment_added`: 2 events).
fn iteration(tag: &str, client: usize, i: usize) -> Vec<Cmd> {
    let tenant = Uuid::new_v4();
    let subscription = Uuid::new_v4();
    let claim = Uuid::new_v4();
    let domain = format!("{tag}-{client}-{i}.example.com");
    let partner_text = format!("partner note {tag}/{client}/{i}");
    let reviewer_text = format!("reviewer note {tag}/{client}/{i}");
    vec![
        Cmd::new(
            "cmd.ref.tenant",
            fixtures::tenant(&system_actor(), tenant, &[&domain]),
            None,
            None,
        ),
        Cmd::new(
            "cmd.ref.subscription",
            fixtures::subscription(&system_actor(), tenant, subscription),
            None,
            None,
        ),
        Cmd::new(
            &format!("cmd.partner.{PARTNER}.submit"),
            json!({"actor": partner_actor(), "claim_id": claim, "tenant_id": tenant,
                   "domain": domain, "solution_area": "business_applications",
                   "activity": "usage", "product": "dynamics_365_sales",
                   "subscription_id": subscription, "mpn_id": MPN}),
            Some(claim),
            None,
        ),
        Cmd::new(
            &format!("cmd.partner.{PARTNER}.comment"),
            json!({"actor": partner_actor(), "claim_id": claim, "text": partner_text}),
            Some(claim),
            Some(partner_text),
        ),
        Cmd::new(
            "cmd.review.comment",
            json!({"actor": actors::wire::reviewer(), "claim_id": claim, "text": reviewer_text}),
            Some(claim),
            Some(reviewer_text),
        ),
    ]
}

/// Everything learned over a test: the final reply of every command (the
/// first `ok:true`, or the reply to its resend), and every claim.
#[derive(Default)]
struct Book {
    replies: HashMap<String, (Cmd, Value)>,
    claims: BTreeSet<String>,
}

impl Book {
    fn record(&mut self, cmd: &Cmd, reply: &Value) {
        if let Some(claim) = &cmd.claim_id {
            self.claims.insert(claim.clone());
        }
        self.replies
            .insert(cmd.command_id.clone(), (cmd.clone(), reply.clone()));
    }
}

/// Sends one command, asserting `ok:true`, and records it.
async fn send_ok(client: &async_nats::Client, prefix: &str, cmd: &Cmd, book: &mut Book) -> Value {
    let reply = try_request(
        client,
        &format!("{prefix}.{}", cmd.tail),
        cmd.body.to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {e}", cmd.describe()));
    assert_eq!(
        reply["ok"],
        true,
        "{} was refused: {reply}\nbody: {}",
        cmd.describe(),
        cmd.body
    );
    book.record(cmd, &reply);
    reply
}

/// The manual clock and the partner the load submits for.
async fn setup(client: &async_nats::Client, prefix: &str, book: &mut Book) {
    let reply = try_request(
        client,
        &format!("{prefix}.admin.clock"),
        clock_body(&json!(START_TIME)).to_string(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply["ok"], true, "admin.clock: {reply}");
    let partner = Cmd::new(
        "cmd.ref.partner",
        fixtures::partner(&system_actor(), PARTNER, MPN),
        None,
        None,
    );
    send_ok(client, prefix, &partner, book).await;
}

/// `iterations` load iterations sent one after the other, each asserted ok.
async fn send_iterations(
    client: &async_nats::Client,
    prefix: &str,
    tag: &str,
    iterations: usize,
    book: &mut Book,
) {
    for i in 0..iterations {
        for cmd in iteration(tag, 0, i) {
            send_ok(client, prefix, &cmd, book).await;
        }
    }
}

// ---------------------------------------------------------------------------
// The load
// ---------------------------------------------------------------------------

/// [`CLIENTS`] closed-loop clients, each sending its iterations one command
/// at a time until a command goes unanswered or the load is stopped.
struct Load {
    stop: watch::Sender<bool>,
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sent>>>,
}

impl Load {
    fn start(client: &async_nats::Client, prefix: &str, tag: &str) -> Load {
        let (stop, stopped) = watch::channel(false);
        let acked = Arc::new(AtomicUsize::new(0));
        let tasks = (0..CLIENTS)
            .map(|n| {
                tokio::spawn(load_client(
                    client.clone(),
                    prefix.to_string(),
                    tag.to_string(),
                    n,
                    stopped.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        Load { stop, acked, tasks }
    }

    /// Waits until at least `count` commands were acknowledged.
    async fn wait_acked(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acked.load(Ordering::SeqCst) < count {
            assert!(
                Instant::now() < deadline,
                "the load got only {} acknowledgements in 30 s",
                self.acked.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the clients (what is in flight becomes unknown) and returns
    /// each client's record, in the order it sent.
    async fn stop(self) -> Vec<Vec<Sent>> {
        self.stop_within(Duration::ZERO).await
    }

    /// Like [`Load::stop`], after giving the clients up to `grace` to stop
    /// by themselves (at their first unanswered command).
    async fn stop_within(self, grace: Duration) -> Vec<Vec<Sent>> {
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.tasks.iter().all(|t| t.is_finished()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = self.stop.send(true);
        let mut runs = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            runs.push(task.await.expect("a load client panicked"));
        }
        runs
    }
}

async fn load_client(
    client: async_nats::Client,
    prefix: String,
    tag: String,
    n: usize,
    mut stop: watch::Receiver<bool>,
    acked: Arc<AtomicUsize>,
) -> Vec<Sent> {
    let mut sent = Vec::new();
    for i in 0.. {
        for cmd in iteration(&tag, n, i) {
            if *stop.borrow() {
                return sent;
            }
            let subject = format!("{prefix}.{}", cmd.tail);
            let request = tokio::time::timeout(
                LOAD_REQUEST_TIMEOUT,
                client.request(subject, cmd.body.to_string().into()),
            );
            let outcome = tokio::select! {
                result = request => match result {
                    Ok(Ok(message)) => match serde_json::from_slice::<Value>(&message.payload) {
                        Ok(reply) if reply["ok"] == true => Outcome::Acked(reply),
                        Ok(reply) => Outcome::Refused(reply),
                        Err(e) => Outcome::Refused(json!({"$not_json": e.to_string()})),
                    },
                    Ok(Err(e)) => Outcome::Unknown(e.to_string()),
                    Err(_) => Outcome::Unknown(format!("no reply within {LOAD_REQUEST_TIMEOUT:?}")),
                },
                _ = stop.changed() => Outcome::Unknown("cancelled: the service went away".into()),
            };
            let go_on = matches!(outcome, Outcome::Acked(_));
            if go_on {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            sent.push(Sent { cmd, outcome });
            if !go_on {
                return sent;
            }
        }
    }
    sent
}

/// Counts, and asserts that the load met no refusal.
fn summarize(what: &str, runs: &[Vec<Sent>]) -> (usize, usize) {
    let mut acked = 0;
    let mut unknown = 0;
    let mut reasons = BTreeSet::new();
    for sent in runs.iter().flatten() {
        match &sent.outcome {
            Outcome::Acked(_) => acked += 1,
            Outcome::Unknown(reason) => {
                unknown += 1;
                reasons.insert(reason.as_str());
            }
            Outcome::Refused(reply) => panic!(
                "{what}: {} was refused: {reply}\nbody: {}",
                sent.cmd.describe(),
                sent.cmd.body
            ),
        }
    }
    eprintln!("{what}: {acked} acknowledged, {unknown} unknown {reasons:?}");
    (acked, unknown)
}

// ---------------------------------------------------------------------------
// The checks after a restart
// ---------------------------------------------------------------------------

/// `qry.claim.get` as a reviewer: `(claim view, comments)`.
async fn get_claim(client: &async_nats::Client, prefix: &str, claim: &str) -> (Value, Vec<Value>) {
    let body = json!({"actor": actors::wire::reviewer(), "claim_id": claim});
    let reply = try_request(client, &format!("{prefix}.qry.claim.get"), body.to_string())
        .await
        .unwrap_or_else(|e| panic!("claim.get {claim}: {e}"));
    assert_eq!(reply["ok"], true, "claim.get {claim}: {reply}");
    let comments = reply["comments"].as_array().cloned().unwrap_or_default();
    (reply["claim"].clone(), comments)
}

/// (a) Every acknowledged command is visible: its claim exists, at least at
/// the version the reply gave, and an acknowledged comment is among the
/// claim's comments.
async fn check_acknowledged_visible(client: &async_nats::Client, prefix: &str, runs: &[Vec<Sent>]) {
    let mut by_claim: BTreeMap<String, Vec<(&Cmd, &Value)>> = BTreeMap::new();
    for sent in runs.iter().flatten() {
        if let (Outcome::Acked(reply), Some(claim)) = (&sent.outcome, &sent.cmd.claim_id) {
            by_claim
                .entry(claim.clone())
                .or_default()
                .push((&sent.cmd, reply));
        }
    }
    let fetched: Vec<(String, (Value, Vec<Value>))> = futures::stream::iter(by_claim.keys())
        .map(|claim| async move { (claim.clone(), get_claim(client, prefix, claim).await) })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect()
        .await;
    let fetched: HashMap<String, (Value, Vec<Value>)> = fetched.into_iter().collect();
    for (claim, acked) in &by_claim {
        let (view, comments) = &fetched[claim];
        let version = view["version"].as_u64().unwrap_or(0);
        for (cmd, reply) in acked {
            let replied = reply["version"].as_u64().unwrap_or(u64::MAX);
            assert!(
                version >= replied,
                "acknowledged {} said claim {claim} is at version {replied}, \
                 but after the restart it is at {version}: an acknowledged write was lost\nview: {view}",
                cmd.describe()
            );
            if let Some(text) = &cmd.comment {
                assert!(
                    comments.iter().any(|c| c["text"] == text.as_str()),
                    "acknowledged {} added comment {text:?} to claim {claim}, \
                     which is missing after the restart; comments: {comments:?}",
                    cmd.describe()
                );
            }
        }
    }
}

/// (b) Resending every acknowledged and every unknown command, in each
/// client's order, returns `ok:true`; an acknowledged one as a duplicate
/// with the first reply's claim, version and events.
async fn resend_all(
    client: &async_nats::Client,
    prefix: &str,
    runs: &[Vec<Sent>],
    book: &mut Book,
) {
    let replies: Vec<Vec<(Cmd, Value)>> =
        futures::future::join_all(runs.iter().map(|run| async move {
            let mut replies = Vec::with_capacity(run.len());
            for sent in run {
                let cmd = &sent.cmd;
                let reply = try_request(
                    client,
                    &format!("{prefix}.{}", cmd.tail),
                    cmd.body.to_string(),
                )
                .await
                .unwrap_or_else(|e| panic!("resending {}: {e}", cmd.describe()));
                assert_eq!(
                    reply["ok"],
                    true,
                    "resending {} ({:?} before the restart) was refused: {reply}",
                    cmd.describe(),
                    sent.outcome
                );
                if let Outcome::Acked(first) = &sent.outcome {
                    assert_eq!(
                        reply["duplicate"],
                        true,
                        "resending acknowledged {} did not answer duplicate:true, so it was \
                     applied twice: first {first}, now {reply}",
                        cmd.describe()
                    );
                    for field in ["claim_id", "version", "events"] {
                        assert_eq!(
                            reply[field],
                            first[field],
                            "resending acknowledged {}: `{field}` differs from the first reply \
                         (first {first}, now {reply})",
                            cmd.describe()
                        );
                    }
                }
                replies.push((cmd.clone(), reply));
            }
            replies
        }))
        .await;
    let (mut unknown, mut written) = (0, 0);
    for (sent, (cmd, reply)) in runs.iter().flatten().zip(replies.iter().flatten()) {
        if matches!(sent.outcome, Outcome::Unknown(_)) {
            unknown += 1;
            written += usize::from(reply["duplicate"] == true);
        }
        book.record(cmd, reply);
    }
    eprintln!("{written} of the {unknown} unknown commands had been written before");
}

/// Polls `qry.health` until `published_position == log_position`; returns
/// the log position.
async fn wait_caught_up(client: &async_nats::Client, prefix: &str) -> u64 {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    loop {
        let last = match try_request(client, &format!("{prefix}.qry.health"), "{}").await {
            Ok(health) => {
                if health["ok"] == true && health["published_position"] == health["log_position"] {
                    return health["log_position"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("health without log_position: {health}"));
                }
                health
            }
            Err(e) => json!(e),
        };
        assert!(
            Instant::now() < deadline,
            "the relay did not catch up within {CATCH_UP_TIMEOUT:?}; last health: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (c) The events stream holds exactly the log: positions 1..=`log` in
/// stream order, no event id twice, and every command's events exactly once
/// (the types its reply named, in order); nothing else.
async fn check_events_stream(js: &jetstream::Context, prefix: &str, log: u64, book: &Book) {
    let events = read_all(js, &events_stream(prefix), &format!("{prefix}.evt.>"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        events.len() as u64,
        log,
        "the events stream holds {} messages but the log {log} events",
        events.len()
    );
    let mut ids = HashSet::new();
    let mut by_command: HashMap<String, Vec<String>> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let expected = index as u64 + 1;
        assert_eq!(
            event["position"].as_u64(),
            Some(expected),
            "stream message #{expected} should hold position {expected}: {event}"
        );
        let id = event["id"].as_str().unwrap_or_default().to_string();
        assert!(
            ids.insert(id.clone()),
            "event id {id} is in the stream twice (second at position {expected})"
        );
        let cause = event["causationid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let type_name = event["type"].as_str().unwrap_or_default().to_string();
        by_command.entry(cause).or_default().push(type_name);
    }
    for (command_id, (cmd, reply)) in &book.replies {
        let written = by_command.remove(command_id).unwrap_or_default();
        let replied: Vec<String> = reply["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            written,
            replied,
            "{} replied events {replied:?} but the log holds {written:?} for it",
            cmd.describe()
        );
    }
    assert!(
        by_command.is_empty(),
        "the stream holds events of commands nobody sent: {by_command:?}"
    );
}

/// (c) Every claim's last status message equals its view.
async fn check_statuses(
    client: &async_nats::Client,
    js: &jetstream::Context,
    prefix: &str,
    claims: &BTreeSet<String>,
) {
    let mismatches: Vec<String> = futures::stream::iter(claims)
        .map(|claim| async move {
            let (view, _) = get_claim(client, prefix, claim).await;
            let status = last_status(js, prefix, claim)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            (status.as_ref() != Some(&view))
                .then(|| format!("claim {claim}: status {status:?}\n  but view {view}"))
        })
        .buffer_unordered(CHECK_CONCURRENCY)
        .filter_map(|m| async move { m })
        .collect()
        .await;
    assert!(
        mismatches.is_empty(),
        "{} of {} claims have a last status message that differs from their view:\n{}",
        mismatches.len(),
        claims.len(),
        mismatches.join("\n")
    );
}

/// The relay caught up; the stream and the statuses are the log's.
async fn check_published(
    client: &async_nats::Client,
    js: &jetstream::Context,
    prefix: &str,
    book: &Book,
) -> u64 {
    let log = wait_caught_up(client, prefix).await;
    check_events_stream(js, prefix, log, book).await;
    check_statuses(client, js, prefix, &book.claims).await;
    log
}

/// After a restart: what was published matches the log before anything is
/// resent (a crash between publishing events and their statuses must not
/// leave a stale status), then (a), (b), and (c) again.
async fn check_after_restart(
    client: &async_nats::Client,
    js: &jetstream::Context,
    prefix: &str,
    runs: &[Vec<Sent>],
    book: &mut Book,
) {
    let log = wait_caught_up(client, prefix).await;
    let mut claims_now = book.claims.clone();
    claims_now.extend(
        runs.iter()
            .flatten()
            .filter(|s| matches!(s.outcome, Outcome::Acked(_)))
            .filter_map(|s| s.cmd.claim_id.clone()),
    );
    check_statuses(client, js, prefix, &claims_now).await;
    check_acknowledged_visible(client, prefix, runs).await;
    resend_all(client, prefix, runs, book).await;
    let after = check_published(client, js, prefix, book).await;
    assert!(after >= log, "the log shrank from {log} to {after}");
}

// ---------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------

/// True while the process runs (not exited, not a zombie).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S …": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Runs `cpor serve ARGS` to its exit (killed after [`RUN_TIMEOUT`]):
/// exit code, stderr, stdout.
async fn serve_until_exit(args: &[&str]) -> (Option<i32>, String, String) {
    let run = run_to_exit(&[&["serve"], args].concat(), &[]).await;
    (run.code, run.stderr, run.stdout)
}

/// `cpor serve` with these flags must exit with status 2, within 15 s (so
/// without waiting for a lease to expire), saying `needles` on stderr.
/// Returns stderr.
async fn assert_refused(args: &[&str], needles: &[&str]) -> String {
    let started = Instant::now();
    let (code, stderr, stdout) = serve_until_exit(args).await;
    let took = started.elapsed();
    assert_eq!(
        code,
        Some(2),
        "cpor serve {args:?} should exit 2 (ran {took:?})\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "cpor serve {args:?} exited 2 but stderr does not mention {needle:?}:\n{stderr}"
        );
    }
    assert!(
        took < Duration::from_secs(15),
        "cpor serve {args:?} took {took:?} to refuse:\n{stderr}"
    );
    stderr
}

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// SIGKILL in the middle of a load, three times at different moments, each
/// followed by a restart on the same data dir and every check.
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_under_load_loses_nothing_acknowledged_and_applies_nothing_twice() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let mut book = Book::default();
    setup(&client, &prefix, &mut book).await;

    // Kill soon after the load got going, a little later, later still.
    for (round, extra_ms) in [0u64, 700, 1500].into_iter().enumerate() {
        let load = Load::start(&client, &prefix, &format!("kill{round}"));
        load.wait_acked(30).await;
        tokio::time::sleep(Duration::from_millis(extra_ms)).await;
        service.kill().await;
        let runs = load.stop().await;
        let (acked, _) = summarize(&format!("kill round {round}"), &runs);
        assert!(acked >= 30);

        service.start_again().await;
        check_after_restart(&client, &js, &prefix, &runs, &mut book).await;
    }

    service.terminate().await;
    delete_streams(&js, &prefix).await;
}

/// SIGTERM while the load runs: exit 0 with everything written published;
/// after a restart on the same data dir, nothing acknowledged is lost and
/// nothing is applied twice.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_under_load_drains_and_exits_0() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let mut book = Book::default();
    setup(&client, &prefix, &mut book).await;

    let load = Load::start(&client, &prefix, "term");
    load.wait_acked(30).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    service.terminate().await; // asserts exit status 0
    let runs = load.stop_within(Duration::from_secs(3)).await;
    summarize("sigterm", &runs);
    // Requests delivered before the service unsubscribed are answered as it
    // drains; the later ones find no responder. (Not asserted: async-nats
    // drops a subscription without waiting for the server to confirm the
    // unsubscribe, so a request crossing it can still go unanswered; its
    // sender retries with the same command_id, checked below.)
    let unanswered = runs
        .iter()
        .flatten()
        .filter(|s| matches!(&s.outcome, Outcome::Unknown(r) if !r.contains("no responders")))
        .count();
    eprintln!("sigterm: {unanswered} request(s) neither answered nor refused by NATS");

    // "Publish what is written" before exiting: the stream holds the whole log.
    let mut stream = js
        .get_stream(events_stream(&prefix))
        .await
        .expect("the events stream exists");
    let in_stream = stream.info().await.expect("stream info").state.messages;
    // The stop left a state snapshot at its last position: the restart
    // folds nothing before answering.
    let snapshots = service.data_dir().join("state-snapshots");
    let last = snapshots.join(format!("state-{in_stream:020}.snap"));
    assert!(
        last.is_file(),
        "no state snapshot at {in_stream} in {snapshots:?}"
    );

    service.start_again().await;
    let health = service.health().await.expect("health after the restart");
    assert_eq!(
        health["log_position"].as_u64(),
        Some(in_stream),
        "after SIGTERM the stream held {in_stream} events, but the log holds {health}: \
         the service exited before publishing everything it wrote"
    );
    let restarted = service.log_tail(400);
    assert!(
        restarted.contains("restored the decision state from a snapshot"),
        "{restarted}"
    );
    check_after_restart(&client, &js, &prefix, &runs, &mut book).await;

    service.terminate().await;
    // `cpor snapshot` on the stopped data dir: a snapshot folded from the log.
    let data = path_arg(service.data_dir()).to_string();
    let taken = run_to_exit(&["snapshot", "--data-dir", &data], &[]).await;
    assert_eq!(taken.code, Some(0), "{}", taken.stderr);
    assert!(
        taken.stdout.contains("the decision state at position"),
        "{}",
        taken.stdout
    );
    delete_streams(&js, &prefix).await;
}

/// The NATS server stops and comes back: the service stays up, answers
/// again, and its relay publishes what it missed, gapless and without
/// duplicates.
#[tokio::test(flavor = "multi_thread")]
async fn survives_a_nats_restart_and_the_relay_catches_up() {
    let mut nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let pid = service.pid().expect("the service runs");
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let mut book = Book::default();
    setup(&client, &prefix, &mut book).await;
    send_iterations(&client, &prefix, "before", 6, &mut book).await;
    check_published(&client, &js, &prefix, &book).await;

    // Down for longer than a lease renewal period (5 s).
    tokio::task::block_in_place(|| nats.stop());
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(7) {
        assert!(
            alive(pid),
            "cpor serve exited while NATS was down:\n{}",
            service.take_log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::task::block_in_place(|| nats.start());

    // It answers again within 15 s.
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let back = Instant::now();
    if !answers_within(&client, &prefix, Duration::from_secs(15)).await {
        panic!(
            "cpor serve does not answer 15 s after NATS came back (alive: {}):\n{}",
            alive(pid),
            service.take_log_tail(40)
        );
    }
    eprintln!("answering again {:?} after NATS restarted", back.elapsed());

    // Commands work, and the relay publishes them and nothing twice.
    send_iterations(&client, &prefix, "after", 6, &mut book).await;
    check_published(&client, &js, &prefix, &book).await;

    // Again, with NATS going away in the middle of a load: requests and
    // relay windows in flight are cut off.
    let load = Load::start(&client, &prefix, "cut");
    load.wait_acked(100).await;
    tokio::task::block_in_place(|| nats.stop());
    let runs = load.stop().await;
    summarize("NATS stopped under load", &runs);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        alive(pid),
        "cpor serve exited while NATS was down:\n{}",
        service.take_log_tail(40)
    );
    tokio::task::block_in_place(|| nats.start());
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    service.wait_healthy().await;
    check_after_restart(&client, &js, &prefix, &runs, &mut book).await;
    assert!(alive(pid));

    service.terminate().await;
    delete_streams(&js, &prefix).await;
}

/// One instance per prefix: a second one is refused while the first runs; a
/// data dir whose log is not the one behind the events stream is refused;
/// the owner restarts at once after a clean stop and after a SIGKILL.
#[tokio::test(flavor = "multi_thread")]
async fn one_instance_per_prefix_and_foreign_logs_are_refused() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut first =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let mut book = Book::default();
    setup(&client, &prefix, &mut book).await;
    send_iterations(&client, &prefix, "first", 2, &mut book).await;
    let first_log = wait_caught_up(&client, &prefix).await;

    let others = tempfile::tempdir().expect("temp dir");
    let second_dir = others.path().join("second");

    // A second instance while the first runs: refused, quickly, naming the prefix.
    let output = assert_refused(
        &[
            "--nats-url",
            nats.url(),
            "--data-dir",
            path_arg(&second_dir),
            "--prefix",
            &prefix,
            "--manual-clock",
        ],
        &[&prefix, "owns prefix"],
    )
    .await;
    eprintln!(
        "second instance refused: {}",
        output.lines().last().unwrap_or_default()
    );
    // The first keeps serving.
    send_iterations(&client, &prefix, "still", 1, &mut book).await;
    let first_log = first_log.max(wait_caught_up(&client, &prefix).await);

    // After a clean stop the prefix is free, but the events stream is this
    // log's: an empty data dir is refused (the stream is ahead of its log)…
    first.terminate().await;
    assert_refused(
        &[
            "--nats-url",
            nats.url(),
            "--data-dir",
            path_arg(&second_dir),
            "--prefix",
            &prefix,
            "--manual-clock",
        ],
        &[&events_stream(&prefix), "ahead of this log"],
    )
    .await;

    // …and so is a data dir with a longer history of its own.
    let foreign_prefix = unique_prefix();
    let foreign_dir = others.path().join("foreign");
    let mut foreign = Service::start(
        ServiceOptions::new(nats.url(), &foreign_prefix)
            .manual_clock(true)
            .data_dir(&foreign_dir),
    )
    .await;
    let mut foreign_book = Book::default();
    setup(&client, &foreign_prefix, &mut foreign_book).await;
    send_iterations(&client, &foreign_prefix, "foreign", 4, &mut foreign_book).await;
    let foreign_log = wait_caught_up(&client, &foreign_prefix).await;
    assert!(foreign_log >= first_log, "{foreign_log} < {first_log}");
    foreign.terminate().await;
    assert_refused(
        &[
            "--nats-url",
            nats.url(),
            "--data-dir",
            path_arg(&foreign_dir),
            "--prefix",
            &prefix,
            "--manual-clock",
        ],
        &[&events_stream(&prefix), "belongs to another log"],
    )
    .await;

    // The owner comes back on its own data dir: the refused starts left no
    // lease behind.
    first.start_again().await;
    send_iterations(&client, &prefix, "back", 1, &mut book).await;
    check_published(&client, &js, &prefix, &book).await;

    // A SIGKILL leaves the lease held by the owner's instance id: its
    // restart takes it over at once instead of waiting for it to expire.
    first.kill().await;
    let restart = Instant::now();
    first.start_again().await;
    assert!(
        restart.elapsed() < Duration::from_secs(12),
        "restart after SIGKILL took {:?}: did it wait for its own lease to expire?",
        restart.elapsed()
    );
    send_iterations(&client, &prefix, "after-kill", 1, &mut book).await;
    check_published(&client, &js, &prefix, &book).await;

    first.terminate().await;
    delete_streams(&js, &prefix).await;
    delete_streams(&js, &foreign_prefix).await;
}

/// A second service on a data dir in use is refused, whatever its prefix.
#[tokio::test(flavor = "multi_thread")]
async fn a_data_dir_in_use_is_refused() {
    let nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let other_prefix = unique_prefix();
    let data_dir = service.data_dir().to_path_buf();
    assert_refused(
        &[
            "--nats-url",
            nats.url(),
            "--data-dir",
            path_arg(&data_dir),
            "--prefix",
            &other_prefix,
        ],
        &["in use", path_arg(&data_dir)],
    )
    .await;
    let health = service.health().await.expect("the first still answers");
    assert_eq!(health["ok"], true, "{health}");
    service.terminate().await;
    let client = nats.connect().await;
    let js = jetstream::new(client);
    delete_streams(&js, &prefix).await;
    delete_streams(&js, &other_prefix).await;
}

/// Bad settings are refused before anything is opened or connected: exit 2
/// and a message naming what is wrong.
#[tokio::test(flavor = "multi_thread")]
async fn bad_settings_are_refused_before_starting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    // Nothing listens there: a refusal must come before connecting.
    let nowhere = "nats://127.0.0.1:1";
    let base = |prefix: &'static str| -> Vec<String> {
        vec![
            "--nats-url".into(),
            nowhere.into(),
            "--data-dir".into(),
            path_arg(&data_dir).into(),
            "--prefix".into(),
            prefix.into(),
        ]
    };
    let refused = |args: Vec<String>, needles: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_refused(&args, &needles).await;
    };

    refused(
        base("Bad-Prefix"),
        vec!["Bad-Prefix".into(), "^[a-z][a-z0-9_]{0,31}$".into()],
    )
    .await;

    let cases = [
        (
            "tz.toml",
            "[calendar]\ntime_zone = \"Europe/Pariss\"\n",
            "Europe/Pariss",
        ),
        (
            "holiday.toml",
            "[calendar]\ntime_zone = \"Europe/Paris\"\nholidays = [\"2026-12-25\", \"2026-13-45\"]\n",
            "2026-13-45",
        ),
        ("weekend.toml", "[calendar]\nweekend = [\"sat\", \"sunday\"]\n", "sunday"),
    ];
    for (name, text, needle) in cases {
        let config = dir.path().join(name);
        std::fs::write(&config, text).expect("write the config");
        let mut args = base("cpor");
        args.extend(["--config".into(), path_arg(&config).into()]);
        refused(args, vec![needle.into(), path_arg(&config).into()]).await;
    }
    assert!(
        !data_dir.exists(),
        "a refused start created the data dir {}",
        data_dir.display()
    );
}

/// SIGTERM after NATS went away while the service was serving: it stops
/// within its drain bounds and exits 0 (what it could not publish waits for
/// the next start), instead of waiting for NATS to come back.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_after_nats_went_away_exits_0() {
    let mut nats = NatsServer::start_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let reply = try_request(
        &client,
        &service.subject("admin.clock"),
        clock_body(&json!(START_TIME)).to_string(),
    )
    .await
    .unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    nats.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.terminate().await;
    nats.start();
    service.start_again().await;
    service.terminate().await;
}
