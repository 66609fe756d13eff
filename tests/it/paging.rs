//! Replies are bounded by design (issue 11 case 2): a reply over the NATS
//! server's `max_payload` used to be dropped by NATS, and the caller only
//! saw a timeout. Each test is one of the cases on real processes:
//! every list comes a page at a time, cut by size as well as by count, with
//! the cursor of what is left, and every item stays reachable by paging.

use cpor_testkit::actors::wire::partner_admin as partner;
use cpor_testkit::fixtures::wire as fixtures;
use std::collections::BTreeSet;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{unique_prefix, NatsServer, Service, ServiceOptions};

/// How long one query may take to answer (a dropped reply shows as this).
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Commands sent at once while setting up.
const SETUP_CONCURRENCY: usize = 32;
/// The comment: 4,000 characters, each written `\u0001` in JSON (6
/// bytes), so 50 of them are over NATS's default 1 MiB `max_payload`.
const COMMENTS: usize = 50;
/// `cpor_domain::limits::SUBSCRIPTIONS_PER_CLAIM_MAX`: the most
/// subscriptions one claim's view lists.
const SUBSCRIPTIONS_PER_CLAIM_MAX: usize = 250;

fn comment_text(i: usize) -> String {
    let tag = format!("comment {i:02} ");
    format!("{tag}{}", "\u{1}".repeat(4_000 - tag.len()))
}

fn system() -> Value {
    cpor_testkit::actors::wire::system("paging-test")
}

fn reviewer() -> Value {
    json!({"type": "reviewer", "id": "rev-1"})
}

/// One test's service and client.
struct Bench {
    client: async_nats::Client,
    prefix: String,
    /// The connected server's `max_payload`: no reply may be larger.
    max_payload: usize,
}

impl Bench {
    /// Sends one command (a fresh `command_id`); it must be accepted.
    async fn command(&self, tail: &str, mut body: Value) -> Value {
        body["command_id"] = json!(Uuid::new_v4());
        let (reply, _) = self.request(tail, &body).await;
        assert_eq!(reply["ok"], true, "{tail}: {reply}");
        reply
    }

    /// Request/reply: the reply and its size in bytes, which must be within
    /// `max_payload`. Panics when no reply comes (the bug: a dropped reply).
    async fn request(&self, tail: &str, body: &Value) -> (Value, usize) {
        let subject = format!("{}.{tail}", self.prefix);
        let reply = tokio::time::timeout(
            REPLY_TIMEOUT,
            self.client.request(subject, body.to_string().into()),
        )
        .await
        .unwrap_or_else(|_| panic!("{tail}: no reply within {REPLY_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("{tail}: {e}"));
        let bytes = reply.payload.len();
        assert!(bytes <= self.max_payload, "{tail}: a {bytes}-byte reply");
        let value = serde_json::from_slice(&reply.payload).expect("replies are JSON");
        (value, bytes)
    }

    /// Every page of a query, following the cursor at `next` back as
    /// `after` until it is absent or null: the items at `items` and the
    /// number of pages.
    async fn all_pages(&self, tail: &str, body: &Value, paging: [&str; 3]) -> (Vec<Value>, usize) {
        let [items, next, after] = paging;
        let (mut all, mut pages, mut body) = (Vec::new(), 0, body.clone());
        loop {
            let (reply, _) = self.request(tail, &body).await;
            assert_eq!(reply["ok"], true, "{tail}: {reply}");
            let page = reply[items].as_array().expect("a list").clone();
            pages += 1;
            all.extend(page.iter().cloned());
            match &reply[next] {
                Value::String(cursor) => {
                    assert!(!page.is_empty(), "{tail}: an empty page before the last");
                    body[after] = json!(cursor);
                }
                _ => return (all, pages),
            }
            assert!(pages < 10_000, "{tail}: paging does not end");
        }
    }

    /// Sends many commands, [`SETUP_CONCURRENCY`] at a time.
    async fn commands(&self, commands: Vec<(String, Value)>) -> Vec<Value> {
        stream::iter(commands)
            .map(|(tail, body)| async move { self.command(&tail, body).await })
            .buffered(SETUP_CONCURRENCY)
            .collect()
            .await
    }

    async fn partner_upsert(&self, partner_id: &str, mpn: &str) {
        let body = fixtures::partner(&system(), partner_id, mpn);
        self.command("cmd.ref.partner", body).await;
    }

    /// A tenant with `subscriptions` active Dynamics 365 Sales subscriptions.
    async fn tenant(&self, subscriptions: usize) -> Uuid {
        let tenant = Uuid::new_v4();
        let body = fixtures::tenant(&system(), tenant, &["contoso.example"]);
        self.command("cmd.ref.tenant", body).await;
        let upserts = (0..subscriptions)
            .map(|_| ("cmd.ref.subscription".to_string(), subscription(tenant)))
            .collect();
        self.commands(upserts).await;
        tenant
    }
}

fn subscription(tenant: Uuid) -> Value {
    fixtures::subscription(&system(), tenant, Uuid::new_v4())
}

/// A claim by `partner_id` on every Dynamics 365 Sales subscription of
/// `tenant` (no `subscription_id`): its view lists them all.
fn submit(partner_id: &str, mpn: &str, tenant: Uuid) -> (String, Value) {
    (
        format!("cmd.partner.{partner_id}.submit"),
        json!({"actor": partner(partner_id), "tenant_id": tenant, "domain": "contoso.example",
               "solution_area": "business_applications", "activity": "usage",
               "product": "dynamics_365_sales", "mpn_id": mpn}),
    )
}

async fn start(nats: &NatsServer) -> (Service, Bench) {
    let prefix = unique_prefix();
    let service = Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;
    let client = nats.connect().await;
    let max_payload = client.server_info().max_payload;
    let bench = Bench {
        client,
        prefix,
        max_payload,
    };
    (service, bench)
}

/// `comments` comments of 4,000 characters by the claim's partner, one
/// after the other (so the log holds them in order).
async fn flood_with_comments(bench: &Bench, claim_id: &Value, comments: usize) {
    for i in 0..comments {
        let body =
            json!({"actor": partner("P-100"), "claim_id": claim_id, "text": comment_text(i)});
        bench.command("cmd.partner.P-100.comment", body).await;
    }
}

/// The claim's comments by the reviewer (unscoped) and by its partner
/// (scoped subject), page by page: all `comments` of them, in order.
async fn every_comment_is_reachable(bench: &Bench, claim_id: &Value, comments: usize) -> usize {
    let paging = ["comments", "comments_next", "comments_after"];
    let mut pages = 0;
    for (tail, actor) in [
        ("qry.claim.get", reviewer()),
        ("qry.partner.P-100.claim.get", partner("P-100")),
    ] {
        let body = json!({"actor": actor, "claim_id": claim_id});
        let (all, n) = bench.all_pages(tail, &body, paging).await;
        // The partner's comments (an arbitration notice is a system one).
        let texts: Vec<&str> = all
            .iter()
            .filter(|c| c["system"] == false)
            .filter_map(|c| c["text"].as_str())
            .collect();
        let expected: Vec<String> = (0..comments).map(comment_text).collect();
        assert_eq!(texts, expected, "{tail}: every comment, in order, once");
        pages = n;
    }
    pages
}

/// The claim's events page by page: versions 1 to the claim's version.
async fn every_event_is_reachable(bench: &Bench, claim_id: &Value) -> usize {
    let body = json!({"actor": reviewer(), "claim_id": claim_id});
    let (view, _) = bench
        .request(
            "qry.claim.get",
            &json!({"actor": reviewer(), "claim_id": claim_id, "comments_limit": 1}),
        )
        .await;
    let version = view["claim"]["version"].as_u64().expect("version");
    let (events, pages) = bench
        .all_pages("qry.claim.history", &body, ["events", "next", "after"])
        .await;
    let versions: Vec<u64> = events
        .iter()
        .filter_map(|e| e["streamversion"].as_u64())
        .collect();
    assert_eq!(versions, (1..=version).collect::<Vec<_>>());
    pages
}

/// Issue 11 case 2, comments: a partner wrote 50 comments of 4,000
/// characters on its own claim; `claim.get` and `claim.history` were over
/// 1 MiB and never answered, so reviewers could not read the claim.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_flooded_with_comments_stays_readable_page_by_page() {
    let nats = NatsServer::start_own();
    let (mut service, bench) = start(&nats).await;
    assert_eq!(bench.max_payload, 1024 * 1024);
    bench.partner_upsert("P-100", "4412001").await;
    let tenant = bench.tenant(1).await;
    let (tail, body) = submit("P-100", "4412001", tenant);
    let claim_id = bench.command(&tail, body).await["claim_id"].clone();
    flood_with_comments(&bench, &claim_id, COMMENTS).await;

    // The first page answers, cut by size, with the cursor of the rest.
    let first = json!({"actor": reviewer(), "claim_id": claim_id});
    let (reply, bytes) = bench.request("qry.claim.get", &first).await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["claim"]["claim_id"], claim_id);
    let shown = reply["comments"].as_array().unwrap().len();
    assert!(
        (1..COMMENTS).contains(&shown),
        "{shown} comments in {bytes} bytes"
    );
    assert!(
        reply["comments_next"].is_string(),
        "{}",
        reply["comments_next"]
    );

    assert!(every_comment_is_reachable(&bench, &claim_id, COMMENTS).await >= 2);
    assert!(every_event_is_reachable(&bench, &claim_id).await >= 2);
    // A page that fits keeps the v1.1 shape: no cursor member at all.
    let small = json!({"actor": reviewer(), "claim_id": claim_id, "limit": 2});
    let (reply, _) = bench.request("qry.claim.history", &small).await;
    assert_eq!(reply["events"].as_array().unwrap().len(), 2);
    assert_eq!(reply["next"], "2");
    let last = json!({"actor": reviewer(), "claim_id": claim_id, "after": "51"});
    let (reply, _) = bench.request("qry.claim.history", &last).await;
    assert_eq!(reply.as_object().unwrap().len(), 2, "{reply}");
    service.terminate().await;
}

/// Issue 11 case 2, `claims.list`: `limit` 1000 over claims whose views
/// list 250 subscriptions each (about 10 KB a view) was over 1 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_claims_list_of_large_views_is_cut_by_size_with_next() {
    const PARTNERS: usize = 120;
    let nats = NatsServer::start_own();
    let (mut service, bench) = start(&nats).await;
    let tenant = bench.tenant(SUBSCRIPTIONS_PER_CLAIM_MAX).await;
    let partners: Vec<(String, String)> = (0..PARTNERS)
        .map(|i| (format!("P-{i:03}"), format!("{}", 7_000_000 + i)))
        .collect();
    let upserts = partners
        .iter()
        .map(|(id, mpn)| {
            let body = json!({"actor": system(), "partner_id": id,
                              "mpns": [{"mpn_id": mpn, "incentive_enrolled": true}]});
            ("cmd.ref.partner".to_string(), body)
        })
        .collect();
    bench.commands(upserts).await;
    let claims = partners
        .iter()
        .map(|(id, mpn)| submit(id, mpn, tenant))
        .collect();
    bench.commands(claims).await;

    let body = json!({"actor": reviewer(), "limit": 1000});
    let (reply, bytes) = bench.request("qry.claims.list", &body).await;
    let shown = reply["claims"].as_array().expect("claims").len();
    assert!(
        (1..PARTNERS).contains(&shown),
        "{shown} claims in {bytes} bytes"
    );
    assert!(reply["next"].is_string(), "{}", reply["next"]);
    let (all, pages) = bench
        .all_pages("qry.claims.list", &body, ["claims", "next", "after"])
        .await;
    let ids: BTreeSet<&str> = all.iter().filter_map(|c| c["claim_id"].as_str()).collect();
    assert_eq!(
        (ids.len(), all.len()),
        (PARTNERS, PARTNERS),
        "in {pages} pages"
    );
    service.terminate().await;
}

/// Issue 11 case 2 on a server with `max_payload: 65536`: every query
/// answers, and every item is reachable by paging (`arbitration.list` with
/// hundreds of cases, `claims.list` with `limit` 1000, a claim's comments
/// and events).
#[tokio::test(flavor = "multi_thread")]
async fn a_server_with_a_small_max_payload_answers_every_query() {
    const CASES: usize = 250;
    let config = tempfile::tempdir().expect("temp dir");
    let config_path = config.path().join("nats-server.conf");
    std::fs::write(&config_path, "max_payload: 65536\njetstream: enabled\n").expect("config");
    let nats = NatsServer::start_own_with(&["-c", config_path.to_str().unwrap()], &[]);
    let (mut service, bench) = start(&nats).await;
    assert_eq!(bench.max_payload, 65_536);
    bench.partner_upsert("P-100", "4412001").await;
    bench.partner_upsert("P-200", "5500001").await;
    // One case per tenant: two partners claim the same key.
    let tenants: Vec<Value> = (0..CASES)
        .map(|_| {
            let tenant = Uuid::new_v4();
            json!({"actor": system(), "tenant_id": tenant, "domains": ["contoso.example"]})
        })
        .collect();
    let ids: Vec<Uuid> = tenants
        .iter()
        .map(|t| t["tenant_id"].as_str().unwrap().parse().unwrap())
        .collect();
    bench
        .commands(
            tenants
                .into_iter()
                .map(|t| ("cmd.ref.tenant".to_string(), t))
                .collect(),
        )
        .await;
    bench
        .commands(
            ids.iter()
                .map(|t| ("cmd.ref.subscription".to_string(), subscription(*t)))
                .collect(),
        )
        .await;
    let claims = ids
        .iter()
        .flat_map(|t| {
            [
                submit("P-100", "4412001", *t),
                submit("P-200", "5500001", *t),
            ]
        })
        .collect();
    let accepted = bench.commands(claims).await;

    let cases = json!({"actor": reviewer()});
    let (reply, bytes) = bench.request("qry.arbitration.list", &cases).await;
    let shown = reply["cases"].as_array().expect("cases").len();
    assert!(
        (1..CASES).contains(&shown),
        "{shown} cases in {bytes} bytes"
    );
    let (all, _) = bench
        .all_pages("qry.arbitration.list", &cases, ["cases", "next", "after"])
        .await;
    let case_ids: BTreeSet<&str> = all.iter().filter_map(|c| c["case_id"].as_str()).collect();
    assert_eq!((case_ids.len(), all.len()), (CASES, CASES));
    let seven = json!({"actor": reviewer(), "limit": 7, "status": "open"});
    let (reply, _) = bench.request("qry.arbitration.list", &seven).await;
    assert_eq!(reply["cases"].as_array().unwrap().len(), 7);
    assert!(reply["next"].is_string());

    let list = json!({"actor": reviewer(), "limit": 1000});
    let (all, pages) = bench
        .all_pages("qry.claims.list", &list, ["claims", "next", "after"])
        .await;
    assert_eq!(all.len(), 2 * CASES);
    assert!(pages > 1, "{pages}");

    let claim_id = accepted[0]["claim_id"].clone();
    flood_with_comments(&bench, &claim_id, 15).await;
    assert!(every_comment_is_reachable(&bench, &claim_id, 15).await > 1);
    assert!(every_event_is_reachable(&bench, &claim_id).await > 1);
    service.terminate().await;
}
