//! Reads of the projections for queries. Every scan has a named bound.

use serde_json::Value;
use uuid::Uuid;

use cpor_domain::access::Visibility;
use cpor_domain::types::ClaimStatus;

use crate::keys::{self, KeyKind};
use crate::{LogError, LogReader};

/// `claims.list` page size when the request names none.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// The largest page `claims.list` returns (contract §4).
pub const LIST_LIMIT_MAX: usize = 1_000;
/// Index entries one `claims.list` request may examine. A selective filter
/// (say `overdue: true` over a million claims) returns a short or empty
/// page with a `next` cursor rather than scanning without bound.
pub const LIST_SCAN_MAX: usize = 20_000;
/// Comments returned with one claim.
pub const COMMENTS_MAX: usize = 1_000;
/// Cases returned by `arbitration.list`.
pub const CASES_LIST_MAX: usize = 10_000;

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

#[derive(Debug, Clone, PartialEq)]
pub struct ClaimPage {
    pub claims: Vec<Value>,
    /// Opaque cursor for the next page; `None` on the last page.
    pub next: Option<String>,
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, LogError> {
    serde_json::from_slice(bytes).map_err(|e| LogError::Corrupt(format!("{what}: {e}")))
}

impl LogReader {
    pub fn claim_view(&self, claim_id: &Uuid) -> Result<Option<Value>, LogError> {
        self.tree()?
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

    pub fn comments(&self, claim_id: &Uuid) -> Result<Vec<Value>, LogError> {
        self.tree()?
            .scan_prefix(keys::comments_prefix(claim_id))
            .take(COMMENTS_MAX)
            .map(|entry| parse_json(&entry?.1, "comment"))
            .collect()
    }

    pub fn case_view(&self, case_id: &Uuid) -> Result<Option<Value>, LogError> {
        self.tree()?
            .get(keys::case_view(case_id))?
            .map(|bytes| parse_json(&bytes, "case view"))
            .transpose()
    }

    /// Cases in the order they opened, optionally only open or closed ones.
    pub fn list_cases(&self, status: Option<&str>) -> Result<Vec<Value>, LogError> {
        let mut cases = Vec::new();
        for entry in self.tree()?.scan_prefix(keys::prefix(KeyKind::CaseOrder)) {
            let (_, id) = entry?;
            let id = Uuid::from_slice(&id)
                .map_err(|_| LogError::Corrupt("bad case order entry".into()))?;
            let Some(view) = self.case_view(&id)? else {
                continue;
            };
            if status.is_none_or(|s| view.get("status").and_then(Value::as_str) == Some(s)) {
                cases.push(view);
                if cases.len() == CASES_LIST_MAX {
                    break;
                }
            }
        }
        Ok(cases)
    }

    /// Claims in submission order, filtered, from the cursor on.
    pub fn list_claims(
        &self,
        filter: &ClaimFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<ClaimPage, LogError> {
        let limit = limit.clamp(1, LIST_LIMIT_MAX);
        let prefix = match (&filter.partner_id, &filter.tenant_id) {
            (Some(partner_id), _) => keys::partner_claims_prefix(partner_id),
            (None, Some(tenant_id)) => keys::tenant_claims_prefix(tenant_id),
            (None, None) => keys::prefix(KeyKind::ClaimOrder).to_vec(),
        };
        let start = match after {
            Some(seq) => {
                let mut key = prefix.clone();
                key.extend_from_slice(&(seq.saturating_add(1)).to_be_bytes());
                key
            }
            None => prefix.clone(),
        };
        let end = keys::prefix_end(&prefix);
        let mut claims = Vec::new();
        let mut last_seq = None;
        let mut more = false;
        for (scanned, entry) in self.tree()?.range(start..end).enumerate() {
            let (key, id) = entry?;
            if claims.len() == limit || scanned == LIST_SCAN_MAX {
                more = true;
                break;
            }
            let seq = keys::trailing_u64(&key)
                .ok_or_else(|| LogError::Corrupt("bad claim index key".into()))?;
            last_seq = Some(seq);
            let id = Uuid::from_slice(&id)
                .map_err(|_| LogError::Corrupt("bad claim index entry".into()))?;
            let Some(view) = self.claim_view(&id)? else {
                continue;
            };
            if self.matches(filter, &view)? {
                claims.push(view);
            }
        }
        Ok(ClaimPage {
            claims,
            next: if more {
                last_seq.map(|s| s.to_string())
            } else {
                None
            },
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
