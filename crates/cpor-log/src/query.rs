//! Reads of the projections for queries. Every scan has a named bound, and
//! every list is read a page at a time: each item comes with the cursor that
//! resumes after it (the trailing big-endian number of its key: a claim or
//! case sequence number, a comment's log position, an event's stream
//! version), so the wire layer can cut a page short (by reply size) and
//! still say where the next one starts.

use serde_json::Value;
use uuid::Uuid;

use cpor_domain::access::Visibility;
use cpor_domain::event::AggregateId;
use cpor_domain::types::ClaimStatus;

use crate::keys::{self, KeyKind};
use crate::{LogError, LogReader};

/// `claims.list` page size when the request names none.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// The largest page any paged query returns, in items: `claims.list`
/// (contract §4), `arbitration.list`, a claim's comments in `claim.get`,
/// `claim.history` (docs/interface.md, "Paging").
pub const LIST_LIMIT_MAX: usize = 1_000;
/// Index entries one page may examine. A selective filter (say
/// `overdue: true` over a million claims) returns a short or empty page
/// with a `next` cursor rather than scanning without bound.
pub const LIST_SCAN_MAX: usize = 20_000;
/// Comments in one `claim.get` reply when the request names no
/// `comments_limit` (the rest: `comments_next`).
pub const COMMENTS_MAX: usize = LIST_LIMIT_MAX;
/// `arbitration.list` page size when the request names no `limit`.
pub const CASES_LIST_MAX: usize = LIST_LIMIT_MAX;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimFilter {
    pub partner_id: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub status: Option<ClaimStatus>,
    pub overdue: Option<bool>,
    pub in_arbitration: Option<bool>,
}

impl ClaimFilter {
    /// This filter narrowed to the claims `visibility` lets the caller see:
    /// a partner's own, a customer's tenant's, or all. The visibility comes
    /// from [`cpor_domain::access::authorize`], which has already refused
    /// a filter naming another partner or tenant.
    pub fn within(mut self, visibility: &Visibility) -> ClaimFilter {
        match visibility {
            Visibility::Every => {}
            Visibility::Partner(partner_id) => self.partner_id = Some(partner_id.clone()),
            Visibility::Tenant(tenant_id) => self.tenant_id = Some(*tenant_id),
        }
        self
    }
}

/// One page of a list, in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Each item with its cursor: reading again `after` that cursor resumes
    /// right after the item (a caller that cuts the page short uses it).
    pub items: Vec<(u64, Value)>,
    /// Where the next page starts (the last entry examined) when this one
    /// stopped at its limit or scan bound with entries left; `None` on the
    /// last page.
    pub next: Option<u64>,
}

impl Page {
    /// The items without their cursors.
    pub fn values(&self) -> Vec<&Value> {
        self.items.iter().map(|(_, value)| value).collect()
    }
}

/// The first key of a page under `prefix` that starts after `after`; `None`
/// when nothing can follow (`after` is the largest cursor).
fn page_start(prefix: &[u8], after: Option<u64>) -> Option<Vec<u8>> {
    let mut key = prefix.to_vec();
    if let Some(after) = after {
        key.extend_from_slice(&after.checked_add(1)?.to_be_bytes());
    }
    Some(key)
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, LogError> {
    serde_json::from_slice(bytes).map_err(|e| LogError::Corrupt(format!("{what}: {e}")))
}

impl LogReader {
    pub fn claim_view(&self, claim_id: &Uuid) -> Result<Option<Value>, LogError> {
        self.views()?
            .get(keys::claim_view(claim_id))?
            .map(|bytes| parse_json(&bytes, "claim view"))
            .transpose()
    }

    /// The stored view of a claim if it exists and `visibility` sees it
    /// (by the partner and tenant the view names, judged by
    /// [`Visibility::sees`]); `None` otherwise, so a claim the caller may
    /// not see looks like one that does not exist (`CLAIM_NOT_FOUND`).
    pub fn visible_claim_view(
        &self,
        claim_id: &Uuid,
        visibility: &Visibility,
    ) -> Result<Option<Value>, LogError> {
        let Some(view) = self.claim_view(claim_id)? else {
            return Ok(None);
        };
        let owner = view.get("partner_id").and_then(Value::as_str);
        let tenant = view
            .get("tenant_id")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Uuid>().ok());
        Ok(match (owner, tenant) {
            (Some(owner), Some(tenant)) if visibility.sees(owner, tenant) => Some(view),
            _ => None,
        })
    }

    /// Reads one page of the entries under `prefix` (keys ending in a
    /// big-endian cursor) after `after`: at most `limit` items that `item`
    /// makes of them (it may skip an entry: `None`), examining at most
    /// [`LIST_SCAN_MAX`] entries.
    fn page(
        &self,
        tree: sled::Tree,
        prefix: &[u8],
        after: Option<u64>,
        limit: usize,
        mut item: impl FnMut(&[u8]) -> Result<Option<Value>, LogError>,
    ) -> Result<Page, LogError> {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let Some(start) = page_start(prefix, after) else {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        };
        let mut items = Vec::new();
        let mut last = None;
        for (scanned, entry) in tree.range(start..keys::prefix_end(prefix)).enumerate() {
            let (key, value) = entry?;
            if items.len() == limit || scanned == LIST_SCAN_MAX {
                // Entries are left: resume after the last one examined.
                return Ok(Page { items, next: last });
            }
            let cursor = keys::trailing_u64(&key)
                .ok_or_else(|| LogError::Corrupt("bad index key".into()))?;
            last = Some(cursor);
            if let Some(value) = item(&value)? {
                items.push((cursor, value));
            }
        }
        Ok(Page { items, next: None })
    }

    /// A claim's conversation (CommentViews), oldest first, after the
    /// comment at log position `after`.
    pub fn comments(
        &self,
        claim_id: &Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, LogError> {
        self.page(
            self.views()?,
            &keys::comments_prefix(claim_id),
            after,
            limit,
            |bytes| parse_json(bytes, "comment").map(Some),
        )
    }

    /// An aggregate's events (CloudEvents) in version order, after stream
    /// version `after`.
    pub fn history(
        &self,
        aggregate: &AggregateId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, LogError> {
        let prefix = keys::stream_prefix(aggregate.kind, &aggregate.id);
        self.page(self.stream()?, &prefix, after, limit, |position| {
            let position = <[u8; 8]>::try_from(position)
                .map(u64::from_be_bytes)
                .map_err(|_| LogError::Corrupt("bad stream entry".into()))?;
            let bytes = self
                .event_bytes(position)?
                .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
            parse_json(&bytes, "event").map(Some)
        })
    }

    pub fn case_view(&self, case_id: &Uuid) -> Result<Option<Value>, LogError> {
        self.views()?
            .get(keys::case_view(case_id))?
            .map(|bytes| parse_json(&bytes, "case view"))
            .transpose()
    }

    /// Cases in the order they opened, optionally only open or closed ones,
    /// after case sequence number `after`.
    pub fn list_cases(
        &self,
        status: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, LogError> {
        self.page(
            self.views()?,
            &keys::prefix(KeyKind::CaseOrder),
            after,
            limit,
            |id| {
                let id = Uuid::from_slice(id)
                    .map_err(|_| LogError::Corrupt("bad case order entry".into()))?;
                Ok(self.case_view(&id)?.filter(|view| {
                    status.is_none_or(|s| view.get("status").and_then(Value::as_str) == Some(s))
                }))
            },
        )
    }

    /// Claims in submission order, filtered, after claim sequence number
    /// `after`.
    pub fn list_claims(
        &self,
        filter: &ClaimFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page, LogError> {
        let prefix = match (&filter.partner_id, &filter.tenant_id) {
            (Some(partner_id), _) => keys::partner_claims_prefix(partner_id),
            (None, Some(tenant_id)) => keys::tenant_claims_prefix(tenant_id),
            (None, None) => keys::prefix(KeyKind::ClaimOrder).to_vec(),
        };
        self.page(self.views()?, &prefix, after, limit, |id| {
            let id = Uuid::from_slice(id)
                .map_err(|_| LogError::Corrupt("bad claim index entry".into()))?;
            match self.claim_view(&id)? {
                Some(view) if self.matches(filter, &view)? => Ok(Some(view)),
                _ => Ok(None),
            }
        })
    }

    fn matches(&self, filter: &ClaimFilter, view: &Value) -> Result<bool, LogError> {
        let text = |field: &str| view.get(field).and_then(Value::as_str);
        if let Some(partner_id) = &filter.partner_id {
            if text("partner_id") != Some(partner_id.as_str()) {
                return Ok(false);
            }
        }
        if let Some(tenant_id) = &filter.tenant_id {
            if text("tenant_id") != Some(tenant_id.to_string().as_str()) {
                return Ok(false);
            }
        }
        let status = text("status").and_then(ClaimStatus::parse);
        if let Some(wanted) = filter.status {
            if status != Some(wanted) {
                return Ok(false);
            }
        }
        if let Some(wanted) = filter.overdue {
            if view.get("overdue").and_then(Value::as_bool) != Some(wanted) {
                return Ok(false);
            }
        }
        if let Some(wanted) = filter.in_arbitration {
            let contender = status.is_some_and(|s| s.is_open() || s == ClaimStatus::Approved);
            let case_open = match text("arbitration_case_id").and_then(|id| id.parse::<Uuid>().ok())
            {
                Some(case_id) => self
                    .case_view(&case_id)?
                    .is_some_and(|case| case.get("status").and_then(Value::as_str) == Some("open")),
                None => false,
            };
            if (contender && case_open) != wanted {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
