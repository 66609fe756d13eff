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
    let rejection = Rejection::from_reasons(vec![SubscriptionNotActive, TenantUnknown, SubscriptionIsCsp, TenantUnknown]);
    assert_eq!(rejection.code, TenantUnknown);
    assert_eq!(rejection.reasons, [TenantUnknown, SubscriptionIsCsp, SubscriptionNotActive]);
    assert_eq!(rejection.message, TenantUnknown.default_message());
    assert_eq!(rejection.current_version, None);
}
