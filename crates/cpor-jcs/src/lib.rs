//! RFC 8785 canonical JSON (JCS) and the event hash chain of contract §9.
//!
//! The hash of every event in the log is SHA-256 over the previous event's
//! hash and this event's canonical JSON. Auditors recompute it in their own
//! language from an export, so the serialization below has to match RFC 8785
//! byte for byte, not just "`serde_json` with sorted keys":
//!
//! - no whitespace;
//! - object members sorted by name compared as arrays of UTF-16 code units
//!   (this differs from UTF-8 byte order when a name holds a character above
//!   U+FFFF and another one in U+E000..=U+FFFF at the same place);
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`,
//!   `\f`, `\n`, `\r`, `\t`, the other controls below U+0020 as `\u00xx` in
//!   lowercase hex, everything else (`/`, U+007F, non-ASCII) as literal UTF-8;
//! - every number is an IEEE-754 double printed by ECMAScript
//!   `Number.prototype.toString` (the `ryu-js` crate), so `-0` prints as `0`
//!   and NaN or an infinity is an error;
//! - `true`, `false`, `null` as themselves.
//!
//! Integers: `serde_json` keeps an integer literal as `u64`/`i64`. RFC 8785
//! says a JSON number *is* a double, so such an integer is converted to the
//! nearest double (ties to even, as a JSON parser in JavaScript would do)
//! and that double is printed. Up to 2^53 in magnitude this is the integer
//! itself; beyond, the output is the double's value, e.g. `9007199254740993`
//! is written `9007199254740992` and `u64::MAX` is written
//! `18446744073709552000`. That is what any other RFC 8785 implementation
//! writes for the same JSON text, which is the point of the hash; the
//! integers the service itself writes (positions, versions) stay far below
//! 2^53. Should `serde_json`'s `arbitrary_precision` feature be on, a literal
//! with no finite double (such as `1e400`) is
//! [`CanonicalError::UnrepresentableNumber`].
//!
//! Parsing matters as much: `cpor verify` reads an export back before it
//! hashes it, so `333333333.33333329` must become the nearest double, as in
//! Python, JavaScript or Go. `serde_json` guarantees that only with its
//! `float_roundtrip` feature, which the test
//! `json_parser_rounds_floats_correctly` checks for.
//!
//! The serializer writes into a `Sink`: a `String` for
//! [`write_canonical_json`], the SHA-256 state itself for [`event_hash`], so
//! hashing an event allocates nothing but the returned hex string (and a
//! sort buffer for the rare object whose map order is not already the UTF-16
//! order). Recursion follows the nesting of the value; values parsed by
//! `serde_json` are at most 128 levels deep.
//!
//! Text that is already canonical (every event the log stores) need not be
//! parsed at all: [`CanonicalScanner`] proves it canonical in one pass over
//! the bytes and hashes it from them (`scan.rs`), the fast path of
//! `cpor verify`.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};
use sha2::{Digest, Sha256};

mod scan;

pub use scan::{CanonicalObject, CanonicalScanner};

/// Why a JSON value has no RFC 8785 form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// NaN or an infinity: RFC 8785 §3.2.2.3 (I-JSON) admits finite numbers
    /// only. `serde_json` refuses to build such a number, so this guards
    /// against a future change of number representation rather than data.
    #[error("number is NaN or infinite, which RFC 8785 cannot serialize")]
    NonFiniteNumber,
    /// A number with no finite IEEE-754 double, e.g. `1e400` kept verbatim
    /// by `serde_json`'s `arbitrary_precision` feature.
    #[error("number {0} cannot be represented as a finite IEEE-754 double")]
    UnrepresentableNumber(String),
    /// [`event_hash`] was given something other than a JSON object; a
    /// `CloudEvent` in structured mode is always one.
    #[error("a CloudEvent must be a JSON object, not {0}")]
    EventNotObject(&'static str),
}

/// RFC 8785 (JSON Canonicalization Scheme) serialization of a JSON value.
///
/// # Errors
///
/// A number with no finite double (see [`CanonicalError`]).
pub fn canonical_json(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_canonical_json(value, &mut out)?;
    Ok(out)
}

/// Appends the RFC 8785 serialization of `value` to `out`.
///
/// `out` is not cleared first, so one buffer serves many calls: clear it
/// between them.
///
/// # Errors
///
/// As [`canonical_json`]; `out` is then left as it was before the call.
pub fn write_canonical_json(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    let len_before = out.len();
    let result = write_value(value, out);
    if result.is_err() {
        out.truncate(len_before);
    }
    result
}

/// Contract §9: lowercase hex SHA-256 of ( previous hash as ASCII, "" for
/// position 1 ) ‖ canonical JSON of the CloudEvent without its "hash"
/// attribute.
///
/// `event` may contain a "hash" key; it is ignored (left out of the hashed
/// bytes, `event` itself is not touched). Only the top-level attribute is
/// left out: a "hash" inside `data` is part of the event. `previous_hash` is
/// hashed as given, without validation, so a verifier can feed it whatever
/// the previous line carried.
///
/// # Errors
///
/// `event` is not an object, or holds a number with no finite double.
pub fn event_hash(previous_hash: &str, event: &Value) -> Result<String, CanonicalError> {
    let Value::Object(attributes) = event else {
        return Err(CanonicalError::EventNotObject(json_type_name(event)));
    };
    let mut hasher = Sha256::new();
    hasher.update(previous_hash.as_bytes());
    write_object(attributes, Some("hash"), &mut hasher)?;
    Ok(lowercase_hex(&hasher.finalize()))
}

/// Where serialized text goes. The writer only ever emits whole UTF-8
/// strings, so a sink never sees a split character.
trait Sink {
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for Sha256 {
    fn put(&mut self, text: &str) {
        self.update(text.as_bytes());
    }
}

fn write_value<S: Sink>(value: &Value, out: &mut S) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.put("null"),
        Value::Bool(true) => out.put("true"),
        Value::Bool(false) => out.put("false"),
        Value::Number(number) => write_f64(number_to_f64(number)?, out)?,
        Value::String(string) => write_string(string, out),
        Value::Array(items) => {
            out.put("[");
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.put(",");
                }
                write_value(item, out)?;
            }
            out.put("]");
        }
        Value::Object(members) => write_object(members, None, out)?,
    }
    Ok(())
}

/// Writes `members` in UTF-16 name order, leaving out the member named
/// `skip_name` (used for the top-level "hash" of an event).
fn write_object<S: Sink>(
    members: &Map<String, Value>,
    skip_name: Option<&str>,
    out: &mut S,
) -> Result<(), CanonicalError> {
    // serde_json's default map is a BTreeMap, in code point order, which is
    // the UTF-16 order for every name pair but the rare one described in
    // `cmp_utf16`. Checking that costs one comparison per member and saves
    // the sort buffer on the hot path; with the `preserve_order` feature the
    // map is in insertion order and usually takes the sorting branch.
    let mut names = members.keys();
    let already_sorted = match names.next() {
        None => true,
        Some(first) => names
            .try_fold(first, |previous, name| {
                (cmp_utf16(previous, name) == Ordering::Less).then_some(name)
            })
            .is_some(),
    };
    out.put("{");
    let mut first_member = true;
    let mut write_member = |name: &str, value: &Value, out: &mut S| {
        if skip_name == Some(name) {
            return Ok(());
        }
        if !first_member {
            out.put(",");
        }
        first_member = false;
        write_string(name, out);
        out.put(":");
        write_value(value, out)
    };
    if already_sorted {
        for (name, value) in members {
            write_member(name, value, out)?;
        }
    } else {
        let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
        // Names in a map are distinct, so an unstable sort is deterministic.
        sorted.sort_unstable_by(|(a, _), (b, _)| cmp_utf16(a, b));
        for (name, value) in sorted {
            write_member(name, value, out)?;
        }
    }
    out.put("}");
    Ok(())
}

/// Compares two strings as sequences of UTF-16 code units (RFC 8785 §3.2.3)
/// without transcoding them.
///
/// UTF-8 byte order is code point order, and code point order is UTF-16
/// order except where the first differing characters are one above U+FFFF
/// (a surrogate pair, first unit 0xD800..=0xDBFF) and one in U+E000..=U+FFFF
/// (a single unit 0xE000..=0xFFFF): UTF-16 puts the former first. In UTF-8
/// those characters start with 0xF0..=0xF4 and 0xEE..=0xEF, and bytes that
/// differ inside a character (continuation bytes, below 0xC0) never match
/// that test, so the first differing byte decides.
fn cmp_utf16(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let Some((&x, &y)) = a.iter().zip(b).find(|(x, y)| x != y) else {
        return a.len().cmp(&b.len());
    };
    let is_supplementary_lead = |byte: u8| byte >= 0xF0;
    let is_high_bmp_lead = |byte: u8| byte == 0xEE || byte == 0xEF;
    if is_supplementary_lead(x) && is_high_bmp_lead(y) {
        Ordering::Less
    } else if is_high_bmp_lead(x) && is_supplementary_lead(y) {
        Ordering::Greater
    } else {
        x.cmp(&y)
    }
}

/// `JSON.stringify` escapes for U+0000..=U+001F: the two-character forms
/// where ECMAScript has one, `\u00xx` in lowercase hex otherwise.
const CONTROL_ESCAPES: [&str; 0x20] = [
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b",
    "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012",
    "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a",
    "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
];

fn write_string<S: Sink>(string: &str, out: &mut S) {
    out.put("\"");
    // Copy runs of unescaped bytes in one piece. Every byte that needs an
    // escape is ASCII, so `run_start..index` always falls on char boundaries.
    let mut run_start = 0;
    for (index, &byte) in string.as_bytes().iter().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            0x00..=0x1F => CONTROL_ESCAPES[usize::from(byte)],
            _ => continue,
        };
        out.put(&string[run_start..index]);
        out.put(escape);
        run_start = index + 1;
    }
    out.put(&string[run_start..]);
    out.put("\"");
}

/// The IEEE-754 double that a JSON number stands for (see the module doc on
/// integers beyond 2^53).
fn number_to_f64(number: &Number) -> Result<f64, CanonicalError> {
    // `as` rounds to the nearest double, ties to even, like a JSON parser.
    #[allow(clippy::cast_precision_loss)]
    let double = if let Some(unsigned) = number.as_u64() {
        unsigned as f64
    } else if let Some(signed) = number.as_i64() {
        signed as f64
    } else {
        number
            .as_f64()
            .ok_or_else(|| CanonicalError::UnrepresentableNumber(number.to_string()))?
    };
    Ok(double)
}

fn write_f64<S: Sink>(double: f64, out: &mut S) -> Result<(), CanonicalError> {
    if !double.is_finite() {
        return Err(CanonicalError::NonFiniteNumber);
    }
    // ECMAScript Number::toString, which also prints -0 as "0".
    out.put(ryu_js::Buffer::new().format_finite(double));
    Ok(())
}

fn lowercase_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    hex
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    /// Parses `input` as JSON text and checks its canonical form.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        let value: Value = serde_json::from_str(input).expect("test input is JSON");
        assert_eq!(canonical_json(&value).unwrap(), expected, "input: {input}");
    }

    #[track_caller]
    fn check_value(value: Value, expected: &str) {
        assert_eq!(canonical_json(&value).unwrap(), expected);
    }

    #[test]
    fn rfc_8785_section_3_2_2_sample() {
        check(
            r#"{
              "numbers": [333333333.33333329, 1E30, 4.50,
                          2e-3, 0.000000000000000000000000001],
              "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
              "literals": [null, true, false]
            }"#,
            concat!(
                r#"{"literals":[null,true,false],"#,
                r#""numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"#,
                r#""string":"€$\u000f\nA'B\"\\\\\"/"}"#,
            ),
        );
    }

    /// The RFC sample above only passes if the JSON parser rounds decimal
    /// text to the nearest double. `serde_json`'s default float parser may be
    /// one ULP off (it reads "333333333.33333329" as 333333333.33333325);
    /// then `cpor verify` would recompute another hash than Python,
    /// JavaScript or Go for an exported event carrying such a number.
    #[test]
    fn json_parser_rounds_floats_correctly() {
        for text in [
            "333333333.33333329",
            "2.2250738585072011e-308",
            "0.1",
            "1e23",
        ] {
            let parsed: f64 = serde_json::from_str(text).unwrap();
            assert_eq!(
                parsed.to_bits(),
                text.parse::<f64>().unwrap().to_bits(),
                "serde_json misreads {text}: enable its \"float_roundtrip\" feature \
                 in the workspace Cargo.toml"
            );
        }
    }

    #[test]
    fn rfc_8785_section_3_2_3_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        check(
            input,
            concat!(
                r#"{"\r":"Carriage Return","1":"One","#,
                "\"\u{80}\":\"Control\",",
                "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",",
                "\"\u{20ac}\":\"Euro Sign\",",
                "\"\u{1f600}\":\"Emoji: Grinning Face\",",
                "\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
            ),
        );
    }

    /// `testdata/weird.json` of the RFC author's reference implementations
    /// (cyberphone/json-canonicalization).
    #[test]
    fn reference_weird_json() {
        check(
            r#"{
              "\u20ac": "Euro Sign",
              "1": "One",
              "\u0080": "Control\u007f",
              "\ud83d\ude02": "Smiley",
              "\u00f6": "Latin Small Letter O With Diaeresis",
              "\ufb33": "Hebrew Letter Dalet With Dagesh",
              "</script>": "Browser Challenge"
            }"#,
            concat!(
                r#"{"1":"One","</script>":"Browser Challenge","#,
                "\"\u{80}\":\"Control\u{7f}\",",
                "\"\u{f6}\":\"Latin Small Letter O With Diaeresis\",",
                "\"\u{20ac}\":\"Euro Sign\",",
                "\"\u{1f602}\":\"Smiley\",",
                "\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}",
            ),
        );
    }

    /// RFC 8785 Appendix B: IEEE-754 bit patterns and their serialization.
    #[test]
    fn rfc_8785_appendix_b_numbers() {
        let samples: [(u64, &str); 25] = [
            (0x0000_0000_0000_0000, "0"),
            (0x8000_0000_0000_0000, "0"),
            (0x0000_0000_0000_0001, "5e-324"),
            (0x8000_0000_0000_0001, "-5e-324"),
            (0x7fef_ffff_ffff_ffff, "1.7976931348623157e+308"),
            (0xffef_ffff_ffff_ffff, "-1.7976931348623157e+308"),
            (0x4340_0000_0000_0000, "9007199254740992"),
            (0xc340_0000_0000_0000, "-9007199254740992"),
            (0x4430_0000_0000_0000, "295147905179352830000"),
            (0x44b5_2d02_c7e1_4af5, "9.999999999999997e+22"),
            (0x44b5_2d02_c7e1_4af6, "1e+23"),
            (0x44b5_2d02_c7e1_4af7, "1.0000000000000001e+23"),
            (0x444b_1ae4_d6e2_ef4e, "999999999999999700000"),
            (0x444b_1ae4_d6e2_ef4f, "999999999999999900000"),
            (0x444b_1ae4_d6e2_ef50, "1e+21"),
            (0x3eb0_c6f7_a0b5_ed8c, "9.999999999999997e-7"),
            (0x3eb0_c6f7_a0b5_ed8d, "0.000001"),
            (0x41b3_de43_5555_5553, "333333333.3333332"),
            (0x41b3_de43_5555_5554, "333333333.33333325"),
            (0x41b3_de43_5555_5555, "333333333.3333333"),
            (0x41b3_de43_5555_5556, "333333333.3333334"),
            (0x41b3_de43_5555_5557, "333333333.33333343"),
            (0xbecb_f647_612f_3696, "-0.0000033333333333333333"),
            (0x4314_3ff3_c1cb_0959, "1424953923781206.2"),
            (0x3ff0_0000_0000_0000, "1"),
        ];
        for (bits, expected) in samples {
            let value = Value::from(f64::from_bits(bits));
            assert_eq!(
                canonical_json(&value).unwrap(),
                expected,
                "bits {bits:016x}"
            );
        }
    }

    #[test]
    fn rfc_8785_appendix_b_non_finite_numbers_are_errors() {
        // serde_json cannot hold these in a Value, so test the writer itself.
        for bits in [
            0x7fff_ffff_ffff_ffff_u64,
            0x7ff0_0000_0000_0000,
            0xfff0_0000_0000_0000,
        ] {
            let mut out = String::new();
            let result = write_f64(f64::from_bits(bits), &mut out);
            assert_eq!(result, Err(CanonicalError::NonFiniteNumber));
            assert_eq!(out, "");
        }
    }

    #[test]
    fn number_edge_cases() {
        check("1e21", "1e+21");
        check("1e20", "100000000000000000000");
        check("1e-7", "1e-7");
        check("1e-6", "0.000001");
        check("0.1", "0.1");
        check("-0.0", "0");
        check("-0", "0");
        check("123.0", "123");
        check("1.5e300", "1.5e+300");
        check("0.30000000000000004", "0.30000000000000004");
        check("[1, -1, 0, 42]", "[1,-1,0,42]");
        check_value(json!(1e16), "10000000000000000");
        check_value(json!(-0.0), "0");
    }

    #[test]
    fn number_beyond_doubles_is_an_error() {
        // Only serde_json's `arbitrary_precision` feature lets this parse;
        // without it the parser already refuses the text.
        let Ok(value) = serde_json::from_str::<Value>(r#"{"a":[1e400]}"#) else {
            return;
        };
        let mut out = String::from("kept");
        let result = write_canonical_json(&value, &mut out);
        assert!(
            matches!(result, Err(CanonicalError::UnrepresentableNumber(_))),
            "{result:?}"
        );
        assert_eq!(out, "kept", "a failed write leaves the buffer as it was");
    }

    #[test]
    fn integers_are_doubles() {
        // Exact up to 2^53 ...
        check_value(json!(9_007_199_254_740_991_u64), "9007199254740991");
        check_value(json!(9_007_199_254_740_992_u64), "9007199254740992");
        check_value(json!(-9_007_199_254_740_992_i64), "-9007199254740992");
        // ... then the nearest double, as RFC 8785 serializes it.
        check_value(json!(9_007_199_254_740_993_u64), "9007199254740992");
        check("9007199254740993", "9007199254740992");
        check_value(json!(u64::MAX), "18446744073709552000");
        check_value(json!(i64::MIN), "-9223372036854776000");
        check_value(json!(i64::MAX), "9223372036854776000");
    }

    #[test]
    fn string_escapes() {
        let controls: String = (0x00_u8..0x20).map(char::from).collect();
        check_value(
            json!(controls),
            concat!(
                r#""\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007"#,
                r#"\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013"#,
                r#"\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c"#,
                r#"\u001d\u001e\u001f""#,
            ),
        );
        check_value(
            json!("/\u{7f} \"quoted\" back\\slash"),
            "\"/\u{7f} \\\"quoted\\\" back\\\\slash\"",
        );
        check_value(json!("é€😀\u{2028}\u{fffd}"), "\"é€😀\u{2028}\u{fffd}\"");
        check_value(json!(""), r#""""#);
        check_value(json!("\"\""), r#""\"\"""#);
        // Escapes in member names too.
        check_value(json!({"a\nb": 1, "a\"b": 2}), r#"{"a\nb":1,"a\"b":2}"#);
    }

    #[test]
    fn literals_and_nesting() {
        check("null", "null");
        check("true", "true");
        check("false", "false");
        check("{}", "{}");
        check("[]", "[]");
        check("[[],{},[{}]]", "[[],{},[{}]]");
        check(
            r#"{ "b": [ {"z": 1, "a": [3, 2, 1]}, {} ],
                 "a": { "d": { "c": null, "b": [true, false] } },
                 "c": "x" }"#,
            r#"{"a":{"d":{"b":[true,false],"c":null}},"b":[{"a":[3,2,1],"z":1},{}],"c":"x"}"#,
        );
        // Array order is kept; names sort by code unit, so "B" < "a" < "aa".
        check(r#"{"aa":0,"a":[2,1],"B":0}"#, r#"{"B":0,"a":[2,1],"aa":0}"#);
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        let value = json!({
            "z": [1.5, -0.0, 1e21, "\u{1f600}", {"\u{fb33}": 1, "\u{1f600}": 2}],
            "\u{e000}": null,
        });
        let once = canonical_json(&value).unwrap();
        let twice = canonical_json(&serde_json::from_str(&once).unwrap()).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn write_canonical_json_appends() {
        let mut out = String::from("prefix:");
        write_canonical_json(&json!({"b": 1, "a": [null]}), &mut out).unwrap();
        assert_eq!(out, r#"prefix:{"a":[null],"b":1}"#);
        out.clear();
        write_canonical_json(&json!([]), &mut out).unwrap();
        assert_eq!(out, "[]");
    }

    /// `cmp_utf16` against the definition: transcode and compare code units.
    #[test]
    fn cmp_utf16_matches_code_unit_order() {
        // Characters around every boundary that matters: ASCII, 2- and
        // 3-byte UTF-8, the surrogate gap, U+E000..=U+FFFF, 4-byte UTF-8.
        let alphabet = [
            '\0',
            'A',
            'a',
            '\u{7f}',
            '\u{80}',
            '\u{7ff}',
            '\u{800}',
            '\u{d7ff}',
            '\u{e000}',
            '\u{fb33}',
            '\u{ffff}',
            '\u{10000}',
            '\u{1f600}',
            '\u{10ffff}',
        ];
        let mut strings = vec![String::new()];
        for &first in &alphabet {
            strings.push(first.to_string());
            for &second in &alphabet {
                strings.push([first, second].iter().collect());
            }
        }
        for a in &strings {
            for b in &strings {
                let expected = a.encode_utf16().cmp(b.encode_utf16());
                assert_eq!(cmp_utf16(a, b), expected, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn sorting_follows_utf16_not_utf8() {
        // UTF-8 (and serde_json's BTreeMap) puts U+E000 first; UTF-16 puts
        // the surrogate pair of U+10000 first.
        check_value(
            json!({"\u{e000}": 1, "\u{10000}": 2, "a": 3}),
            "{\"a\":3,\"\u{10000}\":2,\"\u{e000}\":1}",
        );
    }

    /// The three events of docs/hash-test-vectors/events.jsonl, with the
    /// hashes that `python3` computed for them independently (`hashlib` and
    /// `json.dumps` with `sort_keys=True`, compact separators and
    /// `ensure_ascii=False`, which is RFC 8785 for these events).
    const CHAIN: [(&str, &str); 3] = [
        (
            r#"{"specversion":"1.0","id":"1d9b6c3e-8f24-4a7b-b5e1-7c0a3d92f648","source":"/cpor","type":"cpor.tenant.upserted","subject":"6f1c2a9e-3b7d-4e58-9a41-0c2d7e5b8f13","time":"2026-11-24T08:00:00Z","datacontenttype":"application/json","position":1,"streamversion":1,"causationid":"0a7e5f21-c3d8-4b96-8e4f-5d1b2c9a7e30","data":{"actor":{"type":"system","id":"crm-sync"},"tenant_id":"6f1c2a9e-3b7d-4e58-9a41-0c2d7e5b8f13","domains":["contoso.onmicrosoft.com","contoso.com"]},"hash":"82c5abbf64a407c0ba7dc113fb23e24974d232cc2f36f9b93a6d9571900fd82b"}"#,
            "82c5abbf64a407c0ba7dc113fb23e24974d232cc2f36f9b93a6d9571900fd82b",
        ),
        (
            r#"{"specversion":"1.0","id":"5e2f8a47-b1c9-4d63-a0f7-9b3e6d1c2a85","source":"/cpor","type":"cpor.claim.submitted","subject":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5","time":"2026-11-25T14:03:00Z","datacontenttype":"application/json","position":2,"streamversion":1,"causationid":"c8d1e2f3-4a5b-4c6d-9e7f-8a9b0c1d2e3f","correlationid":"crm-case-88412","data":{"actor":{"type":"partner","partner_id":"P-100","user":"alice@contoso.com","roles":["incentives_admin"]},"claim_id":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5","partner_id":"P-100","mpn_id":"4412001","tenant_id":"6f1c2a9e-3b7d-4e58-9a41-0c2d7e5b8f13","domain":"contoso.com","solution_area":"microsoft_365","activity":"usage","product":"microsoft_365_e5","subscription_ids":[],"incentive_eligible":true,"note":"Déploiement Teams – phase 1","review_due_at":"2026-12-03T00:00:00Z"},"hash":"cd4d563132fe1c88bf88dee01eb62ae65af874922e67ac95cfdbf4d9012b1468"}"#,
            "cd4d563132fe1c88bf88dee01eb62ae65af874922e67ac95cfdbf4d9012b1468",
        ),
        (
            r#"{"specversion":"1.0","id":"9a4c7e12-d3f5-4b68-8c2a-1e7f0b5d9c36","source":"/cpor","type":"cpor.claim.review_started","subject":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5","time":"2026-11-26T09:15:00Z","datacontenttype":"application/json","position":3,"streamversion":2,"causationid":"e4f5a6b7-c8d9-4e0f-a1b2-c3d4e5f6a7b8","data":{"actor":{"type":"reviewer","id":"rev-7"},"claim_id":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5"},"hash":"469d9eff8c4aea2c1efd45c3f0dacce74fac8b5e5b38c5738d503c3e31865c55"}"#,
            "469d9eff8c4aea2c1efd45c3f0dacce74fac8b5e5b38c5738d503c3e31865c55",
        ),
    ];

    #[test]
    fn event_hash_chain_matches_independent_python() {
        let mut previous_hash = String::new();
        for (position, (line, expected)) in CHAIN.iter().enumerate() {
            let event: Value = serde_json::from_str(line).unwrap();
            let hash = event_hash(&previous_hash, &event).unwrap();
            assert_eq!(hash, *expected, "position {}", position + 1);
            // The line carries its own hash, which the computation ignored.
            assert_eq!(event["hash"], *expected);
            previous_hash = hash;
        }
    }

    #[test]
    fn event_hash_ignores_only_the_top_level_hash() {
        let without = json!({"id": "e1", "data": {"hash": "inner"}, "position": 1});
        let mut with = without.clone();
        with["hash"] = json!("anything at all");
        let expected = event_hash("abc", &without).unwrap();
        assert_eq!(event_hash("abc", &with).unwrap(), expected);
        assert_eq!(with["hash"], "anything at all", "event is not mutated");
        // The definition, spelled out with the String writer.
        let mut bytes = String::from("abc");
        write_canonical_json(&without, &mut bytes).unwrap();
        assert_eq!(expected, lowercase_hex(&Sha256::digest(bytes.as_bytes())));
        // The inner "hash" and the previous hash both count.
        let other_inner = json!({"id": "e1", "data": {"hash": "other"}, "position": 1});
        assert_ne!(event_hash("abc", &other_inner).unwrap(), expected);
        assert_ne!(event_hash("", &without).unwrap(), expected);
    }

    #[test]
    fn event_hash_of_empty_object_and_non_objects() {
        // SHA-256 of "{}".
        assert_eq!(
            event_hash("", &json!({"hash": "x"})).unwrap(),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            event_hash("", &json!([1])),
            Err(CanonicalError::EventNotObject("an array"))
        );
        assert_eq!(
            event_hash("", &Value::Null),
            Err(CanonicalError::EventNotObject("null"))
        );
    }
}
