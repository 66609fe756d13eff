//! The `views` tree's values: the domain's read models ([`ClaimView`],
//! [`CaseView`], [`CommentView`]) in a compact binary form (postcard, as
//! the command records), since store layout 3.
//!
//! Layout 2 stored them as JSON: ~700 bytes a claim view, parsed back into
//! a `serde_json::Value` by every query, which then filtered and judged
//! visibility by JSON field names. Now a query decodes the stored bytes
//! into the domain's own types, and asks the domain's own rules of them
//! (`Visibility::sees_view`, `ClaimView::in_open_case`); the JSON a client
//! sees is made from the typed view at the wire (`cpor-nats`), exactly as
//! before.
//!
//! The encoding, per value: postcard of the `Stored*` struct below (fields
//! in declaration order, no names; integers as varints; ids as 16 bytes
//! with a length byte; an instant as seconds since the epoch and
//! nanoseconds, two varints instead of a 20-byte RFC 3339 string; enums by
//! variant index). So **the order of these fields, and of the variants of
//! the domain enums they hold** (`ClaimStatus`, `CaseStatus`,
//! `SolutionArea`, `Activity`), is part of the store layout: changing
//! either needs a new layout version, whose upgrade rewrites the views
//! from the log (`migrate`). The views are derived, so that costs a
//! rebuild, never data.
//!
//! Why not postcard of the domain types directly: their serde forms are
//! the wire's (times as RFC 3339 strings, the actor an internally tagged
//! enum that only a self-describing format can decode).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use cpor_domain::types::{Activity, Actor, CaseStatus, ClaimStatus, SolutionArea, Timestamp};
use cpor_domain::view::{CaseView, ClaimView, CommentView};

use crate::LogError;

/// An instant as (seconds since 1970-01-01T00:00:00Z, nanoseconds).
#[derive(Serialize, Deserialize)]
struct Instant(i64, u32);

impl Instant {
    fn of(time: &Timestamp) -> Instant {
        Instant(time.timestamp(), time.timestamp_subsec_nanos())
    }

    fn time(&self) -> Result<Timestamp, LogError> {
        Timestamp::from_timestamp(self.0, self.1).ok_or_else(|| {
            corrupt(
                "view",
                format!("instant {}.{} out of range", self.0, self.1),
            )
        })
    }
}

fn optional_time(time: &Option<Instant>) -> Result<Option<Timestamp>, LogError> {
    time.as_ref().map(Instant::time).transpose()
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("stored {what}: {error}"))
}

fn encode(value: &impl Serialize) -> Vec<u8> {
    // Serializing into a Vec fails only for types postcard cannot
    // represent, which these structs are not.
    postcard::to_allocvec(value).expect("stored views serialize")
}

/// [`ClaimView`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredClaim<'a> {
    claim_id: Uuid,
    partner_id: Cow<'a, str>,
    mpn_id: Cow<'a, str>,
    tenant_id: Uuid,
    solution_area: SolutionArea,
    activity: Activity,
    product: Cow<'a, str>,
    subscription_ids: Cow<'a, [Uuid]>,
    status: ClaimStatus,
    reason: Option<Cow<'a, str>>,
    incentive_eligible: bool,
    disputed: bool,
    overdue: bool,
    arbitration_case_id: Option<Uuid>,
    submitted_at: Instant,
    review_due_at: Option<Instant>,
    partner_response_due_at: Option<Instant>,
    decided_at: Option<Instant>,
    version: u64,
    updated_at: Instant,
}

/// The stored bytes of a claim view.
pub(crate) fn encode_claim(view: &ClaimView) -> Vec<u8> {
    encode(&StoredClaim {
        claim_id: view.claim_id,
        partner_id: Cow::Borrowed(&view.partner_id),
        mpn_id: Cow::Borrowed(&view.mpn_id),
        tenant_id: view.tenant_id,
        solution_area: view.solution_area,
        activity: view.activity,
        product: Cow::Borrowed(&view.product),
        subscription_ids: Cow::Borrowed(&view.subscription_ids),
        status: view.status,
        reason: view.reason.as_deref().map(Cow::Borrowed),
        incentive_eligible: view.incentive_eligible,
        disputed: view.disputed,
        overdue: view.overdue,
        arbitration_case_id: view.arbitration_case_id,
        submitted_at: Instant::of(&view.submitted_at),
        review_due_at: view.review_due_at.as_ref().map(Instant::of),
        partner_response_due_at: view.partner_response_due_at.as_ref().map(Instant::of),
        decided_at: view.decided_at.as_ref().map(Instant::of),
        version: view.version,
        updated_at: Instant::of(&view.updated_at),
    })
}

/// The claim view stored as `bytes`.
///
/// # Errors
/// [`LogError::Corrupt`] when they are not a stored claim view.
pub(crate) fn decode_claim(bytes: &[u8]) -> Result<ClaimView, LogError> {
    let s: StoredClaim<'_> = postcard::from_bytes(bytes).map_err(|e| corrupt("claim view", e))?;
    Ok(ClaimView {
        claim_id: s.claim_id,
        partner_id: s.partner_id.into_owned(),
        mpn_id: s.mpn_id.into_owned(),
        tenant_id: s.tenant_id,
        solution_area: s.solution_area,
        activity: s.activity,
        product: s.product.into_owned(),
        subscription_ids: s.subscription_ids.into_owned(),
        status: s.status,
        reason: s.reason.map(Cow::into_owned),
        incentive_eligible: s.incentive_eligible,
        disputed: s.disputed,
        overdue: s.overdue,
        arbitration_case_id: s.arbitration_case_id,
        submitted_at: s.submitted_at.time()?,
        review_due_at: optional_time(&s.review_due_at)?,
        partner_response_due_at: optional_time(&s.partner_response_due_at)?,
        decided_at: optional_time(&s.decided_at)?,
        version: s.version,
        updated_at: s.updated_at.time()?,
    })
}

/// [`CaseView`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredCase<'a> {
    case_id: Uuid,
    tenant_id: Uuid,
    product: Cow<'a, str>,
    activity: Activity,
    status: CaseStatus,
    claim_ids: Cow<'a, [Uuid]>,
    incumbent_claim_id: Option<Uuid>,
    winner_claim_id: Option<Uuid>,
    opened_at: Instant,
    closed_at: Option<Instant>,
}

/// The stored bytes of a case view.
pub(crate) fn encode_case(view: &CaseView) -> Vec<u8> {
    encode(&StoredCase {
        case_id: view.case_id,
        tenant_id: view.tenant_id,
        product: Cow::Borrowed(&view.product),
        activity: view.activity,
        status: view.status,
        claim_ids: Cow::Borrowed(&view.claim_ids),
        incumbent_claim_id: view.incumbent_claim_id,
        winner_claim_id: view.winner_claim_id,
        opened_at: Instant::of(&view.opened_at),
        closed_at: view.closed_at.as_ref().map(Instant::of),
    })
}

/// The case view stored as `bytes`.
///
/// # Errors
/// [`LogError::Corrupt`] when they are not a stored case view.
pub(crate) fn decode_case(bytes: &[u8]) -> Result<CaseView, LogError> {
    let s: StoredCase<'_> = postcard::from_bytes(bytes).map_err(|e| corrupt("case view", e))?;
    Ok(CaseView {
        case_id: s.case_id,
        tenant_id: s.tenant_id,
        product: s.product.into_owned(),
        activity: s.activity,
        status: s.status,
        claim_ids: s.claim_ids.into_owned(),
        incumbent_claim_id: s.incumbent_claim_id,
        winner_claim_id: s.winner_claim_id,
        opened_at: s.opened_at.time()?,
        closed_at: optional_time(&s.closed_at)?,
    })
}

/// [`Actor`] as stored: externally tagged (postcard cannot decode the
/// wire's `{"type": …}` form, which needs a self-describing format).
#[derive(Serialize, Deserialize)]
enum StoredActor<'a> {
    Partner {
        partner_id: Cow<'a, str>,
        user: Option<Cow<'a, str>>,
        roles: Cow<'a, [String]>,
    },
    Reviewer {
        id: Cow<'a, str>,
    },
    Customer {
        tenant_id: Uuid,
        user: Option<Cow<'a, str>>,
    },
    System {
        id: Cow<'a, str>,
    },
}

impl<'a> StoredActor<'a> {
    fn of(actor: &'a Actor) -> StoredActor<'a> {
        let text = |t: &'a Option<String>| t.as_deref().map(Cow::Borrowed);
        match actor {
            Actor::Partner {
                partner_id,
                user,
                roles,
            } => StoredActor::Partner {
                partner_id: Cow::Borrowed(partner_id),
                user: text(user),
                roles: Cow::Borrowed(roles),
            },
            Actor::Reviewer { id } => StoredActor::Reviewer {
                id: Cow::Borrowed(id),
            },
            Actor::Customer { tenant_id, user } => StoredActor::Customer {
                tenant_id: *tenant_id,
                user: text(user),
            },
            Actor::System { id } => StoredActor::System {
                id: Cow::Borrowed(id),
            },
        }
    }

    fn into_actor(self) -> Actor {
        let text = |t: Option<Cow<'a, str>>| t.map(Cow::into_owned);
        match self {
            StoredActor::Partner {
                partner_id,
                user,
                roles,
            } => Actor::Partner {
                partner_id: partner_id.into_owned(),
                user: text(user),
                roles: roles.into_owned(),
            },
            StoredActor::Reviewer { id } => Actor::Reviewer {
                id: id.into_owned(),
            },
            StoredActor::Customer { tenant_id, user } => Actor::Customer {
                tenant_id,
                user: text(user),
            },
            StoredActor::System { id } => Actor::System {
                id: id.into_owned(),
            },
        }
    }
}

/// [`CommentView`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredComment<'a> {
    at: Instant,
    author: StoredActor<'a>,
    text: Cow<'a, str>,
    system: bool,
}

/// The stored bytes of a conversation entry.
pub(crate) fn encode_comment(comment: &CommentView) -> Vec<u8> {
    encode(&StoredComment {
        at: Instant::of(&comment.at),
        author: StoredActor::of(&comment.author),
        text: Cow::Borrowed(&comment.text),
        system: comment.system,
    })
}

/// The conversation entry stored as `bytes`.
///
/// # Errors
/// [`LogError::Corrupt`] when they are not a stored comment.
pub(crate) fn decode_comment(bytes: &[u8]) -> Result<CommentView, LogError> {
    let s: StoredComment<'_> = postcard::from_bytes(bytes).map_err(|e| corrupt("comment", e))?;
    Ok(CommentView {
        at: s.at.time()?,
        author: s.author.into_actor(),
        text: s.text.into_owned(),
        system: s.system,
    })
}

/// A stored value described for a person (the rebuild's differences):
/// the read model as JSON when it decodes as `kind`, else its bytes in hex.
pub(crate) fn describe(kind: crate::keys::KeyKind, bytes: &[u8]) -> String {
    use crate::keys::KeyKind;
    let json = match kind {
        KeyKind::ClaimView => decode_claim(bytes).ok().map(|v| serde_json::to_string(&v)),
        KeyKind::CaseView => decode_case(bytes).ok().map(|v| serde_json::to_string(&v)),
        KeyKind::Comment => decode_comment(bytes)
            .ok()
            .map(|v| serde_json::to_string(&v)),
        _ => None,
    };
    match json {
        Some(Ok(json)) => json,
        _ => format!(
            "0x{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpor_domain::types::ActorKind;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn claim() -> ClaimView {
        ClaimView {
            claim_id: Uuid::from_u128(1),
            partner_id: "P-100".into(),
            mpn_id: "4412001".into(),
            tenant_id: Uuid::from_u128(2),
            solution_area: SolutionArea::Microsoft365,
            activity: Activity::RevenueAssociation,
            product: "dynamics_365_sales".into(),
            subscription_ids: vec![Uuid::from_u128(3), Uuid::from_u128(4)],
            status: ClaimStatus::PartnerActionRequired,
            reason: Some("LOST_ARBITRATION".into()),
            incentive_eligible: true,
            disputed: true,
            overdue: false,
            arbitration_case_id: Some(Uuid::from_u128(5)),
            submitted_at: at("2026-11-25T09:00:00Z"),
            review_due_at: Some(at("2026-12-03T00:00:00.123456789Z")),
            partner_response_due_at: None,
            decided_at: Some(at("1969-12-31T23:59:59.5Z")),
            version: 300,
            updated_at: at("2100-01-04T08:00:00Z"),
        }
    }

    #[test]
    fn every_read_model_comes_back_as_it_was_stored() {
        let view = claim();
        assert_eq!(decode_claim(&encode_claim(&view)).unwrap(), view);
        let bare = ClaimView {
            subscription_ids: vec![],
            reason: None,
            arbitration_case_id: None,
            review_due_at: None,
            decided_at: None,
            ..claim()
        };
        assert_eq!(decode_claim(&encode_claim(&bare)).unwrap(), bare);

        let case = CaseView {
            case_id: Uuid::from_u128(5),
            tenant_id: Uuid::from_u128(2),
            product: "microsoft_365_e5".into(),
            activity: Activity::Usage,
            status: CaseStatus::Closed,
            claim_ids: vec![Uuid::from_u128(1), Uuid::from_u128(6)],
            incumbent_claim_id: None,
            winner_claim_id: Some(Uuid::from_u128(6)),
            opened_at: at("2026-11-25T09:00:00Z"),
            closed_at: Some(at("2026-11-26T09:00:00Z")),
        };
        assert_eq!(decode_case(&encode_case(&case)).unwrap(), case);

        let actors = [
            Actor::Partner {
                partner_id: "P-100".into(),
                user: Some("u@p.example".into()),
                roles: vec!["global_admin".into(), "other".into()],
            },
            Actor::Partner {
                partner_id: "P-200".into(),
                user: None,
                roles: vec![],
            },
            Actor::Reviewer { id: "r-1".into() },
            Actor::Customer {
                tenant_id: Uuid::from_u128(2),
                user: Some("c@t.example".into()),
            },
            Actor::service(),
        ];
        for author in actors {
            let comment = CommentView {
                at: at("2026-11-25T09:00:01Z"),
                system: author.kind() == ActorKind::System,
                author,
                text: "Bitte → PoE \u{1F600}".into(),
            };
            assert_eq!(decode_comment(&encode_comment(&comment)).unwrap(), comment);
        }
    }

    #[test]
    fn a_stored_claim_view_is_a_fraction_of_its_json() {
        let view = claim();
        let stored = encode_claim(&view).len();
        let json = serde_json::to_vec(&view).unwrap().len();
        assert!(stored * 3 < json, "{stored} bytes stored, {json} as JSON");
    }

    #[test]
    fn bytes_that_are_not_a_stored_view_are_corrupt_not_a_panic() {
        // Layout 2's JSON views, and truncations of a real one.
        let json = serde_json::to_vec(&claim()).unwrap();
        assert!(matches!(decode_claim(&json), Err(LogError::Corrupt(_))));
        let bytes = encode_claim(&claim());
        for cut in 0..bytes.len() {
            assert!(decode_claim(&bytes[..cut]).is_err(), "{cut}");
        }
        assert!(decode_case(b"").is_err());
        assert!(decode_comment(&[0xff; 4]).is_err());
        assert!(describe(crate::keys::KeyKind::ClaimView, b"{}").starts_with("0x7b7d"));
        assert!(describe(crate::keys::KeyKind::ClaimView, &bytes).contains("\"P-100\""));
    }
}
