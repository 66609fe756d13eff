//! The log on a real sled directory: append, reopen, chain, idempotency
//! records, projections equal to a rebuild, and damage found at start-up.

use serde_json::Value;
use uuid::Uuid;

use cpor_domain::calendar::Calendar;
use cpor_domain::command::{Command, CommandEnvelope, SubmitClaim};
use cpor_domain::decide::{decide, Context};
use cpor_domain::event::AggregateKind;
use cpor_domain::state::State;
use cpor_domain::types::*;
use cpor_domain::view::ClaimView;

use cpor_testkit::actors::{partner, reviewer, system};
use cpor_testkit::fixtures::{self, at};

use super::*;

/// Decides and appends one command in its own batch, like the engine does.
pub(crate) fn run(
    log: &mut Log,
    state: &mut State,
    actor: Actor,
    command: Command,
    now: &str,
) -> Vec<u64> {
    let envelope = CommandEnvelope {
        command_id: Uuid::new_v4(),
        actor,
        correlation_id: Some("corr-1".into()),
        traceparent: None,
        expected_version: None,
        command,
    };
    let calendar = Calendar::default();
    let ctx = Context {
        now: at(now),
        calendar: &calendar,
    };
    let decision = decide(state, &envelope, &ctx).expect("the test's commands are valid");
    let mut appender = log.begin();
    let mut positions = Vec::new();
    for event in decision.events.iter() {
        positions.push(
            appender
                .append(
                    state,
                    event,
                    at(now),
                    envelope.command_id,
                    Some("corr-1"),
                    None,
                )
                .unwrap(),
        );
    }
    appender.record_command(
        &envelope.command_id,
        &CommandRecord {
            fingerprint: "f".into(),
            recorded_at: at(now),
            reply: accepted(decision.events.len()),
        },
    );
    log.commit(appender, state).unwrap();
    positions
}

/// A stored reply listing `events` events.
fn accepted(events: usize) -> Accepted {
    Accepted {
        claim_id: None,
        version: 1,
        events: vec!["cpor.claim.comment_added".into(); events],
        warnings: Vec::new(),
    }
}

pub(crate) struct World {
    tenant: Uuid,
    subscription: Uuid,
}

/// Reference data, two competing claims, an approval: a history that
/// touches claims, cases, comments and deadlines.
pub(crate) fn history(log: &mut Log, state: &mut State) -> (World, Uuid, Uuid) {
    let tenant = Uuid::new_v4();
    let subscription = Uuid::new_v4();
    let now = "2026-11-25T09:00:00Z";
    run(
        log,
        state,
        system(),
        Command::UpsertTenant {
            tenant_id: tenant,
            domains: vec!["contoso.com".into()],
        },
        now,
    );
    run(
        log,
        state,
        system(),
        Command::UpsertSubscription(fixtures::subscription(tenant, subscription)),
        now,
    );
    for p in ["P-100", "P-200"] {
        run(
            log,
            state,
            system(),
            Command::UpsertPartner {
                partner_id: p.into(),
                mpns: vec![Mpn {
                    mpn_id: format!("{p}-mpn"),
                    incentive_enrolled: true,
                }],
            },
            now,
        );
    }
    let submit = |p: &str| {
        Command::Submit(SubmitClaim {
            claim_id: Uuid::new_v4(),
            tenant_id: tenant,
            domain: "contoso.com".into(),
            solution_area: SolutionArea::BusinessApplications,
            activity: Activity::Usage,
            product: "dynamics_365_sales".into(),
            subscription_id: Some(subscription.to_string()),
            mpn_id: format!("{p}-mpn"),
            proof_of_execution: vec![],
            note: None,
        })
    };
    let c1 = submit("P-100");
    let c1_id = match &c1 {
        Command::Submit(s) => s.claim_id,
        _ => unreachable!(),
    };
    run(log, state, partner("P-100"), c1, now);
    let c2 = submit("P-200");
    let c2_id = match &c2 {
        Command::Submit(s) => s.claim_id,
        _ => unreachable!(),
    };
    run(log, state, partner("P-200"), c2, "2026-11-25T10:00:00Z");
    run(
        log,
        state,
        reviewer(),
        Command::RequestPoe {
            claim_id: c1_id,
            text: "Signed SOW, please.".into(),
        },
        "2026-11-26T10:00:00Z",
    );
    run(
        log,
        state,
        reviewer(),
        Command::Approve {
            claim_id: c2_id,
            text: None,
        },
        "2026-11-27T10:00:00Z",
    );
    (
        World {
            tenant,
            subscription,
        },
        c1_id,
        c2_id,
    )
}

#[test]
fn reopening_gives_the_same_state_head_and_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, c2) = history(&mut log, &mut state);
    let head = log.head().clone();
    assert!(head.position > 10, "the history writes many events");
    log.reader().flush_blocking().unwrap();
    drop(log);

    let (log, reopened) = Log::open(dir.path()).unwrap();
    assert_eq!(log.head(), &head);
    assert_eq!(reopened, state, "folding the log gives the live state");
    assert_eq!(reopened.claims[&c1].status, ClaimStatus::Rejected);
    assert_eq!(reopened.claims[&c2].status, ClaimStatus::Approved);

    // Positions are gapless and every hash chains to the one before.
    let mut previous = String::new();
    for (expected, entry) in (1..).zip(log.reader().events_from(1)) {
        let (position, bytes) = entry.unwrap();
        assert_eq!(position, expected);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["position"], position);
        let hash = cpor_jcs::event_hash(&previous, &value).unwrap();
        assert_eq!(value["hash"], hash.as_str(), "hash at {position}");
        // Stored bytes are the canonical form, hash included.
        assert_eq!(
            cpor_jcs::canonical_json(&value).unwrap().as_bytes(),
            &bytes[..]
        );
        previous = hash;
    }
    assert_eq!(previous, head.hash);
}

#[test]
fn cloud_events_carry_the_contract_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let positions = log
        .reader()
        .stream_positions(&cpor_domain::event::AggregateId {
            kind: cpor_domain::event::AggregateKind::Claim,
            id: c1.to_string(),
        })
        .unwrap();
    let first: Value =
        serde_json::from_slice(&log.reader().event_bytes(positions[0]).unwrap().unwrap()).unwrap();
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["type"], "cpor.claim.submitted");
    assert_eq!(first["subject"], c1.to_string());
    assert_eq!(first["streamversion"], 1);
    assert_eq!(first["correlationid"], "corr-1");
    assert_eq!(first["data"]["actor"]["type"], "partner");
    assert_eq!(first["dataschema"], "urn:cpor:event:claim.submitted:v2");
    assert!(first["causationid"]
        .as_str()
        .unwrap()
        .parse::<Uuid>()
        .is_ok());
    // Stream versions of the claim are 1, 2, 3, ...
    for (version, position) in (1..).zip(&positions) {
        let event: Value =
            serde_json::from_slice(&log.reader().event_bytes(*position).unwrap().unwrap()).unwrap();
        assert_eq!(event["streamversion"], version);
    }
}

#[test]
fn stored_projections_equal_a_rebuild_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 0, "{:?}", report.differences);
    assert_eq!(report.events, log.head().position);
    assert_eq!(report.claims, 2);
    assert_eq!(report.cases, 1);
    assert!(report.entries > 10, "the comparison saw the entries");
}

#[test]
fn rebuild_reports_a_damaged_projection() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, c2) = history(&mut log, &mut state);
    let tree = &log.reader().views().unwrap();
    tree.insert(keys::claim_view(&c1), b"{}".to_vec()).unwrap();
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 1);
    assert!(
        report.differences[0].contains("ClaimView"),
        "{:?}",
        report.differences
    );

    // A missing index entry, an extra one and a damaged comment.
    let seq = state.claims[&c2].seq;
    tree.remove(keys::claim_order(seq)).unwrap();
    tree.insert(keys::claim_order(999), c2.as_bytes().to_vec())
        .unwrap();
    let (comment_key, _) = tree
        .scan_prefix(keys::comments_prefix(&c1))
        .next()
        .unwrap()
        .unwrap();
    tree.insert(comment_key, b"{}".to_vec()).unwrap();
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 4, "{:?}", report.differences);
    let all = report.differences.join("\n");
    assert!(
        all.contains("ClaimOrder") && all.contains("missing from the store"),
        "{all}"
    );
    assert!(all.contains("stored but not rebuilt"), "{all}");
    assert!(all.contains("Comment"), "{all}");

    // The recovery path: rewrite them from the log, then nothing differs.
    let repaired = repair_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(repaired.events, log.head().position);
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 0, "{:?}", report.differences);
}

/// The stream index is a projection too: an entry pointing at another
/// position, a missing one or an extra one is a difference, and
/// `repair_projections` rewrites it.
#[test]
fn rebuild_reports_a_damaged_stream_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let stream = log.reader().stream().unwrap();
    let claim = AggregateId {
        kind: AggregateKind::Claim,
        id: c1.to_string(),
    };
    let first = keys::stream(claim.kind, &claim.id, 1);
    let stored = stream
        .get(&first)
        .unwrap()
        .expect("the claim's first entry");
    let damages: [&dyn Fn(); 3] = [
        // Points at the next position.
        &|| {
            let position = u64::from_be_bytes(stored.as_ref().try_into().unwrap());
            stream
                .insert(&first, &(position + 1).to_be_bytes())
                .unwrap();
        },
        // Missing.
        &|| {
            stream.remove(&first).unwrap();
        },
        // An extra version.
        &|| {
            stream
                .insert(
                    keys::stream(claim.kind, &claim.id, 999),
                    &1u64.to_be_bytes(),
                )
                .unwrap();
        },
    ];
    for damage in damages {
        damage();
        let report = rebuild_projections(log.reader(), |_| {}).unwrap();
        assert_eq!(report.difference_count, 1, "{:?}", report.differences);
        assert!(
            report.differences[0].contains("stream index"),
            "{:?}",
            report.differences
        );
        repair_projections(log.reader(), |_| {}).unwrap();
        let report = rebuild_projections(log.reader(), |_| {}).unwrap();
        assert_eq!(report.difference_count, 0, "{:?}", report.differences);
    }
}

#[test]
fn queries_read_the_projections() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (world, c1, c2) = history(&mut log, &mut state);
    let reader = log.reader();
    let view = reader.claim_view(&c1).unwrap().unwrap();
    assert_eq!(
        view,
        ClaimView::of(&state.claims[&c1]),
        "as the state has it"
    );
    assert_eq!(view.status, ClaimStatus::Rejected);
    assert_eq!(view.reason.as_deref(), Some("LOST_ARBITRATION"));
    let comments = reader.comments(&c1, None, COMMENTS_MAX).unwrap();
    let comments = comments.values();
    assert_eq!(comments.len(), 2, "arbitration notice and the PoE request");
    assert!(comments[0].system);

    let all = reader
        .list_claims(&ClaimFilter::default(), None, 100)
        .unwrap();
    let ids: Vec<_> = all.values().iter().map(|c| c.claim_id).collect();
    assert_eq!(ids, vec![c1, c2], "submission order");
    assert_eq!(all.next, None);

    let page = reader
        .list_claims(&ClaimFilter::default(), None, 1)
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let next = page.next.unwrap();
    let rest = reader
        .list_claims(&ClaimFilter::default(), Some(next), 1)
        .unwrap();
    assert_eq!(rest.values()[0].claim_id, c2);
    assert_eq!(rest.next, None);

    let mine = ClaimFilter {
        partner_id: Some("P-200".into()),
        ..ClaimFilter::default()
    };
    assert_eq!(reader.list_claims(&mine, None, 100).unwrap().items.len(), 1);
    let approved = ClaimFilter {
        tenant_id: Some(world.tenant),
        status: Some(ClaimStatus::Approved),
        ..ClaimFilter::default()
    };
    assert_eq!(
        reader.list_claims(&approved, None, 100).unwrap().values()[0].claim_id,
        c2
    );
    let in_case = ClaimFilter {
        in_arbitration: Some(true),
        ..ClaimFilter::default()
    };
    assert!(
        reader
            .list_claims(&in_case, None, 100)
            .unwrap()
            .items
            .is_empty(),
        "the case is resolved"
    );
    let out_of_case = ClaimFilter {
        in_arbitration: Some(false),
        ..ClaimFilter::default()
    };
    assert_eq!(
        reader
            .list_claims(&out_of_case, None, 100)
            .unwrap()
            .items
            .len(),
        2
    );
    let cases = reader
        .list_cases(Some(CaseStatus::Closed), None, 100)
        .unwrap();
    assert_eq!(cases.items.len(), 1);
    assert_eq!(cases.values()[0].winner_claim_id, Some(c2));
    assert!(reader
        .list_cases(Some(CaseStatus::Open), None, 100)
        .unwrap()
        .items
        .is_empty());
    // Every paged read resumes after an item's cursor.
    let history = |after| {
        let claim = cpor_domain::event::AggregateId {
            kind: cpor_domain::event::AggregateKind::Claim,
            id: c1.to_string(),
        };
        reader.history(&claim, after, 1).unwrap()
    };
    let (mut after, mut versions) = (None, Vec::new());
    loop {
        let page = history(after);
        versions.extend(page.items.iter().map(|(v, e)| {
            let event: Value = serde_json::from_str(e.get()).unwrap();
            (*v, event["streamversion"].clone())
        }));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(versions.len() > 3, "{versions:?}");
    for (i, (version, streamversion)) in versions.iter().enumerate() {
        assert_eq!(*version, i as u64 + 1);
        assert_eq!(streamversion, &serde_json::json!(i + 1));
    }
    let comments = reader.comments(&c1, None, 1).unwrap();
    let rest = reader.comments(&c1, comments.next, 1).unwrap();
    assert_eq!(rest.items.len(), 1, "the PoE request");
    assert!(rest.items[0].0 > comments.items[0].0);
    assert_eq!(rest.next, None);
    let _ = world.subscription;
}

/// What `access::authorize` lets a caller see is what the queries return:
/// another partner's or tenant's claim is absent, lists are narrowed.
#[test]
fn queries_return_only_what_the_visibility_sees() {
    use cpor_domain::access::Visibility;
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (world, c1, c2) = history(&mut log, &mut state);
    let reader = log.reader();
    let owner = |id: &Uuid| reader.claim_view(id).unwrap().unwrap().partner_id;
    let (p1, p2) = (owner(&c1), owner(&c2));
    assert_ne!(p1, p2);
    let mine = Visibility::Partner(p1.clone());
    assert!(reader.visible_claim_view(&c1, &mine).unwrap().is_some());
    assert!(reader.visible_claim_view(&c2, &mine).unwrap().is_none());
    assert!(reader
        .visible_claim_view(&c2, &Visibility::Every)
        .unwrap()
        .is_some());
    let tenant = Visibility::Tenant(world.tenant);
    assert!(reader.visible_claim_view(&c2, &tenant).unwrap().is_some());
    let elsewhere = Visibility::Tenant(Uuid::new_v4());
    assert!(reader
        .visible_claim_view(&c1, &elsewhere)
        .unwrap()
        .is_none());
    assert!(reader
        .visible_claim_view(&Uuid::new_v4(), &Visibility::Every)
        .unwrap()
        .is_none());

    let ids = |filter: ClaimFilter| -> Vec<Uuid> {
        reader
            .list_claims(&filter, None, 100)
            .unwrap()
            .items
            .iter()
            .map(|(_, c)| c.claim_id)
            .collect()
    };
    assert_eq!(ids(ClaimFilter::default().within(&mine)), [c1]);
    assert_eq!(
        ids(ClaimFilter::default().within(&Visibility::Partner(p2))),
        [c2]
    );
    assert_eq!(
        ids(ClaimFilter::default().within(&elsewhere)),
        Vec::<Uuid>::new()
    );
    assert_eq!(ids(ClaimFilter::default().within(&tenant)).len(), 2);
    assert_eq!(
        ids(ClaimFilter::default().within(&Visibility::Every)).len(),
        2
    );
}

#[test]
fn a_damaged_tail_is_found_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let last = log.head().position;
    let bytes = log.reader().event_bytes(last).unwrap().unwrap().to_vec();
    let text = String::from_utf8(bytes).unwrap();
    let tampered = text.replace(r#""id":"cpor""#, r#""id":"cpoz""#);
    assert_ne!(tampered, text, "the tampering must change the event");
    segment::replace(&log.reader().log().unwrap(), last, tampered.as_bytes()).unwrap();
    log.reader().flush_blocking().unwrap();
    drop(log);
    match Log::open(dir.path()) {
        Err(LogError::Corrupt(message)) => {
            assert!(message.contains(&format!("position {last}")), "{message}")
        }
        Err(other) => panic!("expected a corrupt log, got {other}"),
        Ok(_) => panic!("expected a corrupt log, opened fine"),
    }
}

/// A head record ahead of the events (the last event lost) is no longer a
/// refusal to start (issue 11 case 3): the command it belonged to is cut
/// as a whole when its record lists more events than are left.
#[test]
fn a_head_record_that_disagrees_with_the_events_is_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let last = log.head().position;
    let bytes = log.reader().event_bytes(last).unwrap().unwrap();
    let command = causation_of(&bytes).unwrap();
    let events_of_command = log
        .reader()
        .events_from(1)
        .filter(|e| causation_of(&e.as_ref().unwrap().1) == Some(command))
        .count() as u64;
    let record = CommandRecord {
        fingerprint: "f".into(),
        recorded_at: at("2026-11-26T10:00:00Z"),
        reply: accepted(events_of_command as usize),
    };
    let tree = log.reader().log().unwrap();
    tree.insert(keys::command(&command), record.to_bytes())
        .unwrap();
    assert!(
        tree.scan_prefix(keys::prefix(KeyKind::CommandBatchExpiry))
            .any(|e| e.unwrap().1.chunks(16).any(|id| id == command.as_bytes())),
        "its group commit's expiry entry names it"
    );
    segment::remove_after(&tree, last - 1).unwrap();
    log.reader().flush_blocking().unwrap();
    drop(log);
    drop(tree);
    let (log, _) = Log::open(dir.path()).unwrap();
    assert_eq!(log.head().position, last - events_of_command);
    assert!(log.reader().command_record(&command).unwrap().is_none());
    // Nor does its group commit's expiry entry name it any more (it
    // would expire a retry of the command early).
    let listed = log
        .reader()
        .log()
        .unwrap()
        .scan_prefix(keys::prefix(KeyKind::CommandBatchExpiry))
        .any(|e| e.unwrap().1.chunks(16).any(|id| id == command.as_bytes()));
    assert!(!listed, "the cut command's expiry entry is gone");
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 0, "{:?}", report.differences);
}

#[test]
fn a_second_process_cannot_open_a_data_dir_in_use() {
    // sled locks the directory per process; within one process the same
    // directory may not be opened twice either.
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path()).unwrap();
    let second = LogReader::open(dir.path());
    assert!(
        matches!(second, Err(LogError::Locked(_)) | Err(LogError::Storage(_))),
        "opened twice"
    );
}

#[test]
fn command_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let id = Uuid::new_v4();
    let mut appender = log.begin();
    let record = CommandRecord {
        fingerprint: "abc".into(),
        recorded_at: at("2026-11-26T10:00:00Z"),
        reply: accepted(0),
    };
    appender.record_command(&id, &record);
    log.commit(appender, &state).unwrap();
    assert_eq!(log.reader().command_record(&id).unwrap(), Some(record));
    assert_eq!(log.reader().command_record(&Uuid::new_v4()).unwrap(), None);
    let _ = &mut state;
}

/// A data dir written before the tagged command records (issue 8 target
/// 5) keeps its records: after a reopen (start-up reads every record to
/// reconcile the head) a repeat of such a command finds its first reply.
#[test]
fn an_untagged_command_record_on_disk_still_answers_its_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let last = log.head().position;
    let bytes = log.reader().event_bytes(last).unwrap().unwrap();
    let command = causation_of(&bytes).unwrap();
    let first = log.reader().command_record(&command).unwrap().unwrap();
    assert!(!first.reply.events.is_empty());
    let tree = log.reader().log().unwrap();
    tree.insert(keys::command(&command), first.to_untagged_bytes())
        .unwrap();
    log.reader().flush_blocking().unwrap();
    drop(log);
    drop(tree);
    let (log, _) = Log::open(dir.path()).unwrap();
    assert_eq!(log.head().position, last, "its events are kept");
    assert_eq!(log.reader().command_record(&command).unwrap(), Some(first));
}

#[test]
fn a_version_1_claim_submitted_record_still_decodes() {
    // Written by schema version 1, before `note` existed.
    let fixture = r#"{"causationid":"0d1f6d43-3f59-4b7c-8a3e-6f1f4f0b7c11","data":{"activity":"usage","actor":{"partner_id":"P-100","roles":["incentives_admin"],"type":"partner"},"claim_id":"6749b280-715c-47c6-acdd-21b0eaff3070","domain":"contoso.com","incentive_eligible":true,"mpn_id":"4412001","partner_id":"P-100","product":"dynamics_365_sales","proof_of_execution":[],"review_due_at":"2026-12-03T00:00:00Z","solution_area":"business_applications","subscription_ids":["1b4e28ba-2fa1-11d2-883f-0016d3cca427"],"tenant_id":"9b2c0a34-8f7e-4f1a-9d51-2f7c0c1a9e10"},"datacontenttype":"application/json","dataschema":"urn:cpor:event:claim.submitted:v1","hash":"x","id":"3c5d4a7e-9b1f-4e6a-8d2c-1f0e9a8b7c6d","position":5,"source":"/cpor","specversion":"1.0","streamversion":1,"subject":"6749b280-715c-47c6-acdd-21b0eaff3070","time":"2026-11-25T09:00:00Z","type":"cpor.claim.submitted"}"#;
    let decoded = envelope::decode(fixture.as_bytes()).unwrap();
    match decoded.event.data {
        cpor_domain::event::EventData::ClaimSubmitted(submitted) => {
            assert_eq!(submitted.note, None);
            assert_eq!(submitted.mpn_id, "4412001");
        }
        other => panic!("decoded as {other:?}"),
    }
}

/// Issue 11 case 1: the writer refuses an event by its size before
/// appending it, so the measure must never be smaller than the stored bytes
/// (and not much larger: only the widths of two integers are guessed).
#[test]
fn the_sealed_size_bound_covers_every_stored_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    for entry in log.reader().events_from(1) {
        let (position, bytes) = entry.unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let decoded = envelope::decode(&bytes).unwrap();
        let meta = EventMeta {
            event_id: Uuid::new_v4(),
            time: decoded.time,
            position: 0,
            stream_version: 0,
            causation_id: Uuid::new_v4(),
            correlation_id: value["correlationid"].as_str().map(str::to_string),
            traceparent: None,
        };
        let bound = envelope::sealed_len_max(&decoded.event, &meta).unwrap();
        assert!(
            bound >= bytes.len() && bound <= bytes.len() + 40,
            "position {position}: bound {bound}, stored {}",
            bytes.len()
        );
    }
}

/// Issue 11 case 3: a start attempt on a full disk left a 0-byte
/// `snap.*.generating`, and sled 0.34 read it as the newest snapshot ("Read
/// corrupted data at file offset None"): the data dir could not start. An
/// unfinished snapshot of any size is removed at open, and the log opens
/// with everything it held.
#[test]
fn an_unfinished_snapshot_does_not_keep_the_log_from_opening() {
    for garbage in [&b""[..], b"partial snapshot bytes"] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut state) = Log::open(dir.path()).unwrap();
        history(&mut log, &mut state);
        let head = log.head().clone();
        log.reader().flush_blocking().unwrap();
        drop(log);
        let unfinished = dir.path().join("snap.FFFFFFFFFFFFFFFF.generating");
        std::fs::write(&unfinished, garbage).unwrap();
        let (log, reopened) = Log::open(dir.path()).unwrap();
        assert_eq!(log.head(), &head);
        assert_eq!(reopened, state);
        assert!(!unfinished.exists());
    }
}

/// Issue 11 case 3: after a full disk, data dirs refused to start for good
/// with "head record says position 392 but the last event is at 403"
/// (events of batches answered `UNAVAILABLE` were kept without their head
/// record) and "…392 but the last event is at 389" (the head record kept
/// without its events). Either way the tail past the shorter one was never
/// acknowledged: start-up cuts it with its command records and stream
/// entries, rewrites the projections, and opens on a consistent log.
#[test]
fn start_up_cuts_a_tail_the_head_record_does_not_cover() {
    for events_ahead in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut state) = Log::open(dir.path()).unwrap();
        let (world, claim, _) = history(&mut log, &mut state);
        let kept_head = log.head().clone();
        let kept_state = state.clone();
        // One more command (a comment: one event), whose batch is then
        // half lost.
        let comment = Command::Comment {
            claim_id: claim,
            text: "lost".into(),
        };
        let before = log.head().position;
        run(
            &mut log,
            &mut state,
            reviewer(),
            comment,
            "2026-11-26T10:00:00Z",
        );
        let after = log.head().position;
        assert!(after > before);
        let tree = log.reader().log().unwrap();
        let cut_command = {
            let bytes = log.reader().event_bytes(after).unwrap().unwrap();
            causation_of(&bytes).unwrap()
        };
        if events_ahead {
            // The head record of the last batch is lost.
            tree.insert(keys::head("head_position"), &before.to_be_bytes())
                .unwrap();
            tree.insert(keys::head("head_hash"), kept_head.hash.as_bytes())
                .unwrap();
        } else {
            // The events of the last batch are lost, its head record and
            // its command record (as the engine writes it) kept.
            let record = CommandRecord {
                fingerprint: "f".into(),
                recorded_at: at("2026-11-26T10:00:00Z"),
                reply: accepted(1),
            };
            tree.insert(keys::command(&cut_command), record.to_bytes())
                .unwrap();
            segment::remove_after(&tree, before).unwrap();
        }
        log.reader().flush_blocking().unwrap();
        drop(log);
        drop(tree);

        let (log, reopened) = Log::open(dir.path()).unwrap();
        assert_eq!(log.head(), &kept_head, "events ahead: {events_ahead}");
        assert_eq!(reopened, kept_state);
        assert!(log.reader().command_record(&cut_command).unwrap().is_none());
        let report = rebuild_projections(log.reader(), |_| {}).unwrap();
        assert_eq!(report.difference_count, 0, "{:?}", report.differences);
        // Reopening again finds nothing to reconcile.
        assert_eq!(startup::reconcile_head(log.reader()).unwrap(), None);
        let _ = world;
    }
}

/// Issue 11 case 3: a log that ends before what was published from it
/// (lost writes, or a data dir restored from an older copy) needs a person:
/// start-up refuses naming `cpor repair --accept-log-end`, `cpor verify`'s
/// run of the same checks on a copy refuses alike and leaves the data dir
/// as it was, and after the repair the log opens.
#[test]
fn a_log_behind_its_published_position_needs_the_named_repair() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let head = log.head().position;
    log.reader()
        .put_meta_u64(startup::META_PUBLISHED_POSITION, head + 3)
        .unwrap();
    log.reader().flush_blocking().unwrap();
    drop(log);

    let refusal = match Log::open(dir.path()) {
        Err(LogError::NeedsRepair(message)) => message,
        Err(other) => panic!("expected a repair to be named, got {other}"),
        Ok(_) => panic!("a log behind its published position opened"),
    };
    assert!(
        refusal.contains("cpor repair --data-dir DIR --accept-log-end")
            && refusal.contains(&format!("ends at position {head}"))
            && refusal.contains(&format!("up to position {}", head + 3)),
        "{refusal}"
    );
    let copy = LogReader::open_copy(dir.path(), SLED_CACHE_BYTES).unwrap();
    assert!(matches!(startup::run(&copy), Err(LogError::NeedsRepair(_))));
    drop(copy);

    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(
        startup::accept_log_end(&reader).unwrap(),
        Some((head + 3, head))
    );
    assert_eq!(startup::accept_log_end(&reader).unwrap(), None);
    drop(reader);
    let (log, _) = Log::open(dir.path()).unwrap();
    assert_eq!(log.head().position, head);
}

/// `cpor verify --data-dir` runs the start-up checks on its private copy:
/// what a start would cut is reported, and the data dir is left as it was.
#[test]
fn start_up_checks_on_a_copy_report_the_cut_and_leave_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let head = log.head().clone();
    let tree = log.reader().log().unwrap();
    tree.insert(
        keys::head("head_position"),
        &(head.position - 1).to_be_bytes(),
    )
    .unwrap();
    log.reader().flush_blocking().unwrap();
    drop(tree);
    drop(log);
    let recorded = |dir: &std::path::Path| {
        let reader = LogReader::open_copy(dir, SLED_CACHE_BYTES).unwrap();
        reader
            .log()
            .unwrap()
            .get(keys::head("head_position"))
            .unwrap()
            .map(|v| u64::from_be_bytes(v.as_ref().try_into().unwrap()))
    };
    let copy = LogReader::open_copy(dir.path(), SLED_CACHE_BYTES).unwrap();
    let startup = startup::run(&copy).unwrap();
    assert_eq!(startup.actions.len(), 1);
    assert!(
        startup.actions[0].contains("cut the unacknowledged tail"),
        "{:?}",
        startup.actions
    );
    drop(copy);
    assert_eq!(
        recorded(dir.path()),
        Some(head.position - 1),
        "the data dir changed"
    );
}

/// Command records expire oldest first, at most `max` per batch, and only
/// those recorded before the cut-off (contract §5 asks ≥ 7 days; the
/// engine passes its clock minus its retention).
#[test]
fn command_records_expire_oldest_first_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, state) = Log::open(dir.path()).unwrap();
    let times = [
        "2026-11-01T10:00:00Z",
        "2026-11-02T10:00:00Z",
        "2026-11-03T10:00:00Z",
    ];
    let ids: Vec<Uuid> = times.iter().map(|_| Uuid::new_v4()).collect();
    // One group commit each (a batch's records expire together, at its
    // latest time: see the next test).
    for (id, time) in ids.iter().zip(times) {
        let record = CommandRecord {
            fingerprint: "ab".repeat(32),
            recorded_at: at(time),
            reply: accepted(1),
        };
        let mut appender = log.begin();
        appender.record_command(id, &record);
        log.commit(appender, &state).unwrap();
    }
    assert_eq!(log.reader().command_records().unwrap(), 3);

    // Cut-off after the first two, bound one: only the oldest goes.
    let reader = log.reader().clone();
    let mut appender = log.begin();
    let cut = at("2026-11-03T09:00:00Z");
    assert_eq!(appender.expire_commands(&reader, &cut, 1).unwrap(), 1);
    log.commit(appender, &state).unwrap();
    assert!(log.reader().command_record(&ids[0]).unwrap().is_none());
    assert!(log.reader().command_record(&ids[1]).unwrap().is_some());

    // Again, unbounded: the second goes, the third (after the cut) stays.
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 100).unwrap(), 1);
    log.commit(appender, &state).unwrap();
    assert!(log.reader().command_record(&ids[1]).unwrap().is_none());
    assert!(log.reader().command_record(&ids[2]).unwrap().is_some());
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 100).unwrap(), 0);
    assert!(appender.is_empty(), "nothing expired, nothing to write");
    assert_eq!(log.reader().command_records().unwrap(), 1);
}

/// A group commit's commands share one expiry entry; the bound still
/// holds within it (the entry is cut and the rest expire later, oldest
/// first), and the per-command entries of data dirs written before it
/// (issue 8 target 5) are read too, first.
#[test]
fn a_batch_expiry_entry_expires_within_the_bound_after_the_old_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, state) = Log::open(dir.path()).unwrap();
    let record = |time: &str| CommandRecord {
        fingerprint: "ab".repeat(32),
        recorded_at: at(time),
        reply: accepted(1),
    };
    // An entry of the old kind, as a data dir written before has them.
    let old = Uuid::new_v4();
    let tree = log.reader().log().unwrap();
    let old_record = record("2026-11-01T09:00:00Z");
    tree.insert(keys::command(&old), old_record.to_untagged_bytes())
        .unwrap();
    tree.insert(keys::command_expiry(&old_record.recorded_at, &old), &[])
        .unwrap();
    // Five commands in one batch, two in a later one whose first command
    // is older than the cut but its last is not: the batch stays whole.
    let first: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let later: Vec<Uuid> = (0..2).map(|_| Uuid::new_v4()).collect();
    let batches = [
        (&first, ["2026-11-02T10:00:00Z", "2026-11-02T10:00:01Z"]),
        (&later, ["2026-11-03T08:00:00Z", "2026-11-03T10:00:00Z"]),
    ];
    for (ids, [early, late]) in batches {
        let mut appender = log.begin();
        for (i, id) in ids.iter().enumerate() {
            appender.record_command(id, &record(if i == 0 { early } else { late }));
        }
        log.commit(appender, &state).unwrap();
    }
    let batch_entries = || {
        tree.scan_prefix(keys::prefix(KeyKind::CommandBatchExpiry))
            .count()
    };
    assert_eq!(batch_entries(), 2, "one entry per group commit");
    assert_eq!(log.reader().command_records().unwrap(), 8);

    let reader = log.reader().clone();
    let gone = |id: &Uuid| reader.command_record(id).unwrap().is_none();
    let cut = at("2026-11-03T09:00:00Z");
    // Bound 3: the old command, then the batch's first two.
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 3).unwrap(), 3);
    log.commit(appender, &state).unwrap();
    assert!(gone(&old) && gone(&first[0]) && gone(&first[1]));
    assert!(first[2..].iter().chain(&later).all(|id| !gone(id)));
    assert_eq!(batch_entries(), 2, "the first entry keeps the rest");
    // Bound 2: two more of the batch.
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 2).unwrap(), 2);
    log.commit(appender, &state).unwrap();
    assert!(gone(&first[2]) && gone(&first[3]) && !gone(&first[4]));
    // Unbounded: the last of the batch; the later batch is after the cut.
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 100).unwrap(), 1);
    log.commit(appender, &state).unwrap();
    assert!(gone(&first[4]));
    assert_eq!(batch_entries(), 1);
    assert!(tree
        .scan_prefix(keys::prefix(KeyKind::CommandExpiry))
        .next()
        .is_none());
    assert_eq!(log.reader().command_records().unwrap(), 2);
    let mut appender = log.begin();
    assert_eq!(appender.expire_commands(&reader, &cut, 100).unwrap(), 0);
    assert!(appender.is_empty(), "nothing expired, nothing to write");
}

/// A stop between the log batch and the derived trees' batches leaves
/// them behind the head: start-up sees it by their markers and rewrites
/// them from the log.
#[test]
fn derived_trees_behind_the_head_are_rewritten_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let head = log.head().position;
    // As if the last batch's derived writes were lost: a marker behind,
    // and its claim view missing.
    let reader = log.reader().clone();
    reader
        .views()
        .unwrap()
        .insert(keys::DERIVED_THROUGH, &(head - 1).to_be_bytes())
        .unwrap();
    reader
        .views()
        .unwrap()
        .remove(keys::claim_view(&c1))
        .unwrap();
    reader.flush_blocking().unwrap();
    drop(reader);
    drop(log);
    let (log, _) = Log::open(dir.path()).unwrap();
    assert!(log.reader().claim_view(&c1).unwrap().is_some());
    let report = rebuild_projections(log.reader(), |_| {}).unwrap();
    assert_eq!(report.difference_count, 0, "{:?}", report.differences);
    assert!(!log.reader().catch_up_derived(log.head()).unwrap());
}

/// A store of layout 2 kept its views as JSON (`serde_json::to_vec` of the
/// domain's views, which this test writes as that release did). Opening it
/// rewrites them from the log in layout 3's compact form: the queries read
/// typed views again, `rebuild` finds nothing different, and the events are
/// untouched. A data dir written by the layout 2 release itself is tested
/// in `tests/it/upgrade.rs`.
#[test]
fn a_layout_2_stores_json_views_are_rewritten_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let head = log.head().clone();
    let reader = log.reader().clone();
    let events: Vec<_> = reader.events_from(1).map(Result::unwrap).collect();
    // Back to layout 2: every view as JSON, and its marker.
    let views = reader.views().unwrap();
    let mut json_views = 0;
    for entry in views.iter() {
        let (key, value) = entry.unwrap();
        let json = match key[0] {
            k if k == KeyKind::ClaimView as u8 => {
                serde_json::to_vec(&stored::decode_claim(&value).unwrap()).unwrap()
            }
            k if k == KeyKind::CaseView as u8 => {
                serde_json::to_vec(&stored::decode_case(&value).unwrap()).unwrap()
            }
            k if k == KeyKind::Comment as u8 => {
                serde_json::to_vec(&stored::decode_comment(&value).unwrap()).unwrap()
            }
            _ => continue,
        };
        views.insert(key, json).unwrap();
        json_views += 1;
    }
    assert!(json_views >= 5, "{json_views}");
    reader.put_meta_u64("layout_version", 2).unwrap();
    reader.flush_blocking().unwrap();
    assert!(
        reader.claim_view(&c1).is_err(),
        "this release cannot read JSON views"
    );
    drop((views, reader, log));

    let (log, _) = Log::open(dir.path()).unwrap();
    let reader = log.reader();
    assert_eq!(
        reader.get_meta_u64("layout_version").unwrap(),
        Some(LAYOUT_VERSION)
    );
    assert_eq!(log.head(), &head, "the chain is unchanged");
    let after: Vec<_> = reader.events_from(1).map(Result::unwrap).collect();
    assert_eq!(after, events, "the events are unchanged");
    assert_eq!(
        reader.claim_view(&c1).unwrap().unwrap(),
        ClaimView::of(&state.claims[&c1])
    );
    let report = rebuild_projections(reader, |_| {}).unwrap();
    assert_eq!(report.difference_count, 0, "{:?}", report.differences);
    assert_eq!(migrate::upgrade_if_needed(reader).unwrap(), None);
}

/// A store of layout 3 kept one `log` entry per event. Opening it moves
/// them into segments, their bytes unchanged, and sets layout 4; so does
/// opening it after a stop half-way through that step (the first events
/// already in segments, the rest still in entries of their own). A data
/// dir written by the layout 3 release itself is tested in
/// `tests/it/upgrade.rs`.
#[test]
fn a_layout_3_stores_events_move_into_segments_at_open() {
    for moved_before_stop in [0, 7] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut state) = Log::open(dir.path()).unwrap();
        history(&mut log, &mut state);
        let head = log.head().clone();
        let reader = log.reader().clone();
        let events: Vec<_> = reader.events_from(1).map(Result::unwrap).collect();
        assert!(events.len() > 10, "{}", events.len());
        // Back to layout 3: the events after `moved_before_stop` in
        // entries of their own, none of them in a segment.
        let tree = reader.log().unwrap();
        segment::remove_after(&tree, moved_before_stop).unwrap();
        for (position, bytes) in &events[moved_before_stop as usize..] {
            tree.insert(keys::event(*position), bytes.as_slice())
                .unwrap();
        }
        reader.put_meta_u64("layout_version", 3).unwrap();
        reader.flush_blocking().unwrap();
        drop((tree, reader, log));

        let (log, reopened) = Log::open(dir.path()).unwrap();
        let reader = log.reader();
        assert_eq!(
            reader.get_meta_u64("layout_version").unwrap(),
            Some(LAYOUT_VERSION)
        );
        assert_eq!(log.head(), &head, "the chain is unchanged");
        assert_eq!(reopened, state);
        let after: Vec<_> = reader.events_from(1).map(Result::unwrap).collect();
        assert_eq!(after, events, "the events are unchanged");
        let old_entries = reader
            .log()
            .unwrap()
            .scan_prefix(keys::prefix(KeyKind::Event))
            .count();
        assert_eq!(old_entries, 0);
        for (position, bytes) in &events {
            assert_eq!(&reader.event_bytes(*position).unwrap().unwrap(), bytes);
        }
        assert_eq!(migrate::upgrade_if_needed(reader).unwrap(), None);
    }
}

/// Segments: a batch larger than one segment holds spreads over several,
/// every read (in order, from any position, one position) gives each event
/// back, and the last position is the last segment's last.
#[test]
fn a_large_batch_spreads_over_segments_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    let events: Vec<_> = log.reader().events_from(1).map(Result::unwrap).collect();
    // Rewrite them as segments of a few events each, as a batch whose
    // events pass `SEGMENT_RAW_BYTES_MAX` would be.
    let tree = log.reader().log().unwrap();
    segment::remove_after(&tree, 0).unwrap();
    let mut builder = segment::SegmentBuilder::default();
    let mut segments = 0;
    for (position, bytes) in &events {
        if builder.is_full_for(bytes.len()) || builder.len() == 3 {
            let (key, value) = builder.take().unwrap().unwrap();
            tree.insert(key, value).unwrap();
            segments += 1;
        }
        builder.push(*position, bytes);
    }
    let (key, value) = builder.take().unwrap().unwrap();
    tree.insert(key, value).unwrap();
    assert!(segments >= 3, "{segments}");
    let reader = log.reader();
    assert_eq!(reader.last_position().unwrap(), events.len() as u64);
    for from in 1..=events.len() as u64 + 1 {
        let read: Vec<_> = reader.events_from(from).map(Result::unwrap).collect();
        assert_eq!(read, events[from as usize - 1..], "from {from}");
        let one = reader.event_bytes(from).unwrap();
        assert_eq!(one.as_ref(), events.get(from as usize - 1).map(|e| &e.1));
    }
    assert_eq!(reader.event_bytes(0).unwrap(), None);
}

/// Opening a data dir whose layout is newer than this release's is
/// refused, naming both layouts: an older release cannot read what a newer
/// one wrote (here: this release's views, for the layout 2 release).
#[test]
fn a_newer_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path()).unwrap();
    log.reader()
        .put_meta_u64("layout_version", LAYOUT_VERSION + 1)
        .unwrap();
    log.reader().flush_blocking().unwrap();
    drop(log);
    let Err(LogError::Corrupt(message)) = Log::open(dir.path()) else {
        panic!("opened a newer layout");
    };
    let newer = format!(
        "layout {}, newer than this release's {LAYOUT_VERSION}",
        LAYOUT_VERSION + 1
    );
    assert!(message.contains(&newer), "{message}");
}

/// The space accounting counts every event once, with the bytes the export
/// writes, and sorts each live entry under its kind.
#[test]
fn store_space_counts_the_events_and_every_kind_of_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    history(&mut log, &mut state);
    log.reader().flush_blocking().unwrap();
    let space = log.reader().space().unwrap();

    let mut events = 0;
    let mut bytes = 0;
    for entry in log.reader().events_from(1) {
        let (_, event) = entry.unwrap();
        events += 1;
        bytes += event.len() as u64;
    }
    assert_eq!(space.events, events);
    assert_eq!(space.event_bytes, bytes);
    let kind = |name: &str| space.kinds.iter().find(|k| k.name == name);
    assert!(kind("log/segment").is_some_and(|k| k.value_bytes > 0));
    assert!(kind("stream/claim").is_some_and(|k| k.entries > 0));
    assert!(kind("views/claim").is_some_and(|k| k.entries == state.claims.len() as u64));
    assert!(kind("log/command")
        .is_some_and(|k| k.entries == log.reader().command_records().unwrap() as u64));
    assert!(
        space.kinds.iter().all(|k| !k.name.ends_with("/other")),
        "{space:?}"
    );
    assert!(space.live_bytes() > 0 && space.file_bytes > 0);
}

/// A flush syncs every blob file sled wrote (page images over a quarter of
/// its log segment go to `blobs/`, which sled itself never syncs) and
/// `db`; a later flush syncs only new blobs, and forgets removed ones.
#[test]
fn a_flush_syncs_the_blob_files_sled_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = Log::open(dir.path()).unwrap();
    let reader = log.reader().clone();
    let store = reader.store().unwrap();
    // A value larger than a quarter of sled's 512 KiB segment: its page
    // image is a blob.
    store.meta.insert(b"big", vec![7u8; 300 * 1024]).unwrap();
    reader.flush_blocking().unwrap();
    let on_disk: std::collections::HashSet<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!on_disk.is_empty(), "the large value went to a blob file");
    let synced = store.durable.synced_blobs().clone();
    assert!(
        on_disk.is_subset(&synced),
        "every blob synced: {on_disk:?} vs {synced:?}"
    );
}
