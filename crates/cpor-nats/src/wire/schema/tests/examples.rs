//! Examples of every request, and the check that the parser and the schema
//! agree on a body.

use cpor_testkit::actors;

use super::*;

pub(super) const TENANT: &str = "5cc7f541-f9ba-4761-a888-039121ca9485";
pub(super) const CLAIM: &str = "6749b280-715c-47c6-acdd-21b0eaff3070";
pub(super) const CASE: &str = "3b1f8f1e-2a6c-5c4e-9d7b-8e2f1a0c4d6b";
pub(super) const COMMAND: &str = "a4223133-2780-4dac-8864-1a0c00c2cb64";
pub(super) const SUBSCRIPTION: &str = "9a2c1e47-63d0-4b8e-a5f1-2c7d9e0b4a13";

pub(super) fn customer_actor() -> Value {
    json!({"type": "customer", "tenant_id": TENANT, "user": "it@contoso.com"})
}

pub(super) fn poe_documents(n: usize) -> Value {
    (0..n)
        .map(|i| {
            json!({"name": format!("evidence-{i}.pdf"), "uri": format!("https://files.contoso.example/{i}.pdf"),
                   "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})
        })
        .collect()
}

/// The subject a template stands for in the examples.
pub(super) fn concrete(subject: &str) -> String {
    subject
        .replace("{partner_id}", "P-100")
        .replace("{tenant_id}", TENANT)
}

/// A body with every field the subject takes, and one with only the
/// required ones; both valid.
pub(super) fn full_and_minimal(subject: &str) -> (Value, Value) {
    let (actor, required, optional) = match subject {
        "cmd.ref.tenant" => (
            actors::wire::system("crm-sync"),
            json!({"tenant_id": TENANT, "domains": ["contoso.onmicrosoft.com", "contoso.com"]}),
            json!({}),
        ),
        "cmd.ref.subscription" => (
            actors::wire::system("crm-sync"),
            json!({"subscription_id": SUBSCRIPTION, "tenant_id": TENANT, "product": "dynamics_365_sales",
                   "solution_area": "business_applications", "is_dynamics": true, "channel": "volume_licensing",
                   "state": "active"}),
            json!({}),
        ),
        "cmd.ref.partner" => (
            actors::wire::system("crm-sync"),
            json!({"partner_id": "P-100", "mpns": [{"mpn_id": "4412001", "incentive_enrolled": true}]}),
            json!({}),
        ),
        "cmd.partner.{partner_id}.submit" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"tenant_id": TENANT, "domain": "contoso.onmicrosoft.com", "solution_area": "business_applications",
                   "activity": "usage", "product": "dynamics_365_sales", "mpn_id": "4412001"}),
            json!({"claim_id": CLAIM, "subscription_id": SUBSCRIPTION, "proof_of_execution": poe_documents(1),
                   "note": "Deployment finished in November."}),
        ),
        "cmd.partner.{partner_id}.comment" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM, "text": "The statement of work is attached."}),
            json!({"expected_version": 3}),
        ),
        "cmd.partner.{partner_id}.submit_poe" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM, "proof_of_execution": poe_documents(2)}),
            json!({"text": "Signed statement of work.", "expected_version": 4}),
        ),
        "cmd.partner.{partner_id}.withdraw" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM}),
            json!({"reason": "Filed by mistake.", "expected_version": 2}),
        ),
        "cmd.partner.{partner_id}.dispute" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM, "text": "The deployment report shows our work."}),
            json!({"proof_of_execution": poe_documents(1), "expected_version": 5}),
        ),
        "cmd.partner.{partner_id}.disassociate" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM, "reason": "Our engagement with the customer ended."}),
            json!({"expected_version": 6}),
        ),
        "cmd.review.start" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM}),
            json!({"expected_version": 1}),
        ),
        "cmd.review.comment" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM, "text": "Looking at it this week."}),
            json!({"expected_version": 2}),
        ),
        "cmd.review.request_poe" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM, "text": "Please attach the signed statement of work."}),
            json!({"expected_version": 2}),
        ),
        "cmd.review.approve" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM}),
            json!({"text": "Proof of execution checked.", "expected_version": 2}),
        ),
        "cmd.review.reject" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM, "reason": "NO_PROOF"}),
            json!({"text": "The documents do not show the deployment.", "expected_version": 2}),
        ),
        "cmd.customer.{tenant_id}.decline" => (
            customer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"reason": "We do not work with this partner.", "expected_version": 3}),
        ),
        "qry.claim.get" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "dashboard-7", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.claim.history" => (
            actors::wire::reviewer(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "dashboard-7", "limit": 50, "after": "3"}),
        ),
        "qry.claims.list" => (
            actors::wire::reviewer(),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "under_review", "overdue": false,
                   "in_arbitration": true, "limit": 50, "after": "42", "correlation_id": "dashboard-7"}),
        ),
        "qry.partner.{partner_id}.claim.get" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "partner-portal-3", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.partner.{partner_id}.claim.history" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "partner-portal-3", "limit": 50, "after": "3"}),
        ),
        "qry.partner.{partner_id}.claims.list" => (
            actors::wire::partner("P-100", "alice@contoso.com"),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "approved", "overdue": false,
                   "in_arbitration": false, "limit": 50, "after": "42", "correlation_id": "partner-portal-3"}),
        ),
        "qry.customer.{tenant_id}.claim.get" => (
            customer_actor(),
            json!({"claim_id": CLAIM}),
            json!({"correlation_id": "customer-gateway-1", "comments_limit": 50, "comments_after": "42"}),
        ),
        "qry.customer.{tenant_id}.claims.list" => (
            customer_actor(),
            json!({}),
            json!({"partner_id": "P-100", "tenant_id": TENANT, "status": "approved", "overdue": false,
                   "in_arbitration": false, "limit": 50, "after": "42", "correlation_id": "customer-gateway-1"}),
        ),
        "qry.arbitration.get" => (
            actors::wire::reviewer(),
            json!({"case_id": CASE}),
            json!({"correlation_id": "dashboard-7"}),
        ),
        "qry.arbitration.list" => (
            actors::wire::reviewer(),
            json!({}),
            json!({"status": "open", "correlation_id": "dashboard-7", "limit": 50, "after": "42"}),
        ),
        "qry.health" => return (json!({"actor": actors::wire::reviewer()}), json!({})),
        "admin.clock" => (
            json!({"type": "system", "id": "test"}),
            json!({"now": "2026-11-25T09:00:00Z"}),
            json!({}),
        ),
        other => panic!("no example for {other}"),
    };
    let mut minimal = required;
    minimal["actor"] = actor;
    if subject.starts_with("cmd.") {
        minimal["command_id"] = json!(COMMAND);
    }
    let mut full = minimal.clone();
    for (key, value) in optional.as_object().unwrap() {
        full[key] = value.clone();
    }
    if subject.starts_with("cmd.") {
        full["correlation_id"] = json!("crm-batch-2026-11-25");
    }
    (full, minimal)
}

pub(super) fn request_doc(subject: &str) -> Option<RequestDoc> {
    request_docs()
        .into_iter()
        .find(|doc| template_matches(doc.subject, subject))
}

pub(super) fn template_matches(template: &str, subject: &str) -> bool {
    let t: Vec<&str> = template.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    t.len() == s.len() && t.iter().zip(&s).all(|(t, s)| t.starts_with('{') || t == s)
}

/// Whether the parser refuses `body` for its shape (`INVALID_JSON`,
/// `INVALID_COMMAND`), as opposed to accepting it or refusing it for who
/// sends it.
pub(super) fn shape_refused(subject: &str, body: &Value) -> Option<String> {
    match parse(subject, body.to_string().as_bytes()) {
        Err(r) if matches!(r.code, ErrorCode::InvalidCommand | ErrorCode::InvalidJson) => {
            Some(r.message)
        }
        _ => None,
    }
}

/// The parser and the schema agree on `body`; returns whether it is valid.
pub(super) fn assert_agree(subject: &str, body: &Value) -> bool {
    let doc = request_doc(subject).unwrap_or_else(|| panic!("no schema for {subject}"));
    let file = request_file(doc.subject);
    let errors = errors(&validator(&schema_file(&file)), body);
    let refused = shape_refused(subject, body);
    match (&refused, errors.is_empty()) {
        (None, true) | (Some(_), false) => {}
        (None, false) => panic!(
            "{subject}: the parser accepts {body}\nbut {file} refuses it:\n{}",
            errors.join("\n")
        ),
        (Some(message), true) => {
            panic!("{subject}: the parser refuses {body} ({message})\nbut {file} accepts it")
        }
    }
    refused.is_none()
}
