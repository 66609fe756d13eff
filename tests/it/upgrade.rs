//! A data dir written by an older release keeps working (issue 8). Each
//! fixture was written by a release with an older store layout (see
//! `tests/fixtures/README.md`), beside the SHA-256 of its `cpor export`:
//! `datadir-v1.tar.xz` layout 1 (one sled tree, JSON command records),
//! `datadir-v2.tar.xz` layout 2 (a tree per kind of record, JSON views),
//! `datadir-v3.tar.xz` layout 3 (typed views, one `log` entry per event).
//! This release upgrades each in place, by `cpor migrate` or at the first
//! `cpor serve`, and then: the export is byte-identical (so is the hash
//! chain in it), `cpor verify` and `cpor rebuild` find nothing wrong (the
//! views were rewritten in this release's form), the claims answer, and
//! the command ids are still remembered (a reused one is
//! `IDEMPOTENCY_CONFLICT`). The layout 2 and 3 fixtures also hold the
//! replies their release gave to the queries (`replies-v2.json`,
//! `replies-v3.json`): this release answers the same from the upgraded
//! data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::service::clock_body;
use crate::support::{cpor_bin, request, unique_prefix, NatsServer, Service, ServiceOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Unpacks the fixture of store layout `layout` into `into`; returns its
/// data dir.
fn unpack_fixture(into: &Path, layout: u32) -> PathBuf {
    let status = Command::new("tar")
        .arg("-xJf")
        .arg(fixtures().join(format!("datadir-v{layout}.tar.xz")))
        .arg("-C")
        .arg(into)
        .status()
        .expect("run tar");
    assert!(status.success(), "unpack the fixture");
    into.join(format!("datadir-v{layout}"))
}

/// The SHA-256 (hex) of a fixture's export, as the release that wrote it
/// printed it.
fn fixture_export_sha256(layout: u32) -> String {
    std::fs::read_to_string(fixtures().join(format!("export-v{layout}.sha256")))
        .expect("read the export's sha256")
        .trim()
        .to_string()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `cpor ARGS`: exit code, stdout, stderr.
fn cpor(args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = Command::new(cpor_bin())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("CPOR_DATA_DIR")
        .output()
        .expect("run cpor");
    (
        out.status.code(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[track_caller]
fn cpor_ok(args: &[&str]) -> Vec<u8> {
    let (code, stdout, stderr) = cpor(args);
    assert_eq!(
        code,
        Some(0),
        "cpor {args:?}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        String::from_utf8_lossy(&stdout)
    );
    stdout
}

/// Export, verify and rebuild of an upgraded data dir agree with the
/// fixture's own export. Returns the export.
#[track_caller]
fn check_upgraded(data: &str, layout: u32) -> Vec<u8> {
    let export = cpor_ok(&["export", "--data-dir", data]);
    assert_eq!(
        sha256_hex(&export),
        fixture_export_sha256(layout),
        "the export changed ({} bytes)",
        export.len()
    );
    cpor_ok(&["verify", "--data-dir", data]);
    let rebuilt = String::from_utf8(cpor_ok(&["rebuild", "--data-dir", data])).unwrap();
    assert!(rebuilt.contains("no differences"), "{rebuilt}");
    export
}

#[test]
fn cpor_migrate_upgrades_a_layout_1_data_dir_and_changes_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack_fixture(dir.path(), 1);
    let data = data.to_str().unwrap();

    // The tools read a private copy: the data dir itself stays layout 1
    // (the migrate below still has work to do).
    let export = check_upgraded(data, 1);
    assert!(export.len() > 100_000, "the fixture holds a real log");
    let first = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(first.contains("from store layout 1 to 4"), "{first}");
    assert!(
        first.contains("views written anew from 2566 events"),
        "{first}"
    );
    let again = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(again.contains("nothing to do"), "{again}");
    check_upgraded(data, 1);
}

#[test]
fn cpor_migrate_rewrites_a_layout_2_data_dirs_views_and_changes_no_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack_fixture(dir.path(), 2);
    let data = data.to_str().unwrap();
    check_upgraded(data, 2);
    let first = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(first.contains("from store layout 2 to 4"), "{first}");
    assert!(
        first.contains("views written anew from 2566 events"),
        "{first}"
    );
    let again = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(again.contains("nothing to do"), "{again}");
    check_upgraded(data, 2);
}

#[test]
fn cpor_migrate_moves_a_layout_3_data_dirs_events_into_segments_and_changes_none() {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack_fixture(dir.path(), 3);
    let data = data.to_str().unwrap();
    check_upgraded(data, 3);
    let first = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(first.contains("from store layout 3 to 4"), "{first}");
    assert!(first.contains("2566 events moved into segments"), "{first}");
    let again = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(again.contains("nothing to do"), "{again}");
    check_upgraded(data, 3);
}

/// The first `cpor serve` on a layout 1 data dir upgrades it in place and
/// serves it: claims answer, command ids are remembered.
#[tokio::test(flavor = "multi_thread")]
async fn serve_upgrades_a_layout_1_data_dir_at_its_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack_fixture(dir.path(), 1);
    // Read through a copy (upgraded in it): the data dir stays layout 1.
    let export = check_upgraded(data.to_str().unwrap(), 1);
    let events: Vec<Value> = export
        .split(|b| *b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| serde_json::from_slice(line).unwrap())
        .collect();
    let last_time = events.last().unwrap()["time"].as_str().unwrap().to_string();
    let tenant_event = events
        .iter()
        .find(|e| e["type"] == "cpor.tenant.upserted")
        .expect("the fixture has reference data");
    let claim_event = events
        .iter()
        .find(|e| e["type"] == "cpor.claim.submitted")
        .expect("the fixture has claims");

    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service = Service::start(
        ServiceOptions::new(nats.url(), &prefix)
            .manual_clock(true)
            .data_dir(&data),
    )
    .await;
    let client = service.client().clone();
    let subject = |rest: &str| format!("{prefix}.{rest}");
    // The fixture's time: its command records are within their retention.
    let reply = request(
        &client,
        &subject("admin.clock"),
        clock_body(&json!(last_time)).to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");

    let claim_id = claim_event["subject"].as_str().unwrap().to_string();
    let actor = json!({"type": "reviewer", "id": "upgrade-test"});
    let reply = request(
        &client,
        &subject("qry.claim.get"),
        json!({"actor": actor, "claim_id": claim_id}).to_string(),
    )
    .await;
    assert_eq!(reply["claim"]["claim_id"], claim_id.as_str(), "{reply}");

    // The command that wrote the first tenant, reused with another body.
    let command_id = tenant_event["causationid"].as_str().unwrap();
    let reply = request(
        &client,
        &subject("cmd.ref.tenant"),
        json!({"command_id": command_id, "actor": {"type": "system", "id": "upgrade-test"},
               "tenant_id": Uuid::new_v4(), "domains": ["upgrade.example"]})
        .to_string(),
    )
    .await;
    assert_eq!(reply["error"]["code"], "IDEMPOTENCY_CONFLICT", "{reply}");
    service.terminate().await;

    let data = data.to_str().unwrap();
    let again = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(
        again.contains("nothing to do"),
        "serve upgraded it: {again}"
    );
    // Nothing was written but the clock: the same events.
    check_upgraded(data, 1);
}

/// The first `cpor serve` on a layout 2 data dir rewrites its views and
/// answers every query as the layout 2 release did: the claims list, the
/// cases, and claims with their comments and histories, reply for reply
/// (`replies-v2.json`, captured from that release's service on this data
/// dir; replies are JSON objects written in key order, so equal values are
/// equal bytes).
#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_a_layout_2_data_dir_as_its_release_did() {
    serve_answers_as_its_release_did(2).await;
}

/// The same for the layout 3 fixture (`replies-v3.json`).
#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_a_layout_3_data_dir_as_its_release_did() {
    serve_answers_as_its_release_did(3).await;
}

/// Serves the fixture of store layout `layout` and compares the replies
/// with those its release gave (`replies-v{layout}.json`).
async fn serve_answers_as_its_release_did(layout: u32) {
    let dir = tempfile::tempdir().unwrap();
    let data = unpack_fixture(dir.path(), layout);
    let before: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(format!("replies-v{layout}.json")))
            .expect("the fixture's replies"),
    )
    .unwrap();
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let mut service = Service::start(
        ServiceOptions::new(nats.url(), &prefix)
            .manual_clock(true)
            .data_dir(&data),
    )
    .await;
    let client = service.client().clone();
    let ask = |query: &str, body: Value| {
        let client = client.clone();
        let subject = format!("{prefix}.qry.{query}");
        async move { request(&client, &subject, body.to_string()).await }
    };
    let actor = json!({"type": "reviewer", "id": "fixture"});
    let claims = ask("claims.list", json!({"actor": actor, "limit": 1000})).await;
    assert_eq!(claims["claims"].as_array().unwrap().len(), 466);
    assert_eq!(claims, before["claims.list"]);
    let cases = ask("arbitration.list", json!({"actor": actor, "limit": 1000})).await;
    assert_eq!(cases, before["arbitration.list"]);
    let gets = before["claim.get"].as_object().unwrap();
    assert!(gets.len() >= 20, "{}", gets.len());
    for (claim_id, reply) in gets {
        let body = json!({"actor": actor, "claim_id": claim_id});
        assert_eq!(&ask("claim.get", body.clone()).await, reply, "{claim_id}");
        let history = &before["claim.history"][claim_id];
        assert_eq!(&ask("claim.history", body).await, history, "{claim_id}");
    }
    // The in_arbitration filter, now the domain's rule on typed views,
    // selects what the old release's views say: the contenders (open or
    // approved) of a case that is open (contract §1, §4).
    let open_cases: Vec<&Value> = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "open")
        .map(|c| &c["case_id"])
        .collect();
    let contender = [
        "submitted",
        "under_review",
        "partner_action_required",
        "approved",
    ];
    let expected: Vec<&Value> = claims["claims"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| open_cases.contains(&&c["arbitration_case_id"]))
        .filter(|c| contender.contains(&c["status"].as_str().unwrap()))
        .collect();
    assert!(expected.len() >= 10, "{}", expected.len());
    let contending = ask(
        "claims.list",
        json!({"actor": actor, "limit": 1000, "in_arbitration": true}),
    )
    .await;
    let contending: Vec<&Value> = contending["claims"].as_array().unwrap().iter().collect();
    assert_eq!(contending, expected);
    service.terminate().await;
    let data = data.to_str().unwrap();
    let again = String::from_utf8(cpor_ok(&["migrate", "--data-dir", data])).unwrap();
    assert!(
        again.contains("nothing to do"),
        "serve upgraded it: {again}"
    );
    check_upgraded(data, layout);
}
