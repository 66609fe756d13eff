//! The environment a test's `cpor` child must not inherit.

/// The `CPOR_*` variables `cpor` reads as defaults for its flags (README,
/// "Configuration"): a test removes them from a child's environment so the
/// developer's shell cannot change what the test's flags say.
pub const CPOR_ENV: [&str; 14] = [
    "CPOR_NATS_URL",
    "CPOR_DATA_DIR",
    "CPOR_PREFIX",
    "CPOR_CONFIG",
    "CPOR_MANUAL_CLOCK",
    "CPOR_NATS_CREDS",
    "CPOR_NATS_NKEY",
    "CPOR_NATS_USER",
    "CPOR_NATS_PASSWORD",
    "CPOR_NATS_TOKEN",
    "CPOR_NATS_TLS_CA",
    "CPOR_NATS_TLS_CERT",
    "CPOR_NATS_TLS_KEY",
    "CPOR_NATS_INBOX_PREFIX",
];
