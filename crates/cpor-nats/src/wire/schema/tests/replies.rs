//! The replies, events and views the code builds against their schemas.

use super::examples::*;
use cpor_testkit::actors;

use super::*;

#[test]
fn replies_events_and_views_the_code_builds_match_their_schemas() {
    // Every error code, through `error_reply`.
    let codes = schema_file("replies/error.json")["$defs"]["ErrorCode"]["enum"].clone();
    let codes: Vec<ErrorCode> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.first(), Some(&ErrorCode::PayloadTooLarge));
    for code in &codes {
        assert_matches("replies/error.json", &error_reply(&Rejection::new(*code)));
    }
    let mut conflict = Rejection::new(ErrorCode::VersionConflict);
    conflict.current_version = Some(7);
    assert_matches("replies/error.json", &error_reply(&conflict));
    let several = Rejection::from_reasons(vec![
        ErrorCode::SubscriptionNotActive,
        ErrorCode::SubscriptionIsCsp,
    ]);
    assert_matches("replies/error.json", &error_reply(&several));
    // Refusals straight from the parser.
    for (subject, body) in [
        ("cmd.partner.P-100.submit", "[1]"),
        ("qry.claims.list", "{\"actor\": 1}"),
    ] {
        assert_matches(
            "replies/error.json",
            &error_reply(&parse(subject, body.as_bytes()).unwrap_err()),
        );
    }

    // Every event, as stored and published.
    let cloud_events = sample_cloud_events();
    assert_eq!(cloud_events.len(), 19);
    for (key, cloud_event) in &cloud_events {
        assert_matches("cloudevent.json", cloud_event);
        assert_matches(&format!("events/{key}.json"), &cloud_event["data"]);
        // The envelope dispatches `data` on `type`: another event's data fails.
        let mut wrong = cloud_event.clone();
        wrong["data"] = json!({"actor": actors::wire::system("crm-sync")});
        assert!(
            !validator(&schema_file("cloudevent.json")).is_valid(&wrong),
            "{key} without its fields"
        );
        let decoded = cpor_log::envelope::decode_value(cloud_event.clone()).unwrap();
        assert_eq!(event_key(&decoded.event.data), *key);
    }
    let events: Vec<Value> = cloud_events.iter().map(|(_, e)| e.clone()).collect();
    assert_matches(
        "replies/qry.claim.history.json",
        &json!({"ok": true, "events": events}),
    );

    // Views.
    let claim = serde_json::to_value(sample_claim_view()).unwrap();
    assert_matches("claim-view.json", &claim);
    let case = serde_json::to_value(sample_case_view()).unwrap();
    assert_matches("case-view.json", &case);
    let mut comments = Vec::new();
    for (_, cloud_event) in &cloud_events {
        let decoded = cpor_log::envelope::decode_value(cloud_event.clone()).unwrap();
        if let Some((_, comment)) = CommentView::of(&decoded.event, decoded.time) {
            comments.push(serde_json::to_value(comment).unwrap());
        }
    }
    assert!(comments.len() >= 3);
    for comment in &comments {
        assert_matches("comment.json", comment);
    }
    assert_matches(
        "replies/qry.claim.get.json",
        &json!({"ok": true, "claim": claim, "comments": comments}),
    );
    assert_matches(
        "replies/qry.claims.list.json",
        &json!({"ok": true, "claims": [claim], "next": "17"}),
    );
    assert_matches(
        "replies/qry.claims.list.json",
        &json!({"ok": true, "claims": [], "next": null}),
    );
    assert_matches(
        "replies/qry.arbitration.get.json",
        &json!({"ok": true, "case": case}),
    );
    assert_matches(
        "replies/qry.arbitration.list.json",
        &json!({"ok": true, "cases": [case]}),
    );
}

fn sample_time(day: u32) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, day, 9, 0, 0)
        .unwrap()
}

fn sample_claim_view() -> ClaimView {
    let at = sample_time;
    ClaimView {
        claim_id: Uuid::parse_str(CLAIM).unwrap(),
        partner_id: "P-100".into(),
        mpn_id: "4412001".into(),
        tenant_id: Uuid::parse_str(TENANT).unwrap(),
        solution_area: SolutionArea::BusinessApplications,
        activity: Activity::Usage,
        product: "dynamics_365_sales".into(),
        subscription_ids: vec![Uuid::parse_str(SUBSCRIPTION).unwrap()],
        status: ClaimStatus::Rejected,
        reason: Some("LOST_ARBITRATION".into()),
        incentive_eligible: true,
        disputed: false,
        overdue: true,
        arbitration_case_id: Some(Uuid::parse_str(CASE).unwrap()),
        submitted_at: at(25),
        review_due_at: Some(at(30)),
        partner_response_due_at: None,
        decided_at: Some(at(27)),
        version: 5,
        updated_at: at(27),
    }
}

fn sample_case_view() -> CaseView {
    let at = sample_time;
    CaseView {
        case_id: Uuid::parse_str(CASE).unwrap(),
        tenant_id: Uuid::parse_str(TENANT).unwrap(),
        product: "dynamics_365_sales".into(),
        activity: Activity::Usage,
        status: CaseStatus::Closed,
        claim_ids: vec![Uuid::parse_str(CLAIM).unwrap(), Uuid::new_v4()],
        incumbent_claim_id: None,
        winner_claim_id: Some(Uuid::parse_str(CLAIM).unwrap()),
        opened_at: at(25),
        closed_at: Some(at(27)),
    }
}

/// Every event sample as the log stores it: a sealed CloudEvent.
fn sample_cloud_events() -> Vec<(String, Value)> {
    let mut previous = String::new();
    let mut out = Vec::new();
    for (i, (data, _)) in event_samples().into_iter().enumerate() {
        let key = event_key(&data);
        let actor = match key.as_str() {
            "tenant.upserted" | "subscription.upserted" | "partner.upserted" => Actor::System {
                id: "crm-sync".into(),
            },
            "claim.review_started"
            | "claim.poe_requested"
            | "claim.approved"
            | "claim.rejected" => Actor::Reviewer { id: "rev-7".into() },
            "claim.association_ended" => Actor::Customer {
                tenant_id: Uuid::parse_str(TENANT).unwrap(),
                user: Some("it@contoso.com".into()),
            },
            k if k.starts_with("claim.") && !k.ends_with("_missed") => Actor::Partner {
                partner_id: "P-100".into(),
                user: Some("alice@contoso.com".into()),
                roles: vec!["incentives_admin".into()],
            },
            _ => Actor::service(),
        };
        let position = i as u64 + 1;
        let meta = EventMeta {
            event_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, key.as_bytes()),
            time: chrono::Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
                + chrono::Duration::minutes(i as i64),
            position,
            stream_version: position,
            causation_id: Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("command {key}").as_bytes()),
            correlation_id: (i % 2 == 0).then(|| "crm-batch-2026-11-25".to_string()),
            traceparent: None,
        };
        let cloud_event = to_cloud_event(&Event { actor, data }, &meta);
        let (bytes, hash) = seal(cloud_event, &previous).unwrap();
        previous = hash;
        out.push((key, serde_json::from_slice(&bytes).unwrap()));
    }
    out
}

/// The paged replies `pages::fill` builds, whole and cut short by size,
/// match their schemas, and a cut page names its cursor.
#[test]
fn paged_replies_match_their_schemas() {
    use crate::server::pages::{fill, LISTINGS};
    let claim = serde_json::to_value(sample_claim_view()).unwrap();
    let comment = json!({"at": "2026-11-25T09:00:00Z", "author": actors::wire::partner("P-100", "alice@contoso.com"),
                         "text": "x".repeat(500), "system": false});
    let case = serde_json::to_value(sample_case_view()).unwrap();
    let event = sample_cloud_events().remove(0).1;
    for (query, listing) in LISTINGS {
        let (frame, item) = match query {
            "claim.get" => (json!({"ok": true, "claim": claim}), comment.clone()),
            "claim.history" => (json!({"ok": true}), event.clone()),
            "claims.list" => (json!({"ok": true}), claim.clone()),
            _ => (json!({"ok": true}), case.clone()),
        };
        let items: Vec<(u64, Value)> = (1..=20).map(|i| (i, item.clone())).collect();
        let one = serde_json::to_vec(&item).unwrap().len();
        let file = format!("replies/qry.{query}.json");
        for (max, cut) in [
            (1 << 20, false),
            (frame.to_string().len() + 60 + one * 5, true),
        ] {
            let page = cpor_log::Page {
                items: items.clone(),
                next: None,
            };
            let reply = fill(frame.clone(), listing, page, max).unwrap();
            assert!(serde_json::to_vec(&reply).unwrap().len() <= max, "{query}");
            assert_matches(&file, &reply);
            let kept = reply[listing.items].as_array().unwrap().len();
            assert_eq!(kept < 20, cut, "{query}: {kept} items within {max} bytes");
            if cut {
                assert_eq!(reply[listing.next], json!(kept.to_string()), "{query}");
            }
        }
    }
}
