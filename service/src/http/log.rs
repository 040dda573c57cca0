//! The log as C2SP tlog-tiles clients read it: `GET /log/checkpoint`, the
//! newest published checkpoint (a signed note, `checkpoints.rs`). Public:
//! a checkpoint holds a size and a hash, and is what anyone checks the log
//! against. (Tiles come next; until then proofs are `/v1/audit/proofs/*`.)

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/log/checkpoint", get(checkpoint))
}

/// The newest checkpoint of the log.
#[utoipa::path(
    get,
    path = "/log/checkpoint",
    operation_id = "log_checkpoint",
    tag = "audit",
    summary = "The log's newest C2SP checkpoint, a signed note (public)",
    description = "`<origin>\\n<tree size>\\n<base64 root>\\n\\n— <origin> <signature>\\n`, signed with the \
        log's Ed25519 key (`warrant audit public-key` prints its verifier key). Published by the service as \
        records arrive; reading never signs.",
    responses(
        (status = 200, description = "the checkpoint", body = String, content_type = "text/plain"),
        (status = 503, description = "no checkpoint published yet (`no_checkpoint`)", body = ErrorBody),
    )
)]
async fn checkpoint(State(state): State<AppState>) -> Result<Response, ApiError> {
    match state.store().latest_log_checkpoint().await? {
        Some((_, note)) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "max-age=1")], note)
                .into_response())
        }
        None => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_checkpoint", "no checkpoint is published yet")),
    }
}
