//! The fast path for text that is already canonical: one pass over the
//! bytes checks that they are exactly the RFC 8785 form of the JSON they
//! hold, without building a `serde_json::Value`, and hashes the event
//! straight from them (contract §9: the canonical form without the
//! top-level `hash` member is those bytes with that member cut out).
//!
//! The check is conservative: it accepts only what it can prove is
//! canonical (integers of at most [`INTEGER_DIGITS_MAX`] digits, strings
//! whose escapes are the ones RFC 8785 writes, member names without
//! escapes in strictly increasing UTF-16 order, nesting up to
//! [`DEPTH_MAX`]) and answers `None` for anything else, canonical or not.
//! A caller then takes the general path (parse, [`crate::event_hash`],
//! [`crate::write_canonical_json`]), which decides. So a `Some` proves
//! `canonical_json(parse(bytes)) == bytes`; a `None` proves nothing.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::{cmp_utf16, lowercase_hex};

/// Integers with at most this many digits are exact doubles that
/// ECMAScript prints digit for digit (below 2^53 ≈ 9.007e15).
pub(crate) const INTEGER_DIGITS_MAX: usize = 15;
/// Nesting the fast path follows (serde_json's own limit is 128).
pub(crate) const DEPTH_MAX: usize = 64;

/// One top-level member: byte ranges into the text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberSpan {
    /// The name, without its quotes (it holds no escape).
    name: Range<usize>,
    /// The value's raw text.
    value: Range<usize>,
}

/// Reusable buffers of the fast path: scanning many events allocates once.
#[derive(Debug, Default)]
pub struct CanonicalScanner {
    members: Vec<MemberSpan>,
}

/// An object whose text is proven canonical, with its top-level members.
#[derive(Debug)]
pub struct CanonicalObject<'s, 'a> {
    text: &'a str,
    members: &'s [MemberSpan],
}

impl CanonicalScanner {
    pub fn new() -> CanonicalScanner {
        CanonicalScanner::default()
    }

    /// `Some` when `bytes` is a JSON object in exactly its RFC 8785 form
    /// (within the limits of the module doc), `None` otherwise.
    pub fn scan<'s, 'a>(&'s mut self, bytes: &'a [u8]) -> Option<CanonicalObject<'s, 'a>> {
        let text = std::str::from_utf8(bytes).ok()?;
        self.members.clear();
        let mut cursor = Cursor {
            bytes,
            at: 0,
            depth: 0,
        };
        cursor.object(Some(&mut self.members))?;
        if cursor.at != bytes.len() {
            return None;
        }
        Some(CanonicalObject {
            text,
            members: &self.members,
        })
    }
}

impl<'a> CanonicalObject<'_, 'a> {
    /// The whole text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The raw text of the top-level member `name`'s value.
    pub fn member(&self, name: &str) -> Option<&'a str> {
        self.members
            .iter()
            .find(|m| &self.text[m.name.clone()] == name)
            .map(|m| &self.text[m.value.clone()])
    }

    /// A top-level string member without escapes, unquoted (`None` when it
    /// is missing, not a string, or holds an escape).
    pub fn string(&self, name: &str) -> Option<&'a str> {
        let raw = self.member(name)?;
        let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('\\')).then_some(inner)
    }

    /// A top-level non-negative integer member.
    pub fn u64(&self, name: &str) -> Option<u64> {
        let raw = self.member(name)?;
        if raw.starts_with('-') {
            return None;
        }
        raw.parse().ok()
    }

    /// [`crate::event_hash`] of this object, computed from its bytes: the
    /// SHA-256 of `previous_hash` and the text without its top-level
    /// `hash` member.
    pub fn event_hash(&self, previous_hash: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(previous_hash.as_bytes());
        let text = self.text.as_bytes();
        match self
            .members
            .iter()
            .position(|m| &self.text[m.name.clone()] == "hash")
        {
            None => hasher.update(text),
            Some(index) => {
                let member = &self.members[index];
                // The member runs from its name's opening quote to its
                // value's end; one comma beside it goes with it.
                let name_quote = member.name.start - 1;
                let (cut_start, cut_end) = if index > 0 {
                    (name_quote - 1, member.value.end)
                } else if self.members.len() > 1 {
                    (name_quote, member.value.end + 1)
                } else {
                    (name_quote, member.value.end)
                };
                hasher.update(&text[..cut_start]);
                hasher.update(&text[cut_end..]);
            }
        }
        lowercase_hex(&hasher.finalize())
    }
}

/// A position in the bytes being checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    depth: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(None),
            b'[' => self.array(),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// `0` or `-?[1-9][0-9]*` of at most [`INTEGER_DIGITS_MAX`] digits, not
    /// followed by a fraction or an exponent.
    fn integer(&mut self) -> Option<()> {
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        let digits = &self.bytes[start..self.at];
        let shape_ok = match digits {
            [] => false,
            // "-0" prints as "0".
            [b'0'] => !negative,
            [b'0', ..] => false,
            _ => digits.len() <= INTEGER_DIGITS_MAX,
        };
        let ends_here = !matches!(self.peek(), Some(b'.' | b'e' | b'E'));
        (shape_ok && ends_here).then_some(())
    }

    /// A string in its canonical form; returns the range of its content
    /// and whether it holds an escape.
    fn string(&mut self) -> Option<(Range<usize>, bool)> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            match self.peek()? {
                b'"' => {
                    let content = start..self.at;
                    self.at += 1;
                    return Some((content, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0x00..=0x1F => return None,
                _ => self.at += 1,
            }
        }
    }

    /// One escape as `JSON.stringify` writes it: the two-character forms,
    /// `\u00xx` (lowercase) for the other controls, nothing else.
    fn escape(&mut self) -> Option<()> {
        let next = *self.bytes.get(self.at + 1)?;
        match next {
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {
                self.at += 2;
                Some(())
            }
            b'u' => {
                let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                let lower_hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
                if hex[..2] != *b"00" || !hex.iter().all(lower_hex) {
                    return None;
                }
                let code = u8::from_str_radix(std::str::from_utf8(&hex[2..]).ok()?, 16).ok()?;
                // Controls with a short form must use it.
                let needs_unicode_form =
                    code < 0x20 && !matches!(code, 0x08 | 0x09 | 0x0A | 0x0C | 0x0D);
                needs_unicode_form.then(|| self.at += 6)
            }
            _ => None,
        }
    }

    fn array(&mut self) -> Option<()> {
        self.enter()?;
        self.eat(b'[')?;
        if self.eat(b']').is_none() {
            loop {
                self.value()?;
                if self.eat(b',').is_none() {
                    break;
                }
            }
            self.eat(b']')?;
        }
        self.depth -= 1;
        Some(())
    }

    /// An object whose names hold no escape and increase strictly in
    /// UTF-16 order; `members` collects the top level's spans.
    fn object(&mut self, mut members: Option<&mut Vec<MemberSpan>>) -> Option<()> {
        self.enter()?;
        self.eat(b'{')?;
        if self.eat(b'}').is_none() {
            let mut previous: Option<Range<usize>> = None;
            loop {
                let (name, escaped) = self.string()?;
                if escaped {
                    return None;
                }
                if let Some(previous) = &previous {
                    let order =
                        cmp_utf16(self.text_at(previous.clone()), self.text_at(name.clone()));
                    if order != std::cmp::Ordering::Less {
                        return None;
                    }
                }
                self.eat(b':')?;
                let value_start = self.at;
                self.value()?;
                if let Some(members) = members.as_deref_mut() {
                    members.push(MemberSpan {
                        name: name.clone(),
                        value: value_start..self.at,
                    });
                }
                previous = Some(name);
                if self.eat(b',').is_none() {
                    break;
                }
            }
            self.eat(b'}')?;
        }
        self.depth -= 1;
        Some(())
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= DEPTH_MAX).then_some(())
    }

    /// Text of a range known to fall on character boundaries (between
    /// quotes of a string of valid UTF-8).
    fn text_at(&self, range: Range<usize>) -> &str {
        std::str::from_utf8(&self.bytes[range]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{canonical_json, event_hash};

    /// `text` is accepted, and what it proves holds.
    #[track_caller]
    fn accepted(text: &str) {
        let mut scanner = CanonicalScanner::new();
        let object = scanner.scan(text.as_bytes()).expect("accepted");
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(canonical_json(&value).unwrap(), text);
        assert_eq!(
            object.event_hash("prev"),
            event_hash("prev", &value).unwrap()
        );
    }

    #[track_caller]
    fn refused(text: &str) {
        assert!(
            CanonicalScanner::new().scan(text.as_bytes()).is_none(),
            "{text}"
        );
    }

    #[test]
    fn canonical_objects_are_accepted() {
        accepted("{}");
        accepted(r#"{"hash":"x"}"#);
        accepted(r#"{"a":1,"hash":"x"}"#);
        accepted(r#"{"hash":"x","z":[1,-2,0,true,false,null,{}]}"#);
        accepted(r#"{"a":{"hash":"inner","x":"\u001f\n\"\\"},"hash":"h","p":123456789012345}"#);
        accepted("{\"a\":\"é€😀\u{7f}/\"}");
    }

    /// An event as the log stores it (docs/hash-test-vectors, position 2)
    /// takes the fast path.
    #[test]
    fn a_stored_event_takes_the_fast_path() {
        let line = r#"{"specversion":"1.0","id":"5e2f8a47-b1c9-4d63-a0f7-9b3e6d1c2a85","source":"/cpor","type":"cpor.claim.submitted","subject":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5","time":"2026-11-25T14:03:00Z","datacontenttype":"application/json","position":2,"streamversion":1,"causationid":"c8d1e2f3-4a5b-4c6d-9e7f-8a9b0c1d2e3f","correlationid":"crm-case-88412","data":{"actor":{"type":"partner","partner_id":"P-100","user":"alice@contoso.com","roles":["incentives_admin"]},"claim_id":"b3e4d6a1-57c2-4f89-8d0e-2a6c91f4e7b5","partner_id":"P-100","mpn_id":"4412001","tenant_id":"6f1c2a9e-3b7d-4e58-9a41-0c2d7e5b8f13","domain":"contoso.com","solution_area":"microsoft_365","activity":"usage","product":"microsoft_365_e5","subscription_ids":[],"incentive_eligible":true,"note":"Déploiement Teams – phase 1","review_due_at":"2026-12-03T00:00:00Z"},"hash":"cd4d563132fe1c88bf88dee01eb62ae65af874922e67ac95cfdbf4d9012b1468"}"#;
        let stored = canonical_json(&serde_json::from_str(line).unwrap()).unwrap();
        accepted(&stored);
        let mut scanner = CanonicalScanner::new();
        let object = scanner.scan(stored.as_bytes()).unwrap();
        // The hash the independent Python computation gave for this event
        // after position 1's.
        assert_eq!(
            object.event_hash("82c5abbf64a407c0ba7dc113fb23e24974d232cc2f36f9b93a6d9571900fd82b"),
            "cd4d563132fe1c88bf88dee01eb62ae65af874922e67ac95cfdbf4d9012b1468"
        );
        assert_eq!(object.u64("position"), Some(2));
        assert_eq!(object.string("type"), Some("cpor.claim.submitted"));
    }

    #[test]
    fn what_it_cannot_prove_is_refused() {
        // Not canonical.
        refused(r#"{ "a":1}"#);
        refused(r#"{"b":1,"a":2}"#);
        refused(r#"{"a":1,"a":2}"#);
        refused(r#"{"a":-0}"#);
        refused(r#"{"a":01}"#);
        refused(r#"{"a":1.0}"#);
        refused(r#"{"a":"\/"}"#);
        refused(r#"{"a":"\u0008"}"#);
        refused(r#"{"a":"\u001F"}"#);
        refused(r#"{"a":"\u0041"}"#);
        refused("{\"a\":\"\u{1}\"}");
        refused(r#"{"a":1}x"#);
        refused(r#"[1]"#);
        // Canonical, but beyond the fast path.
        refused(r#"{"a":1.5}"#);
        refused(r#"{"a":1234567890123456}"#);
        refused(r#"{"a\nb":1}"#);
        let deep = format!(
            "{{\"a\":{}{}}}",
            "[".repeat(DEPTH_MAX),
            "]".repeat(DEPTH_MAX)
        );
        refused(&deep);
    }

    #[test]
    fn members_are_read_from_the_text() {
        let text = r#"{"n":12,"s":"plain","t":"a\nb","v":{"k":1}}"#;
        let mut scanner = CanonicalScanner::new();
        let object = scanner.scan(text.as_bytes()).unwrap();
        assert_eq!(object.u64("n"), Some(12));
        assert_eq!(object.string("s"), Some("plain"));
        assert_eq!(
            object.string("t"),
            None,
            "escapes are left to the slow path"
        );
        assert_eq!(object.member("v"), Some(r#"{"k":1}"#));
        assert_eq!(object.u64("s"), None);
        assert_eq!(object.member("missing"), None);
    }
}
