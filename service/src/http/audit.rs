//! The auditor's API: query, export, verify, checkpoints, proofs, digests.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};
use warrant_engine::audit::{Checkpoint, merkle};

use super::error::ApiError;
use super::json::ApiJson;
use super::query::ApiQuery;
use crate::audit::verify;
use crate::state::AppState;
use crate::store::AuditFilter;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;
/// Records per read while exporting.
const EXPORT_CHUNK: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/export", get(export))
        .route("/v1/audit/verify", get(verify_log))
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/proofs/inclusion", get(inclusion))
        .route("/v1/audit/proofs/consistency", get(consistency))
        .route("/v1/audit/digest", post(digest))
}

#[derive(Debug, Deserialize)]
struct EventsParams {
    /// RFC 3339; records at or after.
    since: Option<String>,
    /// RFC 3339; records before.
    until: Option<String>,
    kind: Option<String>,
    actor: Option<String>,
    /// A token id in clear: matched by its keyed digest.
    token: Option<String>,
    connection: Option<String>,
    project: Option<String>,
    decision: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
    limit: Option<u32>,
}

fn utc(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .map_err(|_| {
                    ApiError::bad_request("invalid_query", format!("`{field}`: `{v}` is not an RFC 3339 time"))
                        .with_field(field)
                })
        })
        .transpose()
}

async fn events(State(state): State<AppState>, ApiQuery(p): ApiQuery<EventsParams>) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(
            ApiError::bad_request("invalid_query", format!("`limit` must be 1..={MAX_PAGE}")).with_field("limit")
        );
    }
    if let Some(d) = &p.decision
        && d != "allow"
        && d != "deny"
    {
        return Err(ApiError::bad_request("invalid_query", "`decision` is `allow` or `deny`").with_field("decision"));
    }
    let filter = AuditFilter {
        since: utc("since", p.since)?,
        until: utc("until", p.until)?,
        kind: p.kind,
        actor: p.actor,
        token_id: p.token.map(|t| state.keys().digest(&t)),
        connection: p.connection,
        project: p.project,
        decision: p.decision,
        after_seq: p.cursor.unwrap_or(0),
        limit,
    };
    let records = state.store().audit_query(&filter).await.map_err(ApiError::internal)?;
    let next = (records.len() as u32 == limit).then(|| records.last().map(|r| r.seq)).flatten();
    Ok(Json(json!({"events": records, "next_cursor": next})))
}

#[derive(Debug, Deserialize)]
struct RangeParams {
    from: Option<u64>,
    to: Option<u64>,
}

/// JSON Lines, one record per line, streamed in `seq` order.
async fn export(State(state): State<AppState>, ApiQuery(p): ApiQuery<RangeParams>) -> Response {
    let store = state.store().clone();
    let to = p.to.unwrap_or(u64::MAX >> 11);
    let stream = futures_stream(store, p.from.unwrap_or(1), to);
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response()
}

fn futures_stream(
    store: crate::store::Store,
    from: u64,
    to: u64,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    async_stream(move |tx| async move {
        let mut next = from;
        while next <= to {
            let chunk = match store.audit_range(next, to, EXPORT_CHUNK).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let Some(last) = chunk.last().map(|r| r.seq) else { return };
            let mut lines = Vec::new();
            for record in &chunk {
                if serde_json::to_writer(&mut lines, record).is_ok() {
                    lines.push(b'\n');
                }
            }
            if tx.send(Ok(lines)).await.is_err() {
                return;
            }
            next = last + 1;
        }
    })
}

/// A stream fed by a task through a bounded channel (backpressure: the
/// reader of the export paces the reads from the store).
fn async_stream<F, Fut>(f: F) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[derive(Debug, Deserialize)]
struct VerifyParams {
    from: Option<u64>,
    to: Option<u64>,
    /// A checkpoint the auditor kept: its size and root (hex).
    tree_size: Option<u64>,
    root: Option<String>,
}

async fn verify_log(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<VerifyParams>,
) -> Result<Json<verify::Report>, ApiError> {
    let kept = match (p.tree_size, p.root) {
        (Some(tree_size), Some(root)) => {
            // An auditor's own copy: its root is trusted as given, so sign it
            // here only to pass the signature check.
            let hash = hex::decode(&root).ok().and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| {
                ApiError::bad_request("invalid_query", "`root` must be 64 hex digits").with_field("root")
            })?;
            let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            vec![Checkpoint::sign(tree_size, &hash, &ts, state.keys().signing()).map_err(ApiError::internal)?]
        }
        (None, None) => Vec::new(),
        _ => return Err(ApiError::bad_request("invalid_query", "give both `tree_size` and `root`, or neither")),
    };
    let report = verify::verify(state.store(), state.keys(), p.from.unwrap_or(1), p.to, &kept, |_| {})
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(report))
}

/// Signs (and keeps) a checkpoint of the log as it is now.
async fn checkpoint(State(state): State<AppState>) -> Result<Json<Checkpoint>, ApiError> {
    let leaves = state.audit().leaves();
    let root = merkle::root(&leaves);
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let c = Checkpoint::sign(leaves.len() as u64, &root, &ts, state.keys().signing()).map_err(ApiError::internal)?;
    state.store().save_checkpoint(&c).await.map_err(ApiError::internal)?;
    Ok(Json(c))
}

#[derive(Debug, Deserialize)]
struct InclusionParams {
    seq: u64,
    tree_size: Option<u64>,
}

async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<InclusionParams>,
) -> Result<Json<Value>, ApiError> {
    let leaves = state.audit().leaves();
    let size = p.tree_size.unwrap_or(leaves.len() as u64);
    if p.seq == 0 || p.seq > size || size > leaves.len() as u64 {
        return Err(ApiError::not_found(format!(
            "no record {} in a log of {size} (the log has {})",
            p.seq,
            leaves.len()
        )));
    }
    let index = p.seq - 1;
    let proof = merkle::inclusion_proof(&leaves, index, size).map_err(ApiError::internal)?;
    let root = merkle::root_at(&leaves, size).map_err(ApiError::internal)?;
    let leaf = leaves.get(usize::try_from(index).unwrap_or(usize::MAX)).map(hex::encode).unwrap_or_default();
    Ok(Json(json!({
        "seq": p.seq, "leaf_index": index, "tree_size": size, "leaf_hash": leaf,
        "root": hex::encode(root), "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize)]
struct ConsistencyParams {
    from: u64,
    to: Option<u64>,
}

async fn consistency(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<ConsistencyParams>,
) -> Result<Json<Value>, ApiError> {
    let leaves = state.audit().leaves();
    let to = p.to.unwrap_or(leaves.len() as u64);
    if p.from == 0 || p.from > to || to > leaves.len() as u64 {
        return Err(ApiError::bad_request("invalid_query", format!("need 1 <= from <= to <= {}", leaves.len())));
    }
    let proof = merkle::consistency_proof(&leaves, p.from, to).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "from": p.from, "to": to,
        "root_from": hex::encode(merkle::root_at(&leaves, p.from).map_err(ApiError::internal)?),
        "root_to": hex::encode(merkle::root_at(&leaves, to).map_err(ApiError::internal)?),
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
}

#[derive(Debug, Deserialize, Validate)]
struct DigestRequest {
    #[garde(length(min = 1, max = 65536))]
    value: String,
}

/// The keyed digest of a value an auditor holds, to search the log for it.
async fn digest(State(state): State<AppState>, ApiJson(body): ApiJson<DigestRequest>) -> Json<Value> {
    Json(json!({"digest": state.keys().digest(&body.value)}))
}
