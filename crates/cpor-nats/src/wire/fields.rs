//! Request field types that carry their wire limits (issue 13 item 1).
//!
//! A limit is declared once, in the type of the DTO field it constrains:
//! `product: Name` is 1 to [`NAME_MAX_CHARS`] characters. Two readers take
//! it from there: the parser, through [`Limited::check`], and the JSON
//! Schema generator, through each type's [`JsonSchema`] (`minLength`,
//! `maxLength`, `pattern`, `minItems`, `maxItems`, `minimum`, `maximum`).
//!
//! The types decode as their plain JSON form (`#[serde(transparent)]`) and
//! are checked after the whole body decoded, in the order each command's
//! parser calls `check`: that order is the contract's (shape errors first,
//! then each field in a fixed order, the actor last), and the message names
//! the field as the caller spells it (`actor.roles[]`). Checking inside
//! `Deserialize` instead would name whichever broken field comes first in
//! the body, and lose the field inside the actor (serde buffers an
//! internally tagged enum, so `serde_path_to_error` sees only `actor`).
//!
//! The domain types a request carries ([`Actor`], [`PoeDocument`], [`Mpn`])
//! are decoded through the wire's own DTOs here, which hold these types and
//! convert into the domain's; the domain's types describe stored records,
//! which must stay readable whatever the wire's limits become.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cpor_domain::error::Rejection;
use cpor_domain::limits::MPN_ID_MAX_CHARS;
use cpor_domain::types::{rfc4122, Actor, Mpn, PoeDocument};

use super::{
    invalid, ACTOR_ROLES_MAX, CORRELATION_ID_MAX_CHARS, NAME_MAX_CHARS, TEXT_MAX_CHARS,
    URI_MAX_CHARS,
};

/// A field whose value the parser checks against the limits its type
/// declares.
pub(crate) trait Limited {
    /// `Ok` when the value is within its limits; otherwise `INVALID_COMMAND`
    /// with a message starting with `field`.
    fn check(&self, field: &str) -> Result<(), Rejection>;
}

/// An optional field is checked when present.
impl<T: Limited> Limited for Option<T> {
    fn check(&self, field: &str) -> Result<(), Rejection> {
        match self {
            Some(value) => value.check(field),
            None => Ok(()),
        }
    }
}

/// A field's value as the domain takes it: the plain string of a [`Text`],
/// optional when the field is.
pub(crate) trait IntoPlain {
    type Plain;
    fn into_plain(self) -> Self::Plain;
}

impl<T: IntoPlain> IntoPlain for Option<T> {
    type Plain = Option<T::Plain>;
    fn into_plain(self) -> Self::Plain {
        self.map(T::into_plain)
    }
}

impl<const MIN: usize, const MAX: usize> IntoPlain for Text<MIN, MAX> {
    type Plain = String;
    fn into_plain(self) -> String {
        self.0
    }
}

/// Whether `text` is an ASCII token of 1 to `max` bytes whose first byte
/// passes `first` and every other byte `rest` (partner ids, reason codes,
/// service prefixes).
pub(crate) fn is_token(
    text: &str,
    max: usize,
    first: fn(u8) -> bool,
    rest: fn(u8) -> bool,
) -> bool {
    let bytes = text.as_bytes();
    (1..=max).contains(&bytes.len()) && first(bytes[0]) && bytes[1..].iter().all(|&b| rest(b))
}

/// A string of `MIN` to `MAX` characters (Unicode scalar values, as
/// `str::chars` counts them and JSON Schema's `maxLength` does).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Text<const MIN: usize, const MAX: usize>(pub(crate) String);

impl<const MIN: usize, const MAX: usize> Text<MIN, MAX> {
    pub(crate) fn into_string(self) -> String {
        self.0
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MIN: usize, const MAX: usize> Limited for Text<MIN, MAX> {
    fn check(&self, field: &str) -> Result<(), Rejection> {
        let n = self.0.chars().count();
        if n < MIN || n > MAX {
            return Err(invalid(format!(
                "{field}: must be {MIN} to {MAX} characters, got {n}"
            )));
        }
        Ok(())
    }
}

impl<const MIN: usize, const MAX: usize> JsonSchema for Text<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Text_{MIN}_to_{MAX}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let mut schema = json_schema!({"type": "string", "maxLength": MAX});
        if MIN > 0 {
            schema.insert("minLength".into(), MIN.into());
        }
        schema
    }
}

/// Product names, domain names as written, reviewer and system ids, role
/// strings, document names: 1 to [`NAME_MAX_CHARS`] characters.
pub(crate) type Name = Text<1, NAME_MAX_CHARS>;
/// A user name or a subscription id as the partner writes it: up to
/// [`NAME_MAX_CHARS`] characters (optional fields).
pub(crate) type ShortText = Text<0, NAME_MAX_CHARS>;
/// A required free text (comment, justification, reason): 1 to
/// [`TEXT_MAX_CHARS`] characters.
pub(crate) type FreeText = Text<1, TEXT_MAX_CHARS>;
/// An optional free text (note, approval text, withdrawal reason): up to
/// [`TEXT_MAX_CHARS`] characters, empty allowed.
pub(crate) type OptionalText = Text<0, TEXT_MAX_CHARS>;
/// An MPN id: 1 to [`MPN_ID_MAX_CHARS`] characters.
pub(crate) type MpnId = Text<1, MPN_ID_MAX_CHARS>;
/// A document's address: 1 to [`URI_MAX_CHARS`] characters.
pub(crate) type Uri = Text<1, URI_MAX_CHARS>;
/// A caller's `correlation_id`: up to [`CORRELATION_ID_MAX_CHARS`] characters.
pub(crate) type CorrelationId = Text<0, CORRELATION_ID_MAX_CHARS>;

/// Declares a string type checked against a regular expression that the
/// schema carries as `pattern`; `$matches` is the same rule in code (the
/// crate has no regex engine), and the wire tests hold the two together.
macro_rules! pattern_type {
    ($(#[$doc:meta])* $name:ident, $pattern:literal, $message:expr, $matches:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(transparent)]
        pub(crate) struct $name(pub(crate) String);

        impl $name {
            /// The rule, as the schema's `pattern` states it.
            pub(crate) const PATTERN: &'static str = $pattern;

            /// Whether `text` matches [`Self::PATTERN`].
            pub(crate) fn matches(text: &str) -> bool {
                let matches: fn(&str) -> bool = $matches;
                matches(text)
            }

            pub(crate) fn into_string(self) -> String {
                self.0
            }
        }

        impl Limited for $name {
            fn check(&self, field: &str) -> Result<(), Rejection> {
                if Self::matches(&self.0) {
                    Ok(())
                } else {
                    let message: fn(&str) -> String = $message;
                    Err(invalid(message(field)))
                }
            }
        }

        impl JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({"type": "string", "pattern": Self::PATTERN})
            }
        }
    };
}

pattern_type!(
    /// A partner id (contract §2): one NATS subject token.
    SubjectId,
    "^[A-Za-z0-9_-]{1,64}$",
    |field| format!("{field}: must match {}", SubjectId::PATTERN),
    |text| {
        let id_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        is_token(text, 64, id_byte, id_byte)
    }
);

pattern_type!(
    /// A rejection's reason code, e.g. `NO_PROOF`.
    ReasonCode,
    "^[A-Z][A-Z0-9_]{0,63}$",
    |field| format!("{field}: must be a code like NO_PROOF ({})", ReasonCode::PATTERN),
    |text| is_token(text, 64, |b| b.is_ascii_uppercase(), |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
    })
);

pattern_type!(
    /// A document's SHA-256, 64 hexadecimal digits (either case).
    Sha256Hex,
    "^[0-9a-fA-F]{64}$",
    |field| format!("{field}: must be 64 hexadecimal digits"),
    |text| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
);

/// A list of `MIN` to `MAX` items. Its message differs by list (the
/// contract's wording), so [`List::check_len`] takes it from the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct List<T, const MIN: usize, const MAX: usize>(pub(crate) Vec<T>);

impl<T, const MIN: usize, const MAX: usize> Default for List<T, MIN, MAX> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T, const MIN: usize, const MAX: usize> List<T, MIN, MAX> {
    /// `INVALID_COMMAND` with `message(MIN, MAX, len)` unless the list has
    /// `MIN` to `MAX` items.
    pub(crate) fn check_len(
        &self,
        message: impl FnOnce(usize, usize, usize) -> String,
    ) -> Result<(), Rejection> {
        let n = self.0.len();
        if n < MIN || n > MAX {
            return Err(invalid(message(MIN, MAX, n)));
        }
        Ok(())
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub(crate) fn into_vec(self) -> Vec<T> {
        self.0
    }
}

impl<T: JsonSchema, const MIN: usize, const MAX: usize> JsonSchema for List<T, MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("List_{MIN}_to_{MAX}_of_{}", T::schema_name()).into()
    }

    fn schema_id() -> Cow<'static, str> {
        format!("List<{}, {MIN}, {MAX}>", T::schema_id()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = json_schema!({
            "type": "array",
            "items": generator.subschema_for::<T>(),
            "maxItems": MAX,
        });
        if MIN > 0 {
            schema.insert("minItems".into(), MIN.into());
        }
        schema
    }
}

/// A page size: 1 to [`cpor_log::LIST_LIMIT_MAX`] items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct PageLimit(pub(crate) u64);

impl PageLimit {
    pub(crate) const MIN: u64 = 1;
    pub(crate) const MAX: u64 = cpor_log::LIST_LIMIT_MAX as u64;

    /// `default` when absent, the size when within its limits.
    pub(crate) fn or_default(
        limit: Option<PageLimit>,
        field: &str,
        default: usize,
    ) -> Result<usize, Rejection> {
        match limit {
            None => Ok(default),
            Some(PageLimit(n)) if (Self::MIN..=Self::MAX).contains(&n) => Ok(n as usize),
            Some(_) => Err(invalid(format!(
                "{field}: must be {} to {}",
                Self::MIN,
                Self::MAX
            ))),
        }
    }
}

impl JsonSchema for PageLimit {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PageLimit".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "integer",
            "format": "uint64",
            "minimum": Self::MIN,
            "maximum": Self::MAX,
        })
    }
}

/// Who sends a command. The wire form is `{"type": "...", ...}`.
//
// The request form of [`Actor`]: the same serde shape (tag, names, unknown
// fields refused, `roles` defaulting to none), with the wire's limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[schemars(rename = "Actor")]
pub(crate) enum ActorDto {
    Partner {
        partner_id: SubjectId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<ShortText>,
        #[serde(default)]
        roles: List<Name, 0, ACTOR_ROLES_MAX>,
    },
    Reviewer {
        id: Name,
    },
    Customer {
        #[serde(deserialize_with = "rfc4122::actor_tenant_id")]
        tenant_id: Uuid,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<ShortText>,
    },
    System {
        id: Name,
    },
}

impl ActorDto {
    /// The actor's fields, in order: partner id, user, roles (their number,
    /// then each); or the id; or the customer's user.
    pub(crate) fn check(&self) -> Result<(), Rejection> {
        match self {
            ActorDto::Partner {
                partner_id,
                user,
                roles,
            } => {
                partner_id.check("actor.partner_id")?;
                user.check("actor.user")?;
                roles.check_len(|_, _, _| "actor.roles: too many roles".into())?;
                for role in roles.iter() {
                    role.check("actor.roles[]")?;
                }
                Ok(())
            }
            ActorDto::Reviewer { id } | ActorDto::System { id } => id.check("actor.id"),
            ActorDto::Customer { user, .. } => user.check("actor.user"),
        }
    }
}

impl From<ActorDto> for Actor {
    fn from(actor: ActorDto) -> Actor {
        match actor {
            ActorDto::Partner {
                partner_id,
                user,
                roles,
            } => Actor::Partner {
                partner_id: partner_id.into_string(),
                user: user.map(Text::into_string),
                roles: roles
                    .into_vec()
                    .into_iter()
                    .map(Text::into_string)
                    .collect(),
            },
            ActorDto::Reviewer { id } => Actor::Reviewer {
                id: id.into_string(),
            },
            ActorDto::Customer { tenant_id, user } => Actor::Customer {
                tenant_id,
                user: user.map(Text::into_string),
            },
            ActorDto::System { id } => Actor::System {
                id: id.into_string(),
            },
        }
    }
}

/// One proof-of-execution document: a reference, never the file itself.
//
// The request form of [`PoeDocument`], with the wire's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PoeDocument")]
pub(crate) struct PoeDocumentDto {
    name: Name,
    uri: Uri,
    sha256: Sha256Hex,
}

/// Proof-of-execution documents in one request: up to
/// [`super::POE_DOCUMENTS_MAX`], at least `MIN`.
pub(crate) type PoeDocuments<const MIN: usize> =
    List<PoeDocumentDto, MIN, { super::POE_DOCUMENTS_MAX }>;

impl<const MIN: usize> PoeDocuments<MIN> {
    /// The number of documents, then each one's name, uri and sha256.
    pub(crate) fn check(&self, field: &str) -> Result<(), Rejection> {
        self.check_len(|min, max, n| {
            format!("{field}: must list {min} to {max} documents, got {n}")
        })?;
        for (i, doc) in self.iter().enumerate() {
            doc.name.check(&format!("{field}[{i}].name"))?;
            doc.uri.check(&format!("{field}[{i}].uri"))?;
            doc.sha256.check(&format!("{field}[{i}].sha256"))?;
        }
        Ok(())
    }

    pub(crate) fn into_domain(self) -> Vec<PoeDocument> {
        self.into_vec()
            .into_iter()
            .map(|doc| PoeDocument {
                name: doc.name.into_string(),
                uri: doc.uri.into_string(),
                sha256: doc.sha256.into_string(),
            })
            .collect()
    }
}

// The request form of [`Mpn`], with the wire's limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Mpn")]
pub(crate) struct MpnDto {
    pub(crate) mpn_id: MpnId,
    pub(crate) incentive_enrolled: bool,
}

impl From<MpnDto> for Mpn {
    fn from(mpn: MpnDto) -> Mpn {
        Mpn {
            mpn_id: mpn.mpn_id.into_string(),
            incentive_enrolled: mpn.incentive_enrolled,
        }
    }
}
