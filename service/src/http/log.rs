//! The log as C2SP tlog-tiles clients read it (`c2sp.org/tlog-tiles`):
//! `GET /log/checkpoint`, the newest published checkpoint (a signed note,
//! `checkpoints.rs`), and `GET /log/tile/<L>/<N>[.p/<W>]`, hash tiles as
//! the store keeps them (`store/tiles.rs`). Public by default: they hold
//! sizes and hashes, what anyone checks the log against, and each answer
//! is one primary-key read (no work an outsider can make expensive).
//! `GET /log/tile/entries/<N>[.p/<W>]` serves entry bundles, the records
//! themselves (redacted, as `/v1/audit/events` has them), so it needs
//! `audit:read` ([`entries_router`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use warrant_engine::audit::TilePath;
use warrant_engine::audit::tiles::{TILE_WIDTH, entry_bundle};

use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// The public log: `quorum` is how many witnesses must have cosigned a
/// checkpoint before it is served (0: the newest, as published).
pub fn router(quorum: usize) -> Router<AppState> {
    Router::new()
        .route("/log/checkpoint", get(move |state: State<AppState>| checkpoint(state, quorum)))
        .route("/log/tile/{*path}", get(tile))
}

/// Entry bundles: mounted behind `audit:read`.
pub fn entries_router() -> Router<AppState> {
    Router::new().route("/log/tile/entries/{*path}", get(entries))
}

/// An entry bundle: up to 256 records' entries (their canonical JSON, the
/// bytes each leaf hashes), each prefixed by its length (big-endian `u16`).
#[utoipa::path(
    get,
    path = "/log/tile/entries/{path}",
    operation_id = "log_entries",
    tag = "audit",
    summary = "A C2SP entry bundle of the log: the records, canonical",
    description = "`path` is `<index>[.p/<width>]` with the index in C2SP's `x001/x234/067` form: records \
        `index·256 + 1 ..= index·256 + width`. Each entry's SHA-256(0x00 ‖ entry) is its leaf in level-0 tile \
        `index`. A record longer than 65,535 bytes cannot be bundled (`entry_too_large`): read it from \
        `/v1/audit/events`.",
    params(("path" = String, Path, description = "`<index>[.p/<width>]`")),
    responses(
        (status = 200, description = "the bundle", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "no such bundle (yet), or not a bundle path (`no_tile`)", body = ErrorBody),
        (status = 422, description = "a record too long for a bundle (`entry_too_large`)", body = ErrorBody),
    ),
    security(("bearer" = ["audit:read"]))
)]
async fn entries(State(state): State<AppState>, Path(path): Path<String>) -> Result<Response, ApiError> {
    let not_found = |message: &str| ApiError::new(StatusCode::NOT_FOUND, "no_tile", message.to_owned());
    let Some(bundle) = TilePath::parse(&format!("entries/{path}")).filter(|t| t.level.is_none()) else {
        return Err(not_found("not a bundle path: `<index>[.p/<width>]`, the index as `x001/x234/067`"));
    };
    let first = bundle.index.saturating_mul(TILE_WIDTH);
    let last = first.saturating_add(bundle.width);
    if last > state.audit().size() {
        return Err(not_found("the log has no such bundle yet"));
    }
    let limit = u32::try_from(bundle.width).unwrap_or(u32::MAX);
    let entries = state.store().audit_entries(first + 1, last, limit).await?;
    if entries.len() as u64 != bundle.width {
        return Err(ApiError::internal(format!("records {}..={last} are not all stored", first + 1)));
    }
    let bytes = entry_bundle(entries.iter().map(Vec::as_slice)).map_err(|i| {
        let message = format!(
            "record {} is longer than an entry bundle holds (65,535 bytes): read it from /v1/audit/events",
            first + 1 + i as u64
        );
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "entry_too_large", message)
    })?;
    let cache = if bundle.width == TILE_WIDTH { "private, max-age=31536000, immutable" } else { "private, max-age=60" };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream"), (header::CACHE_CONTROL, cache)], bytes).into_response())
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
        return Err(not_found("not a hash tile path"));
    };
    let bytes = state
        .audit()
        .tile(level, tile.index, tile.width)
        .await?
        .ok_or_else(|| not_found("the log has no such tile yet"))?;
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
        log's Ed25519 key (`warrant audit public-key` prints its verifier key), followed by the cosignature lines \
        of the witnesses that cosigned it. Published by the service as records arrive; reading never signs. With \
        `--witness-quorum K`, the newest checkpoint K witnesses cosigned.",
    responses(
        (status = 200, description = "the checkpoint", body = String, content_type = "text/plain"),
        (status = 503, description = "no checkpoint published yet (`no_checkpoint`)", body = ErrorBody),
    )
)]
async fn checkpoint(State(state): State<AppState>, quorum: usize) -> Result<Response, ApiError> {
    let Some((size, mut note)) = state.store().witnessed_log_checkpoint(quorum).await? else {
        let message = if quorum == 0 {
            "no checkpoint is published yet".to_owned()
        } else {
            format!("no checkpoint is witnessed yet (by {quorum} witness(es), `--witness-quorum`)")
        };
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no_checkpoint", message));
    };
    // The witnesses' cosignatures are more signature lines of the note.
    for line in state.store().cosignatures(size).await? {
        note.push_str(&line);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "max-age=1")], note)
        .into_response())
}
