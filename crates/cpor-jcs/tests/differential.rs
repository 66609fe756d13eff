//! Differential test: our RFC 8785 serializer against an independent
//! implementation (`serde_json_canonicalizer`) over generated documents.
//!
//! The generator leans on the corners where implementations differ: member
//! names mixing U+E000..=U+FFFF with characters above U+FFFF (UTF-16 versus
//! UTF-8 order), integers beyond 2^53 (printed as the nearest double),
//! controls and quotes in strings, and doubles of every magnitude.

use proptest::prelude::*;
use serde_json::{Map, Number, Value};

fn name() -> impl Strategy<Value = String> {
    // Short names over few characters, so that objects often hold names
    // that share a prefix and differ in a character whose UTF-16 and UTF-8
    // orders disagree.
    proptest::string::string_regex(
        "[a\"\\\\\x00\x1f\u{7f}é\u{e000}\u{ffff}\u{10000}\u{1f600}]{0,3}",
    )
    .expect("valid regex")
}

fn number() -> impl Strategy<Value = Number> {
    prop_oneof![
        any::<i64>().prop_map(Number::from),
        any::<u64>().prop_map(Number::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Number::from_f64(f).expect("finite")),
        // Short decimals, the shape of real amounts and durations.
        (-1_000_000i64..1_000_000, 0u32..7)
            .prop_map(|(m, e)| Number::from_f64(m as f64 / 10f64.powi(e as i32)).expect("finite")),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number().prop_map(Value::Number),
        name().prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn agrees_with_an_independent_implementation(doc in document()) {
        let ours = cpor_jcs::canonical_json(&doc).expect("finite numbers only");
        let theirs = serde_json_canonicalizer::to_string(&doc).expect("serializable");
        prop_assert_eq!(&ours, &theirs);
        // And the output is a fixed point: canonical text parses back to
        // the same canonical text.
        let again: Value = serde_json::from_str(&ours).expect("canonical text is JSON");
        prop_assert_eq!(cpor_jcs::canonical_json(&again).unwrap(), ours);
    }
}

/// Edits that make canonical text non-canonical (or leave it canonical).
fn mutate(text: &str, at: usize, edit: u8) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    match edit % 6 {
        0 => chars.insert(at, ' '),
        1 => chars.insert(at, '\\'),
        2 if at < chars.len() => {
            chars.remove(at);
        }
        3 if at + 1 < chars.len() => chars.swap(at, at + 1),
        4 => chars.insert(at, '0'),
        _ => chars.insert(at, '"'),
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// The fast path's `Some` is a proof: the text is the canonical form
    /// of what it parses to, and the hash taken from the bytes is the hash
    /// of the parsed value. Checked on canonical text and on edits of it.
    #[test]
    fn the_fast_path_accepts_only_canonical_text(
        members in prop::collection::vec((name(), document()), 0..6),
        at in any::<usize>(),
        edit in any::<u8>(),
    ) {
        let mut object: Map<String, Value> = members.into_iter().collect();
        object.insert("hash".into(), Value::String("stored".into()));
        let canonical = cpor_jcs::canonical_json(&Value::Object(object)).expect("finite");
        let mut scanner = cpor_jcs::CanonicalScanner::new();
        for text in [canonical.clone(), mutate(&canonical, at, edit)] {
            if let Some(scanned) = scanner.scan(text.as_bytes()) {
                let parsed: Value = serde_json::from_str(&text).expect("accepted text is JSON");
                prop_assert_eq!(cpor_jcs::canonical_json(&parsed).unwrap(), text.clone());
                prop_assert_eq!(
                    scanned.event_hash("previous"),
                    cpor_jcs::event_hash("previous", &parsed).unwrap()
                );
            }
        }
    }
}
