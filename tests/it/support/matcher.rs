//! `expect` matching of the scenario language (tests/scenarios/README.md):
//!
//! - objects: every key `expect` names must be in the actual value with a
//!   matching value (other keys are ignored), recursively;
//! - lists: same length, element by element, in order;
//! - `"$any"`: present and not null;
//! - `"$null"`: null or absent;
//! - literal `null`: present and null;
//! - strings that are both RFC 3339 times match when they are the same
//!   instant, whatever the offsets;
//! - numbers match by value (`2` matches `2.0`); everything else by equality.
//!
//! Variables must already be substituted (see `vars`).

use chrono::{DateTime, FixedOffset};
use serde_json::Value;

/// The marker matching any present non-null value.
pub(crate) const ANY: &str = "$any";
/// The marker matching null or an absent key.
pub(crate) const NULL: &str = "$null";

/// `Ok(())` when `actual` matches `expected`; otherwise the path of the first
/// mismatch (`$.claim.status`, `$.events[1]`) and why.
pub(crate) fn matches(expected: &Value, actual: &Value) -> Result<(), String> {
    match_at("$", expected, Some(actual))
}

fn match_at(path: &str, expected: &Value, actual: Option<&Value>) -> Result<(), String> {
    if let Value::String(s) = expected {
        if s == NULL {
            return match actual {
                None | Some(Value::Null) => Ok(()),
                Some(a) => Err(format!("{path}: expected null or absent, got {a}")),
            };
        }
        if s == ANY {
            return match actual {
                None => Err(format!("{path}: missing (expected any non-null value)")),
                Some(Value::Null) => Err(format!("{path}: is null (expected any non-null value)")),
                Some(_) => Ok(()),
            };
        }
    }
    let Some(actual) = actual else {
        return Err(format!("{path}: missing (expected {expected})"));
    };
    match (expected, actual) {
        (Value::Null, Value::Null) => Ok(()),
        (Value::Object(exp), Value::Object(act)) => {
            for (key, e) in exp {
                match_at(&format!("{path}.{key}"), e, act.get(key))?;
            }
            Ok(())
        }
        (Value::Array(exp), Value::Array(act)) => {
            if exp.len() != act.len() {
                return Err(format!(
                    "{path}: expected a list of {} element(s), got {}: {actual}",
                    exp.len(),
                    act.len()
                ));
            }
            for (i, (e, a)) in exp.iter().zip(act).enumerate() {
                match_at(&format!("{path}[{i}]"), e, Some(a))?;
            }
            Ok(())
        }
        (Value::String(e), Value::String(a)) => {
            if e == a || same_instant(e, a) {
                Ok(())
            } else {
                Err(format!("{path}: expected {expected}, got {actual}"))
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let equal = match (e.as_i64(), a.as_i64(), e.as_u64(), a.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => e.as_f64() == a.as_f64(),
            };
            if equal {
                Ok(())
            } else {
                Err(format!("{path}: expected {expected}, got {actual}"))
            }
        }
        (Value::Bool(e), Value::Bool(a)) if e == a => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Both strings are RFC 3339 times of the same instant.
pub(crate) fn same_instant(a: &str, b: &str) -> bool {
    match (rfc3339(a), rfc3339(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(e: Value, a: Value) {
        if let Err(m) = matches(&e, &a) {
            panic!("expected {e} to match {a}: {m}");
        }
    }

    fn fails(e: Value, a: Value) -> String {
        matches(&e, &a).expect_err(&format!("expected {e} NOT to match {a}"))
    }

    #[test]
    fn objects_are_recursive_subsets() {
        ok(json!({"ok": true}), json!({"ok": true, "claim_id": "x"}));
        ok(
            json!({"ok": false, "error": {"code": "FORBIDDEN"}}),
            json!({"ok": false, "error": {"code": "FORBIDDEN", "message": "no", "reasons": ["FORBIDDEN"]}}),
        );
        ok(json!({}), json!({"anything": 1}));
        let m = fails(
            json!({"error": {"code": "FORBIDDEN"}}),
            json!({"error": {"code": "INVALID_COMMAND"}}),
        );
        assert!(m.contains("$.error.code"), "{m}");
        let m = fails(json!({"ok": true}), json!({"okay": true}));
        assert!(m.contains("$.ok: missing"), "{m}");
        fails(json!({"ok": true}), json!([true]));
        fails(json!({"a": {}}), json!({"a": []}));
    }

    #[test]
    fn lists_match_element_wise_with_same_length() {
        ok(json!([]), json!([]));
        ok(json!(["a", "b"]), json!(["a", "b"]));
        ok(
            json!([{"claim_id": "x"}]),
            json!([{"claim_id": "x", "status": "submitted"}]),
        );
        let m = fails(json!(["a"]), json!(["a", "b"]));
        assert!(m.contains("1 element(s), got 2"), "{m}");
        fails(json!([]), json!(["a"]));
        fails(json!(["b", "a"]), json!(["a", "b"]));
        let m = fails(
            json!({"claims": [{"claim_id": "x"}]}),
            json!({"claims": [{"claim_id": "y"}]}),
        );
        assert!(m.contains("$.claims[0].claim_id"), "{m}");
    }

    #[test]
    fn any_null_and_literal_null() {
        ok(json!({"id": "$any"}), json!({"id": "abc"}));
        ok(json!({"id": "$any"}), json!({"id": 0}));
        ok(json!({"id": "$any"}), json!({"id": false}));
        ok(json!({"id": "$any"}), json!({"id": []}));
        fails(json!({"id": "$any"}), json!({"id": null}));
        fails(json!({"id": "$any"}), json!({}));

        ok(json!({"due": "$null"}), json!({"due": null}));
        ok(json!({"due": "$null"}), json!({}));
        fails(
            json!({"due": "$null"}),
            json!({"due": "2026-12-03T00:00:00Z"}),
        );
        fails(json!({"due": "$null"}), json!({"due": false}));

        ok(json!({"due": null}), json!({"due": null}));
        let m = fails(json!({"due": null}), json!({}));
        assert!(m.contains("missing"), "{m}");
        fails(json!({"due": null}), json!({"due": 0}));
        fails(json!({"due": null}), json!({"due": "null"}));

        ok(json!(["$any", "$null"]), json!(["x", null]));
        fails(json!(["$any"]), json!([null]));
        ok(json!(null), json!(null));
        fails(json!(null), json!({}));
    }

    #[test]
    fn times_match_as_instants() {
        ok(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03T00:00:00Z"}),
        );
        ok(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03T01:00:00+01:00"}),
        );
        ok(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03T00:00:00.000Z"}),
        );
        ok(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-02T19:00:00-05:00"}),
        );
        ok(
            json!({"t": "2026-12-03T00:00:00+00:00"}),
            json!({"t": "2026-12-03T00:00:00Z"}),
        );
        fails(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03T00:00:01Z"}),
        );
        fails(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03T00:00:00+01:00"}),
        );
        fails(
            json!({"t": "2026-12-03T00:00:00Z"}),
            json!({"t": "2026-12-03"}),
        );
        // Plain strings stay exact.
        fails(json!("usage"), json!("Usage"));
    }

    #[test]
    fn scalars() {
        ok(json!({"version": 2}), json!({"version": 2}));
        ok(json!({"version": 2}), json!({"version": 2.0}));
        fails(json!({"version": 2}), json!({"version": 3}));
        fails(json!({"version": 2}), json!({"version": "2"}));
        ok(json!(true), json!(true));
        fails(json!(true), json!(false));
        fails(json!(false), json!(null));
        ok(json!(u64::MAX), json!(u64::MAX));
        fails(json!(-1), json!(u64::MAX));
    }
}
