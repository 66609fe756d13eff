//! Contract §5: the closed list of events, their schema versions, and the
//! upcaster that reads old records (claim.submitted v1 had no `note`).

use std::collections::BTreeSet;

use serde_json::json;

use super::harness::*;
use crate::event::*;
use crate::types::{Activity, Channel, PoeDocument, SolutionArea, SubscriptionState};

/// A `claim.submitted` payload as schema version 1 wrote it: no `note`.
const SUBMITTED_V1: &str = r#"{
  "claim_id": "0d4b3f7e-4a56-4a43-9a2d-3f1c2b1f8e01",
  "partner_id": "P-100",
  "mpn_id": "4412001",
  "tenant_id": "6a0c1d2e-3f40-4b5c-8d6e-7f8091a2b3c4",
  "domain": "contoso.com",
  "solution_area": "business_applications",
  "activity": "usage",
  "product": "dynamics_365_sales",
  "subscription_ids": ["5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f70819"],
  "incentive_eligible": true,
  "proof_of_execution": [
    {"name": "sow.pdf", "uri": "https://files.example/sow.pdf", "sha256": "ab"}
  ],
  "review_due_at": "2026-12-03T00:00:00Z"
}"#;

fn submitted_v1_expected() -> ClaimSubmitted {
    ClaimSubmitted {
        claim_id: "0d4b3f7e-4a56-4a43-9a2d-3f1c2b1f8e01".parse().unwrap(),
        partner_id: "P-100".to_string(),
        mpn_id: "4412001".to_string(),
        tenant_id: "6a0c1d2e-3f40-4b5c-8d6e-7f8091a2b3c4".parse().unwrap(),
        domain: "contoso.com".to_string(),
        solution_area: SolutionArea::BusinessApplications,
        activity: Activity::Usage,
        product: "dynamics_365_sales".to_string(),
        subscription_ids: vec!["5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f70819".parse().unwrap()],
        incentive_eligible: true,
        proof_of_execution: vec![PoeDocument {
            name: "sow.pdf".to_string(),
            uri: "https://files.example/sow.pdf".to_string(),
            sha256: "ab".to_string(),
        }],
        note: None,
        review_due_at: time("2026-12-03T00:00:00Z"),
    }
}

#[test]
fn a_version_1_submission_decodes_with_no_note() {
    let value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    assert!(
        value.get("note").is_none(),
        "the fixture is a real v1 payload"
    );
    let decoded = EventData::decode(AggregateKind::Claim, "submitted", 1, value).unwrap();
    assert_eq!(decoded, EventData::ClaimSubmitted(submitted_v1_expected()));
    // Re-encoded, it is a current (v2) payload with an explicit null note.
    assert_eq!(decoded.schema_version(), 2);
    assert_eq!(decoded.to_value()["note"], serde_json::Value::Null);
}

#[test]
fn a_version_1_submission_with_a_note_keeps_it() {
    // A v1 writer never wrote one; if a record has one, the upcaster does
    // not erase it.
    let mut value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    value["note"] = json!("kept");
    let EventData::ClaimSubmitted(decoded) =
        EventData::decode(AggregateKind::Claim, "submitted", 1, value).unwrap()
    else {
        panic!("not a submission")
    };
    assert_eq!(decoded.note.as_deref(), Some("kept"));
}

#[test]
fn the_current_version_decodes_as_written() {
    let mut value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    value["note"] = json!("Deployed in Q3");
    let decoded = EventData::decode(AggregateKind::Claim, "submitted", 2, value).unwrap();
    assert_eq!(
        decoded,
        EventData::ClaimSubmitted(ClaimSubmitted {
            note: Some("Deployed in Q3".to_string()),
            ..submitted_v1_expected()
        })
    );
    // A v2 payload must carry every v2 field... except optional ones,
    // which serde reads as null when absent.
    let value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    assert!(EventData::decode(AggregateKind::Claim, "submitted", 2, value).is_ok());
}

#[test]
fn a_version_from_the_future_is_an_error() {
    let value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    let error = EventData::decode(AggregateKind::Claim, "submitted", 3, value).unwrap_err();
    assert_eq!(
        error,
        DecodeError::FutureVersion {
            name: "claim.submitted".to_string(),
            version: 3,
            known: 2,
        }
    );
    assert!(error.to_string().contains("newer"));
    let error = EventData::decode(
        AggregateKind::Claim,
        "approved",
        2,
        json!({"claim_id": uid("c1")}),
    )
    .unwrap_err();
    assert!(
        matches!(error, DecodeError::FutureVersion { known: 1, .. }),
        "{error:?}"
    );
}

#[test]
fn an_unknown_event_type_is_an_error() {
    for (kind, name) in [
        (AggregateKind::Claim, "exploded"),
        (AggregateKind::Arbitration, "submitted"),
        (AggregateKind::Tenant, "deleted"),
    ] {
        let error = EventData::decode(kind, name, 1, json!({})).unwrap_err();
        assert_eq!(
            error,
            DecodeError::UnknownType(format!("{}.{name}", kind.as_str()))
        );
    }
}

#[test]
fn a_payload_that_does_not_fit_is_an_error() {
    let error = EventData::decode(
        AggregateKind::Claim,
        "approved",
        1,
        json!({"claim_id": "not-a-uuid"}),
    )
    .unwrap_err();
    assert!(
        matches!(&error, DecodeError::Payload { name, .. } if name == "claim.approved"),
        "{error:?}"
    );
    let error = EventData::decode(AggregateKind::Claim, "submitted", 1, json!([1, 2])).unwrap_err();
    assert!(matches!(error, DecodeError::Payload { .. }), "{error:?}");
}

/// One of every event, with plausible data.
pub(super) fn one_of_each() -> Vec<EventData> {
    let c = uid("c1");
    let case_id = uid("case");
    let at = time(T0);
    vec![
        EventData::TenantUpserted(TenantUpserted {
            tenant_id: uid("t1"),
            domains: vec!["contoso.com".to_string()],
        }),
        EventData::SubscriptionUpserted(subscription(
            "s_sales",
            "t1",
            "dynamics_365_sales",
            true,
            Channel::VolumeLicensing,
            SubscriptionState::InGrace,
        )),
        EventData::PartnerUpserted(PartnerUpserted {
            partner_id: "P-100".to_string(),
            mpns: vec![],
        }),
        EventData::ClaimSubmitted(ClaimSubmitted {
            note: Some("n".to_string()),
            ..submitted_v1_expected()
        }),
        EventData::ReviewStarted(ClaimRef { claim_id: c }),
        EventData::CommentAdded(CommentAdded {
            claim_id: c,
            text: "t".to_string(),
            system: true,
        }),
        EventData::PoeRequested(PoeRequested {
            claim_id: c,
            text: "t".to_string(),
            partner_response_due_at: at,
        }),
        EventData::PoeSubmitted(PoeSubmitted {
            claim_id: c,
            proof_of_execution: poe("a.pdf"),
            text: None,
            review_due_at: Some(at),
        }),
        EventData::Approved(Approved {
            claim_id: c,
            text: Some("ok".to_string()),
        }),
        EventData::Rejected(Rejected {
            claim_id: c,
            reason: "X".to_string(),
            text: None,
        }),
        EventData::Withdrawn(Withdrawn {
            claim_id: c,
            reason: None,
        }),
        EventData::Disputed(Disputed {
            claim_id: c,
            text: "t".to_string(),
            proof_of_execution: vec![],
            review_due_at: at,
        }),
        EventData::AssociationEnded(AssociationEnded {
            claim_id: c,
            reason: "SUPERSEDED".to_string(),
            text: None,
        }),
        EventData::ReviewDeadlineMissed(ReviewDeadlineMissed {
            claim_id: c,
            review_due_at: at,
        }),
        EventData::PartnerResponseMissed(PartnerResponseMissed {
            claim_id: c,
            partner_response_due_at: at,
        }),
        EventData::ArbitrationOpened(ArbitrationOpened {
            case_id,
            tenant_id: uid("t1"),
            product: "dynamics_365_sales".to_string(),
            activity: Activity::Presales,
            claim_ids: vec![c, uid("c2")],
            incumbent_claim_id: Some(c),
        }),
        EventData::ArbitrationClaimJoined(ArbitrationClaimJoined {
            case_id,
            claim_id: uid("c3"),
        }),
        EventData::ArbitrationResolved(ArbitrationResolved {
            case_id,
            winner_claim_id: c,
        }),
        EventData::ArbitrationClosed(ArbitrationClosed { case_id }),
    ]
}

/// Contract §5's table of aggregates and events.
#[test]
fn the_events_are_exactly_the_contracts_list() {
    let contract: BTreeSet<String> = [
        "claim.submitted",
        "claim.review_started",
        "claim.comment_added",
        "claim.poe_requested",
        "claim.poe_submitted",
        "claim.approved",
        "claim.rejected",
        "claim.withdrawn",
        "claim.disputed",
        "claim.association_ended",
        "claim.review_deadline_missed",
        "claim.partner_response_missed",
        "arbitration.opened",
        "arbitration.claim_joined",
        "arbitration.resolved",
        "arbitration.closed",
        "tenant.upserted",
        "subscription.upserted",
        "partner.upserted",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let ours: BTreeSet<String> = one_of_each()
        .iter()
        .map(|d| format!("{}.{}", d.aggregate_kind().as_str(), d.name()))
        .collect();
    assert_eq!(ours, contract);
    assert_eq!(one_of_each().len(), contract.len());
}

#[test]
fn every_event_round_trips_through_its_stored_form() {
    for data in one_of_each() {
        let kind = data.aggregate_kind();
        let version = data.schema_version();
        assert_eq!(EventData::current_version(kind, data.name()), Some(version));
        let expected_version = if (kind, data.name()) == (AggregateKind::Claim, "submitted") {
            2
        } else {
            1
        };
        assert_eq!(version, expected_version, "{}", data.name());
        let value = data.to_value();
        assert!(value.is_object(), "{}", data.name());
        assert!(
            value.get("actor").is_none(),
            "the actor travels beside the data"
        );
        let decoded = EventData::decode(kind, data.name(), version, value).unwrap();
        assert_eq!(decoded, data);
    }
}

#[test]
fn each_event_names_its_aggregate() {
    for data in one_of_each() {
        let aggregate = data.aggregate();
        assert_eq!(aggregate.kind, data.aggregate_kind());
        assert_eq!(
            AggregateKind::parse(aggregate.kind.as_str()),
            Some(aggregate.kind)
        );
        match aggregate.kind {
            AggregateKind::Claim => {
                assert_eq!(data.claim_id().map(|c| c.to_string()), Some(aggregate.id))
            }
            AggregateKind::Arbitration => assert_eq!(aggregate.id, uid("case").to_string()),
            AggregateKind::Partner => assert_eq!(aggregate.id, "P-100"),
            AggregateKind::Tenant => assert_eq!(aggregate.id, uid("t1").to_string()),
            AggregateKind::Subscription => assert_eq!(aggregate.id, uid("s_sales").to_string()),
        }
        if aggregate.kind != AggregateKind::Claim {
            assert_eq!(data.claim_id(), None);
        }
    }
    assert_eq!(AggregateKind::parse("customer"), None);
}

/// Folding a v1 record read back from a log gives the claim a v2 record
/// would: the upcaster is all a replay needs.
#[test]
fn a_log_with_a_version_1_submission_replays() {
    let mut world = World::standard();
    let value: serde_json::Value = serde_json::from_str(SUBMITTED_V1).unwrap();
    let data = EventData::decode(AggregateKind::Claim, "submitted", 1, value).unwrap();
    world.apply(&[Event {
        actor: partner("P-100"),
        data,
    }]);
    let claim = world.claim("0d4b3f7e-4a56-4a43-9a2d-3f1c2b1f8e01".parse().unwrap());
    assert_eq!(claim.version, 1);
    assert_eq!(claim.review_due_at, Some(time("2026-12-03T00:00:00Z")));
}
