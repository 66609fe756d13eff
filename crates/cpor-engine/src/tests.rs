//! The engine on a real sled directory: group commit, idempotency across
//! and within batches, the manual clock and the scheduler, restarts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use cpor_domain::command::{Command, CommandEnvelope, SubmitClaim, SubscriptionRecord};
use cpor_domain::types::*;

use cpor_testkit::actors::{partner, system};
use cpor_testkit::fixtures::{self, at, envelope};

use super::*;

fn start(dir: &std::path::Path, clock: ClockMode) -> (Engine, WriterThread) {
    Engine::start(Options::new(dir.to_path_buf(), Calendar::default(), clock)).unwrap()
}

async fn accept(engine: &Engine, envelope: CommandEnvelope) -> Accepted {
    match engine.execute(envelope, "print".into()).await {
        Outcome::Accepted { accepted, .. } => accepted,
        Outcome::Rejected(rejection) => panic!("refused: {rejection}"),
    }
}

struct Reference {
    tenant: Uuid,
}

async fn reference(engine: &Engine) -> Reference {
    let tenant = Uuid::new_v4();
    let subscription = Uuid::new_v4();
    accept(
        engine,
        envelope(
            system(),
            Command::UpsertTenant {
                tenant_id: tenant,
                domains: vec!["contoso.com".into()],
            },
        ),
    )
    .await;
    accept(
        engine,
        envelope(
            system(),
            Command::UpsertSubscription(SubscriptionRecord {
                channel: Channel::WebDirect,
                ..fixtures::subscription(tenant, subscription)
            }),
        ),
    )
    .await;
    for p in 0..200 {
        accept(
            engine,
            envelope(
                system(),
                Command::UpsertPartner {
                    partner_id: format!("P-{p}"),
                    mpns: vec![Mpn {
                        mpn_id: "1".into(),
                        incentive_enrolled: true,
                    }],
                },
            ),
        )
        .await;
    }
    Reference { tenant }
}

fn submit(reference: &Reference, activity: Activity) -> Command {
    Command::Submit(SubmitClaim {
        claim_id: Uuid::new_v4(),
        tenant_id: reference.tenant,
        domain: "contoso.com".into(),
        solution_area: SolutionArea::BusinessApplications,
        activity,
        product: "dynamics_365_sales".into(),
        subscription_id: None,
        mpn_id: "1".into(),
        proof_of_execution: vec![],
        note: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commands_are_group_committed_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    let reference = reference(&engine).await;
    let before = engine.positions().log_position();
    // 200 partners submit at once on the same key: the first opens a
    // case when the second arrives, the others join it.
    let mut tasks = Vec::new();
    for p in 0..200 {
        let engine = engine.clone();
        let command = submit(&reference, Activity::Usage);
        tasks.push(tokio::spawn(async move {
            engine
                .execute(envelope(partner(&format!("P-{p}")), command), "x".into())
                .await
        }));
    }
    for task in tasks {
        assert!(matches!(
            task.await.unwrap(),
            Outcome::Accepted {
                duplicate: false,
                ..
            }
        ));
    }
    let after = engine.positions().log_position();
    // 200 submitted, 1 opened + 2 notices, 198 × (joined + notice).
    assert_eq!(after - before, 200 + 3 + 198 * 2);
    let reader = engine.reader().clone();
    drop(engine);
    writer.stopped().await.unwrap();
    let positions: Vec<u64> = reader.events_from(1).map(|e| e.unwrap().0).collect();
    assert_eq!(positions, (1..=after).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_are_answered_from_the_record_and_reuse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _writer) = start(dir.path(), ClockMode::Manual);
    let reference = reference(&engine).await;
    let first = envelope(partner("P-1"), submit(&reference, Activity::Usage));
    // Two copies in flight at once (likely the same batch) and one later.
    let (a, b) = tokio::join!(
        engine.execute(first.clone(), "body-1".into()),
        engine.execute(first.clone(), "body-1".into())
    );
    let later = engine.execute(first.clone(), "body-1".into()).await;
    let replies = [a, b, later];
    let accepted: Vec<&Accepted> = replies
        .iter()
        .map(|o| match o {
            Outcome::Accepted { accepted, .. } => accepted,
            Outcome::Rejected(r) => panic!("{r}"),
        })
        .collect();
    assert!(
        accepted.iter().all(|a| *a == accepted[0]),
        "every repeat has the first reply"
    );
    let duplicates = replies
        .iter()
        .filter(|o| {
            matches!(
                o,
                Outcome::Accepted {
                    duplicate: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(duplicates, 2);
    match engine.execute(first, "body-2".into()).await {
        Outcome::Rejected(r) => assert_eq!(r.code, ErrorCode::IdempotencyConflict),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_write_nothing_and_are_not_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _writer) = start(dir.path(), ClockMode::Manual);
    let reference = reference(&engine).await;
    let before = engine.positions().log_position();
    let mut bad = envelope(partner("P-1"), submit(&reference, Activity::Usage));
    if let Command::Submit(s) = &mut bad.command {
        s.domain = "fabrikam.com".into();
    }
    for _ in 0..2 {
        match engine.execute(bad.clone(), "b".into()).await {
            Outcome::Rejected(r) => assert_eq!(r.code, ErrorCode::DomainTenantMismatch),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(engine.positions().log_position(), before);
    assert_eq!(
        engine.reader().command_record(&bad.command_id).unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_clock_fires_deadlines_before_answering() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    engine.set_clock(at("2026-11-25T09:00:00Z")).await.unwrap();
    let reference = reference(&engine).await;
    let claim = accept(
        &engine,
        envelope(partner("P-1"), submit(&reference, Activity::Usage)),
    )
    .await
    .claim_id
    .unwrap();
    engine.set_clock(at("2026-12-02T23:59:59Z")).await.unwrap();
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert!(!view.overdue);
    engine.set_clock(at("2026-12-03T00:00:00Z")).await.unwrap();
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert!(view.overdue, "the deadline fired before the clock reply");
    assert_eq!(view.version, 2);
    // Time does not go backwards.
    let refused = engine
        .set_clock(at("2026-12-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidCommand);

    // The clock and the fired deadline survive a restart; nothing fires twice.
    let position = engine.positions().log_position();
    drop(engine);
    writer.stopped().await.unwrap();
    let (engine, _writer) = start(dir.path(), ClockMode::Manual);
    assert_eq!(
        engine
            .set_clock(at("2026-12-02T00:00:00Z"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand,
        "the stored clock is the floor"
    );
    engine.set_clock(at("2026-12-20T00:00:00Z")).await.unwrap();
    assert_eq!(engine.positions().log_position(), position);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_service_refuses_clock_requests_and_fires_past_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Written with a manual clock set in the past…
        let (engine, writer) = start(dir.path(), ClockMode::Manual);
        engine.set_clock(at("2020-01-01T09:00:00Z")).await.unwrap();
        let reference = reference(&engine).await;
        accept(
            &engine,
            envelope(partner("P-1"), submit(&reference, Activity::Usage)),
        )
        .await;
        drop(engine);
        writer.stopped().await.unwrap();
    }
    // …then served on the wall clock, years later: the operator accepts the
    // gap (`--accept-clock-jump`), and the old review deadline is long past.
    let (engine, _writer) = Engine::start(Options {
        accept_clock_jump: true,
        ..Options::new(
            dir.path().to_path_buf(),
            Calendar::default(),
            ClockMode::Wall,
        )
    })
    .unwrap();
    assert_eq!(
        engine
            .set_clock(at("2030-01-01T00:00:00Z"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::ClockNotManual
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = engine
            .reader()
            .list_claims(&Default::default(), None, 10)
            .unwrap();
        if page.values()[0].overdue {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the past deadline never fired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Issue 10: event ids (the events stream's `Nats-Msg-Id`) and deadline
/// command ids used to be uuid5 of data a client sees or chooses: an
/// outsider could publish a forgery under an event's id before the relay.
/// The old formulas never match what is written now, and a restart keeps
/// the stored ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_and_deadline_ids_cannot_be_computed_from_client_data() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    engine.set_clock(at("2026-11-25T09:00:00Z")).await.unwrap();
    let reference = reference(&engine).await;
    let submit_envelope = envelope(partner("P-1"), submit(&reference, Activity::Usage));
    let command_id = submit_envelope.command_id;
    let claim = accept(&engine, submit_envelope).await.claim_id.unwrap();
    // The review deadline (due 2026-12-03T00:00:00Z) fires.
    engine.set_clock(at("2026-12-03T00:00:00Z")).await.unwrap();
    let reader = engine.reader().clone();
    let positions = reader
        .stream_positions(&cpor_domain::event::AggregateId {
            kind: cpor_domain::event::AggregateKind::Claim,
            id: claim.to_string(),
        })
        .unwrap();
    let events: Vec<serde_json::Value> = positions
        .iter()
        .map(|p| serde_json::from_slice(&reader.event_bytes(*p).unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "submitted and review_deadline_missed");
    let id = |e: &serde_json::Value, field: &str| e[field].as_str().unwrap().to_string();
    // The old guesses: uuid5(command id, index) for events, uuid5(claim,
    // "review:{due ms}") for a deadline's command.
    let guessed_submit = Uuid::new_v5(&command_id, &0u32.to_be_bytes()).to_string();
    assert_eq!(id(&events[0], "causationid"), command_id.to_string());
    assert_ne!(id(&events[0], "id"), guessed_submit);
    let due_ms = at("2026-12-03T00:00:00Z").timestamp_millis();
    let guessed_deadline_command = Uuid::new_v5(&claim, format!("review:{due_ms}").as_bytes());
    let deadline_command: Uuid = id(&events[1], "causationid").parse().unwrap();
    assert_ne!(deadline_command, guessed_deadline_command);
    assert_ne!(
        id(&events[1], "id"),
        Uuid::new_v5(&guessed_deadline_command, &0u32.to_be_bytes()).to_string()
    );
    // Every id of the log is a random (v4) uuid, none equal.
    let all: Vec<Uuid> = reader
        .events_from(1)
        .map(|e| {
            let value: serde_json::Value = serde_json::from_slice(&e.unwrap().1).unwrap();
            value["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert!(all.iter().all(|u| u.get_version_num() == 4));
    let distinct: std::collections::HashSet<&Uuid> = all.iter().collect();
    assert_eq!(distinct.len(), all.len());
    // A restart reads the same ids back (they are stored, not recomputed).
    drop(engine);
    writer.stopped().await.unwrap();
    drop(reader);
    let (engine, _writer) = start(dir.path(), ClockMode::Manual);
    let again: Vec<Uuid> = engine
        .reader()
        .events_from(1)
        .map(|e| {
            let value: serde_json::Value = serde_json::from_slice(&e.unwrap().1).unwrap();
            value["id"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(again, all);
}

/// Issue 11 case 9: a clock whose deadlines would fall after year 9999 is
/// refused and moves nothing; a clock before 1970 survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manual_clock_takes_only_times_the_service_can_write() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    engine.set_clock(at("1969-07-20T20:17:00Z")).await.unwrap();
    drop(engine);
    writer.stopped().await.unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    assert_eq!(
        engine
            .set_clock(at("1969-07-20T20:16:59Z"))
            .await
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand,
        "the stored pre-1970 clock is still the floor after a restart"
    );
    // …and not 1970: a later time in 1969 is still ahead of it.
    engine.set_clock(at("1969-12-01T00:00:00Z")).await.unwrap();
    let refused = engine
        .set_clock(at("9999-12-30T00:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::InvalidCommand);
    assert!(refused.message.starts_with("now:"), "{}", refused.message);
    // Nothing moved: an earlier time than the refused one is still fine,
    // and a claim then gets a deadline in year 9999.
    engine.set_clock(at("9999-12-20T00:00:00Z")).await.unwrap();
    let reference = reference(&engine).await;
    let claim = accept(
        &engine,
        envelope(partner("P-1"), submit(&reference, Activity::Usage)),
    )
    .await
    .claim_id
    .unwrap();
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert_eq!(view.review_due_at, Some(at("9999-12-28T00:00:00Z")));
    drop(engine);
    writer.stopped().await.unwrap();
}

/// Wall and monotonic clocks a test sets by hand.
struct TestClocks(std::sync::Mutex<(DateTime<Utc>, std::time::Duration)>);

impl TestClocks {
    fn new(wall: &str) -> Arc<TestClocks> {
        Arc::new(TestClocks(std::sync::Mutex::new((
            at(wall),
            std::time::Duration::ZERO,
        ))))
    }

    /// Both clocks advance by `seconds`.
    fn pass(&self, seconds: u64) {
        let mut clocks = self.0.lock().unwrap();
        clocks.0 += chrono::Duration::seconds(seconds as i64);
        clocks.1 += std::time::Duration::from_secs(seconds);
    }

    /// The wall clock alone is set.
    fn set_wall(&self, wall: &str) {
        self.0.lock().unwrap().0 = at(wall);
    }
}

impl TimeSource for TestClocks {
    fn wall(&self) -> Timestamp {
        self.0.lock().unwrap().0
    }

    fn monotonic(&self) -> std::time::Duration {
        self.0.lock().unwrap().1
    }
}

fn start_on(
    dir: &std::path::Path,
    clocks: &Arc<TestClocks>,
    accept_clock_jump: bool,
) -> (Engine, WriterThread) {
    Engine::start(Options {
        time_source: clocks.clone(),
        accept_clock_jump,
        ..Options::new(dir.to_path_buf(), Calendar::default(), ClockMode::Wall)
    })
    .unwrap()
}

async fn refused(engine: &Engine, envelope: CommandEnvelope) -> Rejection {
    match engine.execute(envelope, "print".into()).await {
        Outcome::Accepted { accepted, .. } => panic!("accepted: {accepted:?}"),
        Outcome::Rejected(rejection) => rejection,
    }
}

fn comment(claim_id: Uuid) -> Command {
    Command::Comment {
        claim_id,
        text: "still here".into(),
    }
}

/// Issue 11 case 6: one request served while the host clock was two years
/// ahead fired deadlines and stamped every later event 2028, also after a
/// restart. A step of the wall clock beyond `CLOCK_JUMP_MAX` past the
/// monotonic clock writes nothing (`UNAVAILABLE` saying why), fires no
/// deadline, and writing resumes once the clock is right; at start the
/// bound is `CLOCK_GAP_AT_START_MAX` past the last event, lifted by the
/// operator's override; a step back keeps the last time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_jump_writes_nothing_until_the_clock_is_right() {
    let dir = tempfile::tempdir().unwrap();
    let clocks = TestClocks::new("2026-11-25T09:00:00Z");
    let (engine, writer) = start_on(dir.path(), &clocks, false);
    let reference = reference(&engine).await;
    let claim = accept(
        &engine,
        envelope(partner("P-1"), submit(&reference, Activity::Usage)),
    )
    .await
    .claim_id
    .unwrap();
    let position = engine.positions().log_position();

    // Two years ahead in one step (the review deadline would be long past).
    clocks.set_wall("2028-11-25T09:00:00Z");
    let refusal = refused(&engine, envelope(partner("P-1"), comment(claim))).await;
    assert_eq!(refusal.code, ErrorCode::Unavailable);
    assert!(refusal.message.contains("clock"), "{}", refusal.message);
    // Just within the bound is a jump too once time has not passed.
    clocks.set_wall("2026-11-25T09:11:00Z");
    refused(&engine, envelope(partner("P-1"), comment(claim))).await;
    assert_eq!(engine.positions().log_position(), position);
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert!(!view.overdue, "no deadline fired on the jump");

    // The clock is set right: writing resumes, at the right time.
    clocks.set_wall("2026-11-25T09:00:00Z");
    clocks.pass(60);
    accept(&engine, envelope(partner("P-1"), comment(claim))).await;
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert_eq!(view.updated_at, at("2026-11-25T09:01:00Z"));
    // Time passing moves the bound with it: a day later is fine.
    clocks.pass(86_400);
    accept(&engine, envelope(partner("P-1"), comment(claim))).await;
    // A step back keeps the last time (and is warned about).
    clocks.set_wall("2026-11-20T00:00:00Z");
    accept(&engine, envelope(partner("P-1"), comment(claim))).await;
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert_eq!(view.updated_at, at("2026-11-26T09:01:00Z"));
    drop(engine);
    writer.stopped().await.unwrap();

    // At start, two years after the last event: refused until overridden.
    let clocks = TestClocks::new("2028-11-25T09:00:00Z");
    let (engine, writer) = start_on(dir.path(), &clocks, false);
    let refusal = refused(&engine, envelope(partner("P-1"), comment(claim))).await;
    assert_eq!(refusal.code, ErrorCode::Unavailable);
    assert!(
        refusal.message.contains("--accept-clock-jump"),
        "{}",
        refusal.message
    );
    drop(engine);
    writer.stopped().await.unwrap();
    let (engine, _writer) = start_on(dir.path(), &clocks, true);
    accept(&engine, envelope(partner("P-1"), comment(claim))).await;
    let view = engine.reader().claim_view(&claim).unwrap().unwrap();
    assert_eq!(view.updated_at, at("2028-11-25T09:00:00Z"));
}

/// Command ids are remembered for the retention and no longer (contract
/// §5: at least 7 days): a repeat within it is a duplicate, a repeat after
/// the manual clock passed it is decided anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_records_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _writer) = start(dir.path(), ClockMode::Manual);
    engine.set_clock(at("2026-11-02T09:00:00Z")).await.unwrap();
    let tenant = envelope(
        system(),
        Command::UpsertTenant {
            tenant_id: Uuid::new_v4(),
            domains: vec!["contoso.com".into()],
        },
    );
    accept(&engine, tenant.clone()).await;
    let repeat = |engine: Engine, envelope: CommandEnvelope| async move {
        match engine.execute(envelope, "print".into()).await {
            Outcome::Accepted { duplicate, .. } => duplicate,
            Outcome::Rejected(rejection) => panic!("refused: {rejection}"),
        }
    };
    // Seven days and a bit later: within the default retention (8 days).
    engine.set_clock(at("2026-11-09T10:00:00Z")).await.unwrap();
    assert!(repeat(engine.clone(), tenant.clone()).await);
    // Past it: the batch of the clock request removes the record.
    engine.set_clock(at("2026-11-10T09:00:01Z")).await.unwrap();
    assert!(engine
        .reader()
        .command_record(&tenant.command_id)
        .unwrap()
        .is_none());
    assert!(
        !repeat(engine.clone(), tenant.clone()).await,
        "decided anew"
    );
    assert!(repeat(engine.clone(), tenant).await, "and remembered again");
}

/// Copies the files and directories under `from` into `to` (created).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Waits until no process or thread holds sled's lock on `dir/db` (sled's
/// background threads let go of a dropped store a moment later).
async fn wait_unlocked(dir: &std::path::Path) {
    let db = std::fs::File::open(dir.join("db")).unwrap();
    for _ in 0..200 {
        if db.try_lock().is_ok() {
            db.unlock().unwrap();
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("sled never released {}", dir.display());
}

/// A reopen after a failed write that finds the log shorter than what was
/// acknowledged (sled lost flushed writes; here: the data dir swapped for
/// an older copy while the store was closed) stops the writer with a
/// typed fatal error for the binary to exit on (the library used to end
/// the process itself with code 70, which no test could see).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_log_behind_what_was_acknowledged_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let older = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    let reference = reference(&engine).await;
    let kept = engine.positions().log_position();
    drop(engine);
    writer.stopped().await.unwrap();
    copy_dir(dir.path(), older.path());

    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    accept(
        &engine,
        envelope(partner("P-1"), submit(&reference, Activity::Usage)),
    )
    .await;
    let acknowledged = engine.positions().log_position();
    assert!(acknowledged > kept);
    // The store goes away under the writer, and comes back older.
    engine.reader().close();
    wait_unlocked(dir.path()).await;
    std::fs::remove_dir_all(dir.path()).unwrap();
    copy_dir(older.path(), dir.path());
    let refusal = refused(
        &engine,
        envelope(partner("P-2"), submit(&reference, Activity::Usage)),
    )
    .await;
    assert_eq!(refusal.code, ErrorCode::Unavailable);
    // The writer reopens by itself (every REOPEN_RETRY_EVERY) and stops.
    let fatal = tokio::time::timeout(std::time::Duration::from_secs(30), writer.stopped())
        .await
        .expect("the writer stops")
        .expect_err("a fatal error");
    match fatal {
        Fatal::LogBehindAcknowledged {
            head,
            acknowledged: at,
        } => assert_eq!((head, at), (kept, acknowledged)),
        other => panic!("{other}"),
    }
    assert_eq!(Fatal::EXIT_CODE, 70);
    // Nothing is served from the shorter log meanwhile.
    assert!(matches!(
        engine.reader().last_position(),
        Err(LogError::Closed)
    ));
    let late = engine
        .execute(
            envelope(partner("P-3"), submit(&reference, Activity::Usage)),
            "late".into(),
        )
        .await;
    assert!(matches!(late, Outcome::Rejected(r) if r.code == ErrorCode::Unavailable));
}

/// Read-your-writes with the projections applied off the writer's thread:
/// a reply leaves only once its batch's projections are applied (and
/// flushed), so a read right after each of many concurrent replies finds
/// the claim's view at the version the reply gave, and the durable
/// position already covers it. The writer and the projector run on
/// threads of their own, by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_implies_its_projections_are_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, writer) = start(dir.path(), ClockMode::Manual);
    let reference = reference(&engine).await;
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect();
    for name in [WRITER_THREAD, PROJECTOR_THREAD] {
        assert!(threads.iter().any(|t| t == name), "{name} in {threads:?}");
    }
    let mut tasks = Vec::new();
    for p in 0..200 {
        let engine = engine.clone();
        let command = submit(&reference, Activity::Usage);
        tasks.push(tokio::spawn(async move {
            let accepted = accept(&engine, envelope(partner(&format!("P-{p}")), command)).await;
            let claim = accepted.claim_id.unwrap();
            let durable = engine.positions().log_position();
            let view = engine.reader().claim_view(&claim).unwrap();
            let stream = engine
                .reader()
                .stream_positions(&cpor_domain::event::AggregateId {
                    kind: cpor_domain::event::AggregateKind::Claim,
                    id: claim.to_string(),
                })
                .unwrap();
            (durable, view.is_some(), stream)
        }));
    }
    for task in tasks {
        let (durable, view, stream) = task.await.unwrap();
        assert!(view, "the claim's view is there when its reply is");
        assert!(!stream.is_empty(), "and its stream index");
        assert!(stream.iter().all(|&p| p <= durable), "{stream:?} {durable}");
    }
    let head = engine.positions().log_position();
    drop(engine);
    writer.stopped().await.unwrap();
    // Stopped: every batch handed on, the derived trees at the head.
    let (log, _) = cpor_log::Log::open(dir.path()).unwrap();
    assert_eq!(log.head().position, head);
}

/// The size bound that spares the writer the exact measure of an event is
/// never below the exact size, whatever the text holds: control characters
/// (6-byte escapes in both writers), quotes and backslashes, multi-byte
/// characters, and with every optional attribute at its longest.
#[test]
fn the_sealed_size_bound_is_never_below_the_sealed_size() {
    use cpor_domain::event::{CommentAdded, Event, EventData};
    let texts = [
        String::new(),
        "\u{1}\u{1f}\n".repeat(400),
        "\"\\".repeat(300),
        "plain words ".repeat(200),
        "é€😀".repeat(150),
    ];
    for text in texts {
        let mut envelope = envelope(partner(&"p".repeat(64)), comment(Uuid::new_v4()));
        for (correlation, traceparent) in [
            (None, None),
            (Some("\u{2}c".repeat(64)), Some("00-".repeat(18))),
        ] {
            envelope.correlation_id = correlation;
            envelope.traceparent = traceparent;
            let event = Event {
                actor: envelope.actor.clone(),
                data: EventData::CommentAdded(CommentAdded {
                    claim_id: Uuid::new_v4(),
                    text: text.clone(),
                    system: false,
                }),
            };
            let meta = cpor_log::EventMeta {
                event_id: Uuid::new_v4(),
                time: at("2026-02-28T23:59:59.123456789Z"),
                position: 0,
                stream_version: 0,
                causation_id: envelope.command_id,
                correlation_id: envelope.correlation_id.clone(),
                traceparent: envelope.traceparent.clone(),
            };
            let exact = cpor_log::envelope::sealed_len_max(&event, &meta).unwrap();
            let bound = sealed_len_bound(&event, &envelope);
            assert!(bound >= exact, "{bound} < {exact} for {text:?}");
            // And not so loose that an ordinary event is measured exactly.
            if text.len() < 3_000 {
                assert!(bound < EVENT_BYTES_MAX_DEFAULT / 10, "{bound}");
            }
        }
    }
}
