//! The domain's test suite, in given/when/then form (see [`harness`]).
//!
//! Each module covers one part of the contract (`shared/contract.md`):
//!
//! | module | contract |
//! |---|---|
//! | `access` | §3, §4, v1.1 §8a: subject scope × actor × action → `FORBIDDEN` or what the actor sees |
//! | `authorize` | §3 actors: who may send what (`FORBIDDEN`) |
//! | `errors` | §3 error codes: precedence, `code`/`reasons` |
//! | `submit` | §1 table, §3 `submit` and every submit error code |
//! | `claim_errors` | `CLAIM_NOT_FOUND`, `VERSION_CONFLICT`, `INVALID_TRANSITION` for every claim command |
//! | `review` | reviewer actions, `review_started`, PoE requests and answers |
//! | `deadlines` | §1 "Two deadlines", §6 business days, the scheduler's index |
//! | `arbitration` | §1 "Competing claims" |
//! | `disputes` | §1, §3 `dispute` (30 days) |
//! | `ends` | §1 "Ends of an association" |
//! | `reference` | §2 reference data upserts |
//! | `upcast` | §5 events, schema versions and the upcaster |
//! | `views` | §4 ClaimView, CaseView, comments |
//! | `props` | property tests over random command sequences |
//!
//! Ids are stable: `uid("c1")` names the same claim in a history and in the
//! command under test.

mod harness;

mod access;
mod arbitration;
mod authorize;
mod claim_errors;
mod deadlines;
mod disputes;
mod ends;
mod errors;
mod props;
mod reference;
mod review;
mod submit;
mod upcast;
mod views;
