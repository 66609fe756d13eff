//! Identity and permissions (issue 9): the service and the tools connect
//! with credentials and TLS; on a server configured like `deploy/nats/`,
//! every role can do what it may and nothing more.

use cpor_testkit::actors::wire::partner_admin as partner;
use cpor_testkit::fixtures::wire as fixtures;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use futures::StreamExt;

use crate::support::nats::{answers_within, connect_as, ClientAuth};
use crate::support::service::{cpor_command, run_to_exit, RUN_TIMEOUT};
use crate::support::{request, unique_prefix, NatsServer, Service, ServiceOptions};

/// Runs `cpor ARGS` with `env` to its exit: exit code, stdout, stderr.
async fn run_cpor(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let run = run_to_exit(args, env).await;
    (run.code, run.stdout, run.stderr)
}

fn system() -> Value {
    cpor_testkit::actors::wire::system("identity-test")
}

/// `cpor serve` and `cpor request` authenticate with `--nats-user` and the
/// password in `CPOR_NATS_PASSWORD`; a wrong password ends `serve` at once
/// with exit 2 and a message naming the refusal, instead of retrying for
/// ever; no password at all is a usage error.
#[tokio::test(flavor = "multi_thread")]
async fn serve_and_tools_use_user_and_password_and_wrong_ones_exit_2() {
    let nats = NatsServer::start_own_with(&["--user", "svc", "--pass", "s3cret-pw"], &[]);
    let prefix = unique_prefix();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let data_dir = data_dir.to_str().unwrap();

    let serve = [
        "serve",
        "--nats-url",
        nats.url(),
        "--prefix",
        &prefix,
        "--data-dir",
        data_dir,
        "--nats-user",
        "svc",
    ];
    let (code, _, stderr) = run_cpor(&serve, &[("CPOR_NATS_PASSWORD", "wrong")]).await;
    assert_eq!(code, Some(2), "wrong password: {stderr}");
    assert!(
        stderr.contains("refused") && stderr.contains("authorization violation"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cpor(&serve, &[]).await;
    assert_eq!(code, Some(2), "no password: {stderr}");
    assert!(stderr.contains("CPOR_NATS_PASSWORD"), "{stderr}");

    let mut opts = ServiceOptions::new(nats.url(), &prefix).manual_clock(true);
    opts.extra_args = vec!["--nats-user".into(), "svc".into()];
    opts.env = vec![("CPOR_NATS_PASSWORD".into(), "s3cret-pw".into())];
    opts.helper_auth = Some(ClientAuth::user("svc", "s3cret-pw"));
    let mut service = Service::start(opts).await;
    let reply = request(
        service.client(),
        &service.subject("admin.clock"),
        json!({"actor": system(), "now": "2026-11-25T09:00:00Z"}).to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");

    let as_svc = [
        "--nats-url",
        nats.url(),
        "--prefix",
        &prefix,
        "--nats-user",
        "svc",
    ];
    let (code, stdout, stderr) = run_cpor(
        &[&["request"], &as_svc[..], &["qry.health"]].concat(),
        &[("CPOR_NATS_PASSWORD", "s3cret-pw")],
    )
    .await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("log_position"), "{stdout}");
    let (code, _, stderr) = run_cpor(
        &[&["verify"], &as_svc[..]].concat(),
        &[("CPOR_NATS_PASSWORD", "wrong")],
    )
    .await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("authorization violation"), "{stderr}");
    service.terminate().await;
}

/// `cpor serve` started before its NATS server waits for it (async-nats'
/// initial-connect retry) and serves once it is up.
#[tokio::test(flavor = "multi_thread")]
async fn serve_waits_for_a_nats_server_that_is_not_up_yet() {
    let mut nats = NatsServer::start_own();
    tokio::task::block_in_place(|| nats.stop());
    let prefix = unique_prefix();
    let data = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(data.path().join("cpor.log")).unwrap();
    let mut command = cpor_command(["serve", "--nats-url", nats.url(), "--prefix", &prefix]);
    command
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .stdout(Stdio::null())
        .stderr(log);
    let mut child = command.spawn().expect("start cpor serve");
    let log_text = || std::fs::read_to_string(data.path().join("cpor.log")).unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "cpor serve gave up while NATS was down:\n{}",
        log_text()
    );
    assert!(log_text().contains("cannot reach NATS"), "{}", log_text());

    tokio::task::block_in_place(|| nats.start());
    let client = nats.connect().await;
    assert!(
        answers_within(&client, &prefix, Duration::from_secs(20)).await,
        "cpor serve does not answer 20 s after NATS came up:\n{}",
        log_text()
    );
    crate::support::nats::send_signal(child.id().unwrap(), "TERM");
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}:\n{}", log_text());
}

/// A role of `deploy/nats/accounts.conf`: its user, the environment
/// variable of its password hash, its reply inbox prefix.
struct Role {
    user: &'static str,
    hash_env: &'static str,
    inbox: &'static str,
}

const ROLES: [Role; 8] = [
    Role {
        user: "cpor-service",
        hash_env: "CPOR_NATS_HASH_SERVICE",
        inbox: "_INBOX_cpor_service",
    },
    Role {
        user: "reviewer-console",
        hash_env: "CPOR_NATS_HASH_REVIEWER",
        inbox: "_INBOX_reviewer",
    },
    Role {
        user: "refdata-sync",
        hash_env: "CPOR_NATS_HASH_REFDATA",
        inbox: "_INBOX_refdata",
    },
    Role {
        user: "customer-gateway",
        hash_env: "CPOR_NATS_HASH_CUSTOMER_GATEWAY",
        inbox: "_INBOX_customer_gateway",
    },
    Role {
        user: "dashboard",
        hash_env: "CPOR_NATS_HASH_DASHBOARD",
        inbox: "_INBOX_dashboard",
    },
    Role {
        user: "auditor",
        hash_env: "CPOR_NATS_HASH_AUDITOR",
        inbox: "_INBOX_auditor",
    },
    Role {
        user: "partner-P-100",
        hash_env: "CPOR_NATS_HASH_PARTNER_P_100",
        inbox: "_INBOX_P-100",
    },
    Role {
        user: "partner-P-200",
        hash_env: "CPOR_NATS_HASH_PARTNER_P_200",
        inbox: "_INBOX_P-200",
    },
];

/// The prefix `deploy/nats/accounts.conf` is written for.
const DEPLOY_PREFIX: &str = "cpor";

/// A nats-server running `deploy/nats/nats-server-tls.conf` (or, without
/// TLS, `nats-server.conf`) as shipped:
/// certificates made here (a CA and a server certificate for 127.0.0.1),
/// a random password per role, its bcrypt hash in the server's environment.
struct SecuredServer {
    nats: NatsServer,
    certs: tempfile::TempDir,
    passwords: Vec<(&'static str, String)>,
    tls: bool,
}

impl SecuredServer {
    fn start() -> SecuredServer {
        Self::start_config(true)
    }

    fn start_config(tls: bool) -> SecuredServer {
        let config_file = if tls {
            "nats-server-tls.conf"
        } else {
            "nats-server.conf"
        };
        let certs = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cpor test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
        let server_key = rcgen::KeyPair::generate().unwrap();
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                .unwrap();
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        std::fs::write(certs.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(certs.path().join("server-cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(
            certs.path().join("server-key.pem"),
            server_key.serialize_pem(),
        )
        .unwrap();

        let passwords: Vec<(&'static str, String)> = ROLES
            .iter()
            .map(|r| (r.user, uuid::Uuid::new_v4().simple().to_string()))
            .collect();
        let mut env: Vec<(String, String)> = ROLES
            .iter()
            .zip(&passwords)
            .map(|(role, (_, password))| {
                // The lowest cost nats-server accepts keeps the test fast.
                let hash = bcrypt::hash(password, 4).unwrap();
                // Quoted: nats-server parses an environment value as a
                // config value, and a bare `$2b$…` would be a variable.
                (role.hash_env.to_string(), format!("\"{hash}\""))
            })
            .collect();
        for (var, file) in [
            ("CPOR_NATS_TLS_SERVER_CERT", "server-cert.pem"),
            ("CPOR_NATS_TLS_SERVER_KEY", "server-key.pem"),
        ] {
            env.push((
                var.to_string(),
                certs.path().join(file).to_str().unwrap().to_string(),
            ));
        }
        // The shipped files, with the store dir moved into the temp dir.
        let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats");
        for file in [config_file, "accounts.conf"] {
            let text = std::fs::read_to_string(deploy.join(file)).unwrap();
            let store = certs.path().join("store");
            let text = text.replace(
                "store_dir: /var/lib/nats",
                &format!("store_dir: {:?}", store.to_str().unwrap()),
            );
            std::fs::write(certs.path().join(file), text).unwrap();
        }
        let config = certs.path().join(config_file);
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let nats = NatsServer::start_own_with(&["-c", config.to_str().unwrap()], &env_refs);
        SecuredServer {
            nats,
            certs,
            passwords,
            tls,
        }
    }

    fn url(&self) -> &str {
        self.nats.url()
    }

    fn ca(&self) -> std::path::PathBuf {
        self.certs.path().join("ca.pem")
    }

    fn role(user: &str) -> &'static Role {
        ROLES.iter().find(|r| r.user == user).expect("a role")
    }

    fn password(&self, user: &str) -> &str {
        &self.passwords.iter().find(|(u, _)| *u == user).unwrap().1
    }

    fn auth(&self, user: &str) -> ClientAuth {
        let auth = ClientAuth::user(user, self.password(user)).inbox_prefix(Self::role(user).inbox);
        if self.tls {
            auth.tls_ca(self.ca())
        } else {
            auth
        }
    }

    /// A client of `user`, and the server's errors it gets (permission
    /// violations), as text.
    async fn connect(
        &self,
        user: &str,
    ) -> (
        async_nats::Client,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = connect_as(self.url(), &self.auth(user), Some(tx))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        (client, rx)
    }

    /// `cpor` flags and environment to connect as `user`.
    fn cli(&self, user: &str) -> (Vec<String>, Vec<(&'static str, String)>) {
        let mut args: Vec<String> = vec![
            "--nats-url".into(),
            self.url().into(),
            "--nats-user".into(),
            user.into(),
            "--nats-inbox-prefix".into(),
            Self::role(user).inbox.into(),
        ];
        if self.tls {
            args.extend(["--nats-tls-ca".into(), self.ca().to_str().unwrap().into()]);
        }
        (
            args,
            vec![("CPOR_NATS_PASSWORD", self.password(user).to_string())],
        )
    }
}

/// How long a refusal by the server may take to arrive.
const REFUSAL_WAIT: Duration = Duration::from_secs(5);

/// Waits for the server's permission violation naming `what` ("publish
/// to \"subject\"" or "subscription to \"subject\"").
async fn expect_violation(
    who: &str,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    what: &str,
) {
    let wanted = what.to_lowercase();
    let deadline = tokio::time::Instant::now() + REFUSAL_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if event.to_lowercase().contains(&wanted) => return,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                panic!("{who}: the server did not refuse {what} within {REFUSAL_WAIT:?}")
            }
        }
    }
}

async fn refused_publish(
    who: &str,
    client: &async_nats::Client,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    subject: &str,
) {
    client
        .publish(subject.to_string(), r#"{"forged":true}"#.into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    expect_violation(who, events, &format!("publish to \"{subject}\"")).await;
}

async fn refused_subscribe(
    who: &str,
    client: &async_nats::Client,
    events: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    subject: &str,
) {
    let _subscription = client.subscribe(subject.to_string()).await.unwrap();
    client.flush().await.unwrap();
    expect_violation(who, events, &format!("subscription to \"{subject}\"")).await;
}

fn command(mut body: Value) -> String {
    body["command_id"] = json!(uuid::Uuid::new_v4().to_string());
    body.to_string()
}

/// Issue 9, items 6 and 7: `deploy/nats/nats-server-tls.conf` as shipped,
/// TLS on: each role connects with its user and does what it may; every
/// forbidden act is refused by the server (or, for an actor that does not
/// match the subject, by the service); afterwards `cpor verify` as the
/// auditor finds the live stream OK and neither stream holds anything forged.
#[tokio::test(flavor = "multi_thread")]
async fn every_role_does_what_it_may_and_nothing_more() {
    let server = SecuredServer::start();
    let mut opts = ServiceOptions::new(server.url(), DEPLOY_PREFIX);
    // The service's settings from the environment, as deploy/cpor.service
    // gives them (the tools below use the flags).
    opts.env = vec![
        ("CPOR_NATS_USER".into(), "cpor-service".into()),
        (
            "CPOR_NATS_PASSWORD".into(),
            server.password("cpor-service").into(),
        ),
        (
            "CPOR_NATS_TLS_CA".into(),
            server.ca().to_str().unwrap().into(),
        ),
        (
            "CPOR_NATS_INBOX_PREFIX".into(),
            "_INBOX_cpor_service".into(),
        ),
        // A signed checkpoint after every relayed event, for the auditor.
        ("CPOR_CHECKPOINT_EVERY_EVENTS".into(), "1".into()),
    ];
    opts.helper_auth = Some(server.auth("reviewer-console"));
    let mut service = Service::start(opts).await;
    let subject = |rest: &str| format!("{DEPLOY_PREFIX}.{rest}");

    // Reference data, by the reference sync.
    let (refdata, mut refdata_events) = server.connect("refdata-sync").await;
    let sync = cpor_testkit::actors::wire::system("crm-sync");
    let tenant = uuid::Uuid::new_v4();
    let (sales, service_sub) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (sub_sales, sub_service) = (sales.to_string(), service_sub.to_string());
    for (name, body) in [
        (
            "cmd.ref.tenant",
            fixtures::tenant(&sync, tenant, &["contoso.com"]),
        ),
        (
            "cmd.ref.subscription",
            fixtures::subscription(&sync, tenant, sales),
        ),
        (
            "cmd.ref.subscription",
            fixtures::dynamics_subscription(
                &sync,
                tenant,
                service_sub,
                "dynamics_365_customer_service",
                "volume_licensing",
            ),
        ),
        (
            "cmd.ref.partner",
            fixtures::partner(&sync, "P-100", "4412001"),
        ),
        (
            "cmd.ref.partner",
            fixtures::partner(&sync, "P-200", "5500001"),
        ),
    ] {
        let reply = request(&refdata, &subject(name), command(body)).await;
        assert_eq!(reply["ok"], true, "{name}: {reply}");
    }

    // Partners: each submits a claim and sees its own status.
    let (p100, mut p100_events) = server.connect("partner-P-100").await;
    let (p200, mut p200_events) = server.connect("partner-P-200").await;
    let mut p100_status = p100
        .subscribe(subject("status.claim.P-100.>"))
        .await
        .unwrap();
    p100.flush().await.unwrap();
    let submit = |id: &str, mpn: &str, product: &str, sub: &str| json!({"actor": partner(id), "tenant_id": tenant, "domain": "contoso.com", "solution_area": "business_applications", "activity": "usage", "product": product, "mpn_id": mpn, "subscription_id": sub});
    let reply = request(
        &p100,
        &subject("cmd.partner.P-100.submit"),
        command(submit("P-100", "4412001", "dynamics_365_sales", &sub_sales)),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let claim_100 = reply["claim_id"].as_str().unwrap().to_string();
    let reply = request(
        &p200,
        &subject("cmd.partner.P-200.submit"),
        command(submit(
            "P-200",
            "5500001",
            "dynamics_365_customer_service",
            &sub_service,
        )),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let claim_200 = reply["claim_id"].as_str().unwrap().to_string();
    let status = tokio::time::timeout(Duration::from_secs(10), p100_status.next())
        .await
        .expect("P-100 gets its claim's status")
        .unwrap();
    let view: Value = serde_json::from_slice(&status.payload).unwrap();
    assert_eq!(view["claim_id"], claim_100.as_str(), "{view}");

    // Partners read their own claims on their scoped subjects only; another
    // partner's claim does not exist for them.
    let reply = request(
        &p100,
        &subject("qry.partner.P-100.claims.list"),
        json!({"actor": partner("P-100")}).to_string(),
    )
    .await;
    let listed: Vec<&str> = reply["claims"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|c| c["claim_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![claim_100.as_str()], "{reply}");
    let reply = request(
        &p100,
        &subject("qry.partner.P-100.claim.get"),
        json!({"actor": partner("P-100"), "claim_id": claim_200}).to_string(),
    )
    .await;
    assert_eq!(reply["error"]["code"], "CLAIM_NOT_FOUND", "{reply}");

    // The service refuses an actor that does not match the subject's scope.
    let reply = request(
        &p100,
        &subject("cmd.partner.P-100.submit"),
        command(submit("P-200", "5500001", "dynamics_365_sales", &sub_sales)),
    )
    .await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "FORBIDDEN", "{reply}");

    // The reviewer approves and lists; the customer gateway declines.
    let (reviewer, mut reviewer_events) = server.connect("reviewer-console").await;
    let rev = json!({"type": "reviewer", "id": "rev-1"});
    let reply = request(
        &reviewer,
        &subject("cmd.review.approve"),
        command(json!({"actor": rev, "claim_id": claim_100})),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = request(
        &reviewer,
        &subject("qry.claims.list"),
        json!({"actor": rev}).to_string(),
    )
    .await;
    assert_eq!(reply["claims"].as_array().map(Vec::len), Some(2), "{reply}");
    let (gateway, mut gateway_events) = server.connect("customer-gateway").await;
    let reply = request(
        &gateway,
        &subject(&format!("cmd.customer.{tenant}.decline")),
        command(json!({"actor": {"type": "customer", "tenant_id": tenant, "user": "it@contoso.com"}, "claim_id": claim_200})),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let customer = json!({"type": "customer", "tenant_id": tenant, "user": "it@contoso.com"});
    let reply = request(
        &gateway,
        &subject(&format!("qry.customer.{tenant}.claims.list")),
        json!({"actor": customer}).to_string(),
    )
    .await;
    assert_eq!(reply["claims"].as_array().map(Vec::len), Some(2), "{reply}");

    // What the server refuses, role by role.
    for forbidden in [
        "cmd.review.approve",
        "cmd.partner.P-200.submit",
        "qry.partner.P-200.claims.list",
        "qry.claims.list",
        "qry.claim.get",
        "evt.claim.forged.submitted",
        "status.claim.P-100.forged",
        "lease",
        "admin.clock",
    ] {
        refused_publish("P-100", &p100, &mut p100_events, &subject(forbidden)).await;
    }
    for forbidden in [
        "$JS.API.STREAM.PURGE.CPOR_EVENTS",
        "$JS.API.STREAM.DELETE.CPOR_STATUS",
        "$JS.API.CONSUMER.CREATE.CPOR_STATUS",
    ] {
        refused_publish("P-100", &p100, &mut p100_events, forbidden).await;
    }
    for forbidden in [
        "_INBOX.>",
        "_INBOX_P-200.>",
        "cpor.status.claim.P-200.>",
        "cpor.status.claim.>",
        "cpor.cmd.>",
        "cpor.evt.>",
    ] {
        refused_subscribe("P-100", &p100, &mut p100_events, forbidden).await;
    }
    refused_publish(
        "P-200",
        &p200,
        &mut p200_events,
        &subject("cmd.partner.P-100.withdraw"),
    )
    .await;
    refused_subscribe("P-200", &p200, &mut p200_events, "_INBOX_P-100.>").await;
    for forbidden in ["cmd.review.approve", "evt.tenant.forged.upserted"] {
        refused_publish(
            "refdata-sync",
            &refdata,
            &mut refdata_events,
            &subject(forbidden),
        )
        .await;
    }
    for forbidden in [
        "cmd.partner.P-100.submit",
        "qry.claims.list",
        "status.claim.P-100.forged",
    ] {
        refused_publish(
            "customer-gateway",
            &gateway,
            &mut gateway_events,
            &subject(forbidden),
        )
        .await;
    }
    for forbidden in [
        "evt.claim.forged.approved",
        "status.claim.P-100.forged",
        "cmd.partner.P-100.submit",
    ] {
        refused_publish(
            "reviewer-console",
            &reviewer,
            &mut reviewer_events,
            &subject(forbidden),
        )
        .await;
    }
    refused_subscribe(
        "reviewer-console",
        &reviewer,
        &mut reviewer_events,
        "_INBOX.>",
    )
    .await;

    // The dashboard reads the status stream through a consumer, and writes nothing.
    let (dashboard, mut dashboard_events) = server.connect("dashboard").await;
    let views = read_stream_payloads(&dashboard, "CPOR_STATUS", 2).await;
    let mut claims: Vec<String> = views
        .iter()
        .map(|v| v["claim_id"].as_str().unwrap_or("?").to_string())
        .collect();
    claims.sort();
    let mut expected = vec![claim_100.clone(), claim_200.clone()];
    expected.sort();
    assert_eq!(claims, expected);
    for forbidden in [
        "cpor.status.claim.P-100.forged",
        "cpor.evt.claim.forged.submitted",
        "cpor.cmd.review.approve",
        "cpor.qry.claims.list",
        "$JS.API.STREAM.PURGE.CPOR_STATUS",
        "$JS.API.STREAM.DELETE.CPOR_STATUS",
        "$JS.API.STREAM.MSG.DELETE.CPOR_STATUS",
        "$JS.API.CONSUMER.DURABLE.CREATE.CPOR_STATUS.mine",
        "$JS.API.CONSUMER.CREATE.CPOR_EVENTS",
        "$JS.API.STREAM.INFO.CPOR_EVENTS",
    ] {
        refused_publish("dashboard", &dashboard, &mut dashboard_events, forbidden).await;
    }
    refused_subscribe(
        "dashboard",
        &dashboard,
        &mut dashboard_events,
        "cpor.status.>",
    )
    .await;

    // `cpor watch` as the dashboard shows both claims.
    let (mut args, env) = server.cli("dashboard");
    args.splice(0..0, ["watch".to_string(), "--json".to_string()]);
    args.extend(["--prefix".to_string(), DEPLOY_PREFIX.to_string()]);
    let watched = watch_lines(&args, &env, 2).await;
    let mut claims: Vec<String> = watched
        .iter()
        .map(|v| v["claim_id"].as_str().unwrap_or("?").to_string())
        .collect();
    claims.sort();
    assert_eq!(claims, expected);

    // The auditor reads the events stream, and nothing else.
    let (auditor, mut auditor_events) = server.connect("auditor").await;
    for forbidden in [
        "$JS.API.CONSUMER.CREATE.CPOR_STATUS",
        "$JS.API.CONSUMER.CREATE.CPOR_STATUS.watch.cpor.status.claim.>",
        "$JS.API.STREAM.INFO.CPOR_STATUS",
        "$JS.API.DIRECT.GET.CPOR_STATUS",
        "$JS.API.STREAM.PURGE.CPOR_EVENTS",
        "$JS.API.STREAM.MSG.DELETE.CPOR_EVENTS",
        "cpor.evt.claim.forged.submitted",
    ] {
        refused_publish("auditor", &auditor, &mut auditor_events, forbidden).await;
    }
    let js = async_nats::jetstream::new(auditor.clone());
    assert!(
        js.get_stream("CPOR_STATUS").await.is_err(),
        "the auditor may not read the status stream"
    );

    // Afterwards: the live stream verifies, as the auditor, and holds exactly
    // the service's events; the status stream exactly the two claims' views.
    let (mut args, env) = server.cli("auditor");
    args.splice(0..0, ["verify".to_string()]);
    args.extend(["--prefix".to_string(), DEPLOY_PREFIX.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (code, stdout, stderr) = run_cpor(&args, &env).await;
    assert_eq!(
        code,
        Some(0),
        "cpor verify as the auditor:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    let health = request(&reviewer, &subject("qry.health"), "{}").await;
    let log_position = health["log_position"].as_u64().unwrap();
    let events = read_stream_payloads(&auditor, "CPOR_EVENTS", log_position as usize).await;
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["position"], n as u64 + 1, "{event}");
        assert!(event.get("forged").is_none(), "{event}");
    }
    // The auditor also reads the signed checkpoints (docs/audit.md).
    let checkpoints = read_stream_head(&auditor, "CPOR_CHECKPOINTS").await;
    assert!(
        checkpoints["signature"].is_string() && checkpoints["position"].is_u64(),
        "{checkpoints}"
    );
    let views = read_stream_payloads(&dashboard, "CPOR_STATUS", 2).await;
    assert!(views
        .iter()
        .all(|v| v.get("forged").is_none() && v["claim_id"].is_string()));
    service.terminate().await;
}

/// Runs `cpor ARGS` (a `watch`) until it printed `count` JSON lines, then
/// stops it.
async fn watch_lines(args: &[String], env: &[(&str, String)], count: usize) -> Vec<Value> {
    use tokio::io::AsyncBufReadExt;
    let mut command = cpor_command(args);
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = command.spawn().expect("start cpor watch");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut out = Vec::new();
    while out.len() < count {
        match tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                out.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}")))
            }
            other => {
                let _ = child.kill().await;
                let output = child.wait_with_output().await.unwrap();
                panic!(
                    "cpor watch {args:?}: {other:?} after {} lines:\n{}",
                    out.len(),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
    let _ = child.kill().await;
    out
}

/// The first message of `stream`, read as `client` (see [`read_ordered`]).
async fn read_stream_head(client: &async_nats::Client, stream: &str) -> Value {
    let (_, mut messages) = read_ordered(client, stream, 1).await;
    messages.remove(0)
}

/// Every message of `stream` (which must hold exactly `count`), as JSON,
/// read as `client` (see [`read_ordered`]).
async fn read_stream_payloads(
    client: &async_nats::Client,
    stream: &str,
    count: usize,
) -> Vec<Value> {
    let (held, messages) = read_ordered(client, stream, count).await;
    assert_eq!(held, count as u64, "messages in {stream}");
    messages
}

/// How many messages `stream` holds, and its first `count` as JSON, read
/// as `client` through an ordered consumer like `cpor watch` and the audit
/// tools (what a deployed role's permissions must allow). Panics when the
/// stream or the consumer is refused, or a message does not come in 10 s.
async fn read_ordered(
    client: &async_nats::Client,
    stream: &str,
    count: usize,
) -> (u64, Vec<Value>) {
    use async_nats::jetstream::consumer;
    let js = async_nats::jetstream::new(client.clone());
    let mut handle = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|e| panic!("{stream}: {e}"));
    let held = handle.info().await.unwrap().state.messages;
    let consumer = handle
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("a consumer on {stream}: {e}"));
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while out.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("{stream}: only {} of {count} messages", out.len()))
            .unwrap()
            .unwrap();
        out.push(serde_json::from_slice(&message.payload).unwrap());
    }
    (held, out)
}

/// The service with a wrong password, or without the CA that signed the
/// server's certificate, exits 2 at once naming the refusal.
#[tokio::test(flavor = "multi_thread")]
async fn serve_with_wrong_credentials_exits_2() {
    let server = SecuredServer::start();
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("data");
    let (args, _) = server.cli("cpor-service");
    let mut serve: Vec<&str> = vec!["serve", "--prefix", DEPLOY_PREFIX, "--data-dir"];
    serve.push(data_dir.to_str().unwrap());
    serve.extend(args.iter().map(String::as_str));

    let (code, _, stderr) = run_cpor(&serve, &[("CPOR_NATS_PASSWORD", "not-the-password")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("authorization violation"), "{stderr}");

    // Another user's password is no better.
    let other = server.password("partner-P-100").to_string();
    let (code, _, stderr) = run_cpor(&serve, &[("CPOR_NATS_PASSWORD", &other)]).await;
    assert_eq!(code, Some(2), "{stderr}");

    // Without --nats-tls-ca the server's certificate is not trusted.
    let without_ca: Vec<&str> = {
        let at = serve.iter().position(|a| *a == "--nats-tls-ca").unwrap();
        let mut v = serve.clone();
        v.drain(at..at + 2);
        v
    };
    let password = server.password("cpor-service").to_string();
    let (code, _, stderr) = run_cpor(&without_ca, &[("CPOR_NATS_PASSWORD", &password)]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("TLS"), "{stderr}");
}

/// `deploy/nats/nats-server.conf` (no TLS) starts with the same users: the
/// service serves as `cpor-service`, a partner submits and is refused
/// another partner's subject, and a service started with a valid user of
/// another role says in its log that the server refuses its subscriptions.
#[tokio::test(flavor = "multi_thread")]
async fn the_plain_config_has_the_same_users() {
    let server = SecuredServer::start_config(false);
    let (args, env) = server.cli("cpor-service");
    let mut opts = ServiceOptions::new(server.url(), DEPLOY_PREFIX);
    opts.extra_args = args[2..].to_vec();
    opts.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    opts.helper_auth = Some(server.auth("reviewer-console"));
    let mut service = Service::start(opts).await;
    let (p100, mut p100_events) = server.connect("partner-P-100").await;
    let reply = request(
        &p100,
        &format!("{DEPLOY_PREFIX}.qry.partner.P-100.claims.list"),
        json!({"actor": partner("P-100")}).to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    refused_publish(
        "P-100",
        &p100,
        &mut p100_events,
        &format!("{DEPLOY_PREFIX}.cmd.partner.P-200.submit"),
    )
    .await;
    service.terminate().await;

    // A service running as a partner's user: connected, but every
    // subscription and stream request of the service is refused; its log says so.
    use tokio::io::AsyncBufReadExt;
    let data = tempfile::tempdir().unwrap();
    let (args, env) = server.cli("partner-P-100");
    let mut command = cpor_command(["serve", "--prefix", DEPLOY_PREFIX, "--data-dir"]);
    command
        .arg(data.path().join("data"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("refused a publish or subscription") {
                return true;
            }
            seen.push(line);
        }
        false
    })
    .await;
    let _ = child.kill().await;
    assert_eq!(found, Ok(true), "{}", seen.join("\n"));
}
