//! The request schemas against the parser: field by field and limit by
//! limit.

use super::examples::*;
use super::*;

#[test]
fn request_schemas_agree_with_the_parser_field_by_field() {
    for doc in request_docs() {
        let subject = concrete(doc.subject);
        let file = request_file(doc.subject);
        let schema = schema_file(&file);
        let properties: BTreeSet<&String> =
            schema["properties"].as_object().unwrap().keys().collect();
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let (full, minimal) = full_and_minimal(doc.subject);
        assert_eq!(
            full.as_object().unwrap().keys().collect::<BTreeSet<_>>(),
            properties,
            "{file}: the full example must use every property"
        );
        assert_eq!(
            minimal
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
            required,
            "{file}: the minimal example must use exactly the required properties"
        );
        for body in [&full, &minimal] {
            assert!(
                assert_agree(&subject, body),
                "{subject}: {body} must be accepted"
            );
        }
        if doc.subject == "qry.health" {
            continue; // the service does not read the body at all
        }
        // Each required field is required by the parser too.
        for name in &required {
            let mut body = minimal.clone();
            body.as_object_mut().unwrap().remove(*name);
            assert!(!assert_agree(&subject, &body), "{subject} without {name}");
        }
        // A value of the wrong type, in every field.
        for name in &properties {
            let mut body = full.clone();
            body[name.as_str()] = json!({"unexpected": [1]});
            assert!(
                !assert_agree(&subject, &body),
                "{subject} with an object as {name}"
            );
        }
        // An unknown field.
        let mut body = full.clone();
        body["colour"] = json!("blue");
        assert!(
            !assert_agree(&subject, &body),
            "{subject} with an unknown field"
        );
        let mut body = full.clone();
        body["actor"]["colour"] = json!("blue");
        assert!(
            !assert_agree(&subject, &body),
            "{subject} with an unknown actor field"
        );
    }
}

#[test]
fn request_schemas_carry_the_parser_limits() {
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |path: &'static str, value: Value| -> Edit {
        Box::new(move |body: &mut Value| {
            *body.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value.clone()
        })
    };
    let add = |key: &'static str, value: Value| -> Edit {
        Box::new(move |body: &mut Value| body[key] = value.clone())
    };
    let text = |n: usize| json!("é".repeat(n));
    let cases: Vec<(&str, Edit, bool)> = vec![
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", text(TEXT_MAX_CHARS)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.comment",
            set("/text", json!("")),
            false,
        ),
        ("cmd.review.request_poe", set("/text", json!("")), false),
        ("cmd.review.approve", set("/text", json!("")), true),
        (
            "cmd.review.approve",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/note", text(TEXT_MAX_CHARS)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/note", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX)),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution", json!([])),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution/0/sha256", json!("abc")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/proof_of_execution/0/name", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set(
                "/proof_of_execution/0/uri",
                json!("u".repeat(URI_MAX_CHARS + 1)),
            ),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            Box::new(|body: &mut Value| body["proof_of_execution"][0]["colour"] = json!("blue")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/mpn_id", json!("4".repeat(MPN_ID_MAX_CHARS + 1))),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/domain", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/product", json!("p".repeat(NAME_MAX_CHARS + 1))),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/activity", json!("presale")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/solution_area", json!("dynamics")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/claim_id", json!("not-a-uuid")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/command_id", json!("42")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/subscription_id", json!("not a uuid, checked later")),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/solution_area", json!("microsoft_365")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            Box::new(|body: &mut Value| {
                body["solution_area"] = json!("microsoft_365");
                body["subscription_id"] = Value::Null;
            }),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/roles", json!(["incentives_admin", ""])),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/roles", json!(["any_role_string"])),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            set("/actor/type", json!("robot")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            add(
                "correlation_id",
                json!("c".repeat(CORRELATION_ID_MAX_CHARS)),
            ),
            true,
        ),
        (
            "cmd.partner.{partner_id}.submit",
            add(
                "correlation_id",
                json!("c".repeat(CORRELATION_ID_MAX_CHARS + 1)),
            ),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit_poe",
            set("/proof_of_execution", json!([])),
            false,
        ),
        (
            "cmd.partner.{partner_id}.submit_poe",
            set("/proof_of_execution", poe_documents(POE_DOCUMENTS_MAX + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.withdraw",
            set("/reason", json!("")),
            true,
        ),
        (
            "cmd.partner.{partner_id}.withdraw",
            set("/reason", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.disassociate",
            set("/reason", json!("")),
            false,
        ),
        (
            "cmd.partner.{partner_id}.disassociate",
            set("/expected_version", json!(-1)),
            false,
        ),
        (
            "cmd.partner.{partner_id}.dispute",
            set("/text", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("no proof")),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("A".repeat(64))),
            true,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("A".repeat(65))),
            false,
        ),
        (
            "cmd.review.reject",
            set("/reason", json!("1ST_REASON")),
            false,
        ),
        ("cmd.ref.partner", set("/partner_id", json!("P 100")), false),
        (
            "cmd.ref.partner",
            set("/partner_id", json!("p".repeat(64))),
            true,
        ),
        (
            "cmd.ref.partner",
            set("/partner_id", json!("p".repeat(65))),
            false,
        ),
        ("cmd.ref.partner", set("/mpns/0/mpn_id", json!("")), false),
        ("cmd.ref.tenant", set("/domains", json!([])), false),
        (
            "cmd.ref.tenant",
            set(
                "/domains",
                json!(vec!["contoso.com"; DOMAINS_PER_TENANT_MAX + 1]),
            ),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/channel", json!("retail")),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/state", json!("suspended")),
            false,
        ),
        (
            "cmd.ref.subscription",
            set("/subscription_id", json!("not-a-uuid")),
            false,
        ),
        (
            "cmd.customer.{tenant_id}.decline",
            set("/reason", text(TEXT_MAX_CHARS + 1)),
            false,
        ),
        ("qry.claims.list", set("/limit", json!(0)), false),
        (
            "qry.claims.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX)),
            true,
        ),
        (
            "qry.claims.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.claims.list", set("/status", json!("bogus")), false),
        ("qry.claim.history", set("/limit", json!(0)), false),
        (
            "qry.claim.history",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.claim.get", set("/comments_limit", json!(1)), true),
        (
            "qry.claim.get",
            set("/comments_limit", json!(cpor_log::LIST_LIMIT_MAX + 1)),
            false,
        ),
        ("qry.arbitration.list", set("/limit", json!(0)), false),
        (
            "qry.arbitration.list",
            set("/limit", json!(cpor_log::LIST_LIMIT_MAX)),
            true,
        ),
        (
            "qry.claims.list",
            set("/partner_id", json!("not an id")),
            false,
        ),
        (
            "qry.arbitration.list",
            set("/status", json!("pending")),
            false,
        ),
        (
            "qry.arbitration.list",
            set("/status", json!("closed")),
            true,
        ),
        ("admin.clock", set("/now", json!("yesterday")), false),
        (
            "admin.clock",
            set("/now", json!("2026-11-25T10:00:00+01:00")),
            true,
        ),
    ];
    for (subject, edit, valid) in cases {
        let (mut body, _) = full_and_minimal(subject);
        edit(&mut body);
        assert_eq!(
            assert_agree(&concrete(subject), &body),
            valid,
            "{subject}: {body}"
        );
    }
}
