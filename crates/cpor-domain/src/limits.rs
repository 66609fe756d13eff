//! Named limits on reference data (issue 11 case 11).
//!
//! Reference data comes from upstream systems; each upsert is an event that
//! the relay publishes and every claim decision reads from memory. These
//! limits keep one record's event small (well under the 64 KiB request
//! payload and any NATS `max_payload` of 64 KiB or more) and the memory one
//! record holds bounded. The wire layer refuses lists over them with
//! `INVALID_COMMAND` naming the field; the subscription limit depends on
//! state and is checked by [`crate::decide`].

/// Domains one tenant may list in `ref.tenant`. A claim names one of them;
/// 100 DNS names of at most [`DOMAIN_NAME_MAX_OCTETS`] give a
/// `tenant.upserted` event of at most about 26 KB.
pub const DOMAINS_PER_TENANT_MAX: usize = 100;

/// Longest domain name, in octets of its A-label (ASCII) form without the
/// trailing dot: RFC 1035 §2.3.4 (255 octets on the wire, 253 characters
/// written out). Each label holds at most [`DOMAIN_LABEL_MAX_OCTETS`].
pub const DOMAIN_NAME_MAX_OCTETS: usize = 253;

/// Longest label of a domain name in A-label form (RFC 1035 §2.3.4).
pub const DOMAIN_LABEL_MAX_OCTETS: usize = 63;

/// MPN ids one partner may list in `ref.partner`.
pub const MPNS_PER_PARTNER_MAX: usize = 100;

/// Longest MPN id (they are 7-digit numbers in practice).
pub const MPN_ID_MAX_CHARS: usize = 64;

/// Subscriptions of one product one tenant may hold (every state counted,
/// expired ones included: an upsert never deletes). A claim without
/// `subscription_id` covers subscriptions of one tenant and product, so this
/// also bounds the `subscription_ids` of a new claim: 250 uuids are about
/// 10 KB of its `claim.submitted` event. Real tenants hold a handful per
/// product (renewals, departments); an upsert that would add one more is
/// `INVALID_COMMAND` naming `subscription_id`.
pub const SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX: usize = 250;

/// Subscriptions one claim covers at most: those of one tenant and product,
/// hence [`SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX`]. A log written before that
/// limit may hold more; a decision must not copy more than this many into
/// one event.
pub const SUBSCRIPTIONS_PER_CLAIM_MAX: usize = SUBSCRIPTIONS_PER_TENANT_PRODUCT_MAX;
