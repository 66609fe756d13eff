//! Variables of the scenario language (tests/scenarios/README.md):
//!
//! - a whole string `"$name"` is the value of variable `name` (any JSON
//!   value, e.g. one captured from a reply);
//! - `"$uuid:name"` binds `name` to a fresh uuid the first time, and reads
//!   it after;
//! - `"$new"` is a fresh uuid each time;
//! - inside a longer string (`"claim/$c1"`) the same three forms are
//!   replaced by their text;
//! - `"$any"` and `"$null"` are matcher markers and stay as they are;
//! - a name is `[A-Za-z_][A-Za-z0-9_]*`; a `$` not followed by a name is
//!   kept literally; an unbound name is an error.

use std::collections::BTreeMap;

use serde_json::Value;

use super::matcher::{ANY, NULL};

/// The variables of one scenario run.
#[derive(Debug, Default, Clone)]
pub(crate) struct Vars {
    values: BTreeMap<String, Value>,
}

impl Vars {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub(crate) fn set(&mut self, name: &str, value: Value) {
        self.values.insert(name.to_string(), value);
    }

    /// All bindings, for failure messages.
    pub(crate) fn all(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    /// Replaces variables in every string of `value` (object keys are left alone).
    pub(crate) fn substitute(&mut self, value: &Value) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => self.substitute_whole(s)?,
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.substitute(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, v) in map {
                    out.insert(k.clone(), self.substitute(v)?);
                }
                Value::Object(out)
            }
            other => other.clone(),
        })
    }

    /// A JSON string: a whole-string reference keeps the variable's JSON
    /// type; anything else is text substitution.
    fn substitute_whole(&mut self, s: &str) -> Result<Value, String> {
        if s == ANY || s == NULL {
            return Ok(Value::String(s.to_string()));
        }
        if let Some(token) = s.strip_prefix('$') {
            if let Some((reference, len)) = parse_reference(token) {
                if len == token.len() {
                    return self.resolve(&reference);
                }
            }
        }
        self.substitute_str(s).map(Value::String)
    }

    /// Replaces every `$name`, `$uuid:name`, `$new` inside `s` by its text.
    pub(crate) fn substitute_str(&mut self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            match parse_reference(after) {
                Some((Reference::Var(name), len)) if name == "any" || name == "null" => {
                    out.push('$');
                    out.push_str(&after[..len]);
                    rest = &after[len..];
                }
                Some((reference, len)) => {
                    let text = match self.resolve(&reference)? {
                        Value::String(s) => s,
                        v @ (Value::Number(_) | Value::Bool(_)) => v.to_string(),
                        v => {
                            return Err(format!(
                                "variable `{}` is {v}, which cannot be put inside the string {s:?}",
                                reference.name()
                            ))
                        }
                    };
                    out.push_str(&text);
                    rest = &after[len..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn resolve(&mut self, reference: &Reference) -> Result<Value, String> {
        match reference {
            Reference::New => Ok(Value::String(uuid::Uuid::new_v4().to_string())),
            Reference::Uuid(name) => Ok(self
                .values
                .entry(name.clone())
                .or_insert_with(|| Value::String(uuid::Uuid::new_v4().to_string()))
                .clone()),
            Reference::Var(name) => self.values.get(name).cloned().ok_or_else(|| {
                let known: Vec<&str> = self.values.keys().map(String::as_str).collect();
                format!(
                    "variable `${name}` is not bound (bound: {})",
                    known.join(", ")
                )
            }),
        }
    }
}

#[derive(Debug, PartialEq)]
enum Reference {
    New,
    Uuid(String),
    Var(String),
}

impl Reference {
    fn name(&self) -> &str {
        match self {
            Reference::New => "new",
            Reference::Uuid(n) | Reference::Var(n) => n,
        }
    }
}

/// Parses the reference after a `$`: returns it and how many bytes it takes.
fn parse_reference(s: &str) -> Option<(Reference, usize)> {
    if let Some(after) = s.strip_prefix("uuid:") {
        let n = name_len(after);
        if n > 0 {
            return Some((Reference::Uuid(after[..n].to_string()), 5 + n));
        }
    }
    let n = name_len(s);
    if n == 0 {
        return None;
    }
    let name = &s[..n];
    let reference = if name == "new" {
        Reference::New
    } else {
        Reference::Var(name.to_string())
    };
    Some((reference, n))
}

/// Length of the `[A-Za-z_][A-Za-z0-9_]*` name at the start of `s` (0 if none).
fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    match bytes.first() {
        Some(b) if b.is_ascii_alphabetic() || *b == b'_' => {}
        _ => return 0,
    }
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// The value at a dot path (`claim.arbitration_case_id`; a numeric segment
/// indexes a list: `claims.0.claim_id`).
pub(crate) fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    for segment in path.split('.') {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn is_uuid(v: &Value) -> bool {
        v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
    }

    #[test]
    fn whole_string_references() {
        let mut vars = Vars::new();
        vars.set("c1", json!("abc"));
        vars.set("n", json!(7));
        vars.set("obj", json!({"a": 1}));
        assert_eq!(vars.substitute(&json!("$c1")).unwrap(), json!("abc"));
        assert_eq!(vars.substitute(&json!("$n")).unwrap(), json!(7));
        assert_eq!(vars.substitute(&json!("$obj")).unwrap(), json!({"a": 1}));
        assert_eq!(vars.substitute(&json!("$any")).unwrap(), json!("$any"));
        assert_eq!(vars.substitute(&json!("$null")).unwrap(), json!("$null"));
        let err = vars.substitute(&json!("$nope")).unwrap_err();
        assert!(err.contains("`$nope` is not bound"), "{err}");
    }

    #[test]
    fn uuid_binding_and_new() {
        let mut vars = Vars::new();
        let t1 = vars.substitute(&json!("$uuid:t1")).unwrap();
        assert!(is_uuid(&t1));
        assert_eq!(vars.substitute(&json!("$uuid:t1")).unwrap(), t1);
        assert_eq!(vars.substitute(&json!("$t1")).unwrap(), t1);
        let a = vars.substitute(&json!("$new")).unwrap();
        let b = vars.substitute(&json!("$new")).unwrap();
        assert!(is_uuid(&a) && is_uuid(&b));
        assert_ne!(a, b);
        assert!(vars.get("new").is_none());
        // A bound (e.g. captured) value is read by $uuid:name too.
        vars.set("k", json!("fixed"));
        assert_eq!(vars.substitute(&json!("$uuid:k")).unwrap(), json!("fixed"));
    }

    #[test]
    fn inside_strings() {
        let mut vars = Vars::new();
        vars.set("c1", json!("abc"));
        vars.set("v", json!(3));
        assert_eq!(vars.substitute_str("claim/$c1").unwrap(), "claim/abc");
        assert_eq!(vars.substitute_str("$c1.$c1-x").unwrap(), "abc.abc-x");
        assert_eq!(vars.substitute_str("v$v!").unwrap(), "v3!");
        assert_eq!(
            vars.substitute_str("costs $5 or $").unwrap(),
            "costs $5 or $"
        );
        assert_eq!(vars.substitute_str("no vars").unwrap(), "no vars");
        let s = vars
            .substitute_str("cmd.customer.$uuid:t9.decline")
            .unwrap();
        let t9 = vars.get("t9").unwrap().as_str().unwrap().to_string();
        assert_eq!(s, format!("cmd.customer.{t9}.decline"));
        let s = vars.substitute_str("x/$new").unwrap();
        assert!(uuid::Uuid::parse_str(&s[2..]).is_ok(), "{s}");
        assert!(vars.substitute_str("claim/$missing").is_err());
        vars.set("o", json!({}));
        assert!(vars.substitute_str("a/$o").is_err());
        // As a JSON string value, a reference with more text is text.
        assert_eq!(
            vars.substitute(&json!("claim/$c1")).unwrap(),
            json!("claim/abc")
        );
        assert_eq!(vars.substitute(&json!("$v$v")).unwrap(), json!("33"));
    }

    #[test]
    fn nested_values() {
        let mut vars = Vars::new();
        vars.set("t1", json!("T"));
        let body = json!({
            "tenant_id": "$t1",
            "ids": ["$t1", "x$t1", 1, null, true],
            "nested": {"$t1": "$uuid:s"}
        });
        let out = vars.substitute(&body).unwrap();
        assert_eq!(out["tenant_id"], json!("T"));
        assert_eq!(out["ids"], json!(["T", "xT", 1, null, true]));
        assert!(out["nested"].get("$t1").is_some(), "keys are left alone");
        assert_eq!(out["nested"]["$t1"], vars.get("s").unwrap().clone());
    }

    #[test]
    fn dot_paths() {
        let v = json!({"claim_id": "a", "claim": {"arbitration_case_id": "c"}, "claims": [{"claim_id": "x"}]});
        assert_eq!(get_path(&v, "claim_id"), Some(&json!("a")));
        assert_eq!(get_path(&v, "claim.arbitration_case_id"), Some(&json!("c")));
        assert_eq!(get_path(&v, "claims.0.claim_id"), Some(&json!("x")));
        assert_eq!(get_path(&v, "claims.1.claim_id"), None);
        assert_eq!(get_path(&v, "claim.nope"), None);
        assert_eq!(get_path(&v, "claim_id.x"), None);
    }
}
