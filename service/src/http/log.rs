//! The log as C2SP tlog-tiles clients read it (`c2sp.org/tlog-tiles`):
//! `GET /log/checkpoint`, the newest published checkpoint (a signed note,
//! `checkpoints.rs`), and `GET /log/tile/<L>/<N>[.p/<W>]`, hash tiles from
//! the tree the writer keeps (`engine/src/audit/tiles.rs`). Public: they
//! hold sizes and hashes, what anyone checks the log against, and each
//! answer is a slice of memory (no work an outsider can make expensive).
//! Entry bundles (`/log/tile/entries/…`) are not served yet.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use warrant_engine::audit::TilePath;
use warrant_engine::audit::tiles::TILE_WIDTH;

use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/log/checkpoint", get(checkpoint)).route("/log/tile/{*path}", get(tile))
}

/// A hash tile: `width` (256 for a full tile) hashes of 32 bytes.
#[utoipa::path(
    get,
    path = "/log/tile/{path}",
    operation_id = "log_tile",
    tag = "audit",
    summary = "A C2SP hash tile of the log's tree (public)",
    description = "`path` is `<level>/<index>[.p/<width>]` with the index in C2SP's `x001/x234/067` form. Full \
        tiles never change (cached for a year); a partial tile is a prefix of the full one it becomes.",
    params(("path" = String, Path, description = "`<level>/<index>[.p/<width>]`")),
    responses(
        (status = 200, description = "the tile's hashes", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "no such tile (yet), or not a tile path (`no_tile`)", body = ErrorBody),
    )
)]
async fn tile(State(state): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let not_found = |message: &str| ApiError::new(StatusCode::NOT_FOUND, "no_tile", message.to_owned());
    let Some(tile) = TilePath::parse(&path) else {
        return Err(not_found("not a tile path: `<level>/<index>[.p/<width>]`, the index as `x001/x234/067`"));
    };
    let Some(level) = tile.level else {
        return Err(not_found("entry bundles are not served yet; records are at /v1/audit/events"));
    };
    let bytes =
        state.audit().tile(level, tile.index, tile.width).ok_or_else(|| not_found("the log has no such tile yet"))?;
    let cache = if tile.width == TILE_WIDTH { "public, max-age=31536000, immutable" } else { "public, max-age=60" };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes).into_response())
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
