//! The audit tools (contract §9, issue 4) end to end: the real `cpor`
//! binary against a real `cpor serve --manual-clock` and JetStream.
//!
//! One realistic history (reference data, claims, an approval, an
//! arbitration case, a missed review deadline) is driven through NATS; then
//! the log is exported from the live stream while the service runs, and from
//! the data dir once it stopped, and the two must be byte-identical. Both
//! verify; every kind of tampering with the export fails verification with
//! exit 1 and names the right position; `history`, `replay` and `rebuild`
//! answer from the log alone; a running service's data dir is refused with
//! a clear message and exit 2.

use cpor_testkit::actors;
use cpor_testkit::fixtures::wire as fixtures;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::jetstream::delete_streams;
use crate::support::service::clock_body;
use crate::support::{cpor_bin, request, unique_prefix, NatsServer, Service, ServiceOptions};

/// Before the approval of claim 1 (submitted 2026-11-25T09:00Z).
const BEFORE_APPROVAL: &str = "2026-11-25T12:00:00Z";
/// When claim 1 is approved.
const APPROVAL_AT: &str = "2026-11-26T10:00:00Z";
const AFTER_APPROVAL: &str = "2026-11-26T12:00:00Z";
/// Claim 3's review deadline (submitted Friday 2026-11-27: five business days).
const C3_DUE: &str = "2026-12-05T00:00:00Z";
/// Between claim 3's deadline and the clock move that records it missed.
const DEADLINE_PASSED_UNRECORDED: &str = "2026-12-06T00:00:00Z";
/// The manual clock's last move: claim 3's miss is recorded then.
const MISS_RECORDED_AT: &str = "2026-12-07T09:00:00Z";
const AT_THE_END: &str = "2026-12-08T00:00:00Z";

/// What one `cpor` run gave.
struct Run {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).to_string()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout_text(),
                self.stderr
            )
        })
    }

    #[track_caller]
    fn expect(&self, code: i32, what: &str) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit {code}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout_text(),
            self.stderr
        );
        self
    }
}

/// Runs `cpor ARGS` (stdin: `input`), with none of the `CPOR_*` variables
/// of the test's environment.
fn cpor_with_input(args: &[&str], input: Option<&[u8]>) -> Run {
    let mut cmd = Command::new(cpor_bin());
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in cpor_testkit::env::CPOR_ENV {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().expect("start cpor");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let output = child.wait_with_output().expect("run cpor");
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

fn cpor(args: &[&str]) -> Run {
    cpor_with_input(args, None)
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn system() -> Value {
    actors::wire::system("audit-test")
}

fn partner(id: &str) -> Value {
    actors::wire::partner(id, &format!("admin@{}.example", id.to_lowercase()))
}

/// The claims and ids of the driven history.
struct History {
    tenant: Uuid,
    c1: Uuid,
    c2: Uuid,
    c3: Uuid,
}

async fn send(client: &async_nats::Client, prefix: &str, subject: &str, mut body: Value) -> Value {
    if subject.starts_with("cmd.") {
        body["command_id"] = Uuid::new_v4().to_string().into();
    }
    let reply = request(
        client,
        &format!("{prefix}.{subject}"),
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{subject} {body} → {reply}");
    reply
}

async fn set_clock(client: &async_nats::Client, prefix: &str, now: &str) {
    send(client, prefix, "admin.clock", clock_body(&json!(now))).await;
}

/// Reference data, three claims, an approval, an arbitration case (claim 2
/// against claim 1, the approved incumbent), a reviewer comment, and claim
/// 3's review deadline missed.
async fn drive_history(client: &async_nats::Client, prefix: &str) -> History {
    let tenant = Uuid::new_v4();
    let sales = Uuid::new_v4();
    let service = Uuid::new_v4();
    let (c1, c2, c3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    set_clock(client, prefix, "2026-11-25T09:00:00Z").await;
    let tenant_body = fixtures::tenant(
        &system(),
        tenant,
        &["contoso.onmicrosoft.com", "contoso.com"],
    );
    send(client, prefix, "cmd.ref.tenant", tenant_body).await;
    for (id, product, channel) in [
        (sales, "dynamics_365_sales", "volume_licensing"),
        (service, "dynamics_365_customer_service", "web_direct"),
    ] {
        send(
            client,
            prefix,
            "cmd.ref.subscription",
            fixtures::dynamics_subscription(&system(), tenant, id, product, channel),
        )
        .await;
    }
    for (id, mpn) in [
        ("P-100", "4412001"),
        ("P-200", "5500001"),
        ("P-300", "6600001"),
    ] {
        send(
            client,
            prefix,
            "cmd.ref.partner",
            fixtures::partner(&system(), id, mpn),
        )
        .await;
    }
    let submit = |claim: Uuid, partner_id: &str, mpn: &str, product: &str| {
        json!({"actor": partner(partner_id), "claim_id": claim, "tenant_id": tenant, "domain": "contoso.com",
               "solution_area": "business_applications", "activity": "usage", "product": product, "mpn_id": mpn,
               "note": "Deployed Sales for the whole EMEA team"})
    };
    send(
        client,
        prefix,
        "cmd.partner.P-100.submit",
        submit(c1, "P-100", "4412001", "dynamics_365_sales"),
    )
    .await;

    set_clock(client, prefix, APPROVAL_AT).await;
    send(
        client,
        prefix,
        "cmd.review.approve",
        json!({"actor": actors::wire::reviewer(), "claim_id": c1, "text": "PoE checked"}),
    )
    .await;

    set_clock(client, prefix, "2026-11-27T09:00:00Z").await;
    let reply = send(
        client,
        prefix,
        "cmd.partner.P-200.submit",
        submit(c2, "P-200", "5500001", "dynamics_365_sales"),
    )
    .await;
    assert!(
        reply.to_string().contains("cpor.arbitration.opened"),
        "claim 2 opens a case: {reply}"
    );
    send(
        client,
        prefix,
        "cmd.partner.P-300.submit",
        submit(c3, "P-300", "6600001", "dynamics_365_customer_service"),
    )
    .await;

    set_clock(client, prefix, "2026-11-30T09:00:00Z").await;
    send(
        client,
        prefix,
        "cmd.review.comment",
        json!({"actor": actors::wire::reviewer(), "claim_id": c2, "text": "Looking at both claims"}),
    )
    .await;

    // Claim 3 was never reviewed: its deadline passes and the service records it.
    set_clock(client, prefix, MISS_RECORDED_AT).await;
    History { tenant, c1, c2, c3 }
}

/// Waits until the relay has published everything the log holds.
async fn wait_published(service: &Service) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = service.health().await.expect("health");
        let (log, published) = (
            health["log_position"].as_u64().unwrap(),
            health["published_position"].as_u64().unwrap(),
        );
        if log > 0 && log == published {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "relay did not catch up: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(bytes.last(), Some(&b'\n'), "an export ends with a newline");
    bytes[..bytes.len() - 1]
        .split(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// The 0-based index of the first line of this CloudEvents type (and subject).
fn find(lines: &[Vec<u8>], type_name: &str, subject: Option<&Uuid>) -> usize {
    lines
        .iter()
        .position(|l| {
            let v: Value = serde_json::from_slice(l).unwrap();
            v["type"] == type_name && subject.is_none_or(|s| v["subject"] == s.to_string())
        })
        .unwrap_or_else(|| panic!("no {type_name} in the export"))
}

/// Verifies tampered export bytes from a file: exit 1, and the message
/// names `position` on `line` (1-based) with `what`.
#[track_caller]
fn assert_tamper_detected(dir: &Path, name: &str, bytes: &[u8], position: usize, what: &str) {
    let path = dir.join(format!("{name}.jsonl"));
    std::fs::write(&path, bytes).unwrap();
    let run = cpor(&["verify", "--input", path_str(&path)]);
    run.expect(1, name);
    let named = format!("position {position} (line {position}): {what}");
    assert!(
        run.stderr.contains(&named),
        "{name}: expected {named:?} in:\n{}",
        run.stderr
    );
}

fn types(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn export_verify_history_replay_rebuild() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let history = drive_history(&client, &prefix).await;
    let log_position = wait_published(&service).await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = service.data_dir().to_path_buf();
    let data = path_str(&data_dir).to_string();
    let url = nats.url().to_string();
    let live = ["--nats-url", url.as_str(), "--prefix", prefix.as_str()];

    // --- while the service runs: its data dir is locked, its stream is not.
    for tool in [
        vec!["export", "--data-dir", &data],
        vec!["verify", "--data-dir", &data],
        vec!["rebuild", "--data-dir", &data],
    ] {
        let run = cpor(&tool);
        run.expect(2, &format!("{} on a running service's data dir", tool[0]));
        assert!(run.stderr.contains("is locked"), "{}", run.stderr);
        assert!(
            run.stderr.contains("--nats-url"),
            "the message says what to do instead: {}",
            run.stderr
        );
    }

    let live_file = work.path().join("live.jsonl");
    let mut args = vec!["export", "--output", path_str(&live_file)];
    args.extend(live);
    let run = cpor(&args);
    run.expect(0, "export from the live stream");
    assert!(
        run.stderr
            .contains(&format!("exported {log_position} events")),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\u{1b}'),
        "no progress bar on a pipe: {:?}",
        run.stderr
    );
    let live_bytes = std::fs::read(&live_file).unwrap();
    assert_eq!(lines(&live_bytes).len() as u64, log_position);
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "no temp file left beside the output: {leftovers:?}"
    );

    let mut args = vec!["verify"];
    args.extend(live);
    let run = cpor(&args);
    run.expect(0, "verify the live stream");
    assert!(
        run.stdout_text()
            .contains(&format!("positions 1..{log_position}, gapless")),
        "{}",
        run.stdout_text()
    );

    // history from the live stream
    let mut args = vec!["history", "--json", "--as-of", AFTER_APPROVAL];
    let c1 = history.c1.to_string();
    args.push(&c1);
    args.extend(live);
    let from_stream = cpor(&args).expect(0, "history from the stream").json();
    assert_eq!(from_stream["claim"]["status"], "approved");

    // --- the service stops: the data dir can be read.
    service.terminate().await;
    let dd_file = work.path().join("datadir.jsonl");
    cpor(&["export", "--data-dir", &data, "-o", path_str(&dd_file)])
        .expect(0, "export from the data dir");
    let dd_bytes = std::fs::read(&dd_file).unwrap();
    assert!(
        dd_bytes == live_bytes,
        "the exports from the stream and from the data dir differ"
    );
    let to_stdout = cpor(&["export", "--data-dir", &data]);
    to_stdout.expect(0, "export to stdout");
    assert!(
        to_stdout.stdout == live_bytes,
        "export to stdout differs from export to a file"
    );

    // Every line is the canonical event with its hash, one per position.
    let all = lines(&live_bytes);
    for (i, line) in all.iter().enumerate() {
        let event: Value = serde_json::from_slice(line).unwrap();
        assert_eq!(event["position"], i as u64 + 1);
        assert_eq!(event["specversion"], "1.0");
        assert!(event["hash"].as_str().is_some_and(|h| h.len() == 64));
    }

    // --- verify: the data dir, the file, stdin.
    let run = cpor(&["verify", "--data-dir", &data]);
    run.expect(0, "verify the data dir");
    let out = run.stdout_text();
    assert!(out.contains("OK"), "{out}");
    assert!(out.contains("hash chain: intact from position 1"), "{out}");
    let last_hash = serde_json::from_slice::<Value>(all.last().unwrap()).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.contains(&last_hash),
        "the summary gives the last hash: {out}"
    );
    let summary = cpor(&["verify", "--json", "--input", path_str(&live_file)])
        .expect(0, "verify the file")
        .json();
    assert_eq!(summary["events"], log_position);
    assert_eq!(summary["first_position"], 1);
    assert_eq!(summary["last_position"], log_position);
    // 1 tenant, 2 subscriptions, 3 partners, 3 claims, 1 case
    assert_eq!(summary["aggregates"], 10, "{summary}");
    assert_eq!(summary["aggregates_by_kind"]["claim"], 3);
    assert_eq!(summary["last_hash"], last_hash.as_str());
    cpor_with_input(&["verify", "--strict", "--input", "-"], Some(&live_bytes))
        .expect(0, "verify stdin, strict: exports are canonical bytes");

    // Reformatted (keys reordered) but the same content: the hashes hold, a
    // note says so; --strict fails on it.
    let mut reordered = lines(&live_bytes);
    let event: serde_json::Map<String, Value> = serde_json::from_slice(&reordered[3]).unwrap();
    let mut reversed = String::from("{");
    for (i, (k, v)) in event.iter().rev().enumerate() {
        if i > 0 {
            reversed.push(',');
        }
        reversed.push_str(&format!("{}:{}", Value::from(k.as_str()), v));
    }
    reversed.push('}');
    reordered[3] = reversed.into_bytes();
    let reordered = join(&reordered);
    let run = cpor_with_input(&["verify", "-i", "-"], Some(&reordered));
    run.expect(0, "a reformatted export");
    assert!(
        run.stdout_text()
            .contains("not byte-for-byte in the canonical form"),
        "{}",
        run.stdout_text()
    );
    assert!(
        run.stdout_text().contains("the first at position 4"),
        "{}",
        run.stdout_text()
    );
    let run = cpor_with_input(&["verify", "--strict", "-i", "-"], Some(&reordered));
    run.expect(1, "a reformatted export, strict");
    assert!(
        run.stderr
            .contains("position 4 (line 4): not in canonical form"),
        "{}",
        run.stderr
    );

    // --- tampering, each detected at the right position.
    let approved = find(&all, "cpor.claim.approved", Some(&history.c1));
    let approved_position = approved + 1;
    let mut edited = all.clone();
    let text = String::from_utf8(edited[approved].clone()).unwrap();
    assert!(text.contains(r#""text":"PoE checked""#), "{text}");
    edited[approved] = text
        .replace(r#""text":"PoE checked""#, r#""text":"PoE checkeD""#)
        .into_bytes();
    assert_tamper_detected(
        work.path(),
        "edited",
        &join(&edited),
        approved_position,
        "hash mismatch",
    );

    let mut flipped = all.clone();
    let middle = flipped[4].len() / 2;
    flipped[4][middle] ^= 0x01;
    assert_tamper_detected(work.path(), "flipped", &join(&flipped), 5, "");

    let mut dropped = all.clone();
    dropped.remove(6);
    assert_tamper_detected(work.path(), "dropped", &join(&dropped), 7, "missing");

    let mut swapped = all.clone();
    swapped.swap(8, 9);
    assert_tamper_detected(
        work.path(),
        "swapped",
        &join(&swapped),
        9,
        "missing or out of order",
    );

    let mut truncated = all.clone();
    let cut = truncated[10].len() / 3;
    truncated[10].truncate(cut);
    assert_tamper_detected(
        work.path(),
        "truncated",
        &join(&truncated),
        11,
        "unparsable",
    );

    // A truncated file (cut mid-line at the end).
    let mut cut_file = live_bytes.clone();
    cut_file.truncate(live_bytes.len() - 40);
    assert_tamper_detected(work.path(), "cut", &cut_file, all.len(), "unparsable");

    // The hash alone changed: the next event's chain would also break, but
    // the first bad position is this one.
    let mut rehashed = all.clone();
    let text = String::from_utf8(rehashed[2].clone()).unwrap();
    let hash = serde_json::from_str::<Value>(&text).unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let forged = hash.chars().rev().collect::<String>();
    rehashed[2] = text.replace(&hash, &forged).into_bytes();
    assert_tamper_detected(
        work.path(),
        "rehashed",
        &join(&rehashed),
        3,
        "hash mismatch",
    );

    // --- partial exports verify on their own, the first hash on trust.
    let from = (log_position / 2).to_string();
    let part = cpor(&["export", "--data-dir", &data, "--from-position", &from]);
    part.expect(0, "export --from-position");
    assert!(
        part.stdout == join(&all[(log_position / 2 - 1) as usize..]),
        "export --from-position gives the tail"
    );
    let run = cpor_with_input(&["verify", "-i", "-"], Some(&part.stdout));
    run.expect(0, "verify a partial export");
    assert!(
        run.stdout_text().contains("taken on trust"),
        "{}",
        run.stdout_text()
    );
    let since = cpor(&[
        "export",
        "--data-dir",
        &data,
        "--since",
        "2026-11-27T00:00:00Z",
    ]);
    since.expect(0, "export --since");
    let first: Value = serde_json::from_slice(&lines(&since.stdout)[0]).unwrap();
    assert_eq!(
        first["time"], "2026-11-27T09:00:00Z",
        "starts at the first event at or after --since"
    );
    assert_eq!(
        lines(&since.stdout).len(),
        all.len() - find(&all, "cpor.claim.submitted", Some(&history.c2))
    );
    cpor_with_input(&["verify", "-i", "-"], Some(&since.stdout))
        .expect(0, "verify an export --since");

    // --- history: the claim as of a time, from the data dir and the file.
    let before = cpor(&[
        "history",
        &c1,
        "--data-dir",
        &data,
        "--as-of",
        BEFORE_APPROVAL,
        "--json",
    ])
    .expect(0, "history before approval")
    .json();
    assert_eq!(before["claim"]["status"], "submitted", "{before}");
    assert_eq!(before["claim"]["version"], 1);
    assert_eq!(types(&before["events"]), ["cpor.claim.submitted"]);
    let after = cpor(&[
        "history",
        &c1,
        "--input",
        path_str(&live_file),
        "--as-of",
        AFTER_APPROVAL,
        "--json",
    ])
    .expect(0, "history after approval")
    .json();
    assert_eq!(after["claim"]["status"], "approved", "{after}");
    assert_eq!(after["claim"]["decided_at"], APPROVAL_AT);
    assert_eq!(after["claim"]["version"], 3);
    assert_eq!(
        types(&after["events"]),
        [
            "cpor.claim.submitted",
            "cpor.claim.review_started",
            "cpor.claim.approved"
        ]
    );
    assert_eq!(after["events"][2]["data"]["text"], "PoE checked");
    assert_eq!(
        after, from_stream,
        "history from the stream and from the file agree"
    );
    let now = cpor(&["history", &c1, "--data-dir", &data, "--json"])
        .expect(0, "history now")
        .json();
    assert_eq!(
        types(&now["events"]),
        [
            "cpor.claim.submitted",
            "cpor.claim.review_started",
            "cpor.claim.approved",
            "cpor.claim.comment_added"
        ],
        "the incumbent gets the arbitration notice"
    );
    assert_eq!(types(&now["case_events"]), ["cpor.arbitration.opened"]);
    assert!(now["claim"]["arbitration_case_id"].is_string());
    let table = cpor(&["history", &c1, "--data-dir", &data]);
    let text = table.expect(0, "history table").stdout_text();
    for expected in [
        "POSITION",
        "TIME",
        "TYPE",
        "ACTOR",
        "claim.approved v3",
        "reviewer rev-1",
        "partner P-100",
        "status",
        "approved",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    let unknown = Uuid::new_v4().to_string();
    let run = cpor(&["history", &unknown, "--data-dir", &data]);
    run.expect(1, "history of an unknown claim");
    assert!(run.stderr.contains("no events"), "{}", run.stderr);
    let c3_before = cpor(&[
        "history",
        &history.c3.to_string(),
        "--data-dir",
        &data,
        "--as-of",
        BEFORE_APPROVAL,
        "--json",
    ]);
    c3_before.expect(1, "history of a claim not yet submitted");
    assert_eq!(c3_before.json()["claim"], Value::Null);

    // --- replay: counts, open cases, overdue claims, as of a time.
    let end = cpor(&[
        "replay",
        "--data-dir",
        &data,
        "--as-of",
        AT_THE_END,
        "--json",
    ])
    .expect(0, "replay")
    .json();
    assert_eq!(end["events"], log_position);
    assert_eq!(end["claims"]["total"], 3);
    assert_eq!(
        end["claims"]["by_status"],
        json!({"submitted": 1, "under_review": 1, "partner_action_required": 0, "approved": 1, "rejected": 0, "withdrawn": 0, "ended": 0})
    );
    assert_eq!(end["cases"]["open"], 1);
    let case = &end["open_cases"][0];
    assert_eq!(case["tenant_id"], history.tenant.to_string());
    assert_eq!(case["claim_ids"], json!([history.c1, history.c2]));
    assert_eq!(case["incumbent_claim_id"], history.c1.to_string());
    assert_eq!(case["claims"][0]["status"], "approved");
    assert_eq!(case["claims"][0]["incumbent"], true);
    assert_eq!(case["claims"][1]["status"], "under_review");
    let overdue = end["overdue_claims"].as_array().unwrap();
    assert_eq!(overdue.len(), 1, "{end}");
    assert_eq!(overdue[0]["claim_id"], history.c3.to_string());
    assert_eq!(overdue[0]["review_due_at"], C3_DUE);
    assert_eq!(end["deadlines_passed_unrecorded"], json!([]));

    let between = cpor(&[
        "replay",
        "--input",
        path_str(&live_file),
        "--as-of",
        DEADLINE_PASSED_UNRECORDED,
        "--json",
    ])
    .expect(0, "replay between the deadline and its record")
    .json();
    assert_eq!(between["overdue_claims"], json!([]));
    assert_eq!(
        between["deadlines_passed_unrecorded"],
        json!([{"claim_id": history.c3, "deadline": "review", "due_at": C3_DUE, "status": "submitted"}])
    );
    let early = cpor(&[
        "replay",
        "--data-dir",
        &data,
        "--as-of",
        BEFORE_APPROVAL,
        "--json",
    ])
    .expect(0, "early replay")
    .json();
    assert_eq!(early["claims"]["total"], 1);
    assert_eq!(early["claims"]["by_status"]["submitted"], 1);
    assert_eq!(early["cases"]["total"], 0);
    assert_eq!(
        early["reference"],
        json!({"tenants": 1, "subscriptions": 2, "partners": 3})
    );
    let report = cpor(&["replay", "--data-dir", &data, "--as-of", AT_THE_END])
        .expect(0, "replay report")
        .stdout_text();
    for expected in [
        "claims: 3",
        "approved",
        "arbitration cases: 1 (1 open, 0 closed)",
        &history.c3.to_string(),
        "(incumbent)",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from:\n{report}"
        );
    }
    let partial = cpor_with_input(
        &["replay", "-i", "-", "--as-of", AT_THE_END],
        Some(&part.stdout),
    );
    partial.expect(2, "replay of a partial export");
    assert!(partial.stderr.contains("not 1"), "{}", partial.stderr);

    // --- rebuild: the projections match the log.
    let run = cpor(&["rebuild", "--data-dir", &data]);
    run.expect(0, "rebuild");
    assert!(
        run.stdout_text().contains("no differences"),
        "{}",
        run.stdout_text()
    );
    assert!(
        run.stdout_text()
            .contains(&format!("{log_position} events")),
        "{}",
        run.stdout_text()
    );

    // The data dir still works for the service after all of this.
    service.start_again().await;
    let health = service.health().await.unwrap();
    assert_eq!(health["log_position"], log_position);
    service.terminate().await;
    delete_streams(&async_nats::jetstream::new(client), &prefix).await;
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["export"], "give one source"),
        (vec!["verify"], "--input FILE"),
        (
            vec![
                "export",
                "--data-dir",
                "x",
                "--nats-url",
                "nats://127.0.0.1:1",
            ],
            "only one source",
        ),
        (
            vec!["verify", "--data-dir", path_str(&missing)],
            "no data dir",
        ),
        // `--as-of` defaults to now; the data dir is what is wrong here.
        (vec!["replay", "--data-dir", "x"], "no data dir"),
        (
            vec!["replay", "--data-dir", "x", "--as-of", "yesterday"],
            "RFC 3339",
        ),
        (vec!["history", "not-a-uuid", "--data-dir", "x"], "invalid"),
        (vec!["rebuild"], "--data-dir"),
        (vec!["verify", "--input", path_str(&missing)], "cannot open"),
        (
            vec!["export", "--nats-url", "nats://127.0.0.1:1"],
            "cannot reach NATS",
        ),
    ];
    for (args, message) in cases {
        let run = cpor(&args);
        run.expect(2, &args.join(" "));
        assert!(
            run.stderr.contains(message),
            "{args:?}: expected {message:?} in {}",
            run.stderr
        );
    }
    assert!(!missing.exists(), "a missing data dir is not created");
}

#[test]
fn an_empty_input_verifies_and_a_garbage_one_does_not() {
    let run = cpor_with_input(&["verify", "-i", "-"], Some(b""));
    run.expect(0, "empty input");
    assert!(
        run.stdout_text().contains("no events"),
        "{}",
        run.stdout_text()
    );
    let run = cpor_with_input(&["verify", "-i", "-"], Some(b"hello\n"));
    run.expect(1, "garbage");
    assert!(
        run.stderr.contains("line 1 (the first event): unparsable"),
        "{}",
        run.stderr
    );
}

#[test]
fn ctrl_c_stops_a_tool_that_waits_with_exit_130() {
    // `verify -i -` on a stdin that stays open waits for more input; Ctrl-C
    // (SIGINT) must still end it, with 130, within the grace period.
    let mut cmd = Command::new(cpor_bin());
    cmd.args(["verify", "-i", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start cpor");
    let _stdin = child.stdin.take();
    std::thread::sleep(Duration::from_millis(500));
    crate::support::nats::send_signal(child.id(), "INT");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("cpor verify did not stop within 10 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
}

#[test]
fn the_published_hash_test_vectors_verify() {
    let vectors =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/hash-test-vectors/events.jsonl");
    let run = cpor(&["verify", "--json", "--input", path_str(&vectors)]);
    let summary = run.expect(0, "verify the hash test vectors").json();
    assert_eq!(summary["events"], 3);
    assert_eq!(
        summary["last_hash"],
        "469d9eff8c4aea2c1efd45c3f0dacce74fac8b5e5b38c5738d503c3e31865c55"
    );
}

/// `cpor watch` (the dashboard view): every claim's current status from the
/// last-value stream, or with `--partner` one partner's, and with `--events`
/// the event log as published.
#[tokio::test(flavor = "multi_thread")]
async fn watch_follows_statuses_and_events() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let history = drive_history(&client, &prefix).await;
    let log_position = wait_published(&service).await;

    let watch = |extra: &[&str]| {
        let mut command = Command::new(cpor_bin());
        command
            .args(["watch", "--nats-url", nats.url(), "--prefix", &prefix])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command.spawn().expect("cpor watch starts")
    };
    // It follows live changes, so it never ends by itself: read what it
    // printed within a few seconds, then stop it.
    let read_for = |mut child: std::process::Child| {
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let statuses = read_for(watch(&[]));
    for (claim, status) in [(history.c1, "approved"), (history.c3, "submitted")] {
        let line = statuses
            .lines()
            .find(|l| l.starts_with(&claim.to_string()))
            .unwrap_or_else(|| panic!("no status line for {claim}:\n{statuses}"));
        assert!(line.contains(status), "{claim} should be {status}: {line}");
    }
    // One partner's dashboard: `{prefix}.status.claim.P-300.>` only.
    let own = read_for(watch(&["--partner", "P-300"]));
    assert!(own.starts_with("CLAIM "), "a header first:\n{own}");
    let claims: Vec<&str> = own
        .lines()
        .skip(1)
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(claims, [history.c3.to_string()], "{own}");
    let events = read_for(watch(&["--events"]));
    assert!(events.starts_with("POSITION"), "a header first:\n{events}");
    assert_eq!(
        events.lines().skip(1).count() as u64,
        log_position,
        "one line per published event:\n{events}"
    );
    assert!(
        events.contains("cpor.claim.review_deadline_missed"),
        "{events}"
    );

    service.terminate().await;
    delete_streams(&async_nats::jetstream::new(client), &prefix).await;
}

/// Every file under `dir` with its bytes and permissions: what "the data
/// dir is unchanged" compares.
fn dir_contents(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::metadata(&path).unwrap();
            let mode = meta.permissions().mode();
            if meta.is_dir() {
                out.insert(
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    (Vec::new(), mode),
                );
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(dir).unwrap().to_path_buf(), (bytes, mode));
            }
        }
    }
    out
}

fn chmod_recursive(dir: &Path, writable: bool) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    let mut paths = Vec::new();
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            paths.push(path);
        }
    }
    paths.push(dir.to_path_buf());
    for path in paths {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        let mode = if writable {
            mode | 0o200
        } else {
            mode & !0o222
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

/// Issue 11 case 15: the audit tools read a data dir without writing into
/// it (every file byte for byte the same after export, verify, history,
/// replay and rebuild), and read a read-only copy (`chmod -R a-w`).
#[tokio::test(flavor = "multi_thread")]
async fn audit_tools_leave_the_data_dir_unchanged_and_read_a_read_only_one() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let history = drive_history(&client, &prefix).await;
    wait_published(&service).await;
    service.terminate().await;
    let data_dir = service.data_dir().to_path_buf();
    let data = path_str(&data_dir).to_string();
    let claim = history.c1.to_string();

    let tools: Vec<Vec<&str>> = vec![
        vec!["export", "--data-dir", &data],
        vec!["verify", "--data-dir", &data],
        vec!["history", &claim, "--data-dir", &data],
        vec![
            "replay",
            "--as-of",
            "2030-01-01T00:00:00Z",
            "--data-dir",
            &data,
        ],
        vec!["rebuild", "--data-dir", &data],
    ];
    let before = dir_contents(&data_dir);
    let mut outputs = Vec::new();
    for args in &tools {
        let run = cpor(args);
        run.expect(0, &args.join(" "));
        outputs.push(run.stdout.clone());
        let after = dir_contents(&data_dir);
        let changed: Vec<&PathBuf> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .collect();
        assert!(
            changed.is_empty(),
            "`cpor {}` changed {changed:?}",
            args.join(" ")
        );
    }

    // A read-only copy, as an auditor gets it.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("ro-data");
    let status = std::process::Command::new("cp")
        .args(["-a", &data, path_str(&copy)])
        .status()
        .unwrap();
    assert!(status.success());
    chmod_recursive(&copy, false);
    let ro = path_str(&copy).to_string();
    let before = dir_contents(&copy);
    for (args, expected) in tools.iter().zip(&outputs) {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == data { ro.as_str() } else { a })
            .collect();
        let run = cpor(&args);
        run.expect(0, &args.join(" "));
        if args[0] == "export" {
            assert_eq!(
                &run.stdout, expected,
                "the read-only copy exports the same bytes"
            );
        }
    }
    assert_eq!(
        dir_contents(&copy),
        before,
        "the read-only data dir changed"
    );
    chmod_recursive(&copy, true);
}
