//! A sample of every event, with the schema of its payload: the generator
//! lists the event types from it and the tests seal and check the samples.

use super::*;

/// The sample of every event, with the payload schema of its variant: the
/// exhaustive match makes a new event fail to compile here until it is
/// documented.
pub(super) fn event_samples() -> Vec<(EventData, Value)> {
    let t = |d: u32, h: u32| chrono::Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let claim = Uuid::parse_str("6749b280-715c-47c6-acdd-21b0eaff3070").unwrap();
    let other = Uuid::parse_str("0f8e4d8c-7a51-4f55-9a3e-5a1c31b0c5e2").unwrap();
    let case = Uuid::parse_str("3b1f8f1e-2a6c-5c4e-9d7b-8e2f1a0c4d6b").unwrap();
    let tenant = Uuid::parse_str("5cc7f541-f9ba-4761-a888-039121ca9485").unwrap();
    let subscription = Uuid::parse_str("9a2c1e47-63d0-4b8e-a5f1-2c7d9e0b4a13").unwrap();
    let poe = || {
        vec![PoeDocument {
            name: "statement-of-work.pdf".into(),
            uri: "https://files.contoso.example/sow.pdf".into(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
        }]
    };
    let all = vec![
        EventData::TenantUpserted(events::TenantUpserted {
            tenant_id: tenant,
            domains: vec!["contoso.onmicrosoft.com".into(), "contoso.com".into()],
        }),
        EventData::SubscriptionUpserted(cpor_domain::command::SubscriptionRecord {
            subscription_id: subscription,
            tenant_id: tenant,
            product: "dynamics_365_sales".into(),
            solution_area: SolutionArea::BusinessApplications,
            is_dynamics: true,
            channel: Channel::VolumeLicensing,
            state: SubscriptionState::Active,
        }),
        EventData::PartnerUpserted(events::PartnerUpserted {
            partner_id: "P-100".into(),
            mpns: vec![Mpn {
                mpn_id: "4412001".into(),
                incentive_enrolled: true,
            }],
        }),
        EventData::ClaimSubmitted(events::ClaimSubmitted {
            claim_id: claim,
            partner_id: "P-100".into(),
            mpn_id: "4412001".into(),
            tenant_id: tenant,
            domain: "contoso.onmicrosoft.com".into(),
            solution_area: SolutionArea::BusinessApplications,
            activity: Activity::Usage,
            product: "dynamics_365_sales".into(),
            subscription_ids: vec![subscription],
            incentive_eligible: true,
            proof_of_execution: poe(),
            note: Some("Deployment finished in November.".into()),
            review_due_at: t(3, 0),
        }),
        EventData::ReviewStarted(events::ClaimRef { claim_id: claim }),
        EventData::CommentAdded(events::CommentAdded {
            claim_id: claim,
            text: "Please attach the signed statement of work.".into(),
            system: false,
        }),
        EventData::PoeRequested(events::PoeRequested {
            claim_id: claim,
            text: "We need the signed statement of work.".into(),
            partner_response_due_at: t(4, 0),
        }),
        EventData::PoeSubmitted(events::PoeSubmitted {
            claim_id: claim,
            proof_of_execution: poe(),
            text: Some("Attached.".into()),
            review_due_at: Some(t(5, 0)),
        }),
        EventData::Approved(events::Approved {
            claim_id: claim,
            text: None,
        }),
        EventData::Rejected(events::Rejected {
            claim_id: claim,
            reason: "NO_PROOF".into(),
            text: Some("The documents do not show the deployment.".into()),
        }),
        EventData::Withdrawn(events::Withdrawn {
            claim_id: claim,
            reason: Some("Filed by mistake.".into()),
        }),
        EventData::Disputed(events::Disputed {
            claim_id: claim,
            text: "The deployment is documented in the attached report.".into(),
            proof_of_execution: poe(),
            review_due_at: t(10, 0),
        }),
        EventData::AssociationEnded(events::AssociationEnded {
            claim_id: claim,
            reason: "DISASSOCIATED".into(),
            text: Some("The engagement ended.".into()),
        }),
        EventData::ReviewDeadlineMissed(events::ReviewDeadlineMissed {
            claim_id: claim,
            review_due_at: t(3, 0),
        }),
        EventData::PartnerResponseMissed(events::PartnerResponseMissed {
            claim_id: claim,
            partner_response_due_at: t(4, 0),
        }),
        EventData::ArbitrationOpened(events::ArbitrationOpened {
            case_id: case,
            tenant_id: tenant,
            product: "dynamics_365_sales".into(),
            activity: Activity::Usage,
            claim_ids: vec![other, claim],
            incumbent_claim_id: Some(other),
        }),
        EventData::ArbitrationClaimJoined(events::ArbitrationClaimJoined {
            case_id: case,
            claim_id: claim,
        }),
        EventData::ArbitrationResolved(events::ArbitrationResolved {
            case_id: case,
            winner_claim_id: claim,
        }),
        EventData::ArbitrationClosed(events::ArbitrationClosed { case_id: case }),
    ];
    all.into_iter()
        .map(|data| {
            let schema = match &data {
                EventData::TenantUpserted(_) => serialize_schema::<events::TenantUpserted>(),
                EventData::SubscriptionUpserted(_) => {
                    serialize_schema::<cpor_domain::command::SubscriptionRecord>()
                }
                EventData::PartnerUpserted(_) => serialize_schema::<events::PartnerUpserted>(),
                EventData::ClaimSubmitted(_) => serialize_schema::<events::ClaimSubmitted>(),
                EventData::ReviewStarted(_) => serialize_schema::<events::ClaimRef>(),
                EventData::CommentAdded(_) => serialize_schema::<events::CommentAdded>(),
                EventData::PoeRequested(_) => serialize_schema::<events::PoeRequested>(),
                EventData::PoeSubmitted(_) => serialize_schema::<events::PoeSubmitted>(),
                EventData::Approved(_) => serialize_schema::<events::Approved>(),
                EventData::Rejected(_) => serialize_schema::<events::Rejected>(),
                EventData::Withdrawn(_) => serialize_schema::<events::Withdrawn>(),
                EventData::Disputed(_) => serialize_schema::<events::Disputed>(),
                EventData::AssociationEnded(_) => serialize_schema::<events::AssociationEnded>(),
                EventData::ReviewDeadlineMissed(_) => {
                    serialize_schema::<events::ReviewDeadlineMissed>()
                }
                EventData::PartnerResponseMissed(_) => {
                    serialize_schema::<events::PartnerResponseMissed>()
                }
                EventData::ArbitrationOpened(_) => serialize_schema::<events::ArbitrationOpened>(),
                EventData::ArbitrationClaimJoined(_) => {
                    serialize_schema::<events::ArbitrationClaimJoined>()
                }
                EventData::ArbitrationResolved(_) => {
                    serialize_schema::<events::ArbitrationResolved>()
                }
                EventData::ArbitrationClosed(_) => serialize_schema::<events::ArbitrationClosed>(),
            };
            (data, schema)
        })
        .collect()
}

/// `claim.submitted`: the event's aggregate and name.
pub(super) fn event_key(data: &EventData) -> String {
    format!("{}.{}", data.aggregate_kind().as_str(), data.name())
}
