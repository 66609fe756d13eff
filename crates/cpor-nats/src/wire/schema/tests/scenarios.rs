//! The scenario files' bodies and replies against the schemas.

use super::examples::*;
use super::*;

/// The scenario files' request bodies (after binding their `$variables`
/// to uuids): each one the parser accepts is valid, each one it refuses for
/// shape is invalid.
#[test]
fn scenario_bodies_and_schemas_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut steps = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let scenario: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            collect_sends(&scenario, &mut steps);
        }
    }
    let mut names = BTreeMap::new();
    let (mut valid, mut invalid, mut unknown) = (0, 0, 0);
    for step in steps {
        let subject = bind(&step["send"], &mut names)
            .as_str()
            .unwrap()
            .to_string();
        let mut body = bind(&step["body"], &mut names);
        if subject.starts_with("cmd.") && body.get("command_id").is_none() {
            body["command_id"] = json!(Uuid::new_v4());
        }
        if request_doc(&subject).is_none() {
            let refused = shape_refused(&subject, &body).unwrap_or_default();
            assert!(
                refused.starts_with("unknown "),
                "{subject} is taken by the parser but has no schema"
            );
            unknown += 1;
        } else if assert_agree(&subject, &body) {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 20 && invalid > 3 && unknown > 0,
        "{valid} valid, {invalid} invalid, {unknown} unknown"
    );
}

fn collect_sends(value: &Value, out: &mut Vec<Value>) {
    match value {
        Value::Object(object) if object.contains_key("send") && object.contains_key("body") => {
            out.push(value.clone())
        }
        Value::Object(object) => object.values().for_each(|v| collect_sends(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_sends(v, out)),
        _ => {}
    }
}

/// `"$name"`, `"$uuid:name"` and `"$new"`, whole or inside strings, become
/// uuids (every scenario variable is one).
fn bind(value: &Value, names: &mut BTreeMap<String, String>) -> Value {
    match value {
        Value::String(text) => {
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                let tail = &rest[at + 1..];
                let tail = tail.strip_prefix("uuid:").unwrap_or(tail);
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                let id = if name == "new" {
                    Uuid::new_v4().to_string()
                } else {
                    names
                        .entry(name.to_string())
                        .or_insert_with(|| Uuid::new_v4().to_string())
                        .clone()
                };
                out.push_str(&id);
                rest = &tail[end..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| bind(v, names)).collect()),
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), bind(v, names)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The scenarios' expected replies name only documented fields.
#[test]
fn scenario_replies_name_only_documented_fields() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/scenarios");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let scenario: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut steps = Vec::new();
        collect_expects(&scenario, &mut steps);
        for (kind, expect) in steps {
            let file = match kind.as_str() {
                "status" => "claim-view.json".to_string(),
                _ if expect["ok"] == json!(false) => "replies/error.json".to_string(),
                subject => match request_doc(subject) {
                    Some(doc) => reply_file(doc.subject),
                    None => continue,
                },
            };
            let schema = schema_file(&file);
            let extra = undocumented(&schema, &schema, &expect, "");
            assert!(
                extra.is_empty(),
                "{}: {file} does not document {extra:?}",
                path.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked}");
}

fn collect_expects(value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(object) if object.contains_key("expect") => {
            let kind = match (object.get("send"), object.get("status")) {
                (Some(Value::String(send)), _) => concrete_scenario_subject(send),
                (_, Some(_)) => "status".to_string(),
                _ => return,
            };
            out.push((kind, object["expect"].clone()));
        }
        Value::Object(object) => object.values().for_each(|v| collect_expects(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_expects(v, out)),
        _ => {}
    }
}

fn concrete_scenario_subject(send: &str) -> String {
    bind(&json!(send), &mut BTreeMap::new())
        .as_str()
        .unwrap()
        .to_string()
}
