//! `warrant witness`: a C2SP witness (`c2sp.org/tlog-witness@v1.0.0`) for
//! warrant logs. A log submits each new checkpoint with a consistency proof
//! from the last one this witness cosigned; the witness cosigns it only if
//! the log's history only grew, and remembers it. Clients that require a
//! witness's cosignature on a checkpoint cannot then be shown a history that
//! drops or rewrites records the witness has seen, unless the witness
//! colludes with the log.
//!
//! - the judgement is the engine's (`warrant_engine::audit::witness`),
//!   applied and remembered in `cosigning.rs`;
//! - [`state`]: the latest checkpoint cosigned per log, and the atomic
//!   check-and-store step;
//! - [`key`]: the cosigner key file;
//! - `http.rs`: `POST /add-checkpoint`, `GET /<hash>/checkpoint`.

pub mod cosigning;
pub mod http;
pub mod key;
pub mod state;

pub use cosigning::{AddError, Cosignature, FollowError, Submission, Witness, followed_logs, now};
