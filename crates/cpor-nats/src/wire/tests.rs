//! Wire parsing: every subject's refusals, in precedence order, and the
//! commands good bodies become.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use cpor_domain::limits::MPN_ID_MAX_CHARS;
use cpor_testkit::actors::wire::{partner, reviewer, system};

use super::*;

const TENANT: &str = "5cc7f541-f9ba-4761-a888-039121ca9485";
const CLAIM: &str = "6749b280-715c-47c6-acdd-21b0eaff3070";
const COMMAND: &str = "a4223133-2780-4dac-8864-1a0c00c2cb64";

fn customer() -> Value {
    json!({"type": "customer", "tenant_id": TENANT, "user": "it@contoso.com"})
}

fn poe() -> Value {
    json!([{"name": "sow.pdf", "uri": "https://files.example/sow.pdf", "sha256": "a".repeat(64)}])
}

/// `body` on `subject` is refused `INVALID_COMMAND`, the message naming
/// `field`.
fn assert_refused_naming(subject: &str, body: &Value, field: &str) {
    let rejection = parse_value(subject, body).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{subject}");
    assert!(
        rejection.message.contains(field),
        "{subject}: {}",
        rejection.message
    );
}

/// A valid body for each command subject.
fn valid(subject: &str) -> Value {
    let mut body = match subject {
        "cmd.ref.tenant" => {
            json!({"actor": system("crm-sync"), "tenant_id": TENANT, "domains": ["contoso.com"]})
        }
        "cmd.ref.subscription" => {
            json!({"actor": system("crm-sync"), "subscription_id": CLAIM, "tenant_id": TENANT,
            "product": "dynamics_365_sales", "solution_area": "business_applications", "is_dynamics": true,
            "channel": "volume_licensing", "state": "active"})
        }
        "cmd.ref.partner" => json!({"actor": system("crm-sync"), "partner_id": "P-100",
            "mpns": [{"mpn_id": "4412001", "incentive_enrolled": true}]}),
        "cmd.partner.P-100.submit" => {
            json!({"actor": partner("P-100", "admin@p.example"), "tenant_id": TENANT, "domain": "contoso.com",
            "solution_area": "business_applications", "activity": "usage", "product": "dynamics_365_sales",
            "mpn_id": "4412001", "subscription_id": "not checked here"})
        }
        "cmd.partner.P-100.comment" => {
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM, "text": "hello"})
        }
        "cmd.partner.P-100.submit_poe" => {
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM, "proof_of_execution": poe()})
        }
        "cmd.partner.P-100.withdraw" => {
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM})
        }
        "cmd.partner.P-100.dispute" => {
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM, "text": "we did it"})
        }
        "cmd.partner.P-100.disassociate" => {
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM, "reason": "contract ended"})
        }
        "cmd.review.start" => json!({"actor": reviewer(), "claim_id": CLAIM}),
        "cmd.review.comment" => json!({"actor": reviewer(), "claim_id": CLAIM, "text": "looking"}),
        "cmd.review.request_poe" => {
            json!({"actor": reviewer(), "claim_id": CLAIM, "text": "signed SOW"})
        }
        "cmd.review.approve" => json!({"actor": reviewer(), "claim_id": CLAIM}),
        "cmd.review.reject" => {
            json!({"actor": reviewer(), "claim_id": CLAIM, "reason": "NO_PROOF"})
        }
        other if other.ends_with(".decline") => json!({"actor": customer(), "claim_id": CLAIM}),
        other => panic!("no valid body for {other}"),
    };
    body["command_id"] = COMMAND.into();
    body
}

const COMMAND_SUBJECTS: [&str; 15] = [
    "cmd.ref.tenant",
    "cmd.ref.subscription",
    "cmd.ref.partner",
    "cmd.partner.P-100.submit",
    "cmd.partner.P-100.comment",
    "cmd.partner.P-100.submit_poe",
    "cmd.partner.P-100.withdraw",
    "cmd.partner.P-100.dispute",
    "cmd.partner.P-100.disassociate",
    "cmd.review.start",
    "cmd.review.comment",
    "cmd.review.request_poe",
    "cmd.review.approve",
    "cmd.review.reject",
    "cmd.customer.5cc7f541-f9ba-4761-a888-039121ca9485.decline",
];

fn parse_value(subject: &str, body: &Value) -> Result<Request, Rejection> {
    parse(subject, &serde_json::to_vec(body).unwrap())
}

fn code(subject: &str, body: &Value) -> ErrorCode {
    match parse_value(subject, body) {
        Ok(request) => panic!("{subject}: expected a refusal, got {request:?}"),
        Err(rejection) => rejection.code,
    }
}

#[test]
fn every_command_subject_accepts_its_valid_body() {
    for subject in COMMAND_SUBJECTS {
        match parse_value(subject, &valid(subject)) {
            Ok(Request::Command {
                envelope,
                fingerprint,
            }) => {
                assert_eq!(envelope.command_id.to_string(), COMMAND, "{subject}");
                assert_eq!(fingerprint.len(), 64, "{subject}");
            }
            other => panic!("{subject}: {other:?}"),
        }
    }
}

#[test]
fn every_command_subject_refuses_bad_input_in_precedence_order() {
    for subject in COMMAND_SUBJECTS {
        let body = valid(subject);
        // Size first, even for bytes that are not JSON.
        let big = vec![b'x'; PAYLOAD_MAX_BYTES + 1];
        assert_eq!(
            parse(subject, &big).unwrap_err().code,
            ErrorCode::PayloadTooLarge,
            "{subject}"
        );
        assert_eq!(
            parse(subject, b"not json").unwrap_err().code,
            ErrorCode::InvalidJson,
            "{subject}"
        );
        assert_eq!(
            parse(subject, b"[1,2]").unwrap_err().code,
            ErrorCode::InvalidJson,
            "{subject}"
        );
        // Shape: missing, unknown, mistyped fields; bad uuid command id.
        let with = |key: &str, value: Value| {
            let mut bad = body.clone();
            bad[key] = value;
            bad
        };
        let without = |key: &str| {
            let mut bad = body.clone();
            bad.as_object_mut().unwrap().remove(key);
            bad
        };
        let long_correlation = json!("c".repeat(CORRELATION_ID_MAX_CHARS + 1));
        for (bad, field) in [
            (with("colour", json!("blue")), "colour"),
            (without("command_id"), "command_id"),
            (with("command_id", json!("42")), "command_id"),
            (without("actor"), "actor"),
            (with("actor", json!({"type": "robot", "id": "r2"})), "actor"),
            (with("correlation_id", long_correlation), "correlation_id"),
        ] {
            assert_refused_naming(subject, &bad, field);
        }
        // Permission: a valid body from the wrong kind of actor.
        let wrong_actor = if subject.starts_with("cmd.review") {
            partner("P-100", "admin@p.example")
        } else {
            reviewer()
        };
        let mut wrong = body.clone();
        wrong["actor"] = wrong_actor;
        assert_eq!(code(subject, &wrong), ErrorCode::Forbidden, "{subject}");
        // A shape error wins over a permission error.
        wrong["colour"] = "blue".into();
        assert_eq!(
            code(subject, &wrong),
            ErrorCode::InvalidCommand,
            "{subject}"
        );
    }
}

#[test]
fn claim_commands_name_bad_claim_ids_and_versions() {
    for subject in COMMAND_SUBJECTS
        .iter()
        .filter(|s| !s.contains(".ref.") && !s.ends_with("submit"))
    {
        let mut body = valid(subject);
        body["claim_id"] = "not-a-uuid".into();
        let rejection = parse_value(subject, &body).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{subject}");
        assert!(
            rejection.message.contains("claim_id"),
            "{subject}: {}",
            rejection.message
        );
        let mut body = valid(subject);
        body["expected_version"] = "three".into();
        assert_eq!(code(subject, &body), ErrorCode::InvalidCommand, "{subject}");
        let mut body = valid(subject);
        body["expected_version"] = 3.into();
        match parse_value(subject, &body).unwrap() {
            Request::Command { envelope, .. } => {
                assert_eq!(envelope.expected_version, Some(3), "{subject}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn field_rules_each_refuse_with_the_field_named() {
    let table: Vec<(&str, &str, Value)> = vec![
        ("cmd.ref.tenant", "domains", json!([])),
        ("cmd.ref.tenant", "tenant_id", json!("nope")),
        ("cmd.ref.subscription", "channel", json!("retail")),
        ("cmd.ref.subscription", "state", json!("paused")),
        ("cmd.ref.subscription", "solution_area", json!("azure")),
        ("cmd.ref.subscription", "is_dynamics", json!("yes")),
        ("cmd.ref.partner", "partner_id", json!("P 100")),
        ("cmd.ref.partner", "mpns", json!("4412001")),
        ("cmd.partner.P-100.submit", "activity", json!("presale")),
        ("cmd.partner.P-100.submit", "claim_id", json!("not-a-uuid")),
        (
            "cmd.partner.P-100.submit",
            "note",
            json!("n".repeat(TEXT_MAX_CHARS + 1)),
        ),
        ("cmd.partner.P-100.submit", "domain", json!("")),
        (
            "cmd.partner.P-100.submit",
            "proof_of_execution",
            json!(vec![poe()[0].clone(); POE_DOCUMENTS_MAX + 1]),
        ),
        ("cmd.partner.P-100.comment", "text", json!("")),
        (
            "cmd.partner.P-100.comment",
            "text",
            json!("t".repeat(TEXT_MAX_CHARS + 1)),
        ),
        (
            "cmd.partner.P-100.submit_poe",
            "proof_of_execution",
            json!([]),
        ),
        (
            "cmd.partner.P-100.submit_poe",
            "sha256",
            json!([{"name": "a", "uri": "b", "sha256": "xyz"}]),
        ),
        ("cmd.partner.P-100.dispute", "text", json!("")),
        ("cmd.partner.P-100.disassociate", "reason", json!("")),
        ("cmd.review.reject", "reason", json!("not a code")),
        ("cmd.review.reject", "reason", json!("A".repeat(65))),
        ("cmd.review.request_poe", "text", json!("")),
    ];
    for (subject, field, value) in table {
        let mut body = valid(subject);
        let key = if field == "sha256" {
            "proof_of_execution"
        } else {
            field
        };
        body[key] = value.clone();
        let rejection = parse_value(subject, &body).unwrap_err();
        assert_eq!(
            rejection.code,
            ErrorCode::InvalidCommand,
            "{subject} {field}={value}"
        );
        assert!(
            rejection.message.contains(field),
            "{subject}: message {:?} should name {field}",
            rejection.message
        );
    }
}

#[test]
fn microsoft_365_claims_take_no_subscription_id() {
    let mut body = valid("cmd.partner.P-100.submit");
    body["solution_area"] = "microsoft_365".into();
    let rejection = parse_value("cmd.partner.P-100.submit", &body).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand);
    assert!(rejection.message.contains("subscription_id"));
    body.as_object_mut().unwrap().remove("subscription_id");
    assert!(parse_value("cmd.partner.P-100.submit", &body).is_ok());
}

#[test]
fn subject_and_actor_must_agree() {
    // Partner in the subject vs in the actor.
    let body = valid("cmd.partner.P-100.submit");
    assert_eq!(
        code("cmd.partner.P-200.submit", &body),
        ErrorCode::Forbidden
    );
    // Customer tenant in the subject vs in the actor.
    let body = valid("cmd.customer.x.decline");
    assert_eq!(
        code(
            "cmd.customer.9b2c0a34-8f7e-4f1a-9d51-2f7c0c1a9e10.decline",
            &body
        ),
        ErrorCode::Forbidden
    );
    // Reference data takes only system actors.
    let mut body = valid("cmd.ref.tenant");
    body["actor"] = partner("P-100", "admin@p.example");
    assert_eq!(code("cmd.ref.tenant", &body), ErrorCode::Forbidden);
}

#[test]
fn unknown_subject_names_are_invalid_commands() {
    for subject in [
        "cmd.partner.P-100.frobnicate",
        "cmd.review.escalate",
        "cmd.ref.product",
        "cmd.customer.5cc7f541-f9ba-4761-a888-039121ca9485.accept",
        "cmd.partner.bad id.submit",
        "qry.claims.count",
        "admin.reset",
        "whatever",
    ] {
        let body = json!({"actor": partner("P-100", "admin@p.example"), "command_id": COMMAND});
        assert_eq!(code(subject, &body), ErrorCode::InvalidCommand, "{subject}");
    }
}

#[test]
fn a_body_in_another_key_order_has_the_same_fingerprint() {
    let subject = "cmd.review.approve";
    let one = r#"{"command_id":"a4223133-2780-4dac-8864-1a0c00c2cb64","actor":{"type":"reviewer","id":"rev-1"},"claim_id":"6749b280-715c-47c6-acdd-21b0eaff3070"}"#;
    let two = r#"{"claim_id":"6749b280-715c-47c6-acdd-21b0eaff3070","actor":{"id":"rev-1","type":"reviewer"},"command_id":"a4223133-2780-4dac-8864-1a0c00c2cb64"}"#;
    let print = |bytes: &str| match parse(subject, bytes.as_bytes()).unwrap() {
        Request::Command { fingerprint, .. } => fingerprint,
        other => panic!("{other:?}"),
    };
    assert_eq!(print(one), print(two));
    let changed = one.replace("rev-1", "rev-2");
    assert_ne!(print(one), print(&changed));
}

#[test]
fn queries_refuse_bad_filters_and_scope_actors() {
    let list = |body: Value| parse_value("qry.claims.list", &body);
    assert_eq!(
        list(json!({"actor": reviewer(), "limit": 0}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        list(json!({"actor": reviewer(), "limit": 1001}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        list(json!({"actor": reviewer(), "status": "lost"}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        list(json!({"actor": reviewer(), "after": "xyz"}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        list(json!({"actor": partner("P-100", "admin@p.example"), "partner_id": "P-200"}))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    let no_roles = json!({"type": "partner", "partner_id": "P-100", "roles": []});
    assert_eq!(
        list(json!({"actor": no_roles})).unwrap_err().code,
        ErrorCode::Forbidden
    );
    match list(json!({"actor": partner("P-100", "admin@p.example")})).unwrap() {
        Request::Query(Query::ClaimsList { filter, limit, .. }) => {
            assert_eq!(
                filter.partner_id.as_deref(),
                Some("P-100"),
                "a partner's list is scoped to it"
            );
            assert_eq!(limit, cpor_log::LIST_LIMIT_DEFAULT);
        }
        other => panic!("{other:?}"),
    }
    match list(json!({"actor": customer()})).unwrap() {
        Request::Query(Query::ClaimsList { filter, .. }) => {
            assert_eq!(filter.tenant_id.unwrap().to_string(), TENANT)
        }
        other => panic!("{other:?}"),
    }
    let case = |body: Value| parse_value("qry.arbitration.get", &body);
    assert_eq!(
        case(json!({"actor": partner("P-100", "admin@p.example"), "case_id": CLAIM}))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
    assert!(case(json!({"actor": reviewer(), "case_id": CLAIM})).is_ok());
    assert_eq!(
        parse_value(
            "qry.arbitration.list",
            &json!({"actor": reviewer(), "status": "pending"})
        )
        .unwrap_err()
        .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        parse_value("qry.claim.get", &json!({"actor": reviewer()}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
}

/// Contract v1.1 §4: the scoped query subjects take only the actor of
/// their scope, and their answers see only that scope.
#[test]
fn scoped_query_subjects_take_only_the_actor_of_their_scope() {
    let partner_subject = |name: &str| format!("qry.partner.P-100.{name}");
    let customer_subject = |name: &str| format!("qry.customer.{TENANT}.{name}");
    let get = json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM});
    for name in ["claim.get", "claim.history"] {
        match parse_value(&partner_subject(name), &get).unwrap() {
            Request::Query(Query::ClaimGet { visibility, .. })
            | Request::Query(Query::ClaimHistory { visibility, .. }) => {
                assert_eq!(visibility, Visibility::Partner("P-100".into()))
            }
            other => panic!("{other:?}"),
        }
    }
    match parse_value(
        &partner_subject("claims.list"),
        &json!({"actor": partner("P-100", "admin@p.example"), "status": "submitted"}),
    )
    .unwrap()
    {
        Request::Query(Query::ClaimsList { filter, .. }) => {
            assert_eq!(filter.partner_id.as_deref(), Some("P-100"))
        }
        other => panic!("{other:?}"),
    }
    match parse_value(
        &customer_subject("claims.list"),
        &json!({"actor": customer(), "partner_id": "P-200"}),
    )
    .unwrap()
    {
        Request::Query(Query::ClaimsList { filter, .. }) => {
            assert_eq!(filter.tenant_id.unwrap().to_string(), TENANT);
            assert_eq!(filter.partner_id.as_deref(), Some("P-200"));
        }
        other => panic!("{other:?}"),
    }
    let forbidden = [
        // another partner's subject
        ("qry.partner.P-200.claim.get".to_string(), get.clone()),
        // a filter naming another partner
        (
            partner_subject("claims.list"),
            json!({"actor": partner("P-100", "admin@p.example"), "partner_id": "P-200"}),
        ),
        // other actor types
        (partner_subject("claims.list"), json!({"actor": reviewer()})),
        (
            partner_subject("claim.get"),
            json!({"actor": customer(), "claim_id": CLAIM}),
        ),
        (
            partner_subject("claim.get"),
            json!({"actor": system("crm-sync"), "claim_id": CLAIM}),
        ),
        // a partner user without an allowed role
        (
            partner_subject("claim.get"),
            json!({"actor": {"type": "partner", "partner_id": "P-100", "roles": ["sales_agent"]},
                   "claim_id": CLAIM}),
        ),
        (
            customer_subject("claim.get"),
            json!({"actor": partner("P-100", "admin@p.example"), "claim_id": CLAIM}),
        ),
        (
            customer_subject("claims.list"),
            json!({"actor": reviewer()}),
        ),
        (
            "qry.customer.0f8e4d8c-7a51-4f55-9a3e-5a1c31b0c5e2.claim.get".to_string(),
            json!({"actor": customer(), "claim_id": CLAIM}),
        ),
        (
            customer_subject("claims.list"),
            json!({"actor": customer(), "tenant_id": "0f8e4d8c-7a51-4f55-9a3e-5a1c31b0c5e2"}),
        ),
    ];
    for (subject, body) in forbidden {
        assert_eq!(
            code(&subject, &body),
            ErrorCode::Forbidden,
            "{subject} {body}"
        );
    }
    // Shape comes before permission; unknown scoped names and bad scope ids
    // are INVALID_COMMAND.
    let invalid = [
        (partner_subject("claim.get"), json!({"actor": reviewer()})),
        (
            partner_subject("arbitration.list"),
            json!({"actor": partner("P-100", "admin@p.example")}),
        ),
        (
            customer_subject("claim.history"),
            json!({"actor": customer(), "claim_id": CLAIM}),
        ),
        ("qry.partner.bad id.claim.get".to_string(), get.clone()),
        (
            "qry.customer.not-a-uuid.claim.get".to_string(),
            json!({"actor": customer(), "claim_id": CLAIM}),
        ),
        ("qry.partner.P-100".to_string(), get.clone()),
    ];
    for (subject, body) in invalid {
        assert_eq!(
            code(&subject, &body),
            ErrorCode::InvalidCommand,
            "{subject} {body}"
        );
    }
}

#[test]
fn health_answers_anything_and_the_clock_is_checked() {
    assert_eq!(parse("qry.health", b"").unwrap(), Request::Health);
    assert_eq!(parse("qry.health", b"not json").unwrap(), Request::Health);
    let clock = |body: Value| parse_value("admin.clock", &body);
    assert!(matches!(
        clock(json!({"actor": system("crm-sync"), "now": "2026-11-25T09:00:00+01:00"})).unwrap(),
        Request::Clock { .. }
    ));
    assert_eq!(
        clock(json!({"actor": system("crm-sync"), "now": "yesterday"}))
            .unwrap_err()
            .code,
        ErrorCode::InvalidCommand
    );
    assert_eq!(
        clock(json!({"actor": reviewer(), "now": "2026-11-25T09:00:00Z"}))
            .unwrap_err()
            .code,
        ErrorCode::Forbidden
    );
}

#[test]
fn error_replies_follow_the_contract() {
    let mut rejection = Rejection::from_reasons(vec![
        ErrorCode::SubscriptionNotActive,
        ErrorCode::SubscriptionIsCsp,
    ]);
    rejection.current_version = Some(4);
    let reply = error_reply(&rejection);
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "SUBSCRIPTION_IS_CSP");
    assert_eq!(
        reply["error"]["reasons"],
        json!(["SUBSCRIPTION_IS_CSP", "SUBSCRIPTION_NOT_ACTIVE"])
    );
    assert_eq!(reply["error"]["current_version"], 4);
    assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
}

/// Issue 11 cases 11 and 12: reference lists have named limits, and domain
/// names are DNS names (as written ≤ 256 characters; A-label ≤ 253 octets).
#[test]
fn reference_data_limits_and_domain_names() {
    let refused = |subject: &str, key: &str, value: Value, field: &str| {
        let mut body = valid(subject);
        body[key] = value.clone();
        let rejection = parse_value(subject, &body).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{key}={value}");
        assert!(
            rejection.message.starts_with(field),
            "{key}={value}: {:?} should name {field}",
            rejection.message
        );
    };
    let accepted = |subject: &str, key: &str, value: Value| {
        let mut body = valid(subject);
        body[key] = value.clone();
        parse_value(subject, &body).unwrap_or_else(|e| panic!("{key}={value}: {e:?}"));
    };
    let tenant = "cmd.ref.tenant";
    let submit = "cmd.partner.P-100.submit";
    let long_label = "a".repeat(64);
    for (name, ok) in [
        ("müller-bau.example", true),
        ("MÜLLER-BAU.EXAMPLE.", true),
        ("xn--mller-bau-q9a.example", true),
        ("mu\u{308}ller-bau.example", true),
        ("contoso.com.", true),
        ("contoso.com..", false),
        ("contoso com", false),
        ("con_toso.com", false),
        ("-contoso.com", false),
        ("contoso.com\n", false),
        (long_label.as_str(), false),
    ] {
        if ok {
            accepted(tenant, "domains", json!(["contoso.com", name]));
            accepted(submit, "domain", json!(name));
        } else {
            refused(
                tenant,
                "domains",
                json!(["contoso.com", name]),
                "domains[1]:",
            );
            refused(submit, "domain", json!(name), "domain:");
        }
    }
    let many = |n: usize| -> Vec<String> { (0..n).map(|i| format!("d{i}.example")).collect() };
    accepted(tenant, "domains", json!(many(DOMAINS_PER_TENANT_MAX)));
    let too_many = json!(many(DOMAINS_PER_TENANT_MAX + 1));
    refused(tenant, "domains", too_many, "domains:");
    let mpns = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"mpn_id": format!("{}", 4_400_000 + i), "incentive_enrolled": true}))
            .collect()
    };
    let partner = "cmd.ref.partner";
    accepted(partner, "mpns", json!(mpns(MPNS_PER_PARTNER_MAX)));
    let too_many = json!(mpns(MPNS_PER_PARTNER_MAX + 1));
    refused(partner, "mpns", too_many, "mpns:");
    refused(
        partner,
        "mpns",
        json!([{"mpn_id": "1".repeat(MPN_ID_MAX_CHARS + 1), "incentive_enrolled": true}]),
        "mpns[0].mpn_id:",
    );
}

#[test]
fn prefixes_follow_contract_section_8() {
    for good in ["cpor", "t1", "a", "a_b_9", &"a".repeat(32)] {
        assert!(is_valid_prefix(good), "{good}");
    }
    for bad in [
        "",
        "1a",
        "_a",
        "Cpor",
        "cp-or",
        "cp.or",
        "cp*",
        &"a".repeat(33),
        "é",
    ] {
        assert!(!is_valid_prefix(bad), "{bad}");
    }
}

/// Every body subject with a valid body: commands, queries and the clock.
fn every_body_subject() -> Vec<(&'static str, Value)> {
    let mut all: Vec<(&str, Value)> = COMMAND_SUBJECTS.iter().map(|s| (*s, valid(s))).collect();
    all.extend([
        (
            "qry.claim.get",
            json!({"actor": reviewer(), "claim_id": CLAIM}),
        ),
        (
            "qry.claim.history",
            json!({"actor": reviewer(), "claim_id": CLAIM}),
        ),
        ("qry.claims.list", json!({"actor": reviewer(), "limit": 10})),
        (
            "qry.arbitration.get",
            json!({"actor": reviewer(), "case_id": CLAIM}),
        ),
        ("qry.arbitration.list", json!({"actor": reviewer()})),
        (
            "admin.clock",
            json!({"actor": system("crm-sync"), "now": "2026-11-25T09:00:00Z"}),
        ),
    ]);
    all
}

/// Issue 11 case 8: a key twice in one object, at any depth of any body,
/// is `INVALID_JSON` (serde_json alone keeps the last one).
#[test]
fn duplicate_keys_are_invalid_json_in_every_body() {
    for (subject, body) in every_body_subject() {
        assert!(
            parse_value(subject, &body).is_ok(),
            "{subject}: valid body refused"
        );
        let text = serde_json::to_string(&body).unwrap();
        let open = |text: &str| text.strip_suffix('}').unwrap().to_string();
        // Top level: the issue's case, a second actor of another type.
        let other = if body["actor"]["type"] == "partner" {
            reviewer()
        } else {
            partner("P-100", "admin@p.example")
        };
        let top = format!("{},\"actor\":{other}}}", open(&text));
        // Nested: inside the actor object.
        let actor = serde_json::to_string(&body["actor"]).unwrap();
        let nested_actor = format!("{},\"type\":\"reviewer\"}}", open(&actor));
        let nested = text.replacen(&actor, &nested_actor, 1);
        // The same value twice is still a duplicate.
        let key = body.as_object().unwrap().keys().next().unwrap().clone();
        let same = format!("{},{key:?}:{}}}", open(&text), body[&key]);
        for (case, bad) in [("top", top), ("nested", nested), ("same value", same)] {
            let rejection = parse(subject, bad.as_bytes()).unwrap_err();
            assert_eq!(
                rejection.code,
                ErrorCode::InvalidJson,
                "{subject} {case}: {bad}"
            );
            assert!(
                rejection.message.contains("twice"),
                "{subject} {case}: {}",
                rejection.message
            );
        }
    }
    // Deeper still: inside a proof-of-execution document in a list.
    let subject = "cmd.partner.P-100.submit_poe";
    let text = serde_json::to_string(&valid(subject)).unwrap();
    let bad = text.replacen(
        "\"name\":\"sow.pdf\"",
        "\"name\":\"sow.pdf\",\"name\":\"fake.pdf\"",
        1,
    );
    assert_ne!(bad, text);
    assert_eq!(
        parse(subject, bad.as_bytes()).unwrap_err().code,
        ErrorCode::InvalidJson
    );
    // Equal keys in different objects are no duplicates.
    assert!(parse_value(subject, &valid(subject)).is_ok());
}

/// Issue 11 case 10: ids are RFC 4122 strings in the hyphenated form, any
/// case (stored lowercase); `{…}`, `urn:uuid:…` and 32 bare hex digits are
/// `INVALID_COMMAND` naming the field.
#[test]
fn ids_take_only_the_hyphenated_rfc_4122_form() {
    // (subject, path to the id field, field name in the message)
    let fields: Vec<(&str, Vec<&str>, &str)> = vec![
        ("cmd.review.start", vec!["command_id"], "command_id"),
        ("cmd.review.start", vec!["claim_id"], "claim_id"),
        ("cmd.partner.P-100.submit", vec!["claim_id"], "claim_id"),
        ("cmd.partner.P-100.submit", vec!["tenant_id"], "tenant_id"),
        ("cmd.ref.tenant", vec!["tenant_id"], "tenant_id"),
        (
            "cmd.ref.subscription",
            vec!["subscription_id"],
            "subscription_id",
        ),
        ("cmd.ref.subscription", vec!["tenant_id"], "tenant_id"),
        (
            COMMAND_SUBJECTS[14],
            vec!["actor", "tenant_id"],
            "actor.tenant_id",
        ),
        ("qry.claim.get", vec!["claim_id"], "claim_id"),
        ("qry.claims.list", vec!["tenant_id"], "tenant_id"),
        ("qry.arbitration.get", vec!["case_id"], "case_id"),
    ];
    let bodies: BTreeMap<&str, Value> = every_body_subject().into_iter().collect();
    for (subject, path, field) in fields {
        // The customer's tenant must match the subject's.
        let id = if field == "actor.tenant_id" {
            TENANT
        } else {
            CLAIM
        };
        let upper = id.to_uppercase();
        let mixed: String = id
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let bad = [
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            id.replace('-', ""),
            format!(" {id}"),
            format!("{id}\n"),
        ];
        let with = |id: &str| {
            let mut body = bodies[subject].clone();
            let mut slot = &mut body;
            for key in &path {
                slot = &mut slot[*key];
            }
            *slot = id.into();
            body
        };
        for spelling in [upper.as_str(), mixed.as_str()] {
            let body = with(spelling);
            let request = parse_value(subject, &body)
                .unwrap_or_else(|e| panic!("{subject} {field}={spelling}: {e:?}"));
            // Stored and written back lowercase.
            let debug = format!("{request:?}");
            assert!(
                !debug.contains(spelling) && debug.contains(id),
                "{subject} {field}: {debug}"
            );
        }
        for spelling in &bad {
            let body = with(spelling);
            let rejection = parse_value(subject, &body).unwrap_err();
            assert_eq!(
                rejection.code,
                ErrorCode::InvalidCommand,
                "{subject} {field}={spelling}"
            );
            let (head, last) = field.rsplit_once('.').unwrap_or((field, field));
            assert!(
                rejection.message.starts_with(head) && rejection.message.contains(last),
                "{subject} {field}={spelling}: {}",
                rejection.message
            );
        }
    }
    // In subjects too.
    let body = valid(COMMAND_SUBJECTS[14]);
    for spelling in [
        "{5cc7f541-f9ba-4761-a888-039121ca9485}",
        "5cc7f541f9ba4761a888039121ca9485",
    ] {
        let rejection =
            parse_value(&format!("cmd.customer.{spelling}.decline"), &body).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{spelling}");
        assert!(
            rejection.message.starts_with("subject"),
            "{}",
            rejection.message
        );
    }
    let upper_subject = format!("cmd.customer.{}.decline", TENANT.to_uppercase());
    assert!(parse_value(&upper_subject, &body).is_ok());
}

/// Issue 11 case 10: numbers out of a double's range and nesting past
/// serde_json's limit are `INVALID_JSON`; a number too large for its field
/// is `INVALID_COMMAND` naming the field.
#[test]
fn numbers_out_of_range_and_deep_nesting() {
    let subject = "cmd.review.start";
    let with_raw = |raw: &str| {
        let text = serde_json::to_string(&valid(subject)).unwrap();
        format!(
            "{},\"expected_version\":{raw}}}",
            text.strip_suffix('}').unwrap()
        )
    };
    let deep = format!("{}1{}", "[".repeat(20_000), "]".repeat(20_000));
    for raw in ["1e400", "-1e400", deep.as_str()] {
        let rejection = parse(subject, with_raw(raw).as_bytes()).unwrap_err();
        assert_eq!(
            rejection.code,
            ErrorCode::InvalidJson,
            "{}",
            &raw[..raw.len().min(20)]
        );
    }
    for raw in [
        "18446744073709551616",
        "1e300",
        "-1",
        "1.5",
        "99999999999999999999999",
    ] {
        let rejection = parse(subject, with_raw(raw).as_bytes()).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{raw}");
        assert!(
            rejection.message.starts_with("expected_version"),
            "{raw}: {}",
            rejection.message
        );
    }
    let list = |raw: &str| format!("{{\"actor\":{},\"limit\":{raw}}}", reviewer());
    assert_eq!(
        parse("qry.claims.list", list("1e400").as_bytes())
            .unwrap_err()
            .code,
        ErrorCode::InvalidJson
    );
    let rejection = parse("qry.claims.list", list("18446744073709551616").as_bytes()).unwrap_err();
    assert_eq!(rejection.code, ErrorCode::InvalidCommand);
    assert!(
        rejection.message.starts_with("limit"),
        "{}",
        rejection.message
    );
    // Nesting inside an object the DTO would refuse anyway is still JSON first.
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert_eq!(
        parse(subject, deep_object.as_bytes()).unwrap_err().code,
        ErrorCode::InvalidJson
    );
}

/// Issue 11 case 9: `admin.clock` takes only times the service can write
/// back as RFC 3339: no leap second, years 0000–9999 in UTC.
#[test]
fn the_clock_refuses_times_rfc_3339_cannot_write() {
    let clock = |now: &str| {
        parse_value(
            "admin.clock",
            &json!({"actor": system("crm-sync"), "now": now}),
        )
    };
    for now in [
        "2027-01-01T00:05:60Z",
        "2016-12-31T23:59:60Z",
        "0000-01-01T00:00:00+01:00",
        "9999-12-31T23:00:00-05:00",
    ] {
        let rejection = clock(now).unwrap_err();
        assert_eq!(rejection.code, ErrorCode::InvalidCommand, "{now}");
        assert!(
            rejection.message.starts_with("now:"),
            "{now}: {}",
            rejection.message
        );
    }
    for now in [
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2027-01-01T00:05:59.999Z",
    ] {
        assert!(clock(now).is_ok(), "{now}");
    }
}
