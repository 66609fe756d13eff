//! The one-pass decoder against the general one: on every event the log
//! writes, on edits of them (damage, other actors, other types, older
//! schemas, repeated members, text that is not canonical), `decode` gives
//! exactly what `decode_general` gives, error words included.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

use super::{decode, decode_general, one_pass};
use crate::tests::history;
use crate::Log;

/// The stored events of the log tests' history (reference data, competing
/// claims, a case, comments, deadlines), the hash test vectors and a
/// claim submitted at schema version 1.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut state) = Log::open(dir.path()).unwrap();
        history(&mut log, &mut state);
        let mut events: Vec<Vec<u8>> = log
            .reader()
            .events_from(1)
            .map(|entry| entry.unwrap().1.to_vec())
            .collect();
        let vectors = include_str!("../../../../docs/hash-test-vectors/events.jsonl");
        events.extend(vectors.lines().map(|line| line.as_bytes().to_vec()));
        events.push(V1_CLAIM_SUBMITTED.as_bytes().to_vec());
        events
    })
}

/// Written by schema version 1 of `claim.submitted`, before `note` existed.
const V1_CLAIM_SUBMITTED: &str = r#"{"causationid":"0d1f6d43-3f59-4b7c-8a3e-6f1f4f0b7c11","data":{"activity":"usage","actor":{"partner_id":"P-100","roles":["incentives_admin"],"type":"partner"},"claim_id":"6749b280-715c-47c6-acdd-21b0eaff3070","domain":"contoso.com","incentive_eligible":true,"mpn_id":"4412001","partner_id":"P-100","product":"dynamics_365_sales","proof_of_execution":[],"review_due_at":"2026-12-03T00:00:00Z","solution_area":"business_applications","subscription_ids":["1b4e28ba-2fa1-11d2-883f-0016d3cca427"],"tenant_id":"9b2c0a34-8f7e-4f1a-9d51-2f7c0c1a9e10"},"datacontenttype":"application/json","dataschema":"urn:cpor:event:claim.submitted:v1","hash":"x","id":"3c5d4a7e-9b1f-4e6a-8d2c-1f0e9a8b7c6d","position":5,"source":"/cpor","specversion":"1.0","streamversion":1,"subject":"6749b280-715c-47c6-acdd-21b0eaff3070","time":"2026-11-25T09:00:00Z","type":"cpor.claim.submitted"}"#;

/// Actors as `data.actor` may hold them: each kind, and what the actor
/// type refuses (unknown members, a missing or unknown `type`, `null`
/// where a list belongs, a tenant id not in RFC 4122 form).
const ACTORS: [&str; 12] = [
    r#"{"id":"rev-7","type":"reviewer"}"#,
    r#"{"id":"crm-sync","type":"system"}"#,
    r#"{"partner_id":"P-200","roles":["global_admin","x"],"type":"partner","user":"bob@fabrikam.com"}"#,
    r#"{"partner_id":"P-200","type":"partner"}"#,
    r#"{"tenant_id":"6f1c2a9e-3b7d-4e58-9a41-0c2d7e5b8f13","type":"customer","user":"c@contoso.com"}"#,
    r#"{"tenant_id":"6F1C2A9E-3B7D-4E58-9A41-0C2D7E5B8F13","type":"customer"}"#,
    r#"{"id":"rev-7","type":"reviewer","extra":1}"#,
    r#"{"id":"rev-7"}"#,
    r#"{"id":"rev-7","type":"auditor"}"#,
    r#"{"partner_id":"P-200","roles":null,"type":"partner"}"#,
    r#"{"type":"rev\u0069ewer","id":"rev-7"}"#,
    r#"null"#,
];

/// Event types the log writes, and some it does not.
const TYPES: [&str; 10] = [
    "cpor.claim.submitted",
    "cpor.claim.approved",
    "cpor.claim.comment_added",
    "cpor.arbitration.opened",
    "cpor.tenant.upserted",
    "cpor.partner.upserted",
    "cpor.claim.nonsense",
    "cpor.claim",
    "x.claim.approved",
    "cpor.claim.approved.more",
];

/// Texts to insert anywhere: JSON's structure, members, escapes.
const SNIPPETS: [&str; 10] = [
    r#""actor":{"id":"crm-sync","type":"system"},"#,
    r#","position":7"#,
    r#","data":{}"#,
    r#","type":"cpor.claim.approved""#,
    "\\u0061",
    "null",
    "\"",
    "{",
    " ",
    "\\",
];

#[derive(Debug, Clone)]
enum Edit {
    /// One byte replaced (at a fraction of the length).
    Byte(f64, u8),
    /// A range cut out.
    Cut(f64, usize),
    Insert(f64, &'static str),
    /// `data.actor` replaced.
    Actor(&'static str),
    /// The `type` member's value replaced.
    Type(&'static str),
    /// `dataschema`'s version replaced, or the member removed.
    Version(Option<u32>),
    /// A second `actor` member at the front of `data`.
    ActorTwice,
    /// The same JSON, not canonical (pretty-printed).
    Pretty,
    /// `data` moved behind `type` (serde_json's map keeps key order only on
    /// the text: done by hand).
    DataLast,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (
            0.0..1.0f64,
            prop::sample::select(b"{}[]\":,\\0a9 -".to_vec())
        )
            .prop_map(|(at, b)| Edit::Byte(at, b)),
        (0.0..1.0f64, 1..40usize).prop_map(|(at, n)| Edit::Cut(at, n)),
        (0.0..1.0f64, prop::sample::select(SNIPPETS.to_vec()))
            .prop_map(|(at, s)| Edit::Insert(at, s)),
        prop::sample::select(ACTORS.to_vec()).prop_map(Edit::Actor),
        prop::sample::select(TYPES.to_vec()).prop_map(Edit::Type),
        prop::option::of(0..4u32).prop_map(Edit::Version),
        Just(Edit::ActorTwice),
        Just(Edit::Pretty),
        Just(Edit::DataLast),
    ]
}

/// The position `at` (a fraction) of `bytes`, on a byte boundary.
fn index(bytes: &[u8], at: f64) -> usize {
    ((bytes.len() as f64) * at) as usize
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match edit {
        Edit::Byte(at, b) => {
            let i = index(bytes, *at).min(bytes.len().saturating_sub(1));
            if let Some(byte) = bytes.get_mut(i) {
                *byte = *b;
            }
        }
        Edit::Cut(at, n) => {
            let i = index(bytes, *at);
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Edit::Insert(at, snippet) => {
            let i = index(bytes, *at);
            bytes.splice(i..i, snippet.bytes());
        }
        Edit::Actor(actor) => {
            replace_member(bytes, "\"actor\":", actor);
        }
        Edit::Type(type_name) => {
            replace_member(bytes, "\"type\":\"cpor.", &format!("\"{type_name}\""));
        }
        Edit::Version(version) => {
            let Some(mut value) = serde_json::from_slice::<Value>(bytes).ok() else {
                return;
            };
            let Some(map) = value.as_object_mut() else {
                return;
            };
            match (version, map.get("dataschema").and_then(Value::as_str)) {
                (Some(v), Some(schema)) => {
                    let base = schema.rsplit_once(":v").map_or(schema, |(base, _)| base);
                    let schema = format!("{base}:v{v}");
                    map.insert("dataschema".into(), schema.into());
                }
                (None, _) => {
                    map.remove("dataschema");
                }
                _ => return,
            }
            *bytes = cpor_jcs::canonical_json(&value).unwrap().into_bytes();
        }
        Edit::ActorTwice => {
            let text = String::from_utf8_lossy(bytes).replacen(
                "\"data\":{",
                &format!("\"data\":{{\"actor\":{},", ACTORS[0]),
                1,
            );
            *bytes = text.into_bytes();
        }
        Edit::Pretty => {
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                *bytes = serde_json::to_vec_pretty(&value).unwrap();
            }
        }
        Edit::DataLast => {
            let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(bytes) else {
                return;
            };
            let Some(data) = map.remove("data") else {
                return;
            };
            let mut text = serde_json::to_string(&Value::Object(map)).unwrap();
            text.pop();
            text.push_str(&format!(",\"data\":{data}}}"));
            *bytes = text.into_bytes();
        }
    }
}

/// Replaces the value that follows the first `name` (a member name with
/// its colon, or a prefix of a string value) with `value`.
fn replace_member(bytes: &mut Vec<u8>, name: &str, value: &str) {
    let text = String::from_utf8_lossy(bytes).into_owned();
    // The last occurrence: the top-level `type` comes last, after the
    // actor's own `type`.
    let Some(start) = text.rfind(name) else {
        return;
    };
    let value_start = if name.ends_with(':') {
        start + name.len()
    } else {
        start + name.find(':').unwrap() + 1
    };
    let mut de = serde_json::Deserializer::from_str(&text[value_start..]).into_iter::<Value>();
    if de.next().and_then(Result::ok).is_none() {
        return;
    }
    let value_end = value_start + de.byte_offset();
    let mut edited = text[..value_start].to_string();
    edited.push_str(value);
    edited.push_str(&text[value_end..]);
    *bytes = edited.into_bytes();
}

/// `decode` and the general path agree: the same event, or the same words.
#[track_caller]
fn agree(bytes: &[u8]) {
    let fast = decode(bytes).map_err(|e| e.to_string());
    let general = decode_general(bytes).map_err(|e| e.to_string());
    assert_eq!(fast, general, "{}", String::from_utf8_lossy(bytes));
}

#[test]
fn every_stored_event_takes_the_one_pass_path_and_decodes_the_same() {
    let corpus = corpus();
    assert!(corpus.len() > 15, "the history writes many kinds of event");
    let mut one_pass_taken = 0;
    for bytes in corpus {
        let text = String::from_utf8_lossy(bytes);
        match decode_general(bytes) {
            // The hash test vectors' claim is the contract's example, not
            // a payload of ours; and a claim of schema version 1 is upcast
            // by the general path.
            Err(_) => assert_eq!(one_pass::decode(bytes), None, "{text}"),
            Ok(_) if text.contains("claim.submitted:v1") => {
                assert_eq!(one_pass::decode(bytes), None, "{text}")
            }
            Ok(general) => {
                assert_eq!(one_pass::decode(bytes), Some(general), "{text}");
                one_pass_taken += 1;
            }
        }
    }
    assert!(one_pass_taken >= corpus.len() - 2);
}

#[test]
fn every_actor_kind_is_taken_out_of_the_payload() {
    for bytes in corpus() {
        for actor in ACTORS {
            let mut edited = bytes.clone();
            apply(&mut edited, &Edit::Actor(actor));
            agree(&edited);
        }
    }
    // The valid ones keep the one-pass path.
    let mut edited = corpus()[corpus().len() - 2].clone();
    apply(&mut edited, &Edit::Actor(ACTORS[4]));
    assert!(one_pass::decode(&edited).is_some());
}

#[test]
fn what_the_one_pass_path_cannot_be_sure_of_goes_the_general_way() {
    // A claim at schema version 2: without `dataschema` it reads as 1.
    let bytes = corpus()
        .iter()
        .find(|b| String::from_utf8_lossy(b).contains("claim.submitted:v2"))
        .unwrap();
    assert!(one_pass::decode(bytes).is_some());
    for edit in [
        Edit::Pretty,
        Edit::DataLast,
        Edit::Version(None),
        Edit::Version(Some(3)),
        Edit::Insert(0.5, r#","position":7"#),
    ] {
        let mut edited = bytes.clone();
        apply(&mut edited, &edit);
        assert_ne!(&edited, bytes, "{edit:?} changes the text");
        assert_eq!(one_pass::decode(&edited), None, "{edit:?}");
        agree(&edited);
    }
    // A repeated `actor` inside `data`: the general path refuses it.
    let mut edited = bytes.clone();
    apply(&mut edited, &Edit::ActorTwice);
    assert_eq!(one_pass::decode(&edited), None);
    assert!(decode_general(&edited).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_is_the_general_decoder_on_edited_events(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 0..4),
    ) {
        let corpus = corpus();
        let mut bytes = corpus[pick.index(corpus.len())].clone();
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        let fast = decode(&bytes).map_err(|e| e.to_string());
        let general = decode_general(&bytes).map_err(|e| e.to_string());
        prop_assert_eq!(fast, general, "{:?} on {}", edits, String::from_utf8_lossy(&bytes));
    }
}
