//! Test-only package; see `it/`.
