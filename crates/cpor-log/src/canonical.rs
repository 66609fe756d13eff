// TEMPORARY STUB (helper-2 replaces this file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError { #[error("x")] X }
pub fn write_canonical_json(value: &serde_json::Value, out: &mut String) -> Result<(), CanonicalError> { out.push_str(&value.to_string()); Ok(()) }
pub fn event_hash(_previous_hash: &str, _event: &serde_json::Value) -> Result<String, CanonicalError> { Ok(String::new()) }
