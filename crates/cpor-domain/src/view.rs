//! Read models (contract §4): what queries return and what the status
//! stream carries. Each is a pure function of state or of one event, so a
//! rebuild from the log yields the same bytes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{Event, EventData};
use crate::state::{Case, Claim};
use crate::types::{Activity, Actor, ActorKind, CaseStatus, ClaimStatus, SolutionArea, Timestamp};

/// Times in views are written like events' times: RFC 3339, UTC, `Z`.
pub fn format_time(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

mod rfc3339 {
    use super::*;
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_time(t))
    }

    pub(super) mod option {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(
            t: &Option<Timestamp>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&format_time(t)),
                None => s.serialize_none(),
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ClaimView {
    pub claim_id: Uuid,
    pub partner_id: String,
    pub mpn_id: String,
    pub tenant_id: Uuid,
    pub solution_area: SolutionArea,
    pub activity: Activity,
    pub product: String,
    pub subscription_ids: Vec<Uuid>,
    pub status: ClaimStatus,
    pub reason: Option<String>,
    pub incentive_eligible: bool,
    pub disputed: bool,
    pub overdue: bool,
    pub arbitration_case_id: Option<Uuid>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub submitted_at: Timestamp,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub review_due_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub partner_response_due_at: Option<Timestamp>,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub decided_at: Option<Timestamp>,
    pub version: u64,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub updated_at: Timestamp,
}

impl ClaimView {
    pub fn of(claim: &Claim) -> ClaimView {
        ClaimView {
            claim_id: claim.claim_id,
            partner_id: claim.partner_id.to_string(),
            mpn_id: claim.mpn_id.to_string(),
            tenant_id: claim.tenant_id,
            solution_area: claim.solution_area,
            activity: claim.activity,
            product: claim.product.to_string(),
            subscription_ids: claim.subscription_ids.to_vec(),
            status: claim.status,
            reason: claim.reason().map(str::to_string),
            incentive_eligible: claim.incentive_eligible,
            disputed: claim.disputed,
            overdue: claim.overdue,
            arbitration_case_id: claim.arbitration_case_id(),
            submitted_at: claim.submitted_at,
            review_due_at: claim.review_due_at,
            partner_response_due_at: claim.partner_response_due_at(),
            decided_at: claim.decided_at,
            version: claim.version,
            updated_at: claim.updated_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CaseView {
    pub case_id: Uuid,
    pub tenant_id: Uuid,
    pub product: String,
    pub activity: Activity,
    pub status: CaseStatus,
    pub claim_ids: Vec<Uuid>,
    pub incumbent_claim_id: Option<Uuid>,
    pub winner_claim_id: Option<Uuid>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub opened_at: Timestamp,
    #[serde(serialize_with = "rfc3339::option::serialize")]
    pub closed_at: Option<Timestamp>,
}

impl CaseView {
    pub fn of(case: &Case) -> CaseView {
        CaseView {
            case_id: case.case_id,
            tenant_id: case.tenant_id,
            product: case.product.to_string(),
            activity: case.activity,
            status: case.status,
            claim_ids: case.claim_ids.clone(),
            incumbent_claim_id: case.incumbent_claim_id,
            winner_claim_id: case.winner_claim_id,
            opened_at: case.opened_at,
            closed_at: case.closed_at,
        }
    }
}

/// One entry of a claim's conversation: the comments, and the texts that
/// reviewers and partners exchange through PoE requests, answers and
/// disputes (the claim's comments are their only channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CommentView {
    #[serde(serialize_with = "rfc3339::serialize")]
    pub at: Timestamp,
    pub author: Actor,
    pub text: String,
    pub system: bool,
}

impl CommentView {
    /// The conversation entry an event adds to its claim, if any.
    pub fn of(event: &Event, at: Timestamp) -> Option<(Uuid, CommentView)> {
        let (claim_id, text, system) = match &event.data {
            EventData::CommentAdded(e) => (e.claim_id, e.text.clone(), e.system),
            EventData::PoeRequested(e) => (e.claim_id, e.text.clone(), false),
            EventData::PoeSubmitted(e) => (e.claim_id, e.text.clone()?, false),
            EventData::Disputed(e) => (e.claim_id, e.text.clone(), false),
            _ => return None,
        };
        let system = system || event.actor.kind() == ActorKind::System;
        Some((
            claim_id,
            CommentView {
                at,
                author: event.actor.clone(),
                text,
                system,
            },
        ))
    }
}

/// Whether a claim counts as `in_arbitration` for listings: it is a
/// contender of a case that is still open. `case` is the claim's
/// `arbitration_case_id`'s case, if any.
pub fn in_open_case(claim: &Claim, case: Option<&Case>) -> bool {
    contends_in(claim.status, case.map(|c| c.status))
}

impl ClaimView {
    /// [`in_open_case`] as the queries ask it of the stored read models
    /// (`claims.list`'s `in_arbitration` filter, contract §4): the same
    /// rule on the view of the claim and the view of its case
    /// (`arbitration_case_id`), if it has one.
    pub fn in_open_case(&self, case: Option<&CaseView>) -> bool {
        contends_in(self.status, case.map(|c| c.status))
    }
}

/// The one rule behind both [`in_open_case`]s: a contender
/// ([`ClaimStatus::is_contender`]) of a case that is open.
fn contends_in(claim: ClaimStatus, case: Option<CaseStatus>) -> bool {
    claim.is_contender() && case == Some(CaseStatus::Open)
}
