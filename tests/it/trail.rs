//! The audit trail against an outsider with publish rights on a nats-server
//! without permissions (issue 10, issue 9 item 8, issue 11 item 1's relay
//! half): forged messages under a real event's id, junk in the events
//! stream before a restart, a purged status stream, a deleted events
//! stream, an event JetStream refuses. The relay reports, never stalls and
//! never refuses to start because of them; `cpor verify --nats-url`
//! compares instead of skipping; `cpor repair-stream` rebuilds the copy.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use cpor_testkit::actors;
use cpor_testkit::fixtures::wire::{self as fixtures, MPN_ID, PARTNER_ID};

use crate::support::jetstream::delete_streams;
use crate::support::service::clock_body;
use crate::support::{
    cpor_bin, events_stream, status_stream, try_request, unique_prefix, NatsServer, Service,
    ServiceOptions,
};

/// How long the relay may take to notice and repair a stream.
const REPAIR_TIMEOUT: Duration = Duration::from_secs(30);

fn system() -> Value {
    actors::wire::system("trail-test")
}

fn partner() -> Value {
    actors::wire::partner(PARTNER_ID, "a@p.example")
}

async fn ok(client: &async_nats::Client, prefix: &str, tail: &str, mut body: Value) -> Value {
    if tail.starts_with("cmd.") {
        body["command_id"] = json!(Uuid::new_v4());
    }
    let reply = try_request(client, &format!("{prefix}.{tail}"), body.to_string())
        .await
        .unwrap_or_else(|e| panic!("{tail}: {e}"));
    assert_eq!(reply["ok"], true, "{tail}: {reply}");
    reply
}

/// Reference data and `claims` claims with a comment each; returns the
/// claim ids.
pub(crate) async fn populate(
    client: &async_nats::Client,
    prefix: &str,
    claims: usize,
) -> Vec<String> {
    ok(
        client,
        prefix,
        "admin.clock",
        clock_body(&json!("2026-11-25T09:00:00Z")),
    )
    .await;
    ok(
        client,
        prefix,
        "cmd.ref.partner",
        fixtures::partner(&system(), PARTNER_ID, MPN_ID),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..claims {
        let tenant = Uuid::new_v4();
        let subscription = Uuid::new_v4();
        let domain = format!(
            "trail-{i}-{}.example.com",
            &tenant.simple().to_string()[..6]
        );
        let system = system();
        ok(
            client,
            prefix,
            "cmd.ref.tenant",
            fixtures::tenant(&system, tenant, &[&domain]),
        )
        .await;
        ok(
            client,
            prefix,
            "cmd.ref.subscription",
            fixtures::subscription(&system, tenant, subscription),
        )
        .await;
        let claim = Uuid::new_v4();
        ok(
            client,
            prefix,
            "cmd.partner.P-100.submit",
            json!({"actor": partner(),
            "claim_id": claim, "tenant_id": tenant, "domain": domain,
            "solution_area": "business_applications", "activity": "usage",
            "product": "dynamics_365_sales", "subscription_id": subscription,
            "mpn_id": MPN_ID}),
        )
        .await;
        comment(client, prefix, &claim.to_string(), "a note").await;
        ids.push(claim.to_string());
    }
    ids
}

async fn comment(client: &async_nats::Client, prefix: &str, claim: &str, text: &str) {
    ok(
        client,
        prefix,
        "cmd.partner.P-100.comment",
        json!({"actor": partner(), "claim_id": claim, "text": text}),
    )
    .await;
}

async fn health(client: &async_nats::Client, prefix: &str) -> Value {
    try_request(client, &format!("{prefix}.qry.health"), "{}")
        .await
        .unwrap_or_else(|e| panic!("health: {e}"))
}

/// Polls health until `done` holds; panics with the last health after
/// [`REPAIR_TIMEOUT`].
async fn wait_health(
    client: &async_nats::Client,
    prefix: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        let h = health(client, prefix).await;
        if done(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "{what}: last health {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn caught_up(h: &Value) -> bool {
    h["published_position"] == h["log_position"] && h["relayed_position"] == h["log_position"]
}

/// Polls until `done` holds on the stream's message count.
async fn wait_messages(
    js: &jetstream::Context,
    name: &str,
    what: &str,
    done: impl Fn(u64) -> bool,
) {
    let deadline = Instant::now() + REPAIR_TIMEOUT;
    loop {
        let messages = match js.get_stream(name).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).ok(),
            Err(_) => None,
        };
        if messages.is_some_and(&done) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {name} holds {messages:?} messages"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cpor ARGS` → (exit code, stdout, stderr).
async fn cpor(args: &[&str]) -> (Option<i32>, String, String) {
    let output = tokio::process::Command::new(cpor_bin())
        .args(args)
        .env_remove("CPOR_NATS_URL")
        .env_remove("CPOR_PREFIX")
        .output()
        .await
        .expect("run cpor");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

async fn verify_stream(url: &str, prefix: &str) -> (Option<i32>, String) {
    let (code, out, err) = cpor(&["verify", "--nats-url", url, "--prefix", prefix]).await;
    (code, format!("{out}{err}"))
}

/// The raw message at `sequence`.
async fn raw(js: &jetstream::Context, name: &str, sequence: u64) -> Vec<u8> {
    js.get_stream(name)
        .await
        .unwrap()
        .get_raw_message(sequence)
        .await
        .unwrap_or_else(|e| panic!("{name} #{sequence}: {e}"))
        .payload
        .to_vec()
}

/// RFC 8785 for the plain values events hold (strings, integers, bools,
/// null, arrays, objects): keys sorted, no whitespace.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&map[*k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// What an attacker without the key can do: change an event and give it
/// the hash of the chain (unkeyed SHA-256 over the previous hash and the
/// canonical event without `hash`).
fn rechain(mut event: Value, previous_hash: &str) -> Value {
    event.as_object_mut().unwrap().remove("hash");
    let hash = hex(&Sha256::digest(format!(
        "{previous_hash}{}",
        canonical(&event)
    )));
    event["hash"] = json!(hash);
    event
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The events stream as the service makes it.
async fn create_events_stream(js: &jetstream::Context, prefix: &str) {
    js.create_stream(stream::Config {
        name: events_stream(prefix),
        subjects: vec![format!("{prefix}.evt.>")],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("create the events stream");
}

async fn publish(js: &jetstream::Context, subject: String, payload: Vec<u8>, id: Option<&str>) {
    let mut message = jetstream::message::PublishMessage::build().payload(payload.into());
    if let Some(id) = id {
        message = message.message_id(id);
    }
    let ack = js
        .send_publish(subject, message)
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert!(!ack.duplicate);
}

/// An outsider publishes a rechained forgery under the real id of event 3
/// before the relay publishes it. The relay's ack says `duplicate`: it
/// compares the stored message, raises the alarm (health, log), does not
/// count position 3 as published and publishes everything else;
/// `cpor verify --nats-url` fails at the forgery; `cpor repair-stream`
/// rebuilds the stream from the log while the service runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_under_a_real_event_id_raises_the_alarm_and_repair_rebuilds_the_stream() {
    let nats = NatsServer::start_own();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    // The log, written and published under a first prefix.
    let first = unique_prefix();
    let mut first_service =
        Service::start(ServiceOptions::new(nats.url(), &first).manual_clock(true)).await;
    let claims = populate(&client, &first, 2).await;
    wait_health(&client, &first, "first publish", caught_up).await;
    first_service.terminate().await;
    let data_dir = first_service.data_dir().to_path_buf();
    let genuine: Vec<Vec<u8>> = {
        let mut out = Vec::new();
        for sequence in 1..=3 {
            out.push(raw(&js, &events_stream(&first), sequence).await);
        }
        out
    };
    let event = |i: usize| -> Value { serde_json::from_slice(&genuine[i]).unwrap() };

    // The same data dir under a second prefix: its relay publishes from
    // position 1. The outsider got there first: the genuine events 1 and 2,
    // then a forged event 3 under event 3's real id, correctly chained.
    let second = unique_prefix();
    create_events_stream(&js, &second).await;
    for bytes in &genuine[..2] {
        let value: Value = serde_json::from_slice(bytes).unwrap();
        let id = value["id"].as_str().unwrap().to_string();
        publish(&js, format!("{second}.evt.x"), bytes.clone(), Some(&id)).await;
    }
    let mut forged = event(2);
    forged["data"]["actor"] = json!({"type": "system", "id": "forger"});
    let forged = rechain(forged, event(1)["hash"].as_str().unwrap());
    let real_id = event(2)["id"].as_str().unwrap().to_string();
    publish(
        &js,
        format!("{second}.evt.x"),
        canonical(&forged).into_bytes(),
        Some(&real_id),
    )
    .await;

    let mut service = Service::start(
        ServiceOptions::new(nats.url(), &second)
            .manual_clock(true)
            .data_dir(&data_dir),
    )
    .await;
    let h = wait_health(&client, &second, "relay goes past the forgery", |h| {
        h["relayed_position"] == h["log_position"]
    })
    .await;
    assert_eq!(h["trail"]["forged_events"], 1, "{h}");
    assert_eq!(h["trail"]["first_forged_position"], 3, "{h}");
    assert_eq!(h["trail"]["intact"], false, "{h}");
    assert_eq!(
        h["published_position"], 2,
        "position 3 never counts as published: {h}"
    );
    assert_eq!(
        h["trail"]["foreign_messages"], 1,
        "the forgery at the stream's end, seen at start: {h}"
    );
    assert!(
        service.log_tail(200).contains("ALARM"),
        "{}",
        service.log_tail(50)
    );
    // Publishing goes on.
    let log_before = h["log_position"].as_u64().unwrap();
    comment(&client, &second, &claims[0], "after the forgery").await;
    let h = wait_health(&client, &second, "relay publishes on", |h| {
        h["relayed_position"].as_u64() > Some(log_before)
            && h["relayed_position"] == h["log_position"]
    })
    .await;
    assert_eq!(h["published_position"], 2, "{h}");

    // The verifier compares: the forgery is named.
    let (code, out) = verify_stream(nats.url(), &second).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("position 4") && out.contains("position 3"),
        "{out}"
    );

    // The operator's repair rebuilds the copy from the log, without a restart.
    let (code, out, err) = cpor(&[
        "repair-stream",
        "--nats-url",
        nats.url(),
        "--prefix",
        &second,
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let h = wait_health(&client, &second, "repair refills", |h| {
        caught_up(h) && h["trail"]["intact"] == true
    })
    .await;
    let (code, out) = verify_stream(nats.url(), &second).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("positions 1..{}", h["log_position"])),
        "{out}"
    );
    service.terminate().await;
    delete_streams(&js, &first).await;
    delete_streams(&js, &second).await;
}

/// Junk and a forged "next event" at the events stream's end while the
/// service is down: it starts, reports both with their sequences, and
/// publishes on. `cpor verify --nats-url` then fails naming both messages
/// of the contested position, and counts the junk as foreign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_at_the_stream_end_does_not_stop_a_start() {
    let nats = NatsServer::start_own();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let claims = populate(&client, &prefix, 1).await;
    let h = wait_health(&client, &prefix, "publish", caught_up).await;
    let last = h["log_position"].as_u64().unwrap();
    service.terminate().await;

    // Junk, then a chained forgery of the next position under a fresh id.
    publish(
        &js,
        format!("{prefix}.evt.junk"),
        b"not json at all".to_vec(),
        None,
    )
    .await;
    let last_event: Value =
        serde_json::from_slice(&raw(&js, &events_stream(&prefix), last).await).unwrap();
    let mut next = last_event.clone();
    next["position"] = json!(last + 1);
    next["id"] = json!(Uuid::new_v4());
    next["streamversion"] = json!(last_event["streamversion"].as_u64().unwrap() + 1);
    next["type"] = json!("cpor.claim.approved");
    let next = rechain(next, last_event["hash"].as_str().unwrap());
    let forged_id = next["id"].as_str().unwrap().to_string();
    publish(
        &js,
        format!("{prefix}.evt.claim.x.approved"),
        canonical(&next).into_bytes(),
        Some(&forged_id),
    )
    .await;

    service.start_again().await;
    let h = health(&client, &prefix).await;
    assert_eq!(h["trail"]["foreign_messages"], 2, "{h}");
    let tail = service.log_tail(200);
    assert!(
        tail.contains("sequence") && tail.contains("not this log's event"),
        "{tail}"
    );
    comment(&client, &prefix, &claims[0], "after the junk").await;
    let h = wait_health(&client, &prefix, "publishes on", caught_up).await;
    assert!(h["log_position"].as_u64().unwrap() > last, "{h}");

    // The stream now holds two different messages for position last+1.
    let (code, out) = verify_stream(nats.url(), &prefix).await;
    assert_eq!(code, Some(1), "{out}");
    let junk_sequence = last + 1;
    let forged_sequence = last + 2;
    let genuine_sequence = last + 3;
    assert!(
        out.contains(&format!(
            "sequences {forged_sequence} and {genuine_sequence}"
        )) && out.contains(&format!("position {}", last + 1)),
        "{out}"
    );
    assert!(
        out.contains(&format!("sequence {junk_sequence} is not an event")),
        "{out}"
    );
    service.terminate().await;
    delete_streams(&js, &prefix).await;
}

/// A purged status stream is refilled, and a deleted events stream is
/// recreated and refilled, while the service runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_and_deleted_streams_are_refilled_without_a_restart() {
    let nats = NatsServer::start_own();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let claims = populate(&client, &prefix, 3).await;
    let h = wait_health(&client, &prefix, "publish", caught_up).await;
    let log = h["log_position"].as_u64().unwrap();

    js.get_stream(status_stream(&prefix))
        .await
        .unwrap()
        .purge()
        .await
        .unwrap();
    wait_messages(&js, &status_stream(&prefix), "status refilled", |m| {
        m == claims.len() as u64
    })
    .await;

    js.delete_stream(events_stream(&prefix)).await.unwrap();
    wait_messages(
        &js,
        &events_stream(&prefix),
        "events recreated and refilled",
        |m| m == log,
    )
    .await;
    comment(&client, &prefix, &claims[0], "after the deletion").await;
    let h = wait_health(&client, &prefix, "publishes on", caught_up).await;
    assert_eq!(h["log_position"].as_u64(), Some(log + 1), "{h}");
    let (code, out) = verify_stream(nats.url(), &prefix).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("positions 1..{}", log + 1)), "{out}");
    service.terminate().await;
    delete_streams(&js, &prefix).await;
}

/// An event JetStream refuses for good (over the stream's `max_msg_size`)
/// is reported and skipped: the events after it and their statuses are
/// published (issue 11 item 1, the relay's half).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_jetstream_refuses_is_reported_and_skipped() {
    let nats = NatsServer::start_own();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let prefix = unique_prefix();
    js.create_stream(stream::Config {
        name: events_stream(&prefix),
        subjects: vec![format!("{prefix}.evt.>")],
        duplicate_window: Duration::from_secs(120),
        max_message_size: 2_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let claims = populate(&client, &prefix, 1).await;
    let h = wait_health(&client, &prefix, "publish", caught_up).await;
    let before = h["log_position"].as_u64().unwrap();
    comment(&client, &prefix, &claims[0], &"x".repeat(1_900)).await;
    comment(&client, &prefix, &claims[0], "small again").await;
    let h = wait_health(&client, &prefix, "relay goes past the refused event", |h| {
        h["relayed_position"] == h["log_position"] && h["log_position"].as_u64() == Some(before + 2)
    })
    .await;
    assert_eq!(h["trail"]["unpublishable_events"], 1, "{h}");
    assert_eq!(
        h["trail"]["first_unpublishable_position"],
        before + 1,
        "{h}"
    );
    assert_eq!(h["published_position"], before, "{h}");
    let last: Value =
        serde_json::from_slice(&raw(&js, &events_stream(&prefix), before + 1).await).unwrap();
    assert_eq!(
        last["position"],
        before + 2,
        "the event after the refused one is published"
    );
    assert!(service
        .log_tail(200)
        .contains("refused this event for good"));
    service.terminate().await;
    delete_streams(&js, &prefix).await;
}

/// The independent verifier, when Python 3 with `cryptography` is there
/// (installed with pip if absent); `None` (with the reason printed) when
/// it cannot run.
fn python_verify(args: &[&str]) -> Option<(Option<i32>, String)> {
    let has = || {
        std::process::Command::new("python3")
            .args(["-c", "import cryptography"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has() {
        let _ = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--user", "cryptography"])
            .output();
    }
    if !has() {
        eprintln!("SKIPPED the Python verifier's signature check: python3 with the `cryptography` package is not available (pip install cryptography)");
        return None;
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/hash-test-vectors/verify.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    Some((
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    ))
}

/// Signed checkpoints: an honest export verifies with the public key; an
/// export edited at one event with every later hash re-chained (what an
/// attacker without the key can do) still passes the unkeyed chain but
/// fails `--public-key` at the first signed checkpoint past the edit; the
/// independent Python verifier agrees on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_checkpoints_catch_a_rechained_rewrite() {
    let nats = NatsServer::start_own();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let prefix = unique_prefix();
    let mut options = ServiceOptions::new(nats.url(), &prefix).manual_clock(true);
    options.extra_args = vec!["--checkpoint-every-events".into(), "3".into()];
    let mut service = Service::start(options).await;
    populate(&client, &prefix, 2).await;
    wait_health(&client, &prefix, "publish", caught_up).await;
    service.terminate().await;
    let published = js
        .get_stream(format!("{}_CHECKPOINTS", prefix.to_uppercase()))
        .await
        .expect("the checkpoints stream")
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert!(published >= 2, "{published} checkpoints published");

    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let data_dir = service.data_dir().to_str().unwrap().to_string();
    let (code, out, err) = cpor(&[
        "export",
        "--data-dir",
        &data_dir,
        "--output",
        &path("events.jsonl"),
        "--checkpoints",
        &path("checkpoints.jsonl"),
    ])
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, key, err) = cpor(&["keys", "show", "--data-dir", &data_dir]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(key.trim().len(), 64, "{key}");
    std::fs::write(path("public.key"), &key).unwrap();
    let checkpoints: Vec<Value> = std::fs::read_to_string(path("checkpoints.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(checkpoints.len() >= 2, "{checkpoints:?}");

    let keyed = |input: &str| {
        [
            "verify".to_string(),
            "--input".into(),
            input.to_string(),
            "--public-key".into(),
            path("public.key"),
            "--checkpoints".into(),
            path("checkpoints.jsonl"),
        ]
    };
    let run = |args: [String; 7]| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cpor(&args).await
    };
    let (code, out, err) = run(keyed(&path("events.jsonl"))).await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("checkpoint(s) match"), "{out}");

    // Edit event 2 and re-chain every later hash.
    let lines: Vec<Value> = std::fs::read_to_string(path("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut previous = String::new();
    let mut tampered = String::new();
    for (index, mut event) in lines.into_iter().enumerate() {
        if index == 1 {
            event["data"]["actor"] = json!({"type": "system", "id": "rewriter"});
        }
        let event = if index >= 1 {
            rechain(event, &previous)
        } else {
            event
        };
        previous = event["hash"].as_str().unwrap().to_string();
        tampered.push_str(&canonical(&event));
        tampered.push('\n');
    }
    std::fs::write(path("tampered.jsonl"), tampered).unwrap();
    let (code, out, err) = cpor(&["verify", "--input", &path("tampered.jsonl")]).await;
    assert_eq!(code, Some(0), "the unkeyed chain cannot tell: {out}{err}");
    let first_signed_past_edit = checkpoints
        .iter()
        .filter_map(|c| c["position"].as_u64())
        .filter(|p| *p >= 2)
        .min()
        .unwrap();
    let (code, out, err) = run(keyed(&path("tampered.jsonl"))).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains(&format!("position {first_signed_past_edit}")) && err.contains("signed"),
        "{err}"
    );

    // The independent verifier checks the same signatures.
    let py = |input: String| {
        python_verify(&[
            &input,
            "--public-key",
            &path("public.key"),
            "--checkpoints",
            &path("checkpoints.jsonl"),
        ])
    };
    if let Some((code, out)) = py(path("events.jsonl")) {
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("signed checkpoint(s) match"), "{out}");
        let (code, out) = py(path("tampered.jsonl")).unwrap();
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains(&format!("position {first_signed_past_edit}")),
            "{out}"
        );
        // A checkpoint signed by another key fails.
        std::fs::write(path("other.key"), "ab".repeat(32)).unwrap();
        let (code, out) = python_verify(&[
            &path("events.jsonl"),
            "--public-key",
            &path("other.key"),
            "--checkpoints",
            &path("checkpoints.jsonl"),
        ])
        .unwrap();
        assert_eq!(code, Some(1), "{out}");
    }
    delete_streams(&js, &prefix).await;
}
