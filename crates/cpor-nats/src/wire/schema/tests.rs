//! The schemas against the code: up to date, valid draft 2020-12, and (in the
//! sub-modules) in agreement with the parser, the scenario files, the replies,
//! events and views the code builds, and the AsyncAPI document.

mod asyncapi;
mod examples;
mod replies;
mod requests;
mod scenarios;

use super::*;

#[test]
fn schemas_are_up_to_date() {
    let files = generate();
    let dir = schemas_dir();
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v != "0" && !v.is_empty());
    let on_disk = existing_files(&dir);
    let mut problems = Vec::new();
    for (path, schema) in &files {
        let full = dir.join(path);
        let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
        let current = std::fs::read_to_string(&full).ok();
        let same = current
            .as_deref()
            .and_then(|c| serde_json::from_str::<Value>(c).ok())
            .is_some_and(|c| &c == schema);
        if same {
            continue;
        }
        if update {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, text).unwrap();
        } else if current.is_none() {
            problems.push(format!("docs/schemas/{path} is missing"));
        } else {
            problems.push(format!("docs/schemas/{path} differs from the Rust types"));
        }
    }
    for path in on_disk.difference(&files.keys().cloned().collect()) {
        if update {
            std::fs::remove_file(dir.join(path)).unwrap();
        } else {
            problems.push(format!(
                "docs/schemas/{path} is not generated from any type"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n{UPDATE_HINT}",
        problems.join("\n")
    );
}

fn existing_files(dir: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.insert(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .replace('\\', "/"),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, &mut out);
    out
}

/// Serves `file:///docs/…` from the repository's `docs/` folder, so that
/// the AsyncAPI document's `./schemas/…` references resolve offline.
struct DocsRetriever;

impl jsonschema::Retrieve for DocsRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let relative = uri
            .as_str()
            .strip_prefix("file:///docs/")
            .ok_or_else(|| format!("{} is outside docs/", uri.as_str()))?;
        let text = std::fs::read_to_string(docs_dir().join(relative))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_base_uri("file:///docs/asyncapi.yaml")
        .with_retriever(DocsRetriever)
        .build(schema)
        .unwrap_or_else(|e| panic!("schema does not compile: {e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn schema_file(path: &str) -> Value {
    let full = schemas_dir().join(path);
    let text = std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("{}: {e}; {UPDATE_HINT}", full.display()));
    serde_json::from_str(&text).unwrap()
}

/// The schemas of one node: follows local `$ref`s and combinators.
fn branches<'a>(root: &'a Value, schema: &'a Value, out: &mut Vec<&'a Value>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    out.push(schema);
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        if let Some(target) = reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
            branches(root, target, out);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in object
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            branches(root, sub, out);
        }
    }
    if let Some(then) = object.get("then") {
        branches(root, then, out);
    }
}

/// The JSON paths in `value` that no schema of its node names as a
/// property: output schemas leave `additionalProperties` open for
/// consumers, so this is how the tests catch a field the code writes and the
/// docs do not show.
fn undocumented(root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut nodes = Vec::new();
    branches(root, schema, &mut nodes);
    match value {
        Value::Object(object) => {
            let mut properties: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
            for node in &nodes {
                for (name, sub) in node
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    properties.entry(name).or_default().push(sub);
                }
            }
            let mut out = Vec::new();
            for (key, child) in object {
                let child_path = format!("{path}/{key}");
                match properties.get(key.as_str()) {
                    None => out.push(child_path),
                    Some(subs) => out.extend(fewest_undocumented(root, subs, child, &child_path)),
                }
            }
            out
        }
        Value::Array(items) => {
            let item_schemas: Vec<&Value> = nodes.iter().filter_map(|n| n.get("items")).collect();
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}/{i}");
                out.extend(fewest_undocumented(root, &item_schemas, item, &item_path));
            }
            out
        }
        _ => Vec::new(),
    }
}

/// What [`undocumented`] finds in `value` against the one of `schemas`
/// (the alternatives for its node) that documents the most of it.
fn fewest_undocumented(root: &Value, schemas: &[&Value], value: &Value, path: &str) -> Vec<String> {
    schemas
        .iter()
        .map(|sub| undocumented(root, sub, value, path))
        .min_by_key(Vec::len)
        .unwrap_or_default()
}

/// Checks that `instance` is valid against the schema file and that every
/// key in it is documented there.
fn assert_matches(file: &str, instance: &Value) {
    let schema = schema_file(file);
    let found = errors(&validator(&schema), instance);
    assert!(
        found.is_empty(),
        "{instance} is not valid against {file}:\n{}",
        found.join("\n")
    );
    let extra = undocumented(&schema, &schema, instance, "");
    assert!(
        extra.is_empty(),
        "{file} does not document {extra:?} of {instance}"
    );
}

#[test]
fn every_schema_is_a_valid_draft_2020_12_schema() {
    for (path, schema) in generate() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{path}"
        );
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("docs/schemas/{path} is not a valid JSON Schema: {e}");
        }
        validator(&schema);
    }
}
