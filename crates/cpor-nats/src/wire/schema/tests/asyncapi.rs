//! The AsyncAPI document against the subjects the parser takes and the
//! schema files.

use super::examples::*;
use super::*;

fn asyncapi() -> Value {
    let path = docs_dir().join("asyncapi.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("docs/asyncapi.yaml does not parse: {e}"))
}

/// Follows a `#/…` reference inside the AsyncAPI document.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => {
            let target = document
                .pointer(pointer)
                .unwrap_or_else(|| panic!("unresolved $ref #{pointer}"));
            resolve(document, target)
        }
        None => value,
    }
}

/// The schema files a message's payload refers to.
fn payload_files(payload: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_refs(payload, &mut |r| {
        if let Some(file) = r.strip_prefix("./schemas/") {
            out.insert(file.split('#').next().unwrap().to_string());
        }
    });
    out
}

fn collect_refs(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                match (key.as_str(), child) {
                    ("$ref", Value::String(reference)) => f(reference),
                    _ => collect_refs(child, f),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, f)),
        _ => {}
    }
}

/// Whether the parser knows the subject (it may still refuse the body).
fn parser_knows(subject: &str) -> bool {
    match parse(subject, b"{}") {
        Ok(_) => true,
        Err(r) => !r.message.starts_with("unknown "),
    }
}

#[test]
fn asyncapi_has_a_channel_for_every_subject() {
    let document = asyncapi();
    assert_eq!(document["asyncapi"], "3.0.0");
    let channels = document["channels"].as_object().expect("channels");
    let by_address: BTreeMap<&str, &Value> = channels
        .values()
        .filter_map(|c| Some((c.get("address")?.as_str()?, c)))
        .collect();
    let operations: Vec<&Value> = document["operations"]
        .as_object()
        .expect("operations")
        .values()
        .collect();
    let documented: BTreeSet<String> = request_docs()
        .iter()
        .map(|d| d.subject.to_string())
        .collect();

    for doc in request_docs() {
        assert!(
            parser_knows(&concrete(doc.subject)),
            "the parser does not take {}",
            doc.subject
        );
        let address = format!("{{prefix}}.{}", doc.subject);
        let channel = by_address
            .get(address.as_str())
            .unwrap_or_else(|| panic!("no channel for {address}"));
        for parameter in address.split('.').filter(|p| p.starts_with('{')) {
            let name = parameter.trim_matches(|c| c == '{' || c == '}');
            assert!(
                channel["parameters"].get(name).is_some(),
                "{address}: parameter {name} is not described"
            );
        }
        let messages: Vec<&Value> = channel["messages"]
            .as_object()
            .expect("messages")
            .values()
            .map(|m| resolve(&document, m))
            .collect();
        let files: BTreeSet<String> = messages
            .iter()
            .flat_map(|m| payload_files(&m["payload"]))
            .collect();
        assert_eq!(
            files,
            BTreeSet::from([request_file(doc.subject)]),
            "{address}: request payload"
        );
        // A receive operation on it that replies with its reply and the error reply.
        let operation = operations
            .iter()
            .find(|op| resolve(&document, &op["channel"]).get("address") == Some(&json!(address)))
            .unwrap_or_else(|| panic!("no operation on {address}"));
        assert_eq!(operation["action"], "receive", "{address}");
        let replies: BTreeSet<String> = operation["reply"]["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{address}: the operation has no reply messages"))
            .iter()
            .flat_map(|m| payload_files(&resolve(&document, m)["payload"]))
            .collect();
        let expected = BTreeSet::from([reply_file(doc.subject), "replies/error.json".to_string()]);
        assert_eq!(replies, expected, "{address}: reply payloads");
    }

    // Every request channel is a subject the parser takes, and documented.
    for address in by_address.keys() {
        let tail = address
            .strip_prefix("{prefix}.")
            .unwrap_or_else(|| panic!("{address} lacks {{prefix}}"));
        if ["cmd.", "qry.", "admin."]
            .iter()
            .any(|p| tail.starts_with(p))
        {
            assert!(
                documented.contains(tail),
                "{address} has a channel but no request schema"
            );
        }
    }

    // No subject the parser takes is left out: probe likely names.
    let mut names: BTreeSet<String> = documented
        .iter()
        .map(|s| s.rsplit('.').next().unwrap().to_string())
        .collect();
    names.extend(
        [
            "get",
            "list",
            "history",
            "status",
            "update",
            "delete",
            "cancel",
            "claim",
            "claims",
            "case",
            "arbitration",
        ]
        .map(String::from),
    );
    for family in [
        "cmd.ref.",
        "cmd.partner.P-100.",
        "cmd.review.",
        "cmd.customer.5cc7f541-f9ba-4761-a888-039121ca9485.",
        "cmd.",
        "qry.",
        "qry.claim.",
        "qry.claims.",
        "qry.arbitration.",
        "qry.partner.P-100.",
        "qry.partner.P-100.claim.",
        "qry.partner.P-100.claims.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.claim.",
        "qry.customer.5cc7f541-f9ba-4761-a888-039121ca9485.claims.",
        "admin.",
    ] {
        for name in &names {
            let subject = format!("{family}{name}");
            if parser_knows(&subject) {
                assert!(
                    request_doc(&subject).is_some(),
                    "the parser takes {subject}, which has no channel"
                );
            }
        }
    }

    // The published channels.
    let files_of = |address: &str| -> BTreeSet<String> {
        by_address
            .get(address)
            .unwrap_or_else(|| panic!("no channel {address}"))["messages"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|m| payload_files(&resolve(&document, m)["payload"]))
            .collect()
    };
    let event_files = files_of("{prefix}.evt.{aggregate}.{id}.{event}");
    assert!(event_files.contains("cloudevent.json"));
    for (data, _) in event_samples() {
        let file = format!("events/{}.json", event_key(&data));
        assert!(
            event_files.contains(&file),
            "no message on the events channel uses {file}"
        );
    }
    let status_files = files_of("{prefix}.status.claim.{partner_id}.{claim_id}");
    assert_eq!(
        status_files,
        BTreeSet::from(["claim-view.json".to_string()])
    );
    for address in [
        "{prefix}.evt.{aggregate}.{id}.{event}",
        "{prefix}.status.claim.{partner_id}.{claim_id}",
    ] {
        let channel = by_address[address];
        assert!(
            operations
                .iter()
                .any(|op| resolve(&document, &op["channel"]) == channel && op["action"] == "send"),
            "no send operation on {address}"
        );
    }
}

#[test]
fn asyncapi_references_resolve() {
    let document = asyncapi();
    let mut references = Vec::new();
    collect_refs(&document, &mut |r| references.push(r.to_string()));
    assert!(references.len() > 50);
    let used: BTreeSet<String> = references
        .iter()
        .filter_map(|r| r.strip_prefix("./schemas/"))
        .map(|r| r.split('#').next().unwrap().to_string())
        .collect();
    for reference in &references {
        if let Some(pointer) = reference.strip_prefix('#') {
            assert!(
                document.pointer(pointer).is_some(),
                "unresolved $ref {reference}"
            );
        } else {
            let (file, fragment) = reference.split_once('#').unwrap_or((reference, ""));
            let path = docs_dir().join(file);
            assert!(
                file.starts_with("./schemas/") && path.is_file(),
                "$ref {reference}: no such file docs/{file}"
            );
            if !fragment.is_empty() {
                let target: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                assert!(
                    target.pointer(fragment).is_some(),
                    "unresolved $ref {reference}"
                );
            }
        }
    }
    // Every schema file is reachable from the document.
    for file in generate().keys() {
        assert!(
            used.contains(file),
            "docs/asyncapi.yaml does not refer to schemas/{file}"
        );
    }
}

#[test]
fn asyncapi_examples_are_valid() {
    let document = asyncapi();
    let messages = document["components"]["messages"]
        .as_object()
        .expect("components.messages");
    let mut checked = 0;
    for (name, message) in messages {
        let examples = message["examples"]
            .as_array()
            .unwrap_or_else(|| panic!("message {name} has no examples"));
        assert!(!examples.is_empty(), "message {name} has no examples");
        let payload = resolve(&document, &message["payload"]);
        let validator = validator(payload);
        for example in examples {
            let instance = &example["payload"];
            let found = errors(&validator, instance);
            assert!(
                found.is_empty(),
                "message {name}: example {} is invalid:\n{}",
                example["name"],
                found.join("\n")
            );
            // The payload's own schema, or the first of `allOf` (the
            // CloudEvent envelope, which checks `data` by `type`).
            let primary = payload
                .get("$ref")
                .or_else(|| payload.pointer("/allOf/0/$ref"));
            let file = primary
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("./schemas/"));
            let file =
                file.unwrap_or_else(|| panic!("message {name}: the payload names no schema file"));
            let schema = schema_file(file);
            let extra = undocumented(&schema, &schema, instance, "");
            assert!(
                extra.is_empty(),
                "message {name}: {file} does not document {extra:?}"
            );
            checked += 1;
        }
    }
    // Request examples are ones the parser accepts.
    for (address, channel) in document["channels"].as_object().unwrap() {
        let Some(tail) = channel["address"]
            .as_str()
            .and_then(|a| a.strip_prefix("{prefix}."))
        else {
            continue;
        };
        let Some(doc) = request_doc(tail) else {
            continue;
        };
        for message in channel["messages"].as_object().unwrap().values() {
            for example in resolve(&document, message)["examples"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let subject = concrete(doc.subject);
                let parsed = parse(&subject, example["payload"].to_string().as_bytes());
                assert!(
                    parsed.is_ok(),
                    "{address}: example {} is refused: {:?}",
                    example["name"],
                    parsed.err()
                );
            }
        }
    }
    assert!(checked > 40, "{checked} examples");
}
