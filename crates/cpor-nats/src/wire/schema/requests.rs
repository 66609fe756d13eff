//! The request subjects the service answers, with the DTO each one decodes
//! its body into (the schema of `docs/schemas/requests/…`).

use super::*;

/// One request subject: its address after `{prefix}.`, with parameters in
/// braces, and the schema of its body.
pub(super) struct RequestDoc {
    pub(super) subject: &'static str,
    pub(super) summary: &'static str,
    pub(super) schema: fn() -> Value,
}

/// Every documented request subject (after `{prefix}.`, parameters in
/// braces): the metrics' subject names are checked against it.
pub(crate) fn request_subjects() -> Vec<&'static str> {
    request_docs().into_iter().map(|doc| doc.subject).collect()
}

/// Every request subject the service answers. The DTO of each is the one
/// `parse_command` / `parse_query` decodes it with.
pub(super) fn request_docs() -> Vec<RequestDoc> {
    vec![
        RequestDoc {
            subject: "cmd.ref.tenant",
            summary: "Upsert a customer tenant and its domains (actor type system).",
            schema: deserialize_schema::<RefTenantDto>,
        },
        RequestDoc {
            subject: "cmd.ref.subscription",
            summary: "Upsert a subscription of a tenant (actor type system).",
            schema: deserialize_schema::<RefSubscriptionDto>,
        },
        RequestDoc {
            subject: "cmd.ref.partner",
            summary: "Upsert a partner and its MPN ids (actor type system).",
            schema: deserialize_schema::<RefPartnerDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.submit",
            summary: "Submit a claim (partner actor whose partner_id is the subject's).",
            schema: deserialize_schema::<SubmitDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.comment",
            summary: "Comment on one of the partner's claims, in any status.",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.submit_poe",
            summary: "Add proof of execution (answers a PoE request); open statuses and approved.",
            schema: deserialize_schema::<SubmitPoeDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.withdraw",
            summary: "Withdraw an open claim.",
            schema: deserialize_schema::<OptionalReasonDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.dispute",
            summary: "Dispute a rejected claim within 30 days of its rejection.",
            schema: deserialize_schema::<DisputeDto>,
        },
        RequestDoc {
            subject: "cmd.partner.{partner_id}.disassociate",
            summary: "End an approved claim (reason required).",
            schema: deserialize_schema::<ReasonDto>,
        },
        RequestDoc {
            subject: "cmd.review.start",
            summary: "Start reviewing an open claim (reviewer actor).",
            schema: deserialize_schema::<ClaimOnlyDto>,
        },
        RequestDoc {
            subject: "cmd.review.comment",
            summary: "Comment on a claim as a reviewer, in any status.",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.review.request_poe",
            summary: "Ask the partner for proof of execution (five business days to answer).",
            schema: deserialize_schema::<TextDto>,
        },
        RequestDoc {
            subject: "cmd.review.approve",
            summary: "Approve a submitted or under-review claim.",
            schema: deserialize_schema::<OptionalTextDto>,
        },
        RequestDoc {
            subject: "cmd.review.reject",
            summary: "Reject an open claim with a reason code.",
            schema: deserialize_schema::<RejectDto>,
        },
        RequestDoc {
            subject: "cmd.customer.{tenant_id}.decline",
            summary: "The customer declines a claim on its tenant (customer actor of that tenant).",
            schema: deserialize_schema::<OptionalReasonDto>,
        },
        RequestDoc {
            subject: "qry.claim.get",
            summary: "A claim's view and a page of its comments.",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.claim.history",
            summary: "A page of a claim's events, in order.",
            schema: deserialize_schema::<ClaimHistoryDto>,
        },
        RequestDoc {
            subject: "qry.claims.list",
            summary: "A page of claims in submission order, filtered.",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claim.get",
            summary: "One of the partner's claims: view and a page of comments (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claim.history",
            summary: "A page of the events of one of the partner's claims, in order (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ClaimHistoryDto>,
        },
        RequestDoc {
            subject: "qry.partner.{partner_id}.claims.list",
            summary: "A page of the partner's claims, filtered (partner actor of that partner; contract v1.1).",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.customer.{tenant_id}.claim.get",
            summary: "A claim on the customer's tenant: view and a page of comments (customer actor of that tenant; contract v1.1).",
            schema: deserialize_schema::<ClaimGetDto>,
        },
        RequestDoc {
            subject: "qry.customer.{tenant_id}.claims.list",
            summary: "A page of the claims on the customer's tenant, filtered (customer actor of that tenant; contract v1.1).",
            schema: deserialize_schema::<ListDto>,
        },
        RequestDoc {
            subject: "qry.arbitration.get",
            summary: "An arbitration case (reviewer actor).",
            schema: deserialize_schema::<CaseGetDto>,
        },
        RequestDoc {
            subject: "qry.arbitration.list",
            summary: "A page of arbitration cases in the order they opened (reviewer actor).",
            schema: deserialize_schema::<CaseListDto>,
        },
        RequestDoc {
            subject: "qry.health",
            summary: "Log and publication positions; any actor or none (the body is not read).",
            schema: deserialize_schema::<HealthRequest>,
        },
        RequestDoc {
            subject: "admin.clock",
            summary: "Set the manual clock (system actor); never backwards.",
            schema: deserialize_schema::<ClockDto>,
        },
    ]
}
