//! The realistic command mix, as the JSON requests upstream systems send
//! (contract §2–§3, built the way the conformance scenarios build them).
//!
//! A [`Planner`] hands out claim *lifecycles*: the commands one claim goes
//! through, in order (submit → comment → request_poe → submit_poe → approve,
//! and the other paths below). Each lifecycle claims a key (tenant, product,
//! activity) no claim used before, so a lifecycle never collides with
//! another by accident; the competing ones collide on purpose (a second
//! partner on the same key opens an arbitration case that the approval
//! resolves). Refused commands are mixed in at [`INVALID_SHARE`]. Reference
//! data (tenants and their subscriptions) is emitted the first time a
//! lifecycle needs it, partners once up front.
//!
//! Everything is derived from a seed: the same seed gives the same requests,
//! byte for byte, ids included.

use std::collections::VecDeque;

use serde_json::{json, Value};
use uuid::Uuid;

/// Partners registered (`P-0001` …), each with an enrolled and a
/// non-enrolled MPN.
pub const PARTNER_COUNT: u64 = 200;
/// Reviewers the review commands are spread over.
pub const REVIEWER_COUNT: u64 = 20;
/// Claim keys per tenant: 3 Dynamics products × 3 activities, plus the
/// Microsoft 365 product (usage only).
pub const KEYS_PER_TENANT: u64 = 10;
/// Subscriptions registered per tenant (one per product).
pub const SUBSCRIPTIONS_PER_TENANT: u64 = 4;
/// Share of all commands that are refused (bad domain, unknown claim,
/// malformed body).
pub const INVALID_SHARE: f64 = 0.10;
/// Business Applications submits without `subscription_id` (every
/// subscription of the product on the tenant is checked).
pub const WITHOUT_SUBSCRIPTION_ID_SHARE: f64 = 0.20;
/// Submits from the partner's MPN that is not incentive-enrolled.
pub const UNENROLLED_MPN_SHARE: f64 = 0.20;
/// Commands that carry a `correlation_id`.
pub const CORRELATION_SHARE: f64 = 0.30;

/// Lifecycle paths and their weights (percent of lifecycles).
const LIFECYCLE_WEIGHTS: [(Path, u64); 6] = [
    (Path::Approved, 60),
    (Path::Competing, 15),
    (Path::Rejected, 8),
    (Path::Withdrawn, 7),
    (Path::ReviewAbandoned, 5),
    (Path::PoeAbandoned, 5),
];

/// Refused commands and their weights (percent of refused commands).
const INVALID_WEIGHTS: [(Invalid, u64); 3] = [
    (Invalid::BadDomain, 40),
    (Invalid::UnknownClaim, 40),
    (Invalid::BadSolutionArea, 20),
];

const DYNAMICS_PRODUCTS: [(&str, &str, &str); 3] = [
    // product, channel, state
    ("dynamics_365_sales", "volume_licensing", "active"),
    ("dynamics_365_customer_service", "web_direct", "in_grace"),
    ("dynamics_365_field_service", "volume_licensing", "active"),
];
const ACTIVITIES: [&str; 3] = ["presales", "usage", "revenue_association"];
const M365_PRODUCT: &str = "microsoft_365_e3";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// submit, partner comment, request_poe, submit_poe, approve.
    Approved,
    /// Two partners on one key: arbitration, resolved by approving the first.
    Competing,
    /// submit, start, reject.
    Rejected,
    /// submit, partner comment, withdraw.
    Withdrawn,
    /// submit, then nothing: the review deadline passes (in generated logs).
    ReviewAbandoned,
    /// submit, request_poe, then nothing: the partner response deadline passes.
    PoeAbandoned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Invalid {
    BadDomain,
    UnknownClaim,
    BadSolutionArea,
}

/// What a request should get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Ok,
    /// Refused with this error code.
    Error(&'static str),
}

/// One request: subject after `{prefix}.`, JSON body, expected outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    pub tail: String,
    pub body: Value,
    pub expect: Expect,
}

impl Req {
    pub fn payload(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).expect("JSON values serialize")
    }
}

/// SplitMix64: small, fast, good enough to pick a workload, and stable
/// across platforms and versions (unlike a library's default RNG).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A random (version 4) uuid.
    pub fn uuid(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", self.next_u64() as u8))
            .collect()
    }

    fn weighted<T: Copy>(&mut self, table: &[(T, u64)]) -> T {
        let total: u64 = table.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(total);
        for (item, weight) in table {
            if pick < *weight {
                return *item;
            }
            pick -= weight;
        }
        table[table.len() - 1].0
    }
}

/// A stable uuid for the `index`-th thing of a kind (tenants, subscriptions).
fn derived_uuid(seed: u64, kind: u64, index: u64) -> Uuid {
    let mut rng = Rng::new(
        seed ^ kind.wrapping_mul(0xA076_1D64_78BD_642F) ^ index.wrapping_mul(0xE703_7ED1_A0B4_28DB),
    );
    rng.uuid()
}

const KIND_TENANT: u64 = 1;
const KIND_SUBSCRIPTION: u64 = 2;

fn partner_id(index: u64) -> String {
    format!("P-{:04}", index + 1)
}

fn mpn_ids(index: u64) -> (String, String) {
    let base = 4_400_000 + 2 * index;
    (base.to_string(), (base + 1).to_string())
}

fn partner_actor(index: u64) -> Value {
    let id = partner_id(index);
    json!({
        "type": "partner",
        "partner_id": id,
        "user": format!("claims@{}.example", id.to_lowercase()),
        "roles": ["incentives_admin"],
    })
}

/// A claim key: which tenant, and which of its [`KEYS_PER_TENANT`] slots.
#[derive(Debug, Clone, Copy)]
struct Key {
    tenant: u64,
    slot: u64,
}

/// Hands out lifecycles and the reference data they need.
#[derive(Debug, Clone)]
pub struct Planner {
    seed: u64,
    rng: Rng,
    next_key: u64,
    tenants_emitted: u64,
    lifecycles: u64,
}

impl Planner {
    pub fn new(seed: u64) -> Planner {
        Planner {
            seed,
            rng: Rng::new(seed),
            next_key: 0,
            tenants_emitted: 0,
            lifecycles: 0,
        }
    }

    /// A planner whose tenants (and so claim keys and domains) start at
    /// index `first_tenant`: its requests do not collide with those of a
    /// planner started at 0, e.g. with a generated log the service already
    /// holds (the partners are the same: their upserts are accepted again).
    pub fn from_tenant(seed: u64, first_tenant: u64) -> Planner {
        Planner {
            next_key: first_tenant * KEYS_PER_TENANT,
            tenants_emitted: first_tenant,
            ..Planner::new(seed)
        }
    }

    /// Lifecycles handed out so far.
    pub fn lifecycles(&self) -> u64 {
        self.lifecycles
    }

    /// Tenants whose reference data has been emitted.
    pub fn tenants(&self) -> u64 {
        self.tenants_emitted
    }

    /// The partner upserts (emit them once, before any lifecycle).
    pub fn partners(&mut self) -> Vec<Req> {
        (0..PARTNER_COUNT)
            .map(|i| {
                let (enrolled, not_enrolled) = mpn_ids(i);
                let body = json!({
                    "command_id": self.rng.uuid(),
                    "actor": {"type": "system", "id": "mpn-sync"},
                    "partner_id": partner_id(i),
                    "mpns": [
                        {"mpn_id": enrolled, "incentive_enrolled": true},
                        {"mpn_id": not_enrolled, "incentive_enrolled": false},
                    ],
                });
                Req {
                    tail: "cmd.ref.partner".into(),
                    body,
                    expect: Expect::Ok,
                }
            })
            .collect()
    }

    fn tenant_id(&self, tenant: u64) -> Uuid {
        derived_uuid(self.seed, KIND_TENANT, tenant)
    }

    fn subscription_id(&self, tenant: u64, product: u64) -> Uuid {
        derived_uuid(
            self.seed,
            KIND_SUBSCRIPTION,
            tenant * SUBSCRIPTIONS_PER_TENANT + product,
        )
    }

    fn domains(tenant: u64) -> [String; 2] {
        [
            format!("customer-{tenant}.onmicrosoft.com"),
            format!("customer-{tenant}.com"),
        ]
    }

    /// A fresh key; the tenant's reference data goes to `reference` the
    /// first time one of its keys is taken.
    fn take_key(&mut self, reference: &mut Vec<Req>) -> Key {
        let key = Key {
            tenant: self.next_key / KEYS_PER_TENANT,
            slot: self.next_key % KEYS_PER_TENANT,
        };
        self.next_key += 1;
        while self.tenants_emitted <= key.tenant {
            let tenant = self.tenants_emitted;
            self.emit_tenant(tenant, reference);
            self.tenants_emitted += 1;
        }
        key
    }

    fn emit_tenant(&mut self, tenant: u64, reference: &mut Vec<Req>) {
        let tenant_id = self.tenant_id(tenant);
        reference.push(Req {
            tail: "cmd.ref.tenant".into(),
            body: json!({
                "command_id": self.rng.uuid(),
                "actor": {"type": "system", "id": "crm-sync"},
                "tenant_id": tenant_id,
                "domains": Planner::domains(tenant),
            }),
            expect: Expect::Ok,
        });
        for (index, (product, channel, state)) in DYNAMICS_PRODUCTS.iter().enumerate() {
            let subscription_id = self.subscription_id(tenant, index as u64);
            reference.push(self.subscription(
                subscription_id,
                tenant_id,
                product,
                "business_applications",
                true,
                channel,
                state,
            ));
        }
        let subscription_id = self.subscription_id(tenant, DYNAMICS_PRODUCTS.len() as u64);
        reference.push(self.subscription(
            subscription_id,
            tenant_id,
            M365_PRODUCT,
            "microsoft_365",
            false,
            "csp",
            "active",
        ));
    }

    #[allow(clippy::too_many_arguments)]
    fn subscription(
        &mut self,
        subscription_id: Uuid,
        tenant_id: Uuid,
        product: &str,
        solution_area: &str,
        is_dynamics: bool,
        channel: &str,
        state: &str,
    ) -> Req {
        Req {
            tail: "cmd.ref.subscription".into(),
            body: json!({
                "command_id": self.rng.uuid(),
                "actor": {"type": "system", "id": "commerce-sync"},
                "subscription_id": subscription_id,
                "tenant_id": tenant_id,
                "product": product,
                "solution_area": solution_area,
                "is_dynamics": is_dynamics,
                "channel": channel,
                "state": state,
            }),
            expect: Expect::Ok,
        }
    }

    /// The commands of the next claim lifecycle, refused ones mixed in.
    /// Reference data it needs is pushed to `reference` (send it first).
    pub fn lifecycle(&mut self, reference: &mut Vec<Req>) -> Vec<Req> {
        self.lifecycles += 1;
        let key = self.take_key(reference);
        let partner = self.rng.below(PARTNER_COUNT);
        let claim = self.rng.uuid();
        let mut steps = vec![self.submit(partner, key, claim)];
        match self.rng.weighted(&LIFECYCLE_WEIGHTS) {
            Path::Approved => {
                steps.push(self.partner_comment(partner, claim));
                steps.push(self.request_poe(claim));
                steps.push(self.submit_poe(partner, claim));
                steps.push(self.approve(claim));
            }
            Path::Competing => {
                let other = (partner + 1 + self.rng.below(PARTNER_COUNT - 1)) % PARTNER_COUNT;
                let other_claim = self.rng.uuid();
                steps.push(self.submit(other, key, other_claim));
                steps.push(self.reviewer_comment(other_claim));
                steps.push(self.request_poe(claim));
                steps.push(self.submit_poe(partner, claim));
                steps.push(self.approve(claim));
            }
            Path::Rejected => {
                steps.push(self.start(claim));
                steps.push(self.reject(claim));
            }
            Path::Withdrawn => {
                steps.push(self.partner_comment(partner, claim));
                steps.push(self.withdraw(partner, claim));
            }
            Path::ReviewAbandoned => {}
            Path::PoeAbandoned => steps.push(self.request_poe(claim)),
        }
        // Refused commands: INVALID_SHARE of all commands, so p per step.
        let p = INVALID_SHARE / (1.0 - INVALID_SHARE);
        let mut mixed = Vec::with_capacity(steps.len() + 2);
        for step in steps {
            if self.rng.chance(p) {
                mixed.push(self.invalid(partner, key));
            }
            mixed.push(step);
        }
        mixed
    }

    fn base(&mut self, actor: Value) -> serde_json::Map<String, Value> {
        let mut map = serde_json::Map::new();
        map.insert("command_id".into(), json!(self.rng.uuid()));
        map.insert("actor".into(), actor);
        if self.rng.chance(CORRELATION_SHARE) {
            map.insert(
                "correlation_id".into(),
                json!(format!("crm-{}", self.rng.below(1 << 40))),
            );
        }
        map
    }

    fn reviewer(&mut self) -> Value {
        json!({"type": "reviewer", "id": format!("rev-{}", 1 + self.rng.below(REVIEWER_COUNT))})
    }

    fn poe(&mut self, partner: u64) -> Value {
        let names = [
            "statement-of-work.pdf",
            "deployment-report.pdf",
            "go-live-signoff.pdf",
            "usage-dashboard.png",
        ];
        let name = names[self.rng.below(names.len() as u64) as usize];
        json!([{
            "name": name,
            "uri": format!("https://files.{}.example/poe/{}/{name}", partner_id(partner).to_lowercase(), self.rng.uuid()),
            "sha256": self.rng.hex(32),
        }])
    }

    fn submit_body(
        &mut self,
        partner: u64,
        key: Key,
        claim: Uuid,
    ) -> serde_json::Map<String, Value> {
        let mut body = self.base(partner_actor(partner));
        let (enrolled, not_enrolled) = mpn_ids(partner);
        let mpn = if self.rng.chance(UNENROLLED_MPN_SHARE) {
            not_enrolled
        } else {
            enrolled
        };
        let domains = Planner::domains(key.tenant);
        let domain = domains[self.rng.below(2) as usize].clone();
        body.insert("claim_id".into(), json!(claim));
        body.insert("tenant_id".into(), json!(self.tenant_id(key.tenant)));
        body.insert("domain".into(), json!(domain));
        if key.slot < 9 {
            let product = key.slot / 3;
            body.insert("solution_area".into(), json!("business_applications"));
            body.insert(
                "activity".into(),
                json!(ACTIVITIES[(key.slot % 3) as usize]),
            );
            body.insert(
                "product".into(),
                json!(DYNAMICS_PRODUCTS[product as usize].0),
            );
            if !self.rng.chance(WITHOUT_SUBSCRIPTION_ID_SHARE) {
                body.insert(
                    "subscription_id".into(),
                    json!(self.subscription_id(key.tenant, product)),
                );
            }
        } else {
            body.insert("solution_area".into(), json!("microsoft_365"));
            body.insert("activity".into(), json!("usage"));
            body.insert("product".into(), json!(M365_PRODUCT));
        }
        body.insert("mpn_id".into(), json!(mpn));
        body.insert("proof_of_execution".into(), self.poe(partner));
        body.insert(
            "note".into(),
            json!(format!(
                "Implemented and adopted by the customer: {} seats live since go-live, weekly usage reviews with the customer's IT team.",
                25 + self.rng.below(2_000)
            )),
        );
        body
    }

    fn submit(&mut self, partner: u64, key: Key, claim: Uuid) -> Req {
        let body = self.submit_body(partner, key, claim);
        Req {
            tail: format!("cmd.partner.{}.submit", partner_id(partner)),
            body: Value::Object(body),
            expect: Expect::Ok,
        }
    }

    fn partner_comment(&mut self, partner: u64, claim: Uuid) -> Req {
        let mut body = self.base(partner_actor(partner));
        body.insert("claim_id".into(), json!(claim));
        body.insert(
            "text".into(),
            json!("We attached the statement of work; the deployment covers all business units of the customer."),
        );
        Req {
            tail: format!("cmd.partner.{}.comment", partner_id(partner)),
            body: Value::Object(body),
            expect: Expect::Ok,
        }
    }

    fn review(&mut self, name: &str, claim: Uuid, extra: &[(&str, Value)]) -> Req {
        let actor = self.reviewer();
        let mut body = self.base(actor);
        body.insert("claim_id".into(), json!(claim));
        for (field, value) in extra {
            body.insert((*field).into(), value.clone());
        }
        Req {
            tail: format!("cmd.review.{name}"),
            body: Value::Object(body),
            expect: Expect::Ok,
        }
    }

    fn reviewer_comment(&mut self, claim: Uuid) -> Req {
        self.review(
            "comment",
            claim,
            &[("text", json!("Another partner claims this customer and product; we compare the proofs of execution."))],
        )
    }

    fn request_poe(&mut self, claim: Uuid) -> Req {
        self.review(
            "request_poe",
            claim,
            &[(
                "text",
                json!(
                    "Please add a deployment report signed by the customer, with the go-live date."
                ),
            )],
        )
    }

    fn start(&mut self, claim: Uuid) -> Req {
        self.review("start", claim, &[])
    }

    fn approve(&mut self, claim: Uuid) -> Req {
        self.review(
            "approve",
            claim,
            &[("text", json!("Proof of execution verified."))],
        )
    }

    fn reject(&mut self, claim: Uuid) -> Req {
        self.review(
            "reject",
            claim,
            &[
                ("reason", json!("NO_PROOF_OF_EXECUTION")),
                (
                    "text",
                    json!("The documents do not show a deployment at this customer."),
                ),
            ],
        )
    }

    fn submit_poe(&mut self, partner: u64, claim: Uuid) -> Req {
        let mut body = self.base(partner_actor(partner));
        body.insert("claim_id".into(), json!(claim));
        body.insert("proof_of_execution".into(), self.poe(partner));
        body.insert("text".into(), json!("Signed deployment report attached."));
        Req {
            tail: format!("cmd.partner.{}.submit_poe", partner_id(partner)),
            body: Value::Object(body),
            expect: Expect::Ok,
        }
    }

    fn withdraw(&mut self, partner: u64, claim: Uuid) -> Req {
        let mut body = self.base(partner_actor(partner));
        body.insert("claim_id".into(), json!(claim));
        body.insert(
            "reason".into(),
            json!("Submitted for the wrong customer tenant."),
        );
        Req {
            tail: format!("cmd.partner.{}.withdraw", partner_id(partner)),
            body: Value::Object(body),
            expect: Expect::Ok,
        }
    }

    /// A command the service refuses, about the lifecycle's own tenant and
    /// partner so it looks like a real mistake.
    fn invalid(&mut self, partner: u64, key: Key) -> Req {
        match self.rng.weighted(&INVALID_WEIGHTS) {
            Invalid::BadDomain => {
                let claim = self.rng.uuid();
                let mut body = self.submit_body(partner, key, claim);
                body.insert(
                    "domain".into(),
                    json!(format!("typo-{}.example", key.tenant)),
                );
                Req {
                    tail: format!("cmd.partner.{}.submit", partner_id(partner)),
                    body: Value::Object(body),
                    expect: Expect::Error("DOMAIN_TENANT_MISMATCH"),
                }
            }
            Invalid::UnknownClaim => {
                let unknown = self.rng.uuid();
                let mut req = self.partner_comment(partner, unknown);
                req.expect = Expect::Error("CLAIM_NOT_FOUND");
                req
            }
            Invalid::BadSolutionArea => {
                let claim = self.rng.uuid();
                let mut body = self.submit_body(partner, key, claim);
                body.insert("solution_area".into(), json!("azure"));
                Req {
                    tail: format!("cmd.partner.{}.submit", partner_id(partner)),
                    body: Value::Object(body),
                    expect: Expect::Error("INVALID_COMMAND"),
                }
            }
        }
    }
}

/// Per-client scripts for `clients` closed-loop clients of about
/// `commands_per_client` commands each (whole lifecycles), and the
/// reference data they need (send it first). Partners are not included:
/// see [`Planner::partners`].
pub fn plan_clients(
    planner: &mut Planner,
    clients: usize,
    commands_per_client: usize,
) -> (Vec<Req>, Vec<Vec<Req>>) {
    let mut reference = Vec::new();
    let scripts = (0..clients)
        .map(|_| {
            let mut script = Vec::with_capacity(commands_per_client + 8);
            while script.len() < commands_per_client {
                script.extend(planner.lifecycle(&mut reference));
            }
            script
        })
        .collect();
    (reference, scripts)
}

/// Interleaves scripts round-robin, the way concurrent clients' commands
/// reach a single writer.
pub fn interleave(scripts: Vec<Vec<Req>>) -> Vec<Req> {
    let total = scripts.iter().map(Vec::len).sum();
    let mut queues: Vec<VecDeque<Req>> = scripts.into_iter().map(VecDeque::from).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for queue in &mut queues {
            if let Some(req) = queue.pop_front() {
                out.push(req);
            }
        }
    }
    out
}

/// An endless stream of requests from `lanes` interleaved lifecycles,
/// reference data inline just before the first command that needs it, the
/// partners first. Memory does not grow with the length of the stream.
pub struct Stream {
    planner: Planner,
    lanes: Vec<VecDeque<Req>>,
    next_lane: usize,
    pending: VecDeque<Req>,
}

impl Stream {
    pub fn new(seed: u64, lanes: usize) -> Stream {
        let mut planner = Planner::new(seed);
        let pending = planner.partners().into();
        Stream {
            planner,
            lanes: (0..lanes.max(1)).map(|_| VecDeque::new()).collect(),
            next_lane: 0,
            pending,
        }
    }

    pub fn planner(&self) -> &Planner {
        &self.planner
    }
}

impl Iterator for Stream {
    type Item = Req;

    fn next(&mut self) -> Option<Req> {
        if let Some(req) = self.pending.pop_front() {
            return Some(req);
        }
        let lane = self.next_lane;
        self.next_lane = (self.next_lane + 1) % self.lanes.len();
        if self.lanes[lane].is_empty() {
            let mut reference = Vec::new();
            let steps = self.planner.lifecycle(&mut reference);
            self.lanes[lane].extend(steps);
            if !reference.is_empty() {
                self.pending.extend(reference);
                return self.pending.pop_front();
            }
        }
        self.lanes[lane].pop_front()
    }
}
