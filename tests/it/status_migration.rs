//! Contract v1.1 moved a claim's status from `{prefix}.status.claim.{claim_id}`
//! to `{prefix}.status.claim.{partner_id}.{claim_id}` (§5). A service started
//! on a `{PREFIX}_STATUS` stream written in the old form migrates it: the
//! stream's subjects become `{prefix}.status.>`, every claim's status is
//! republished in the new form from the log, and the old-form subjects are
//! purged, whatever they held.

use cpor_testkit::actors::wire::partner_admin as partner;
use std::path::Path;

use async_nats::jetstream;
use futures::TryStreamExt;
use serde_json::{json, Value};

use crate::support::jetstream::{delete_streams, last_on_subject, read_all};
use crate::support::scenario::{parse_step, Fixtures, Runner};
use crate::support::{request, status_stream, unique_prefix, NatsServer, Service, ServiceOptions};

fn fixtures() -> Fixtures {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/_fixtures.json");
    Fixtures::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Subjects of `stream` matching `filter`, with their message counts.
async fn subjects(js: &jetstream::Context, stream: &str, filter: &str) -> Vec<(String, usize)> {
    let stream = js.get_stream(stream).await.unwrap();
    let mut out: Vec<(String, usize)> = stream
        .info_with_subjects(filter)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    out.sort();
    out
}

async fn claim_view(client: &async_nats::Client, prefix: &str, claim: &str) -> Value {
    let reply = request(
        client,
        &format!("{prefix}.qry.claim.get"),
        json!({"actor": {"type": "reviewer", "id": "rev-1"}, "claim_id": claim}).to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    reply["claim"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_status_stream_in_the_v1_0_form_is_migrated_on_start() {
    let nats = NatsServer::shared_or_own();
    let prefix = unique_prefix();
    let client = nats.connect().await;
    let js = jetstream::new(client.clone());
    let status = status_stream(&prefix);
    let mut service =
        Service::start(ServiceOptions::new(nats.url(), &prefix).manual_clock(true)).await;

    // Two partners' claims; c1 moved on to version 2.
    let fixtures = fixtures();
    let steps: Vec<_> = [
        json!({"use": "standard"}),
        json!({"send": "cmd.partner.P-100.submit", "body": {"actor": partner("P-100"),
            "tenant_id": "$t1", "domain": "contoso.com", "solution_area": "business_applications",
            "activity": "usage", "product": "dynamics_365_sales", "mpn_id": "4412001",
            "subscription_id": "$s_sales"}, "expect": {"ok": true}, "capture": {"c1": "claim_id"}}),
        json!({"send": "cmd.partner.P-200.submit", "body": {"actor": partner("P-200"),
            "tenant_id": "$t2", "domain": "fabrikam.onmicrosoft.com",
            "solution_area": "business_applications", "activity": "usage",
            "product": "dynamics_365_sales", "mpn_id": "5500001", "subscription_id": "$s_t2_sales"},
            "expect": {"ok": true}, "capture": {"c2": "claim_id"}}),
        json!({"send": "cmd.review.start", "body": {"actor": {"type": "reviewer", "id": "rev-1"},
            "claim_id": "$c1"}, "expect": {"ok": true, "version": 2}}),
        json!({"status": "$c1", "expect": {"version": 2, "status": "under_review"}}),
        json!({"status": "$c2", "expect": {"version": 1}}),
    ]
    .iter()
    .map(|s| parse_step(s).unwrap())
    .collect();
    let mut runner = Runner::new("status_migration", &client, &prefix, &fixtures);
    runner.run(&steps).await.unwrap_or_else(|e| panic!("{e}"));
    let c1 = runner.vars.get("c1").unwrap().as_str().unwrap().to_string();
    let c2 = runner.vars.get("c2").unwrap().as_str().unwrap().to_string();
    let views = [
        ("P-100", c1.clone(), claim_view(&client, &prefix, &c1).await),
        ("P-200", c2.clone(), claim_view(&client, &prefix, &c2).await),
    ];
    service.terminate().await;

    // Rewrite the stream as a v1.0 service left it: old-form subjects only,
    // and a stream made with `{prefix}.status.claim.*`. c1's old message is
    // stale (version 1) and two more are not the log's claims at all.
    let new_form = format!("{prefix}.status.claim.*.*");
    let old_form = format!("{prefix}.status.claim.*");
    let mut config = js
        .get_stream(&status)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    js.get_stream(&status)
        .await
        .unwrap()
        .purge()
        .filter(&new_form)
        .await
        .unwrap();
    config.subjects = vec![old_form.clone()];
    js.update_stream(&config).await.unwrap();
    let mut stale = views[0].2.clone();
    stale["version"] = json!(1);
    stale["status"] = json!("submitted");
    let forged_id = uuid::Uuid::new_v4().to_string();
    for (id, payload) in [
        (c1.as_str(), stale),
        (c2.as_str(), views[1].2.clone()),
        (
            forged_id.as_str(),
            json!({"claim_id": forged_id, "partner_id": "P-999"}),
        ),
        ("not-a-claim", json!("garbage")),
    ] {
        js.publish(
            format!("{prefix}.status.claim.{id}"),
            payload.to_string().into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    assert_eq!(subjects(&js, &status, &new_form).await, []);
    assert_eq!(subjects(&js, &status, &old_form).await.len(), 4);

    service.start_again().await;
    let info = js
        .get_stream(&status)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone();
    assert_eq!(info.config.subjects, [format!("{prefix}.status.>")]);
    assert_eq!(
        subjects(&js, &status, &old_form).await,
        [],
        "old-form subjects are purged"
    );
    let mut expected: Vec<(String, usize)> = views
        .iter()
        .map(|(p, id, _)| (format!("{prefix}.status.claim.{p}.{id}"), 1))
        .collect();
    expected.sort();
    assert_eq!(
        subjects(&js, &status, &format!("{prefix}.status.>")).await,
        expected,
        "every claim of the log has its status in the new form, and nothing else is left"
    );
    for (p, id, view) in &views {
        let subject = format!("{prefix}.status.claim.{p}.{id}");
        assert_eq!(
            last_on_subject(&js, &status, &subject)
                .await
                .unwrap()
                .as_ref(),
            Some(view),
            "{subject} holds the log's view, not the stale old message"
        );
    }
    assert!(
        service.log_tail(200).contains("status stream migrated"),
        "{}",
        service.log_tail(40)
    );

    // The service goes on publishing in the new form only.
    let reply = request(
        &client,
        &format!("{prefix}.cmd.review.start"),
        json!({"command_id": uuid::Uuid::new_v4(), "actor": {"type": "reviewer", "id": "rev-1"},
               "claim_id": c2})
        .to_string(),
    )
    .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let subject = format!("{prefix}.status.claim.P-200.{c2}");
    let mut last = None;
    for _ in 0..50 {
        last = last_on_subject(&js, &status, &subject).await.unwrap();
        if last.as_ref().map(|v| v["version"] == 2) == Some(true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.unwrap()["status"], "under_review");
    assert_eq!(
        read_all(&js, &status, &old_form).await.unwrap(),
        Vec::<Value>::new()
    );

    // A second start finds nothing to migrate.
    service.restart_term().await;
    let tail = service.log_tail(400);
    assert_eq!(
        tail.matches("status stream migrated").count(),
        1,
        "migrated once only:\n{tail}"
    );
    service.terminate().await;
    delete_streams(&js, &prefix).await;
}
