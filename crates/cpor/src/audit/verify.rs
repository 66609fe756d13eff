//! `cpor verify`'s checks, one event at a time (contract §9): positions
//! gapless from the first one, per-aggregate versions gapless, every `hash`
//! recomputed and chained. Lines not byte-for-byte in the RFC 8785 form the
//! service writes (reformatted, keys reordered) are counted and reported:
//! the hash covers the content, not the formatting, so they fail only in
//! strict mode. Pure: it sees bytes, never the service.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::Value;
use uuid::Uuid;

use cpor_domain::event::AggregateKind;
use cpor_jcs::{event_hash, write_canonical_json, CanonicalObject, CanonicalScanner};

/// Where a failure is: the position the log should have there, and the
/// line of the input (files only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The first bad position: the one expected at this point of the input
    /// (for an unreadable line, a gap or a reordering), else the event's own.
    pub(crate) position: Option<u64>,
    pub(crate) line: Option<u64>,
    pub(crate) what: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.position, self.line) {
            (Some(p), Some(l)) => write!(f, "position {p} (line {l}): {}", self.what),
            (Some(p), None) => write!(f, "position {p}: {}", self.what),
            (None, Some(l)) => write!(f, "line {l} (the first event): {}", self.what),
            (None, None) => write!(f, "the first event: {}", self.what),
        }
    }
}

/// An aggregate, compactly: most ids are uuids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AggregateKey {
    Uuid(AggregateKind, u128),
    Other(AggregateKind, Box<str>),
}

impl AggregateKey {
    fn of(kind: AggregateKind, id: &str) -> AggregateKey {
        match Uuid::parse_str(id) {
            Ok(uuid) if uuid.hyphenated().to_string() == id => {
                AggregateKey::Uuid(kind, uuid.as_u128())
            }
            _ => AggregateKey::Other(kind, id.into()),
        }
    }
}

/// The running verification of one input.
#[derive(Default)]
pub(crate) struct Verifier {
    first_position: Option<u64>,
    last_position: u64,
    last_hash: String,
    events: u64,
    versions: HashMap<AggregateKey, u64>,
    per_kind: BTreeMap<&'static str, u64>,
    canonical: String,
    /// The fast path's buffers.
    scanner: CanonicalScanner,
    /// Fail on a line that is not in canonical form (else count it).
    strict: bool,
    non_canonical: u64,
    first_non_canonical: Option<u64>,
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) events: u64,
    pub(crate) first_position: Option<u64>,
    pub(crate) last_position: Option<u64>,
    pub(crate) aggregates: u64,
    pub(crate) per_kind: BTreeMap<&'static str, u64>,
    pub(crate) last_hash: Option<String>,
    /// The first event's hash could not be recomputed (its predecessor is
    /// not in the input) and was taken as given.
    pub(crate) first_hash_trusted: bool,
    /// Events whose bytes are not the canonical form (content intact).
    pub(crate) non_canonical: u64,
    pub(crate) first_non_canonical: Option<u64>,
}

/// The attributes the checks read, from either path.
struct Attributes<'a> {
    position: u64,
    type_name: Option<&'a str>,
    subject: Option<&'a str>,
    version: Option<u64>,
    hash: Option<&'a str>,
    /// Whether the bytes are canonical: `None` until known (the fast path
    /// knows they are).
    canonical: Option<bool>,
    hasher: Hasher<'a>,
}

/// How the event's hash is recomputed.
enum Hasher<'a> {
    /// From the canonical bytes themselves (fast path).
    Canonical(CanonicalObject<'a, 'a>),
    /// From the parsed value (general path).
    Value(&'a Value),
}

impl Hasher<'_> {
    fn event_hash(&self, previous: &str) -> Result<String, String> {
        match self {
            Hasher::Canonical(object) => Ok(object.event_hash(previous)),
            Hasher::Value(value) => {
                event_hash(previous, value).map_err(|e| format!("cannot hash the event: {e}"))
            }
        }
    }
}

impl<'a> Attributes<'a> {
    /// The fast path's attributes: `None` unless every attribute the
    /// checks read is there in its plain form (a positive integer
    /// position, strings without escapes), so that every failure is
    /// worded by the general path.
    fn of_canonical(object: CanonicalObject<'a, 'a>) -> Option<Attributes<'a>> {
        Some(Attributes {
            position: object.u64("position").filter(|p| *p >= 1)?,
            type_name: Some(object.string("type")?),
            subject: Some(object.string("subject")?),
            version: Some(object.u64("streamversion")?),
            hash: Some(object.string("hash")?),
            canonical: Some(true),
            hasher: Hasher::Canonical(object),
        })
    }
}

/// The event as JSON and its `position`: an object with a positive
/// integer `position`, or a failure that says what the line is instead.
fn parse_event(bytes: &[u8]) -> Result<(Value, u64), String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        if bytes.is_empty() {
            "unparsable line: it is empty".to_string()
        } else {
            format!("unparsable line: not a JSON CloudEvent ({e})")
        }
    })?;
    let Value::Object(attributes) = &value else {
        return Err("unparsable line: a JSON value that is not a CloudEvent object".into());
    };
    let position = attributes
        .get("position")
        .and_then(Value::as_u64)
        .filter(|p| *p >= 1)
        .ok_or_else(|| "no valid `position` attribute (a positive integer)".to_string())?;
    Ok((value, position))
}

impl Verifier {
    pub(crate) fn new() -> Verifier {
        Verifier::default()
    }

    /// A verifier that also fails on bytes not in canonical form.
    pub(crate) fn strict() -> Verifier {
        Verifier {
            strict: true,
            ..Verifier::default()
        }
    }

    /// Checks the next event. `stored_position` is where the source filed
    /// it (the data dir's key, a stream message's position), `line` the
    /// input line for files.
    ///
    /// Bytes already in canonical form (every event the service stores)
    /// take the fast path: [`cpor_jcs::CanonicalScanner`] proves them
    /// canonical and hashes them without parsing; anything it cannot prove
    /// takes the general path, which decides and words every failure.
    pub(crate) fn check(
        &mut self,
        bytes: &[u8],
        stored_position: Option<u64>,
        line: Option<u64>,
    ) -> Result<(), Failure> {
        let mut scanner = std::mem::take(&mut self.scanner);
        let result = match scanner.scan(bytes).and_then(Attributes::of_canonical) {
            Some(attributes) => self.check_attributes(attributes, stored_position, line),
            None => self.check_parsed(bytes, stored_position, line),
        };
        self.scanner = scanner;
        result
    }

    /// The general path: parse, hash the value, compare with its canonical
    /// form.
    fn check_parsed(
        &mut self,
        bytes: &[u8],
        stored_position: Option<u64>,
        line: Option<u64>,
    ) -> Result<(), Failure> {
        let expected = self.first_position.map(|_| self.last_position + 1);
        let here = expected.or(stored_position);
        let (value, position) = parse_event(bytes).map_err(|what| Failure {
            position: here,
            line,
            what,
        })?;
        let Value::Object(members) = &value else {
            unreachable!("parse_event returns objects only");
        };
        let canonical = self.is_canonical(&value, bytes).map_err(|what| Failure {
            position: Some(position),
            line,
            what,
        });
        let attributes = Attributes {
            position,
            type_name: members.get("type").and_then(Value::as_str),
            subject: members.get("subject").and_then(Value::as_str),
            version: members.get("streamversion").and_then(Value::as_u64),
            hash: members.get("hash").and_then(Value::as_str),
            canonical: Some(canonical?),
            hasher: Hasher::Value(&value),
        };
        self.check_attributes(attributes, stored_position, line)
    }

    /// The checks of one event, whichever path read its attributes.
    fn check_attributes(
        &mut self,
        attributes: Attributes<'_>,
        stored_position: Option<u64>,
        line: Option<u64>,
    ) -> Result<(), Failure> {
        let expected = self.first_position.map(|_| self.last_position + 1);
        let position = attributes.position;
        let fail_at = |position: Option<u64>, what: String| Failure {
            position,
            line,
            what,
        };
        self.check_position(expected, stored_position, position)
            .map_err(|(at, what)| fail_at(Some(at), what))?;
        let at = Some(position);
        let (key, kind, version) = self
            .check_version(&attributes)
            .map_err(|what| fail_at(at, what))?;
        let stored_hash = self
            .check_hash(&attributes)
            .map_err(|what| fail_at(at, what))?;
        if attributes.canonical == Some(false) {
            if self.strict {
                return Err(fail_at(at, "not in canonical form: the bytes differ from the RFC 8785 serialization the service writes (reformatted or edited; the hash covers the content only)".to_string()));
            }
            self.non_canonical += 1;
            self.first_non_canonical.get_or_insert(position);
        }

        if self.first_position.is_none() {
            self.first_position = Some(position);
        }
        if self.versions.insert(key, version).is_none() {
            *self.per_kind.entry(kind.as_str()).or_default() += 1;
        }
        self.last_position = position;
        self.last_hash.clear();
        self.last_hash.push_str(stored_hash);
        self.events += 1;
        Ok(())
    }

    /// Positions: gapless from the first one, and where the source filed
    /// the event. A failure names the position it concerns.
    fn check_position(
        &self,
        expected: Option<u64>,
        stored_position: Option<u64>,
        position: u64,
    ) -> Result<(), (u64, String)> {
        if let Some(expected) = expected {
            if position > expected {
                let missing = position - expected;
                return Err((
                expected,
                format!(
                    "missing or out of order: expected position {expected} after {}, found position {position} ({missing} event(s) absent here)",
                    self.last_position
                ),
            ));
            }
            if position < expected {
                return Err((
                expected,
                format!(
                    "out of order: expected position {expected} after {}, found position {position} again (a duplicated or reordered event)",
                    self.last_position
                ),
            ));
            }
        }
        if let Some(stored) = stored_position {
            if stored != position {
                return Err((
                    stored,
                    format!("stored as position {stored} but the event says position {position}"),
                ));
            }
        }
        Ok(())
    }

    /// The aggregate's version follows the one before (from 1 when the
    /// input starts at the log's start).
    fn check_version(
        &self,
        attributes: &Attributes<'_>,
    ) -> Result<(AggregateKey, AggregateKind, u64), String> {
        let position = attributes.position;
        let type_name = attributes
            .type_name
            .ok_or_else(|| "no `type` attribute".to_string())?;
        let kind = parse_type(type_name).ok_or_else(|| {
            format!("unknown type {type_name:?} (expected cpor.{{aggregate}}.{{event}})")
        })?;
        let subject = attributes
            .subject
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "no `subject` attribute (the aggregate id)".to_string())?;
        let version = attributes
            .version
            .filter(|v| *v >= 1)
            .ok_or_else(|| "no valid `streamversion` attribute (a positive integer)".to_string())?;
        let key = AggregateKey::of(kind, subject);
        let from_start = self.first_position.unwrap_or(position) == 1;
        match self.versions.get(&key) {
            Some(&previous) if version != previous + 1 => {
                let what = if version > previous + 1 {
                    format!(
                    "version skip: {} {subject} goes from streamversion {previous} to {version} (version {} missing)",
                    kind.as_str(),
                    previous + 1
                )
                } else {
                    format!(
                        "version repeat: {} {subject} has streamversion {version} after {previous}",
                        kind.as_str()
                    )
                };
                return Err(what);
            }
            None if from_start && version != 1 => {
                return Err(format!(
                    "version skip: the first event of {} {subject} has streamversion {version}, not 1",
                    kind.as_str()
                ));
            }
            _ => {}
        }

        Ok((key, kind, version))
    }

    /// The event's hash chains to the previous one (recomputed), or is at
    /// least a SHA-256 for the first event of an input that starts mid-log.
    fn check_hash<'a>(&self, attributes: &Attributes<'a>) -> Result<&'a str, String> {
        let position = attributes.position;
        let stored_hash = attributes
            .hash
            .ok_or_else(|| "no `hash` attribute".to_string())?;
        let chained = self.first_position.is_some() || position == 1;
        if chained {
            let previous = if self.first_position.is_some() {
                self.last_hash.as_str()
            } else {
                ""
            };
            let recomputed = attributes.hasher.event_hash(previous)?;
            if recomputed != stored_hash {
                return Err(format!(
                    "hash mismatch: the event says {stored_hash} but its content chained to the previous hash gives {recomputed} \
                     (this event was altered{})",
                    match position.checked_sub(1).filter(|p| *p > 0) {
                        Some(before) => format!(", or the event at position {before} before it was replaced by another one"),
                        None => String::new(),
                    }
                ));
            }
        } else if !is_sha256_hex(stored_hash) {
            return Err(format!(
                "hash {stored_hash:?} is not a lowercase hex SHA-256"
            ));
        }

        Ok(stored_hash)
    }

    /// Whether the bytes are the RFC 8785 serialization of `value`, which
    /// the service writes.
    fn is_canonical(&mut self, value: &Value, bytes: &[u8]) -> Result<bool, String> {
        self.canonical.clear();
        write_canonical_json(value, &mut self.canonical)
            .map_err(|e| format!("no canonical form: {e}"))?;
        Ok(self.canonical.as_bytes() == bytes)
    }

    pub(crate) fn events(&self) -> u64 {
        self.events
    }

    pub(crate) fn summary(&self) -> Summary {
        Summary {
            events: self.events,
            first_position: self.first_position,
            last_position: self.first_position.map(|_| self.last_position),
            aggregates: self.versions.len() as u64,
            per_kind: self.per_kind.clone(),
            last_hash: self.first_position.map(|_| self.last_hash.clone()),
            first_hash_trusted: self.first_position.is_some_and(|p| p > 1),
            non_canonical: self.non_canonical,
            first_non_canonical: self.first_non_canonical,
        }
    }
}

fn parse_type(type_name: &str) -> Option<AggregateKind> {
    let mut parts = type_name.splitn(3, '.');
    let (prefix, kind, name) = (parts.next()?, parts.next()?, parts.next()?);
    (prefix == cpor_log::envelope::EVENT_TYPE_PREFIX && !name.is_empty())
        .then(|| AggregateKind::parse(kind))
        .flatten()
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Summary {
    /// The human summary `cpor verify` prints on success.
    pub(crate) fn render(&self, source: &str) -> String {
        let mut out = String::new();
        let (Some(first), Some(last)) = (self.first_position, self.last_position) else {
            out.push_str(&format!(
                "OK: {source} holds no events: nothing to verify\n"
            ));
            return out;
        };
        out.push_str(&format!("OK: {source}\n"));
        out.push_str(&format!(
            "  events:     {} (positions {first}..{last}, gapless)\n",
            self.events
        ));
        let kinds: Vec<String> = self
            .per_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        out.push_str(&format!(
            "  aggregates: {} ({}), versions gapless\n",
            self.aggregates,
            kinds.join(", ")
        ));
        if self.first_hash_trusted {
            out.push_str(&format!(
                "  hash chain: intact from position {first}; the hash of position {first} is taken on trust \
                 (it chains to position {}, which this input does not hold), and aggregates may start past version 1\n",
                first - 1
            ));
        } else {
            out.push_str("  hash chain: intact from position 1\n");
        }
        out.push_str(&format!(
            "  last hash:  {}\n",
            self.last_hash.as_deref().unwrap_or("")
        ));
        if let Some(first) = self.first_non_canonical {
            out.push_str(&format!(
                "  note:       {} event(s) are not byte-for-byte in the canonical form the service writes, \
                 the first at position {first}: their content matches the hashes, their formatting was changed \
                 (--strict fails on this)\n",
                self.non_canonical
            ));
        }
        out
    }

    pub(crate) fn to_json(&self) -> Value {
        serde_json::json!({
            "ok": true,
            "events": self.events,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "aggregates": self.aggregates,
            "aggregates_by_kind": self.per_kind,
            "last_hash": self.last_hash,
            "first_hash_trusted": self.first_hash_trusted,
            "non_canonical_events": self.non_canonical,
            "first_non_canonical_position": self.first_non_canonical,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpor_jcs::canonical_json;
    use serde_json::json;

    /// A chain of `n` events on two claims, as the service would seal them.
    fn chain(n: u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut previous = String::new();
        let claims = [
            "11111111-1111-4111-8111-111111111111",
            "22222222-2222-4222-8222-222222222222",
        ];
        let mut versions = [0u64; 2];
        for position in 1..=n {
            let which = (position % 2) as usize;
            versions[which] += 1;
            let mut event = json!({
                "specversion": "1.0",
                "id": format!("00000000-0000-4000-8000-{position:012}"),
                "source": "/cpor",
                "type": if versions[which] == 1 { "cpor.claim.submitted" } else { "cpor.claim.comment_added" },
                "subject": claims[which],
                "time": "2026-11-25T09:00:00Z",
                "data": {"claim_id": claims[which], "text": format!("event {position}")},
                "position": position,
                "streamversion": versions[which],
                "causationid": "33333333-3333-4333-8333-333333333333",
            });
            let hash = event_hash(&previous, &event).unwrap();
            event["hash"] = hash.clone().into();
            previous = hash;
            out.push(canonical_json(&event).unwrap().into_bytes());
        }
        out
    }

    fn run(lines: &[Vec<u8>]) -> Result<Summary, Failure> {
        let mut verifier = Verifier::new();
        for (i, line) in lines.iter().enumerate() {
            verifier.check(line, None, Some(i as u64 + 1))?;
        }
        Ok(verifier.summary())
    }

    #[test]
    fn an_intact_chain_verifies() {
        let summary = run(&chain(6)).unwrap();
        assert_eq!(summary.events, 6);
        assert_eq!(
            (summary.first_position, summary.last_position),
            (Some(1), Some(6))
        );
        assert_eq!(summary.aggregates, 2);
        assert!(!summary.first_hash_trusted);
        assert!(summary.render("x").contains("intact from position 1"));
    }

    #[test]
    fn a_suffix_verifies_with_its_first_hash_on_trust() {
        let lines = chain(6);
        let summary = run(&lines[2..]).unwrap();
        assert_eq!(summary.first_position, Some(3));
        assert!(summary.first_hash_trusted);
        assert!(
            summary.render("x").contains("taken on trust"),
            "{}",
            summary.render("x")
        );
    }

    #[test]
    fn empty_input_is_ok() {
        let summary = run(&[]).unwrap();
        assert_eq!(summary.events, 0);
        assert!(summary.render("x").contains("no events"));
    }

    #[test]
    fn each_tampering_names_the_first_bad_position() {
        let lines = chain(6);
        // An edited value.
        let mut edited = lines.clone();
        edited[3] = String::from_utf8(edited[3].clone())
            .unwrap()
            .replace("event 4", "event X")
            .into_bytes();
        let failure = run(&edited).unwrap_err();
        assert_eq!(failure.position, Some(4));
        assert!(failure.what.contains("hash mismatch"), "{failure}");
        // A dropped line.
        let mut dropped = lines.clone();
        dropped.remove(2);
        let failure = run(&dropped).unwrap_err();
        assert_eq!(failure.position, Some(3));
        assert!(failure.what.contains("missing"), "{failure}");
        // Two lines swapped.
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        let failure = run(&swapped).unwrap_err();
        assert_eq!(failure.position, Some(2));
        // A truncated line.
        let mut truncated = lines.clone();
        truncated[4].truncate(40);
        let failure = run(&truncated).unwrap_err();
        assert_eq!((failure.position, failure.line), (Some(5), Some(5)));
        assert!(failure.what.contains("unparsable"), "{failure}");
        // A duplicated line.
        let mut duplicated = lines.clone();
        duplicated.insert(3, lines[2].clone());
        let failure = run(&duplicated).unwrap_err();
        assert_eq!(failure.position, Some(4));
        assert!(failure.what.contains("out of order"), "{failure}");
        // Reformatted but equal content.
        let mut spaced = lines.clone();
        spaced[1] = serde_json::to_vec_pretty(&serde_json::from_slice::<Value>(&lines[1]).unwrap())
            .unwrap();
        let summary = run(&spaced).unwrap();
        assert_eq!(
            (summary.non_canonical, summary.first_non_canonical),
            (1, Some(2))
        );
        assert!(
            summary.render("x").contains("position 2"),
            "{}",
            summary.render("x")
        );
        let mut strict = Verifier::strict();
        strict.check(&spaced[0], None, Some(1)).unwrap();
        let failure = strict.check(&spaced[1], None, Some(2)).unwrap_err();
        assert_eq!(failure.position, Some(2));
        assert!(failure.what.contains("canonical"), "{failure}");
        // An empty line.
        let mut blank = lines.clone();
        blank.insert(5, Vec::new());
        let failure = run(&blank).unwrap_err();
        assert_eq!((failure.position, failure.line), (Some(6), Some(6)));
    }

    #[test]
    fn a_version_skip_is_named_even_with_a_valid_chain() {
        // Re-seal a chain whose claim versions skip: the hashes are right,
        // the versions are not.
        let mut lines = Vec::new();
        let mut previous = String::new();
        for (position, version) in [(1u64, 1u64), (2, 2), (3, 4)] {
            let mut event = json!({
                "type": "cpor.claim.comment_added", "subject": "c1", "position": position,
                "streamversion": version, "time": "2026-11-25T09:00:00Z", "data": {},
            });
            let hash = event_hash(&previous, &event).unwrap();
            event["hash"] = hash.clone().into();
            previous = hash;
            lines.push(canonical_json(&event).unwrap().into_bytes());
        }
        let failure = run(&lines).unwrap_err();
        assert_eq!(failure.position, Some(3));
        assert!(failure.what.contains("version skip"), "{failure}");
        assert!(failure.what.contains("version 3 missing"), "{failure}");
    }

    #[test]
    fn a_stored_key_that_disagrees_is_named() {
        let lines = chain(2);
        let mut verifier = Verifier::new();
        verifier.check(&lines[0], Some(1), None).unwrap();
        let failure = verifier.check(&lines[1], Some(7), None).unwrap_err();
        assert!(failure.what.contains("stored as position 7"), "{failure}");
    }
}
