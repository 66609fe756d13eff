//! Query replies, bounded by design (issue 11 case 2; docs/interface.md,
//! "Paging"): every list a query returns is read a page at a time
//! (`cpor_log::Page`) and the page is cut short, by size as well as by
//! count, so that the reply fits the NATS server's `max_payload`
//! ([`reply_bytes_max`]); the cursor to go on from is in the reply's `next`
//! (`comments_next` for a claim's comments). A reply that still does not fit
//! (one item alone is too large) is refused `PAYLOAD_TOO_LARGE` saying so:
//! NATS drops an oversized publish, and the caller would only see a timeout.
//!
//! The pages come typed from `cpor-log` (the domain's `ClaimView`,
//! `CaseView`, `CommentView`; an event's stored canonical JSON), already
//! filtered by the domain's rules; this module only makes the reply's JSON
//! of them. It goes through `serde_json::Value` on purpose: a `Value`
//! object writes its members in key order, which is the order every reply
//! has always had, so the bytes on the wire stay the same.

use serde::Serialize;
use serde_json::{json, Value};

use cpor_domain::access::Visibility;
use cpor_domain::error::{ErrorCode, Rejection};
use cpor_domain::event::{AggregateId, AggregateKind};
use cpor_domain::types::CaseStatus;
use cpor_domain::view::ClaimView;
use cpor_log::{LogError, LogReader, Page};

use super::Server;
use crate::wire::{replies, Query};

/// A typed reply (or its frame, before [`fill`]) as JSON.
fn to_value(reply: impl serde::Serialize) -> Value {
    serde_json::to_value(reply).expect("replies serialize")
}

/// Bytes of a reply's headers, at most, reserved out of the server's
/// `max_payload` (which counts headers and body together): a refusal
/// carries the services protocol's error headers.
pub const REPLY_HEADERS_BYTES_MAX: usize = 1_024;

/// The longest cursor a reply can carry (`u64::MAX` in decimal): a page is
/// measured with it in place, so any cursor fits.
const CURSOR_LONGEST: u64 = u64::MAX;

/// The largest reply body `client`'s server takes: its `max_payload` (read
/// at connect and at every reconnect) less [`REPLY_HEADERS_BYTES_MAX`].
pub fn reply_bytes_max(client: &async_nats::Client) -> usize {
    client
        .server_info()
        .max_payload
        .saturating_sub(REPLY_HEADERS_BYTES_MAX)
}

/// The refusal for a reply of `bytes` that cannot be sent within `max`.
fn too_large(what: &str, bytes: usize, max: usize) -> Rejection {
    Rejection::with_message(
        ErrorCode::PayloadTooLarge,
        format!(
            "the reply is too large to send: {what} takes {bytes} bytes, over the {max} bytes \
             a reply may take on this NATS server (its max_payload less {REPLY_HEADERS_BYTES_MAX})"
        ),
    )
}

/// `reply` if its JSON fits within `max` bytes, else a `PAYLOAD_TOO_LARGE`
/// refusal saying so (a last guard: queries cut their pages to fit, every
/// other reply is small).
pub fn bounded(reply: Value, max: usize) -> Value {
    let bytes = json_len(&reply);
    if bytes <= max {
        return reply;
    }
    tracing::error!(bytes, max, "a reply over max_payload was refused instead");
    crate::wire::error_reply(&too_large("the whole reply", bytes, max))
}

/// The length of `value` as the reply's JSON (counted, not built).
fn json_len(value: &Value) -> usize {
    cpor_domain::event::compact_json_len(value)
}

/// Where a list goes in a reply and how its cursor is given.
pub(crate) struct Listing {
    /// The reply's member that holds the items.
    pub(crate) items: &'static str,
    /// The reply's member that holds the cursor of the next page.
    pub(crate) next: &'static str,
    /// Whether `next` is always present (null on the last page), as the
    /// contract fixes for `claims.list`, or only when there is a next page
    /// (the replies whose v1.0 shape had no cursor stay as they were).
    pub(crate) next_always: bool,
}

/// `claim.get`: `{"ok", "claim", "comments", "comments_next"?}`.
pub(crate) const CLAIM_GET: Listing = Listing {
    items: "comments",
    next: "comments_next",
    next_always: false,
};
/// `claim.history`: `{"ok", "events", "next"?}`.
pub(crate) const CLAIM_HISTORY: Listing = Listing {
    items: "events",
    next: "next",
    next_always: false,
};
/// `claims.list`: `{"ok", "claims", "next"}` (contract §4).
pub(crate) const CLAIMS_LIST: Listing = Listing {
    items: "claims",
    next: "next",
    next_always: true,
};
/// `arbitration.list`: `{"ok", "cases", "next"?}`.
pub(crate) const CASES_LIST: Listing = Listing {
    items: "cases",
    next: "next",
    next_always: false,
};
/// The paged replies, by query name (for the schema tests).
#[cfg(test)]
pub(crate) const LISTINGS: [(&str, &Listing); 4] = [
    ("claim.get", &CLAIM_GET),
    ("claim.history", &CLAIM_HISTORY),
    ("claims.list", &CLAIMS_LIST),
    ("arbitration.list", &CASES_LIST),
];

/// `reply` with `page`'s items (as JSON) at `listing.items`, as many as
/// fit within `max` bytes, and the cursor of what is left at
/// `listing.next`.
pub(crate) fn fill<T: Serialize>(
    mut reply: Value,
    listing: &Listing,
    page: Page<T>,
    max: usize,
) -> Result<Value, Rejection> {
    reply[listing.items] = json!([]);
    reply[listing.next] = json!(CURSOR_LONGEST.to_string());
    let frame = json_len(&reply);
    let mut room = max
        .checked_sub(frame)
        .ok_or_else(|| too_large("the reply without its list", frame, max))?;
    let mut items = Vec::with_capacity(page.items.len());
    let mut next = page.next;
    let mut last_cursor = None;
    for (cursor, item) in page.items {
        let item = to_value(item);
        // One comma between items; the frame counted the brackets.
        let cost = json_len(&item) + usize::from(!items.is_empty());
        if cost > room {
            let Some(last) = last_cursor else {
                return Err(too_large(
                    &format!("one item of {}", listing.items),
                    frame + cost,
                    max,
                ));
            };
            next = Some(last);
            break;
        }
        room -= cost;
        last_cursor = Some(cursor);
        items.push(item);
    }
    reply[listing.items] = Value::Array(items);
    match next {
        Some(cursor) => reply[listing.next] = json!(cursor.to_string()),
        None if listing.next_always => reply[listing.next] = Value::Null,
        None => {
            reply
                .as_object_mut()
                .expect("replies are objects")
                .remove(listing.next);
        }
    }
    Ok(reply)
}

fn unavailable(error: LogError) -> Rejection {
    tracing::error!(%error, "query failed");
    Rejection::new(ErrorCode::Unavailable)
}

impl Server {
    /// Answers a query from the projections, within the reply size the
    /// connected NATS server takes.
    pub(super) fn query(&self, query: Query) -> Result<Value, Rejection> {
        let reader = self.engine.reader();
        let max = reply_bytes_max(&self.client);
        match query {
            Query::ClaimGet {
                visibility,
                claim_id,
                comments_limit,
                comments_after,
            } => {
                let view = visible_view(reader, &visibility, &claim_id)?;
                let comments = reader
                    .comments(&claim_id, comments_after, comments_limit)
                    .map_err(unavailable)?;
                claim_get(view, comments, max)
            }
            Query::ClaimHistory {
                visibility,
                claim_id,
                limit,
                after,
            } => {
                visible_view(reader, &visibility, &claim_id)?;
                let aggregate = AggregateId {
                    kind: AggregateKind::Claim,
                    id: claim_id.to_string(),
                };
                let events = reader
                    .history(&aggregate, after, limit)
                    .map_err(unavailable)?;
                let frame = replies::ClaimHistoryReply {
                    ok: replies::True,
                    events: Vec::new(),
                    next: None,
                };
                fill(to_value(frame), &CLAIM_HISTORY, events, max)
            }
            Query::ClaimsList {
                filter,
                limit,
                after,
            } => {
                let claims = reader
                    .list_claims(&filter, after, limit)
                    .map_err(unavailable)?;
                let frame = replies::ClaimsListReply {
                    ok: replies::True,
                    claims: Vec::new(),
                    next: None,
                };
                fill(to_value(frame), &CLAIMS_LIST, claims, max)
            }
            Query::CaseGet { case_id } => case_get(reader, &case_id),
            Query::CaseList {
                status,
                limit,
                after,
            } => {
                // The wire layer has checked it is "open" or "closed".
                let status = status.as_deref().and_then(CaseStatus::parse);
                let cases = reader
                    .list_cases(status, after, limit)
                    .map_err(unavailable)?;
                case_list(cases, max)
            }
        }
    }
}

fn claim_get(
    view: ClaimView,
    comments: Page<cpor_domain::view::CommentView>,
    max: usize,
) -> Result<Value, Rejection> {
    let frame = replies::ClaimGetReply {
        ok: replies::True,
        claim: to_value(view),
        comments: Vec::new(),
        comments_next: None,
    };
    fill(to_value(frame), &CLAIM_GET, comments, max)
}

fn case_list(cases: Page<cpor_domain::view::CaseView>, max: usize) -> Result<Value, Rejection> {
    let frame = replies::CaseListReply {
        ok: replies::True,
        cases: Vec::new(),
        next: None,
    };
    fill(to_value(frame), &CASES_LIST, cases, max)
}

fn case_get(reader: &LogReader, case_id: &uuid::Uuid) -> Result<Value, Rejection> {
    match reader.case_view(case_id).map_err(unavailable)? {
        Some(case) => Ok(to_value(replies::CaseGetReply {
            ok: replies::True,
            case: to_value(case),
        })),
        None => Err(Rejection::with_message(
            ErrorCode::InvalidCommand,
            "case_id: no such arbitration case",
        )),
    }
}

/// The stored view of a claim within `visibility` (decided by
/// [`cpor_domain::access::authorize`], judged by
/// [`Visibility::sees_view`]), or `CLAIM_NOT_FOUND`.
fn visible_view(
    reader: &LogReader,
    visibility: &Visibility,
    claim_id: &uuid::Uuid,
) -> Result<ClaimView, Rejection> {
    reader
        .visible_claim_view(claim_id, visibility)
        .map_err(unavailable)?
        .ok_or_else(|| Rejection::new(ErrorCode::ClaimNotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[(u64, Value)], next: Option<u64>) -> Page<Value> {
        Page {
            items: items.to_vec(),
            next,
        }
    }

    fn items(n: u64, bytes: usize) -> Vec<(u64, Value)> {
        (1..=n)
            .map(|i| (i * 10, json!("x".repeat(bytes))))
            .collect()
    }

    #[test]
    fn a_page_that_fits_is_whole_and_keeps_its_shape() {
        let reply = fill(
            json!({"ok": true}),
            &CASES_LIST,
            page(&items(3, 10), None),
            1_000,
        );
        assert_eq!(
            reply.unwrap(),
            json!({"ok": true, "cases": ["x".repeat(10), "x".repeat(10), "x".repeat(10)]})
        );
        let reply = fill(
            json!({"ok": true}),
            &CLAIMS_LIST,
            page(&items(1, 1), None),
            1_000,
        );
        assert_eq!(
            reply.unwrap(),
            json!({"ok": true, "claims": ["x"], "next": null})
        );
        let reply = fill(
            json!({"ok": true}),
            &CLAIMS_LIST,
            page(&items(1, 1), Some(7)),
            1_000,
        );
        assert_eq!(
            reply.unwrap(),
            json!({"ok": true, "claims": ["x"], "next": "7"})
        );
    }

    #[test]
    fn a_page_is_cut_by_size_with_the_cursor_of_its_last_item() {
        // 100 items of 102 bytes each (quotes) and commas: about 10 fit in 1,100.
        let max = 1_100;
        let reply = fill(
            json!({"ok": true}),
            &CLAIM_HISTORY,
            page(&items(100, 100), None),
            max,
        )
        .unwrap();
        let bytes = serde_json::to_vec(&reply).unwrap().len();
        assert!(bytes <= max, "{bytes}");
        let kept = reply["events"].as_array().unwrap().len();
        assert!((8..=10).contains(&kept), "{kept}");
        assert_eq!(reply["next"], json!((kept as u64 * 10).to_string()));
    }

    #[test]
    fn an_item_too_large_alone_is_refused_saying_so() {
        let refusal = fill(
            json!({"ok": true}),
            &CLAIM_HISTORY,
            page(&items(2, 2_000), None),
            1_000,
        )
        .unwrap_err();
        assert_eq!(refusal.code, ErrorCode::PayloadTooLarge);
        assert!(
            refusal.message.contains("1000 bytes"),
            "{}",
            refusal.message
        );
        let reply = bounded(json!({"ok": true, "events": ["x".repeat(2_000)]}), 1_000);
        assert_eq!(reply["error"]["code"], "PAYLOAD_TOO_LARGE");
        assert_eq!(bounded(json!({"ok": true}), 1_000), json!({"ok": true}));
    }
}
