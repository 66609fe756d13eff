//! Contract §3, "Error codes, in precedence order": the order `reasons` is
//! sorted in and the spelling of every code.

use crate::error::{ErrorCode, Rejection};

/// The contract's table, top to bottom.
const CONTRACT_ORDER: [&str; 25] = [
    "PAYLOAD_TOO_LARGE",
    "INVALID_JSON",
    "INVALID_COMMAND",
    "FORBIDDEN",
    "IDEMPOTENCY_CONFLICT",
    "CLAIM_NOT_FOUND",
    "CLAIM_EXISTS",
    "VERSION_CONFLICT",
    "INVALID_TRANSITION",
    "DISPUTE_WINDOW_CLOSED",
    "TENANT_UNKNOWN",
    "DOMAIN_TENANT_MISMATCH",
    "ACTIVITY_NOT_ALLOWED",
    "PARTNER_UNKNOWN",
    "MPN_NOT_OWNED",
    "NOT_A_SUBSCRIPTION_ID",
    "SUBSCRIPTION_UNKNOWN",
    "PRODUCT_NOT_ON_TENANT",
    "SUBSCRIPTION_NOT_DYNAMICS",
    "SUBSCRIPTION_IS_CSP",
    "SUBSCRIPTION_NOT_PROVISIONED",
    "SUBSCRIPTION_NOT_ACTIVE",
    "SUBSCRIPTION_ALREADY_CLAIMED",
    "CLOCK_NOT_MANUAL",
    "UNAVAILABLE",
];

fn parse(code: &str) -> ErrorCode {
    serde_json::from_value(serde_json::Value::String(code.to_string()))
        .unwrap_or_else(|e| panic!("{code} is not an ErrorCode: {e}"))
}

#[test]
fn codes_sort_in_the_contracts_precedence_order_and_spell_as_it_does() {
    let codes: Vec<ErrorCode> = CONTRACT_ORDER.iter().map(|c| parse(c)).collect();
    for (code, text) in codes.iter().zip(CONTRACT_ORDER) {
        assert_eq!(code.as_str(), text);
        assert_eq!(code.to_string(), text);
        assert_eq!(serde_json::to_value(code).unwrap(), text);
        assert!(!code.default_message().is_empty());
    }
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(sorted, codes, "declaration order is precedence order");
}

#[test]
fn a_rejection_with_several_reasons_sorts_them_and_names_the_first() {
    use ErrorCode::*;
    let rejection = Rejection::from_reasons(vec![
        SubscriptionNotActive,
        TenantUnknown,
        SubscriptionIsCsp,
        TenantUnknown,
    ]);
    assert_eq!(rejection.code, TenantUnknown);
    assert_eq!(
        rejection.reasons,
        [TenantUnknown, SubscriptionIsCsp, SubscriptionNotActive]
    );
    assert_eq!(rejection.message, TenantUnknown.default_message());
    assert_eq!(rejection.current_version, None);
}

/// Every code `decide`/`access::authorize` can return is exercised by name in some
/// test module (the table-driven tests use the bare variant names).
#[test]
fn every_code_the_domain_produces_is_tested() {
    let domain = [include_str!("../decide.rs"), include_str!("../access.rs")].concat();
    let tests = [
        include_str!("access.rs"),
        include_str!("authorize.rs"),
        include_str!("submit.rs"),
        include_str!("claim_errors.rs"),
        include_str!("review.rs"),
        include_str!("disputes.rs"),
        include_str!("arbitration.rs"),
        include_str!("reference.rs"),
    ]
    .concat();
    let mut produced = Vec::new();
    for code in CONTRACT_ORDER.iter().map(|c| parse(c)) {
        let variant = format!("{code:?}");
        if domain.contains(&format!("ErrorCode::{variant}")) {
            produced.push(variant.clone());
            let word = |text: &str| {
                text.match_indices(&variant).any(|(i, _)| {
                    let next = text[i + variant.len()..].chars().next();
                    !next.is_some_and(char::is_alphanumeric)
                })
            };
            assert!(
                word(&tests),
                "{variant} is produced by decide.rs or access.rs but no test names it"
            );
        }
    }
    // All but PAYLOAD_TOO_LARGE, INVALID_JSON, IDEMPOTENCY_CONFLICT,
    // CLOCK_NOT_MANUAL and UNAVAILABLE, which the wire and the engine give.
    assert_eq!(produced.len(), 20, "{produced:?}");
}

/// The gate codes (CLAIM_NOT_FOUND, CLAIM_EXISTS, VERSION_CONFLICT,
/// INVALID_TRANSITION, DISPUTE_WINDOW_CLOSED) stop the check: a command
/// that fails one is not checked further, so its `reasons` hold that code
/// alone. The contract's "every rule the command breaks" is read as every
/// rule of the stage that refused it; the rules past a gate are about a
/// claim the actor cannot see, a claim id that is taken, or a state the
/// actor has not read, and listing them would mislead.
#[test]
fn gate_codes_stand_alone() {
    use super::harness::*;
    use crate::command::{Command, SubmitClaim};
    use crate::types::ClaimStatus;
    use ErrorCode::*;
    Given::standard()
        .history(|w| {
            w.sales("P-100", "c1");
        })
        .when(
            partner("P-100"),
            Command::Submit(SubmitClaim {
                tenant_id: uid("t9"),
                ..sales_claim("c1", "P-100")
            }),
        )
        .then_reasons(&[ClaimExists]);
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Approved);
        })
        .when_versioned(reviewer(), cmd::approve(uid("c1")), Some(1))
        .then_reasons(&[VersionConflict]);
    Given::standard()
        .history(|w| {
            w.sales_in("P-100", "c1", ClaimStatus::Rejected);
            w.sales("P-100", "c2");
            w.advance(chrono::Duration::days(31));
        })
        .when(partner("P-100"), cmd::dispute(uid("c1")))
        .then_reasons(&[DisputeWindowClosed]);
}
