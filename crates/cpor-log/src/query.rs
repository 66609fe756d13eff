//! Reads of the projections for queries. Every scan has a named bound, and
//! every list is read a page at a time: each item comes with the cursor that
//! resumes after it (the trailing big-endian number of its key: a claim or
//! case sequence number, a comment's log position, an event's stream
//! version), so the wire layer can cut a page short (by reply size) and
//! still say where the next one starts.
//!
//! Every read is typed: the domain's read models ([`ClaimView`],
//! [`CaseView`], [`CommentView`]) decoded from their stored form
//! (`stored`), filtered and judged by the domain's own rules
//! ([`Visibility::sees_view`], [`ClaimView::in_open_case`]); an event of a
//! history is its stored canonical JSON, unparsed ([`RawValue`]). The JSON
//! a client sees is made from these at the wire (`cpor-nats`).

use serde_json::value::RawValue;
use uuid::Uuid;

use cpor_domain::access::Visibility;
use cpor_domain::event::AggregateId;
use cpor_domain::types::{CaseStatus, ClaimStatus};
use cpor_domain::view::{CaseView, ClaimView, CommentView};

use crate::keys::{self, KeyKind};
use crate::{stored, LogError, LogReader};

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

/// `claims.list`'s filters (contract §4), each `None` when not asked.
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

/// One page of a list, in key order: claim or case views, comments, or
/// events.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Each item with its cursor: reading again `after` that cursor resumes
    /// right after the item (a caller that cuts the page short uses it).
    pub items: Vec<(u64, T)>,
    /// Where the next page starts (the last entry examined) when this one
    /// stopped at its limit or scan bound with entries left; `None` on the
    /// last page.
    pub next: Option<u64>,
}

impl<T> Page<T> {
    /// The items without their cursors.
    pub fn values(&self) -> Vec<&T> {
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

/// The id an index entry (order, partner or tenant listing) points to.
fn indexed_id(bytes: &[u8], what: &str) -> Result<Uuid, LogError> {
    Uuid::from_slice(bytes).map_err(|_| LogError::Corrupt(format!("bad {what} entry")))
}

impl LogReader {
    /// The stored view of a claim, `None` if no such claim.
    ///
    /// # Errors
    /// [`LogError::Corrupt`] for a stored value that is not a claim view;
    /// [`LogError::Storage`], [`LogError::Closed`] from the store.
    pub fn claim_view(&self, claim_id: &Uuid) -> Result<Option<ClaimView>, LogError> {
        self.views()?
            .get(keys::claim_view(claim_id))?
            .map(|bytes| stored::decode_claim(&bytes))
            .transpose()
    }

    /// The stored view of a claim if it exists and `visibility` sees it
    /// (judged by [`Visibility::sees_view`], the rule commands are held to
    /// by `cpor_domain::access::may_see`); `None` otherwise, so a claim the
    /// caller may not see looks like one that does not exist
    /// (`CLAIM_NOT_FOUND`).
    pub fn visible_claim_view(
        &self,
        claim_id: &Uuid,
        visibility: &Visibility,
    ) -> Result<Option<ClaimView>, LogError> {
        Ok(self
            .claim_view(claim_id)?
            .filter(|view| visibility.sees_view(view)))
    }

    /// Reads one page of the entries under `prefix` (keys ending in a
    /// big-endian cursor) after `after`: at most `limit` items that `item`
    /// makes of them (it may skip an entry: `None`), examining at most
    /// [`LIST_SCAN_MAX`] entries.
    fn page<T>(
        &self,
        tree: sled::Tree,
        prefix: &[u8],
        after: Option<u64>,
        limit: usize,
        mut item: impl FnMut(&[u8]) -> Result<Option<T>, LogError>,
    ) -> Result<Page<T>, LogError> {
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

    /// A claim's conversation, oldest first, after the comment at log
    /// position `after`.
    pub fn comments(
        &self,
        claim_id: &Uuid,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<CommentView>, LogError> {
        self.page(
            self.views()?,
            &keys::comments_prefix(claim_id),
            after,
            limit,
            |bytes| stored::decode_comment(bytes).map(Some),
        )
    }

    /// An aggregate's events in version order, after stream version
    /// `after`: each the CloudEvent's canonical JSON as stored (the bytes
    /// hashed and exported), checked to be JSON but not parsed.
    pub fn history(
        &self,
        aggregate: &AggregateId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<Box<RawValue>>, LogError> {
        let prefix = keys::stream_prefix(aggregate.kind, &aggregate.id);
        self.page(self.stream()?, &prefix, after, limit, |position| {
            let position = <[u8; 8]>::try_from(position)
                .map(u64::from_be_bytes)
                .map_err(|_| LogError::Corrupt("bad stream entry".into()))?;
            let bytes = self
                .event_bytes(position)?
                .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|e| LogError::Corrupt(format!("event at {position}: {e}")))?;
            RawValue::from_string(text)
                .map(Some)
                .map_err(|e| LogError::Corrupt(format!("event at {position}: {e}")))
        })
    }

    /// The stored view of an arbitration case, `None` if no such case.
    ///
    /// # Errors
    /// As [`LogReader::claim_view`].
    pub fn case_view(&self, case_id: &Uuid) -> Result<Option<CaseView>, LogError> {
        self.views()?
            .get(keys::case_view(case_id))?
            .map(|bytes| stored::decode_case(&bytes))
            .transpose()
    }

    /// Cases in the order they opened, optionally only those in `status`,
    /// after case sequence number `after`.
    pub fn list_cases(
        &self,
        status: Option<CaseStatus>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Page<CaseView>, LogError> {
        self.page(
            self.views()?,
            &keys::prefix(KeyKind::CaseOrder),
            after,
            limit,
            |id| {
                let id = indexed_id(id, "case order")?;
                Ok(self
                    .case_view(&id)?
                    .filter(|case| status.is_none_or(|s| case.status == s)))
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
    ) -> Result<Page<ClaimView>, LogError> {
        let prefix = match (&filter.partner_id, &filter.tenant_id) {
            (Some(partner_id), _) => keys::partner_claims_prefix(partner_id),
            (None, Some(tenant_id)) => keys::tenant_claims_prefix(tenant_id),
            (None, None) => keys::prefix(KeyKind::ClaimOrder).to_vec(),
        };
        self.page(self.views()?, &prefix, after, limit, |id| {
            let id = indexed_id(id, "claim index")?;
            match self.claim_view(&id)? {
                Some(view) if self.matches(filter, &view)? => Ok(Some(view)),
                _ => Ok(None),
            }
        })
    }

    /// Whether `view` passes every filter `filter` sets. `in_arbitration`
    /// is the domain's [`ClaimView::in_open_case`], asked with the view of
    /// the claim's case (one more read, only when that filter is set).
    fn matches(&self, filter: &ClaimFilter, view: &ClaimView) -> Result<bool, LogError> {
        let passes = filter
            .partner_id
            .as_ref()
            .is_none_or(|p| *p == view.partner_id)
            && filter.tenant_id.is_none_or(|t| t == view.tenant_id)
            && filter.status.is_none_or(|s| s == view.status)
            && filter.overdue.is_none_or(|o| o == view.overdue);
        let Some(wanted) = filter.in_arbitration.filter(|_| passes) else {
            return Ok(passes);
        };
        let case = match view.arbitration_case_id {
            Some(case_id) => self.case_view(&case_id)?,
            None => None,
        };
        Ok(view.in_open_case(case.as_ref()) == wanted)
    }
}
