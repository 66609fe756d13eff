//! The actors tests act as (contract §2 `actor`; who may do what is
//! `cpor_domain::access`).

use cpor_domain::types::Actor;

/// The partner role every test partner holds: one of
/// `PARTNER_ROLES_ALLOWED`, so partner commands are authorized.
pub const PARTNER_ROLE: &str = "incentives_admin";

/// A system actor (reference data, deadlines, the clock), id `test`.
pub fn system() -> Actor {
    Actor::System { id: "test".into() }
}

/// A partner actor for `partner_id`, no user, with [`PARTNER_ROLE`].
pub fn partner(partner_id: &str) -> Actor {
    Actor::Partner {
        partner_id: partner_id.into(),
        user: None,
        roles: vec![PARTNER_ROLE.into()],
    }
}

/// The reviewer `rev-1`.
pub fn reviewer() -> Actor {
    Actor::Reviewer { id: "rev-1".into() }
}

/// Actors as JSON request bodies carry them (contract §2), for tests that
/// send requests over NATS.
pub mod wire {
    use serde_json::{json, Value};

    use super::PARTNER_ROLE;

    /// `{"type": "system", "id": id}`.
    pub fn system(id: &str) -> Value {
        json!({"type": "system", "id": id})
    }

    /// A partner with `user` and [`PARTNER_ROLE`].
    pub fn partner(partner_id: &str, user: &str) -> Value {
        json!({"type": "partner", "partner_id": partner_id, "user": user,
               "roles": [PARTNER_ROLE]})
    }

    /// A partner's administrator: [`partner`] with the user
    /// `admin@{partner_id}.example`.
    pub fn partner_admin(partner_id: &str) -> Value {
        partner(partner_id, &format!("admin@{partner_id}.example"))
    }

    /// The reviewer `rev-1`.
    pub fn reviewer() -> Value {
        json!({"type": "reviewer", "id": "rev-1"})
    }
}
