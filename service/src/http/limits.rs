//! Limits on what requests may carry, shared by every resource that accepts
//! the same kind of value: an entity id is 1024 bytes at most wherever it is
//! sent. Their `#[schema(max_length = …)]` twins in the request types repeat
//! the numbers because utoipa takes literals there.

/// Longest entity type or action name accepted.
pub const MAX_NAME: usize = 256;
/// Longest entity id accepted (and token, project and connection ids).
pub const MAX_ID: usize = 1024;
/// Most evaluations (AuthZEN) or requests (native) in one batch.
pub const MAX_EVALUATIONS: usize = 1000;

/// garde's check for ids: printable characters only (`crate::ids`).
pub fn printable<T: AsRef<str> + ?Sized>(value: &T, _: &()) -> garde::Result {
    crate::ids::check(value.as_ref()).map_err(garde::Error::new)
}
