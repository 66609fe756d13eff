//! Faults and hostile input (issue 11, "stops and stalls"): each test is one
//! of the issue's cases, run on real processes, and covers its whole kind.

use cpor_testkit::actors;
use cpor_testkit::fixtures::wire::{self as fixtures, MPN_ID as MPN, PARTNER_ID as PARTNER};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::jetstream::delete_streams;
use crate::support::service::run_to_exit;
use crate::support::{
    assert_success, cpor_bin, request, unique_prefix, NatsServer, Service, ServiceOptions,
};

fn path_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

/// Runs `cpor serve` on `nats` with `data_dir`, `prefix` and the flags
/// `extra` to its exit: exit code and stderr.
async fn serve_until_exit(
    nats: &NatsServer,
    data_dir: &Path,
    prefix: &str,
    extra: &[&str],
) -> (Option<i32>, String) {
    let serve = [
        "serve",
        "--nats-url",
        nats.url(),
        "--data-dir",
        path_arg(data_dir),
        "--prefix",
        prefix,
    ];
    let run = run_to_exit(&[&serve[..], extra].concat(), &[]).await;
    (run.code, run.stderr)
}

/// What the service tests here start from: a nats-server of the test's
/// own (so a fault touches no other test), a service on it with a manual
/// clock, and a client.
struct Setup {
    /// The test's own nats-server, stopped when dropped.
    nats: NatsServer,
    /// The service's prefix, unique to the test.
    prefix: String,
    /// The running `cpor serve`.
    service: Service,
    /// A client of `nats`, for the test's requests.
    client: async_nats::Client,
}

impl Setup {
    /// Starts the service on `nats`; `options` adjusts its options (a data
    /// dir, an environment variable) before the start.
    async fn start(
        nats: NatsServer,
        options: impl FnOnce(ServiceOptions) -> ServiceOptions,
    ) -> Setup {
        let prefix = unique_prefix();
        let service = Service::start(options(
            ServiceOptions::new(nats.url(), &prefix).manual_clock(true),
        ))
        .await;
        let client = nats.connect().await;
        Setup {
            nats,
            prefix,
            service,
            client,
        }
    }

    /// [`reference_data`], then a claim padded to `bytes`
    /// ([`padded_submit`]), asserted accepted: its `claim_id`.
    async fn submit_padded(&self, bytes: usize) -> Value {
        let tenant = reference_data(&self.client, &self.prefix).await;
        let submit = format!("cmd.partner.{PARTNER}.submit");
        let reply = command_ok(
            &self.client,
            &self.prefix,
            &submit,
            padded_submit(tenant, bytes),
        )
        .await;
        reply["claim_id"].clone()
    }

    /// Stops the service and deletes the prefix's streams.
    async fn finish(mut self) {
        self.service.terminate().await;
        delete_streams(&jetstream::new(self.client), &self.prefix).await;
    }
}

/// Asserts that `service` has not exited and answers `qry.health`.
async fn assert_serving(service: &mut Service) {
    let exited = service.wait_exit(Duration::ZERO).await;
    assert_eq!(exited, None, "the service exited");
    let health = service.health().await.expect("still serving");
    assert_eq!(health["ok"], true, "{health}");
}

/// Issue 11 case 7: a start refused after the writer started (here: the
/// prefix's lease is held) must stop the writer before the runtime, on every
/// error path; it sometimes panicked with "A Tokio 1.x context was found,
/// but it is being shutdown" (2 of 34 runs). Repeated, since it was a race.
#[tokio::test(flavor = "multi_thread")]
async fn refused_starts_exit_2_without_a_panic() {
    const STARTS: usize = 24;
    let owner = Setup::start(NatsServer::start_own(), |o| o).await;
    let (nats, prefix) = (&owner.nats, &owner.prefix);
    let dirs = tempfile::tempdir().expect("temp dir");
    for start in 0..STARTS {
        let data_dir = dirs.path().join(format!("refused-{start}"));
        let (code, stderr) = serve_until_exit(nats, &data_dir, prefix, &[]).await;
        assert!(
            !stderr.contains("panicked"),
            "refused start #{start} panicked:\n{stderr}"
        );
        assert_eq!(code, Some(2), "refused start #{start}:\n{stderr}");
        assert!(stderr.contains("owns prefix"), "{stderr}");
    }
    owner.finish().await;
}

/// Issue 11 case 4: one message on `{prefix}.lease` shut the service down
/// with exit 0. A message that is not a cpor lease record (any text, a
/// malformed or oversized record) is reported and overwritten; only a valid
/// record of another instance takes the lease, and then the service exits
/// non-zero (so a supervisor restarts it). The refused start of a second
/// instance names the holder.
#[tokio::test(flavor = "multi_thread")]
async fn foreign_lease_messages_are_reported_and_a_lost_lease_exits_non_zero() {
    let Setup {
        nats,
        prefix,
        mut service,
        client,
    } = Setup::start(NatsServer::start_own(), |o| o).await;
    let js = jetstream::new(client.clone());
    let subject = format!("{prefix}.lease");
    let garbage: [&[u8]; 3] = [
        b"attacker",
        b"\xff\x00{\"cpor_lease\":1}",
        br#"{"cpor_lease":1,"instance":"not-a-uuid","host":"x","pid":1}"#,
    ];
    for payload in garbage {
        js.publish(subject.clone(), payload.to_vec().into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        // Longer than a renewal period (5 s): the service renews over it.
        tokio::time::sleep(Duration::from_millis(5_500)).await;
        let health = service.health().await.expect("still serving");
        assert_eq!(health["ok"], true, "{health}");
    }
    let log = std::fs::read_to_string(service.log_path()).expect("service log");
    assert!(
        log.matches("not a cpor lease record").count() >= garbage.len(),
        "each foreign lease message is reported:\n{log}"
    );
    // A start on another data dir sees the lease held by the service (its
    // record, written over the garbage), named with host and pid.
    let dirs = tempfile::tempdir().expect("temp dir");
    let (code, stderr) = serve_until_exit(&nats, &dirs.path().join("second"), &prefix, &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("owns prefix") && stderr.contains("pid"),
        "{stderr}"
    );

    // A valid record of another instance: the lease is lost, exit non-zero.
    let other = format!(
        r#"{{"cpor_lease":1,"instance":"{}","host":"elsewhere","pid":4242}}"#,
        uuid::Uuid::new_v4()
    );
    js.publish(subject.clone(), other.into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    let status = service.wait_exit(Duration::from_secs(20)).await;
    assert!(
        status.is_some_and(|s| !s.success()),
        "losing the lease must exit non-zero, got {status:?}:\n{}",
        service.take_log_tail(20)
    );
    delete_streams(&js, &prefix).await;
}

/// Issue 11 case 4, the unit: the shipped systemd unit restarts the service
/// on every exit but the one systemd asked for (`Restart=on-failure` left it
/// down after an exit 0).
#[test]
fn the_systemd_unit_restarts_on_every_exit_but_a_stop() {
    let unit_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/cpor.service");
    let unit = std::fs::read_to_string(&unit_path).expect("deploy/cpor.service");
    let restart: Vec<&str> = unit
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Restart="))
        .collect();
    assert_eq!(restart, ["Restart=always"], "{}", unit_path.display());
}

fn system_actor() -> Value {
    actors::wire::system("faults-test")
}

fn partner_actor() -> Value {
    actors::wire::partner(PARTNER, "a@p-100.example")
}

/// Sends one command (a fresh `command_id`) and returns the reply.
async fn command(client: &async_nats::Client, prefix: &str, tail: &str, mut body: Value) -> Value {
    body["command_id"] = json!(Uuid::new_v4());
    request(client, &format!("{prefix}.{tail}"), body.to_string()).await
}

async fn command_ok(client: &async_nats::Client, prefix: &str, tail: &str, body: Value) -> Value {
    let reply = command(client, prefix, tail, body).await;
    assert_eq!(reply["ok"], true, "{tail}: {reply}");
    reply
}

/// The reference data of one tenant with one active Dynamics 365 Sales
/// subscription, and partner P-100. Returns the tenant id.
async fn reference_data(client: &async_nats::Client, prefix: &str) -> Uuid {
    let tenant = Uuid::new_v4();
    let system = system_actor();
    for (tail, body) in [
        ("cmd.ref.partner", fixtures::partner(&system, PARTNER, MPN)),
        (
            "cmd.ref.tenant",
            fixtures::tenant(&system, tenant, &["contoso.example"]),
        ),
        (
            "cmd.ref.subscription",
            fixtures::subscription(&system, tenant, Uuid::new_v4()),
        ),
    ] {
        command_ok(client, prefix, tail, body).await;
    }
    tenant
}

/// A Dynamics 365 Sales claim on `tenant`, padded with 20 proof-of-execution
/// documents (multi-byte names) and a note so that the request body is
/// exactly `bytes` long.
fn padded_submit(tenant: Uuid, bytes: usize) -> Value {
    let documents: Vec<Value> = (0..20)
        .map(|i| {
            json!({"name": format!("{i:02}-{}", "€".repeat(250)),
                        "uri": format!("https://docs.example/{i:02}/{}", "u".repeat(2_000)),
                        "sha256": "ab".repeat(32)})
        })
        .collect();
    let mut body = json!({"actor": partner_actor(), "command_id": Uuid::new_v4(),
        "claim_id": Uuid::new_v4(), "tenant_id": tenant, "domain": "contoso.example",
        "solution_area": "business_applications", "activity": "usage",
        "product": "dynamics_365_sales", "mpn_id": MPN,
        "proof_of_execution": documents, "note": ""});
    let unpadded = body.to_string().len();
    assert!(unpadded < bytes, "{unpadded} >= {bytes}");
    // Two bytes a character, to stay within the note's 4,000 characters.
    let padding = bytes - unpadded;
    body["note"] = json!(format!(
        "{}{}",
        "é".repeat(padding / 2),
        "x".repeat(padding % 2)
    ));
    assert_eq!(body.to_string().len(), bytes);
    body
}

/// Polls `qry.health` until everything written is published; returns the
/// log position. Panics after 30 s: publishing stalled.
async fn wait_published(client: &async_nats::Client, prefix: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = request(client, &format!("{prefix}.qry.health"), "{}").await;
        let log = health["log_position"].as_u64().expect("log_position");
        if health["published_position"].as_u64() == Some(log) {
            return log;
        }
        assert!(Instant::now() < deadline, "publishing stalled: {health}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Issue 11 case 1: an accepted event over the NATS server's `max_payload`
/// stopped publishing for good. On a server with `max_payload: 65536`, a
/// 65,000-byte submit (its event is larger than the server takes) is
/// refused `PAYLOAD_TOO_LARGE` naming the sizes, a 62,000-byte one is
/// accepted and published, and so is everything after. (The other way to an
/// oversized event, a claim covering very many subscriptions, is bounded by
/// the reference-data limits: `cpor-domain` tests.)
#[tokio::test(flavor = "multi_thread")]
async fn no_event_too_large_to_publish_is_accepted() {
    let config = tempfile::tempdir().expect("temp dir");
    let config_path = config.path().join("nats-server.conf");
    std::fs::write(&config_path, "max_payload: 65536\njetstream: enabled\n")
        .expect("write the config");
    let setup = Setup::start(
        NatsServer::start_own_with(&["-c", path_arg(&config_path)], &[]),
        |o| o,
    )
    .await;
    let (client, prefix) = (&setup.client, &setup.prefix);
    assert_eq!(client.server_info().max_payload, 65_536);
    let tenant = reference_data(client, prefix).await;
    let submit = format!("cmd.partner.{PARTNER}.submit");

    let reply = command(client, prefix, &submit, padded_submit(tenant, 65_000)).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "PAYLOAD_TOO_LARGE", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("claim.submitted") || message.contains("submitted"),
        "{message}"
    );
    assert!(message.contains(&(65_536 - 1_024).to_string()), "{message}");

    let accepted = command_ok(client, prefix, &submit, padded_submit(tenant, 62_000)).await;
    let log = wait_published(client, prefix).await;

    // Everything after is published too.
    command_ok(
        client,
        prefix,
        &format!("cmd.partner.{PARTNER}.comment"),
        json!({"actor": partner_actor(), "claim_id": accepted["claim_id"], "text": "after"}),
    )
    .await;
    let after = wait_published(client, prefix).await;
    assert_eq!(after, log + 1);
    setup.finish().await;
}

/// Issue 11 case 5: nats-server forwards subjects with bytes that are not
/// UTF-8, and async-nats 0.51 (the newest release) ended its connection on
/// one: a raw `PUB t1.qry.\xff` every 5 ms cut a client's answered requests
/// in 10 s from 26,044 to 42. With the patched client (vendor/async-nats)
/// the service stays connected through a flood on every wildcard position
/// (`qry.>`, `cmd.partner.*`, `admin.>`), answers every request of another
/// client meanwhile, and answers the garbage `INVALID_COMMAND`.
#[tokio::test(flavor = "multi_thread")]
async fn subjects_that_are_not_utf8_do_not_disconnect_the_service() {
    use std::io::{Read, Write};
    let mut setup = Setup::start(NatsServer::start_own(), |o| o).await;
    let (nats, prefix, client) = (&setup.nats, &setup.prefix, &setup.client);

    // The flood, from a raw TCP connection; one garbage request carries a
    // reply subject, to see its answer.
    let address = nats.url().trim_start_matches("nats://").to_string();
    let flood_prefix = prefix.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let flood_stop = stop.clone();
    let flood = std::thread::spawn(move || {
        let mut socket = std::net::TcpStream::connect(&address).expect("connect raw");
        let mut greeting = [0u8; 4096];
        let _ = socket.read(&mut greeting).expect("INFO");
        socket
            .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB garbage.inbox 1\r\n")
            .expect("CONNECT");
        let subjects: Vec<Vec<u8>> = [
            &b"qry.\xff"[..],
            b"qry.claim.\xfe\xff",
            b"cmd.partner.\xff.submit",
            b"admin.\xc3",
        ]
        .iter()
        .map(|tail| [flood_prefix.as_bytes(), b".", tail].concat())
        .collect();
        let mut sent = 0usize;
        while !flood_stop.load(AtomicOrdering::Relaxed) {
            for subject in &subjects {
                let mut line = b"PUB ".to_vec();
                line.extend_from_slice(subject);
                if sent == 0 {
                    line.extend_from_slice(b" garbage.inbox");
                }
                line.extend_from_slice(b" 2\r\n{}\r\n");
                socket.write_all(&line).expect("PUB");
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // The answer to the first garbage request, if any.
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        let mut seen = Vec::new();
        let mut buffer = [0u8; 65536];
        while let Ok(n) = socket.read(&mut buffer) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..n]);
        }
        (sent, String::from_utf8_lossy(&seen).into_owned())
    });

    let started = Instant::now();
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let reply = tokio::time::timeout(
            Duration::from_secs(2),
            client.request(format!("{prefix}.qry.health"), "{}".into()),
        )
        .await;
        match reply {
            Ok(Ok(_)) => answered += 1,
            other => panic!(
                "request {answered} during the flood failed: {other:?}\n{}",
                setup.service.take_log_tail(20)
            ),
        }
    }
    stop.store(true, AtomicOrdering::Relaxed);
    let (sent, seen) = flood.join().expect("flood thread");
    eprintln!("{answered} requests answered during a flood of {sent} garbage publishes");
    assert!(answered >= 50, "{answered}");
    assert!(
        seen.contains("INVALID_COMMAND"),
        "the garbage request is answered INVALID_COMMAND; the raw connection saw:\n{seen}"
    );
    let log = std::fs::read_to_string(setup.service.log_path()).expect("service log");
    assert!(
        !log.contains("disconnected"),
        "the service lost its NATS connection:\n{}",
        setup.service.take_log_tail(20)
    );
    setup.finish().await;
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) where it cannot be mounted (not
    /// root, no mount command, a container without the capability).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            Ok(output) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs ({}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(error) => {
                eprintln!("SKIPPED: cannot run mount: {error}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Issue 11 case 3: on a 30 MiB tmpfs filled under load the process exited
/// (callers timed out instead of getting `UNAVAILABLE`). Now, once the free
/// space drops below `DISK_FREE_MIN_BYTES` (16 MiB), every request is
/// answered `UNAVAILABLE` saying the disk is full, the service stays up,
/// and it writes again by itself when space returns; nothing acknowledged
/// is lost across a restart.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_unavailable_and_writing_resumes_when_space_returns() {
    const RESERVE: u64 = 16 * 1024 * 1024;
    let Some(tmpfs) = Tmpfs::mount("30m") else {
        return;
    };
    let data_dir = tmpfs.path().join("data");
    let mut setup = Setup::start(NatsServer::start_own(), |o| o.data_dir(&data_dir)).await;
    let claim = setup.submit_padded(60_000).await;
    let (client, prefix) = (&setup.client, &setup.prefix);
    let comment_subject = format!("{prefix}.cmd.partner.{PARTNER}.comment");
    let comment = |i: usize| {
        json!({"actor": partner_actor(), "command_id": Uuid::new_v4(), "claim_id": claim,
               "text": format!("comment {i} {}", "x".repeat(2_000))})
    };
    let mut acked = 0usize;
    let mut i = 0usize;
    // Load, then fill the disk to half the reserve while the load goes on.
    let filler_path = tmpfs.path().join("filler");
    let mut filler = std::fs::File::create(&filler_path).expect("filler");
    let chunk = vec![0u8; 256 * 1024];
    let mut unavailable = 0usize;
    let mut full_message;
    loop {
        let reply = request(client, &comment_subject, comment(i).to_string()).await;
        i += 1;
        if reply["ok"] == true {
            acked += 1;
        } else {
            assert_eq!(reply["error"]["code"], "UNAVAILABLE", "{reply}");
            unavailable += 1;
            full_message = reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if unavailable >= 20 {
                break;
            }
        }
        let free = fs2::available_space(tmpfs.path()).expect("free space");
        if free > RESERVE / 2 {
            use std::io::Write;
            let _ = filler.write_all(&chunk);
            let _ = filler.sync_all();
        }
        assert!(i < 5_000, "never answered UNAVAILABLE; free {free}");
    }
    assert!(full_message.contains("disk is full"), "{full_message}");
    assert_serving(&mut setup.service).await;

    // Space comes back: writing resumes by itself.
    drop(filler);
    std::fs::remove_file(&filler_path).expect("remove the filler");
    let resumed = Instant::now();
    loop {
        let reply = request(client, &comment_subject, comment(i).to_string()).await;
        i += 1;
        if reply["ok"] == true {
            acked += 1;
            break;
        }
        assert!(resumed.elapsed() < Duration::from_secs(10), "{reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("{acked} acknowledged, {unavailable} answered UNAVAILABLE while the disk was full");

    // Nothing acknowledged is lost across a restart.
    setup.service.terminate().await;
    setup.service.start_again().await;
    let reply = request(
        client,
        &format!("{prefix}.qry.claim.get"),
        json!({"actor": {"type": "reviewer", "id": "r1"}, "claim_id": claim}).to_string(),
    )
    .await;
    let comments = reply["comments"].as_array().map_or(0, Vec::len);
    assert!(
        comments >= acked,
        "{comments} comments, {acked} acknowledged"
    );
    setup.finish().await;
}

/// What one load task saw: commands acknowledged, commands answered
/// `UNAVAILABLE` (with their bodies, to retry), and requests that got no
/// reply at all.
#[derive(Default)]
struct LoadTally {
    acked: Vec<Value>,
    unavailable: Vec<Value>,
    timeouts: usize,
    /// The messages of the `UNAVAILABLE` replies (a few, for the report).
    messages: Vec<String>,
}

/// Sends comments on `claim` from one client until `stop`, tallying the
/// outcomes; records when the first acknowledgement after `resumed` is set.
async fn comment_load(
    client: async_nats::Client,
    subject: String,
    claim: Value,
    stop: Arc<AtomicBool>,
    acked_total: Arc<std::sync::atomic::AtomicUsize>,
    unavailable_total: Arc<std::sync::atomic::AtomicUsize>,
) -> LoadTally {
    let mut tally = LoadTally::default();
    while !stop.load(AtomicOrdering::SeqCst) {
        let body = json!({"actor": partner_actor(), "command_id": Uuid::new_v4(),
            "claim_id": claim, "text": format!("load {}", "y".repeat(3_000))});
        match crate::support::try_request(&client, &subject, body.to_string()).await {
            Ok(reply) if reply["ok"] == true => {
                tally.acked.push(body);
                acked_total.fetch_add(1, AtomicOrdering::SeqCst);
            }
            Ok(reply) => {
                assert_eq!(reply["error"]["code"], "UNAVAILABLE", "{reply}");
                if tally.messages.len() < 3 {
                    tally.messages.push(reply["error"]["message"].to_string());
                }
                tally.unavailable.push(body);
                unavailable_total.fetch_add(1, AtomicOrdering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(_) => tally.timeouts += 1,
        }
    }
    tally
}

/// Fills the filesystem of `dir` to the last byte (a file grown until
/// `ENOSPC`); returns it, to free the space by removing it.
fn fill_to_enospc(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).expect("filler");
    for chunk in [1024 * 1024, 64 * 1024, 4096, 512, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

/// Issue 11 case 3, a real `ENOSPC` (the free-space guard off:
/// `CPOR_DISK_FREE_MIN_BYTES=0`): the tmpfs is filled to the last byte
/// under load from 6 clients. sled's writes fail; the service stays up,
/// answers `UNAVAILABLE` (every caller gets a reply, none times out),
/// reopens its data dir by itself once space is freed, and writes again.
/// Every acknowledged command is kept (a retry is a duplicate), every
/// command answered `UNAVAILABLE` is either kept (its retry is a
/// duplicate) or not (its retry writes it): none is applied twice, also
/// across a `kill -9`; the data dir then starts and `cpor verify` is OK.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_enospc_under_load_is_survived_without_exit_or_loss() {
    use std::sync::atomic::AtomicUsize;
    let Some(tmpfs) = Tmpfs::mount("40m") else {
        return;
    };
    let data_dir = tmpfs.path().join("data");
    let mut setup = Setup::start(NatsServer::start_own(), |mut o| {
        o.env.push(("CPOR_DISK_FREE_MIN_BYTES".into(), "0".into()));
        o.data_dir(&data_dir)
    })
    .await;
    let claim = setup.submit_padded(60_000).await;
    let (client, prefix) = (&setup.client, &setup.prefix);
    let subject = format!("{prefix}.cmd.partner.{PARTNER}.comment");
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, unavailable) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn(comment_load(
                client.clone(),
                subject.clone(),
                claim.clone(),
                stop.clone(),
                acked.clone(),
                unavailable.clone(),
            ))
        })
        .collect();
    let wait_for = |counter: Arc<AtomicUsize>, at_least: usize, what: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        while counter.load(AtomicOrdering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    wait_for(acked.clone(), 50, "no load acknowledged").await;
    let filler = fill_to_enospc(tmpfs.path());
    wait_for(
        unavailable.clone(),
        30,
        "never answered UNAVAILABLE on a full disk",
    )
    .await;
    assert_serving(&mut setup.service).await;

    // Space comes back: the data dir is reopened and writing resumes.
    std::fs::remove_file(&filler).expect("remove the filler");
    let before = acked.load(AtomicOrdering::SeqCst);
    wait_for(
        acked.clone(),
        before + 50,
        "writing did not resume after space was freed",
    )
    .await;
    stop.store(true, AtomicOrdering::SeqCst);
    let mut tally = LoadTally::default();
    for task in tasks {
        let part = task.await.expect("load task");
        tally.acked.extend(part.acked);
        tally.unavailable.extend(part.unavailable);
        tally.timeouts += part.timeouts;
        tally.messages.extend(part.messages);
    }
    eprintln!(
        "{} acknowledged, {} UNAVAILABLE, {} timeouts; e.g. {:?}",
        tally.acked.len(),
        tally.unavailable.len(),
        tally.timeouts,
        tally.messages.first()
    );
    assert_eq!(
        tally.timeouts, 0,
        "callers timed out instead of getting UNAVAILABLE"
    );
    assert_retries_consistent(client, &subject, &tally).await;

    // kill -9 and restart: the same holds, and the data dir verifies.
    setup.service.kill().await;
    setup.service.start_again().await;
    assert_retries_consistent(client, &subject, &tally).await;
    setup.service.terminate().await;
    assert_each_command_once(&data_dir, &tally);
    let verify = std::process::Command::new(cpor_bin())
        .args(["verify", "--data-dir", path_arg(&data_dir)])
        .output()
        .expect("run cpor verify");
    assert_success("cpor verify", &verify);
    delete_streams(&jetstream::new(client.clone()), prefix).await;
}

/// Retries every command of `tally`: an acknowledged one answers as a
/// duplicate; one answered `UNAVAILABLE` is accepted (a duplicate if it was
/// kept).
async fn assert_retries_consistent(client: &async_nats::Client, subject: &str, tally: &LoadTally) {
    for body in &tally.acked {
        let reply = request(client, subject, body.to_string()).await;
        assert_eq!(reply["ok"], true, "acknowledged command lost: {reply}");
        assert_eq!(
            reply["duplicate"], true,
            "acknowledged command lost: {reply}"
        );
    }
    for body in &tally.unavailable {
        let reply = request(client, subject, body.to_string()).await;
        assert_eq!(
            reply["ok"], true,
            "retry of an UNAVAILABLE command: {reply}"
        );
    }
}

/// Every command of `tally` wrote exactly one event into the log of
/// `data_dir` (by `cpor export`): none lost, none applied twice.
fn assert_each_command_once(data_dir: &Path, tally: &LoadTally) {
    let export = std::process::Command::new(cpor_bin())
        .args(["export", "--data-dir", path_arg(data_dir)])
        .output()
        .expect("run cpor export");
    assert_success("cpor export", &export);
    let mut written: std::collections::HashMap<String, usize> = Default::default();
    for line in String::from_utf8_lossy(&export.stdout).lines() {
        let event: Value = serde_json::from_str(line).expect("exported events are JSON");
        if let Some(cause) = event["causationid"].as_str() {
            *written.entry(cause.to_string()).or_default() += 1;
        }
    }
    for body in tally.acked.iter().chain(&tally.unavailable) {
        let id = body["command_id"].as_str().expect("command id");
        assert_eq!(written.get(id), Some(&1), "events of command {id}");
    }
}

/// Copies the files and directories under `from` into a new `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// Issue 11 case 3, the case that needs a person: a log that ends before
/// what its events stream holds of it (here a data dir restored from an
/// older copy; lost writes look the same). `cpor serve` refuses to start,
/// naming the repair step, instead of publishing new events at positions
/// subscribers have already seen; after that step it starts and the stream
/// is this log's again.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_behind_its_events_stream_refuses_to_start_naming_the_repair() {
    let dirs = tempfile::tempdir().expect("temp dir");
    let data_dir = dirs.path().join("data");
    let mut setup = Setup::start(NatsServer::start_own(), |o| o.data_dir(&data_dir)).await;
    let (nats, client, prefix) = (&setup.nats, &setup.client, &setup.prefix);
    let tenant = reference_data(client, prefix).await;
    let backed_up = wait_published(client, prefix).await;
    setup.service.terminate().await;
    let backup = dirs.path().join("backup");
    copy_dir(&data_dir, &backup);
    setup.service.start_again().await;
    let submit = format!("cmd.partner.{PARTNER}.submit");
    command_ok(client, prefix, &submit, padded_submit(tenant, 60_000)).await;
    assert!(wait_published(client, prefix).await > backed_up);
    setup.service.terminate().await;

    std::fs::remove_dir_all(&data_dir).expect("remove the data dir");
    copy_dir(&backup, &data_dir);
    let (code, stderr) = serve_until_exit(nats, &data_dir, prefix, &["--manual-clock"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    let step = format!("cpor repair-stream --prefix {prefix}");
    assert!(
        stderr.contains(&step) && stderr.contains(&format!("position {}", backed_up + 1)),
        "the refusal names the step {step:?}: {stderr}"
    );

    let repair = std::process::Command::new(cpor_bin())
        .args([
            "repair-stream",
            "--nats-url",
            nats.url(),
            "--prefix",
            prefix,
        ])
        .output()
        .expect("run cpor repair-stream");
    assert_success("cpor repair-stream", &repair);
    setup.service.start_again().await;
    assert_eq!(wait_published(client, prefix).await, backed_up);
    setup.finish().await;
}
